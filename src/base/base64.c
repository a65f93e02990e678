#include "base/base64.h"

#include <stdbool.h>
#include <stdlib.h>

#include "base/error.h"

static const char k_alphabet[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";

static int value_of(unsigned char c) {
    if (c >= 'A' && c <= 'Z') return c - 'A';
    if (c >= 'a' && c <= 'z') return c - 'a' + 26;
    if (c >= '0' && c <= '9') return c - '0' + 52;
    if (c == '+') return 62;
    if (c == '/') return 63;
    return -1;
}

static bool is_space(unsigned char c) { return c == ' ' || c == '\t' || c == '\r' || c == '\n'; }

size_t g3_base64_decoded_max(size_t n) { return n / 4 * 3 + 3; }

int g3_base64_decode(const char *in, size_t n, uint8_t *out, size_t *out_len, g3_error *err) {
    uint32_t quad = 0;
    size_t len = 0, count = 0, pad = 0;
    for (size_t i = 0; i < n; i++) {
        const unsigned char c = (unsigned char)in[i];
        if (is_space(c)) continue;
        if (c == '=') {
            if (count % 4 < 2) return g3_fail(err, "base64: '=' at offset %zu, where padding cannot be", i);
            pad++;
            count++;
            continue;
        }
        const int v = value_of(c);
        if (v < 0) return g3_fail(err, "base64: character 0x%02x at offset %zu is not base64", c, i);
        if (pad) return g3_fail(err, "base64: data after the '=' padding at offset %zu", i);
        quad = quad << 6 | (uint32_t)v;
        if (++count % 4 == 0) {
            out[len++] = (uint8_t)(quad >> 16);
            out[len++] = (uint8_t)(quad >> 8);
            out[len++] = (uint8_t)quad;
            quad = 0;
        }
    }
    if (count % 4 != 0) return g3_fail(err, "base64: %zu characters, not a multiple of 4 (truncated?)", count);
    if (pad) { /* the last group held 4 - pad characters of data */
        const size_t data = 4 - pad;
        quad <<= 6 * pad;
        out[len++] = (uint8_t)(quad >> 16);
        if (data == 3) out[len++] = (uint8_t)(quad >> 8);
    }
    *out_len = len;
    return 0;
}

char *g3_base64_encode(const uint8_t *in, size_t n) {
    if (n > (SIZE_MAX - 1) / 4 * 3 - 3) return NULL;
    char *out = malloc((n + 2) / 3 * 4 + 1), *p = out;
    if (!out) return NULL;
    size_t i = 0;
    for (; i + 3 <= n; i += 3) {
        const uint32_t v = (uint32_t)in[i] << 16 | (uint32_t)in[i + 1] << 8 | in[i + 2];
        *p++ = k_alphabet[v >> 18];
        *p++ = k_alphabet[(v >> 12) & 63];
        *p++ = k_alphabet[(v >> 6) & 63];
        *p++ = k_alphabet[v & 63];
    }
    if (i < n) {
        const uint32_t v = (uint32_t)in[i] << 16 | (i + 1 < n ? (uint32_t)in[i + 1] << 8 : 0);
        *p++ = k_alphabet[v >> 18];
        *p++ = k_alphabet[(v >> 12) & 63];
        *p++ = i + 1 < n ? k_alphabet[(v >> 6) & 63] : '=';
        *p++ = '=';
    }
    *p = 0;
    return out;
}
