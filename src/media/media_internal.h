/* media_internal.h: what the media files share and the public API does not
 * show: format sniffing, header probing, the decoders, EXIF orientation, and
 * the file-size check with its message. */
#ifndef G3_MEDIA_INTERNAL_H
#define G3_MEDIA_INTERNAL_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "base/error.h"
#include "gemma3_media.h"

typedef enum g3_image_format {
    G3_IMAGE_UNKNOWN = 0,
    G3_IMAGE_JPEG,
    G3_IMAGE_PNG,
    G3_IMAGE_GIF,
    G3_IMAGE_BMP,
    G3_IMAGE_WEBP
} g3_image_format;

/* The format from the first bytes (never the file name). For anything else,
 * *what (if not NULL) says what it looks like ("a PDF document", "text"...). */
g3_image_format g3_image_sniff(const uint8_t *data, size_t len, const char **what);
const char *g3_image_format_name(g3_image_format fmt);

/* Limits to use: the caller's, or the defaults when lim is NULL. */
g3_media_limits g3_media_limits_or_default(const g3_media_limits *lim);

/* "1234 bytes", "12.5 KB", "10.0 MB" (KB and MB are powers of 1024, as in
 * the "10 MB" limit). Returns buf. */
const char *g3_media_format_size(uint64_t n, char *buf, size_t cap);

/* Refuses a path that is not a regular file, is empty, or is over max_bytes,
 * with a message naming the file, its size and the limit. kind: "image",
 * "video". *size receives the size (may be NULL). */
int g3_media_check_file(const char *path, uint64_t max_bytes, const char *kind, uint64_t *size, g3_error *err);

/* ---- decoders (image_decode.c): name is only for messages ---------------- */

typedef struct g3_image_header {
    uint32_t width, height; /* as stored, before orientation */
    int orientation;        /* EXIF orientation 1-8 (JPEG); 1 for the others */
} g3_image_header;

/* Dimensions (and orientation) from the header alone, without decoding pixels. */
int g3_image_probe(g3_image_format fmt, const uint8_t *data, size_t len, const char *name, g3_image_header *hdr,
                   g3_error *err);

/* Decodes to 8-bit pixels, *channels = 3 (RGB) or 4 (RGBA, not premultiplied);
 * *pixels is malloc'd, width x height x channels, the header's size. */
int g3_image_decode(g3_image_format fmt, const uint8_t *data, size_t len, const char *name,
                    const g3_image_header *hdr, uint8_t **pixels, int *channels, g3_error *err);

/* ---- JPEG structure (image_jpeg.c) and orientation (image_orient.c) ---- */

/* Walks the JPEG segments (image_jpeg.c): the frame size from the SOF
 * header, *orientation = the EXIF orientation (1-8; 1 when absent or
 * invalid). Fails when the file stops before its end-of-image marker
 * (stb_image would silently decode the missing part as grey). */
int g3_jpeg_inspect(const uint8_t *data, size_t len, const char *name, uint32_t *width, uint32_t *height,
                    int *orientation, g3_error *err);

/* Applies an EXIF orientation (1-8) to img in place: rotates / flips the
 * pixels so the image appears upright; 2-4 keep the size, 5-8 swap it. */
int g3_image_orient(g3_image *img, int orientation, g3_error *err);

#endif
