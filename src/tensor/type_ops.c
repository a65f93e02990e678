/* type_ops.c: the per-type kernel table, and the kernels of the plain float
 * types (F32, F16, BF16). The quantized types live in quant_legacy.c and
 * quant_k.c. */
#include "tensor/type_ops.h"

#include <string.h>

#include "tensor/quant_k.h"
#include "tensor/quant_legacy.h"

/* Plain types have a block size of 1, so "accumulate per block" would be a
 * single serial f32 sum: that is slow (one dependency chain) and loses
 * accuracy on long rows. Eight independent partial sums fix both and are
 * what the compiler turns into one vector register. */
#define LANES 8

static float sum_lanes(const float acc[LANES]) {
    float s = 0.0f;
    for (int k = 0; k < LANES; k++) s += acc[k];
    return s;
}

/* ---- F32 ---- */

static void f32_to_float(const void *src, float *dst, int64_t n) {
    if (n > 0) memcpy(dst, src, (size_t)n * sizeof(float));
}

static void f32_from_float(const float *src, void *dst, int64_t n) {
    if (n > 0) memcpy(dst, src, (size_t)n * sizeof(float));
}

static float f32_dot(const void *w, const float *x, int64_t n) {
    const float *a = w;
    float acc[LANES] = {0};
    int64_t i = 0;
    for (; i + LANES <= n; i += LANES)
        for (int k = 0; k < LANES; k++) acc[k] += a[i + k] * x[i + k];
    for (int k = 0; i < n; i++, k++) acc[k] += a[i] * x[i];
    return sum_lanes(acc);
}

/* ---- F16 ---- */

static void f16_to_float(const void *src, float *dst, int64_t n) {
    const uint16_t *h = src;
    for (int64_t i = 0; i < n; i++) dst[i] = g3_f16_to_f32(h[i]);
}

static void f16_from_float(const float *src, void *dst, int64_t n) {
    uint16_t *h = dst;
    for (int64_t i = 0; i < n; i++) h[i] = g3_f32_to_f16(src[i]);
}

static float f16_dot(const void *w, const float *x, int64_t n) {
    const uint16_t *h = w;
    float acc[LANES] = {0};
    int64_t i = 0;
    for (; i + LANES <= n; i += LANES)
        for (int k = 0; k < LANES; k++) acc[k] += g3_f16_to_f32(h[i + k]) * x[i + k];
    for (int k = 0; i < n; i++, k++) acc[k] += g3_f16_to_f32(h[i]) * x[i];
    return sum_lanes(acc);
}

/* ---- BF16 ---- */

static void bf16_to_float(const void *src, float *dst, int64_t n) {
    const uint16_t *h = src;
    for (int64_t i = 0; i < n; i++) dst[i] = g3_bf16_to_f32(h[i]);
}

static void bf16_from_float(const float *src, void *dst, int64_t n) {
    uint16_t *h = dst;
    for (int64_t i = 0; i < n; i++) h[i] = g3_f32_to_bf16(src[i]);
}

static float bf16_dot(const void *w, const float *x, int64_t n) {
    const uint16_t *h = w;
    float acc[LANES] = {0};
    int64_t i = 0;
    for (; i + LANES <= n; i += LANES)
        for (int k = 0; k < LANES; k++) acc[k] += g3_bf16_to_f32(h[i + k]) * x[i + k];
    for (int k = 0; i < n; i++, k++) acc[k] += g3_bf16_to_f32(h[i]) * x[i];
    return sum_lanes(acc);
}

/* ---- the table: one row per supported type, indexed by ggml type id ---- */

static const g3_type_ops k_ops[G3_TYPE_COUNT] = {
    [G3_TYPE_F32] = {f32_to_float, f32_from_float, f32_dot},
    [G3_TYPE_F16] = {f16_to_float, f16_from_float, f16_dot},
    [G3_TYPE_BF16] = {bf16_to_float, bf16_from_float, bf16_dot},
    [G3_TYPE_Q8_0] = {g3_q8_0_to_float, g3_q8_0_from_float, g3_q8_0_dot_f32},
    [G3_TYPE_Q4_0] = {g3_q4_0_to_float, g3_q4_0_from_float, g3_q4_0_dot_f32},
    [G3_TYPE_Q5_0] = {g3_q5_0_to_float, g3_q5_0_from_float, g3_q5_0_dot_f32},
    [G3_TYPE_Q4_1] = {g3_q4_1_to_float, g3_q4_1_from_float, g3_q4_1_dot_f32},
    [G3_TYPE_Q5_1] = {g3_q5_1_to_float, g3_q5_1_from_float, g3_q5_1_dot_f32},
    [G3_TYPE_IQ4_NL] = {g3_iq4_nl_to_float, g3_iq4_nl_from_float, g3_iq4_nl_dot_f32},
    [G3_TYPE_Q4_K] = {g3_q4_k_to_float, g3_q4_k_from_float, g3_q4_k_dot_f32},
    [G3_TYPE_Q5_K] = {g3_q5_k_to_float, g3_q5_k_from_float, g3_q5_k_dot_f32},
    [G3_TYPE_Q6_K] = {g3_q6_k_to_float, g3_q6_k_from_float, g3_q6_k_dot_f32},
};

const g3_type_ops *g3_type_ops_get(uint32_t type) {
    if (type >= G3_TYPE_COUNT || k_ops[type].to_float == NULL) return NULL;
    return &k_ops[type];
}
