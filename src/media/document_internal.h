/* document_internal.h: what the document files share: a growable string
 * that remembers running out of memory, the limit messages, and the two
 * readers (document_text.c, document_pdf.c) that document.c dispatches to. */
#ifndef G3_MEDIA_DOCUMENT_INTERNAL_H
#define G3_MEDIA_DOCUMENT_INTERNAL_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "base/error.h"
#include "gemma3_media.h"

/* Appends never fail loudly: a failed allocation sets oom and later appends
 * do nothing, so a writer checks once at the end. max caps len (the text
 * limit): going past it sets over instead of growing, and want goes on
 * counting what the text would have been, for the message. */
typedef struct g3_docbuf {
    char *p;
    size_t len, cap, max;
    size_t want; /* bytes appended or refused (saturating) */
    bool oom, over;
} g3_docbuf;

void g3_docbuf_add(g3_docbuf *b, const void *s, size_t n);
void g3_docbuf_str(g3_docbuf *b, const char *s);
void g3_docbuf_char(g3_docbuf *b, char c);
void g3_docbuf_codepoint(g3_docbuf *b, uint32_t cp); /* as UTF-8; cp must be a scalar value */
void g3_docbuf_free(g3_docbuf *b);

/* "1234 bytes" / "12.5 MB" for two sizes compared in a message; exact bytes
 * for both when the rounded forms would read the same. */
void g3_document_sizes(size_t have, size_t limit, char *have_s, char *limit_s, size_t cap);

/* Refuses `what` of `name` for being over max bytes (the message gives both
 * numbers); returns G3_DOCUMENT_TOO_LARGE. */
int g3_document_too_large(g3_error *err, const char *name, const char *what, size_t have, size_t max);

/* What a file name says (document_types.c). */
typedef struct g3_document_type {
    const char *lang;   /* the code fence's language ("c", "python"...); "" for plain text and unknown names */
    const char *binary; /* a known non-document extension: what it is ("a Word document (.docx)"); else NULL */
    bool known;         /* a text or code extension (or name) this table knows */
    bool pdf;           /* ends in .pdf */
} g3_document_type;

g3_document_type g3_document_type_of(const char *name);

/* The readers. msg_name names the document in messages (a file's path);
 * hdr_name is one line of valid UTF-8 for the "File: NAME" header. Both
 * return 0 or a g3_document_status and fill out only on success. */

/* document_text.c: decodes, refuses binary data, wraps in the header and a
 * fence of language lang ("" for a plain fence). */
int g3_document_text(const char *msg_name, const char *hdr_name, const uint8_t *data, size_t len, const char *lang,
                     const g3_document_limits *lim, g3_document *out, g3_error *err);

/* document_pdf.c: the text of each page with MuPDF. */
int g3_document_pdf(const char *msg_name, const char *hdr_name, const uint8_t *data, size_t len,
                    const g3_document_limits *lim, g3_document *out, g3_error *err);

#endif
