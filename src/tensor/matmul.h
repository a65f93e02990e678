/* matmul.h: matrix products on the thread pool, for the text model and the
 * vision encoder alike.
 *
 * out[t][r] = W[r] . in[t] for T input rows of K values and the n_out rows
 * of W (any supported weight type, memory-mapped, or their x16 copy below).
 * - Quantized weights on a SIMD path take the input as 8-bit activations
 *   (g3_qa, quant_act.h), filled by g3_mm_norm_input/g3_mm_quantize_input;
 *   float weights (and every type on the scalar path, and every type in
 *   f32_acts mode: exact activations) take the f32 rows.
 * - T < G3_MM_GEMM_MIN_T (decode): each weight row is streamed once per
 *   input row by the matrix-vector kernels; each thread walks its share of
 *   a matrix as long streams and steals the rest of a slower thread's.
 * - Larger T (prefill, images): 32 weight rows at a time are unpacked once
 *   into a panel (per-thread buffer, cache-resident) and multiplied with all
 *   T input rows by the tile kernels: the weights are read once per batch.
 * - Q4_0/Q5_0/Q8_0/Q4_K/Q6_K matrices with an x16 copy (g3_matrix.x16,
 *   repack.h) are read from it by the paths that have x16 kernels: decode
 *   16 rows at a time, prefill panels packed straight from the groups.
 * Several matrices that share an input (q/k/v; gate/up) run as one task, and
 * the feed-forward's gelu(gate) * up and its quantization for the down
 * projection happen in the same pass (g3_mm_geglu). Nothing is allocated
 * per call: the per-thread buffers are sized at g3_mm_init. */
#ifndef G3_TENSOR_MATMUL_H
#define G3_TENSOR_MATMUL_H

#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "base/error.h"
#include "base/thread_pool.h"
#include "tensor/kernels.h"
#include "tensor/matrix.h"
#include "tensor/quant_act.h"

/* Below this many input rows the weights stream through the decode kernels
 * (each row read once, reused from cache by the other inputs); from it on
 * they are packed into tiles. Batched decoding of 4 sequences on the 270M
 * (bench/serve_load.sh, --parallel 4): 77 tok/s aggregate with tiles from 4
 * rows, 129 with tiles from 8: packing a 32-row panel costs more than it
 * saves for a handful of rows. */
#define G3_MM_GEMM_MIN_T 8

/* Decode work of one thread for one matrix: chunks [front, back) still to
 * take, packed as front << 32 | back; the owner takes from the front, an
 * idle thread steals from the back. Own cache line. */
typedef struct g3_mm_chunks {
    _Alignas(64) atomic_uint_fast64_t fb;
} g3_mm_chunks;

typedef struct g3_mm {
    g3_thread_pool *pool;
    const g3_kernels *k;
    uint32_t nth, max_T, max_K;
    size_t tile_bytes, tmp_bytes, stage_floats;
    uint8_t *buf;   /* one allocation: per-thread tile, packer scratch, staging */
    size_t per_thread;
    g3_mm_chunks *chunks; /* [4 matrices][nth threads]: decode work lists */
    bool f32_acts;  /* every product takes f32 input (exact activations); set after g3_mm_init */
    /* products of quantized weights take their input as 8-bit activations
     * (q1 alone: kernels.h qdot_rows8 and qgemm_tile8, where the path has
     * them); ignored with f32_acts; set after g3_mm_init */
    bool int8_acts;
} g3_mm;

/* Per-thread buffers for products of up to max_T rows of at most max_K
 * values. */
int g3_mm_init(g3_mm *mm, g3_thread_pool *pool, const g3_kernels *k, uint32_t max_T, uint32_t max_K,
               g3_error *err);
void g3_mm_free(g3_mm *mm);
/* What g3_mm_init allocates (for the memory planner). */
uint64_t g3_mm_bytes(const g3_kernels *k, uint32_t n_threads, uint32_t max_T, uint32_t max_K);

/* Whether products with w take 8-bit activations on this path (never in
 * f32_acts mode). */
static inline bool g3_mm_wants_q8(const g3_mm *mm, const g3_matrix *w) {
    return !mm->f32_acts && mm->k->quantized_acts && g3_qa_type_supported(w->type);
}

/* The input of a product: T rows of K values, in f32 (x, row stride ldx)
 * and, when a consumer wants it, as 8-bit activations (q). */
typedef struct g3_mm_in {
    uint32_t T, K;
    const float *x;
    size_t ldx;
    const g3_qa *q;
} g3_mm_in;

/* xb[t] = rmsnorm(x[t]) * w (x, xb: T rows, stride ld), and q = its 8-bit
 * form when q != NULL. Rows run in parallel when T > 1. */
void g3_mm_norm_input(g3_mm *mm, const float *x, float *xb, size_t ld, uint32_t T, uint32_t K, const float *w,
                      float eps, g3_qa *q);
/* q = 8-bit form of the T rows of x (stride ldx). */
void g3_mm_quantize_input(g3_mm *mm, const float *x, size_t ldx, uint32_t T, uint32_t K, g3_qa *q);

/* out_i (T x n_out_i, row stride ldo_i) = in . W_i^T for i < n (n <= 4). */
typedef struct g3_mm_out {
    const g3_matrix *w;
    float *out;
    size_t ldo;
} g3_mm_out;
void g3_matmul(g3_mm *mm, const g3_mm_in *in, const g3_mm_out *outs, uint32_t n);

/* h = gelu_tanh(in . Wg^T) * (in . Wu^T)  (T x F, stride ldh), and hq = its
 * 8-bit form when hq != NULL (the down projection's input). F = n_out of Wg
 * (a multiple of 32 when hq is used). */
void g3_mm_geglu(g3_mm *mm, const g3_mm_in *in, const g3_matrix *wg, const g3_matrix *wu, float *h, size_t ldh,
                 g3_qa *hq);

#endif
