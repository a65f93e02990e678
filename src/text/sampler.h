/* sampler.h: choosing the next token from logits.
 *
 * Order, as in Hugging Face generate() (the original demo): repetition
 * penalty over the last N tokens, temperature, top-k, top-p, min-p, then a
 * draw from a seeded generator. Temperature <= 0 is greedy. The sampler owns
 * its scratch (sized for the vocabulary once), so sampling never allocates. */
#ifndef G3_TEXT_SAMPLER_H
#define G3_TEXT_SAMPLER_H

#include <stddef.h>
#include <stdint.h>

#include "gemma3_text.h"

typedef struct g3_sampler g3_sampler;

g3_sampler *g3_sampler_new(const g3_sampler_params *p, uint32_t n_vocab, g3_error *err);
void g3_sampler_free(g3_sampler *s);
/* Chooses a token. logits (n_vocab) may be modified. recent holds the last
 * n_recent tokens of the sequence (the penalty uses the last repeat_last_n). */
int32_t g3_sampler_sample(g3_sampler *s, float *logits, const int32_t *recent, size_t n_recent);

#endif
