/* gemma3_model.h: the loaded model (internal view of the public g3_model). */
#ifndef G3_MODEL_GEMMA3_MODEL_H
#define G3_MODEL_GEMMA3_MODEL_H

#include "gemma3.h"
#include "model/gemma3_weights.h"
#include "model/gguf.h"

struct g3_cuda_model;

struct g3_model {
    g3_gguf *gguf;
    g3_config cfg;
    g3_weights w;
    /* the weights in GPU memory: uploaded by the first CUDA context, kept
     * for the model's life (src/cuda/g3_cuda.h) */
    struct g3_cuda_model *cuda;
};

/* The parsed file, for layers above the model (the tokenizer reads its
 * tokenizer.* keys from it). */
static inline const g3_gguf *g3_model_gguf(const g3_model *m) { return m->gguf; }

#endif
