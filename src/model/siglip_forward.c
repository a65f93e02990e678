/* siglip_forward.c: one image through SigLIP and the Gemma 3 projector.
 *
 * The whole image is one batch of N patch rows (4096 for 896x896 / 14):
 * every weight matrix is read once per image by the batched products of
 * tensor/matmul.h, which also run attention: per head, the scores of a chunk
 * of queries are Q_h . K_h^T with K_h's rows used as a weight matrix, and
 * the output is P . V_h, computed as V_h^T . P^T so that the long side (the
 * queries) is the one the threads share. The steps between products (bias,
 * LayerNorm, GELU, residual) run over rows on the same thread pool.
 *
 * Conventions (llama.cpp tools/mtmd: clip.cpp, models/siglip.cpp; checked
 * against the golden data): conv patch embedding with stride = patch, plus
 * bias and learned position embeddings in raster order; pre-LN blocks with
 * biased linear layers, bidirectional attention scaled by 1/sqrt(head_dim),
 * tanh-GELU MLP; post LayerNorm; k x k average pooling of the patch grid;
 * RMSNorm * soft_emb_norm (stored as 1 + w); projection out = x @ P. */
#include <math.h>
#include <string.h>

#include "base/thread_pool.h"
#include "model/siglip.h"

/* ---- row-parallel steps ---- */

typedef struct rows_task rows_task;
typedef void (*row_fn)(const rows_task *rt, uint64_t t);

struct rows_task {
    g3_vision *v;
    row_fn fn;
    uint64_t n; /* rows */
    const g3_siglip_layer *L;
    const float *pixels;
    const float *ln_w, *ln_b; /* LayerNorm after a residual step (NULL: none) */
    const float *bias;
    uint32_t head, q0, Tq;
};

static void rows_worker(void *arg, uint32_t ith, uint32_t nth) {
    const rows_task *rt = arg;
    uint64_t lo, hi;
    g3_split_range(rt->n, 1, ith, nth, &lo, &hi);
    for (uint64_t t = lo; t < hi; t++) rt->fn(rt, t);
}

static void run_rows(rows_task *rt, row_fn fn, uint64_t n) {
    rt->fn = fn;
    rt->n = n;
    g3_thread_pool_run(rt->v->pool_threads, rows_worker, rt);
}

/* out = (x - mean) / sqrt(var + eps) * w + b, as ggml_norm (biased
 * variance); sums in double so a wide row keeps its precision. */
static void layer_norm(float *out, const float *x, const float *w, const float *b, uint32_t n, float eps) {
    double sum = 0.0, sq = 0.0;
    for (uint32_t i = 0; i < n; i++) sum += x[i];
    const float mean = (float)(sum / n);
    for (uint32_t i = 0; i < n; i++) {
        const double d = x[i] - mean;
        sq += d * d;
    }
    const float scale = (float)(1.0 / sqrt(sq / n + eps));
    for (uint32_t i = 0; i < n; i++) out[i] = (x[i] - mean) * scale * w[i] + b[i];
}

/* patch row t = the p x p x 3 pixels under conv position t, in the conv
 * kernel's [c][ky][kx] order */
static void im2col_row(const rows_task *rt, uint64_t t) {
    const g3_vision *v = rt->v;
    const uint32_t p = v->patch, S = v->image_size, py = (uint32_t)(t / v->side), px = (uint32_t)(t % v->side);
    float *dst = v->h + t * v->patch_w.n_in;
    for (uint32_t c = 0; c < 3; c++)
        for (uint32_t ky = 0; ky < p; ky++) {
            const float *src = rt->pixels + ((size_t)c * S + (size_t)py * p + ky) * S + (size_t)px * p;
            memcpy(dst, src, sizeof(float) * p);
            dst += p;
        }
}

/* x[t] += conv bias + position embedding t */
static void embed_row(const rows_task *rt, uint64_t t) {
    const g3_vision *v = rt->v;
    const uint32_t W = v->n_embd;
    float *x = v->x + t * W;
    const float *pos = v->pos + t * W;
    for (uint32_t i = 0; i < W; i++) x[i] += v->patch_b[i] + pos[i];
}

/* xb[t] = LayerNorm(x[t]) */
static void ln_row(const rows_task *rt, uint64_t t) {
    const g3_vision *v = rt->v;
    layer_norm(v->xb + t * v->n_embd, v->x + t * v->n_embd, rt->ln_w, rt->ln_b, v->n_embd, v->eps);
}

/* q = (q + bq) / sqrt(head_dim); k += bk; v += bv */
static void qkv_bias_row(const rows_task *rt, uint64_t t) {
    const g3_vision *v = rt->v;
    const g3_siglip_layer *L = rt->L;
    const uint32_t W = v->n_embd;
    const float scale = 1.0f / sqrtf((float)v->head_dim);
    float *q = v->q + t * W, *k = v->kk + t * W, *vv = v->vv + t * W;
    for (uint32_t i = 0; i < W; i++) {
        q[i] = (q[i] + L->bq[i]) * scale;
        k[i] += L->bk[i];
        vv[i] += L->bv[i];
    }
}

/* x[t] += xb[t] + bias; then xb[t] = LayerNorm(x[t]) when a norm is given */
static void residual_row(const rows_task *rt, uint64_t t) {
    const g3_vision *v = rt->v;
    const uint32_t W = v->n_embd;
    float *x = v->x + t * W, *xb = v->xb + t * W;
    for (uint32_t i = 0; i < W; i++) x[i] += xb[i] + rt->bias[i];
    if (rt->ln_w) layer_norm(xb, x, rt->ln_w, rt->ln_b, W, v->eps);
}

/* h[t] = gelu_tanh(h[t] + b_up) (gelu_mul with ones: the kernel table's
 * vectorized GELU) */
static void gelu_row(const rows_task *rt, uint64_t t) {
    const g3_vision *v = rt->v;
    const uint32_t F = v->n_ff;
    float *h = v->h + t * F;
    for (uint32_t i = 0; i < F; i++) h[i] += rt->L->b_up[i];
    v->k->gelu_mul(h, v->ones, F);
}

/* ---- attention ---- */

/* vt[d][j] = v[j][head*D + d]: one head's values, transposed (row t = key j) */
static void transpose_v_row(const rows_task *rt, uint64_t j) {
    const g3_vision *v = rt->v;
    const uint32_t D = v->head_dim, N = v->n_patches;
    const float *src = v->vv + j * v->n_embd + (size_t)rt->head * D;
    for (uint32_t d = 0; d < D; d++) v->vt[(size_t)d * N + j] = src[d];
}

static void softmax_row(const rows_task *rt, uint64_t r) {
    const g3_vision *v = rt->v;
    v->k->softmax(v->scores + r * v->n_patches, v->n_patches);
}

/* att[q0 + i][head*D + d] = ot[d][i] */
static void scatter_out_row(const rows_task *rt, uint64_t i) {
    const g3_vision *v = rt->v;
    const uint32_t D = v->head_dim;
    float *dst = v->att + (rt->q0 + i) * v->n_embd + (size_t)rt->head * D;
    for (uint32_t d = 0; d < D; d++) dst[d] = v->ot[(size_t)d * rt->Tq + i];
}

/* att (N, W) = softmax(q k^T) v per head, bidirectional over all patches
 * (q is already scaled) */
static void attention(g3_vision *v, rows_task *rt) {
    const uint32_t N = v->n_patches, W = v->n_embd, D = v->head_dim;
    for (uint32_t h = 0; h < v->n_head; h++) {
        rt->head = h;
        run_rows(rt, transpose_v_row, N);
        /* K_h as a weight matrix: N rows of D values, W floats apart */
        const g3_matrix kh = {.data = v->kk + (size_t)h * D, .type = G3_TYPE_F32, .n_in = D, .n_out = N,
                              .row_bytes = (uint64_t)W * sizeof(float)};
        for (uint32_t q0 = 0; q0 < N; q0 += v->q_rows) {
            const uint32_t Tq = N - q0 < v->q_rows ? N - q0 : v->q_rows;
            /* scores (Tq, N) = q_h[q0 .. q0+Tq) @ K_h^T */
            const g3_mm_in in_s = {Tq, D, v->q + (size_t)q0 * W + (size_t)h * D, W, NULL};
            const g3_mm_out out_s = {&kh, v->scores, N};
            g3_matmul(&v->mm, &in_s, &out_s, 1);
            run_rows(rt, softmax_row, Tq);
            /* ot (D, Tq) = vt (D, N) @ P^T: P's Tq rows are the weights, so
             * the threads share the queries */
            const g3_matrix pm = {.data = v->scores, .type = G3_TYPE_F32, .n_in = N, .n_out = Tq,
                                  .row_bytes = (uint64_t)N * sizeof(float)};
            const g3_mm_in in_o = {D, N, v->vt, N, NULL};
            const g3_mm_out out_o = {&pm, v->ot, Tq};
            g3_matmul(&v->mm, &in_o, &out_o, 1);
            rt->q0 = q0;
            rt->Tq = Tq;
            run_rows(rt, scatter_out_row, Tq);
        }
    }
}

/* ---- products ---- */

/* The 8-bit form of x (T rows of K, stride ld) when any of the n weights
 * takes one on this path; NULL otherwise. */
static const g3_qa *q8_input(g3_vision *v, const g3_matrix *const *ws, uint32_t n, const float *x, size_t ld,
                             uint32_t T, uint32_t K) {
    bool want = false;
    for (uint32_t i = 0; i < n; i++) want = want || g3_mm_wants_q8(&v->mm, ws[i]);
    if (!want || K % G3_QA_BLOCK || K > v->qa.cap_K) return NULL;
    g3_mm_quantize_input(&v->mm, x, ld, T, K, &v->qa);
    return &v->qa;
}

/* out (N, n_out) = x (N, K) @ W^T */
static void linear(g3_vision *v, const g3_matrix *w, const float *x, uint32_t K, float *out) {
    const g3_matrix *ws[1] = {w};
    const g3_mm_in in = {v->n_patches, K, x, K, q8_input(v, ws, 1, x, K, v->n_patches, K)};
    const g3_mm_out o = {w, out, (size_t)w->n_out};
    g3_matmul(&v->mm, &in, &o, 1);
}

static void encoder_block(g3_vision *v, rows_task *rt, uint32_t il) {
    const g3_siglip_layer *L = &v->layers[il];
    const g3_siglip_layer *next = il + 1 < v->n_layer ? &v->layers[il + 1] : NULL;
    const uint32_t N = v->n_patches, W = v->n_embd, F = v->n_ff;
    rt->L = L;

    /* xb = LN1(x) (from the previous step); q, k, v (N, W) = xb @ W^T + b */
    const g3_matrix *qkv[3] = {&L->wq, &L->wk, &L->wv};
    const g3_mm_in in = {N, W, v->xb, W, q8_input(v, qkv, 3, v->xb, W, N, W)};
    const g3_mm_out outs[3] = {{&L->wq, v->q, W}, {&L->wk, v->kk, W}, {&L->wv, v->vv, W}};
    g3_matmul(&v->mm, &in, outs, 3);
    run_rows(rt, qkv_bias_row, N);

    /* att (N, W) = attention; x += att @ Wo^T + bo; xb = LN2(x) */
    attention(v, rt);
    linear(v, &L->wo, v->att, W, v->xb);
    rt->bias = L->bo;
    rt->ln_w = L->ln2_w;
    rt->ln_b = L->ln2_b;
    run_rows(rt, residual_row, N);

    /* h (N, F) = gelu(xb @ Wup^T + b); x += h @ Wdown^T + b; xb = LN1 of
     * the next block, or the post LayerNorm after the last */
    linear(v, &L->w_up, v->xb, W, v->h);
    run_rows(rt, gelu_row, N);
    linear(v, &L->w_down, v->h, F, v->xb);
    rt->bias = L->b_down;
    rt->ln_w = next ? next->ln1_w : v->post_w;
    rt->ln_b = next ? next->ln1_b : v->post_b;
    run_rows(rt, residual_row, N);
}

/* pooled[ty][tx] = mean of the pool x pool patches under it (xb holds the
 * post-LayerNorm patches), then RMSNorm * soft_emb_norm */
static void pool_row(const rows_task *rt, uint64_t tok) {
    const g3_vision *v = rt->v;
    const uint32_t W = v->n_embd, k = v->pool, out_side = v->side / k;
    const uint32_t ty = (uint32_t)(tok / out_side), tx = (uint32_t)(tok % out_side);
    float *dst = v->pooled + tok * W;
    memset(dst, 0, sizeof(float) * W);
    for (uint32_t ky = 0; ky < k; ky++)
        for (uint32_t kx = 0; kx < k; kx++) {
            const float *src = v->xb + ((size_t)(ty * k + ky) * v->side + tx * k + kx) * W;
            for (uint32_t i = 0; i < W; i++) dst[i] += src[i];
        }
    const float inv = 1.0f / (float)(k * k);
    for (uint32_t i = 0; i < W; i++) dst[i] *= inv;
    v->k->rmsnorm(dst, dst, v->soft_norm, W, v->eps);
}

int g3_siglip_encode(g3_vision *v, const float *pixels, float *out, g3_error *err) {
    if (!pixels || !out) return g3_fail(err, "g3_vision_encode: no pixels or no output buffer");
    const uint32_t N = v->n_patches, W = v->n_embd;
    rows_task rt = {.v = v, .pixels = pixels};

    /* x (N, W) = patches (N, 3*p*p) @ conv^T + bias + position embedding */
    run_rows(&rt, im2col_row, N);
    linear(v, &v->patch_w, v->h, (uint32_t)v->patch_w.n_in, v->x);
    run_rows(&rt, embed_row, N);
    rt.ln_w = v->layers[0].ln1_w;
    rt.ln_b = v->layers[0].ln1_b;
    run_rows(&rt, ln_row, N);

    for (uint32_t il = 0; il < v->n_layer; il++) encoder_block(v, &rt, il);

    /* tokens (n_tokens, W) = RMSNorm(avgpool(xb)) * soft_emb_norm;
     * out (n_tokens, n_proj) = tokens @ input_projection */
    run_rows(&rt, pool_row, v->n_tokens);
    const g3_mm_in in = {v->n_tokens, W, v->pooled, W, NULL};
    const g3_mm_out o = {&v->proj, out, v->n_proj};
    g3_matmul(&v->mm, &in, &o, 1);
    return 0;
}
