/* test_server_api: the HTTP API of `gemma-chat serve`.
 * - the request parser (src/server/openai_request.c): every bad request of
 *   the table is refused with its status, the field it names (param) and a
 *   message that says what was wrong; good requests become the expected
 *   conversation and generation settings (merging, system prompt, sampling
 *   fields, clamping, stop strings, images decoded from data: URLs);
 * - the response shapes (chat.completion, SSE chunks, usage, error chunk);
 * - over HTTP, against `gemma-chat serve` on the golden tiny model on a
 *   loopback port: the same bad-request table gives the same status and
 *   field; 401 without/with a wrong key, 413 (declared and chunked), 404,
 *   405 with Allow, 415, a message longer than the context (400); a plain and a streamed answer in OpenAI's shape
 *   with the same text; a stop string gives finish_reason "stop"; a client
 *   that leaves (streaming or not) cancels its generation; a queued stream
 *   gets ": ping" comments; a full queue is a 429; CORS preflight; /metrics
 *   counts; SIGTERM ends a running stream with an error chunk and exits 0. */
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <setjmp.h>
#include <signal.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <cmocka.h>
#include <cjson/cJSON.h>

#include "base/base64.h"
#include "server/data_url.h"
#include "server/openai_request.h"
#include "server/openai_response.h"
#include "http_client.h"
#include "test_util.h"

#define MODEL G3_GOLDEN_DIR "/tiny-gemma3/models/g3-1b-s1234-q8_0.gguf"
#define MODEL_ID "g3-1b-s1234-q8_0"
#define KEY "test-key-123"
#define MAX_BODY 65536

/* A 1x1 PNG (the parser only sniffs the signature; the engine decodes). */
static const char k_png_b64[] =
    "iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJAAAADUlEQVR42mP8z8BQDwAEhQGAhKmMIQAAAABJRU5ErkJggg==";

/* ---- the bad-request table ---------------------------------------------- */

typedef struct bad_case {
    const char *name;
    const char *body;     /* NULL: built by the test */
    bool vision;          /* needs a server with a vision encoder */
    int status;
    const char *param;    /* NULL: null */
    const char *says;     /* in the message */
} bad_case;

#define U "{\"role\":\"user\",\"content\":\"hi\"}"
#define MSGS "\"messages\":[" U "]"
#define IMG(url) "{\"messages\":[{\"role\":\"user\",\"content\":[{\"type\":\"text\",\"text\":\"see\"},{\"type\":\"image_url\",\"image_url\":{\"url\":\"" url "\"}}]}]}"

static const bad_case k_bad[] = {
    {"malformed JSON", "{\"messages\": [", false, 400, NULL, "not valid JSON"},
    {"trailing data", "{" MSGS "} x", false, 400, NULL, "after its JSON value"},
    {"not an object", "[1,2]", false, 400, NULL, "must be a JSON object"},
    {"no messages", "{}", false, 400, "messages", "required"},
    {"messages not an array", "{\"messages\":\"hi\"}", false, 400, "messages", "expected an array"},
    {"empty messages", "{\"messages\":[]}", false, 400, "messages", "must not be empty"},
    {"message not an object", "{\"messages\":[1]}", false, 400, "messages[0]", "expected a message object"},
    {"unknown role", "{\"messages\":[{\"role\":\"wizard\",\"content\":\"hi\"}]}", false, 400, "messages[0].role",
     "unknown role 'wizard'"},
    {"tool role", "{\"messages\":[{\"role\":\"tool\",\"content\":\"hi\"}]}", false, 400, "messages[0].role",
     "not supported"},
    {"no role", "{\"messages\":[{\"content\":\"hi\"}]}", false, 400, "messages[0].role", "needs a role"},
    {"role not a string", "{\"messages\":[{\"role\":1,\"content\":\"hi\"}]}", false, 400, "messages[0].role",
     "expected a string"},
    {"no content", "{\"messages\":[{\"role\":\"user\"}]}", false, 400, "messages[0].content", "needs content"},
    {"content a number", "{\"messages\":[{\"role\":\"user\",\"content\":5}]}", false, 400, "messages[0].content",
     "expected a string or an array"},
    {"part type unknown", "{\"messages\":[{\"role\":\"user\",\"content\":[{\"type\":\"input_audio\"}]}]}", false, 400,
     "messages[0].content[0].type", "not supported"},
    {"text part without text", "{\"messages\":[{\"role\":\"user\",\"content\":[{\"type\":\"text\"}]}]}", false, 400,
     "messages[0].content[0].text", "needs \"text\""},
    {"tool calls", "{\"messages\":[" U ",{\"role\":\"assistant\",\"content\":null,\"tool_calls\":[{}]}," U "]}",
     false, 400, "messages[1].tool_calls", "not supported"},
    {"last is assistant", "{\"messages\":[" U ",{\"role\":\"assistant\",\"content\":\"yo\"}]}", false, 400,
     "messages[1].role", "last message must be the user's"},
    {"assistant first", "{\"messages\":[{\"role\":\"system\",\"content\":\"s\"},{\"role\":\"assistant\",\"content\":"
     "\"yo\"}," U "]}", false, 400, "messages[1].role", "must start with a user message"},
    {"only system", "{\"messages\":[{\"role\":\"system\",\"content\":\"s\"}]}", false, 400, "messages",
     "needs a user message"},
    {"temperature a string", "{" MSGS ",\"temperature\":\"hot\"}", false, 400, "temperature", "expected a number"},
    {"temperature too high", "{" MSGS ",\"temperature\":3}", false, 400, "temperature", "must be in [0, 2]"},
    {"top_p above 1", "{" MSGS ",\"top_p\":1.5}", false, 400, "top_p", "must be in"},
    {"top_k negative", "{" MSGS ",\"top_k\":-1}", false, 400, "top_k", "must be between"},
    {"top_k fraction", "{" MSGS ",\"top_k\":1.5}", false, 400, "top_k", "expected an integer"},
    {"min_p 1", "{" MSGS ",\"min_p\":1}", false, 400, "min_p", "[0, 1)"},
    {"repetition_penalty 0", "{" MSGS ",\"repetition_penalty\":0}", false, 400, "repetition_penalty", "must be in"},
    {"max_tokens 0", "{" MSGS ",\"max_tokens\":0}", false, 400, "max_tokens", "must be between 1"},
    {"max_completion_tokens string", "{" MSGS ",\"max_completion_tokens\":\"9\"}", false, 400, "max_completion_tokens",
     "expected an integer"},
    {"n = 2", "{" MSGS ",\"n\":2}", false, 400, "n", "only n = 1"},
    {"stream not a boolean", "{" MSGS ",\"stream\":\"yes\"}", false, 400, "stream", "expected a boolean"},
    {"stream_options without stream", "{" MSGS ",\"stream_options\":{\"include_usage\":true}}", false, 400,
     "stream_options", "only allowed when stream is true"},
    {"stream_options unknown", "{" MSGS ",\"stream\":true,\"stream_options\":{\"x\":1}}", false, 400,
     "stream_options.x", "unknown field"},
    {"stop a number", "{" MSGS ",\"stop\":5}", false, 400, "stop", "a string or an array of strings"},
    {"stop item a number", "{" MSGS ",\"stop\":[\"a\",5]}", false, 400, "stop[1]", "expected a string"},
    {"stop empty", "{" MSGS ",\"stop\":\"\"}", false, 400, "stop", "must not be empty"},
    {"too many stops", "{" MSGS ",\"stop\":[\"1\",\"2\",\"3\",\"4\",\"5\",\"6\",\"7\",\"8\",\"9\"]}", false, 400, "stop",
     "at most 8"},
    {"frequency_penalty", "{" MSGS ",\"frequency_penalty\":0.5}", false, 400, "frequency_penalty",
     "use repetition_penalty"},
    {"presence_penalty", "{" MSGS ",\"presence_penalty\":-1}", false, 400, "presence_penalty",
     "use repetition_penalty"},
    {"seed fraction", "{" MSGS ",\"seed\":1.5}", false, 400, "seed", "expected an integer"},
    {"unknown field", "{" MSGS ",\"temprature\":0}", false, 400, "temprature", "unknown field"},
    {"tools", "{" MSGS ",\"tools\":[{\"type\":\"function\"}]}", false, 400, "tools", "not supported"},
    {"logprobs", "{" MSGS ",\"logprobs\":true}", false, 400, "logprobs", "not supported"},
    {"response_format json", "{" MSGS ",\"response_format\":{\"type\":\"json_object\"}}", false, 400,
     "response_format", "only {\"type\": \"text\"}"},
    {"given twice", "{" MSGS ",\"temperature\":0,\"temperature\":1}", false, 400, "temperature", "given twice"},
    {"unknown model", "{\"model\":\"gpt-4o\"," MSGS "}", false, 404, "model", "'gpt-4o' is not served here"},
    {"model a number", "{\"model\":4," MSGS "}", false, 400, "model", "expected a string"},
    {"http image URL", IMG("https://example.com/cat.png"), false, 400, "messages[0].content[1].image_url.url",
     "fetches nothing"},
    {"image without vision", IMG("data:image/png;base64,AAAA"), false, 400, "messages[0].content[1].image_url.url",
     "no vision encoder"},
    {"image_url not an object", "{\"messages\":[{\"role\":\"user\",\"content\":[{\"type\":\"image_url\","
     "\"image_url\":\"data:x\"}]}]}", false, 400, "messages[0].content[0].image_url", "expected an object"},
    {"image in an assistant message", "{\"messages\":[" U ",{\"role\":\"assistant\",\"content\":[{\"type\":"
     "\"image_url\",\"image_url\":{\"url\":\"data:image/png;base64,AAAA\"}}]}," U "]}", false, 400,
     "messages[1].content[0].type", "only in user messages"},
    {"bad base64", IMG("data:image/png;base64,iVBOR!w0KG"), true, 400, "messages[0].content[1].image_url.url",
     "bad base64"},
    {"data URL not base64", IMG("data:image/png,rawbytes"), true, 400, "messages[0].content[1].image_url.url",
     "must be base64"},
    {"data URL not an image type", IMG("data:text/plain;base64,aGVsbG8gd29ybGQh"), true, 400,
     "messages[0].content[1].image_url.url", "media type must be image/"},
    {"data not an image", IMG("data:image/png;base64,aGVsbG8gd29ybGQh"), true, 400,
     "messages[0].content[1].image_url.url", "not a JPEG, PNG"},
    {"ftp image URL", IMG("ftp://x/y.png"), true, 400, "messages[0].content[1].image_url.url",
     "expected a data: URL"},
    {"too deep", NULL, false, 400, NULL, "nests deeper than 32"},
    {"huge model name", NULL, false, 404, "model", "is not served here"},
    {"five images", NULL, true, 400, "messages[0].content[4].image_url.url", "at most 4 images"},
};
#define N_BAD (sizeof k_bad / sizeof *k_bad)

/* The body of case i (malloc'd). */
static char *bad_body(size_t i) {
    const bad_case *c = &k_bad[i];
    if (c->body) return strdup(c->body);
    char *b = calloc(1, 200000);
    assert_non_null(b);
    if (!strcmp(c->name, "too deep")) {
        strcpy(b, "{\"messages\":");
        for (int k = 0; k < 40; k++) strcat(b, "[");
        for (int k = 0; k < 40; k++) strcat(b, "]");
        strcat(b, "}");
    } else if (!strcmp(c->name, "huge model name")) {
        strcpy(b, "{\"model\":\"");
        memset(b + strlen(b), 'm', 50000);
        strcat(b, "\"," MSGS "}");
    } else {
        strcpy(b, "{\"messages\":[{\"role\":\"user\",\"content\":[");
        for (int k = 0; k < 5; k++) {
            if (k) strcat(b, ",");
            strcat(b, "{\"type\":\"image_url\",\"image_url\":{\"url\":\"data:image/png;base64,");
            strcat(b, k_png_b64);
            strcat(b, "\"}}");
        }
        strcat(b, "]}]}");
    }
    return b;
}

static srv_request_limits limits(bool vision) {
    srv_request_limits l = {.n_ctx = 512, .has_vision = vision, .max_image_bytes = 1 << 20, .model_id = MODEL_ID,
                            .model_name = "Gemma 3 tiny"};
    return l;
}

static void check_error(const char *name, int status, const char *param, const char *message, const bad_case *c) {
    if (status != c->status) fail_msg("%s: status %d, expected %d (%s)", name, status, c->status, message);
    if (c->param ? strcmp(param ? param : "(null)", c->param) != 0 : param != NULL)
        fail_msg("%s: param '%s', expected '%s' (%s)", name, param ? param : "(null)", c->param ? c->param : "(null)",
                 message);
    if (!strstr(message, c->says)) fail_msg("%s: message '%s' does not say '%s'", name, message, c->says);
    if (c->param && strncmp(message, c->param, strlen(c->param)) != 0 && c->status == 400)
        fail_msg("%s: message '%s' does not start with the field '%s'", name, message, c->param);
    if (strlen(message) > 800) fail_msg("%s: message of %zu bytes", name, strlen(message));
}

static void test_parser_bad_requests(void **state) {
    (void)state;
    for (size_t i = 0; i < N_BAD; i++) {
        char *body = bad_body(i);
        srv_request_limits lim = limits(k_bad[i].vision);
        srv_chat_request r;
        srv_error e;
        int rc = srv_chat_request_parse(body, strlen(body), &lim, &r, &e);
        if (rc == 0) fail_msg("%s: accepted", k_bad[i].name);
        check_error(k_bad[i].name, e.status, e.param[0] ? e.param : NULL, e.message, &k_bad[i]);
        free(body);
    }
}

/* ---- good requests ------------------------------------------------------ */

static void parse_ok(const char *body, bool vision, srv_chat_request *r) {
    srv_request_limits lim = limits(vision);
    srv_error e;
    if (srv_chat_request_parse(body, strlen(body), &lim, r, &e)) fail_msg("refused: %s", e.message);
}

static void test_parser_conversation(void **state) {
    (void)state;
    srv_chat_request r;
    parse_ok("{\"model\":\"" MODEL_ID "\",\"messages\":["
             "{\"role\":\"system\",\"content\":\"Be brief.\"},"
             "{\"role\":\"user\",\"content\":\"one\",\"name\":\"ann\"},{\"role\":\"user\",\"content\":\"two\"},"
             "{\"role\":\"assistant\",\"content\":[{\"type\":\"text\",\"text\":\"A\"},{\"type\":\"text\",\"text\":\"B\"}]},"
             "{\"role\":\"developer\",\"content\":[{\"type\":\"text\",\"text\":\"Be kind.\"}]},"
             "{\"role\":\"user\",\"content\":[{\"type\":\"text\",\"text\":\"p1\"},{\"type\":\"text\",\"text\":\"p2\"}]}]}",
             false, &r);
    assert_string_equal(r.conv.system, "Be brief.\n\nBe kind.");
    assert_int_equal(r.conv.n_turns, 3);
    assert_int_equal(r.conv.turns[0].role, G3_ROLE_USER);
    assert_string_equal(r.conv.turns[0].text, "one\n\ntwo");
    assert_int_equal(r.conv.turns[1].role, G3_ROLE_MODEL);
    assert_string_equal(r.conv.turns[1].text, "A\nB");
    assert_string_equal(r.conv.turns[2].text, "p1\np2");
    assert_false(r.stream);
    assert_null(r.gen.stop);
    assert_int_equal(r.gen.max_new_tokens, 512); /* the context, when not given */
    g3_gen_params d = g3_gen_defaults();
    assert_true(r.gen.sampler.temperature == d.sampler.temperature);
    assert_true(r.gen.sampler.repeat_penalty == d.sampler.repeat_penalty);
    srv_chat_request_free(&r);

    /* the model's display name works too, case-insensitively */
    parse_ok("{\"model\":\"gemma 3 TINY\"," MSGS "}", false, &r);
    srv_chat_request_free(&r);
}

static void test_parser_settings(void **state) {
    (void)state;
    srv_chat_request r;
    parse_ok("{" MSGS ",\"temperature\":0.5,\"top_p\":0.8,\"top_k\":7,\"min_p\":0.1,\"repetition_penalty\":1.2,"
             "\"seed\":42,\"max_tokens\":50,\"max_completion_tokens\":30,\"stop\":[\"x\",\"yz\"],\"n\":1,"
             "\"stream\":true,\"stream_options\":{\"include_usage\":true},\"frequency_penalty\":0,"
             "\"presence_penalty\":0,\"user\":\"u1\",\"tools\":[],\"logprobs\":false,\"response_format\":{\"type\":\"text\"}}",
             false, &r);
    g3_sampler_params *s = &r.gen.sampler;
    assert_true(s->temperature == 0.5f && s->top_p == 0.8f && s->top_k == 7 && s->min_p == 0.1f);
    assert_true(s->repeat_penalty == 1.2f);
    assert_int_equal(s->seed, 42);
    assert_int_equal(r.gen.max_new_tokens, 30);
    assert_non_null(r.gen.stop);
    assert_string_equal(r.gen.stop[0], "x");
    assert_string_equal(r.gen.stop[1], "yz");
    assert_null(r.gen.stop[2]);
    assert_true(r.stream && r.include_usage);
    srv_chat_request_free(&r);

    parse_ok("{" MSGS ",\"max_tokens\":100000,\"top_p\":0,\"stop\":\"END\",\"temperature\":null,\"seed\":null}", false,
             &r);
    assert_int_equal(r.gen.max_new_tokens, 512);   /* clamped to the context */
    assert_int_equal(r.gen.sampler.top_k, 1);      /* top_p 0: the most likely token only */
    assert_true(r.gen.sampler.top_p == 1.0f);
    assert_string_equal(r.gen.stop[0], "END");
    assert_null(r.gen.stop[1]);
    srv_chat_request_free(&r);
}

static void test_parser_image(void **state) {
    (void)state;
    srv_chat_request r;
    parse_ok("{\"messages\":[{\"role\":\"user\",\"content\":[{\"type\":\"text\",\"text\":\"What is\"},"
             "{\"type\":\"image_url\",\"image_url\":{\"url\":\"data:image/png;base64,"
             "iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJAAAADUlEQVR42mP8z8BQDwAEhQGAhKmMIQAAAABJRU5ErkJggg==\","
             "\"detail\":\"low\"}},{\"type\":\"text\",\"text\":\"this?\"}]}]}",
             true, &r);
    assert_int_equal(r.n_images, 1);
    const g3_turn *t = &r.conv.turns[0];
    assert_int_equal(t->n_parts, 3);
    assert_int_equal(t->parts[0].type, G3_PART_TEXT);
    assert_string_equal(t->parts[0].text, "What is");
    assert_int_equal(t->parts[1].type, G3_PART_IMAGE);
    assert_null(t->parts[1].path);
    uint8_t want[128];
    size_t want_len;
    g3_error ge;
    assert_int_equal(g3_base64_decode(k_png_b64, strlen(k_png_b64), want, &want_len, &ge), 0);
    assert_int_equal(t->parts[1].data_len, want_len);
    assert_memory_equal(t->parts[1].data, want, want_len);
    assert_string_equal(t->parts[2].text, "this?");
    srv_chat_request_free(&r);
}

static void test_data_url(void **state) {
    (void)state;
    uint8_t *d;
    size_t n;
    srv_error e;
    char url[256];
    snprintf(url, sizeof url, "data:image/png;base64,%s", k_png_b64);
    assert_int_equal(srv_data_url_decode(url, strlen(url), 1 << 20, "u", &d, &n, &e), 0);
    assert_string_equal(srv_image_format(d, n), "png");
    free(d);
    /* over the size limit */
    assert_int_equal(srv_data_url_decode(url, strlen(url), 16, "u", &d, &n, &e), -1);
    assert_non_null(strstr(e.message, "at most 16"));
    assert_null(d);
    /* case-insensitive scheme and base64 marker */
    snprintf(url, sizeof url, "DATA:image/PNG;BASE64,%s", k_png_b64);
    assert_int_equal(srv_data_url_decode(url, strlen(url), 1 << 20, "u", &d, &n, &e), 0);
    free(d);
    static const uint8_t jpeg[] = {0xFF, 0xD8, 0xFF, 0xE0}, gif[] = "GIF89a", webp[] = "RIFF\0\0\0\0WEBP";
    assert_string_equal(srv_image_format(jpeg, 4), "jpeg");
    assert_string_equal(srv_image_format(gif, 6), "gif");
    assert_string_equal(srv_image_format(webp, 12), "webp");
    assert_null(srv_image_format((const uint8_t *)"hello", 5));
}

/* ---- response shapes ---------------------------------------------------- */

static cJSON *parse_event(const char *ev) {
    assert_true(!strncmp(ev, "data: ", 6));
    cJSON *o = cJSON_Parse(ev + 6);
    assert_non_null(o);
    return o;
}

static void test_response_shapes(void **state) {
    (void)state;
    srv_completion_meta m = {.id = "chatcmpl-abc", .created = 1700000000, .model = "tiny", .include_usage = true};
    srv_usage u = {.prompt = 20, .cached = 7, .completion = 5};
    char *s = srv_completion_json(&m, "Hi \"you\"\n", 9, "stop", &u);
    cJSON *o = cJSON_Parse(s);
    assert_non_null(o);
    assert_string_equal(cJSON_GetObjectItem(o, "object")->valuestring, "chat.completion");
    assert_string_equal(cJSON_GetObjectItem(o, "id")->valuestring, "chatcmpl-abc");
    cJSON *c0 = cJSON_GetArrayItem(cJSON_GetObjectItem(o, "choices"), 0);
    assert_string_equal(cJSON_GetObjectItem(cJSON_GetObjectItem(c0, "message"), "content")->valuestring, "Hi \"you\"\n");
    assert_string_equal(cJSON_GetObjectItem(cJSON_GetObjectItem(c0, "message"), "role")->valuestring, "assistant");
    assert_string_equal(cJSON_GetObjectItem(c0, "finish_reason")->valuestring, "stop");
    cJSON *us = cJSON_GetObjectItem(o, "usage");
    assert_int_equal(cJSON_GetObjectItem(us, "total_tokens")->valueint, 25);
    assert_int_equal(cJSON_GetObjectItem(cJSON_GetObjectItem(us, "prompt_tokens_details"), "cached_tokens")->valueint, 7);
    cJSON_Delete(o);
    free(s);

    s = srv_sse_role(&m);
    o = parse_event(s);
    cJSON *d = cJSON_GetObjectItem(cJSON_GetArrayItem(cJSON_GetObjectItem(o, "choices"), 0), "delta");
    assert_string_equal(cJSON_GetObjectItem(d, "role")->valuestring, "assistant");
    assert_true(cJSON_IsNull(cJSON_GetObjectItem(o, "usage")));
    assert_string_equal(cJSON_GetObjectItem(o, "object")->valuestring, "chat.completion.chunk");
    cJSON_Delete(o);
    free(s);

    s = srv_sse_finish(&m, "length", &u);
    /* finish chunk, usage chunk (no choices), [DONE] */
    char *second = strstr(s + 1, "data: {"), *done = strstr(s, "data: [DONE]\n\n");
    assert_non_null(second);
    assert_non_null(done);
    assert_true(second < done && done[14] == 0);
    *second = 0;
    o = parse_event(s);
    c0 = cJSON_GetArrayItem(cJSON_GetObjectItem(o, "choices"), 0);
    assert_string_equal(cJSON_GetObjectItem(c0, "finish_reason")->valuestring, "length");
    cJSON_Delete(o);
    second[0] = 'd';
    o = parse_event(second);
    assert_int_equal(cJSON_GetArraySize(cJSON_GetObjectItem(o, "choices")), 0);
    assert_int_equal(cJSON_GetObjectItem(cJSON_GetObjectItem(o, "usage"), "completion_tokens")->valueint, 5);
    cJSON_Delete(o);
    free(s);

    m.include_usage = false;
    s = srv_sse_content(&m, "x", 1);
    o = parse_event(s);
    assert_null(cJSON_GetObjectItem(o, "usage")); /* no usage field at all without include_usage */
    cJSON_Delete(o);
    free(s);

    srv_error e;
    srv_fail(&e, 500, "server_error", NULL, NULL, "boom");
    s = srv_sse_error(&m, &e);
    o = parse_event(s);
    assert_string_equal(cJSON_GetObjectItem(cJSON_GetObjectItem(o, "error"), "message")->valuestring, "boom");
    cJSON_Delete(o);
    assert_null(strstr(s, "[DONE]"));
    free(s);

    assert_string_equal(srv_finish_reason(G3_STOP_END_OF_TURN), "stop");
    assert_string_equal(srv_finish_reason(G3_STOP_STRING), "stop");
    assert_string_equal(srv_finish_reason(G3_STOP_CONTEXT_FULL), "length");
    assert_null(srv_finish_reason(G3_STOP_CANCELLED));
}

/* ---- a server on loopback ----------------------------------------------- */

static hc_server g_srv; /* the group's server */

/* The group's kind of server: a 2048-token context, no store (the OpenAI
 * API needs none, and a test must not touch the user's). */
static int start_server(hc_server *s, const char *log_name, const char *const *extra) {
    const char *args[40] = {"-c", "2048", "--no-db"};
    int n = 3;
    for (int i = 0; extra && extra[i] && n < 39; i++) args[n++] = extra[i];
    args[n] = NULL;
    return hc_start_server(s, MODEL, log_name, args, 0);
}

static int connect_to(int port) {
    int fd = hc_connect(port, 0);
    assert_true(fd >= 0);
    return fd;
}

static int send_request(int port, const char *method, const char *path, const char *headers, const char *body) {
    int fd = hc_send_request(port, method, path, headers, body);
    assert_true(fd >= 0);
    return fd;
}

typedef struct response {
    int status;
    char *raw;          /* status line and headers and body */
    char *body;         /* de-chunked */
} response;

static response finish_response(int fd, int timeout_ms) {
    response r = {0};
    r.raw = hc_read_all(fd, timeout_ms / 1000.0, NULL);
    assert_non_null(r.raw);
    close(fd);
    r.status = hc_status(r.raw);
    char *copy = strdup(r.raw); /* hc_body de-chunks in place; raw stays as it came */
    assert_non_null(copy);
    r.body = strdup(hc_body(copy));
    free(copy);
    assert_non_null(r.body);
    return r;
}

static response request(const char *method, const char *path, const char *headers, const char *body) {
    return finish_response(send_request(g_srv.port, method, path, headers, body), 20000);
}

static void response_free(response *r) {
    free(r->raw);
    free(r->body);
}

#define CONTENT_CHUNK "\"delta\":{\"content\":\""
#define JSON_KEY "Content-Type: application/json\r\nAuthorization: Bearer " KEY "\r\n"

static response chat(const char *body) { return request("POST", "/v1/chat/completions", JSON_KEY, body); }

static int group_setup(void **state) {
    (void)state;
    const char *extra[] = {"--api-key", KEY, "--max-body", "65536", "--parallel", "2", "--max-queue", "1",
                           "--ping-interval", "0.02", "--cors", "http://app.example", NULL};
    return start_server(&g_srv, "serve-api.log", extra);
}

static int group_teardown(void **state) {
    (void)state;
    if (g_srv.pid > 0) hc_stop_server(&g_srv, 10.0);
    return 0;
}

static void test_http_bad_requests(void **state) {
    (void)state;
    for (size_t i = 0; i < N_BAD; i++) {
        if (k_bad[i].vision) continue; /* this server has no vision encoder */
        char *body = bad_body(i);
        response r = chat(body);
        cJSON *o = cJSON_Parse(r.body), *err = cJSON_GetObjectItem(o, "error");
        if (!err) fail_msg("%s: no error object in '%s'", k_bad[i].name, r.raw);
        cJSON *param = cJSON_GetObjectItem(err, "param"), *msg = cJSON_GetObjectItem(err, "message");
        assert_non_null(param);
        assert_true(cJSON_IsString(msg));
        assert_true(cJSON_IsString(cJSON_GetObjectItem(err, "type")));
        assert_non_null(cJSON_GetObjectItem(err, "code"));
        check_error(k_bad[i].name, r.status, cJSON_IsString(param) ? param->valuestring : NULL, msg->valuestring,
                    &k_bad[i]);
        cJSON_Delete(o);
        response_free(&r);
        free(body);
    }
}

/* status and error code of a response, checked */
static void expect_error(response *r, int status, const char *code) {
    if (r->status != status) fail_msg("status %d, expected %d: %s", r->status, status, r->raw);
    cJSON *o = cJSON_Parse(r->body);
    cJSON *c = cJSON_GetObjectItem(cJSON_GetObjectItem(o, "error"), "code");
    if (!cJSON_IsString(c) || strcmp(c->valuestring, code) != 0) fail_msg("expected code %s: %s", code, r->raw);
    cJSON_Delete(o);
    response_free(r);
}

static void test_http_refusals(void **state) {
    (void)state;
    const char *ok = "{" MSGS ",\"max_tokens\":2}";
    response r = request("POST", "/v1/chat/completions", "Content-Type: application/json\r\n", ok);
    assert_non_null(strcasestr(r.raw, "WWW-Authenticate: Bearer"));
    expect_error(&r, 401, "invalid_api_key");
    r = request("POST", "/v1/chat/completions", "Content-Type: application/json\r\nAuthorization: Bearer nope\r\n", ok);
    expect_error(&r, 401, "invalid_api_key");
    r = request("GET", "/v1/models", "Authorization: Basic " KEY "\r\n", NULL);
    expect_error(&r, 401, "invalid_api_key");
    r = request("GET", "/v1/models", NULL, NULL); /* the key guards /v1 ... */
    expect_error(&r, 401, "invalid_api_key");
    r = request("GET", "/health", NULL, NULL); /* ... not /health */
    assert_int_equal(r.status, 200);
    response_free(&r);

    r = request("POST", "/v1/chat/completions", "Content-Type: text/plain\r\nAuthorization: Bearer " KEY "\r\n", ok);
    expect_error(&r, 415, "unsupported_media_type");
    r = request("POST", "/v1/chat/completions", "Authorization: Bearer " KEY "\r\n", ok);
    expect_error(&r, 415, "unsupported_media_type");
    r = request("POST", "/v1/chat/completions",
                "Content-Type: application/json; charset=utf-8\r\nAuthorization: Bearer " KEY "\r\n", ok);
    assert_int_equal(r.status, 200);
    response_free(&r);

    r = request("GET", "/v2/anything", NULL, NULL);
    expect_error(&r, 404, "unknown_url");
    r = request("GET", "/v1/chat/completions", "Authorization: Bearer " KEY "\r\n", NULL);
    assert_non_null(strcasestr(r.raw, "\r\nAllow: POST"));
    expect_error(&r, 405, "method_not_allowed");
    r = request("DELETE", "/health", NULL, NULL);
    assert_non_null(strcasestr(r.raw, "\r\nAllow: GET"));
    expect_error(&r, 405, "method_not_allowed");
    r = request("GET", "/v1/models/other-model", "Authorization: Bearer " KEY "\r\n", NULL);
    expect_error(&r, 404, "model_not_found");

    /* a message longer than the context: 400 before anything is generated, streaming or not */
    for (int streaming = 0; streaming < 2; streaming++) {
        char *long_body = malloc(20000);
        assert_non_null(long_body);
        strcpy(long_body, "{\"messages\":[{\"role\":\"user\",\"content\":\"");
        for (int i = 0; i < 3000; i++) strcat(long_body, "word ");
        strcat(long_body, streaming ? "\"}],\"stream\":true}" : "\"}]}");
        r = chat(long_body);
        assert_non_null(strstr(r.body, "the context holds 2048"));
        expect_error(&r, 400, "context_length_exceeded");
        free(long_body);
    }

    /* a body over --max-body: declared (refused before reading it) and chunked */
    char *big = malloc(MAX_BODY + 100);
    assert_non_null(big);
    snprintf(big, 32, "{\"messages\":\"");
    memset(big + strlen(big), 'a', MAX_BODY);
    strcpy(big + MAX_BODY + 13, "\"}");
    r = chat(big);
    expect_error(&r, 413, "request_too_large");
    int fd = connect_to(g_srv.port);
    const char *head = "POST /v1/chat/completions HTTP/1.1\r\nHost: x\r\nConnection: close\r\n" JSON_KEY
                       "Transfer-Encoding: chunked\r\n\r\n";
    hc_send_all(fd, head, strlen(head));
    char chunk_head[32];
    snprintf(chunk_head, sizeof chunk_head, "%zx\r\n", strlen(big));
    hc_send_all(fd, chunk_head, strlen(chunk_head));
    hc_send_all(fd, big, strlen(big));
    hc_send_all(fd, "\r\n0\r\n\r\n", 7);
    r = finish_response(fd, 10000);
    expect_error(&r, 413, "request_too_large");
    free(big);
}

static void test_http_models_health_cors(void **state) {
    (void)state;
    response r = request("GET", "/v1/models", "Authorization: Bearer " KEY "\r\n", NULL);
    assert_int_equal(r.status, 200);
    cJSON *o = cJSON_Parse(r.body);
    assert_string_equal(cJSON_GetObjectItem(o, "object")->valuestring, "list");
    cJSON *m = cJSON_GetArrayItem(cJSON_GetObjectItem(o, "data"), 0);
    assert_string_equal(cJSON_GetObjectItem(m, "id")->valuestring, MODEL_ID);
    assert_string_equal(cJSON_GetObjectItem(m, "object")->valuestring, "model");
    cJSON_Delete(o);
    assert_non_null(strcasestr(r.raw, "Access-Control-Allow-Origin: http://app.example"));
    response_free(&r);
    r = request("GET", "/v1/models/" MODEL_ID, "Authorization: Bearer " KEY "\r\n", NULL);
    assert_int_equal(r.status, 200);
    response_free(&r);

    r = request("GET", "/health", NULL, NULL);
    assert_int_equal(r.status, 200);
    o = cJSON_Parse(r.body);
    assert_string_equal(cJSON_GetObjectItem(o, "status")->valuestring, "ok");
    assert_int_equal(cJSON_GetObjectItem(o, "slots")->valueint, 2);
    assert_int_equal(cJSON_GetObjectItem(o, "n_ctx")->valueint, 2048);
    cJSON_Delete(o);
    response_free(&r);

    /* a CORS preflight needs no key */
    r = request("OPTIONS", "/v1/chat/completions",
                "Origin: http://app.example\r\nAccess-Control-Request-Method: POST\r\n", NULL);
    assert_int_equal(r.status, 204);
    assert_non_null(strcasestr(r.raw, "Access-Control-Allow-Origin: http://app.example"));
    assert_non_null(strcasestr(r.raw, "Access-Control-Allow-Headers: Authorization, Content-Type"));
    response_free(&r);
}

/* The text of an SSE stream's content deltas; checks the chunks' shape.
 * *finish gets the finish_reason (static string or ""). */
static char *stream_text(const char *sse, const char **finish, cJSON **usage) {
    char *text = calloc(1, strlen(sse) + 1), id[64] = "";
    assert_non_null(text);
    *finish = "";
    if (usage) *usage = NULL;
    int n = 0;
    bool done = false;
    for (const char *p = sse; (p = strstr(p, "data: ")); n++) {
        const char *end = strstr(p, "\n\n");
        assert_non_null(end);
        assert_false(done); /* nothing after [DONE] */
        if (!strncmp(p, "data: [DONE]", 12)) {
            done = true;
            p = end + 2;
            continue;
        }
        char *line = strndup(p + 6, (size_t)(end - p - 6));
        cJSON *o = cJSON_Parse(line);
        if (!o) fail_msg("chunk %d is not JSON: %s", n, line);
        free(line);
        assert_string_equal(cJSON_GetObjectItem(o, "object")->valuestring, "chat.completion.chunk");
        const char *cid = cJSON_GetObjectItem(o, "id")->valuestring;
        if (!id[0]) snprintf(id, sizeof id, "%s", cid);
        assert_string_equal(cid, id); /* the same id on every chunk */
        cJSON *ch = cJSON_GetObjectItem(o, "choices");
        if (cJSON_GetArraySize(ch) == 0) {
            assert_non_null(usage);
            *usage = cJSON_Duplicate(cJSON_GetObjectItem(o, "usage"), true);
        } else {
            cJSON *c0 = cJSON_GetArrayItem(ch, 0), *delta = cJSON_GetObjectItem(c0, "delta");
            cJSON *role = cJSON_GetObjectItem(delta, "role"), *content = cJSON_GetObjectItem(delta, "content");
            if (n == 0) assert_string_equal(role->valuestring, "assistant"); /* the first delta carries the role */
            else assert_null(role);
            if (cJSON_IsString(content)) strcat(text, content->valuestring);
            cJSON *fr = cJSON_GetObjectItem(c0, "finish_reason");
            if (cJSON_IsString(fr)) *finish = strcmp(fr->valuestring, "stop") ? "length" : "stop";
            else assert_true(cJSON_IsNull(fr));
        }
        cJSON_Delete(o);
        p = end + 2;
    }
    assert_true(done);
    return text;
}

static void test_http_completion_and_stream(void **state) {
    (void)state;
    response r = chat("{\"model\":\"" MODEL_ID "\",\"messages\":[{\"role\":\"user\",\"content\":\"Hello there\"}],"
                      "\"max_tokens\":12,\"temperature\":0}");
    assert_int_equal(r.status, 200);
    assert_non_null(strcasestr(r.raw, "Content-Type: application/json"));
    cJSON *o = cJSON_Parse(r.body);
    assert_string_equal(cJSON_GetObjectItem(o, "object")->valuestring, "chat.completion");
    assert_true(!strncmp(cJSON_GetObjectItem(o, "id")->valuestring, "chatcmpl-", 9));
    assert_string_equal(cJSON_GetObjectItem(o, "model")->valuestring, MODEL_ID);
    cJSON *c0 = cJSON_GetArrayItem(cJSON_GetObjectItem(o, "choices"), 0);
    char *plain = strdup(cJSON_GetObjectItem(cJSON_GetObjectItem(c0, "message"), "content")->valuestring);
    assert_string_equal(cJSON_GetObjectItem(c0, "finish_reason")->valuestring, "length");
    cJSON *u = cJSON_GetObjectItem(o, "usage");
    assert_int_equal(cJSON_GetObjectItem(u, "completion_tokens")->valueint, 12);
    int prompt = cJSON_GetObjectItem(u, "prompt_tokens")->valueint;
    assert_true(prompt > 5);
    assert_int_equal(cJSON_GetObjectItem(u, "total_tokens")->valueint, prompt + 12);
    cJSON_Delete(o);
    response_free(&r);

    r = chat("{\"messages\":[{\"role\":\"user\",\"content\":\"Hello there\"}],\"max_tokens\":12,\"temperature\":0,"
             "\"stream\":true,\"stream_options\":{\"include_usage\":true}}");
    assert_int_equal(r.status, 200);
    assert_non_null(strcasestr(r.raw, "Content-Type: text/event-stream"));
    const char *finish;
    cJSON *usage;
    char *streamed = stream_text(r.body, &finish, &usage);
    assert_string_equal(streamed, plain); /* temperature 0: the same answer */
    assert_string_equal(finish, "length");
    assert_non_null(usage);
    assert_int_equal(cJSON_GetObjectItem(usage, "completion_tokens")->valueint, 12);
    assert_int_equal(cJSON_GetObjectItem(usage, "prompt_tokens")->valueint, prompt);
    /* the same prompt again: all but its last token come from the cache */
    assert_true(cJSON_GetObjectItem(cJSON_GetObjectItem(usage, "prompt_tokens_details"), "cached_tokens")->valueint >=
                prompt - 1);
    cJSON_Delete(usage);
    free(streamed);
    response_free(&r);

    /* a stop string taken from the answer: cut there, finish_reason "stop" */
    size_t len = strlen(plain);
    assert_true(len >= 4);
    char stop[8] = {0}, *body = malloc(4096);
    size_t at = len / 2;
    while (at < len && ((unsigned char)plain[at] & 0xC0) == 0x80) at++; /* a character boundary */
    snprintf(stop, sizeof stop, "%.*s", (int)(((unsigned char)plain[at] < 0x80) ? 1 : 2), plain + at);
    cJSON *js = cJSON_CreateString(stop);
    char *stop_json = cJSON_PrintUnformatted(js);
    snprintf(body, 4096, "{\"messages\":[{\"role\":\"user\",\"content\":\"Hello there\"}],\"max_tokens\":12,"
             "\"temperature\":0,\"stop\":[%s]}", stop_json);
    r = chat(body);
    assert_int_equal(r.status, 200);
    o = cJSON_Parse(r.body);
    c0 = cJSON_GetArrayItem(cJSON_GetObjectItem(o, "choices"), 0);
    const char *cut = cJSON_GetObjectItem(cJSON_GetObjectItem(c0, "message"), "content")->valuestring;
    assert_string_equal(cJSON_GetObjectItem(c0, "finish_reason")->valuestring, "stop");
    const char *first = strstr(plain, stop);
    assert_non_null(first);
    assert_int_equal(strlen(cut), (size_t)(first - plain)); /* the text before the stop string */
    assert_memory_equal(cut, plain, strlen(cut));
    cJSON_Delete(o);
    response_free(&r);
    cJSON_Delete(js);
    free(stop_json);
    free(body);
    free(plain);
}

/* /metrics as text, and one value from it. */
static double metric(const char *name) {
    response r = request("GET", "/metrics", NULL, NULL);
    assert_int_equal(r.status, 200);
    char key[160];
    snprintf(key, sizeof key, "\n%s ", name);
    const char *at = strstr(r.body, key);
    double v = at ? atof(at + strlen(key)) : -1;
    response_free(&r);
    return v;
}

/* Waits up to ms for busy slots to reach 0; the time it took, or -1. */
static int wait_idle(int ms) {
    for (int t = 0; t <= ms; t += 20) {
        if (metric("gemma_chat_busy_slots") == 0) return t;
        usleep(20 * 1000);
    }
    return -1;
}

/* 2000 tokens on the golden tiny model: 0.1-1.5 s of generation, by the
 * machine; greedy without a repetition penalty loops without ever reaching
 * <end_of_turn>. */
#define LONG_REQ(stream) "{\"messages\":[{\"role\":\"user\",\"content\":\"Hello\"}],\"max_tokens\":2000," \
                         "\"temperature\":0,\"repetition_penalty\":1,\"stream\":" stream "}"

static int open_long_stream(void) {
    int fd = send_request(g_srv.port, "POST", "/v1/chat/completions", JSON_KEY, LONG_REQ("true"));
    return fd;
}

static bool read_until(int fd, const char *what, int ms) { return hc_read_until(fd, what, ms / 1000.0); }

static void test_http_cancel(void **state) {
    (void)state;
    assert_true(wait_idle(5000) >= 0);
    double cancelled = metric("gemma_chat_engine_requests_total{result=\"cancelled\"}");
    double generated = metric("gemma_chat_generated_tokens_total");
    /* streaming: the client reads its first content and leaves */
    int fd = open_long_stream();
    assert_true(read_until(fd, CONTENT_CHUNK, 5000));
    assert_true(read_until(fd, CONTENT_CHUNK, 5000));
    close(fd);
    int took = wait_idle(1000);
    if (took < 0) fail_msg("busy slots not back to 0 within a second of the client leaving");
    assert_int_equal(metric("gemma_chat_engine_requests_total{result=\"cancelled\"}"), cancelled + 1);
    assert_true(metric("gemma_chat_generated_tokens_total") < generated + 1000); /* not the 2000 asked for */

    /* not streaming: the client leaves while its answer is made */
    fd = send_request(g_srv.port, "POST", "/v1/chat/completions", JSON_KEY, LONG_REQ("false"));
    for (int i = 0; i < 100 && metric("gemma_chat_busy_slots") < 1; i++) usleep(10 * 1000);
    assert_true(metric("gemma_chat_busy_slots") >= 1);
    close(fd);
    if (wait_idle(1000) < 0) fail_msg("busy slots not back to 0 within a second of the client leaving");
    assert_int_equal(metric("gemma_chat_engine_requests_total{result=\"cancelled\"}"), cancelled + 2);
    assert_true(metric("gemma_chat_http_requests_total{route=\"/v1/chat/completions\",status=\"499\"}") >= 1);
}

static void test_http_queue_full_and_ping(void **state) {
    (void)state;
    assert_true(wait_idle(5000) >= 0);
    /* two slots busy, one request queued (--max-queue 1): the next is a 429 */
    int a = open_long_stream(); /* each admitted before the next comes: the queue holds one */
    assert_true(read_until(a, CONTENT_CHUNK, 5000));
    int b = open_long_stream();
    assert_true(read_until(b, CONTENT_CHUNK, 5000));
    int c = open_long_stream();
    assert_true(read_until(c, "\"role\":\"assistant\"", 5000)); /* accepted: the role chunk comes at once */
    for (int i = 0; i < 100 && metric("gemma_chat_queue_length") < 1; i++) usleep(10 * 1000);
    assert_int_equal(metric("gemma_chat_queue_length"), 1);
    response r = chat(LONG_REQ("false"));
    assert_non_null(strcasestr(r.raw, "Retry-After:"));
    expect_error(&r, 429, "queue_full");
    /* the queued stream is kept alive by ": ping" comments (--ping-interval
     * 0.02: the two streams ahead of it take a tenth of a second or two on
     * a fast machine, and the queued one must see a ping before then) */
    assert_true(read_until(c, ": ping\n\n", 3000));
    close(a);
    close(b);
    close(c);
    if (wait_idle(1000) < 0) fail_msg("busy slots not back to 0 after the clients left");
    assert_int_equal(metric("gemma_chat_queue_length"), 0);
    assert_true(metric("gemma_chat_http_requests_total{route=\"/v1/chat/completions\",status=\"429\"}") >= 1);
    assert_true(metric("gemma_chat_http_requests_total{route=\"/v1/chat/completions\",status=\"200\"}") >= 3);
    assert_true(metric("gemma_chat_http_requests_total{route=\"other\",status=\"404\"}") >= 1);
    assert_true(metric("gemma_chat_prompt_tokens_total") > 0);
    assert_true(metric("gemma_chat_decode_tokens_per_second") > 0);
}

/* A second server, without --cors or a key: CORS is off by default; SIGTERM
 * ends a running stream with an error chunk and exits 0. */
static void test_http_shutdown(void **state) {
    (void)state;
    hc_server s = {0};
    assert_int_equal(start_server(&s, "serve-shutdown.log", NULL), 0);
    int fd = send_request(s.port, "OPTIONS", "/v1/chat/completions", "Origin: http://app.example\r\n", NULL);
    response r = finish_response(fd, 5000);
    assert_int_equal(r.status, 405);
    assert_null(strcasestr(r.raw, "Access-Control-Allow-Origin"));
    response_free(&r);
    fd = send_request(s.port, "POST", "/v1/chat/completions", "Content-Type: application/json\r\n", LONG_REQ("true"));
    assert_true(read_until(fd, CONTENT_CHUNK, 5000));
    kill(s.pid, SIGTERM);
    r = finish_response(fd, 10000);
    assert_non_null(strstr(r.raw, "\"error\":{"));
    assert_non_null(strstr(r.raw, "shutting down"));
    assert_null(strstr(r.raw, "[DONE]"));
    response_free(&r);
    int st = -1;
    for (int i = 0; i < 200 && waitpid(s.pid, &st, WNOHANG) != s.pid; i++) usleep(50 * 1000);
    assert_true(WIFEXITED(st));
    assert_int_equal(WEXITSTATUS(st), 0);
    char *log = (char *)tu_read_file(s.log, NULL);
    assert_non_null(strstr(log, "gemma-chat: stopped"));
    free(log);
}

int main(void) {
    const struct CMUnitTest unit[] = {
        cmocka_unit_test(test_parser_bad_requests), cmocka_unit_test(test_parser_conversation),
        cmocka_unit_test(test_parser_settings),     cmocka_unit_test(test_parser_image),
        cmocka_unit_test(test_data_url),            cmocka_unit_test(test_response_shapes),
    };
    const struct CMUnitTest http[] = {
        cmocka_unit_test(test_http_bad_requests),          cmocka_unit_test(test_http_refusals),
        cmocka_unit_test(test_http_models_health_cors),    cmocka_unit_test(test_http_completion_and_stream),
        cmocka_unit_test(test_http_cancel),                cmocka_unit_test(test_http_queue_full_and_ping),
        cmocka_unit_test(test_http_shutdown),
    };
    signal(SIGPIPE, SIG_IGN);
    int failed = cmocka_run_group_tests_name("server_api_parser", unit, NULL, NULL);
    failed += cmocka_run_group_tests_name("server_api_http", http, group_setup, group_teardown);
    return failed;
}
