/* tokenizer_internal.h: what tokenizer.c and detokenizer.c share.
 *
 * The vocabulary is read-only after loading: piece texts point into the
 * GGUF's string table (nothing copied per token), scores and types are two
 * flat arrays, and one open-addressing hash table maps piece text -> id.
 */
#ifndef G3_TEXT_TOKENIZER_INTERNAL_H
#define G3_TEXT_TOKENIZER_INTERNAL_H

#include <stddef.h>
#include <stdint.h>

#include "gemma3_text.h"
#include "model/gguf.h"

/* tokenizer.ggml.token_type values (llama.cpp's llama_token_type). */
enum {
    G3_TOK_UNDEFINED = 0,
    G3_TOK_NORMAL = 1,
    G3_TOK_UNKNOWN = 2,
    G3_TOK_CONTROL = 3,
    G3_TOK_USER_DEFINED = 4,
    G3_TOK_UNUSED = 5,
    G3_TOK_BYTE = 6,
};

/* Per-token flags (g3_tokenizer.flags). */
enum {
    G3_TOKF_SKIP = 1, /* dropped by skip_special (the HF "special" added tokens) */
};

typedef struct g3_tok_slot {
    uint32_t hash;
    uint32_t id; /* UINT32_MAX: empty */
} g3_tok_slot;

/* A trie over the texts matched in raw input before BPE (control, unknown
 * and user-defined tokens), for leftmost-longest matching. */
typedef struct g3_tok_trie_node {
    uint32_t child;   /* first child, 0 = none (node 0 is the root) */
    uint32_t sibling; /* next sibling, 0 = none */
    int32_t id;       /* token whose text ends here, or -1 */
    uint8_t byte;
} g3_tok_trie_node;

struct g3_tokenizer {
    g3_gguf *owned;       /* the file when loaded by path; NULL when borrowed from a model */
    uint32_t n_vocab;
    const g3_str *pieces; /* n_vocab texts, pointing into the GGUF */
    float *scores;
    uint8_t *types;
    uint8_t *flags;
    g3_tok_slot *slots;   /* piece hash table, power-of-two size */
    uint32_t slot_mask;
    g3_tok_trie_node *trie;
    uint32_t n_trie;
    uint32_t root[256];   /* root's child for each first byte (0 = none) */
    int32_t byte_ids[256];/* <0xNN> token of each byte, or -1 */
    int32_t bos, eos, unk, pad; /* -1 when absent */
};

/* Looks a byte string up among all pieces: its id, or -1. */
int32_t g3_tok_lookup(const g3_tokenizer *t, const char *s, size_t n);

/* UTF-8 per Unicode 15 table 3-7 (no overlongs, no surrogates, <= U+10FFFF).
 * Returns the length (1..4) of the valid character at s; 0 when s[0..n) is a
 * valid but incomplete beginning of one; or -k when the first k bytes are an
 * ill-formed "maximal subpart" (k >= 1), which is what one U+FFFD replaces
 * (the Unicode / WHATWG / Python errors="replace" rule). */
static inline int g3_utf8_check(const uint8_t *s, size_t n) {
    if (n == 0) return 0;
    uint8_t c = s[0];
    if (c < 0x80) return 1;
    int need;
    uint8_t lo = 0x80, hi = 0xBF; /* allowed range of the second byte */
    if (c >= 0xC2 && c <= 0xDF) need = 2;
    else if (c >= 0xE0 && c <= 0xEF) {
        need = 3;
        if (c == 0xE0) lo = 0xA0;      /* no overlongs */
        else if (c == 0xED) hi = 0x9F; /* no surrogates */
    } else if (c >= 0xF0 && c <= 0xF4) {
        need = 4;
        if (c == 0xF0) lo = 0x90;      /* no overlongs */
        else if (c == 0xF4) hi = 0x8F; /* <= U+10FFFF */
    } else
        return -1;
    for (int i = 1; i < need; i++) {
        if ((size_t)i >= n) return 0;
        uint8_t b = s[i];
        bool ok = i == 1 ? (b >= lo && b <= hi) : (b >= 0x80 && b <= 0xBF);
        if (!ok) return -i;
    }
    return need;
}

#endif
