/* gemma3_model.h: the loaded model (internal view of the public g3_model). */
#ifndef G3_MODEL_GEMMA3_MODEL_H
#define G3_MODEL_GEMMA3_MODEL_H

#include "gemma3.h"
#include "model/gemma3_weights.h"
#include "model/gguf.h"

struct g3_model {
    g3_gguf *gguf;
    g3_config cfg;
    g3_weights w;
};

/* The parsed file, for layers above the model (the tokenizer reads its
 * tokenizer.* keys from it). */
static inline const g3_gguf *g3_model_gguf(const g3_model *m) { return m->gguf; }

#endif
