/* quant_legacy.h: ggml's 32-element block types Q8_0, Q4_0, Q5_0.
 *
 * Internal to src/tensor: the rest of the engine reaches these through the
 * g3_type_ops table (type_ops.h). Signatures and conventions are the table's:
 * n is a multiple of 32, blocks are ggml's exact little-endian byte layout
 * and need no alignment.
 */
#ifndef G3_TENSOR_QUANT_LEGACY_H
#define G3_TENSOR_QUANT_LEGACY_H

#include <stdint.h>

void g3_q8_0_to_float(const void *src, float *dst, int64_t n);
void g3_q8_0_from_float(const float *src, void *dst, int64_t n);
float g3_q8_0_dot_f32(const void *w, const float *x, int64_t n);

void g3_q4_0_to_float(const void *src, float *dst, int64_t n);
void g3_q4_0_from_float(const float *src, void *dst, int64_t n);
float g3_q4_0_dot_f32(const void *w, const float *x, int64_t n);

void g3_q5_0_to_float(const void *src, float *dst, int64_t n);
void g3_q5_0_from_float(const float *src, void *dst, int64_t n);
float g3_q5_0_dot_f32(const void *w, const float *x, int64_t n);

#endif
