/* pdf_fixture.h: PDFs written by hand at test time (for test_document and
 * the native API's attachments): pages of Helvetica text with an xref
 * table holding the real offsets, and inflating variants for the limits. */
#ifndef G3_TESTS_PDF_FIXTURE_H
#define G3_TESTS_PDF_FIXTURE_H

#include <stdbool.h>
#include <stddef.h>

typedef struct fixture_buf {
    char *p;      /* NUL-terminated; free() it */
    size_t len, cap;
} fixture_buf;

void fixture_put(fixture_buf *b, const void *s, size_t n);
void fixture_putf(fixture_buf *b, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
fixture_buf fixture_deflated(const void *data, size_t len);

/* A PDF with one page per text ("" = a page with an empty content stream;
 * '\n' starts a new line) at height y: catalog 1, page tree 2, Helvetica 3,
 * then page 4+2i with content 5+2i. pad > 0: each content stream ends in
 * pad bytes of filler repeated and is deflated; with font_bomb the font
 * embeds a font file of pad zero bytes, deflated: small files that inflate
 * to large ones. */
fixture_buf fixture_pdf_ex(const char *const *texts, int n_pages, int y, const char *filler, size_t pad,
                           bool font_bomb);
/* The same at the top of the page, plain. */
fixture_buf fixture_pdf(const char *const *texts, int n_pages);

#endif
