/* quant_legacy.c: Q8_0, Q4_0, Q5_0 (ggml's 32-element blocks), scalar reference.
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
 *
 * The quantizers follow ggml's reference (quantize_row_*_ref) arithmetic, so
 * they reproduce llama-quantize's bytes for these types: Q8_0 scales by
 * amax/127 and rounds half away from zero; Q4_0/Q5_0 map the element of
 * largest magnitude to the most negative code (d = max / -8, max / -16),
 * which uses the asymmetric code range fully, and round half up.
 */
#include "tensor/quant_legacy.h"

#include <math.h>

#include "tensor/fp16_inline.h"
#include "tensor/type_ops.h"

#define QK 32
#define Q8_0_BYTES 34
#define Q4_0_BYTES 18
#define Q5_0_BYTES 22

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
