#include "test_util.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>

uint8_t *tu_read_file(const char *path, size_t *size) {
    FILE *f = fopen(path, "rb");
    if (!f) return NULL;
    if (fseek(f, 0, SEEK_END) != 0) { fclose(f); return NULL; }
    long n = ftell(f);
    if (n < 0 || fseek(f, 0, SEEK_SET) != 0) { fclose(f); return NULL; }
    uint8_t *buf = malloc((size_t)n + 1);
    if (!buf) { fclose(f); return NULL; }
    if (fread(buf, 1, (size_t)n, f) != (size_t)n) { free(buf); fclose(f); return NULL; }
    fclose(f);
    buf[n] = 0;
    if (size) *size = (size_t)n;
    return buf;
}

int tu_write_file(const char *path, const void *data, size_t size) {
    FILE *f = fopen(path, "wb");
    if (!f) return -1;
    size_t w = fwrite(data, 1, size, f);
    int rc = fclose(f);
    return (w == size && rc == 0) ? 0 : -1;
}

char *tu_run(const char *cmd, int *status) {
    FILE *p = popen(cmd, "r");
    if (!p) return NULL;
    size_t cap = 4096, len = 0;
    char *out = malloc(cap);
    if (!out) { pclose(p); return NULL; }
    size_t n;
    while ((n = fread(out + len, 1, cap - len - 1, p)) > 0) {
        len += n;
        if (cap - len < 2) {
            char *grown = realloc(out, cap * 2);
            if (!grown) { free(out); pclose(p); return NULL; }
            out = grown;
            cap *= 2;
        }
    }
    out[len] = 0;
    int st = pclose(p);
    if (status) *status = (st != -1 && WIFEXITED(st)) ? WEXITSTATUS(st) : -1;
    return out;
}

long tu_parse_int_array(const char *text, int64_t **out) {
    const char *p = strchr(text, '[');
    if (!p) return -1;
    p++;
    long cap = 16, n = 0;
    int64_t *vals = malloc(sizeof *vals * (size_t)cap);
    if (!vals) return -1;
    for (;;) {
        while (*p == ' ' || *p == '\n' || *p == '\t' || *p == '\r' || *p == ',') p++;
        if (*p == ']') break;
        char *end;
        long long v = strtoll(p, &end, 10);
        if (end == p) { free(vals); return -1; }
        if (n == cap) {
            cap *= 2;
            int64_t *grown = realloc(vals, sizeof *vals * (size_t)cap);
            if (!grown) { free(vals); return -1; }
            vals = grown;
        }
        vals[n++] = v;
        p = end;
    }
    *out = vals;
    return n;
}

float tu_randf(uint64_t *state) {
    uint64_t x = *state;
    x ^= x << 13;
    x ^= x >> 7;
    x ^= x << 17;
    *state = x;
    return (float)((x >> 40) * (1.0 / 16777216.0)) * 2.0f - 1.0f;
}

g3_gen_params tu_greedy(uint32_t n) {
    g3_gen_params g = g3_gen_defaults();
    g.sampler.temperature = 0.0f;
    g.sampler.repeat_penalty = 1.0f;
    g.max_new_tokens = n;
    return g;
}
