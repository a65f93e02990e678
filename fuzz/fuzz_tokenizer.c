/* libFuzzer target: tokenizing and streaming back arbitrary bytes with the
 * real 262144-token vocabulary (path in G3_FUZZ_VOCAB). The first byte picks
 * the special-token mode. Decoding what was encoded must never fail. */
#include <stdio.h>
#include <stdlib.h>

#include "gemma3_text.h"

static g3_tokenizer *g_tok;

int LLVMFuzzerInitialize(int *argc, char ***argv) {
    g3_error err;
    const char *path = getenv("G3_FUZZ_VOCAB");
    if (!path || g3_tokenizer_load(path, &g_tok, &err)) {
        fprintf(stderr, "set G3_FUZZ_VOCAB to a GGUF with a tokenizer (%s)\n", path ? err.msg : "unset");
        exit(1);
    }
    return 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    if (size == 0) return 0;
    g3_error err;
    int32_t *ids;
    size_t n;
    if (g3_tokenize(g_tok, (const char *)data + 1, size - 1, data[0] & 1, data[0] & 2, &ids, &n, &err)) return 0;
    g3_detokenizer d;
    g3_detokenizer_init(&d, g_tok, data[0] & 4);
    char out[64];
    for (size_t i = 0; i < n; i++)
        if (g3_detokenizer_push(&d, ids[i], out, sizeof out) < 0) abort(); /* every encoded id decodes */
    g3_detokenizer_flush(&d, out, sizeof out);
    free(ids);
    return 0;
}
