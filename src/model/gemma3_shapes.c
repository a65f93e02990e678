#include "model/gemma3_shapes.h"

#include <math.h>
#include <string.h>

#include "base/error.h"
#include "model/test_model_vocab.h"

/* The real Gemma 3 configurations; "tiny" is the golden files' 1B-like shape. */
static const g3_shape k_shapes[] = {
    {"tiny", 7, 256, 256, 4, 1, 32, 16, 512, 0, 1.0f},
    {"1b", 26, 1152, 6912, 4, 1, 256, 512, 32768, 262144, 1.0f},
    {"4b", 34, 2560, 10240, 8, 4, 256, 1024, 131072, 262144, 8.0f},
    {"12b", 48, 3840, 15360, 16, 8, 256, 1024, 131072, 262144, 8.0f},
    {"27b", 62, 5376, 21504, 32, 16, 128, 1024, 131072, 262144, 8.0f},
};

const g3_shape *g3_shape_find(const char *name) {
    for (size_t i = 0; i < sizeof k_shapes / sizeof k_shapes[0]; i++)
        if (strcmp(k_shapes[i].name, name) == 0) return &k_shapes[i];
    return NULL;
}

int g3_shape_config(const char *name, g3_config *c, g3_error *err) {
    const g3_shape *s = g3_shape_find(name);
    if (!s) return g3_fail(err, "unknown shape '%s' (tiny, 1b, 4b, 12b, 27b)", name);
    memset(c, 0, sizeof *c);
    c->n_layer = s->n_layer;
    c->n_embd = s->n_embd;
    c->n_ff = s->n_ff;
    c->n_head = s->n_head;
    c->n_head_kv = s->n_head_kv;
    c->head_dim = s->head_dim;
    c->n_vocab = s->n_vocab ? s->n_vocab : g3_test_vocab_builtin_size();
    c->n_ctx_train = s->n_ctx;
    c->window = s->window;
    c->rms_eps = 1e-6f;
    c->rope_base_global = 1e6f;
    c->rope_base_local = 10000.0f;
    c->rope_scale_global = s->rope_scale;
    /* as gemma3_config.c reads the same file: 27B (62 layers) scales by n_embd / n_head */
    c->attn_scale = s->n_layer == 62 ? (float)(1.0 / sqrt((double)s->n_embd / s->n_head))
                                     : (float)(1.0 / sqrt((double)s->head_dim));
    for (uint32_t il = 0; il < s->n_layer && il < G3_MAX_LAYERS; il++)
        c->is_global[il] = il % 6 == 5; /* no sliding_window_pattern key: period 6 */
    return 0;
}
