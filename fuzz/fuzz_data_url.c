/* libFuzzer target: base64 (src/base/base64.c) and data: URLs
 * (src/server/data_url.c). The first byte picks the entry point:
 *   0: g3_base64_decode of the bytes; whatever decodes must encode back to
 *      an equivalent text (round trip: decode(encode(x)) == x);
 *   1: g3_base64_encode of the bytes, decoded back to the same bytes;
 *   2, 3: srv_data_url_decode with a large / a tiny size limit, and the
 *      image sniffer on what it returns. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "base/base64.h"
#include "server/data_url.h"

static void roundtrip(const uint8_t *bytes, size_t n) {
    char *text = g3_base64_encode(bytes, n);
    if (!text) return; /* out of memory */
    size_t tn = strlen(text);
    if (tn % 4) abort();
    uint8_t *back = malloc(g3_base64_decoded_max(tn) + 1);
    size_t blen = 0;
    g3_error err;
    if (back) {
        if (g3_base64_decode(text, tn, back, &blen, &err) != 0) abort(); /* our own output is valid */
        if (blen != n || (n && memcmp(back, bytes, n) != 0)) abort();
    }
    free(back);
    free(text);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    if (size == 0) return 0;
    uint8_t mode = data[0] & 3;
    const char *in = (const char *)data + 1;
    size_t n = size - 1;
    g3_error err;
    err.msg[0] = 0;
    if (mode == 0) {
        size_t cap = g3_base64_decoded_max(n);
        uint8_t *out = malloc(cap ? cap : 1); /* exactly what the header promises */
        if (!out) return 0;
        size_t len = 0;
        if (g3_base64_decode(in, n, out, &len, &err) == 0) {
            if (len > cap) abort();
            roundtrip(out, len);
        } else if (!err.msg[0]) {
            abort();
        }
        free(out);
    } else if (mode == 1) {
        roundtrip(data + 1, n);
    } else {
        size_t max = mode == 2 ? (size_t)1 << 20 : 16;
        uint8_t *bytes = NULL;
        size_t len = 0;
        srv_error e;
        memset(&e, 0, sizeof e);
        if (srv_data_url_decode(in, n, max, "messages[0].content[0].image_url.url", &bytes, &len, &e) == 0) {
            if (len > max || !srv_image_format(bytes, len)) abort(); /* only sniffed images pass */
            free(bytes);
        } else if (e.status < 400 || !e.message[0]) {
            abort();
        }
    }
    return 0;
}
