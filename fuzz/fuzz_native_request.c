/* libFuzzer target: the native API's bodies (src/server/native_request.c,
 * and through it the multipart parser and base64). The first byte picks
 * the request:
 *   0, 1: a conversation, create / update (JSON), onto the default settings;
 *   2, 3: a message to send, edit (JSON);
 *   4, 5: the same as multipart/form-data: the input's first line is the
 *         Content-Type (its boundary), the rest the body;
 *   6:    regenerate (an empty body or {stream}).
 * The body is an exact-size copy without a NUL (the HTTP layer's length).
 * Whatever is accepted must hold what the header promises (settings within
 * srv_setting_ranges, UTF-8 texts, at most SRV_NATIVE_MAX_FILES files);
 * a refusal is a 4xx/5xx with a message. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "server/native_request.h"

static void check_settings(const g3_store_settings *s) {
    const double v[SRV_N_SETTINGS] = {s->max_tokens, s->max_images, s->temperature, s->top_p, s->top_k,
                                      s->repetition_penalty};
    for (int i = 0; i < SRV_N_SETTINGS; i++) { /* the table's order: max_tokens, max_images, temperature, ... */
        const srv_setting_range *r = &srv_setting_ranges[i];
        double x = v[i];
        if (!strcmp(r->key, "temperature") || !strcmp(r->key, "top_p") || !strcmp(r->key, "repetition_penalty"))
            x = (float)x; /* stored as float: compare with the float of the bound */
        if (x < (float)r->min - 1e-6 || x > (float)r->max + 1e-6) abort();
    }
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    if (size == 0) return 0;
    int mode = data[0] % 7;
    data++;
    size--;
    const char *ct = "application/json";
    char ctbuf[512];
    if (mode == 4 || mode == 5) {
        const uint8_t *nl = memchr(data, '\n', size < sizeof ctbuf ? size : sizeof ctbuf);
        if (!nl) return 0;
        size_t n = (size_t)(nl - data);
        memcpy(ctbuf, data, n);
        ctbuf[n] = 0;
        ct = ctbuf;
        data = nl + 1;
        size -= n + 1;
    }
    char *body = malloc(size ? size : 1);
    if (!body) return 0;
    if (size) memcpy(body, data, size);
    srv_error e;
    memset(&e, 0, sizeof e);
    int rc;
    if (mode <= 1) {
        g3_store_settings base = g3_store_settings_defaults();
        srv_conv_request r;
        rc = srv_conv_request_parse(body, size, mode == 0, &base, &r, &e);
        if (rc == 0) {
            if (r.has_settings) check_settings(&r.settings);
            if (r.title && (!srv_is_utf8(r.title, strlen(r.title)) || strlen(r.title) > SRV_NATIVE_MAX_TITLE)) abort();
            if (r.system && !srv_is_utf8(r.system, strlen(r.system))) abort();
            srv_conv_request_free(&r);
        }
    } else {
        srv_message_kind kind = mode == 6 ? SRV_MSG_REGENERATE : (mode == 3 || mode == 5) ? SRV_MSG_EDIT : SRV_MSG_SEND;
        srv_message_request r;
        rc = srv_message_request_parse(kind, ct, body, size, &r, &e);
        if (rc == 0) {
            if (kind != SRV_MSG_REGENERATE && (!r.content || !srv_is_utf8(r.content, strlen(r.content)))) abort();
            if (r.n_files > SRV_NATIVE_MAX_FILES) abort();
            volatile size_t sink = 0;
            for (size_t i = 0; i < r.n_files; i++) {
                if (!r.files[i].name) abort();
                if (r.files[i].size) sink += r.files[i].data[0] + r.files[i].data[r.files[i].size - 1];
            }
            (void)sink;
            srv_message_request_free(&r);
        }
    }
    if (rc != 0 && (e.status < 400 || e.status > 599 || !e.message[0])) abort();
    free(body);
    return 0;
}
