/* quant_k.h: ggml's 256-element super-block types Q4_K, Q5_K, Q6_K.
 *
 * Internal to src/tensor: the rest of the engine reaches these through the
 * g3_type_ops table (type_ops.h). Signatures and conventions are the table's:
 * n is a multiple of 256, blocks are ggml's exact little-endian byte layout
 * and need no alignment.
 */
#ifndef G3_TENSOR_QUANT_K_H
#define G3_TENSOR_QUANT_K_H

#include <stdint.h>

void g3_q4_k_to_float(const void *src, float *dst, int64_t n);
void g3_q4_k_from_float(const float *src, void *dst, int64_t n);
float g3_q4_k_dot_f32(const void *w, const float *x, int64_t n);

void g3_q5_k_to_float(const void *src, float *dst, int64_t n);
void g3_q5_k_from_float(const float *src, void *dst, int64_t n);
float g3_q5_k_dot_f32(const void *w, const float *x, int64_t n);

void g3_q6_k_to_float(const void *src, float *dst, int64_t n);
void g3_q6_k_from_float(const float *src, void *dst, int64_t n);
float g3_q6_k_dot_f32(const void *w, const float *x, int64_t n);

#endif
