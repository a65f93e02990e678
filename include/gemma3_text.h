/* gemma3_text.h: text in and out of the model.
 *
 * Tokenizer: SentencePiece-style BPE read from the tokenizer.ggml.* keys that
 * real Gemma 3 GGUF files carry (tokenizer.ggml.model = "llama": tokens,
 * scores, token types, byte fallback <0xNN>, no dummy prefix). Control
 * tokens (<bos>, <start_of_turn>, <unusedN>, ...) are matched as whole tokens
 * in raw text only when the caller allows it (parse_special): the chat
 * template does, user text does not, so a user typing "<start_of_turn>"
 * cannot inject a turn. User-defined tokens ("\n" runs, space runs, tab runs,
 * html tags) are always matched, as llama.cpp and HF do.
 *
 * Detokenizer: incremental and UTF-8 safe; a character split across tokens
 * is never emitted half.
 */
#ifndef GEMMA3_TEXT_H
#define GEMMA3_TEXT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "gemma3.h"

#ifdef __cplusplus
extern "C" {
#endif

/* ---- tokenizer ---------------------------------------------------------- */

typedef struct g3_tokenizer g3_tokenizer;

/* From the model's own GGUF (the common case). The tokenizer points into the
 * model's file: free it before the model. A loaded tokenizer is read-only, so
 * one can be shared by threads. */
int g3_tokenizer_from_model(const g3_model *model, g3_tokenizer **out, g3_error *err);
/* From any GGUF with tokenizer.* keys (e.g. a vocabulary-only file). */
int g3_tokenizer_load(const char *gguf_path, g3_tokenizer **out, g3_error *err);
void g3_tokenizer_free(g3_tokenizer *t);

uint32_t g3_tokenizer_n_vocab(const g3_tokenizer *t);
int32_t g3_tokenizer_bos(const g3_tokenizer *t);
int32_t g3_tokenizer_eos(const g3_tokenizer *t);
/* Id of a piece given by its exact text ("<end_of_turn>"), or -1. */
int32_t g3_tokenizer_find(const g3_tokenizer *t, const char *piece);
/* True for control tokens (<bos>, <end_of_turn>, <unusedN>, ...). */
bool g3_tokenizer_is_control(const g3_tokenizer *t, int32_t id);

/* Encodes len bytes of text (NUL bytes included). Invalid UTF-8 is replaced
 * by U+FFFD, one per maximal ill-formed subpart (never a crash, never an
 * error). *ids is malloc'd (free it); *n_ids its length. add_bos prepends
 * <bos>; parse_special also matches control / unknown tokens in the raw
 * text. Fails only on out-of-memory, text over 1 GiB, or add_bos without a
 * BOS id. */
int g3_tokenize(const g3_tokenizer *t, const char *text, size_t len, bool add_bos,
                bool parse_special, int32_t **ids, size_t *n_ids, g3_error *err);

/* The bytes one token stands for (byte tokens -> that byte, U+2581 -> ' ',
 * control tokens -> their text, or nothing with skip_special, which drops
 * the HF special tokens and keeps <mask> and <unusedN>). Returns the length
 * written (no NUL), or -1 for an id outside the vocabulary or when cap is too
 * small (Gemma 3 pieces are at most 48 bytes). */
int g3_token_to_bytes(const g3_tokenizer *t, int32_t id, bool skip_special, char *buf, size_t cap);

/* ---- incremental detokenizer ------------------------------------------- */

typedef struct g3_detokenizer {
    const g3_tokenizer *tok;
    bool skip_special;
    unsigned char pending[8]; /* bytes of an incomplete UTF-8 character */
    size_t n_pending;
} g3_detokenizer;

void g3_detokenizer_init(g3_detokenizer *d, const g3_tokenizer *t, bool skip_special);
/* Adds a token; writes the text that is complete so far into out (NUL-
 * terminated, at most cap-1 bytes; cap >= 64 always suffices for the Gemma 3
 * vocabulary) and returns its length, or -1 for an unknown id or a cap too
 * small for this token (the stream is then left unchanged). Invalid sequences
 * come out as U+FFFD, one per maximal ill-formed subpart. */
int g3_detokenizer_push(g3_detokenizer *d, int32_t id, char *out, size_t cap);
/* End of stream: an incomplete character comes out as U+FFFD. */
int g3_detokenizer_flush(g3_detokenizer *d, char *out, size_t cap);

/* ---- sampling ----------------------------------------------------------- */

typedef struct g3_sampler_params {
    float temperature;    /* <= 0: greedy (ties go to the lowest id) */
    uint32_t top_k;       /* 0 = off */
    float top_p;          /* 1 = off */
    float min_p;          /* 0 = off */
    float repeat_penalty; /* 1 = off; HF/llama.cpp rule: logit > 0 ? l / p : l * p */
    uint32_t repeat_last_n; /* window of recent tokens the penalty looks at */
    uint64_t seed;
} g3_sampler_params;

/* The original demo's defaults: temperature 0.7, top-p 0.9, top-k 50,
 * repetition penalty 1.1 (window 64), min-p off, seed from the clock. */
g3_sampler_params g3_sampler_defaults(void);
/* Checks the ranges; the message names the bad parameter. */
int g3_sampler_params_check(const g3_sampler_params *p, g3_error *err);

#ifdef __cplusplus
}
#endif

#endif
