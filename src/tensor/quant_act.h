/* quant_act.h: 8-bit activations for quantized weights, and the scalar
 * reference of the integer dot products and of the GEMM weight panels.
 *
 * Why: a quantized weight row times an f32 vector would expand every weight
 * to f32 (slow). Instead the activation row is quantized once per product
 * input, and each weight block is multiplied with integer dot products
 * (VNNI vpdpbusd, or AVX2 vpmaddubsw), scaled once per block.
 *
 * Precision: llama.cpp rounds activations to 8 bits (Q8_0/Q8_K). On the
 * tiny golden models that alone moves logits by ~0.1 and flips an argmax
 * now and then. Here each value is rounded to a 15-bit integer
 *   Q = round(128 * x / d),  d = max|x| / 127 over the block of 32,
 * and Q is stored as two signed bytes, Q = 128 * q1 + q2 (q1 in [-127, 127],
 * q2 in [-64, 64]). A weight block then costs two byte dot products (same
 * unpacked weights) and one shift: 2^7 times the precision of 8-bit
 * activations for about 1.4x the arithmetic, which the decode path hides
 * under memory bandwidth. The logits stay within ~1e-3 of the exact
 * reference (golden rule (a)).
 *
 * Activation format (g3_qa), per row of K values (K a multiple of 32):
 *   q1[K], q2[K]   int8   the two bytes of Q (rounding: nearest, ties even)
 *   q1u[K], q2u[K] uint8  q1 + 128, q2 + 128: the unsigned vpdpbusd operand
 *   d[K/32]   f32   the scale of Q: max|x| / 127 / 128 (0 for a zero block)
 *   dsum[K/32] f32  d * sum(Q) over the block (mins and code offsets use it)
 *   s16[K/16] int32 sum(Q) per 16 (Q6_K's 16-element sub-blocks)
 *   dsum8[K/32] f32, s8_16[K/16] int32: dsum and s16 of q1 alone, with
 *             q1's scale 128 d (the 8-bit kernels below)
 *
 * Reference dot products (one weight row w of K elements with one row a):
 *   Q8_0, Q4_0, Q5_0 (32-blocks, code offset o = 0, 8, 16):
 *     sum_b (dw_b * da_b) * sum_j (q_j - o) Q_j
 *   IQ4_NL (32-blocks, table values kv):  sum_b (dw_b * da_b) * sum_j kv[q_j] Q_j
 *   Q4_1, Q5_1 (32-blocks, x = q d + m):  sum_b (d_b * da_b) * sum_j q_j Q_j  +  m_b * dsum_b
 *     (the block minimum times the activation block sum: why dsum exists
 *     for these as for the K-quants' mins, and ggml's q8_1 carries one)
 *   Q4_K, Q5_K (super-block d, dmin; 32-element sub-blocks with sc, m):
 *     sum_s (d*sc_s*da_s) * sum_j q_j Q_j  -  (dmin*m_s) * dsum_s
 *   Q6_K (16-element sub-blocks, int8 sc): sum_s (d*sc_s*da_{s/2}) * sum_j (q_j - 32) Q_j
 * The integer sums are exact; only the order of the f32 additions differs
 * between the reference and the SIMD kernels.
 *
 * 8-bit activations (g3_kernels.qdot_rows8 and qgemm_tile8,
 * g3_qa_dot8_ref): q1 alone is the
 * activation rounded to 8 bits with the scale 128 d (llama.cpp's Q8_0
 * activations, up to its ties-to-even rounding), so the same formulas with
 * q1 for Q, 128 d for d, dsum8 for dsum and s8_16 for s16 give a product
 * that costs one byte dot product per weight block instead of two. Its
 * error (about 1/128 of the 15-bit one per value) is measured on the real
 * 270M in bench/RESULTS.md; the exact and 15-bit paths stay the reference.
 * With panels (below) the 8-bit product starts from -128 sum w, which is
 * corr + sum w (sum w = -corr / 129), and skips the q2u products.
 *
 * GEMM panels: for batched products a panel of R weight rows (R = 16 for
 * AVX-512, 8 for AVX2) is unpacked once into signed 8-bit values, interleaved
 * so that one vector holds 4 consecutive values of each of the R rows, and
 * then multiplied with many activation rows. Per sub-block of S values
 * (S = 32, or 16 for Q6_K):
 *   int8  w[S/4][R][4]  values (q - o; kv[q] for IQ4_NL), so w * a sums need
 *                       no offset term
 *   f32   scale[R]      the sub-block's weight scale (dw, or d*sc)
 *   int32 corr[R]       -129 * sum(w) over the sub-block
 *   f32   minv[R]       -dmin*m (Q4_K/Q5_K), m (Q4_1/Q5_1); none for the rest
 * With unsigned activations, 128 * sum (q1+128) w + sum (q2+128) w =
 * sum Q w + 128*129 * sum w; so a kernel starts from corr, adds the q1u
 * products, multiplies by 128 and adds the q2u products: sum Q w exactly.
 */
#ifndef G3_TENSOR_QUANT_ACT_H
#define G3_TENSOR_QUANT_ACT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define G3_QA_BLOCK 32

typedef struct g3_qa_row {
    const int8_t *q1, *q2;
    const uint8_t *q1u, *q2u;
    const float *d;
    const float *dsum;
    const int32_t *s16;
    const float *dsum8;
    const int32_t *s8_16;
} g3_qa_row;

/* Rows of quantized activations; arrays sized for cap_rows x cap_K. */
typedef struct g3_qa {
    uint32_t K;        /* current row length (multiple of 32) */
    uint32_t n_rows;   /* rows filled */
    uint32_t cap_rows, cap_K;
    int8_t *q1, *q2;
    uint8_t *q1u, *q2u;
    float *d, *dsum;
    int32_t *s16;
    float *dsum8;
    int32_t *s8_16;
} g3_qa;

/* Bytes g3_qa_alloc takes for these capacities (for the memory planner). */
uint64_t g3_qa_bytes(uint32_t cap_rows, uint32_t cap_K);
/* 0, or -1 when out of memory. */
int g3_qa_alloc(g3_qa *qa, uint32_t cap_rows, uint32_t cap_K);
void g3_qa_free(g3_qa *qa);

static inline g3_qa_row g3_qa_get_row(const g3_qa *qa, uint32_t t) {
    const size_t K = qa->K;
    g3_qa_row r = {qa->q1 + t * K,         qa->q2 + t * K,           qa->q1u + t * K, qa->q2u + t * K,
                   qa->d + t * (K / 32), qa->dsum + t * (K / 32), qa->s16 + t * (K / 16),
                   qa->dsum8 + t * (K / 32), qa->s8_16 + t * (K / 16)};
    return r;
}

/* Writable pointers of row t (for the quantizers). */
typedef struct g3_qa_row_out {
    int8_t *q1, *q2;
    uint8_t *q1u, *q2u;
    float *d, *dsum;
    int32_t *s16;
    float *dsum8;
    int32_t *s8_16;
} g3_qa_row_out;

static inline g3_qa_row_out g3_qa_row_out_get(g3_qa *qa, uint32_t t) {
    const size_t K = qa->K;
    g3_qa_row_out r = {qa->q1 + t * K,         qa->q2 + t * K,           qa->q1u + t * K, qa->q2u + t * K,
                       qa->d + t * (K / 32), qa->dsum + t * (K / 32), qa->s16 + t * (K / 16),
                       qa->dsum8 + t * (K / 32), qa->s8_16 + t * (K / 16)};
    return r;
}

/* Reference quantizer of the blocks [b0, b1) of one row (x points at the row). */
void g3_qa_quantize_blocks_ref(const float *x, uint32_t b0, uint32_t b1, const g3_qa_row_out *out);

/* True for the weight types multiplied through 8-bit activations. */
bool g3_qa_type_supported(uint32_t type);

/* Reference dot product of a weight row (K elements) with an activation row. */
float g3_qa_dot_ref(uint32_t type, const void *w, const g3_qa_row *a, uint32_t K);
/* The same with q1 alone (8-bit activations, scale 128 d). */
float g3_qa_dot8_ref(uint32_t type, const void *w, const g3_qa_row *a, uint32_t K);

/* ---- GEMM panels ---- */

typedef struct g3_panel_layout {
    uint32_t S;        /* values per sub-block: 32, or 16 (Q6_K) */
    bool has_min;      /* Q4_K, Q5_K, Q4_1, Q5_1 */
} g3_panel_layout;

/* The sub-block layout of a type's panels. */
g3_panel_layout g3_panel_layout_of(uint32_t type);

/* Bytes of one sub-block of a panel of R rows. */
static inline size_t g3_panel_sub_bytes(g3_panel_layout l, uint32_t R) {
    return (size_t)l.S * R + (size_t)R * (l.has_min ? 12 : 8);
}

/* Decodes a weight row into signed values (q - o), one scale per sub-block
 * and (has_min) one min per sub-block: the panel's contents for that row. */
void g3_unpack_row_s8(uint32_t type, const void *w, uint32_t K, int8_t *vals, float *scale, float *minv);

/* Reference panel packer: rows [0, n_rows) of `rows` (row_bytes apart) into
 * a panel of R rows (rows n_rows..R-1 are zero); tmp holds
 * g3_pack_tmp_bytes(K) bytes, 64-byte aligned. */
size_t g3_pack_tmp_bytes(uint32_t K);
void g3_pack_panel_ref(uint32_t type, const uint8_t *rows, size_t row_bytes, uint32_t n_rows, uint32_t K,
                       uint32_t R, uint8_t *panel, void *tmp);

#endif
