/* quant_legacy.h: ggml's 32-element block types Q8_0, Q4_0, Q5_0, Q4_1, Q5_1
 * and IQ4_NL.
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

void g3_q4_1_to_float(const void *src, float *dst, int64_t n);
void g3_q4_1_from_float(const float *src, void *dst, int64_t n);
float g3_q4_1_dot_f32(const void *w, const float *x, int64_t n);

void g3_q5_1_to_float(const void *src, float *dst, int64_t n);
void g3_q5_1_from_float(const float *src, void *dst, int64_t n);
float g3_q5_1_dot_f32(const void *w, const float *x, int64_t n);

void g3_iq4_nl_to_float(const void *src, float *dst, int64_t n);
void g3_iq4_nl_from_float(const float *src, void *dst, int64_t n);
float g3_iq4_nl_dot_f32(const void *w, const float *x, int64_t n);

/* IQ4_NL's 16 code values (ggml's kvalues_iq4nl): x = g3_iq4_nl_values[q] * d. */
extern const int8_t g3_iq4_nl_values[16];

#endif
