/* image.c: user images to 8-bit RGB. Refuses before decoding whatever is
 * over the limits (file size, then the pixel count from the header: a small
 * file can claim gigapixels), identifies the format from the bytes, decodes
 * (image_decode.c), applies the JPEG EXIF orientation (image_orient.c) and
 * composites alpha on white. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "base/checked_math.h"
#include "base/error.h"
#include "base/read_file.h"
#include "gemma3_media.h"
#include "media/media_internal.h"

#define SUPPORTED_IMAGES "JPEG, PNG, WebP, GIF or BMP"

g3_media_limits g3_media_limits_default(void) {
    g3_media_limits lim = {
        .max_image_bytes = (size_t)10 << 20,  /* the original demo's 10 MB */
        .max_video_bytes = (size_t)100 << 20, /* and 100 MB for videos */
        .max_pixels = 50000000,               /* 50 Mpx: a 8000 x 6000 photo fits, a bomb does not */
        .max_images = 4,
    };
    return lim;
}

g3_media_limits g3_media_limits_or_default(const g3_media_limits *lim) {
    return lim ? *lim : g3_media_limits_default();
}

const char *g3_media_format_size(uint64_t n, char *buf, size_t cap) {
    if (n < 10240)
        snprintf(buf, cap, "%llu bytes", (unsigned long long)n);
    else if (n < ((uint64_t)1 << 20))
        snprintf(buf, cap, "%.1f KB", (double)n / 1024.0);
    else
        snprintf(buf, cap, "%.1f MB", (double)n / (1024.0 * 1024.0));
    return buf;
}

int g3_media_check_file(const char *path, uint64_t max_bytes, const char *kind, uint64_t *size, g3_error *err) {
    struct stat st;
    if (stat(path, &st) != 0) return g3_fail(err, "cannot open %s '%s': %s", kind, path, strerror(errno));
    if (!S_ISREG(st.st_mode)) return g3_fail(err, "%s '%s' is not a regular file", kind, path);
    uint64_t n = (uint64_t)st.st_size;
    if (n == 0) return g3_fail(err, "%s '%s' is empty (0 bytes)", kind, path);
    if (n > max_bytes) {
        char have[32], limit[32];
        return g3_fail(err, "%s '%s' is %s, over the %s size limit of %s", kind, path,
                       g3_media_format_size(n, have, sizeof have), kind,
                       g3_media_format_size(max_bytes, limit, sizeof limit));
    }
    if (size) *size = n;
    return 0;
}

/* ---- format from the bytes ---------------------------------------------- */

static bool starts_with(const uint8_t *d, size_t n, const void *magic, size_t m) {
    return n >= m && memcmp(d, magic, m) == 0;
}

/* Text: no NUL and no control bytes other than whitespace in the first 512. */
static bool looks_like_text(const uint8_t *d, size_t n) {
    size_t m = n < 512 ? n : 512;
    for (size_t i = 0; i < m; i++) {
        uint8_t c = d[i];
        if (c < 0x20 && c != '\n' && c != '\r' && c != '\t' && c != '\f') return false;
        if (c == 0x7f) return false;
    }
    return m > 0;
}

/* What a refused file looks like, so the message can say "attach it as a
 * document" or "as a video" rather than only "unsupported". */
static const char *describe_other(const uint8_t *d, size_t n) {
    if (n == 0) return "empty";
    if (starts_with(d, n, "%PDF-", 5)) return "a PDF document";
    if (starts_with(d, n, "II*\0", 4) || starts_with(d, n, "MM\0*", 4)) return "a TIFF image";
    if (n >= 12 && memcmp(d + 4, "ftyp", 4) == 0) {
        const uint8_t *brand = d + 8;
        if (!memcmp(brand, "heic", 4) || !memcmp(brand, "heix", 4) || !memcmp(brand, "mif1", 4) ||
            !memcmp(brand, "msf1", 4) || !memcmp(brand, "heif", 4))
            return "a HEIC/HEIF image";
        if (!memcmp(brand, "avif", 4) || !memcmp(brand, "avis", 4)) return "an AVIF image";
        return "an MP4/MOV video";
    }
    if (starts_with(d, n, "\x1a\x45\xdf\xa3", 4)) return "a WebM/Matroska video";
    if (starts_with(d, n, "RIFF", 4) && n >= 12 && !memcmp(d + 8, "AVI ", 4)) return "an AVI video";
    if (starts_with(d, n, "PK\x03\x04", 4)) return "a ZIP archive (or an Office document)";
    if (starts_with(d, n, "\0\0\1\0", 4)) return "an ICO icon";
    if (looks_like_text(d, n)) return "text";
    return "unrecognized data";
}

g3_image_format g3_image_sniff(const uint8_t *d, size_t n, const char **what) {
    g3_image_format fmt = G3_IMAGE_UNKNOWN;
    if (starts_with(d, n, "\xff\xd8\xff", 3))
        fmt = G3_IMAGE_JPEG;
    else if (starts_with(d, n, "\x89PNG\r\n\x1a\n", 8))
        fmt = G3_IMAGE_PNG;
    else if (starts_with(d, n, "GIF87a", 6) || starts_with(d, n, "GIF89a", 6))
        fmt = G3_IMAGE_GIF;
    else if (starts_with(d, n, "BM", 2) && n >= 26)
        fmt = G3_IMAGE_BMP;
    else if (starts_with(d, n, "RIFF", 4) && n >= 12 && memcmp(d + 8, "WEBP", 4) == 0)
        fmt = G3_IMAGE_WEBP;
    if (what) *what = fmt == G3_IMAGE_UNKNOWN ? describe_other(d, n) : g3_image_format_name(fmt);
    return fmt;
}

const char *g3_image_format_name(g3_image_format fmt) {
    switch (fmt) {
    case G3_IMAGE_JPEG: return "JPEG";
    case G3_IMAGE_PNG: return "PNG";
    case G3_IMAGE_GIF: return "GIF";
    case G3_IMAGE_BMP: return "BMP";
    case G3_IMAGE_WEBP: return "WebP";
    default: return "unknown";
    }
}

/* ---- pixels ------------------------------------------------------------- */

/* RGBA -> RGB over white, in place (the RGB result is the buffer's first
 * 3/4): out = (c * a + 255 * (255 - a)) / 255, rounded. */
static void composite_on_white(uint8_t *px, size_t n_pixels) {
    for (size_t i = 0; i < n_pixels; i++) {
        const uint8_t *s = px + 4 * i;
        uint32_t a = s[3];
        uint8_t rgb[3];
        for (int c = 0; c < 3; c++) rgb[c] = (uint8_t)((s[c] * a + 255u * (255u - a) + 127u) / 255u);
        memcpy(px + 3 * i, rgb, 3);
    }
}

static int check_pixels(const char *name, uint32_t w, uint32_t h, uint64_t max_pixels, g3_error *err) {
    if (w == 0 || h == 0) return g3_fail(err, "'%s' has a zero dimension (%u x %u pixels)", name, w, h);
    uint64_t n = (uint64_t)w * h;
    if (n > max_pixels)
        return g3_fail(err,
                       "'%s' is %u x %u pixels (%.1f megapixels), over the limit of %.1f megapixels; "
                       "refused before decoding",
                       name, w, h, (double)n / 1e6, (double)max_pixels / 1e6);
    return 0;
}

static int load_named(const uint8_t *data, size_t len, const char *name, const g3_media_limits *lim_in,
                      g3_image *out, g3_error *err) {
    memset(out, 0, sizeof *out);
    g3_media_limits lim = g3_media_limits_or_default(lim_in);
    if (!data || len == 0) return g3_fail(err, "'%s' is empty (0 bytes)", name);
    if (len > lim.max_image_bytes) {
        char have[32], limit[32];
        return g3_fail(err, "image '%s' is %s, over the image size limit of %s", name,
                       g3_media_format_size(len, have, sizeof have),
                       g3_media_format_size(lim.max_image_bytes, limit, sizeof limit));
    }
    const char *what = NULL;
    g3_image_format fmt = g3_image_sniff(data, len, &what);
    if (fmt == G3_IMAGE_UNKNOWN)
        return g3_fail(err, "'%s' is not a supported image (it looks like %s); images must be " SUPPORTED_IMAGES,
                       name, what);

    g3_image_header hdr;
    if (g3_image_probe(fmt, data, len, name, &hdr, err)) return -1;
    if (check_pixels(name, hdr.width, hdr.height, lim.max_pixels, err)) return -1;

    uint8_t *px = NULL;
    int channels = 0;
    if (g3_image_decode(fmt, data, len, name, &hdr, &px, &channels, err)) return -1;
    size_t n_pixels = (size_t)hdr.width * hdr.height; /* fits: checked against max_pixels and allocated */
    if (channels == 4) {
        composite_on_white(px, n_pixels);
        uint8_t *shrunk = realloc(px, n_pixels * 3);
        if (shrunk) px = shrunk; /* a failed shrink keeps the larger buffer, still valid */
    }
    out->width = hdr.width;
    out->height = hdr.height;
    out->rgb = px;
    if (g3_image_orient(out, hdr.orientation, err)) {
        g3_image_free(out);
        return g3_error_prefix(err, "'%s': ", name);
    }
    return 0;
}

int g3_image_load_memory(const uint8_t *data, size_t len, const g3_media_limits *lim, g3_image *out,
                         g3_error *err) {
    return load_named(data, len, "image data", lim, out, err);
}

int g3_image_load(const char *path, const g3_media_limits *lim_in, g3_image *out, g3_error *err) {
    memset(out, 0, sizeof *out);
    g3_media_limits lim = g3_media_limits_or_default(lim_in);
    /* stat first for a message in the limit's own units; g3_read_file checks
     * again on the open file, so a file growing in between is still refused */
    if (g3_media_check_file(path, lim.max_image_bytes, "image", NULL, err)) return -1;
    char *data = NULL;
    size_t len = 0;
    if (g3_read_file(path, lim.max_image_bytes, &data, &len, err)) return -1;
    int rc = load_named((const uint8_t *)data, len, path, &lim, out, err);
    free(data);
    return rc;
}

void g3_image_free(g3_image *img) {
    if (!img) return;
    free(img->rgb);
    img->rgb = NULL;
    img->width = img->height = 0;
}
