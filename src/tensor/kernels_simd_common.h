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
    .qgemm_tile = qgemm_tile,                                                                                      \
    .fgemv = {[G3_TYPE_F32] = fgemv_f32, [G3_TYPE_F16] = fgemv_f16, [G3_TYPE_BF16] = fgemv_bf16},                \
    .fdot_rows = {[G3_TYPE_F32] = fdot_rows_f32, [G3_TYPE_F16] = fdot_rows_f16, [G3_TYPE_BF16] = fdot_rows_bf16}, \
    .ftile_bytes = ftile_bytes, .fpack_tile = fpack_tile, .fgemm_tile = fgemm_tile, .rmsnorm = rmsnorm,            \
    .gelu_mul = gelu_mul, .softmax = softmax, .dot = dot, .axpy = axpy, .add = add,                                \
    .attn_scores = {[G3_TYPE_F32] = attn_scores_f32, [G3_TYPE_F16] = attn_scores_f16,                            \
                    [G3_TYPE_BF16] = attn_scores_bf16, [G3_TYPE_Q8_0] = attn_scores_q8_0},                       \
    .attn_values = {[G3_TYPE_F32] = attn_values_f32, [G3_TYPE_F16] = attn_values_f16,                            \
                    [G3_TYPE_BF16] = attn_values_bf16, [G3_TYPE_Q8_0] = attn_values_q8_0}

#endif
