/* test_model.h: the built-in Gemma 3 shapes behind make-test-model, for the
 * memory planner (one table of real shapes: what `plan` counts is what
 * make-test-model writes). g3_make_test_model itself is in gemma3.h. */
#ifndef G3_MODEL_TEST_MODEL_H
#define G3_MODEL_TEST_MODEL_H

#include "gemma3.h"

/* The hyperparameters the loader would read from a generated file of this
 * shape ("tiny", "1b", "4b", "12b", "27b"): layers, widths, heads, window,
 * trained context, global layers (il % 6 == 5), the vocabulary (the real
 * 262144 tokens, or the built-in tokenizer's size for "tiny"), RoPE and the
 * attention scale. Fails for an unknown shape. */
int g3_test_model_shape_config(const char *shape, g3_config *cfg, g3_error *err);

#endif
