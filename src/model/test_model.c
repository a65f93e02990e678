/* test_model.c: random-weight Gemma 3 models of the real shapes.
 *
 * The file follows the conventions of real llama.cpp Gemma 3 GGUFs (tensor
 * names, gemma3.* keys, norms stored as 1 + w, output tied to token_embd, a
 * SentencePiece-style tokenizer in tokenizer.ggml.*), so the loader is tested
 * by exactly the code path real files take. Values come from a per-tensor
 * generator seeded by (seed, tensor name): the same seed gives the same f32
 * weights in every type, so files of different types are quantizations of
 * one model. Tensors are generated, quantized and written a row at a time,
 * so a model larger than memory streams to disk. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "base/error.h"
#include "gemma3.h"
#include "model/gguf.h"
#include "model/gguf_writer.h"
#include "model/gemma3_shapes.h"
#include "model/test_model_vocab.h"
#include "tensor/type_info.h"
#include "tensor/type_ops.h"

/* The weight types the files can be made in: every type the engine runs. */
static const char k_type_list[] = "f32 f16 bf16 q8_0 q4_0 q5_0 q4_1 q5_1 iq4_nl q4_k q5_k q6_k";

typedef struct tensor_plan {
    char name[64];
    uint32_t type;
    uint32_t n_dims;
    uint64_t ne[4];
    float mean, std; /* values ~ mean + N(0, std) */
} tensor_plan;

/* splitmix64: a good 64-bit stream from any seed */
static uint64_t next_u64(uint64_t *s) {
    uint64_t z = (*s += 0x9E3779B97F4A7C15ull);
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
    return z ^ (z >> 31);
}

/* Approximately standard normal: the sum of four 16-bit uniforms (Irwin-Hall)
 * is smooth enough for random weights and an order of magnitude cheaper than
 * Box-Muller, which matters for 27B models. */
static float next_normal(uint64_t *s) {
    uint64_t r = next_u64(s);
    float sum = (float)(r & 0xFFFF) + (float)((r >> 16) & 0xFFFF) + (float)((r >> 32) & 0xFFFF) +
                (float)(r >> 48);
    return (sum / 65536.0f - 2.0f) * 1.7320508f; /* var of 4 U(0,1) is 1/3 */
}

static uint64_t name_seed(uint64_t seed, const char *name) {
    uint64_t h = 1469598103934665603ull ^ seed;
    for (const char *p = name; *p; p++) h = (h ^ (uint8_t)*p) * 1099511628211ull;
    return h;
}

/* A matrix keeps the requested type when its rows fit the block; otherwise
 * the fallback is Q8_0 (rows of 32) or F16, as llama-quantize falls back. */
static uint32_t matrix_type(uint32_t want, uint64_t n_in) {
    const g3_type_info *ti = g3_type_info_get(want);
    if (n_in % ti->block_size == 0) return want;
    return n_in % 32 == 0 ? G3_TYPE_Q8_0 : G3_TYPE_F16;
}

static void add_plan(tensor_plan *p, size_t *n, const char *name, uint32_t type, uint64_t n_in,
                     uint64_t n_out, float mean, float std) {
    tensor_plan *t = &p[(*n)++];
    snprintf(t->name, sizeof t->name, "%s", name);
    t->n_dims = n_out ? 2 : 1;
    t->ne[0] = n_in;
    t->ne[1] = n_out ? n_out : 1;
    t->ne[2] = t->ne[3] = 1;
    t->type = n_out ? matrix_type(type, n_in) : G3_TYPE_F32;
    t->mean = mean;
    t->std = std;
}

static size_t plan_tensors(const g3_shape *s, uint32_t n_vocab, uint32_t type, tensor_plan *p) {
    size_t n = 0;
    char name[64];
    const uint64_t E = s->n_embd, Q = (uint64_t)s->n_head * s->head_dim,
                   KV = (uint64_t)s->n_head_kv * s->head_dim;
    add_plan(p, &n, "token_embd.weight", type, E, n_vocab, 0.0f, 0.02f);
    for (uint32_t il = 0; il < s->n_layer; il++) {
        struct { const char *suffix; uint64_t n_in, n_out; } parts[] = {
            {"attn_norm", E, 0},     {"attn_q", E, Q},          {"attn_k", E, KV},
            {"attn_v", E, KV},       {"attn_q_norm", s->head_dim, 0}, {"attn_k_norm", s->head_dim, 0},
            {"attn_output", Q, E},   {"post_attention_norm", E, 0},   {"ffn_norm", E, 0},
            {"ffn_gate", E, s->n_ff}, {"ffn_up", E, s->n_ff},   {"ffn_down", s->n_ff, E},
            {"post_ffw_norm", E, 0},
        };
        for (size_t i = 0; i < sizeof parts / sizeof parts[0]; i++) {
            snprintf(name, sizeof name, "blk.%u.%s.weight", il, parts[i].suffix);
            bool norm = parts[i].n_out == 0;
            /* GGUF stores Gemma norms as 1 + w */
            add_plan(p, &n, name, type, parts[i].n_in, parts[i].n_out, norm ? 1.0f : 0.0f,
                     norm ? 0.1f : 0.05f);
        }
    }
    add_plan(p, &n, "output_norm.weight", type, E, 0, 2.5f, 0.2f);
    return n;
}

/* llama.cpp's general.file_type ("mostly TYPE") for the matrices' type;
 * UINT32_MAX when it has none. */
static uint32_t file_type_of(uint32_t type) {
    switch (type) {
    case G3_TYPE_F32: return 0;
    case G3_TYPE_F16: return 1;
    case G3_TYPE_Q4_0: return 2;
    case G3_TYPE_Q4_1: return 3;
    case G3_TYPE_Q8_0: return 7;
    case G3_TYPE_Q5_0: return 8;
    case G3_TYPE_Q5_1: return 9;
    case G3_TYPE_IQ4_NL: return 25;
    case G3_TYPE_Q4_K: return 14; /* Q4_K_S: every matrix Q4_K */
    case G3_TYPE_Q5_K: return 16; /* Q5_K_S */
    case G3_TYPE_Q6_K: return 18;
    case G3_TYPE_BF16: return 32;
    }
    return UINT32_MAX;
}

static int write_hparams(g3_gguf_writer *w, const g3_shape *s, uint64_t seed, uint32_t type, const char *type_name,
                         g3_error *err) {
    char name[128];
    snprintf(name, sizeof name, "gemma-chat test model %s %s seed %llu", s->name, type_name,
             (unsigned long long)seed);
    if (g3_gguf_writer_kv_str(w, "general.architecture", "gemma3", err) ||
        g3_gguf_writer_kv_str(w, "general.name", name, err) ||
        g3_gguf_writer_kv_u32(w, "gemma3.context_length", s->n_ctx, err) ||
        g3_gguf_writer_kv_u32(w, "gemma3.embedding_length", s->n_embd, err) ||
        g3_gguf_writer_kv_u32(w, "gemma3.block_count", s->n_layer, err) ||
        g3_gguf_writer_kv_u32(w, "gemma3.feed_forward_length", s->n_ff, err) ||
        g3_gguf_writer_kv_u32(w, "gemma3.attention.head_count", s->n_head, err) ||
        g3_gguf_writer_kv_u32(w, "gemma3.attention.head_count_kv", s->n_head_kv, err) ||
        g3_gguf_writer_kv_u32(w, "gemma3.attention.key_length", s->head_dim, err) ||
        g3_gguf_writer_kv_u32(w, "gemma3.attention.value_length", s->head_dim, err) ||
        g3_gguf_writer_kv_f32(w, "gemma3.attention.layer_norm_rms_epsilon", 1e-6f, err) ||
        g3_gguf_writer_kv_u32(w, "gemma3.attention.sliding_window", s->window, err) ||
        g3_gguf_writer_kv_f32(w, "gemma3.rope.freq_base", 1e6f, err))
        return -1;
    if (file_type_of(type) != UINT32_MAX && g3_gguf_writer_kv_u32(w, "general.file_type", file_type_of(type), err))
        return -1;
    if (s->rope_scale != 1.0f &&
        (g3_gguf_writer_kv_str(w, "gemma3.rope.scaling.type", "linear", err) ||
         g3_gguf_writer_kv_f32(w, "gemma3.rope.scaling.factor", s->rope_scale, err)))
        return -1;
    return 0;
}

/* Copies every tokenizer.* key of another GGUF (e.g. the real vocabulary). */
static int copy_tokenizer(g3_gguf_writer *w, const g3_gguf *src, g3_error *err) {
    for (uint64_t i = 0; i < src->n_kv; i++) {
        const g3_gguf_kv *kv = &src->kv[i];
        if (kv->key.len < 10 || memcmp(kv->key.ptr, "tokenizer.", 10) != 0) continue;
        char key[256];
        if (kv->key.len >= sizeof key) continue;
        memcpy(key, kv->key.ptr, kv->key.len);
        key[kv->key.len] = 0;
        if (g3_gguf_writer_kv_copy(w, key, &kv->value, err)) return -1;
    }
    return 0;
}

static void progress(const g3_test_model_params *p, uint64_t done, uint64_t total) {
    if (!p->progress || total == 0) return;
    fprintf(stderr, "\rwriting %s: %5.1f%% (%llu / %llu MiB)", p->out_path, 100.0 * done / total,
            (unsigned long long)(done >> 20), (unsigned long long)(total >> 20));
}

static int write_tensor_data(g3_gguf_writer *w, const tensor_plan *t, uint64_t seed, float *row,
                             void *qrow, uint64_t *done, uint64_t total,
                             const g3_test_model_params *params, g3_error *err) {
    uint64_t rng = name_seed(seed, t->name), row_bytes;
    if (g3_type_row_bytes(t->type, t->ne[0], &row_bytes, err)) return -1;
    const g3_type_ops *ops = g3_type_ops_get(t->type);
    const uint64_t n_rows = t->ne[1] * t->ne[2] * t->ne[3];
    for (uint64_t r = 0; r < n_rows; r++) {
        for (uint64_t i = 0; i < t->ne[0]; i++) row[i] = t->mean + t->std * next_normal(&rng);
        ops->from_float(row, qrow, (int64_t)t->ne[0]);
        if (g3_gguf_writer_data(w, qrow, row_bytes, err)) return -1;
        *done += row_bytes;
        if ((r & 255) == 0) progress(params, *done, total);
    }
    return 0;
}

/* Declares the planned tensors, streams their data and closes the file
 * (aborting it on failure). */
static int write_tensors(g3_gguf_writer *w, const tensor_plan *plan, size_t n_tensors,
                         const g3_test_model_params *p, g3_error *err) {
    float *row = malloc(sizeof(float) * 32768);
    void *qrow = malloc(4 * 32768);
    uint64_t total = 0, done = 0;
    if (!row || !qrow) { g3_fail(err, "out of memory"); goto fail; }
    for (size_t i = 0; i < n_tensors; i++) {
        uint64_t rb;
        if (plan[i].ne[0] > 32768) { g3_fail(err, "tensor '%s': rows too long", plan[i].name); goto fail; }
        if (g3_gguf_writer_tensor(w, plan[i].name, plan[i].type, plan[i].n_dims, plan[i].ne, err) ||
            g3_type_row_bytes(plan[i].type, plan[i].ne[0], &rb, err))
            goto fail;
        total += rb * plan[i].ne[1] * plan[i].ne[2] * plan[i].ne[3];
    }
    if (g3_gguf_writer_begin_data(w, err)) goto fail;
    for (size_t i = 0; i < n_tensors; i++)
        if (write_tensor_data(w, &plan[i], p->seed, row, qrow, &done, total, p, err)) goto fail;
    progress(p, total, total);
    if (p->progress) fprintf(stderr, "\n");
    free(row);
    free(qrow);
    return g3_gguf_writer_close(w, err);
fail:
    free(row);
    free(qrow);
    g3_gguf_writer_abort(w);
    return -1;
}

static int write_model(const g3_test_model_params *p, const g3_shape *s, uint32_t type,
                       const g3_gguf *vocab, tensor_plan *plan, g3_error *err) {
    uint32_t n_vocab = vocab ? 0 : (s->n_vocab ? s->n_vocab : g3_test_vocab_builtin_size());
    if (vocab) {
        const g3_gguf_array *tokens;
        if (g3_gguf_get_arr(vocab, "tokenizer.ggml.tokens", true, G3_GGUF_STRING, &tokens, err))
            return g3_error_prefix(err, "%s: ", p->vocab_path);
        if (tokens->n == 0 || tokens->n > (1u << 22))
            return g3_fail(err, "%s: vocabulary of %llu tokens is not usable", p->vocab_path,
                           (unsigned long long)tokens->n);
        n_vocab = (uint32_t)tokens->n;
    }
    size_t n_tensors = plan_tensors(s, n_vocab, type, plan);
    g3_gguf_writer *w = g3_gguf_writer_open(p->out_path, err);
    if (!w) return -1;
    char tn[32];
    if (write_hparams(w, s, p->seed, type, g3_type_name(type, tn), err) ||
        (vocab ? copy_tokenizer(w, vocab, err) : g3_test_vocab_write(w, n_vocab, err))) {
        g3_gguf_writer_abort(w);
        return -1;
    }
    return write_tensors(w, plan, n_tensors, p, err);
}

int g3_make_test_model(const g3_test_model_params *p, g3_error *err) {
    const g3_shape *s = g3_shape_find(p->shape);
    if (!s) return g3_fail(err, "unknown shape '%s' (tiny, 1b, 4b, 12b, 27b)", p->shape);
    int type = g3_type_from_name(p->type);
    if (type < 0 || !g3_type_ops_get((uint32_t)type))
        return g3_fail(err, "unknown or unsupported weight type '%s' (%s)", p->type, k_type_list);
    g3_gguf *vocab = NULL;
    if (p->vocab_path && g3_gguf_open(p->vocab_path, &vocab, err)) return -1;
    tensor_plan *plan = calloc((size_t)s->n_layer * 13 + 2, sizeof *plan);
    int rc = plan ? write_model(p, s, (uint32_t)type, vocab, plan, err) : g3_fail(err, "out of memory");
    free(plan);
    if (vocab) g3_gguf_close(vocab);
    return rc;
}

/* ---- vision projectors (mmproj) ---- */

/* SigLIP shapes: "tiny" is the golden mmproj's (projecting to the tiny text
 * model's 256); 4b/12b/27b share the real SigLIP-So400m (896 px, patch 14,
 * 27 blocks) and project to their text model's n_embd. */
typedef struct vision_shape {
    const char *name;
    uint32_t image_size, patch, n_embd, n_ff, n_layer, n_head;
} vision_shape;

static const vision_shape k_vision_shapes[] = {
    {"tiny", 64, 4, 64, 128, 2, 4},
    {"4b", 896, 14, 1152, 4304, 27, 16},
    {"12b", 896, 14, 1152, 4304, 27, 16},
    {"27b", 896, 14, 1152, 4304, 27, 16},
};

static int write_vision_hparams(g3_gguf_writer *w, const vision_shape *vs, uint32_t n_proj, uint64_t seed,
                                g3_error *err) {
    char name[128];
    snprintf(name, sizeof name, "gemma-chat test mmproj %s seed %llu", vs->name, (unsigned long long)seed);
    const float half[3] = {0.5f, 0.5f, 0.5f};
    return g3_gguf_writer_kv_str(w, "general.architecture", "clip", err) ||
           g3_gguf_writer_kv_str(w, "general.type", "mmproj", err) ||
           g3_gguf_writer_kv_str(w, "general.name", name, err) ||
           g3_gguf_writer_kv_bool(w, "clip.has_vision_encoder", true, err) ||
           g3_gguf_writer_kv_str(w, "clip.projector_type", "gemma3", err) ||
           g3_gguf_writer_kv_u32(w, "clip.vision.projection_dim", n_proj, err) ||
           g3_gguf_writer_kv_u32(w, "clip.vision.image_size", vs->image_size, err) ||
           g3_gguf_writer_kv_u32(w, "clip.vision.patch_size", vs->patch, err) ||
           g3_gguf_writer_kv_u32(w, "clip.vision.embedding_length", vs->n_embd, err) ||
           g3_gguf_writer_kv_u32(w, "clip.vision.feed_forward_length", vs->n_ff, err) ||
           g3_gguf_writer_kv_u32(w, "clip.vision.block_count", vs->n_layer, err) ||
           g3_gguf_writer_kv_u32(w, "clip.vision.attention.head_count", vs->n_head, err) ||
           g3_gguf_writer_kv_f32(w, "clip.vision.attention.layer_norm_epsilon", 1e-6f, err) ||
           g3_gguf_writer_kv_arr(w, "clip.vision.image_mean", G3_GGUF_FLOAT32, half, 3, err) ||
           g3_gguf_writer_kv_arr(w, "clip.vision.image_std", G3_GGUF_FLOAT32, half, 3, err) ||
           g3_gguf_writer_kv_bool(w, "clip.use_gelu", true, err)
               ? -1
               : 0;
}

/* llama.cpp's mmproj layout: matrices in the requested type where their
 * rows fit it, the conv kernel and position table in F16 (F32 when f32 was
 * asked for), vectors in F32. */
static size_t plan_vision(const vision_shape *vs, uint32_t n_proj, uint32_t type, tensor_plan *p) {
    size_t n = 0;
    char name[64];
    const uint64_t W = vs->n_embd, F = vs->n_ff, side = vs->image_size / vs->patch;
    const uint32_t dense = type == G3_TYPE_F32 ? G3_TYPE_F32 : G3_TYPE_F16;
    add_plan(p, &n, "v.patch_embd.weight", dense, vs->patch, vs->patch, 0.0f, 0.02f);
    p[n - 1].type = dense;
    p[n - 1].n_dims = 4;
    p[n - 1].ne[2] = 3;
    p[n - 1].ne[3] = W;
    add_plan(p, &n, "v.patch_embd.bias", type, W, 0, 0.0f, 0.02f);
    add_plan(p, &n, "v.position_embd.weight", dense, W, side * side, 0.0f, 0.02f);
    p[n - 1].type = dense;
    for (uint32_t il = 0; il < vs->n_layer; il++) {
        struct { const char *suffix; uint64_t n_in, n_out; float mean, std; } parts[] = {
            {"ln1.weight", W, 0, 1.0f, 0.1f},     {"ln1.bias", W, 0, 0.0f, 0.02f},
            {"attn_q.weight", W, W, 0.0f, 0.02f}, {"attn_q.bias", W, 0, 0.0f, 0.02f},
            {"attn_k.weight", W, W, 0.0f, 0.02f}, {"attn_k.bias", W, 0, 0.0f, 0.02f},
            {"attn_v.weight", W, W, 0.0f, 0.02f}, {"attn_v.bias", W, 0, 0.0f, 0.02f},
            {"attn_out.weight", W, W, 0.0f, 0.02f}, {"attn_out.bias", W, 0, 0.0f, 0.02f},
            {"ln2.weight", W, 0, 1.0f, 0.1f},     {"ln2.bias", W, 0, 0.0f, 0.02f},
            {"ffn_up.weight", W, F, 0.0f, 0.02f}, {"ffn_up.bias", F, 0, 0.0f, 0.02f},
            {"ffn_down.weight", F, W, 0.0f, 0.02f}, {"ffn_down.bias", W, 0, 0.0f, 0.02f},
        };
        for (size_t i = 0; i < sizeof parts / sizeof parts[0]; i++) {
            snprintf(name, sizeof name, "v.blk.%u.%s", il, parts[i].suffix);
            add_plan(p, &n, name, type, parts[i].n_in, parts[i].n_out, parts[i].mean, parts[i].std);
        }
    }
    add_plan(p, &n, "v.post_ln.weight", type, W, 0, 1.0f, 0.1f);
    add_plan(p, &n, "v.post_ln.bias", type, W, 0, 0.0f, 0.02f);
    /* ggml ne [n_proj, W]: out = x @ P */
    add_plan(p, &n, "mm.input_projection.weight", type, n_proj, W, 0.0f, 0.03f);
    add_plan(p, &n, "mm.soft_emb_norm.weight", type, W, 0, 1.0f, 0.1f);
    return n;
}

int g3_make_test_mmproj(const g3_test_model_params *p, g3_error *err) {
    const g3_shape *s = g3_shape_find(p->shape);
    const vision_shape *vs = NULL;
    for (size_t i = 0; i < sizeof k_vision_shapes / sizeof k_vision_shapes[0]; i++)
        if (strcmp(k_vision_shapes[i].name, p->shape) == 0) vs = &k_vision_shapes[i];
    if (!s) return g3_fail(err, "unknown shape '%s' (tiny, 4b, 12b, 27b)", p->shape);
    if (!vs) return g3_fail(err, "Gemma 3 %s has no vision encoder (shapes with one: tiny, 4b, 12b, 27b)", p->shape);
    int type = g3_type_from_name(p->type);
    if (type < 0 || !g3_type_ops_get((uint32_t)type))
        return g3_fail(err, "unknown or unsupported weight type '%s' (%s)", p->type, k_type_list);
    tensor_plan *plan = calloc((size_t)vs->n_layer * 16 + 7, sizeof *plan);
    if (!plan) return g3_fail(err, "out of memory");
    const size_t n = plan_vision(vs, s->n_embd, (uint32_t)type, plan);
    g3_gguf_writer *w = g3_gguf_writer_open(p->out_path, err);
    int rc = -1;
    if (w && write_vision_hparams(w, vs, s->n_embd, p->seed, err)) g3_gguf_writer_abort(w);
    else if (w) rc = write_tensors(w, plan, n, p, err);
    free(plan);
    return rc;
}
