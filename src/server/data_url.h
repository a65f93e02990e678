/* data_url.h: images sent inline as RFC 2397 data: URLs.
 *
 * The API takes images only as `data:image/...;base64,...` (the server
 * fetches nothing, so an http(s) URL is refused with its own message). The
 * bytes are decoded here and sniffed for a format the image decoder reads
 * (JPEG, PNG, WebP, GIF, BMP), so a wrong upload is a 400 naming the field
 * rather than a failure later on the engine thread. */
#ifndef G3_SERVER_DATA_URL_H
#define G3_SERVER_DATA_URL_H

#include <stddef.h>
#include <stdint.h>

#include "server/api_error.h"

/* Decodes url into *data (malloc'd, *len bytes). A refusal names param
 * (400): not a data: URL, a remote URL, not base64, not an image, more than
 * max_bytes once decoded. */
int srv_data_url_decode(const char *url, size_t url_len, size_t max_bytes, const char *param, uint8_t **data,
                        size_t *len, srv_error *e);

/* The image format the bytes start with ("jpeg", "png", ...), or NULL. */
const char *srv_image_format(const uint8_t *data, size_t len);

#endif
