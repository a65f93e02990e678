/* kernels_avx512.c: the AVX-512 path (F, BW, VL, VNNI; BF16 optional).
 *
 * Compiled with -mavx512f -mavx512bw -mavx512vl -mavx512vnni (and
 * -mavx2 -mfma -mf16c) for this file only; reached only through the table,
 * which the dispatcher hands out when CPUID says the CPU has all of these.
 *
 * Quantized weights x 8-bit activations (formats in quant_act.h):
 * - decode (one activation row): each weight block's codes are expanded to
 *   unsigned bytes in a zmm and multiplied with the activation's signed
 *   bytes by vpdpbusd; lanes 0-7 hold block b, lanes 8-15 block b+1. The
 *   f16 block scales of 16 blocks come from one gather, times the
 *   activation scales, and are spread over the lanes by vpermps. The
 *   constant code offset (8 for Q4_0, 16 for Q5_0, 128 after Q8_0's sign
 *   flip and after IQ4_NL's table lookup, whose table is stored + 128) is
 *   removed once per 16 blocks with the precomputed block sums (dsum), and
 *   Q4_1/Q5_1's block minimum m (x = q d + m) is added the same way
 *   (m . dsum), so the inner loop has no offset arithmetic.
 * - batched: 32 weight rows are unpacked once into two panels of 16 rows x 4
 *   bytes per vector; each vpdpbusd then does 64 multiply-adds for 16 rows
 *   with one broadcast group of 4 activation bytes, and the activation
 *   offset (+128, qu) is undone by the panel's per-row correction.
 * - Q4_0, Q5_0, Q8_0, Q4_K and Q6_K matrices with an x16 copy (repack.h): the
 *   copy's chunks are already 16 rows x 4 codes, so decode multiplies them
 *   with broadcast activation groups (lane r = row r, no permute, no
 *   reduction) and the panels are the chunks less the code offset.
 * Float weights are widened exactly (vcvtph2ps, bf16 << 16) and multiplied
 * with f32 activations by FMA. */
#include <immintrin.h>
#include <math.h>
#include <string.h>

#include "tensor/kernels.h"
#include "tensor/kernels_simd_common.h"
#include "tensor/ops.h"
#include "tensor/quant_legacy.h"
#include "tensor/type_ops.h"

#ifndef PREFETCH_AHEAD
#define PREFETCH_AHEAD 3072 /* bytes ahead of the weight stream */
#endif
#ifndef X16_PREFETCH_AHEAD
#define X16_PREFETCH_AHEAD 6144
#endif

ALWAYS_INLINE uint32_t load_u32(const void *p) {
    uint32_t v;
    memcpy(&v, p, 4);
    return v;
}

/* vpermps index: lanes 0-7 take element e, lanes 8-15 element e + 1 */
ALWAYS_INLINE __m512i pair_index(int e) {
    return _mm512_add_epi32(_mm512_set_epi32(1, 1, 1, 1, 1, 1, 1, 1, 0, 0, 0, 0, 0, 0, 0, 0), _mm512_set1_epi32(e));
}

/* ------------------------------------------------------------------ */
/* activation quantizer                                                */

/* The sums of the 16 int32 lanes of each of a, b, c, d, in one transposed
 * reduction (a quarter of the shuffles of four separate ones). */
ALWAYS_INLINE void reduce4_epi32(__m512i a, __m512i b, __m512i c, __m512i d, int32_t out[4]) {
    /* 128-bit lanes: [a01+a23, b01+b23], [c.., d..] */
    const __m512i ab = _mm512_add_epi32(_mm512_shuffle_i32x4(a, b, 0x44), _mm512_shuffle_i32x4(a, b, 0xee));
    const __m512i cd = _mm512_add_epi32(_mm512_shuffle_i32x4(c, d, 0x44), _mm512_shuffle_i32x4(c, d, 0xee));
    /* one 128-bit lane each for a, b, c, d */
    __m512i u = _mm512_add_epi32(_mm512_shuffle_i32x4(ab, cd, 0x88), _mm512_shuffle_i32x4(ab, cd, 0xdd));
    u = _mm512_add_epi32(u, _mm512_shuffle_epi32(u, _MM_PERM_BADC));
    u = _mm512_add_epi32(u, _mm512_shuffle_epi32(u, _MM_PERM_CDAB));
    _Alignas(64) int32_t all[16];
    _mm512_store_si512(all, u);
    out[0] = all[0];
    out[1] = all[4];
    out[2] = all[8];
    out[3] = all[12];
}

/* The same for f32: out[r] = the sum of v[r]'s lanes, r < n (n <= 4; the
 * others are not read). */
ALWAYS_INLINE void reduce4_ps(const __m512 *v, int n, float *out) {
    const __m512 z = _mm512_setzero_ps();
    const __m512 a = v[0], b = n > 1 ? v[1] : z, c = n > 2 ? v[2] : z, d = n > 3 ? v[3] : z;
    const __m512 ab = _mm512_add_ps(_mm512_shuffle_f32x4(a, b, 0x44), _mm512_shuffle_f32x4(a, b, 0xee));
    const __m512 cd = _mm512_add_ps(_mm512_shuffle_f32x4(c, d, 0x44), _mm512_shuffle_f32x4(c, d, 0xee));
    __m512 u = _mm512_add_ps(_mm512_shuffle_f32x4(ab, cd, 0x88), _mm512_shuffle_f32x4(ab, cd, 0xdd));
    u = _mm512_add_ps(u, _mm512_permute_ps(u, 0x4e));
    u = _mm512_add_ps(u, _mm512_permute_ps(u, 0xb1));
    _Alignas(64) float all[16];
    _mm512_store_ps(all, u);
    for (int r = 0; r < n; r++) out[r] = all[4 * r];
}

static void quantize_blocks(const float *x, uint32_t b0, uint32_t b1, const g3_qa_row_out *o) {
    const __m512 lo = _mm512_set1_ps(-127.0f), hi = _mm512_set1_ps(127.0f), s128 = _mm512_set1_ps(128.0f);
    const __m256i flip = _mm256_set1_epi8((char)0x80);
    for (uint32_t b = b0; b < b1; b++) {
        const __m512 x0 = _mm512_loadu_ps(x + 32 * b), x1 = _mm512_loadu_ps(x + 32 * b + 16);
        const float amax = _mm512_reduce_max_ps(_mm512_max_ps(_mm512_abs_ps(x0), _mm512_abs_ps(x1)));
        const float d = amax / 127.0f;
        const float id = d != 0.0f ? 1.0f / d : 0.0f;
        const __m512 vid = _mm512_set1_ps(id);
        __m512i q1[2], Q[2];
        __m128i c1[2], c2[2]; /* the two bytes, packed */
        for (int h = 0; h < 2; h++) {
            /* max first: a NaN becomes -127, as in the reference */
            const __m512 v = _mm512_min_ps(_mm512_max_ps(_mm512_mul_ps(h ? x1 : x0, vid), lo), hi);
            q1[h] = _mm512_cvtps_epi32(v);                      /* nearest-even */
            Q[h] = _mm512_cvtps_epi32(_mm512_mul_ps(v, s128)); /* exact product */
            c1[h] = _mm512_cvtepi32_epi8(q1[h]);
            c2[h] = _mm512_cvtepi32_epi8(_mm512_sub_epi32(Q[h], _mm512_slli_epi32(q1[h], 7)));
        }
        const __m256i p1 = _mm256_set_m128i(c1[1], c1[0]), p2 = _mm256_set_m128i(c2[1], c2[0]);
        _mm256_storeu_si256((__m256i *)(o->q1 + 32 * (size_t)b), p1);
        _mm256_storeu_si256((__m256i *)(o->q2 + 32 * (size_t)b), p2);
        _mm256_storeu_si256((__m256i *)(o->q1u + 32 * (size_t)b), _mm256_xor_si256(p1, flip));
        _mm256_storeu_si256((__m256i *)(o->q2u + 32 * (size_t)b), _mm256_xor_si256(p2, flip));
        int32_t sums[4]; /* Q's halves, q1's halves */
        reduce4_epi32(Q[0], Q[1], q1[0], q1[1], sums);
        o->d[b] = d * (1.0f / 128.0f);
        o->dsum[b] = o->d[b] * (float)(sums[0] + sums[1]);
        o->s16[2 * b] = sums[0];
        o->s16[2 * b + 1] = sums[1];
        o->dsum8[b] = d * (float)(sums[2] + sums[3]);
        o->s8_16[2 * b] = sums[2];
        o->s8_16[2 * b + 1] = sums[3];
    }
}

/* ------------------------------------------------------------------ */
/* decode: quantized weight rows x one 8-bit activation row            */

/* Block scales of up to 16 consecutive 32-blocks whose f16 d sits at
 * p + j*stride (stride even: 18..34 bytes); lanes past n are 0. Not a
 * gather: vpgatherdd costs ~18 cycles on Zen 5, more than the 8 block
 * pairs it serves (measured: 1.42 -> 0.99 ns per 64 Q4_0 weights without
 * it). The bytes are loaded as vectors (the same cache lines the codes
 * come from) and the 16-bit scales picked out by vpermt2w, one per
 * 128-byte window of the blocks; the index and lane-mask tables are
 * compile-time constants per stride (in 16-bit words). Loads are masked to
 * the bytes of the n blocks: nothing past the row is read. */
#define SCALE_WIN(w, v, j) (((j) * (w)) / 64 == (v))
#define SCALE_IDX(w, v, j) (uint16_t)(SCALE_WIN(w, v, j) ? (j) * (w) - 64 * (v) : 0)
#define SCALE_IDX_ROW(w, v)                                                                                \
    {SCALE_IDX(w, v, 0),  SCALE_IDX(w, v, 1),  SCALE_IDX(w, v, 2),  SCALE_IDX(w, v, 3),  SCALE_IDX(w, v, 4),  \
     SCALE_IDX(w, v, 5),  SCALE_IDX(w, v, 6),  SCALE_IDX(w, v, 7),  SCALE_IDX(w, v, 8),  SCALE_IDX(w, v, 9),  \
     SCALE_IDX(w, v, 10), SCALE_IDX(w, v, 11), SCALE_IDX(w, v, 12), SCALE_IDX(w, v, 13), SCALE_IDX(w, v, 14), \
     SCALE_IDX(w, v, 15)}
#define SCALE_IDX_W(w) {SCALE_IDX_ROW(w, 0), SCALE_IDX_ROW(w, 1), SCALE_IDX_ROW(w, 2), SCALE_IDX_ROW(w, 3)}
#define SCALE_BIT(w, v, j) (SCALE_WIN(w, v, j) ? 1u << (j) : 0u)
#define SCALE_MASK_ROW(w, v)                                                                                  \
    (SCALE_BIT(w, v, 0) | SCALE_BIT(w, v, 1) | SCALE_BIT(w, v, 2) | SCALE_BIT(w, v, 3) | SCALE_BIT(w, v, 4) |     \
     SCALE_BIT(w, v, 5) | SCALE_BIT(w, v, 6) | SCALE_BIT(w, v, 7) | SCALE_BIT(w, v, 8) | SCALE_BIT(w, v, 9) |     \
     SCALE_BIT(w, v, 10) | SCALE_BIT(w, v, 11) | SCALE_BIT(w, v, 12) | SCALE_BIT(w, v, 13) |                     \
     SCALE_BIT(w, v, 14) | SCALE_BIT(w, v, 15))
#define SCALE_MASK_W(w) {SCALE_MASK_ROW(w, 0), SCALE_MASK_ROW(w, 1), SCALE_MASK_ROW(w, 2), SCALE_MASK_ROW(w, 3)}
/* by stride in words: Q4_0 and IQ4_NL 9, Q4_1 10, Q5_0 11, Q5_1 12, Q8_0 17 */
_Alignas(64) static const uint16_t k_scale_idx[18][4][32] = {
    [9] = SCALE_IDX_W(9), [10] = SCALE_IDX_W(10), [11] = SCALE_IDX_W(11), [12] = SCALE_IDX_W(12), [17] = SCALE_IDX_W(17)};
static const uint16_t k_scale_mask[18][4] = {[9] = SCALE_MASK_W(9),   [10] = SCALE_MASK_W(10), [11] = SCALE_MASK_W(11),
                                             [12] = SCALE_MASK_W(12), [17] = SCALE_MASK_W(17)};

/* bytes [64 i, 64 i + 64) of p, zero past `need` bytes */
ALWAYS_INLINE __m512i load_upto(const uint8_t *p, int i, int need) {
    const int left = need - 64 * i;
    if (left <= 0) return _mm512_setzero_si512();
    if (left >= 64) return _mm512_loadu_si512(p + 64 * i);
    return _mm512_maskz_loadu_epi8((__mmask64)((1ULL << left) - 1), p + 64 * i);
}

ALWAYS_INLINE __m512 load_f16_scales(const uint8_t *p, int stride, uint32_t n) {
    const int words = stride / 2, need = (int)(n - 1) * stride + 2;
    const __mmask32 valid = n >= 16 ? 0xffff : (__mmask32)((1u << n) - 1);
    __m512i r = _mm512_setzero_si512();
    for (int v = 0; 128 * v < need; v++) {
        const __m512i idx = _mm512_load_si512(k_scale_idx[words][v]);
        const __m512i sel = _mm512_permutex2var_epi16(load_upto(p, 2 * v, need), idx, load_upto(p, 2 * v + 1, need));
        r = _mm512_mask_mov_epi16(r, k_scale_mask[words][v] & valid, sel);
    }
    return _mm512_cvtph_ps(_mm512_castsi512_si256(r));
}

/* 4-bit codes (Q5_0/Q5_1 low bits, IQ4_NL indices) of blocks b, b+1, natural element order, as u8.
 * `two` false: only block b exists. */
ALWAYS_INLINE __m512i q4_codes_pair(const uint8_t *qs0, const uint8_t *qs1, bool two) {
    /* 128-bit lanes: qs0, qs0, qs1, qs1; the odd lanes take the high nibbles */
    __m512i v = _mm512_broadcast_i32x4(_mm_loadu_si128((const __m128i *)qs0));
    if (two) v = _mm512_mask_broadcast_i32x4(v, 0xff00, _mm_loadu_si128((const __m128i *)qs1));
    v = _mm512_mask_srli_epi16(v, 0xff00ff00u, v, 4);
    return _mm512_and_si512(v, _mm512_set1_epi8(0x0f));
}

/* Q4_0 codes of blocks b, b+1 without a shift: the odd 128-bit lanes keep
 * the high nibble in place, i.e. 16 x the code (at most 240, and 4 x 240 x
 * (127 * 128 + 64) per lane stays below 2^24, so the f32 conversion is
 * exact); the scales of those lanes carry the 1/16 (x16_scales). Shifts run
 * on one port only, so this keeps the loop off the busiest port. */
ALWAYS_INLINE __m512i q4_codes_pair_x16(const uint8_t *qs0, const uint8_t *qs1, bool two) {
    __m512i v = _mm512_broadcast_i32x4(_mm_loadu_si128((const __m128i *)qs0));
    if (two) v = _mm512_mask_broadcast_i32x4(v, 0xff00, _mm_loadu_si128((const __m128i *)qs1));
    const __m512i keep = _mm512_set_epi64((long long)0xf0f0f0f0f0f0f0f0ULL, (long long)0xf0f0f0f0f0f0f0f0ULL,
                                          0x0f0f0f0f0f0f0f0fLL, 0x0f0f0f0f0f0f0f0fLL,
                                          (long long)0xf0f0f0f0f0f0f0f0ULL, (long long)0xf0f0f0f0f0f0f0f0ULL,
                                          0x0f0f0f0f0f0f0f0fLL, 0x0f0f0f0f0f0f0f0fLL);
    return _mm512_and_si512(v, keep);
}

ALWAYS_INLINE __m512i act_pair(const int8_t *qs, bool two) {
    return two ? _mm512_loadu_si512(qs) : _mm512_maskz_loadu_epi8(0xffffffffULL, qs);
}

/* sum of u * Q per 4 bytes: (u . q1) * 128 + u . q2 */
ALWAYS_INLINE __m512i dot_Q(__m512i u, __m512i q1, __m512i q2) {
    const __m512i hi = _mm512_dpbusd_epi32(_mm512_setzero_si512(), u, q1);
    return _mm512_dpbusd_epi32(_mm512_slli_epi32(hi, 7), u, q2);
}

/* IQ4_NL's table values + 128 (unsigned, 1..241), 16 bytes */
static const uint8_t k_iq4_nl_u8[16] = {1, 24, 45, 63, 79, 93, 106, 118, 129, 141, 153, 166, 181, 197, 217, 241};

/* Codes of legacy blocks b, b+1 (b at p) as u8, by kind (LEG_*): Q4_0 and
 * Q4_1 as x16 lanes; Q5_0, Q5_1 as they are; Q8_0 and IQ4_NL (table value)
 * + 128. `two` false: only block b. */
ALWAYS_INLINE __m512i legacy_codes(const uint8_t *b, int kind, int bytes, bool two) {
    const int qs = leg_qs(kind);
    if (kind == LEG_Q8_0) {
        __m512i v = _mm512_castsi256_si512(_mm256_loadu_si256((const __m256i *)(b + 2)));
        if (two) v = _mm512_inserti64x4(v, _mm256_loadu_si256((const __m256i *)(b + bytes + 2)), 1);
        return _mm512_xor_si512(v, _mm512_set1_epi8((char)0x80));
    }
    if (kind == LEG_IQ4_NL) {
        const __m512i kv = _mm512_broadcast_i32x4(_mm_loadu_si128((const __m128i *)k_iq4_nl_u8));
        return _mm512_shuffle_epi8(kv, q4_codes_pair(b + qs, b + bytes + qs, two));
    }
    if (kind == LEG_Q5_0 || kind == LEG_Q5_1) {
        __m512i wq = q4_codes_pair(b + qs, b + bytes + qs, two);
        uint64_t hb = load_u32(b + leg_qh(kind));
        if (two) hb |= (uint64_t)load_u32(b + bytes + leg_qh(kind)) << 32;
        return _mm512_mask_add_epi8(wq, (__mmask64)hb, wq, _mm512_set1_epi8(16));
    }
    return q4_codes_pair_x16(b + qs, b + bytes + qs, two);
}

/* The decode kernels walk up to G3_DOT_ROWS rows at once, a step (a group
 * of blocks) of each in turn: every row is its own memory stream, and a
 * core keeps more data in flight with several streams than with one (the
 * L1 miss buffers alone would cap one stream near 11 GB/s here). Each
 * step also prefetches its row PREFETCH_AHEAD bytes ahead. */
#define PREFETCH_STEP(p, n)                                                                            \
    for (int l_ = 0; l_ < (int)(n); l_ += 64) _mm_prefetch((const char *)(p) + PREFETCH_AHEAD + l_, _MM_HINT_T0)

/* Partial sums of one row: the products and the offset term (dw . dsum
 * for a code offset, m . dsum for Q4_1/Q5_1's block minimum). One
 * accumulator is enough: four rows interleaved hide the FMA latency, and
 * fewer live vectors keep the four rows' sums out of memory. */
typedef struct legacy_acc {
    __m512 acc, corr;
} legacy_acc;

/* n <= 16 legacy blocks at p (block g of the row). n is a constant in the
 * hot calls, so the pair loop unrolls without branches. The lanes of the
 * x16 codes (Q4_0, Q4_1) take the plain scale here and their 1/16 once at
 * the end (x16_lanes): a power of two, so the sums are the same. */
ALWAYS_INLINE legacy_acc legacy_step(legacy_acc s, const uint8_t *p, uint32_t n, uint32_t g, const g3_qa_row *a,
                                     int kind, bool a8) {
    const int bytes = leg_bytes(kind);
    PREFETCH_STEP(p, n * bytes);
    const __mmask16 m = n >= 16 ? 0xffff : (__mmask16)((1u << n) - 1);
    const __m512 dw = load_f16_scales(p, bytes, n);
    const __m512 sc = _mm512_mul_ps(dw, _mm512_maskz_loadu_ps(m, a->d + g));
    const __m512 cw = leg_has_min(kind) ? load_f16_scales(p + 2, bytes, n) : dw;
    s.corr = _mm512_fmadd_ps(cw, _mm512_maskz_loadu_ps(m, (a8 ? a->dsum8 : a->dsum) + g), s.corr);
    for (uint32_t k = 0; 2 * k < n; k++) {
        const bool two = 2 * k + 1 < n;
        const __m512i wq = legacy_codes(p + 2 * k * bytes, kind, bytes, two);
        const size_t at = 32 * (size_t)(g + 2 * k);
        const __m512i dot = a8 ? _mm512_dpbusd_epi32(_mm512_setzero_si512(), wq, act_pair(a->q1 + at, two))
                               : dot_Q(wq, act_pair(a->q1 + at, two), act_pair(a->q2 + at, two));
        s.acc = _mm512_fmadd_ps(_mm512_cvtepi32_ps(dot), _mm512_permutexvar_ps(pair_index((int)(2 * k)), sc), s.acc);
    }
    return s;
}

/* The lane factors of x16 codes: lanes 4-7 and 12-15 hold 16 x the high nibbles' products. */
ALWAYS_INLINE __m512 x16_lanes(void) {
    const float r = 1.0f / 16.0f;
    return _mm512_set_ps(r, r, r, r, 1, 1, 1, 1, r, r, r, r, 1, 1, 1, 1);
}

/* NR rows (a constant) of nb legacy blocks; groups of 16 blocks, or of 12
 * or 10 when that divides the row and 16 does not (1152 = 36 blocks, 640 =
 * 20): the group size stays a constant and no group is ragged. */
ALWAYS_INLINE void legacy_rows(const uint8_t *const *rows, int NR, uint32_t nb, const g3_qa_row *a, int kind,
                               bool a8, float *out) {
    const int bytes = leg_bytes(kind);
    const float offset = kind == LEG_Q4_0 ? -8.0f : kind == LEG_Q5_0 ? -16.0f : leg_has_min(kind) ? 1.0f : -128.0f;
    /* four named accumulators, not an array: GCC kept an array's vectors
     * in memory between steps */
    const legacy_acc zero = {_mm512_setzero_ps(), _mm512_setzero_ps()};
    legacy_acc s0 = zero, s1 = zero, s2 = zero, s3 = zero;
#define LEGACY_STEPS(n_blocks)                                                                             \
    do {                                                                                                 \
        s0 = legacy_step(s0, rows[0] + (size_t)g * bytes, n_blocks, g, a, kind, a8);                     \
        if (NR > 1) s1 = legacy_step(s1, rows[1] + (size_t)g * bytes, n_blocks, g, a, kind, a8);         \
        if (NR > 2) s2 = legacy_step(s2, rows[2] + (size_t)g * bytes, n_blocks, g, a, kind, a8);         \
        if (NR > 3) s3 = legacy_step(s3, rows[3] + (size_t)g * bytes, n_blocks, g, a, kind, a8);         \
    } while (0)
    uint32_t g = 0;
    if (nb % 16 != 0 && nb % 12 == 0) {
        for (; g < nb; g += 12) LEGACY_STEPS(12);
    } else if (nb % 16 != 0 && nb % 10 == 0) {
        for (; g < nb; g += 10) LEGACY_STEPS(10);
    } else {
        for (; g + 16 <= nb; g += 16) LEGACY_STEPS(16);
        if (g < nb) LEGACY_STEPS(nb - g);
    }
#undef LEGACY_STEPS
    const legacy_acc s[G3_DOT_ROWS] = {s0, s1, s2, s3};
    /* a8: the lane scales carry d, q1's scale is 128 d (dsum8 has it already) */
    __m512 dot_scale = _mm512_set1_ps(a8 ? 128.0f : 1.0f);
    if (kind == LEG_Q4_0 || kind == LEG_Q4_1) dot_scale = _mm512_mul_ps(dot_scale, x16_lanes());
    __m512 sums[G3_DOT_ROWS];
    for (int r = 0; r < NR; r++) sums[r] = _mm512_fmadd_ps(s[r].corr, _mm512_set1_ps(offset), _mm512_mul_ps(s[r].acc, dot_scale));
    reduce4_ps(sums, NR, out);
}

typedef struct kq_acc {
    __m512 acc;
    __m512 aux; /* Q4_K/Q5_K: dmin*m*dsum (lanes 0-7); Q6_K: sc * s16 */
} kq_acc;

/* One Q4_K/Q5_K super-block (index i) of a row. Codes of a 64-element
 * chunk: low nibbles keep their place, high nibbles stay x16 (as Q4_0),
 * with the matching 1/16 in the lane scales. */
ALWAYS_INLINE kq_acc k45_step(kq_acc s, const uint8_t *b, uint32_t i, const g3_qa_row *a, bool q5, bool a8) {
    const int bytes = q5 ? 176 : 144;
    PREFETCH_STEP(b, bytes);
    const uint8_t *qs = b + (q5 ? 48 : 16);
    uint8_t sm[16];
    k4_unpack_scales(b + 4, sm);
    const __m256 scf = _mm256_cvtepi32_ps(_mm256_cvtepu8_epi32(_mm_loadl_epi64((const __m128i *)sm)));
    const __m256 mf = _mm256_cvtepi32_ps(_mm256_cvtepu8_epi32(_mm_loadl_epi64((const __m128i *)(sm + 8))));
    const __m256 sc8 = _mm256_mul_ps(_mm256_mul_ps(_mm256_set1_ps(f16_at(b)), scf), _mm256_loadu_ps(a->d + 8 * i));
    s.aux = _mm512_zextps256_ps512(_mm256_fmadd_ps(_mm256_mul_ps(_mm256_set1_ps(f16_at(b + 2)), mf),
                                                   _mm256_loadu_ps((a8 ? a->dsum8 : a->dsum) + 8 * i),
                                                   _mm512_castps512_ps256(s.aux)));
    const __m512 sc = _mm512_castps256_ps512(sc8);
    const __m512 sc16 = _mm512_mul_ps(sc, _mm512_set1_ps(1.0f / 16.0f));
    const __m512i keep = _mm512_set_epi64((long long)0xf0f0f0f0f0f0f0f0ULL, (long long)0xf0f0f0f0f0f0f0f0ULL,
                                          (long long)0xf0f0f0f0f0f0f0f0ULL, (long long)0xf0f0f0f0f0f0f0f0ULL,
                                          0x0f0f0f0f0f0f0f0fLL, 0x0f0f0f0f0f0f0f0fLL, 0x0f0f0f0f0f0f0f0fLL,
                                          0x0f0f0f0f0f0f0f0fLL);
    __m256i qh = _mm256_setzero_si256();
    if (q5) qh = _mm256_loadu_si256((const __m256i *)(b + 16));
    for (int c = 0; c < 4; c++) {
        __m512i wq = _mm512_and_si512(_mm512_broadcast_i64x4(_mm256_loadu_si256((const __m256i *)(qs + 32 * c))), keep);
        __m512 lane_sc;
        if (q5) { /* the fifth bit would not fit a x16 byte: shift the high half down */
            wq = _mm512_mask_srli_epi16(wq, 0xffff0000u, wq, 4);
            const __mmask32 lo = _mm256_test_epi8_mask(qh, _mm256_set1_epi8((char)(1 << (2 * c))));
            const __mmask32 hi = _mm256_test_epi8_mask(qh, _mm256_set1_epi8((char)(1 << (2 * c + 1))));
            wq = _mm512_mask_add_epi8(wq, _mm512_kunpackd((__mmask64)hi, (__mmask64)lo), wq, _mm512_set1_epi8(16));
            lane_sc = _mm512_permutexvar_ps(pair_index(2 * c), sc);
        } else {
            /* lanes 0-7: sub-block 2c; lanes 8-15: sub-block 2c+1, x16 */
            const __m512i idx = _mm512_add_epi32(_mm512_set_epi32(17, 17, 17, 17, 17, 17, 17, 17, 0, 0, 0, 0, 0, 0, 0, 0),
                                                 _mm512_set1_epi32(2 * c));
            lane_sc = _mm512_permutex2var_ps(sc, idx, sc16);
        }
        const size_t at = 256 * (size_t)i + 64 * c;
        const __m512i dot = a8 ? _mm512_dpbusd_epi32(_mm512_setzero_si512(), wq, _mm512_loadu_si512(a->q1 + at))
                               : dot_Q(wq, _mm512_loadu_si512(a->q1 + at), _mm512_loadu_si512(a->q2 + at));
        s.acc = _mm512_fmadd_ps(_mm512_cvtepi32_ps(dot), lane_sc, s.acc);
    }
    return s;
}

ALWAYS_INLINE kq_acc q6_k_step(kq_acc s, const uint8_t *b, uint32_t i, const g3_qa_row *a, bool a8) {
    PREFETCH_STEP(b, 210);
    const __m512i m4 = _mm512_set1_epi8(0x0f), m30 = _mm512_set1_epi8(0x30);
    /* low 256 bits: element l of the quarter; high: l + 32 */
    const __m512i shl = _mm512_set_epi64(0x0002000200020002LL, 0x0002000200020002LL, 0x0002000200020002LL,
                                         0x0002000200020002LL, 0x0004000400040004LL, 0x0004000400040004LL,
                                         0x0004000400040004LL, 0x0004000400040004LL);
    const __m512i shr = _mm512_set_epi64(0x0002000200020002LL, 0x0002000200020002LL, 0x0002000200020002LL,
                                         0x0002000200020002LL, 0, 0, 0, 0);
    const __m512i pairs = _mm512_set_epi32(7, 7, 6, 6, 5, 5, 4, 4, 3, 3, 2, 2, 1, 1, 0, 0);
    const __m512 scf = _mm512_cvtepi32_ps(_mm512_cvtepi8_epi32(_mm_loadu_si128((const __m128i *)(b + 192))));
    const __m512 da = _mm512_permutexvar_ps(pairs, _mm512_castps256_ps512(_mm256_loadu_ps(a->d + 8 * i)));
    const __m512 sc = _mm512_mul_ps(_mm512_mul_ps(_mm512_set1_ps(f16_at(b + 208)), scf), da);
    s.aux = _mm512_fmadd_ps(sc, _mm512_cvtepi32_ps(_mm512_loadu_si512((a8 ? a->s8_16 : a->s16) + 16 * i)), s.aux);
    for (int h = 0; h < 2; h++) {
        const __m512i L = _mm512_loadu_si512(b + 64 * h);
        const __m512i Q = _mm512_broadcast_i64x4(_mm256_loadu_si256((const __m256i *)(b + 128 + 32 * h)));
        const __m512i A = _mm512_or_si512(_mm512_and_si512(L, m4), _mm512_and_si512(_mm512_sllv_epi16(Q, shl), m30));
        const __m512i B = _mm512_or_si512(_mm512_and_si512(_mm512_srli_epi16(L, 4), m4),
                                          _mm512_and_si512(_mm512_srlv_epi16(Q, shr), m30));
        const size_t at = 256 * (size_t)i + 128 * h;
        const __m512i dA = a8 ? _mm512_dpbusd_epi32(_mm512_setzero_si512(), A, _mm512_loadu_si512(a->q1 + at))
                              : dot_Q(A, _mm512_loadu_si512(a->q1 + at), _mm512_loadu_si512(a->q2 + at));
        const __m512i dB = a8 ? _mm512_dpbusd_epi32(_mm512_setzero_si512(), B, _mm512_loadu_si512(a->q1 + at + 64))
                              : dot_Q(B, _mm512_loadu_si512(a->q1 + at + 64), _mm512_loadu_si512(a->q2 + at + 64));
        /* lane l of zmm z covers sub-block 4z + l/4 */
        const __m512i quarter = _mm512_set_epi32(3, 3, 3, 3, 2, 2, 2, 2, 1, 1, 1, 1, 0, 0, 0, 0);
        const __m512i iA = _mm512_add_epi32(quarter, _mm512_set1_epi32(8 * h));
        const __m512i iB = _mm512_add_epi32(quarter, _mm512_set1_epi32(8 * h + 4));
        s.acc = _mm512_fmadd_ps(_mm512_cvtepi32_ps(dA), _mm512_permutexvar_ps(iA, sc), s.acc);
        s.acc = _mm512_fmadd_ps(_mm512_cvtepi32_ps(dB), _mm512_permutexvar_ps(iB, sc), s.acc);
    }
    return s;
}

/* kind: 0 Q4_K, 1 Q5_K, 2 Q6_K */
ALWAYS_INLINE void kquant_rows(const uint8_t *const *rows, int NR, uint32_t nsb, const g3_qa_row *a, int kind,
                               bool a8, float *out) {
    const int bytes = kind == 0 ? 144 : kind == 1 ? 176 : 210;
    kq_acc s[G3_DOT_ROWS];
    for (int r = 0; r < NR; r++) s[r].acc = s[r].aux = _mm512_setzero_ps();
    for (uint32_t i = 0; i < nsb; i++)
        for (int r = 0; r < NR; r++) {
            const uint8_t *b = rows[r] + (size_t)i * bytes;
            s[r] = kind == 2 ? q6_k_step(s[r], b, i, a, a8) : k45_step(s[r], b, i, a, kind == 1, a8);
        }
    /* a8: q1's scale is 128 d; Q6_K's aux (sc . s8_16) takes it too, the
     * mins' (dsum8) have it */
    const float dot_scale = a8 ? 128.0f : 1.0f;
    const float aux_scale = kind == 2 ? -32.0f * dot_scale : -1.0f;
    __m512 sums[G3_DOT_ROWS];
    for (int r = 0; r < NR; r++)
        sums[r] = _mm512_fmadd_ps(s[r].aux, _mm512_set1_ps(aux_scale), _mm512_mul_ps(s[r].acc, _mm512_set1_ps(dot_scale)));
    reduce4_ps(sums, NR, out);
}

/* Per type: rows given by pointers (qdot_rows, qdot_rows8: 15- and 8-bit
 * activations), and consecutive rows (qgemv), four at a time. 3 and 2
 * rows run as their own streams too: a share of 1152 rows ends in 3-row
 * steps. */
#define QKERNELS(name, call)                                                                             \
    ALWAYS_INLINE void rows_##name(const uint8_t *const *rows, int NR, uint32_t K, const g3_qa_row *a, bool a8, \
                                   float *out) {                                                         \
        call;                                                                                            \
    }                                                                                                    \
    ALWAYS_INLINE void dispatch_##name(const uint8_t *const *rows, uint32_t n, uint32_t K, const g3_qa_row *a, \
                                       bool a8, float *out) {                                            \
        if (n == 4) rows_##name(rows, 4, K, a, a8, out);                                                 \
        else if (n == 3) rows_##name(rows, 3, K, a, a8, out);                                            \
        else if (n == 2) rows_##name(rows, 2, K, a, a8, out);                                            \
        else if (n == 1) rows_##name(rows, 1, K, a, a8, out);                                            \
    }                                                                                                    \
    static void qdot_rows_##name(const uint8_t *const *rows, uint32_t n, uint32_t K, const g3_qa_row *a, \
                                 float *out) {                                                           \
        dispatch_##name(rows, n, K, a, false, out);                                                      \
    }                                                                                                    \
    static void qdot_rows8_##name(const uint8_t *const *rows, uint32_t n, uint32_t K, const g3_qa_row *a, \
                                  float *out) {                                                          \
        dispatch_##name(rows, n, K, a, true, out);                                                       \
    }                                                                                                    \
    static void qgemv_##name(const uint8_t *w, size_t rb, uint32_t n, uint32_t K, const g3_qa_row *a,    \
                             float *out) {                                                               \
        for (uint32_t r = 0; r < n; r += G3_DOT_ROWS) {                                                  \
            const uint8_t *rows[G3_DOT_ROWS];                                                            \
            const uint32_t m = n - r < G3_DOT_ROWS ? n - r : G3_DOT_ROWS;                                \
            for (uint32_t i = 0; i < m; i++) rows[i] = w + (r + i) * rb;                                 \
            qdot_rows_##name(rows, m, K, a, out + r);                                                    \
        }                                                                                                \
    }
QKERNELS(q4_0, legacy_rows(rows, NR, K / 32, a, LEG_Q4_0, a8, out))
QKERNELS(q5_0, legacy_rows(rows, NR, K / 32, a, LEG_Q5_0, a8, out))
QKERNELS(q8_0, legacy_rows(rows, NR, K / 32, a, LEG_Q8_0, a8, out))
QKERNELS(q4_1, legacy_rows(rows, NR, K / 32, a, LEG_Q4_1, a8, out))
QKERNELS(q5_1, legacy_rows(rows, NR, K / 32, a, LEG_Q5_1, a8, out))
QKERNELS(iq4_nl, legacy_rows(rows, NR, K / 32, a, LEG_IQ4_NL, a8, out))
QKERNELS(q4_k, kquant_rows(rows, NR, K / 256, a, 0, a8, out))
QKERNELS(q5_k, kquant_rows(rows, NR, K / 256, a, 1, a8, out))
QKERNELS(q6_k, kquant_rows(rows, NR, K / 256, a, 2, a8, out))

/* ------------------------------------------------------------------ */
/* batched: int8 panels of 16 rows                                     */

#define PR 16 /* rows per panel */

static size_t panel_bytes(uint32_t type, uint32_t K) {
    const g3_panel_layout l = g3_panel_layout_of(type);
    return (size_t)(K / l.S) * g3_panel_sub_bytes(l, PR);
}

static size_t qtile_bytes(uint32_t type, uint32_t K) { return 2 * panel_bytes(type, K); }

/* scratch: vals [PR][K] int8; scale and min [K/16][PR] f32 each (sub-block
 * major: a panel's 16 scales are one vector); one row's scale and min */
static size_t qtile_tmp_bytes(uint32_t K) {
    return (size_t)PR * K + 2 * sizeof(float) * PR * (K / 16) + 2 * sizeof(float) * (K / 16) + 3 * 64;
}

/* One weight row to signed values + scales (SIMD for the common types). */
static void unpack_row(uint32_t type, const uint8_t *w, uint32_t K, int8_t *vals, float *scale, float *minv) {
    if (type == G3_TYPE_Q4_0) {
        const __m256i m4 = _mm256_set1_epi8(0x0f), eight = _mm256_set1_epi8(8);
        for (uint32_t b = 0; b < K / 32; b++, w += 18) {
            const __m128i q = _mm_loadu_si128((const __m128i *)(w + 2));
            const __m256i v = _mm256_and_si256(_mm256_inserti128_si256(_mm256_castsi128_si256(q), _mm_srli_epi16(q, 4), 1), m4);
            _mm256_storeu_si256((__m256i *)(vals + 32 * b), _mm256_sub_epi8(v, eight));
            scale[b] = f16_at(w);
        }
    } else if (type == G3_TYPE_Q4_1 || type == G3_TYPE_IQ4_NL) {
        /* Q4_1: codes as they are, the minimum beside the scale; IQ4_NL:
         * the signed table values */
        const bool nl = type == G3_TYPE_IQ4_NL;
        const int bytes = nl ? 18 : 20, qs = nl ? 2 : 4;
        const __m256i m4 = _mm256_set1_epi8(0x0f);
        const __m256i kv = _mm256_broadcastsi128_si256(_mm_loadu_si128((const __m128i *)g3_iq4_nl_values));
        for (uint32_t b = 0; b < K / 32; b++, w += bytes) {
            const __m128i q = _mm_loadu_si128((const __m128i *)(w + qs));
            __m256i v = _mm256_and_si256(_mm256_inserti128_si256(_mm256_castsi128_si256(q), _mm_srli_epi16(q, 4), 1), m4);
            if (nl) v = _mm256_shuffle_epi8(kv, v);
            _mm256_storeu_si256((__m256i *)(vals + 32 * b), v);
            scale[b] = f16_at(w);
            if (!nl) minv[b] = f16_at(w + 2);
        }
    } else if (type == G3_TYPE_Q8_0) {
        for (uint32_t b = 0; b < K / 32; b++, w += 34) {
            _mm256_storeu_si256((__m256i *)(vals + 32 * b), _mm256_loadu_si256((const __m256i *)(w + 2)));
            scale[b] = f16_at(w);
        }
    } else {
        g3_unpack_row_s8(type, w, K, vals, scale, minv);
    }
}

/* 16 rows (K bytes apart) x 4 int32 from base: out[j] = dword j of rows
 * 0..15, in row order. Each zmm takes rows i, i+4, i+8, i+12 in its four
 * 128-bit lanes; a 4x4 transpose inside the lanes puts them in place. A
 * transpose, not vpgatherdd: a gather costs ~18 cycles on Zen 5. */
ALWAYS_INLINE void transpose_16x4(const int8_t *base, size_t K, __m512i out[4]) {
    __m512i z[4];
    for (int i = 0; i < 4; i++) {
        __m512i v = _mm512_castsi128_si512(_mm_loadu_si128((const __m128i *)(base + (size_t)i * K)));
        v = _mm512_inserti32x4(v, _mm_loadu_si128((const __m128i *)(base + (size_t)(i + 4) * K)), 1);
        v = _mm512_inserti32x4(v, _mm_loadu_si128((const __m128i *)(base + (size_t)(i + 8) * K)), 2);
        z[i] = _mm512_inserti32x4(v, _mm_loadu_si128((const __m128i *)(base + (size_t)(i + 12) * K)), 3);
    }
    const __m512i t0 = _mm512_unpacklo_epi32(z[0], z[1]), t1 = _mm512_unpackhi_epi32(z[0], z[1]);
    const __m512i t2 = _mm512_unpacklo_epi32(z[2], z[3]), t3 = _mm512_unpackhi_epi32(z[2], z[3]);
    out[0] = _mm512_unpacklo_epi64(t0, t2);
    out[1] = _mm512_unpackhi_epi64(t0, t2);
    out[2] = _mm512_unpacklo_epi64(t1, t3);
    out[3] = _mm512_unpackhi_epi64(t1, t3);
}

static void qpack_tile(uint32_t type, const uint8_t *rows, size_t row_bytes, uint32_t n_rows, uint32_t K,
                       uint8_t *tile, void *tmp) {
    const g3_panel_layout l = g3_panel_layout_of(type);
    const uint32_t n_sub = K / l.S;
    const size_t sub = g3_panel_sub_bytes(l, PR), pbytes = n_sub * sub;
    int8_t *vals = tmp;
    float *scale_t = (float *)((uint8_t *)tmp + (((size_t)PR * K + 63) & ~(size_t)63));
    float *minv_t = scale_t + PR * (K / 16);
    float *row_scale = minv_t + PR * (K / 16), *row_minv = row_scale + K / 16;
    const __m512i ones = _mm512_set1_epi8(1);
    for (uint32_t p = 0; p < 2; p++) {
        uint8_t *panel = tile + p * pbytes;
        for (uint32_t r = 0; r < PR; r++) {
            const uint32_t src = 16 * p + r;
            if (src < n_rows) {
                unpack_row(type, rows + src * row_bytes, K, vals + (size_t)r * K, row_scale, row_minv);
            } else {
                memset(vals + (size_t)r * K, 0, K);
                memset(row_scale, 0, sizeof(float) * n_sub);
                memset(row_minv, 0, sizeof(float) * n_sub);
            }
            for (uint32_t s = 0; s < n_sub; s++) {
                scale_t[s * PR + r] = row_scale[s];
                if (l.has_min) minv_t[s * PR + r] = row_minv[s];
            }
        }
        for (uint32_t s = 0; s < n_sub; s++) {
            uint8_t *ps = panel + s * sub;
            __m512i wsum = _mm512_setzero_si512();
            for (uint32_t h = 0; h < l.S / 16; h++) {
                __m512i v[4];
                transpose_16x4(vals + s * l.S + 16 * h, K, v);
                for (int j = 0; j < 4; j++) {
                    _mm512_storeu_si512(ps + 64 * (4 * h + j), v[j]);
                    wsum = _mm512_dpbusd_epi32(wsum, ones, v[j]);
                }
            }
            float *pscale = (float *)(ps + (size_t)l.S * PR);
            _mm512_storeu_ps(pscale, _mm512_loadu_ps(scale_t + s * PR));
            _mm512_storeu_si512(pscale + PR, _mm512_mullo_epi32(wsum, _mm512_set1_epi32(-129)));
            if (l.has_min) _mm512_storeu_ps(pscale + 2 * PR, _mm512_loadu_ps(minv_t + s * PR));
        }
    }
}

/* The correction of 8-bit activations from a panel's 15-bit one: sum
 * (q1 + 128) w - 128 sum w = sum q1 w, and the panel holds corr = -129 sum
 * w. sum w = -corr / 129 exactly: |corr| < 2^20, so the f32 quotient is
 * within 1e-3 of the integer it rounds to. */
ALWAYS_INLINE __m512i corr8_of(__m512i corr15) {
    const __m512 ws = _mm512_mul_ps(_mm512_cvtepi32_ps(corr15), _mm512_set1_ps(-1.0f / 129.0f));
    return _mm512_add_epi32(corr15, _mm512_cvtps_epi32(ws));
}

/* C activation rows x 2 panels (32 weight rows). a8: 8-bit activations
 * (q1 alone, scale 128 d; quant_act.h): one vpdpbusd per 4 values instead
 * of two. */
ALWAYS_INLINE void qgemm_rows(const uint8_t *tile, size_t pbytes, uint32_t n_sub, uint32_t S, bool has_min,
                              bool a8, const g3_qa *act, uint32_t t, int C, float *out, size_t ldo, __mmask16 m0,
                              __mmask16 m1) {
    const size_t sub = (size_t)S * PR + PR * (has_min ? 12 : 8);
    const size_t K = act->K;
    __m512 f0[5], f1[5];
    for (int c = 0; c < C; c++) f0[c] = f1[c] = _mm512_setzero_ps();
    const uint8_t *q1u = act->q1u + t * K, *q2u = act->q2u + t * K;
    const float *da = act->d + t * (K / 32), *ds = (a8 ? act->dsum8 : act->dsum) + t * (K / 32);
    const float da_unit = a8 ? 128.0f : 1.0f; /* q1's scale is 128 d */
    for (uint32_t s = 0; s < n_sub; s++) {
        const uint8_t *p0 = tile + s * sub, *p1 = p0 + pbytes;
        __m512i c0 = _mm512_loadu_si512(p0 + S * PR + 64), c1 = _mm512_loadu_si512(p1 + S * PR + 64);
        if (a8) {
            c0 = corr8_of(c0);
            c1 = corr8_of(c1);
        }
        __m512i i0[5], i1[5];
        for (int c = 0; c < C; c++) {
            i0[c] = c0;
            i1[c] = c1;
        }
        /* corr + sum q1u w, times 128, + sum q2u w = sum Q w (quant_act.h) */
        for (int part = 0; part < (a8 ? 1 : 2); part++) {
            const uint8_t *qu = part ? q2u : q1u;
            if (part)
                for (int c = 0; c < C; c++) {
                    i0[c] = _mm512_slli_epi32(i0[c], 7);
                    i1[c] = _mm512_slli_epi32(i1[c], 7);
                }
            for (uint32_t j = 0; j < S / 4; j++) {
                const __m512i w0 = _mm512_loadu_si512(p0 + 64 * j), w1 = _mm512_loadu_si512(p1 + 64 * j);
                for (int c = 0; c < C; c++) {
                    const __m512i av = _mm512_set1_epi32(load_i32(qu + c * K + s * S + 4 * j));
                    i0[c] = _mm512_dpbusd_epi32(i0[c], av, w0);
                    i1[c] = _mm512_dpbusd_epi32(i1[c], av, w1);
                }
            }
        }
        const __m512 s0 = _mm512_loadu_ps((const float *)(p0 + S * PR));
        const __m512 s1 = _mm512_loadu_ps((const float *)(p1 + S * PR));
        const uint32_t ab = s * S / 32;
        for (int c = 0; c < C; c++) {
            const __m512 dab = _mm512_set1_ps(da[c * (K / 32) + ab] * da_unit);
            f0[c] = _mm512_fmadd_ps(_mm512_cvtepi32_ps(i0[c]), _mm512_mul_ps(s0, dab), f0[c]);
            f1[c] = _mm512_fmadd_ps(_mm512_cvtepi32_ps(i1[c]), _mm512_mul_ps(s1, dab), f1[c]);
        }
        if (has_min) {
            const __m512 n0 = _mm512_loadu_ps((const float *)(p0 + S * PR + 128));
            const __m512 n1 = _mm512_loadu_ps((const float *)(p1 + S * PR + 128));
            for (int c = 0; c < C; c++) {
                const __m512 dsb = _mm512_set1_ps(ds[c * (K / 32) + s]);
                f0[c] = _mm512_fmadd_ps(n0, dsb, f0[c]);
                f1[c] = _mm512_fmadd_ps(n1, dsb, f1[c]);
            }
        }
    }
    for (int c = 0; c < C; c++) {
        _mm512_mask_storeu_ps(out + (t + c) * ldo, m0, f0[c]);
        _mm512_mask_storeu_ps(out + (t + c) * ldo + 16, m1, f1[c]);
    }
}

ALWAYS_INLINE void qgemm_layout(const uint8_t *tile, uint32_t K, uint32_t S, bool has_min, bool a8,
                                const g3_qa *act, uint32_t t0, uint32_t t1, float *out, size_t ldo,
                                uint32_t n_rows) {
    const uint32_t n_sub = K / S;
    const size_t pbytes = n_sub * ((size_t)S * PR + PR * (has_min ? 12 : 8));
    const __mmask16 m0 = n_rows >= 16 ? 0xffff : (__mmask16)((1u << n_rows) - 1);
    const __mmask16 m1 = n_rows >= 32 ? 0xffff : n_rows <= 16 ? 0 : (__mmask16)((1u << (n_rows - 16)) - 1);
    uint32_t t = t0;
    for (; t + 5 <= t1; t += 5) qgemm_rows(tile, pbytes, n_sub, S, has_min, a8, act, t, 5, out, ldo, m0, m1);
    switch (t1 - t) {
    case 4: qgemm_rows(tile, pbytes, n_sub, S, has_min, a8, act, t, 4, out, ldo, m0, m1); break;
    case 3: qgemm_rows(tile, pbytes, n_sub, S, has_min, a8, act, t, 3, out, ldo, m0, m1); break;
    case 2: qgemm_rows(tile, pbytes, n_sub, S, has_min, a8, act, t, 2, out, ldo, m0, m1); break;
    case 1: qgemm_rows(tile, pbytes, n_sub, S, has_min, a8, act, t, 1, out, ldo, m0, m1); break;
    default: break;
    }
}

ALWAYS_INLINE void qgemm_any(uint32_t type, bool a8, const uint8_t *tile, uint32_t K, const g3_qa *act, uint32_t t0,
                             uint32_t t1, float *out, size_t ldo, uint32_t n_rows) {
    const g3_panel_layout l = g3_panel_layout_of(type);
    if (l.S == 16) qgemm_layout(tile, K, 16, false, a8, act, t0, t1, out, ldo, n_rows);
    else if (l.has_min) qgemm_layout(tile, K, 32, true, a8, act, t0, t1, out, ldo, n_rows);
    else qgemm_layout(tile, K, 32, false, a8, act, t0, t1, out, ldo, n_rows);
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
/* Q4_0, Q5_0, Q8_0, Q4_K, Q6_K with 16 rows interleaved (repack.h) */

enum { X16_Q4_0, X16_Q5_0, X16_Q8_0 };

ALWAYS_INLINE int x16_kind(uint32_t type) {
    return type == G3_TYPE_Q8_0 ? X16_Q8_0 : type == G3_TYPE_Q5_0 ? X16_Q5_0 : X16_Q4_0;
}

/* Bytes per block of the codes and of Q5_0's masks; the unit of two blocks */
ALWAYS_INLINE size_t x16_code_bytes(int kind) { return kind == X16_Q8_0 ? 512 : 256; }
ALWAYS_INLINE size_t x16_mask_bytes(int kind) { return kind == X16_Q5_0 ? 64 : 0; }
ALWAYS_INLINE size_t x16_unit_bytes(int kind) { return 2 * (32 + x16_mask_bytes(kind) + x16_code_bytes(kind)); }

/* Codes of block h of a unit, and its masks */
ALWAYS_INLINE const uint8_t *x16_codes(const uint8_t *u, int kind, uint32_t h) {
    return u + 64 + 2 * x16_mask_bytes(kind) + h * x16_code_bytes(kind);
}
ALWAYS_INLINE const uint8_t *x16_masks(const uint8_t *u, int kind, uint32_t h) {
    return u + 64 + h * x16_mask_bytes(kind);
}

/* Chunk c of a Q4_0/Q5_0 block as unsigned codes: lo (values 4c..4c+3 of
 * each row), hi (values 16+4c..). Q5_0 adds 16 where the fifth bit is set. */
ALWAYS_INLINE void x16_nibbles(const uint8_t *codes, const uint8_t *masks, int kind, int c, __m512i *lo, __m512i *hi) {
    const __m512i m4 = _mm512_set1_epi8(0x0f);
    const __m512i v = _mm512_load_si512(codes + 64 * c);
    *lo = _mm512_and_si512(v, m4);
    *hi = _mm512_and_si512(_mm512_srli_epi16(v, 4), m4);
    if (kind == X16_Q5_0) {
        uint64_t ml, mh;
        memcpy(&ml, masks + 8 * c, 8);
        memcpy(&mh, masks + 8 * (4 + c), 8);
        const __m512i sixteen = _mm512_set1_epi8(16);
        *lo = _mm512_mask_add_epi8(*lo, (__mmask64)ml, *lo, sixteen);
        *hi = _mm512_mask_add_epi8(*hi, (__mmask64)mh, *hi, sixteen);
    }
}

/* One block of 16 rows: the integer sums sum code * Q (a8: code * q1) of
 * each row in its lane. Four independent chains (q1 and q2 against the
 * even and odd chunks) keep vpdpbusd's latency out of the way; the
 * activation groups are broadcast from memory (embedded broadcast). */
ALWAYS_INLINE __m512i x16_block_sums(const uint8_t *codes, const uint8_t *masks, const int8_t *q1, const int8_t *q2,
                                     int kind, bool a8) {
    __m512i s1a = _mm512_setzero_si512(), s1b = s1a, s2a = s1a, s2b = s1a;
    if (kind == X16_Q8_0) {
        for (int c = 0; c < 8; c += 2) {
            const __m512i v0 = _mm512_load_si512(codes + 64 * c), v1 = _mm512_load_si512(codes + 64 * (c + 1));
            s1a = _mm512_dpbusd_epi32(s1a, v0, _mm512_set1_epi32(load_i32(q1 + 4 * c)));
            s1b = _mm512_dpbusd_epi32(s1b, v1, _mm512_set1_epi32(load_i32(q1 + 4 * c + 4)));
            if (!a8) {
                s2a = _mm512_dpbusd_epi32(s2a, v0, _mm512_set1_epi32(load_i32(q2 + 4 * c)));
                s2b = _mm512_dpbusd_epi32(s2b, v1, _mm512_set1_epi32(load_i32(q2 + 4 * c + 4)));
            }
        }
    } else {
        for (int c = 0; c < 4; c++) {
            __m512i lo, hi;
            x16_nibbles(codes, masks, kind, c, &lo, &hi);
            s1a = _mm512_dpbusd_epi32(s1a, lo, _mm512_set1_epi32(load_i32(q1 + 4 * c)));
            s1b = _mm512_dpbusd_epi32(s1b, hi, _mm512_set1_epi32(load_i32(q1 + 16 + 4 * c)));
            if (!a8) {
                s2a = _mm512_dpbusd_epi32(s2a, lo, _mm512_set1_epi32(load_i32(q2 + 4 * c)));
                s2b = _mm512_dpbusd_epi32(s2b, hi, _mm512_set1_epi32(load_i32(q2 + 16 + 4 * c)));
            }
        }
    }
    const __m512i s1 = _mm512_add_epi32(s1a, s1b);
    if (a8) return s1;
    return _mm512_add_epi32(_mm512_slli_epi32(s1, 7), _mm512_add_epi32(s2a, s2b));
}

/* out[r] = row r of the group . a: per block, sum (code - o) Q = isum - o
 * sum Q, scaled by dw (16 lanes) and da: (isum da - o dsum) dw. */
ALWAYS_INLINE void x16_rows(const uint8_t *g, uint32_t K, const g3_qa_row *a, int kind, bool a8, float *out) {
    const size_t unit = x16_unit_bytes(kind);
    const float off = kind == X16_Q8_0 ? -128.0f : kind == X16_Q5_0 ? -16.0f : -8.0f;
    const float da_unit = a8 ? 128.0f : 1.0f;
    const float *dsum = a8 ? a->dsum8 : a->dsum;
    __m512 f[2] = {_mm512_setzero_ps(), _mm512_setzero_ps()};
    for (uint32_t p = 0; p < K / 64; p++, g += unit) {
        for (size_t l = 0; l < unit; l += 64) _mm_prefetch((const char *)g + X16_PREFETCH_AHEAD + l, _MM_HINT_T0);
        for (uint32_t h = 0; h < 2; h++) {
            const uint32_t b = 2 * p + h;
            const __m512i isum =
                x16_block_sums(x16_codes(g, kind, h), x16_masks(g, kind, h), a->q1 + 32 * b, a->q2 + 32 * b, kind, a8);
            const __m512 dw = _mm512_cvtph_ps(_mm256_load_si256((const __m256i *)(g + 32 * h)));
            const __m512 t = _mm512_fmadd_ps(_mm512_cvtepi32_ps(isum), _mm512_set1_ps(a->d[b] * da_unit),
                                             _mm512_set1_ps(off * dsum[b]));
            f[h] = _mm512_fmadd_ps(t, dw, f[h]);
        }
    }
    _mm512_storeu_ps(out, _mm512_add_ps(f[0], f[1]));
}

/* Q4_K (repack.h): offsets in a super-block of 16 rows */
enum { K4X_DMIN = 32, K4X_PLANES = 64, K4X_CODES = 256, K4X_BYTES = 2304 };

/* Sub-block s's 6-bit scale and min of the 16 rows as f32 lanes: ggml's
 * get_scale_min_k4 on the scale planes (plane k byte r = scales[k] of row r). */
ALWAYS_INLINE void k4x_scale_min(const uint8_t *planes, int s, __m512 *sc, __m512 *m) {
    const __m128i m63 = _mm_set1_epi8(63), m15 = _mm_set1_epi8(15), m3 = _mm_set1_epi8(3);
    __m128i vs, vm;
    if (s < 4) {
        vs = _mm_and_si128(_mm_load_si128((const __m128i *)(planes + 16 * s)), m63);
        vm = _mm_and_si128(_mm_load_si128((const __m128i *)(planes + 16 * (s + 4))), m63);
    } else {
        const __m128i x = _mm_load_si128((const __m128i *)(planes + 16 * (s + 4)));
        const __m128i lo = _mm_load_si128((const __m128i *)(planes + 16 * (s - 4)));
        const __m128i hi = _mm_load_si128((const __m128i *)(planes + 16 * s));
        vs = _mm_or_si128(_mm_and_si128(x, m15), _mm_slli_epi16(_mm_and_si128(_mm_srli_epi16(lo, 6), m3), 4));
        vm = _mm_or_si128(_mm_and_si128(_mm_srli_epi16(x, 4), m15),
                          _mm_slli_epi16(_mm_and_si128(_mm_srli_epi16(hi, 6), m3), 4));
    }
    *sc = _mm512_cvtepi32_ps(_mm512_cvtepu8_epi32(vs));
    *m = _mm512_cvtepi32_ps(_mm512_cvtepu8_epi32(vm));
}

/* out[r] = row r of a Q4_K group . a: per sub-block s of a super-block,
 * d sc_s da_s sum q Q - dmin m_s dsum_s (quant_act.h), with d and dmin
 * taken out of the sub-block sums. Codes of sub-blocks 2c and 2c+1 share
 * chunks (low and high nibbles); two chains per sub-block and activation
 * byte (even and odd chunks) keep vpdpbusd's latency hidden. */
ALWAYS_INLINE void x16_q4k_rows(const uint8_t *g, uint32_t K, const g3_qa_row *a, bool a8, float *out) {
    const float da_unit = a8 ? 128.0f : 1.0f;
    const float *dsum = a8 ? a->dsum8 : a->dsum;
    const __m512i m4 = _mm512_set1_epi8(0x0f);
    __m512 tot = _mm512_setzero_ps();
    for (uint32_t sb = 0; sb < K / 256; sb++, g += K4X_BYTES) {
        for (size_t l = 0; l < K4X_BYTES; l += 64) _mm_prefetch((const char *)g + X16_PREFETCH_AHEAD + l, _MM_HINT_T0);
        __m512 acc_sc = _mm512_setzero_ps(), acc_m = _mm512_setzero_ps();
        for (int c = 0; c < 4; c++) {
            const int8_t *q1 = a->q1 + 256 * sb + 64 * c, *q2 = a->q2 + 256 * sb + 64 * c;
            __m512i s1[4], s2[4]; /* [0, 1]: sub-block 2c, even and odd chunks; [2, 3]: 2c+1 */
            for (int k = 0; k < 4; k++) s1[k] = s2[k] = _mm512_setzero_si512();
            for (int j = 0; j < 8; j++) {
                const __m512i v = _mm512_load_si512(g + K4X_CODES + 64 * (8 * c + j));
                const __m512i lo = _mm512_and_si512(v, m4), hi = _mm512_and_si512(_mm512_srli_epi16(v, 4), m4);
                const int e = j & 1;
                s1[e] = _mm512_dpbusd_epi32(s1[e], lo, _mm512_set1_epi32(load_i32(q1 + 4 * j)));
                s1[2 + e] = _mm512_dpbusd_epi32(s1[2 + e], hi, _mm512_set1_epi32(load_i32(q1 + 32 + 4 * j)));
                if (!a8) {
                    s2[e] = _mm512_dpbusd_epi32(s2[e], lo, _mm512_set1_epi32(load_i32(q2 + 4 * j)));
                    s2[2 + e] = _mm512_dpbusd_epi32(s2[2 + e], hi, _mm512_set1_epi32(load_i32(q2 + 32 + 4 * j)));
                }
            }
            for (int h = 0; h < 2; h++) {
                const int sub = 2 * c + h;
                __m512i isum = _mm512_add_epi32(s1[2 * h], s1[2 * h + 1]);
                if (!a8) isum = _mm512_add_epi32(_mm512_slli_epi32(isum, 7), _mm512_add_epi32(s2[2 * h], s2[2 * h + 1]));
                __m512 sc, m;
                k4x_scale_min(g + K4X_PLANES, sub, &sc, &m);
                const uint32_t ab = 8 * sb + (uint32_t)sub;
                acc_sc = _mm512_fmadd_ps(_mm512_mul_ps(_mm512_cvtepi32_ps(isum), _mm512_set1_ps(a->d[ab] * da_unit)), sc,
                                         acc_sc);
                acc_m = _mm512_fmadd_ps(m, _mm512_set1_ps(dsum[ab]), acc_m);
            }
        }
        const __m512 d = _mm512_cvtph_ps(_mm256_load_si256((const __m256i *)g));
        const __m512 dmin = _mm512_cvtph_ps(_mm256_load_si256((const __m256i *)(g + K4X_DMIN)));
        tot = _mm512_fnmadd_ps(dmin, acc_m, _mm512_fmadd_ps(d, acc_sc, tot));
    }
    _mm512_storeu_ps(out, tot);
}

/* Q6_K (repack.h): offsets in a super-block of 16 rows (3360 bytes: the
 * odd super-blocks start mid-line, so its loads are unaligned) */
enum { K6X_MASKS = 2048, K6X_PLANES = 3072, K6X_D = 3328, K6X_BYTES = 3360 };

/* Chunk k of a Q6_K super-block as 6-bit codes: lo (values 4j+i of half
 * h = k / 16, j = k % 16) and hi (values 64 + 4j + i), the two high bits
 * added under their masks. */
ALWAYS_INLINE void k6x_codes(const uint8_t *g, int k, __m512i *lo, __m512i *hi) {
    const __m512i m4 = _mm512_set1_epi8(0x0f), c16 = _mm512_set1_epi8(16), c32 = _mm512_set1_epi8(32);
    const __m512i v = _mm512_loadu_si512(g + 64 * k);
    uint64_t m[4];
    memcpy(m, g + K6X_MASKS + 32 * k, sizeof m);
    __m512i l = _mm512_and_si512(v, m4), h = _mm512_and_si512(_mm512_srli_epi16(v, 4), m4);
    l = _mm512_mask_add_epi8(l, (__mmask64)m[0], l, c16);
    l = _mm512_mask_add_epi8(l, (__mmask64)m[1], l, c32);
    h = _mm512_mask_add_epi8(h, (__mmask64)m[2], h, c16);
    h = _mm512_mask_add_epi8(h, (__mmask64)m[3], h, c32);
    *lo = l;
    *hi = h;
}

/* out[r] = row r of a Q6_K group . a: per 16-value sub-block s, d sc_s
 * da_{s/2} (sum q Q - 32 sum Q), d taken out of the sub-block sums. Sub-
 * blocks 8h + q (low nibbles of chunks 16h + 4q ..) and 8h + 4 + q (their
 * high nibbles) are summed side by side. */
ALWAYS_INLINE void x16_q6k_rows(const uint8_t *g, uint32_t K, const g3_qa_row *a, bool a8, float *out) {
    const float da_unit = a8 ? 128.0f : 1.0f;
    const int32_t *s16 = a8 ? a->s8_16 : a->s16;
    __m512 tot = _mm512_setzero_ps();
    for (uint32_t sb = 0; sb < K / 256; sb++, g += K6X_BYTES) {
        for (size_t l = 0; l < K6X_BYTES; l += 64) _mm_prefetch((const char *)g + X16_PREFETCH_AHEAD + l, _MM_HINT_T0);
        __m512 acc = _mm512_setzero_ps();
        for (int h = 0; h < 2; h++)
            for (int q = 0; q < 4; q++) {
                const size_t at = 256 * (size_t)sb + 128 * h + 16 * q; /* first value of sub-block 8h + q */
                const int8_t *q1 = a->q1 + at, *q2 = a->q2 + at;
                __m512i s1l = _mm512_setzero_si512(), s1h = s1l, s2l = s1l, s2h = s1l;
                for (int j = 0; j < 4; j++) {
                    __m512i lo, hi;
                    k6x_codes(g, 16 * h + 4 * q + j, &lo, &hi);
                    s1l = _mm512_dpbusd_epi32(s1l, lo, _mm512_set1_epi32(load_i32(q1 + 4 * j)));
                    s1h = _mm512_dpbusd_epi32(s1h, hi, _mm512_set1_epi32(load_i32(q1 + 64 + 4 * j)));
                    if (!a8) {
                        s2l = _mm512_dpbusd_epi32(s2l, lo, _mm512_set1_epi32(load_i32(q2 + 4 * j)));
                        s2h = _mm512_dpbusd_epi32(s2h, hi, _mm512_set1_epi32(load_i32(q2 + 64 + 4 * j)));
                    }
                }
                if (!a8) {
                    s1l = _mm512_add_epi32(_mm512_slli_epi32(s1l, 7), s2l);
                    s1h = _mm512_add_epi32(_mm512_slli_epi32(s1h, 7), s2h);
                }
                for (int e = 0; e < 2; e++) {
                    const uint32_t sub = 8 * (uint32_t)h + 4 * (uint32_t)e + (uint32_t)q; /* of the super-block */
                    const uint32_t v0 = 256 * sb + 16 * sub;
                    const __m512i isum = _mm512_sub_epi32(e ? s1h : s1l, _mm512_set1_epi32(32 * s16[v0 / 16]));
                    const __m512 sc = _mm512_cvtepi32_ps(
                        _mm512_cvtepi8_epi32(_mm_loadu_si128((const __m128i *)(g + K6X_PLANES + 16 * sub))));
                    acc = _mm512_fmadd_ps(_mm512_mul_ps(_mm512_cvtepi32_ps(isum), _mm512_set1_ps(a->d[v0 / 32] * da_unit)),
                                          sc, acc);
                }
            }
        tot = _mm512_fmadd_ps(_mm512_cvtph_ps(_mm256_loadu_si256((const __m256i *)(g + K6X_D))), acc, tot);
    }
    _mm512_storeu_ps(out, tot);
}

/* Panel sub-block s of a K-quant super-block of 16 rows at g (quant_act.h):
 * Q4_K (S = 32): values q from the low (s even) or high nibbles of chunks
 * 8(s/2).., scale d sc, min -(dmin m); Q6_K (S = 16): values q - 32 from
 * chunks 16h + 4q' .. (s = 8h + 4e + q', e picking the nibble), scale d sc. */
ALWAYS_INLINE void kquant_panel_sub(const uint8_t *g, bool q6, uint32_t s, uint8_t *ps) {
    const __m512i ones = _mm512_set1_epi8(1);
    const uint32_t S = q6 ? 16 : 32;
    __m512i wsum = _mm512_setzero_si512();
    __m512 sc, m = _mm512_setzero_ps(), d;
    for (uint32_t j = 0; j < S / 4; j++) {
        __m512i w;
        if (q6) {
            __m512i lo, hi;
            k6x_codes(g, (int)(16 * (s / 8) + 4 * (s % 4) + j), &lo, &hi);
            w = _mm512_sub_epi8((s % 8) / 4 ? hi : lo, _mm512_set1_epi8(32));
        } else {
            const __m512i v = _mm512_load_si512(g + K4X_CODES + 64 * (8 * (s / 2) + j));
            w = _mm512_and_si512(s % 2 ? _mm512_srli_epi16(v, 4) : v, _mm512_set1_epi8(0x0f));
        }
        _mm512_storeu_si512(ps + 64 * j, w);
        wsum = _mm512_dpbusd_epi32(wsum, ones, w);
    }
    if (q6) {
        sc = _mm512_cvtepi32_ps(_mm512_cvtepi8_epi32(_mm_loadu_si128((const __m128i *)(g + K6X_PLANES + 16 * s))));
        d = _mm512_cvtph_ps(_mm256_loadu_si256((const __m256i *)(g + K6X_D)));
    } else {
        k4x_scale_min(g + K4X_PLANES, (int)s, &sc, &m);
        d = _mm512_cvtph_ps(_mm256_load_si256((const __m256i *)g));
    }
    float *pscale = (float *)(ps + S * PR);
    _mm512_storeu_ps(pscale, _mm512_mul_ps(d, sc));
    _mm512_storeu_si512(pscale + PR, _mm512_mullo_epi32(wsum, _mm512_set1_epi32(-129)));
    if (!q6) { /* -(dmin m), negated by its sign bit as the reference's unary minus */
        const __m512 dm = _mm512_mul_ps(_mm512_cvtph_ps(_mm256_load_si256((const __m256i *)(g + K4X_DMIN))), m);
        _mm512_storeu_ps(pscale + 2 * PR,
                         _mm512_castsi512_ps(_mm512_xor_si512(_mm512_castps_si512(dm), _mm512_set1_epi32(INT32_MIN))));
    }
}

/* Q4_K and Q6_K panels from the groups, byte for byte qpack_tile's. */
static void qpack_tile_kquant_x16(bool q6, const uint8_t *groups, uint32_t n_rows, uint32_t K, uint8_t *tile) {
    const uint32_t S = q6 ? 16 : 32, n_sub = 256 / S;
    const size_t sub = (size_t)S * PR + (q6 ? 8 : 12) * PR, pbytes = (size_t)(K / S) * sub;
    const size_t sb_bytes = q6 ? K6X_BYTES : K4X_BYTES, gbytes = (size_t)(K / 256) * sb_bytes;
    for (uint32_t p = 0; p < 2; p++) {
        uint8_t *panel = tile + p * pbytes;
        if (16 * p >= n_rows) {
            memset(panel, 0, pbytes);
            continue;
        }
        for (uint32_t sb = 0; sb < K / 256; sb++)
            for (uint32_t s = 0; s < n_sub; s++)
                kquant_panel_sub(groups + p * gbytes + sb * sb_bytes, q6, s, panel + (n_sub * sb + s) * sub);
    }
}

static void qdot_x16(uint32_t type, const uint8_t *group, uint32_t K, const g3_qa_row *a, bool a8, float *out) {
    if (type == G3_TYPE_Q4_K) {
        a8 ? x16_q4k_rows(group, K, a, true, out) : x16_q4k_rows(group, K, a, false, out);
        return;
    }
    if (type == G3_TYPE_Q6_K) {
        a8 ? x16_q6k_rows(group, K, a, true, out) : x16_q6k_rows(group, K, a, false, out);
        return;
    }
    switch (x16_kind(type)) {
    case X16_Q8_0: a8 ? x16_rows(group, K, a, X16_Q8_0, true, out) : x16_rows(group, K, a, X16_Q8_0, false, out); break;
    case X16_Q5_0: a8 ? x16_rows(group, K, a, X16_Q5_0, true, out) : x16_rows(group, K, a, X16_Q5_0, false, out); break;
    default: a8 ? x16_rows(group, K, a, X16_Q4_0, true, out) : x16_rows(group, K, a, X16_Q4_0, false, out); break;
    }
}

/* The panels of qpack_tile straight from the groups: a chunk of 16 rows x
 * 4 codes is already a panel vector, less the code offset. */
static void qpack_tile_x16(uint32_t type, const uint8_t *groups, uint32_t n_rows, uint32_t K, uint8_t *tile) {
    if (type == G3_TYPE_Q4_K || type == G3_TYPE_Q6_K) {
        qpack_tile_kquant_x16(type == G3_TYPE_Q6_K, groups, n_rows, K, tile);
        return;
    }
    const int kind = x16_kind(type);
    const size_t unit = x16_unit_bytes(kind), sub = 32 * PR + 8 * PR;
    const size_t pbytes = (size_t)(K / 32) * sub, gbytes = (size_t)(K / 64) * unit;
    const __m512i ones = _mm512_set1_epi8(1), flip = _mm512_set1_epi8((char)0x80);
    const __m512i offset = _mm512_set1_epi8(kind == X16_Q5_0 ? 16 : 8);
    for (uint32_t p = 0; p < 2; p++) {
        uint8_t *panel = tile + p * pbytes;
        if (16 * p >= n_rows) {
            memset(panel, 0, pbytes);
            continue;
        }
        const uint8_t *g = groups + p * gbytes;
        for (uint32_t b = 0; b < K / 32; b++) {
            const uint8_t *u = g + (b / 2) * unit, *codes = x16_codes(u, kind, b % 2);
            uint8_t *ps = panel + b * sub;
            __m512i wsum = _mm512_setzero_si512();
            for (int c = 0; c < (kind == X16_Q8_0 ? 8 : 4); c++) {
                if (kind == X16_Q8_0) {
                    const __m512i w = _mm512_xor_si512(_mm512_load_si512(codes + 64 * c), flip);
                    _mm512_storeu_si512(ps + 64 * c, w);
                    wsum = _mm512_dpbusd_epi32(wsum, ones, w);
                } else {
                    __m512i lo, hi;
                    x16_nibbles(codes, x16_masks(u, kind, b % 2), kind, c, &lo, &hi);
                    lo = _mm512_sub_epi8(lo, offset);
                    hi = _mm512_sub_epi8(hi, offset);
                    _mm512_storeu_si512(ps + 64 * c, lo);
                    _mm512_storeu_si512(ps + 64 * (4 + c), hi);
                    wsum = _mm512_dpbusd_epi32(_mm512_dpbusd_epi32(wsum, ones, lo), ones, hi);
                }
            }
            float *pscale = (float *)(ps + 32 * PR);
            _mm512_storeu_ps(pscale, _mm512_cvtph_ps(_mm256_load_si256((const __m256i *)(u + 32 * (b % 2)))));
            _mm512_storeu_si512(pscale + PR, _mm512_mullo_epi32(wsum, _mm512_set1_epi32(-129)));
        }
    }
}

/* ------------------------------------------------------------------ */
/* float weights                                                       */

/* 16 weights of row w starting at element k, widened exactly to f32. */
ALWAYS_INLINE __m512 load_w16(uint32_t type, const uint8_t *w, uint32_t k) {
    if (type == G3_TYPE_F32) return _mm512_loadu_ps((const float *)w + k);
    const __m256i h = _mm256_loadu_si256((const __m256i *)((const uint16_t *)w + k));
    if (type == G3_TYPE_F16) return _mm512_cvtph_ps(h);
    return _mm512_castsi512_ps(_mm512_slli_epi32(_mm512_cvtepu16_epi32(h), 16));
}

ALWAYS_INLINE __m512 load_w16_masked(uint32_t type, const uint8_t *w, uint32_t k, __mmask16 m) {
    if (type == G3_TYPE_F32) return _mm512_maskz_loadu_ps(m, (const float *)w + k);
    const __m256i h = _mm256_maskz_loadu_epi16(m, (const uint16_t *)w + k);
    if (type == G3_TYPE_F16) return _mm512_cvtph_ps(h);
    return _mm512_castsi512_ps(_mm512_slli_epi32(_mm512_cvtepu16_epi32(h), 16));
}

/* NR rows (a constant) of float weights, 64 values of each in turn. */
ALWAYS_INLINE void frows(uint32_t type, const uint8_t *const *rows, int NR, const float *x, uint32_t K, float *out) {
    const int es = type == G3_TYPE_F32 ? 4 : 2;
    __m512 a0[G3_DOT_ROWS], a1[G3_DOT_ROWS];
    for (int r = 0; r < NR; r++) a0[r] = a1[r] = _mm512_setzero_ps();
    uint32_t k = 0;
    for (; k + 64 <= K; k += 64) {
        const __m512 x0 = _mm512_loadu_ps(x + k), x1 = _mm512_loadu_ps(x + k + 16);
        const __m512 x2 = _mm512_loadu_ps(x + k + 32), x3 = _mm512_loadu_ps(x + k + 48);
        for (int r = 0; r < NR; r++) {
            PREFETCH_STEP(rows[r] + (size_t)k * es, 64 * es);
            a0[r] = _mm512_fmadd_ps(load_w16(type, rows[r], k), x0, a0[r]);
            a1[r] = _mm512_fmadd_ps(load_w16(type, rows[r], k + 16), x1, a1[r]);
            a0[r] = _mm512_fmadd_ps(load_w16(type, rows[r], k + 32), x2, a0[r]);
            a1[r] = _mm512_fmadd_ps(load_w16(type, rows[r], k + 48), x3, a1[r]);
        }
    }
    for (; k < K; k += 16) {
        const __mmask16 m = K - k >= 16 ? 0xffff : (__mmask16)((1u << (K - k)) - 1);
        const __m512 xv = _mm512_maskz_loadu_ps(m, x + k);
        for (int r = 0; r < NR; r++) a0[r] = _mm512_fmadd_ps(load_w16_masked(type, rows[r], k, m), xv, a0[r]);
    }
    for (int r = 0; r < NR; r++) out[r] = _mm512_reduce_add_ps(_mm512_add_ps(a0[r], a1[r]));
}

#define FKERNELS(name, T)                                                                                \
    static void fdot_rows_##name(const uint8_t *const *rows, uint32_t n, uint32_t K, const float *x,     \
                                 float *out) {                                                           \
        if (n == G3_DOT_ROWS) frows(T, rows, G3_DOT_ROWS, x, K, out);                                    \
        else                                                                                             \
            for (uint32_t r = 0; r < n; r++) frows(T, rows + r, 1, x, K, out + r);                       \
    }                                                                                                    \
    static void fgemv_##name(const uint8_t *w, size_t rb, uint32_t n, uint32_t K, const float *x,        \
                             float *out) {                                                               \
        for (uint32_t r = 0; r < n; r += G3_DOT_ROWS) {                                                  \
            const uint8_t *rows[G3_DOT_ROWS];                                                            \
            const uint32_t m = n - r < G3_DOT_ROWS ? n - r : G3_DOT_ROWS;                                \
            for (uint32_t i = 0; i < m; i++) rows[i] = w + (r + i) * rb;                                 \
            fdot_rows_##name(rows, m, K, x, out + r);                                                    \
        }                                                                                                \
    }
FKERNELS(f32, G3_TYPE_F32)
FKERNELS(f16, G3_TYPE_F16)
FKERNELS(bf16, G3_TYPE_BF16)

/* Float tile: two panels of [K][16] f32. */
static size_t ftile_bytes(uint32_t K) { return 2 * sizeof(float) * PR * (size_t)K; }

static void fpack_tile(uint32_t type, const uint8_t *rows, size_t row_bytes, uint32_t n_rows, uint32_t K,
                       float *tile) {
    if (fq_is_quant(type)) {
        fq_pack_tile(type, rows, row_bytes, n_rows, K, tile, PR);
        return;
    }
    /* 16 rows x 16 columns at a time through a small row-major buffer,
     * transposed by gathers */
    float buf[PR * 16];
    const __m512i idx = _mm512_mullo_epi32(_mm512_set_epi32(15, 14, 13, 12, 11, 10, 9, 8, 7, 6, 5, 4, 3, 2, 1, 0),
                                           _mm512_set1_epi32(16));
    for (uint32_t p = 0; p < 2; p++) {
        float *panel = tile + (size_t)p * PR * K;
        for (uint32_t k = 0; k < K; k += 16) {
            const uint32_t n = K - k < 16 ? K - k : 16;
            const __mmask16 m = n >= 16 ? 0xffff : (__mmask16)((1u << n) - 1);
            for (uint32_t r = 0; r < PR; r++) {
                const uint32_t src = 16 * p + r;
                const __m512 v = src < n_rows ? load_w16_masked(type, rows + src * row_bytes, k, m) : _mm512_setzero_ps();
                _mm512_storeu_ps(buf + 16 * r, v);
            }
            for (uint32_t j = 0; j < n; j++) _mm512_storeu_ps(panel + (size_t)(k + j) * PR, _mm512_i32gather_ps(idx, buf + j, 4));
        }
    }
}

ALWAYS_INLINE void fgemm_rows(const float *tile, uint32_t K, const float *x, size_t ldx, uint32_t t, int C,
                              float *out, size_t ldo, __mmask16 m0, __mmask16 m1) {
    __m512 a0[6], a1[6];
    for (int c = 0; c < C; c++) a0[c] = a1[c] = _mm512_setzero_ps();
    const float *p0 = tile, *p1 = tile + (size_t)PR * K;
    const float *xr = x + t * ldx;
    for (uint32_t k = 0; k < K; k++) {
        const __m512 w0 = _mm512_loadu_ps(p0 + (size_t)k * PR), w1 = _mm512_loadu_ps(p1 + (size_t)k * PR);
        for (int c = 0; c < C; c++) {
            const __m512 xv = _mm512_set1_ps(xr[c * ldx + k]);
            a0[c] = _mm512_fmadd_ps(w0, xv, a0[c]);
            a1[c] = _mm512_fmadd_ps(w1, xv, a1[c]);
        }
    }
    for (int c = 0; c < C; c++) {
        _mm512_mask_storeu_ps(out + (t + c) * ldo, m0, a0[c]);
        _mm512_mask_storeu_ps(out + (t + c) * ldo + 16, m1, a1[c]);
    }
}

static void fgemm_tile(const float *tile, uint32_t K, const float *x, size_t ldx, uint32_t t0, uint32_t t1,
                       float *out, size_t ldo, uint32_t n_rows) {
    const __mmask16 m0 = n_rows >= 16 ? 0xffff : (__mmask16)((1u << n_rows) - 1);
    const __mmask16 m1 = n_rows >= 32 ? 0xffff : n_rows <= 16 ? 0 : (__mmask16)((1u << (n_rows - 16)) - 1);
    uint32_t t = t0;
    for (; t + 6 <= t1; t += 6) fgemm_rows(tile, K, x, ldx, t, 6, out, ldo, m0, m1);
    switch (t1 - t) {
    case 5: fgemm_rows(tile, K, x, ldx, t, 5, out, ldo, m0, m1); break;
    case 4: fgemm_rows(tile, K, x, ldx, t, 4, out, ldo, m0, m1); break;
    case 3: fgemm_rows(tile, K, x, ldx, t, 3, out, ldo, m0, m1); break;
    case 2: fgemm_rows(tile, K, x, ldx, t, 2, out, ldo, m0, m1); break;
    case 1: fgemm_rows(tile, K, x, ldx, t, 1, out, ldo, m0, m1); break;
    default: break;
    }
}

/* ------------------------------------------------------------------ */
/* vector ops                                                          */

/* e^x, Cephes' single-precision polynomial (about 1 ulp), with 2^n by scalef. */
ALWAYS_INLINE __m512 exp512(__m512 x) {
    x = _mm512_min_ps(_mm512_max_ps(x, _mm512_set1_ps(-103.0f)), _mm512_set1_ps(88.7f));
    const __m512 n = _mm512_roundscale_ps(_mm512_mul_ps(x, _mm512_set1_ps(1.44269504088896341f)),
                                          _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC);
    __m512 r = _mm512_fnmadd_ps(n, _mm512_set1_ps(0.693359375f), x);
    r = _mm512_fnmadd_ps(n, _mm512_set1_ps(-2.12194440e-4f), r);
    __m512 p = _mm512_set1_ps(1.9875691500E-4f);
    p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(1.3981999507E-3f));
    p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(8.3334519073E-3f));
    p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(4.1665795894E-2f));
    p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(1.6666665459E-1f));
    p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(5.0000001201E-1f));
    const __m512 y = _mm512_add_ps(_mm512_fmadd_ps(_mm512_mul_ps(p, r), r, r), _mm512_set1_ps(1.0f));
    return _mm512_scalef_ps(y, n);
}

static void rmsnorm(float *out, const float *x, const float *w, uint32_t n, float eps) {
    __m512d s0 = _mm512_setzero_pd(), s1 = _mm512_setzero_pd();
    uint32_t i = 0;
    for (; i + 16 <= n; i += 16) {
        const __m512d lo = _mm512_cvtps_pd(_mm256_loadu_ps(x + i)), hi = _mm512_cvtps_pd(_mm256_loadu_ps(x + i + 8));
        s0 = _mm512_fmadd_pd(lo, lo, s0);
        s1 = _mm512_fmadd_pd(hi, hi, s1);
    }
    double sum = _mm512_reduce_add_pd(_mm512_add_pd(s0, s1));
    for (; i < n; i++) sum += (double)x[i] * x[i];
    const float scale = (float)(1.0 / sqrt(sum / n + eps));
    const __m512 vs = _mm512_set1_ps(scale);
    for (i = 0; i < n; i += 16) {
        const __mmask16 m = n - i >= 16 ? 0xffff : (__mmask16)((1u << (n - i)) - 1);
        const __m512 v = _mm512_mul_ps(_mm512_mul_ps(_mm512_maskz_loadu_ps(m, x + i), vs), _mm512_maskz_loadu_ps(m, w + i));
        _mm512_mask_storeu_ps(out + i, m, v);
    }
}

/* gelu_tanh(x) = 0.5 x (1 + tanh(y)) = x / (1 + e^(-2y)), y = sqrt(2/pi) (x + 0.044715 x^3) */
static void gelu_mul(float *g, const float *u, uint32_t n) {
    const __m512 k2 = _mm512_set1_ps(-2.0f * 0.7978845608028654f), c = _mm512_set1_ps(0.044715f);
    const __m512 one = _mm512_set1_ps(1.0f);
    for (uint32_t i = 0; i < n; i += 16) {
        const __mmask16 m = n - i >= 16 ? 0xffff : (__mmask16)((1u << (n - i)) - 1);
        const __m512 x = _mm512_maskz_loadu_ps(m, g + i);
        const __m512 y2 = _mm512_mul_ps(k2, _mm512_fmadd_ps(_mm512_mul_ps(c, x), _mm512_mul_ps(x, x), x));
        const __m512 gl = _mm512_div_ps(x, _mm512_add_ps(one, exp512(y2)));
        _mm512_mask_storeu_ps(g + i, m, _mm512_mul_ps(gl, _mm512_maskz_loadu_ps(m, u + i)));
    }
}

static void softmax(float *x, uint32_t n) {
    __m512 mx = _mm512_set1_ps(-INFINITY);
    for (uint32_t i = 0; i < n; i += 16) {
        const __mmask16 m = n - i >= 16 ? 0xffff : (__mmask16)((1u << (n - i)) - 1);
        mx = _mm512_mask_max_ps(mx, m, mx, _mm512_maskz_loadu_ps(m, x + i));
    }
    const __m512 vmax = _mm512_set1_ps(_mm512_reduce_max_ps(mx));
    __m512d s0 = _mm512_setzero_pd(), s1 = _mm512_setzero_pd();
    for (uint32_t i = 0; i < n; i += 16) {
        const __mmask16 m = n - i >= 16 ? 0xffff : (__mmask16)((1u << (n - i)) - 1);
        const __m512 e = _mm512_maskz_mov_ps(m, exp512(_mm512_sub_ps(_mm512_maskz_loadu_ps(m, x + i), vmax)));
        _mm512_mask_storeu_ps(x + i, m, e);
        s0 = _mm512_add_pd(s0, _mm512_cvtps_pd(_mm512_castps512_ps256(e)));
        s1 = _mm512_add_pd(s1, _mm512_cvtps_pd(_mm256_castpd_ps(_mm512_extractf64x4_pd(_mm512_castps_pd(e), 1))));
    }
    const __m512 inv = _mm512_set1_ps((float)(1.0 / _mm512_reduce_add_pd(_mm512_add_pd(s0, s1))));
    for (uint32_t i = 0; i < n; i += 16) {
        const __mmask16 m = n - i >= 16 ? 0xffff : (__mmask16)((1u << (n - i)) - 1);
        _mm512_mask_storeu_ps(x + i, m, _mm512_mul_ps(_mm512_maskz_loadu_ps(m, x + i), inv));
    }
}

static float dot(const float *a, const float *b, uint32_t n) {
    __m512 s0 = _mm512_setzero_ps(), s1 = _mm512_setzero_ps();
    uint32_t i = 0;
    for (; i + 32 <= n; i += 32) {
        s0 = _mm512_fmadd_ps(_mm512_loadu_ps(a + i), _mm512_loadu_ps(b + i), s0);
        s1 = _mm512_fmadd_ps(_mm512_loadu_ps(a + i + 16), _mm512_loadu_ps(b + i + 16), s1);
    }
    for (; i < n; i += 16) {
        const __mmask16 m = n - i >= 16 ? 0xffff : (__mmask16)((1u << (n - i)) - 1);
        s0 = _mm512_fmadd_ps(_mm512_maskz_loadu_ps(m, a + i), _mm512_maskz_loadu_ps(m, b + i), s0);
    }
    return _mm512_reduce_add_ps(_mm512_add_ps(s0, s1));
}

static void axpy(float *y, float a, const float *x, uint32_t n) {
    const __m512 va = _mm512_set1_ps(a);
    for (uint32_t i = 0; i < n; i += 16) {
        const __mmask16 m = n - i >= 16 ? 0xffff : (__mmask16)((1u << (n - i)) - 1);
        _mm512_mask_storeu_ps(y + i, m, _mm512_fmadd_ps(va, _mm512_maskz_loadu_ps(m, x + i), _mm512_maskz_loadu_ps(m, y + i)));
    }
}

static void add(float *y, const float *x, uint32_t n) {
    for (uint32_t i = 0; i < n; i += 16) {
        const __mmask16 m = n - i >= 16 ? 0xffff : (__mmask16)((1u << (n - i)) - 1);
        _mm512_mask_storeu_ps(y + i, m, _mm512_add_ps(_mm512_maskz_loadu_ps(m, y + i), _mm512_maskz_loadu_ps(m, x + i)));
    }
}

/* ------------------------------------------------------------------ */
/* attention over the KV cache                                         */

/* The walk over a head, the entry points and the split of a GQA group
 * into passes are shared (kernels_simd_common.h); what is here is the
 * part that depends on the vector width: the row loads, scores_pass and
 * values_rows, 16 lanes at a time. */

/* Values k .. k+31 of a head row (k a multiple of 32), widened exactly. A
 * Q8_0 value is its code times the f16 scale: 8 x 11 significant bits, so
 * the f32 product is exact. */
ALWAYS_INLINE void kv_load32(uint32_t type, const uint8_t *row, uint32_t k, __m512 v[2]) {
    if (type != G3_TYPE_Q8_0) {
        v[0] = load_w16(type, row, k);
        v[1] = load_w16(type, row, k + 16);
        return;
    }
    const uint8_t *b = row + (size_t)(k / 32) * 34;
    const __m512 d = _mm512_set1_ps(f16_at(b));
    for (int h = 0; h < 2; h++) {
        const __m128i q = _mm_loadu_si128((const __m128i *)(b + 2 + 16 * h));
        v[h] = _mm512_mul_ps(_mm512_cvtepi32_ps(_mm512_cvtepi8_epi32(q)), d);
    }
}

ALWAYS_INLINE __m256 fold512(__m512 v) {
    return _mm256_add_ps(_mm512_castps512_ps256(v), _mm256_castpd_ps(_mm512_extractf64x4_pd(_mm512_castps_pd(v), 1)));
}

/* [sum a, sum b, sum c, sum d]: four reductions share their shuffles */
ALWAYS_INLINE __m128 hsum4(__m512 a, __m512 b, __m512 c, __m512 d) {
    const __m256 t = _mm256_hadd_ps(_mm256_hadd_ps(fold512(a), fold512(b)), _mm256_hadd_ps(fold512(c), fold512(d)));
    return _mm_add_ps(_mm256_castps256_ps128(t), _mm256_extractf128_ps(t, 1));
}

/* s[i * ld_s] = sum of acc[i] for i < NQ */
ALWAYS_INLINE void store_sums(const __m512 *acc, uint32_t NQ, float *s, size_t ld_s) {
    if (NQ == 1) {
        s[0] = _mm512_reduce_add_ps(acc[0]);
        return;
    }
    const __m512 z = _mm512_setzero_ps();
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
        __m512 acc[ATTN_MAX_Q];
        for (uint32_t i = 0; i < NQ; i++) acc[i] = _mm512_setzero_ps();
        uint32_t k = 0;
        for (; k + 32 <= D; k += 32) {
            __m512 v[2];
            kv_load32(type, row, k, v);
            for (uint32_t i = 0; i < NQ; i++) {
                acc[i] = _mm512_fmadd_ps(v[0], _mm512_loadu_ps(q + (size_t)i * D + k), acc[i]);
                acc[i] = _mm512_fmadd_ps(v[1], _mm512_loadu_ps(q + (size_t)i * D + k + 16), acc[i]);
            }
        }
        for (; type != G3_TYPE_Q8_0 && k < D; k += 16) { /* float types: any D */
            const __mmask16 m = D - k >= 16 ? 0xffff : (__mmask16)((1u << (D - k)) - 1);
            const __m512 v = load_w16_masked(type, row, k, m);
            for (uint32_t i = 0; i < NQ; i++)
                acc[i] = _mm512_fmadd_ps(v, _mm512_maskz_loadu_ps(m, q + (size_t)i * D + k), acc[i]);
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
    for (; k + 32 <= D; k += 32) {
        __m512 v[4][2];
        for (uint32_t r = 0; r < R; r++) kv_load32(type, rows[r], k, v[r]);
        for (uint32_t i = 0; i < nq; i++) {
            float *o = out + (size_t)i * D + k;
            __m512 a0 = _mm512_loadu_ps(o), a1 = _mm512_loadu_ps(o + 16);
            for (uint32_t r = 0; r < R; r++) {
                const __m512 w = _mm512_set1_ps(s[i * ld_s + r]);
                a0 = _mm512_fmadd_ps(w, v[r][0], a0);
                a1 = _mm512_fmadd_ps(w, v[r][1], a1);
            }
            _mm512_storeu_ps(o, a0);
            _mm512_storeu_ps(o + 16, a1);
        }
    }
    for (; type != G3_TYPE_Q8_0 && k < D; k += 16) { /* float types: any D */
        const __mmask16 m = D - k >= 16 ? 0xffff : (__mmask16)((1u << (D - k)) - 1);
        __m512 v[4];
        for (uint32_t r = 0; r < R; r++) v[r] = load_w16_masked(type, rows[r], k, m);
        for (uint32_t i = 0; i < nq; i++) {
            float *o = out + (size_t)i * D + k;
            __m512 a = _mm512_maskz_loadu_ps(m, o);
            for (uint32_t r = 0; r < R; r++) a = _mm512_fmadd_ps(_mm512_set1_ps(s[i * ld_s + r]), v[r], a);
            _mm512_mask_storeu_ps(o, m, a);
        }
    }
}

const g3_kernels g3_kernels_avx512 = {
    .path = G3_CPU_AVX512,
    SIMD_KERNEL_SLOTS,
    .qdot_x16 = qdot_x16,
    .qpack_tile_x16 = qpack_tile_x16,
};
