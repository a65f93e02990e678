#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "app/app.h"

void app_error(const char *cmd, const char *fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    fprintf(stderr, "gemma-chat %s: ", cmd);
    vfprintf(stderr, fmt, ap);
    fputc('\n', stderr);
    va_end(ap);
}

int app_parse_u64(const char *cmd, const char *flag, const char *text, uint64_t *out) {
    char *end;
    errno = 0;
    if (text[0] == '-' || text[0] == '\0') goto bad;
    unsigned long long v = strtoull(text, &end, 10);
    if (errno || *end) goto bad;
    *out = v;
    return 0;
bad:
    app_error(cmd, "%s expects a non-negative integer, got '%s'", flag, text);
    return -1;
}

int app_parse_u32(const char *cmd, const char *flag, const char *text, uint32_t min, uint32_t max,
                  uint32_t *out) {
    uint64_t v;
    if (app_parse_u64(cmd, flag, text, &v)) return -1;
    if (v < min || v > max) {
        app_error(cmd, "%s must be between %u and %u, got %s", flag, min, max, text);
        return -1;
    }
    *out = (uint32_t)v;
    return 0;
}

const char *app_flag_value(const char *cmd, int argc, char **argv, int *i) {
    if (*i + 1 >= argc) {
        app_error(cmd, "%s needs a value", argv[*i]);
        return NULL;
    }
    return argv[++*i];
}

char *app_read_text_file(const char *cmd, const char *path) {
    FILE *f = fopen(path, "rb");
    if (!f) {
        app_error(cmd, "cannot open '%s': %s", path, strerror(errno));
        return NULL;
    }
    char *buf = NULL;
    size_t len = 0, cap = 0, got;
    do {
        if (cap - len < 4096) {
            char *grown = realloc(buf, cap = cap * 2 + 65536);
            if (!grown) {
                free(buf);
                fclose(f);
                app_error(cmd, "out of memory reading '%s'", path);
                return NULL;
            }
            buf = grown;
        }
        got = fread(buf + len, 1, cap - len - 1, f);
        len += got;
    } while (got > 0);
    bool failed = ferror(f);
    fclose(f);
    buf[len] = 0;
    if (failed || memchr(buf, 0, len)) {
        app_error(cmd, failed ? "cannot read '%s'" : "'%s' contains NUL bytes; not a text file", path);
        free(buf);
        return NULL;
    }
    return buf;
}
