/* kernels_scalar.c: the reference kernel table (any CPU).
 *
 * Matrix products use the exact per-type dot products of type_ops.h with f32
 * activations, so the scalar path reproduces the float64 reference to about
 * 5e-6. The 8-bit-activation kernels here are the reference of the SIMD
 * ones; the scalar path itself does not use them (quantized_acts = false). */
#include <math.h>

#include "tensor/kernels.h"
#include "tensor/ops.h"
#include "tensor/type_ops.h"

static void qgemv_ref(uint32_t type, const uint8_t *w, size_t row_bytes, uint32_t n_rows, uint32_t K,
                      const g3_qa_row *a, float *out) {
    for (uint32_t r = 0; r < n_rows; r++) out[r] = g3_qa_dot_ref(type, w + r * row_bytes, a, K);
}

static void fgemv_ref(uint32_t type, const uint8_t *w, size_t row_bytes, uint32_t n_rows, uint32_t K,
                      const float *x, float *out) {
    const g3_type_ops *ops = g3_type_ops_get(type);
    for (uint32_t r = 0; r < n_rows; r++) out[r] = ops->dot_f32(w + r * row_bytes, x, K);
}

/* One wrapper per type: the table's signature has no type argument. */
#define REF_WRAPPERS(T, name)                                                                            \
    static void qgemv_##name(const uint8_t *w, size_t rb, uint32_t n, uint32_t K, const g3_qa_row *a,    \
                             float *out) {                                                               \
        qgemv_ref(T, w, rb, n, K, a, out);                                                               \
    }                                                                                                    \
    static void fgemv_##name(const uint8_t *w, size_t rb, uint32_t n, uint32_t K, const float *x,        \
                             float *out) {                                                               \
        fgemv_ref(T, w, rb, n, K, x, out);                                                               \
    }                                                                                                    \
    static void qdot_rows_##name(const uint8_t *const *rows, uint32_t n, uint32_t K, const g3_qa_row *a, \
                                 float *out) {                                                           \
        for (uint32_t r = 0; r < n; r++) out[r] = g3_qa_dot_ref(T, rows[r], a, K);                       \
    }                                                                                                    \
    static void fdot_rows_##name(const uint8_t *const *rows, uint32_t n, uint32_t K, const float *x,      \
                                 float *out) {                                                           \
        for (uint32_t r = 0; r < n; r++) out[r] = g3_type_ops_get(T)->dot_f32(rows[r], x, K);            \
    }                                                                                                    \
    static void qdot_rows8_##name(const uint8_t *const *rows, uint32_t n, uint32_t K, const g3_qa_row *a, \
                                  float *out) {                                                          \
        for (uint32_t r = 0; r < n; r++) out[r] = g3_qa_dot8_ref(T, rows[r], a, K);                      \
    }
REF_WRAPPERS(G3_TYPE_Q8_0, q8_0)
REF_WRAPPERS(G3_TYPE_Q4_0, q4_0)
REF_WRAPPERS(G3_TYPE_Q5_0, q5_0)
REF_WRAPPERS(G3_TYPE_Q4_1, q4_1)
REF_WRAPPERS(G3_TYPE_Q5_1, q5_1)
REF_WRAPPERS(G3_TYPE_IQ4_NL, iq4_nl)
REF_WRAPPERS(G3_TYPE_Q4_K, q4_k)
REF_WRAPPERS(G3_TYPE_Q5_K, q5_k)
REF_WRAPPERS(G3_TYPE_Q6_K, q6_k)

#define FLOAT_WRAPPERS(T, name)                                                                          \
    static void fgemv_##name(const uint8_t *w, size_t rb, uint32_t n, uint32_t K, const float *x,        \
                             float *out) {                                                               \
        fgemv_ref(T, w, rb, n, K, x, out);                                                               \
    }                                                                                                    \
    static void fdot_rows_##name(const uint8_t *const *rows, uint32_t n, uint32_t K, const float *x,      \
                                 float *out) {                                                           \
        for (uint32_t r = 0; r < n; r++) out[r] = g3_type_ops_get(T)->dot_f32(rows[r], x, K);            \
    }
FLOAT_WRAPPERS(G3_TYPE_F32, f32)
FLOAT_WRAPPERS(G3_TYPE_F16, f16)
FLOAT_WRAPPERS(G3_TYPE_BF16, bf16)

static void rmsnorm_ref(float *out, const float *x, const float *w, uint32_t n, float eps) {
    g3_rmsnorm(out, x, w, (int)n, eps);
}

static void gelu_mul_ref(float *g, const float *u, uint32_t n) {
    g3_gelu_tanh(g, (int)n);
    for (uint32_t i = 0; i < n; i++) g[i] *= u[i];
}

static void softmax_ref(float *x, uint32_t n) { g3_softmax(x, (int)n); }

static float dot_ref(const float *a, const float *b, uint32_t n) {
    float s = 0.0f;
    for (uint32_t i = 0; i < n; i++) s += a[i] * b[i];
    return s;
}

static void axpy_ref(float *y, float a, const float *x, uint32_t n) {
    for (uint32_t i = 0; i < n; i++) y[i] += a * x[i];
}

static void add_ref(float *y, const float *x, uint32_t n) {
    for (uint32_t i = 0; i < n; i++) y[i] += x[i];
}

/* Attention. F32 keeps the serial sums the engine computed before the SIMD
 * paths existed; the other cache types use the exact per-type dot product
 * for scores and dequantize values a block at a time. */
static const uint8_t *ring_row(const uint8_t *base, size_t row_bytes, uint32_t slots, uint32_t pos) {
    return base + (size_t)(pos % slots) * row_bytes;
}

static void attn_scores_f32(const float *q, uint32_t nq, const uint8_t *keys, size_t row_bytes, uint32_t slots,
                            uint32_t lo, uint32_t n, uint32_t D, float *s, size_t ld_s) {
    for (uint32_t i = 0; i < nq; i++)
        for (uint32_t j = 0; j < n; j++)
            s[i * ld_s + j] = dot_ref(q + (size_t)i * D, (const float *)ring_row(keys, row_bytes, slots, lo + j), D);
}

static void attn_values_f32(const float *s, size_t ld_s, uint32_t nq, const uint8_t *vals, size_t row_bytes,
                            uint32_t slots, uint32_t lo, uint32_t n, uint32_t D, float *out) {
    for (uint32_t i = 0; i < nq; i++) {
        float *o = out + (size_t)i * D;
        for (uint32_t d = 0; d < D; d++) o[d] = 0.0f;
        for (uint32_t j = 0; j < n; j++)
            axpy_ref(o, s[i * ld_s + j], (const float *)ring_row(vals, row_bytes, slots, lo + j), D);
    }
}

static void attn_scores_typed(uint32_t type, const float *q, uint32_t nq, const uint8_t *keys, size_t row_bytes,
                              uint32_t slots, uint32_t lo, uint32_t n, uint32_t D, float *s, size_t ld_s) {
    const g3_type_ops *ops = g3_type_ops_get(type);
    for (uint32_t i = 0; i < nq; i++)
        for (uint32_t j = 0; j < n; j++)
            s[i * ld_s + j] = ops->dot_f32(ring_row(keys, row_bytes, slots, lo + j), q + (size_t)i * D, D);
}

static void attn_values_typed(uint32_t type, const float *s, size_t ld_s, uint32_t nq, const uint8_t *vals,
                              size_t row_bytes, uint32_t slots, uint32_t lo, uint32_t n, uint32_t D, float *out) {
    const g3_type_ops *ops = g3_type_ops_get(type);
    const g3_type_info *ti = g3_type_info_get(type);
    const uint32_t per = ti->block_size, block_bytes = ti->block_bytes; /* blocks of 1 or 32 values */
    float tmp[32];
    for (uint32_t i = 0; i < nq; i++) {
        float *o = out + (size_t)i * D;
        for (uint32_t d = 0; d < D; d++) o[d] = 0.0f;
        for (uint32_t j = 0; j < n; j++) {
            const uint8_t *row = ring_row(vals, row_bytes, slots, lo + j);
            for (uint32_t d = 0; d < D; d += 32) {
                const uint32_t m = D - d < 32 ? D - d : 32;
                ops->to_float(row + (size_t)(d / per) * block_bytes, tmp, m);
                axpy_ref(o + d, s[i * ld_s + j], tmp, m);
            }
        }
    }
}

G3_ATTN_ENTRY_POINTS(f16, G3_TYPE_F16, attn_scores_typed, attn_values_typed)
G3_ATTN_ENTRY_POINTS(bf16, G3_TYPE_BF16, attn_scores_typed, attn_values_typed)
G3_ATTN_ENTRY_POINTS(q8_0, G3_TYPE_Q8_0, attn_scores_typed, attn_values_typed)

const g3_kernels g3_kernels_scalar = {
    .path = G3_CPU_SCALAR,
    .quantized_acts = false,
    .panel_rows = 0,
    .quantize_blocks = g3_qa_quantize_blocks_ref,
    .qgemv = {[G3_TYPE_Q8_0] = qgemv_q8_0, [G3_TYPE_Q4_0] = qgemv_q4_0, [G3_TYPE_Q5_0] = qgemv_q5_0,
              [G3_TYPE_Q4_1] = qgemv_q4_1, [G3_TYPE_Q5_1] = qgemv_q5_1, [G3_TYPE_IQ4_NL] = qgemv_iq4_nl,
              [G3_TYPE_Q4_K] = qgemv_q4_k, [G3_TYPE_Q5_K] = qgemv_q5_k, [G3_TYPE_Q6_K] = qgemv_q6_k},
    .qdot_rows = {[G3_TYPE_Q8_0] = qdot_rows_q8_0, [G3_TYPE_Q4_0] = qdot_rows_q4_0, [G3_TYPE_Q5_0] = qdot_rows_q5_0,
                  [G3_TYPE_Q4_1] = qdot_rows_q4_1, [G3_TYPE_Q5_1] = qdot_rows_q5_1,
                  [G3_TYPE_IQ4_NL] = qdot_rows_iq4_nl,
                  [G3_TYPE_Q4_K] = qdot_rows_q4_k, [G3_TYPE_Q5_K] = qdot_rows_q5_k, [G3_TYPE_Q6_K] = qdot_rows_q6_k},
    .qdot_rows8 = {[G3_TYPE_Q8_0] = qdot_rows8_q8_0, [G3_TYPE_Q4_0] = qdot_rows8_q4_0,
                   [G3_TYPE_Q5_0] = qdot_rows8_q5_0, [G3_TYPE_Q4_1] = qdot_rows8_q4_1,
                   [G3_TYPE_Q5_1] = qdot_rows8_q5_1, [G3_TYPE_IQ4_NL] = qdot_rows8_iq4_nl,
                   [G3_TYPE_Q4_K] = qdot_rows8_q4_k, [G3_TYPE_Q5_K] = qdot_rows8_q5_k,
                   [G3_TYPE_Q6_K] = qdot_rows8_q6_k},
    .fdot_rows = {[G3_TYPE_F32] = fdot_rows_f32, [G3_TYPE_F16] = fdot_rows_f16, [G3_TYPE_BF16] = fdot_rows_bf16,
                  [G3_TYPE_Q8_0] = fdot_rows_q8_0, [G3_TYPE_Q4_0] = fdot_rows_q4_0, [G3_TYPE_Q5_0] = fdot_rows_q5_0,
                  [G3_TYPE_Q4_1] = fdot_rows_q4_1, [G3_TYPE_Q5_1] = fdot_rows_q5_1,
                  [G3_TYPE_IQ4_NL] = fdot_rows_iq4_nl,
                  [G3_TYPE_Q4_K] = fdot_rows_q4_k, [G3_TYPE_Q5_K] = fdot_rows_q5_k, [G3_TYPE_Q6_K] = fdot_rows_q6_k},
    .fgemv = {[G3_TYPE_F32] = fgemv_f32, [G3_TYPE_F16] = fgemv_f16, [G3_TYPE_BF16] = fgemv_bf16,
              [G3_TYPE_Q8_0] = fgemv_q8_0, [G3_TYPE_Q4_0] = fgemv_q4_0, [G3_TYPE_Q5_0] = fgemv_q5_0,
              [G3_TYPE_Q4_1] = fgemv_q4_1, [G3_TYPE_Q5_1] = fgemv_q5_1, [G3_TYPE_IQ4_NL] = fgemv_iq4_nl,
              [G3_TYPE_Q4_K] = fgemv_q4_k, [G3_TYPE_Q5_K] = fgemv_q5_k, [G3_TYPE_Q6_K] = fgemv_q6_k},
    .rmsnorm = rmsnorm_ref,
    .gelu_mul = gelu_mul_ref,
    .softmax = softmax_ref,
    .dot = dot_ref,
    .axpy = axpy_ref,
    .add = add_ref,
    .attn_scores = {[G3_TYPE_F32] = attn_scores_f32, [G3_TYPE_F16] = attn_scores_f16,
                    [G3_TYPE_BF16] = attn_scores_bf16, [G3_TYPE_Q8_0] = attn_scores_q8_0},
    .attn_values = {[G3_TYPE_F32] = attn_values_f32, [G3_TYPE_F16] = attn_values_f16,
                    [G3_TYPE_BF16] = attn_values_bf16, [G3_TYPE_Q8_0] = attn_values_q8_0},
};

const g3_kernels *g3_kernels_get(g3_cpu_path path) {
    switch (path) {
    case G3_CPU_SCALAR: return &g3_kernels_scalar;
#if defined(__x86_64__)
    case G3_CPU_AVX2: return &g3_kernels_avx2;
    case G3_CPU_AVX512: return &g3_kernels_avx512;
#endif
    default: return NULL;
    }
}
