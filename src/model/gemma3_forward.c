/* gemma3_forward.c: contexts and the Gemma 3 forward pass.
 *
 * A batch of tokens goes through the model layer by layer: every token's keys
 * and values of a layer are in the cache before any token of the batch
 * attends, which is what a bidirectional image block needs and what batched
 * matrix products will want. The conventions (checked against llama.cpp and
 * the golden data) are listed at each step. */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "base/error.h"
#include "model/gemma3_model.h"
#include "model/kv_cache.h"
#include "tensor/ops.h"

#define G3_DEFAULT_UBATCH 512

struct g3_context {
    const g3_model *model;
    g3_kv_cache kv;
    uint32_t n_ubatch;
    /* scratch, sized once: nothing is allocated while evaluating */
    float *x;      /* n_ubatch x n_embd: the residual stream */
    float *q;      /* n_ubatch x n_head*head_dim */
    float *att;    /* n_ubatch x n_head*head_dim: attention output */
    float *xb;     /* n_embd */
    float *gate;   /* n_ff */
    float *up;     /* n_ff */
    float *scores; /* n_ctx */
};

int g3_context_new(const g3_model *model, const g3_context_params *params, g3_context **out,
                   g3_error *err) {
    *out = NULL;
    const g3_config *c = &model->cfg;
    uint32_t n_ctx = params && params->n_ctx ? params->n_ctx : c->n_ctx_train;
    uint32_t n_ubatch = params && params->n_ubatch ? params->n_ubatch : G3_DEFAULT_UBATCH;
    if (n_ctx > (1u << 24)) return g3_fail(err, "context size %u is too large (limit 16777216)", n_ctx);
    if (n_ubatch > n_ctx) n_ubatch = n_ctx;
    g3_context *ctx = calloc(1, sizeof *ctx);
    if (!ctx) return g3_fail(err, "out of memory");
    ctx->model = model;
    ctx->n_ubatch = n_ubatch;
    /* slack = n_ubatch - 1 would do; one more keeps the arithmetic obvious */
    if (g3_kv_cache_init(&ctx->kv, c, n_ctx, n_ubatch, err)) {
        free(ctx);
        return -1;
    }
    size_t qd = (size_t)c->n_head * c->head_dim;
    ctx->x = malloc(sizeof(float) * n_ubatch * c->n_embd);
    ctx->q = malloc(sizeof(float) * n_ubatch * qd);
    ctx->att = malloc(sizeof(float) * n_ubatch * qd);
    ctx->xb = malloc(sizeof(float) * c->n_embd);
    ctx->gate = malloc(sizeof(float) * c->n_ff);
    ctx->up = malloc(sizeof(float) * c->n_ff);
    ctx->scores = malloc(sizeof(float) * n_ctx);
    if (!ctx->x || !ctx->q || !ctx->att || !ctx->xb || !ctx->gate || !ctx->up || !ctx->scores) {
        g3_context_free(ctx);
        return g3_fail(err, "out of memory for the forward-pass scratch");
    }
    *out = ctx;
    return 0;
}

void g3_context_free(g3_context *ctx) {
    if (!ctx) return;
    g3_kv_cache_free(&ctx->kv);
    free(ctx->x);
    free(ctx->q);
    free(ctx->att);
    free(ctx->xb);
    free(ctx->gate);
    free(ctx->up);
    free(ctx->scores);
    free(ctx);
}

uint32_t g3_context_n_past(const g3_context *ctx) { return ctx->kv.n_past; }
uint32_t g3_context_n_ctx(const g3_context *ctx) { return ctx->kv.n_ctx; }

int g3_context_truncate(g3_context *ctx, uint32_t n_keep, g3_error *err) {
    const g3_config *c = &ctx->model->cfg;
    if (n_keep >= ctx->kv.n_past) return 0;
    /* the next query (at n_keep) needs the window of keys before it */
    uint32_t needed_from = n_keep + 1 > c->window ? n_keep + 1 - c->window : 0;
    if (c->window && needed_from < ctx->kv.n_valid_from)
        return g3_fail(err,
                       "cannot roll back to position %u: the sliding-window cache keeps positions "
                       "from %u on; evaluate the sequence again",
                       n_keep, ctx->kv.n_valid_from);
    ctx->kv.n_past = n_keep;
    return 0;
}

/* One attention head of one query: softmax(q . K[lo..hi]) . V[lo..hi]. */
static void attend_head(const g3_context *ctx, uint32_t il, const float *q, uint32_t kv_off,
                        uint32_t lo, uint32_t hi, float *out) {
    const g3_config *c = &ctx->model->cfg;
    const uint32_t D = c->head_dim, n = hi - lo + 1;
    float *s = ctx->scores;
    for (uint32_t j = 0; j < n; j++) {
        const float *k = g3_kv_key(&ctx->kv, il, lo + j) + kv_off;
        float dot = 0.0f;
        for (uint32_t d = 0; d < D; d++) dot += q[d] * k[d];
        s[j] = dot;
    }
    if (c->attn_softcap > 0.0f) g3_softcap(s, (int)n, c->attn_softcap);
    g3_softmax(s, (int)n);
    memset(out, 0, sizeof(float) * D);
    for (uint32_t j = 0; j < n; j++) {
        const float *v = g3_kv_value(&ctx->kv, il, lo + j) + kv_off;
        for (uint32_t d = 0; d < D; d++) out[d] += s[j] * v[d];
    }
}

/* Forward pass over n positions pos0..pos0+n-1 (n <= n_ubatch). Inputs are
 * token ids, or embeddings when tokens is NULL. */
static void forward_ubatch(g3_context *ctx, const int32_t *tokens, const float *embd, uint32_t n,
                           bool bidirectional, float *logits, bool all_logits) {
    const g3_model *m = ctx->model;
    const g3_config *c = &m->cfg;
    const g3_weights *w = &m->w;
    const uint32_t E = c->n_embd, D = c->head_dim, H = c->n_head, HKV = c->n_head_kv;
    const uint32_t QD = H * D, group = H / HKV, pos0 = ctx->kv.n_past;
    const float eps = c->rms_eps;

    /* x (n, E) = token_embd[tok] * sqrt(E); embeddings of images are not scaled */
    const float emb_scale = sqrtf((float)E);
    for (uint32_t t = 0; t < n; t++) {
        float *x = ctx->x + (size_t)t * E;
        if (tokens) {
            g3_matrix_get_row(&w->token_embd, (uint64_t)tokens[t], x);
            for (uint32_t i = 0; i < E; i++) x[i] *= emb_scale;
        } else {
            memcpy(x, embd + (size_t)t * E, sizeof(float) * E);
        }
    }

    for (uint32_t il = 0; il < c->n_layer; il++) {
        const g3_layer_weights *L = &w->layers[il];
        const bool global = c->is_global[il];
        /* local layers: base 10000 (or freq_base_swa) and no linear scaling */
        const double rope_base = global ? c->rope_base_global : c->rope_base_local;
        const double rope_fscale = global ? 1.0 / c->rope_scale_global : 1.0;

        /* attention inputs: q, and k/v written straight into the cache */
        for (uint32_t t = 0; t < n; t++) {
            const uint32_t pos = pos0 + t;
            float *x = ctx->x + (size_t)t * E, *q = ctx->q + (size_t)t * QD;
            float *k = g3_kv_key(&ctx->kv, il, pos), *v = g3_kv_value(&ctx->kv, il, pos);
            g3_rmsnorm(ctx->xb, x, L->attn_norm, (int)E, eps);
            g3_matvec(q, &L->wq, ctx->xb); /* q (H*D) = Wq (H*D, E) @ xb (E) */
            g3_matvec(k, &L->wk, ctx->xb); /* k (HKV*D) = Wk (HKV*D, E) @ xb */
            g3_matvec(v, &L->wv, ctx->xb); /* v (HKV*D) = Wv (HKV*D, E) @ xb */
            /* QK-norm per head, then RoPE (NEOX), then the attention scale on q */
            for (uint32_t h = 0; h < H; h++) {
                float *qh = q + h * D;
                g3_rmsnorm(qh, qh, L->q_norm, (int)D, eps);
                g3_rope_neox(qh, (int)D, pos, rope_base, rope_fscale);
                for (uint32_t d = 0; d < D; d++) qh[d] *= c->attn_scale;
            }
            for (uint32_t h = 0; h < HKV; h++) {
                g3_rmsnorm(k + h * D, k + h * D, L->k_norm, (int)D, eps);
                g3_rope_neox(k + h * D, (int)D, pos, rope_base, rope_fscale);
            }
        }

        /* attention: causal (or bidirectional within the batch); a local
         * layer's query at p sees keys p-W+1 .. p */
        for (uint32_t t = 0; t < n; t++) {
            const uint32_t pos = pos0 + t;
            const uint32_t hi = bidirectional ? pos0 + n - 1 : pos;
            const uint32_t lo = (!global && c->window && pos + 1 > c->window) ? pos + 1 - c->window : 0;
            float *q = ctx->q + (size_t)t * QD, *att = ctx->att + (size_t)t * QD;
            for (uint32_t h = 0; h < H; h++)
                attend_head(ctx, il, q + h * D, (h / group) * D, lo, hi, att + h * D);
            float *x = ctx->x + (size_t)t * E;
            g3_matvec(ctx->xb, &L->wo, att); /* xb (E) = Wo (E, H*D) @ att (H*D) */
            g3_rmsnorm(ctx->xb, ctx->xb, L->post_attn_norm, (int)E, eps);
            for (uint32_t i = 0; i < E; i++) x[i] += ctx->xb[i];
        }

        /* GeGLU feed-forward with sandwich norms */
        for (uint32_t t = 0; t < n; t++) {
            float *x = ctx->x + (size_t)t * E;
            g3_rmsnorm(ctx->xb, x, L->ffn_norm, (int)E, eps);
            g3_matvec(ctx->gate, &L->w_gate, ctx->xb); /* gate (F) = Wg (F, E) @ xb */
            g3_matvec(ctx->up, &L->w_up, ctx->xb);     /* up (F) = Wu (F, E) @ xb */
            g3_gelu_tanh(ctx->gate, (int)c->n_ff);
            for (uint32_t i = 0; i < c->n_ff; i++) ctx->gate[i] *= ctx->up[i];
            g3_matvec(ctx->xb, &L->w_down, ctx->gate); /* xb (E) = Wd (E, F) @ gate */
            g3_rmsnorm(ctx->xb, ctx->xb, L->post_ffn_norm, (int)E, eps);
            for (uint32_t i = 0; i < E; i++) x[i] += ctx->xb[i];
        }
    }

    /* logits (V) = output (V, E) @ RMSNorm(x); tied to token_embd in Gemma 3 */
    if (logits) {
        for (uint32_t t = all_logits ? 0 : n - 1; t < n; t++) {
            float *row = all_logits ? logits + (size_t)t * c->n_vocab : logits;
            g3_rmsnorm(ctx->xb, ctx->x + (size_t)t * E, w->output_norm, (int)E, eps);
            g3_matvec(row, &w->output, ctx->xb);
            if (c->final_softcap > 0.0f) g3_softcap(row, (int)c->n_vocab, c->final_softcap);
        }
    }

    /* the ring of a local layer now holds positions from here on */
    ctx->kv.n_past = pos0 + n;
    for (uint32_t il = 0; il < c->n_layer; il++) {
        uint32_t slots = ctx->kv.n_slots[il];
        if (ctx->kv.n_past > slots && ctx->kv.n_past - slots > ctx->kv.n_valid_from)
            ctx->kv.n_valid_from = ctx->kv.n_past - slots;
    }
}

static int check_room(const g3_context *ctx, uint32_t n, g3_error *err) {
    if (n == 0) return g3_fail(err, "empty sequence: nothing to evaluate");
    if ((uint64_t)ctx->kv.n_past + n > ctx->kv.n_ctx)
        return g3_fail(err,
                       "sequence of %u positions does not fit the context: %u already used, "
                       "context size %u",
                       n, ctx->kv.n_past, ctx->kv.n_ctx);
    return 0;
}

/* Splits the work into ubatches; logits rows follow the positions. */
static void eval_split(g3_context *ctx, const int32_t *tokens, const float *embd, uint32_t n,
                       float *logits, bool all_logits) {
    const g3_config *c = &ctx->model->cfg;
    for (uint32_t done = 0; done < n;) {
        uint32_t len = n - done < ctx->n_ubatch ? n - done : ctx->n_ubatch;
        bool last = done + len == n;
        float *rows = NULL;
        if (logits && all_logits) rows = logits + (size_t)done * c->n_vocab;
        else if (logits && last) rows = logits;
        forward_ubatch(ctx, tokens ? tokens + done : NULL, embd ? embd + (size_t)done * c->n_embd : NULL,
                       len, false, rows, all_logits);
        done += len;
    }
}

int g3_eval(g3_context *ctx, const int32_t *tokens, uint32_t n, float *logits, bool all_logits,
            g3_error *err) {
    if (check_room(ctx, n, err)) return -1;
    const uint32_t n_vocab = ctx->model->cfg.n_vocab;
    for (uint32_t i = 0; i < n; i++)
        if (tokens[i] < 0 || (uint32_t)tokens[i] >= n_vocab)
            return g3_fail(err, "token id %d at index %u is outside the vocabulary (%u tokens)",
                           tokens[i], i, n_vocab);
    eval_split(ctx, tokens, NULL, n, logits, all_logits);
    return 0;
}

int g3_eval_embeddings(g3_context *ctx, const float *embd, uint32_t n, bool bidirectional,
                       float *logits, bool all_logits, g3_error *err) {
    if (check_room(ctx, n, err)) return -1;
    if (!bidirectional) {
        eval_split(ctx, NULL, embd, n, logits, all_logits);
        return 0;
    }
    /* one image must be one batch: its positions see each other */
    if (n > ctx->n_ubatch)
        return g3_fail(err, "a bidirectional block of %u positions exceeds the batch size %u", n,
                       ctx->n_ubatch);
    forward_ubatch(ctx, NULL, embd, n, true, logits, all_logits);
    return 0;
}
