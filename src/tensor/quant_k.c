/* quant_k.c: Q4_K, Q5_K, Q6_K (ggml's 256-element super-blocks), scalar reference.
 *
 * Layouts (ggml-common.h; little-endian, packed, read bytewise here):
 *   Q4_K (144 bytes): f16 d; f16 dmin; u8 scales[12]; u8 qs[128]
 *   Q5_K (176 bytes): f16 d; f16 dmin; u8 scales[12]; u8 qh[32]; u8 qs[128]
 *   Q6_K (210 bytes): u8 ql[128]; u8 qh[64]; int8 scales[16]; f16 d  (d LAST)
 *
 * Q4_K/Q5_K: 8 sub-blocks of 32, x = d*sc[s]*q - dmin*m[s] with 6-bit sc and
 * m packed into 12 bytes (see k4_scale_min). The 4-bit parts come in chunks of
 * 64 elements: qs[32c + l] holds element 64c + l in its low nibble and
 * element 64c + 32 + l in its high nibble. Q5_K's fifth bit of element
 * 64c + 32h + l is bit 2c + h of qh[l].
 * Q6_K: 16 sub-blocks of 16, x = d*scales[e/16]*(q - 32), q 6 bits. Each half
 * of 128 elements uses 64 bytes of ql and 32 of qh: for l < 32, elements
 * l, l+32, l+64, l+96 of the half take the low nibble of ql[l], low of
 * ql[l+32], high of ql[l], high of ql[l+32], and bits 0-1, 2-3, 4-5, 6-7
 * of qh[l] as their top two bits.
 *
 * The quantizers use ggml's reference search (quantize_row_q*_K_ref, what
 * llama-quantize runs without an importance matrix): fit each sub-block by
 * least squares over a small grid of candidate scales, quantize the
 * sub-block scales and mins to 6 (Q6_K: 8) bits against the largest, then
 * requantize the values with the scales as stored. Float operations are
 * evaluated in ggml's order, so near-ties break the same way: on the golden
 * files our Q4_K and Q6_K bytes equal llama-quantize's.
 */
#include "tensor/quant_k.h"

#include <math.h>
#include <string.h>

#include "tensor/fp16_inline.h"
#include "tensor/type_ops.h"

#define QK_K 256
#define Q4_K_BYTES 144
#define Q5_K_BYTES 176
#define Q6_K_BYTES 210

/* Byte offsets inside the blocks. */
#define K_D 0
#define K_DMIN 2
#define K_SCALES 4
#define Q4_K_QS 16
#define Q5_K_QH 16
#define Q5_K_QS 48
#define Q6_K_QL 0
#define Q6_K_QH 128
#define Q6_K_SCALES 192
#define Q6_K_D 208

/* Round to nearest (ties to even, like ggml's nearest_int), clamped to
 * [lo, hi]; clamping before converting keeps NaN and huge values defined. */
static inline int round_clamp(float v, int lo, int hi) {
    if (!(v >= (float)lo)) return lo;
    if (v > (float)hi) return hi;
    return (int)lrintf(v);
}

/* ---- shared by Q4_K and Q5_K: the 12 bytes of 6-bit scales and mins ---- */

/* ggml's get_scale_min_k4: sub-blocks 0-3 keep their 6 bits in the low bits of
 * bytes 0-3 (scale) and 4-7 (min); sub-blocks 4-7 keep their low 4 bits in
 * bytes 8-11 (scale low nibble, min high nibble) and their top 2 bits in the
 * top 2 bits of bytes 0-3 (scale) and 4-7 (min). */
static inline void k4_scale_min(const uint8_t *s, int j, int *sc, int *m) {
    if (j < 4) {
        *sc = s[j] & 63;
        *m = s[j + 4] & 63;
    } else {
        *sc = (s[j + 4] & 0x0f) | ((s[j - 4] >> 6) << 4);
        *m = (s[j + 4] >> 4) | ((s[j] >> 6) << 4);
    }
}

static void k4_pack_scales(const int sc[8], const int m[8], uint8_t *s) {
    memset(s, 0, 12);
    for (int j = 0; j < 8; j++) {
        if (j < 4) {
            s[j] |= (uint8_t)sc[j];
            s[j + 4] |= (uint8_t)m[j];
        } else {
            s[j + 4] = (uint8_t)((sc[j] & 0x0f) | ((m[j] & 0x0f) << 4));
            s[j - 4] |= (uint8_t)((sc[j] >> 4) << 6);
            s[j] |= (uint8_t)((m[j] >> 4) << 6);
        }
    }
}

/* Codes of one Q4_K/Q5_K super-block in element order; qh NULL for Q4_K. */
static void k45_codes(const uint8_t *qs, const uint8_t *qh, uint8_t q[QK_K]) {
    for (int c = 0; c < 4; c++) {
        for (int l = 0; l < 32; l++) {
            q[64 * c + l] = qs[32 * c + l] & 0x0f;
            q[64 * c + 32 + l] = qs[32 * c + l] >> 4;
        }
        if (!qh) continue;
        for (int l = 0; l < 32; l++) {
            q[64 * c + l] |= (uint8_t)(((qh[l] >> (2 * c)) & 1) << 4);
            q[64 * c + 32 + l] |= (uint8_t)(((qh[l] >> (2 * c + 1)) & 1) << 4);
        }
    }
}

static void k45_to_float(const uint8_t *b, const uint8_t *qs, const uint8_t *qh, float *dst) {
    uint8_t q[QK_K];
    k45_codes(qs, qh, q);
    const float d = g3_load_f16_le(b + K_D), dmin = g3_load_f16_le(b + K_DMIN);
    for (int s = 0; s < 8; s++) {
        int sc, m;
        k4_scale_min(b + K_SCALES, s, &sc, &m);
        const float ds = d * (float)sc, dm = dmin * (float)m;
        for (int l = 0; l < 32; l++) dst[32 * s + l] = ds * (float)q[32 * s + l] - dm;
    }
}

static float k45_dot(const uint8_t *b, const uint8_t *qs, const uint8_t *qh, const float *x) {
    uint8_t q[QK_K];
    k45_codes(qs, qh, q);
    const float d = g3_load_f16_le(b + K_D), dmin = g3_load_f16_le(b + K_DMIN);
    float sum = 0.0f;
    for (int s = 0; s < 8; s++) {
        int sc, m;
        k4_scale_min(b + K_SCALES, s, &sc, &m);
        float sqx = 0.0f, sx = 0.0f;
        for (int l = 0; l < 32; l++) {
            sqx += (float)q[32 * s + l] * x[32 * s + l];
            sx += x[32 * s + l];
        }
        sum += d * (float)sc * sqx - dmin * (float)m * sx;
    }
    return sum;
}

/* Search parameters of ggml's reference quantizers for the affine fit. */
typedef struct k_search {
    int nmax;       /* largest code: 15 (Q4_K) or 31 (Q5_K) */
    float rmin;     /* first candidate: (nmax + rmin) steps across the range */
    float rdelta;   /* candidate step */
    int nstep;
} k_search;

static const k_search k_q4_k_search = {15, -1.0f, 0.1f, 20};
static const k_search k_q5_k_search = {31, -0.5f, 0.1f, 15};

/* Weighted squared error of x ~ scale*L + off. */
static float affine_error(const float *x, const float *w, const uint8_t *L, int n, float scale,
                          float off) {
    float err = 0.0f;
    for (int i = 0; i < n; i++) {
        float diff = scale * (float)L[i] + off - x[i];
        err += w[i] * (diff * diff);
    }
    return err;
}

/* Fits x ~ scale*L - min with L in [0, nmax], scale >= 0, min >= 0 (the
 * format stores min unsigned, so the offset can only be negative or zero).
 * Starts from the plain range [min(x,0), max(x)]; each candidate then spreads
 * a slightly different number of steps between the best offset found so far
 * and max(x), quantizes, and solves the 2x2 weighted least-squares problem
 * for scale and offset given those codes; the best fit is kept. Measuring
 * from the best offset so far (not the original minimum) is what ggml's
 * make_qkx2_quants does; it fits better, and keeping it makes our bytes
 * llama-quantize's. Returns scale; *min_out = min. */
static float fit_affine(const float *x, const float *w, int n, const k_search *ks, uint8_t *L,
                        float *min_out) {
    float lo = x[0], hi = x[0], sw = 0.0f, swx = 0.0f;
    for (int i = 0; i < n; i++) {
        lo = fminf(lo, x[i]);
        hi = fmaxf(hi, x[i]);
        sw += w[i];
        swx += w[i] * x[i];
    }
    if (lo > 0.0f) lo = 0.0f;
    if (!(hi > lo)) { /* constant non-positive (or NaN) sub-block */
        memset(L, 0, (size_t)n);
        *min_out = -lo;
        return 0.0f;
    }
    float iscale = (float)ks->nmax / (hi - lo);
    float scale = 1.0f / iscale, off = lo;
    for (int i = 0; i < n; i++) L[i] = (uint8_t)round_clamp(iscale * (x[i] - lo), 0, ks->nmax);
    float best = affine_error(x, w, L, n, scale, off);
    uint8_t La[QK_K];
    for (int k = 0; k <= ks->nstep; k++) {
        /* round_clamp keeps this defined even if off has moved near hi. */
        iscale = (ks->rmin + ks->rdelta * (float)k + (float)ks->nmax) / (hi - off);
        float sl = 0.0f, sll = 0.0f, sxl = 0.0f;
        for (int i = 0; i < n; i++) {
            int l = round_clamp(iscale * (x[i] - off), 0, ks->nmax);
            La[i] = (uint8_t)l;
            sl += w[i] * (float)l;
            sll += w[i] * (float)l * (float)l;
            sxl += w[i] * (float)l * x[i];
        }
        float det = sw * sll - sl * sl;
        if (!(det > 0.0f)) continue;
        float s = (sw * sxl - swx * sl) / det;
        float o = (sll * swx - sl * sxl) / det;
        if (o > 0.0f) { /* offset must be <= 0: refit the scale alone */
            o = 0.0f;
            s = sxl / sll;
        }
        float err = affine_error(x, w, La, n, s, o);
        if (err < best) {
            best = err;
            scale = s;
            off = o;
            memcpy(L, La, (size_t)n);
        }
    }
    *min_out = -off;
    return scale;
}

/* Quantizes one Q4_K/Q5_K super-block: writes d, dmin and the packed scales
 * into b, and the final codes (0..nmax, element order) into L. */
static void k45_quantize(const float *x, const k_search *ks, uint8_t *b, uint8_t L[QK_K]) {
    float scale[8], min[8], w[32];
    float max_scale = 0.0f, max_min = 0.0f;
    for (int s = 0; s < 8; s++) {
        const float *xs = x + 32 * s;
        float sx2 = 0.0f;
        for (int l = 0; l < 32; l++) sx2 += xs[l] * xs[l];
        /* Weight large values more: they dominate the matrix products. */
        const float rms = sqrtf(sx2 / 32.0f);
        for (int l = 0; l < 32; l++) w[l] = rms + fabsf(xs[l]);
        scale[s] = fit_affine(xs, w, 32, ks, L + 32 * s, &min[s]);
        if (scale[s] > max_scale) max_scale = scale[s];
        if (min[s] > max_min) max_min = min[s];
    }
    /* 6-bit sub-block scales and mins relative to the largest of each. */
    const float inv_scale = max_scale > 0.0f ? 63.0f / max_scale : 0.0f;
    const float inv_min = max_min > 0.0f ? 63.0f / max_min : 0.0f;
    int sc[8], m[8];
    for (int s = 0; s < 8; s++) {
        sc[s] = round_clamp(inv_scale * scale[s], 0, 63);
        m[s] = round_clamp(inv_min * min[s], 0, 63);
    }
    k4_pack_scales(sc, m, b + K_SCALES);
    g3_store_f16_le(b + K_D, max_scale / 63.0f);
    g3_store_f16_le(b + K_DMIN, max_min / 63.0f);
    /* Requantize against the scales as stored (6-bit, f16), not as fitted. */
    const float d = g3_load_f16_le(b + K_D), dmin = g3_load_f16_le(b + K_DMIN);
    for (int s = 0; s < 8; s++) {
        const float ds = d * (float)sc[s], dm = dmin * (float)m[s];
        for (int l = 0; l < 32; l++)
            L[32 * s + l] = ds != 0.0f ? (uint8_t)round_clamp((x[32 * s + l] + dm) / ds, 0, ks->nmax) : 0;
    }
}

/* Low nibbles of element 64c + l and 64c + 32 + l share qs[32c + l]. */
static void k45_pack_nibbles(const uint8_t L[QK_K], uint8_t *qs) {
    for (int c = 0; c < 4; c++)
        for (int l = 0; l < 32; l++)
            qs[32 * c + l] = (uint8_t)((L[64 * c + l] & 0x0f) | ((L[64 * c + 32 + l] & 0x0f) << 4));
}

/* ---- Q4_K ---- */

void g3_q4_k_to_float(const void *src, float *dst, int64_t n) {
    const uint8_t *b = src;
    for (int64_t i = 0; i < n / QK_K; i++, b += Q4_K_BYTES, dst += QK_K)
        k45_to_float(b, b + Q4_K_QS, NULL, dst);
}

void g3_q4_k_from_float(const float *src, void *dst, int64_t n) {
    uint8_t *b = dst;
    uint8_t L[QK_K];
    for (int64_t i = 0; i < n / QK_K; i++, b += Q4_K_BYTES, src += QK_K) {
        k45_quantize(src, &k_q4_k_search, b, L);
        k45_pack_nibbles(L, b + Q4_K_QS);
    }
}

float g3_q4_k_dot_f32(const void *w, const float *x, int64_t n) {
    const uint8_t *b = w;
    float sum = 0.0f;
    for (int64_t i = 0; i < n / QK_K; i++, b += Q4_K_BYTES, x += QK_K)
        sum += k45_dot(b, b + Q4_K_QS, NULL, x);
    return sum;
}

/* ---- Q5_K ---- */

void g3_q5_k_to_float(const void *src, float *dst, int64_t n) {
    const uint8_t *b = src;
    for (int64_t i = 0; i < n / QK_K; i++, b += Q5_K_BYTES, dst += QK_K)
        k45_to_float(b, b + Q5_K_QS, b + Q5_K_QH, dst);
}

void g3_q5_k_from_float(const float *src, void *dst, int64_t n) {
    uint8_t *b = dst;
    uint8_t L[QK_K];
    for (int64_t i = 0; i < n / QK_K; i++, b += Q5_K_BYTES, src += QK_K) {
        k45_quantize(src, &k_q5_k_search, b, L);
        k45_pack_nibbles(L, b + Q5_K_QS);
        uint8_t *qh = b + Q5_K_QH;
        memset(qh, 0, 32);
        for (int c = 0; c < 4; c++)
            for (int l = 0; l < 32; l++)
                qh[l] |= (uint8_t)(((L[64 * c + l] >> 4) << (2 * c)) |
                                   ((L[64 * c + 32 + l] >> 4) << (2 * c + 1)));
    }
}

float g3_q5_k_dot_f32(const void *w, const float *x, int64_t n) {
    const uint8_t *b = w;
    float sum = 0.0f;
    for (int64_t i = 0; i < n / QK_K; i++, b += Q5_K_BYTES, x += QK_K)
        sum += k45_dot(b, b + Q5_K_QS, b + Q5_K_QH, x);
    return sum;
}

/* ---- Q6_K ---- */

/* Codes 0..63 of one Q6_K super-block in element order. */
static void q6_k_codes(const uint8_t *b, uint8_t q[QK_K]) {
    for (int h = 0; h < 2; h++) {
        const uint8_t *ql = b + Q6_K_QL + 64 * h, *qh = b + Q6_K_QH + 32 * h;
        uint8_t *qq = q + 128 * h;
        for (int l = 0; l < 32; l++) {
            qq[l] = (uint8_t)((ql[l] & 0x0f) | (((qh[l] >> 0) & 3) << 4));
            qq[l + 32] = (uint8_t)((ql[l + 32] & 0x0f) | (((qh[l] >> 2) & 3) << 4));
            qq[l + 64] = (uint8_t)((ql[l] >> 4) | (((qh[l] >> 4) & 3) << 4));
            qq[l + 96] = (uint8_t)((ql[l + 32] >> 4) | (((qh[l] >> 6) & 3) << 4));
        }
    }
}

static void q6_k_pack(const uint8_t L[QK_K], uint8_t *b) {
    for (int h = 0; h < 2; h++) {
        uint8_t *ql = b + Q6_K_QL + 64 * h, *qh = b + Q6_K_QH + 32 * h;
        const uint8_t *qq = L + 128 * h;
        for (int l = 0; l < 32; l++) {
            ql[l] = (uint8_t)((qq[l] & 0x0f) | ((qq[l + 64] & 0x0f) << 4));
            ql[l + 32] = (uint8_t)((qq[l + 32] & 0x0f) | ((qq[l + 96] & 0x0f) << 4));
            qh[l] = (uint8_t)((qq[l] >> 4) | ((qq[l + 32] >> 4) << 2) | ((qq[l + 64] >> 4) << 4) |
                              ((qq[l + 96] >> 4) << 6));
        }
    }
}

void g3_q6_k_to_float(const void *src, float *dst, int64_t n) {
    const uint8_t *b = src;
    uint8_t q[QK_K];
    for (int64_t i = 0; i < n / QK_K; i++, b += Q6_K_BYTES, dst += QK_K) {
        q6_k_codes(b, q);
        const float d = g3_load_f16_le(b + Q6_K_D);
        const int8_t *sc = (const int8_t *)(b + Q6_K_SCALES);
        for (int s = 0; s < 16; s++) {
            const float ds = d * (float)sc[s];
            for (int l = 0; l < 16; l++) dst[16 * s + l] = ds * (float)(q[16 * s + l] - 32);
        }
    }
}

float g3_q6_k_dot_f32(const void *w, const float *x, int64_t n) {
    const uint8_t *b = w;
    uint8_t q[QK_K];
    float sum = 0.0f;
    for (int64_t i = 0; i < n / QK_K; i++, b += Q6_K_BYTES, x += QK_K) {
        q6_k_codes(b, q);
        const float d = g3_load_f16_le(b + Q6_K_D);
        const int8_t *sc = (const int8_t *)(b + Q6_K_SCALES);
        float block = 0.0f;
        for (int s = 0; s < 16; s++) {
            float sqx = 0.0f;
            for (int l = 0; l < 16; l++) sqx += (float)(q[16 * s + l] - 32) * x[16 * s + l];
            block += d * (float)sc[s] * sqx;
        }
        sum += block;
    }
    return sum;
}

/* Symmetric fit of a 16-element sub-block: x ~ scale*l, l in [-32, 31],
 * weighted by x^2 (ggml's make_qx_quants, rmse_type 1). Candidates map the
 * largest-magnitude element near -32 (the longer side of the code range); for
 * given codes the best scale is sum(w x l) / sum(w l^2), and the error drop
 * sum(w x l)^2 / sum(w l^2) is what we maximize. The nominal candidate is the
 * baseline and the comparison is evaluated as ggml does, so near-ties break
 * the same way and our Q6_K matches llama-quantize's bytes. */
static void sym_sums(const float *x, float iscale, float *sxl, float *sll) {
    *sxl = *sll = 0.0f;
    for (int i = 0; i < 16; i++) {
        const float w = x[i] * x[i];
        const int l = round_clamp(iscale * x[i], -32, 31);
        *sxl += w * x[i] * (float)l;
        *sll += w * (float)l * (float)l;
    }
}

static float fit_symmetric16(const float *x) {
    float amax = 0.0f, max = 0.0f;
    for (int i = 0; i < 16; i++) {
        if (fabsf(x[i]) > amax) {
            amax = fabsf(x[i]);
            max = x[i];
        }
    }
    if (!(amax >= 1e-15f)) return 0.0f;
    float sxl, sll;
    sym_sums(x, -32.0f / max, &sxl, &sll);
    float scale = sll > 0.0f ? sxl / sll : 0.0f;
    float best = scale * sxl;
    for (int k = -9; k <= 9; k++) {
        if (k == 0) continue;
        sym_sums(x, -(32.0f + 0.1f * (float)k) / max, &sxl, &sll);
        if (sll > 0.0f && sxl * sxl > best * sll) {
            scale = sxl / sll;
            best = scale * sxl;
        }
    }
    return scale;
}

static void q6_k_quantize_block(const float *x, uint8_t *b) {
    float scale[16], max_scale = 0.0f;
    for (int s = 0; s < 16; s++) {
        scale[s] = fit_symmetric16(x + 16 * s);
        if (fabsf(scale[s]) > fabsf(max_scale)) max_scale = scale[s];
    }
    memset(b, 0, Q6_K_BYTES);
    if (!(fabsf(max_scale) >= 1e-15f)) return; /* all zero: d = 0 decodes to 0 */
    /* The sub-block scale of largest magnitude becomes -128, the longer side
     * of int8, for one more bit of resolution on the others. */
    const float iscale = -128.0f / max_scale;
    g3_store_f16_le(b + Q6_K_D, 1.0f / iscale);
    const float d = g3_load_f16_le(b + Q6_K_D);
    int8_t *sc = (int8_t *)(b + Q6_K_SCALES);
    uint8_t L[QK_K];
    for (int s = 0; s < 16; s++) {
        sc[s] = (int8_t)round_clamp(iscale * scale[s], -128, 127);
        const float ds = d * (float)sc[s];
        for (int l = 0; l < 16; l++)
            L[16 * s + l] = (uint8_t)(ds != 0.0f ? round_clamp(x[16 * s + l] / ds, -32, 31) + 32 : 32);
    }
    q6_k_pack(L, b);
}

void g3_q6_k_from_float(const float *src, void *dst, int64_t n) {
    uint8_t *b = dst;
    for (int64_t i = 0; i < n / QK_K; i++, b += Q6_K_BYTES, src += QK_K) q6_k_quantize_block(src, b);
}
