/* image_decode.c: header probing and pixel decoding. JPEG, PNG, GIF and BMP
 * through stb_image (compiled here, static, with only those four decoders),
 * WebP through libwebp.
 *
 * Dimensions come from our own reading of each header, not from stbi_info:
 * stb refuses some large headers with a bare "too large", and the caller
 * wants the real numbers to compare with the pixel limit before anything is
 * allocated. stb only ever sees an exact-size buffer (it is not hardened
 * against hostile input in every version); what it silently tolerates, a
 * truncated JPEG or BMP, is refused before it gets there. */
#include <limits.h>
#include <stdlib.h>
#include <string.h>

#include <webp/decode.h>

#include "base/checked_math.h"
#include "base/error.h"
#include "media/media_internal.h"

/* stb_image: private to this file (STB_IMAGE_STATIC) so it cannot clash
 * with another copy (Debian's libstb), memory input only, no assert() on
 * input, and its own warnings kept out of our -Werror build. */
#define STB_IMAGE_STATIC
#define STB_IMAGE_IMPLEMENTATION
#define STBI_ONLY_JPEG
#define STBI_ONLY_PNG
#define STBI_ONLY_GIF
#define STBI_ONLY_BMP
#define STBI_NO_STDIO
#define STBI_NO_LINEAR
#define STBI_NO_HDR
#define STBI_ASSERT(x) ((void)0)
#define STBI_MALLOC(sz) malloc(sz) /* so its result can be handed on and free()d */
#define STBI_REALLOC(p, sz) realloc(p, sz)
#define STBI_FREE(p) free(p)
#pragma GCC diagnostic push
#if defined(__clang__)
#pragma clang diagnostic ignored "-Wunknown-warning-option" /* some groups below are GCC's */
#endif
#pragma GCC diagnostic ignored "-Wshadow"
#pragma GCC diagnostic ignored "-Wsign-compare"
#pragma GCC diagnostic ignored "-Wunused-function"
#pragma GCC diagnostic ignored "-Wunused-parameter"
#pragma GCC diagnostic ignored "-Wunused-but-set-variable"
#pragma GCC diagnostic ignored "-Wimplicit-fallthrough"
#pragma GCC diagnostic ignored "-Wtype-limits"
#pragma GCC diagnostic ignored "-Wmisleading-indentation"
#pragma GCC diagnostic ignored "-Wmaybe-uninitialized"
#pragma GCC diagnostic ignored "-Wdouble-promotion"
#pragma GCC diagnostic ignored "-Wcast-qual"
#include <stb/stb_image.h>
#pragma GCC diagnostic pop
/* stb 2.27 declares stbi_set_unpremultiply_on_load_thread but defines it
 * under another name; with STB_IMAGE_STATIC that is an "unused function"
 * warning given at the end of the file, so it stays off from here on. */
#pragma GCC diagnostic ignored "-Wunused-function"

static uint32_t be32(const uint8_t *p) {
    return (uint32_t)p[0] << 24 | (uint32_t)p[1] << 16 | (uint32_t)p[2] << 8 | p[3];
}
static uint32_t le16(const uint8_t *p) { return (uint32_t)p[0] | (uint32_t)p[1] << 8; }
static uint32_t le32(const uint8_t *p) { return le16(p) | le16(p + 2) << 16; }

/* ---- headers ------------------------------------------------------------ */

static int probe_png(const uint8_t *d, size_t n, const char *name, g3_image_header *h, g3_error *err) {
    /* signature (8), then the IHDR chunk: length 13, "IHDR", width, height */
    if (n < 8 + 8 + 13 || be32(d + 8) != 13 || memcmp(d + 12, "IHDR", 4) != 0)
        return g3_fail(err, "'%s' is a corrupt or truncated PNG (no IHDR header)", name);
    h->width = be32(d + 16);
    h->height = be32(d + 20);
    if (h->width > INT32_MAX || h->height > INT32_MAX) /* PNG caps both at 2^31 - 1 */
        return g3_fail(err, "'%s' is a corrupt PNG (dimensions %u x %u)", name, h->width, h->height);
    return 0;
}

static int probe_gif(const uint8_t *d, size_t n, const char *name, g3_image_header *h, g3_error *err) {
    if (n < 13) return g3_fail(err, "'%s' is a truncated GIF (%zu bytes)", name, n);
    h->width = le16(d + 6); /* the logical screen, the canvas stb decodes into */
    h->height = le16(d + 8);
    return 0;
}

/* Uncompressed BMP pixel data must all be present: stb reads past the end
 * as zeros without complaint. */
static int probe_bmp(const uint8_t *d, size_t n, const char *name, g3_image_header *h, g3_error *err) {
    if (n < 26) return g3_fail(err, "'%s' is a truncated BMP (%zu bytes)", name, n);
    uint32_t dib = le32(d + 14), offset = le32(d + 10);
    if (dib == 12) { /* OS/2 BITMAPCOREHEADER: 16-bit sizes */
        h->width = le16(d + 18);
        h->height = le16(d + 20);
        return 0;
    }
    if (n < 34) return g3_fail(err, "'%s' is a truncated BMP (%zu bytes)", name, n);
    int32_t w = (int32_t)le32(d + 18), ht = (int32_t)le32(d + 22);
    if (w < 0 || ht == INT32_MIN) return g3_fail(err, "'%s' is a corrupt BMP (width %d, height %d)", name, w, ht);
    h->width = (uint32_t)w;
    h->height = (uint32_t)(ht < 0 ? -ht : ht); /* negative: stored top-down */
    uint32_t bpp = le16(d + 28), compression = le32(d + 30);
    if (compression == 0 || compression == 3 || compression == 6) { /* BI_RGB, BI_BITFIELDS, ALPHABITFIELDS */
        uint64_t row = ((uint64_t)h->width * bpp + 31) / 32 * 4, need;
        if (g3_mul_overflow_u64(row, h->height, &need) || g3_add_overflow_u64(need, offset, &need) || need > n)
            return g3_fail(err, "'%s' is a truncated BMP (%zu bytes; its header promises %u x %u pixels)", name, n,
                           h->width, h->height);
    }
    return 0;
}

static int probe_webp(const uint8_t *d, size_t n, const char *name, g3_image_header *h, g3_error *err) {
    WebPBitstreamFeatures f;
    VP8StatusCode st = WebPGetFeatures(d, n, &f);
    if (st != VP8_STATUS_OK)
        return g3_fail(err, "'%s' is a %s WebP (libwebp status %d)", name,
                       st == VP8_STATUS_NOT_ENOUGH_DATA ? "truncated" : "corrupt or unsupported", (int)st);
    if (f.has_animation)
        return g3_fail(err, "'%s' is an animated WebP, which is not supported (a GIF's first frame is)", name);
    if (f.width < 0 || f.height < 0) return g3_fail(err, "'%s' is a corrupt WebP", name);
    h->width = (uint32_t)f.width;
    h->height = (uint32_t)f.height;
    return 0;
}

int g3_image_probe(g3_image_format fmt, const uint8_t *data, size_t len, const char *name, g3_image_header *hdr,
                   g3_error *err) {
    memset(hdr, 0, sizeof *hdr);
    hdr->orientation = 1;
    switch (fmt) {
    case G3_IMAGE_PNG: return probe_png(data, len, name, hdr, err);
    case G3_IMAGE_GIF: return probe_gif(data, len, name, hdr, err);
    case G3_IMAGE_BMP: return probe_bmp(data, len, name, hdr, err);
    case G3_IMAGE_WEBP: return probe_webp(data, len, name, hdr, err);
    case G3_IMAGE_JPEG:
        return g3_jpeg_inspect(data, len, name, &hdr->width, &hdr->height, &hdr->orientation, err);
    default: return g3_fail(err, "'%s': unknown image format", name);
    }
}

/* ---- pixels ------------------------------------------------------------- */

/* Channels to ask stb for: 3, or 4 when the file may carry alpha. A PNG
 * always gets 4: a tRNS colour key (transparency without an alpha channel)
 * shows only in stb's 4-channel output. */
static int stb_channels(g3_image_format fmt, const uint8_t *data, int len) {
    int x, y, comp = 4;
    if (fmt == G3_IMAGE_PNG || !stbi_info_from_memory(data, len, &x, &y, &comp)) return 4;
    return comp == 2 || comp == 4 ? 4 : 3;
}

/* stb 2.27 does arithmetic and memcpy on a NULL buffer for an empty IDAT
 * chunk that comes before any image data: harmless in practice, but
 * undefined behaviour that sanitizer builds stop on (found by fuzzing). Such
 * chunks are valid and carry nothing, so stb gets a copy without them.
 * NULL: nothing to drop (or no memory: stb then gets the original). */
static uint8_t *png_drop_leading_empty_idat(const uint8_t *d, size_t n, size_t *out_len) {
    size_t end = 8; /* the walk stops at the first IDAT with data, IEND, or a chunk past the end */
    bool empty_idat = false;
    while (end + 12 <= n) {
        uint32_t len = be32(d + end);
        if (len > n - end - 12 || !memcmp(d + end + 4, "IEND", 4)) break;
        if (!memcmp(d + end + 4, "IDAT", 4)) {
            if (len > 0) break;
            empty_idat = true;
        }
        end += 12 + (size_t)len;
    }
    if (!empty_idat) return NULL;
    uint8_t *out = malloc(n);
    if (!out) return NULL;
    size_t o = 8; /* chunks before `end` are filtered; the rest is copied as it is */
    memcpy(out, d, 8);
    for (size_t i = 8; i < end;) {
        size_t chunk = 12 + (size_t)be32(d + i);
        if (be32(d + i) != 0 || memcmp(d + i + 4, "IDAT", 4) != 0) {
            memcpy(out + o, d + i, chunk);
            o += chunk;
        }
        i += chunk;
    }
    memcpy(out + o, d + end, n - end);
    *out_len = o + (n - end);
    return out;
}

static int decode_stb(const uint8_t *data, size_t len, const char *name, g3_image_format fmt,
                      const g3_image_header *hdr, uint8_t **pixels, int *channels, g3_error *err) {
    uint8_t *copy = NULL;
    if (fmt == G3_IMAGE_PNG && (copy = png_drop_leading_empty_idat(data, len, &len))) data = copy;
    if (len > INT_MAX) {
        free(copy);
        return g3_fail(err, "'%s' is too large for the decoder (%zu bytes)", name, len);
    }
    int want = stb_channels(fmt, data, (int)len);
    int w = 0, h = 0, comp = 0;
    uint8_t *px = stbi_load_from_memory(data, (int)len, &w, &h, &comp, want);
    free(copy);
    if (!px) {
        const char *why = stbi_failure_reason();
        return g3_fail(err, "'%s' is a corrupt or truncated %s (decoder: %s)", name, g3_image_format_name(fmt),
                       why ? why : "unknown error");
    }
    if (w <= 0 || h <= 0 || (uint32_t)w != hdr->width || (uint32_t)h != hdr->height) {
        stbi_image_free(px);
        return g3_fail(err, "'%s' is a corrupt %s (decoded %d x %d pixels, header says %u x %u)", name,
                       g3_image_format_name(fmt), w, h, hdr->width, hdr->height);
    }
    *pixels = px; /* STBI_MALLOC is malloc */
    *channels = want;
    return 0;
}

static int decode_webp(const uint8_t *data, size_t len, const char *name, const g3_image_header *hdr,
                       uint8_t **pixels, int *channels, g3_error *err) {
    WebPBitstreamFeatures f;
    if (WebPGetFeatures(data, len, &f) != VP8_STATUS_OK) return g3_fail(err, "'%s' is a corrupt WebP", name);
    int ch = f.has_alpha ? 4 : 3;
    size_t stride, bytes;
    if (g3_mul_overflow_size(hdr->width, (size_t)ch, &stride) || stride > INT_MAX ||
        g3_mul_overflow_size(stride, hdr->height, &bytes))
        return g3_fail(err, "'%s' is too large (%u x %u pixels)", name, hdr->width, hdr->height);
    uint8_t *px = malloc(bytes);
    if (!px) return g3_fail(err, "out of memory decoding '%s' (%zu bytes)", name, bytes);
    uint8_t *ok = ch == 4 ? WebPDecodeRGBAInto(data, len, px, bytes, (int)stride)
                          : WebPDecodeRGBInto(data, len, px, bytes, (int)stride);
    if (!ok) {
        free(px);
        return g3_fail(err, "'%s' is a corrupt or truncated WebP (libwebp could not decode it)", name);
    }
    *pixels = px;
    *channels = ch;
    return 0;
}

int g3_image_decode(g3_image_format fmt, const uint8_t *data, size_t len, const char *name,
                    const g3_image_header *hdr, uint8_t **pixels, int *channels, g3_error *err) {
    *pixels = NULL;
    *channels = 0;
    if (fmt == G3_IMAGE_WEBP) return decode_webp(data, len, name, hdr, pixels, channels, err);
    return decode_stb(data, len, name, fmt, hdr, pixels, channels, err);
}
