#include "server/data_url.h"

#include <stdbool.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "base/base64.h"

const char *srv_image_format(const uint8_t *d, size_t n) {
    if (n >= 3 && d[0] == 0xFF && d[1] == 0xD8 && d[2] == 0xFF) return "jpeg";
    if (n >= 8 && !memcmp(d, "\x89PNG\r\n\x1a\n", 8)) return "png";
    if (n >= 12 && !memcmp(d, "RIFF", 4) && !memcmp(d + 8, "WEBP", 4)) return "webp";
    if (n >= 6 && (!memcmp(d, "GIF87a", 6) || !memcmp(d, "GIF89a", 6))) return "gif";
    if (n >= 2 && d[0] == 'B' && d[1] == 'M') return "bmp";
    return NULL;
}

static bool has_prefix_ci(const char *s, size_t n, const char *prefix) {
    size_t k = strlen(prefix);
    return n >= k && strncasecmp(s, prefix, k) == 0;
}

int srv_data_url_decode(const char *url, size_t n, size_t max_bytes, const char *param, uint8_t **data,
                        size_t *len, srv_error *e) {
    *data = NULL;
    *len = 0;
    if (has_prefix_ci(url, n, "http://") || has_prefix_ci(url, n, "https://"))
        return srv_bad_field(e, "image_url_not_supported", param,
                             "remote image URLs are not fetched (the server fetches nothing); send the image "
                             "inline as a data: URL (data:image/png;base64,...)");
    if (!has_prefix_ci(url, n, "data:"))
        return srv_bad_field(e, "invalid_image_url", param,
                             "expected a data: URL (data:image/png;base64,...), got %.*s%s",
                             (int)(n > 24 ? 24 : n), url, n > 24 ? "..." : ""); /* url need not end in a NUL */
    const char *comma = memchr(url, ',', n);
    if (!comma) return srv_bad_field(e, "invalid_image_url", param, "a data: URL needs a ',' before its data");
    /* The header between "data:" and ',': a media type and parameters. */
    const char *head = url + 5;
    size_t head_len = (size_t)(comma - head);
    if (!has_prefix_ci(head, head_len, "image/"))
        return srv_bad_field(e, "invalid_image_url", param, "the data: URL's media type must be image/..., got '%.*s'",
                             (int)(head_len > 40 ? 40 : head_len), head);
    if (head_len < 7 || strncasecmp(comma - 7, ";base64", 7) != 0)
        return srv_bad_field(e, "invalid_image_url", param, "the data: URL must be base64 (data:image/...;base64,...)");
    const char *b64 = comma + 1;
    size_t b64_len = n - (size_t)(b64 - url);
    if (b64_len == 0) return srv_bad_field(e, "invalid_image_url", param, "the data: URL holds no data");
    uint8_t *buf = malloc(g3_base64_decoded_max(b64_len) + 1);
    if (!buf) return srv_fail(e, 500, "server_error", NULL, param, "out of memory decoding %s", param);
    g3_error ge;
    size_t got = 0;
    if (g3_base64_decode(b64, b64_len, buf, &got, &ge)) {
        free(buf);
        return srv_bad_field(e, "invalid_base64", param, "bad base64 in the data: URL: %s", ge.msg);
    }
    if (got > max_bytes) {
        free(buf);
        return srv_bad_field(e, "image_too_large", param, "the image is %zu bytes; at most %zu", got, max_bytes);
    }
    if (!srv_image_format(buf, got)) {
        free(buf);
        return srv_bad_field(e, "invalid_image", param, "the data is not a JPEG, PNG, WebP, GIF or BMP image");
    }
    *data = buf;
    *len = got;
    return 0;
}
