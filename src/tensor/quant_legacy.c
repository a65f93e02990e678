/* quant_legacy.c: ggml's 32-element block types, scalar reference: Q8_0,
 * Q4_0, Q5_0, Q4_1, Q5_1, IQ4_NL.
 *
 * Layouts (ggml-common.h; every multi-byte field little-endian, blocks packed
 * back to back with no padding, so they are read bytewise here):
 *   Q8_0 (34 bytes): f16 d; int8 qs[32].             x[j] = qs[j] * d
 *   Q4_0 (18 bytes): f16 d; u8 qs[16].               x[j] = (q[j] - 8) * d
 *       q[j] = low nibble of qs[j], q[j+16] = high nibble of qs[j], j < 16
 *       (NOT consecutive pairs: elements j and j+16 share a byte).
 *   Q5_0 (22 bytes): f16 d; u8 qh[4]; u8 qs[16].     x[j] = (q[j] - 16) * d
 *       low 4 bits as in Q4_0; bit 4 of q[i] is bit i of qh read as a
 *       little-endian u32 (so qh[0] bit 0 is element 0, qh[2] bit 0 is
 *       element 16).
 *   Q4_1 (20 bytes): f16 d; f16 m; u8 qs[16].        x[j] = q[j] * d + m
 *       nibbles as in Q4_0, no code offset: m is the block's minimum.
 *   Q5_1 (24 bytes): f16 d; f16 m; u8 qh[4]; u8 qs[16].  x[j] = q[j] * d + m
 *       the 5-bit codes of Q5_0, no code offset.
 *   IQ4_NL (18 bytes): f16 d; u8 qs[16].             x[j] = kv[q[j]] * d
 *       nibbles as in Q4_0, each indexing the non-linear table kv below.
 * q * d is exact in f32 (at most 8 x 11 significant bits), so the only
 * rounding of a decoded value is Q4_1/Q5_1's one addition of m.
 *
 * The quantizers follow ggml's reference arithmetic, so they reproduce
 * llama-quantize's bytes for these types (no importance matrix): Q8_0 scales
 * by amax/127 and rounds half away from zero; Q4_0/Q5_0 map the element of
 * largest magnitude to the most negative code (d = max / -8, max / -16),
 * which uses the asymmetric code range fully, and round half up; Q4_1/Q5_1
 * span [min, max] with 15 / 31 steps and round half up; IQ4_NL runs ggml's
 * weighted least-squares scale search (quantize_iq4_nl: weights x^2, 15
 * trial scales), see iq4_nl_block.
 */
#include "tensor/quant_legacy.h"

#include <float.h>
#include <math.h>

#include "tensor/fp16_inline.h"
#include "tensor/type_ops.h"

#define QK 32
#define Q8_0_BYTES 34
#define Q4_0_BYTES 18
#define Q5_0_BYTES 22
#define Q4_1_BYTES 20
#define Q5_1_BYTES 24
#define IQ4_NL_BYTES 18

static inline uint32_t load_u32(const uint8_t *p) {
    return (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 | (uint32_t)p[3] << 24;
}

static inline void store_u32(uint8_t *p, uint32_t v) {
    for (int i = 0; i < 4; i++) p[i] = (uint8_t)(v >> (8 * i));
}

/* The element of largest magnitude, with its sign (the first one on ties). */
static float signed_absmax(const float *x, int n) {
    float amax = 0.0f, max = 0.0f;
    for (int i = 0; i < n; i++) {
        if (fabsf(x[i]) > amax) {
            amax = fabsf(x[i]);
            max = x[i];
        }
    }
    return max;
}

/* floor(t) clamped to [0, hi]; NaN gives 0. With t = v + offset + 0.5 this
 * is ggml's round-half-up; clamping first keeps the cast defined. */
static inline int floor_code(float t, int hi) {
    if (!(t >= 0.0f)) t = 0.0f;
    if (t > (float)hi) t = (float)hi;
    return (int)t;
}

/* ---- Q8_0 ---- */

void g3_q8_0_to_float(const void *src, float *dst, int64_t n) {
    const uint8_t *b = src;
    for (int64_t i = 0; i < n / QK; i++, b += Q8_0_BYTES, dst += QK) {
        const float d = g3_load_f16_le(b);
        const int8_t *qs = (const int8_t *)(b + 2);
        for (int j = 0; j < QK; j++) dst[j] = (float)qs[j] * d;
    }
}

void g3_q8_0_from_float(const float *src, void *dst, int64_t n) {
    uint8_t *b = dst;
    for (int64_t i = 0; i < n / QK; i++, b += Q8_0_BYTES, src += QK) {
        float amax = 0.0f;
        for (int j = 0; j < QK; j++) amax = fmaxf(amax, fabsf(src[j]));
        const float d = amax / 127.0f;
        const float id = d != 0.0f ? 1.0f / d : 0.0f;
        g3_store_f16_le(b, d);
        int8_t *qs = (int8_t *)(b + 2);
        for (int j = 0; j < QK; j++) {
            float v = roundf(src[j] * id);
            if (!(v >= -128.0f)) v = -128.0f; /* also catches NaN */
            if (v > 127.0f) v = 127.0f;
            qs[j] = (int8_t)v;
        }
    }
}

float g3_q8_0_dot_f32(const void *w, const float *x, int64_t n) {
    const uint8_t *b = w;
    float sum = 0.0f;
    for (int64_t i = 0; i < n / QK; i++, b += Q8_0_BYTES, x += QK) {
        const int8_t *qs = (const int8_t *)(b + 2);
        float s = 0.0f;
        for (int j = 0; j < QK; j++) s += (float)qs[j] * x[j];
        sum += g3_load_f16_le(b) * s;
    }
    return sum;
}

/* ---- Q4_0 ---- */

void g3_q4_0_to_float(const void *src, float *dst, int64_t n) {
    const uint8_t *b = src;
    for (int64_t i = 0; i < n / QK; i++, b += Q4_0_BYTES, dst += QK) {
        const float d = g3_load_f16_le(b);
        const uint8_t *qs = b + 2;
        for (int j = 0; j < QK / 2; j++) {
            dst[j] = (float)((qs[j] & 0x0f) - 8) * d;
            dst[j + QK / 2] = (float)((qs[j] >> 4) - 8) * d;
        }
    }
}

void g3_q4_0_from_float(const float *src, void *dst, int64_t n) {
    uint8_t *b = dst;
    for (int64_t i = 0; i < n / QK; i++, b += Q4_0_BYTES, src += QK) {
        const float d = signed_absmax(src, QK) / -8.0f;
        const float id = d != 0.0f ? 1.0f / d : 0.0f;
        g3_store_f16_le(b, d);
        uint8_t *qs = b + 2;
        for (int j = 0; j < QK / 2; j++) {
            int lo = floor_code(src[j] * id + 8.5f, 15);
            int hi = floor_code(src[j + QK / 2] * id + 8.5f, 15);
            qs[j] = (uint8_t)(lo | (hi << 4));
        }
    }
}

float g3_q4_0_dot_f32(const void *w, const float *x, int64_t n) {
    const uint8_t *b = w;
    float sum = 0.0f;
    for (int64_t i = 0; i < n / QK; i++, b += Q4_0_BYTES, x += QK) {
        const uint8_t *qs = b + 2;
        float s = 0.0f;
        for (int j = 0; j < QK / 2; j++) {
            s += (float)((qs[j] & 0x0f) - 8) * x[j];
            s += (float)((qs[j] >> 4) - 8) * x[j + QK / 2];
        }
        sum += g3_load_f16_le(b) * s;
    }
    return sum;
}

/* ---- Q5_0 ---- */

/* The 5-bit codes of one block, in element order. */
static inline void q5_0_codes(const uint8_t *b, int q[QK]) {
    const uint32_t qh = load_u32(b + 2);
    const uint8_t *qs = b + 6;
    for (int j = 0; j < QK / 2; j++) {
        q[j] = (qs[j] & 0x0f) | (int)(((qh >> j) & 1u) << 4);
        q[j + QK / 2] = (qs[j] >> 4) | (int)(((qh >> (j + QK / 2)) & 1u) << 4);
    }
}

void g3_q5_0_to_float(const void *src, float *dst, int64_t n) {
    const uint8_t *b = src;
    int q[QK];
    for (int64_t i = 0; i < n / QK; i++, b += Q5_0_BYTES, dst += QK) {
        const float d = g3_load_f16_le(b);
        q5_0_codes(b, q);
        for (int j = 0; j < QK; j++) dst[j] = (float)(q[j] - 16) * d;
    }
}

void g3_q5_0_from_float(const float *src, void *dst, int64_t n) {
    uint8_t *b = dst;
    for (int64_t i = 0; i < n / QK; i++, b += Q5_0_BYTES, src += QK) {
        const float d = signed_absmax(src, QK) / -16.0f;
        const float id = d != 0.0f ? 1.0f / d : 0.0f;
        g3_store_f16_le(b, d);
        uint8_t *qs = b + 6;
        uint32_t qh = 0;
        for (int j = 0; j < QK / 2; j++) {
            int lo = floor_code(src[j] * id + 16.5f, 31);
            int hi = floor_code(src[j + QK / 2] * id + 16.5f, 31);
            qs[j] = (uint8_t)((lo & 0x0f) | ((hi & 0x0f) << 4));
            qh |= (uint32_t)(lo >> 4) << j;
            qh |= (uint32_t)(hi >> 4) << (j + QK / 2);
        }
        store_u32(b + 2, qh);
    }
}

float g3_q5_0_dot_f32(const void *w, const float *x, int64_t n) {
    const uint8_t *b = w;
    int q[QK];
    float sum = 0.0f;
    for (int64_t i = 0; i < n / QK; i++, b += Q5_0_BYTES, x += QK) {
        q5_0_codes(b, q);
        float s = 0.0f;
        for (int j = 0; j < QK; j++) s += (float)(q[j] - 16) * x[j];
        sum += g3_load_f16_le(b) * s;
    }
    return sum;
}

/* ---- Q4_1, Q5_1: codes from the block minimum ---- */

/* The 4-bit codes of a Q4_0/Q4_1/IQ4_NL block, in element order. */
static inline void nibble_codes(const uint8_t *qs, int q[QK]) {
    for (int j = 0; j < QK / 2; j++) {
        q[j] = qs[j] & 0x0f;
        q[j + QK / 2] = qs[j] >> 4;
    }
}

/* The 5-bit codes of a Q5_0/Q5_1 block from its qh and qs fields. */
static inline void five_bit_codes(const uint8_t *qh4, const uint8_t *qs, int q[QK]) {
    const uint32_t qh = load_u32(qh4);
    nibble_codes(qs, q);
    for (int j = 0; j < QK; j++) q[j] |= (int)(((qh >> j) & 1u) << 4);
}

static void min_max(const float *x, int n, float *lo, float *hi) {
    float mn = FLT_MAX, mx = -FLT_MAX;
    for (int i = 0; i < n; i++) {
        if (x[i] < mn) mn = x[i];
        if (x[i] > mx) mx = x[i];
    }
    *lo = mn;
    *hi = mx;
}

/* ggml's quantize_row_q4_1_ref / q5_1_ref for one block: d = (max - min) /
 * steps; codes floor((x - min) / d + 0.5); d and min stored as f16. */
static void q_1_block(const float *x, int steps, uint8_t *b, int q[QK]) {
    float mn, mx;
    min_max(x, QK, &mn, &mx);
    const float d = (mx - mn) / (float)steps;
    const float id = d != 0.0f ? 1.0f / d : 0.0f;
    g3_store_f16_le(b, d);
    g3_store_f16_le(b + 2, mn);
    for (int j = 0; j < QK; j++) q[j] = floor_code((x[j] - mn) * id + 0.5f, steps);
}

static void pack_nibbles(const int q[QK], uint8_t *qs) {
    for (int j = 0; j < QK / 2; j++) qs[j] = (uint8_t)((q[j] & 0x0f) | ((q[j + QK / 2] & 0x0f) << 4));
}

/* d * sum q x + m * sum x: the real dot of the block's values q*d + m */
static inline float q_1_block_dot(const uint8_t *b, const int q[QK], const float *x) {
    float s = 0.0f, sx = 0.0f;
    for (int j = 0; j < QK; j++) {
        s += (float)q[j] * x[j];
        sx += x[j];
    }
    return g3_load_f16_le(b) * s + g3_load_f16_le(b + 2) * sx;
}

void g3_q4_1_to_float(const void *src, float *dst, int64_t n) {
    const uint8_t *b = src;
    int q[QK];
    for (int64_t i = 0; i < n / QK; i++, b += Q4_1_BYTES, dst += QK) {
        const float d = g3_load_f16_le(b), m = g3_load_f16_le(b + 2);
        nibble_codes(b + 4, q);
        for (int j = 0; j < QK; j++) dst[j] = (float)q[j] * d + m;
    }
}

void g3_q4_1_from_float(const float *src, void *dst, int64_t n) {
    uint8_t *b = dst;
    int q[QK];
    for (int64_t i = 0; i < n / QK; i++, b += Q4_1_BYTES, src += QK) {
        q_1_block(src, 15, b, q);
        pack_nibbles(q, b + 4);
    }
}

float g3_q4_1_dot_f32(const void *w, const float *x, int64_t n) {
    const uint8_t *b = w;
    int q[QK];
    float sum = 0.0f;
    for (int64_t i = 0; i < n / QK; i++, b += Q4_1_BYTES, x += QK) {
        nibble_codes(b + 4, q);
        sum += q_1_block_dot(b, q, x);
    }
    return sum;
}

void g3_q5_1_to_float(const void *src, float *dst, int64_t n) {
    const uint8_t *b = src;
    int q[QK];
    for (int64_t i = 0; i < n / QK; i++, b += Q5_1_BYTES, dst += QK) {
        const float d = g3_load_f16_le(b), m = g3_load_f16_le(b + 2);
        five_bit_codes(b + 4, b + 8, q);
        for (int j = 0; j < QK; j++) dst[j] = (float)q[j] * d + m;
    }
}

void g3_q5_1_from_float(const float *src, void *dst, int64_t n) {
    uint8_t *b = dst;
    int q[QK];
    for (int64_t i = 0; i < n / QK; i++, b += Q5_1_BYTES, src += QK) {
        q_1_block(src, 31, b, q);
        pack_nibbles(q, b + 8);
        uint32_t qh = 0;
        for (int j = 0; j < QK; j++) qh |= (uint32_t)(q[j] >> 4) << j;
        store_u32(b + 4, qh);
    }
}

float g3_q5_1_dot_f32(const void *w, const float *x, int64_t n) {
    const uint8_t *b = w;
    int q[QK];
    float sum = 0.0f;
    for (int64_t i = 0; i < n / QK; i++, b += Q5_1_BYTES, x += QK) {
        five_bit_codes(b + 4, b + 8, q);
        sum += q_1_block_dot(b, q, x);
    }
    return sum;
}

/* ---- IQ4_NL ---- */

const int8_t g3_iq4_nl_values[16] = {-127, -104, -83, -65, -49, -35, -22, -10, 1, 13, 25, 38, 53, 69, 89, 113};

/* Index of the table value nearest to v (the upper one on a tie; ggml's
 * best_index_int8, whose bisection this is, so ties break the same way). */
static int iq4_nl_nearest(float v) {
    const int8_t *kv = g3_iq4_nl_values;
    if (v <= kv[0]) return 0;
    if (v >= kv[15]) return 15;
    int lo = 0, hi = 15;
    while (hi - lo > 1) {
        const int mid = (lo + hi) / 2;
        if (v < kv[mid]) hi = mid;
        else lo = mid;
    }
    return v - kv[hi - 1] < kv[hi] - v ? hi - 1 : hi;
}

/* Weighted (w = x^2) least-squares scale of x for the codes that inverse
 * scale id gives: sum w q x and sum w q^2, in ggml's operation order. */
static void iq4_nl_fit(const float *x, const float *w, float id, float *sqx, float *sq2, int *codes) {
    float sumqx = 0.0f, sumq2 = 0.0f;
    for (int j = 0; j < QK; j++) {
        const int l = iq4_nl_nearest(id * x[j]);
        if (codes) codes[j] = l;
        const float q = (float)g3_iq4_nl_values[l];
        sumqx += w[j] * q * x[j];
        sumq2 += w[j] * q * q;
    }
    *sqx = sumqx;
    *sq2 = sumq2;
}

/* One block as llama-quantize writes it without an importance matrix
 * (ggml's quantize_row_iq4_nl_impl with ntry = 7): start from the scale
 * that maps the largest |x| to 127, refit, try the 15 inverse scales
 * (t - 127) / max for t in [-7, 7], keep the best weighted fit, then code
 * every value against that scale (the f32 one; d is stored as f16). */
static void iq4_nl_block(const float *x, uint8_t *b) {
    float w[QK], amax = 0.0f, max = 0.0f;
    for (int j = 0; j < QK; j++) {
        w[j] = x[j] * x[j];
        if (fabsf(x[j]) > amax) {
            amax = fabsf(x[j]);
            max = x[j];
        }
    }
    float d = 0.0f;
    if (amax >= 1e-15f) { /* ggml's GROUP_MAX_EPS */
        float sumqx, sumq2;
        iq4_nl_fit(x, w, 1.0f / (-max / (float)g3_iq4_nl_values[0]), &sumqx, &sumq2, NULL);
        d = sumq2 > 0.0f ? sumqx / sumq2 : 0.0f;
        float best = d * sumqx;
        for (int t = -7; t <= 7; t++) {
            iq4_nl_fit(x, w, (float)(t + g3_iq4_nl_values[0]) / max, &sumqx, &sumq2, NULL);
            if (sumq2 > 0.0f && sumqx * sumqx > best * sumq2) {
                d = sumqx / sumq2;
                best = d * sumqx;
            }
        }
    }
    g3_store_f16_le(b, d);
    const float id = d != 0.0f ? 1.0f / d : 0.0f;
    int q[QK];
    for (int j = 0; j < QK; j++) q[j] = iq4_nl_nearest(id * x[j]);
    pack_nibbles(q, b + 2);
}

void g3_iq4_nl_to_float(const void *src, float *dst, int64_t n) {
    const uint8_t *b = src;
    int q[QK];
    for (int64_t i = 0; i < n / QK; i++, b += IQ4_NL_BYTES, dst += QK) {
        const float d = g3_load_f16_le(b);
        nibble_codes(b + 2, q);
        for (int j = 0; j < QK; j++) dst[j] = (float)g3_iq4_nl_values[q[j]] * d;
    }
}

void g3_iq4_nl_from_float(const float *src, void *dst, int64_t n) {
    uint8_t *b = dst;
    for (int64_t i = 0; i < n / QK; i++, b += IQ4_NL_BYTES, src += QK) iq4_nl_block(src, b);
}

float g3_iq4_nl_dot_f32(const void *w, const float *x, int64_t n) {
    const uint8_t *b = w;
    int q[QK];
    float sum = 0.0f;
    for (int64_t i = 0; i < n / QK; i++, b += IQ4_NL_BYTES, x += QK) {
        nibble_codes(b + 2, q);
        float s = 0.0f;
        for (int j = 0; j < QK; j++) s += (float)g3_iq4_nl_values[q[j]] * x[j];
        sum += g3_load_f16_le(b) * s;
    }
    return sum;
}
