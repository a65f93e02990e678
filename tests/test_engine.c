/* test_engine: the engine surface (gemma3_engine.h) on the golden tiny model.
 * - an answer is the greedy continuation a plain g3_eval loop gives for the
 *   rendered prompt;
 * - a follow-up that resends the first exchange (as text, as API clients
 *   do) reuses the cached prefix and answers as a cold engine does;
 * - four requests decoded together give exactly the answers each gets
 *   alone (batched decoding is row-for-row the same arithmetic);
 * - cancelling stops within a token and frees the slot; a full queue and
 *   bad requests are refused at submit with nothing queued;
 * - an image given as bytes is the same image as its file;
 * - a conversation longer than the context drops its oldest turns and
 *   says how many. */
#include <math.h>
#include <pthread.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "gemma3_engine.h"
#include "test_util.h"

#define TINY G3_GOLDEN_DIR "/tiny-gemma3"
#define MODEL TINY "/models/g3-1b-s1234-f32.gguf"
#define MMPROJ TINY "/models/mmproj-g3-s99-f32.gguf"
#define IMAGE TINY "/vision/img1_64x64.png"

static g3_engine *open_engine(uint32_t slots, uint32_t n_ctx, const char *mmproj) {
    g3_engine_params p = {.model_path = MODEL, .mmproj_path = mmproj, .n_slots = slots, .max_queue = 8};
    p.cp.n_ctx = n_ctx;
    p.cp.n_threads = 1;
    g3_engine *e;
    g3_error err;
    g3_engine_open_info info;
    if (g3_engine_open(&p, &e, &info, &err)) fail_msg("%s", err.msg);
    assert_int_equal(g3_engine_n_slots(e), slots);
    assert_int_equal(g3_engine_n_ctx(e), n_ctx);
    return e;
}

static g3_request greedy_request(const g3_conversation *c, uint32_t n) {
    g3_request r = {.conv = c, .gen = tu_greedy(n)};
    return r;
}

static void conv_of(g3_conversation *c, const char *const *turns, size_t n) {
    g3_conversation_init(c);
    g3_error err;
    for (size_t i = 0; i < n; i++)
        assert_int_equal(g3_conversation_add(c, i % 2 ? G3_ROLE_MODEL : G3_ROLE_USER, turns[i], NULL, 0, &err), 0);
}

typedef struct answer {
    char text[4096];
    int32_t ids[256];
    size_t n_ids;
    g3_gen_result res;
    atomic_bool done;
} answer;

static void answer_done(const g3_gen_result *r, void *user) {
    answer *a = user;
    a->res = *r;
    snprintf(a->text, sizeof a->text, "%.*s", (int)r->text_len, r->text);
    a->n_ids = r->n_ids < 256 ? r->n_ids : 256;
    if (r->ids) memcpy(a->ids, r->ids, sizeof(int32_t) * a->n_ids);
    a->res.text = a->text;
    a->res.ids = a->ids;
    atomic_store(&a->done, true);
}

/* One request on its own 1-slot engine (cold cache). */
static void alone(const g3_conversation *c, uint32_t n, answer *a) {
    g3_engine *e = open_engine(1, 256, NULL);
    g3_request r = greedy_request(c, n);
    r.cb = (g3_request_callbacks){.on_done = answer_done, .user = a};
    g3_gen_result res;
    g3_error err;
    if (g3_engine_generate(e, &r, &res, &err)) fail_msg("%s", err.msg);
    assert_true(atomic_load(&a->done));
    g3_engine_free(e);
}

static void test_answer_is_the_greedy_continuation(void **state) {
    (void)state;
    static const char *const turns[] = {"Hello, how are you?"};
    g3_conversation c;
    conv_of(&c, turns, 1);
    answer a = {0};
    alone(&c, 12, &a);

    /* the same with the bare API */
    g3_model *m;
    g3_error err;
    assert_int_equal(g3_model_load(MODEL, &m, &err), 0);
    g3_tokenizer *tok;
    assert_int_equal(g3_tokenizer_from_model(m, &tok, &err), 0);
    int32_t *ids;
    size_t n;
    assert_int_equal(g3_chat_render(tok, &c, true, &ids, &n, &err), 0);
    g3_context_params cp = {.n_ctx = 256};
    g3_context *ctx;
    assert_int_equal(g3_context_new(m, &cp, &ctx, &err), 0);
    const uint32_t V = g3_model_config(m)->n_vocab;
    float *logits = malloc(sizeof(float) * V);
    assert_int_equal(g3_eval(ctx, ids, (uint32_t)n, logits, false, &err), 0);
    const int32_t eot = g3_tokenizer_find(tok, "<end_of_turn>"), eos = g3_tokenizer_eos(tok);
    size_t k = 0;
    for (; k < 12; k++) {
        int32_t best = 0;
        for (uint32_t v = 1; v < V; v++)
            if (logits[v] > logits[best]) best = (int32_t)v;
        if (best == eot || best == eos) break;
        assert_true(k < a.n_ids);
        assert_int_equal(a.ids[k], best);
        assert_int_equal(g3_eval(ctx, &best, 1, logits, false, &err), 0);
    }
    assert_int_equal(k, a.n_ids);
    assert_int_equal(a.res.n_prompt, n);
    assert_int_equal(a.res.n_cached, 0);
    assert_true(a.res.stop == G3_STOP_MAX_TOKENS || a.res.stop == G3_STOP_END_OF_TURN);
    free(ids);
    free(logits);
    g3_context_free(ctx);
    g3_tokenizer_free(tok);
    g3_model_free(m);
    g3_conversation_free(&c);
}

static void test_follow_up_reuses_the_cache(void **state) {
    (void)state;
    g3_engine *e = open_engine(2, 256, NULL);
    static const char *const first[] = {"Tell me about dogs."};
    g3_conversation c1;
    conv_of(&c1, first, 1);
    g3_request r = greedy_request(&c1, 10);
    g3_gen_result res1;
    g3_error err;
    assert_int_equal(g3_engine_generate(e, &r, &res1, &err), 0);
    char answer1[4096];
    snprintf(answer1, sizeof answer1, "%s", res1.text);
    const uint32_t prompt1 = res1.n_prompt;

    /* the client sends the answer back as text, without ids */
    const char *second[] = {"Tell me about dogs.", answer1, "And cats?"};
    g3_conversation c2;
    conv_of(&c2, second, 3);
    r = greedy_request(&c2, 10);
    g3_gen_result res2;
    assert_int_equal(g3_engine_generate(e, &r, &res2, &err), 0);
    assert_true(res2.n_cached >= prompt1);
    assert_true(res2.n_cached < res2.n_prompt);
    char answer2[4096];
    snprintf(answer2, sizeof answer2, "%s", res2.text);
    answer cold = {0};
    alone(&c2, 10, &cold);
    assert_string_equal(answer2, cold.text);
    assert_int_equal(cold.res.n_cached, 0);
    g3_engine_free(e);
    g3_conversation_free(&c1);
    g3_conversation_free(&c2);
}

static void *run_engine(void *arg) {
    g3_engine_run(arg);
    return NULL;
}

static void test_batched_answers_equal_solo_answers(void **state) {
    (void)state;
    static const char *const prompts[4] = {"Hello, how are you?", "Write about the sea.", "Count to five.",
                                           "What is a dog?"};
    g3_conversation c[4];
    answer solo[4] = {0}, together[4] = {0};
    for (int i = 0; i < 4; i++) {
        conv_of(&c[i], &prompts[i], 1);
        alone(&c[i], 16, &solo[i]);
    }
    g3_engine *e = open_engine(4, 256, NULL);
    g3_error err;
    for (int i = 0; i < 4; i++) { /* all queued before the engine starts: they run together */
        g3_request r = greedy_request(&c[i], 16);
        r.cb = (g3_request_callbacks){.on_done = answer_done, .user = &together[i]};
        if (g3_engine_submit(e, &r, NULL, &err)) fail_msg("%s", err.msg);
    }
    pthread_t th;
    assert_int_equal(pthread_create(&th, NULL, run_engine, e), 0);
    for (int i = 0; i < 4; i++)
        while (!atomic_load(&together[i].done)) sched_yield();
    g3_engine_metrics m;
    g3_engine_get_metrics(e, &m);
    g3_engine_shutdown(e);
    pthread_join(th, NULL);
    for (int i = 0; i < 4; i++) {
        assert_string_equal(together[i].text, solo[i].text);
        assert_int_equal(together[i].n_ids, solo[i].n_ids);
        assert_memory_equal(together[i].ids, solo[i].ids, solo[i].n_ids * sizeof(int32_t));
    }
    assert_int_equal(m.requests_done, 4);
    assert_int_equal(m.busy_slots, 0);
    /* the answers were decoded together: 4 rows in most steps */
    print_message("batched decode: %llu rows in %llu steps\n", (unsigned long long)m.decode_rows,
                  (unsigned long long)m.decode_steps);
    assert_true(m.decode_rows >= 3 * m.decode_steps);
    g3_engine_free(e);
    for (int i = 0; i < 4; i++) g3_conversation_free(&c[i]);
}

typedef struct counting {
    atomic_bool *cancel;
    int pieces;
} counting;

static bool cancel_after_three(const char *text, size_t len, void *user) {
    (void)text, (void)len;
    counting *c = user;
    if (++c->pieces == 3) atomic_store(c->cancel, true);
    return true;
}

static void test_cancel_and_refusals(void **state) {
    (void)state;
    g3_engine *e = open_engine(1, 256, NULL);
    static const char *const turns[] = {"Write a long story."};
    g3_conversation c;
    conv_of(&c, turns, 1);
    atomic_bool cancel;
    atomic_init(&cancel, false);
    counting cnt = {.cancel = &cancel};
    g3_request r = greedy_request(&c, 50);
    r.cancel = &cancel;
    r.cb = (g3_request_callbacks){.on_text = cancel_after_three, .user = &cnt};
    g3_gen_result res;
    g3_error err;
    assert_int_equal(g3_engine_generate(e, &r, &res, &err), 0);
    assert_int_equal(res.stop, G3_STOP_CANCELLED);
    assert_true(res.n_generated >= 3 && res.n_generated <= 4); /* within one token */
    g3_engine_metrics m;
    g3_engine_get_metrics(e, &m);
    assert_int_equal(m.busy_slots, 0);
    assert_int_equal(m.requests_cancelled, 1);

    /* bad requests: nothing queued, no callback */
    g3_conversation bad;
    static const char *const two[] = {"Hi", "Hello"};
    conv_of(&bad, two, 2);
    r = greedy_request(&bad, 5);
    assert_int_equal(g3_engine_submit(e, &r, NULL, &err), -1);
    assert_non_null(strstr(err.msg, "end with a user message"));
    r = greedy_request(&c, 5);
    r.gen.sampler.top_p = 2;
    assert_int_equal(g3_engine_submit(e, &r, NULL, &err), -1);
    g3_part img = {.type = G3_PART_IMAGE, .path = IMAGE};
    g3_conversation with_image;
    g3_conversation_init(&with_image);
    assert_int_equal(g3_conversation_add_parts(&with_image, &img, 1, &err), 0);
    r = greedy_request(&with_image, 5);
    assert_int_equal(g3_engine_submit(e, &r, NULL, &err), -1);
    assert_non_null(strstr(err.msg, "no vision encoder"));

    /* a full queue (no engine thread is running here) */
    r = greedy_request(&c, 5);
    bool full = false;
    int i = 0;
    for (; i < 20 && !full; i++)
        if (g3_engine_submit(e, &r, &full, &err)) break;
    assert_true(full);
    assert_int_equal(i, 8); /* max_queue 8: the ninth submit is refused */
    g3_engine_get_metrics(e, &m);
    assert_int_equal(m.queue_length, 8);
    g3_engine_shutdown(e);
    g3_engine_run(e); /* cancels the queued ones and returns */
    g3_engine_get_metrics(e, &m);
    assert_int_equal(m.queue_length, 0);
    assert_int_equal(m.requests_cancelled, 9); /* the cancelled answer + the 8 queued */
    g3_engine_free(e);
    g3_conversation_free(&c);
    g3_conversation_free(&bad);
    g3_conversation_free(&with_image);
}

static void test_image_bytes_are_the_image(void **state) {
    (void)state;
    size_t len;
    uint8_t *bytes = tu_read_file(IMAGE, &len);
    assert_non_null(bytes);
    g3_engine *e = open_engine(2, 256, MMPROJ);
    assert_true(g3_engine_has_vision(e));
    g3_part by_path[2] = {{.type = G3_PART_IMAGE, .path = IMAGE}, {.type = G3_PART_TEXT, .text = "What is this?"}};
    g3_part by_bytes[2] = {{.type = G3_PART_IMAGE, .data = bytes, .data_len = len},
                           {.type = G3_PART_TEXT, .text = "What is this?"}};
    g3_conversation a, b;
    g3_error err;
    g3_conversation_init(&a);
    g3_conversation_init(&b);
    assert_int_equal(g3_conversation_add_parts(&a, by_path, 2, &err), 0);
    assert_int_equal(g3_conversation_add_parts(&b, by_bytes, 2, &err), 0);
    g3_gen_result ra, rb;
    g3_request r = greedy_request(&a, 8);
    assert_int_equal(g3_engine_generate(e, &r, &ra, &err), 0);
    char text_a[4096];
    snprintf(text_a, sizeof text_a, "%s", ra.text);
    assert_int_equal(ra.n_encoded, 1);
    r = greedy_request(&b, 8);
    assert_int_equal(g3_engine_generate(e, &r, &rb, &err), 0);
    assert_string_equal(rb.text, text_a);
    assert_int_equal(rb.n_encoded, 1); /* another identity: the bytes, not the file name */
    /* the same bytes again: nothing to encode, the prompt is cached */
    assert_int_equal(g3_engine_generate(e, &r, &rb, &err), 0);
    assert_int_equal(rb.n_encoded, 0);
    assert_int_equal(rb.n_cached, rb.n_prompt - 1);
    /* broken bytes: a clear error, the engine goes on */
    bytes[len / 2] ^= 0xFF;
    memset(bytes + 8, 0, 16);
    g3_conversation broken;
    g3_conversation_init(&broken);
    assert_int_equal(g3_conversation_add_parts(&broken, by_bytes, 2, &err), 0);
    r = greedy_request(&broken, 8);
    assert_int_equal(g3_engine_generate(e, &r, &rb, &err), -1);
    assert_true(strlen(err.msg) > 0);
    assert_int_equal(rb.error_kind, G3_ERROR_REQUEST);
    r = greedy_request(&a, 8);
    assert_int_equal(g3_engine_generate(e, &r, &ra, &err), 0);
    assert_string_equal(ra.text, text_a);
    g3_engine_free(e);
    g3_conversation_free(&a);
    g3_conversation_free(&b);
    g3_conversation_free(&broken);
    free(bytes);
}

static void test_long_conversation_drops_oldest_turns(void **state) {
    (void)state;
    g3_engine *e = open_engine(1, 64, NULL);
    const char *turns[9];
    for (int i = 0; i < 9; i++) turns[i] = i % 2 ? "Fine, thanks for asking, really." : "How are you today, friend?";
    g3_conversation c;
    conv_of(&c, turns, 9);
    g3_request r = greedy_request(&c, 8);
    g3_gen_result res;
    g3_error err;
    assert_int_equal(g3_engine_generate(e, &r, &res, &err), 0);
    assert_true(res.dropped_turns >= 2 && res.dropped_turns % 2 == 0);
    assert_true(res.n_prompt + 8 <= 64 || res.dropped_turns == 8);
    /* one message longer than the context: refused, naming both sizes */
    char big[2048];
    memset(big, 'a', sizeof big - 1);
    for (size_t i = 0; i < sizeof big - 1; i += 2) big[i] = ' ';
    big[sizeof big - 1] = 0;
    const char *one[] = {big};
    g3_conversation c2;
    conv_of(&c2, one, 1);
    r = greedy_request(&c2, 8);
    assert_int_equal(g3_engine_generate(e, &r, &res, &err), -1);
    assert_non_null(strstr(err.msg, "the context holds 64"));
    assert_int_equal(res.error_kind, G3_ERROR_REQUEST);
    g3_engine_free(e);
    g3_conversation_free(&c);
    g3_conversation_free(&c2);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_answer_is_the_greedy_continuation),
        cmocka_unit_test(test_follow_up_reuses_the_cache),
        cmocka_unit_test(test_batched_answers_equal_solo_answers),
        cmocka_unit_test(test_cancel_and_refusals),
        cmocka_unit_test(test_image_bytes_are_the_image),
        cmocka_unit_test(test_long_conversation_drops_oldest_turns),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
