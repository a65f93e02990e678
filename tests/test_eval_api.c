/* test_eval_api: the engine through its public API, on the golden models.
 * - batch size and chunking do not change logits (the sliding-window ring
 *   with the smallest slack still gives the one-pass result);
 * - rollback within the slack reproduces the logits; beyond it, a clear error;
 * - decoding 4000+ positions deep equals a batched pass (f32 and q8_0 caches);
 * - several sequences decoded as one batch equal each decoded alone;
 * - bad token ids, empty and too-long sequences are refused and leave the
 *   context as it was;
 * - the golden image prompt (16 soft tokens, bidirectional) matches llama.cpp;
 * - generated test models are deterministic and load through the same path. */
#include <cjson/cJSON.h>
#include <math.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "gemma3.h"
#include "test_util.h"

#define GOLDEN G3_GOLDEN_DIR "/tiny-gemma3"
#define F32_MODEL GOLDEN "/models/g3-1b-s1234-f32.gguf"

static g3_model *g_model;
static int32_t *g_long;
static uint32_t g_long_n;

static int setup(void **state) {
    g3_error err;
    if (g3_model_load(F32_MODEL, &g_model, &err)) {
        fprintf(stderr, "%s\n", err.msg);
        return -1;
    }
    int64_t *ids;
    char *text = (char *)tu_read_file(GOLDEN "/text/g3-1b-s1234-f32/long.tokens.json", NULL);
    long n = text ? tu_parse_int_array(text, &ids) : -1;
    free(text);
    if (n <= 0) return -1;
    g_long = malloc(sizeof *g_long * (size_t)n);
    for (long i = 0; i < n; i++) g_long[i] = (int32_t)ids[i];
    g_long_n = (uint32_t)n;
    free(ids);
    return 0;
}

static int teardown(void **state) {
    g3_model_free(g_model);
    free(g_long);
    return 0;
}

static float max_diff(const float *a, const float *b, size_t n) {
    float m = 0;
    for (size_t i = 0; i < n; i++) {
        float d = fabsf(a[i] - b[i]);
        if (!(d <= m)) m = d; /* NaN propagates */
    }
    return m;
}

/* All logits of `long`, evaluated with the given batch size and chunking. */
static float *eval_long(uint32_t n_ubatch, uint32_t chunk) {
    const g3_config *c = g3_model_config(g_model);
    g3_context_params p = {.n_ctx = g_long_n, .n_ubatch = n_ubatch};
    g3_context *ctx;
    g3_error err;
    assert_int_equal(g3_context_new(g_model, &p, &ctx, &err), 0);
    float *logits = malloc(sizeof(float) * g_long_n * c->n_vocab);
    for (uint32_t done = 0; done < g_long_n; done += chunk) {
        uint32_t len = g_long_n - done < chunk ? g_long_n - done : chunk;
        if (g3_eval(ctx, g_long + done, len, logits + (size_t)done * c->n_vocab, true, &err))
            fail_msg("%s", err.msg);
    }
    assert_int_equal(g3_context_n_past(ctx), g_long_n);
    g3_context_free(ctx);
    return logits;
}

static void test_batching_does_not_change_logits(void **state) {
    const size_t n = (size_t)g_long_n * g3_model_config(g_model)->n_vocab;
    float *ref = eval_long(512, g_long_n);
    /* ubatch 1: the ring holds window + 1 slots, the minimum */
    struct { uint32_t ubatch, chunk; } modes[] = {{1, 1}, {3, 145}, {16, 7}, {17, 40}, {64, 13}};
    for (size_t i = 0; i < sizeof modes / sizeof modes[0]; i++) {
        float *got = eval_long(modes[i].ubatch, modes[i].chunk);
        float d = max_diff(ref, got, n);
        if (d > 1e-5f) fail_msg("ubatch %u chunk %u differs by %g", modes[i].ubatch, modes[i].chunk, d);
        free(got);
    }
    free(ref);
}

/* Decoding deep into a history (a global layer attending over 4000+ keys,
 * local rings wrapped hundreds of times) gives what a batched pass over the
 * same tokens gives, for an exact and a quantized cache, on 1 and 2
 * threads. */
static void test_long_history_decode(void **state) {
    const g3_config *c = g3_model_config(g_model);
    const uint32_t n = 4300, decode_from = 4080;
    int32_t *tokens = malloc(sizeof *tokens * n);
    float *ref = malloc(sizeof(float) * (size_t)(n - decode_from) * c->n_vocab);
    float *row = malloc(sizeof(float) * c->n_vocab);
    assert_non_null(tokens);
    for (uint32_t i = 0; i < n; i++) tokens[i] = 2 + (int32_t)((i * 7919u) % (c->n_vocab - 2));
    const g3_kv_type types[] = {G3_KV_F32, G3_KV_Q8_0};
    for (size_t ti = 0; ti < 2; ti++) {
        for (uint32_t threads = 1; threads <= 2; threads++) {
            g3_context_params p = {.n_ctx = n, .n_threads = threads, .kv_type = types[ti]};
            g3_context *ctx;
            g3_error err;
            assert_int_equal(g3_context_new(g_model, &p, &ctx, &err), 0);
            if (g3_eval(ctx, tokens, decode_from, NULL, false, &err) ||
                g3_eval(ctx, tokens + decode_from, n - decode_from, ref, true, &err))
                fail_msg("%s", err.msg);
            assert_int_equal(g3_context_truncate(ctx, 0, &err), 0);
            if (g3_eval(ctx, tokens, decode_from, NULL, false, &err)) fail_msg("%s", err.msg);
            float worst = 0;
            for (uint32_t i = decode_from; i < n; i++) {
                if (g3_eval(ctx, tokens + i, 1, row, false, &err)) fail_msg("%s", err.msg);
                const float d = max_diff(row, ref + (size_t)(i - decode_from) * c->n_vocab, c->n_vocab);
                if (!(d <= worst)) worst = d;
            }
            printf("%s cache, %u thread(s): decoding positions %u..%u vs one batch: max |d| %.2e\n",
                   g3_kv_type_name(types[ti]), threads, decode_from, n - 1, worst);
            /* q8_0: the decoded tokens' own keys differ from the batch's by
             * f32 rounding (~1e-6), which can flip a q8_0 rounding step */
            const float tol = types[ti] == G3_KV_F32 ? 1e-4f : 2e-2f;
            if (!(worst <= tol)) fail_msg("long-history decode differs by %g (allowed %g)", worst, tol);
            g3_context_free(ctx);
        }
    }
    free(tokens);
    free(ref);
    free(row);
}

static void test_rollback(void **state) {
    const g3_config *c = g3_model_config(g_model);
    float *ref = eval_long(512, g_long_n);
    g3_context_params p = {.n_ctx = g_long_n, .n_ubatch = 8}; /* local ring: 16 + 8 slots */
    g3_context *ctx;
    g3_error err;
    assert_int_equal(g3_context_new(g_model, &p, &ctx, &err), 0);
    float *row = malloc(sizeof(float) * c->n_vocab);
    assert_int_equal(g3_eval(ctx, g_long, 100, NULL, false, &err), 0);
    /* back 6 positions (within the slack), then forward again */
    assert_int_equal(g3_context_truncate(ctx, 94, &err), 0);
    assert_int_equal(g3_context_n_past(ctx), 94);
    for (uint32_t i = 94; i < 100; i++) {
        assert_int_equal(g3_eval(ctx, g_long + i, 1, row, false, &err), 0);
        float d = max_diff(row, ref + (size_t)i * c->n_vocab, c->n_vocab);
        if (d > 1e-5f) fail_msg("position %u after rollback differs by %g", i, d);
    }
    /* far back: the ring no longer holds that window */
    assert_int_equal(g3_context_truncate(ctx, 50, &err), -1);
    assert_non_null(strstr(err.msg, "cannot roll back to position 50"));
    assert_int_equal(g3_context_n_past(ctx), 100);
    /* back to empty always works, and the same context then reproduces the
     * sequence from the start */
    assert_int_equal(g3_context_truncate(ctx, 0, &err), 0);
    assert_int_equal(g3_context_n_past(ctx), 0);
    assert_int_equal(g3_eval(ctx, g_long, 60, row, false, &err), 0);
    float d = max_diff(row, ref + (size_t)59 * c->n_vocab, c->n_vocab);
    if (d > 1e-5f) fail_msg("position 59 after a reset differs by %g", d);
    assert_int_equal(g3_context_truncate(ctx, 56, &err), 0); /* and rollbacks within the slack work again */
    free(row);
    free(ref);
    g3_context_free(ctx);
}

/* Several sequences in one context, decoded together: each step's logits
 * equal those of the same sequence decoded alone in its own context (the
 * batched product rounds differently from the matrix-vector one; 1e-4 on
 * logits of magnitude ~10, and the same greedy tokens). The rows are given
 * in a rotated order, so a row/sequence mix-up shows. */
static void decode_batch_case(const char *path, float tol) {
    g3_model *model;
    g3_error err;
    if (g3_model_load(path, &model, &err)) fail_msg("%s", err.msg);
    const g3_config *c = g3_model_config(model);
    enum { NS = 3, STEPS = 12 };
    const uint32_t prompt_len[NS] = {5, 40, 17};
    g3_context_params p = {.n_ctx = 128, .n_ubatch = 8, .n_seq = NS};
    g3_context *multi, *alone[NS];
    assert_int_equal(g3_context_new(model, &p, &multi, &err), 0);
    assert_int_equal(g3_context_n_seq(multi), NS);
    g3_context_params p1 = p;
    p1.n_seq = 1;
    float *lm = malloc(sizeof(float) * NS * c->n_vocab), *la = malloc(sizeof(float) * NS * c->n_vocab);
    int32_t next[NS];
    for (uint32_t s = 0; s < NS; s++) {
        assert_int_equal(g3_context_new(model, &p1, &alone[s], &err), 0);
        /* different text per sequence: start s*7 tokens into `long` */
        const int32_t *prompt = g_long + s * 7;
        if (g3_eval_seq(multi, s, prompt, prompt_len[s], lm + s * c->n_vocab, false, &err)) fail_msg("%s", err.msg);
        if (g3_eval(alone[s], prompt, prompt_len[s], la + s * c->n_vocab, false, &err)) fail_msg("%s", err.msg);
        assert_true(max_diff(lm + s * c->n_vocab, la + s * c->n_vocab, c->n_vocab) <= 1e-5f);
        next[s] = 0;
        for (uint32_t v = 1; v < c->n_vocab; v++)
            if (la[s * c->n_vocab + v] > la[s * c->n_vocab + next[s]]) next[s] = (int32_t)v;
    }
    float worst = 0;
    for (int step = 0; step < STEPS; step++) {
        uint32_t seqs[NS];
        int32_t toks[NS];
        for (uint32_t i = 0; i < NS; i++) {
            seqs[i] = (i + (uint32_t)step) % NS;
            toks[i] = next[seqs[i]];
        }
        if (g3_decode_batch(multi, seqs, toks, NS, lm, &err)) fail_msg("%s", err.msg);
        for (uint32_t i = 0; i < NS; i++) {
            const uint32_t s = seqs[i];
            float *a = la + s * c->n_vocab;
            if (g3_eval(alone[s], &toks[i], 1, a, false, &err)) fail_msg("%s", err.msg);
            const float d = max_diff(lm + i * c->n_vocab, a, c->n_vocab);
            if (!(d <= tol)) fail_msg("%s: step %d, sequence %u: batched logits differ by %g", path, step, s, d);
            if (d > worst) worst = d;
            next[s] = 0;
            for (uint32_t v = 1; v < c->n_vocab; v++)
                if (a[v] > a[next[s]]) next[s] = (int32_t)v;
            int32_t best_batched = 0;
            for (uint32_t v = 1; v < c->n_vocab; v++)
                if (lm[i * c->n_vocab + v] > lm[i * c->n_vocab + best_batched]) best_batched = (int32_t)v;
            assert_int_equal(best_batched, next[s]);
            assert_int_equal(g3_context_n_past_seq(multi, s), g3_context_n_past(alone[s]));
        }
    }
    print_message("%s: batched decode of %d sequences x %d steps, max |d| %g\n", path, NS, STEPS, worst);

    /* refused, and nothing moves: a duplicate, a missing sequence, a bad id,
     * a batch wider than n_ubatch, a full sequence */
    uint32_t past[NS];
    for (uint32_t s = 0; s < NS; s++) past[s] = g3_context_n_past_seq(multi, s);
    const uint32_t dup[2] = {1, 1}, missing[2] = {0, NS};
    const int32_t ok2[2] = {2, 3}, bad2[2] = {2, (int32_t)c->n_vocab};
    assert_int_equal(g3_decode_batch(multi, dup, ok2, 2, lm, &err), -1);
    assert_non_null(strstr(err.msg, "twice"));
    assert_int_equal(g3_decode_batch(multi, missing, ok2, 2, lm, &err), -1);
    assert_non_null(strstr(err.msg, "does not exist"));
    const uint32_t two[2] = {0, 2};
    assert_int_equal(g3_decode_batch(multi, two, bad2, 2, lm, &err), -1);
    assert_non_null(strstr(err.msg, "outside the vocabulary"));
    uint32_t wide[9];
    int32_t wide_tok[9];
    for (int i = 0; i < 9; i++) wide[i] = 0, wide_tok[i] = 2;
    assert_int_equal(g3_decode_batch(multi, wide, wide_tok, 9, NULL, &err), -1);
    assert_non_null(strstr(err.msg, "batch size"));
    for (uint32_t s = 0; s < NS; s++) assert_int_equal(g3_context_n_past_seq(multi, s), past[s]);
    /* sequence 1 filled to the brim: a batch with it is refused whole */
    int32_t fill[128];
    for (int i = 0; i < 128; i++) fill[i] = 2;
    const uint32_t room = 128 - past[1];
    assert_int_equal(g3_eval_seq(multi, 1, fill, room, NULL, false, &err), 0);
    const uint32_t with_full[2] = {0, 1};
    assert_int_equal(g3_decode_batch(multi, with_full, ok2, 2, lm, &err), -1);
    assert_non_null(strstr(err.msg, "does not fit"));
    assert_int_equal(g3_context_n_past_seq(multi, 0), past[0]);
    /* truncating one sequence leaves the others */
    assert_int_equal(g3_context_truncate_seq(multi, 1, 0, &err), 0);
    assert_int_equal(g3_context_n_past_seq(multi, 1), 0);
    assert_int_equal(g3_context_n_past_seq(multi, 2), past[2]);

    for (uint32_t s = 0; s < NS; s++) g3_context_free(alone[s]);
    g3_context_free(multi);
    free(lm);
    free(la);
    g3_model_free(model);
}

static void test_decode_batch(void **state) {
    decode_batch_case(F32_MODEL, 1e-4f);
    decode_batch_case(GOLDEN "/models/g3-1b-s1234-q4_0.gguf", 1e-4f);
    decode_batch_case(GOLDEN "/models/g3-1b-s1234-q4_k_m.gguf", 1e-4f);
}

static void test_bad_sequences_are_refused(void **state) {
    g3_context_params p = {.n_ctx = 32};
    g3_context *ctx;
    g3_error err;
    assert_int_equal(g3_context_new(g_model, &p, &ctx, &err), 0);
    int32_t ok[3] = {2, 300, 301};
    assert_int_equal(g3_eval(ctx, ok, 3, NULL, false, &err), 0);

    int32_t bad[3] = {2, 796, 5};
    assert_int_equal(g3_eval(ctx, bad, 3, NULL, false, &err), -1);
    assert_non_null(strstr(err.msg, "token id 796 at index 1 is outside the vocabulary (796 tokens)"));
    bad[1] = -4;
    assert_int_equal(g3_eval(ctx, bad, 3, NULL, false, &err), -1);
    assert_non_null(strstr(err.msg, "token id -4"));
    assert_int_equal(g3_eval(ctx, ok, 0, NULL, false, &err), -1);
    assert_non_null(strstr(err.msg, "empty sequence"));
    assert_int_equal(g3_eval(ctx, g_long, 30, NULL, false, &err), -1);
    assert_non_null(strstr(err.msg, "30 positions does not fit the context: 3 already used, context size 32"));
    assert_int_equal(g3_context_n_past(ctx), 3); /* nothing changed */
    g3_context_free(ctx);
}

static void test_bad_model_files(void **state) {
    g3_model *m;
    g3_error err;
    assert_int_equal(g3_model_load(G3_TEST_TMP "/does-not-exist.gguf", &m, &err), -1);
    assert_non_null(strstr(err.msg, "does-not-exist.gguf"));
    assert_null(m);
    /* the vocabulary-only GGUF has no gemma3 keys */
    assert_int_equal(g3_model_load(G3_GOLDEN_DIR "/tokenizer/gemma3-vocab.gguf", &m, &err), -1);
    assert_true(strstr(err.msg, "gemma3") != NULL || strstr(err.msg, "architecture") != NULL);
    assert_null(m);
}

static void test_vision_prompt_layout(void **state) {
    const g3_config *c = g3_model_config(g_model);
    char *layout_text = (char *)tu_read_file(GOLDEN "/vision/img1-f32.layout.json", NULL);
    size_t embd_bytes, ref_bytes;
    float *embd = (float *)tu_read_file(GOLDEN "/vision/img1-f32.img_embd.f32", &embd_bytes);
    float *ref = (float *)tu_read_file(GOLDEN "/vision/img1-f32.logits.f32", &ref_bytes);
    assert_non_null(layout_text);
    assert_non_null(embd);
    assert_non_null(ref);
    cJSON *layout = cJSON_Parse(layout_text);
    assert_non_null(layout);
    g3_context_params p = {.n_ctx = 128};
    g3_context *ctx;
    g3_error err;
    assert_int_equal(g3_context_new(g_model, &p, &ctx, &err), 0);
    float *rows = calloc(64 * (size_t)c->n_vocab, sizeof(float));
    size_t n_rows = 0;
    const cJSON *chunk;
    cJSON_ArrayForEach(chunk, cJSON_GetObjectItem(layout, "chunks")) {
        const char *type = cJSON_GetObjectItem(chunk, "type")->valuestring;
        assert_int_equal(cJSON_GetObjectItem(chunk, "pos_start")->valueint, g3_context_n_past(ctx));
        if (strcmp(type, "image") == 0) {
            uint32_t n = (uint32_t)cJSON_GetObjectItem(chunk, "n_tokens")->valueint;
            assert_int_equal(embd_bytes, sizeof(float) * n * c->n_embd);
            if (g3_eval_embeddings(ctx, embd, n, true, NULL, false, &err)) fail_msg("%s", err.msg);
            continue;
        }
        const cJSON *toks = cJSON_GetObjectItem(chunk, "tokens");
        int32_t ids[64];
        uint32_t n = 0;
        const cJSON *t;
        cJSON_ArrayForEach(t, toks) ids[n++] = t->valueint;
        if (g3_eval(ctx, ids, n, rows + n_rows * c->n_vocab, true, &err)) fail_msg("%s", err.msg);
        n_rows += n;
    }
    assert_int_equal(ref_bytes, sizeof(float) * n_rows * c->n_vocab);
    float d = max_diff(rows, ref, n_rows * c->n_vocab);
    printf("vision prompt: max |d| vs llama.cpp over %zu text rows = %.3g\n", n_rows, d);
    assert_true(d < 1e-2f); /* llama.cpp's own f32 error is ~2e-3 */

    /* greedy continuation */
    const cJSON *greedy = cJSON_GetObjectItem(layout, "greedy");
    float *row = rows + (n_rows - 1) * c->n_vocab;
    const cJSON *g;
    cJSON_ArrayForEach(g, greedy) {
        int32_t best = 0;
        for (uint32_t v = 1; v < c->n_vocab; v++)
            if (row[v] > row[best]) best = (int32_t)v;
        assert_int_equal(best, g->valueint);
        assert_int_equal(g3_eval(ctx, &best, 1, row, false, &err), 0);
    }
    g3_context_free(ctx);
    cJSON_Delete(layout);
    free(rows);
    free(layout_text);
    free(embd);
    free(ref);
}

static void test_make_test_model(void **state) {
    g3_test_model_params p = {.shape = "tiny", .type = "f32", .seed = 7, .out_path = G3_TEST_TMP "/tm-a.gguf"};
    g3_error err;
    assert_int_equal(g3_make_test_model(&p, &err), 0);
    p.out_path = G3_TEST_TMP "/tm-b.gguf";
    assert_int_equal(g3_make_test_model(&p, &err), 0);
    p.type = "q8_0";
    p.out_path = G3_TEST_TMP "/tm-q8.gguf";
    assert_int_equal(g3_make_test_model(&p, &err), 0);
    p.type = "f32";
    p.seed = 8;
    p.out_path = G3_TEST_TMP "/tm-c.gguf";
    assert_int_equal(g3_make_test_model(&p, &err), 0);

    size_t na, nb, nc;
    uint8_t *a = tu_read_file(G3_TEST_TMP "/tm-a.gguf", &na), *b = tu_read_file(G3_TEST_TMP "/tm-b.gguf", &nb),
            *cc = tu_read_file(G3_TEST_TMP "/tm-c.gguf", &nc);
    assert_true(na == nb && memcmp(a, b, na) == 0); /* same seed, same bytes */
    assert_true(na == nc && memcmp(a, cc, na) != 0); /* another seed, other weights */
    free(a); free(b); free(cc);

    /* the generated files load; f32 and q8_0 of one seed are one model */
    g3_model *mf, *mq;
    assert_int_equal(g3_model_load(G3_TEST_TMP "/tm-a.gguf", &mf, &err), 0);
    assert_int_equal(g3_model_load(G3_TEST_TMP "/tm-q8.gguf", &mq, &err), 0);
    const g3_config *c = g3_model_config(mf);
    assert_int_equal(c->n_layer, 7);
    assert_true(c->is_global[5] && !c->is_global[4] && !c->is_global[6]);
    int32_t ids[40];
    for (int i = 0; i < 40; i++) ids[i] = 10 + (i * 37) % (int)(c->n_vocab - 10);
    float *lf = malloc(sizeof(float) * 40 * c->n_vocab), *lq = malloc(sizeof(float) * 40 * c->n_vocab);
    g3_context *cf, *cq;
    g3_context_params cp = {.n_ctx = 64};
    assert_int_equal(g3_context_new(mf, &cp, &cf, &err), 0);
    assert_int_equal(g3_context_new(mq, &cp, &cq, &err), 0);
    assert_int_equal(g3_eval(cf, ids, 40, lf, true, &err), 0);
    assert_int_equal(g3_eval(cq, ids, 40, lq, true, &err), 0);
    float d = max_diff(lf, lq, 40 * (size_t)c->n_vocab), spread = 0;
    for (size_t i = 0; i < 40 * (size_t)c->n_vocab; i++) spread = fmaxf(spread, fabsf(lf[i]));
    printf("generated tiny model: f32 vs q8_0 max |d| = %.3g (logit range %.3g)\n", d, spread);
    assert_true(d > 0 && d < 0.1f * spread);
    free(lf); free(lq);
    g3_context_free(cf); g3_context_free(cq);
    g3_model_free(mf); g3_model_free(mq);

    p.shape = "huge";
    assert_int_equal(g3_make_test_model(&p, &err), -1);
    assert_non_null(strstr(err.msg, "unknown shape 'huge'"));
    p.shape = "tiny";
    p.type = "iq2_xxs";
    assert_int_equal(g3_make_test_model(&p, &err), -1);
    assert_non_null(strstr(err.msg, "iq2_xxs"));
    remove(G3_TEST_TMP "/tm-a.gguf"); remove(G3_TEST_TMP "/tm-b.gguf");
    remove(G3_TEST_TMP "/tm-c.gguf"); remove(G3_TEST_TMP "/tm-q8.gguf");
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_batching_does_not_change_logits),
        cmocka_unit_test(test_rollback),
        cmocka_unit_test(test_long_history_decode),
        cmocka_unit_test(test_decode_batch),
        cmocka_unit_test(test_bad_sequences_are_refused),
        cmocka_unit_test(test_bad_model_files),
        cmocka_unit_test(test_vision_prompt_layout),
        cmocka_unit_test(test_make_test_model),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
