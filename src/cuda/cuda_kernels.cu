/* cuda_kernels.cu: the backend's kernels and their launchers.
 *
 * Each kernel mirrors a scalar reference of src/tensor/ (named at each);
 * tests/test_cuda_ops.c compares them on random inputs and odd sizes. */
#include <cuda_bf16.h>
#include <cuda_fp16.h>
#include <mma.h>
#include <math.h>
#include <string.h>

#include "cuda/cuda_internal.cuh"

using namespace nvcuda;

#define FULL_MASK 0xffffffffu

/* ---- element helpers ---- */

/* The weight loaders below also compile for the host, where
 * g3_cuda_test_dequant_host runs them over a row without a GPU. */
#ifdef __CUDA_ARCH__
#define LDG(p) __ldg(p)
#else
#define LDG(p) (*(p))
#endif

__host__ __device__ __forceinline__ float h2f(uint16_t h) { return __half2float(__ushort_as_half(h)); }
__host__ __device__ __forceinline__ float bf2f(uint16_t b) {
#ifdef __CUDA_ARCH__
    return __uint_as_float((uint32_t)b << 16);
#else
    const uint32_t u = (uint32_t)b << 16;
    float f;
    memcpy(&f, &u, sizeof f);
    return f;
#endif
}

__device__ __forceinline__ float warp_sum(float v) {
#pragma unroll
    for (int o = 16; o > 0; o >>= 1) v += __shfl_xor_sync(FULL_MASK, v, o);
    return v;
}
__device__ __forceinline__ double warp_sum_d(double v) {
#pragma unroll
    for (int o = 16; o > 0; o >>= 1) v += __shfl_xor_sync(FULL_MASK, v, o);
    return v;
}

/* Sum over a block of blockDim.x (a multiple of 32, at most 1024) threads;
 * every thread gets the total. red: 32 doubles of shared memory. */
__device__ double block_sum_d(double v, double *red) {
    const int lane = threadIdx.x % 32, warp = threadIdx.x / 32, nw = blockDim.x / 32;
    v = warp_sum_d(v);
    __syncthreads(); /* red may still be read by a previous call */
    if (lane == 0) red[warp] = v;
    __syncthreads();
    double t = lane < nw ? red[lane] : 0.0;
    return warp_sum_d(t);
}

/* ---- weights: 32 consecutive values of a row (chunk c) as f32, exactly
 * as the reference dequantizers (tensor/quant_legacy.c, quant_k.c) ---- */

template <int TYPE> __host__ __device__ __forceinline__ void load32(const dev_matrix &w, uint32_t row, uint32_t c, float *v);

template <> __host__ __device__ __forceinline__ void load32<DT_Q4_0>(const dev_matrix &w, uint32_t row, uint32_t c, float *v) {
    const uint4 q = LDG((const uint4 *)(w.data + (uint64_t)row * w.row_bytes) + c);
    const float d = h2f(LDG(w.scales + (uint64_t)row * (w.K / 32) + c));
    const uint32_t words[4] = {q.x, q.y, q.z, q.w};
#pragma unroll
    for (int j = 0; j < 4; j++)
#pragma unroll
        for (int b = 0; b < 4; b++) {
            const uint32_t byte = (words[j] >> (8 * b)) & 0xffu;
            v[4 * j + b] = (float)((int)(byte & 15u) - 8) * d;
            v[4 * j + b + 16] = (float)((int)(byte >> 4) - 8) * d;
        }
}

template <> __host__ __device__ __forceinline__ void load32<DT_Q8_0>(const dev_matrix &w, uint32_t row, uint32_t c, float *v) {
    const uint4 *p = (const uint4 *)(w.data + (uint64_t)row * w.row_bytes) + 2 * c;
    const uint4 q0 = LDG(p), q1 = LDG(p + 1);
    const float d = h2f(LDG(w.scales + (uint64_t)row * (w.K / 32) + c));
    const uint32_t words[8] = {q0.x, q0.y, q0.z, q0.w, q1.x, q1.y, q1.z, q1.w};
#pragma unroll
    for (int j = 0; j < 8; j++)
#pragma unroll
        for (int b = 0; b < 4; b++) v[4 * j + b] = (float)(int8_t)((words[j] >> (8 * b)) & 0xffu) * d;
}

/* Q4_K: 144-byte super-blocks of 256: f16 d, f16 dmin, 12 bytes of 6-bit
 * scales and mins, qs[128]; sub-block j (32 values) = nibbles (low for even
 * j, high for odd) of qs[32 (j/2) ..], x = d*sc*q - dmin*m. */
template <> __host__ __device__ __forceinline__ void load32<DT_Q4_K>(const dev_matrix &w, uint32_t row, uint32_t c, float *v) {
    const uint8_t *blk = w.data + (uint64_t)row * w.row_bytes + (uint64_t)(c / 8) * 144;
    const uint32_t j = c % 8;
    const float d = h2f(LDG((const uint16_t *)blk)), dmin = h2f(LDG((const uint16_t *)(blk + 2)));
    const uint8_t *s = blk + 4;
    int sc, m;
    if (j < 4) {
        sc = LDG(s + j) & 63;
        m = LDG(s + j + 4) & 63;
    } else {
        sc = (LDG(s + j + 4) & 0x0f) | ((LDG(s + j - 4) >> 6) << 4);
        m = (LDG(s + j + 4) >> 4) | ((LDG(s + j) >> 6) << 4);
    }
    const float ds = d * (float)sc, dm = dmin * (float)m;
    const uint4 *qp = (const uint4 *)(blk + 16 + 32 * (j / 2));
    const uint4 q0 = LDG(qp), q1 = LDG(qp + 1);
    const uint32_t words[8] = {q0.x, q0.y, q0.z, q0.w, q1.x, q1.y, q1.z, q1.w};
    const int shift = (j & 1) ? 4 : 0;
#pragma unroll
    for (int k = 0; k < 8; k++)
#pragma unroll
        for (int b = 0; b < 4; b++) v[4 * k + b] = ds * (float)((words[k] >> (8 * b + shift)) & 15u) - dm;
}

/* Q6_K: 210-byte super-blocks: ql[128], qh[64], int8 scales[16], f16 d.
 * Chunk c%8 = 4 h + k (half h, quarter k): element l takes the low (k < 2)
 * or high nibble of ql[64 h + 32 (k & 1) + l] and bits 2k, 2k+1 of
 * qh[32 h + l]; scale scales[8 h + 2 k + l / 16]; x = d * sc * (q - 32).
 * Blocks are only 2-byte aligned: 16-bit loads. */
template <> __host__ __device__ __forceinline__ void load32<DT_Q6_K>(const dev_matrix &w, uint32_t row, uint32_t c, float *v) {
    const uint8_t *blk = w.data + (uint64_t)row * w.row_bytes + (uint64_t)(c / 8) * 210;
    const uint32_t h = (c % 8) / 4, k = c % 4;
    const uint16_t *ql = (const uint16_t *)(blk + 64 * h + 32 * (k & 1));
    const uint16_t *qh = (const uint16_t *)(blk + 128 + 32 * h);
    const int8_t *sc = (const int8_t *)(blk + 192 + 8 * h + 2 * k);
    const float d = h2f(LDG((const uint16_t *)(blk + 208)));
    const float ds0 = d * (float)LDG(sc), ds1 = d * (float)LDG(sc + 1);
    const int ls = (k >> 1) * 4, hs = 2 * k;
#pragma unroll
    for (int i = 0; i < 16; i++) {
        const uint32_t l2 = LDG(ql + i), h2 = LDG(qh + i);
#pragma unroll
        for (int b = 0; b < 2; b++) {
            const int l = 2 * i + b;
            const int q = (int)(((l2 >> (8 * b + ls)) & 15u) | (((h2 >> (8 * b + hs)) & 3u) << 4));
            v[l] = (l < 16 ? ds0 : ds1) * (float)(q - 32);
        }
    }
}

template <> __host__ __device__ __forceinline__ void load32<DT_F16>(const dev_matrix &w, uint32_t row, uint32_t c, float *v) {
    const uint4 *p = (const uint4 *)(w.data + (uint64_t)row * w.row_bytes) + 4 * c;
#pragma unroll
    for (int i = 0; i < 4; i++) {
        const uint4 q = LDG(p + i);
        const uint32_t words[4] = {q.x, q.y, q.z, q.w};
#pragma unroll
        for (int j = 0; j < 4; j++) {
            v[8 * i + 2 * j] = h2f((uint16_t)(words[j] & 0xffffu));
            v[8 * i + 2 * j + 1] = h2f((uint16_t)(words[j] >> 16));
        }
    }
}

template <> __host__ __device__ __forceinline__ void load32<DT_BF16>(const dev_matrix &w, uint32_t row, uint32_t c, float *v) {
    const uint4 *p = (const uint4 *)(w.data + (uint64_t)row * w.row_bytes) + 4 * c;
#pragma unroll
    for (int i = 0; i < 4; i++) {
        const uint4 q = LDG(p + i);
        const uint32_t words[4] = {q.x, q.y, q.z, q.w};
#pragma unroll
        for (int j = 0; j < 4; j++) {
            v[8 * i + 2 * j] = bf2f((uint16_t)(words[j] & 0xffffu));
            v[8 * i + 2 * j + 1] = bf2f((uint16_t)(words[j] >> 16));
        }
    }
}

template <> __host__ __device__ __forceinline__ void load32<DT_F32>(const dev_matrix &w, uint32_t row, uint32_t c, float *v) {
    const float4 *p = (const float4 *)(w.data + (uint64_t)row * w.row_bytes) + 8 * c;
#pragma unroll
    for (int i = 0; i < 8; i++) {
        const float4 q = LDG(p + i);
        v[4 * i] = q.x;
        v[4 * i + 1] = q.y;
        v[4 * i + 2] = q.z;
        v[4 * i + 3] = q.w;
    }
}

/* ---- host side of the weight layout ---- */

bool g3_cuda_type_native(uint32_t type) {
    switch (type) {
    case DT_F32: case DT_F16: case DT_BF16: case DT_Q4_0: case DT_Q8_0: case DT_Q4_K: case DT_Q6_K: return true;
    default: return false;
    }
}

uint64_t g3_cuda_dev_matrix_bytes(uint32_t type, uint64_t K, uint64_t n_out, uint64_t row_bytes) {
    switch (type) {
    case DT_Q4_0: return n_out * (K / 2) + n_out * (K / 32) * 2;
    case DT_Q8_0: return n_out * K + n_out * (K / 32) * 2;
    default: return n_out * row_bytes;
    }
}

void g3_cuda_pack_rows(const g3_matrix *m, uint64_t r0, uint64_t r1, uint8_t *data, uint16_t *scales) {
    const uint64_t K = m->n_in, nb = K / 32;
    for (uint64_t r = r0; r < r1; r++) {
        const uint8_t *src = (const uint8_t *)m->data + r * m->row_bytes;
        const uint64_t i = r - r0;
        if (m->type == DT_Q4_0 || m->type == DT_Q8_0) {
            const uint64_t qb = m->type == DT_Q4_0 ? 16 : 32, bb = qb + 2;
            for (uint64_t b = 0; b < nb; b++) {
                scales[i * nb + b] = (uint16_t)(src[b * bb] | (src[b * bb + 1] << 8));
                memcpy(data + i * (nb * qb) + b * qb, src + b * bb + 2, qb);
            }
        } else {
            memcpy(data + i * m->row_bytes, src, m->row_bytes);
        }
    }
}

int g3_cuda_dequant_host(const g3_matrix *m, uint64_t row, float *out) {
    const uint64_t K = m->n_in, nb = K / 32;
    if (!g3_cuda_type_native(m->type) || K % 32) return -1;
    const uint64_t rb = m->type == DT_Q4_0 ? K / 2 : m->type == DT_Q8_0 ? K : m->row_bytes;
    uint8_t *data = (uint8_t *)malloc(rb + 16);
    uint16_t *scales = (uint16_t *)malloc(nb * 2 + 2);
    if (!data || !scales) {
        free(data);
        free(scales);
        return -1;
    }
    g3_cuda_pack_rows(m, row, row + 1, data, scales);
    const dev_matrix w = {data, scales, m->type, (uint32_t)K, 1, rb};
    for (uint32_t c = 0; c < nb; c++) {
        float *v = out + 32 * c;
        switch (m->type) {
        case DT_Q4_0: load32<DT_Q4_0>(w, 0, c, v); break;
        case DT_Q8_0: load32<DT_Q8_0>(w, 0, c, v); break;
        case DT_Q4_K: load32<DT_Q4_K>(w, 0, c, v); break;
        case DT_Q6_K: load32<DT_Q6_K>(w, 0, c, v); break;
        case DT_F16: load32<DT_F16>(w, 0, c, v); break;
        case DT_BF16: load32<DT_BF16>(w, 0, c, v); break;
        default: load32<DT_F32>(w, 0, c, v); break;
        }
    }
    free(data);
    free(scales);
    return 0;
}

/* ---- matrix-vector products (decode): one warp per MV_RPW rows, each lane
 * a 32-value chunk of every one of them at a time, held in registers while
 * every row of the batch (NT <= 8) is applied: each weight byte is read once
 * from device memory, and each chunk of the input once per MV_RPW rows
 * (the input comes from L1, whose bandwidth a load per row would use up
 * before the weights' stream does) ---- */

#define MV_WARPS 4
#define MV_RPW 2

template <int TYPE, int NT>
__global__ void __launch_bounds__(MV_WARPS * 32)
    k_matvec(dev_matrix w, const float *__restrict__ x, uint32_t ldx, uint32_t T, float *__restrict__ y,
             uint32_t ldy) {
    const uint32_t warp = threadIdx.x / 32, lane = threadIdx.x % 32;
    const uint32_t row0 = (blockIdx.x * MV_WARPS + warp) * MV_RPW;
    if (row0 >= w.n_out) return;
    const uint32_t nch = w.K / 32;
    float acc[MV_RPW][NT];
#pragma unroll
    for (int r = 0; r < MV_RPW; r++)
#pragma unroll
        for (int t = 0; t < NT; t++) acc[r][t] = 0.0f;
    for (uint32_t c = lane; c < nch; c += 32) {
        float wv[MV_RPW][32];
#pragma unroll
        for (int r = 0; r < MV_RPW; r++) {
            if (row0 + r < w.n_out) load32<TYPE>(w, row0 + r, c, wv[r]);
            else
#pragma unroll
                for (int i = 0; i < 32; i++) wv[r][i] = 0.0f;
        }
#pragma unroll
        for (int t = 0; t < NT; t++) {
            if ((uint32_t)t >= T) break;
            const float4 *xp = (const float4 *)(x + (size_t)t * ldx) + 8 * c;
            float s[MV_RPW];
#pragma unroll
            for (int r = 0; r < MV_RPW; r++) s[r] = 0.0f;
#pragma unroll
            for (int i = 0; i < 8; i++) {
                const float4 xv = __ldg(xp + i);
#pragma unroll
                for (int r = 0; r < MV_RPW; r++) {
                    s[r] = fmaf(wv[r][4 * i], xv.x, s[r]);
                    s[r] = fmaf(wv[r][4 * i + 1], xv.y, s[r]);
                    s[r] = fmaf(wv[r][4 * i + 2], xv.z, s[r]);
                    s[r] = fmaf(wv[r][4 * i + 3], xv.w, s[r]);
                }
            }
#pragma unroll
            for (int r = 0; r < MV_RPW; r++) acc[r][t] += s[r];
        }
    }
#pragma unroll
    for (int r = 0; r < MV_RPW; r++)
#pragma unroll
        for (int t = 0; t < NT; t++) {
            const float v = warp_sum(acc[r][t]);
            if (lane == 0 && row0 + r < w.n_out && (uint32_t)t < T) y[(size_t)t * ldy + row0 + r] = v;
        }
}

/* ---- GEMM (prefill): a block computes 64 weight rows x 64 batch rows,
 * 32 values of K at a time: 64 threads dequantize one weight row's chunk
 * each into shared memory while the other 64 copy the batch's ---- */

#define GT 64   /* weight rows and batch rows of a tile */
#define GLD 36  /* shared row stride (floats) of the TF32 tiles: 16-byte rows, 32-byte fragment starts */
#define GCLD 68 /* stride of the output tile */

template <int TYPE>
__device__ __forceinline__ void gemm_load_w_row(const dev_matrix &w, uint32_t row, uint32_t c, float *v) {
    if (row < w.n_out) load32<TYPE>(w, row, c, v);
    else
#pragma unroll
        for (int i = 0; i < 32; i++) v[i] = 0.0f;
}

__device__ __forceinline__ void gemm_load_x_row(const float *x, uint32_t ldx, uint32_t T, uint32_t t, uint32_t c,
                                                float4 *v) {
    if (t < T) {
        const float4 *p = (const float4 *)(x + (size_t)t * ldx) + 8 * c;
#pragma unroll
        for (int i = 0; i < 8; i++) v[i] = __ldg(p + i);
    } else {
#pragma unroll
        for (int i = 0; i < 8; i++) v[i] = make_float4(0.0f, 0.0f, 0.0f, 0.0f);
    }
}

/* Tensor cores in TF32 (10-bit mantissa inputs, f32 accumulation): 4 warps,
 * each 32 x 32 of the tile as 2 x 2 fragments of 16 x 16 x 8. */
template <int TYPE>
__global__ void __launch_bounds__(128)
    k_gemm_tf32(dev_matrix w, const float *__restrict__ x, uint32_t ldx, uint32_t T, float *__restrict__ y,
                uint32_t ldy) {
    __shared__ __align__(32) float Ws[GT * GLD];
    __shared__ __align__(32) float Xs[GT * GLD];
    __shared__ __align__(32) float Cs[GT * GCLD];
    const uint32_t n0 = blockIdx.x * GT, t0 = blockIdx.y * GT;
    const int tid = threadIdx.x, warp = tid / 32;
    const int wn = (warp & 1) * 32, wt = (warp >> 1) * 32;
    wmma::fragment<wmma::accumulator, 16, 16, 8, float> acc[2][2];
#pragma unroll
    for (int i = 0; i < 2; i++)
#pragma unroll
        for (int j = 0; j < 2; j++) wmma::fill_fragment(acc[i][j], 0.0f);
    const uint32_t nch = w.K / 32;
    for (uint32_t c = 0; c < nch; c++) {
        if (tid < GT) {
            float v[32];
            gemm_load_w_row<TYPE>(w, n0 + tid, c, v);
            float4 *dst = (float4 *)&Ws[tid * GLD];
#pragma unroll
            for (int i = 0; i < 8; i++) dst[i] = make_float4(v[4 * i], v[4 * i + 1], v[4 * i + 2], v[4 * i + 3]);
        } else {
            float4 v[8];
            gemm_load_x_row(x, ldx, T, t0 + (tid - GT), c, v);
            float4 *dst = (float4 *)&Xs[(tid - GT) * GLD];
#pragma unroll
            for (int i = 0; i < 8; i++) dst[i] = v[i];
        }
        __syncthreads();
#pragma unroll
        for (int kk = 0; kk < 32; kk += 8) {
            wmma::fragment<wmma::matrix_a, 16, 16, 8, wmma::precision::tf32, wmma::row_major> a[2];
            wmma::fragment<wmma::matrix_b, 16, 16, 8, wmma::precision::tf32, wmma::col_major> b[2];
#pragma unroll
            for (int i = 0; i < 2; i++) {
                wmma::load_matrix_sync(a[i], &Xs[(wt + 16 * i) * GLD + kk], GLD);
#pragma unroll
                for (int e = 0; e < a[i].num_elements; e++) a[i].x[e] = wmma::__float_to_tf32(a[i].x[e]);
                wmma::load_matrix_sync(b[i], &Ws[(wn + 16 * i) * GLD + kk], GLD);
#pragma unroll
                for (int e = 0; e < b[i].num_elements; e++) b[i].x[e] = wmma::__float_to_tf32(b[i].x[e]);
            }
#pragma unroll
            for (int i = 0; i < 2; i++)
#pragma unroll
                for (int j = 0; j < 2; j++) wmma::mma_sync(acc[i][j], a[i], b[j], acc[i][j]);
        }
        __syncthreads();
    }
#pragma unroll
    for (int i = 0; i < 2; i++)
#pragma unroll
        for (int j = 0; j < 2; j++)
            wmma::store_matrix_sync(&Cs[(wt + 16 * i) * GCLD + wn + 16 * j], acc[i][j], GCLD, wmma::mem_row_major);
    __syncthreads();
    for (int e = tid; e < GT * GT; e += 128) {
        const uint32_t tt = e / GT, nn = e % GT;
        if (t0 + tt < T && n0 + nn < w.n_out) y[(size_t)(t0 + tt) * ldy + n0 + nn] = Cs[tt * GCLD + nn];
    }
}

/* f32 FMAs on the CUDA cores (exact activations): each thread 8 batch rows
 * x 4 weight rows; the tiles are stored k-major with a 65-float stride so
 * that neither the stores nor the reads conflict on banks. */
template <int TYPE>
__global__ void __launch_bounds__(128)
    k_gemm_f32(dev_matrix w, const float *__restrict__ x, uint32_t ldx, uint32_t T, float *__restrict__ y,
               uint32_t ldy) {
    __shared__ float Wt[32][GT + 1];
    __shared__ float Xt[32][GT + 1];
    const uint32_t n0 = blockIdx.x * GT, t0 = blockIdx.y * GT;
    const int tid = threadIdx.x, ng = tid % 16, tg = tid / 16;
    float acc[8][4];
#pragma unroll
    for (int i = 0; i < 8; i++)
#pragma unroll
        for (int j = 0; j < 4; j++) acc[i][j] = 0.0f;
    const uint32_t nch = w.K / 32;
    for (uint32_t c = 0; c < nch; c++) {
        if (tid < GT) {
            float v[32];
            gemm_load_w_row<TYPE>(w, n0 + tid, c, v);
#pragma unroll
            for (int k = 0; k < 32; k++) Wt[k][tid] = v[k];
        } else {
            float4 v[8];
            gemm_load_x_row(x, ldx, T, t0 + (tid - GT), c, v);
#pragma unroll
            for (int i = 0; i < 8; i++) {
                Xt[4 * i][tid - GT] = v[i].x;
                Xt[4 * i + 1][tid - GT] = v[i].y;
                Xt[4 * i + 2][tid - GT] = v[i].z;
                Xt[4 * i + 3][tid - GT] = v[i].w;
            }
        }
        __syncthreads();
#pragma unroll 4
        for (int k = 0; k < 32; k++) {
            float a[8], b[4];
#pragma unroll
            for (int i = 0; i < 8; i++) a[i] = Xt[k][tg + 8 * i];
#pragma unroll
            for (int j = 0; j < 4; j++) b[j] = Wt[k][ng + 16 * j];
#pragma unroll
            for (int i = 0; i < 8; i++)
#pragma unroll
                for (int j = 0; j < 4; j++) acc[i][j] = fmaf(a[i], b[j], acc[i][j]);
        }
        __syncthreads();
    }
#pragma unroll
    for (int i = 0; i < 8; i++)
#pragma unroll
        for (int j = 0; j < 4; j++) {
            const uint32_t t = t0 + tg + 8 * i, n = n0 + ng + 16 * j;
            if (t < T && n < w.n_out) y[(size_t)t * ldy + n] = acc[i][j];
        }
}

template <int TYPE>
static cudaError_t matmul_typed(const dev_matrix *w, const float *x, uint32_t ldx, uint32_t T, float *y,
                                uint32_t ldy, int kind, cudaStream_t s) {
    if (kind == MM_MATVEC) {
        const uint32_t rows_per_block = MV_WARPS * MV_RPW;
        const dim3 grid((w->n_out + rows_per_block - 1) / rows_per_block);
        if (T <= 1) k_matvec<TYPE, 1><<<grid, MV_WARPS * 32, 0, s>>>(*w, x, ldx, T, y, ldy);
        else if (T <= 2) k_matvec<TYPE, 2><<<grid, MV_WARPS * 32, 0, s>>>(*w, x, ldx, T, y, ldy);
        else if (T <= 4) k_matvec<TYPE, 4><<<grid, MV_WARPS * 32, 0, s>>>(*w, x, ldx, T, y, ldy);
        else k_matvec<TYPE, 8><<<grid, MV_WARPS * 32, 0, s>>>(*w, x, ldx, T, y, ldy);
    } else {
        const dim3 grid((w->n_out + GT - 1) / GT, (T + GT - 1) / GT);
        if (kind == MM_GEMM_F32) k_gemm_f32<TYPE><<<grid, 128, 0, s>>>(*w, x, ldx, T, y, ldy);
        else k_gemm_tf32<TYPE><<<grid, 128, 0, s>>>(*w, x, ldx, T, y, ldy);
    }
    return cudaGetLastError();
}

cudaError_t launch_matmul(const dev_matrix *w, const float *x, uint32_t ldx, uint32_t T, float *y, uint32_t ldy,
                          int kind, cudaStream_t s) {
    if (T == 0) return cudaSuccess;
    if (kind == MM_AUTO) kind = T <= MV_MAX_ROWS ? MM_MATVEC : MM_GEMM_TF32;
    if (kind == MM_MATVEC && T > MV_MAX_ROWS) return cudaErrorInvalidValue;
    if (w->K % 32 || ldx % 4) return cudaErrorInvalidValue;
    switch (w->type) {
    case DT_F32: return matmul_typed<DT_F32>(w, x, ldx, T, y, ldy, kind, s);
    case DT_F16: return matmul_typed<DT_F16>(w, x, ldx, T, y, ldy, kind, s);
    case DT_BF16: return matmul_typed<DT_BF16>(w, x, ldx, T, y, ldy, kind, s);
    case DT_Q4_0: return matmul_typed<DT_Q4_0>(w, x, ldx, T, y, ldy, kind, s);
    case DT_Q8_0: return matmul_typed<DT_Q8_0>(w, x, ldx, T, y, ldy, kind, s);
    case DT_Q4_K: return matmul_typed<DT_Q4_K>(w, x, ldx, T, y, ldy, kind, s);
    case DT_Q6_K: return matmul_typed<DT_Q6_K>(w, x, ldx, T, y, ldy, kind, s);
    default: return cudaErrorInvalidValue;
    }
}

/* ---- RMSNorm (tensor/ops.c g3_rmsnorm: sum of squares in double, scale
 * rounded to f32, out = x * scale * w) and the residual step of a block ---- */

#define NORM_THREADS 256

__device__ __forceinline__ float rms_scale(double sum_sq, uint32_t n, float eps) {
    return (float)(1.0 / sqrt(sum_sq / n + eps));
}

__global__ void __launch_bounds__(NORM_THREADS)
    k_rmsnorm(float *out, const float *in, const float *w, uint32_t n, uint32_t ld, float eps) {
    __shared__ double red[32];
    const float *x = in + (size_t)blockIdx.x * ld;
    float *o = out + (size_t)blockIdx.x * ld;
    double ss = 0.0;
    for (uint32_t i = threadIdx.x; i < n; i += blockDim.x) ss += (double)x[i] * x[i];
    const float scale = rms_scale(block_sum_d(ss, red), n, eps);
    for (uint32_t i = threadIdx.x; i < n; i += blockDim.x) o[i] = x[i] * scale * w[i];
}

/* The sandwich norms of Gemma 3 (gemma3_forward.c residual_task): x +=
 * rmsnorm(xb) * wa; then xb = rmsnorm(x) * wb when wb is given. */
__global__ void __launch_bounds__(NORM_THREADS)
    k_residual(float *xg, float *xbg, const float *wa, const float *wb, uint32_t n, float eps) {
    __shared__ double red[32];
    float *x = xg + (size_t)blockIdx.x * n, *xb = xbg + (size_t)blockIdx.x * n;
    double ss = 0.0;
    for (uint32_t i = threadIdx.x; i < n; i += blockDim.x) ss += (double)xb[i] * xb[i];
    const float sa = rms_scale(block_sum_d(ss, red), n, eps);
    double ss2 = 0.0;
    for (uint32_t i = threadIdx.x; i < n; i += blockDim.x) {
        const float t = xb[i] * sa * wa[i];
        const float v = x[i] + t;
        x[i] = v;
        ss2 += (double)v * v;
    }
    if (!wb) return;
    const float sb = rms_scale(block_sum_d(ss2, red), n, eps);
    for (uint32_t i = threadIdx.x; i < n; i += blockDim.x) xb[i] = x[i] * sb * wb[i];
}

cudaError_t launch_rmsnorm(float *out, const float *in, const float *w, uint32_t T, uint32_t n, uint32_t ld,
                           float eps, cudaStream_t s) {
    if (T == 0) return cudaSuccess;
    k_rmsnorm<<<T, NORM_THREADS, 0, s>>>(out, in, w, n, ld, eps);
    return cudaGetLastError();
}

cudaError_t launch_residual(float *x, float *xb, const float *wa, const float *wb, uint32_t T, uint32_t n,
                            float eps, cudaStream_t s) {
    if (T == 0) return cudaSuccess;
    k_residual<<<T, NORM_THREADS, 0, s>>>(x, xb, wa, wb, n, eps);
    return cudaGetLastError();
}

/* ---- GeGLU (g3_gelu_tanh, then * up) and soft-capping ---- */

__global__ void k_geglu(float *g, const float *u, uint64_t n) {
    const uint64_t i = (uint64_t)blockIdx.x * blockDim.x + threadIdx.x;
    if (i >= n) return;
    const float k = 0.7978845608028654f, v = g[i];
    g[i] = 0.5f * v * (1.0f + tanhf(k * (v + 0.044715f * v * v * v))) * u[i];
}

__global__ void k_softcap(float *x, uint64_t n, float cap) {
    const uint64_t i = (uint64_t)blockIdx.x * blockDim.x + threadIdx.x;
    if (i < n) x[i] = cap * tanhf(x[i] / cap);
}

cudaError_t launch_geglu(float *g, const float *u, uint64_t n, cudaStream_t s) {
    if (n == 0) return cudaSuccess;
    k_geglu<<<(unsigned)((n + 255) / 256), 256, 0, s>>>(g, u, n);
    return cudaGetLastError();
}

cudaError_t launch_softcap(float *x, uint64_t n, float cap, cudaStream_t s) {
    if (n == 0) return cudaSuccess;
    k_softcap<<<(unsigned)((n + 255) / 256), 256, 0, s>>>(x, n, cap);
    return cudaGetLastError();
}

/* ---- KV cache element types: f32, f16, bf16, and q8_0 (kv_q8: blocks of
 * an f16 scale and 32 int8, as tensor/quant_legacy.c) ---- */

struct kv_q8 {};

template <typename KT> __device__ __forceinline__ KT to_kv(float v);
template <> __device__ __forceinline__ float to_kv<float>(float v) { return v; }
template <> __device__ __forceinline__ __half to_kv<__half>(float v) {
    /* saturated as kv_cache.c: a value past the f16 range must not become inf */
    return __float2half_rn(fminf(fmaxf(v, -65504.0f), 65504.0f));
}
template <> __device__ __forceinline__ __nv_bfloat16 to_kv<__nv_bfloat16>(float v) { return __float2bfloat16_rn(v); }

__device__ __forceinline__ float from_kv(float v) { return v; }
__device__ __forceinline__ float from_kv(__half v) { return __half2float(v); }
__device__ __forceinline__ float from_kv(__nv_bfloat16 v) { return __bfloat162float(v); }

/* n values (a row) of a cache row; the threads of a block share the work */
template <typename KT> __device__ __forceinline__ void store_kv_row(uint8_t *row, const float *src, uint32_t n) {
    for (uint32_t j = threadIdx.x; j < n; j += blockDim.x) ((KT *)row)[j] = to_kv<KT>(src[j]);
}
/* q8_0: g3_q8_0_from_float (d = amax / 127, q = roundf(x / d) clamped, d
 * stored as f16), one block of 32 per thread */
template <> __device__ __forceinline__ void store_kv_row<kv_q8>(uint8_t *row, const float *src, uint32_t n) {
    for (uint32_t b = threadIdx.x; b < n / 32; b += blockDim.x) {
        const float *x = src + 32 * b;
        float amax = 0.0f;
        for (int j = 0; j < 32; j++) amax = fmaxf(amax, fabsf(x[j]));
        const float d = amax / 127.0f, id = d != 0.0f ? 1.0f / d : 0.0f;
        uint8_t *blk = row + 34 * b;
        const __half hd = __float2half_rn(d);
        *(uint16_t *)blk = __half_as_ushort(hd);
        for (int j = 0; j < 32; j++) {
            float v = roundf(x[j] * id);
            if (!(v >= -128.0f)) v = -128.0f;
            if (v > 127.0f) v = 127.0f;
            ((int8_t *)(blk + 2))[j] = (int8_t)v;
        }
    }
}

/* DPL consecutive values from element e0 of a cache row (e0 a multiple of
 * DPL, DPL dividing 32: they never straddle a q8_0 block) */
template <typename KT, int DPL> __device__ __forceinline__ void load_kv(const uint8_t *row, uint32_t e0, float *out) {
#pragma unroll
    for (int i = 0; i < DPL; i++) out[i] = from_kv(((const KT *)row)[e0 + i]);
}
template <> __device__ __forceinline__ void load_kv<kv_q8, 1>(const uint8_t *row, uint32_t e0, float *out) {
    const uint8_t *blk = row + 34 * (e0 / 32);
    out[0] = (float)((const int8_t *)(blk + 2))[e0 % 32] * h2f(*(const uint16_t *)blk);
}
#define LOAD_KV_Q8(N)                                                                                              \
    template <> __device__ __forceinline__ void load_kv<kv_q8, N>(const uint8_t *row, uint32_t e0, float *out) {   \
        const uint8_t *blk = row + 34 * (e0 / 32);                                                                 \
        const float d = h2f(*(const uint16_t *)blk);                                                               \
        const int8_t *q = (const int8_t *)(blk + 2) + e0 % 32;                                                     \
        _Pragma("unroll") for (int i = 0; i < N; i++) out[i] = (float)q[i] * d;                                    \
    }
LOAD_KV_Q8(2)
LOAD_KV_Q8(4)
LOAD_KV_Q8(8)

/* ---- QK-norm, RoPE, the attention scale; k and v into the cache
 * (gemma3_forward.c qk_rope_store_task, ops.c g3_rope_neox) ---- */

#define QK_THREADS 128
#define QK_MAX_HALF 256

template <typename KT>
__global__ void __launch_bounds__(QK_THREADS)
    k_qk_rope_store(float *q, float *k, const float *v, const float *qw, const float *kw, uint32_t H, uint32_t HKV,
                    uint32_t D, float eps, const double *pw, double fscale, float scale, dev_rows rows, dev_kv kv,
                    uint32_t il) {
    __shared__ double cs[2 * QK_MAX_HALF];
    const uint32_t t = blockIdx.x, half = D / 2, pos = rows.pos[t];
    for (uint32_t i = threadIdx.x; i < half; i += blockDim.x) {
        const double theta = (double)pos * fscale * pw[i];
        cs[2 * i] = cos(theta);
        cs[2 * i + 1] = sin(theta);
    }
    __syncthreads();
    const uint32_t lane = threadIdx.x % 32, warp = threadIdx.x / 32, nw = blockDim.x / 32;
    const uint32_t QD = H * D, KVD = HKV * D;
    for (uint32_t h = warp; h < H + HKV; h += nw) {
        const bool is_q = h < H;
        float *vec = is_q ? q + (size_t)t * QD + h * D : k + (size_t)t * KVD + (h - H) * D;
        const float *w = is_q ? qw : kw;
        double ss = 0.0;
        for (uint32_t d = lane; d < D; d += 32) ss += (double)vec[d] * vec[d];
        const float sc = rms_scale(warp_sum_d(ss), D, eps);
        for (uint32_t d = lane; d < D; d += 32) vec[d] = vec[d] * sc * w[d];
        __syncwarp();
        for (uint32_t i = lane; i < half; i += 32) {
            const double c = cs[2 * i], s = cs[2 * i + 1], x0 = vec[i], x1 = vec[i + half];
            float r0 = (float)(x0 * c - x1 * s), r1 = (float)(x0 * s + x1 * c);
            if (is_q) {
                r0 *= scale;
                r1 *= scale;
            }
            vec[i] = r0;
            vec[i + half] = r1;
        }
        __syncwarp();
    }
    __syncthreads();
    if (KVD == 0) return;
    const uint32_t seq = rows.seq[t], slot = pos % kv.n_slots[il];
    uint8_t *kc = (uint8_t *)kv.k[(size_t)seq * kv.n_layer + il] + (size_t)slot * kv.row_bytes;
    uint8_t *vc = (uint8_t *)kv.v[(size_t)seq * kv.n_layer + il] + (size_t)slot * kv.row_bytes;
    store_kv_row<KT>(kc, k + (size_t)t * KVD, KVD);
    store_kv_row<KT>(vc, v + (size_t)t * KVD, KVD);
}

cudaError_t launch_qk_rope_store(float *q, float *k, const float *v, const float *qw, const float *kw, uint32_t H,
                                 uint32_t HKV, uint32_t D, float eps, const double *pw, double fscale, float scale,
                                 const dev_rows *rows, const dev_kv *kv, uint32_t il, cudaStream_t s) {
    if (rows->T == 0) return cudaSuccess;
    if (D / 2 > QK_MAX_HALF || D % 2) return cudaErrorInvalidValue;
    switch (kv->kv_type) {
    case DT_F32:
        k_qk_rope_store<float><<<rows->T, QK_THREADS, 0, s>>>(q, k, v, qw, kw, H, HKV, D, eps, pw, fscale, scale,
                                                              *rows, *kv, il);
        break;
    case DT_F16:
        k_qk_rope_store<__half><<<rows->T, QK_THREADS, 0, s>>>(q, k, v, qw, kw, H, HKV, D, eps, pw, fscale, scale,
                                                               *rows, *kv, il);
        break;
    case DT_BF16:
        k_qk_rope_store<__nv_bfloat16><<<rows->T, QK_THREADS, 0, s>>>(q, k, v, qw, kw, H, HKV, D, eps, pw, fscale,
                                                                      scale, *rows, *kv, il);
        break;
    case DT_Q8_0:
        k_qk_rope_store<kv_q8><<<rows->T, QK_THREADS, 0, s>>>(q, k, v, qw, kw, H, HKV, D, eps, pw, fscale, scale,
                                                              *rows, *kv, il);
        break;
    default: return cudaErrorInvalidValue;
    }
    return cudaGetLastError();
}

template <typename KT> __global__ void k_kv_fill(KT *dst, const float *src, uint64_t n) {
    const uint64_t i = (uint64_t)blockIdx.x * blockDim.x + threadIdx.x;
    if (i < n) dst[i] = to_kv<KT>(src[i]);
}

/* q8_0: one block of 32 values per thread block (32 values, one thread) */
__global__ void k_kv_fill_q8(uint8_t *dst, const float *src) {
    store_kv_row<kv_q8>(dst + 34 * (size_t)blockIdx.x, src + 32 * (size_t)blockIdx.x, 32);
}

cudaError_t launch_kv_fill(void *dst, const float *src, uint64_t n, uint32_t kv_type, cudaStream_t s) {
    const unsigned blocks = (unsigned)((n + 255) / 256);
    if (n == 0) return cudaSuccess;
    switch (kv_type) {
    case DT_F32: k_kv_fill<float><<<blocks, 256, 0, s>>>((float *)dst, src, n); break;
    case DT_F16: k_kv_fill<__half><<<blocks, 256, 0, s>>>((__half *)dst, src, n); break;
    case DT_BF16: k_kv_fill<__nv_bfloat16><<<blocks, 256, 0, s>>>((__nv_bfloat16 *)dst, src, n); break;
    case DT_Q8_0:
        if (n % 32) return cudaErrorInvalidValue;
        k_kv_fill_q8<<<(unsigned)(n / 32), 32, 0, s>>>((uint8_t *)dst, src);
        break;
    default: return cudaErrorInvalidValue;
    }
    return cudaGetLastError();
}

/* ---- attention over the cache (gemma3_forward.c attention_task) ----
 *
 * Block (item = row t x KV head, split): the G query heads of the KV head's
 * group against the keys of one split of the row's visible range, 4 warps
 * taking every 4th key; a lane holds DPL = D/32 consecutive elements of each
 * query, key and value. Online softmax per warp (running max, sum and
 * weighted values), merged over the warps into part[]; k_attn_merge then
 * merges the splits and divides. Scores and weights stay f32. */

#define ATT_WARPS 4

template <typename KT, int DPL, int G>
__global__ void __launch_bounds__(ATT_WARPS * 32)
    k_attention(const float *__restrict__ q, uint32_t H, uint32_t HKV, dev_rows rows, dev_kv kv, uint32_t il,
                uint32_t window, bool bidirectional, float softcap, uint32_t n_split, float *__restrict__ part) {
    constexpr int D = DPL * 32;
    __shared__ float sm_m[ATT_WARPS][G], sm_l[ATT_WARPS][G];
    __shared__ float sm_acc[ATT_WARPS][G][D];
    const uint32_t item = blockIdx.x, split = blockIdx.y;
    const uint32_t t = item / HKV, hkv = item % HKV;
    const uint32_t lane = threadIdx.x % 32, warp = threadIdx.x / 32;
    const uint32_t pos = rows.pos[t], seq = rows.seq[t];
    const uint32_t hi = bidirectional ? rows.pos[rows.T - 1] : pos;
    const uint32_t lo = (window && pos + 1 > window) ? pos + 1 - window : 0;
    const uint32_t n = hi - lo + 1, per = (n + n_split - 1) / n_split;
    const uint32_t a = lo + split * per, b = min(a + per, hi + 1);
    const uint32_t slots = kv.n_slots[il], e0 = hkv * D + lane * DPL;
    const uint8_t *K = (const uint8_t *)kv.k[(size_t)seq * kv.n_layer + il];
    const uint8_t *V = (const uint8_t *)kv.v[(size_t)seq * kv.n_layer + il];

    float qr[G][DPL], acc[G][DPL], m[G], l[G];
#pragma unroll
    for (int g = 0; g < G; g++) {
        const float *qp = q + (size_t)t * H * D + (size_t)(hkv * G + g) * D + lane * DPL;
#pragma unroll
        for (int i = 0; i < DPL; i++) {
            qr[g][i] = qp[i];
            acc[g][i] = 0.0f;
        }
        m[g] = -INFINITY;
        l[g] = 0.0f;
    }
    for (uint32_t p = a + warp; p < b; p += ATT_WARPS) {
        const size_t off = (size_t)(p % slots) * kv.row_bytes;
        float kf[DPL], vf[DPL];
        load_kv<KT, DPL>(K + off, e0, kf);
        load_kv<KT, DPL>(V + off, e0, vf);
#pragma unroll
        for (int g = 0; g < G; g++) {
            float s = 0.0f;
#pragma unroll
            for (int i = 0; i < DPL; i++) s = fmaf(qr[g][i], kf[i], s);
            s = warp_sum(s);
            if (softcap > 0.0f) s = softcap * tanhf(s / softcap);
            const float mn = fmaxf(m[g], s), corr = expf(m[g] - mn), e = expf(s - mn);
            l[g] = l[g] * corr + e;
#pragma unroll
            for (int i = 0; i < DPL; i++) acc[g][i] = acc[g][i] * corr + e * vf[i];
            m[g] = mn;
        }
    }
#pragma unroll
    for (int g = 0; g < G; g++) {
        if (lane == 0) {
            sm_m[warp][g] = m[g];
            sm_l[warp][g] = l[g];
        }
#pragma unroll
        for (int i = 0; i < DPL; i++) sm_acc[warp][g][lane * DPL + i] = acc[g][i];
    }
    __syncthreads();
    for (uint32_t e = threadIdx.x; e < (uint32_t)(G * D); e += blockDim.x) {
        const uint32_t g = e / D, d = e % D;
        float M = -INFINITY;
#pragma unroll
        for (int w = 0; w < ATT_WARPS; w++) M = fmaxf(M, sm_m[w][g]);
        float L = 0.0f, o = 0.0f;
        if (M != -INFINITY) {
#pragma unroll
            for (int w = 0; w < ATT_WARPS; w++) {
                if (sm_m[w][g] == -INFINITY) continue;
                const float f = expf(sm_m[w][g] - M);
                L += sm_l[w][g] * f;
                o += sm_acc[w][g][d] * f;
            }
        }
        float *dst = part + ((size_t)(item * n_split + split) * G + g) * (D + 2);
        dst[d] = o;
        if (d == 0) {
            dst[D] = M;
            dst[D + 1] = L;
        }
    }
}

__global__ void k_attn_merge(const float *__restrict__ part, float *__restrict__ att, uint32_t H, uint32_t HKV,
                             uint32_t D, uint32_t n_split) {
    const uint32_t t = blockIdx.x / H, h = blockIdx.x % H, G = H / HKV, hkv = h / G, g = h % G;
    const uint32_t item = t * HKV + hkv;
    const float *base = part + ((size_t)item * n_split * G + g) * (D + 2);
    const size_t stride = (size_t)G * (D + 2); /* from one split to the next */
    float M = -INFINITY;
    for (uint32_t s = 0; s < n_split; s++) M = fmaxf(M, base[s * stride + D]);
    for (uint32_t d = threadIdx.x; d < D; d += blockDim.x) {
        float L = 0.0f, o = 0.0f;
        for (uint32_t s = 0; s < n_split; s++) {
            const float *p = base + s * stride;
            if (p[D] == -INFINITY) continue;
            const float f = expf(p[D] - M);
            L += p[D + 1] * f;
            o += p[d] * f;
        }
        att[(size_t)t * H * D + (size_t)h * D + d] = L > 0.0f ? o / L : 0.0f;
    }
}

bool g3_cuda_attn_supported(uint32_t H, uint32_t HKV, uint32_t D) {
    if (!HKV || H % HKV || D % 32) return false;
    const uint32_t G = H / HKV, DPL = D / 32;
    return (G == 1 || G == 2 || G == 4 || G == 8) && (DPL == 1 || DPL == 2 || DPL == 4 || DPL == 8);
}

uint64_t g3_cuda_attn_part_floats(uint32_t U, uint32_t H, uint32_t HKV, uint32_t D, uint32_t max_blocks) {
    return ((uint64_t)U * HKV + max_blocks) * (H / HKV) * (D + 2);
}

template <typename KT, int DPL>
static void attention_g(uint32_t G, dim3 grid, cudaStream_t s, const float *q, uint32_t H, uint32_t HKV,
                        const dev_rows *rows, const dev_kv *kv, uint32_t il, uint32_t window, bool bidi, float softcap,
                        uint32_t n_split, float *part) {
#define ATT_LAUNCH(GG)                                                                                              \
    k_attention<KT, DPL, GG><<<grid, ATT_WARPS * 32, 0, s>>>(q, H, HKV, *rows, *kv, il, window, bidi, softcap,      \
                                                            n_split, part)
    switch (G) {
    case 1: ATT_LAUNCH(1); break;
    case 2: ATT_LAUNCH(2); break;
    case 4: ATT_LAUNCH(4); break;
    default: ATT_LAUNCH(8); break;
    }
#undef ATT_LAUNCH
}

template <typename KT>
static void attention_d(uint32_t DPL, uint32_t G, dim3 grid, cudaStream_t s, const float *q, uint32_t H,
                        uint32_t HKV, const dev_rows *rows, const dev_kv *kv, uint32_t il, uint32_t window, bool bidi,
                        float softcap, uint32_t n_split, float *part) {
    switch (DPL) {
    case 1: attention_g<KT, 1>(G, grid, s, q, H, HKV, rows, kv, il, window, bidi, softcap, n_split, part); break;
    case 2: attention_g<KT, 2>(G, grid, s, q, H, HKV, rows, kv, il, window, bidi, softcap, n_split, part); break;
    case 4: attention_g<KT, 4>(G, grid, s, q, H, HKV, rows, kv, il, window, bidi, softcap, n_split, part); break;
    default: attention_g<KT, 8>(G, grid, s, q, H, HKV, rows, kv, il, window, bidi, softcap, n_split, part); break;
    }
}

cudaError_t launch_attention(const float *q, float *att, uint32_t H, uint32_t HKV, uint32_t D, const dev_rows *rows,
                             const uint32_t *host_pos, const dev_kv *kv, uint32_t il, uint32_t window,
                             bool bidirectional, float softcap, float *part, uint32_t max_blocks, cudaStream_t s) {
    const uint32_t T = rows->T;
    if (T == 0) return cudaSuccess;
    if (!g3_cuda_attn_supported(H, HKV, D)) return cudaErrorInvalidValue;
    /* the longest visible range decides how far the keys are split: enough
     * blocks to fill the GPU, at least 32 keys per split */
    uint32_t n_max = 1;
    for (uint32_t t = 0; t < T; t++) {
        const uint32_t pos = host_pos[t], hi = bidirectional ? host_pos[T - 1] : pos;
        const uint32_t lo = (window && pos + 1 > window) ? pos + 1 - window : 0;
        if (hi - lo + 1 > n_max) n_max = hi - lo + 1;
    }
    const uint32_t items = T * HKV;
    uint32_t n_split = 1;
    if (items < max_blocks) {
        n_split = (max_blocks + items - 1) / items;
        const uint32_t by_keys = (n_max + 31) / 32;
        if (n_split > by_keys) n_split = by_keys;
        if (n_split > 64) n_split = 64;
        if (n_split < 1) n_split = 1;
    }
    const dim3 grid(items, n_split);
    const uint32_t G = H / HKV, DPL = D / 32;
    switch (kv->kv_type) {
    case DT_F32:
        attention_d<float>(DPL, G, grid, s, q, H, HKV, rows, kv, il, window, bidirectional, softcap, n_split, part);
        break;
    case DT_F16:
        attention_d<__half>(DPL, G, grid, s, q, H, HKV, rows, kv, il, window, bidirectional, softcap, n_split, part);
        break;
    case DT_BF16:
        attention_d<__nv_bfloat16>(DPL, G, grid, s, q, H, HKV, rows, kv, il, window, bidirectional, softcap, n_split,
                                   part);
        break;
    case DT_Q8_0:
        attention_d<kv_q8>(DPL, G, grid, s, q, H, HKV, rows, kv, il, window, bidirectional, softcap, n_split, part);
        break;
    default: return cudaErrorInvalidValue;
    }
    cudaError_t e = cudaGetLastError();
    if (e != cudaSuccess) return e;
    k_attn_merge<<<T * H, D < 256 ? D : 256, 0, s>>>(part, att, H, HKV, D, n_split);
    return cudaGetLastError();
}
