/* document_text.c: text, Markdown and source files to UTF-8 message text.
 *
 * The encoding comes from the bytes: a byte-order mark says UTF-8 (dropped)
 * or UTF-16 LE/BE (converted); without one, text is UTF-8 unless its invalid
 * bytes outnumber its valid multi-byte sequences, in which case it was
 * written in a legacy 8-bit code page and is read as Windows-1252 (the
 * WHATWG decoder: Latin-1 plus the printable 0x80-0x9F of Windows files, its
 * five unassigned bytes kept as U+0081...). A UTF-8 file with a few damaged
 * bytes keeps its text and gets U+FFFD for them, counted.
 *
 * Binary data is refused: a NUL (no text format has one; UTF-16 without a
 * byte-order mark is named in the message), or more than 1 character in 20
 * a control character other than tab, newline, carriage return, form feed,
 * vertical tab and escape (terminal colour codes in logs). */
#include <stdio.h>
#include <string.h>

#include "base/utf8.h"
#include "media/document_internal.h"

typedef enum encoding { ENC_UTF8, ENC_UTF16LE, ENC_UTF16BE, ENC_CP1252 } encoding;

static const char *const encoding_names[] = {"UTF-8", "UTF-16LE", "UTF-16BE", "Windows-1252"};

/* Windows-1252 0x80-0x9F (WHATWG index); the unassigned five map to C1. */
static const uint16_t cp1252_high[32] = {
    0x20AC, 0x0081, 0x201A, 0x0192, 0x201E, 0x2026, 0x2020, 0x2021, 0x02C6, 0x2030, 0x0160,
    0x2039, 0x0152, 0x008D, 0x017D, 0x008F, 0x0090, 0x2018, 0x2019, 0x201C, 0x201D, 0x2022,
    0x2013, 0x2014, 0x02DC, 0x2122, 0x0161, 0x203A, 0x0153, 0x009D, 0x017E, 0x0178,
};

/* What decoding saw, for the binary verdict. */
typedef struct text_stats {
    size_t n_chars, n_controls, n_nul, first_nul; /* first_nul: byte offset in the input */
    size_t n_replaced;
} text_stats;

static void count(text_stats *st, uint32_t cp, size_t offset) {
    st->n_chars++;
    if (cp == 0) {
        if (st->n_nul++ == 0) st->first_nul = offset;
    } else if ((cp < 0x20 && cp != '\t' && cp != '\n' && cp != '\r' && cp != '\f' && cp != '\v' && cp != 0x1B) ||
               cp == 0x7F) {
        st->n_controls++;
    }
}

/* UTF-8 or Windows-1252: the valid multi-byte sequences against the bytes
 * that start none. */
static encoding guess_8bit(const uint8_t *d, size_t n) {
    size_t valid = 0, invalid = 0;
    for (size_t i = 0; i < n;) {
        if (d[i] < 0x80) {
            i++;
            continue;
        }
        size_t k = g3_utf8_seq_len(d + i, n - i);
        if (k) {
            valid++;
            i += k;
        } else {
            invalid++;
            i++;
        }
    }
    return invalid > valid ? ENC_CP1252 : ENC_UTF8;
}

static void decode_utf8(const uint8_t *d, size_t n, g3_docbuf *b, text_stats *st) {
    for (size_t i = 0; i < n;) {
        size_t k = g3_utf8_seq_len(d + i, n - i);
        if (k) {
            count(st, d[i], i); /* the lead byte is enough: only ASCII is counted */
            g3_docbuf_add(b, d + i, k);
            i += k;
        } else {
            count(st, 0xFFFD, i);
            g3_docbuf_add(b, "\xEF\xBF\xBD", 3);
            st->n_replaced++;
            i++;
        }
    }
}

static void decode_cp1252(const uint8_t *d, size_t n, g3_docbuf *b, text_stats *st) {
    for (size_t i = 0; i < n; i++) {
        uint32_t cp = d[i] >= 0x80 && d[i] < 0xA0 ? cp1252_high[d[i] - 0x80] : d[i];
        count(st, cp, i);
        g3_docbuf_codepoint(b, cp);
    }
}

static void decode_utf16(const uint8_t *d, size_t n, bool big_endian, g3_docbuf *b, text_stats *st) {
    size_t i = 0;
    for (; i + 2 <= n; i += 2) {
        uint32_t u = big_endian ? (uint32_t)d[i] << 8 | d[i + 1] : (uint32_t)d[i + 1] << 8 | d[i];
        if (u >= 0xD800 && u < 0xDC00 && i + 4 <= n) {
            uint32_t lo = big_endian ? (uint32_t)d[i + 2] << 8 | d[i + 3] : (uint32_t)d[i + 3] << 8 | d[i + 2];
            if (lo >= 0xDC00 && lo < 0xE000) {
                uint32_t cp = 0x10000 + ((u - 0xD800) << 10) + (lo - 0xDC00);
                count(st, cp, i);
                g3_docbuf_codepoint(b, cp);
                i += 2;
                continue;
            }
        }
        if (u >= 0xD800 && u < 0xE000) { /* a surrogate without its pair */
            u = 0xFFFD;
            st->n_replaced++;
        }
        count(st, u, i);
        g3_docbuf_codepoint(b, u);
    }
    if (i < n) { /* an odd byte at the end: half a unit */
        count(st, 0xFFFD, i);
        g3_docbuf_codepoint(b, 0xFFFD);
        st->n_replaced++;
    }
}

/* NULs all on odd (or all on even) offsets, a quarter of the bytes or more:
 * mostly-ASCII UTF-16 saved without its byte-order mark. */
static bool looks_like_bomless_utf16(const uint8_t *d, size_t n) {
    size_t even = 0, odd = 0;
    for (size_t i = 0; i < n; i++)
        if (d[i] == 0) {
            if (i & 1) odd++;
            else even++;
        }
    return n >= 4 && (even == 0 || odd == 0) && (even + odd) * 4 >= n;
}

/* The fence must be longer than any run of backticks inside, or a ``` in a
 * Markdown file would end the document early (CommonMark's rule). */
static size_t fence_length(const char *s, size_t n) {
    size_t longest = 0, run = 0;
    for (size_t i = 0; i < n; i++) {
        run = s[i] == '`' ? run + 1 : 0;
        if (run > longest) longest = run;
    }
    return longest >= 3 ? longest + 1 : 3;
}

int g3_document_text(const char *msg_name, const char *hdr_name, const uint8_t *data, size_t len, const char *lang,
                     const g3_document_limits *lim, g3_document *out, g3_error *err) {
    encoding enc;
    size_t skip = 0;
    if (len >= 4 && (memcmp(data, "\xFF\xFE\0\0", 4) == 0 || memcmp(data, "\0\0\xFE\xFF", 4) == 0)) {
        g3_fail(err, "'%s' is UTF-32 text, not supported: save it as UTF-8", msg_name);
        return G3_DOCUMENT_UNSUPPORTED;
    }
    if (len >= 3 && memcmp(data, "\xEF\xBB\xBF", 3) == 0) {
        enc = ENC_UTF8;
        skip = 3;
    } else if (len >= 2 && memcmp(data, "\xFF\xFE", 2) == 0) {
        enc = ENC_UTF16LE;
        skip = 2;
    } else if (len >= 2 && memcmp(data, "\xFE\xFF", 2) == 0) {
        enc = ENC_UTF16BE;
        skip = 2;
    } else {
        enc = guess_8bit(data, len);
    }

    /* the body alone may not pass the limit either; need counts past it */
    g3_docbuf body = {.max = lim->max_text};
    text_stats st = {0};
    const uint8_t *d = data + skip;
    size_t n = len - skip;
    if (enc == ENC_UTF8) decode_utf8(d, n, &body, &st);
    else if (enc == ENC_CP1252) decode_cp1252(d, n, &body, &st);
    else decode_utf16(d, n, enc == ENC_UTF16BE, &body, &st);

    int rc = 0;
    if (st.n_nul) {
        g3_fail(err, "'%s' looks like binary data, not text: it has %zu NUL byte%s (the first at byte %zu)%s",
                msg_name, st.n_nul, st.n_nul == 1 ? "" : "s", st.first_nul + skip,
                enc == ENC_UTF8 && looks_like_bomless_utf16(data, len)
                    ? "; if it is UTF-16 text without a byte-order mark, save it as UTF-8"
                    : "");
        rc = G3_DOCUMENT_UNSUPPORTED;
    } else if (st.n_controls * 20 > st.n_chars) { /* n_chars <= len: no overflow */
        g3_fail(err,
                "'%s' looks like binary data, not text: %zu of its %zu characters are control characters "
                "(more than 1 in 20)",
                msg_name, st.n_controls, st.n_chars);
        rc = G3_DOCUMENT_UNSUPPORTED;
    } else if (body.over) {
        rc = g3_document_too_large(err, msg_name, "its text as UTF-8", body.want, lim->max_text);
    } else if (body.oom) {
        rc = g3_fail(err, "out of memory reading '%s'", msg_name);
    }
    if (rc) {
        g3_docbuf_free(&body);
        return rc;
    }

    /* File: NAME \n ```lang \n body \n ``` \n */
    size_t fence = fence_length(body.p ? body.p : "", body.len);
    g3_docbuf text = {.max = lim->max_text};
    g3_docbuf_str(&text, "File: ");
    g3_docbuf_str(&text, hdr_name);
    g3_docbuf_char(&text, '\n');
    for (size_t i = 0; i < fence; i++) g3_docbuf_char(&text, '`');
    g3_docbuf_str(&text, lang);
    g3_docbuf_char(&text, '\n');
    if (body.len) g3_docbuf_add(&text, body.p, body.len);
    if (body.len && body.p[body.len - 1] != '\n') g3_docbuf_char(&text, '\n');
    for (size_t i = 0; i < fence; i++) g3_docbuf_char(&text, '`');
    g3_docbuf_char(&text, '\n');
    g3_docbuf_free(&body);
    if (text.over) {
        size_t want = text.want;
        g3_docbuf_free(&text);
        return g3_document_too_large(err, msg_name, "its text with the header and fences", want, lim->max_text);
    }
    if (text.oom) {
        g3_docbuf_free(&text);
        return g3_fail(err, "out of memory reading '%s'", msg_name);
    }
    out->text = text.p;
    out->len = text.len;
    out->kind = lang[0] ? G3_DOCUMENT_CODE : G3_DOCUMENT_TEXT;
    out->encoding = encoding_names[enc];
    out->language = lang;
    out->n_replaced = st.n_replaced;
    return 0;
}
