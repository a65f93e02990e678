/* tokenizer.c: Gemma 3 text -> token ids (SentencePiece-style BPE from GGUF).
 *
 * Loading reads tokenizer.ggml.{model,tokens,scores,token_type} and the
 * special ids, checks them, and builds two lookup structures once: a hash
 * table over all piece texts (for the merge loop) and a trie over the texts
 * that are matched in the raw input before BPE (control / unknown /
 * user-defined tokens). Piece texts stay in the GGUF map; the only
 * allocations are a handful of flat arrays.
 *
 * Encoding is llama.cpp's llm_tokenizer_spm algorithm, which the golden data
 * (HF tokenizers) agrees with for Gemma 3:
 *   1. invalid UTF-8 in the input becomes U+FFFD (one per maximal ill-formed
 *      subpart, the Unicode rule), so everything below sees valid UTF-8;
 *   2. the text is split on special-token texts, leftmost-longest. User-
 *      defined tokens ("\n" runs, space runs, tab runs, html tags,
 *      [multimodal]) are always matched, as llama.cpp does; control and
 *      unknown tokens (<bos>, <start_of_turn>, <unusedN>, ...) only with
 *      parse_special, so user text cannot inject a turn;
 *   3. in each remaining fragment ' ' becomes U+2581, each code point starts
 *      as one symbol, and the adjacent pair whose concatenation is a piece
 *      with the highest score is merged repeatedly (ties: leftmost), with a
 *      binary heap of candidate pairs and linked symbols: O(n log n);
 *   4. a symbol that is not a piece becomes its bytes as <0xNN> tokens.
 *   No dummy-prefix space is added (Gemma's add_space_prefix = false).
 * Only NORMAL pieces take part in merges: a control token's text can never
 * come out of BPE, whatever the scores of a vocabulary say.
 */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "base/error.h"
#include "model/gemma3_model.h"
#include "text/tokenizer_internal.h"

/* Input limit: symbol offsets inside a fragment are 32-bit, and a fragment
 * grows up to 3x when spaces become U+2581. */
#define MAX_TEXT_BYTES ((size_t)1 << 30 < SIZE_MAX / 64 ? (size_t)1 << 30 : SIZE_MAX / 64)
#define MAX_VOCAB ((uint64_t)1 << 30)

static const uint8_t k_replacement[3] = {0xEF, 0xBF, 0xBD}; /* U+FFFD */
static const uint8_t k_space_mark[3] = {0xE2, 0x96, 0x81};  /* U+2581 */

/* ---- piece hash table ---------------------------------------------------- */

/* FNV-1a: pieces are short (a few bytes), so a byte loop is fast enough. */
static uint32_t hash_bytes(const uint8_t *s, size_t n) {
    uint32_t h = 2166136261u;
    for (size_t i = 0; i < n; i++) h = (h ^ s[i]) * 16777619u;
    return h;
}

int32_t g3_tok_lookup(const g3_tokenizer *t, const char *s, size_t n) {
    uint32_t h = hash_bytes((const uint8_t *)s, n);
    for (uint32_t i = h & t->slot_mask;; i = (i + 1) & t->slot_mask) {
        const g3_tok_slot *slot = &t->slots[i];
        if (slot->id == UINT32_MAX) return -1;
        if (slot->hash != h) continue;
        const g3_str *p = &t->pieces[slot->id];
        if (p->len == n && memcmp(p->ptr, s, n) == 0) return (int32_t)slot->id;
    }
}

/* Duplicate texts keep the lowest id (Gemma 3 has none). The table is a few
 * MB and every insert lands on a random slot, so the hashes are computed
 * first and the slots prefetched a few tokens ahead: that halves the load. */
static int build_hash(g3_tokenizer *t, g3_error *err) {
    uint32_t cap = 16;
    while (cap < 2u * t->n_vocab) cap *= 2; /* load factor <= 0.5 */
    t->slots = malloc(sizeof *t->slots * cap);
    uint32_t *hashes = malloc(sizeof *hashes * t->n_vocab);
    if (!t->slots || !hashes) {
        free(hashes);
        return g3_fail(err, "out of memory for the piece table (%u slots)", cap);
    }
    memset(t->slots, 0xFF, sizeof *t->slots * cap);
    t->slot_mask = cap - 1;
    for (uint32_t id = 0; id < t->n_vocab; id++)
        hashes[id] = hash_bytes((const uint8_t *)t->pieces[id].ptr, t->pieces[id].len);
    enum { AHEAD = 16 };
    for (uint32_t id = 0; id < t->n_vocab; id++) {
#if defined(__GNUC__)
        if (id + AHEAD < t->n_vocab) __builtin_prefetch(&t->slots[hashes[id + AHEAD] & t->slot_mask], 1);
#endif
        const g3_str *p = &t->pieces[id];
        uint32_t h = hashes[id];
        uint32_t i = h & t->slot_mask;
        for (;; i = (i + 1) & t->slot_mask) {
            g3_tok_slot *slot = &t->slots[i];
            if (slot->id == UINT32_MAX) break;
            const g3_str *q = &t->pieces[slot->id];
            if (slot->hash == h && q->len == p->len && memcmp(q->ptr, p->ptr, p->len) == 0) break;
        }
        if (t->slots[i].id == UINT32_MAX) t->slots[i] = (g3_tok_slot){h, id};
    }
    free(hashes);
    return 0;
}

/* ---- special-token trie -------------------------------------------------- */

static bool is_raw_matched(uint8_t type) {
    return type == G3_TOK_CONTROL || type == G3_TOK_UNKNOWN || type == G3_TOK_USER_DEFINED;
}

static uint32_t trie_child(const g3_tokenizer *t, uint32_t node, uint8_t b) {
    if (node == 0) return t->root[b];
    uint32_t c = t->trie[node].child;
    while (c && t->trie[c].byte != b) c = t->trie[c].sibling;
    return c;
}

static void trie_insert(g3_tokenizer *t, int32_t id) {
    const g3_str *p = &t->pieces[id];
    uint32_t node = 0;
    for (uint64_t i = 0; i < p->len; i++) {
        uint8_t b = (uint8_t)p->ptr[i];
        uint32_t c = trie_child(t, node, b);
        if (!c) {
            c = t->n_trie++; /* the caller sized the array for every byte */
            t->trie[c] = (g3_tok_trie_node){.id = -1, .byte = b};
            if (node == 0) {
                t->root[b] = c;
            } else {
                t->trie[c].sibling = t->trie[node].child;
                t->trie[node].child = c;
            }
        }
        node = c;
    }
    if (t->trie[node].id < 0) t->trie[node].id = id;
}

static int build_trie(g3_tokenizer *t, g3_error *err) {
    uint64_t n_nodes = 1;
    for (uint32_t id = 0; id < t->n_vocab; id++)
        if (is_raw_matched(t->types[id])) n_nodes += t->pieces[id].len;
    if (n_nodes >= UINT32_MAX || n_nodes > SIZE_MAX / sizeof *t->trie) return g3_fail(err, "special-token texts are too long (%llu bytes)",
                                              (unsigned long long)n_nodes);
    t->trie = malloc(sizeof *t->trie * n_nodes);
    if (!t->trie) return g3_fail(err, "out of memory for the special-token trie");
    t->trie[0] = (g3_tok_trie_node){.id = -1};
    t->n_trie = 1;
    for (uint32_t id = 0; id < t->n_vocab; id++)
        if (is_raw_matched(t->types[id]) && t->pieces[id].len > 0) trie_insert(t, (int32_t)id);
    return 0;
}

/* Longest special token (allowed by parse_special) starting at s; its length,
 * or 0 when none. */
static size_t match_special(const g3_tokenizer *t, const uint8_t *s, size_t n, bool parse_special,
                            int32_t *id) {
    size_t best = 0;
    uint32_t node = 0;
    for (size_t i = 0; i < n; i++) {
        node = trie_child(t, node, s[i]);
        if (!node) break;
        int32_t tid = t->trie[node].id;
        if (tid >= 0 && (parse_special || t->types[tid] == G3_TOK_USER_DEFINED)) {
            best = i + 1;
            *id = tid;
        }
    }
    return best;
}

/* ---- loading ------------------------------------------------------------- */

/* <unusedN> and <mask> are CONTROL in GGUF (convert_hf_to_gguf.py marks them
 * so) but are not "special" in tokenizer.json, so HF decoding with
 * skip_special_tokens keeps them; the golden decode cases follow HF. */
static bool kept_by_skip_special(g3_str p) {
    if (g3_str_eq(p, "<mask>")) return true;
    if (p.len < 9 || memcmp(p.ptr, "<unused", 7) != 0 || p.ptr[p.len - 1] != '>') return false;
    for (uint64_t i = 7; i + 1 < p.len; i++)
        if (p.ptr[i] < '0' || p.ptr[i] > '9') return false;
    return true;
}

static int hex_digit(char c) {
    if (c >= '0' && c <= '9') return c - '0';
    if (c >= 'A' && c <= 'F') return c - 'A' + 10;
    if (c >= 'a' && c <= 'f') return c - 'a' + 10;
    return -1;
}

/* A BYTE token's text is "<0xNN>"; returns NN or -1. */
static int byte_token_value(g3_str p) {
    if (p.len != 6 || memcmp(p.ptr, "<0x", 3) != 0 || p.ptr[5] != '>') return -1;
    int hi = hex_digit(p.ptr[3]), lo = hex_digit(p.ptr[4]);
    return hi < 0 || lo < 0 ? -1 : hi * 16 + lo;
}

/* An optional token-id key: absent (or negative, as some converters write
 * "none") gives -1; present must be inside the vocabulary. */
static int read_token_id(const g3_gguf *g, const char *key, uint32_t n_vocab, int32_t *out,
                         g3_error *err) {
    *out = -1;
    const g3_gguf_kv *kv = g3_gguf_find_kv(g, key);
    if (!kv) return 0;
    switch (kv->value.type) {
    case G3_GGUF_INT8: case G3_GGUF_INT16: case G3_GGUF_INT32: case G3_GGUF_INT64:
        if (kv->value.v.i64 < 0) return 0;
        /* fall through */
    case G3_GGUF_UINT8: case G3_GGUF_UINT16: case G3_GGUF_UINT32: case G3_GGUF_UINT64:
        if (kv->value.v.u64 >= n_vocab)
            return g3_fail(err, "%s = %llu is outside the vocabulary (%u tokens)", key,
                           (unsigned long long)kv->value.v.u64, n_vocab);
        *out = (int32_t)kv->value.v.u64;
        return 0;
    default:
        return g3_fail(err, "key '%s' has type %s, expected an integer", key,
                       g3_gguf_vtype_name(kv->value.type));
    }
}

static bool is_integer_vtype(g3_gguf_vtype v) {
    return v <= G3_GGUF_INT32 || v == G3_GGUF_UINT64 || v == G3_GGUF_INT64;
}

static int check_len(const g3_gguf_array *a, const char *key, uint32_t n, g3_error *err) {
    if (a->n != n)
        return g3_fail(err, "%s has %llu entries but tokenizer.ggml.tokens has %u", key,
                       (unsigned long long)a->n, n);
    return 0;
}

#if defined(__BYTE_ORDER__) && __BYTE_ORDER__ == __ORDER_LITTLE_ENDIAN__
#define HOST_LITTLE_ENDIAN 1
#else
#define HOST_LITTLE_ENDIAN 0
#endif

/* GGUF scalars are packed little-endian and may be unaligned. */
static int32_t read_i32(const void *data, uint32_t i) {
    const uint8_t *p = (const uint8_t *)data + 4 * (size_t)i;
    return (int32_t)((uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 | (uint32_t)p[3] << 24);
}

/* The common case (f32 on a little-endian host) is one copy. */
static void copy_scores(float *dst, const g3_gguf_array *a) {
    if (HOST_LITTLE_ENDIAN && a->elem_type == G3_GGUF_FLOAT32) {
        memcpy(dst, a->data, sizeof *dst * a->n);
        return;
    }
    for (uint64_t i = 0; i < a->n; i++) dst[i] = (float)g3_gguf_array_f64(a, i);
}

static int read_arrays(g3_tokenizer *t, const g3_gguf *g, g3_error *err) {
    const g3_gguf_array *tokens, *scores, *types;
    if (g3_gguf_get_arr(g, "tokenizer.ggml.tokens", true, G3_GGUF_STRING, &tokens, err) ||
        g3_gguf_get_arr(g, "tokenizer.ggml.scores", true, G3_GGUF_FLOAT32, &scores, err) ||
        g3_gguf_get_arr(g, "tokenizer.ggml.token_type", true, G3_GGUF_VTYPE_COUNT, &types, err))
        return -1;
    if (tokens->n == 0 || tokens->n > MAX_VOCAB)
        return g3_fail(err, "tokenizer.ggml.tokens has %llu entries (expected 1..%llu)",
                       (unsigned long long)tokens->n, (unsigned long long)MAX_VOCAB);
    t->n_vocab = (uint32_t)tokens->n;
    if (!is_integer_vtype(types->elem_type))
        return g3_fail(err, "tokenizer.ggml.token_type holds %s, expected integers",
                       g3_gguf_vtype_name(types->elem_type));
    if (check_len(scores, "tokenizer.ggml.scores", t->n_vocab, err) ||
        check_len(types, "tokenizer.ggml.token_type", t->n_vocab, err))
        return -1;
    t->pieces = tokens->strings;
    t->scores = malloc(sizeof *t->scores * t->n_vocab);
    t->types = malloc(t->n_vocab);
    t->flags = calloc(t->n_vocab, 1);
    if (!t->scores || !t->types || !t->flags)
        return g3_fail(err, "out of memory for %u tokens", t->n_vocab);
    copy_scores(t->scores, scores);
    for (uint32_t i = 0; i < t->n_vocab; i++) {
        if (isnan(t->scores[i])) return g3_fail(err, "tokenizer.ggml.scores[%u] is NaN", i);
        int64_t ty = types->elem_type == G3_GGUF_INT32 ? read_i32(types->data, i) : g3_gguf_array_i64(types, i);
        if (ty < G3_TOK_UNDEFINED || ty > G3_TOK_BYTE)
            return g3_fail(err, "tokenizer.ggml.token_type[%u] = %lld is not a token type (0..6)", i,
                           (long long)ty);
        t->types[i] = (uint8_t)ty;
    }
    return 0;
}

/* Byte-fallback table and skip flags. */
static int scan_pieces(g3_tokenizer *t, g3_error *err) {
    for (int b = 0; b < 256; b++) t->byte_ids[b] = -1;
    for (uint32_t id = 0; id < t->n_vocab; id++) {
        g3_str p = t->pieces[id];
        if (t->types[id] == G3_TOK_BYTE) {
            int v = byte_token_value(p);
            if (v < 0)
                return g3_fail(err, "token %u has type BYTE but its text '%.*s' is not <0xNN>", id,
                               (int)(p.len > 32 ? 32 : p.len), p.ptr);
            if (t->byte_ids[v] < 0) t->byte_ids[v] = (int32_t)id;
        }
        if ((t->types[id] == G3_TOK_CONTROL || t->types[id] == G3_TOK_UNKNOWN) && !kept_by_skip_special(p))
            t->flags[id] |= G3_TOKF_SKIP;
    }
    return 0;
}

static int read_model_kind(const g3_gguf *g, g3_error *err) {
    g3_str model;
    if (g3_gguf_get_str(g, "tokenizer.ggml.model", true, &model, err))
        return g3_error_prefix(err, "no tokenizer in this GGUF: ");
    if (!g3_str_eq(model, "llama"))
        return g3_fail(err, "tokenizer.ggml.model is '%.*s'; only 'llama' (SentencePiece, as in Gemma 3) is supported",
                       (int)(model.len > 64 ? 64 : model.len), model.ptr);
    bool space_prefix;
    if (g3_gguf_get_bool(g, "tokenizer.ggml.add_space_prefix", false, false, &space_prefix, err)) return -1;
    if (space_prefix)
        return g3_fail(err, "tokenizer.ggml.add_space_prefix = true is not supported (Gemma 3 uses false)");
    return 0;
}

static int build(g3_tokenizer *t, const g3_gguf *g, g3_error *err) {
    if (read_model_kind(g, err) || read_arrays(t, g, err)) return -1;
    if (read_token_id(g, "tokenizer.ggml.bos_token_id", t->n_vocab, &t->bos, err) ||
        read_token_id(g, "tokenizer.ggml.eos_token_id", t->n_vocab, &t->eos, err) ||
        read_token_id(g, "tokenizer.ggml.unknown_token_id", t->n_vocab, &t->unk, err) ||
        read_token_id(g, "tokenizer.ggml.padding_token_id", t->n_vocab, &t->pad, err))
        return -1;
    return scan_pieces(t, err) || build_hash(t, err) || build_trie(t, err) ? -1 : 0;
}

static int create(const g3_gguf *g, g3_gguf *owned, g3_tokenizer **out, g3_error *err) {
    g3_tokenizer *t = calloc(1, sizeof *t);
    if (!t) return g3_fail(err, "out of memory");
    if (build(t, g, err)) {
        g3_tokenizer_free(t);
        return -1;
    }
    t->owned = owned;
    *out = t;
    return 0;
}

int g3_tokenizer_from_model(const g3_model *model, g3_tokenizer **out, g3_error *err) {
    if (!out) return g3_fail(err, "g3_tokenizer_from_model: out is NULL");
    *out = NULL;
    if (!model) return g3_fail(err, "g3_tokenizer_from_model: model is NULL");
    return create(g3_model_gguf(model), NULL, out, err);
}

int g3_tokenizer_load(const char *gguf_path, g3_tokenizer **out, g3_error *err) {
    if (!out || !gguf_path) return g3_fail(err, "g3_tokenizer_load: NULL argument");
    *out = NULL;
    g3_gguf *g;
    if (g3_gguf_open(gguf_path, &g, err)) return -1;
    if (create(g, g, out, err)) {
        g3_gguf_close(g);
        return g3_error_prefix(err, "%s: ", gguf_path);
    }
    return 0;
}

void g3_tokenizer_free(g3_tokenizer *t) {
    if (!t) return;
    free(t->scores);
    free(t->types);
    free(t->flags);
    free(t->slots);
    free(t->trie);
    if (t->owned) g3_gguf_close(t->owned);
    free(t);
}

uint32_t g3_tokenizer_n_vocab(const g3_tokenizer *t) { return t ? t->n_vocab : 0; }
int32_t g3_tokenizer_bos(const g3_tokenizer *t) { return t ? t->bos : -1; }
int32_t g3_tokenizer_eos(const g3_tokenizer *t) { return t ? t->eos : -1; }

int32_t g3_tokenizer_find(const g3_tokenizer *t, const char *piece) {
    return t && piece ? g3_tok_lookup(t, piece, strlen(piece)) : -1;
}

bool g3_tokenizer_is_control(const g3_tokenizer *t, int32_t id) {
    return t && id >= 0 && (uint32_t)id < t->n_vocab && t->types[id] == G3_TOK_CONTROL;
}

/* ---- encoding ------------------------------------------------------------ */

typedef struct tok_sym {
    uint32_t start, len; /* bytes in the normalized fragment; len 0 = merged away */
    int32_t prev, next;  /* -1 at the ends */
} tok_sym;

typedef struct tok_bigram {
    float score;
    uint32_t left, right; /* symbol indices */
    uint32_t size;        /* left.len + right.len when queued: stale if it changed */
} tok_bigram;

typedef struct enc {
    const g3_tokenizer *t;
    g3_error *err;
    uint8_t *norm;
    tok_sym *sym;
    tok_bigram *heap;
    size_t norm_cap, sym_cap, heap_cap, n_heap;
    int32_t *ids;
    size_t n_ids, ids_cap;
} enc;

/* Returns buf grown to at least `need` elements (buf itself when it is big
 * enough), or NULL with a message (buf is then still valid). */
static void *grow(void *buf, size_t *cap, size_t need, size_t elem, g3_error *err) {
    if (need <= *cap) return buf;
    size_t n = *cap ? *cap : 64;
    while (n < need) n = n > SIZE_MAX / 2 ? need : n * 2;
    if (n > SIZE_MAX / elem) {
        g3_fail(err, "text too long to tokenize");
        return NULL;
    }
    void *p = realloc(buf, n * elem);
    if (!p) {
        g3_fail(err, "out of memory tokenizing (%zu x %zu bytes)", n, elem);
        return NULL;
    }
    *cap = n;
    return p;
}

static int push_id(enc *e, int32_t id) {
    if (e->n_ids == e->ids_cap) {
        int32_t *p = grow(e->ids, &e->ids_cap, e->n_ids + 1, sizeof *e->ids, e->err);
        if (!p) return -1;
        e->ids = p;
    }
    e->ids[e->n_ids++] = id;
    return 0;
}

/* Room for a fragment of n bytes: normalized text (' ' grows to 3 bytes), n
 * symbols, and < 3n queued pairs (n - 1 at first, at most 2 per merge). */
static int reserve_fragment(enc *e, size_t n) {
    uint8_t *norm = grow(e->norm, &e->norm_cap, 3 * n, 1, e->err);
    if (!norm) return -1;
    e->norm = norm;
    tok_sym *sym = grow(e->sym, &e->sym_cap, n, sizeof *sym, e->err);
    if (!sym) return -1;
    e->sym = sym;
    tok_bigram *heap = grow(e->heap, &e->heap_cap, 3 * n, sizeof *heap, e->err);
    if (!heap) return -1;
    e->heap = heap;
    return 0;
}

/* Heap order: higher score first, then the leftmost pair (llama.cpp's
 * llm_bigram_spm comparator). */
static bool before(const tok_bigram *a, const tok_bigram *b) {
    return a->score > b->score || (a->score == b->score && a->left < b->left);
}

static void heap_push(enc *e, tok_bigram bg) {
    size_t i = e->n_heap++; /* capacity reserved for the fragment's worst case */
    while (i > 0) {
        size_t parent = (i - 1) / 2;
        if (!before(&bg, &e->heap[parent])) break;
        e->heap[i] = e->heap[parent];
        i = parent;
    }
    e->heap[i] = bg;
}

static tok_bigram heap_pop(enc *e) {
    tok_bigram top = e->heap[0], last = e->heap[--e->n_heap];
    size_t i = 0, n = e->n_heap;
    for (;;) {
        size_t c = 2 * i + 1;
        if (c >= n) break;
        if (c + 1 < n && before(&e->heap[c + 1], &e->heap[c])) c++;
        if (!before(&e->heap[c], &last)) break;
        e->heap[i] = e->heap[c];
        i = c;
    }
    if (n) e->heap[i] = last;
    return top;
}

/* Queues the pair (left, right) if their concatenation is a NORMAL piece. */
static void try_bigram(enc *e, int32_t left, int32_t right) {
    if (left < 0 || right < 0) return;
    const tok_sym *l = &e->sym[left], *r = &e->sym[right];
    uint32_t size = l->len + r->len;
    int32_t id = g3_tok_lookup(e->t, (const char *)e->norm + l->start, size);
    if (id < 0 || e->t->types[id] != G3_TOK_NORMAL) return;
    heap_push(e, (tok_bigram){e->t->scores[id], (uint32_t)left, (uint32_t)right, size});
}

/* A final symbol: its piece, or its bytes as <0xNN> tokens (<unk> when the
 * vocabulary lacks a byte token). */
static int emit_symbol(enc *e, const tok_sym *s) {
    const char *text = (const char *)e->norm + s->start;
    int32_t id = g3_tok_lookup(e->t, text, s->len);
    if (id >= 0 && e->t->types[id] == G3_TOK_NORMAL) return push_id(e, id);
    for (uint32_t i = 0; i < s->len; i++) {
        uint8_t b = (uint8_t)text[i];
        int32_t bid = e->t->byte_ids[b] >= 0 ? e->t->byte_ids[b] : e->t->unk;
        if (bid < 0)
            return g3_fail(e->err, "byte 0x%02X has no <0x%02X> token and the vocabulary has no <unk>", b, b);
        if (push_id(e, bid)) return -1;
    }
    return 0;
}

/* ' ' -> U+2581, then one symbol per code point; returns the symbol count. */
static size_t split_symbols(enc *e, const uint8_t *text, size_t n) {
    size_t m = 0;
    for (size_t i = 0; i < n; i++) {
        if (text[i] == ' ') {
            memcpy(e->norm + m, k_space_mark, 3);
            m += 3;
        } else {
            e->norm[m++] = text[i];
        }
    }
    size_t ns = 0;
    for (size_t i = 0; i < m;) {
        int k = g3_utf8_check(e->norm + i, m - i);
        uint32_t len = k > 0 ? (uint32_t)k : 1; /* input is sanitized; stay safe anyway */
        e->sym[ns] = (tok_sym){(uint32_t)i, len, (int32_t)ns - 1, (int32_t)ns + 1};
        ns++;
        i += len;
    }
    e->sym[ns - 1].next = -1;
    return ns;
}

static int encode_fragment(enc *e, const uint8_t *text, size_t n) {
    if (n == 0) return 0;
    if (reserve_fragment(e, n)) return -1;
    size_t ns = split_symbols(e, text, n);
    e->n_heap = 0;
    for (size_t i = 0; i + 1 < ns; i++) try_bigram(e, (int32_t)i, (int32_t)i + 1);
    while (e->n_heap > 0) {
        tok_bigram bg = heap_pop(e);
        tok_sym *l = &e->sym[bg.left], *r = &e->sym[bg.right];
        /* lengths only grow, so an unchanged sum means neither side was merged */
        if (l->len == 0 || r->len == 0 || l->len + r->len != bg.size) continue;
        l->len += r->len;
        r->len = 0;
        l->next = r->next;
        if (r->next >= 0) e->sym[r->next].prev = (int32_t)bg.left;
        try_bigram(e, l->prev, (int32_t)bg.left);
        try_bigram(e, (int32_t)bg.left, l->next);
    }
    for (int32_t i = 0; i >= 0; i = e->sym[i].next)
        if (emit_symbol(e, &e->sym[i])) return -1;
    return 0;
}

/* Returns the text itself when it is valid UTF-8, else a malloc'd copy
 * (*copy) where each maximal ill-formed subpart is U+FFFD. */
static int sanitize(const uint8_t *text, size_t len, const uint8_t **out, size_t *out_len,
                    uint8_t **copy, g3_error *err) {
    size_t i = 0;
    int k;
    while (i < len && (k = g3_utf8_check(text + i, len - i)) > 0) i += (size_t)k;
    *out = text;
    *out_len = len;
    *copy = NULL;
    if (i == len) return 0;
    uint8_t *buf = malloc(3 * len); /* each bad byte at most 3 */
    if (!buf) return g3_fail(err, "out of memory copying %zu bytes of text", len);
    memcpy(buf, text, i);
    size_t m = i;
    while (i < len) {
        k = g3_utf8_check(text + i, len - i);
        if (k > 0) {
            memcpy(buf + m, text + i, (size_t)k);
            m += (size_t)k;
            i += (size_t)k;
        } else {
            memcpy(buf + m, k_replacement, 3);
            m += 3;
            i += k < 0 ? (size_t)-k : len - i; /* 0: a truncated character ends the text */
        }
    }
    *out = buf;
    *out_len = m;
    *copy = buf;
    return 0;
}

static int encode_text(enc *e, const uint8_t *s, size_t len, bool parse_special) {
    if (len == 0) return 0;
    size_t frag = 0, pos = 0;
    while (pos < len) {
        int32_t id = -1;
        size_t m = e->t->root[s[pos]] ? match_special(e->t, s + pos, len - pos, parse_special, &id) : 0;
        if (m > 0) {
            if (encode_fragment(e, s + frag, pos - frag) || push_id(e, id)) return -1;
            pos += m;
            frag = pos;
        } else {
            int k = g3_utf8_check(s + pos, len - pos); /* special texts start on a character */
            pos += k > 0 ? (size_t)k : 1;
        }
    }
    return encode_fragment(e, s + frag, len - frag);
}

int g3_tokenize(const g3_tokenizer *t, const char *text, size_t len, bool add_bos,
                bool parse_special, int32_t **ids, size_t *n_ids, g3_error *err) {
    if (!t || !ids || !n_ids || (!text && len)) return g3_fail(err, "g3_tokenize: NULL argument");
    *ids = NULL;
    *n_ids = 0;
    if (len > MAX_TEXT_BYTES)
        return g3_fail(err, "text of %zu bytes is too long to tokenize (limit %zu)", len, MAX_TEXT_BYTES);
    if (add_bos && t->bos < 0) return g3_fail(err, "add_bos: the vocabulary has no tokenizer.ggml.bos_token_id");
    enc e = {.t = t, .err = err};
    const uint8_t *s;
    uint8_t *copy;
    int rc = sanitize((const uint8_t *)text, len, &s, &len, &copy, err);
    if (rc == 0 && len > MAX_TEXT_BYTES) /* U+FFFD replacements can triple the size */
        rc = g3_fail(err, "text of %zu bytes (after U+FFFD replacement) is too long to tokenize", len);
    if (rc == 0 && !(e.ids = grow(NULL, &e.ids_cap, len / 3 + 16, sizeof *e.ids, err))) rc = -1;
    if (rc == 0 && add_bos) rc = push_id(&e, t->bos);
    if (rc == 0) rc = encode_text(&e, s, len, parse_special);
    free(copy);
    free(e.norm);
    free(e.sym);
    free(e.heap);
    if (rc) {
        free(e.ids);
        return -1;
    }
    *ids = e.ids;
    *n_ids = e.n_ids;
    return 0;
}
