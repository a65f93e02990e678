#include "model/gemma3_weights.h"

#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "base/cpu_features.h"
#include "base/error.h"
#include "base/mapped_file.h"
#include "tensor/repack.h"
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
    m->x16 = NULL;
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
    w->n_layer = c->n_layer;
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

#define X16_MEMORY_RESERVE ((uint64_t)256 << 20)

/* The matrices of the model, the tied output once. */
static uint32_t all_matrices(g3_weights *w, g3_matrix **out, uint32_t cap) {
    uint32_t n = 0;
    if (cap < 2 + 7 * (uint64_t)w->n_layer) return 0;
    out[n++] = &w->token_embd;
    if (!w->output_tied) out[n++] = &w->output;
    for (uint32_t il = 0; w->layers && il < w->n_layer; il++) {
        g3_layer_weights *L = &w->layers[il];
        g3_matrix *m[] = {&L->wq, &L->wk, &L->wv, &L->wo, &L->w_gate, &L->w_up, &L->w_down};
        for (size_t i = 0; i < sizeof m / sizeof m[0]; i++) out[n++] = m[i];
    }
    return n;
}

uint64_t g3_weights_make_x16(g3_weights *w, g3_thread_pool *pool) {
    static pthread_mutex_t lock = PTHREAD_MUTEX_INITIALIZER;
    g3_matrix *mats[2 + 7 * G3_MAX_LAYERS];
    uint64_t bytes = 0;
    pthread_mutex_lock(&lock);
    if (!w->x16_made) {
        w->x16_made = true;
        const uint32_t n = all_matrices(w, mats, sizeof mats / sizeof mats[0]);
        for (uint32_t i = 0; i < n; i++) {
            g3_matrix *m = mats[i];
            /* the copy is new memory until the file's pages are given back:
             * on a machine that is short of it, keep the file's layout rather
             * than push it into swap or the OOM killer (the copy of an
             * overcommitted allocation fails only when it is touched) */
            const uint64_t avail = g3_mem_available_bytes();
            if (avail && avail < m->n_out * m->row_bytes + X16_MEMORY_RESERVE) continue;
            if (m->x16 || !(m->x16 = g3_x16_pack_matrix(m, pool))) continue;
            const uint64_t grouped = g3_x16_grouped_rows(m) * m->row_bytes;
            bytes += grouped;
            g3_drop_pages(m->data, grouped);
        }
        if (w->output_tied) w->output.x16 = w->token_embd.x16;
    }
    pthread_mutex_unlock(&lock);
    return bytes;
}

void g3_weights_free(g3_weights *w) {
    g3_matrix *mats[2 + 7 * G3_MAX_LAYERS];
    const uint32_t n = all_matrices(w, mats, sizeof mats / sizeof mats[0]);
    for (uint32_t i = 0; i < n; i++) free((void *)mats[i]->x16);
    free(w->norms);
    free(w->layers);
    memset(w, 0, sizeof *w);
}
