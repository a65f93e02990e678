/* document.c: documents as message text. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "base/error.h"
#include "base/utf8.h"
#include "gemma3_media.h"

static const char *base_name(const char *path) {
    const char *slash = strrchr(path, '/');
    return slash ? slash + 1 : path;
}

static int read_all(const char *path, size_t max_bytes, char **data, size_t *len, g3_error *err) {
    FILE *f = fopen(path, "rb");
    if (!f) return g3_fail(err, "cannot open '%s': %s", path, strerror(errno));
    struct stat st;
    if (fstat(fileno(f), &st) != 0 || !S_ISREG(st.st_mode)) {
        fclose(f);
        return g3_fail(err, "'%s' is not a regular file", path);
    }
    if ((unsigned long long)st.st_size > max_bytes) {
        fclose(f);
        return g3_fail(err, "'%s' is %.1f MB, over the %.0f MB limit for documents", path, st.st_size / 1e6,
                       max_bytes / 1e6);
    }
    *len = (size_t)st.st_size;
    *data = malloc(*len + 1);
    if (!*data) {
        fclose(f);
        return g3_fail(err, "out of memory reading '%s'", path);
    }
    size_t got = fread(*data, 1, *len, f);
    fclose(f);
    if (got != *len) {
        free(*data);
        return g3_fail(err, "cannot read '%s' (got %zu of %zu bytes)", path, got, *len);
    }
    (*data)[*len] = 0;
    return 0;
}

int g3_document_read(const char *path, size_t max_bytes, char **text, size_t *n_replaced, g3_error *err) {
    char *data = NULL;
    size_t len = 0;
    *text = NULL;
    if (read_all(path, max_bytes, &data, &len, err)) return -1;
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
