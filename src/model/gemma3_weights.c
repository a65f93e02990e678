#include "model/gemma3_weights.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "base/error.h"
#include "tensor/type_info.h"
#include "tensor/type_ops.h"

static int check_type(const char *name, uint32_t type, g3_error *err) {
    char buf[32];
    if (!g3_type_ops_get(type))
        return g3_fail(err,
                       "tensor '%s' has type %s, which gemma-chat does not support "
                       "(supported: F32, F16, BF16, Q8_0, Q4_0, Q5_0, Q4_1, Q5_1, IQ4_NL, Q4_K, Q5_K, Q6_K)",
                       name, g3_type_name(type, buf));
    return 0;
}

int g3_weights_get_matrix(const g3_gguf *g, const char *name, uint64_t n_in, uint64_t n_out,
                          g3_matrix *m, g3_error *err) {
    const g3_gguf_tensor *t = g3_gguf_find_tensor(g, name);
    if (!t) return g3_fail(err, "missing tensor '%s'", name);
    if (t->n_dims != 2 || t->ne[0] != n_in || t->ne[1] != n_out)
        return g3_fail(err, "tensor '%s' has shape [%llu, %llu, %llu, %llu], expected [%llu, %llu]", name,
                       (unsigned long long)t->ne[0], (unsigned long long)t->ne[1],
                       (unsigned long long)t->ne[2], (unsigned long long)t->ne[3],
                       (unsigned long long)n_in, (unsigned long long)n_out);
    if (check_type(name, t->type, err)) return -1;
    m->data = t->data;
    m->type = t->type;
    m->n_in = n_in;
    m->n_out = n_out;
    return g3_type_row_bytes(t->type, n_in, &m->row_bytes, err) ? g3_error_prefix(err, "tensor '%s': ", name)
                                                                 : 0;
}

/* Norm weights are tiny; an f32 copy keeps the hot loops type-free. */
static int get_vector(const g3_gguf *g, const char *name, uint64_t n, float *dst, g3_error *err) {
    const g3_gguf_tensor *t = g3_gguf_find_tensor(g, name);
    if (!t) return g3_fail(err, "missing tensor '%s'", name);
    if (t->n_elements != n || t->ne[0] != n)
        return g3_fail(err, "tensor '%s' has %llu elements, expected a vector of %llu", name,
                       (unsigned long long)t->n_elements, (unsigned long long)n);
    if (check_type(name, t->type, err)) return -1;
    const g3_type_info *ti = g3_type_info_get(t->type);
    if (n % ti->block_size != 0)
        return g3_fail(err, "tensor '%s': %llu elements is not a multiple of the %s block", name,
                       (unsigned long long)n, ti->name);
    g3_type_ops_get(t->type)->to_float(t->data, dst, (int64_t)n);
    return 0;
}

static int load_layer(const g3_gguf *g, const g3_config *c, uint32_t il, g3_layer_weights *L,
                      float *norms, g3_error *err) {
    char name[96];
    const uint64_t E = c->n_embd, D = c->head_dim, Q = (uint64_t)c->n_head * D,
                   KV = (uint64_t)c->n_head_kv * D, F = c->n_ff;
    struct { const char *suffix; uint64_t n; const float **dst; } vecs[] = {
        {"attn_norm", E, &L->attn_norm},         {"attn_q_norm", D, &L->q_norm},
        {"attn_k_norm", D, &L->k_norm},          {"post_attention_norm", E, &L->post_attn_norm},
        {"ffn_norm", E, &L->ffn_norm},           {"post_ffw_norm", E, &L->post_ffn_norm},
    };
    for (size_t i = 0; i < sizeof vecs / sizeof vecs[0]; i++) {
        snprintf(name, sizeof name, "blk.%u.%s.weight", il, vecs[i].suffix);
        if (get_vector(g, name, vecs[i].n, norms, err)) return -1;
        *vecs[i].dst = norms;
        norms += vecs[i].n;
    }
    struct { const char *suffix; uint64_t n_in, n_out; g3_matrix *dst; } mats[] = {
        {"attn_q", E, Q, &L->wq},      {"attn_k", E, KV, &L->wk},    {"attn_v", E, KV, &L->wv},
        {"attn_output", Q, E, &L->wo}, {"ffn_gate", E, F, &L->w_gate}, {"ffn_up", E, F, &L->w_up},
        {"ffn_down", F, E, &L->w_down},
    };
    for (size_t i = 0; i < sizeof mats / sizeof mats[0]; i++) {
        snprintf(name, sizeof name, "blk.%u.%s.weight", il, mats[i].suffix);
        if (g3_weights_get_matrix(g, name, mats[i].n_in, mats[i].n_out, mats[i].dst, err)) return -1;
    }
    return 0;
}

int g3_weights_load(const g3_gguf *g, const g3_config *c, g3_weights *w, g3_error *err) {
    memset(w, 0, sizeof *w);
    const size_t per_layer = 4 * (size_t)c->n_embd + 2 * (size_t)c->head_dim;
    w->norms = malloc(sizeof(float) * (per_layer * c->n_layer + c->n_embd));
    w->layers = calloc(c->n_layer, sizeof *w->layers);
    if (!w->norms || !w->layers) {
        g3_weights_free(w);
        return g3_fail(err, "out of memory for the norm weights");
    }
    if (g3_weights_get_matrix(g, "token_embd.weight", c->n_embd, c->n_vocab, &w->token_embd, err))
        goto fail;
    if (g3_gguf_find_tensor(g, "output.weight")) {
        if (g3_weights_get_matrix(g, "output.weight", c->n_embd, c->n_vocab, &w->output, err)) goto fail;
    } else {
        w->output = w->token_embd; /* Gemma ties the output to the embedding */
        w->output_tied = true;
    }
    float *norms = w->norms;
    for (uint32_t il = 0; il < c->n_layer; il++) {
        if (load_layer(g, c, il, &w->layers[il], norms, err)) goto fail;
        norms += per_layer;
    }
    if (get_vector(g, "output_norm.weight", c->n_embd, norms, err)) goto fail;
    w->output_norm = norms;
    return 0;
fail:
    g3_weights_free(w);
    return -1;
}

void g3_weights_free(g3_weights *w) {
    free(w->norms);
    free(w->layers);
    memset(w, 0, sizeof *w);
}
