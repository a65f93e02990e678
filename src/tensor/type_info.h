/* type_info.h: the element types a GGUF tensor can have.
 *
 * Ids are ggml's (they are what GGUF files store). This table knows the name
 * and block geometry of every id ggml has defined, so the GGUF reader can size
 * any tensor and the model loader can refuse an unsupported type by name.
 * Which types the engine can compute with is `supported`; the kernels for
 * those live in type_ops.h.
 */
#ifndef G3_TENSOR_TYPE_INFO_H
#define G3_TENSOR_TYPE_INFO_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "base/error.h"

typedef enum g3_type {
    G3_TYPE_F32 = 0,
    G3_TYPE_F16 = 1,
    G3_TYPE_Q4_0 = 2,
    G3_TYPE_Q4_1 = 3,
    G3_TYPE_Q5_0 = 6,
    G3_TYPE_Q5_1 = 7,
    G3_TYPE_Q8_0 = 8,
    G3_TYPE_Q8_1 = 9,
    G3_TYPE_Q2_K = 10,
    G3_TYPE_Q3_K = 11,
    G3_TYPE_Q4_K = 12,
    G3_TYPE_Q5_K = 13,
    G3_TYPE_Q6_K = 14,
    G3_TYPE_Q8_K = 15,
    G3_TYPE_IQ2_XXS = 16,
    G3_TYPE_IQ2_XS = 17,
    G3_TYPE_IQ3_XXS = 18,
    G3_TYPE_IQ1_S = 19,
    G3_TYPE_IQ4_NL = 20,
    G3_TYPE_IQ3_S = 21,
    G3_TYPE_IQ2_S = 22,
    G3_TYPE_IQ4_XS = 23,
    G3_TYPE_I8 = 24,
    G3_TYPE_I16 = 25,
    G3_TYPE_I32 = 26,
    G3_TYPE_I64 = 27,
    G3_TYPE_F64 = 28,
    G3_TYPE_IQ1_M = 29,
    G3_TYPE_BF16 = 30,
    G3_TYPE_TQ1_0 = 34,
    G3_TYPE_TQ2_0 = 35,
    G3_TYPE_MXFP4 = 39,
    G3_TYPE_COUNT = 40 /* one past the largest id in the table */
} g3_type;

typedef struct g3_type_info {
    const char *name;    /* "Q4_K", as llama.cpp prints it */
    uint32_t block_size; /* elements per block (1 for plain types) */
    uint32_t block_bytes;/* bytes per block */
    bool supported;      /* the engine has kernels for it (type_ops.h) */
} g3_type_info;

/* NULL for an id no ggml version has defined (or that was removed). */
const g3_type_info *g3_type_info_get(uint32_t type);

/* Name for messages; "unknown type 77" style text for unknown ids. */
const char *g3_type_name(uint32_t type, char buf[32]);

/* Bytes of a row of n elements; fails when n is not a multiple of the block
 * size, the type is unknown, or the size overflows. */
int g3_type_row_bytes(uint32_t type, uint64_t n, uint64_t *out, g3_error *err);

/* Parses "q4_0", "Q4_K", "bf16"... (case-insensitive); -1 if unknown. */
int g3_type_from_name(const char *name);

#endif
