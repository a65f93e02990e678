/* kernels_avx2.c: the AVX2 path (AVX2 + FMA + F16C; no VNNI).
 *
 * Compiled with -mavx2 -mfma -mf16c for this file only. The integer dot
 * products are vpmaddubsw (u8 x s8 -> s16 pairs) + vpmaddwd (-> s32), the
 * way ggml does them without VNNI. vpmaddubsw saturates at 32767, so:
 * - decode: weight codes stay unsigned and small (Q4_0/Q5_0/Q4_1/Q5_1/
 *   K-quants, at most 63) against signed activations, with the code offset
 *   (or Q4_1/Q5_1's block minimum) brought in through the activation block
 *   sums as on AVX-512; Q8_0 and IQ4_NL (table values, |v| <= 127) use the
 *   sign trick (|w| x sign(a, w)), which keeps every pair below 2 x 128 x 127;
 * - batched: the panel values are signed and small against unsigned
 *   activations (qu = q + 128, at most 2 x 255 x 64 per pair), except Q8_0
 *   and IQ4_NL, which again use the sign trick with the signed activations.
 * One 32-block per ymm; panels of 8 rows. */
#include <immintrin.h>
#include <math.h>
#include <string.h>

#include "tensor/kernels.h"
#include "tensor/kernels_simd_common.h"
#include "tensor/ops.h"
#include "tensor/quant_legacy.h"
#include "tensor/type_ops.h"

ALWAYS_INLINE float hsum256(__m256 v) {
    __m128 s = _mm_add_ps(_mm256_castps256_ps128(v), _mm256_extractf128_ps(v, 1));
    s = _mm_add_ps(s, _mm_movehl_ps(s, s));
    s = _mm_add_ss(s, _mm_movehdup_ps(s));
    return _mm_cvtss_f32(s);
}

ALWAYS_INLINE int hsum256_epi32(__m256i v) {
    __m128i s = _mm_add_epi32(_mm256_castsi256_si128(v), _mm256_extracti128_si256(v, 1));
    s = _mm_add_epi32(s, _mm_shuffle_epi32(s, 0x4e));
    s = _mm_add_epi32(s, _mm_shuffle_epi32(s, 0xb1));
    return _mm_cvtsi128_si32(s);
}

ALWAYS_INLINE float hmax256(__m256 v) {
    __m128 s = _mm_max_ps(_mm256_castps256_ps128(v), _mm256_extractf128_ps(v, 1));
    s = _mm_max_ps(s, _mm_movehl_ps(s, s));
    s = _mm_max_ss(s, _mm_movehdup_ps(s));
    return _mm_cvtss_f32(s);
}

/* u8 x s8 products summed per 4 bytes into 8 int32 lanes */
ALWAYS_INLINE __m256i dot_u8s8(__m256i u, __m256i s) {
    return _mm256_madd_epi16(_mm256_maddubs_epi16(u, s), _mm256_set1_epi16(1));
}

/* sum of u * Q per 4 bytes, Q = 128 q1 + q2 (quant_act.h) */
ALWAYS_INLINE __m256i dot_Q(__m256i u, const int8_t *q1, const int8_t *q2) {
    const __m256i hi = dot_u8s8(u, _mm256_loadu_si256((const __m256i *)q1));
    return _mm256_add_epi32(_mm256_slli_epi32(hi, 7), dot_u8s8(u, _mm256_loadu_si256((const __m256i *)q2)));
}

/* sum of u * q per 4 bytes: Q's 15 bits, or q1 alone (a8: 8-bit activations) */
ALWAYS_INLINE __m256i dot_act(__m256i u, const int8_t *q1, const int8_t *q2, bool a8) {
    return a8 ? dot_u8s8(u, _mm256_loadu_si256((const __m256i *)q1)) : dot_Q(u, q1, q2);
}

/* mask for the first n (< 8) float lanes */
ALWAYS_INLINE __m256i lane_mask(uint32_t n) {
    return _mm256_cmpgt_epi32(_mm256_set1_epi32((int)n), _mm256_set_epi32(7, 6, 5, 4, 3, 2, 1, 0));
}

/* ------------------------------------------------------------------ */
/* activation quantizer                                                */

/* 4 vectors of 8 int32 (values in int8 range) to 32 int8 in order */
ALWAYS_INLINE __m256i pack_i8(const __m256i q[4]) {
    /* packs interleave 128-bit lanes; the permute puts them back in order */
    const __m256i a = _mm256_packs_epi32(q[0], q[1]), b = _mm256_packs_epi32(q[2], q[3]);
    return _mm256_permutevar8x32_epi32(_mm256_packs_epi16(a, b), _mm256_setr_epi32(0, 4, 1, 5, 2, 6, 3, 7));
}

static void quantize_blocks(const float *x, uint32_t b0, uint32_t b1, const g3_qa_row_out *o) {
    const __m256 sign = _mm256_set1_ps(-0.0f), lo = _mm256_set1_ps(-127.0f), hi = _mm256_set1_ps(127.0f);
    const __m256 s128 = _mm256_set1_ps(128.0f);
    const __m256i flip = _mm256_set1_epi8((char)0x80);
    for (uint32_t b = b0; b < b1; b++) {
        __m256 v[4];
        __m256 amax = _mm256_setzero_ps();
        for (int i = 0; i < 4; i++) {
            v[i] = _mm256_loadu_ps(x + 32 * b + 8 * i);
            amax = _mm256_max_ps(amax, _mm256_andnot_ps(sign, v[i]));
        }
        const float d = hmax256(amax) / 127.0f;
        const float id = d != 0.0f ? 1.0f / d : 0.0f;
        const __m256 vid = _mm256_set1_ps(id);
        __m256i q1[4], q2[4], Q[4];
        for (int i = 0; i < 4; i++) { /* max first: a NaN becomes -127 */
            const __m256 c = _mm256_min_ps(_mm256_max_ps(_mm256_mul_ps(v[i], vid), lo), hi);
            q1[i] = _mm256_cvtps_epi32(c);
            Q[i] = _mm256_cvtps_epi32(_mm256_mul_ps(c, s128));
            q2[i] = _mm256_sub_epi32(Q[i], _mm256_slli_epi32(q1[i], 7));
        }
        const int32_t s0 = hsum256_epi32(_mm256_add_epi32(Q[0], Q[1])), s1 = hsum256_epi32(_mm256_add_epi32(Q[2], Q[3]));
        const int32_t t0 = hsum256_epi32(_mm256_add_epi32(q1[0], q1[1]));
        const int32_t t1 = hsum256_epi32(_mm256_add_epi32(q1[2], q1[3]));
        const __m256i p1 = pack_i8(q1), p2 = pack_i8(q2);
        _mm256_storeu_si256((__m256i *)(o->q1 + 32 * b), p1);
        _mm256_storeu_si256((__m256i *)(o->q2 + 32 * b), p2);
        _mm256_storeu_si256((__m256i *)(o->q1u + 32 * b), _mm256_xor_si256(p1, flip));
        _mm256_storeu_si256((__m256i *)(o->q2u + 32 * b), _mm256_xor_si256(p2, flip));
        o->d[b] = d * (1.0f / 128.0f);
        o->dsum[b] = o->d[b] * (float)(s0 + s1);
        o->s16[2 * b] = s0;
        o->s16[2 * b + 1] = s1;
        o->dsum8[b] = d * (float)(t0 + t1);
        o->s8_16[2 * b] = t0;
        o->s8_16[2 * b + 1] = t1;
    }
}

/* ------------------------------------------------------------------ */
/* decode                                                              */

/* 32 nibbles of a Q4_0/Q5_0 block: low nibbles (elements 0-15), then high */
ALWAYS_INLINE __m256i nibbles32(const uint8_t *qs) {
    const __m128i q = _mm_loadu_si128((const __m128i *)qs);
    return _mm256_and_si256(_mm256_inserti128_si256(_mm256_castsi128_si256(q), _mm_srli_epi16(q, 4), 1),
                            _mm256_set1_epi8(0x0f));
}

/* 0x10 in byte j where bit j of the 32-bit word is set (ggml's trick:
 * spread the word's bytes, isolate one bit per byte, compare) */
ALWAYS_INLINE __m256i bits_to_16(uint32_t bits) {
    const __m256i shuf = _mm256_setr_epi64x(0x0000000000000000LL, 0x0101010101010101LL, 0x0202020202020202LL,
                                            0x0303030303030303LL);
    __m256i v = _mm256_shuffle_epi8(_mm256_set1_epi32((int)bits), shuf);
    const __m256i bit = _mm256_set1_epi64x(0x8040201008040201LL);
    v = _mm256_cmpeq_epi8(_mm256_and_si256(v, bit), bit);
    return _mm256_and_si256(v, _mm256_set1_epi8(16));
}

/* Partial sums of one row, so the decode kernels can walk several rows
 * (memory streams) in turn, a few blocks of each. */
typedef struct part {
    __m256 acc;
    float corr; /* legacy: dw . dsum (code offset); K-quants: mins, or sc . s16 */
} part;

#define PREFETCH_AHEAD 4096 /* bytes ahead of the weight stream */

/* IQ4_NL's 32 table values (signed) of a block's nibbles, in element order */
ALWAYS_INLINE __m256i iq4_nl_values32(const uint8_t *qs) {
    const __m256i kv = _mm256_broadcastsi128_si256(_mm_loadu_si128((const __m128i *)g3_iq4_nl_values));
    return _mm256_shuffle_epi8(kv, nibbles32(qs));
}

/* Legacy blocks [b0, b1) of a row, of kind LEG_* (kernels_simd_common.h).
 * Signed codes (Q8_0, IQ4_NL: |q| <= 127) take the sign trick; unsigned
 * ones (at most 31) go against the signed activations directly, and the
 * code offset (Q4_0, Q5_0) or the block minimum (Q4_1, Q5_1) comes in
 * through the activation block sums: corr = sum dw . dsum, or sum m . dsum. */
ALWAYS_INLINE part legacy_part(part st, const uint8_t *w, uint32_t b0, uint32_t b1, const g3_qa_row *a, int kind,
                               bool a8) {
    const int bytes = leg_bytes(kind);
    /* a8: q1 alone, whose scale is 128 d (dsum8 has it already) */
    const float *dsum = a8 ? a->dsum8 : a->dsum;
    const float da_unit = a8 ? 128.0f : 1.0f;
    for (uint32_t b = b0; b < b1; b++) {
        const uint8_t *p = w + (size_t)b * bytes;
        _mm_prefetch((const char *)p + PREFETCH_AHEAD, _MM_HINT_T0);
        const float dw = f16_at(p);
        __m256i dot;
        if (kind == LEG_Q8_0 || kind == LEG_IQ4_NL) {
            const __m256i q = kind == LEG_Q8_0 ? _mm256_loadu_si256((const __m256i *)(p + 2)) : iq4_nl_values32(p + 2);
            const __m256i aq = _mm256_sign_epi8(q, q);
            const __m256i a1 = _mm256_loadu_si256((const __m256i *)(a->q1 + 32 * b));
            const __m256i a2 = _mm256_loadu_si256((const __m256i *)(a->q2 + 32 * b));
            dot = dot_u8s8(aq, _mm256_sign_epi8(a1, q));
            if (!a8) dot = _mm256_add_epi32(_mm256_slli_epi32(dot, 7), dot_u8s8(aq, _mm256_sign_epi8(a2, q)));
        } else {
            __m256i q = nibbles32(p + leg_qs(kind));
            if (kind == LEG_Q5_0 || kind == LEG_Q5_1) {
                uint32_t qh;
                memcpy(&qh, p + leg_qh(kind), 4);
                q = _mm256_or_si256(q, bits_to_16(qh));
            }
            dot = dot_act(q, a->q1 + 32 * b, a->q2 + 32 * b, a8);
            st.corr += (leg_has_min(kind) ? f16_at(p + 2) : dw) * dsum[b];
        }
        st.acc = _mm256_fmadd_ps(_mm256_cvtepi32_ps(dot), _mm256_set1_ps(dw * a->d[b] * da_unit), st.acc);
    }
    return st;
}

ALWAYS_INLINE float legacy_finish(part st, int kind) {
    const float k = kind == LEG_Q4_0 ? -8.0f : kind == LEG_Q5_0 ? -16.0f : leg_has_min(kind) ? 1.0f : 0.0f;
    return hsum256(st.acc) + k * st.corr;
}

static float dot_legacy_row(const uint8_t *w, uint32_t nb, const g3_qa_row *a, int kind) {
    part st = {_mm256_setzero_ps(), 0.0f};
    return legacy_finish(legacy_part(st, w, 0, nb, a, kind, false), kind);
}

/* n rows in turn, 8 blocks of each at a time */
ALWAYS_INLINE void legacy_rows(const uint8_t *const *rows, uint32_t n, uint32_t nb, const g3_qa_row *a, int kind,
                               bool a8, float *out) {
    part st[G3_DOT_ROWS];
    for (uint32_t r = 0; r < n; r++) st[r] = (part){_mm256_setzero_ps(), 0.0f};
    for (uint32_t b = 0; b < nb; b += 8)
        for (uint32_t r = 0; r < n; r++) st[r] = legacy_part(st[r], rows[r], b, b + 8 < nb ? b + 8 : nb, a, kind, a8);
    for (uint32_t r = 0; r < n; r++) out[r] = legacy_finish(st[r], kind);
}

/* Q4_K/Q5_K super-blocks [i0, i1) of a row; corr collects the mins. */
ALWAYS_INLINE part k45_part(part st, const uint8_t *w, uint32_t i0, uint32_t i1, const g3_qa_row *a, bool q5,
                            bool a8) {
    const int bytes = q5 ? 176 : 144;
    const float *dsum = a8 ? a->dsum8 : a->dsum;
    const float da_unit = a8 ? 128.0f : 1.0f;
    const __m256i m4 = _mm256_set1_epi8(0x0f);
    __m256 acc = st.acc;
    float mins = st.corr;
    for (uint32_t i = i0; i < i1; i++) {
        const uint8_t *b = w + (size_t)i * bytes;
        for (int l = 0; l < bytes; l += 64) _mm_prefetch((const char *)b + PREFETCH_AHEAD + l, _MM_HINT_T0);
        const uint8_t *qs = b + (q5 ? 48 : 16), *qh = b + 16;
        uint8_t sm[16];
        k4_unpack_scales(b + 4, sm);
        const float d = f16_at(b), dmin = f16_at(b + 2);
        __m256i qhv = _mm256_setzero_si256();
        if (q5) qhv = _mm256_loadu_si256((const __m256i *)qh);
        for (int c = 0; c < 4; c++) {
            const __m256i raw = _mm256_loadu_si256((const __m256i *)(qs + 32 * c));
            __m256i lo = _mm256_and_si256(raw, m4), hi = _mm256_and_si256(_mm256_srli_epi16(raw, 4), m4);
            if (q5) {
                const __m256i b0 = _mm256_set1_epi8((char)(1 << (2 * c))), b1 = _mm256_set1_epi8((char)(2 << (2 * c)));
                lo = _mm256_or_si256(lo, _mm256_and_si256(_mm256_cmpeq_epi8(_mm256_and_si256(qhv, b0), b0), _mm256_set1_epi8(16)));
                hi = _mm256_or_si256(hi, _mm256_and_si256(_mm256_cmpeq_epi8(_mm256_and_si256(qhv, b1), b1), _mm256_set1_epi8(16)));
            }
            const uint32_t s0 = 2 * c, s1 = 2 * c + 1, ab = 8 * i;
            const size_t at = 256 * (size_t)i + 64 * c;
            const __m256i d0 = dot_act(lo, a->q1 + at, a->q2 + at, a8);
            const __m256i d1 = dot_act(hi, a->q1 + at + 32, a->q2 + at + 32, a8);
            acc = _mm256_fmadd_ps(_mm256_cvtepi32_ps(d0), _mm256_set1_ps(d * (float)sm[s0] * a->d[ab + s0] * da_unit), acc);
            acc = _mm256_fmadd_ps(_mm256_cvtepi32_ps(d1), _mm256_set1_ps(d * (float)sm[s1] * a->d[ab + s1] * da_unit), acc);
            mins += dmin * (float)sm[8 + s0] * dsum[ab + s0] + dmin * (float)sm[8 + s1] * dsum[ab + s1];
        }
    }
    st.acc = acc;
    st.corr = mins;
    return st;
}

static float dot_k45_row(const uint8_t *w, uint32_t nsb, const g3_qa_row *a, bool q5) {
    part st = k45_part((part){_mm256_setzero_ps(), 0.0f}, w, 0, nsb, a, q5, false);
    return hsum256(st.acc) - st.corr;
}

/* Q6_K super-blocks [i0, i1) of a row; corr collects sc . s16 (the -32 offset). */
ALWAYS_INLINE part q6_k_part(part st, const uint8_t *w, uint32_t i0, uint32_t i1, const g3_qa_row *a, bool a8) {
    const int32_t *s16 = a8 ? a->s8_16 : a->s16;
    const float da_unit = a8 ? 128.0f : 1.0f;
    __m256 acc = st.acc;
    float corr = st.corr;
    for (uint32_t i = i0; i < i1; i++) {
        const uint8_t *b = w + (size_t)i * 210;
        for (int l = 0; l < 210; l += 64) _mm_prefetch((const char *)b + PREFETCH_AHEAD + l, _MM_HINT_T0);
        const float d = f16_at(b + 208);
        const int8_t *sc = (const int8_t *)(b + 192);
        float scale[16];
        for (int s = 0; s < 16; s++) {
            scale[s] = d * (float)sc[s] * a->d[8 * i + s / 2] * da_unit;
            corr += scale[s] * (float)s16[16 * i + s];
        }
        for (int h = 0; h < 2; h++) {
            __m256i q[4];
            q6k_codes(b, h, q);
            for (int z = 0; z < 4; z++) {
                /* 32 elements = sub-blocks s, s+1; lanes 0-3 and 4-7 */
                const int s = 8 * h + 2 * z;
                const size_t at = 256 * (size_t)i + 128 * h + 32 * z;
                const __m256i dot = dot_act(q[z], a->q1 + at, a->q2 + at, a8);
                const __m256 sv = _mm256_setr_m128(_mm_set1_ps(scale[s]), _mm_set1_ps(scale[s + 1]));
                acc = _mm256_fmadd_ps(_mm256_cvtepi32_ps(dot), sv, acc);
            }
        }
    }
    st.acc = acc;
    st.corr = corr;
    return st;
}

static float dot_q6_k_row(const uint8_t *w, uint32_t nsb, const g3_qa_row *a) {
    part st = q6_k_part((part){_mm256_setzero_ps(), 0.0f}, w, 0, nsb, a, false);
    return hsum256(st.acc) - 32.0f * st.corr;
}

/* n rows in turn, one super-block of each at a time: 0 Q4_K, 1 Q5_K, 2 Q6_K */
ALWAYS_INLINE void kquant_rows(const uint8_t *const *rows, uint32_t n, uint32_t nsb, const g3_qa_row *a, int kind,
                               bool a8, float *out) {
    part st[G3_DOT_ROWS];
    for (uint32_t r = 0; r < n; r++) st[r] = (part){_mm256_setzero_ps(), 0.0f};
    for (uint32_t i = 0; i < nsb; i++)
        for (uint32_t r = 0; r < n; r++)
            st[r] = kind == 2 ? q6_k_part(st[r], rows[r], i, i + 1, a, a8)
                              : k45_part(st[r], rows[r], i, i + 1, a, kind == 1, a8);
    for (uint32_t r = 0; r < n; r++) out[r] = hsum256(st[r].acc) - (kind == 2 ? 32.0f : 1.0f) * st[r].corr;
}

#define QGEMV(name, body)                                                                                  \
    static void qgemv_##name(const uint8_t *w, size_t rb, uint32_t n, uint32_t K, const g3_qa_row *a,      \
                             float *out) {                                                                 \
        for (uint32_t r = 0; r < n; r++) {                                                                 \
            const uint8_t *row = w + r * rb;                                                               \
            out[r] = body;                                                                                 \
        }                                                                                                  \
    }
/* qdot_rows (15-bit activations) and qdot_rows8 (q1 alone) of a type; the
 * call sees a8 */
#define QROWS(name, call)                                                                                  \
    static void qdot_rows_##name(const uint8_t *const *rows, uint32_t n, uint32_t K, const g3_qa_row *a,   \
                                 float *out) {                                                             \
        const bool a8 = false;                                                                             \
        call;                                                                                              \
    }                                                                                                      \
    static void qdot_rows8_##name(const uint8_t *const *rows, uint32_t n, uint32_t K, const g3_qa_row *a,  \
                                  float *out) {                                                            \
        const bool a8 = true;                                                                              \
        call;                                                                                              \
    }
QROWS(q4_0, legacy_rows(rows, n, K / 32, a, LEG_Q4_0, a8, out))
QROWS(q5_0, legacy_rows(rows, n, K / 32, a, LEG_Q5_0, a8, out))
QROWS(q8_0, legacy_rows(rows, n, K / 32, a, LEG_Q8_0, a8, out))
QROWS(q4_1, legacy_rows(rows, n, K / 32, a, LEG_Q4_1, a8, out))
QROWS(q5_1, legacy_rows(rows, n, K / 32, a, LEG_Q5_1, a8, out))
QROWS(iq4_nl, legacy_rows(rows, n, K / 32, a, LEG_IQ4_NL, a8, out))
QROWS(q4_k, kquant_rows(rows, n, K / 256, a, 0, a8, out))
QROWS(q5_k, kquant_rows(rows, n, K / 256, a, 1, a8, out))
QROWS(q6_k, kquant_rows(rows, n, K / 256, a, 2, a8, out))
QGEMV(q4_0, dot_legacy_row(row, K / 32, a, LEG_Q4_0))
QGEMV(q5_0, dot_legacy_row(row, K / 32, a, LEG_Q5_0))
QGEMV(q8_0, dot_legacy_row(row, K / 32, a, LEG_Q8_0))
QGEMV(q4_1, dot_legacy_row(row, K / 32, a, LEG_Q4_1))
QGEMV(q5_1, dot_legacy_row(row, K / 32, a, LEG_Q5_1))
QGEMV(iq4_nl, dot_legacy_row(row, K / 32, a, LEG_IQ4_NL))
QGEMV(q4_k, dot_k45_row(row, K / 256, a, false))
QGEMV(q5_k, dot_k45_row(row, K / 256, a, true))
QGEMV(q6_k, dot_q6_k_row(row, K / 256, a))

/* ------------------------------------------------------------------ */
/* batched: int8 panels of 8 rows, 4 panels per tile                   */

#define PR 8
#define NP (G3_TILE_ROWS / PR)

static size_t panel_bytes(uint32_t type, uint32_t K) {
    const g3_panel_layout l = g3_panel_layout_of(type);
    return (size_t)(K / l.S) * g3_panel_sub_bytes(l, PR);
}

static size_t qtile_bytes(uint32_t type, uint32_t K) { return NP * panel_bytes(type, K); }

static size_t qtile_tmp_bytes(uint32_t K) { return g3_pack_tmp_bytes(K); }

static void qpack_tile(uint32_t type, const uint8_t *rows, size_t row_bytes, uint32_t n_rows, uint32_t K,
                       uint8_t *tile, void *tmp) {
    const size_t pb = panel_bytes(type, K);
    for (uint32_t p = 0; p < NP; p++) {
        const uint32_t r0 = p * PR, n = n_rows > r0 ? (n_rows - r0 < PR ? n_rows - r0 : PR) : 0;
        g3_pack_panel_ref(type, rows + r0 * row_bytes, row_bytes, n, K, PR, tile + p * pb, tmp);
    }
}

/* C activation rows x one panel of 8 weight rows. sign: Q8_0 and IQ4_NL,
 * whose values reach 127 (signed activations and |w| x sign(a, w));
 * otherwise qu x w and the correction. */
/* The correction of 8-bit activations from a panel's 15-bit one (as
 * kernels_avx512.c's corr8_of): -128 sum w = corr + sum w, sum w = -corr/129. */
ALWAYS_INLINE __m256i corr8_of(__m256i corr15) {
    const __m256 ws = _mm256_mul_ps(_mm256_cvtepi32_ps(corr15), _mm256_set1_ps(-1.0f / 129.0f));
    return _mm256_add_epi32(corr15, _mm256_cvtps_epi32(ws));
}

ALWAYS_INLINE void qgemm_rows(const uint8_t *panel, uint32_t n_sub, uint32_t S, bool has_min, bool sign, bool a8,
                              const g3_qa *act, uint32_t t, int C, float *out, size_t ldo, __m256i mask) {
    const size_t sub = (size_t)S * PR + PR * (has_min ? 12 : 8);
    const size_t K = act->K;
    __m256 f[4];
    for (int c = 0; c < C; c++) f[c] = _mm256_setzero_ps();
    const float *da = act->d + t * (K / 32), *ds = (a8 ? act->dsum8 : act->dsum) + t * (K / 32);
    const float da_unit = a8 ? 128.0f : 1.0f; /* q1's scale is 128 d */
    for (uint32_t s = 0; s < n_sub; s++) {
        const uint8_t *p = panel + s * sub;
        __m256i iacc[4];
        __m256i corr = sign ? _mm256_setzero_si256() : _mm256_loadu_si256((const __m256i *)(p + S * PR + 32));
        if (a8 && !sign) corr = corr8_of(corr);
        for (int c = 0; c < C; c++) iacc[c] = corr;
        /* (corr + sum q1 w) * 128 + sum q2 w = sum Q w (quant_act.h); a8:
         * corr8 + sum q1 w */
        for (int half = 0; half < (a8 ? 1 : 2); half++) {
            if (half)
                for (int c = 0; c < C; c++) iacc[c] = _mm256_slli_epi32(iacc[c], 7);
            for (uint32_t j = 0; j < S / 4; j++) {
                const __m256i w = _mm256_loadu_si256((const __m256i *)(p + 32 * j));
                const size_t at = t * K + s * S + 4 * j;
                if (sign) {
                    const __m256i aw = _mm256_sign_epi8(w, w);
                    const int8_t *q = (half ? act->q2 : act->q1) + at;
                    for (int c = 0; c < C; c++) {
                        const __m256i av = _mm256_set1_epi32(load_i32(q + c * K));
                        iacc[c] = _mm256_add_epi32(iacc[c], dot_u8s8(aw, _mm256_sign_epi8(av, w)));
                    }
                } else {
                    const uint8_t *q = (half ? act->q2u : act->q1u) + at;
                    for (int c = 0; c < C; c++) {
                        const __m256i av = _mm256_set1_epi32(load_i32(q + c * K));
                        iacc[c] = _mm256_add_epi32(iacc[c], dot_u8s8(av, w));
                    }
                }
            }
        }
        const __m256 sc = _mm256_loadu_ps((const float *)(p + S * PR));
        const uint32_t ab = s * S / 32;
        for (int c = 0; c < C; c++)
            f[c] = _mm256_fmadd_ps(_mm256_cvtepi32_ps(iacc[c]),
                                   _mm256_mul_ps(sc, _mm256_set1_ps(da[c * (K / 32) + ab] * da_unit)), f[c]);
        if (has_min) {
            const __m256 mn = _mm256_loadu_ps((const float *)(p + S * PR + 64));
            for (int c = 0; c < C; c++) f[c] = _mm256_fmadd_ps(mn, _mm256_set1_ps(ds[c * (K / 32) + s]), f[c]);
        }
    }
    for (int c = 0; c < C; c++) _mm256_maskstore_ps(out + (t + c) * ldo, mask, f[c]);
}

ALWAYS_INLINE void qgemm_layout(const uint8_t *tile, uint32_t K, uint32_t S, bool has_min, bool sign, bool a8,
                                const g3_qa *act, uint32_t t0, uint32_t t1, float *out, size_t ldo,
                                uint32_t n_rows) {
    const uint32_t n_sub = K / S;
    const size_t pb = n_sub * ((size_t)S * PR + PR * (has_min ? 12 : 8));
    for (uint32_t p = 0; p < NP && p * PR < n_rows; p++) {
        const __m256i mask = lane_mask(n_rows - p * PR >= PR ? PR : n_rows - p * PR);
        const uint8_t *panel = tile + p * pb;
        float *o = out + p * PR;
        uint32_t t = t0;
        for (; t + 4 <= t1; t += 4) qgemm_rows(panel, n_sub, S, has_min, sign, a8, act, t, 4, o, ldo, mask);
        switch (t1 - t) {
        case 3: qgemm_rows(panel, n_sub, S, has_min, sign, a8, act, t, 3, o, ldo, mask); break;
        case 2: qgemm_rows(panel, n_sub, S, has_min, sign, a8, act, t, 2, o, ldo, mask); break;
        case 1: qgemm_rows(panel, n_sub, S, has_min, sign, a8, act, t, 1, o, ldo, mask); break;
        default: break;
        }
    }
}

ALWAYS_INLINE void qgemm_any(uint32_t type, bool a8, const uint8_t *tile, uint32_t K, const g3_qa *act, uint32_t t0,
                             uint32_t t1, float *out, size_t ldo, uint32_t n_rows) {
    const g3_panel_layout l = g3_panel_layout_of(type);
    if (type == G3_TYPE_Q8_0 || type == G3_TYPE_IQ4_NL)
        qgemm_layout(tile, K, 32, false, true, a8, act, t0, t1, out, ldo, n_rows);
    else if (l.S == 16) qgemm_layout(tile, K, 16, false, false, a8, act, t0, t1, out, ldo, n_rows);
    else if (l.has_min) qgemm_layout(tile, K, 32, true, false, a8, act, t0, t1, out, ldo, n_rows);
    else qgemm_layout(tile, K, 32, false, false, a8, act, t0, t1, out, ldo, n_rows);
}

static void qgemm_tile(uint32_t type, const uint8_t *tile, uint32_t K, const g3_qa *act, uint32_t t0, uint32_t t1,
                       float *out, size_t ldo, uint32_t n_rows) {
    qgemm_any(type, false, tile, K, act, t0, t1, out, ldo, n_rows);
}

static void qgemm_tile8(uint32_t type, const uint8_t *tile, uint32_t K, const g3_qa *act, uint32_t t0,
                        uint32_t t1, float *out, size_t ldo, uint32_t n_rows) {
    qgemm_any(type, true, tile, K, act, t0, t1, out, ldo, n_rows);
}

/* ------------------------------------------------------------------ */
/* float weights                                                       */

ALWAYS_INLINE __m256 load_w8(uint32_t type, const uint8_t *w, uint32_t k) {
    if (type == G3_TYPE_F32) return _mm256_loadu_ps((const float *)w + k);
    const __m128i h = _mm_loadu_si128((const __m128i *)((const uint16_t *)w + k));
    if (type == G3_TYPE_F16) return _mm256_cvtph_ps(h);
    return _mm256_castsi256_ps(_mm256_slli_epi32(_mm256_cvtepu16_epi32(h), 16));
}

/* the last n < 8 weights, through a zero-padded copy */
ALWAYS_INLINE __m256 load_w8_tail(uint32_t type, const uint8_t *w, uint32_t k, uint32_t n) {
    float buf[8] = {0};
    g3_type_ops_get(type)->to_float(type == G3_TYPE_F32 ? (const void *)((const float *)w + k)
                                                        : (const void *)((const uint16_t *)w + k),
                                    buf, n);
    return _mm256_loadu_ps(buf);
}

ALWAYS_INLINE float fdot_row(uint32_t type, const uint8_t *w, const float *x, uint32_t K) {
    __m256 a0 = _mm256_setzero_ps(), a1 = _mm256_setzero_ps(), a2 = _mm256_setzero_ps(), a3 = _mm256_setzero_ps();
    uint32_t k = 0;
    const uint32_t es = type == G3_TYPE_F32 ? 4 : 2;
    for (; k + 32 <= K; k += 32) {
        _mm_prefetch((const char *)w + (size_t)k * es + PREFETCH_AHEAD, _MM_HINT_T0);
        if (es == 4) _mm_prefetch((const char *)w + (size_t)k * es + PREFETCH_AHEAD + 64, _MM_HINT_T0);
        a0 = _mm256_fmadd_ps(load_w8(type, w, k), _mm256_loadu_ps(x + k), a0);
        a1 = _mm256_fmadd_ps(load_w8(type, w, k + 8), _mm256_loadu_ps(x + k + 8), a1);
        a2 = _mm256_fmadd_ps(load_w8(type, w, k + 16), _mm256_loadu_ps(x + k + 16), a2);
        a3 = _mm256_fmadd_ps(load_w8(type, w, k + 24), _mm256_loadu_ps(x + k + 24), a3);
    }
    for (; k + 8 <= K; k += 8) a0 = _mm256_fmadd_ps(load_w8(type, w, k), _mm256_loadu_ps(x + k), a0);
    if (k < K) {
        const __m256i m = lane_mask(K - k);
        a1 = _mm256_fmadd_ps(load_w8_tail(type, w, k, K - k), _mm256_maskload_ps(x + k, m), a1);
    }
    return hsum256(_mm256_add_ps(_mm256_add_ps(a0, a1), _mm256_add_ps(a2, a3)));
}

#define FGEMV(name, T)                                                                                   \
    static void fgemv_##name(const uint8_t *w, size_t rb, uint32_t n, uint32_t K, const float *x,        \
                             float *out) {                                                               \
        for (uint32_t r = 0; r < n; r++) out[r] = fdot_row(T, w + r * rb, x, K);                         \
    }
FGEMV(f32, G3_TYPE_F32)
FGEMV(f16, G3_TYPE_F16)
FGEMV(bf16, G3_TYPE_BF16)

#define FROWS(name, T)                                                                                   \
    static void fdot_rows_##name(const uint8_t *const *rows, uint32_t n, uint32_t K, const float *x,      \
                                 float *out) {                                                           \
        for (uint32_t r = 0; r < n; r++) out[r] = fdot_row(T, rows[r], x, K);                            \
    }
FROWS(f32, G3_TYPE_F32)
FROWS(f16, G3_TYPE_F16)
FROWS(bf16, G3_TYPE_BF16)

/* Float tile: four panels of [K][8] f32. */
static size_t ftile_bytes(uint32_t K) { return sizeof(float) * G3_TILE_ROWS * (size_t)K; }

static void fpack_tile(uint32_t type, const uint8_t *rows, size_t row_bytes, uint32_t n_rows, uint32_t K,
                       float *tile) {
    if (fq_is_quant(type)) {
        fq_pack_tile(type, rows, row_bytes, n_rows, K, tile, PR);
        return;
    }
    float buf[8];
    for (uint32_t p = 0; p < NP; p++) {
        float *panel = tile + (size_t)p * PR * K;
        for (uint32_t r = 0; r < PR; r++) {
            const uint32_t src = p * PR + r;
            for (uint32_t k = 0; k < K; k += 8) {
                const uint32_t n = K - k < 8 ? K - k : 8;
                __m256 v = _mm256_setzero_ps();
                if (src < n_rows) v = n == 8 ? load_w8(type, rows + src * row_bytes, k) : load_w8_tail(type, rows + src * row_bytes, k, n);
                _mm256_storeu_ps(buf, v);
                for (uint32_t j = 0; j < n; j++) panel[(size_t)(k + j) * PR + r] = buf[j];
            }
        }
    }
}

ALWAYS_INLINE void fgemm_rows(const float *tile, uint32_t K, const float *x, size_t ldx, uint32_t t, int C,
                              float *out, size_t ldo, uint32_t n_rows) {
    __m256 a[4][3];
    for (int p = 0; p < 4; p++)
        for (int c = 0; c < C; c++) a[p][c] = _mm256_setzero_ps();
    const float *xr = x + t * ldx;
    for (uint32_t k = 0; k < K; k++) {
        __m256 xv[3];
        for (int c = 0; c < C; c++) xv[c] = _mm256_set1_ps(xr[c * ldx + k]);
        for (int p = 0; p < 4; p++) {
            const __m256 w = _mm256_loadu_ps(tile + (size_t)p * PR * K + (size_t)k * PR);
            for (int c = 0; c < C; c++) a[p][c] = _mm256_fmadd_ps(w, xv[c], a[p][c]);
        }
    }
    for (int p = 0; p < 4 && (uint32_t)p * PR < n_rows; p++) {
        const __m256i m = lane_mask(n_rows - p * PR >= PR ? PR : n_rows - p * PR);
        for (int c = 0; c < C; c++) _mm256_maskstore_ps(out + (t + c) * ldo + p * PR, m, a[p][c]);
    }
}

static void fgemm_tile(const float *tile, uint32_t K, const float *x, size_t ldx, uint32_t t0, uint32_t t1,
                       float *out, size_t ldo, uint32_t n_rows) {
    uint32_t t = t0;
    for (; t + 3 <= t1; t += 3) fgemm_rows(tile, K, x, ldx, t, 3, out, ldo, n_rows);
    switch (t1 - t) {
    case 2: fgemm_rows(tile, K, x, ldx, t, 2, out, ldo, n_rows); break;
    case 1: fgemm_rows(tile, K, x, ldx, t, 1, out, ldo, n_rows); break;
    default: break;
    }
}

/* ------------------------------------------------------------------ */
/* vector ops                                                          */

/* e^x, Cephes' single-precision polynomial; 2^n through the exponent bits
 * (n is clamped to the normal range first). */
ALWAYS_INLINE __m256 exp256(__m256 x) {
    x = _mm256_min_ps(_mm256_max_ps(x, _mm256_set1_ps(-87.3f)), _mm256_set1_ps(88.3f));
    const __m256 n = _mm256_round_ps(_mm256_mul_ps(x, _mm256_set1_ps(1.44269504088896341f)),
                                     _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC);
    __m256 r = _mm256_fnmadd_ps(n, _mm256_set1_ps(0.693359375f), x);
    r = _mm256_fnmadd_ps(n, _mm256_set1_ps(-2.12194440e-4f), r);
    __m256 p = _mm256_set1_ps(1.9875691500E-4f);
    p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(1.3981999507E-3f));
    p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(8.3334519073E-3f));
    p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(4.1665795894E-2f));
    p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(1.6666665459E-1f));
    p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(5.0000001201E-1f));
    const __m256 y = _mm256_add_ps(_mm256_fmadd_ps(_mm256_mul_ps(p, r), r, r), _mm256_set1_ps(1.0f));
    const __m256i e = _mm256_slli_epi32(_mm256_add_epi32(_mm256_cvtps_epi32(n), _mm256_set1_epi32(127)), 23);
    return _mm256_mul_ps(y, _mm256_castsi256_ps(e));
}

static void rmsnorm(float *out, const float *x, const float *w, uint32_t n, float eps) {
    __m256d s0 = _mm256_setzero_pd(), s1 = _mm256_setzero_pd();
    uint32_t i = 0;
    for (; i + 8 <= n; i += 8) {
        const __m256d lo = _mm256_cvtps_pd(_mm_loadu_ps(x + i)), hi = _mm256_cvtps_pd(_mm_loadu_ps(x + i + 4));
        s0 = _mm256_fmadd_pd(lo, lo, s0);
        s1 = _mm256_fmadd_pd(hi, hi, s1);
    }
    __m256d s = _mm256_add_pd(s0, s1);
    __m128d h = _mm_add_pd(_mm256_castpd256_pd128(s), _mm256_extractf128_pd(s, 1));
    double sum = _mm_cvtsd_f64(_mm_add_sd(h, _mm_unpackhi_pd(h, h)));
    for (uint32_t j = i; j < n; j++) sum += (double)x[j] * x[j];
    const float scale = (float)(1.0 / sqrt(sum / n + eps));
    const __m256 vs = _mm256_set1_ps(scale);
    for (i = 0; i + 8 <= n; i += 8)
        _mm256_storeu_ps(out + i, _mm256_mul_ps(_mm256_mul_ps(_mm256_loadu_ps(x + i), vs), _mm256_loadu_ps(w + i)));
    for (; i < n; i++) out[i] = x[i] * scale * w[i];
}

static void gelu_mul(float *g, const float *u, uint32_t n) {
    const __m256 k2 = _mm256_set1_ps(-2.0f * 0.7978845608028654f), c = _mm256_set1_ps(0.044715f);
    const __m256 one = _mm256_set1_ps(1.0f);
    uint32_t i = 0;
    for (; i + 8 <= n; i += 8) {
        const __m256 x = _mm256_loadu_ps(g + i);
        const __m256 y2 = _mm256_mul_ps(k2, _mm256_fmadd_ps(_mm256_mul_ps(c, x), _mm256_mul_ps(x, x), x));
        const __m256 gl = _mm256_div_ps(x, _mm256_add_ps(one, exp256(y2)));
        _mm256_storeu_ps(g + i, _mm256_mul_ps(gl, _mm256_loadu_ps(u + i)));
    }
    for (; i < n; i++) {
        const float x = g[i];
        g[i] = 0.5f * x * (1.0f + tanhf(0.7978845608028654f * (x + 0.044715f * x * x * x))) * u[i];
    }
}

static void softmax(float *x, uint32_t n) {
    float mx = x[0];
    for (uint32_t i = 1; i < n; i++) mx = x[i] > mx ? x[i] : mx;
    const __m256 vmax = _mm256_set1_ps(mx);
    __m256d s0 = _mm256_setzero_pd(), s1 = _mm256_setzero_pd();
    uint32_t i = 0;
    for (; i + 8 <= n; i += 8) {
        const __m256 e = exp256(_mm256_sub_ps(_mm256_loadu_ps(x + i), vmax));
        _mm256_storeu_ps(x + i, e);
        s0 = _mm256_add_pd(s0, _mm256_cvtps_pd(_mm256_castps256_ps128(e)));
        s1 = _mm256_add_pd(s1, _mm256_cvtps_pd(_mm256_extractf128_ps(e, 1)));
    }
    __m256d s = _mm256_add_pd(s0, s1);
    __m128d h = _mm_add_pd(_mm256_castpd256_pd128(s), _mm256_extractf128_pd(s, 1));
    double sum = _mm_cvtsd_f64(_mm_add_sd(h, _mm_unpackhi_pd(h, h)));
    for (; i < n; i++) {
        x[i] = expf(x[i] - mx);
        sum += x[i];
    }
    const float inv = (float)(1.0 / sum);
    const __m256 vi = _mm256_set1_ps(inv);
    for (i = 0; i + 8 <= n; i += 8) _mm256_storeu_ps(x + i, _mm256_mul_ps(_mm256_loadu_ps(x + i), vi));
    for (; i < n; i++) x[i] *= inv;
}

static float dot(const float *a, const float *b, uint32_t n) {
    __m256 s0 = _mm256_setzero_ps(), s1 = _mm256_setzero_ps();
    uint32_t i = 0;
    for (; i + 16 <= n; i += 16) {
        s0 = _mm256_fmadd_ps(_mm256_loadu_ps(a + i), _mm256_loadu_ps(b + i), s0);
        s1 = _mm256_fmadd_ps(_mm256_loadu_ps(a + i + 8), _mm256_loadu_ps(b + i + 8), s1);
    }
    float s = hsum256(_mm256_add_ps(s0, s1));
    for (; i < n; i++) s += a[i] * b[i];
    return s;
}

static void axpy(float *y, float a, const float *x, uint32_t n) {
    const __m256 va = _mm256_set1_ps(a);
    uint32_t i = 0;
    for (; i + 8 <= n; i += 8) _mm256_storeu_ps(y + i, _mm256_fmadd_ps(va, _mm256_loadu_ps(x + i), _mm256_loadu_ps(y + i)));
    for (; i < n; i++) y[i] += a * x[i];
}

static void add(float *y, const float *x, uint32_t n) {
    uint32_t i = 0;
    for (; i + 8 <= n; i += 8) _mm256_storeu_ps(y + i, _mm256_add_ps(_mm256_loadu_ps(y + i), _mm256_loadu_ps(x + i)));
    for (; i < n; i++) y[i] += x[i];
}

/* ------------------------------------------------------------------ */
/* attention over the KV cache                                         */

/* The walk over a head, the entry points and the split of a GQA group
 * into passes are shared (kernels_simd_common.h); what is here is the
 * part that depends on the vector width: the row loads, scores_pass and
 * values_rows, 8 lanes at a time. */

/* Values k .. k+15 of a head row (k a multiple of 16), widened exactly. A
 * Q8_0 value is its code times the f16 scale: 8 x 11 significant bits, so
 * the f32 product is exact. */
ALWAYS_INLINE void kv_load16(uint32_t type, const uint8_t *row, uint32_t k, __m256 v[2]) {
    if (type != G3_TYPE_Q8_0) {
        v[0] = load_w8(type, row, k);
        v[1] = load_w8(type, row, k + 8);
        return;
    }
    const uint8_t *b = row + (size_t)(k / 32) * 34;
    const __m256 d = _mm256_set1_ps(f16_at(b));
    const __m128i q = _mm_loadu_si128((const __m128i *)(b + 2 + k % 32));
    v[0] = _mm256_mul_ps(_mm256_cvtepi32_ps(_mm256_cvtepi8_epi32(q)), d);
    v[1] = _mm256_mul_ps(_mm256_cvtepi32_ps(_mm256_cvtepi8_epi32(_mm_unpackhi_epi64(q, q))), d);
}

/* Values k .. k+m-1 (m <= 8) of a float-type head row, zero-padded, without
 * reading past the head: it may end the cache buffer. */
ALWAYS_INLINE __m256 kv_load8_part(uint32_t type, const uint8_t *row, uint32_t k, uint32_t m) {
    if (m == 8) return load_w8(type, row, k);
    if (type == G3_TYPE_F32) return _mm256_maskload_ps((const float *)row + k, lane_mask(m));
    uint16_t h[8] = {0};
    memcpy(h, row + 2 * (size_t)k, 2 * (size_t)m);
    return load_w8(type, (const uint8_t *)h, 0);
}

/* [sum a, sum b, sum c, sum d]: four reductions share their shuffles */
ALWAYS_INLINE __m128 hsum4(__m256 a, __m256 b, __m256 c, __m256 d) {
    const __m256 t = _mm256_hadd_ps(_mm256_hadd_ps(a, b), _mm256_hadd_ps(c, d));
    return _mm_add_ps(_mm256_castps256_ps128(t), _mm256_extractf128_ps(t, 1));
}

/* s[i * ld_s] = sum of acc[i] for i < NQ */
ALWAYS_INLINE void store_sums(const __m256 *acc, uint32_t NQ, float *s, size_t ld_s) {
    if (NQ == 1) {
        s[0] = hsum256(acc[0]);
        return;
    }
    const __m256 z = _mm256_setzero_ps();
    for (uint32_t i = 0; i < NQ; i += 4) {
        float t[4];
        _mm_storeu_ps(t, hsum4(acc[i], i + 1 < NQ ? acc[i + 1] : z, i + 2 < NQ ? acc[i + 2] : z,
                               i + 3 < NQ ? acc[i + 3] : z));
        for (uint32_t m = 0; m < 4 && i + m < NQ; m++) s[(i + m) * ld_s] = t[m];
    }
}

/* NQ (a constant) queries against the walk's n rows, a row at a time (the
 * out-of-order core overlaps consecutive rows' FMA chains). */
ALWAYS_INLINE void scores_pass(uint32_t type, uint32_t NQ, const float *q, uint32_t D, kv_walk w, uint32_t n,
                               float *s, size_t ld_s) {
    for (uint32_t j = 0; j < n; j++) {
        const uint8_t *row = kv_walk_next(&w);
        __m256 acc[ATTN_MAX_Q];
        for (uint32_t i = 0; i < NQ; i++) acc[i] = _mm256_setzero_ps();
        uint32_t k = 0;
        for (; k + 16 <= D; k += 16) {
            __m256 v[2];
            kv_load16(type, row, k, v);
            for (uint32_t i = 0; i < NQ; i++) {
                acc[i] = _mm256_fmadd_ps(v[0], _mm256_loadu_ps(q + (size_t)i * D + k), acc[i]);
                acc[i] = _mm256_fmadd_ps(v[1], _mm256_loadu_ps(q + (size_t)i * D + k + 8), acc[i]);
            }
        }
        for (; type != G3_TYPE_Q8_0 && k < D; k += 8) { /* float types: any D */
            const uint32_t m = D - k < 8 ? D - k : 8;
            const __m256i mask = lane_mask(m);
            const __m256 v = kv_load8_part(type, row, k, m);
            for (uint32_t i = 0; i < NQ; i++)
                acc[i] = _mm256_fmadd_ps(v, _mm256_maskload_ps(q + (size_t)i * D + k, mask), acc[i]);
        }
        store_sums(acc, NQ, s + j, ld_s);
    }
}

/* out_i += sum_r s_i[r] V_r over R rows (a constant) for every query i:
 * each chunk of the R rows is widened once; a query's output chunk (in L1)
 * is loaded and stored once per R FMAs, so any nq and D fit. */
ALWAYS_INLINE void values_rows(uint32_t type, uint32_t R, const uint8_t *const *rows, const float *s, size_t ld_s,
                               uint32_t nq, uint32_t D, float *out) {
    uint32_t k = 0;
    for (; k + 16 <= D; k += 16) {
        __m256 v[4][2];
        for (uint32_t r = 0; r < R; r++) kv_load16(type, rows[r], k, v[r]);
        for (uint32_t i = 0; i < nq; i++) {
            float *o = out + (size_t)i * D + k;
            __m256 a0 = _mm256_loadu_ps(o), a1 = _mm256_loadu_ps(o + 8);
            for (uint32_t r = 0; r < R; r++) {
                const __m256 w = _mm256_set1_ps(s[i * ld_s + r]);
                a0 = _mm256_fmadd_ps(w, v[r][0], a0);
                a1 = _mm256_fmadd_ps(w, v[r][1], a1);
            }
            _mm256_storeu_ps(o, a0);
            _mm256_storeu_ps(o + 8, a1);
        }
    }
    for (; type != G3_TYPE_Q8_0 && k < D; k += 8) { /* float types: any D */
        const uint32_t m = D - k < 8 ? D - k : 8;
        const __m256i mask = lane_mask(m);
        __m256 v[4];
        for (uint32_t r = 0; r < R; r++) v[r] = kv_load8_part(type, rows[r], k, m);
        for (uint32_t i = 0; i < nq; i++) {
            float *o = out + (size_t)i * D + k;
            __m256 a = _mm256_maskload_ps(o, mask);
            for (uint32_t r = 0; r < R; r++) a = _mm256_fmadd_ps(_mm256_set1_ps(s[i * ld_s + r]), v[r], a);
            _mm256_maskstore_ps(o, mask, a);
        }
    }
}

const g3_kernels g3_kernels_avx2 = {
    .path = G3_CPU_AVX2,
    SIMD_KERNEL_SLOTS,
};
