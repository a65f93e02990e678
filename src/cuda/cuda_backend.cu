/* cuda_backend.cu: devices, weights, contexts and the forward pass of the
 * CUDA backend (the interface is g3_cuda.h; the kernels cuda_kernels.cu).
 *
 * Every CUDA call is checked and a failure becomes a g3_error naming the
 * operation and CUDA's reason; nothing aborts. One device (the first the
 * driver lists) is used; every entry point selects it, since a context may
 * be used from another thread than the one that made it (the server's
 * engine thread). */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cuda/cuda_internal.cuh"

extern "C" {
#include "base/error.h"
#include "tensor/ops.h"
}

#define DEVICE 0

#define CK(call, what)                                                                                             \
    do {                                                                                                           \
        const cudaError_t ck_e_ = (call);                                                                          \
        if (ck_e_ != cudaSuccess) {                                                                                \
            g3_fail(err, "CUDA: %s failed: %s (%s)", what, cudaGetErrorString(ck_e_), cudaGetErrorName(ck_e_));    \
            goto fail;                                                                                             \
        }                                                                                                          \
    } while (0)

static int select_device(g3_error *err) {
    const cudaError_t e = cudaSetDevice(DEVICE);
    if (e != cudaSuccess)
        return g3_fail(err, "CUDA: selecting device %d failed: %s", DEVICE, cudaGetErrorString(e));
    return 0;
}

/* ---- devices ---- */

extern "C" bool g3_cuda_built(void) { return true; }

extern "C" int g3_cuda_device_count(char *why, size_t why_cap) {
    int n = 0;
    const cudaError_t e = cudaGetDeviceCount(&n);
    if (e != cudaSuccess) {
        (void)cudaGetLastError(); /* not sticky: clear it */
        if (why && why_cap) snprintf(why, why_cap, "no CUDA device: %s", cudaGetErrorString(e));
        return 0;
    }
    if (n == 0 && why && why_cap) snprintf(why, why_cap, "no CUDA device: the driver lists none");
    return n;
}

extern "C" int g3_cuda_device_info_get(g3_cuda_device_info *out, g3_error *err) {
    memset(out, 0, sizeof *out);
    cudaDeviceProp prop;
    size_t fr = 0, tot = 0;
    if (select_device(err)) return -1;
    CK(cudaGetDeviceProperties(&prop, DEVICE), "reading the device's properties");
    CK(cudaMemGetInfo(&fr, &tot), "reading the device's free memory");
    snprintf(out->name, sizeof out->name, "%.95s", prop.name);
    out->cc_major = prop.major;
    out->cc_minor = prop.minor;
    out->n_sm = (uint32_t)prop.multiProcessorCount;
    out->total_bytes = tot;
    out->free_bytes = fr;
    return 0;
fail:
    return -1;
}

extern "C" int g3_cuda_memory_used(uint64_t *in_use, uint64_t *total, g3_error *err) {
    size_t fr = 0, tot = 0;
    *in_use = *total = 0;
    if (select_device(err)) return -1;
    CK(cudaMemGetInfo(&fr, &tot), "reading the device's free memory");
    *in_use = tot - fr;
    *total = tot;
    return 0;
fail:
    return -1;
}

/* ---- weights ---- */

#define UPLOAD_CHUNK ((size_t)64 << 20) /* pinned staging buffer */

static uint64_t align256(uint64_t x) { return (x + 255) / 256 * 256; }

/* Device layout of a host matrix: its own type when native, else F32. */
static void dev_shape(const g3_matrix *m, uint32_t *type, uint64_t *row_bytes, uint64_t *data_bytes,
                      uint64_t *scale_bytes) {
    const uint64_t K = m->n_in, n = m->n_out;
    *type = g3_cuda_type_native(m->type) ? m->type : (uint32_t)DT_F32;
    *scale_bytes = 0;
    if (*type == DT_Q4_0) *row_bytes = K / 2, *scale_bytes = n * (K / 32) * 2;
    else if (*type == DT_Q8_0) *row_bytes = K, *scale_bytes = n * (K / 32) * 2;
    else if (*type == DT_F32 && m->type != DT_F32) *row_bytes = 4 * K;
    else *row_bytes = m->row_bytes;
    *data_bytes = n * *row_bytes;
}

extern "C" uint64_t g3_cuda_matrix_bytes(const g3_matrix *m) {
    uint32_t type;
    uint64_t rb, db, sb;
    dev_shape(m, &type, &rb, &db, &sb);
    return align256(db) + sb;
}

/* One device allocation holding data then scales; *alloc is what to free. */
static int upload_matrix(const g3_matrix *m, const char *name, dev_matrix *out, void **alloc, void *stage,
                         g3_error *err) {
    uint32_t type;
    uint64_t rb, db, sb;
    uint8_t *dev = NULL;
    *alloc = NULL;
    memset(out, 0, sizeof *out);
    if (m->n_in % 32)
        return g3_fail(err, "CUDA backend: %s has rows of %llu values, not a multiple of 32", name,
                       (unsigned long long)m->n_in);
    if (m->n_out > UINT32_MAX) return g3_fail(err, "CUDA backend: %s has too many rows", name);
    dev_shape(m, &type, &rb, &db, &sb);
    if (rb > UPLOAD_CHUNK) return g3_fail(err, "CUDA backend: %s has rows too long to upload", name);
    {
        const uint64_t total = align256(db) + sb;
        CK(cudaMalloc((void **)&dev, total), name);
        const uint64_t K = m->n_in, nb = K / 32;
        /* rows per staging round: data + scales of a row must fit */
        const uint64_t per_row = rb + (sb ? nb * 2 : 0), rows = UPLOAD_CHUNK / per_row;
        uint8_t *st_data = (uint8_t *)stage;
        for (uint64_t r0 = 0; r0 < m->n_out; r0 += rows) {
            const uint64_t r1 = r0 + rows < m->n_out ? r0 + rows : m->n_out, nr = r1 - r0;
            uint16_t *st_scales = (uint16_t *)(st_data + nr * rb);
            if (type == m->type) {
                g3_cuda_pack_rows(m, r0, r1, st_data, st_scales);
            } else {
                for (uint64_t r = r0; r < r1; r++) g3_matrix_get_row(m, r, (float *)(st_data + (r - r0) * rb));
            }
            CK(cudaMemcpy(dev + r0 * rb, st_data, nr * rb, cudaMemcpyHostToDevice), name);
            if (sb) CK(cudaMemcpy(dev + align256(db) + r0 * nb * 2, st_scales, nr * nb * 2, cudaMemcpyHostToDevice), name);
        }
        out->data = dev;
        out->scales = sb ? (const uint16_t *)(dev + align256(db)) : NULL;
        out->type = type;
        out->K = (uint32_t)m->n_in;
        out->n_out = (uint32_t)m->n_out;
        out->row_bytes = rb;
        *alloc = dev;
        return 0;
    }
fail:
    if (dev) cudaFree(dev);
    return -1;
}

typedef struct dev_layer {
    const float *attn_norm, *q_norm, *k_norm, *post_attn_norm, *ffn_norm, *post_ffn_norm;
    dev_matrix wq, wk, wv, wo, w_gate, w_up, w_down;
} dev_layer;

#define MODEL_MAX_ALLOCS (G3_MAX_LAYERS * 8 + 4)

struct g3_cuda_model {
    g3_config cfg;
    dev_layer layers[G3_MAX_LAYERS];
    const float *output_norm;
    dev_matrix output;
    float *norms; /* every norm vector, one allocation */
    void *allocs[MODEL_MAX_ALLOCS];
    uint32_t n_allocs;
    uint64_t bytes;
};

extern "C" uint64_t g3_cuda_model_bytes_for(const g3_config *cfg, const g3_cuda_layer_src *layers,
                                            const g3_matrix *output) {
    uint64_t b = g3_cuda_matrix_bytes(output);
    for (uint32_t il = 0; il < cfg->n_layer; il++) {
        const g3_cuda_layer_src *L = &layers[il];
        b += g3_cuda_matrix_bytes(&L->wq) + g3_cuda_matrix_bytes(&L->wk) + g3_cuda_matrix_bytes(&L->wv) +
             g3_cuda_matrix_bytes(&L->wo) + g3_cuda_matrix_bytes(&L->w_gate) + g3_cuda_matrix_bytes(&L->w_up) +
             g3_cuda_matrix_bytes(&L->w_down);
    }
    const uint64_t norms = (uint64_t)cfg->n_layer * (4 * cfg->n_embd + 2 * cfg->head_dim) + cfg->n_embd;
    return b + align256(norms * sizeof(float));
}

extern "C" void g3_cuda_model_free(g3_cuda_model *m) {
    if (!m) return;
    if (cudaSetDevice(DEVICE) == cudaSuccess)
        for (uint32_t i = 0; i < m->n_allocs; i++) cudaFree(m->allocs[i]);
    free(m);
}

extern "C" uint64_t g3_cuda_model_bytes(const g3_cuda_model *m) { return m ? m->bytes : 0; }

extern "C" int g3_cuda_model_new(const g3_config *cfg, const g3_cuda_layer_src *layers, const float *output_norm,
                                 const g3_matrix *output, g3_cuda_model **out, g3_error *err) {
    *out = NULL;
    if (select_device(err)) return -1;
    if (cfg->n_layer > G3_MAX_LAYERS) return g3_fail(err, "CUDA backend: %u layers", cfg->n_layer);
    if (!g3_cuda_attn_supported(cfg->n_head, cfg->n_head_kv, cfg->head_dim))
        return g3_fail(err,
                       "CUDA backend: attention with %u heads of %u values over %u KV heads is not covered "
                       "(head size 32, 64, 128 or 256; 1, 2, 4 or 8 query heads per KV head)",
                       cfg->n_head, cfg->head_dim, cfg->n_head_kv);
    if (cfg->n_embd % 32 || cfg->n_ff % 32)
        return g3_fail(err, "CUDA backend: embedding %u and feed-forward %u must be multiples of 32", cfg->n_embd,
                       cfg->n_ff);
    g3_cuda_model *m = (g3_cuda_model *)calloc(1, sizeof *m);
    void *stage = NULL;
    if (!m) return g3_fail(err, "out of memory");
    m->cfg = *cfg;
    CK(cudaMallocHost(&stage, UPLOAD_CHUNK), "allocating the pinned upload buffer");
    {
        /* norms: per layer attn, q, k, post_attn, ffn, post_ffn; then output */
        const uint32_t E = cfg->n_embd, D = cfg->head_dim;
        const uint64_t per_layer = 4 * (uint64_t)E + 2 * D, n_norms = cfg->n_layer * per_layer + E;
        CK(cudaMalloc((void **)&m->norms, n_norms * sizeof(float)), "allocating the norm weights");
        m->allocs[m->n_allocs++] = m->norms;
        m->bytes += align256(n_norms * sizeof(float));
        float *h = (float *)stage; /* n_norms floats fit easily in 64 MiB for any Gemma 3 */
        if (n_norms * sizeof(float) > UPLOAD_CHUNK) {
            g3_fail(err, "CUDA backend: norm vectors too large");
            goto fail;
        }
        for (uint32_t il = 0; il < cfg->n_layer; il++) {
            const g3_cuda_layer_src *L = &layers[il];
            float *p = h + il * per_layer;
            memcpy(p, L->attn_norm, E * sizeof(float));
            memcpy(p + E, L->q_norm, D * sizeof(float));
            memcpy(p + E + D, L->k_norm, D * sizeof(float));
            memcpy(p + E + 2 * D, L->post_attn_norm, E * sizeof(float));
            memcpy(p + 2 * E + 2 * D, L->ffn_norm, E * sizeof(float));
            memcpy(p + 3 * E + 2 * D, L->post_ffn_norm, E * sizeof(float));
            const float *d = m->norms + il * per_layer;
            dev_layer *dl = &m->layers[il];
            dl->attn_norm = d;
            dl->q_norm = d + E;
            dl->k_norm = d + E + D;
            dl->post_attn_norm = d + E + 2 * D;
            dl->ffn_norm = d + 2 * E + 2 * D;
            dl->post_ffn_norm = d + 3 * E + 2 * D;
        }
        memcpy(h + cfg->n_layer * per_layer, output_norm, E * sizeof(float));
        m->output_norm = m->norms + cfg->n_layer * per_layer;
        CK(cudaMemcpy(m->norms, h, n_norms * sizeof(float), cudaMemcpyHostToDevice), "uploading the norm weights");
    }
    for (uint32_t il = 0; il < cfg->n_layer; il++) {
        const g3_cuda_layer_src *L = &layers[il];
        dev_layer *dl = &m->layers[il];
        const struct {
            const g3_matrix *src;
            dev_matrix *dst;
            const char *name;
        } mats[7] = {{&L->wq, &dl->wq, "attn_q"},       {&L->wk, &dl->wk, "attn_k"},
                     {&L->wv, &dl->wv, "attn_v"},       {&L->wo, &dl->wo, "attn_output"},
                     {&L->w_gate, &dl->w_gate, "ffn_gate"}, {&L->w_up, &dl->w_up, "ffn_up"},
                     {&L->w_down, &dl->w_down, "ffn_down"}};
        for (int i = 0; i < 7; i++) {
            char name[64];
            snprintf(name, sizeof name, "uploading blk.%u.%s.weight", il, mats[i].name);
            if (upload_matrix(mats[i].src, name, mats[i].dst, &m->allocs[m->n_allocs], stage, err)) goto fail;
            m->n_allocs++;
            m->bytes += g3_cuda_matrix_bytes(mats[i].src);
        }
    }
    if (upload_matrix(output, "uploading the output matrix", &m->output, &m->allocs[m->n_allocs], stage, err))
        goto fail;
    m->n_allocs++;
    m->bytes += g3_cuda_matrix_bytes(output);
    cudaFreeHost(stage);
    *out = m;
    return 0;
fail:
    if (stage) cudaFreeHost(stage);
    g3_cuda_model_free(m);
    return -1;
}

/* ---- contexts ---- */

struct g3_cuda_ctx {
    const g3_cuda_model *m;
    cudaStream_t stream;
    uint32_t n_ctx, n_ubatch, n_seq, kv_type, max_blocks, logit_rows;
    bool exact;
    uint8_t *kv_region;
    void **kv_ptrs;      /* device: [2][n_seq * n_layer] */
    uint32_t *n_slots;   /* device: [n_layer] */
    uint8_t *scratch;    /* one allocation for the rest */
    float *x, *xb, *q, *k, *v, *att, *g, *u, *logits, *part;
    double *pw;          /* [2][D/2]: local, global */
    uint32_t *rows;      /* [2][U]: seq, pos */
    uint64_t kv_bytes, scratch_bytes;
};

extern "C" int g3_cuda_kv_type_check(g3_kv_type t, g3_error *err) {
    if (t == G3_KV_F32 || t == G3_KV_F16 || t == G3_KV_BF16 || t == G3_KV_Q8_0) return 0;
    return g3_fail(err, "the CUDA backend keeps the KV cache in f32, f16, bf16 or q8_0, not type %d", (int)t);
}

typedef struct scratch_layout {
    uint64_t x, xb, q, k, v, att, g, u, logits, part, pw, rows, total;
} scratch_layout;

static uint32_t logit_rows_for(const g3_config *cfg, uint32_t U) {
    uint64_t r = ((uint64_t)64 << 20) / ((uint64_t)cfg->n_vocab * sizeof(float));
    if (r < 1) r = 1;
    return (uint32_t)(r < U ? r : U);
}

static void layout_scratch(const g3_config *c, uint32_t U, uint32_t max_blocks, scratch_layout *s) {
    const uint64_t E = c->n_embd, QD = (uint64_t)c->n_head * c->head_dim, KVD = (uint64_t)c->n_head_kv * c->head_dim,
                   F = c->n_ff;
    uint64_t off = 0;
#define PLACE(field, bytes) (s->field = off, off += align256(bytes))
    PLACE(x, U * E * 4);
    PLACE(xb, U * E * 4);
    PLACE(q, U * QD * 4);
    PLACE(k, U * KVD * 4);
    PLACE(v, U * KVD * 4);
    PLACE(att, U * QD * 4);
    PLACE(g, U * F * 4);
    PLACE(u, U * F * 4);
    PLACE(logits, (uint64_t)logit_rows_for(c, U) * c->n_vocab * 4);
    PLACE(part, g3_cuda_attn_part_floats(U, c->n_head, c->n_head_kv, c->head_dim, max_blocks) * 4);
    PLACE(pw, (uint64_t)c->head_dim * 8);
    PLACE(rows, 2 * (uint64_t)U * 4);
#undef PLACE
    s->total = off;
}

#define PLAN_MAX_BLOCKS 528 /* 2 x 132 SMs x 2: the sizes the planner assumes (an H100/H200 has 132) */

static uint64_t kv_layer_bytes(const g3_config *c, uint32_t slots, g3_kv_type t) {
    return align256((uint64_t)slots * g3_cuda_kv_row_bytes((uint32_t)t, c->n_head_kv * c->head_dim));
}

extern "C" void g3_cuda_ctx_bytes(const g3_config *cfg, const g3_cuda_ctx_params *p, uint64_t *kv_bytes,
                                  uint64_t *scratch_bytes) {
    uint64_t kv = 0;
    for (uint32_t il = 0; il < cfg->n_layer; il++) kv += 2 * kv_layer_bytes(cfg, p->n_slots[il], p->kv_type);
    *kv_bytes = kv * (p->n_seq ? p->n_seq : 1);
    scratch_layout s;
    layout_scratch(cfg, p->n_ubatch, PLAN_MAX_BLOCKS, &s);
    *scratch_bytes = s.total;
}

extern "C" void g3_cuda_ctx_free(g3_cuda_ctx *c) {
    if (!c) return;
    if (cudaSetDevice(DEVICE) == cudaSuccess) {
        if (c->stream) cudaStreamDestroy(c->stream);
        cudaFree(c->kv_region);
        cudaFree(c->kv_ptrs);
        cudaFree(c->n_slots);
        cudaFree(c->scratch);
    }
    free(c);
}

extern "C" int g3_cuda_ctx_new(const g3_cuda_model *m, const g3_cuda_ctx_params *p, g3_cuda_ctx **out,
                               g3_error *err) {
    *out = NULL;
    if (select_device(err) || g3_cuda_kv_type_check(p->kv_type, err)) return -1;
    const g3_config *c = &m->cfg;
    g3_cuda_ctx *x = (g3_cuda_ctx *)calloc(1, sizeof *x);
    void **host_ptrs = NULL;
    if (!x) return g3_fail(err, "out of memory");
    x->m = m;
    x->n_ctx = p->n_ctx;
    x->n_ubatch = p->n_ubatch;
    x->n_seq = p->n_seq ? p->n_seq : 1;
    x->kv_type = (uint32_t)p->kv_type;
    x->exact = p->exact;
    {
        cudaDeviceProp prop;
        CK(cudaGetDeviceProperties(&prop, DEVICE), "reading the device's properties");
        x->max_blocks = 2 * (uint32_t)prop.multiProcessorCount;
        if (x->max_blocks > PLAN_MAX_BLOCKS) x->max_blocks = PLAN_MAX_BLOCKS;
        x->logit_rows = logit_rows_for(c, p->n_ubatch);
        CK(cudaStreamCreateWithFlags(&x->stream, cudaStreamNonBlocking), "creating a stream");
        /* KV: per sequence, per layer, keys then values */
        const uint32_t L = c->n_layer;
        uint64_t per_seq = 0;
        for (uint32_t il = 0; il < L; il++) per_seq += 2 * kv_layer_bytes(c, p->n_slots[il], p->kv_type);
        x->kv_bytes = per_seq * x->n_seq;
        char what[128];
        snprintf(what, sizeof what, "allocating the KV cache (%.1f MiB)", x->kv_bytes / 1048576.0);
        CK(cudaMalloc((void **)&x->kv_region, x->kv_bytes), what);
        CK(cudaMemsetAsync(x->kv_region, 0, x->kv_bytes, x->stream), "clearing the KV cache");
        host_ptrs = (void **)malloc(sizeof(void *) * 2 * x->n_seq * L);
        if (!host_ptrs) {
            g3_fail(err, "out of memory");
            goto fail;
        }
        uint64_t off = 0;
        for (uint32_t sq = 0; sq < x->n_seq; sq++)
            for (uint32_t il = 0; il < L; il++) {
                const uint64_t b = kv_layer_bytes(c, p->n_slots[il], p->kv_type);
                host_ptrs[sq * L + il] = x->kv_region + off;
                host_ptrs[x->n_seq * L + sq * L + il] = x->kv_region + off + b;
                off += 2 * b;
            }
        CK(cudaMalloc((void **)&x->kv_ptrs, sizeof(void *) * 2 * x->n_seq * L), "allocating the KV table");
        CK(cudaMemcpy(x->kv_ptrs, host_ptrs, sizeof(void *) * 2 * x->n_seq * L, cudaMemcpyHostToDevice),
           "uploading the KV table");
        CK(cudaMalloc((void **)&x->n_slots, sizeof(uint32_t) * L), "allocating the KV table");
        CK(cudaMemcpy(x->n_slots, p->n_slots, sizeof(uint32_t) * L, cudaMemcpyHostToDevice), "uploading the KV table");
        /* scratch */
        scratch_layout s;
        layout_scratch(c, p->n_ubatch, x->max_blocks, &s);
        x->scratch_bytes = s.total;
        snprintf(what, sizeof what, "allocating the activations (%.1f MiB)", s.total / 1048576.0);
        CK(cudaMalloc((void **)&x->scratch, s.total), what);
        x->x = (float *)(x->scratch + s.x);
        x->xb = (float *)(x->scratch + s.xb);
        x->q = (float *)(x->scratch + s.q);
        x->k = (float *)(x->scratch + s.k);
        x->v = (float *)(x->scratch + s.v);
        x->att = (float *)(x->scratch + s.att);
        x->g = (float *)(x->scratch + s.g);
        x->u = (float *)(x->scratch + s.u);
        x->logits = (float *)(x->scratch + s.logits);
        x->part = (float *)(x->scratch + s.part);
        x->pw = (double *)(x->scratch + s.pw);
        x->rows = (uint32_t *)(x->scratch + s.rows);
        /* base^(-2i/D) of local and global layers, as gemma3_forward.c */
        const uint32_t D = c->head_dim, half = D / 2;
        double *pw = (double *)malloc(sizeof(double) * D);
        if (!pw) {
            g3_fail(err, "out of memory");
            goto fail;
        }
        for (uint32_t i = 0; i < half; i++) {
            pw[i] = pow((double)c->rope_base_local, -2.0 * i / D);
            pw[half + i] = pow((double)c->rope_base_global, -2.0 * i / D);
        }
        const cudaError_t e = cudaMemcpy(x->pw, pw, sizeof(double) * D, cudaMemcpyHostToDevice);
        free(pw);
        CK(e, "uploading the RoPE frequencies");
        CK(cudaStreamSynchronize(x->stream), "clearing the KV cache");
    }
    free(host_ptrs);
    *out = x;
    return 0;
fail:
    free(host_ptrs);
    g3_cuda_ctx_free(x);
    return -1;
}

/* ---- the forward pass ---- */

#define LAUNCH(call, what) CK(call, what)

static int mm(g3_cuda_ctx *c, const dev_matrix *w, const float *x, uint32_t ldx, uint32_t T, float *y, uint32_t ldy,
              const char *what, g3_error *err) {
    const int kind = T <= MV_MAX_ROWS ? MM_MATVEC : c->exact ? MM_GEMM_F32 : MM_GEMM_TF32;
    LAUNCH(launch_matmul(w, x, ldx, T, y, ldy, kind, c->stream), what);
    return 0;
fail:
    return -1;
}

extern "C" int g3_cuda_forward(g3_cuda_ctx *c, const g3_cuda_batch *b, g3_error *err) {
    const g3_cuda_model *m = c->m;
    const g3_config *cfg = &m->cfg;
    const uint32_t T = b->T, E = cfg->n_embd, D = cfg->head_dim, H = cfg->n_head, HKV = cfg->n_head_kv,
                   QD = H * D, KVD = HKV * D, F = cfg->n_ff, V = cfg->n_vocab, L = cfg->n_layer;
    const float eps = cfg->rms_eps;
    if (T == 0 || T > c->n_ubatch) return g3_fail(err, "CUDA forward: %u rows (batch size %u)", T, c->n_ubatch);
    if (select_device(err)) return -1;
    cudaStream_t s = c->stream;
    const dev_rows rows = {c->rows, c->rows + c->n_ubatch, T};
    const dev_kv kv = {c->kv_ptrs, c->kv_ptrs + (size_t)c->n_seq * L, c->n_slots, L, c->kv_type,
                       g3_cuda_kv_row_bytes(c->kv_type, KVD)};

    CK(cudaMemcpyAsync(c->x, b->x, sizeof(float) * T * E, cudaMemcpyHostToDevice, s), "uploading the embeddings");
    CK(cudaMemcpyAsync(c->rows, b->seq, sizeof(uint32_t) * T, cudaMemcpyHostToDevice, s), "uploading the batch rows");
    CK(cudaMemcpyAsync(c->rows + c->n_ubatch, b->pos, sizeof(uint32_t) * T, cudaMemcpyHostToDevice, s),
       "uploading the batch rows");
    LAUNCH(launch_rmsnorm(c->xb, c->x, m->layers[0].attn_norm, T, E, E, eps, s), "rmsnorm");

    for (uint32_t il = 0; il < L; il++) {
        const dev_layer *Lw = &m->layers[il];
        const bool global = cfg->is_global[il];
        if (mm(c, &Lw->wq, c->xb, E, T, c->q, QD, "attn_q", err) || mm(c, &Lw->wk, c->xb, E, T, c->k, KVD, "attn_k", err) ||
            mm(c, &Lw->wv, c->xb, E, T, c->v, KVD, "attn_v", err))
            return -1;
        const double fscale = global ? 1.0 / cfg->rope_scale_global : 1.0;
        LAUNCH(launch_qk_rope_store(c->q, c->k, c->v, Lw->q_norm, Lw->k_norm, H, HKV, D, eps,
                                    c->pw + (global ? D / 2 : 0), fscale, cfg->attn_scale, &rows, &kv, il, s),
               "qk-norm, rope and the KV store");
        LAUNCH(launch_attention(c->q, c->att, H, HKV, D, &rows, b->pos, &kv, il, global ? 0 : cfg->window,
                                b->bidirectional, cfg->attn_softcap, c->part, c->max_blocks, s),
               "attention");
        if (mm(c, &Lw->wo, c->att, QD, T, c->xb, E, "attn_output", err)) return -1;
        LAUNCH(launch_residual(c->x, c->xb, Lw->post_attn_norm, Lw->ffn_norm, T, E, eps, s), "residual");
        if (mm(c, &Lw->w_gate, c->xb, E, T, c->g, F, "ffn_gate", err) || mm(c, &Lw->w_up, c->xb, E, T, c->u, F, "ffn_up", err))
            return -1;
        LAUNCH(launch_geglu(c->g, c->u, (uint64_t)T * F, s), "geglu");
        if (mm(c, &Lw->w_down, c->g, F, T, c->xb, E, "ffn_down", err)) return -1;
        LAUNCH(launch_residual(c->x, c->xb, Lw->post_ffn_norm, il + 1 < L ? m->layers[il + 1].attn_norm : NULL, T, E,
                               eps, s),
               "residual");
    }

    if (b->logits) {
        const uint32_t first = b->all_logits ? 0 : T - 1;
        for (uint32_t r0 = first; r0 < T; r0 += c->logit_rows) {
            const uint32_t nr = T - r0 < c->logit_rows ? T - r0 : c->logit_rows;
            LAUNCH(launch_rmsnorm(c->xb + (size_t)r0 * E, c->x + (size_t)r0 * E, m->output_norm, nr, E, E, eps, s),
                   "output norm");
            if (mm(c, &m->output, c->xb + (size_t)r0 * E, E, nr, c->logits, V, "output", err)) return -1;
            if (cfg->final_softcap > 0.0f)
                LAUNCH(launch_softcap(c->logits, (uint64_t)nr * V, cfg->final_softcap, s), "soft-capping");
            CK(cudaMemcpyAsync(b->logits + (size_t)(r0 - first) * V, c->logits, sizeof(float) * nr * V,
                               cudaMemcpyDeviceToHost, s),
               "copying the logits");
        }
    }
    CK(cudaStreamSynchronize(s), "the forward pass");
    return 0;
fail:
    (void)cudaStreamSynchronize(s);
    return -1;
}

/* ---- single operations, for tests ---- */

extern "C" int g3_cuda_test_dequant_row(const g3_matrix *w, uint64_t row, float *out, g3_error *err) {
    if (row >= w->n_out || g3_cuda_dequant_host(w, row, out))
        return g3_fail(err, "type %u is not read natively by the CUDA kernels (or row %llu is out of range)", w->type,
                       (unsigned long long)row);
    return 0;
}

extern "C" int g3_cuda_test_matmul(const g3_matrix *w, const float *x, uint32_t T, int mode, float *y,
                                   g3_error *err) {
    dev_matrix dm;
    void *walloc = NULL, *stage = NULL;
    float *dx = NULL, *dy = NULL;
    int rc = -1;
    if (select_device(err)) return -1;
    CK(cudaMallocHost(&stage, UPLOAD_CHUNK), "allocating the pinned upload buffer");
    if (upload_matrix(w, "uploading the test matrix", &dm, &walloc, stage, err)) goto fail;
    CK(cudaMalloc((void **)&dx, sizeof(float) * T * w->n_in + 16), "allocating x");
    CK(cudaMalloc((void **)&dy, sizeof(float) * T * w->n_out + 16), "allocating y");
    CK(cudaMemcpy(dx, x, sizeof(float) * T * w->n_in, cudaMemcpyHostToDevice), "uploading x");
    {
        const int kind = mode == 0 ? MM_AUTO : mode == 1 ? MM_MATVEC : mode == 2 ? MM_GEMM_F32 : MM_GEMM_TF32;
        CK(launch_matmul(&dm, dx, (uint32_t)w->n_in, T, dy, (uint32_t)w->n_out, kind, 0), "matmul");
    }
    CK(cudaDeviceSynchronize(), "matmul");
    CK(cudaMemcpy(y, dy, sizeof(float) * T * w->n_out, cudaMemcpyDeviceToHost), "downloading y");
    rc = 0;
fail:
    if (stage) cudaFreeHost(stage);
    cudaFree(walloc);
    cudaFree(dx);
    cudaFree(dy);
    return rc;
}

extern "C" int g3_cuda_test_rmsnorm(const float *x, const float *w, uint32_t T, uint32_t n, float eps, float *out,
                                    g3_error *err) {
    float *dx = NULL, *dw = NULL;
    int rc = -1;
    if (select_device(err)) return -1;
    CK(cudaMalloc((void **)&dx, sizeof(float) * T * n), "allocating x");
    CK(cudaMalloc((void **)&dw, sizeof(float) * n), "allocating w");
    CK(cudaMemcpy(dx, x, sizeof(float) * T * n, cudaMemcpyHostToDevice), "uploading x");
    CK(cudaMemcpy(dw, w, sizeof(float) * n, cudaMemcpyHostToDevice), "uploading w");
    CK(launch_rmsnorm(dx, dx, dw, T, n, n, eps, 0), "rmsnorm");
    CK(cudaDeviceSynchronize(), "rmsnorm");
    CK(cudaMemcpy(out, dx, sizeof(float) * T * n, cudaMemcpyDeviceToHost), "downloading out");
    rc = 0;
fail:
    cudaFree(dx);
    cudaFree(dw);
    return rc;
}

extern "C" int g3_cuda_test_geglu(const float *g, const float *u, uint32_t n, float *out, g3_error *err) {
    float *dg = NULL, *du = NULL;
    int rc = -1;
    if (select_device(err)) return -1;
    CK(cudaMalloc((void **)&dg, sizeof(float) * n), "allocating g");
    CK(cudaMalloc((void **)&du, sizeof(float) * n), "allocating u");
    CK(cudaMemcpy(dg, g, sizeof(float) * n, cudaMemcpyHostToDevice), "uploading g");
    CK(cudaMemcpy(du, u, sizeof(float) * n, cudaMemcpyHostToDevice), "uploading u");
    CK(launch_geglu(dg, du, n, 0), "geglu");
    CK(cudaDeviceSynchronize(), "geglu");
    CK(cudaMemcpy(out, dg, sizeof(float) * n, cudaMemcpyDeviceToHost), "downloading out");
    rc = 0;
fail:
    cudaFree(dg);
    cudaFree(du);
    return rc;
}

extern "C" int g3_cuda_test_norm_rope(float *v, uint32_t n_heads, uint32_t D, const float *w, float eps, uint32_t pos,
                                      double base, double freq_scale, float scale, g3_error *err) {
    float *dv = NULL, *dw = NULL;
    double *dpw = NULL;
    uint32_t *drows = NULL, *dslots = NULL;
    void **dptrs = NULL;
    int rc = -1;
    double *pw = (double *)malloc(sizeof(double) * (D / 2 + 1));
    if (!pw) return g3_fail(err, "out of memory");
    for (uint32_t i = 0; i < D / 2; i++) pw[i] = pow(base, -2.0 * i / D);
    if (select_device(err)) goto fail;
    CK(cudaMalloc((void **)&dv, sizeof(float) * n_heads * D), "allocating v");
    CK(cudaMalloc((void **)&dw, sizeof(float) * D), "allocating w");
    CK(cudaMalloc((void **)&dpw, sizeof(double) * (D / 2 + 1)), "allocating pw");
    CK(cudaMalloc((void **)&drows, sizeof(uint32_t) * 2), "allocating rows");
    CK(cudaMalloc((void **)&dslots, sizeof(uint32_t)), "allocating slots");
    CK(cudaMalloc((void **)&dptrs, sizeof(void *) * 2), "allocating the KV table");
    {
        const uint32_t hrows[2] = {0, pos}, one = 1;
        void *nulls[2] = {NULL, NULL};
        CK(cudaMemcpy(dv, v, sizeof(float) * n_heads * D, cudaMemcpyHostToDevice), "uploading v");
        CK(cudaMemcpy(dw, w, sizeof(float) * D, cudaMemcpyHostToDevice), "uploading w");
        CK(cudaMemcpy(dpw, pw, sizeof(double) * (D / 2 + 1), cudaMemcpyHostToDevice), "uploading pw");
        CK(cudaMemcpy(drows, hrows, sizeof hrows, cudaMemcpyHostToDevice), "uploading rows");
        CK(cudaMemcpy(dslots, &one, sizeof one, cudaMemcpyHostToDevice), "uploading slots");
        CK(cudaMemcpy(dptrs, nulls, sizeof nulls, cudaMemcpyHostToDevice), "uploading the KV table");
        const dev_rows rows = {drows, drows + 1, 1};
        const dev_kv kv = {dptrs, dptrs + 1, dslots, 1, DT_F32, 0};
        /* no KV heads: nothing is stored */
        CK(launch_qk_rope_store(dv, NULL, NULL, dw, dw, n_heads, 0, D, eps, dpw, freq_scale, scale, &rows, &kv, 0, 0),
           "qk-norm and rope");
    }
    CK(cudaDeviceSynchronize(), "qk-norm and rope");
    CK(cudaMemcpy(v, dv, sizeof(float) * n_heads * D, cudaMemcpyDeviceToHost), "downloading v");
    rc = 0;
fail:
    free(pw);
    cudaFree(dv);
    cudaFree(dw);
    cudaFree(dpw);
    cudaFree(drows);
    cudaFree(dslots);
    cudaFree(dptrs);
    return rc;
}

extern "C" int g3_cuda_test_attention(const float *q, uint32_t T, uint32_t H, uint32_t HKV, uint32_t D,
                                      const float *keys, const float *vals, uint32_t slots, g3_kv_type kv_type,
                                      const uint32_t *pos, uint32_t window, bool bidirectional, float softcap,
                                      float *out, g3_error *err) {
    float *dq = NULL, *datt = NULL, *dpart = NULL, *dtmp = NULL;
    uint8_t *dk = NULL, *dvv = NULL;
    uint32_t *drows = NULL, *dslots = NULL;
    void **dptrs = NULL;
    int rc = -1;
    const uint64_t nkv = (uint64_t)slots * HKV * D;
    uint32_t *hrows = (uint32_t *)malloc(sizeof(uint32_t) * 2 * T);
    if (!hrows) return g3_fail(err, "out of memory");
    if (select_device(err) || g3_cuda_kv_type_check(kv_type, err)) goto fail;
    if (!g3_cuda_attn_supported(H, HKV, D)) {
        g3_fail(err, "CUDA attention: %u heads, %u KV heads, head size %u not covered", H, HKV, D);
        goto fail;
    }
    {
        cudaDeviceProp prop;
        CK(cudaGetDeviceProperties(&prop, DEVICE), "reading the device's properties");
        const uint32_t max_blocks = 2 * (uint32_t)prop.multiProcessorCount;
        for (uint32_t t = 0; t < T; t++) {
            hrows[t] = 0;
            hrows[T + t] = pos[t];
        }
        const uint32_t one_slots = slots;
        CK(cudaMalloc((void **)&dq, sizeof(float) * T * H * D), "allocating q");
        CK(cudaMalloc((void **)&datt, sizeof(float) * T * H * D), "allocating att");
        CK(cudaMalloc((void **)&dpart, sizeof(float) * g3_cuda_attn_part_floats(T, H, HKV, D, max_blocks)),
           "allocating the partial results");
        CK(cudaMalloc((void **)&dtmp, sizeof(float) * nkv), "allocating the cache staging");
        const uint32_t rb = g3_cuda_kv_row_bytes((uint32_t)kv_type, HKV * D);
        CK(cudaMalloc((void **)&dk, (uint64_t)slots * rb), "allocating keys");
        CK(cudaMalloc((void **)&dvv, (uint64_t)slots * rb), "allocating values");
        CK(cudaMalloc((void **)&drows, sizeof(uint32_t) * 2 * T), "allocating rows");
        CK(cudaMalloc((void **)&dslots, sizeof(uint32_t)), "allocating slots");
        CK(cudaMalloc((void **)&dptrs, sizeof(void *) * 2), "allocating the KV table");
        void *ptrs[2] = {dk, dvv};
        CK(cudaMemcpy(dq, q, sizeof(float) * T * H * D, cudaMemcpyHostToDevice), "uploading q");
        CK(cudaMemcpy(dtmp, keys, sizeof(float) * nkv, cudaMemcpyHostToDevice), "uploading keys");
        CK(launch_kv_fill(dk, dtmp, nkv, kv_type, 0), "converting keys");
        CK(cudaDeviceSynchronize(), "converting keys");
        CK(cudaMemcpy(dtmp, vals, sizeof(float) * nkv, cudaMemcpyHostToDevice), "uploading values");
        CK(launch_kv_fill(dvv, dtmp, nkv, kv_type, 0), "converting values");
        CK(cudaMemcpy(drows, hrows, sizeof(uint32_t) * 2 * T, cudaMemcpyHostToDevice), "uploading rows");
        CK(cudaMemcpy(dslots, &one_slots, sizeof one_slots, cudaMemcpyHostToDevice), "uploading slots");
        CK(cudaMemcpy(dptrs, ptrs, sizeof ptrs, cudaMemcpyHostToDevice), "uploading the KV table");
        const dev_rows rows = {drows, drows + T, T};
        const dev_kv kv = {dptrs, dptrs + 1, dslots, 1, (uint32_t)kv_type, rb};
        CK(launch_attention(dq, datt, H, HKV, D, &rows, pos, &kv, 0, window, bidirectional, softcap, dpart, max_blocks,
                            0),
           "attention");
        CK(cudaDeviceSynchronize(), "attention");
        CK(cudaMemcpy(out, datt, sizeof(float) * T * H * D, cudaMemcpyDeviceToHost), "downloading att");
    }
    rc = 0;
fail:
    free(hrows);
    cudaFree(dq);
    cudaFree(datt);
    cudaFree(dpart);
    cudaFree(dtmp);
    cudaFree(dk);
    cudaFree(dvv);
    cudaFree(drows);
    cudaFree(dslots);
    cudaFree(dptrs);
    return rc;
}
