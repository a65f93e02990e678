/* gemma3_media.h: turning user files into model input.
 *
 * Documents become message text. The same code serves a path (`/file` in the
 * terminal chat) and bytes (an HTTP attachment: name, declared media type,
 * bytes), so both give the same text. The bytes decide what a document is;
 * the name's extension picks the code fence's language, and the declared
 * media type only refuses what is plainly not a document (an image, a ZIP).
 *  - PDF (MuPDF): "File: NAME" then one "Page N:" header per page with its
 *    text; pages without text are skipped (no header); a PDF with no text at
 *    all (a scan), an encrypted one (a user password) or a damaged one is
 *    refused with the reason (MuPDF's own message after it).
 *  - Text, Markdown, source: UTF-8 as is (invalid bytes become U+FFFD and are
 *    counted); UTF-16 LE/BE with a byte-order mark converted; a UTF-8 BOM
 *    dropped; text that is not UTF-8 (more invalid bytes than valid multi-byte
 *    sequences) read as Windows-1252, the superset of Latin-1 that Windows
 *    files use; binary data refused (NUL bytes, or more than 1 byte in 20 a
 *    control character). Wrapped as "File: NAME" and a code fence: ```c for
 *    .c/.h and so on by extension, a plain ``` for .txt, .md and unknown names;
 *    the fence is longer than any run of backticks in the text.
 * Limits (g3_document_limits, checked, never a silent truncation): the file
 * (10 MB), the text produced (16 MiB), a PDF's pages (2000), the memory
 * MuPDF may use for one PDF (256 MiB) and the time for its pages (60 s).
 *
 * Images: JPEG, PNG, WebP, GIF (first frame), BMP, decoded to 8-bit RGB with
 * EXIF orientation applied (JPEG) and alpha composited on white; refused
 * before decoding when the file or the pixel count is over the limits.
 * Video: MP4/MOV/WebM decoded with FFmpeg's libraries, N frames evenly spaced
 * over the whole clip, each with its timestamp, from a file or from bytes. */
#ifndef GEMMA3_MEDIA_H
#define GEMMA3_MEDIA_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "gemma3.h"

#ifdef __cplusplus
extern "C" {
#endif

/* ---- documents ---------------------------------------------------------- */

#define G3_DOCUMENT_MAX_BYTES ((size_t)10 << 20) /* the file or attachment: the original demo's 10 MB */
/* The UTF-8 text produced: 16 MiB, about 4M tokens, 32x what the largest
 * Gemma 3 context (128K tokens) holds; the chat layer refuses a document that
 * does not fit its context, this bounds the memory before it gets there. */
#define G3_DOCUMENT_MAX_TEXT ((size_t)16 << 20)
#define G3_DOCUMENT_MAX_PAGES 2000u /* a PDF's pages, text or not (bounds the time) */
/* MuPDF's memory for one PDF: a small file can inflate to gigabytes. */
#define G3_DOCUMENT_MAX_PDF_MEMORY ((size_t)256 << 20)
/* Reading one PDF's pages: 10 MB of deflated content is gigabytes of
 * operators (minutes of work); 2000 ordinary pages take seconds. */
#define G3_DOCUMENT_MAX_PDF_SECONDS 60.0

typedef struct g3_document_limits {
    size_t max_bytes;   /* the file or the attachment's bytes */
    size_t max_text;    /* the text produced, header and fences included */
    uint32_t max_pages; /* PDF pages */
    size_t max_pdf_memory; /* what MuPDF may allocate while reading one PDF */
    double max_pdf_seconds; /* wall time for one PDF's pages */
} g3_document_limits;

/* Start from these and change what differs: every field is a real limit. */
g3_document_limits g3_document_limits_default(void);

typedef enum g3_document_kind {
    G3_DOCUMENT_TEXT = 0, /* plain text, Markdown, unknown names: a plain fence */
    G3_DOCUMENT_CODE = 1, /* a source file: fenced with its language */
    G3_DOCUMENT_PDF = 2
} g3_document_kind;

/* What a failed call returns (0 is success), so a server can answer 415/413
 * without reading the message. Every value is negative: `if (f(...))` and
 * `f(...) != 0` test for failure. */
typedef enum g3_document_status {
    G3_DOCUMENT_OK = 0,
    G3_DOCUMENT_FAILED = -1,      /* unreadable: I/O, a damaged or encrypted PDF, no text, out of memory */
    G3_DOCUMENT_UNSUPPORTED = -2, /* not a document: an image, an archive, binary data (HTTP 415) */
    G3_DOCUMENT_TOO_LARGE = -3    /* over a limit: bytes, text, pages, a PDF's memory or time (HTTP 413) */
} g3_document_status;

typedef struct g3_document {
    char *text;               /* malloc'd, NUL-terminated UTF-8 message text (no NUL inside) */
    size_t len;               /* strlen(text) */
    g3_document_kind kind;
    const char *encoding;     /* static: "UTF-8", "UTF-16LE", "UTF-16BE", "Windows-1252", "PDF" */
    const char *language;     /* static: the fence's language ("c", "python"...), "" when none */
    size_t n_replaced;        /* invalid bytes or UTF-16 units that became U+FFFD */
    uint32_t n_pages;         /* PDF: pages in the file */
    uint32_t n_pages_text;    /* PDF: pages with text (each has a "Page N:" header) */
    bool pdf_repaired;        /* PDF: MuPDF rebuilt a broken cross-reference table (the text is complete) */
} g3_document;

/* A file. Messages name the path; the header names its last component.
 * lim may be NULL (the defaults). Returns 0 or a g3_document_status. */
int g3_document_from_file(const char *path, const g3_document_limits *lim, g3_document *out, g3_error *err);

/* Bytes received with a name (for the header, the extension and messages; may
 * be NULL: "attachment") and a declared media type (may be NULL or
 * "application/octet-stream": unknown; parameters such as charset are
 * ignored, the bytes decide). Returns 0 or a g3_document_status. */
int g3_document_from_memory(const char *name, const char *media_type, const void *data, size_t len,
                            const g3_document_limits *lim, g3_document *out, g3_error *err);

void g3_document_free(g3_document *doc);

/* The first API, kept for its callers: g3_document_from_file with the default
 * limits but max_bytes; *text is malloc'd; *n_replaced counts the invalid
 * bytes replaced. Returns 0 or -1, as it always did. */
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
/* The same from a video's bytes in memory (an upload): the same frames as
 * from the file. len is checked against lim->max_video_bytes; data is only
 * read, and only during the call. */
int g3_video_sample_memory(const void *data, size_t len, uint32_t n_frames, const g3_media_limits *lim,
                           g3_video_frame **frames, uint32_t *n_out, g3_error *err);
void g3_video_frames_free(g3_video_frame *frames, uint32_t n);

#ifdef __cplusplus
}
#endif

#endif
