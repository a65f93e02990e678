/* gemma3_forward.c: contexts and the Gemma 3 forward pass.
 *
 * A batch (ubatch) of T tokens goes through the model layer by layer, as
 * matrix-matrix products: every weight matrix is read once per batch
 * (tensor/matmul.h), and every token's keys and values of a layer are in the
 * cache before any token of the batch attends (what a bidirectional image
 * block needs). Decoding is the same code with T = 1, where the products
 * become matrix-vector products streamed at memory speed. The work runs on
 * the context's thread pool; the kernels come from the CPU path chosen at
 * context creation (scalar reference, AVX2, AVX-512; G3_CPU forces one).
 *
 * The conventions (checked against llama.cpp and the golden data) are noted
 * at each step. Nothing is allocated while evaluating. */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "base/checked_math.h"
#include "base/cpu_features.h"
#include "base/error.h"
#include "base/thread_pool.h"
#include "cuda/g3_cuda.h"
#include "model/gemma3_forward.h"
#include "model/gemma3_model.h"
#include "model/kv_cache.h"
#include "model/memory_plan.h"
#include "tensor/kernels.h"
#include "tensor/matmul.h"
#include "tensor/ops.h"
#include "tensor/type_info.h"

#define G3_DEFAULT_UBATCH 512
#define G3_MAX_THREADS 512
#define G3_MAX_SEQ 256

struct g3_context {
    const g3_model *model;
    uint32_t n_seq;
    g3_kv_cache *kv;   /* n_seq caches of n_ctx positions: one per sequence */
    uint32_t n_ubatch;
    g3_thread_pool *pool;
    const g3_kernels *k;
    g3_attn_scores_fn attn_scores; /* for the cache's type */
    g3_attn_values_fn attn_values;
    g3_mm mm;
    uint64_t scratch_bytes;
    /* scratch, sized once for n_ubatch rows */
    float *x;      /* T x E: the residual stream */
    float *xb;     /* T x E: normed input of a block, then its output */
    float *q;      /* T x H*D */
    float *kk, *vv;/* T x HKV*D: new keys and values, before they enter the cache */
    float *att;    /* T x H*D: attention output */
    float *h;      /* T x F: gelu(gate) * up */
    float *scores; /* n_threads x group x n_ctx: attention weights of one item */
    double *rope;  /* [2 kinds][T][D/2][cos, sin] */
    double *rope_pw; /* [2 kinds][D/2]: base^(-2i/D) */
    /* the batch's rows: the cache each writes and reads, its position */
    g3_kv_cache **row_kv;
    uint32_t *row_pos;
    g3_qa qa;      /* 8-bit form of the input of the next product (E or H*D wide) */
    g3_qa qh;      /* 8-bit form of h */
    /* the CUDA backend: the text model runs on the GPU (src/cuda/g3_cuda.h);
     * kv[] then holds only each sequence's positions and ring sizes, the
     * rows live in device memory */
    g3_device device;
    g3_cuda_ctx *cuda;
    float *host_x;      /* U x E: the batch's input embeddings */
    uint32_t *row_seq;  /* U: the sequence of each row */
};

/* ---- sizes ---- */

typedef struct ctx_sizes {
    uint32_t n_ctx, n_ubatch, n_threads, n_seq;
    g3_kv_type kv_type;
    g3_device device;
    bool exact;
    uint64_t floats, doubles, rows, qa, qh, mm, total;
    uint64_t cuda_kv; /* CUDA: device bytes of the KV caches (total: of the scratch) */
} ctx_sizes;

static uint32_t max3(uint32_t a, uint32_t b, uint32_t c) { return a > b ? (a > c ? a : c) : (b > c ? b : c); }

static void plan_scratch(const g3_config *c, const g3_kernels *k, ctx_sizes *s) {
    const uint64_t U = s->n_ubatch, E = c->n_embd, QD = (uint64_t)c->n_head * c->head_dim,
                   KVD = (uint64_t)c->n_head_kv * c->head_dim, F = c->n_ff;
    const uint32_t wide = E > QD ? (uint32_t)E : (uint32_t)QD;
    s->floats = U * (2 * E + 2 * QD + 2 * KVD + F) + (uint64_t)s->n_threads * (c->n_head / c->n_head_kv) * s->n_ctx;
    s->doubles = 2 * U * c->head_dim + c->head_dim;
    s->rows = U * (sizeof(g3_kv_cache *) + sizeof(uint32_t));
    s->qa = g3_qa_bytes(s->n_ubatch, wide - wide % 32);
    s->qh = g3_qa_bytes(s->n_ubatch, c->n_ff - c->n_ff % 32);
    s->mm = g3_mm_bytes(k, s->n_threads, s->n_ubatch, max3(c->n_embd, (uint32_t)QD, c->n_ff));
    s->total = 4 * s->floats + 8 * s->doubles + s->rows + s->qa + s->qh + s->mm;
}

uint64_t g3_forward_scratch_bytes(const g3_config *cfg, uint32_t n_ctx, uint32_t n_ubatch, uint32_t n_threads) {
    g3_cpu_path path;
    if (g3_cpu_active_path(&path, NULL)) path = g3_cpu_features_get()->best;
    const g3_kernels *k = g3_kernels_get(path);
    ctx_sizes s = {.n_ctx = n_ctx, .n_ubatch = n_ubatch < n_ctx ? n_ubatch : n_ctx,
                   .n_threads = n_threads ? n_threads : g3_cpu_physical_cores()};
    plan_scratch(cfg, k ? k : &g3_kernels_scalar, &s);
    return s.total;
}

static int resolve_params(const g3_model *model, const g3_context_params *params, ctx_sizes *s,
                          const g3_kernels **kernels, g3_error *err) {
    const g3_config *c = &model->cfg;
    g3_cpu_path path;
    if (g3_cpu_active_path(&path, err)) return -1;
    *kernels = g3_kernels_get(path);
    if (!*kernels) return g3_fail(err, "the %s kernels are not built into this binary", g3_cpu_path_name(path));
    s->n_ctx = params && params->n_ctx ? params->n_ctx : c->n_ctx_train;
    s->n_ubatch = params && params->n_ubatch ? params->n_ubatch : G3_DEFAULT_UBATCH;
    if (s->n_ctx > (1u << 24)) return g3_fail(err, "context size %u is too large (limit 16777216)", s->n_ctx);
    if (s->n_ubatch > s->n_ctx) s->n_ubatch = s->n_ctx;
    s->n_seq = params && params->n_seq ? params->n_seq : 1;
    if (s->n_seq > G3_MAX_SEQ) return g3_fail(err, "%u sequences requested, at most %u", s->n_seq, G3_MAX_SEQ);
    const uint32_t usable = g3_cpu_usable_cpus();
    s->n_threads = params && params->n_threads ? params->n_threads : g3_cpu_physical_cores();
    if (s->n_threads > usable || s->n_threads > G3_MAX_THREADS)
        return g3_fail(err, "%u threads requested, but this process can run on %u CPUs", s->n_threads, usable);
    s->kv_type = params ? params->kv_type : G3_KV_F32;
    if (g3_plan_kv_check(c, s->kv_type, err)) return -1;
    s->exact = params && params->exact_activations;
    const g3_device asked = params ? params->device : G3_DEVICE_AUTO;
    char why[256] = "";
    s->device = g3_device_resolve(asked, why, sizeof why);
    if (asked == G3_DEVICE_CUDA && s->device != G3_DEVICE_CUDA)
        return g3_fail(err, "the CUDA device was asked for, but %s", why);
    if (s->device == G3_DEVICE_CUDA) {
        if (g3_cuda_kv_type_check(s->kv_type, err)) return -1;
        uint32_t slots[G3_MAX_LAYERS];
        for (uint32_t il = 0; il < c->n_layer; il++) slots[il] = g3_plan_kv_layer_slots(c, il, s->n_ctx, s->n_ubatch);
        const g3_cuda_ctx_params cp = {.n_ctx = s->n_ctx, .n_ubatch = s->n_ubatch, .n_seq = s->n_seq,
                                       .kv_type = s->kv_type, .n_slots = slots, .exact = s->exact};
        g3_cuda_ctx_bytes(c, &cp, &s->cuda_kv, &s->total);
        return 0;
    }
    plan_scratch(c, *kernels, s);
    return 0;
}

int g3_context_memory(const g3_model *model, const g3_context_params *params, uint64_t *kv_bytes,
                      uint64_t *scratch_bytes, g3_error *err) {
    ctx_sizes s = {0};
    const g3_kernels *k = NULL;
    if (resolve_params(model, params, &s, &k, err)) return -1;
    *kv_bytes = s.device == G3_DEVICE_CUDA ? s.cuda_kv
                                            : g3_kv_cache_bytes(&model->cfg, s.n_ctx, s.n_ubatch, s.kv_type) * s.n_seq;
    *scratch_bytes = s.total;
    return 0;
}

/* ---- devices ---- */

const char *g3_device_name(g3_device d) {
    switch (d) {
    case G3_DEVICE_AUTO: return "auto";
    case G3_DEVICE_CPU: return "cpu";
    case G3_DEVICE_CUDA: return "cuda";
    default: return NULL;
    }
}

int g3_device_from_name(const char *name) {
    for (int d = G3_DEVICE_AUTO; d <= G3_DEVICE_CUDA; d++)
        if (!strcmp(name, g3_device_name((g3_device)d))) return d;
    return -1;
}

/* AUTO can be pinned for a whole process with G3_DEVICE=cpu|cuda (as G3_CPU
 * pins the kernel path): the CPU test suite on a GPU machine, say. */
g3_device g3_device_resolve(g3_device d, char *why, size_t why_cap) {
    if (why && why_cap) why[0] = 0;
    const char *env = getenv("G3_DEVICE");
    if (d == G3_DEVICE_AUTO && env && *env) {
        const int e = g3_device_from_name(env);
        if (e == G3_DEVICE_CPU) {
            if (why && why_cap) snprintf(why, why_cap, "G3_DEVICE=cpu");
            return G3_DEVICE_CPU;
        }
        if (e == G3_DEVICE_CUDA) d = G3_DEVICE_CUDA;
    }
    if (d == G3_DEVICE_CPU) return G3_DEVICE_CPU;
    return g3_cuda_device_count(why, why_cap) > 0 ? G3_DEVICE_CUDA : G3_DEVICE_CPU;
}

g3_device g3_context_device(const g3_context *ctx) { return ctx->device; }

static int model_on_device(const g3_model *model, uint64_t *upload_bytes, bool upload, g3_error *err);

int g3_gpu_context_memory(const g3_model *model, const g3_context_params *params, uint64_t *weights_bytes,
                          uint64_t *kv_bytes, uint64_t *scratch_bytes, g3_error *err) {
    *weights_bytes = *kv_bytes = *scratch_bytes = 0;
    if (!g3_cuda_built())
        return g3_fail(err, "this gemma-chat was built without the CUDA backend (configure with -DG3_CUDA=ON)");
    g3_context_params p = params ? *params : (g3_context_params){0};
    p.device = G3_DEVICE_CPU; /* the sizes, without asking for a GPU */
    ctx_sizes s = {0};
    const g3_kernels *k = NULL;
    if (resolve_params(model, &p, &s, &k, err) || g3_cuda_kv_type_check(s.kv_type, err)) return -1;
    const g3_config *c = &model->cfg;
    uint32_t slots[G3_MAX_LAYERS];
    for (uint32_t il = 0; il < c->n_layer; il++) slots[il] = g3_plan_kv_layer_slots(c, il, s.n_ctx, s.n_ubatch);
    const g3_cuda_ctx_params cp = {.n_ctx = s.n_ctx, .n_ubatch = s.n_ubatch, .n_seq = s.n_seq, .kv_type = s.kv_type,
                                   .n_slots = slots, .exact = s.exact};
    g3_cuda_ctx_bytes(c, &cp, kv_bytes, scratch_bytes);
    if (model->cuda) *weights_bytes = g3_cuda_model_bytes(model->cuda);
    else if (model_on_device(model, weights_bytes, false, err)) return -1;
    return 0;
}

int g3_gpu_info_get(g3_gpu_info *out, g3_error *err) {
    memset(out, 0, sizeof *out);
    g3_cuda_device_info info;
    if (g3_cuda_device_info_get(&info, err)) return -1;
    snprintf(out->name, sizeof out->name, "%s", info.name);
    out->total_bytes = info.total_bytes;
    out->used_bytes = info.total_bytes - info.free_bytes;
    return 0;
}

/* ---- what a decode step reads ---- */

void g3_model_get_stats(const g3_model *model, g3_model_stats *out) {
    memset(out, 0, sizeof *out);
    const g3_gguf *g = model->gguf;
    uint64_t per_type[G3_TYPE_COUNT] = {0};
    for (uint64_t i = 0; i < g->n_tensors; i++) {
        const g3_gguf_tensor *t = &g->tensors[i];
        out->weight_bytes += t->n_bytes;
        if (t->n_dims == 2 && t->type < G3_TYPE_COUNT) per_type[t->type] += t->n_bytes;
    }
    uint32_t best = 0, kinds = 0;
    for (uint32_t ty = 0; ty < G3_TYPE_COUNT; ty++) {
        if (per_type[ty]) kinds++;
        if (per_type[ty] > per_type[best]) best = ty;
    }
    char buf[32];
    snprintf(out->main_type, sizeof out->main_type, "%s", g3_type_name(best, buf));
    out->mixed = kinds > 1;
    /* everything once, except the embedding table: one row, unless it is
     * also the output matrix */
    const g3_matrix *e = &model->w.token_embd;
    out->decode_bytes = out->weight_bytes;
    if (!model->w.output_tied) out->decode_bytes -= e->n_out * e->row_bytes - e->row_bytes;
}

/* ---- contexts ---- */

static float *alloc_floats(uint64_t n) {
    void *p = NULL;
    return posix_memalign(&p, 64, (size_t)(n ? n : 1) * sizeof(float)) == 0 ? p : NULL;
}

/* A cache that holds only positions (the rows are on the GPU): the ring
 * sizes of the planner, no host memory for keys and values. */
static int kv_meta_init(g3_kv_cache *kv, const g3_config *cfg, uint32_t n_ctx, uint32_t slack, g3_kv_type type,
                        g3_error *err) {
    memset(kv, 0, sizeof *kv);
    kv->n_layer = cfg->n_layer;
    kv->kv_dim = cfg->n_head_kv * cfg->head_dim;
    kv->type = type;
    kv->n_ctx = n_ctx;
    kv->n_slots = calloc(cfg->n_layer, sizeof *kv->n_slots);
    if (!kv->n_slots) return g3_fail(err, "out of memory");
    for (uint32_t il = 0; il < cfg->n_layer; il++) kv->n_slots[il] = g3_plan_kv_layer_slots(cfg, il, n_ctx, slack);
    return 0;
}

/* The weights' device copy, made by the first CUDA context of the model
 * and kept with it (the model is otherwise read-only here). */
static int model_on_device(const g3_model *model, uint64_t *upload_bytes, bool upload, g3_error *err) {
    const g3_config *c = &model->cfg;
    const g3_weights *w = &model->w;
    *upload_bytes = 0;
    if (model->cuda) return 0;
    g3_cuda_layer_src *layers = calloc(c->n_layer, sizeof *layers);
    if (!layers) return g3_fail(err, "out of memory");
    for (uint32_t il = 0; il < c->n_layer; il++) {
        const g3_layer_weights *L = &w->layers[il];
        layers[il] = (g3_cuda_layer_src){L->attn_norm, L->q_norm, L->k_norm, L->post_attn_norm, L->ffn_norm,
                                         L->post_ffn_norm, L->wq, L->wk, L->wv, L->wo, L->w_gate, L->w_up, L->w_down};
    }
    *upload_bytes = g3_cuda_model_bytes_for(c, layers, &w->output);
    int rc = 0;
    if (upload) rc = g3_cuda_model_new(c, layers, w->output_norm, &w->output, &((g3_model *)model)->cuda, err);
    free(layers);
    return rc;
}

static int context_new_cuda(const g3_model *model, const g3_context_params *params, const ctx_sizes *s,
                            g3_context **out, g3_error *err) {
    const g3_config *c = &model->cfg;
    g3_cuda_device_info info;
    uint64_t upload = 0;
    if (g3_cuda_device_info_get(&info, err) || model_on_device(model, &upload, false, err)) return -1;
    const uint64_t need = upload + s->cuda_kv + s->total;
    if (need > info.free_bytes && !(params && params->skip_memory_check))
        return g3_fail(err,
                       "a context of %u positions with batch %u needs %.1f MiB of GPU memory (weights %.1f MiB, "
                       "%s KV cache %.1f MiB, scratch %.1f MiB), but the %s has %.1f MiB free",
                       s->n_ctx, s->n_ubatch, need / 1048576.0, upload / 1048576.0, g3_kv_type_name(s->kv_type),
                       s->cuda_kv / 1048576.0, s->total / 1048576.0, info.name, info.free_bytes / 1048576.0);
    if (model_on_device(model, &upload, true, err)) return -1;
    g3_context *ctx = calloc(1, sizeof *ctx);
    if (!ctx) return g3_fail(err, "out of memory");
    ctx->model = model;
    ctx->device = G3_DEVICE_CUDA;
    ctx->n_ubatch = s->n_ubatch;
    ctx->scratch_bytes = s->total;
    ctx->kv = calloc(s->n_seq, sizeof *ctx->kv);
    ctx->host_x = alloc_floats((uint64_t)s->n_ubatch * c->n_embd);
    ctx->row_kv = malloc(sizeof *ctx->row_kv * s->n_ubatch);
    ctx->row_pos = malloc(sizeof *ctx->row_pos * s->n_ubatch);
    ctx->row_seq = malloc(sizeof *ctx->row_seq * s->n_ubatch);
    if (!ctx->kv || !ctx->host_x || !ctx->row_kv || !ctx->row_pos || !ctx->row_seq) {
        g3_context_free(ctx);
        return g3_fail(err, "out of memory");
    }
    for (; ctx->n_seq < s->n_seq; ctx->n_seq++)
        if (kv_meta_init(&ctx->kv[ctx->n_seq], c, s->n_ctx, s->n_ubatch, s->kv_type, err)) {
            g3_context_free(ctx);
            return -1;
        }
    const g3_cuda_ctx_params cp = {.n_ctx = s->n_ctx, .n_ubatch = s->n_ubatch, .n_seq = s->n_seq,
                                   .kv_type = s->kv_type, .n_slots = ctx->kv[0].n_slots, .exact = s->exact};
    if (g3_cuda_ctx_new(model->cuda, &cp, &ctx->cuda, err)) {
        g3_context_free(ctx);
        return -1;
    }
    *out = ctx;
    return 0;
}

int g3_context_new(const g3_model *model, const g3_context_params *params, g3_context **out, g3_error *err) {
    *out = NULL;
    const g3_config *c = &model->cfg;
    ctx_sizes s = {0};
    const g3_kernels *k = NULL;
    if (resolve_params(model, params, &s, &k, err)) return -1;
    if (s.device == G3_DEVICE_CUDA) return context_new_cuda(model, params, &s, out, err);
    /* refuse before allocating what the machine cannot hold */
    const uint64_t kv_bytes = g3_kv_cache_bytes(c, s.n_ctx, s.n_ubatch, s.kv_type) * s.n_seq,
                   need = kv_bytes + s.total;
    const uint64_t avail = g3_mem_available_bytes();
    if (avail && need > avail && !(params && params->skip_memory_check))
        return g3_fail(err,
                       "a context of %u positions with batch %u needs %.1f MiB (%s KV cache %.1f MiB + "
                       "scratch %.1f MiB), but only %.1f MiB of memory is available",
                       s.n_ctx, s.n_ubatch, need / 1048576.0, g3_kv_type_name(s.kv_type), kv_bytes / 1048576.0,
                       s.total / 1048576.0,
                       avail / 1048576.0);
    g3_context *ctx = calloc(1, sizeof *ctx);
    if (!ctx) return g3_fail(err, "out of memory");
    ctx->model = model;
    ctx->device = G3_DEVICE_CPU;
    ctx->n_ubatch = s.n_ubatch;
    ctx->k = k;
    const uint32_t kt = (uint32_t)s.kv_type; /* a path without its own kernel for a type uses the reference */
    ctx->attn_scores = k->attn_scores[kt] ? k->attn_scores[kt] : g3_kernels_scalar.attn_scores[kt];
    ctx->attn_values = k->attn_values[kt] ? k->attn_values[kt] : g3_kernels_scalar.attn_values[kt];
    ctx->scratch_bytes = s.total;
    ctx->kv = calloc(s.n_seq, sizeof *ctx->kv);
    if (!ctx->kv) {
        free(ctx);
        return g3_fail(err, "out of memory");
    }
    /* slack = n_ubatch: a batch writes all its keys before its first query
     * looks back a whole window */
    for (; ctx->n_seq < s.n_seq; ctx->n_seq++)
        if (g3_kv_cache_init(&ctx->kv[ctx->n_seq], c, s.n_ctx, s.n_ubatch, s.kv_type, err)) {
            g3_context_free(ctx);
            return -1;
        }
    if (g3_thread_pool_new(s.n_threads, &ctx->pool, err) ||
        g3_mm_init(&ctx->mm, ctx->pool, k, s.n_ubatch, max3(c->n_embd, c->n_head * c->head_dim, c->n_ff), err)) {
        g3_context_free(ctx);
        return -1;
    }
    /* exact activations: no product asks for 8-bit input, so q8_for gives none */
    ctx->mm.f32_acts = params && params->exact_activations;
    ctx->mm.int8_acts = params && params->int8_activations;
    /* this path's decode and panel kernels read Q4_0/Q5_0/Q8_0/Q4_K/Q6_K rows
     * 16 at a time (tensor/repack.h): made once per model, here, where the
     * path is known. G3_REPACK=0 keeps the file's layout (benchmarks). */
    const char *repack = getenv("G3_REPACK");
    if (k->qdot_x16 && !ctx->mm.f32_acts && !(repack && !strcmp(repack, "0")))
        g3_weights_make_x16(&((g3_model *)model)->w, ctx->pool);
    const uint64_t U = s.n_ubatch, E = c->n_embd, QD = (uint64_t)c->n_head * c->head_dim,
                   KVD = (uint64_t)c->n_head_kv * c->head_dim, F = c->n_ff;
    const uint32_t wide = (uint32_t)(E > QD ? E : QD);
    ctx->x = alloc_floats(U * E);
    ctx->xb = alloc_floats(U * E);
    ctx->q = alloc_floats(U * QD);
    ctx->kk = alloc_floats(U * KVD);
    ctx->vv = alloc_floats(U * KVD);
    ctx->att = alloc_floats(U * QD);
    ctx->h = alloc_floats(U * F);
    ctx->scores = alloc_floats((uint64_t)s.n_threads * (c->n_head / c->n_head_kv) * s.n_ctx);
    ctx->rope = malloc(sizeof(double) * 2 * U * c->head_dim);
    ctx->rope_pw = malloc(sizeof(double) * c->head_dim);
    ctx->row_kv = malloc(sizeof *ctx->row_kv * U);
    ctx->row_pos = malloc(sizeof *ctx->row_pos * U);
    if (!ctx->row_kv || !ctx->row_pos || !ctx->x || !ctx->xb || !ctx->q || !ctx->kk || !ctx->vv || !ctx->att || !ctx->h || !ctx->scores ||
        !ctx->rope || !ctx->rope_pw || g3_qa_alloc(&ctx->qa, s.n_ubatch, wide - wide % 32) ||
        g3_qa_alloc(&ctx->qh, s.n_ubatch, c->n_ff - c->n_ff % 32)) {
        g3_context_free(ctx);
        return g3_fail(err, "out of memory for the forward-pass scratch (%.1f MiB)", s.total / 1048576.0);
    }
    /* base^(-2i/D) for local (kind 0) and global (kind 1) layers, evaluated
     * as the reference g3_rope_neox does */
    const uint32_t half = c->head_dim / 2;
    for (uint32_t i = 0; i < half; i++) {
        ctx->rope_pw[i] = pow((double)c->rope_base_local, -2.0 * i / c->head_dim);
        ctx->rope_pw[half + i] = pow((double)c->rope_base_global, -2.0 * i / c->head_dim);
    }
    *out = ctx;
    return 0;
}

void g3_context_free(g3_context *ctx) {
    if (!ctx) return;
    g3_cuda_ctx_free(ctx->cuda);
    free(ctx->host_x);
    free(ctx->row_seq);
    for (uint32_t i = 0; i < ctx->n_seq; i++) g3_kv_cache_free(&ctx->kv[i]);
    free(ctx->kv);
    free(ctx->row_kv);
    free(ctx->row_pos);
    g3_mm_free(&ctx->mm);
    g3_thread_pool_free(ctx->pool);
    free(ctx->x);
    free(ctx->xb);
    free(ctx->q);
    free(ctx->kk);
    free(ctx->vv);
    free(ctx->att);
    free(ctx->h);
    free(ctx->scores);
    free(ctx->rope);
    free(ctx->rope_pw);
    g3_qa_free(&ctx->qa);
    g3_qa_free(&ctx->qh);
    free(ctx);
}

uint32_t g3_context_n_seq(const g3_context *ctx) { return ctx->n_seq; }
uint32_t g3_context_n_ctx(const g3_context *ctx) { return ctx->kv[0].n_ctx; }
uint32_t g3_context_n_ubatch(const g3_context *ctx) { return ctx->n_ubatch; }
uint32_t g3_context_n_past(const g3_context *ctx) { return ctx->kv[0].n_past; }
uint32_t g3_context_n_past_seq(const g3_context *ctx, uint32_t seq) {
    return seq < ctx->n_seq ? ctx->kv[seq].n_past : 0;
}

int g3_context_truncate(g3_context *ctx, uint32_t n_keep, g3_error *err) {
    return g3_context_truncate_seq(ctx, 0, n_keep, err);
}

int g3_context_truncate_seq(g3_context *ctx, uint32_t seq, uint32_t n_keep, g3_error *err) {
    const g3_config *c = &ctx->model->cfg;
    if (seq >= ctx->n_seq) return g3_fail(err, "sequence %u does not exist (the context has %u)", seq, ctx->n_seq);
    g3_kv_cache *kv = &ctx->kv[seq];
    if (n_keep >= kv->n_past) return 0;
    if (n_keep == 0) { /* a fresh start needs nothing the ring may have lost */
        kv->n_past = kv->n_valid_from = 0;
        return 0;
    }
    /* the next query (at n_keep) needs the window of keys before it */
    uint32_t needed_from = n_keep + 1 > c->window ? n_keep + 1 - c->window : 0;
    if (c->window && needed_from < kv->n_valid_from)
        return g3_fail(err,
                       "cannot roll back to position %u: the sliding-window cache keeps positions "
                       "from %u on; evaluate the sequence again",
                       n_keep, kv->n_valid_from);
    kv->n_past = n_keep;
    return 0;
}

/* ---- the steps of a layer that are not matrix products ---- */

/* Work split over the T tokens of a batch; T = 1 runs on the caller. */
typedef struct step {
    g3_context *ctx;
    uint32_t il, T;
    bool bidirectional;
    const float *norm_a, *norm_b; /* residual step: post-norm, next pre-norm (or NULL) */
    g3_qa *q8;                    /* residual step: quantize the next input */
    uint32_t heads_per_item;      /* attention: query heads per work item */
    atomic_uint next;             /* attention: work items handed out */
} step;

static void for_tokens(g3_context *ctx, step *st, g3_task_fn fn) {
    if (st->T == 1) fn(st, 0, 1);
    else g3_thread_pool_run(ctx->pool, fn, st);
}

/* RoPE angles of the batch's positions: [kind][t][i] = cos, sin of
 * pos * freq_scale * base^(-2i/D), in double as in g3_rope_neox. */
static void rope_tables_task(void *arg, uint32_t ith, uint32_t nth) {
    step *st = arg;
    const g3_context *ctx = st->ctx;
    const g3_config *c = &ctx->model->cfg;
    const uint32_t half = c->head_dim / 2;
    uint64_t t0, t1;
    g3_split_range(st->T, 1, ith, nth, &t0, &t1);
    for (uint32_t kind = 0; kind < 2; kind++) {
        const double fscale = kind ? 1.0 / c->rope_scale_global : 1.0; /* local layers: no scaling */
        for (uint64_t t = t0; t < t1; t++) {
            double *tab = ctx->rope + ((kind * st->T + t) * half) * 2;
            for (uint32_t i = 0; i < half; i++) {
                const double theta = (double)ctx->row_pos[t] * fscale * ctx->rope_pw[kind * half + i];
                tab[2 * i] = cos(theta);
                tab[2 * i + 1] = sin(theta);
            }
        }
    }
}

/* NEOX rotation: element i pairs with i + D/2 */
static void rope_apply(float *v, uint32_t D, const double *tab) {
    const uint32_t half = D / 2;
    for (uint32_t i = 0; i < half; i++) {
        const double c = tab[2 * i], s = tab[2 * i + 1], x0 = v[i], x1 = v[i + half];
        v[i] = (float)(x0 * c - x1 * s);
        v[i + half] = (float)(x0 * s + x1 * c);
    }
}

/* QK-norm per head, RoPE, the attention scale on q; k and v into the cache */
static void qk_rope_store_task(void *arg, uint32_t ith, uint32_t nth) {
    step *st = arg;
    g3_context *ctx = st->ctx;
    const g3_config *c = &ctx->model->cfg;
    const g3_layer_weights *L = &ctx->model->w.layers[st->il];
    const uint32_t D = c->head_dim, QD = c->n_head * D, KVD = c->n_head_kv * D, kind = c->is_global[st->il];
    uint64_t t0, t1;
    g3_split_range(st->T, 1, ith, nth, &t0, &t1);
    for (uint64_t t = t0; t < t1; t++) {
        const uint32_t pos = ctx->row_pos[t];
        const double *tab = ctx->rope + ((kind * st->T + t) * (D / 2)) * 2;
        float *q = ctx->q + t * QD, *k = ctx->kk + t * KVD;
        for (uint32_t h = 0; h < c->n_head; h++) {
            float *qh = q + h * D;
            ctx->k->rmsnorm(qh, qh, L->q_norm, D, c->rms_eps);
            rope_apply(qh, D, tab);
            for (uint32_t d = 0; d < D; d++) qh[d] *= c->attn_scale;
        }
        for (uint32_t h = 0; h < c->n_head_kv; h++) {
            ctx->k->rmsnorm(k + h * D, k + h * D, L->k_norm, D, c->rms_eps);
            rope_apply(k + h * D, D, tab);
        }
        g3_kv_cache_store(ctx->row_kv[t], st->il, pos, k, ctx->vv + t * KVD);
    }
}

/* Attention, one (token, KV head, hq query heads of its group) item at a
 * time, so the group's queries share each read of a key and value row:
 * causal (or bidirectional within the batch); a local layer's query at p
 * sees keys p-W+1 .. p. When the output projection takes 8-bit input, each
 * item quantizes its heads' blocks of the output row (head_dim is a
 * multiple of 32 then). */
static void attention_task(void *arg, uint32_t ith, uint32_t nth) {
    (void)nth;
    step *st = arg;
    g3_context *ctx = st->ctx;
    const g3_config *c = &ctx->model->cfg;
    const g3_kernels *k = ctx->k;
    const uint32_t D = c->head_dim, H = c->n_head, QD = H * D, group = H / c->n_head_kv, hq = st->heads_per_item;
    const bool global = c->is_global[st->il];
    const size_t ld_s = ctx->kv[0].n_ctx;
    float *s = ctx->scores + (size_t)ith * group * ld_s;
    const uint32_t per_token = H / hq, items = st->T * per_token;
    for (;;) {
        const uint32_t item = atomic_fetch_add_explicit(&st->next, 1, memory_order_relaxed);
        if (item >= items) break;
        const uint32_t t = item / per_token, h = item % per_token * hq, pos = ctx->row_pos[t];
        const g3_kv_cache *kv = ctx->row_kv[t];
        /* a bidirectional batch is one sequence's consecutive positions */
        const uint32_t hi = st->bidirectional ? ctx->row_pos[st->T - 1] : pos;
        const uint32_t lo = (!global && c->window && pos + 1 > c->window) ? pos + 1 - c->window : 0;
        const uint32_t n = hi - lo + 1, hkv = h / group, slots = kv->n_slots[st->il];
        float *out = ctx->att + (size_t)t * QD + h * D;
        ctx->attn_scores(ctx->q + (size_t)t * QD + h * D, hq, g3_kv_keys_of_head(kv, st->il, hkv), kv->row_bytes,
                         slots, lo, n, D, s, ld_s);
        for (uint32_t i = 0; i < hq; i++) {
            if (c->attn_softcap > 0.0f) g3_softcap(s + i * ld_s, (int)n, c->attn_softcap);
            k->softmax(s + i * ld_s, n);
        }
        ctx->attn_values(s, ld_s, hq, g3_kv_values_of_head(kv, st->il, hkv), kv->row_bytes, slots, lo, n, D, out);
        if (st->q8) {
            const g3_qa_row_out o = g3_qa_row_out_get(st->q8, t);
            k->quantize_blocks(ctx->att + (size_t)t * QD, h * D / 32, (h + hq) * D / 32, &o);
        }
    }
}

/* Query heads per attention item, a divisor of the GQA group. An item
 * reads its KV head's rows once for all its queries, and the step takes
 * about as long as the most items any thread runs: take the fewest rounds
 * of items, and among those the smallest items, which keeps every thread
 * reading (one thread's attention kernel reads well below the machine's
 * bandwidth). Measured decoding 1B (one KV head, 4 query heads) at 8.6K
 * positions: 36.8 tok/s with two items of 2 heads, 35.2 with one item of
 * 4, 34.1 with four items of 1. Prefill batches take whole groups. */
static uint32_t heads_per_item(const g3_config *c, uint32_t T, uint32_t nth) {
    const uint32_t group = c->n_head / c->n_head_kv;
    uint32_t best = 1;
    uint64_t best_rounds = UINT64_MAX;
    for (uint32_t hq = 1; hq <= group; hq++) {
        if (group % hq) continue;
        const uint64_t items = (uint64_t)T * c->n_head_kv * (group / hq), rounds = (items + nth - 1) / nth;
        if (rounds < best_rounds) {
            best = hq;
            best_rounds = rounds;
        }
    }
    return best;
}

/* x += rmsnorm(xb) * norm_a; then xb = rmsnorm(x) * norm_b (and its 8-bit
 * form) when norm_b is given: the sandwich norms of Gemma 3 joined with the
 * next block's input norm in one pass. */
static void residual_task(void *arg, uint32_t ith, uint32_t nth) {
    step *st = arg;
    g3_context *ctx = st->ctx;
    const g3_config *c = &ctx->model->cfg;
    const uint32_t E = c->n_embd;
    uint64_t t0, t1;
    g3_split_range(st->T, 1, ith, nth, &t0, &t1);
    for (uint64_t t = t0; t < t1; t++) {
        float *x = ctx->x + t * E, *xb = ctx->xb + t * E;
        ctx->k->rmsnorm(xb, xb, st->norm_a, E, c->rms_eps);
        ctx->k->add(x, xb, E);
        if (!st->norm_b) continue;
        ctx->k->rmsnorm(xb, x, st->norm_b, E, c->rms_eps);
        if (st->q8) {
            const g3_qa_row_out o = g3_qa_row_out_get(st->q8, (uint32_t)t);
            ctx->k->quantize_blocks(xb, 0, E / 32, &o);
        }
    }
}

/* The 8-bit buffer for an input of K values when any consumer takes one. */
static g3_qa *q8_for(g3_context *ctx, g3_qa *qa, uint32_t T, uint32_t K, const g3_matrix *a,
                     const g3_matrix *b, const g3_matrix *c) {
    if (!(g3_mm_wants_q8(&ctx->mm, a) || (b && g3_mm_wants_q8(&ctx->mm, b)) || (c && g3_mm_wants_q8(&ctx->mm, c))))
        return NULL;
    qa->K = K;
    qa->n_rows = T;
    return qa;
}

/* ---- the forward pass ---- */

/* T rows (T <= n_ubatch), row t at position row_pos[t] of the cache
 * row_kv[t]: one sequence's consecutive positions, or one position each of
 * several sequences (batched decoding). Inputs are token ids, or embeddings
 * when tokens is NULL. */
/* each row's cache now holds its position; the ring of a local layer
 * keeps positions from n_past - slots on */
static void advance_caches(g3_context *ctx, uint32_t T) {
    const g3_config *c = &ctx->model->cfg;
    for (uint32_t t = 0; t < T; t++) {
        g3_kv_cache *kv = ctx->row_kv[t];
        if (ctx->row_pos[t] + 1 > kv->n_past) kv->n_past = ctx->row_pos[t] + 1;
        for (uint32_t il = 0; il < c->n_layer; il++) {
            uint32_t slots = kv->n_slots[il];
            if (kv->n_past > slots && kv->n_past - slots > kv->n_valid_from) kv->n_valid_from = kv->n_past - slots;
        }
    }
}

/* The same batch on the GPU: the embedding rows are looked up here (as
 * below), the rest runs in the CUDA backend. */
static int forward_ubatch_cuda(g3_context *ctx, const int32_t *tokens, const float *embd, uint32_t T,
                               bool bidirectional, float *logits, bool all_logits, g3_error *err) {
    const g3_model *m = ctx->model;
    const uint32_t E = m->cfg.n_embd;
    const float emb_scale = sqrtf((float)E);
    for (uint32_t t = 0; t < T; t++) {
        float *x = ctx->host_x + (size_t)t * E;
        if (tokens) {
            g3_matrix_get_row(&m->w.token_embd, (uint64_t)tokens[t], x);
            for (uint32_t i = 0; i < E; i++) x[i] *= emb_scale;
        } else {
            memcpy(x, embd + (size_t)t * E, sizeof(float) * E);
        }
        ctx->row_seq[t] = (uint32_t)(ctx->row_kv[t] - ctx->kv);
    }
    const g3_cuda_batch b = {.T = T, .x = ctx->host_x, .seq = ctx->row_seq, .pos = ctx->row_pos,
                             .bidirectional = bidirectional, .logits = logits, .all_logits = all_logits};
    if (g3_cuda_forward(ctx->cuda, &b, err)) return -1;
    advance_caches(ctx, T);
    return 0;
}

static int forward_ubatch(g3_context *ctx, const int32_t *tokens, const float *embd, uint32_t T,
                          bool bidirectional, float *logits, bool all_logits, g3_error *err) {
    if (ctx->cuda) return forward_ubatch_cuda(ctx, tokens, embd, T, bidirectional, logits, all_logits, err);
    const g3_model *m = ctx->model;
    const g3_config *c = &m->cfg;
    const g3_weights *w = &m->w;
    g3_mm *mm = &ctx->mm;
    const uint32_t E = c->n_embd, D = c->head_dim, QD = c->n_head * D, KVD = c->n_head_kv * D, F = c->n_ff;
    const float eps = c->rms_eps;
    step st = {.ctx = ctx, .T = T, .bidirectional = bidirectional};

    /* x (T, E) = token_embd[tok] * sqrt(E); embeddings of images are not scaled */
    const float emb_scale = sqrtf((float)E);
    for (uint32_t t = 0; t < T; t++) {
        float *x = ctx->x + (size_t)t * E;
        if (tokens) {
            g3_matrix_get_row(&w->token_embd, (uint64_t)tokens[t], x);
            for (uint32_t i = 0; i < E; i++) x[i] *= emb_scale;
        } else {
            memcpy(x, embd + (size_t)t * E, sizeof(float) * E);
        }
    }
    for_tokens(ctx, &st, rope_tables_task);

    /* xb = RMSNorm(x) * attn_norm of layer 0; later layers get it from the
     * previous layer's last residual step */
    const g3_layer_weights *L0 = &w->layers[0];
    g3_mm_norm_input(mm, ctx->x, ctx->xb, E, T, E, L0->attn_norm, eps,
                     q8_for(ctx, &ctx->qa, T, E, &L0->wq, &L0->wk, &L0->wv));

    for (uint32_t il = 0; il < c->n_layer; il++) {
        const g3_layer_weights *L = &w->layers[il];
        st.il = il;

        /* q (T, H*D) = xb @ Wq^T;  k, v (T, HKV*D) = xb @ Wk^T, xb @ Wv^T */
        const g3_mm_in in_attn = {T, E, ctx->xb, E, q8_for(ctx, &ctx->qa, T, E, &L->wq, &L->wk, &L->wv)};
        const g3_mm_out qkv[3] = {{&L->wq, ctx->q, QD}, {&L->wk, ctx->kk, KVD}, {&L->wv, ctx->vv, KVD}};
        g3_matmul(mm, &in_attn, qkv, 3);
        /* QK-norm per head, RoPE (NEOX; local: base 10000, no scaling), q *= scale;
         * k, v into the cache: the whole batch before anyone attends */
        for_tokens(ctx, &st, qk_rope_store_task);

        /* att (T, H*D) = softmax(q k^T) v over each query's visible keys */
        st.q8 = (D % 32 == 0) ? q8_for(ctx, &ctx->qa, T, QD, &L->wo, NULL, NULL) : NULL;
        atomic_init(&st.next, 0);
        st.heads_per_item = heads_per_item(c, T, g3_thread_pool_size(ctx->pool));
        if (T * c->n_head == st.heads_per_item) attention_task(&st, 0, 1);
        else g3_thread_pool_run(ctx->pool, attention_task, &st);
        g3_qa *q8_att = q8_for(ctx, &ctx->qa, T, QD, &L->wo, NULL, NULL);
        if (q8_att && D % 32 != 0) g3_mm_quantize_input(mm, ctx->att, QD, T, QD, q8_att);

        /* xb (T, E) = att @ Wo^T;  x += RMSNorm(xb) * post_attn_norm;
         * xb = RMSNorm(x) * ffn_norm */
        const g3_mm_in in_o = {T, QD, ctx->att, QD, q8_att};
        const g3_mm_out o = {&L->wo, ctx->xb, E};
        g3_matmul(mm, &in_o, &o, 1);
        st.norm_a = L->post_attn_norm;
        st.norm_b = L->ffn_norm;
        st.q8 = q8_for(ctx, &ctx->qa, T, E, &L->w_gate, &L->w_up, NULL);
        for_tokens(ctx, &st, residual_task);

        /* h (T, F) = gelu_tanh(xb @ Wg^T) * (xb @ Wu^T) */
        const g3_mm_in in_ffn = {T, E, ctx->xb, E, st.q8};
        g3_qa *q8_h = (F % 32 == 0) ? q8_for(ctx, &ctx->qh, T, F, &L->w_down, NULL, NULL) : NULL;
        g3_mm_geglu(mm, &in_ffn, &L->w_gate, &L->w_up, ctx->h, F, q8_h);
        if (!q8_h && g3_mm_wants_q8(mm, &L->w_down)) {
            q8_h = q8_for(ctx, &ctx->qh, T, F, &L->w_down, NULL, NULL);
            g3_mm_quantize_input(mm, ctx->h, F, T, F, q8_h);
        }

        /* xb (T, E) = h @ Wd^T;  x += RMSNorm(xb) * post_ffn_norm;
         * xb = RMSNorm(x) * attn_norm of the next layer */
        const g3_mm_in in_down = {T, F, ctx->h, F, q8_h};
        const g3_mm_out down = {&L->w_down, ctx->xb, E};
        g3_matmul(mm, &in_down, &down, 1);
        const g3_layer_weights *Ln = il + 1 < c->n_layer ? &w->layers[il + 1] : NULL;
        st.norm_a = L->post_ffn_norm;
        st.norm_b = Ln ? Ln->attn_norm : NULL;
        st.q8 = Ln ? q8_for(ctx, &ctx->qa, T, E, &Ln->wq, &Ln->wk, &Ln->wv) : NULL;
        for_tokens(ctx, &st, residual_task);
    }

    /* logits (rows, V) = RMSNorm(x) * output_norm @ output^T; tied to token_embd in Gemma 3 */
    if (logits) {
        const uint32_t first = all_logits ? 0 : T - 1, rows = T - first;
        float *xr = ctx->x + (size_t)first * E, *xbr = ctx->xb + (size_t)first * E;
        g3_qa *q8 = q8_for(ctx, &ctx->qa, rows, E, &w->output, NULL, NULL);
        g3_mm_norm_input(mm, xr, xbr, E, rows, E, w->output_norm, eps, q8);
        const g3_mm_in in_out = {rows, E, xbr, E, q8};
        const g3_mm_out out = {&w->output, logits, c->n_vocab};
        g3_matmul(mm, &in_out, &out, 1);
        if (c->final_softcap > 0.0f)
            for (uint32_t t = 0; t < rows; t++) g3_softcap(logits + (size_t)t * c->n_vocab, (int)c->n_vocab, c->final_softcap);
    }

    advance_caches(ctx, T);
    return 0;
}

static int check_seq(const g3_context *ctx, uint32_t seq, uint32_t n, g3_error *err) {
    if (seq >= ctx->n_seq) return g3_fail(err, "sequence %u does not exist (the context has %u)", seq, ctx->n_seq);
    if (n == 0) return g3_fail(err, "empty sequence: nothing to evaluate");
    const g3_kv_cache *kv = &ctx->kv[seq];
    if ((uint64_t)kv->n_past + n > kv->n_ctx)
        return g3_fail(err,
                       "sequence of %u positions does not fit the context: %u already used, "
                       "context size %u",
                       n, kv->n_past, kv->n_ctx);
    return 0;
}

static int check_tokens(const g3_context *ctx, const int32_t *tokens, uint32_t n, g3_error *err) {
    const uint32_t n_vocab = ctx->model->cfg.n_vocab;
    for (uint32_t i = 0; i < n; i++)
        if (tokens[i] < 0 || (uint32_t)tokens[i] >= n_vocab)
            return g3_fail(err, "token id %d at index %u is outside the vocabulary (%u tokens)", tokens[i], i,
                           n_vocab);
    return 0;
}

/* The rows of a batch of len consecutive positions of one sequence. */
static void rows_of_seq(g3_context *ctx, uint32_t seq, uint32_t len) {
    g3_kv_cache *kv = &ctx->kv[seq];
    for (uint32_t t = 0; t < len; t++) {
        ctx->row_kv[t] = kv;
        ctx->row_pos[t] = kv->n_past + t;
    }
}

/* Splits the work into ubatches; logits rows follow the positions. */
static int eval_split(g3_context *ctx, uint32_t seq, const int32_t *tokens, const float *embd, uint32_t n,
                      float *logits, bool all_logits, g3_error *err) {
    const g3_config *c = &ctx->model->cfg;
    for (uint32_t done = 0; done < n;) {
        uint32_t len = n - done < ctx->n_ubatch ? n - done : ctx->n_ubatch;
        bool last = done + len == n;
        float *rows = NULL;
        if (logits && all_logits) rows = logits + (size_t)done * c->n_vocab;
        else if (logits && last) rows = logits;
        rows_of_seq(ctx, seq, len);
        if (forward_ubatch(ctx, tokens ? tokens + done : NULL, embd ? embd + (size_t)done * c->n_embd : NULL,
                           len, false, rows, all_logits, err))
            return -1;
        done += len;
    }
    return 0;
}

int g3_eval(g3_context *ctx, const int32_t *tokens, uint32_t n, float *logits, bool all_logits,
            g3_error *err) {
    return g3_eval_seq(ctx, 0, tokens, n, logits, all_logits, err);
}

int g3_eval_seq(g3_context *ctx, uint32_t seq, const int32_t *tokens, uint32_t n, float *logits, bool all_logits,
                g3_error *err) {
    if (check_seq(ctx, seq, n, err) || check_tokens(ctx, tokens, n, err)) return -1;
    return eval_split(ctx, seq, tokens, NULL, n, logits, all_logits, err);
}

int g3_eval_embeddings(g3_context *ctx, const float *embd, uint32_t n, bool bidirectional,
                       float *logits, bool all_logits, g3_error *err) {
    return g3_eval_embeddings_seq(ctx, 0, embd, n, bidirectional, logits, all_logits, err);
}

int g3_eval_embeddings_seq(g3_context *ctx, uint32_t seq, const float *embd, uint32_t n, bool bidirectional,
                           float *logits, bool all_logits, g3_error *err) {
    if (check_seq(ctx, seq, n, err)) return -1;
    if (!bidirectional) return eval_split(ctx, seq, NULL, embd, n, logits, all_logits, err);
    /* one image must be one batch: its positions see each other */
    if (n > ctx->n_ubatch)
        return g3_fail(err, "a bidirectional block of %u positions exceeds the batch size %u", n,
                       ctx->n_ubatch);
    rows_of_seq(ctx, seq, n);
    return forward_ubatch(ctx, NULL, embd, n, true, logits, all_logits, err);
}

int g3_decode_batch(g3_context *ctx, const uint32_t *seqs, const int32_t *tokens, uint32_t n, float *logits,
                    g3_error *err) {
    if (n == 0) return g3_fail(err, "empty batch: nothing to decode");
    if (n > ctx->n_ubatch) return g3_fail(err, "a batch of %u sequences exceeds the batch size %u", n, ctx->n_ubatch);
    if (check_tokens(ctx, tokens, n, err)) return -1;
    for (uint32_t i = 0; i < n; i++) {
        if (check_seq(ctx, seqs[i], 1, err)) return -1;
        for (uint32_t j = 0; j < i; j++)
            if (seqs[j] == seqs[i]) return g3_fail(err, "sequence %u appears twice in one decode batch", seqs[i]);
    }
    for (uint32_t t = 0; t < n; t++) {
        ctx->row_kv[t] = &ctx->kv[seqs[t]];
        ctx->row_pos[t] = ctx->row_kv[t]->n_past;
    }
    return forward_ubatch(ctx, tokens, NULL, n, false, logits, logits != NULL, err);
}
