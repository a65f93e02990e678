#include "model/test_model_vocab.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "base/error.h"

enum { TOK_NORMAL = 1, TOK_UNKNOWN = 2, TOK_CONTROL = 3, TOK_BYTE = 6 };

static const char *const k_control[] = {
    "<pad>", "<eos>", "<bos>", "<unk>", "<mask>", "<start_of_turn>", "<end_of_turn>",
    "<start_of_image>", "<end_of_image>", "<image_soft_token>",
};

/* SentencePiece writes a space as U+2581. */
#define SP "\xe2\x96\x81"

/* Ordinary pieces. */
static const char *const k_pieces[] = {
    "a", "b", "c", "d", "e", "f", "g", "h", "i", "j", "k", "l", "m", "n", "o", "p", "q", "r", "s",
    "t", "u", "v", "w", "x", "y", "z", "A", "B", "C", "D", "E", "F", "G", "H", "I", "J", "K", "L",
    "M", "N", "O", "P", "Q", "R", "S", "T", "U", "V", "W", "X", "Y", "Z", "0", "1", "2", "3", "4",
    "5", "6", "7", "8", "9", ".", ",", "!", "?", ":", ";", "'", "\"", "-", "(", ")", "\n",
    SP, SP SP, "er", "in", "th", "on", "an", "re", "at", "en",
    SP "the", SP "a", SP "is", SP "of", SP "and",
    SP "to", SP "in", SP "that", SP "it", SP "you",
    SP "what", SP "this", SP "image", SP "for", SP "on",
    SP "with", SP "as", SP "are", SP "be", SP "can",
    SP "model", SP "user", "user", "model", SP "quick",
    SP "brown", SP "fox", SP "jumps", SP "over",
    SP "lazy", SP "dog", "The", SP "The", "Hello", SP "hello",
    SP "world", SP "code", SP "file", SP "document",
    SP "video", SP "frame", SP "please", SP "describe",
    SP "summary", SP "question", SP "answer",
};

#define N_CONTROL (sizeof k_control / sizeof k_control[0])
#define N_PIECES (sizeof k_pieces / sizeof k_pieces[0])

uint32_t g3_test_vocab_builtin_size(void) { return (uint32_t)(N_CONTROL + 256 + N_PIECES); }

static const char k_template[] =
    "{{ bos_token }}{% for message in messages %}"
    "{% set role = 'model' if message['role'] == 'assistant' else message['role'] %}"
    "{{ '<start_of_turn>' + role + '\n' + message['content'] | trim + '<end_of_turn>\n' }}"
    "{% endfor %}{% if add_generation_prompt %}{{ '<start_of_turn>model\n' }}{% endif %}";

int g3_test_vocab_write(g3_gguf_writer *w, uint32_t n_vocab, g3_error *err) {
    uint32_t base = g3_test_vocab_builtin_size();
    if (n_vocab < base) return g3_fail(err, "vocabulary of %u is smaller than the built-in %u", n_vocab, base);
    char **tokens = calloc(n_vocab, sizeof *tokens);
    float *scores = calloc(n_vocab, sizeof *scores);
    int32_t *types = calloc(n_vocab, sizeof *types);
    char *names = malloc((size_t)n_vocab * 24); /* storage for <0xNN> and <unusedN> */
    int rc = -1;
    if (!tokens || !scores || !types || !names) {
        g3_fail(err, "out of memory for the vocabulary");
        goto done;
    }
    for (uint32_t i = 0; i < n_vocab; i++) {
        char *own = names + (size_t)i * 24;
        if (i < N_CONTROL) {
            tokens[i] = (char *)k_control[i];
            types[i] = i == 3 ? TOK_UNKNOWN : TOK_CONTROL;
        } else if (i < N_CONTROL + 256) {
            snprintf(own, 24, "<0x%02X>", (unsigned)(i - N_CONTROL));
            tokens[i] = own;
            types[i] = TOK_BYTE;
        } else if (i < base) {
            uint32_t k = i - (uint32_t)(N_CONTROL + 256);
            tokens[i] = (char *)k_pieces[k];
            types[i] = TOK_NORMAL;
            scores[i] = -1.0f - 0.01f * (float)k - 0.1f * (float)strlen(k_pieces[k]);
        } else {
            snprintf(own, 24, "<unused%u>", i - base);
            tokens[i] = own;
            types[i] = TOK_CONTROL;
        }
    }
    rc = g3_gguf_writer_kv_str(w, "tokenizer.ggml.model", "llama", err) ||
                 g3_gguf_writer_kv_arr_str(w, "tokenizer.ggml.tokens", (const char *const *)tokens, n_vocab, err) ||
                 g3_gguf_writer_kv_arr(w, "tokenizer.ggml.scores", G3_GGUF_FLOAT32, scores, n_vocab, err) ||
                 g3_gguf_writer_kv_arr(w, "tokenizer.ggml.token_type", G3_GGUF_INT32, types, n_vocab, err) ||
                 g3_gguf_writer_kv_u32(w, "tokenizer.ggml.bos_token_id", 2, err) ||
                 g3_gguf_writer_kv_u32(w, "tokenizer.ggml.eos_token_id", 1, err) ||
                 g3_gguf_writer_kv_u32(w, "tokenizer.ggml.unknown_token_id", 3, err) ||
                 g3_gguf_writer_kv_u32(w, "tokenizer.ggml.padding_token_id", 0, err) ||
                 g3_gguf_writer_kv_bool(w, "tokenizer.ggml.add_bos_token", true, err) ||
                 g3_gguf_writer_kv_bool(w, "tokenizer.ggml.add_eos_token", false, err) ||
                 g3_gguf_writer_kv_bool(w, "tokenizer.ggml.add_space_prefix", false, err) ||
                 g3_gguf_writer_kv_str(w, "tokenizer.chat_template", k_template, err)
             ? -1
             : 0;
done:
    free(tokens);
    free(scores);
    free(types);
    free(names);
    return rc;
}
