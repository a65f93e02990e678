#include "model/gemma3_config.h"

#include <math.h>
#include <string.h>

#include "base/error.h"

/* Bounds that keep every later size computation far from overflow and
 * refuse nonsense early, with the key's name in the message. */
static int check_range(const char *key, uint32_t v, uint32_t lo, uint32_t hi, g3_error *err) {
    if (v < lo || v > hi)
        return g3_fail(err, "key 'gemma3.%s' = %u is out of range [%u, %u]", key, v, lo, hi);
    return 0;
}

static int read_layer_pattern(const g3_gguf *g, g3_config *c, g3_error *err) {
    const char *key = "gemma3.attention.sliding_window_pattern";
    const g3_gguf_kv *kv = g3_gguf_find_kv(g, key);
    uint32_t period = 6; /* Gemma 3: five local layers, then one global */
    if (kv && kv->value.type == G3_GGUF_ARRAY) {
        /* per-layer form: true = sliding */
        const g3_gguf_array *a = &kv->value.v.arr;
        if (a->n != c->n_layer)
            return g3_fail(err, "key '%s' has %llu entries for %u layers", key,
                           (unsigned long long)a->n, c->n_layer);
        if (a->elem_type != G3_GGUF_BOOL && a->elem_type != G3_GGUF_UINT8 &&
            a->elem_type != G3_GGUF_INT32 && a->elem_type != G3_GGUF_UINT32)
            return g3_fail(err, "key '%s' is an array of %s, expected bools", key,
                           g3_gguf_vtype_name(a->elem_type));
        for (uint32_t il = 0; il < c->n_layer; il++)
            c->is_global[il] = c->window == 0 || g3_gguf_array_i64(a, il) == 0;
        return 0;
    }
    if (g3_gguf_get_u32(g, key, false, 6, &period, err)) return -1;
    if (period == 0) return g3_fail(err, "key '%s' must not be 0", key);
    for (uint32_t il = 0; il < c->n_layer; il++)
        c->is_global[il] = c->window == 0 || il % period == period - 1;
    return 0;
}

static int read_rope(const g3_gguf *g, g3_config *c, g3_error *err) {
    if (g3_gguf_get_f32(g, "gemma3.rope.freq_base", false, 1e6f, &c->rope_base_global, err) ||
        g3_gguf_get_f32(g, "gemma3.rope.freq_base_swa", false, 10000.0f, &c->rope_base_local, err))
        return -1;
    if (!(c->rope_base_global > 1.0f) || !(c->rope_base_local > 1.0f))
        return g3_fail(err, "RoPE base must be > 1 (global %g, local %g)", c->rope_base_global,
                       c->rope_base_local);
    g3_str type = {0};
    if (g3_gguf_find_kv(g, "gemma3.rope.scaling.type") &&
        g3_gguf_get_str(g, "gemma3.rope.scaling.type", true, &type, err))
        return -1;
    if (type.ptr && !g3_str_eq(type, "linear") && !g3_str_eq(type, "none"))
        return g3_fail(err, "key 'gemma3.rope.scaling.type' = '%.*s' is not supported (linear or none)",
                       (int)(type.len > 64 ? 64 : type.len), type.ptr);
    float factor = 1.0f;
    if (g3_gguf_get_f32(g, "gemma3.rope.scaling.factor", false, 1.0f, &factor, err)) return -1;
    if (type.ptr && g3_str_eq(type, "none")) factor = 1.0f;
    if (factor == 0.0f) factor = 1.0f; /* llama.cpp: 0 means "not set" */
    if (!(factor >= 1.0f && factor <= 1024.0f))
        return g3_fail(err, "key 'gemma3.rope.scaling.factor' = %g is out of range [1, 1024]", factor);
    c->rope_scale_global = factor;
    return 0;
}

int g3_config_from_gguf(const g3_gguf *g, g3_config *c, g3_error *err) {
    memset(c, 0, sizeof *c);
    g3_str arch;
    if (g3_gguf_get_str(g, "general.architecture", true, &arch, err)) return -1;
    if (!g3_str_eq(arch, "gemma3"))
        return g3_fail(err, "architecture '%.*s' is not supported (gemma-chat runs gemma3 models)",
                       (int)(arch.len > 64 ? 64 : arch.len), arch.ptr);

    const g3_gguf_kv *ff = g3_gguf_find_kv(g, "gemma3.feed_forward_length");
    if (ff && ff->value.type == G3_GGUF_ARRAY)
        return g3_fail(err, "per-layer 'gemma3.feed_forward_length' is not supported");

    if (g3_gguf_get_u32(g, "gemma3.block_count", true, 0, &c->n_layer, err) ||
        g3_gguf_get_u32(g, "gemma3.embedding_length", true, 0, &c->n_embd, err) ||
        g3_gguf_get_u32(g, "gemma3.feed_forward_length", true, 0, &c->n_ff, err) ||
        g3_gguf_get_u32(g, "gemma3.attention.head_count", true, 0, &c->n_head, err) ||
        g3_gguf_get_u32(g, "gemma3.context_length", true, 0, &c->n_ctx_train, err))
        return -1;
    if (check_range("block_count", c->n_layer, 1, G3_MAX_LAYERS, err) ||
        check_range("embedding_length", c->n_embd, 1, 1 << 16, err) ||
        check_range("feed_forward_length", c->n_ff, 1, 1 << 18, err) ||
        check_range("attention.head_count", c->n_head, 1, 1024, err) ||
        check_range("context_length", c->n_ctx_train, 1, 1u << 24, err))
        return -1;
    if (g3_gguf_get_u32(g, "gemma3.attention.head_count_kv", false, c->n_head, &c->n_head_kv, err) ||
        g3_gguf_get_u32(g, "gemma3.attention.key_length", false, c->n_embd / c->n_head, &c->head_dim, err))
        return -1;
    uint32_t value_len;
    if (g3_gguf_get_u32(g, "gemma3.attention.value_length", false, c->head_dim, &value_len, err)) return -1;
    if (check_range("attention.head_count_kv", c->n_head_kv, 1, c->n_head, err) ||
        check_range("attention.key_length", c->head_dim, 2, 1024, err))
        return -1;
    if (c->n_head % c->n_head_kv != 0)
        return g3_fail(err, "head_count %u is not a multiple of head_count_kv %u", c->n_head, c->n_head_kv);
    if (c->head_dim % 2 != 0) return g3_fail(err, "key_length %u must be even for RoPE", c->head_dim);
    if (value_len != c->head_dim)
        return g3_fail(err, "value_length %u differs from key_length %u (not supported)", value_len, c->head_dim);

    if (g3_gguf_get_f32(g, "gemma3.attention.layer_norm_rms_epsilon", false, 1e-6f, &c->rms_eps, err))
        return -1;
    if (!(c->rms_eps > 0.0f && c->rms_eps < 1.0f))
        return g3_fail(err, "key 'gemma3.attention.layer_norm_rms_epsilon' = %g is out of range", c->rms_eps);
    if (g3_gguf_get_u32(g, "gemma3.attention.sliding_window", false, 0, &c->window, err)) return -1;
    if (read_layer_pattern(g, c, err) || read_rope(g, c, err)) return -1;
    if (g3_gguf_get_f32(g, "gemma3.attn_logit_softcapping", false, 0.0f, &c->attn_softcap, err) ||
        g3_gguf_get_f32(g, "gemma3.final_logit_softcapping", false, 0.0f, &c->final_softcap, err))
        return -1;
    if (c->attn_softcap < 0.0f || c->final_softcap < 0.0f)
        return g3_fail(err, "soft-capping values must not be negative");

    /* No GGUF key carries query_pre_attn_scalar; llama.cpp recognizes the
     * 27B by its 62 layers and uses n_embd / n_head (= 168) there. */
    c->attn_scale = c->n_layer == 62 ? (float)(1.0 / sqrt((double)c->n_embd / c->n_head))
                                     : (float)(1.0 / sqrt((double)c->head_dim));

    const g3_gguf_tensor *emb = g3_gguf_find_tensor(g, "token_embd.weight");
    if (!emb) return g3_fail(err, "missing tensor 'token_embd.weight'");
    if (emb->n_dims != 2 || emb->ne[1] == 0 || emb->ne[1] > (1u << 22))
        return g3_fail(err, "tensor 'token_embd.weight' has an invalid shape");
    c->n_vocab = (uint32_t)emb->ne[1];
    return 0;
}

uint32_t g3_config_n_global(const g3_config *cfg) {
    uint32_t n = 0;
    for (uint32_t il = 0; il < cfg->n_layer; il++) n += cfg->is_global[il];
    return n;
}
