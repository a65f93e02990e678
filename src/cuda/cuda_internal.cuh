/* cuda_internal.cuh: what the backend's .cu files share: the device form of
 * a weight matrix, the kernel launchers (cuda_kernels.cu) and error checks.
 * Every launcher is asynchronous on the given stream and returns the launch
 * error (cudaGetLastError); faults inside a kernel surface at the next
 * synchronization, which the caller checks. */
#ifndef G3_CUDA_INTERNAL_CUH
#define G3_CUDA_INTERNAL_CUH

#include <cuda_runtime.h>
#include <stdint.h>

#include "cuda/g3_cuda.h"

/* ggml type ids (tensor/type_info.h) the kernels know */
enum {
    DT_F32 = 0,
    DT_F16 = 1,
    DT_Q4_0 = 2,
    DT_Q8_0 = 8,
    DT_Q4_K = 12,
    DT_Q6_K = 14,
    DT_BF16 = 30,
};

/* A weight matrix in device memory: n_out rows of K values.
 * Q4_0: data = n_out rows of K/2 bytes of nibbles (the blocks' qs, in
 *       order), scales = n_out x K/32 f16 (the blocks' d);
 * Q8_0: data = n_out rows of K int8, scales = n_out x K/32 f16;
 * other types: data = the rows as stored (row_bytes apart), scales NULL. */
typedef struct dev_matrix {
    const uint8_t *data;
    const uint16_t *scales;
    uint32_t type;
    uint32_t K, n_out;
    uint64_t row_bytes; /* of data */
} dev_matrix;

/* Whether the kernels multiply this type directly (else: F32 on upload). */
bool g3_cuda_type_native(uint32_t type);
/* Device bytes of data + scales for a native type. */
uint64_t g3_cuda_dev_matrix_bytes(uint32_t type, uint64_t K, uint64_t n_out, uint64_t row_bytes);
/* Repacks rows [r0, r1) of a host matrix of a native type into the device
 * layout, at host staging buffers data (rows of the device row size) and
 * scales (rows of K/32). */
void g3_cuda_pack_rows(const g3_matrix *m, uint64_t r0, uint64_t r1, uint8_t *data, uint16_t *scales);

/* Row `row` of a host matrix of a native type dequantized on the host by the
 * kernels' own loaders (after the upload's repacking); -1 for another type. */
int g3_cuda_dequant_host(const g3_matrix *m, uint64_t row, float *out);

/* GEMM kinds */
enum { MM_AUTO = 0, MM_MATVEC = 1, MM_GEMM_F32 = 2, MM_GEMM_TF32 = 3 };
#define MV_MAX_ROWS 8

/* y[t*ldy + r] = row r of w . x[t*ldx ..] for t < T, r < n_out */
cudaError_t launch_matmul(const dev_matrix *w, const float *x, uint32_t ldx, uint32_t T, float *y, uint32_t ldy,
                          int kind, cudaStream_t s);
/* out[t] = rmsnorm(in[t]) * w for T rows of n (ld apart); out may be in */
cudaError_t launch_rmsnorm(float *out, const float *in, const float *w, uint32_t T, uint32_t n, uint32_t ld,
                           float eps, cudaStream_t s);
/* x += rmsnorm(xb) * wa; then xb = rmsnorm(x) * wb when wb */
cudaError_t launch_residual(float *x, float *xb, const float *wa, const float *wb, uint32_t T, uint32_t n,
                            float eps, cudaStream_t s);
/* g = gelu_tanh(g) * u, n values */
cudaError_t launch_geglu(float *g, const float *u, uint64_t n, cudaStream_t s);
/* x = cap * tanh(x / cap) */
cudaError_t launch_softcap(float *x, uint64_t n, float cap, cudaStream_t s);

/* The KV caches: pointers per (sequence, layer), element type kv_type. */
typedef struct dev_kv {
    void *const *k; /* device array [n_seq * n_layer] of device pointers */
    void *const *v;
    const uint32_t *n_slots; /* device array [n_layer] */
    uint32_t n_layer;
    uint32_t kv_type;
    uint32_t row_bytes; /* one position's keys (or values): HKV*D elements; q8_0: HKV*D/32 blocks of 34 bytes */
} dev_kv;

/* Bytes of one cached row of n values (n a multiple of 32 for q8_0). */
static inline uint32_t g3_cuda_kv_row_bytes(uint32_t kv_type, uint32_t n) {
    return kv_type == DT_Q8_0 ? n / 32 * 34 : kv_type == DT_F32 ? 4 * n : 2 * n;
}

/* The rows of a batch: device arrays of T entries. */
typedef struct dev_rows {
    const uint32_t *seq, *pos;
    uint32_t T;
} dev_rows;

/* q (T x H*D), k (T x HKV*D): per head RMSNorm with qw / kw (D), RoPE
 * (pw: D/2 doubles base^(-2i/D); fscale), q *= scale; then k and v (T x
 * HKV*D) into layer il of each row's cache at slot pos % n_slots. */
cudaError_t launch_qk_rope_store(float *q, float *k, const float *v, const float *qw, const float *kw, uint32_t H,
                                 uint32_t HKV, uint32_t D, float eps, const double *pw, double fscale, float scale,
                                 const dev_rows *rows, const dev_kv *kv, uint32_t il, cudaStream_t s);
/* att (T x H*D) = softmax(q k^T) v over each row's visible keys of layer il
 * (window 0: all up to the row; bidirectional: up to the batch's last
 * position). part: scratch of g3_cuda_attn_part_floats floats. */
cudaError_t launch_attention(const float *q, float *att, uint32_t H, uint32_t HKV, uint32_t D, const dev_rows *rows,
                             const uint32_t *host_pos, const dev_kv *kv, uint32_t il, uint32_t window,
                             bool bidirectional, float softcap, float *part, uint32_t max_blocks, cudaStream_t s);
/* Floats of the attention's partial results for batches up to U rows. */
uint64_t g3_cuda_attn_part_floats(uint32_t U, uint32_t H, uint32_t HKV, uint32_t D, uint32_t max_blocks);
/* Whether the attention kernels cover this head size and GQA group. */
bool g3_cuda_attn_supported(uint32_t H, uint32_t HKV, uint32_t D);
/* Writes n f32 values (rows of HKV*D, row p at slot p) into a cache layer
 * of kv_type, as the forward pass stores them (tests). */
cudaError_t launch_kv_fill(void *dst, const float *src, uint64_t n, uint32_t kv_type, cudaStream_t s);

#endif
