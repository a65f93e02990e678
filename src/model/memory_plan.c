/* memory_plan.c: the memory planner.
 *
 * Three kinds of memory, each computed by the function its allocator calls:
 * weights (tensor bytes, mapped from the file), the KV cache (per layer:
 * slots x row bytes, keys and values) and the forward-pass scratch of a
 * context. Built-in plans enumerate the tensors of the real Gemma 3 shapes
 * (the table make-test-model writes from) and give each the type the
 * quantizer would choose, so a plan of "27b q4_k_m" is the size of the file
 * `gemma-chat quantize` makes from the bf16 release. */
#include "model/memory_plan.h"

#include "model/gemma3_forward.h"

#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "base/checked_math.h"
#include "base/cpu_features.h"
#include "base/error.h"
#include "model/gemma3_config.h"
#include "model/gemma3_model.h"
#include "model/gguf.h"
#include "model/quantize.h"
#include "model/siglip.h"
#include "model/gemma3_shapes.h"
#include "tensor/type_info.h"

_Static_assert(G3_PLAN_N_TYPES == G3_TYPE_COUNT, "g3_plan.type_bytes must cover every type id");
_Static_assert((int)G3_KV_F32 == (int)G3_TYPE_F32 && (int)G3_KV_F16 == (int)G3_TYPE_F16 &&
                   (int)G3_KV_Q8_0 == (int)G3_TYPE_Q8_0 && (int)G3_KV_BF16 == (int)G3_TYPE_BF16,
               "g3_kv_type values are ggml type ids");

/* The SigLIP encoder of Gemma 3 4B/12B/27B (the same in all three) and the
 * projector into the text model; names and shapes as in llama.cpp mmproj
 * files. */
#define SIGLIP_LAYERS 27
#define SIGLIP_WIDTH 1152
#define SIGLIP_FF 4304
#define SIGLIP_PATCH 14
#define SIGLIP_IMAGE 896
#define SIGLIP_POSITIONS ((SIGLIP_IMAGE / SIGLIP_PATCH) * (SIGLIP_IMAGE / SIGLIP_PATCH))
#define SIGLIP_HEADS 16
#define SIGLIP_TOKENS 256 /* the 64x64 patch grid average-pooled 4x4 */

static uint64_t sat_mul(uint64_t a, uint64_t b) {
    uint64_t r;
    return g3_mul_overflow_u64(a, b, &r) ? UINT64_MAX : r;
}

static uint64_t sat_add(uint64_t a, uint64_t b) {
    uint64_t r;
    return g3_add_overflow_u64(a, b, &r) ? UINT64_MAX : r;
}

/* ---- names --------------------------------------------------------------- */

const char *g3_kv_type_name(g3_kv_type type) {
    switch (type) {
    case G3_KV_F32: return "f32";
    case G3_KV_F16: return "f16";
    case G3_KV_Q8_0: return "q8_0";
    case G3_KV_BF16: return "bf16";
    }
    return NULL;
}

int g3_kv_type_from_name(const char *name) {
    static const g3_kv_type all[] = {G3_KV_F32, G3_KV_F16, G3_KV_Q8_0, G3_KV_BF16};
    for (size_t i = 0; name && i < sizeof all / sizeof all[0]; i++)
        if (strcasecmp(name, g3_kv_type_name(all[i])) == 0) return (int)all[i];
    return -1;
}

/* ---- KV cache and scratch: the arithmetic the allocators use ------------- */

void g3_plan_context_sizes(const g3_config *cfg, const g3_context_params *params,
                           uint32_t *n_ctx, uint32_t *n_ubatch) {
    uint32_t ctx = params && params->n_ctx ? params->n_ctx : cfg->n_ctx_train;
    uint32_t ub = params && params->n_ubatch ? params->n_ubatch : G3_PLAN_DEFAULT_UBATCH;
    *n_ctx = ctx;
    *n_ubatch = ub > ctx ? ctx : ub;
}

uint32_t g3_plan_kv_layer_slots(const g3_config *cfg, uint32_t il, uint32_t n_ctx, uint32_t slack) {
    if (cfg->is_global[il] || cfg->window == 0) return n_ctx;
    /* A batch writes all its keys before it attends, and its first query
     * still needs the window - 1 keys before it: window + batch slots hold
     * that with one to spare (llama.cpp sizes its SWA cache the same way). */
    uint64_t ring = (uint64_t)cfg->window + slack;
    return ring < n_ctx ? (uint32_t)ring : n_ctx;
}

/* Each head's part of a row must be whole blocks: attention reads one
 * head at a time. */
uint64_t g3_plan_kv_row_bytes(const g3_config *cfg, g3_kv_type kv_type) {
    uint64_t head;
    if (g3_type_row_bytes((uint32_t)kv_type, cfg->head_dim, &head, NULL)) return 0;
    return head * cfg->n_head_kv;
}

int g3_plan_kv_check(const g3_config *cfg, g3_kv_type kv_type, g3_error *err) {
    if (!g3_kv_type_name(kv_type)) return g3_fail(err, "unknown KV cache type id %d", (int)kv_type);
    if (g3_plan_kv_row_bytes(cfg, kv_type) == 0)
        return g3_fail(err, "a %s KV cache needs a head size that is a multiple of 32; this model's is %u",
                       g3_kv_type_name(kv_type), cfg->head_dim);
    return 0;
}

uint64_t g3_plan_kv_tensor_bytes(const g3_config *cfg, uint32_t il, uint32_t n_ctx, uint32_t slack,
                                 g3_kv_type kv_type) {
    return sat_mul(g3_plan_kv_row_bytes(cfg, kv_type), g3_plan_kv_layer_slots(cfg, il, n_ctx, slack));
}

uint64_t g3_plan_kv_bytes(const g3_config *cfg, uint32_t n_ctx, uint32_t slack, g3_kv_type kv_type) {
    uint64_t total = 0;
    for (uint32_t il = 0; il < cfg->n_layer; il++)
        total = sat_add(total, sat_mul(2, g3_plan_kv_tensor_bytes(cfg, il, n_ctx, slack, kv_type)));
    return total;
}

uint64_t g3_plan_kv_full_bytes(const g3_config *cfg, uint32_t n_ctx, g3_kv_type kv_type) {
    uint64_t per_layer = sat_mul(2 * (uint64_t)n_ctx, g3_plan_kv_row_bytes(cfg, kv_type));
    return sat_mul(per_layer, cfg->n_layer);
}

uint64_t g3_plan_scratch_bytes(const g3_config *cfg, uint32_t n_ctx, uint32_t n_ubatch,
                               uint32_t n_threads, g3_scratch_layout *layout) {
    const uint64_t qd = (uint64_t)cfg->n_head * cfg->head_dim;
    g3_scratch_layout l = {
        .x = sat_mul(n_ubatch, cfg->n_embd),
        .q = sat_mul(n_ubatch, qd),
        .att = sat_mul(n_ubatch, qd),
        .xb = cfg->n_embd,
        .gate = cfg->n_ff,
        .up = cfg->n_ff,
        .scores = n_ctx,
    };
    if (layout) *layout = l; /* the main activations, for --verbose */
    /* the total is the context's own formula: what g3_context_new allocates
     * for this kernel path and thread count (per-thread product buffers,
     * 8-bit activations and RoPE tables included) */
    return g3_forward_scratch_bytes(cfg, n_ctx, n_ubatch, n_threads);
}

/* ---- built-in shapes: the tensors of the real files ---------------------- */

typedef struct tensor_sink {
    g3_quant_rules rules;
    g3_plan *plan;
    bool vision;
    uint32_t vision_cap_k; /* widest quantized encoder matrix input (8-bit activation rows) */
    int failed;
    g3_error *err;
} tensor_sink;

/* One tensor: the type the quantizer gives it (from a bf16 release: 1-D
 * tensors are F32 there, the rest BF16) and its bytes. */
static void add_tensor(tensor_sink *s, const char *name, uint32_t n_dims, uint64_t ne0, uint64_t ne1,
                       uint64_t ne2, uint64_t ne3) {
    if (s->failed) return;
    const uint64_t ne[4] = {ne0, ne1, ne2, ne3};
    uint32_t src = n_dims == 1 ? G3_TYPE_F32 : G3_TYPE_BF16;
    uint32_t type = g3_quant_tensor_type(&s->rules, name, n_dims, ne, src);
    uint64_t row;
    if (g3_type_row_bytes(type, ne0, &row, s->err)) {
        s->failed = g3_error_prefix(s->err, "tensor '%s': ", name);
        return;
    }
    uint64_t bytes = sat_mul(sat_mul(row, ne1), sat_mul(ne2, ne3));
    g3_plan *p = s->plan;
    p->type_bytes[type] = sat_add(p->type_bytes[type], bytes);
    p->type_count[type]++;
    if (s->vision) p->vision_weights_bytes = sat_add(p->vision_weights_bytes, bytes);
    else p->text_weights_bytes = sat_add(p->text_weights_bytes, bytes);
    const g3_type_info *ti = g3_type_info_get(type);
    if (s->vision && n_dims == 2 && ti && ti->block_size > 1 && ne0 % G3_QA_BLOCK == 0 &&
        strncmp(name, "v.blk.", 6) == 0 && ne0 > s->vision_cap_k)
        s->vision_cap_k = (uint32_t)ne0;
}

/* Gemma 3 text model, as in llama.cpp GGUFs (and make-test-model). */
static void text_tensors(tensor_sink *s, const g3_config *c) {
    const uint64_t E = c->n_embd, D = c->head_dim, Q = (uint64_t)c->n_head * D,
                   KV = (uint64_t)c->n_head_kv * D, F = c->n_ff;
    char name[96];
    add_tensor(s, "token_embd.weight", 2, E, c->n_vocab, 1, 1);
    for (uint32_t il = 0; il < c->n_layer; il++) {
        const struct { const char *suffix; uint64_t n_in, n_out; } parts[] = {
            {"attn_norm", E, 0},   {"attn_q", E, Q},          {"attn_k", E, KV},
            {"attn_v", E, KV},     {"attn_q_norm", D, 0},     {"attn_k_norm", D, 0},
            {"attn_output", Q, E}, {"post_attention_norm", E, 0}, {"ffn_norm", E, 0},
            {"ffn_gate", E, F},    {"ffn_up", E, F},          {"ffn_down", F, E},
            {"post_ffw_norm", E, 0},
        };
        for (size_t i = 0; i < sizeof parts / sizeof parts[0]; i++) {
            snprintf(name, sizeof name, "blk.%u.%s.weight", il, parts[i].suffix);
            if (parts[i].n_out) add_tensor(s, name, 2, parts[i].n_in, parts[i].n_out, 1, 1);
            else add_tensor(s, name, 1, parts[i].n_in, 1, 1, 1);
        }
    }
    add_tensor(s, "output_norm.weight", 1, E, 1, 1, 1);
}

/* SigLIP + the Gemma 3 projector, as in llama.cpp mmproj files. */
static void vision_tensors(tensor_sink *s, uint32_t n_embd_text) {
    const uint64_t W = SIGLIP_WIDTH, F = SIGLIP_FF;
    char name[96];
    add_tensor(s, "v.patch_embd.weight", 4, SIGLIP_PATCH, SIGLIP_PATCH, 3, W);
    add_tensor(s, "v.patch_embd.bias", 1, W, 1, 1, 1);
    add_tensor(s, "v.position_embd.weight", 2, W, SIGLIP_POSITIONS, 1, 1);
    for (uint32_t il = 0; il < SIGLIP_LAYERS; il++) {
        const struct { const char *suffix; uint64_t n_in, n_out; } parts[] = {
            {"ln1.weight", W, 0},     {"ln1.bias", W, 0},       {"attn_q.weight", W, W},
            {"attn_q.bias", W, 0},    {"attn_k.weight", W, W},  {"attn_k.bias", W, 0},
            {"attn_v.weight", W, W},  {"attn_v.bias", W, 0},    {"attn_out.weight", W, W},
            {"attn_out.bias", W, 0},  {"ln2.weight", W, 0},     {"ln2.bias", W, 0},
            {"ffn_up.weight", W, F},  {"ffn_up.bias", F, 0},    {"ffn_down.weight", F, W},
            {"ffn_down.bias", W, 0},
        };
        for (size_t i = 0; i < sizeof parts / sizeof parts[0]; i++) {
            snprintf(name, sizeof name, "v.blk.%u.%s", il, parts[i].suffix);
            if (parts[i].n_out) add_tensor(s, name, 2, parts[i].n_in, parts[i].n_out, 1, 1);
            else add_tensor(s, name, 1, parts[i].n_in, 1, 1, 1);
        }
    }
    add_tensor(s, "v.post_ln.weight", 1, W, 1, 1, 1);
    add_tensor(s, "v.post_ln.bias", 1, W, 1, 1, 1);
    /* rows of n_embd_text: ggml multiplies by its transpose */
    add_tensor(s, "mm.input_projection.weight", 2, n_embd_text, W, 1, 1);
    add_tensor(s, "mm.soft_emb_norm.weight", 1, W, 1, 1, 1);
}

/* ---- plans --------------------------------------------------------------- */

static void plan_arithmetic(g3_plan *p, const g3_config *c) {
    p->n_layer = c->n_layer;
    p->n_global = g3_config_n_global(c);
    p->n_local = c->n_layer - p->n_global;
    p->window = c->window;
    p->n_head = c->n_head;
    p->n_head_kv = c->n_head_kv;
    p->head_dim = c->head_dim;
    p->n_embd = c->n_embd;
    p->n_ff = c->n_ff;
    p->n_vocab = c->n_vocab;
    p->n_ctx_train = c->n_ctx_train;
}

/* KV, scratch and the total, for contexts of n_ctx positions. */
static int plan_contexts(g3_plan *p, const g3_config *c, uint32_t n_ctx, const g3_plan_params *params,
                         g3_error *err) {
    g3_kv_type kv_type = params ? params->kv_type : G3_KV_F32;
    uint32_t n_par = params && params->n_parallel ? params->n_parallel : 1;
    if (n_ctx == 0 || n_ctx > G3_PLAN_MAX_CTX)
        return g3_fail(err, "context of %u positions is out of range [1, %u]", n_ctx, G3_PLAN_MAX_CTX);
    if (g3_plan_kv_check(c, kv_type, err)) return -1;
    g3_context_params cp = {.n_ctx = n_ctx, .n_ubatch = params ? params->n_ubatch : 0};
    uint32_t n_ubatch;
    g3_plan_context_sizes(c, &cp, &n_ctx, &n_ubatch);
    g3_scratch_layout l;
    p->kv_type = kv_type;
    p->n_ctx = n_ctx;
    p->n_ubatch = n_ubatch;
    p->n_parallel = n_par;
    p->local_slots = n_ctx; /* the ring size, shown for the first local layer */
    for (uint32_t il = 0; il < c->n_layer; il++)
        if (!c->is_global[il]) {
            p->local_slots = g3_plan_kv_layer_slots(c, il, n_ctx, n_ubatch);
            break;
        }
    p->kv_position_bytes = sat_mul(2, g3_plan_kv_row_bytes(c, kv_type));
    p->kv_full_bytes = sat_mul(g3_plan_kv_full_bytes(c, n_ctx, kv_type), n_par);
    p->kv_window_bytes = sat_mul(g3_plan_kv_bytes(c, n_ctx, n_ubatch, kv_type), n_par);
    /* the contexts' scratch, and one image's encoder scratch when there is an encoder */
    /* one scratch: the sequences share one context (g3_context_params.n_seq) and run as one batch */
    p->scratch_bytes = sat_add(g3_plan_scratch_bytes(c, n_ctx, n_ubatch, 0, &l), p->vision_scratch_bytes);
    const uint64_t floats[7] = {l.x, l.q, l.att, l.xb, l.gate, l.up, l.scores};
    memcpy(p->scratch_floats, floats, sizeof floats);
    p->weights_bytes = sat_add(p->text_weights_bytes, p->vision_weights_bytes);
    p->total_bytes = sat_add(sat_add(p->weights_bytes, p->kv_window_bytes), p->scratch_bytes);
    if (n_ctx > c->n_ctx_train)
        snprintf(p->warning, sizeof p->warning,
                 "context %u is longer than the model's trained length %u: quality drops beyond it",
                 n_ctx, c->n_ctx_train);
    return 0;
}

static uint32_t params_ctx(const g3_plan_params *params) {
    return params && params->n_ctx ? params->n_ctx : G3_PLAN_DEFAULT_CTX;
}

int g3_plan_builtin(const char *model, g3_ftype format, const g3_plan_params *params, g3_plan *out,
                    g3_error *err) {
    memset(out, 0, sizeof *out);
    g3_config c;
    if (g3_shape_config(model, &c, err)) return -1;
    const char *fname = g3_ftype_name(format);
    if (!fname || g3_ftype_default_type(format) == G3_TYPE_COUNT)
        return g3_fail(err, "unknown weight format %d", (int)format);
    snprintf(out->model, sizeof out->model, "%s", model);
    snprintf(out->format, sizeof out->format, "%s", fname);
    plan_arithmetic(out, &c);
    tensor_sink s = {.rules = {.ftype = format, .mixes = true, .tied_output = true,
                               .n_layer = c.n_layer, .n_attn_v = c.n_layer},
                     .plan = out, .err = err};
    text_tensors(&s, &c);
    /* 1B is text-only; 4B, 12B and 27B see images ("tiny" is a test shape) */
    if (strcmp(model, "1b") != 0 && strcmp(model, "tiny") != 0) {
        s.vision = true;
        s.rules = (g3_quant_rules){.ftype = format, .mixes = false};
        vision_tensors(&s, c.n_embd);
        const g3_siglip_dims d = {.n_patches = SIGLIP_POSITIONS, .n_embd = SIGLIP_WIDTH, .n_ff = SIGLIP_FF,
                                  .head_dim = SIGLIP_WIDTH / SIGLIP_HEADS, .patch_in = 3 * SIGLIP_PATCH * SIGLIP_PATCH,
                                  .n_tokens = SIGLIP_TOKENS, .n_proj = c.n_embd};
        out->vision_scratch_bytes = g3_siglip_scratch_bytes(&d, s.vision_cap_k, 0);
    }
    if (s.failed) return -1;
    return plan_contexts(out, &c, params_ctx(params), params, err);
}

/* general.file_type as a format name; llama.cpp ids beyond ours by name. */
static void file_format(const g3_gguf *g, char *buf, size_t size) {
    uint32_t ft;
    g3_error ignore;
    if (!g3_gguf_find_kv(g, "general.file_type") ||
        g3_gguf_get_u32(g, "general.file_type", true, 0, &ft, &ignore)) {
        snprintf(buf, size, "unknown"); /* no general.file_type */
        return;
    }
    static const struct { uint32_t id; const char *name; } other[] = {
        {3, "q4_1"}, {8, "q5_0"}, {9, "q5_1"}, {10, "q2_k"}, {11, "q3_k_s"}, {12, "q3_k_m"},
        {13, "q3_k_l"}, {14, "q4_k_s"}, {16, "q5_k_s"}, {17, "q5_k_m"}, {18, "q6_k"}, {25, "iq4_nl"},
    };
    const char *name = g3_ftype_name((g3_ftype)ft);
    for (size_t i = 0; !name && i < sizeof other / sizeof other[0]; i++)
        if (other[i].id == ft) name = other[i].name;
    if (name) snprintf(buf, size, "%s", name);
    else snprintf(buf, size, "file_type %u", ft);
}

static void add_file_tensors(g3_plan *p, const g3_gguf *g, bool vision) {
    for (uint64_t i = 0; i < g->n_tensors; i++) {
        const g3_gguf_tensor *t = &g->tensors[i];
        if (t->type < G3_PLAN_N_TYPES) {
            p->type_bytes[t->type] = sat_add(p->type_bytes[t->type], t->n_bytes);
            p->type_count[t->type]++;
        }
        if (vision) p->vision_weights_bytes = sat_add(p->vision_weights_bytes, t->n_bytes);
        else p->text_weights_bytes = sat_add(p->text_weights_bytes, t->n_bytes);
    }
    p->header_bytes = sat_add(p->header_bytes, g->data_offset);
}

static void base_name(const char *path, char *buf, size_t size) {
    const char *slash = strrchr(path, '/');
    snprintf(buf, size, "%s", slash ? slash + 1 : path);
}

int g3_plan_file(const char *path, const char *mmproj_path, const g3_plan_params *params,
                 g3_plan *out, g3_error *err) {
    memset(out, 0, sizeof *out);
    g3_gguf *g = NULL, *mm = NULL;
    g3_config c;
    if (g3_gguf_open(path, &g, err)) return -1;
    if (g3_config_from_gguf(g, &c, err)) {
        g3_gguf_close(g);
        return g3_error_prefix(err, "%s: ", path);
    }
    base_name(path, out->model, sizeof out->model);
    file_format(g, out->format, sizeof out->format);
    plan_arithmetic(out, &c);
    add_file_tensors(out, g, false);
    g3_gguf_close(g);
    if (mmproj_path) {
        if (g3_gguf_open(mmproj_path, &mm, err)) return -1;
        add_file_tensors(out, mm, true);
        const int rc = g3_siglip_plan_file(mm, c.n_embd, 0, &out->vision_scratch_bytes, err);
        g3_gguf_close(mm);
        if (rc) return g3_error_prefix(err, "%s: ", mmproj_path);
    }
    return plan_contexts(out, &c, params_ctx(params), params, err);
}

int g3_plan_model(const g3_model *m, const g3_plan_params *params, g3_plan *out, g3_error *err) {
    memset(out, 0, sizeof *out);
    snprintf(out->model, sizeof out->model, "model");
    file_format(m->gguf, out->format, sizeof out->format);
    plan_arithmetic(out, &m->cfg);
    add_file_tensors(out, m->gguf, false);
    /* as g3_context_new: 0 means the model's trained length */
    uint32_t n_ctx = params && params->n_ctx ? params->n_ctx : m->cfg.n_ctx_train;
    return plan_contexts(out, &m->cfg, n_ctx, params, err);
}

/* ---- reporting ----------------------------------------------------------- */

static double mib(uint64_t b) { return (double)b / 1048576.0; }

void g3_plan_print_arithmetic(const g3_plan *p, FILE *out) {
    const uint64_t row = p->kv_position_bytes / 2;
    fprintf(out, "%s %s, KV %s, context %u, n_ubatch %u, %u sequence%s:\n", p->model, p->format,
            g3_kv_type_name(p->kv_type), p->n_ctx, p->n_ubatch, p->n_parallel,
            p->n_parallel == 1 ? "" : "s");
    fprintf(out, "  layers %u = %u global (every position) + %u local (window %u); "
                 "kv heads %u x head_dim %u = %u per position\n",
            p->n_layer, p->n_global, p->n_local, p->window, p->n_head_kv, p->head_dim,
            p->n_head_kv * p->head_dim);
    fprintf(out, "  K+V per position per layer: 2 x %" PRIu64 " B (%s) = %" PRIu64 " B\n", row,
            g3_kv_type_name(p->kv_type), p->kv_position_bytes);
    fprintf(out, "  KV full:   %u layers x %u positions x %" PRIu64 " B x %u = %" PRIu64 " B (%.1f MiB)\n",
            p->n_layer, p->n_ctx, p->kv_position_bytes, p->n_parallel, p->kv_full_bytes,
            mib(p->kv_full_bytes));
    fprintf(out,
            "  KV window: (%u global x %u + %u local x min(%u, %u + %u) = %u) x %" PRIu64
            " B x %u = %" PRIu64 " B (%.1f MiB)\n",
            p->n_global, p->n_ctx, p->n_local, p->n_ctx, p->window, p->n_ubatch, p->local_slots,
            p->kv_position_bytes, p->n_parallel, p->kv_window_bytes, mib(p->kv_window_bytes));
    const uint64_t *f = p->scratch_floats;
    fprintf(out,
            "  scratch:   one for all sequences (x %" PRIu64 " + q %" PRIu64 " + att %" PRIu64 " + xb %" PRIu64
            " + gate %" PRIu64 " + up %" PRIu64 " + scores %" PRIu64 " floats, with the per-thread product"
            " buffers and 8-bit inputs) + vision encoder %" PRIu64 " B = %" PRIu64 " B (%.1f MiB)\n",
            f[0], f[1], f[2], f[3], f[4], f[5], f[6], p->vision_scratch_bytes, p->scratch_bytes,
            mib(p->scratch_bytes));
    fprintf(out, "  weights:   text %" PRIu64 " B + vision %" PRIu64 " B = %" PRIu64 " B (%.1f MiB):",
            p->text_weights_bytes, p->vision_weights_bytes, p->weights_bytes, mib(p->weights_bytes));
    for (uint32_t t = 0; t < G3_PLAN_N_TYPES; t++) {
        if (!p->type_count[t]) continue;
        char buf[32];
        fprintf(out, " %s %u tensors %.1f MiB;", g3_type_name(t, buf), p->type_count[t], mib(p->type_bytes[t]));
    }
    fprintf(out, "\n");
    if (p->header_bytes)
        fprintf(out, "  file metadata (mapped, not in the total): %" PRIu64 " B\n", p->header_bytes);
    fprintf(out, "  total:     %" PRIu64 " + %" PRIu64 " + %" PRIu64 " = %" PRIu64 " B (%.2f GB)\n",
            p->weights_bytes, p->kv_window_bytes, p->scratch_bytes, p->total_bytes, p->total_bytes / 1e9);
}

int g3_plan_mem_available(uint64_t *bytes, g3_error *err) {
    *bytes = g3_mem_available_bytes();
    if (*bytes == 0 && !getenv("G3_MEM_LIMIT")) return g3_fail(err, "cannot tell how much memory is available");
    return 0;
}

/* "1.23 GB" or "8.7 MB": small plans stay readable */
static const char *fmt_size(char buf[32], uint64_t bytes) {
    if (bytes >= 1000000000ull) snprintf(buf, 32, "%.2f GB", bytes / 1e9);
    else snprintf(buf, 32, "%.1f MB", bytes / 1e6);
    return buf;
}

int g3_plan_file_max_ctx(const char *path, const char *mmproj_path, const g3_plan_params *params,
                         uint64_t available, uint32_t limit, uint32_t *n_ctx, g3_error *err) {
    g3_plan_params pp = params ? *params : (g3_plan_params){0};
    g3_plan p;
    uint32_t lo = 0, hi = limit < G3_PLAN_MAX_CTX ? limit : G3_PLAN_MAX_CTX; /* lo fits (0: none yet) */
    *n_ctx = 0;
    /* the total grows with the context: bisect on it (each step parses the headers, milliseconds) */
    for (uint32_t probe = 16; lo < hi;) {
        pp.n_ctx = probe;
        if (g3_plan_file(path, mmproj_path, &pp, &p, err)) return -1;
        if (p.total_bytes <= available) lo = probe;
        else hi = probe - 1;
        if (lo == 0 && hi < 16) break; /* not even the smallest */
        probe = lo + (hi - lo + 1) / 2;
        if (probe < 16) probe = 16;
    }
    *n_ctx = lo;
    return 0;
}

int g3_plan_check_fit(const g3_plan *p, uint64_t available, g3_error *err) {
    if (p->total_bytes <= available) return 0;
    char t[32], w[32], k[32], sc[32], a[32];
    return g3_fail(err, "%s %s at context %u with a %s KV cache needs %s (weights %s + KV %s + scratch %s), "
                        "but the machine has %s available",
                   p->model, p->format, p->n_ctx, g3_kv_type_name(p->kv_type), fmt_size(t, p->total_bytes),
                   fmt_size(w, p->weights_bytes), fmt_size(k, p->kv_window_bytes), fmt_size(sc, p->scratch_bytes),
                   fmt_size(a, available));
}
