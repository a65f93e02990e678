/* gemma3_media.h: turning user files into model input.
 *
 * Documents: plain text, Markdown and source files are read as UTF-8 (bytes
 * that are not valid UTF-8 become U+FFFD, and the count is reported) and
 * wrapped with their file name so the model knows what it is reading. PDF
 * extraction arrives with its issue; until then PDFs are refused with a
 * message saying so.
 *
 * Images: JPEG, PNG, WebP, GIF (first frame), BMP, decoded to 8-bit RGB with
 * EXIF orientation applied (JPEG) and alpha composited on white; refused
 * before decoding when the file or the pixel count is over the limits.
 * Video: MP4/MOV/WebM decoded with FFmpeg's libraries, N frames evenly spaced
 * over the whole clip, each with its timestamp. */
#ifndef GEMMA3_MEDIA_H
#define GEMMA3_MEDIA_H

#include <stddef.h>
#include <stdint.h>

#include "gemma3.h"

#ifdef __cplusplus
extern "C" {
#endif

#define G3_DOCUMENT_MAX_BYTES (10u << 20) /* the original demo's 10 MB limit */

/* Reads a document and formats it for a message:
 *   "File: NAME\n```\nCONTENT\n```\n"
 * *text is malloc'd; *n_replaced counts invalid UTF-8 bytes replaced. */
int g3_document_read(const char *path, size_t max_bytes, char **text, size_t *n_replaced, g3_error *err);

/* ---- images and video --------------------------------------------------- */

typedef struct g3_media_limits {
    size_t max_image_bytes;   /* default 10 MB */
    size_t max_video_bytes;   /* default 100 MB */
    uint64_t max_pixels;      /* checked from the header, before decoding; default 50 Mpx */
    uint32_t max_images;      /* per message; default 4 */
} g3_media_limits;

g3_media_limits g3_media_limits_default(void);

typedef struct g3_image {
    uint32_t width, height;
    uint8_t *rgb; /* width * height * 3 bytes, row-major, malloc'd */
} g3_image;

int g3_image_load(const char *path, const g3_media_limits *lim, g3_image *out, g3_error *err);
int g3_image_load_memory(const uint8_t *data, size_t len, const g3_media_limits *lim, g3_image *out,
                         g3_error *err);
void g3_image_free(g3_image *img);

typedef enum g3_resize_mode {
    G3_RESIZE_STRETCH = 0, /* the official Gemma 3 processor: straight to the square, bilinear, antialiased */
    G3_RESIZE_PAD = 1      /* llama.cpp (golden data): keep the aspect ratio, pad with black, centered */
} g3_resize_mode;

/* Resizes to size x size and normalizes: out[c][y][x] = (px / 255 - mean[c]) / std[c],
 * out holding 3 * size * size floats (CHW). */
int g3_image_to_tensor(const g3_image *img, uint32_t size, g3_resize_mode mode, const float mean[3],
                       const float std[3], float *out, g3_error *err);

typedef struct g3_video_frame {
    g3_image image;
    double seconds; /* presentation time from the start of the clip */
} g3_video_frame;

/* n_frames evenly spaced over the whole clip (the original demo: 2 by
 * default, at most 4). *frames is malloc'd; free with g3_video_frames_free. */
int g3_video_sample(const char *path, uint32_t n_frames, const g3_media_limits *lim, g3_video_frame **frames,
                    uint32_t *n_out, g3_error *err);
void g3_video_frames_free(g3_video_frame *frames, uint32_t n);

#ifdef __cplusplus
}
#endif

#endif
