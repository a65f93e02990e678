/* test_cuda_ops.c: the CUDA backend against the scalar CPU reference.
 *
 * Every operation of src/cuda/ on random inputs and odd sizes (rows not a
 * multiple of any block, K = 640 and 2560 + 32, batches of 1, 3, 8 rows for
 * the matrix-vector kernel and 9, 70 for the GEMMs), then whole models: the
 * golden tiny models through a CUDA context against a CPU context (all
 * logits of a prompt in one pass and in chunks, the greedy continuation,
 * batched decoding of several sequences, f32 and f16 KV caches).
 *
 * The golden models are also held to the golden README's rule (a) through
 * the CUDA forward pass: logits within 5e-3 of exact.f32 and the 20 greedy
 * tokens of exact_greedy.json, in one pass and in chunks of 7.
 *
 * Without a GPU (or a build without the backend) the program prints why and
 * exits 77, which CTest reports as a skip. It needs nothing but the library
 * (no cmocka): scripts/device-check.sh builds it on a GPU machine that has
 * only a compiler and the CUDA toolkit. The first failure ends it (exit 1). */
#include <math.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cuda/g3_cuda.h"
#include "gemma3.h"
#include "tensor/ops.h"
#include "tensor/type_info.h"
#include "tensor/type_ops.h"

#define fail_msg(...)                                                                                              \
    do {                                                                                                           \
        fprintf(stderr, "test_cuda_ops: FAIL: " __VA_ARGS__);                                                      \
        fputc('\n', stderr);                                                                                       \
        exit(1);                                                                                                   \
    } while (0)
#define assert_true(c)                                                                                             \
    do {                                                                                                           \
        if (!(c)) fail_msg("%s:%d: %s", __FILE__, __LINE__, #c);                                                    \
    } while (0)
#define assert_non_null(p) assert_true((p) != NULL)
#define assert_int_equal(a, b) assert_true((long long)(a) == (long long)(b))
#define assert_int_not_equal(a, b) assert_true((long long)(a) != (long long)(b))

/* uniform in [-1, 1) (xorshift) */
static float tu_randf(uint64_t *s) {
    *s ^= *s << 13;
    *s ^= *s >> 7;
    *s ^= *s << 17;
    return (float)((*s >> 40) * (1.0 / 8388608.0)) - 1.0f;
}

static uint64_t g_rng = 0x9e3779b97f4a7c15ull;

static void fill(float *x, size_t n, float scale) {
    for (size_t i = 0; i < n; i++) x[i] = tu_randf(&g_rng) * scale;
}

/* ---- no GPU needed: the weight layout. Each native type's rows, repacked
 * as the upload does and read by the kernels' own loaders compiled for the
 * host, equal the reference dequantizer's. Values vary in magnitude per 32
 * so that the K-quants' 6-bit scales and mins take many values (the high
 * bits of sub-blocks 4-7 included). ---- */

static void test_dequant_host(void **state) {
    (void)state;
    const uint32_t types[] = {G3_TYPE_Q4_0, G3_TYPE_Q8_0, G3_TYPE_Q4_K, G3_TYPE_Q6_K,
                              G3_TYPE_F16,  G3_TYPE_BF16, G3_TYPE_F32};
    const uint32_t K = 1280, rows = 5;
    float *src = malloc(sizeof(float) * K), *ref = malloc(sizeof(float) * K), *got = malloc(sizeof(float) * K);
    uint8_t *w = malloc(K * 4 * rows);
    assert_true(src && ref && got && w);
    for (size_t i = 0; i < sizeof types / sizeof *types; i++) {
        const g3_type_ops *ops = g3_type_ops_get(types[i]);
        const g3_type_info *ti = g3_type_info_get(types[i]);
        const uint64_t rb = (uint64_t)K / ti->block_size * ti->block_bytes;
        for (uint32_t r = 0; r < rows; r++) {
            for (uint32_t k = 0; k < K; k++) {
                const float sub = 0.01f + 5.0f * (tu_randf(&g_rng) + 1.0f) * (float)((k / 32) % 7 + 1) / 7.0f;
                src[k] = tu_randf(&g_rng) * sub + (k % 64 < 32 ? 0.3f * sub : 0.0f);
            }
            ops->from_float(src, w + r * rb, K);
        }
        const g3_matrix m = {.data = w, .type = types[i], .n_in = K, .n_out = rows, .row_bytes = rb};
        for (uint32_t r = 0; r < rows; r++) {
            g3_error err = {{0}};
            if (g3_cuda_test_dequant_row(&m, r, got, &err)) fail_msg("%s", err.msg);
            ops->to_float(w + r * rb, ref, K);
            for (uint32_t k = 0; k < K; k++)
                if (got[k] != ref[k] && fabsf(got[k] - ref[k]) > 1e-6f * fabsf(ref[k]))
                    fail_msg("dequant %s row %u [%u]: kernels' loader %.9g, reference %.9g", ti->name, r, k, got[k],
                             ref[k]);
        }
        printf("dequant %s: the kernels' loader equals the reference on %u rows of %u\n", ti->name, rows, K);
    }
    free(src), free(ref), free(got), free(w);
}

/* ---- matrix products, every type the backend multiplies natively, and Q5_K
 * (converted to f32 on upload) ---- */

static void check_matmul(uint32_t type, uint32_t K, uint32_t n_out, uint32_t T, int mode) {
    const g3_type_ops *ops = g3_type_ops_get(type);
    const g3_type_info *ti = g3_type_info_get(type);
    assert_non_null(ops);
    const uint64_t row_bytes = (uint64_t)K / ti->block_size * ti->block_bytes;
    uint8_t *w = malloc(row_bytes * n_out);
    float *wf = malloc(sizeof(float) * K * n_out), *x = malloc(sizeof(float) * K * T);
    float *y = malloc(sizeof(float) * n_out * T);
    assert_true(w && wf && x && y);
    fill(wf, (size_t)K * n_out, 1.0f);
    fill(x, (size_t)K * T, 2.0f);
    for (uint32_t r = 0; r < n_out; r++) ops->from_float(wf + (size_t)r * K, w + r * row_bytes, K);
    for (uint32_t r = 0; r < n_out; r++) ops->to_float(w + r * row_bytes, wf + (size_t)r * K, K);
    const g3_matrix m = {.data = w, .type = type, .n_in = K, .n_out = n_out, .row_bytes = row_bytes};
    g3_error err = {{0}};
    if (g3_cuda_test_matmul(&m, x, T, mode, y, &err)) fail_msg("%s", err.msg);
    double worst = 0.0;
    for (uint32_t t = 0; t < T; t++)
        for (uint32_t r = 0; r < n_out; r++) {
            const float ref = ops->dot_f32(w + r * row_bytes, x + (size_t)t * K, K);
            double mag = 0.0;
            for (uint32_t k = 0; k < K; k++) mag += fabs((double)wf[(size_t)r * K + k] * x[(size_t)t * K + k]);
            /* f32 sums in another order: ~K ulps of the magnitude; TF32
             * rounds both operands to 10 bits of mantissa */
            const double tol = (mode == 3 || (mode == 0 && T > 8) ? 2e-3 : 2e-6) * mag + 1e-6;
            const double d = fabs((double)y[(size_t)t * n_out + r] - ref);
            if (d / tol > worst) worst = d / tol;
            if (d > tol)
                fail_msg("%s K=%u rows=%u T=%u mode %d: row %u, batch row %u: %g vs %g (tolerance %g)",
                         ti->name, K, n_out, T, mode, r, t, y[(size_t)t * n_out + r], ref, tol);
        }
    free(w);
    free(wf);
    free(x);
    free(y);
}

static void test_matmul(void **state) {
    (void)state;
    const uint32_t legacy[] = {G3_TYPE_Q4_0, G3_TYPE_Q8_0, G3_TYPE_F16, G3_TYPE_BF16, G3_TYPE_F32};
    const uint32_t kquant[] = {G3_TYPE_Q4_K, G3_TYPE_Q6_K, G3_TYPE_Q5_K};
    const uint32_t Ts[] = {1, 3, 8};
    for (size_t i = 0; i < sizeof legacy / sizeof *legacy; i++)
        for (uint32_t K = 640; K <= 2592; K += 1952) {
            for (size_t j = 0; j < 3; j++) check_matmul(legacy[i], K, 37, Ts[j], 1);
            check_matmul(legacy[i], K, 130, 9, 2);
            check_matmul(legacy[i], K, 130, 70, 2);
            check_matmul(legacy[i], K, 130, 70, 3);
            check_matmul(legacy[i], K, 67, 5, 0);
        }
    for (size_t i = 0; i < sizeof kquant / sizeof *kquant; i++)
        for (uint32_t K = 768; K <= 2816; K += 2048) {
            for (size_t j = 0; j < 3; j++) check_matmul(kquant[i], K, 37, Ts[j], 1);
            check_matmul(kquant[i], K, 130, 70, 2);
            check_matmul(kquant[i], K, 130, 70, 3);
        }
}

/* ---- vector operations ---- */

static void test_rmsnorm_geglu(void **state) {
    (void)state;
    g3_error err = {{0}};
    for (uint32_t n = 640; n <= 2592; n += 1952) {
        const uint32_t T = 3;
        float *x = malloc(sizeof(float) * T * n), *w = malloc(sizeof(float) * n), *out = malloc(sizeof(float) * T * n);
        float *ref = malloc(sizeof(float) * n);
        assert_true(x && w && out && ref);
        fill(x, (size_t)T * n, 30.0f);
        fill(w, n, 2.0f);
        if (g3_cuda_test_rmsnorm(x, w, T, n, 1e-6f, out, &err)) fail_msg("%s", err.msg);
        for (uint32_t t = 0; t < T; t++) {
            g3_rmsnorm(ref, x + (size_t)t * n, w, (int)n, 1e-6f);
            for (uint32_t i = 0; i < n; i++)
                if (fabsf(out[(size_t)t * n + i] - ref[i]) > 1e-6f * (1.0f + fabsf(ref[i])))
                    fail_msg("rmsnorm n=%u row %u [%u]: %g vs %g", n, t, i, out[(size_t)t * n + i], ref[i]);
        }
        free(x), free(w), free(out), free(ref);
    }
    const uint32_t n = 1001;
    float g[1001], u[1001], out[1001], ref[1001];
    fill(g, n, 6.0f);
    fill(u, n, 3.0f);
    memcpy(ref, g, sizeof ref);
    g3_gelu_tanh(ref, (int)n);
    if (g3_cuda_test_geglu(g, u, n, out, &err)) fail_msg("%s", err.msg);
    for (uint32_t i = 0; i < n; i++)
        if (fabsf(out[i] - ref[i] * u[i]) > 1e-5f * (1.0f + fabsf(ref[i] * u[i])))
            fail_msg("geglu [%u]: %g vs %g", i, out[i], ref[i] * u[i]);
}

static void test_norm_rope(void **state) {
    (void)state;
    g3_error err = {{0}};
    const uint32_t Ds[] = {32, 128, 256}, poss[] = {0, 5, 1023, 40000};
    for (size_t a = 0; a < 3; a++)
        for (size_t b = 0; b < 4; b++)
            for (int global = 0; global < 2; global++) {
                const uint32_t D = Ds[a], H = 3, pos = poss[b];
                const double base = global ? 1e6 : 1e4, fs = global ? 1.0 / 8 : 1.0;
                const float scale = 0.0883883f;
                float v[3 * 256], ref[3 * 256], w[256];
                fill(v, H * D, 5.0f);
                fill(w, D, 1.0f);
                memcpy(ref, v, sizeof(float) * H * D);
                for (uint32_t h = 0; h < H; h++) {
                    g3_rmsnorm(ref + h * D, ref + h * D, w, (int)D, 1e-6f);
                    g3_rope_neox(ref + h * D, (int)D, pos, base, fs);
                    for (uint32_t d = 0; d < D; d++) ref[h * D + d] *= scale;
                }
                if (g3_cuda_test_norm_rope(v, H, D, w, 1e-6f, pos, base, fs, scale, &err)) fail_msg("%s", err.msg);
                for (uint32_t i = 0; i < H * D; i++)
                    if (fabsf(v[i] - ref[i]) > 1e-5f * (1.0f + fabsf(ref[i])))
                        fail_msg("norm+rope D=%u pos=%u global=%d [%u]: %g vs %g", D, pos, global, i, v[i], ref[i]);
            }
}

/* ---- attention over a ring of cached keys and values ---- */

/* The cache's rows as the reference reads them back: n rows of w values
 * through the cache type and back (q8_0 by whole rows: blocks of 32). */
static void kv_round_rows(float *x, uint32_t n, uint32_t w, g3_kv_type t) {
    if (t == G3_KV_F32) return;
    const g3_type_ops *ops = g3_type_ops_get((uint32_t)t);
    uint8_t *buf = malloc((size_t)w * 4);
    assert_non_null(buf);
    for (uint32_t r = 0; r < n; r++) {
        ops->from_float(x + (size_t)r * w, buf, w);
        ops->to_float(buf, x + (size_t)r * w, w);
    }
    free(buf);
}

static void check_attention(uint32_t H, uint32_t HKV, uint32_t D, uint32_t n_past, uint32_t T, uint32_t window,
                            bool bidi, float softcap, g3_kv_type kt) {
    const uint32_t slots = window ? window + T : n_past + T, KVD = HKV * D, G = H / HKV;
    float *q = malloc(sizeof(float) * T * H * D), *k = malloc(sizeof(float) * slots * KVD),
          *v = malloc(sizeof(float) * slots * KVD), *out = malloc(sizeof(float) * T * H * D),
          *s = malloc(sizeof(float) * (n_past + T));
    uint32_t *pos = malloc(sizeof(uint32_t) * T);
    assert_true(q && k && v && out && s && pos);
    fill(q, (size_t)T * H * D, 0.5f);
    fill(k, (size_t)slots * KVD, 1.0f);
    fill(v, (size_t)slots * KVD, 1.0f);
    for (uint32_t t = 0; t < T; t++) pos[t] = n_past + t;
    g3_error err = {{0}};
    if (g3_cuda_test_attention(q, T, H, HKV, D, k, v, slots, kt, pos, window, bidi, softcap, out, &err))
        fail_msg("%s", err.msg);
    kv_round_rows(k, slots, KVD, kt);
    kv_round_rows(v, slots, KVD, kt);
    for (uint32_t t = 0; t < T; t++)
        for (uint32_t h = 0; h < H; h++) {
            const uint32_t p = pos[t], hi = bidi ? pos[T - 1] : p, lo = (window && p + 1 > window) ? p + 1 - window : 0;
            const uint32_t n = hi - lo + 1, hkv = h / G;
            for (uint32_t j = 0; j < n; j++) {
                const float *kr = k + (size_t)((lo + j) % slots) * KVD + hkv * D;
                float dot = 0.0f;
                for (uint32_t d = 0; d < D; d++) dot += q[(size_t)t * H * D + h * D + d] * kr[d];
                s[j] = softcap > 0.0f ? softcap * tanhf(dot / softcap) : dot;
            }
            g3_softmax(s, (int)n);
            for (uint32_t d = 0; d < D; d++) {
                double ref = 0.0;
                for (uint32_t j = 0; j < n; j++)
                    ref += (double)s[j] * v[(size_t)((lo + j) % slots) * KVD + hkv * D + d];
                const float got = out[(size_t)t * H * D + h * D + d];
                if (fabs(got - ref) > 2e-5 * (1.0 + fabs(ref)))
                    fail_msg("attention H=%u HKV=%u D=%u n_past=%u T=%u window=%u bidi=%d cap=%g kv=%s: row %u head "
                             "%u [%u]: %g vs %g",
                             H, HKV, D, n_past, T, window, bidi, softcap, g3_kv_type_name(kt), t, h, d, got, ref);
            }
        }
    free(q), free(k), free(v), free(out), free(s), free(pos);
}

static void test_attention(void **state) {
    (void)state;
    const g3_kv_type kts[] = {G3_KV_F32, G3_KV_F16, G3_KV_BF16, G3_KV_Q8_0};
    for (size_t i = 0; i < 4; i++) {
        check_attention(4, 1, 32, 0, 1, 0, false, 0.0f, kts[i]);
        check_attention(4, 1, 32, 40, 5, 16, false, 0.0f, kts[i]);     /* ring of a local layer */
        check_attention(4, 1, 32, 3, 33, 16, false, 0.0f, kts[i]);     /* prefill past the window */
        check_attention(8, 4, 128, 700, 1, 0, false, 0.0f, kts[i]);    /* long decode: split keys */
        check_attention(32, 16, 128, 3000, 2, 0, false, 0.0f, kts[i]); /* 27B's heads */
        check_attention(2, 1, 256, 10, 12, 0, true, 0.0f, kts[i]);     /* an image block */
        check_attention(16, 2, 64, 100, 3, 50, false, 30.0f, kts[i]);  /* soft-capping, group of 8 */
    }
}

/* ---- whole models: CUDA against CPU ---- */

static int argmax(const float *x, uint32_t n) {
    int best = 0;
    for (uint32_t i = 1; i < n; i++)
        if (x[i] > x[best]) best = (int)i;
    return best;
}

static g3_context *make_ctx(g3_model *m, g3_device dev, g3_kv_type kt, uint32_t n_ubatch, uint32_t n_seq, bool exact) {
    g3_context_params p = {.n_ctx = 256, .n_ubatch = n_ubatch, .n_threads = 1, .kv_type = kt, .n_seq = n_seq,
                           .exact_activations = exact, .device = dev};
    g3_context *ctx = NULL;
    g3_error err = {{0}};
    if (g3_context_new(m, &p, &ctx, &err)) fail_msg("%s context: %s", g3_device_name(dev), err.msg);
    assert_int_equal(g3_context_device(ctx), dev);
    return ctx;
}

/* One model file: all logits of 70 tokens (one pass, then chunks of 16
 * through the window of 16), 20 greedy tokens, and 3 sequences decoded as
 * one batch; CUDA vs CPU. */
static void check_model(const char *file, g3_kv_type kt, bool exact, double tol) {
    char path[512];
    snprintf(path, sizeof path, "%s/tiny-gemma3/models/%s", G3_GOLDEN_DIR, file);
    g3_model *m = NULL;
    g3_error err = {{0}};
    if (g3_model_load(path, &m, &err)) fail_msg("%s", err.msg);
    const uint32_t V = g3_model_config(m)->n_vocab, n = 70;
    int32_t tok[70];
    uint64_t rs = 12345;
    for (uint32_t i = 0; i < n; i++) tok[i] = 10 + (int32_t)((tu_randf(&rs) + 1.0f) * 0.5f * (float)(V - 11));
    tok[0] = 2;
    float *lc = malloc(sizeof(float) * n * V), *lg = malloc(sizeof(float) * n * V);
    assert_true(lc && lg);
    for (int chunked = 0; chunked < 2; chunked++) {
        const uint32_t ub = chunked ? 16 : 128;
        g3_context *cpu = make_ctx(m, G3_DEVICE_CPU, kt, ub, 1, exact), *gpu = make_ctx(m, G3_DEVICE_CUDA, kt, ub, 1, exact);
        if (g3_eval(cpu, tok, n, lc, true, &err) || g3_eval(gpu, tok, n, lg, true, &err)) fail_msg("%s", err.msg);
        double worst = 0.0;
        for (size_t i = 0; i < (size_t)n * V; i++)
            if (fabs(lc[i] - lg[i]) > worst) worst = fabs(lc[i] - lg[i]);
        printf("%s kv %s %s%s: max |logit CUDA - CPU| = %.3g\n", file, g3_kv_type_name(kt),
               exact ? "exact" : "tf32", chunked ? ", chunks of 16" : "", worst);
        if (worst > tol) fail_msg("%s: logits differ by %g (tolerance %g)", file, worst, tol);
        /* greedy continuation, one token at a time (the matrix-vector path);
         * q8_0 rounds keys that differ in the last bit to different steps:
         * near-ties may go either way there */
        if (exact && kt != G3_KV_Q8_0) {
            int a = argmax(lc + (size_t)(n - 1) * V, V), b = argmax(lg + (size_t)(n - 1) * V, V);
            for (int i = 0; i < 20; i++) {
                if (a != b) fail_msg("%s: greedy token %d: CPU %d, CUDA %d", file, i, a, b);
                const int32_t next = a;
                if (g3_eval(cpu, &next, 1, lc, false, &err) || g3_eval(gpu, &next, 1, lg, false, &err))
                    fail_msg("%s", err.msg);
                a = argmax(lc, V);
                b = argmax(lg, V);
            }
        }
        g3_context_free(cpu);
        g3_context_free(gpu);
    }
    /* batched decoding: 3 sequences with different prefixes, one step */
    g3_context *cpu = make_ctx(m, G3_DEVICE_CPU, kt, 32, 3, exact), *gpu = make_ctx(m, G3_DEVICE_CUDA, kt, 32, 3, exact);
    for (uint32_t sq = 0; sq < 3; sq++)
        if (g3_eval_seq(cpu, sq, tok, 10 + 7 * sq, NULL, false, &err) ||
            g3_eval_seq(gpu, sq, tok, 10 + 7 * sq, NULL, false, &err))
            fail_msg("%s", err.msg);
    const uint32_t seqs[3] = {2, 0, 1};
    const int32_t next[3] = {tok[40], tok[41], tok[42]};
    if (g3_decode_batch(cpu, seqs, next, 3, lc, &err) || g3_decode_batch(gpu, seqs, next, 3, lg, &err))
        fail_msg("%s", err.msg);
    for (size_t i = 0; i < 3 * (size_t)V; i++)
        if (fabs(lc[i] - lg[i]) > tol) fail_msg("%s: batched decode differs by %g", file, fabs(lc[i] - lg[i]));
    assert_int_equal(g3_context_n_past_seq(gpu, 2), 25);
    g3_context_free(cpu);
    g3_context_free(gpu);
    free(lc);
    free(lg);
    g3_model_free(m);
}

static void test_golden_models(void **state) {
    (void)state;
    const char *files[] = {"g3-1b-s1234-f32.gguf",  "g3-1b-s1234-f16.gguf",  "g3-1b-s1234-bf16.gguf",
                           "g3-1b-s1234-q8_0.gguf", "g3-1b-s1234-q4_0.gguf", "g3-1b-s1234-q4_k_m.gguf",
                           "g3-1b-s1234-q6_k.gguf"};
    for (size_t i = 0; i < sizeof files / sizeof *files; i++) {
        check_model(files[i], G3_KV_F32, true, 1e-3);
        check_model(files[i], G3_KV_F16, true, 1e-3);
    }
    check_model("g3-1b-s1234-q8_0.gguf", G3_KV_Q8_0, true, 2e-2);
    /* TF32 prefill: within the golden rule's reach of the exact pass */
    check_model("g3-1b-s1234-q4_0.gguf", G3_KV_F16, false, 5e-2);
}

/* ---- the golden README's rule (a) on the GPU ---- */

static void *read_all(const char *path, size_t *len) {
    FILE *f = fopen(path, "rb");
    if (!f) return NULL;
    fseek(f, 0, SEEK_END);
    const long n = ftell(f);
    fseek(f, 0, SEEK_SET);
    char *buf = malloc((size_t)n + 1);
    if (buf && fread(buf, 1, (size_t)n, f) != (size_t)n) {
        free(buf);
        buf = NULL;
    }
    fclose(f);
    if (buf) buf[n] = 0;
    if (len) *len = (size_t)n;
    return buf;
}

/* the integers of the first [...] in a file */
static uint32_t read_ids(const char *path, int32_t *ids, uint32_t cap) {
    char *t = read_all(path, NULL);
    if (!t) fail_msg("cannot read %s", path);
    char *p = strchr(t, '[');
    uint32_t n = 0;
    while (p && *p && *p != ']' && n < cap) {
        p++;
        char *end;
        const long v = strtol(p, &end, 10);
        if (end == p) break;
        ids[n++] = (int32_t)v;
        p = end;
    }
    free(t);
    return n;
}

static void check_golden_case(const char *type, const char *seq) {
    char path[640];
    snprintf(path, sizeof path, "%s/tiny-gemma3/models/g3-1b-s1234-%s.gguf", G3_GOLDEN_DIR, type);
    g3_model *m = NULL;
    g3_error err = {{0}};
    if (g3_model_load(path, &m, &err)) fail_msg("%s", err.msg);
    const uint32_t V = g3_model_config(m)->n_vocab;
    int32_t tok[600], want[32];
    snprintf(path, sizeof path, "%s/tiny-gemma3/text/g3-1b-s1234-%s/%s.tokens.json", G3_GOLDEN_DIR, type, seq);
    const uint32_t n = read_ids(path, tok, 600);
    snprintf(path, sizeof path, "%s/tiny-gemma3/text/g3-1b-s1234-%s/%s.exact_greedy.json", G3_GOLDEN_DIR, type, seq);
    const uint32_t n_want = read_ids(path, want, 32);
    snprintf(path, sizeof path, "%s/tiny-gemma3/text/g3-1b-s1234-%s/%s.exact.f32", G3_GOLDEN_DIR, type, seq);
    size_t len = 0;
    float *ref = read_all(path, &len);
    if (!ref || len != (size_t)n * V * sizeof(float)) fail_msg("%s: %zu bytes for %u positions", path, len, n);
    float *lg = malloc(sizeof(float) * n * V);
    assert_non_null(lg);
    for (int chunk = 0; chunk <= 7; chunk += 7) {
        g3_context_params p = {.n_ctx = n + n_want + 1, .n_ubatch = chunk ? 7 : 512, .kv_type = G3_KV_F32,
                               .exact_activations = true, .device = G3_DEVICE_CUDA};
        g3_context *ctx = NULL;
        if (g3_context_new(m, &p, &ctx, &err) || g3_eval(ctx, tok, n, lg, true, &err)) fail_msg("%s", err.msg);
        double worst = 0.0;
        for (size_t i = 0; i < (size_t)n * V; i++)
            if (fabs(lg[i] - ref[i]) > worst) worst = fabs(lg[i] - ref[i]);
        int32_t next = argmax(lg + (size_t)(n - 1) * V, V);
        for (uint32_t i = 0; i < n_want; i++) {
            if (next != want[i]) fail_msg("golden %s/%s%s: greedy token %u is %d, exact_greedy has %d", type, seq,
                                          chunk ? " (chunks of 7)" : "", i, next, want[i]);
            if (i + 1 < n_want) {
                if (g3_eval(ctx, &next, 1, lg, false, &err)) fail_msg("%s", err.msg);
                next = argmax(lg, V);
            }
        }
        printf("golden %s/%s%s on CUDA: max |logit - exact| = %.3g, greedy %u tokens equal\n", type, seq,
               chunk ? " (chunks of 7)" : "", worst, n_want);
        if (worst > 5e-3) fail_msg("golden %s/%s: %.3g from exact.f32 (rule (a): 5e-3)", type, seq, worst);
        g3_context_free(ctx);
    }
    free(lg);
    free(ref);
    g3_model_free(m);
}

static void test_golden_rule(void **state) {
    (void)state;
    const char *types[] = {"f32", "f16", "bf16", "q8_0", "q4_0", "q4_k_m", "q6_k"};
    const char *seqs[] = {"fox", "chat", "long"};
    for (size_t i = 0; i < 7; i++)
        for (size_t j = 0; j < 3; j++) check_golden_case(types[i], seqs[j]);
}

/* A context the GPU cannot hold is refused with the numbers, not attempted. */
static void test_refusals(void **state) {
    (void)state;
    char path[512];
    snprintf(path, sizeof path, "%s/tiny-gemma3/models/g3-1b-s1234-q8_0.gguf", G3_GOLDEN_DIR);
    g3_model *m = NULL;
    g3_error err = {{0}};
    if (g3_model_load(path, &m, &err)) fail_msg("%s", err.msg);
    g3_context_params p = {.n_ctx = 1u << 24, .n_seq = 256, .kv_type = G3_KV_F32, .device = G3_DEVICE_CUDA};
    g3_context *ctx = NULL;
    assert_int_not_equal(g3_context_new(m, &p, &ctx, &err), 0);
    printf("refused: %s\n", err.msg);
    assert_non_null(strstr(err.msg, "GPU memory"));
    g3_model_free(m);
}

int main(void) {
    char why[256] = "";
    /* what needs no GPU runs first; a failure there fails even without one */
    if (g3_cuda_built()) test_dequant_host(NULL);
    if (g3_cuda_device_count(why, sizeof why) == 0) {
        printf("test_cuda_ops: the GPU tests are skipped: %s\n", why);
        return 77;
    }
    g3_cuda_device_info info;
    g3_error err = {{0}};
    if (g3_cuda_device_info_get(&info, &err) == 0)
        printf("device: %s (sm_%d%d, %u SMs, %.1f GiB)\n", info.name, info.cc_major, info.cc_minor, info.n_sm,
               info.total_bytes / 1073741824.0);
    static const struct {
        const char *name;
        void (*fn)(void **);
    } tests[] = {{"matmul", test_matmul},       {"rmsnorm_geglu", test_rmsnorm_geglu},
                 {"norm_rope", test_norm_rope}, {"attention", test_attention},
                 {"golden_models", test_golden_models}, {"golden_rule", test_golden_rule},
                 {"refusals", test_refusals}};
    const int n = (int)(sizeof tests / sizeof *tests);
    for (int i = 0; i < n; i++) {
        printf("[ RUN  ] %s\n", tests[i].name);
        fflush(stdout);
        tests[i].fn(NULL);
        printf("[  OK  ] %s\n", tests[i].name);
    }
    printf("%d passed, 0 failed\n", n);
    return 0;
}
