/* document.c: documents as message text. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "base/error.h"
#include "base/read_file.h"
#include "base/utf8.h"
#include "gemma3_media.h"

static const char *base_name(const char *path) {
    const char *slash = strrchr(path, '/');
    return slash ? slash + 1 : path;
}

int g3_document_read(const char *path, size_t max_bytes, char **text, size_t *n_replaced, g3_error *err) {
    char *data = NULL;
    size_t len = 0;
    *text = NULL;
    if (g3_read_file(path, max_bytes, &data, &len, err)) return -1;
    if (len >= 5 && memcmp(data, "%PDF-", 5) == 0) {
        free(data);
        return g3_fail(err, "'%s' is a PDF; PDF text extraction is not built yet (text, Markdown and code files work)",
                       path);
    }
    if (memchr(data, 0, len)) { /* text would stop there: refuse rather than truncate */
        free(data);
        return g3_fail(err, "'%s' looks like a binary file (it contains NUL bytes)", path);
    }
    char *clean = g3_utf8_sanitize(data, len, n_replaced);
    free(data);
    if (!clean) return g3_fail(err, "out of memory reading '%s'", path);
    const char *name = base_name(path);
    size_t clean_len = strlen(clean), cap = clean_len + strlen(name) + 32;
    *text = malloc(cap);
    if (!*text) {
        free(clean);
        return g3_fail(err, "out of memory reading '%s'", path);
    }
    snprintf(*text, cap, "File: %s\n```\n%s%s```\n", name, clean,
             clean_len && clean[clean_len - 1] != '\n' ? "\n" : "");
    free(clean);
    return 0;
}
