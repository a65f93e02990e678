/* gemma3_weights.h: the tensors of a Gemma 3 text model, found by their GGUF
 * names and checked against the config's shapes. Matrices point into the
 * file's map; the small 1-D norm weights are converted to f32 copies. */
#ifndef G3_MODEL_GEMMA3_WEIGHTS_H
#define G3_MODEL_GEMMA3_WEIGHTS_H

#include "gemma3.h"
#include "base/thread_pool.h"
#include "model/gguf.h"
#include "tensor/matrix.h"

typedef struct g3_layer_weights {
    const float *attn_norm, *q_norm, *k_norm, *post_attn_norm, *ffn_norm, *post_ffn_norm;
    g3_matrix wq;     /* n_embd -> n_head * head_dim */
    g3_matrix wk;     /* n_embd -> n_head_kv * head_dim */
    g3_matrix wv;     /* n_embd -> n_head_kv * head_dim */
    g3_matrix wo;     /* n_head * head_dim -> n_embd */
    g3_matrix w_gate; /* n_embd -> n_ff */
    g3_matrix w_up;   /* n_embd -> n_ff */
    g3_matrix w_down; /* n_ff -> n_embd */
} g3_layer_weights;

typedef struct g3_weights {
    g3_matrix token_embd; /* n_embd x n_vocab (a row per token) */
    g3_matrix output;     /* tied: same as token_embd unless output.weight exists */
    bool output_tied;
    const float *output_norm;
    g3_layer_weights *layers;
    uint32_t n_layer;
    float *norms; /* storage for all norm vectors */
    bool x16_made; /* g3_weights_make_x16 has run */
} g3_weights;

int g3_weights_load(const g3_gguf *g, const g3_config *cfg, g3_weights *w, g3_error *err);
void g3_weights_free(g3_weights *w);

/* Makes the x16 copy (tensor/repack.h) of every matrix that has one, once
 * per model (later calls, from any thread, return at once). The file's
 * pages of a repacked matrix are given back (madvise), so the copy takes
 * their place in memory rather than adding to it; they come back only if
 * something reads the file's layout again (the embedding lookup reads a
 * row per token; the exact-activation and CUDA paths read it all). A
 * matrix whose copy cannot be allocated, or would leave less than 256 MiB
 * of memory available, keeps the file's layout alone: the
 * same products, at the old speed. The copying runs on the pool's threads.
 * Returns the bytes repacked. */
uint64_t g3_weights_make_x16(g3_weights *w, g3_thread_pool *pool);

/* Looks up a 2-D tensor and checks its shape and that the type is supported. */
int g3_weights_get_matrix(const g3_gguf *g, const char *name, uint64_t n_in, uint64_t n_out,
                          g3_matrix *m, g3_error *err);

#endif
