/* g3_cuda.h: the CUDA backend behind a small C interface.
 *
 * The kernels are CUDA C (the .cu files of src/cuda, compiled by nvcc when the build
 * has G3_CUDA on); everything else in the project stays C11 and talks to
 * them only through this header. Without the backend in the build,
 * g3_cuda_stub.c implements it: no device, every call fails with a message.
 *
 * What runs on the GPU (one device, the first; see g3_cuda_device_count):
 * the whole text model of a forward pass after the embedding lookup. The
 * weights are uploaded once in their GGUF types (Q4_0 and Q8_0 split into
 * 16-byte-aligned quants and a separate array of f16 scales; Q4_K, Q6_K,
 * F16, BF16 and F32 as stored; any other type converted to F32 on upload)
 * and multiplied without dequantizing a whole matrix:
 * - up to 8 rows (decode, batched decode): a matrix-vector kernel, one warp
 *   per 2 weight rows, each lane dequantizing 32-value chunks in registers
 *   and applying them to every row of the batch: every weight byte is read
 *   once from device memory per step;
 * - more rows (prefill): a tiled GEMM that dequantizes a 64 x 32 weight
 *   tile into shared memory; its products run on the tensor cores in TF32
 *   (f32 accumulation), or, with exact activations (eval's default), as
 *   f32 FMAs on the CUDA cores. No cuBLAS.
 * RMSNorm (sum of squares in double, as the CPU reference), QK-norm, RoPE
 * (NEOX, angles in double, local and global bases, linear scaling on global
 * layers), GeGLU (tanh GELU), the KV cache (f32, f16, bf16 or q8_0 rows in
 * device memory, the planner's ring sizes: global layers n_ctx slots, local layers
 * window + slack), attention over it (causal, sliding window on local
 * layers, bidirectional image blocks; split over the keys and merged, as
 * flash-decoding does), and the logits (final norm, output matrix, soft-cap
 * if any). The host does the embedding lookup (one row per token, copied
 * up), the sampler (on the logits copied down) and the SigLIP encoder. */
#ifndef G3_CUDA_G3_CUDA_H
#define G3_CUDA_G3_CUDA_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "gemma3.h"
#include "tensor/matrix.h"

#ifdef __cplusplus
extern "C" {
#endif

/* Whether this binary was built with the backend. */
bool g3_cuda_built(void);

/* Usable devices: 0 when the build lacks the backend, no driver is
 * installed, or the driver sees no GPU; why (may be NULL) then says which. */
int g3_cuda_device_count(char *why, size_t why_cap);

typedef struct g3_cuda_device_info {
    char name[96];
    int cc_major, cc_minor;
    uint32_t n_sm;
    uint64_t total_bytes, free_bytes; /* device memory now */
} g3_cuda_device_info;
int g3_cuda_device_info_get(g3_cuda_device_info *out, g3_error *err);

/* ---- the model's weights in device memory ---- */

typedef struct g3_cuda_layer_src {
    const float *attn_norm, *q_norm, *k_norm, *post_attn_norm, *ffn_norm, *post_ffn_norm;
    g3_matrix wq, wk, wv, wo, w_gate, w_up, w_down;
} g3_cuda_layer_src;

typedef struct g3_cuda_model g3_cuda_model;

/* Device bytes one matrix takes (what g3_cuda_model_new allocates for it). */
uint64_t g3_cuda_matrix_bytes(const g3_matrix *m);
/* Device bytes of the whole model: every matrix and norm (an untied output
 * matrix included; the embedding table stays on the host unless tied). */
uint64_t g3_cuda_model_bytes_for(const g3_config *cfg, const g3_cuda_layer_src *layers, const g3_matrix *output);

/* Uploads the weights (host pointers, usually into the file's map). */
int g3_cuda_model_new(const g3_config *cfg, const g3_cuda_layer_src *layers, const float *output_norm,
                      const g3_matrix *output, g3_cuda_model **out, g3_error *err);
void g3_cuda_model_free(g3_cuda_model *m);
uint64_t g3_cuda_model_bytes(const g3_cuda_model *m);

/* ---- contexts: KV caches of n_seq sequences and the activations ---- */

typedef struct g3_cuda_ctx_params {
    uint32_t n_ctx, n_ubatch, n_seq;
    g3_kv_type kv_type;      /* f32, f16, bf16 or q8_0 */
    const uint32_t *n_slots; /* per layer: ring slots (model/memory_plan.h) */
    bool exact;              /* prefill products in f32 FMAs instead of TF32 */
} g3_cuda_ctx_params;

typedef struct g3_cuda_ctx g3_cuda_ctx;

/* Device bytes of the KV caches and of the scratch for these parameters. */
void g3_cuda_ctx_bytes(const g3_config *cfg, const g3_cuda_ctx_params *p, uint64_t *kv_bytes,
                       uint64_t *scratch_bytes);
/* Fails (naming the type) for a KV type the backend lacks. */
int g3_cuda_kv_type_check(g3_kv_type t, g3_error *err);
int g3_cuda_ctx_new(const g3_cuda_model *m, const g3_cuda_ctx_params *p, g3_cuda_ctx **out, g3_error *err);
void g3_cuda_ctx_free(g3_cuda_ctx *c);

/* One forward pass of T <= n_ubatch rows: row t is position pos[t] of
 * sequence seq[t]; x holds the T input embeddings (n_embd each, host
 * memory, token rows already scaled by sqrt(n_embd)). With bidirectional,
 * the T rows are one sequence's consecutive positions that see each other.
 * logits (host; NULL for none): the last row's n_vocab values, or every
 * row's with all_logits. */
typedef struct g3_cuda_batch {
    uint32_t T;
    const float *x;
    const uint32_t *seq, *pos;
    bool bidirectional;
    float *logits;
    bool all_logits;
} g3_cuda_batch;
int g3_cuda_forward(g3_cuda_ctx *c, const g3_cuda_batch *b, g3_error *err);

/* Device memory in use now (every process's, the CUDA context included) and
 * the device's total. The backend allocates everything when a model or a
 * context is made and nothing while evaluating, so after a run this is
 * its peak. */
int g3_cuda_memory_used(uint64_t *in_use, uint64_t *total, g3_error *err);

/* ---- single operations on host arrays, for tests (tests/test_cuda_ops.c):
 * each copies its inputs to the device, runs the kernel the forward pass
 * uses, and copies the result back ---- */

/* Needs no GPU: row `row` of w as the GPU kernels dequantize it (the
 * upload's repacking, then the kernels' 32-value loaders compiled for the
 * host). Fails for a type the kernels do not read natively. */
int g3_cuda_test_dequant_row(const g3_matrix *w, uint64_t row, float *out, g3_error *err);
/* y[t*n_out + r] = row r of w . x[t*n_in ..], t < T. mode: 0 as the forward
 * pass chooses (matvec up to 8 rows, else TF32 GEMM), 1 matvec (T <= 8),
 * 2 GEMM in f32 FMAs, 3 GEMM in TF32. */
int g3_cuda_test_matmul(const g3_matrix *w, const float *x, uint32_t T, int mode, float *y, g3_error *err);
/* out[t] = rmsnorm(x[t]) * w, rows of n. */
int g3_cuda_test_rmsnorm(const float *x, const float *w, uint32_t T, uint32_t n, float eps, float *out,
                         g3_error *err);
/* out = gelu_tanh(g) * u */
int g3_cuda_test_geglu(const float *g, const float *u, uint32_t n, float *out, g3_error *err);
/* v (n_heads x D): QK-norm with w (D values), NEOX RoPE at pos with
 * base^(-2i/D) * freq_scale, then * scale; as the forward pass does. */
int g3_cuda_test_norm_rope(float *v, uint32_t n_heads, uint32_t D, const float *w, float eps, uint32_t pos,
                           double base, double freq_scale, float scale, g3_error *err);
/* Attention of T query rows (H heads of D, pre-scaled) over one cache of
 * `slots` rows (HKV heads of D per row; row p % slots holds position p;
 * given in f32, stored as kv_type): row t sees positions lo..hi where
 * hi = bidirectional ? pos[T-1] : pos[t], lo = pos[t] + 1 - window when
 * window && pos[t] + 1 > window, else 0. out: T x H*D. */
int g3_cuda_test_attention(const float *q, uint32_t T, uint32_t H, uint32_t HKV, uint32_t D, const float *keys,
                           const float *vals, uint32_t slots, g3_kv_type kv_type, const uint32_t *pos,
                           uint32_t window, bool bidirectional, float softcap, float *out, g3_error *err);

#ifdef __cplusplus
}
#endif

#endif
