/* matrix.h: a read-only 2-D weight matrix in any supported type.
 *
 * Follows GGUF/ggml order: n_in = ne[0] is the row length (the input size of
 * a linear layer), n_out = ne[1] rows. The bytes usually live in the model's
 * memory map. */
#ifndef G3_TENSOR_MATRIX_H
#define G3_TENSOR_MATRIX_H

#include <stdint.h>

typedef struct g3_matrix {
    const void *data;
    uint32_t type;
    uint64_t n_in;
    uint64_t n_out;
    uint64_t row_bytes;
    /* the same rows interleaved 16 at a time (tensor/repack.h), made for
     * the kernels that read that layout; NULL: only the file's layout */
    const uint8_t *x16;
} g3_matrix;

static inline const void *g3_matrix_row_ptr(const g3_matrix *m, uint64_t row) {
    return (const uint8_t *)m->data + row * m->row_bytes;
}

#endif
