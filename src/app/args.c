#include <errno.h>
#include <stdbool.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "app/app.h"
#include "gemma3_chat.h"

int app_check_mem_limit(const char *cmd) {
    const char *v = getenv("G3_MEM_LIMIT");
    if (!v || !*v) return 0;
    const char *p = v;
    size_t digits = strspn(p, "0123456789");
    p += digits;
    if (*p == '.') {
        const size_t frac = strspn(p + 1, "0123456789");
        digits += frac;
        p += 1 + frac;
    }
    if (*p && strchr("KkMmGg", *p)) {
        p++;
        if (*p == 'i') p++;
        if (*p == 'B' || *p == 'b') p++;
    } else if (*p == 'B' || *p == 'b') {
        p++;
    }
    if (digits == 0 || *p) {
        app_error(cmd, "G3_MEM_LIMIT='%s' is not a size: give bytes with an optional K, M or G suffix "
                       "(e.g. G3_MEM_LIMIT=6G), or unset it", v);
        return -1;
    }
    return 0;
}

void app_print_default_model(const g3_default_model *d) {
    if (d->from_env) fprintf(stderr, "gemma-chat: %s (default from " G3_DEFAULT_MODEL_ENV ")\n", d->shown);
    else fprintf(stderr, "gemma-chat: " G3_DEFAULT_MODEL_NAME " (default, %s)\n", d->shown);
}

int app_check_model_path(const char *cmd, const char *path) {
    struct stat st;
    if (stat(path, &st) == 0 && S_ISDIR(st.st_mode)) {
        app_error(cmd, "%s is a directory, not a model: give a Gemma 3 .gguf file with -m FILE", path);
        return -1;
    }
    return 0; /* anything else: the GGUF reader says what is wrong with it, naming it */
}

char *app_read_file(const char *cmd, const char *path, size_t *len) {
    g3_error err;
    char *data;
    if (g3_read_file(path, APP_MAX_INPUT_FILE, &data, len, &err)) {
        app_error(cmd, "%s", err.msg);
        return NULL;
    }
    return data;
}

char *app_read_text_file(const char *cmd, const char *path) {
    size_t len;
    char *data = app_read_file(cmd, path, &len);
    if (data && memchr(data, 0, len)) {
        app_error(cmd, "'%s' contains NUL bytes; not a text file", path);
        free(data);
        return NULL;
    }
    return data;
}

const char *app_hint(const char *msg) {
    if (strstr(msg, "the context holds")) return "; shorten it or raise -c";
    if (strstr(msg, "no vision encoder")) return ": start with --mmproj FILE";
    return "";
}
