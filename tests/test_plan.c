/* test_plan: the memory planner.
 * - KV cache and weights of the real shapes against hand arithmetic (27B
 *   int4 at 32K: full attention vs the sliding-window cache; the Q4_K_M mix
 *   and its fallbacks for the 1B's 1152-wide rows);
 * - one source of truth: the KV allocator allocates exactly the planner's
 *   bytes, and a built-in plan equals the plan of the file make-test-model
 *   writes for that shape;
 * - resident memory: a process that loads a model, creates a context and
 *   fills it grows by the plan (weights + KV + scratch, plus the mapped file
 *   header) within 5% + 1 MiB;
 * - `gemma-chat plan`: --json rows with exactly the keys, -m FILE,
 *   --verbose, and refusals of bad options. */
#include <cjson/cJSON.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#if defined(__GLIBC__)
#include <malloc.h>
#include <math.h>
#endif

#include <cmocka.h>

#include "gemma3.h"
#include "gemma3_plan.h"
#include "model/kv_cache.h"
#include "model/gemma3_forward.h"
#include "model/gguf.h"
#include "model/memory_plan.h"
#include "model/siglip.h"
#include "model/gemma3_shapes.h"
#include "tensor/type_info.h"
#include "tensor/type_ops.h"
#include "test_util.h"

#define TINY_Q8 G3_TEST_TMP "/plan-tiny-q8_0.gguf"
#define MMPROJ_4B G3_TEST_TMP "/plan-mmproj-4b-q8_0.gguf"

static g3_plan plan_or_fail(const char *model, g3_ftype f, uint32_t n_ctx, g3_kv_type kv) {
    g3_plan p;
    g3_error err;
    g3_plan_params params = {.n_ctx = n_ctx, .kv_type = kv};
    if (g3_plan_builtin(model, f, &params, &p, &err)) fail_msg("%s", err.msg);
    return p;
}

/* 27B: 62 layers, 10 global (il % 6 == 5), kv heads 16 x head_dim 128, window 1024. */
static void test_kv_27b_hand_arithmetic(void **state) {
    (void)state;
    const uint64_t n_ctx = 32768, kv_dim = 16 * 128, ring = 1024 + 512;
    /* bf16: keys + values = 2 x 2048 x 2 B = 8192 B per position per layer */
    g3_plan p = plan_or_fail("27b", G3_FTYPE_Q4_0, 32768, G3_KV_BF16);
    assert_int_equal(p.n_global, 10);
    assert_int_equal(p.n_local, 52);
    assert_int_equal(p.n_ubatch, 512);
    assert_int_equal(p.local_slots, ring);
    assert_int_equal(p.kv_position_bytes, 2 * kv_dim * 2);
    assert_int_equal(p.kv_full_bytes, 62 * n_ctx * 8192);                      /* 16.64 GB */
    assert_int_equal(p.kv_full_bytes, 16642998272ull);
    assert_int_equal(p.kv_window_bytes, 10 * n_ctx * 8192 + 52 * ring * 8192); /* 3.34 GB */
    assert_int_equal(p.kv_window_bytes, 3338665984ull);
    /* q8_0: 34 B per 32 elements -> 2 x 64 blocks x 34 B = 4352 B */
    g3_plan q = plan_or_fail("27b", G3_FTYPE_Q4_0, 32768, G3_KV_Q8_0);
    assert_int_equal(q.kv_position_bytes, 4352);
    assert_int_equal(q.kv_full_bytes, 62 * n_ctx * 4352);
    assert_int_equal(q.kv_window_bytes, (10 * n_ctx + 52 * ring) * 4352);
    /* 128K with a q8_0 cache: the 24 GB target */
    g3_plan big = plan_or_fail("27b", G3_FTYPE_Q4_0, 131072, G3_KV_Q8_0);
    assert_int_equal(big.kv_window_bytes, (10 * 131072ull + 52 * ring) * 4352);
    assert_true(big.total_bytes < 24000000000ull);
    /* f16 is bf16's size; the scratch is the context's own formula: the
     * activations of a 512-row batch (x, xb: 5376; q, att: 4096; new k, v:
     * 2048; the feed-forward: 21504, in f32) plus per-thread buffers */
    g3_plan h = plan_or_fail("27b", G3_FTYPE_Q4_0, 32768, G3_KV_F16);
    assert_int_equal(h.kv_window_bytes, p.kv_window_bytes);
    g3_config cfg27;
    g3_error e27;
    assert_int_equal(g3_shape_config("27b", &cfg27, &e27), 0);
    /* (27b has the vision encoder: its one-image scratch is counted beside the context's) */
    assert_int_equal(p.scratch_bytes, g3_forward_scratch_bytes(&cfg27, 32768, 512, 0) + p.vision_scratch_bytes);
    const uint64_t acts = 4ull * 512 * (2 * 5376 + 2 * 4096 + 2 * 2048 + 21504);
    const uint64_t text_scratch = p.scratch_bytes - p.vision_scratch_bytes;
    assert_true(text_scratch > acts && text_scratch < acts + (128ull << 20));
    assert_int_equal(p.total_bytes, p.weights_bytes + p.kv_window_bytes + p.scratch_bytes);
}

/* 27B Q4_0 weights: token_embd (tied output) Q6_K, matrices Q4_0, norms F32;
 * vision: SigLIP matrices Q4_0 except ffn_down (rows of 4304, not a multiple
 * of 32: F16), patch and position embeddings kept BF16. */
static void test_weights_27b_q4_0_hand_arithmetic(void **state) {
    (void)state;
    const uint64_t E = 5376, F = 21504, W = 1152, VF = 4304;
    const uint64_t embd = 262144 * (E / 256) * 210;
    const uint64_t layer = (2 * E * 4096 + 2 * E * 2048 + 3 * E * F) / 32 * 18 + (4 * E + 2 * 128) * 4;
    const uint64_t text = embd + 62 * layer + E * 4;
    const uint64_t vlayer = (4 * W * W + W * VF) / 32 * 18 + VF * W * 2 + (5 * W + VF) * 4 + 4 * W * 4;
    const uint64_t vision = 14 * 14 * 3 * W * 2 + W * 4 + W * 4096 * 2 + 27 * vlayer + 2 * W * 4 +
                            E * W / 32 * 18 + W * 4;
    g3_plan p = plan_or_fail("27b", G3_FTYPE_Q4_0, 32768, G3_KV_BF16);
    assert_int_equal(p.text_weights_bytes, text);
    assert_int_equal(p.vision_weights_bytes, vision);
    assert_int_equal(p.type_count[G3_TYPE_Q6_K], 1);
    assert_int_equal(p.type_bytes[G3_TYPE_Q6_K], embd);
    printf("27b q4_0: text %.3f GB + vision %.3f GB\n", text / 1e9, vision / 1e9);
    /* bf16: 2 bytes per element of every matrix */
    g3_plan b = plan_or_fail("27b", G3_FTYPE_BF16, 32768, G3_KV_BF16);
    assert_int_equal(b.text_weights_bytes,
                     (262144 * E + 62 * (2 * E * 4096 + 2 * E * 2048 + 3 * E * F)) * 2 +
                         (62 * (4 * E + 256) + E) * 4);
}

/* 1B Q4_K_M: rows of 1152 do not hold 256-blocks, so Q4_K falls back to
 * Q5_0 and Q6_K to Q8_0; attn_output (rows of 1024) and ffn_down (6912)
 * keep Q4_K / Q6_K. "More bits" layers of 26: il < 3, il >= 22, or
 * (il - 3) % 3 == 2: 0 1 2 5 8 11 14 17 20 22 23 24 25 (13 layers). */
static void test_q4_k_m_mix_1b(void **state) {
    (void)state;
    g3_plan p = plan_or_fail("1b", G3_FTYPE_Q4_K_M, 32768, G3_KV_BF16);
    assert_int_equal(p.type_count[G3_TYPE_Q8_0], 1 + 13); /* token_embd, attn_v of the 13 */
    assert_int_equal(p.type_count[G3_TYPE_Q6_K], 13);     /* ffn_down of the 13 */
    assert_int_equal(p.type_count[G3_TYPE_Q4_K], 26 + 13); /* attn_output, the other ffn_down */
    assert_int_equal(p.type_count[G3_TYPE_Q5_0], 26 * 4 + 13); /* q, k, gate, up; the other attn_v */
    assert_int_equal(p.type_count[G3_TYPE_F32], 26 * 6 + 1);
    assert_int_equal(p.vision_weights_bytes, 0);
    /* Q4_0: the tied embedding wants Q6_K, 1152 falls back to Q8_0 */
    g3_plan q = plan_or_fail("1b", G3_FTYPE_Q4_0, 32768, G3_KV_BF16);
    assert_int_equal(q.type_count[G3_TYPE_Q8_0], 1);
    assert_int_equal(q.type_bytes[G3_TYPE_Q8_0], 262144ull * 1152 / 32 * 34);
}

/* The allocator's bytes are the planner's, layer by layer, for every KV type. */
static void test_kv_allocator_is_the_plan(void **state) {
    (void)state;
    static const char *const shapes[] = {"tiny", "1b", "4b"};
    static const g3_kv_type types[] = {G3_KV_F32, G3_KV_F16, G3_KV_BF16, G3_KV_Q8_0};
    static const double bytes_per_value[] = {4, 2, 2, 34.0 / 32};
    for (size_t s = 0; s < 3; s++) {
        for (size_t ti = 0; ti < 4; ti++) {
            g3_config c;
            g3_error err;
            assert_int_equal(g3_shape_config(shapes[s], &c, &err), 0);
            g3_kv_cache kv;
            const uint32_t n_ctx = 8192, slack = 300;
            assert_int_equal(g3_kv_cache_init(&kv, &c, n_ctx, slack, types[ti], &err), 0);
            uint64_t sum = 0;
            for (uint32_t il = 0; il < c.n_layer; il++) {
                assert_int_equal(kv.n_slots[il], g3_plan_kv_layer_slots(&c, il, n_ctx, slack));
                assert_int_equal(kv.n_slots[il], il % 6 == 5 ? n_ctx : c.window + slack);
                sum += (uint64_t)(2.0 * kv.n_slots[il] * kv.kv_dim * bytes_per_value[ti]);
            }
            assert_int_equal(kv.bytes, sum);
            assert_int_equal(kv.bytes, g3_plan_kv_bytes(&c, n_ctx, slack, types[ti]));
            g3_kv_cache_free(&kv);
        }
    }
}

/* --parallel N: N KV caches, one scratch, as g3_context_new allocates a
 * context of N sequences. */
static void test_parallel_sequences_are_planned(void **state) {
    (void)state;
    const char *path = G3_GOLDEN_DIR "/tiny-gemma3/models/g3-1b-s1234-f32.gguf";
    g3_error err;
    g3_plan one, three;
    g3_plan_params pp = {.n_ctx = 128, .kv_type = G3_KV_F16, .n_parallel = 1};
    assert_int_equal(g3_plan_file(path, NULL, &pp, &one, &err), 0);
    pp.n_parallel = 3;
    assert_int_equal(g3_plan_file(path, NULL, &pp, &three, &err), 0);
    assert_int_equal(three.kv_window_bytes, 3 * one.kv_window_bytes);
    assert_int_equal(three.scratch_bytes, one.scratch_bytes);
    g3_model *m;
    assert_int_equal(g3_model_load(path, &m, &err), 0);
    g3_context_params cp = {.n_ctx = 128, .kv_type = G3_KV_F16, .n_seq = 3};
    uint64_t kv, scratch;
    assert_int_equal(g3_context_memory(m, &cp, &kv, &scratch, &err), 0);
    assert_int_equal(kv, three.kv_window_bytes);
    assert_int_equal(scratch, three.scratch_bytes);
    g3_model_free(m);
}

/* q8_0 blocks must not straddle heads: a head size of 48 is refused by the
 * planner and the allocator with the same message. */
static void test_kv_type_must_fit_heads(void **state) {
    (void)state;
    g3_config c;
    g3_error err;
    assert_int_equal(g3_shape_config("tiny", &c, &err), 0);
    c.head_dim = 48;
    c.n_head_kv = 2; /* 96 values per row: whole blocks, but not per head */
    g3_kv_cache kv;
    assert_int_equal(g3_kv_cache_init(&kv, &c, 64, 8, G3_KV_Q8_0, &err), -1);
    assert_non_null(strstr(err.msg, "multiple of 32"));
    assert_non_null(strstr(err.msg, "48"));
    assert_int_equal(g3_plan_kv_row_bytes(&c, G3_KV_Q8_0), 0);
    assert_int_equal(g3_kv_cache_init(&kv, &c, 64, 8, G3_KV_F16, &err), 0);
    assert_int_equal(kv.row_bytes, 2 * 48 * 2);
    g3_kv_cache_free(&kv);
}

/* The f16 KV store (F16C where the CPU has it) writes the bits of the
 * reference conversion after saturation to +-65504: ties, subnormals, the
 * f16 limits, infinities and NaNs (kept NaN). */
static void test_kv_f16_store_is_the_reference(void **state) {
    (void)state;
    g3_config c;
    g3_error err;
    assert_int_equal(g3_shape_config("tiny", &c, &err), 0);
    g3_kv_cache kv;
    assert_int_equal(g3_kv_cache_init(&kv, &c, 16, 0, G3_KV_F16, &err), 0);
    const uint32_t n = kv.kv_dim;
    float *x = malloc(sizeof(float) * n), *y = malloc(sizeof(float) * n);
    assert_non_null(x);
    assert_non_null(y);
    const float special[] = {65504.0f, 65519.0f, 65520.0f, 70000.0f, -1e30f, 1e-8f, -3e-6f, 5.96e-8f, 2.98e-8f,
                             -0.0f, 1.0f + 1.0f / 2048, 1.0f + 3.0f / 2048, INFINITY, -INFINITY, NAN, -NAN};
    uint64_t rng = 42;
    for (uint32_t i = 0; i < n; i++) {
        x[i] = i < sizeof special / sizeof special[0] ? special[i] : 300.0f * tu_randf(&rng);
        y[i] = 1e-3f * tu_randf(&rng);
    }
    g3_kv_cache_store(&kv, 0, 3, x, y);
    const uint16_t *k = (const uint16_t *)(kv.k[0] + 3 * kv.row_bytes), *v = (const uint16_t *)(kv.v[0] + 3 * kv.row_bytes);
    for (uint32_t i = 0; i < n; i++) {
        const float xs = x[i] > 65504.0f ? 65504.0f : x[i] < -65504.0f ? -65504.0f : x[i];
        if (k[i] != g3_f32_to_f16(xs)) fail_msg("key %u (%g): 0x%04x, want 0x%04x", i, x[i], k[i], g3_f32_to_f16(xs));
        if (v[i] != g3_f32_to_f16(y[i])) fail_msg("value %u (%g): 0x%04x, want 0x%04x", i, y[i], v[i], g3_f32_to_f16(y[i]));
    }
    free(x);
    free(y);
    g3_kv_cache_free(&kv);
}

/* make-test-model ARGS -o PATH; 0 on success */
static int make_model(const char *args, const char *path) {
    char cmd[1024];
    snprintf(cmd, sizeof cmd, "%s make-test-model %s --quiet -o %s 2>&1", G3_BINARY, args, path);
    int status;
    char *out = tu_run(cmd, &status);
    free(out);
    return status == 0 ? 0 : -1;
}

static int make_tiny(void **state) {
    (void)state;
    return make_model("--shape tiny --type q8_0 --seed 7", TINY_Q8);
}

/* make-test-model's tiny Q8_0 is what the quantizer's Q8_0 rules give
 * (token_embd stays Q8_0): the built-in enumeration of tensors must count
 * exactly the file's bytes. */
static void test_builtin_equals_file(void **state) {
    (void)state;
    g3_plan b = plan_or_fail("tiny", G3_FTYPE_Q8_0, 512, G3_KV_F32), f;
    g3_plan_params params = {.n_ctx = 512};
    g3_error err;
    if (g3_plan_file(TINY_Q8, NULL, &params, &f, &err)) fail_msg("%s", err.msg);
    assert_int_equal(b.weights_bytes, f.weights_bytes);
    assert_int_equal(b.kv_window_bytes, f.kv_window_bytes);
    assert_int_equal(b.scratch_bytes, f.scratch_bytes);
    assert_int_equal(b.total_bytes, f.total_bytes);
    assert_memory_equal(b.type_count, f.type_count, sizeof b.type_count);
    assert_string_equal(f.format, "q8_0"); /* make-test-model writes general.file_type */
}

/* Resident set size in bytes: smaps_rollup walks the page tables (exact);
 * VmRSS may lag by per-thread counter batches. */
static uint64_t rss_bytes(void) {
    static const char *const files[] = {"/proc/self/smaps_rollup", "/proc/self/status"};
    static const char *const keys[] = {"Rss: %llu kB", "VmRSS: %llu kB"};
    for (int i = 0; i < 2; i++) {
        FILE *f = fopen(files[i], "r");
        if (!f) continue;
        char line[256];
        unsigned long long kb;
        while (fgets(line, sizeof line, f))
            if (sscanf(line, keys[i], &kb) == 1) {
                fclose(f);
                return kb * 1024;
            }
        fclose(f);
    }
    return 0;
}

/* Load, create a context, fill every position, and compare the growth of
 * the resident set with the plan. The tiny model with a large batch keeps
 * this fast on the scalar engine while KV + scratch are most of the memory:
 * n_ctx 6144, n_ubatch 3072 -> local rings of 16 + 3072 slots, a 6144-slot
 * global layer, 3072-row scratch. Filling in two full batches touches every
 * KV slot and scratch row; asking for the last logits reads the whole tied
 * embedding. Constant: 1 MiB for the norm copies, GGUF tables, context and
 * malloc bookkeeping (all small here). */
static void resident_memory_is_the_plan(g3_kv_type kv_type) {
#if defined(__SANITIZE_ADDRESS__)
    skip(); /* shadow memory and redzones are not the program's */
#endif
    const uint32_t n_ctx = 6144, n_ubatch = 3072;
    int32_t *tokens = malloc(sizeof *tokens * n_ctx);
    float *logits = malloc(sizeof(float) * 4096);
    assert_non_null(tokens);
    for (uint32_t i = 0; i < n_ctx; i++) tokens[i] = 10 + (int32_t)(i * 7 % 380);
    memset(logits, 0, sizeof(float) * 4096);

    const uint64_t before = rss_bytes();
    g3_model *m;
    g3_context *ctx;
    g3_error err;
    if (g3_model_load(TINY_Q8, &m, &err)) fail_msg("%s", err.msg);
    assert_true(g3_model_config(m)->n_vocab <= 4096);
    g3_plan_params pp = {.n_ctx = n_ctx, .n_ubatch = n_ubatch, .kv_type = kv_type};
    g3_plan plan;
    if (g3_plan_model(m, &pp, &plan, &err)) fail_msg("%s", err.msg);
    g3_context_params cp = {.n_ctx = n_ctx, .n_ubatch = n_ubatch, .kv_type = kv_type};
    if (g3_context_new(m, &cp, &ctx, &err)) fail_msg("%s", err.msg);
    for (uint32_t done = 0; done < n_ctx; done += n_ubatch)
        if (g3_eval(ctx, tokens + done, n_ubatch, done + n_ubatch == n_ctx ? logits : NULL, false, &err))
            fail_msg("%s", err.msg);
    const uint64_t after = rss_bytes();

    const double grew = (double)after - (double)before;
    const double expected = (double)plan.total_bytes + (double)plan.header_bytes;
    const double slack = 0.05 * expected + 1048576.0;
    printf("%s KV cache: resident memory grew %.2f MiB; plan %.2f MiB (weights %.2f + header %.2f + KV %.2f + "
           "scratch %.2f); difference %+.2f MiB, allowed +-%.2f MiB\n",
           g3_kv_type_name(kv_type), grew / 1048576, expected / 1048576, plan.weights_bytes / 1048576.0,
           plan.header_bytes / 1048576.0, plan.kv_window_bytes / 1048576.0,
           plan.scratch_bytes / 1048576.0, (grew - expected) / 1048576, slack / 1048576);
    assert_true(plan.kv_window_bytes + plan.scratch_bytes > plan.weights_bytes); /* KV matters here */
    assert_true(grew >= expected - slack && grew <= expected + slack);
    g3_context_free(ctx);
    g3_model_free(m);
    free(tokens);
    free(logits);
}

static void test_resident_memory_is_the_plan_f32(void **state) {
    (void)state;
    resident_memory_is_the_plan(G3_KV_F32);
}

static void test_resident_memory_is_the_plan_q8_0(void **state) {
    (void)state;
    resident_memory_is_the_plan(G3_KV_Q8_0);
}

static void test_warnings_and_fit(void **state) {
    (void)state;
    g3_plan p = plan_or_fail("1b", G3_FTYPE_Q4_0, 65536, G3_KV_BF16);
    assert_non_null(strstr(p.warning, "trained length 32768"));
    g3_plan ok = plan_or_fail("1b", G3_FTYPE_Q4_0, 32768, G3_KV_BF16);
    assert_string_equal(ok.warning, "");
    g3_error err;
    assert_int_equal(g3_plan_check_fit(&ok, ok.total_bytes, &err), 0);
    assert_int_equal(g3_plan_check_fit(&ok, ok.total_bytes - 1, &err), -1);
    assert_non_null(strstr(err.msg, "available"));
    assert_non_null(strstr(err.msg, "needs"));
    g3_plan_params bad = {.n_ctx = G3_PLAN_MAX_CTX + 1};
    assert_int_equal(g3_plan_builtin("1b", G3_FTYPE_Q4_0, &bad, &p, &err), -1);
    assert_int_equal(g3_plan_builtin("2b", G3_FTYPE_Q4_0, NULL, &p, &err), -1);
    assert_non_null(strstr(err.msg, "unknown shape"));
}

static cJSON *run_json(const char *args, int *status) {
    char cmd[1024];
    snprintf(cmd, sizeof cmd, "%s plan %s", G3_BINARY, args);
    char *out = tu_run(cmd, status);
    assert_non_null(out);
    cJSON *j = cJSON_Parse(out);
    if (!j) fail_msg("not JSON: %s", out);
    free(out);
    return j;
}

static void check_row_keys(const cJSON *row) {
    static const char *const keys[] = {"model", "weights", "kv_type", "ctx", "weights_bytes",
                                       "kv_full_bytes", "kv_window_bytes", "scratch_bytes", "total_bytes"};
    int n = 0;
    for (const cJSON *c = row->child; c; c = c->next) n++;
    assert_int_equal(n, 9);
    for (size_t i = 0; i < 9; i++) assert_non_null(cJSON_GetObjectItemCaseSensitive(row, keys[i]));
    double total = cJSON_GetObjectItem(row, "weights_bytes")->valuedouble +
                   cJSON_GetObjectItem(row, "kv_window_bytes")->valuedouble +
                   cJSON_GetObjectItem(row, "scratch_bytes")->valuedouble;
    assert_true(total == cJSON_GetObjectItem(row, "total_bytes")->valuedouble);
}

static void test_cli(void **state) {
    (void)state;
    int status;
    cJSON *all = run_json("--json", &status);
    assert_int_equal(status, 0);
    assert_int_equal(cJSON_GetArraySize(all), 4 * 4 * 3);
    bool found = false;
    for (cJSON *row = all->child; row; row = row->next) {
        check_row_keys(row);
        if (strcmp(cJSON_GetObjectItem(row, "model")->valuestring, "27b") == 0 &&
            strcmp(cJSON_GetObjectItem(row, "weights")->valuestring, "q4_0") == 0 &&
            strcmp(cJSON_GetObjectItem(row, "kv_type")->valuestring, "bf16") == 0) {
            found = true;
            assert_true(cJSON_GetObjectItem(row, "ctx")->valuedouble == 32768);
            assert_true(cJSON_GetObjectItem(row, "kv_window_bytes")->valuedouble == 3338665984.0);
            assert_true(cJSON_GetObjectItem(row, "kv_full_bytes")->valuedouble == 16642998272.0);
        }
    }
    assert_true(found);
    cJSON_Delete(all);

    char args[512];
    snprintf(args, sizeof args, "-m %s --ctx 1000 --kv-type q8_0 --json", TINY_Q8);
    cJSON *one = run_json(args, &status);
    assert_int_equal(status, 0);
    assert_int_equal(cJSON_GetArraySize(one), 1);
    check_row_keys(one->child);
    assert_string_equal(cJSON_GetObjectItem(one->child, "kv_type")->valuestring, "q8_0");
    cJSON_Delete(one);

    snprintf(args, sizeof args, "%s plan --model 27b --weights q4_k_m --kv-type bf16 --verbose", G3_BINARY);
    char *text = tu_run(args, &status);
    assert_int_equal(status, 0);
    assert_non_null(strstr(text, "10 global"));
    assert_non_null(strstr(text, "52 local"));
    assert_non_null(strstr(text, "the project's analysis"));
    free(text);

    static const char *const bad[] = {"--kv-type q5_1", "--ctx 0", "--ctx 99999999", "--weights q2_k",
                                      "--model 7b", "--mmproj x.gguf", "--frobnicate"};
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        snprintf(args, sizeof args, "%s plan %s 2>&1", G3_BINARY, bad[i]);
        text = tu_run(args, &status);
        if (status != 2 || !strstr(text, "gemma-chat plan:"))
            fail_msg("plan %s: status %d, output %s", bad[i], status, text);
        free(text);
    }
    snprintf(args, sizeof args, "%s plan -m %s/missing.gguf 2>&1", G3_BINARY, G3_TEST_TMP);
    text = tu_run(args, &status);
    assert_int_equal(status, 1);
    assert_non_null(strstr(text, "missing.gguf"));
    free(text);
}

/* A refused plan names the longest context that fits, and it is exact:
 * that -c loads, one more position is refused. */
static void test_refusal_suggests_a_context(void **state) {
    (void)state;
    char cmd[1024];
    int status;
    snprintf(cmd, sizeof cmd, "G3_MEM_LIMIT=5M %s run -m %s -p hi -n 1 --temp 0 2>&1", G3_BINARY, TINY_Q8);
    char *out = tu_run(cmd, &status);
    assert_non_null(out);
    const char *at = strstr(out, "-c ");
    unsigned n = 0;
    if (status != 1 || !at || sscanf(at, "-c %u would fit", &n) != 1 || n < 16 || n >= 512)
        fail_msg("%s: status %d, output:\n%s", cmd, status, out);
    free(out);
    snprintf(cmd, sizeof cmd, "G3_MEM_LIMIT=5M %s run -m %s -p hi -n 1 --temp 0 -c %u 2>&1", G3_BINARY, TINY_Q8, n);
    out = tu_run(cmd, &status);
    if (status != 0) fail_msg("%s: status %d, output:\n%s", cmd, status, out);
    free(out);
    snprintf(cmd, sizeof cmd, "G3_MEM_LIMIT=5M %s run -m %s -p hi -n 1 --temp 0 -c %u 2>&1", G3_BINARY, TINY_Q8,
             n + 1);
    out = tu_run(cmd, &status);
    if (status != 1 || !strstr(out, "available")) fail_msg("%s: status %d, output:\n%s", cmd, status, out);
    free(out);
    snprintf(cmd, sizeof cmd, "G3_MEM_LIMIT=1M %s run -m %s -p hi -n 1 2>&1", G3_BINARY, TINY_Q8);
    out = tu_run(cmd, &status);
    if (status != 1 || !strstr(out, "Even the smallest context does not fit"))
        fail_msg("%s: status %d, output:\n%s", cmd, status, out);
    free(out);
}

/* The vision encoder's scratch: the built-in 4b plan counts what a 4b
 * mmproj file plans (the same formula g3_vision_load allocates from);
 * an mmproj of another size is refused naming both widths. */
static void test_vision_scratch_is_planned(void **state) {
    (void)state;
    assert_int_equal(make_model("--shape 4b --vision --type q8_0 --seed 3", MMPROJ_4B), 0);
    g3_plan b = plan_or_fail("4b", G3_FTYPE_Q8_0, 4096, G3_KV_F16);
    g3_gguf *mm;
    g3_error err;
    if (g3_gguf_open(MMPROJ_4B, &mm, &err)) fail_msg("%s", err.msg);
    uint64_t file_bytes = 0;
    if (g3_siglip_plan_file(mm, 2560, 0, &file_bytes, &err)) fail_msg("%s", err.msg);
    printf("4b vision scratch: built-in plan %.1f MiB, file plan %.1f MiB\n", b.vision_scratch_bytes / 1048576.0,
           file_bytes / 1048576.0);
    assert_true(b.vision_scratch_bytes > 100u << 20); /* 4096 patches x 1152 wide, 6+ buffers */
    assert_int_equal(b.vision_scratch_bytes, file_bytes);
    assert_int_equal(g3_siglip_plan_file(mm, 1152, 0, &file_bytes, &err), -1);
    assert_non_null(strstr(err.msg, "2560"));
    assert_non_null(strstr(err.msg, "1152"));
    g3_gguf_close(mm);
    /* a text-only plan has none; its scratch is the context's alone */
    g3_plan t = plan_or_fail("1b", G3_FTYPE_Q8_0, 4096, G3_KV_F16);
    assert_int_equal(t.vision_scratch_bytes, 0);
    remove(MMPROJ_4B);
}

/* run plans before it loads: a context far past the trained length (512
 * for the tiny shape) is refused, one past it warns; a plan above the
 * memory available (G3_MEM_LIMIT here) is refused with the numbers unless
 * --force; a bad --kv-type names the flag. */
static void test_run_preflight(void **state) {
    (void)state;
    static const struct {
        const char *env, *args;
        int status;
        const char *expect;
    } cases[] = {
        {"", "-c 4096", 1, "more than 4 times the model's trained context length (512)"},
        {"", "-c 1024", 0, "longer than the model's trained context length 512"},
        {"G3_MEM_LIMIT=4M", "", 1, "but the machine has 4.2 MB available"},
        {"G3_MEM_LIMIT=4M", "--force", 0, "loading anyway (--force)"},
        {"", "--kv-type q4_0", 2, "--kv-type must be f16, bf16, q8_0 or f32, got 'q4_0'"},
        {"", "--kv-type q8_0 -v", 0, "q8_0 KV"},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        char cmd[1024];
        snprintf(cmd, sizeof cmd, "%s %s run -m %s -p hi -n 2 --temp 0 %s 2>&1", cases[i].env, G3_BINARY, TINY_Q8,
                 cases[i].args);
        int status;
        char *out = tu_run(cmd, &status);
        assert_non_null(out);
        if (status != cases[i].status || !strstr(out, cases[i].expect))
            fail_msg("%s: status %d (expected %d), output:\n%s", cmd, status, cases[i].status, out);
        free(out);
    }
}

int main(void) {
#if defined(__GLIBC__)
    /* Large buffers always mapped and unmapped: memory freed by one
     * resident-memory test is not quietly reused by the next. */
    mallopt(M_MMAP_THRESHOLD, 128 * 1024);
#endif
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_kv_27b_hand_arithmetic),
        cmocka_unit_test(test_weights_27b_q4_0_hand_arithmetic),
        cmocka_unit_test(test_q4_k_m_mix_1b),
        cmocka_unit_test(test_kv_allocator_is_the_plan),
        cmocka_unit_test(test_parallel_sequences_are_planned),
        cmocka_unit_test(test_builtin_equals_file),
        cmocka_unit_test(test_kv_type_must_fit_heads),
        cmocka_unit_test(test_kv_f16_store_is_the_reference),
        cmocka_unit_test(test_resident_memory_is_the_plan_f32),
        cmocka_unit_test(test_resident_memory_is_the_plan_q8_0),
        cmocka_unit_test(test_warnings_and_fit),
        cmocka_unit_test(test_cli),
        cmocka_unit_test(test_run_preflight),
        cmocka_unit_test(test_vision_scratch_is_planned),
        cmocka_unit_test(test_refusal_suggests_a_context),
    };
    return cmocka_run_group_tests(tests, make_tiny, NULL);
}
