/* gemma3_shapes.h: the real Gemma 3 configurations (1B, 4B, 12B, 27B) and
 * the golden files' tiny one, by name: what `plan` counts for a size
 * without a file, and what make-test-model writes (one table, so the two
 * agree). */
#ifndef G3_MODEL_GEMMA3_SHAPES_H
#define G3_MODEL_GEMMA3_SHAPES_H

#include <stdint.h>

#include "gemma3.h"

typedef struct g3_shape {
    const char *name; /* "tiny", "1b", "4b", "12b", "27b" */
    uint32_t n_layer, n_embd, n_ff, n_head, n_head_kv, head_dim, window, n_ctx;
    uint32_t n_vocab; /* 0: the built-in test tokenizer's size ("tiny") */
    float rope_scale; /* linear RoPE scaling of the global layers */
} g3_shape;

/* NULL for an unknown name. */
const g3_shape *g3_shape_find(const char *name);

/* The hyperparameters the loader would read from a file of this shape:
 * layers, widths, heads, window, trained context, global layers (il % 6 ==
 * 5), the vocabulary (the real 262144 tokens, or the built-in tokenizer's
 * size for "tiny"), RoPE and the attention scale. Fails for an unknown
 * shape. */
int g3_shape_config(const char *name, g3_config *cfg, g3_error *err);

#endif
