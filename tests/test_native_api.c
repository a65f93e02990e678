/* test_native_api: the native conversation API of `gemma-chat serve`
 * (/api/...) over raw HTTP, against the golden tiny model on a store in
 * G3_TEST_TMP: CRUD, list order, search and cursor paging; messages as JSON,
 * streamed (token events add up to the done message and the stored one) and
 * as multipart with an image and a document, and with a video (its frames
 * again after a restart); regenerate, edit, stop in the
 * middle of a stream; one generation per conversation (409); eviction with
 * --parallel 1 (same answers as dedicated slots; the rebuild's and the
 * reuse's cached_tokens); overflow on a small context (dropped_turns, the
 * system prompt kept); SIGKILL and restart on the same database (idle and in
 * the middle of a stream: integrity_check ok, no half pair); the bad-request
 * table (status, the field in the message, the conversation unchanged); the
 * multipart parser on its own. Settings use top_k = 1 (greedy). */
#include <cjson/cJSON.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
// clang-format off
#include <cmocka.h>
// clang-format on
#include <math.h>
#include <sys/stat.h>

#include "base/base64.h"
#include "gemma3_store.h"
#include "http_client.h"
#include "pdf_fixture.h"
#include "server/multipart.h"
#include "server/native_request.h"
#include "video_clip.h"

#define MODEL G3_GOLDEN_DIR "/tiny-gemma3/models/g3-1b-s1234-q8_0.gguf"
#define MMPROJ G3_GOLDEN_DIR "/tiny-gemma3/models/mmproj-g3-s99-f32.gguf"
#define IMAGE G3_GOLDEN_DIR "/tiny-gemma3/vision/img1_64x64.png"

/* ---- HTTP ------------------------------------------------------------------ */

typedef struct resp {
    int status;
    char *raw;      /* the whole response */
    char *body;     /* into raw, de-chunked */
    size_t body_len;
    cJSON *json;    /* the body parsed, or NULL */
} resp;

static void resp_free(resp *r) {
    free(r->raw);
    cJSON_Delete(r->json);
    memset(r, 0, sizeof *r);
}

static int send_req(int port, const char *method, const char *path, const char *ctype, const void *body,
                    size_t len) {
    int fd = hc_connect(port, 0);
    if (fd < 0) return -1;
    char head[2048], hdr[256] = "";
    if (ctype) snprintf(hdr, sizeof hdr, "Content-Type: %s\r\n", ctype);
    int n = hc_head(head, sizeof head, method, path, hdr, len, body != NULL);
    hc_send_all(fd, head, (size_t)n);
    if (body && len) hc_send_all(fd, body, len);
    return fd;
}

/* The body length of a raw response after hc_body (binary bodies: Content-Length). */
static size_t body_length(const char *raw, size_t raw_len, const char *body) {
    const char *cl = strcasestr(raw, "\r\nContent-Length:");
    if (cl && cl < body) return (size_t)strtoull(cl + 17, NULL, 10);
    return raw_len - (size_t)(body - raw) < strlen(body) ? raw_len - (size_t)(body - raw) : strlen(body);
}

static resp http(int port, const char *method, const char *path, const char *ctype, const void *body, size_t len) {
    resp r = {0};
    int fd = send_req(port, method, path, ctype, body, len);
    assert_true(fd >= 0);
    size_t cap = 1 << 16, n = 0;
    r.raw = malloc(cap);
    assert_non_null(r.raw);
    double end = hc_now() + 120;
    for (;;) {
        struct pollfd p = {.fd = fd, .events = POLLIN};
        if (hc_now() > end || poll(&p, 1, 1000) < 0) break;
        if (!p.revents) continue;
        if (cap - n < 8192) {
            r.raw = realloc(r.raw, cap *= 2);
            assert_non_null(r.raw);
        }
        ssize_t got = recv(fd, r.raw + n, cap - n - 1, 0);
        if (got <= 0) break;
        n += (size_t)got;
    }
    close(fd);
    r.raw[n] = 0;
    r.status = hc_status(r.raw);
    r.body = hc_body(r.raw);
    r.body_len = body_length(r.raw, n, r.body);
    r.json = cJSON_ParseWithLength(r.body, r.body_len);
    return r;
}

static resp get(int port, const char *path) { return http(port, "GET", path, NULL, NULL, 0); }

static resp post_json(int port, const char *path, const char *json) {
    return http(port, "POST", path, "application/json", json, json ? strlen(json) : 0);
}

static const char *header_of(const resp *r, const char *name, char *out, size_t n) {
    char key[96];
    snprintf(key, sizeof key, "\r\n%s:", name);
    const char *h = strcasestr(r->raw, key);
    if (!h || h > r->body) return NULL;
    h += strlen(key);
    while (*h == ' ') h++;
    size_t k = strcspn(h, "\r\n");
    snprintf(out, n, "%.*s", (int)k, h);
    return out;
}

static double num(const cJSON *o, const char *path) {
    /* "a.b.c" */
    char buf[128];
    snprintf(buf, sizeof buf, "%s", path);
    const cJSON *v = o;
    for (char *tok = strtok(buf, "."); tok && v; tok = strtok(NULL, ".")) v = cJSON_GetObjectItemCaseSensitive(v, tok);
    if (!cJSON_IsNumber(v)) fail_msg("%s is not a number", path);
    return v->valuedouble;
}

static const char *str(const cJSON *o, const char *path) {
    char buf[128];
    snprintf(buf, sizeof buf, "%s", path);
    const cJSON *v = o;
    for (char *tok = strtok(buf, "."); tok && v; tok = strtok(NULL, ".")) v = cJSON_GetObjectItemCaseSensitive(v, tok);
    if (!cJSON_IsString(v)) fail_msg("%s is not a string", path);
    return v->valuestring;
}

/* The error's message, asserting the status and that it mentions `words`. */
static void expect_error(resp *r, int status, const char *words) {
    if (r->status != status) fail_msg("expected %d, got %d: %s", status, r->status, r->body);
    assert_non_null(r->json);
    const char *msg = str(r->json, "error.message");
    if (words && !strstr(msg, words)) fail_msg("'%s' not in the message '%s'", words, msg);
    resp_free(r);
}

/* ---- SSE -------------------------------------------------------------------- */

typedef struct sse {
    char *tokens;        /* the token events' texts joined */
    cJSON *done;         /* the done event's object, or NULL */
    cJSON *error;        /* the error event's object, or NULL */
    int n_tokens, n_pings;
} sse;

static void sse_free(sse *s) {
    free(s->tokens);
    cJSON_Delete(s->done);
    cJSON_Delete(s->error);
}

static sse parse_sse(const char *body) {
    sse s = {.tokens = calloc(1, 1)};
    size_t tl = 0;
    const char *p = body;
    while (*p) {
        const char *end = strstr(p, "\n\n");
        size_t n = end ? (size_t)(end - p) : strlen(p);
        char *block = strndup(p, n);
        if (!strncmp(block, ": ping", 6)) s.n_pings++;
        const char *ev = strstr(block, "event: "), *data = strstr(block, "data: ");
        if (ev && data) {
            cJSON *o = cJSON_Parse(data + 6);
            assert_non_null(o);
            if (!strncmp(ev + 7, "token", 5)) {
                const char *t = str(o, "text");
                s.tokens = realloc(s.tokens, tl + strlen(t) + 1);
                memcpy(s.tokens + tl, t, strlen(t) + 1);
                tl += strlen(t);
                s.n_tokens++;
                cJSON_Delete(o);
            } else if (!strncmp(ev + 7, "done", 4)) {
                s.done = o;
            } else {
                s.error = o;
            }
        }
        free(block);
        p += n;
        while (*p == '\n') p++;
    }
    return s;
}

/* ---- servers and conversations ---------------------------------------------- */

static void db_path(const char *name, char *out, size_t n) {
    snprintf(out, n, "%s/native-%s.db", G3_TEST_TMP, name);
    char side[600];
    unlink(out);
    snprintf(side, sizeof side, "%s-wal", out);
    unlink(side);
    snprintf(side, sizeof side, "%s-shm", out);
    unlink(side);
}

/* Servers started by the tests, killed by the teardown when a failed test left one. */
static pid_t g_pids[64];
static int g_n_pids;

static int kill_leftovers(void **state) {
    (void)state;
    for (int i = 0; i < g_n_pids; i++)
        if (g_pids[i] > 0 && waitpid(g_pids[i], NULL, WNOHANG) == 0) { /* still our running child */
            kill(g_pids[i], SIGKILL);
            waitpid(g_pids[i], NULL, 0);
        }
    g_n_pids = 0;
    return 0;
}

static void start(hc_server *s, const char *log, const char *db, const char *const *more) {
    const char *extra[24] = {"--db", db};
    int n = 2;
    for (int i = 0; more && more[i]; i++) extra[n++] = more[i];
    extra[n] = NULL;
    /* A log left by an earlier run could be read (its port, its "serving")
     * before the new server truncates it. */
    char old[600];
    snprintf(old, sizeof old, "%s/%s", G3_TEST_TMP, log);
    unlink(old);
    if (hc_start_server(s, MODEL, log, extra, 0)) {
        char *text = (char *)tu_read_file(s->log, NULL);
        fail_msg("serve did not start: %s", text ? text : "(no log)");
    }
    if (g_n_pids < 64) g_pids[g_n_pids++] = s->pid;
}

/* A new conversation; returns its id. */
static int64_t create(int port, const char *json) {
    resp r = post_json(port, "/api/conversations", json);
    if (r.status != 201) fail_msg("create: %d %s", r.status, r.body);
    int64_t id = (int64_t)num(r.json, "id");
    resp_free(&r);
    return id;
}

/* POSTs a message (JSON, not streamed); returns the answer object (owned). */
static cJSON *say(int port, int64_t id, const char *text) {
    char path[96], *body = NULL;
    cJSON *o = cJSON_CreateObject();
    cJSON_AddStringToObject(o, "content", text);
    body = cJSON_PrintUnformatted(o);
    cJSON_Delete(o);
    snprintf(path, sizeof path, "/api/conversations/%lld/messages", (long long)id);
    resp r = post_json(port, path, body);
    free(body);
    if (r.status != 200) fail_msg("message: %d %s", r.status, r.body);
    cJSON *j = r.json;
    r.json = NULL;
    resp_free(&r);
    return j;
}

static cJSON *conv_get(int port, int64_t id) {
    char path[64];
    snprintf(path, sizeof path, "/api/conversations/%lld", (long long)id);
    resp r = get(port, path);
    if (r.status != 200) fail_msg("get: %d %s", r.status, r.body);
    cJSON *j = r.json;
    r.json = NULL;
    resp_free(&r);
    return j;
}

static char *export_json(int port, int64_t id) {
    char path[96];
    snprintf(path, sizeof path, "/api/conversations/%lld/export?format=json", (long long)id);
    resp r = get(port, path);
    assert_int_equal(r.status, 200);
    char *text = strdup(r.body);
    resp_free(&r);
    return text;
}

static int n_messages(const cJSON *conv) {
    return cJSON_GetArraySize(cJSON_GetObjectItemCaseSensitive(conv, "messages"));
}

static const cJSON *message(const cJSON *conv, int i) {
    const cJSON *m = cJSON_GetObjectItemCaseSensitive(conv, "messages");
    return cJSON_GetArrayItem(m, i < 0 ? cJSON_GetArraySize(m) + i : i);
}

#define GREEDY "\"settings\":{\"top_k\":1,\"max_tokens\":100}"

/* ---- CRUD, list, search, paging ----------------------------------------------- */

static void test_crud_list_paging(void **state) {
    (void)state;
    char db[512];
    db_path("crud", db, sizeof db);
    hc_server s = {0};
    start(&s, "native-crud.log", db, NULL);
    int64_t a = create(s.port, "{\"title\":\"alpha one\"," GREEDY "}");
    int64_t b = create(s.port, "{\"title\":\"beta two\"}");
    int64_t c = create(s.port, "{\"title\":\"alpha three\",\"preset\":\"tutor\"}");
    assert_true(a < b && b < c);

    /* The preset filled the system prompt. */
    cJSON *cc = conv_get(s.port, c);
    assert_string_equal(str(cc, "preset"), "tutor");
    assert_true(strlen(str(cc, "system")) > 20);
    assert_int_equal((int)num(cc, "settings.max_tokens"), 700);
    cJSON_Delete(cc);

    /* Newest first; search by title; paging with next_before. */
    resp r = get(s.port, "/api/conversations");
    assert_int_equal(r.status, 200);
    cJSON *list = cJSON_GetObjectItemCaseSensitive(r.json, "conversations");
    assert_int_equal(cJSON_GetArraySize(list), 3);
    assert_int_equal((int64_t)num(cJSON_GetArrayItem(list, 0), "id"), c);
    assert_int_equal((int64_t)num(cJSON_GetArrayItem(list, 2), "id"), a);
    assert_true(cJSON_IsNull(cJSON_GetObjectItemCaseSensitive(r.json, "next_before")));
    assert_int_equal((int)num(cJSON_GetArrayItem(list, 0), "n_messages"), 0);
    resp_free(&r);
    r = get(s.port, "/api/conversations?q=alpha");
    list = cJSON_GetObjectItemCaseSensitive(r.json, "conversations");
    assert_int_equal(cJSON_GetArraySize(list), 2);
    assert_int_equal((int64_t)num(cJSON_GetArrayItem(list, 0), "id"), c);
    assert_int_equal((int64_t)num(cJSON_GetArrayItem(list, 1), "id"), a);
    resp_free(&r);
    r = get(s.port, "/api/conversations?limit=2");
    list = cJSON_GetObjectItemCaseSensitive(r.json, "conversations");
    assert_int_equal(cJSON_GetArraySize(list), 2);
    char path[256];
    snprintf(path, sizeof path, "/api/conversations?limit=2&before=%s", str(r.json, "next_before"));
    resp_free(&r);
    r = get(s.port, path);
    list = cJSON_GetObjectItemCaseSensitive(r.json, "conversations");
    assert_int_equal(cJSON_GetArraySize(list), 1);
    assert_int_equal((int64_t)num(cJSON_GetArrayItem(list, 0), "id"), a);
    resp_free(&r);

    /* PATCH: title, and settings merged onto the stored ones. */
    snprintf(path, sizeof path, "/api/conversations/%lld", (long long)a);
    const char *patch = "{\"title\":\"renamed\",\"settings\":{\"temperature\":1.5}}";
    r = http(s.port, "PATCH", path, "application/json", patch, strlen(patch));
    assert_int_equal(r.status, 200);
    assert_string_equal(str(r.json, "title"), "renamed");
    assert_true(fabs(num(r.json, "settings.temperature") - 1.5) < 1e-6);
    assert_int_equal((int)num(r.json, "settings.top_k"), 1);
    assert_int_equal((int)num(r.json, "settings.max_tokens"), 100);
    resp_free(&r);
    /* Now updated most recently: first in the list. */
    r = get(s.port, "/api/conversations");
    assert_int_equal((int64_t)num(cJSON_GetArrayItem(cJSON_GetObjectItemCaseSensitive(r.json, "conversations"), 0),
                                  "id"), a);
    resp_free(&r);

    /* DELETE, then 404. */
    r = http(s.port, "DELETE", path, NULL, NULL, 0);
    assert_int_equal(r.status, 204);
    resp_free(&r);
    r = get(s.port, path);
    expect_error(&r, 404, NULL);

    /* Presets and info. */
    r = get(s.port, "/api/presets");
    assert_int_equal(r.status, 200);
    assert_int_equal(cJSON_GetArraySize(cJSON_GetObjectItemCaseSensitive(r.json, "presets")), 7);
    assert_int_equal((int)num(r.json, "settings.max_tokens.max"), 2000);
    assert_true(fabs(num(r.json, "settings.repetition_penalty.default") - 1.1) < 1e-9);
    resp_free(&r);
    r = get(s.port, "/api/info");
    assert_int_equal(r.status, 200);
    assert_int_equal((int)num(r.json, "n_ctx"), 1024);
    assert_true(cJSON_IsFalse(cJSON_GetObjectItemCaseSensitive(r.json, "vision")));
    assert_string_equal(str(r.json, "store"), db);
    resp_free(&r);
    assert_int_equal(hc_stop_server(&s, 20), 0);

    /* --no-db: the conversation routes are 404 with a reason; the API key applies to /api. */
    const char *nodb[] = {"--no-db", "--api-key", "sekrit", NULL};
    const char *extra[] = {nodb[0], nodb[1], nodb[2], NULL};
    unlink(G3_TEST_TMP "/native-nodb.log"); /* see start() */
    assert_int_equal(hc_start_server(&s, MODEL, "native-nodb.log", extra, 0), 0);
    r = get(s.port, "/api/presets");
    expect_error(&r, 401, "API key");
    int fd = hc_send_request(s.port, "GET", "/api/conversations", "Authorization: Bearer sekrit\r\n", NULL);
    char *raw = hc_read_all(fd, 30, NULL);
    close(fd);
    assert_int_equal(hc_status(raw), 404);
    assert_non_null(strstr(raw, "without a conversation store"));
    free(raw);
    fd = hc_send_request(s.port, "GET", "/api/info", "Authorization: Bearer sekrit\r\n", NULL);
    raw = hc_read_all(fd, 30, NULL);
    close(fd);
    assert_int_equal(hc_status(raw), 200);
    assert_non_null(strstr(raw, "\"store\":null"));
    free(raw);
    assert_int_equal(hc_stop_server(&s, 20), 0);
}

/* ---- messages, stream, regenerate, edit, export --------------------------------- */

static void test_messages(void **state) {
    (void)state;
    char db[512];
    db_path("messages", db, sizeof db);
    hc_server s = {0};
    start(&s, "native-messages.log", db, NULL);
    int64_t id = create(s.port, "{\"system\":\"You are terse.\"," GREEDY "}");

    cJSON *a1 = say(s.port, id, "Hello there");
    assert_string_equal(str(a1, "message.role"), "assistant");
    assert_string_equal(str(a1, "user_message.content"), "Hello there");
    assert_true(strlen(str(a1, "message.content")) > 0);
    assert_true(num(a1, "usage.prompt_tokens") > 0);
    assert_true(num(a1, "usage.completion_tokens") > 0);
    assert_int_equal((int)num(a1, "n_ctx"), 1024);
    assert_int_equal((int64_t)num(a1, "conversation.id"), id);
    assert_string_equal(str(a1, "conversation.title"), "Hello there"); /* automatic from the first message */
    assert_non_null(cJSON_GetObjectItemCaseSensitive(a1, "timings"));
    assert_non_null(cJSON_GetObjectItemCaseSensitive(a1, "finish_reason"));

    /* Streamed: the token events add up to the done message, which is the stored one. */
    char path[128];
    snprintf(path, sizeof path, "/api/conversations/%lld/messages", (long long)id);
    resp r = post_json(s.port, path, "{\"content\":\"Tell me more\",\"stream\":true}");
    assert_int_equal(r.status, 200);
    assert_non_null(strstr(r.raw, "text/event-stream"));
    sse ev = parse_sse(r.body);
    resp_free(&r);
    assert_non_null(ev.done);
    assert_null(ev.error);
    assert_true(ev.n_tokens > 0);
    assert_string_equal(ev.tokens, str(ev.done, "message.content"));
    /* A followed by A: the slot's cache is reused. */
    assert_true(num(ev.done, "usage.cached_tokens") > 0);
    cJSON *conv = conv_get(s.port, id);
    assert_int_equal(n_messages(conv), 4);
    assert_string_equal(str(message(conv, 3), "content"), ev.tokens);
    assert_string_equal(str(message(conv, 2), "content"), "Tell me more");
    const char *answer2 = strdup(ev.tokens);
    sse_free(&ev);
    cJSON_Delete(conv);

    /* Regenerate: the last answer is replaced (greedy: the same text, a new id). */
    int64_t old_id = (int64_t)num(message(conv = conv_get(s.port, id), 3), "id");
    cJSON_Delete(conv);
    snprintf(path, sizeof path, "/api/conversations/%lld/regenerate", (long long)id);
    r = http(s.port, "POST", path, NULL, NULL, 0);
    assert_int_equal(r.status, 200);
    assert_string_equal(str(r.json, "message.content"), answer2);
    resp_free(&r);
    conv = conv_get(s.port, id);
    assert_int_equal(n_messages(conv), 4);
    assert_true((int64_t)num(message(conv, 3), "id") != old_id);
    cJSON_Delete(conv);

    /* Edit: the last user message is replaced and answered again. */
    snprintf(path, sizeof path, "/api/conversations/%lld/edit", (long long)id);
    r = post_json(s.port, path, "{\"content\":\"Something else\",\"stream\":true}");
    assert_int_equal(r.status, 200);
    ev = parse_sse(r.body);
    resp_free(&r);
    assert_non_null(ev.done);
    assert_string_equal(str(ev.done, "user_message.content"), "Something else");
    conv = conv_get(s.port, id);
    assert_int_equal(n_messages(conv), 4);
    assert_string_equal(str(message(conv, 2), "content"), "Something else");
    assert_string_equal(str(message(conv, 3), "content"), ev.tokens);
    assert_string_equal(str(message(conv, 0), "content"), "Hello there");
    sse_free(&ev);
    cJSON_Delete(conv);
    free((void *)answer2);
    cJSON_Delete(a1);

    /* Export: JSON and Markdown, as attachments named from the title. */
    snprintf(path, sizeof path, "/api/conversations/%lld/export?format=md", (long long)id);
    r = get(s.port, path);
    assert_int_equal(r.status, 200);
    char h[256];
    assert_non_null(header_of(&r, "Content-Disposition", h, sizeof h));
    assert_string_equal(h, "attachment; filename=\"Hello there.md\"");
    assert_non_null(strstr(r.body, "Something else"));
    assert_non_null(strstr(r.body, "You are terse."));
    resp_free(&r);
    snprintf(path, sizeof path, "/api/conversations/%lld/export", (long long)id);
    r = get(s.port, path);
    assert_int_equal(r.status, 200);
    assert_non_null(header_of(&r, "Content-Disposition", h, sizeof h));
    assert_non_null(strstr(h, ".json\""));
    assert_int_equal(n_messages(r.json), 4);
    resp_free(&r);
    assert_int_equal(hc_stop_server(&s, 20), 0);
}

/* ---- multipart: an image and a document ----------------------------------------- */

typedef struct mpbuf {
    char *buf;
    size_t len;
} mpbuf;

static void mp_add(mpbuf *m, const char *name, const char *filename, const char *type, const void *data, size_t n) {
    char head[512];
    int k = snprintf(head, sizeof head,
                     "--XyZb0undary\r\nContent-Disposition: form-data; name=\"%s\"%s%s%s\r\n%s%s%s\r\n",
                     name, filename ? "; filename=\"" : "", filename ? filename : "", filename ? "\"" : "",
                     type ? "Content-Type: " : "", type ? type : "", type ? "\r\n" : "");
    m->buf = realloc(m->buf, m->len + (size_t)k + n + 2);
    memcpy(m->buf + m->len, head, (size_t)k);
    m->len += (size_t)k;
    memcpy(m->buf + m->len, data, n);
    m->len += n;
    memcpy(m->buf + m->len, "\r\n", 2);
    m->len += 2;
}

static void mp_end(mpbuf *m) {
    m->buf = realloc(m->buf, m->len + 17);
    memcpy(m->buf + m->len, "--XyZb0undary--\r\n", 17);
    m->len += 17;
}

#define MP_TYPE "multipart/form-data; boundary=XyZb0undary"

static void test_multipart_image_document(void **state) {
    (void)state;
    char db[512];
    db_path("multipart", db, sizeof db);
    hc_server s = {0};
    const char *more[] = {"--mmproj", MMPROJ, NULL};
    start(&s, "native-multipart.log", db, more);
    int64_t id = create(s.port, "{" GREEDY "}");
    size_t png_len;
    uint8_t *png = tu_read_file(IMAGE, &png_len);
    assert_non_null(png);
    const char *doc = "The secret word is PELICAN.\n";
    mpbuf m = {0};
    mp_add(&m, "content", NULL, NULL, "What is the word?", 17);
    mp_add(&m, "file", "img1_64x64.png", "image/png", png, png_len);
    mp_add(&m, "file", "notes \\\"q\\\".txt", "text/plain", doc, strlen(doc)); /* quoted-string escapes */
    mp_end(&m);
    char path[128];
    snprintf(path, sizeof path, "/api/conversations/%lld/messages", (long long)id);
    resp r = http(s.port, "POST", path, MP_TYPE, m.buf, m.len);
    if (r.status != 200) fail_msg("%d %s", r.status, r.body);
    assert_true(num(r.json, "message.usage.images_encoded") == 1 || num(r.json, "usage.prompt_tokens") > 256);
    resp_free(&r);
    free(m.buf);

    /* GET: the user message with its attachments' metadata. */
    cJSON *conv = conv_get(s.port, id);
    const cJSON *user = message(conv, 0);
    assert_string_equal(str(user, "content"), "What is the word?");
    const cJSON *atts = cJSON_GetObjectItemCaseSensitive(user, "attachments");
    assert_int_equal(cJSON_GetArraySize(atts), 2);
    const cJSON *img = cJSON_GetArrayItem(atts, 0), *txt = cJSON_GetArrayItem(atts, 1);
    assert_string_equal(str(img, "type"), "image/png");
    assert_int_equal((size_t)num(img, "size"), png_len);
    assert_string_equal(str(txt, "name"), "notes \"q\".txt");
    assert_string_equal(str(txt, "type"), "text/plain");
    int64_t img_id = (int64_t)num(img, "id"), txt_id = (int64_t)num(txt, "id");
    cJSON_Delete(conv);

    /* The bytes back, byte for byte, with the type and an attachment disposition. */
    snprintf(path, sizeof path, "/api/attachments/%lld", (long long)img_id);
    r = get(s.port, path);
    assert_int_equal(r.status, 200);
    assert_int_equal(r.body_len, png_len);
    assert_memory_equal(r.body, png, png_len);
    char h[512];
    assert_string_equal(header_of(&r, "Content-Type", h, sizeof h), "image/png");
    assert_string_equal(header_of(&r, "X-Content-Type-Options", h, sizeof h), "nosniff");
    assert_non_null(
        strstr(header_of(&r, "Content-Disposition", h, sizeof h), "attachment; filename=\"img1_64x64.png\""));
    resp_free(&r);
    snprintf(path, sizeof path, "/api/attachments/%lld", (long long)txt_id);
    r = get(s.port, path);
    assert_int_equal(r.body_len, strlen(doc));
    assert_memory_equal(r.body, doc, strlen(doc));
    header_of(&r, "Content-Disposition", h, sizeof h);
    assert_non_null(strstr(h, "filename=\"notes _q_.txt\"")); /* the quote escaped */
    assert_non_null(strstr(h, "filename*=UTF-8''notes%20%22q%22.txt"));
    resp_free(&r);
    free(png);

    /* The document's text is what the model got (prompt_text); the typed text is kept. */
    g3_store *st;
    g3_error err;
    g3_store_options so = {.read_only = true};
    assert_int_equal(g3_store_open(db, &so, &st, &err), 0);
    g3_store_conv c;
    assert_int_equal(g3_store_get(st, id, &c, &err), 0);
    assert_string_equal(c.turns[0].text, "What is the word?");
    assert_non_null(c.turns[0].prompt_text);
    assert_non_null(strstr(c.turns[0].prompt_text, "PELICAN"));
    assert_non_null(strstr(c.turns[0].prompt_text, "What is the word?"));
    g3_store_conv_free(&c);
    g3_store_close(st);

    /* More images than max_images (2): 400, nothing stored. */
    char *before = export_json(s.port, id);
    m = (mpbuf){0};
    mp_add(&m, "content", NULL, NULL, "three", 5);
    for (int i = 0; i < 3; i++) {
        size_t n;
        uint8_t *p = tu_read_file(IMAGE, &n);
        mp_add(&m, "file", "i.png", "image/png", p, n);
        free(p);
    }
    mp_end(&m);
    snprintf(path, sizeof path, "/api/conversations/%lld/messages", (long long)id);
    r = http(s.port, "POST", path, MP_TYPE, m.buf, m.len);
    free(m.buf);
    expect_error(&r, 400, "max_images");
    char *after = export_json(s.port, id);
    assert_string_equal(before, after);
    free(before);
    free(after);

    /* A PDF in a JSON body (base64): two pages of text and an empty third;
     * the model gets each page under its header, the empty one left out. */
    const char *const pages[] = {"Alpha on page one", "Beta on page two", ""};
    fixture_buf pdf = fixture_pdf(pages, 3);
    char *b64 = g3_base64_encode((const uint8_t *)pdf.p, pdf.len);
    assert_non_null(b64);
    const char *fmt = "{\"content\":\"Read it.\",\"attachments\":[{\"name\":\"three.pdf\","
                      "\"type\":\"application/pdf\",\"data\":\"%s\"}]}";
    char *body = malloc(strlen(fmt) + strlen(b64));
    assert_non_null(body);
    sprintf(body, fmt, b64);
    snprintf(path, sizeof path, "/api/conversations/%lld/messages", (long long)id);
    r = http(s.port, "POST", path, "application/json", body, strlen(body));
    assert_int_equal(r.status, 200);
    resp_free(&r);
    free(body);
    free(b64);
    free(pdf.p);
    assert_int_equal(g3_store_open(db, &so, &st, &err), 0);
    assert_int_equal(g3_store_get(st, id, &c, &err), 0);
    assert_int_equal(c.n_turns, 4);
    const g3_store_turn *asked = &c.turns[2];
    assert_string_equal(asked->text, "Read it.");
    assert_int_equal(asked->n_attachments, 1);
    assert_string_equal(asked->attachments[0].media_type, "application/pdf");
    assert_non_null(asked->prompt_text);
    assert_non_null(strstr(asked->prompt_text, "Page 1:\nAlpha on page one"));
    assert_non_null(strstr(asked->prompt_text, "Page 2:\nBeta on page two"));
    assert_null(strstr(asked->prompt_text, "Page 3:"));
    g3_store_conv_free(&c);
    g3_store_close(st);

    /* DELETE takes the attachments with the conversation. */
    snprintf(path, sizeof path, "/api/conversations/%lld", (long long)id);
    r = http(s.port, "DELETE", path, NULL, NULL, 0);
    assert_int_equal(r.status, 204);
    resp_free(&r);
    const int64_t gone[] = {img_id, txt_id};
    for (size_t i = 0; i < 2; i++) {
        snprintf(path, sizeof path, "/api/attachments/%lld", (long long)gone[i]);
        r = get(s.port, path);
        expect_error(&r, 404, NULL);
    }
    assert_int_equal(hc_stop_server(&s, 20), 0);
}

/* ---- multipart: a video -------------------------------------------------------------- */

static void check_integrity(const char *db);

/* POSTs a multipart message of `content` and one file. */
static resp post_file(int port, int64_t id, const char *content, const char *name, const char *type,
                      const void *data, size_t n) {
    mpbuf m = {0};
    mp_add(&m, "content", NULL, NULL, content, strlen(content));
    mp_add(&m, "file", name, type, data, n);
    mp_end(&m);
    char path[128];
    snprintf(path, sizeof path, "/api/conversations/%lld/messages", (long long)id);
    resp r = http(port, "POST", path, MP_TYPE, m.buf, m.len);
    free(m.buf);
    return r;
}

static bool info_video(int port) {
    resp r = get(port, "/api/info");
    assert_int_equal(r.status, 200);
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(r.json, "video");
    assert_true(cJSON_IsBool(v));
    bool on = cJSON_IsTrue(v);
    resp_free(&r);
    return on;
}

/* An MP4 made here, as an attachment: answered from G3_STORE_VIDEO_FRAMES
 * frames (each encoded, each a picture's soft tokens in the prompt), kept
 * byte for byte; after a restart the rebuilt conversation has the frames
 * again (encoded again, the prompt counting their soft tokens). Refused:
 * bytes that do not decode (400 naming the file), WebM (415), frames over
 * max_images (400), and any video without --mmproj (400; /api/info video
 * false). */
static void test_multipart_video(void **state) {
    (void)state;
    const char *clip = G3_TEST_TMP "/native-clip.mp4";
    video_clip_write(clip, 64, 48, 5, 4, false, 0.0);
    size_t mp4_len;
    uint8_t *mp4 = tu_read_file(clip, &mp4_len);
    assert_non_null(mp4);
    char db[512];
    db_path("video", db, sizeof db);
    hc_server s = {0};
    const char *more[] = {"--mmproj", MMPROJ, NULL};
    start(&s, "native-video1.log", db, more);
    assert_true(info_video(s.port));
    int64_t id = create(s.port, "{" GREEDY "}");
    resp r = post_file(s.port, id, "What happens in the clip?", "clip.mp4", "video/mp4", mp4, mp4_len);
    if (r.status != 200) fail_msg("%d %s", r.status, r.body);
    assert_int_equal((int)num(r.json, "message.usage.images_encoded"), (int)G3_STORE_VIDEO_FRAMES);
    const double p1 = num(r.json, "message.usage.prompt_tokens"), c1 = num(r.json, "message.usage.completion_tokens");
    resp_free(&r);

    /* GET: the video is the user message's attachment, its bytes kept. */
    cJSON *conv = conv_get(s.port, id);
    assert_int_equal(n_messages(conv), 2);
    const cJSON *atts = cJSON_GetObjectItemCaseSensitive(message(conv, 0), "attachments");
    assert_int_equal(cJSON_GetArraySize(atts), 1);
    const cJSON *vid = cJSON_GetArrayItem(atts, 0);
    assert_string_equal(str(vid, "name"), "clip.mp4");
    assert_string_equal(str(vid, "type"), "video/mp4");
    assert_int_equal((size_t)num(vid, "size"), mp4_len);
    char path[128];
    snprintf(path, sizeof path, "/api/attachments/%lld", (long long)num(vid, "id"));
    cJSON_Delete(conv);
    r = get(s.port, path);
    assert_int_equal(r.status, 200);
    assert_int_equal(r.body_len, mp4_len);
    assert_memory_equal(r.body, mp4, mp4_len);
    resp_free(&r);

    /* Refused, nothing stored: a cut file (ftyp but no index), WebM, bytes that are no video, too many frames. */
    char *before = export_json(s.port, id);
    r = post_file(s.port, id, "and this?", "cut.mp4", "video/mp4", mp4, 64);
    expect_error(&r, 400, "cut.mp4");
    r = post_file(s.port, id, "and this?", "v.webm", "video/webm", "\x1a\x45\xdf\xa3\x01\x00\x00\x00", 8);
    expect_error(&r, 415, "MP4");
    r = post_file(s.port, id, "and this?", "fake.mp4", "video/mp4", "not a video at all", 18);
    expect_error(&r, 400, "fake.mp4");
    size_t png_len;
    uint8_t *png = tu_read_file(IMAGE, &png_len);
    assert_non_null(png);
    mpbuf m = {0};
    mp_add(&m, "content", NULL, NULL, "both", 4);
    mp_add(&m, "file", "clip.mp4", "video/mp4", mp4, mp4_len);
    mp_add(&m, "file", "i.png", "image/png", png, png_len);
    mp_end(&m);
    snprintf(path, sizeof path, "/api/conversations/%lld/messages", (long long)id);
    r = http(s.port, "POST", path, MP_TYPE, m.buf, m.len);
    free(m.buf);
    free(png);
    expect_error(&r, 400, "max_images"); /* 2 frames + 1 image > 2 */
    char *after = export_json(s.port, id);
    assert_string_equal(before, after);
    free(before);
    free(after);
    assert_int_equal(hc_stop_server(&s, 20), 0);

    /* A follow-up after a restart: the rebuilt turn has the frames. */
    start(&s, "native-video2.log", db, more);
    cJSON *a2 = say(s.port, id, "And at the end?");
    assert_int_equal((int)num(a2, "message.usage.images_encoded"), (int)G3_STORE_VIDEO_FRAMES);
    assert_int_equal((int)num(a2, "message.dropped_turns"), 0);
    /* the first prompt (its frames included) and its answer, then the new question: without the frames it
     * would be their soft tokens shorter (16 a frame with the golden projector), more than the question adds */
    assert_true(num(a2, "message.usage.prompt_tokens") > p1 + c1);
    cJSON_Delete(a2);
    assert_int_equal(hc_stop_server(&s, 20), 0);
    check_integrity(db);

    /* Without a vision encoder: no video. */
    start(&s, "native-video3.log", db, NULL);
    assert_false(info_video(s.port));
    r = post_file(s.port, id, "and now?", "clip.mp4", "video/mp4", mp4, mp4_len);
    expect_error(&r, 400, "--mmproj");
    assert_int_equal(hc_stop_server(&s, 20), 0);
    free(mp4);
}

/* ---- stop, and one generation per conversation ------------------------------------ */

/* Reads from fd into *buf until `what` occurs `times` times or the peer closes. */
static void read_until_n(int fd, char **buf, size_t *len, size_t *cap, const char *what, int times) {
    double end = hc_now() + 60;
    for (;;) {
        int seen = 0;
        for (const char *p = *buf; p && (p = strstr(p, what)); p += strlen(what)) seen++;
        if (times > 0 && seen >= times) return;
        struct pollfd p = {.fd = fd, .events = POLLIN};
        if (hc_now() > end || poll(&p, 1, 1000) < 0) return;
        if (!p.revents) continue;
        if (*cap - *len < 4096) {
            *buf = realloc(*buf, *cap = *cap * 2 + 8192);
            assert_non_null(*buf);
        }
        ssize_t r = recv(fd, *buf + *len, *cap - *len - 1, 0);
        if (r <= 0) return;
        *len += (size_t)r;
        (*buf)[*len] = 0;
    }
}

static void test_stop_and_conflict(void **state) {
    (void)state;
    char db[512];
    db_path("stop", db, sizeof db);
    hc_server s = {0};
    const char *more[] = {"-c", "2048", "--parallel", "1", NULL};
    start(&s, "native-stop.log", db, more);
    int64_t id = create(s.port, "{\"settings\":{\"top_k\":1,\"max_tokens\":2000}}");
    char path[128], stop_path[128];
    snprintf(path, sizeof path, "/api/conversations/%lld/messages", (long long)id);
    snprintf(stop_path, sizeof stop_path, "/api/conversations/%lld/stop", (long long)id);

    /* Idle: nothing to stop. */
    resp r = post_json(s.port, stop_path, "{}");
    assert_int_equal(r.status, 200);
    assert_true(cJSON_IsFalse(cJSON_GetObjectItemCaseSensitive(r.json, "stopped")));
    resp_free(&r);

    /* A second message while one is in flight: 409. The first waits in the
     * queue behind a long /v1 stream on the only slot, so it is in flight
     * for as long as that stream runs (its client leaving ends it). */
    const char *blocker_body = "{\"messages\":[{\"role\":\"user\",\"content\":\"go\"}],\"max_tokens\":8000,"
                               "\"stream\":true,\"top_k\":1}";
    /* Three of them queue up: seconds of work ahead of the first message. */
    int blockers[3];
    for (int i = 0; i < 3; i++)
        blockers[i] = send_req(s.port, "POST", "/v1/chat/completions", "application/json", blocker_body,
                               strlen(blocker_body));
    assert_true(hc_read_until(blockers[0], "data: ", 60));
    char *before = export_json(s.port, id);
    int first = send_req(s.port, "POST", path, "application/json", "{\"content\":\"first\",\"stream\":true}", 34);
    assert_true(first >= 0);
    usleep(200 * 1000); /* not an assertion: the 409 below needs the first one claimed, which the loop waits for */
    for (int tries = 0; tries < 100; tries++) {
        r = post_json(s.port, path, "{\"content\":\"second\"}");
        if (r.status == 409) break;
        resp_free(&r);
        usleep(50 * 1000);
    }
    expect_error(&r, 409, "answering already");
    /* Stopping it while queued: it ends cancelled with an empty partial answer, stored as stopped. */
    r = post_json(s.port, stop_path, "{}");
    assert_int_equal(r.status, 204);
    resp_free(&r);
    char *buf = calloc(1, 1);
    size_t len = 0, cap = 1;
    read_until_n(first, &buf, &len, &cap, "never", 0);
    close(first);
    sse ev = parse_sse(hc_body(buf));
    assert_non_null(ev.done);
    assert_string_equal(str(ev.done, "finish_reason"), "cancelled");
    assert_true(cJSON_IsTrue(cJSON_GetObjectItemCaseSensitive(cJSON_GetObjectItemCaseSensitive(ev.done, "message"),
                                                               "stopped")));
    sse_free(&ev);
    free(buf);
    for (int i = 0; i < 3; i++) close(blockers[i]);
    free(before);

    /* Stop in the middle of a stream: the partial answer is kept, stopped. A
     * greedy 2000-token answer takes long enough to be stopped after its
     * third token; should one finish first, it is tried again. */
    bool stopped = false;
    for (int attempt = 0; attempt < 4 && !stopped; attempt++) {
        int fd = send_req(s.port, "POST", path, "application/json", "{\"content\":\"count\",\"stream\":true}", 34);
        buf = calloc(1, 1);
        len = 0;
        cap = 1;
        read_until_n(fd, &buf, &len, &cap, "event: token", 3);
        r = post_json(s.port, stop_path, "{}");
        int st = r.status;
        resp_free(&r);
        read_until_n(fd, &buf, &len, &cap, "never", 0);
        close(fd);
        ev = parse_sse(hc_body(buf));
        free(buf);
        assert_non_null(ev.done);
        if (st == 204 && !strcmp(str(ev.done, "finish_reason"), "cancelled")) {
            stopped = true;
            assert_true(ev.n_tokens >= 3);
            cJSON *conv = conv_get(s.port, id);
            const cJSON *last = message(conv, -1);
            assert_true(cJSON_IsTrue(cJSON_GetObjectItemCaseSensitive(last, "stopped")));
            assert_string_equal(str(last, "finish_reason"), "cancelled");
            assert_string_equal(str(last, "content"), ev.tokens);
            cJSON_Delete(conv);
        }
        sse_free(&ev);
    }
    assert_true(stopped);
    assert_int_equal(hc_stop_server(&s, 20), 0);
}

/* ---- eviction ---------------------------------------------------------------------- */

/* A's two questions, with B's between them when with_b; the answers and
 * the cached tokens of A's second. */
static void run_a(int port, bool with_b, char *answers[2], double *cached_a2) {
    int64_t a = create(port, "{\"system\":\"Conversation A.\"," GREEDY "}");
    cJSON *o = say(port, a, "First question of A");
    answers[0] = strdup(str(o, "message.content"));
    cJSON_Delete(o);
    if (with_b) {
        int64_t b = create(port, "{\"system\":\"Conversation B.\"," GREEDY "}");
        cJSON_Delete(say(port, b, "First question of B"));
    }
    o = say(port, a, "Second question of A");
    answers[1] = strdup(str(o, "message.content"));
    *cached_a2 = num(o, "usage.cached_tokens");
    cJSON_Delete(o);
}

static void test_eviction(void **state) {
    (void)state;
    char db[512], db2[512];
    db_path("evict1", db, sizeof db);
    db_path("evict2", db2, sizeof db2);
    hc_server s = {0};
    const char *one[] = {"--parallel", "1", NULL};
    start(&s, "native-evict1.log", db, one);
    char *evicted[2], *kept[2];
    double rebuilt_cached, kept_cached;
    run_a(s.port, true, evicted, &rebuilt_cached);
    /* A again right away: its slot still holds it. */
    cJSON *o = say(s.port, 1, "Third question of A");
    double reuse = num(o, "usage.cached_tokens"), prompt = num(o, "usage.prompt_tokens");
    cJSON_Delete(o);
    assert_int_equal(hc_stop_server(&s, 20), 0);

    /* Two slots, the same requests: A and B each keep their own slot (B's
     * short common prefix with A, the template's first tokens, does not
     * make it take A's), so A's second turn finds its first in the cache. */
    const char *two[] = {"--parallel", "2", NULL};
    start(&s, "native-evict2.log", db2, two);
    run_a(s.port, true, kept, &kept_cached);
    assert_int_equal(hc_stop_server(&s, 20), 0);

    /* One slot: B took it, so A's second turn was rebuilt from the store
     * (only the template's first tokens and "Conversation " in common); two
     * slots: A kept its cache. The answers are the same either way. */
    assert_true(rebuilt_cached < 30);
    assert_true(kept_cached > 100);
    assert_true(reuse > 100 && reuse < prompt);
    for (int i = 0; i < 2; i++) {
        assert_string_equal(evicted[i], kept[i]);
        free(evicted[i]);
        free(kept[i]);
    }
}

/* ---- overflow ---------------------------------------------------------------------- */

static void test_overflow(void **state) {
    (void)state;
    char db[512];
    db_path("overflow", db, sizeof db);
    hc_server s = {0};
    const char *more[] = {"-c", "320", NULL};
    start(&s, "native-overflow.log", db, more);
    int64_t id = create(s.port, "{\"system\":\"Always be brief.\",\"settings\":{\"top_k\":1,\"max_tokens\":100}}");
    double dropped = 0;
    int turns = 0;
    while (dropped == 0 && turns < 10) {
        cJSON *o = say(s.port, id, "Please tell me a long story about a lighthouse keeper and the sea, with many "
                                   "details about the weather, the ships and the birds.");
        dropped = num(o, "dropped_turns");
        assert_true(num(o, "usage.prompt_tokens") + num(o, "usage.completion_tokens") <= 320);
        cJSON_Delete(o);
        turns++;
    }
    assert_true(dropped > 0);
    cJSON *conv = conv_get(s.port, id);
    assert_int_equal(n_messages(conv), 2 * turns); /* every turn is stored; only the prompt left some out */
    assert_true(num(message(conv, -1), "dropped_turns") > 0);
    assert_string_equal(str(conv, "system"), "Always be brief.");
    cJSON_Delete(conv);
    assert_int_equal(hc_stop_server(&s, 20), 0);
}

/* ---- lifecycle: SIGKILL and restart -------------------------------------------------- */

static void check_integrity(const char *db) {
    g3_store *st;
    g3_error err;
    if (g3_store_open(db, NULL, &st, &err)) fail_msg("%s", err.msg);
    if (g3_store_check(st, &err)) fail_msg("%s", err.msg);
    g3_store_close(st);
}

static void test_lifecycle(void **state) {
    (void)state;
    char db[512];
    db_path("lifecycle", db, sizeof db);
    hc_server s = {0};
    const char *more[] = {"-c", "2048", NULL};
    start(&s, "native-life1.log", db, more);
    int64_t id = create(s.port, "{\"title\":\"kept\"," GREEDY "}");
    cJSON *a1 = say(s.port, id, "One");
    cJSON *a2 = say(s.port, id, "Two");
    assert_true(num(a2, "usage.cached_tokens") > 0); /* the second turn prefilled only its new tokens */
    char *before = export_json(s.port, id);
    hc_kill_server(&s);

    check_integrity(db);
    start(&s, "native-life2.log", db, more);
    char *after = export_json(s.port, id);
    assert_string_equal(before, after);
    free(after);
    cJSON *a3 = say(s.port, id, "Three");
    /* The third turn's prompt holds the earlier ones. */
    assert_true(num(a3, "usage.prompt_tokens") > num(a2, "usage.prompt_tokens") + num(a2, "usage.completion_tokens"));
    cJSON_Delete(a1);
    cJSON_Delete(a2);
    cJSON_Delete(a3);
    free(before);
    before = export_json(s.port, id);

    /* SIGKILL in the middle of a stream: the earlier turns intact, no half pair. */
    const char *patch = "{\"settings\":{\"max_tokens\":2000}}";
    char path[128];
    snprintf(path, sizeof path, "/api/conversations/%lld", (long long)id);
    resp r = http(s.port, "PATCH", path, "application/json", patch, strlen(patch));
    assert_int_equal(r.status, 200);
    resp_free(&r);
    snprintf(path, sizeof path, "/api/conversations/%lld/messages", (long long)id);
    int fd = send_req(s.port, "POST", path, "application/json", "{\"content\":\"Four\",\"stream\":true}", 33);
    assert_true(hc_read_until(fd, "event: token", 60));
    hc_kill_server(&s);
    close(fd);
    check_integrity(db);
    start(&s, "native-life3.log", db, more);
    cJSON *conv = conv_get(s.port, id);
    assert_int_equal(n_messages(conv), 6);
    cJSON *old = cJSON_Parse(before);
    for (int i = 0; i < 6; i++)
        assert_string_equal(str(message(conv, i), "content"), str(message(old, i), "content"));
    cJSON_Delete(old);
    cJSON_Delete(conv);
    free(before);
    cJSON *a4 = say(s.port, id, "Five");
    cJSON_Delete(a4);
    assert_int_equal(hc_stop_server(&s, 20), 0);
    check_integrity(db);
}

/* ---- the bad-request table ------------------------------------------------------------ */

typedef struct bad_row {
    const char *method, *path_fmt, *ctype, *body;
    size_t body_len;     /* 0: strlen(body) */
    int status;
    const char *words;   /* in the message */
} bad_row;

static void test_bad_requests(void **state) {
    (void)state;
    char db[512];
    db_path("bad", db, sizeof db);
    hc_server s = {0};
    const char *more[] = {"--max-body", "65536", NULL};
    start(&s, "native-bad.log", db, more);
    int64_t id = create(s.port, "{" GREEDY "}");
    cJSON_Delete(say(s.port, id, "Hello"));
    int64_t empty = create(s.port, "{}");
    char *before = export_json(s.port, id);
    resp r = get(s.port, "/api/conversations");
    int n_convs = cJSON_GetArraySize(cJSON_GetObjectItemCaseSensitive(r.json, "conversations"));
    resp_free(&r);

    static char big[70000];
    memset(big, 'a', sizeof big);
    memcpy(big, "{\"content\":\"", 12);
    memcpy(big + sizeof big - 2, "\"}", 2);
    const char zip[] = "PK\x03\x04\x14\x00\x00\x00\x08\x00zipzipzipzipzipzip\x00\x01\x02\x03";
    char zip_json[256];
    char *zb = g3_base64_encode((const uint8_t *)zip, sizeof zip - 1);
    snprintf(zip_json, sizeof zip_json,
             "{\"content\":\"x\",\"attachments\":[{\"name\":\"a.zip\",\"type\":\"application/zip\","
             "\"data\":\"%s\"}]}", zb);
    free(zb);
    size_t png_len;
    uint8_t *png = tu_read_file(IMAGE, &png_len);
    char *pb = g3_base64_encode(png, png_len);
    free(png);
    char *img_json = malloc(strlen(pb) + 128);
    sprintf(img_json, "{\"content\":\"x\",\"attachments\":[{\"name\":\"p.png\",\"type\":\"image/png\","
                      "\"data\":\"%s\"}]}", pb);
    free(pb);
    /* A document that alone is longer than the context (1024). */
    char *words = malloc(12001);
    for (int i = 0; i < 1000; i++) memcpy(words + 12 * i, "lorem ipsum ", 12);
    char *wb = g3_base64_encode((const uint8_t *)words, 12000);
    free(words);
    char *doc_json = malloc(strlen(wb) + 128);
    sprintf(doc_json, "{\"content\":\"x\",\"attachments\":[{\"name\":\"big.txt\",\"data\":\"%s\"}]}", wb);
    free(wb);
    const char *mp_noheaders = "--B\r\n\r\nhello\r\n--B--\r\n";
    const char *mp_nofinal = "--B\r\nContent-Disposition: form-data; name=\"content\"\r\n\r\nhello\r\n";

    const bad_row rows[] = {
        {"GET", "/api/conversations/999", NULL, NULL, 0, 404, "999"},
        {"GET", "/api/attachments/999", NULL, NULL, 0, 404, NULL},
        {"GET", "/api/conversations/abc", NULL, NULL, 0, 404, "abc"},
        {"GET", "/api/conversations/0", NULL, NULL, 0, 404, NULL},
        {"GET", "/api/conversations/99999999999999999999", NULL, NULL, 0, 404, NULL},
        {"GET", "/api/conversations/-1", NULL, NULL, 0, 404, NULL},
        {"GET", "/api/nothing", NULL, NULL, 0, 404, "unknown route"},
        {"PUT", "/api/conversations/%lld", "application/json", "{}", 0, 405, "PUT"},
        {"POST", "/api/conversations/999/messages", "application/json", "{\"content\":\"x\"}", 0, 404, "999"},
        {"POST", "/api/conversations/999/stop", "application/json", "{}", 0, 404, "999"},
        {"POST", "/api/conversations/999/regenerate", NULL, NULL, 0, 404, "999"},
        {"DELETE", "/api/conversations/999", NULL, NULL, 0, 404, "999"},
        {"PATCH", "/api/conversations/999", "application/json", "{\"title\":\"x\"}", 0, 404, "999"},
        {"GET", "/api/conversations/999/export", NULL, NULL, 0, 404, "999"},
        {"POST", "/api/conversations/%lld/messages", "application/json", "{\"content\":", 0, 400, "not valid JSON"},
        {"POST", "/api/conversations/%lld/messages", "application/json", "{}", 0, 400, "content"},
        {"POST", "/api/conversations/%lld/messages", "application/json", "{\"content\":5}", 0, 400, "content"},
        {"POST", "/api/conversations/%lld/messages", "application/json", "{\"content\":\"x\",\"colour\":1}", 0, 400,
         "colour"},
        {"POST", "/api/conversations/%lld/messages", "application/json",
         "{\"content\":\"x\",\"attachments\":[{\"name\":\"a.txt\",\"data\":\"!!notbase64\"}]}", 0, 400,
         "attachments[0].data"},
        {"POST", "/api/conversations/%lld/messages", "multipart/form-data", "x", 0, 400, "boundary"},
        {"POST", "/api/conversations/%lld/messages", "multipart/form-data; boundary=B", mp_nofinal, 0, 400,
         "closing boundary"},
        {"POST", "/api/conversations/%lld/messages", "multipart/form-data; boundary=B", mp_noheaders, 0, 400,
         "no headers"},
        {"POST", "/api/conversations/%lld/messages", "application/json", big, sizeof big, 413, "65536"},
        {"POST", "/api/conversations/%lld/messages", "application/json", zip_json, 0, 415, "a.zip"},
        {"POST", "/api/conversations/%lld/messages", "text/plain", "hello", 0, 415, "Content-Type"},
        {"POST", "/api/conversations/%lld/messages", "application/json", img_json, 0, 400, "vision encoder"},
        {"POST", "/api/conversations/%lld/messages", "application/json", doc_json, 0, 400,
         "tokens; the context holds 1024"},
        {"PATCH", "/api/conversations/%lld", "application/json", "{\"title\":5}", 0, 400, "title"},
        {"PATCH", "/api/conversations/%lld", "application/json", "{\"settings\":{\"temperature\":\"hot\"}}", 0, 400,
         "settings.temperature"},
        {"PATCH", "/api/conversations/%lld", "application/json", "{\"settings\":{\"top_k\":500}}", 0, 400,
         "settings.top_k"},
        {"PATCH", "/api/conversations/%lld", "application/json", "{\"settings\":{\"max_tokens\":150.5}}", 0, 400,
         "settings.max_tokens"},
        {"PATCH", "/api/conversations/%lld", "application/json", "{\"settings\":{\"temperature\":0}}", 0, 400,
         "settings.temperature"},
        {"PATCH", "/api/conversations/%lld", "application/json", "{\"settings\":[]}", 0, 400, "settings"},
        {"PATCH", "/api/conversations/%lld", "application/json", "{\"preset\":\"nope\"}", 0, 400, "preset"},
        {"POST", "/api/conversations", "application/json", "{\"preset\":\"nope\"}", 0, 400, "preset"},
        {"POST", "/api/conversations", "application/json", "{\"settings\":{\"max_images\":9}}", 0, 400,
         "settings.max_images"},
        {"GET", "/api/conversations/%lld/export?format=pdf", NULL, NULL, 0, 400, "format"},
        {"GET", "/api/conversations?limit=0", NULL, NULL, 0, 400, "limit"},
        {"GET", "/api/conversations?before=xyz", NULL, NULL, 0, 400, "before"},
    };
    for (size_t i = 0; i < sizeof rows / sizeof *rows; i++) {
        const bad_row *row = &rows[i];
        char path[256];
        snprintf(path, sizeof path, row->path_fmt, (long long)id);
        r = http(s.port, row->method, path, row->ctype, row->body, row->body ? (row->body_len ? row->body_len
                                                                                              : strlen(row->body)) : 0);
        if (r.status != row->status)
            fail_msg("row %zu (%s %s): expected %d, got %d: %.300s", i, row->method, path, row->status, r.status,
                     r.body);
        expect_error(&r, row->status, row->words);
        char *after = export_json(s.port, id);
        if (strcmp(before, after)) fail_msg("row %zu changed the conversation", i);
        free(after);
    }
    free(img_json);
    free(doc_json);

    /* Regenerate and edit with nothing to replace: 409. */
    char path[128];
    snprintf(path, sizeof path, "/api/conversations/%lld/regenerate", (long long)empty);
    r = http(s.port, "POST", path, NULL, NULL, 0);
    expect_error(&r, 409, "no answer");
    snprintf(path, sizeof path, "/api/conversations/%lld/edit", (long long)empty);
    r = post_json(s.port, path, "{\"content\":\"x\"}");
    expect_error(&r, 409, "no message");

    r = get(s.port, "/api/conversations");
    assert_int_equal(cJSON_GetArraySize(cJSON_GetObjectItemCaseSensitive(r.json, "conversations")), n_convs);
    resp_free(&r);
    free(before);
    assert_int_equal(hc_stop_server(&s, 20), 0);
}

/* ---- the parsers on their own ----------------------------------------------------------- */

static void test_multipart_parser(void **state) {
    (void)state;
    srv_error e;
    char b[80];
    assert_int_equal(srv_multipart_boundary("multipart/form-data; boundary=\"a b\\\"c\"", b, sizeof b, &e), -1);
    assert_int_equal(srv_multipart_boundary("multipart/form-data; charset=x; boundary=\"ab:c\"", b, sizeof b, &e), 0);
    assert_string_equal(b, "ab:c");
    assert_int_equal(srv_multipart_boundary("multipart/form-data", b, sizeof b, &e), -1);
    assert_int_equal(srv_multipart_boundary("application/json; boundary=x", b, sizeof b, &e), -1);
    const char body[] = "preamble\r\n--ab:c\r\nContent-Disposition: form-data; name=\"f\"; filename=\"x\\\"y.bin\"\r\n"
                        "Content-Type: application/octet-stream\r\n\r\n\x00\r\n--ab:\x01\r\n--ab:c\r\n"
                        "content-disposition: form-data; name=content\r\n\r\n\r\n--ab:c--\r\nepilogue";
    srv_mp_body mp;
    assert_int_equal(srv_multipart_parse(body, sizeof body - 1, "ab:c", &mp, &e), 0);
    assert_int_equal(mp.n, 2);
    assert_string_equal(mp.parts[0].name, "f");
    assert_string_equal(mp.parts[0].filename, "x\"y.bin");
    assert_string_equal(mp.parts[0].content_type, "application/octet-stream");
    assert_int_equal(mp.parts[0].len, 9);
    assert_memory_equal(mp.parts[0].data, "\x00\r\n--ab:\x01", 9);
    assert_string_equal(mp.parts[1].name, "content");
    assert_int_equal(mp.parts[1].len, 0);
    srv_multipart_free(&mp);
    /* Every truncation of a valid body is refused (never read past the end). */
    for (size_t n = 0; n + 10 < sizeof body - 1; n++) {
        char *copy = malloc(n ? n : 1);
        memcpy(copy, body, n);
        assert_int_equal(srv_multipart_parse(copy, n, "ab:c", &mp, &e), -1);
        assert_int_equal(e.status, 400);
        free(copy);
    }
    const char *bad[] = {
        "--ab:c\r\nContent-Disposition: form-data\r\n\r\nx\r\n--ab:c--",               /* no name */
        "--ab:c\r\nContent-Disposition: attachment; name=a\r\n\r\nx\r\n--ab:c--",       /* not form-data */
        "--ab:c\r\nContent-Disposition: form-data; name=\"a\r\n\r\nx\r\n--ab:c--",      /* unterminated quote */
        "--ab:c\r\nNoColonHere\r\n\r\nx\r\n--ab:c--",                                     /* a header without ':' */
        "--ab:cX\r\nContent-Disposition: form-data; name=a\r\n\r\nx\r\n--ab:c--",        /* not followed by CRLF */
        "--ab:c\nContent-Disposition: form-data; name=a\n\nx\n--ab:c--",                 /* LF only */
    };
    for (size_t i = 0; i < sizeof bad / sizeof *bad; i++) {
        if (srv_multipart_parse(bad[i], strlen(bad[i]), "ab:c", &mp, &e) != -1) fail_msg("bad body %zu accepted", i);
        assert_int_equal(e.status, 400);
    }
}

static void test_native_request_parser(void **state) {
    (void)state;
    srv_error e;
    srv_conv_request c;
    g3_store_settings base = g3_store_settings_defaults();
    const char *ok = "{\"preset\":\"Tutor\",\"settings\":{\"max_tokens\":100,\"temperature\":0.1,\"top_p\":1,"
                     "\"top_k\":100,\"repetition_penalty\":2,\"max_images\":4}}";
    assert_int_equal(srv_conv_request_parse(ok, strlen(ok), true, &base, &c, &e), 0);
    assert_string_equal(c.preset, "tutor");
    assert_non_null(c.system);
    assert_int_equal(c.settings.max_tokens, 100);
    assert_int_equal(c.settings.max_images, 4);
    srv_conv_request_free(&c);
    assert_int_equal(srv_conv_request_parse("", 0, true, &base, &c, &e), 0);
    srv_conv_request_free(&c);
    assert_int_equal(srv_conv_request_parse("", 0, false, &base, &c, &e), -1);
    const char *bad = "{\"settings\":{\"top_p\":1.5}}";
    assert_int_equal(srv_conv_request_parse(bad, strlen(bad), false, &base, &c, &e), -1);
    assert_string_equal(e.param, "settings.top_p");
    srv_message_request m;
    const char *msg = "{\"content\":\"hi\",\"attachments\":[{\"name\":\"a.txt\",\"type\":\"text/plain\","
                      "\"data\":\"aGk=\"}],"
                      "\"stream\":true}";
    assert_int_equal(srv_message_request_parse(SRV_MSG_SEND, "application/json", msg, strlen(msg), &m, &e), 0);
    assert_int_equal(m.n_files, 1);
    assert_int_equal(m.files[0].size, 2);
    assert_memory_equal(m.files[0].data, "hi", 2);
    assert_true(m.stream);
    srv_message_request_free(&m);
    assert_int_equal(srv_message_request_parse(SRV_MSG_REGENERATE, NULL, "", 0, &m, &e), 0);
    srv_message_request_free(&m);
    assert_int_equal(srv_message_request_parse(SRV_MSG_REGENERATE, "application/json", "{\"content\":\"x\"}", 15, &m,
                                               &e), -1);
    assert_int_equal(srv_message_request_parse(SRV_MSG_SEND, "application/json", "{\"content\":\"\"}", 14, &m, &e),
                     -1);
    const char *keep = "{\"content\":\"\",\"keep_attachments\":true}";
    assert_int_equal(srv_message_request_parse(SRV_MSG_EDIT, "application/json", keep, strlen(keep), &m, &e), 0);
    assert_true(m.keep_attachments);
    srv_message_request_free(&m);
}

int main(void) {
    mkdir(G3_TEST_TMP, 0755);
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_teardown(test_multipart_parser, kill_leftovers),
        cmocka_unit_test_teardown(test_native_request_parser, kill_leftovers),
        cmocka_unit_test_teardown(test_crud_list_paging, kill_leftovers),
        cmocka_unit_test_teardown(test_messages, kill_leftovers),
        cmocka_unit_test_teardown(test_multipart_image_document, kill_leftovers),
        cmocka_unit_test_teardown(test_multipart_video, kill_leftovers),
        cmocka_unit_test_teardown(test_bad_requests, kill_leftovers),
        cmocka_unit_test_teardown(test_stop_and_conflict, kill_leftovers),
        cmocka_unit_test_teardown(test_eviction, kill_leftovers),
        cmocka_unit_test_teardown(test_overflow, kill_leftovers),
        cmocka_unit_test_teardown(test_lifecycle, kill_leftovers),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
