/* pdf_fixture.c: see pdf_fixture.h. Failures are cmocka assertions. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <zlib.h>

#include <cmocka.h>

#include "pdf_fixture.h"

void fixture_put(fixture_buf *b, const void *s, size_t n) {
    if (b->len + n + 1 > b->cap) {
        b->cap = (b->len + n + 1) * 2;
        b->p = realloc(b->p, b->cap);
        assert_non_null(b->p);
    }
    memcpy(b->p + b->len, s, n);
    b->len += n;
    b->p[b->len] = 0;
}

void fixture_putf(fixture_buf *b, const char *fmt, ...) {
    char tmp[4096];
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(tmp, sizeof tmp, fmt, ap);
    va_end(ap);
    assert_true(n >= 0 && (size_t)n < sizeof tmp);
    fixture_put(b, tmp, (size_t)n);
}

fixture_buf fixture_deflated(const void *data, size_t len) {
    uLongf packed_len = compressBound(len);
    fixture_buf packed = {.p = malloc(packed_len), .cap = packed_len};
    assert_non_null(packed.p);
    assert_int_equal(compress2((Bytef *)packed.p, &packed_len, data, len, 1), Z_OK);
    packed.len = packed_len;
    return packed;
}

fixture_buf fixture_pdf_ex(const char *const *texts, int n_pages, int y, const char *filler, size_t pad,
                           bool font_bomb) {
    fixture_buf b = {0};
    size_t n_obj = 4 + 2 * (size_t)n_pages, offsets[64];
    assert_true(n_obj + 2 <= 64);
    fixture_put(&b, "%PDF-1.4\n%\xE2\xE3\xCF\xD3\n", 15);
    offsets[1] = b.len;
    fixture_putf(&b, "1 0 obj\n<< /Type /Catalog /Pages 2 0 R >>\nendobj\n");
    offsets[2] = b.len;
    fixture_putf(&b, "2 0 obj\n<< /Type /Pages /Count %d /Kids [", n_pages);
    for (int i = 0; i < n_pages; i++) fixture_putf(&b, " %d 0 R", 4 + 2 * i);
    fixture_putf(&b, " ] >>\nendobj\n");
    offsets[3] = b.len;
    if (font_bomb)
        fixture_putf(&b, "3 0 obj\n<< /Type /Font /Subtype /TrueType /BaseFont /Bomb /Encoding /WinAnsiEncoding "
                 "/FontDescriptor %zu 0 R >>\nendobj\n", n_obj);
    else
        fixture_putf(&b, "3 0 obj\n<< /Type /Font /Subtype /Type1 /BaseFont /Helvetica /Encoding /WinAnsiEncoding >>"
                 "\nendobj\n");
    for (int i = 0; i < n_pages; i++) {
        fixture_buf content = {0};
        fixture_put(&content, "", 0);
        if (texts[i][0]) {
            fixture_putf(&content, "BT /F1 18 Tf 72 %d Td (", y);
            for (const char *s = texts[i]; *s; s++) {
                if (*s == '\n') fixture_putf(&content, ") Tj 0 -24 Td (");
                else if (*s == '(' || *s == ')' || *s == '\\') fixture_putf(&content, "\\%c", *s);
                else fixture_put(&content, s, 1);
            }
            fixture_putf(&content, ") Tj ET\n");
        }
        const char *filter = "";
        if (pad) {
            char *fill = malloc(pad);
            assert_non_null(fill);
            for (size_t k = 0, m = strlen(filler); k < pad; k++) fill[k] = filler[k % m];
            fixture_put(&content, fill, pad);
            free(fill);
            fixture_buf packed = fixture_deflated(content.p, content.len);
            free(content.p);
            content = packed;
            filter = " /Filter /FlateDecode";
        }
        offsets[4 + 2 * i] = b.len;
        fixture_putf(&b,
             "%d 0 obj\n<< /Type /Page /Parent 2 0 R /MediaBox [0 0 612 792] /Resources << /Font << /F1 3 0 R >> >> "
             "/Contents %d 0 R >>\nendobj\n",
             4 + 2 * i, 5 + 2 * i);
        offsets[5 + 2 * i] = b.len;
        fixture_putf(&b, "%d 0 obj\n<< /Length %zu%s >>\nstream\n", 5 + 2 * i, content.len, filter);
        fixture_put(&b, content.p, content.len);
        fixture_putf(&b, "\nendstream\nendobj\n");
        free(content.p);
    }
    if (font_bomb) { /* the font's descriptor and its file */
        char *zeros = calloc(pad, 1);
        assert_non_null(zeros);
        fixture_buf file = fixture_deflated(zeros, pad);
        free(zeros);
        offsets[n_obj] = b.len;
        fixture_putf(&b, "%zu 0 obj\n<< /Type /FontDescriptor /FontName /Bomb /Flags 32 /FontBBox [0 0 1000 1000] "
                 "/ItalicAngle 0 /Ascent 800 /Descent -200 /CapHeight 700 /StemV 80 /FontFile2 %zu 0 R >>\nendobj\n",
             n_obj, n_obj + 1);
        offsets[n_obj + 1] = b.len;
        fixture_putf(&b, "%zu 0 obj\n<< /Length %zu /Filter /FlateDecode >>\nstream\n", n_obj + 1, file.len);
        fixture_put(&b, file.p, file.len);
        fixture_putf(&b, "\nendstream\nendobj\n");
        free(file.p);
        n_obj += 2;
    }
    size_t xref = b.len;
    fixture_putf(&b, "xref\n0 %zu\n0000000000 65535 f \n", n_obj);
    for (size_t i = 1; i < n_obj; i++) fixture_putf(&b, "%010zu 00000 n \n", offsets[i]);
    fixture_putf(&b, "trailer\n<< /Size %zu /Root 1 0 R >>\nstartxref\n%zu\n%%%%EOF\n", n_obj, xref);
    return b;
}

fixture_buf fixture_pdf(const char *const *texts, int n_pages) {
    return fixture_pdf_ex(texts, n_pages, 720, "", 0, false);
}

