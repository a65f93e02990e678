/* libFuzzer: bytes through g3_document_from_memory as each kind. The first
 * byte picks a name and declared type and whether to put a PDF header or a
 * byte-order mark in front, so every reader (PDF through MuPDF, UTF-8,
 * UTF-16, Windows-1252, the refusals) is reached without a seed corpus. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "base/utf8.h"
#include "gemma3_media.h"

static const struct {
    const char *name, *type, *prefix;
} modes[] = {
    {"doc.pdf", "application/pdf", "%PDF-1.7\n"},
    {"doc.pdf", NULL, ""},
    {"notes.txt", "text/plain", ""},
    {"main.c", NULL, ""},
    {"readme.md", "text/markdown", "\xEF\xBB\xBF"},
    {"le.txt", NULL, "\xFF\xFE"},
    {"be.py", NULL, "\xFE\xFF"},
    {"app.ts", "video/mp2t", ""},
    {NULL, "image/png", ""},
    {"x", "application/octet-stream", ""},
};

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    if (size == 0) return 0;
    size_t mode = data[0] % (sizeof modes / sizeof modes[0]);
    data++;
    size--;
    size_t pre = strlen(modes[mode].prefix);
    uint8_t *bytes = malloc(pre + size + 1); /* +1: never malloc(0) */
    if (!bytes) return 0;
    memcpy(bytes, modes[mode].prefix, pre);
    if (size) memcpy(bytes + pre, data, size);
    g3_document_limits lim = g3_document_limits_default();
    lim.max_pages = 64; /* keep each run short */
    lim.max_text = (size_t)1 << 20;
    g3_document doc;
    g3_error err;
    if (g3_document_from_memory(modes[mode].name, modes[mode].type, bytes, pre + size, &lim, &doc, &err) == 0) {
        if (strlen(doc.text) != doc.len) abort(); /* no NUL inside the text */
        for (size_t i = 0, k; i < doc.len; i += k) /* and valid UTF-8 throughout */
            if (!(k = g3_utf8_seq_len((const unsigned char *)doc.text + i, doc.len - i))) abort();
        g3_document_free(&doc);
    } else if (doc.text || !err.msg[0]) {
        abort(); /* a failure fills nothing and says why */
    }
    free(bytes);
    return 0;
}
