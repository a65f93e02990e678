/* test_tokenizer.c: tokenizer and incremental detokenizer.
 *
 * Golden: every case of golden/tokenizer (tokenizer_cases, llama.cpp gemma-4
 * vectors, chat prompts) encodes to its ids exactly; decode cases give their
 * bytes and skip-special texts; the tiny models' prompts give their
 * tokens.json (library and `gemma-chat eval --prompt-file`).
 * Algorithm: a hand-made vocabulary checks merge order (score, then
 * leftmost), byte fallback, <unk>, and that control texts never come out of
 * BPE. Safety: user text cannot produce control tokens; invalid UTF-8 becomes
 * U+FFFD per maximal subpart, checked against an independent oracle built
 * from a plain UTF-8 encoder, over thousands of random inputs; the stream
 * never emits half a character. Bad files and ids fail with clear messages.
 * The CLI commands are run on a few cases.
 */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include <cjson/cJSON.h>
#include <math.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "gemma3_text.h"
#include "model/gguf_writer.h"
#include "test_util.h"

#define TOKDIR G3_GOLDEN_DIR "/tokenizer"
#define VOCAB TOKDIR "/gemma3-vocab.gguf"
#define TINY G3_GOLDEN_DIR "/tiny-gemma3"
#define TINY_F32 TINY "/models/g3-1b-s1234-f32.gguf"

static g3_tokenizer *g_tok; /* the real Gemma 3 vocabulary, loaded once */

/* ---- small helpers -------------------------------------------------------- */

typedef struct bytes {
    char *p;
    size_t n, cap;
} bytes;

static void bytes_add(bytes *b, const void *s, size_t n) {
    if (b->n + n + 1 > b->cap) {
        b->cap = (b->n + n + 1) * 2;
        b->p = realloc(b->p, b->cap);
        assert_non_null(b->p);
    }
    memcpy(b->p + b->n, s, n);
    b->n += n;
    b->p[b->n] = '\0';
}

static int32_t *tokenize(const g3_tokenizer *t, const char *s, size_t n, bool bos, bool special,
                         size_t *n_ids) {
    g3_error err = {{0}};
    int32_t *ids = NULL;
    if (g3_tokenize(t, s, n, bos, special, &ids, n_ids, &err)) fail_msg("g3_tokenize: %s", err.msg);
    assert_non_null(ids);
    return ids;
}

static bool ids_contain(const int32_t *ids, size_t n, int32_t id) {
    for (size_t i = 0; i < n; i++)
        if (ids[i] == id) return true;
    return false;
}

/* Compares ids with a JSON array; prints the first difference. */
static bool ids_equal(const char *what, const int32_t *ids, size_t n, const cJSON *want) {
    size_t wn = (size_t)cJSON_GetArraySize(want);
    for (size_t i = 0; i < n || i < wn; i++) {
        long long w = i < wn ? (long long)cJSON_GetArrayItem(want, (int)i)->valuedouble : -1;
        long long g = i < n ? ids[i] : -1;
        if (w != g) {
            print_message("%s: %zu ids, expected %zu; first difference at %zu: got %lld, expected %lld\n",
                          what, n, wn, i, g, w);
            return false;
        }
    }
    return true;
}

static void expect_contains(const char *msg, const char *sub) {
    if (!strstr(msg, sub)) fail_msg("expected a message containing \"%s\", got \"%s\"", sub, msg);
}

/* Decodes the JSON string value of "key" in a raw JSON line, keeping NUL
 * characters (cJSON's strings stop at the first \u0000). */
static void put_utf8(bytes *b, uint32_t cp);
static char *json_raw_string(const char *line, const char *key, size_t *len) {
    char pat[64];
    snprintf(pat, sizeof pat, "\"%s\": \"", key);
    const char *p = strstr(line, pat);
    if (!p) return NULL;
    p += strlen(pat);
    bytes b = {0};
    bytes_add(&b, "", 0);
    while (*p && *p != '"') {
        if (*p != '\\') {
            bytes_add(&b, p++, 1);
            continue;
        }
        p++;
        char c = *p++;
        static const char esc[] = "\"\\/bfnrt", map[] = "\"\\/\b\f\n\r\t";
        const char *simple = c ? strchr(esc, c) : NULL;
        if (simple) {
            bytes_add(&b, &map[simple - esc], 1);
            continue;
        }
        assert_int_equal(c, 'u');
        uint32_t cp = (uint32_t)strtoul((char[5]){p[0], p[1], p[2], p[3], 0}, NULL, 16);
        p += 4;
        if (cp >= 0xD800 && cp < 0xDC00 && p[0] == '\\' && p[1] == 'u') {
            uint32_t lo = (uint32_t)strtoul((char[5]){p[2], p[3], p[4], p[5], 0}, NULL, 16);
            cp = 0x10000 + ((cp - 0xD800) << 10) + (lo - 0xDC00);
            p += 6;
        }
        put_utf8(&b, cp);
    }
    *len = b.n;
    return b.p;
}

/* Calls fn for each line of a JSONL file; returns the line count. */
typedef void (*line_fn)(const char *raw, const cJSON *obj, void *ctx);
static int for_each_line(const char *path, line_fn fn, void *ctx) {
    size_t size;
    char *buf = (char *)tu_read_file(path, &size);
    if (!buf) fail_msg("cannot read %s", path);
    int count = 0;
    for (char *line = buf; *line;) {
        char *end = strchr(line, '\n');
        if (end) *end = '\0';
        if (*line) {
            cJSON *obj = cJSON_Parse(line);
            if (!obj) fail_msg("%s: line %d is not JSON", path, count + 1);
            fn(line, obj, ctx);
            cJSON_Delete(obj);
            count++;
        }
        if (!end) break;
        line = end + 1;
    }
    free(buf);
    return count;
}

/* ---- an independent UTF-8 oracle ----------------------------------------- */
/* Built from nothing but a plain encoder: a sequence is a complete character
 * if it is the encoding of a scalar value; a prefix is valid if it begins the
 * encoding of one. Replacement per maximal subpart follows from that. */

static void put_utf8(bytes *b, uint32_t cp) {
    uint8_t e[4];
    size_t n;
    if (cp < 0x80) { e[0] = (uint8_t)cp; n = 1; }
    else if (cp < 0x800) { e[0] = (uint8_t)(0xC0 | cp >> 6); e[1] = (uint8_t)(0x80 | (cp & 63)); n = 2; }
    else if (cp < 0x10000) {
        e[0] = (uint8_t)(0xE0 | cp >> 12); e[1] = (uint8_t)(0x80 | (cp >> 6 & 63));
        e[2] = (uint8_t)(0x80 | (cp & 63)); n = 3;
    } else {
        e[0] = (uint8_t)(0xF0 | cp >> 18); e[1] = (uint8_t)(0x80 | (cp >> 12 & 63));
        e[2] = (uint8_t)(0x80 | (cp >> 6 & 63)); e[3] = (uint8_t)(0x80 | (cp & 63)); n = 4;
    }
    bytes_add(b, e, n);
}

static uint8_t *g_prefix1, *g_prefix2, *g_prefix3; /* valid beginnings of 1, 2, 3 bytes */
static uint8_t *g_full2, *g_full3;                 /* complete characters */

static void oracle_init(void) {
    if (g_prefix1) return;
    g_prefix1 = calloc(256, 1);
    g_prefix2 = calloc(1 << 16, 1);
    g_prefix3 = calloc(1 << 24, 1);
    g_full2 = calloc(1 << 16, 1);
    g_full3 = calloc(1 << 24, 1);
    assert_true(g_prefix1 && g_prefix2 && g_prefix3 && g_full2 && g_full3);
    for (uint32_t cp = 0; cp <= 0x10FFFF; cp++) {
        if (cp >= 0xD800 && cp <= 0xDFFF) continue;
        bytes b = {0};
        put_utf8(&b, cp);
        const uint8_t *e = (const uint8_t *)b.p;
        g_prefix1[e[0]] = 1;
        if (b.n >= 2) g_prefix2[e[0] << 8 | e[1]] = 1;
        if (b.n >= 3) g_prefix3[e[0] << 16 | e[1] << 8 | e[2]] = 1;
        if (b.n == 2) g_full2[e[0] << 8 | e[1]] = 1;
        if (b.n == 3) g_full3[e[0] << 16 | e[1] << 8 | e[2]] = 1;
        free(b.p);
    }
}

/* Length of the complete character at s (1..4) or 0. */
static size_t oracle_char(const uint8_t *s, size_t n) {
    if (n >= 1 && s[0] < 0x80) return 1;
    if (n >= 2 && g_full2[s[0] << 8 | s[1]]) return 2;
    if (n >= 3 && g_full3[s[0] << 16 | s[1] << 8 | s[2]]) return 3;
    /* 4 bytes: valid 3-byte beginning of a 4-byte character plus a continuation */
    if (n >= 4 && s[0] >= 0xF0 && g_prefix3[s[0] << 16 | s[1] << 8 | s[2]] && (s[3] & 0xC0) == 0x80) return 4;
    return 0;
}

/* Longest valid beginning at s, at least 1 (the subpart U+FFFD replaces). */
static size_t oracle_subpart(const uint8_t *s, size_t n) {
    if (n >= 3 && g_prefix3[s[0] << 16 | s[1] << 8 | s[2]]) return 3;
    if (n >= 2 && g_prefix2[s[0] << 8 | s[1]]) return 2;
    return 1;
}

/* The text a correct decoder makes of these bytes (U+2581 as ' ' when asked). */
static bytes oracle_decode(const uint8_t *s, size_t n, bool mark_is_space) {
    oracle_init();
    bytes out = {0};
    bytes_add(&out, "", 0);
    for (size_t i = 0; i < n;) {
        size_t k = oracle_char(s + i, n - i);
        if (k) {
            if (mark_is_space && k == 3 && memcmp(s + i, "\xE2\x96\x81", 3) == 0) bytes_add(&out, " ", 1);
            else bytes_add(&out, s + i, k);
            i += k;
        } else {
            bytes_add(&out, "\xEF\xBF\xBD", 3);
            i += oracle_subpart(s + i, n - i);
        }
    }
    return out;
}

/* Repair only grows or keeps an ill-formed subpart's size and never gives
 * back the same bytes, so "unchanged by repair" means valid. */
static bool is_valid_utf8(const char *s, size_t n) {
    bytes d = oracle_decode((const uint8_t *)s, n, false);
    bool same = d.n == n && memcmp(d.p, s, n) == 0;
    free(d.p);
    return same;
}

/* Concatenated g3_token_to_bytes of a sequence. */
static bytes token_bytes(const g3_tokenizer *t, const int32_t *ids, size_t n, bool skip) {
    bytes b = {0};
    bytes_add(&b, "", 0);
    for (size_t i = 0; i < n; i++) {
        char buf[256];
        int k = g3_token_to_bytes(t, ids[i], skip, buf, sizeof buf);
        if (k < 0) fail_msg("g3_token_to_bytes(%d) failed", (int)ids[i]);
        bytes_add(&b, buf, (size_t)k);
    }
    return b;
}

/* Streams ids through the detokenizer; every chunk must be valid UTF-8. */
static bytes stream_decode(const g3_tokenizer *t, const int32_t *ids, size_t n, bool skip) {
    g3_detokenizer d;
    g3_detokenizer_init(&d, t, skip);
    bytes b = {0};
    bytes_add(&b, "", 0);
    char buf[64];
    for (size_t i = 0; i <= n; i++) {
        int k = i < n ? g3_detokenizer_push(&d, ids[i], buf, sizeof buf) : g3_detokenizer_flush(&d, buf, sizeof buf);
        if (k < 0) fail_msg("detokenizer failed at token %zu (id %d)", i, i < n ? (int)ids[i] : -1);
        assert_int_equal(buf[k], '\0');
        if (!is_valid_utf8(buf, (size_t)k)) fail_msg("chunk %zu is not whole UTF-8 characters", i);
        bytes_add(&b, buf, (size_t)k);
    }
    assert_int_equal(d.n_pending, 0);
    return b;
}

/* ---- golden encode cases -------------------------------------------------- */

typedef struct encode_run {
    const char *text_key;
    int pass, fail;
} encode_run;

static void encode_case(const char *raw, const cJSON *obj, void *ctx) {
    encode_run *run = ctx;
    size_t len;
    char *text = json_raw_string(raw, run->text_key, &len);
    assert_non_null(text);
    size_t n;
    int32_t *ids = tokenize(g_tok, text, len, false, true, &n);
    const cJSON *id = cJSON_GetObjectItem(obj, "id");
    char what[80];
    snprintf(what, sizeof what, "case %s (%.30s)", cJSON_IsString(id) ? id->valuestring : "?", text);
    if (ids_equal(what, ids, n, cJSON_GetObjectItem(obj, "ids"))) run->pass++;
    else run->fail++;
    /* the stream gives the text back (a literal U+2581 comes back as a space) */
    bytes back = stream_decode(g_tok, ids, n, false);
    bytes want = oracle_decode((const uint8_t *)text, len, true);
    if (back.n != want.n || memcmp(back.p, want.p, want.n) != 0) {
        print_message("%s: decode(encode(text)) differs\n", what);
        run->fail++;
    }
    free(back.p);
    free(want.p);
    free(ids);
    free(text);
}

static void test_tokenizer_cases(void **state) {
    encode_run run = {"text", 0, 0};
    int n = for_each_line(TOKDIR "/tokenizer_cases.jsonl", encode_case, &run);
    print_message("tokenizer_cases: %d/%d encode exactly\n", run.pass, n);
    assert_int_equal(n, 210);
    assert_int_equal(run.fail, 0);
    assert_int_equal(run.pass, 210);
}

static void test_llamacpp_vectors(void **state) {
    encode_run run = {"text", 0, 0};
    int n = for_each_line(TOKDIR "/llamacpp_gemma4_vectors.jsonl", encode_case, &run);
    print_message("llamacpp_gemma4_vectors: %d/%d encode exactly\n", run.pass, n);
    assert_int_equal(n, 46);
    assert_int_equal(run.fail, 0);
    assert_int_equal(run.pass, 46);
}

static void test_chat_cases(void **state) {
    encode_run run = {"prompt", 0, 0};
    int n = for_each_line(TOKDIR "/chat_cases.jsonl", encode_case, &run);
    print_message("chat_cases: %d/%d encode exactly\n", run.pass, n);
    assert_int_equal(n, 3);
    assert_int_equal(run.fail, 0);
    assert_int_equal(run.pass, 3);
}

/* ---- golden decode cases -------------------------------------------------- */

typedef struct decode_run {
    int n, bytes_ok, skip_checked, skip_ok, invalid;
} decode_run;

static void decode_case(const char *raw, const cJSON *obj, void *ctx) {
    decode_run *run = ctx;
    const cJSON *jids = cJSON_GetObjectItem(obj, "ids");
    size_t n = (size_t)cJSON_GetArraySize(jids);
    int32_t *ids = malloc(sizeof *ids * (n + 1));
    for (size_t i = 0; i < n; i++) ids[i] = (int32_t)cJSON_GetArrayItem(jids, (int)i)->valuedouble;
    const char *hex = cJSON_GetObjectItem(obj, "bytes_hex")->valuestring;
    bytes want = {0};
    bytes_add(&want, "", 0);
    for (size_t i = 0; hex[i] && hex[i + 1]; i += 2) {
        char b = (char)strtoul((char[3]){hex[i], hex[i + 1], 0}, NULL, 16);
        bytes_add(&want, &b, 1);
    }
    run->n++;
    bytes got = token_bytes(g_tok, ids, n, false);
    if (got.n == want.n && memcmp(got.p, want.p, got.n) == 0) run->bytes_ok++;
    else print_message("decode case %d: bytes differ (%s)\n", run->n, hex);
    /* the stream: the same bytes, with U+FFFD where they are not UTF-8 */
    bytes streamed = stream_decode(g_tok, ids, n, false);
    bytes expect = oracle_decode((const uint8_t *)want.p, want.n, false);
    if (streamed.n != expect.n || memcmp(streamed.p, expect.p, expect.n) != 0)
        fail_msg("decode case %d: stream differs from the oracle", run->n);
    if (is_valid_utf8(want.p, want.n)) {
        /* HF's skip_special text, both one token at a time and streamed */
        size_t len;
        char *skip_text = json_raw_string(raw, "text_skip_special", &len);
        bytes skipped = token_bytes(g_tok, ids, n, true);
        bytes skip_stream = stream_decode(g_tok, ids, n, true);
        run->skip_checked++;
        if (skipped.n == len && memcmp(skipped.p, skip_text, len) == 0 && skip_stream.n == len &&
            memcmp(skip_stream.p, skip_text, len) == 0)
            run->skip_ok++;
        else
            print_message("decode case %d: skip_special text differs: got '%s', expected '%s'\n", run->n,
                          skipped.p, skip_text);
        free(skip_text);
        free(skipped.p);
        free(skip_stream.p);
    } else {
        run->invalid++;
    }
    free(streamed.p);
    free(expect.p);
    free(got.p);
    free(want.p);
    free(ids);
}

static void test_decode_cases(void **state) {
    decode_run run = {0};
    int n = for_each_line(TOKDIR "/decode_cases.jsonl", decode_case, &run);
    print_message("decode_cases: %d/%d bytes exact, %d/%d skip_special texts exact (%d not UTF-8)\n",
                  run.bytes_ok, n, run.skip_ok, run.skip_checked, run.invalid);
    assert_int_equal(n, 49);
    assert_int_equal(run.bytes_ok, 49);
    assert_int_equal(run.skip_checked, 45);
    assert_int_equal(run.skip_ok, run.skip_checked);
}

/* The invalid-UTF-8 decode cases, with what Python's errors="replace" (the
 * Unicode maximal-subpart rule) makes of their bytes. */
static void test_decode_invalid_golden(void **state) {
    static const struct { int32_t ids[3]; size_t n; const char *text; } cases[] = {
        {{493}, 1, "\xEF\xBF\xBD"},
        {{466, 427, 9259}, 3, "\xEF\xBF\xBDHello"},
        {{366, 303, 433}, 3, "\xEF\xBF\xBD" "A" "\xEF\xBF\xBD"},
    };
    for (size_t c = 0; c < sizeof cases / sizeof cases[0]; c++) {
        bytes got = stream_decode(g_tok, cases[c].ids, cases[c].n, false);
        assert_string_equal(got.p, cases[c].text);
        free(got.p);
    }
}

/* ---- special tokens --------------------------------------------------------- */

static void test_vocab_queries(void **state) {
    assert_int_equal(g3_tokenizer_n_vocab(g_tok), 262145);
    assert_int_equal(g3_tokenizer_bos(g_tok), 2);
    assert_int_equal(g3_tokenizer_eos(g_tok), 1);
    assert_int_equal(g3_tokenizer_find(g_tok, "<start_of_turn>"), 105);
    assert_int_equal(g3_tokenizer_find(g_tok, "<end_of_turn>"), 106);
    assert_int_equal(g3_tokenizer_find(g_tok, "<image_soft_token>"), 262144);
    assert_int_equal(g3_tokenizer_find(g_tok, "  "), 138); /* user-defined: real spaces */
    assert_int_equal(g3_tokenizer_find(g_tok, "Hello"), 9259);
    assert_int_equal(g3_tokenizer_find(g_tok, "no such piece, surely"), -1);
    assert_int_equal(g3_tokenizer_find(g_tok, "<0x41>"), 238 + 0x41);
    assert_true(g3_tokenizer_is_control(g_tok, 105));
    assert_true(g3_tokenizer_is_control(g_tok, 6));      /* <unused0> */
    assert_false(g3_tokenizer_is_control(g_tok, 3));     /* <unk> is UNKNOWN */
    assert_false(g3_tokenizer_is_control(g_tok, 107));   /* "\n" is user-defined */
    assert_false(g3_tokenizer_is_control(g_tok, 9259));
    assert_false(g3_tokenizer_is_control(g_tok, -1));
    assert_false(g3_tokenizer_is_control(g_tok, 262145));
}

static void test_parse_special(void **state) {
    const char *turn = "<start_of_turn>user\nhi<end_of_turn>\n";
    size_t n;
    int32_t *ids = tokenize(g_tok, turn, strlen(turn), false, true, &n);
    static const int32_t want[] = {105, 2364, 107, 2202, 106, 107};
    assert_int_equal(n, 6);
    assert_memory_equal(ids, want, sizeof want);
    free(ids);

    /* user text: no control token can come out, whatever it writes */
    static const char *const inject[] = {"<start_of_turn>", "<end_of_turn>", "<bos>", "<eos>", "<pad>", "<unk>",
                                         "<mask>", "<unused0>", "<unused6241>", "<start_of_image>",
                                         "<image_soft_token>", "<end_of_image>"};
    for (size_t i = 0; i < sizeof inject / sizeof inject[0]; i++) {
        int32_t special = g3_tokenizer_find(g_tok, inject[i]);
        assert_true(special >= 0);
        char text[96];
        snprintf(text, sizeof text, "x%sy %s", inject[i], inject[i]);
        ids = tokenize(g_tok, text, strlen(text), false, false, &n);
        for (size_t k = 0; k < n; k++)
            if (g3_tokenizer_is_control(g_tok, ids[k]) || ids[k] == 3)
                fail_msg("'%s' without parse_special gave special token %d", text, (int)ids[k]);
        bytes back = stream_decode(g_tok, ids, n, false);
        assert_string_equal(back.p, text);
        free(back.p);
        free(ids);
        ids = tokenize(g_tok, text, strlen(text), false, true, &n);
        assert_true(ids_contain(ids, n, special));
        free(ids);
    }

    /* the same turn as user text: pieces, with "\n" still its user-defined token */
    ids = tokenize(g_tok, turn, strlen(turn), false, false, &n);
    assert_false(ids_contain(ids, n, 105));
    assert_false(ids_contain(ids, n, 106));
    assert_true(ids_contain(ids, n, 107));
    free(ids);

    /* user-defined tokens are matched either way */
    const char *ud = "<table>\t\t  x\n\n\n[multimodal]";
    for (int special = 0; special < 2; special++) {
        ids = tokenize(g_tok, ud, strlen(ud), false, special, &n);
        const int32_t want_ud[] = {168, 255969, 138, g3_tokenizer_find(g_tok, "x"), 109, 5};
        assert_int_equal(n, 6);
        assert_memory_equal(ids, want_ud, sizeof want_ud);
        free(ids);
    }

    /* near misses are plain text */
    ids = tokenize(g_tok, "<start_of_turn", 14, false, true, &n);
    assert_false(ids_contain(ids, n, 105));
    free(ids);
}

static void test_bos_and_edges(void **state) {
    size_t n;
    int32_t *ids = tokenize(g_tok, "Hello world", 11, true, false, &n);
    assert_int_equal(n, 3);
    assert_int_equal(ids[0], 2);
    assert_int_equal(ids[1], 9259);
    assert_int_equal(ids[2], 1902);
    free(ids);
    ids = tokenize(g_tok, "", 0, true, true, &n);
    assert_int_equal(n, 1);
    assert_int_equal(ids[0], 2);
    free(ids);
    ids = tokenize(g_tok, NULL, 0, false, true, &n);
    assert_int_equal(n, 0);
    free(ids);
    /* a NUL inside the text is a character like any other (byte fallback <0x00>) */
    ids = tokenize(g_tok, "a\0b", 3, false, false, &n);
    assert_int_equal(n, 3);
    assert_int_equal(ids[1], 238);
    free(ids);
    /* 40 spaces between words: greedy 31 then 9, and no U+2581 on the word */
    char sp[64];
    memset(sp, ' ', sizeof sp);
    memcpy(sp, "a", 1);
    memcpy(sp + 41, "b", 1);
    ids = tokenize(g_tok, sp, 42, false, false, &n);
    assert_int_equal(n, 4);
    assert_int_equal(ids[1], 167);
    assert_int_equal(ids[2], 145);
    free(ids);
    g3_error err;
    int32_t *none = NULL;
    assert_int_equal(g3_tokenize(g_tok, NULL, 5, false, false, &none, &n, &err), -1);
    assert_int_equal(g3_tokenize(NULL, "x", 1, false, false, &none, &n, &err), -1);
}

/* ---- invalid UTF-8 input ------------------------------------------------------ */

static void expect_same_ids(const char *bad, size_t bad_len, const char *good) {
    size_t n1, n2;
    int32_t *a = tokenize(g_tok, bad, bad_len, false, true, &n1);
    int32_t *b = tokenize(g_tok, good, strlen(good), false, true, &n2);
    if (n1 != n2 || memcmp(a, b, n1 * sizeof *a) != 0) fail_msg("invalid input not encoded as '%s'", good);
    free(a);
    free(b);
}

static void test_invalid_utf8_input(void **state) {
#define FFFD "\xEF\xBF\xBD"
    expect_same_ids("\xFF", 1, FFFD);
    expect_same_ids("a\xE2\x82" "b", 4, "a" FFFD "b");          /* truncated: one U+FFFD */
    expect_same_ids("x\xE2\x82", 3, "x" FFFD);                  /* truncated at the end */
    expect_same_ids("\xC0\x80", 2, FFFD FFFD);                  /* overlong NUL */
    expect_same_ids("\xED\xA0\x80", 3, FFFD FFFD FFFD);         /* surrogate */
    expect_same_ids("\xF4\x90\x80\x80", 4, FFFD FFFD FFFD FFFD); /* > U+10FFFF */
    expect_same_ids("\x80\x41\xC3", 3, FFFD "A" FFFD);
    expect_same_ids("<start_of_turn\xFF>", 16, "<start_of_turn" FFFD ">");
#undef FFFD
}

/* Random byte soup mixed with special texts and real characters: the ids
 * decode back to the oracle's repair of the input, and never crash. */
static void test_fuzz_roundtrip(void **state) {
    static const char *const parts[] = {"<start_of_turn>", "<end_of_turn>", "<bos>", "\n\n", "  ", " ", "\t",
                                        "<b>", "</s>", "Hello", " world", "你好", "👩‍👩‍👧", "\xE2\x96\x81",
                                        "\r\n", "<unused12>", "<0x41>", "\xF0\x9F", "\xE4", "\x80", "\0"};
    uint64_t rng = 0x9E3779B97F4A7C15ull;
    for (int iter = 0; iter < 3000; iter++) {
        bytes s = {0};
        bytes_add(&s, "", 0);
        int n_parts = (int)((tu_randf(&rng) + 1) * 10);
        for (int k = 0; k < n_parts; k++) {
            float r = tu_randf(&rng);
            if (r < 0) {
                size_t i = (size_t)((r + 1) * (sizeof parts / sizeof parts[0]));
                bytes_add(&s, parts[i], i == sizeof parts / sizeof parts[0] - 1 ? 1 : strlen(parts[i]));
            } else {
                char c = (char)(uint8_t)(tu_randf(&rng) * 128 + 128);
                if (r < 0.5f) c = (char)('a' + (int)(r * 50));
                bytes_add(&s, &c, 1);
            }
        }
        bool special = iter & 1;
        size_t n;
        int32_t *ids = tokenize(g_tok, s.p, s.n, false, special, &n);
        for (size_t i = 0; i < n; i++) assert_true(ids[i] >= 0 && ids[i] < 262145);
        if (!special)
            for (size_t i = 0; i < n; i++)
                if (g3_tokenizer_is_control(g_tok, ids[i])) fail_msg("control token from user text");
        bytes back = stream_decode(g_tok, ids, n, false);
        bytes want = oracle_decode((const uint8_t *)s.p, s.n, true);
        if (back.n != want.n || memcmp(back.p, want.p, want.n) != 0) fail_msg("fuzz case %d: round trip differs", iter);
        free(back.p);
        free(want.p);
        free(ids);
        free(s.p);
    }
}

/* ---- incremental detokenizer ---------------------------------------------- */

static void test_stream_never_splits(void **state) {
    const char *text = "emoji 👩‍👩‍👧‍👦 🇯🇵 👍🏽 1️⃣ CJK 你好世界 漢字 hieroglyph 𓀀𓀁 "
                       "plane15 \xF3\xB0\x80\x80 NBSP\xC2\xA0 ok";
    size_t n;
    int32_t *ids = tokenize(g_tok, text, strlen(text), false, false, &n);
    bytes streamed = stream_decode(g_tok, ids, n, false); /* checks each chunk */
    assert_string_equal(streamed.p, text);
    free(streamed.p);
    free(ids);

    /* 𓀀 = F0 93 80 80 through byte tokens: nothing until the last byte */
    g3_detokenizer d;
    g3_detokenizer_init(&d, g_tok, false);
    char out[64];
    static const uint8_t hiero[] = {0xF0, 0x93, 0x80, 0x80};
    for (int i = 0; i < 4; i++) {
        int k = g3_detokenizer_push(&d, 238 + hiero[i], out, sizeof out);
        assert_int_equal(k, i < 3 ? 0 : 4);
    }
    assert_memory_equal(out, hiero, 4);

    /* dangling partial character: one U+FFFD at flush, then a clean stream */
    assert_int_equal(g3_detokenizer_push(&d, 238 + 0xE4, out, sizeof out), 0);
    assert_int_equal(g3_detokenizer_push(&d, 238 + 0xBD, out, sizeof out), 0);
    assert_int_equal(g3_detokenizer_flush(&d, out, sizeof out), 3);
    assert_string_equal(out, "\xEF\xBF\xBD");
    assert_int_equal(g3_detokenizer_flush(&d, out, sizeof out), 0);
    assert_int_equal(g3_detokenizer_push(&d, 9259, out, sizeof out), 5);
    assert_string_equal(out, "Hello");

    /* a partial character broken by a control token's text */
    assert_int_equal(g3_detokenizer_push(&d, 238 + 0xE4, out, sizeof out), 0);
    assert_int_equal(g3_detokenizer_push(&d, 106, out, sizeof out), 16);
    assert_string_equal(out, "\xEF\xBF\xBD<end_of_turn>");
    /* ... while a skipped one leaves it pending */
    g3_detokenizer_init(&d, g_tok, true);
    assert_int_equal(g3_detokenizer_push(&d, 238 + 0xE4, out, sizeof out), 0);
    assert_int_equal(g3_detokenizer_push(&d, 106, out, sizeof out), 0);
    assert_int_equal(g3_detokenizer_push(&d, 238 + 0xBD, out, sizeof out), 0);
    assert_int_equal(g3_detokenizer_push(&d, 238 + 0xA0, out, sizeof out), 3);
    assert_string_equal(out, "你");
}

static void test_stream_limits(void **state) {
    g3_detokenizer d;
    g3_detokenizer_init(&d, g_tok, false);
    char out[64];
    assert_int_equal(g3_detokenizer_push(&d, -1, out, sizeof out), -1);
    assert_int_equal(g3_detokenizer_push(&d, 262145, out, sizeof out), -1);
    assert_int_equal(g3_detokenizer_push(&d, 9259, NULL, 0), -1);
    /* the longest piece (48 bytes) fits in 64; in 8 it fails and changes nothing */
    assert_int_equal(g3_detokenizer_push(&d, 238 + 0xE4, out, sizeof out), 0);
    assert_int_equal(g3_detokenizer_push(&d, 80645, out, 8), -1);
    assert_int_equal(d.n_pending, 1);
    assert_int_equal(g3_detokenizer_push(&d, 238 + 0xBD, out, sizeof out), 0);
    assert_int_equal(g3_detokenizer_push(&d, 238 + 0xA0, out, sizeof out), 3);
    assert_int_equal(g3_detokenizer_push(&d, 80645, out, sizeof out), 46); /* U+2581 -> ' ' */
    assert_int_equal(out[0], ' ');

    char buf[8];
    assert_int_equal(g3_token_to_bytes(g_tok, 262145, false, buf, sizeof buf), -1);
    assert_int_equal(g3_token_to_bytes(g_tok, -5, false, buf, sizeof buf), -1);
    assert_int_equal(g3_token_to_bytes(g_tok, 80645, false, buf, sizeof buf), -1); /* too small */
    assert_int_equal(g3_token_to_bytes(g_tok, 105, true, buf, sizeof buf), 0);
    assert_int_equal(g3_token_to_bytes(g_tok, 6, true, buf, 0), -1);              /* <unused0> is kept */
    assert_int_equal(g3_token_to_bytes(g_tok, 238, false, buf, sizeof buf), 1);
    assert_int_equal(buf[0], 0);
}

/* Random id sequences, heavy on byte tokens: every chunk whole characters,
 * the total equal to the oracle's decoding of the concatenated bytes. */
static void test_stream_fuzz(void **state) {
    uint64_t rng = 12345;
    static const int32_t extra[] = {9259, 105, 106, 2, 1, 107, 138, 80645, 237871, 236743, 6, 4};
    for (int iter = 0; iter < 2000; iter++) {
        int32_t ids[24];
        size_t n = (size_t)((tu_randf(&rng) + 1) * 12);
        for (size_t i = 0; i < n; i++) {
            float r = tu_randf(&rng);
            ids[i] = r < 0.5f ? 238 + (int32_t)((tu_randf(&rng) + 1) * 128) % 256
                              : extra[(int)((tu_randf(&rng) + 1) * 6) % 12];
        }
        for (int skip = 0; skip < 2; skip++) {
            bytes raw = token_bytes(g_tok, ids, n, skip);
            bytes want = oracle_decode((const uint8_t *)raw.p, raw.n, false);
            bytes got = stream_decode(g_tok, ids, n, skip);
            if (got.n != want.n || memcmp(got.p, want.p, want.n) != 0) fail_msg("stream fuzz %d differs", iter);
            free(raw.p);
            free(want.p);
            free(got.p);
        }
    }
}

/* ---- the tiny golden models' own vocabulary ---------------------------------- */

static void check_prompt(const g3_tokenizer *t, const char *name) {
    char path[512];
    snprintf(path, sizeof path, TINY "/prompts/%s.txt", name);
    size_t len;
    char *text = (char *)tu_read_file(path, &len);
    assert_non_null(text);
    snprintf(path, sizeof path, TINY "/text/g3-1b-s1234-f32/%s.tokens.json", name);
    char *json = (char *)tu_read_file(path, NULL);
    assert_non_null(json);
    int64_t *want;
    long wn = tu_parse_int_array(json, &want);
    assert_true(wn > 0);
    size_t n;
    int32_t *ids = tokenize(t, text, len, true, true, &n);
    if ((long)n != wn) fail_msg("%s: %zu tokens, expected %ld", name, n, wn);
    for (size_t i = 0; i < n; i++)
        if (ids[i] != want[i]) fail_msg("%s: token %zu is %d, expected %lld", name, i, (int)ids[i], (long long)want[i]);
    free(ids);
    free(want);
    free(json);
    free(text);
}

static void test_tiny_vocab_prompts(void **state) {
    g3_error err;
    g3_tokenizer *t;
    if (g3_tokenizer_load(TINY_F32, &t, &err)) fail_msg("%s", err.msg);
    assert_int_equal(g3_tokenizer_n_vocab(t), 796);
    static const char *const names[] = {"fox", "chat", "long"};
    for (int i = 0; i < 3; i++) check_prompt(t, names[i]);
    /* the vision layout's text after the image */
    const char *tail = "What is in this image?<end_of_turn>\n<start_of_turn>model\n";
    static const int32_t want[] = {310, 276, 271, 270, 357, 356, 384, 721, 334, 6, 267, 5, 282, 272, 278, 269, 279, 267};
    size_t n;
    int32_t *ids = tokenize(t, tail, strlen(tail), false, true, &n);
    assert_int_equal(n, sizeof want / sizeof want[0]);
    assert_memory_equal(ids, want, sizeof want);
    free(ids);
    g3_tokenizer_free(t);

    /* the same through a loaded model */
    g3_model *model;
    if (g3_model_load(TINY_F32, &model, &err)) fail_msg("%s", err.msg);
    if (g3_tokenizer_from_model(model, &t, &err)) fail_msg("%s", err.msg);
    check_prompt(t, "chat");
    g3_tokenizer_free(t);
    g3_model_free(model);
}

/* ---- a hand-made vocabulary: the algorithm itself -------------------------- */

enum { T_N = 1, T_UNK = 2, T_CTL = 3, T_UD = 4, T_BYTE = 6 };

typedef struct mini {
    const char *model;  /* tokenizer.ggml.model, NULL = no tokenizer keys at all */
    int scores_delta;   /* entries more/less than tokens */
    int types_delta;
    int bad_type;       /* a token type value to put on token 4, 0 = none */
    uint32_t bos;
    bool space_prefix;
    bool bad_byte_text;
    bool nan_score;
    bool scores_as_int;
    bool no_unk;
} mini;

static const char *const k_mini_tokens[] = {"<pad>", "<eos>", "<bos>", "<unk>", "a", "b", "c", "ab", "bc",
                                            "ca", "<ctl>", "\n", "<0x41>", "x", "y", "xy", "\u2581a"};
static const float k_mini_scores[] = {0, 0, 0, 0, -10, -10, -10, -2, -1, -2, 0, 0, 0, -10, -10, 5, -3};
static const int32_t k_mini_types[] = {T_CTL, T_CTL, T_CTL, T_UNK, T_N, T_N, T_N, T_N, T_N,
                                       T_N, T_CTL, T_UD, T_BYTE, T_N, T_N, T_CTL, T_N};
#define MINI_N (sizeof k_mini_tokens / sizeof k_mini_tokens[0])

static void write_mini(const char *path, const mini *m) {
    g3_error err;
    g3_gguf_writer *w = g3_gguf_writer_open(path, &err);
    if (!w) fail_msg("%s", err.msg);
    int rc = g3_gguf_writer_kv_str(w, "general.architecture", "gemma3", &err);
    if (m->model) {
        const char *tokens[MINI_N];
        float scores[MINI_N + 1];
        int32_t types[MINI_N + 1];
        memcpy(tokens, k_mini_tokens, sizeof tokens);
        memcpy(scores, k_mini_scores, sizeof k_mini_scores);
        memcpy(types, k_mini_types, sizeof k_mini_types);
        scores[MINI_N] = 0;
        types[MINI_N] = T_N;
        if (m->bad_type) types[4] = m->bad_type;
        if (m->bad_byte_text) tokens[12] = "<0xZZ>";
        if (m->nan_score) scores[5] = NAN;
        if (m->no_unk) types[3] = T_CTL;
        rc = rc || g3_gguf_writer_kv_str(w, "tokenizer.ggml.model", m->model, &err) ||
             g3_gguf_writer_kv_arr_str(w, "tokenizer.ggml.tokens", tokens, MINI_N, &err) ||
             (m->scores_as_int
                  ? g3_gguf_writer_kv_arr(w, "tokenizer.ggml.scores", G3_GGUF_INT32, types, MINI_N, &err)
                  : g3_gguf_writer_kv_arr(w, "tokenizer.ggml.scores", G3_GGUF_FLOAT32, scores,
                                          (uint64_t)((int)MINI_N + m->scores_delta), &err)) ||
             g3_gguf_writer_kv_arr(w, "tokenizer.ggml.token_type", G3_GGUF_INT32, types,
                                   (uint64_t)((int)MINI_N + m->types_delta), &err) ||
             g3_gguf_writer_kv_u32(w, "tokenizer.ggml.bos_token_id", m->bos ? m->bos : 2, &err) ||
             g3_gguf_writer_kv_u32(w, "tokenizer.ggml.eos_token_id", 1, &err) ||
             (m->no_unk ? 0 : g3_gguf_writer_kv_u32(w, "tokenizer.ggml.unknown_token_id", 3, &err)) ||
             g3_gguf_writer_kv_bool(w, "tokenizer.ggml.add_space_prefix", m->space_prefix, &err);
    }
    rc = rc || g3_gguf_writer_begin_data(w, &err);
    if (rc) {
        g3_gguf_writer_abort(w);
        fail_msg("%s", err.msg);
    }
    if (g3_gguf_writer_close(w, &err)) fail_msg("%s", err.msg);
}

static g3_tokenizer *load_mini(const mini *m, const char *name) {
    char path[512];
    snprintf(path, sizeof path, "%s/%s.gguf", G3_TEST_TMP, name);
    write_mini(path, m);
    g3_error err;
    g3_tokenizer *t;
    if (g3_tokenizer_load(path, &t, &err)) fail_msg("%s", err.msg);
    return t;
}

static void expect_encoding(const g3_tokenizer *t, const char *text, bool special, const int32_t *want, size_t wn) {
    size_t n;
    int32_t *ids = tokenize(t, text, strlen(text), false, special, &n);
    bool same = n == wn && memcmp(ids, want, n * sizeof *ids) == 0;
    if (!same) {
        char got[256] = "";
        for (size_t i = 0; i < n && strlen(got) < 200; i++) snprintf(got + strlen(got), 16, "%d ", (int)ids[i]);
        fail_msg("'%s' encoded as [%s]", text, got);
    }
    free(ids);
}
#define EXPECT_ENC(t, text, special, ...)                                                  \
    do {                                                                                   \
        static const int32_t w_[] = {__VA_ARGS__};                                         \
        expect_encoding(t, text, special, w_, sizeof w_ / sizeof w_[0]);                   \
    } while (0)

static void test_merge_rules(void **state) {
    mini m = {.model = "llama"};
    g3_tokenizer *t = load_mini(&m, "mini");
    EXPECT_ENC(t, "abc", false, 4, 8);          /* bc (-1) beats ab (-2) */
    EXPECT_ENC(t, "cab", false, 9, 5);          /* ca and ab tie at -2: leftmost wins */
    EXPECT_ENC(t, "A", false, 12);              /* byte fallback */
    EXPECT_ENC(t, "Z", false, 3);               /* no <0x5A>: <unk> */
    EXPECT_ENC(t, "xy", false, 13, 14);         /* a control text is never a merge result */
    EXPECT_ENC(t, "xy", true, 15);              /* ... but is matched with parse_special */
    EXPECT_ENC(t, "a<ctl>b", true, 4, 10, 5);
    EXPECT_ENC(t, "a\nb", false, 4, 11, 5);     /* user-defined: always */
    EXPECT_ENC(t, " a", false, 16);             /* ' ' is U+2581 */
    EXPECT_ENC(t, "ab\xE2\x96\x81" "a", false, 7, 16);
    char out[64];
    assert_int_equal(g3_token_to_bytes(t, 16, false, out, sizeof out), 2);
    assert_memory_equal(out, " a", 2);
    assert_int_equal(g3_token_to_bytes(t, 12, false, out, sizeof out), 1);
    assert_int_equal(out[0], 'A');
    assert_int_equal(g3_token_to_bytes(t, 10, true, out, sizeof out), 0);  /* control: skipped */
    assert_int_equal(g3_token_to_bytes(t, 10, false, out, sizeof out), 5);
    g3_tokenizer_free(t);

    /* without <unk>, a byte with no token is an error, not a crash */
    m.no_unk = true;
    t = load_mini(&m, "mini_nounk");
    size_t n;
    int32_t *ids = NULL;
    g3_error err;
    assert_int_equal(g3_tokenize(t, "aZ", 2, false, false, &ids, &n, &err), -1);
    expect_contains(err.msg, "0x5A");
    g3_tokenizer_free(t);
}

/* ---- bad files ------------------------------------------------------------- */

static void expect_load_fails(const mini *m, const char *name, const char *sub1, const char *sub2) {
    char path[512];
    snprintf(path, sizeof path, "%s/%s.gguf", G3_TEST_TMP, name);
    write_mini(path, m);
    g3_error err = {{0}};
    g3_tokenizer *t = (g3_tokenizer *)(uintptr_t)1; /* must be reset to NULL */
    if (g3_tokenizer_load(path, &t, &err) == 0) fail_msg("%s: loaded, expected a failure", name);
    assert_null(t);
    expect_contains(err.msg, sub1);
    if (sub2) expect_contains(err.msg, sub2);
    print_message("  %s: %s\n", name, err.msg);
}

static void test_bad_files(void **state) {
    expect_load_fails(&(mini){0}, "no_tokenizer", "tokenizer.ggml.model", "no tokenizer");
    expect_load_fails(&(mini){.model = "gpt2"}, "gpt2", "'gpt2'", "only 'llama'");
    expect_load_fails(&(mini){.model = "llama", .scores_delta = -1}, "short_scores", "tokenizer.ggml.scores has 16",
                      "tokens has 17");
    expect_load_fails(&(mini){.model = "llama", .types_delta = 1}, "long_types", "tokenizer.ggml.token_type has 18",
                      NULL);
    expect_load_fails(&(mini){.model = "llama", .bad_type = 9}, "bad_type", "token_type[4] = 9", NULL);
    expect_load_fails(&(mini){.model = "llama", .bos = 1000}, "bad_bos", "bos_token_id = 1000", "outside");
    expect_load_fails(&(mini){.model = "llama", .bad_byte_text = true}, "bad_byte", "<0xZZ>", "<0xNN>");
    expect_load_fails(&(mini){.model = "llama", .space_prefix = true}, "space_prefix", "add_space_prefix", NULL);
    expect_load_fails(&(mini){.model = "llama", .nan_score = true}, "nan_score", "scores[5] is NaN", NULL);
    expect_load_fails(&(mini){.model = "llama", .scores_as_int = true}, "int_scores", "tokenizer.ggml.scores", NULL);
    g3_error err;
    g3_tokenizer *t;
    assert_int_equal(g3_tokenizer_load(G3_TEST_TMP "/does-not-exist.gguf", &t, &err), -1);
    expect_contains(err.msg, "does-not-exist.gguf");
    assert_int_equal(g3_tokenizer_from_model(NULL, &t, &err), -1);
    g3_tokenizer_free(NULL);
}

/* ---- the commands ---------------------------------------------------------- */

static char *run_cmd(const char *cmd, int *status) {
    char *out = tu_run(cmd, status);
    if (!out) fail_msg("cannot run %s", cmd);
    return out;
}

typedef struct cli_run {
    int line, tried, pass;
} cli_run;

/* Every 20th golden case, and those with a NUL, through the binary. */
static void cli_case(const char *raw, const cJSON *obj, void *ctx) {
    cli_run *run = ctx;
    if (run->line++ % 20 != 0 && !strstr(raw, "\\u0000")) return;
    size_t len;
    char *text = json_raw_string(raw, "text", &len);
    assert_int_equal(tu_write_file(G3_TEST_TMP "/cli_case.txt", text, len), 0);
    int st;
    char *out = run_cmd(G3_BINARY " tokenize -m " VOCAB " --no-bos --special --verbose --file " G3_TEST_TMP
                                  "/cli_case.txt 2>" G3_TEST_TMP "/cli_case.err", &st);
    char *timings = (char *)tu_read_file(G3_TEST_TMP "/cli_case.err", NULL);
    assert_non_null(timings);
    expect_contains(timings, "loaded in");
    expect_contains(timings, "tokens in");
    free(timings);
    int64_t *got;
    long n = tu_parse_int_array(out, &got);
    const cJSON *want = cJSON_GetObjectItem(obj, "ids");
    bool same = st == 0 && n == cJSON_GetArraySize(want);
    for (long i = 0; same && i < n; i++) same = got[i] == (int64_t)cJSON_GetArrayItem(want, (int)i)->valuedouble;
    run->tried++;
    run->pass += same;
    if (!same) print_message("tokenize --file: case %d differs\n", run->line - 1);
    if (n >= 0) free(got);
    free(out);
    free(text);
}

static void test_cli(void **state) {
    int st;
    char *out = run_cmd(G3_BINARY " tokenize -m " VOCAB " --text 'Hello world'", &st);
    assert_int_equal(st, 0);
    assert_string_equal(out, "[2, 9259, 1902]\n");
    free(out);
    out = run_cmd(G3_BINARY " tokenize -m " VOCAB " --no-bos --text '<start_of_turn>user'", &st);
    assert_int_equal(st, 0);
    assert_null(strstr(out, "105"));
    free(out);
    out = run_cmd(G3_BINARY " tokenize -m " VOCAB " --no-bos --special --text '<start_of_turn>user'", &st);
    assert_string_equal(out, "[105, 2364]\n");
    free(out);

    /* golden cases through --file (NUL and control bytes included) */
    cli_run run = {0};
    for_each_line(TOKDIR "/tokenizer_cases.jsonl", cli_case, &run);
    print_message("tokenize command: %d/%d golden cases exact\n", run.pass, run.tried);
    assert_int_equal(run.tried, 13);
    assert_int_equal(run.pass, run.tried);

    out = run_cmd(G3_BINARY " detokenize -m " VOCAB " --ids 2,9259,1902,106", &st);
    assert_int_equal(st, 0);
    assert_string_equal(out, "<bos>Hello world<end_of_turn>");
    free(out);
    out = run_cmd(G3_BINARY " detokenize -m " VOCAB " --ids 2,9259,1902,106,6 --skip-special", &st);
    assert_string_equal(out, "Hello world<unused0>");
    free(out);
    out = run_cmd(G3_BINARY " detokenize -m " VOCAB " --ids 466,427", &st);
    assert_string_equal(out, "\xEF\xBF\xBD");
    free(out);
    out = run_cmd(G3_BINARY " detokenize -m " VOCAB " --ids 9259,262145 2>&1", &st);
    assert_int_not_equal(st, 0);
    expect_contains(out, "token id 262145 is outside the vocabulary (262145 tokens)");
    free(out);
    out = run_cmd(G3_BINARY " tokenize -m " TINY "/prompts/fox.txt --text x 2>&1", &st);
    assert_int_not_equal(st, 0);
    expect_contains(out, "fox.txt");
    free(out);
    out = run_cmd(G3_BINARY " tokenize -m " VOCAB " 2>&1", &st);
    assert_int_equal(st, 2);
    expect_contains(out, "--text, --file");
    free(out);
}

/* eval --prompt-file must feed exactly tokens.json: the logits files match. */
static void test_eval_prompt_file(void **state) {
    static const char *const names[] = {"fox", "chat"};
    for (int i = 0; i < 2; i++) {
        char cmd[2048];
        int st;
        snprintf(cmd, sizeof cmd,
                 G3_BINARY " eval -m " TINY_F32 " --prompt-file " TINY "/prompts/%s.txt --logits " G3_TEST_TMP
                           "/pf_a.f32 2>&1 && " G3_BINARY " eval -m " TINY_F32 " --tokens-file " TINY
                           "/text/g3-1b-s1234-f32/%s.tokens.json --logits " G3_TEST_TMP "/pf_b.f32 2>&1",
                 names[i], names[i]);
        char *out = run_cmd(cmd, &st);
        if (st != 0) fail_msg("%s", out);
        free(out);
        size_t na, nb;
        uint8_t *a = tu_read_file(G3_TEST_TMP "/pf_a.f32", &na);
        uint8_t *b = tu_read_file(G3_TEST_TMP "/pf_b.f32", &nb);
        assert_non_null(a);
        assert_non_null(b);
        assert_int_equal(na, nb);
        assert_int_equal(na % (796 * 4), 0);
        assert_memory_equal(a, b, na);
        free(a);
        free(b);
    }
}

static int setup(void **state) {
    g3_error err;
    if (g3_tokenizer_load(VOCAB, &g_tok, &err)) {
        fprintf(stderr, "loading %s: %s\n", VOCAB, err.msg);
        return -1;
    }
    return 0;
}

static int teardown(void **state) {
    g3_tokenizer_free(g_tok);
    free(g_prefix1);
    free(g_prefix2);
    free(g_prefix3);
    free(g_full2);
    free(g_full3);
    return 0;
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_vocab_queries),
        cmocka_unit_test(test_tokenizer_cases),
        cmocka_unit_test(test_llamacpp_vectors),
        cmocka_unit_test(test_chat_cases),
        cmocka_unit_test(test_decode_cases),
        cmocka_unit_test(test_decode_invalid_golden),
        cmocka_unit_test(test_parse_special),
        cmocka_unit_test(test_bos_and_edges),
        cmocka_unit_test(test_invalid_utf8_input),
        cmocka_unit_test(test_fuzz_roundtrip),
        cmocka_unit_test(test_stream_never_splits),
        cmocka_unit_test(test_stream_limits),
        cmocka_unit_test(test_stream_fuzz),
        cmocka_unit_test(test_tiny_vocab_prompts),
        cmocka_unit_test(test_merge_rules),
        cmocka_unit_test(test_bad_files),
        cmocka_unit_test(test_cli),
        cmocka_unit_test(test_eval_prompt_file),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
