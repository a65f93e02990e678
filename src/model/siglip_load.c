/* siglip_load.c: the mmproj GGUF (llama.cpp's clip.* layout, projector type
 * gemma3) into a g3_vision, and the scratch of one image.
 *
 * Every hyperparameter is checked against sane limits before any size is
 * computed from it, and every tensor's shape against the hyperparameters,
 * so a hostile or mismatched file fails with the key or tensor named. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "base/checked_math.h"
#include "base/cpu_features.h"
#include "base/error.h"
#include "base/thread_pool.h"
#include "model/gemma3_weights.h"
#include "model/siglip.h"
#include "tensor/ops.h"
#include "tensor/type_info.h"
#include "tensor/type_ops.h"

/* Queries per attention chunk: the score block is q_rows x n_patches floats
 * (16 MiB for 4096 patches). Larger chunks repack each head's keys less
 * often and give the threads more units of the P . V product (Tq / 32). */
#define SIGLIP_Q_ROWS 1024u

/* Default pooling kernel when clip.vision.projector.scale_factor is absent
 * (llama.cpp clip.cpp, PROJECTOR_TYPE_GEMMA3: n_merge = 4). */
#define SIGLIP_DEFAULT_POOL 4u

/* ---- hyperparameters ---- */

static int check_str_key(const g3_gguf *g, const char *key, const char *want, const char *what, g3_error *err) {
    g3_str s;
    if (g3_gguf_get_str(g, key, true, &s, err)) return g3_error_prefix(err, "not %s: ", what);
    if (!g3_str_eq(s, want))
        return g3_fail(err, "not %s: key '%s' is '%.*s', expected '%s'", what, key,
                       (int)(s.len > 64 ? 64 : s.len), s.ptr, want);
    return 0;
}

static int get_u32_in(const g3_gguf *g, const char *key, bool required, uint32_t def, uint32_t lo, uint32_t hi,
                      uint32_t *out, g3_error *err) {
    if (g3_gguf_get_u32(g, key, required, def, out, err)) return -1;
    if (*out < lo || *out > hi) return g3_fail(err, "key '%s' = %u is out of range [%u, %u]", key, *out, lo, hi);
    return 0;
}

/* image_mean / image_std: 3 floats; absent: 0.5 (Gemma 3's processor). */
static int get_norm3(const g3_gguf *g, const char *key, float out[3], bool positive, g3_error *err) {
    const g3_gguf_array *a = NULL;
    if (g3_gguf_get_arr(g, key, false, G3_GGUF_VTYPE_COUNT, &a, err)) return -1;
    for (int c = 0; c < 3; c++) out[c] = 0.5f;
    if (!a) return 0;
    if (a->n != 3 || a->elem_type == G3_GGUF_STRING || a->elem_type == G3_GGUF_ARRAY ||
        a->elem_type == G3_GGUF_BOOL)
        return g3_fail(err, "key '%s' must hold 3 numbers (one per RGB channel)", key);
    for (int c = 0; c < 3; c++) {
        out[c] = (float)g3_gguf_array_f64(a, (uint64_t)c);
        if (positive ? !(out[c] > 0.0f && out[c] < 1e6f) : !(out[c] > -1e6f && out[c] < 1e6f))
            return g3_fail(err, "key '%s' has a bad value %g for channel %d", key, (double)out[c], c);
    }
    return 0;
}

static int read_config(const g3_gguf *g, g3_vision *v, g3_error *err) {
    if (check_str_key(g, "general.architecture", "clip", "a vision projector (mmproj) file", err)) return -1;
    if (check_str_key(g, "clip.projector_type", "gemma3", "a Gemma 3 vision projector", err)) return -1;
    bool has_vision = true;
    if (g3_gguf_get_bool(g, "clip.has_vision_encoder", false, true, &has_vision, err)) return -1;
    if (!has_vision) return g3_fail(err, "clip.has_vision_encoder is false: this mmproj has no vision encoder");
    if (get_u32_in(g, "clip.vision.image_size", true, 0, 1, 4096, &v->image_size, err) ||
        get_u32_in(g, "clip.vision.patch_size", true, 0, 1, 64, &v->patch, err) ||
        get_u32_in(g, "clip.vision.embedding_length", true, 0, 1, 16384, &v->n_embd, err) ||
        get_u32_in(g, "clip.vision.feed_forward_length", true, 0, 1, 65536, &v->n_ff, err) ||
        get_u32_in(g, "clip.vision.block_count", true, 0, 1, 256, &v->n_layer, err) ||
        get_u32_in(g, "clip.vision.attention.head_count", true, 0, 1, 1024, &v->n_head, err) ||
        get_u32_in(g, "clip.vision.projection_dim", true, 0, 1, 65536, &v->n_proj, err) ||
        get_u32_in(g, "clip.vision.projector.scale_factor", false, SIGLIP_DEFAULT_POOL, 1, 64, &v->pool, err))
        return -1;
    if (g3_gguf_get_f32(g, "clip.vision.attention.layer_norm_epsilon", false, 1e-6f, &v->eps, err)) return -1;
    if (!(v->eps > 0.0f && v->eps < 1.0f))
        return g3_fail(err, "key 'clip.vision.attention.layer_norm_epsilon' = %g is out of range (0, 1)", (double)v->eps);
    if (get_norm3(g, "clip.vision.image_mean", v->mean, false, err) ||
        get_norm3(g, "clip.vision.image_std", v->std, true, err))
        return -1;
    if (v->image_size % v->patch)
        return g3_fail(err, "clip.vision.image_size %u is not a multiple of clip.vision.patch_size %u", v->image_size,
                       v->patch);
    v->side = v->image_size / v->patch;
    v->n_patches = v->side * v->side; /* <= 4096^2, fits */
    if (v->n_patches > 65536)
        return g3_fail(err, "%u patches per image (image_size %u / patch_size %u, squared) is over the limit of 65536",
                       v->n_patches, v->image_size, v->patch);
    if (v->n_embd % v->n_head)
        return g3_fail(err, "clip.vision.embedding_length %u is not a multiple of clip.vision.attention.head_count %u",
                       v->n_embd, v->n_head);
    v->head_dim = v->n_embd / v->n_head;
    if (v->side % v->pool)
        return g3_fail(err, "the %ux%u patch grid cannot be average-pooled with kernel %u "
                            "(clip.vision.projector.scale_factor)", v->side, v->side, v->pool);
    v->n_tokens = (v->side / v->pool) * (v->side / v->pool);
    return 0;
}

/* ---- tensors ---- */

/* An f32 copy of a tensor of exactly ne0 x ne1 elements (ne1 = 1: a vector). */
static int get_floats(const g3_gguf *g, const char *name, uint64_t ne0, uint64_t ne1, float *dst, g3_error *err) {
    const g3_gguf_tensor *t = g3_gguf_find_tensor(g, name);
    if (!t) return g3_fail(err, "missing tensor '%s'", name);
    if (t->ne[0] != ne0 || t->ne[1] != ne1 || t->ne[2] != 1 || t->ne[3] != 1)
        return g3_fail(err, "tensor '%s' has shape [%llu, %llu, %llu, %llu], expected [%llu, %llu]", name,
                       (unsigned long long)t->ne[0], (unsigned long long)t->ne[1], (unsigned long long)t->ne[2],
                       (unsigned long long)t->ne[3], (unsigned long long)ne0, (unsigned long long)ne1);
    const g3_type_ops *ops = g3_type_ops_get(t->type);
    const g3_type_info *ti = g3_type_info_get(t->type);
    char buf[32];
    if (!ops || !ti) return g3_fail(err, "tensor '%s' has type %s, which gemma-chat does not support", name, g3_type_name(t->type, buf));
    if (ne0 % ti->block_size)
        return g3_fail(err, "tensor '%s': rows of %llu values are not a multiple of the %s block", name,
                       (unsigned long long)ne0, ti->name);
    ops->to_float(t->data, dst, (int64_t)(ne0 * ne1));
    return 0;
}

/* v.patch_embd.weight: ggml ne [p, p, 3, W] = torch conv [W][3][p][p], so a
 * W x (3*p*p) matrix whose rows are in [c][ky][kx] order. */
static int get_patch_matrix(const g3_gguf *g, g3_vision *v, g3_error *err) {
    const char *name = "v.patch_embd.weight";
    const g3_gguf_tensor *t = g3_gguf_find_tensor(g, name);
    if (!t) return g3_fail(err, "missing tensor '%s'", name);
    const uint64_t p = v->patch;
    if (t->ne[0] != p || t->ne[1] != p || t->ne[2] != 3 || t->ne[3] != v->n_embd)
        return g3_fail(err, "tensor '%s' has shape [%llu, %llu, %llu, %llu], expected [%llu, %llu, 3, %u]", name,
                       (unsigned long long)t->ne[0], (unsigned long long)t->ne[1], (unsigned long long)t->ne[2],
                       (unsigned long long)t->ne[3], (unsigned long long)p, (unsigned long long)p, v->n_embd);
    char buf[32];
    if (!g3_type_ops_get(t->type))
        return g3_fail(err, "tensor '%s' has type %s, which gemma-chat does not support", name, g3_type_name(t->type, buf));
    v->patch_w = (g3_matrix){.data = t->data, .type = t->type, .n_in = 3 * p * p, .n_out = v->n_embd};
    const g3_type_info *ti = g3_type_info_get(t->type);
    if ((3 * p * p) % ti->block_size)
        return g3_fail(err, "tensor '%s': conv rows of %llu values are not a multiple of the %s block", name,
                       (unsigned long long)(3 * p * p), ti->name);
    return g3_type_row_bytes(t->type, 3 * p * p, &v->patch_w.row_bytes, err) ? g3_error_prefix(err, "tensor '%s': ", name) : 0;
}

static uint64_t vec_floats(const g3_vision *v) {
    const uint64_t W = v->n_embd, F = v->n_ff;
    /* patch bias, positions, post-LN w/b, soft_emb_norm; per layer: 2 LN x
     * (w, b), q/k/v/out biases (8 W), fc1 bias (F), fc2 bias (W) */
    return W + (uint64_t)v->n_patches * W + 3 * W + (uint64_t)v->n_layer * (9 * W + F);
}

static int load_layer(const g3_gguf *g, const g3_vision *v, uint32_t il, g3_siglip_layer *L, float **vecs,
                      g3_error *err) {
    char name[96];
    const uint64_t W = v->n_embd, F = v->n_ff;
    struct { const char *suffix; uint64_t n; const float **dst; } vs[] = {
        {"ln1.weight", W, &L->ln1_w},   {"ln1.bias", W, &L->ln1_b},       {"ln2.weight", W, &L->ln2_w},
        {"ln2.bias", W, &L->ln2_b},     {"attn_q.bias", W, &L->bq},       {"attn_k.bias", W, &L->bk},
        {"attn_v.bias", W, &L->bv},     {"attn_out.bias", W, &L->bo},     {"ffn_up.bias", F, &L->b_up},
        {"ffn_down.bias", W, &L->b_down},
    };
    for (size_t i = 0; i < sizeof vs / sizeof vs[0]; i++) {
        snprintf(name, sizeof name, "v.blk.%u.%s", il, vs[i].suffix);
        if (get_floats(g, name, vs[i].n, 1, *vecs, err)) return -1;
        *vs[i].dst = *vecs;
        *vecs += vs[i].n;
    }
    struct { const char *suffix; uint64_t n_in, n_out; g3_matrix *dst; } ms[] = {
        {"attn_q", W, W, &L->wq},   {"attn_k", W, W, &L->wk},     {"attn_v", W, W, &L->wv},
        {"attn_out", W, W, &L->wo}, {"ffn_up", W, F, &L->w_up},   {"ffn_down", F, W, &L->w_down},
    };
    for (size_t i = 0; i < sizeof ms / sizeof ms[0]; i++) {
        snprintf(name, sizeof name, "v.blk.%u.%s.weight", il, ms[i].suffix);
        if (g3_weights_get_matrix(g, name, ms[i].n_in, ms[i].n_out, ms[i].dst, err)) return -1;
    }
    return 0;
}

/* mm.input_projection.weight is ggml ne [n_proj, W]: W rows of n_proj, used
 * as out = x @ P (the transpose of a linear layer's layout). Stored here
 * transposed, as n_proj f32 rows of W, so the product is an ordinary
 * g3_matmul. */
static int load_projection(const g3_gguf *g, g3_vision *v, g3_error *err) {
    const char *name = "mm.input_projection.weight";
    g3_matrix p;
    if (g3_weights_get_matrix(g, name, v->n_proj, v->n_embd, &p, err)) return -1;
    const uint64_t W = v->n_embd, P = v->n_proj;
    float *row = malloc(sizeof(float) * P);
    v->proj_t = malloc(sizeof(float) * P * W);
    if (!row || !v->proj_t) {
        free(row);
        return g3_fail(err, "out of memory for '%s' (%llu x %llu floats)", name, (unsigned long long)P, (unsigned long long)W);
    }
    for (uint64_t i = 0; i < W; i++) {
        g3_matrix_get_row(&p, i, row);
        for (uint64_t j = 0; j < P; j++) v->proj_t[j * W + i] = row[j];
    }
    free(row);
    v->proj = (g3_matrix){.data = v->proj_t, .type = G3_TYPE_F32, .n_in = W, .n_out = P, .row_bytes = W * sizeof(float)};
    return 0;
}

static int load_tensors(const g3_gguf *g, g3_vision *v, g3_error *err) {
    const uint64_t W = v->n_embd;
    v->vecs = malloc(sizeof(float) * vec_floats(v));
    v->layers = calloc(v->n_layer, sizeof *v->layers);
    if (!v->vecs || !v->layers) return g3_fail(err, "out of memory for the vision weights");
    float *f = v->vecs;
    struct { const char *name; uint64_t ne0, ne1; const float **dst; } vs[] = {
        {"v.patch_embd.bias", W, 1, &v->patch_b}, {"v.position_embd.weight", W, v->n_patches, &v->pos},
        {"v.post_ln.weight", W, 1, &v->post_w},   {"v.post_ln.bias", W, 1, &v->post_b},
        {"mm.soft_emb_norm.weight", W, 1, &v->soft_norm},
    };
    for (size_t i = 0; i < sizeof vs / sizeof vs[0]; i++) {
        if (get_floats(g, vs[i].name, vs[i].ne0, vs[i].ne1, f, err)) return -1;
        *vs[i].dst = f;
        f += vs[i].ne0 * vs[i].ne1;
    }
    if (get_patch_matrix(g, v, err)) return -1;
    for (uint32_t il = 0; il < v->n_layer; il++)
        if (load_layer(g, v, il, &v->layers[il], &f, err)) return -1;
    return load_projection(g, v, err);
}

/* ---- run state ---- */

static float *alloc_floats(uint64_t n) {
    void *p = NULL;
    if (n > SIZE_MAX / sizeof(float)) return NULL;
    return posix_memalign(&p, 64, (size_t)(n ? n : 1) * sizeof(float)) == 0 ? p : NULL;
}

static uint32_t max_u32(uint32_t a, uint32_t b) { return a > b ? a : b; }

/* The largest input row a quantized weight takes through 8-bit activations
 * on this path (0: none does). */
static uint32_t q8_cap_k(const g3_vision *v) {
    uint32_t cap = 0;
    for (uint32_t il = 0; il < v->n_layer; il++) {
        const g3_siglip_layer *L = &v->layers[il];
        const g3_matrix *ms[] = {&L->wq, &L->wk, &L->wv, &L->wo, &L->w_up, &L->w_down};
        for (size_t i = 0; i < 6; i++)
            if (g3_mm_wants_q8(&v->mm, ms[i]) && ms[i]->n_in % G3_QA_BLOCK == 0) cap = max_u32(cap, (uint32_t)ms[i]->n_in);
    }
    return cap;
}

/* The floats of each scratch buffer for one image: one formula for the
 * allocator below and the memory planner (g3_siglip_scratch_bytes). */
typedef struct scratch_floats {
    uint64_t act;    /* each of x, xb, q, kk, vv, att: n_patches x W */
    uint64_t h;      /* n_patches x F, or the im2col patches if wider */
    uint64_t scores; /* q_rows x n_patches */
    uint64_t vt, ot, ones, pooled, proj_t;
} scratch_floats;

static uint32_t q_rows_of(uint32_t n_patches) { return n_patches < SIGLIP_Q_ROWS ? n_patches : SIGLIP_Q_ROWS; }

static scratch_floats scratch_of(const g3_siglip_dims *d) {
    const uint64_t N = d->n_patches, q_rows = q_rows_of(d->n_patches), patch_floats = N * d->patch_in;
    return (scratch_floats){
        .act = N * d->n_embd,
        .h = N * d->n_ff > patch_floats ? N * d->n_ff : patch_floats,
        .scores = q_rows * N,
        .vt = (uint64_t)d->head_dim * N,
        .ot = (uint64_t)d->head_dim * q_rows,
        .ones = d->n_ff,
        .pooled = (uint64_t)d->n_tokens * d->n_embd,
        .proj_t = (uint64_t)d->n_proj * d->n_embd,
    };
}

/* the widest product input: W, F, 3*p*p (patches) or N (scores . V) */
static uint32_t widest_input(const g3_siglip_dims *d) {
    return max_u32(max_u32(d->n_embd, d->n_ff), max_u32(d->patch_in, d->n_patches));
}

uint64_t g3_siglip_scratch_bytes(const g3_siglip_dims *d, uint32_t cap_k, uint32_t n_threads) {
    g3_cpu_path path;
    if (g3_cpu_active_path(&path, NULL)) path = g3_cpu_features_get()->best;
    const g3_kernels *k = g3_kernels_get(path);
    if (!k) k = &g3_kernels_scalar;
    if (!k->quantized_acts) cap_k = 0;
    const scratch_floats f = scratch_of(d);
    const uint64_t floats = 6 * f.act + f.h + f.scores + f.vt + f.ot + f.ones + f.pooled + f.proj_t;
    const uint32_t nth = n_threads ? n_threads : g3_cpu_physical_cores();
    return 4 * floats + g3_mm_bytes(k, nth, d->n_patches, widest_input(d)) +
           (cap_k ? g3_qa_bytes(d->n_patches, cap_k) : 0);
}

static g3_siglip_dims dims_of(const g3_vision *v) {
    return (g3_siglip_dims){.n_patches = v->n_patches, .n_embd = v->n_embd, .n_ff = v->n_ff,
                            .head_dim = v->head_dim, .patch_in = v->patch * v->patch * 3,
                            .n_tokens = v->n_tokens, .n_proj = v->n_proj};
}

int g3_siglip_plan_file(const g3_gguf *g, uint32_t n_embd_text, uint32_t n_threads, uint64_t *bytes,
                        g3_error *err) {
    g3_vision v;
    memset(&v, 0, sizeof v);
    if (read_config(g, &v, err)) return -1;
    if (n_embd_text && v.n_proj != n_embd_text)
        return g3_fail(err, "the projector makes %u-wide image tokens, but the text model's embedding is %u wide: "
                            "this mmproj belongs to another model size", v.n_proj, n_embd_text);
    /* quantized encoder matrices whose width fits the 8-bit activation blocks */
    uint32_t cap_k = 0;
    for (uint64_t i = 0; i < g->n_tensors; i++) {
        const g3_gguf_tensor *t = &g->tensors[i];
        const g3_type_info *ti = g3_type_info_get(t->type);
        if (t->n_dims == 2 && ti && ti->block_size > 1 && t->ne[0] % G3_QA_BLOCK == 0 &&
            t->name.len > 6 && memcmp(t->name.ptr, "v.blk.", 6) == 0)
            cap_k = max_u32(cap_k, (uint32_t)t->ne[0]);
    }
    const g3_siglip_dims d = dims_of(&v);
    *bytes = g3_siglip_scratch_bytes(&d, cap_k, n_threads);
    return 0;
}

static int init_run_state(g3_vision *v, const g3_vision_params *params, g3_error *err) {
    g3_cpu_path path;
    if (g3_cpu_active_path(&path, err)) return -1;
    v->k = g3_kernels_get(path);
    if (!v->k) return g3_fail(err, "the %s kernels are not built into this binary", g3_cpu_path_name(path));
    const uint32_t usable = g3_cpu_usable_cpus();
    const uint32_t nth = params && params->n_threads ? params->n_threads : g3_cpu_physical_cores();
    if (nth > usable) return g3_fail(err, "%u threads requested, but this process can run on %u CPUs", nth, usable);
    const g3_siglip_dims d = dims_of(v);
    const scratch_floats f = scratch_of(&d);
    v->q_rows = q_rows_of(v->n_patches);
    const uint32_t max_K = widest_input(&d);
    if (g3_thread_pool_new(nth, &v->pool_threads, err) ||
        g3_mm_init(&v->mm, v->pool_threads, v->k, v->n_patches, max_K, err))
        return -1;
    v->x = alloc_floats(f.act);
    v->xb = alloc_floats(f.act);
    v->q = alloc_floats(f.act);
    v->kk = alloc_floats(f.act);
    v->vv = alloc_floats(f.act);
    v->att = alloc_floats(f.act);
    v->h = alloc_floats(f.h);
    v->scores = alloc_floats(f.scores);
    v->vt = alloc_floats(f.vt);
    v->ot = alloc_floats(f.ot);
    v->ones = alloc_floats(f.ones);
    v->pooled = alloc_floats(f.pooled);
    const uint32_t cap_k = q8_cap_k(v);
    if (!v->x || !v->xb || !v->q || !v->kk || !v->vv || !v->att || !v->h || !v->scores || !v->vt || !v->ot ||
        !v->ones || !v->pooled || (cap_k && g3_qa_alloc(&v->qa, v->n_patches, cap_k)))
        return g3_fail(err, "out of memory for the vision encoder's scratch (%u patches x %u wide)", v->n_patches,
                       max_K);
    for (uint64_t i = 0; i < f.ones; i++) v->ones[i] = 1.0f;
    return 0;
}

/* ---- public API ---- */

int g3_vision_load(const char *mmproj_path, const g3_vision_params *params, g3_vision **out, g3_error *err) {
    *out = NULL;
    g3_vision *v = calloc(1, sizeof *v);
    if (!v) return g3_fail(err, "out of memory");
    snprintf(v->path, sizeof v->path, "%s", mmproj_path);
    if (g3_gguf_open(mmproj_path, &v->gguf, err)) {
        free(v);
        return -1; /* the message names the file */
    }
    if (read_config(v->gguf, v, err) || load_tensors(v->gguf, v, err) || init_run_state(v, params, err)) {
        g3_error_prefix(err, "%s: ", mmproj_path);
        g3_vision_free(v);
        return -1;
    }
    *out = v;
    return 0;
}

void g3_vision_free(g3_vision *v) {
    if (!v) return;
    g3_mm_free(&v->mm);
    g3_thread_pool_free(v->pool_threads);
    float *bufs[] = {v->x, v->xb, v->q, v->kk, v->vv, v->att, v->h, v->scores, v->vt, v->ot, v->ones, v->pooled};
    for (size_t i = 0; i < sizeof bufs / sizeof bufs[0]; i++) free(bufs[i]);
    g3_qa_free(&v->qa);
    free(v->proj_t);
    free(v->vecs);
    free(v->layers);
    g3_gguf_close(v->gguf);
    free(v);
}

uint32_t g3_vision_image_size(const g3_vision *v) { return v->image_size; }
uint32_t g3_vision_n_tokens(const g3_vision *v) { return v->n_tokens; }
uint32_t g3_vision_n_embd(const g3_vision *v) { return v->n_proj; }

void g3_vision_norm(const g3_vision *v, float mean[3], float std[3]) {
    for (int c = 0; c < 3; c++) {
        mean[c] = v->mean[c];
        std[c] = v->std[c];
    }
}

int g3_vision_check_model(const g3_vision *v, const g3_model *model, g3_error *err) {
    const uint32_t n_embd = g3_model_config(model)->n_embd;
    if (v->n_proj != n_embd)
        return g3_fail(err,
                       "%s: the vision projector's output size is %u (clip.vision.projection_dim), but the text "
                       "model's embedding size is %u: this mmproj belongs to another model size",
                       v->path, v->n_proj, n_embd);
    return 0;
}

int g3_vision_encode(g3_vision *v, const float *pixels, float *out, g3_error *err) {
    return g3_siglip_encode(v, pixels, out, err);
}
