/* gemma3_config.h: Gemma 3 hyperparameters from a GGUF file's gemma3.* keys.
 *
 * Follows llama.cpp's reading of the keys (the conventions real files were
 * written for): layer il is sliding iff il % period < period - 1 (period 6
 * or attention.sliding_window_pattern); local layers use rope.freq_base_swa
 * or 10000 and no scaling; the attention scale is 1/sqrt(key_length) except
 * for the 62-layer 27B, which uses 1/sqrt(n_embd / n_head). */
#ifndef G3_MODEL_GEMMA3_CONFIG_H
#define G3_MODEL_GEMMA3_CONFIG_H

#include "gemma3.h"
#include "model/gguf.h"

/* Reads and validates the hyperparameters; n_vocab comes from token_embd. */
int g3_config_from_gguf(const g3_gguf *g, g3_config *cfg, g3_error *err);

/* Number of global (full-attention) layers. */
uint32_t g3_config_n_global(const g3_config *cfg);

#endif
