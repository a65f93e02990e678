/* kernels_simd_common.h: what the AVX2 and AVX-512 paths share.
 *
 * Internal to kernels_avx2.c and kernels_avx512.c, nothing else: each of
 * them includes this once and is compiled with its own -m flags, so every
 * function here is static and becomes that path's own code (the F16C
 * conversion in f16_at is there on both). What depends on the vector
 * width stays in the two files; this is the part that does not: small
 * loads, the Q4_K/Q5_K scale unpacking, the walk over a KV-cache head and
 * the attention entry points built on it, and the kernel table's slots.
 *
 * Each including file defines, with its own vectors, the two attention
 * pieces declared below (scores_pass, values_rows) and every function the
 * table names in SIMD_KERNEL_SLOTS. */
#ifndef G3_TENSOR_KERNELS_SIMD_COMMON_H
#define G3_TENSOR_KERNELS_SIMD_COMMON_H

#include <immintrin.h>
#include <stdbool.h>
#include <stdint.h>
#include <string.h>

#include "tensor/kernels.h"
#include "tensor/quant_legacy.h"

#define ALWAYS_INLINE static inline __attribute__((always_inline))

ALWAYS_INLINE int32_t load_i32(const void *p) {
    int32_t v;
    memcpy(&v, p, 4);
    return v;
}

ALWAYS_INLINE float f16_at(const uint8_t *p) {
    uint16_t h;
    memcpy(&h, p, 2);
    return _cvtsh_ss(h);
}

/* ggml's 32-element block types, as the decode kernels tell them apart
 * (layouts in quant_legacy.c). */
enum { LEG_Q4_0, LEG_Q5_0, LEG_Q8_0, LEG_Q4_1, LEG_Q5_1, LEG_IQ4_NL };

ALWAYS_INLINE int leg_bytes(int kind) {
    static const int bytes[] = {18, 22, 34, 20, 24, 18};
    return bytes[kind];
}

/* Q4_1/Q5_1: x = q d + m, the f16 m right after d */
ALWAYS_INLINE bool leg_has_min(int kind) { return kind == LEG_Q4_1 || kind == LEG_Q5_1; }

/* Byte offsets of the codes (Q8_0's bytes, the others' 16 nibble bytes)
 * and of Q5_0/Q5_1's 4 bytes of fifth bits. */
ALWAYS_INLINE int leg_qs(int kind) {
    static const int qs[] = {2, 6, 2, 4, 8, 2};
    return qs[kind];
}
ALWAYS_INLINE int leg_qh(int kind) { return kind == LEG_Q5_1 ? 4 : 2; }

/* Q4_K/Q5_K sub-block scales and mins (ggml's 12-byte packing) as bytes:
 * out[0..7] scales, out[8..15] mins. */
ALWAYS_INLINE void k4_unpack_scales(const uint8_t *s, uint8_t out[16]) {
    uint32_t u[4];
    memcpy(u, s, 12);
    const uint32_t m6 = 0x3f3f3f3f, m4 = 0x0f0f0f0f, m2 = 0x03030303;
    u[3] = ((u[2] >> 4) & m4) | (((u[1] >> 6) & m2) << 4); /* mins 4-7 */
    const uint32_t mins03 = u[1] & m6;
    u[1] = (u[2] & m4) | (((u[0] >> 6) & m2) << 4); /* scales 4-7 */
    u[0] &= m6;                                      /* scales 0-3 */
    u[2] = mins03;
    memcpy(out, u, 16);
}

/* ------------------------------------------------------------------ */
/* attention over the KV cache                                         */

/* The nq queries of a GQA group share every key and value row: a row is
 * read from memory and widened to f32 once, then multiplied with all of
 * them (at long contexts the cache reads are the whole cost of a step).
 * The scores kernel keeps one accumulator per query in a register, so nq is
 * a compile-time constant up to ATTN_MAX_Q; larger groups (Gemma 3 has at
 * most 4 query heads per KV head) are split into passes. */
#define ATTN_MAX_Q 8
/* Head rows are a whole position's heads apart (kilobytes), which the
 * hardware prefetchers do not follow: the walk prefetches this many bytes
 * of head rows ahead of the one being read, into L2, which keeps more
 * misses in flight than L1's fill buffers (measured at a 32K context:
 * 4 KB into L1 gave ~2/3 of the bandwidth of 32 KB into L2). */
#ifndef ATTN_HINT
#define ATTN_HINT _MM_HINT_T1
#endif
#ifndef ATTN_AHEAD_BYTES
#define ATTN_AHEAD_BYTES 32768
#endif

/* One head's rows in ring order, with a prefetch cursor rows ahead. */
typedef struct kv_walk {
    const uint8_t *base;
    size_t row_bytes, head_bytes;
    uint32_t slots, slot, pf_slot, pf_left;
} kv_walk;

ALWAYS_INLINE size_t kv_head_bytes(uint32_t type, uint32_t D) {
    if (type == G3_TYPE_F32) return 4 * (size_t)D;
    if (type == G3_TYPE_Q8_0) return (size_t)D / 32 * 34;
    return 2 * (size_t)D;
}

ALWAYS_INLINE uint32_t ring_step(uint32_t slot, uint32_t slots) { return slot + 1 == slots ? 0 : slot + 1; }

ALWAYS_INLINE void prefetch_span(const uint8_t *p, size_t bytes) {
    for (uintptr_t a = (uintptr_t)p & ~(uintptr_t)63; a < (uintptr_t)p + bytes; a += 64)
        _mm_prefetch((const char *)a, ATTN_HINT);
}

/* Starts at position lo and already requests the first rows. */
static kv_walk kv_walk_start(const uint8_t *base, size_t row_bytes, uint32_t slots, uint32_t lo, uint32_t n,
                             size_t head_bytes) {
    uint32_t ahead = (uint32_t)(ATTN_AHEAD_BYTES / head_bytes);
    if (ahead < 1) ahead = 1;
    if (ahead > n) ahead = n;
    kv_walk w = {base, row_bytes, head_bytes, slots, lo % slots, lo % slots, n - ahead};
    for (uint32_t i = 0; i < ahead; i++) {
        prefetch_span(base + (size_t)w.pf_slot * row_bytes, head_bytes);
        w.pf_slot = ring_step(w.pf_slot, slots);
    }
    return w;
}

ALWAYS_INLINE const uint8_t *kv_walk_next(kv_walk *w) {
    if (w->pf_left) {
        w->pf_left--;
        prefetch_span(w->base + (size_t)w->pf_slot * w->row_bytes, w->head_bytes);
        w->pf_slot = ring_step(w->pf_slot, w->slots);
    }
    const uint8_t *row = w->base + (size_t)w->slot * w->row_bytes;
    w->slot = ring_step(w->slot, w->slots);
    return row;
}

/* Defined by the including file, at its vector width. scores_pass: NQ (a
 * constant, at most ATTN_MAX_Q) queries against the walk's n rows into
 * s[i * ld_s + j]. values_rows: out_i += sum_r s_i[r] V_r over R (a
 * constant, at most 4) rows for every query i. */
ALWAYS_INLINE void scores_pass(uint32_t type, uint32_t NQ, const float *q, uint32_t D, kv_walk w, uint32_t n,
                               float *s, size_t ld_s);
ALWAYS_INLINE void values_rows(uint32_t type, uint32_t R, const uint8_t *const *rows, const float *s, size_t ld_s,
                               uint32_t nq, uint32_t D, float *out);

ALWAYS_INLINE void attn_scores_any(uint32_t type, const float *q, uint32_t nq, const uint8_t *keys,
                                   size_t row_bytes, uint32_t slots, uint32_t lo, uint32_t n, uint32_t D, float *s,
                                   size_t ld_s) {
    const kv_walk w = kv_walk_start(keys, row_bytes, slots, lo, n, kv_head_bytes(type, D));
    for (uint32_t i0 = 0; i0 < nq; i0 += ATTN_MAX_Q) {
        const float *qi = q + (size_t)i0 * D;
        float *si = s + i0 * ld_s;
        switch (nq - i0 < ATTN_MAX_Q ? nq - i0 : ATTN_MAX_Q) {
        case 1: scores_pass(type, 1, qi, D, w, n, si, ld_s); break;
        case 2: scores_pass(type, 2, qi, D, w, n, si, ld_s); break;
        case 3: scores_pass(type, 3, qi, D, w, n, si, ld_s); break;
        case 4: scores_pass(type, 4, qi, D, w, n, si, ld_s); break;
        case 5: scores_pass(type, 5, qi, D, w, n, si, ld_s); break;
        case 6: scores_pass(type, 6, qi, D, w, n, si, ld_s); break;
        case 7: scores_pass(type, 7, qi, D, w, n, si, ld_s); break;
        default: scores_pass(type, ATTN_MAX_Q, qi, D, w, n, si, ld_s); break;
        }
    }
}

/* Four rows at a time: four memory streams, and a quarter of the output traffic. */
ALWAYS_INLINE void attn_values_any(uint32_t type, const float *s, size_t ld_s, uint32_t nq, const uint8_t *vals,
                                   size_t row_bytes, uint32_t slots, uint32_t lo, uint32_t n, uint32_t D, float *out) {
    kv_walk w = kv_walk_start(vals, row_bytes, slots, lo, n, kv_head_bytes(type, D));
    memset(out, 0, sizeof(float) * nq * D);
    uint32_t j = 0;
    for (; j + 4 <= n; j += 4) {
        const uint8_t *rows[4];
        for (int r = 0; r < 4; r++) rows[r] = kv_walk_next(&w);
        values_rows(type, 4, rows, s + j, ld_s, nq, D, out);
    }
    for (; j < n; j++) {
        const uint8_t *row = kv_walk_next(&w);
        values_rows(type, 1, &row, s + j, ld_s, nq, D, out);
    }
}

/* The table's entry points: the cache type a constant in each. */
G3_ATTN_ENTRY_POINTS(f32, G3_TYPE_F32, attn_scores_any, attn_values_any)
G3_ATTN_ENTRY_POINTS(f16, G3_TYPE_F16, attn_scores_any, attn_values_any)
G3_ATTN_ENTRY_POINTS(bf16, G3_TYPE_BF16, attn_scores_any, attn_values_any)
G3_ATTN_ENTRY_POINTS(q8_0, G3_TYPE_Q8_0, attn_scores_any, attn_values_any)

/* ------------------------------------------------------------------ */
/* quantized weights x f32 activations (exact activations)             */

/* With g3_context_params.exact_activations every product takes its f32
 * input, so quantized weights are dequantized here exactly as their
 * to_float (type_ops.h) does it: the code times the f16 scale in one f32
 * product (Q4_1/Q5_1: q d + m; K-quants: (d sc) q - (dmin m), each in two
 * roundings, as the reference) and multiplied with x by f32 FMA. One unit
 * (a 32-block, or a 256-value super-block) at a time goes into a small
 * buffer on the stack, which the decode dot product (fq_dot_rows) and the
 * batched tile packer (fq_pack_tile, then the path's own fgemm_tile) read.
 * 256-bit code on both paths: the decode side is bound by memory, the
 * batched side by fgemm_tile. */

#define FQ_PREFETCH 2048 /* bytes ahead of a weight stream */

/* The 6-bit codes (0..63) of half h of a Q6_K super-block (ql[128] qh[64]
 * ...): q[z] holds elements 128h + 32z .. +31, one per byte. */
ALWAYS_INLINE void q6k_codes(const uint8_t *b, int h, __m256i q[4]) {
    const __m256i m4 = _mm256_set1_epi8(0x0f), m3 = _mm256_set1_epi8(0x03);
    const __m256i l0 = _mm256_loadu_si256((const __m256i *)(b + 64 * h));
    const __m256i l1 = _mm256_loadu_si256((const __m256i *)(b + 64 * h + 32));
    const __m256i qh = _mm256_loadu_si256((const __m256i *)(b + 128 + 32 * h));
    q[0] = _mm256_or_si256(_mm256_and_si256(l0, m4), _mm256_slli_epi16(_mm256_and_si256(qh, m3), 4));
    q[1] = _mm256_or_si256(_mm256_and_si256(l1, m4), _mm256_slli_epi16(_mm256_and_si256(_mm256_srli_epi16(qh, 2), m3), 4));
    q[2] = _mm256_or_si256(_mm256_and_si256(_mm256_srli_epi16(l0, 4), m4),
                           _mm256_slli_epi16(_mm256_and_si256(_mm256_srli_epi16(qh, 4), m3), 4));
    q[3] = _mm256_or_si256(_mm256_and_si256(_mm256_srli_epi16(l1, 4), m4),
                           _mm256_slli_epi16(_mm256_and_si256(_mm256_srli_epi16(qh, 6), m3), 4));
}

ALWAYS_INLINE bool fq_is_quant(uint32_t type) {
    switch (type) {
    case G3_TYPE_Q8_0: case G3_TYPE_Q4_0: case G3_TYPE_Q5_0: case G3_TYPE_Q4_1: case G3_TYPE_Q5_1:
    case G3_TYPE_IQ4_NL: case G3_TYPE_Q4_K: case G3_TYPE_Q5_K: case G3_TYPE_Q6_K: return true;
    default: return false;
    }
}

/* Values of one unit, and its bytes. */
ALWAYS_INLINE uint32_t fq_unit(uint32_t type) {
    return type == G3_TYPE_Q4_K || type == G3_TYPE_Q5_K || type == G3_TYPE_Q6_K ? 256 : 32;
}

ALWAYS_INLINE size_t fq_unit_bytes(uint32_t type) {
    switch (type) {
    case G3_TYPE_Q8_0: return 34;
    case G3_TYPE_Q4_0: return 18;
    case G3_TYPE_Q5_0: return 22;
    case G3_TYPE_Q4_1: return 20;
    case G3_TYPE_Q5_1: return 24;
    case G3_TYPE_IQ4_NL: return 18;
    case G3_TYPE_Q4_K: return 144;
    case G3_TYPE_Q5_K: return 176;
    default: return 210; /* Q6_K */
    }
}

/* 32 nibbles of 16 bytes: low nibbles (elements 0-15), then high */
ALWAYS_INLINE __m256i fq_nibbles32(const uint8_t *qs) {
    const __m128i q = _mm_loadu_si128((const __m128i *)qs);
    return _mm256_and_si256(_mm256_inserti128_si256(_mm256_castsi128_si256(q), _mm_srli_epi16(q, 4), 1),
                            _mm256_set1_epi8(0x0f));
}

/* 16 in byte j where bit j of the word is set */
ALWAYS_INLINE __m256i fq_bits16(uint32_t bits) {
    const __m256i shuf = _mm256_setr_epi64x(0x0000000000000000LL, 0x0101010101010101LL, 0x0202020202020202LL,
                                            0x0303030303030303LL);
    const __m256i bit = _mm256_set1_epi64x((long long)0x8040201008040201ULL);
    const __m256i v = _mm256_shuffle_epi8(_mm256_set1_epi32((int)bits), shuf);
    return _mm256_and_si256(_mm256_cmpeq_epi8(_mm256_and_si256(v, bit), bit), _mm256_set1_epi8(16));
}

/* dst[0..32) = the 32 signed bytes of v times d (exact int -> f32, one product) */
ALWAYS_INLINE void fq_store_s8(__m256i v, __m256 d, float *dst) {
    const __m128i lo = _mm256_castsi256_si128(v), hi = _mm256_extracti128_si256(v, 1);
    _mm256_storeu_ps(dst, _mm256_mul_ps(_mm256_cvtepi32_ps(_mm256_cvtepi8_epi32(lo)), d));
    _mm256_storeu_ps(dst + 8, _mm256_mul_ps(_mm256_cvtepi32_ps(_mm256_cvtepi8_epi32(_mm_srli_si128(lo, 8))), d));
    _mm256_storeu_ps(dst + 16, _mm256_mul_ps(_mm256_cvtepi32_ps(_mm256_cvtepi8_epi32(hi)), d));
    _mm256_storeu_ps(dst + 24, _mm256_mul_ps(_mm256_cvtepi32_ps(_mm256_cvtepi8_epi32(_mm_srli_si128(hi, 8))), d));
}

/* dst[0..32) = s * u - m for the 32 unsigned bytes of u (product, then difference: two roundings) */
ALWAYS_INLINE void fq_store_u8_affine(__m256i u, __m256 s, __m256 m, bool add, float *dst) {
    const __m128i lo = _mm256_castsi256_si128(u), hi = _mm256_extracti128_si256(u, 1);
    const __m128i part[4] = {lo, _mm_srli_si128(lo, 8), hi, _mm_srli_si128(hi, 8)};
    for (int i = 0; i < 4; i++) {
        const __m256 p = _mm256_mul_ps(_mm256_cvtepi32_ps(_mm256_cvtepu8_epi32(part[i])), s);
        _mm256_storeu_ps(dst + 8 * i, add ? _mm256_add_ps(p, m) : _mm256_sub_ps(p, m));
    }
}

/* One unit of type (a constant in the hot callers) at p into dst. */
ALWAYS_INLINE void fq_dequant(uint32_t type, const uint8_t *p, float *dst) {
    switch (type) {
    case G3_TYPE_Q8_0:
        fq_store_s8(_mm256_loadu_si256((const __m256i *)(p + 2)), _mm256_set1_ps(f16_at(p)), dst);
        return;
    case G3_TYPE_Q4_0:
        fq_store_s8(_mm256_sub_epi8(fq_nibbles32(p + 2), _mm256_set1_epi8(8)), _mm256_set1_ps(f16_at(p)), dst);
        return;
    case G3_TYPE_Q5_0: {
        const __m256i q = _mm256_or_si256(fq_nibbles32(p + 6), fq_bits16((uint32_t)load_i32(p + 2)));
        fq_store_s8(_mm256_sub_epi8(q, _mm256_set1_epi8(16)), _mm256_set1_ps(f16_at(p)), dst);
        return;
    }
    case G3_TYPE_IQ4_NL: {
        const __m256i kv = _mm256_broadcastsi128_si256(_mm_loadu_si128((const __m128i *)g3_iq4_nl_values));
        fq_store_s8(_mm256_shuffle_epi8(kv, fq_nibbles32(p + 2)), _mm256_set1_ps(f16_at(p)), dst);
        return;
    }
    case G3_TYPE_Q4_1:
        fq_store_u8_affine(fq_nibbles32(p + 4), _mm256_set1_ps(f16_at(p)), _mm256_set1_ps(f16_at(p + 2)), true, dst);
        return;
    case G3_TYPE_Q5_1: {
        const __m256i q = _mm256_or_si256(fq_nibbles32(p + 8), fq_bits16((uint32_t)load_i32(p + 4)));
        fq_store_u8_affine(q, _mm256_set1_ps(f16_at(p)), _mm256_set1_ps(f16_at(p + 2)), true, dst);
        return;
    }
    case G3_TYPE_Q4_K:
    case G3_TYPE_Q5_K: {
        const bool q5 = type == G3_TYPE_Q5_K;
        const uint8_t *qs = p + (q5 ? 48 : 16);
        uint8_t sm[16];
        k4_unpack_scales(p + 4, sm);
        const float d = f16_at(p), dmin = f16_at(p + 2);
        const __m256i m4 = _mm256_set1_epi8(0x0f);
        const __m256i qh = q5 ? _mm256_loadu_si256((const __m256i *)(p + 16)) : _mm256_setzero_si256();
        for (int c = 0; c < 4; c++) {
            const __m256i raw = _mm256_loadu_si256((const __m256i *)(qs + 32 * c));
            __m256i lo = _mm256_and_si256(raw, m4), hi = _mm256_and_si256(_mm256_srli_epi16(raw, 4), m4);
            if (q5) {
                const __m256i b0 = _mm256_set1_epi8((char)(1 << (2 * c))), b1 = _mm256_set1_epi8((char)(2 << (2 * c)));
                const __m256i s16 = _mm256_set1_epi8(16);
                lo = _mm256_or_si256(lo, _mm256_and_si256(_mm256_cmpeq_epi8(_mm256_and_si256(qh, b0), b0), s16));
                hi = _mm256_or_si256(hi, _mm256_and_si256(_mm256_cmpeq_epi8(_mm256_and_si256(qh, b1), b1), s16));
            }
            const int s0 = 2 * c, s1 = 2 * c + 1;
            fq_store_u8_affine(lo, _mm256_set1_ps(d * (float)sm[s0]), _mm256_set1_ps(dmin * (float)sm[8 + s0]), false,
                               dst + 64 * c);
            fq_store_u8_affine(hi, _mm256_set1_ps(d * (float)sm[s1]), _mm256_set1_ps(dmin * (float)sm[8 + s1]), false,
                               dst + 64 * c + 32);
        }
        return;
    }
    default: { /* Q6_K: ql[128] qh[64] sc[16] d */
        const __m256i o32 = _mm256_set1_epi8(32);
        const float d = f16_at(p + 208);
        const int8_t *sc = (const int8_t *)(p + 192);
        for (int h = 0; h < 2; h++) {
            __m256i q[4];
            q6k_codes(p, h, q);
            for (int z = 0; z < 4; z++) {
                /* elements 128h + 32z: sub-blocks s (first 16) and s + 1 */
                const int s = 8 * h + 2 * z;
                const __m256i v = _mm256_sub_epi8(q[z], o32);
                const __m128i lo = _mm256_castsi256_si128(v), hi = _mm256_extracti128_si256(v, 1);
                const __m256 d0 = _mm256_set1_ps(d * (float)sc[s]), d1 = _mm256_set1_ps(d * (float)sc[s + 1]);
                float *o = dst + 128 * h + 32 * z;
                _mm256_storeu_ps(o, _mm256_mul_ps(_mm256_cvtepi32_ps(_mm256_cvtepi8_epi32(lo)), d0));
                _mm256_storeu_ps(o + 8, _mm256_mul_ps(_mm256_cvtepi32_ps(_mm256_cvtepi8_epi32(_mm_srli_si128(lo, 8))), d0));
                _mm256_storeu_ps(o + 16, _mm256_mul_ps(_mm256_cvtepi32_ps(_mm256_cvtepi8_epi32(hi)), d1));
                _mm256_storeu_ps(o + 24, _mm256_mul_ps(_mm256_cvtepi32_ps(_mm256_cvtepi8_epi32(_mm_srli_si128(hi, 8))), d1));
            }
        }
        return;
    }
    }
}

/* out[r] = rows[r] . x for n <= G3_DOT_ROWS rows, a unit of each in turn
 * (one memory stream per row, as the integer decode kernels walk them). */
ALWAYS_INLINE void fq_dot_rows(uint32_t type, const uint8_t *const *rows, uint32_t n, uint32_t K, const float *x,
                               float *out) {
    const uint32_t U = fq_unit(type);
    const size_t ub = fq_unit_bytes(type);
    _Alignas(32) float buf[256];
    __m256 a0[G3_DOT_ROWS], a1[G3_DOT_ROWS];
    for (uint32_t r = 0; r < n; r++) a0[r] = a1[r] = _mm256_setzero_ps();
    for (uint32_t u = 0; u < K / U; u++) {
        const float *xu = x + (size_t)u * U;
        for (uint32_t r = 0; r < n; r++) {
            const uint8_t *p = rows[r] + (size_t)u * ub;
            for (size_t l = 0; l < ub; l += 64) _mm_prefetch((const char *)p + FQ_PREFETCH + l, _MM_HINT_T0);
            fq_dequant(type, p, buf);
            for (uint32_t j = 0; j < U; j += 16) {
                a0[r] = _mm256_fmadd_ps(_mm256_load_ps(buf + j), _mm256_loadu_ps(xu + j), a0[r]);
                a1[r] = _mm256_fmadd_ps(_mm256_load_ps(buf + j + 8), _mm256_loadu_ps(xu + j + 8), a1[r]);
            }
        }
    }
    for (uint32_t r = 0; r < n; r++) {
        const __m256 v = _mm256_add_ps(a0[r], a1[r]);
        __m128 s = _mm_add_ps(_mm256_castps256_ps128(v), _mm256_extractf128_ps(v, 1));
        s = _mm_add_ps(s, _mm_movehl_ps(s, s));
        s = _mm_add_ss(s, _mm_movehdup_ps(s));
        out[r] = _mm_cvtss_f32(s);
    }
}

/* A float tile (G3_TILE_ROWS / PR panels of [K][PR] f32, the layout of the
 * path's fgemm_tile) from rows [0, n_rows) of a quantized type; the other
 * rows are zero. Units of PR rows are dequantized, then transposed. */
static void fq_pack_tile(uint32_t type, const uint8_t *rows, size_t row_bytes, uint32_t n_rows, uint32_t K,
                         float *tile, uint32_t PR) {
    const uint32_t U = fq_unit(type);
    const size_t ub = fq_unit_bytes(type);
    _Alignas(32) float buf[256];
    for (uint32_t src = 0; src < G3_TILE_ROWS; src++) {
        float *panel = tile + (size_t)(src / PR) * PR * K + src % PR;
        if (src >= n_rows) {
            for (uint32_t k = 0; k < K; k++) panel[(size_t)k * PR] = 0.0f;
            continue;
        }
        for (uint32_t u = 0; u < K / U; u++) {
            const uint8_t *p = rows + src * row_bytes + (size_t)u * ub;
            switch (type) { /* a constant type in each call: the decoder inlines */
            case G3_TYPE_Q8_0: fq_dequant(G3_TYPE_Q8_0, p, buf); break;
            case G3_TYPE_Q4_0: fq_dequant(G3_TYPE_Q4_0, p, buf); break;
            case G3_TYPE_Q5_0: fq_dequant(G3_TYPE_Q5_0, p, buf); break;
            case G3_TYPE_Q4_1: fq_dequant(G3_TYPE_Q4_1, p, buf); break;
            case G3_TYPE_Q5_1: fq_dequant(G3_TYPE_Q5_1, p, buf); break;
            case G3_TYPE_IQ4_NL: fq_dequant(G3_TYPE_IQ4_NL, p, buf); break;
            case G3_TYPE_Q4_K: fq_dequant(G3_TYPE_Q4_K, p, buf); break;
            case G3_TYPE_Q5_K: fq_dequant(G3_TYPE_Q5_K, p, buf); break;
            default: fq_dequant(G3_TYPE_Q6_K, p, buf); break;
            }
            float *o = panel + (size_t)u * U * PR;
            for (uint32_t j = 0; j < U; j++) o[(size_t)j * PR] = buf[j];
        }
    }
}

/* The table's decode entries of a quantized type T. */
#define FQ_KERNELS(name, T)                                                                              \
    static void fdot_rows_##name(const uint8_t *const *rows, uint32_t n, uint32_t K, const float *x,     \
                                 float *out) {                                                           \
        fq_dot_rows(T, rows, n, K, x, out);                                                              \
    }                                                                                                    \
    static void fgemv_##name(const uint8_t *w, size_t rb, uint32_t n, uint32_t K, const float *x,        \
                             float *out) {                                                               \
        for (uint32_t r = 0; r < n; r += G3_DOT_ROWS) {                                                  \
            const uint8_t *rows[G3_DOT_ROWS];                                                            \
            const uint32_t m = n - r < G3_DOT_ROWS ? n - r : G3_DOT_ROWS;                                \
            for (uint32_t i = 0; i < m; i++) rows[i] = w + (r + i) * rb;                                 \
            fq_dot_rows(T, rows, m, K, x, out + r);                                                      \
        }                                                                                                \
    }
FQ_KERNELS(q8_0, G3_TYPE_Q8_0)
FQ_KERNELS(q4_0, G3_TYPE_Q4_0)
FQ_KERNELS(q5_0, G3_TYPE_Q5_0)
FQ_KERNELS(q4_1, G3_TYPE_Q4_1)
FQ_KERNELS(q5_1, G3_TYPE_Q5_1)
FQ_KERNELS(iq4_nl, G3_TYPE_IQ4_NL)
FQ_KERNELS(q4_k, G3_TYPE_Q4_K)
FQ_KERNELS(q5_k, G3_TYPE_Q5_K)
FQ_KERNELS(q6_k, G3_TYPE_Q6_K)

/* ------------------------------------------------------------------ */
/* the table                                                           */

/* Every slot but .path. Both paths fill the same slots with functions of
 * the same names, so the list is kept once: a slot added here is one both
 * files must define. PR is the including file's panel height. */
#define SIMD_KERNEL_SLOTS                                                                                          \
    .quantized_acts = true, .panel_rows = PR, .quantize_blocks = quantize_blocks,                                  \
    .qgemv = {[G3_TYPE_Q8_0] = qgemv_q8_0, [G3_TYPE_Q4_0] = qgemv_q4_0, [G3_TYPE_Q5_0] = qgemv_q5_0,             \
              [G3_TYPE_Q4_1] = qgemv_q4_1, [G3_TYPE_Q5_1] = qgemv_q5_1, [G3_TYPE_IQ4_NL] = qgemv_iq4_nl,         \
              [G3_TYPE_Q4_K] = qgemv_q4_k, [G3_TYPE_Q5_K] = qgemv_q5_k, [G3_TYPE_Q6_K] = qgemv_q6_k},            \
    .qdot_rows = {[G3_TYPE_Q8_0] = qdot_rows_q8_0, [G3_TYPE_Q4_0] = qdot_rows_q4_0,                              \
                  [G3_TYPE_Q5_0] = qdot_rows_q5_0, [G3_TYPE_Q4_1] = qdot_rows_q4_1,                              \
                  [G3_TYPE_Q5_1] = qdot_rows_q5_1, [G3_TYPE_IQ4_NL] = qdot_rows_iq4_nl,                          \
                  [G3_TYPE_Q4_K] = qdot_rows_q4_k,                                                               \
                  [G3_TYPE_Q5_K] = qdot_rows_q5_k, [G3_TYPE_Q6_K] = qdot_rows_q6_k},                             \
    .qtile_bytes = qtile_bytes, .qtile_tmp_bytes = qtile_tmp_bytes, .qpack_tile = qpack_tile,                      \
    .qgemm_tile = qgemm_tile, .qgemm_tile8 = qgemm_tile8,                                                          \
    .qdot_rows8 = {[G3_TYPE_Q8_0] = qdot_rows8_q8_0, [G3_TYPE_Q4_0] = qdot_rows8_q4_0,                           \
                   [G3_TYPE_Q5_0] = qdot_rows8_q5_0, [G3_TYPE_Q4_1] = qdot_rows8_q4_1,                           \
                   [G3_TYPE_Q5_1] = qdot_rows8_q5_1, [G3_TYPE_IQ4_NL] = qdot_rows8_iq4_nl,                       \
                   [G3_TYPE_Q4_K] = qdot_rows8_q4_k, [G3_TYPE_Q5_K] = qdot_rows8_q5_k,                           \
                   [G3_TYPE_Q6_K] = qdot_rows8_q6_k},                                                            \
    .fgemv = {[G3_TYPE_F32] = fgemv_f32, [G3_TYPE_F16] = fgemv_f16, [G3_TYPE_BF16] = fgemv_bf16,                 \
              [G3_TYPE_Q8_0] = fgemv_q8_0, [G3_TYPE_Q4_0] = fgemv_q4_0, [G3_TYPE_Q5_0] = fgemv_q5_0,             \
              [G3_TYPE_Q4_1] = fgemv_q4_1, [G3_TYPE_Q5_1] = fgemv_q5_1, [G3_TYPE_IQ4_NL] = fgemv_iq4_nl,         \
              [G3_TYPE_Q4_K] = fgemv_q4_k, [G3_TYPE_Q5_K] = fgemv_q5_k, [G3_TYPE_Q6_K] = fgemv_q6_k},            \
    .fdot_rows = {[G3_TYPE_F32] = fdot_rows_f32, [G3_TYPE_F16] = fdot_rows_f16, [G3_TYPE_BF16] = fdot_rows_bf16,  \
                  [G3_TYPE_Q8_0] = fdot_rows_q8_0, [G3_TYPE_Q4_0] = fdot_rows_q4_0,                              \
                  [G3_TYPE_Q5_0] = fdot_rows_q5_0, [G3_TYPE_Q4_1] = fdot_rows_q4_1,                              \
                  [G3_TYPE_Q5_1] = fdot_rows_q5_1, [G3_TYPE_IQ4_NL] = fdot_rows_iq4_nl,                          \
                  [G3_TYPE_Q4_K] = fdot_rows_q4_k, [G3_TYPE_Q5_K] = fdot_rows_q5_k,                              \
                  [G3_TYPE_Q6_K] = fdot_rows_q6_k},                                                              \
    .ftile_bytes = ftile_bytes, .fpack_tile = fpack_tile, .fgemm_tile = fgemm_tile, .rmsnorm = rmsnorm,            \
    .gelu_mul = gelu_mul, .softmax = softmax, .dot = dot, .axpy = axpy, .add = add,                                \
    .attn_scores = {[G3_TYPE_F32] = attn_scores_f32, [G3_TYPE_F16] = attn_scores_f16,                            \
                    [G3_TYPE_BF16] = attn_scores_bf16, [G3_TYPE_Q8_0] = attn_scores_q8_0},                       \
    .attn_values = {[G3_TYPE_F32] = attn_values_f32, [G3_TYPE_F16] = attn_values_f16,                            \
                    [G3_TYPE_BF16] = attn_values_bf16, [G3_TYPE_Q8_0] = attn_values_q8_0}

#endif
