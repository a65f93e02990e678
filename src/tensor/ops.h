/* ops.h: the math of a transformer block, scalar reference versions.
 *
 * These are deliberately plain: they define the results the SIMD paths must
 * reproduce. Vectors are f32; weight matrices are any supported type and are
 * dequantized on the fly (never expanded whole). */
#ifndef G3_TENSOR_OPS_H
#define G3_TENSOR_OPS_H

#include <stdint.h>

#include "tensor/matrix.h"

/* out = x / sqrt(mean(x^2) + eps) * w   (w as stored: GGUF norms hold 1 + w).
 * out may alias x. */
void g3_rmsnorm(float *out, const float *x, const float *w, int n, float eps);

/* out (n_out) = W (n_out x n_in) @ x (n_in). */
void g3_matvec(float *out, const g3_matrix *w, const float *x);

/* out (n_in) = dequantized row `row` of W (embedding lookup). */
void g3_matrix_get_row(const g3_matrix *w, uint64_t row, float *out);

/* NEOX-style rotary embedding of one head vector: element i pairs with
 * i + head_dim/2; theta_i = pos * freq_scale * base^(-2i/head_dim).
 * Angles are computed in double so long contexts stay exact. */
void g3_rope_neox(float *v, int head_dim, int64_t pos, double base, double freq_scale);

/* x = 0.5 x (1 + tanh(sqrt(2/pi) (x + 0.044715 x^3))), in place. */
void g3_gelu_tanh(float *x, int n);

/* In-place softmax (max-subtracted). */
void g3_softmax(float *x, int n);

/* x = cap * tanh(x / cap), in place. */
void g3_softcap(float *x, int n, float cap);

#endif
