/* flags.c: what every command's flag parsing uses: the error line and the
 * number, KV type and device parsers. Apart from args.c (which reaches the
 * chat layer) so the GPU machine's engine-only build (scripts/device-lite.c)
 * links this code rather than a copy of it. */
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

int app_parse_kv_type(const char *cmd, const char *flag, const char *text, g3_kv_type *out) {
    const int t = g3_kv_type_from_name(text);
    if (t < 0) {
        app_error(cmd, "%s must be f16, bf16, q8_0 or f32, got '%s'", flag, text);
        return -1;
    }
    *out = (g3_kv_type)t;
    return 0;
}

int app_parse_device(const char *cmd, const char *flag, const char *text, g3_device *out) {
    const int d = g3_device_from_name(text);
    if (d < 0) {
        app_error(cmd, "%s must be cuda, cpu or auto, got '%s'", flag, text);
        return -1;
    }
    *out = (g3_device)d;
    return 0;
}

const char *app_flag_value(const char *cmd, int argc, char **argv, int *i) {
    if (*i + 1 >= argc) {
        app_error(cmd, "%s needs a value", argv[*i]);
        return NULL;
    }
    return argv[++*i];
}

int app_parse_activations(const char *cmd, const char *flag, const char *text, app_activations *out) {
    if (strcmp(text, "exact") == 0) *out = APP_ACT_EXACT;
    else if (strcmp(text, "int15") == 0) *out = APP_ACT_INT15;
    else if (strcmp(text, "int8") == 0) *out = APP_ACT_INT8;
    else {
        app_error(cmd, "%s must be exact, int15 or int8, got '%s'", flag, text);
        return -1;
    }
    return 0;
}

void app_apply_activations(app_activations a, g3_context_params *cp) {
    cp->exact_activations = a == APP_ACT_EXACT;
    cp->int8_activations = a == APP_ACT_INT8;
}

const char *app_activations_name(app_activations a) {
    return a == APP_ACT_EXACT ? "exact" : a == APP_ACT_INT8 ? "int8" : "int15";
}

int app_parse_activations_cp(const char *cmd, const char *flag, const char *text, g3_context_params *cp) {
    app_activations a;
    if (app_parse_activations(cmd, flag, text, &a)) return -1;
    app_apply_activations(a, cp);
    return 0;
}
