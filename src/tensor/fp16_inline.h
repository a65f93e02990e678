/* fp16_inline.h: the f16 fields of ggml's quantized blocks.
 *
 * Internal to src/tensor. The blocks are packed and little-endian, so a
 * field may sit at any byte offset: it is read and written bytewise. The
 * conversion is the portable reference (fp16.c), not F16C: the scalar
 * quantizers are built for any x86-64 and are what the SIMD paths are
 * checked against. */
#ifndef G3_TENSOR_FP16_INLINE_H
#define G3_TENSOR_FP16_INLINE_H

#include <stdint.h>

#include "tensor/type_ops.h"

static inline float g3_load_f16_le(const uint8_t *p) {
    return g3_f16_to_f32((uint16_t)(p[0] | (p[1] << 8)));
}

static inline void g3_store_f16_le(uint8_t *p, float v) {
    uint16_t h = g3_f32_to_f16(v);
    p[0] = (uint8_t)(h & 0xff);
    p[1] = (uint8_t)(h >> 8);
}

#endif
