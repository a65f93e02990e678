#include "tensor/ops.h"

#include <math.h>

#include "tensor/type_ops.h"

void g3_rmsnorm(float *out, const float *x, const float *w, int n, float eps) {
    double sum_sq = 0.0; /* double: the mean of squares feeds every later op */
    for (int i = 0; i < n; i++) sum_sq += (double)x[i] * x[i];
    float scale = (float)(1.0 / sqrt(sum_sq / n + eps));
    for (int i = 0; i < n; i++) out[i] = x[i] * scale * w[i];
}

void g3_matvec(float *out, const g3_matrix *w, const float *x) {
    const g3_type_ops *ops = g3_type_ops_get(w->type);
    for (uint64_t r = 0; r < w->n_out; r++)
        out[r] = ops->dot_f32(g3_matrix_row_ptr(w, r), x, (int64_t)w->n_in);
}

void g3_matrix_get_row(const g3_matrix *w, uint64_t row, float *out) {
    g3_type_ops_get(w->type)->to_float(g3_matrix_row_ptr(w, row), out, (int64_t)w->n_in);
}

void g3_rope_neox(float *v, int head_dim, int64_t pos, double base, double freq_scale) {
    int half = head_dim / 2;
    for (int i = 0; i < half; i++) {
        double theta = (double)pos * freq_scale * pow(base, -2.0 * i / head_dim);
        double c = cos(theta), s = sin(theta);
        double x0 = v[i], x1 = v[i + half];
        v[i] = (float)(x0 * c - x1 * s);
        v[i + half] = (float)(x0 * s + x1 * c);
    }
}

void g3_gelu_tanh(float *x, int n) {
    const float k = 0.7978845608028654f; /* sqrt(2/pi) */
    for (int i = 0; i < n; i++) {
        float v = x[i];
        x[i] = 0.5f * v * (1.0f + tanhf(k * (v + 0.044715f * v * v * v)));
    }
}

void g3_softmax(float *x, int n) {
    float max = x[0];
    for (int i = 1; i < n; i++)
        if (x[i] > max) max = x[i];
    double sum = 0.0;
    for (int i = 0; i < n; i++) {
        x[i] = expf(x[i] - max);
        sum += x[i];
    }
    float inv = (float)(1.0 / sum);
    for (int i = 0; i < n; i++) x[i] *= inv;
}

void g3_softcap(float *x, int n, float cap) {
    for (int i = 0; i < n; i++) x[i] = cap * tanhf(x[i] / cap);
}
