/* test_model_vocab.h: a small SentencePiece-style vocabulary for generated
 * models (used when no --vocab file is given). Same layout as the golden tiny
 * models: control tokens 0-9, byte tokens <0x00>..<0xFF> at 10-265, then
 * ordinary pieces; padded with <unusedN> control tokens up to n_vocab. */
#ifndef G3_MODEL_TEST_MODEL_VOCAB_H
#define G3_MODEL_TEST_MODEL_VOCAB_H

#include <stdint.h>

#include "model/gguf_writer.h"

uint32_t g3_test_vocab_builtin_size(void);

/* Writes the tokenizer.* keys for a vocabulary of n_vocab tokens
 * (n_vocab >= g3_test_vocab_builtin_size()). */
int g3_test_vocab_write(g3_gguf_writer *w, uint32_t n_vocab, g3_error *err);

#endif
