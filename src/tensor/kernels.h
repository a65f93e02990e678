/* kernels.h: the table of compute kernels of one CPU path.
 *
 * Each path (scalar, avx2, avx512; see base/cpu_features.h) fills one
 * g3_kernels table; the engine picks a table once, at context creation, and
 * calls kernels through it. The scalar table is the reference: it keeps
 * activations in f32 and multiplies every weight type exactly (type_ops.h),
 * and its quantized-activation kernels (quant_act.h) are the reference the
 * SIMD ones are tested against (tests/test_kernels.c).
 *
 * Matrix shapes follow g3_matrix: a weight row holds n_in = K values; out[r]
 * is the dot product of row r with the input. "tile" kernels work on 32
 * weight rows (G3_TILE_ROWS) packed once into panels (quant_act.h) and then
 * multiplied with many activation rows: the batched (prefill) path. */
#ifndef G3_TENSOR_KERNELS_H
#define G3_TENSOR_KERNELS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "base/cpu_features.h"
#include "tensor/quant_act.h"
#include "tensor/type_info.h"

#define G3_TILE_ROWS 32
#define G3_DOT_ROWS 4 /* rows the decode kernels walk at once (one memory stream each) */

/* out[0..n_rows) = rows of W (row_bytes apart, K values each) . a */
typedef void (*g3_qgemv_fn)(const uint8_t *w, size_t row_bytes, uint32_t n_rows, uint32_t K,
                            const g3_qa_row *a, float *out);
typedef void (*g3_fgemv_fn)(const uint8_t *w, size_t row_bytes, uint32_t n_rows, uint32_t K, const float *x,
                            float *out);
/* out[i] = rows[i] . a for n <= G3_DOT_ROWS rows anywhere in memory: the
 * decode path walks far-apart rows together, each its own memory stream
 * (a core keeps more bytes in flight over several streams than over one). */
typedef void (*g3_qdot_rows_fn)(const uint8_t *const *rows, uint32_t n, uint32_t K, const g3_qa_row *a, float *out);
typedef void (*g3_fdot_rows_fn)(const uint8_t *const *rows, uint32_t n, uint32_t K, const float *x, float *out);

/* Attention of nq queries (heads of one GQA group, rows D apart at q; out
 * likewise) against one KV head; see g3_kernels.attn_scores. */
typedef void (*g3_attn_scores_fn)(const float *q, uint32_t nq, const uint8_t *keys, size_t row_bytes, uint32_t slots,
                                  uint32_t lo, uint32_t n, uint32_t D, float *s, size_t ld_s);
typedef void (*g3_attn_values_fn)(const float *s, size_t ld_s, uint32_t nq, const uint8_t *vals, size_t row_bytes,
                                  uint32_t slots, uint32_t lo, uint32_t n, uint32_t D, float *out);

/* attn_scores_NAME / attn_values_NAME for one cache type T, calling
 * SCORES(T, ...) and VALUES(T, ...) with the table's arguments: each
 * kernel file instantiates its typed implementations with it. */
#define G3_ATTN_ENTRY_POINTS(name, T, SCORES, VALUES)                                                          \
    static void attn_scores_##name(const float *q, uint32_t nq, const uint8_t *keys, size_t rb, uint32_t slots, \
                                   uint32_t lo, uint32_t n, uint32_t D, float *s, size_t ld_s) {               \
        SCORES(T, q, nq, keys, rb, slots, lo, n, D, s, ld_s);                                                  \
    }                                                                                                          \
    static void attn_values_##name(const float *s, size_t ld_s, uint32_t nq, const uint8_t *vals, size_t rb,    \
                                   uint32_t slots, uint32_t lo, uint32_t n, uint32_t D, float *out) {          \
        VALUES(T, s, ld_s, nq, vals, rb, slots, lo, n, D, out);                                                \
    }

typedef struct g3_kernels {
    g3_cpu_path path;
    bool quantized_acts;  /* quantized weights use 8-bit activations */
    uint32_t panel_rows;  /* R of the int8 panels (0: no tile kernels) */

    /* ---- quantized weights, 8-bit activations ---- */
    /* Quantizes blocks [b0, b1) of one row (bit-identical to the reference). */
    void (*quantize_blocks)(const float *x, uint32_t b0, uint32_t b1, const g3_qa_row_out *out);
    g3_qgemv_fn qgemv[G3_TYPE_COUNT];
    g3_qdot_rows_fn qdot_rows[G3_TYPE_COUNT];
    /* The same with 8-bit activations (q1 alone; quant_act.h): the fast
     * decode path (g3_mm.int8_acts). NULL: none on this path, the 15-bit
     * kernels are used. */
    g3_qdot_rows_fn qdot_rows8[G3_TYPE_COUNT];
    /* Bytes of a packed tile of G3_TILE_ROWS rows, and of the packer's scratch. */
    size_t (*qtile_bytes)(uint32_t type, uint32_t K);
    size_t (*qtile_tmp_bytes)(uint32_t K);
    void (*qpack_tile)(uint32_t type, const uint8_t *rows, size_t row_bytes, uint32_t n_rows, uint32_t K,
                       uint8_t *tile, void *tmp);
    /* out[t*ldo + r] for t in [t0, t1), r < n_rows: tile rows . act rows */
    void (*qgemm_tile)(uint32_t type, const uint8_t *tile, uint32_t K, const g3_qa *act, uint32_t t0,
                       uint32_t t1, float *out, size_t ldo, uint32_t n_rows);
    /* The same with 8-bit activations (q1 alone, as qdot_rows8; the batched
     * half of g3_mm.int8_acts). NULL: none on this path, qgemm_tile is used. */
    void (*qgemm_tile8)(uint32_t type, const uint8_t *tile, uint32_t K, const g3_qa *act, uint32_t t0,
                        uint32_t t1, float *out, size_t ldo, uint32_t n_rows);
    /* Q4_0, Q5_0, Q8_0, Q4_K and Q6_K in the x16 layout (repack.h); NULL on paths without
     * them (the matrices then keep the file's layout only).
     * qdot_x16: out[0..16) = the 16 rows of one group . a (a8: 8-bit
     * activations, as qdot_rows8). qpack_tile_x16: the tile qpack_tile
     * makes of the same rows, from n_rows (16 or 32) rows of consecutive
     * groups. */
    void (*qdot_x16)(uint32_t type, const uint8_t *group, uint32_t K, const g3_qa_row *a, bool a8, float *out);
    void (*qpack_tile_x16)(uint32_t type, const uint8_t *groups, uint32_t n_rows, uint32_t K, uint8_t *tile);

    /* ---- f32 activations: float weights; quantized weights on the scalar
     * path and in exact-activation mode (g3_mm.f32_acts), dequantized
     * exactly (kernels_simd_common.h on the SIMD paths) ---- */
    g3_fgemv_fn fgemv[G3_TYPE_COUNT];
    g3_fdot_rows_fn fdot_rows[G3_TYPE_COUNT];
    size_t (*ftile_bytes)(uint32_t K);
    void (*fpack_tile)(uint32_t type, const uint8_t *rows, size_t row_bytes, uint32_t n_rows, uint32_t K,
                       float *tile);
    void (*fgemm_tile)(const float *tile, uint32_t K, const float *x, size_t ldx, uint32_t t0, uint32_t t1,
                       float *out, size_t ldo, uint32_t n_rows);

    /* ---- vector ops ---- */
    /* out = x / sqrt(mean(x^2) + eps) * w (out may alias x) */
    void (*rmsnorm)(float *out, const float *x, const float *w, uint32_t n, float eps);
    /* g = gelu_tanh(g) * u */
    void (*gelu_mul)(float *g, const float *u, uint32_t n);
    void (*softmax)(float *x, uint32_t n);
    float (*dot)(const float *a, const float *b, uint32_t n);
    /* y += a * x */
    void (*axpy)(float *y, float a, const float *x, uint32_t n);
    /* y += x */
    void (*add)(float *y, const float *x, uint32_t n);
    /* Attention over the KV cache of one KV head, per cache element type
     * (G3_TYPE_F32, F16, BF16, Q8_0; a NULL entry means: use the scalar
     * table's). The cache is a ring of `slots` rows, row_bytes apart; row
     * p % slots holds position p; keys / vals point at the head's first
     * element in row 0 (a block boundary: D is a multiple of 32 for Q8_0).
     * For each query i < nq (q + i*D):
     *   s[i*ld_s + j] = q_i . K[lo + j]                 for j < n
     *   out[i*D ..]   = sum_j s[i*ld_s + j] V[lo + j]
     * with K and V dequantized exactly and q, s, out in f32. The nq queries
     * share one GQA group's keys and values: each row is read from memory
     * once for all of them. */
    g3_attn_scores_fn attn_scores[G3_TYPE_COUNT];
    g3_attn_values_fn attn_values[G3_TYPE_COUNT];
} g3_kernels;

/* The table of a path; NULL when this build has no such path. */
const g3_kernels *g3_kernels_get(g3_cpu_path path);

/* The tables themselves (kernels_*.c). */
extern const g3_kernels g3_kernels_scalar;
#if defined(__x86_64__)
extern const g3_kernels g3_kernels_avx2;
extern const g3_kernels g3_kernels_avx512;
#endif

#endif
