/* type_ops.h: per-type kernels for the supported weight types.
 *
 * One row of this table per supported type (ggml's traits-table idea): adding
 * a type is a row plus its functions. All functions here are the scalar
 * reference; SIMD versions (issue [3]) are tested against them.
 *
 * Conventions: n is the number of elements and is a multiple of the type's
 * block size (callers check with g3_type_row_bytes). Quantized data is the
 * exact byte layout of ggml/GGUF (little-endian, packed blocks).
 */
#ifndef G3_TENSOR_TYPE_OPS_H
#define G3_TENSOR_TYPE_OPS_H

#include <stdint.h>

#include "tensor/type_info.h"

typedef struct g3_type_ops {
    /* dst[0..n) = dequantized src row. Exact: what the file means. */
    void (*to_float)(const void *src, float *dst, int64_t n);
    /* dst = quantized src row (round-to-nearest reference quantizer). */
    void (*from_float)(const float *src, void *dst, int64_t n);
    /* sum_i w[i] * x[i] with w dequantized exactly, x in f32.
     * Accumulates per block in f32 and across blocks in f32. */
    float (*dot_f32)(const void *w, const float *x, int64_t n);
} g3_type_ops;

/* NULL when the type is not supported (see g3_type_info.supported). */
const g3_type_ops *g3_type_ops_get(uint32_t type);

/* IEEE half and bfloat16 conversions (round to nearest even; NaN kept NaN). */
float g3_f16_to_f32(uint16_t h);
uint16_t g3_f32_to_f16(float f);
float g3_bf16_to_f32(uint16_t h);
uint16_t g3_f32_to_bf16(float f);

#endif
