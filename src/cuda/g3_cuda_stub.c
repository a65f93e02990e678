/* g3_cuda_stub.c: the CUDA interface in a build without the backend
 * (G3_CUDA off, or no nvcc at configure time): no device, and every call
 * that would need one fails saying how to get it. */
#include <stdio.h>

#include "base/error.h"
#include "cuda/g3_cuda.h"

#define NOT_BUILT "this gemma-chat was built without the CUDA backend (configure with -DG3_CUDA=ON; scripts/get-cuda.sh fetches nvcc)"

bool g3_cuda_built(void) { return false; }

int g3_cuda_device_count(char *why, size_t why_cap) {
    if (why && why_cap) snprintf(why, why_cap, "%s", NOT_BUILT);
    return 0;
}

int g3_cuda_device_info_get(g3_cuda_device_info *out, g3_error *err) {
    (void)out;
    return g3_fail(err, "%s", NOT_BUILT);
}

uint64_t g3_cuda_matrix_bytes(const g3_matrix *m) { return m->n_out * m->row_bytes; }

uint64_t g3_cuda_model_bytes_for(const g3_config *cfg, const g3_cuda_layer_src *layers, const g3_matrix *output) {
    (void)cfg;
    (void)layers;
    (void)output;
    return 0;
}

int g3_cuda_model_new(const g3_config *cfg, const g3_cuda_layer_src *layers, const float *output_norm,
                      const g3_matrix *output, g3_cuda_model **out, g3_error *err) {
    (void)cfg;
    (void)layers;
    (void)output_norm;
    (void)output;
    *out = NULL;
    return g3_fail(err, "%s", NOT_BUILT);
}

void g3_cuda_model_free(g3_cuda_model *m) { (void)m; }
uint64_t g3_cuda_model_bytes(const g3_cuda_model *m) {
    (void)m;
    return 0;
}

void g3_cuda_ctx_bytes(const g3_config *cfg, const g3_cuda_ctx_params *p, uint64_t *kv_bytes,
                       uint64_t *scratch_bytes) {
    (void)cfg;
    (void)p;
    *kv_bytes = *scratch_bytes = 0;
}

int g3_cuda_kv_type_check(g3_kv_type t, g3_error *err) {
    (void)t;
    return g3_fail(err, "%s", NOT_BUILT);
}

int g3_cuda_ctx_new(const g3_cuda_model *m, const g3_cuda_ctx_params *p, g3_cuda_ctx **out, g3_error *err) {
    (void)m;
    (void)p;
    *out = NULL;
    return g3_fail(err, "%s", NOT_BUILT);
}

void g3_cuda_ctx_free(g3_cuda_ctx *c) { (void)c; }

int g3_cuda_forward(g3_cuda_ctx *c, const g3_cuda_batch *b, g3_error *err) {
    (void)c;
    (void)b;
    return g3_fail(err, "%s", NOT_BUILT);
}

int g3_cuda_memory_used(uint64_t *in_use, uint64_t *total, g3_error *err) {
    *in_use = *total = 0;
    return g3_fail(err, "%s", NOT_BUILT);
}

int g3_cuda_test_dequant_row(const g3_matrix *w, uint64_t row, float *out, g3_error *err) {
    (void)w, (void)row, (void)out;
    return g3_fail(err, "%s", NOT_BUILT);
}

int g3_cuda_test_matmul(const g3_matrix *w, const float *x, uint32_t T, int mode, float *y, g3_error *err) {
    (void)w, (void)x, (void)T, (void)mode, (void)y;
    return g3_fail(err, "%s", NOT_BUILT);
}

int g3_cuda_test_rmsnorm(const float *x, const float *w, uint32_t T, uint32_t n, float eps, float *out,
                         g3_error *err) {
    (void)x, (void)w, (void)T, (void)n, (void)eps, (void)out;
    return g3_fail(err, "%s", NOT_BUILT);
}

int g3_cuda_test_geglu(const float *g, const float *u, uint32_t n, float *out, g3_error *err) {
    (void)g, (void)u, (void)n, (void)out;
    return g3_fail(err, "%s", NOT_BUILT);
}

int g3_cuda_test_norm_rope(float *v, uint32_t n_heads, uint32_t D, const float *w, float eps, uint32_t pos,
                           double base, double freq_scale, float scale, g3_error *err) {
    (void)v, (void)n_heads, (void)D, (void)w, (void)eps, (void)pos, (void)base, (void)freq_scale, (void)scale;
    return g3_fail(err, "%s", NOT_BUILT);
}

int g3_cuda_test_attention(const float *q, uint32_t T, uint32_t H, uint32_t HKV, uint32_t D, const float *keys,
                           const float *vals, uint32_t slots, g3_kv_type kv_type, const uint32_t *pos,
                           uint32_t window, bool bidirectional, float softcap, float *out, g3_error *err) {
    (void)q, (void)T, (void)H, (void)HKV, (void)D, (void)keys, (void)vals, (void)slots, (void)kv_type, (void)pos;
    (void)window, (void)bidirectional, (void)softcap, (void)out;
    return g3_fail(err, "%s", NOT_BUILT);
}
