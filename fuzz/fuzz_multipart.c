/* libFuzzer target: multipart/form-data bodies (src/server/multipart.c).
 * The input is a Content-Type value, a newline, then the body: the
 * boundary is taken from the Content-Type as the server does, then the
 * body (an exact-size copy without a NUL, as the HTTP layer hands it
 * over) is split. Every part must lie inside the body, have a name, and
 * there may be at most SRV_MP_MAX_PARTS; a refusal is a 4xx/5xx with a
 * message. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "server/multipart.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    const uint8_t *nl = memchr(data, '\n', size);
    if (!nl) return 0;
    size_t ct_len = (size_t)(nl - data);
    char *ct = malloc(ct_len + 1);
    if (!ct) return 0;
    memcpy(ct, data, ct_len);
    ct[ct_len] = 0;
    size_t len = size - ct_len - 1;
    char *body = malloc(len ? len : 1);
    if (!body) {
        free(ct);
        return 0;
    }
    if (len) memcpy(body, nl + 1, len);
    (void)srv_is_multipart_type(ct);
    char boundary[SRV_MP_MAX_BOUNDARY + 1];
    srv_error e;
    memset(&e, 0, sizeof e);
    if (srv_multipart_boundary(ct, boundary, sizeof boundary, &e) == 0) {
        if (strlen(boundary) == 0 || strlen(boundary) > SRV_MP_MAX_BOUNDARY) abort();
        srv_mp_body mp;
        memset(&e, 0, sizeof e);
        if (srv_multipart_parse(body, len, boundary, &mp, &e) == 0) {
            if (mp.n > SRV_MP_MAX_PARTS) abort();
            for (size_t i = 0; i < mp.n; i++) {
                const srv_mp_part *p = &mp.parts[i];
                if (!p->name) abort();
                if (p->len && (p->data < body || p->data + p->len > body + len)) abort(); /* inside the body */
                volatile size_t sink = strlen(p->name) + (p->filename ? strlen(p->filename) : 0) +
                                       (p->content_type ? strlen(p->content_type) : 0);
                (void)sink;
            }
            srv_multipart_free(&mp);
        } else if (e.status < 400 || e.status > 599 || !e.message[0]) {
            abort();
        }
    } else if (e.status < 400 || !e.message[0]) {
        abort();
    }
    free(body);
    free(ct);
    return 0;
}
