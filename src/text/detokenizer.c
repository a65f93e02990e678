/* detokenizer.c: token ids -> bytes, and the incremental UTF-8-safe stream.
 *
 * A token stands for bytes (llama.cpp's token_to_piece for SPM): a BYTE
 * token <0xNN> for that byte, a NORMAL piece for its text with U+2581 turned
 * back into ' ', control / unknown / user-defined tokens for their text as
 * stored. skip_special drops the tokens HF marks special (<bos>, <eos>,
 * <pad>, <unk>, <start_of_turn>, <end_of_turn>, image markers) and keeps
 * <mask> and <unusedN> (see kept_by_skip_special in tokenizer.c).
 *
 * The stream decoder holds back the bytes of a character that is not
 * complete yet, so a caller printing each push never shows half a
 * character. Ill-formed input comes out as U+FFFD, one per maximal ill-formed
 * subpart (Unicode's recommended practice; Python's errors="replace" and the
 * WHATWG decoder do the same).
 */
#include <limits.h>
#include <string.h>

#include "base/error.h"
#include "text/tokenizer_internal.h"

static const uint8_t k_replacement[3] = {0xEF, 0xBF, 0xBD}; /* U+FFFD */

/* ---- bytes of one token -------------------------------------------------- */

typedef void (*byte_sink)(void *ctx, uint8_t b);

static bool valid_id(const g3_tokenizer *t, int32_t id) {
    return t && id >= 0 && (uint32_t)id < t->n_vocab;
}

static int hex_value(char c) {
    return c <= '9' ? c - '0' : (c | 0x20) - 'a' + 10; /* validated at load */
}

/* Feeds the bytes token id stands for to sink. */
static void token_bytes(const g3_tokenizer *t, int32_t id, bool skip_special, byte_sink sink, void *ctx) {
    const g3_str *p = &t->pieces[id];
    const uint8_t *s = (const uint8_t *)p->ptr;
    uint8_t type = t->types[id];
    if (skip_special && (t->flags[id] & G3_TOKF_SKIP)) return;
    if (type == G3_TOK_BYTE) {
        sink(ctx, (uint8_t)(hex_value(p->ptr[3]) * 16 + hex_value(p->ptr[4])));
        return;
    }
    bool unescape = type != G3_TOK_CONTROL && type != G3_TOK_UNKNOWN && type != G3_TOK_USER_DEFINED;
    for (uint64_t i = 0; i < p->len; i++) {
        if (unescape && i + 2 < p->len && s[i] == 0xE2 && s[i + 1] == 0x96 && s[i + 2] == 0x81) {
            sink(ctx, ' ');
            i += 2;
        } else {
            sink(ctx, s[i]);
        }
    }
}

/* An output buffer that remembers it ran out of room. */
typedef struct out_buf {
    char *p;
    size_t room, n; /* room: bytes usable (the NUL, if any, not counted) */
    bool overflow;
} out_buf;

static void out_put(out_buf *o, const void *s, size_t k) {
    if (o->overflow || k > o->room - o->n) {
        o->overflow = true;
        return;
    }
    memcpy(o->p + o->n, s, k);
    o->n += k;
}

static void sink_raw(void *ctx, uint8_t b) { out_put(ctx, &b, 1); }

int g3_token_to_bytes(const g3_tokenizer *t, int32_t id, bool skip_special, char *buf, size_t cap) {
    if (!valid_id(t, id) || (!buf && cap)) return -1;
    out_buf o = {buf, cap, 0, false};
    token_bytes(t, id, skip_special, sink_raw, &o);
    return o.overflow || o.n > INT_MAX ? -1 : (int)o.n;
}

/* ---- incremental detokenizer --------------------------------------------- */

typedef struct stream {
    g3_detokenizer *d;
    out_buf *out;
} stream;

/* One byte into the UTF-8 decoder: complete characters go out, a valid
 * beginning waits in d->pending, an ill-formed subpart becomes U+FFFD. */
static void sink_utf8(void *ctx, uint8_t b) {
    stream *st = ctx;
    g3_detokenizer *d = st->d;
    for (;;) {
        if (d->n_pending == 0 && b < 0x80) {
            out_put(st->out, &b, 1);
            return;
        }
        d->pending[d->n_pending++] = b;
        int r = g3_utf8_check(d->pending, d->n_pending);
        if (r == 0) return; /* a character in progress */
        if (r > 0) {
            out_put(st->out, d->pending, (size_t)r);
            d->n_pending = 0;
            return;
        }
        out_put(st->out, k_replacement, sizeof k_replacement);
        bool lone = (size_t)-r == d->n_pending; /* b itself cannot start a character */
        d->n_pending = 0;
        if (lone) return;
        /* b broke the pending character: it may start a new one */
    }
}

void g3_detokenizer_init(g3_detokenizer *d, const g3_tokenizer *t, bool skip_special) {
    if (!d) return;
    memset(d, 0, sizeof *d);
    d->tok = t;
    d->skip_special = skip_special;
}

int g3_detokenizer_push(g3_detokenizer *d, int32_t id, char *out, size_t cap) {
    if (!d || !out || cap == 0 || !valid_id(d->tok, id)) return -1;
    g3_detokenizer saved = *d;
    out_buf o = {out, cap - 1, 0, false};
    stream st = {d, &o};
    token_bytes(d->tok, id, d->skip_special, sink_utf8, &st);
    if (o.overflow || o.n > INT_MAX) { /* too small for this token: leave the stream as it was */
        *d = saved;
        out[0] = '\0';
        return -1;
    }
    out[o.n] = '\0';
    return (int)o.n;
}

int g3_detokenizer_flush(g3_detokenizer *d, char *out, size_t cap) {
    if (!d || !out || cap == 0) return -1;
    out_buf o = {out, cap - 1, 0, false};
    if (d->n_pending > 0) out_put(&o, k_replacement, sizeof k_replacement);
    if (o.overflow) {
        out[0] = '\0';
        return -1;
    }
    d->n_pending = 0;
    out[o.n] = '\0';
    return (int)o.n;
}
