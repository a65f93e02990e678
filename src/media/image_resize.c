/* image_resize.c: an RGB image to the vision encoder's size x size input,
 * normalized, CHW.
 *
 * STRETCH reproduces the official Gemma 3 processor (HF Gemma3ImageProcessor,
 * resample = 2 = PIL BILINEAR): Pillow's Resample.c convolution. The filter
 * is a triangle whose support is 1 input pixel on upscaling and `scale`
 * pixels when reducing by `scale` (so downscaling averages, i.e. antialias),
 * the weights are normalized per output pixel, turned into 22-bit fixed
 * point, applied horizontally then vertically with an 8-bit rounded image in
 * between, as Pillow does.
 *
 * PAD reproduces llama.cpp's mtmd (tools/mtmd/mtmd-image.cpp), which made
 * the golden data: scale to fit keeping the aspect ratio (float math, sizes
 * rounded up), corner-aligned bilinear interpolation without antialias,
 * truncated to 8 bits, pasted centered on black.
 *
 * An image already size x size is only normalized, in both modes. */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "base/checked_math.h"
#include "base/error.h"
#include "gemma3_media.h"

#define PRECISION_BITS (32 - 8 - 2) /* Pillow's: 8-bit pixels, 2 bits of headroom */

/* ---- STRETCH: Pillow's separable resampling ----------------------------- */

/* For each output index: the first input index, the tap count, and where its
 * weights start in k[] (stored back to back: an extreme aspect ratio would
 * make Pillow's out x max_taps table huge). */
typedef struct taps {
    uint32_t *first, *count;
    size_t *at;
    int32_t *k;
} taps;

static void taps_free(taps *t) {
    free(t->first);
    free(t->count);
    free(t->at);
    free(t->k);
    memset(t, 0, sizeof *t);
}

static double triangle(double x) {
    x = fabs(x);
    return x < 1.0 ? 1.0 - x : 0.0;
}

/* Pillow's precompute_coeffs for box (0, in_size) and the BILINEAR filter,
 * then normalize_coeffs_8bpc. */
static int taps_init(taps *t, uint32_t in_size, uint32_t out_size, g3_error *err) {
    memset(t, 0, sizeof *t);
    double scale = (double)(float)in_size / out_size; /* Pillow passes the box as floats */
    double filterscale = scale < 1.0 ? 1.0 : scale;
    double support = 1.0 * filterscale, ss = 1.0 / filterscale;
    t->first = calloc(out_size, sizeof *t->first);
    t->count = calloc(out_size, sizeof *t->count);
    t->at = calloc(out_size, sizeof *t->at);
    if (!t->first || !t->count || !t->at) goto oom;
    size_t total = 0;
    for (uint32_t xx = 0; xx < out_size; xx++) {
        double center = (xx + 0.5) * scale;
        /* rounded by truncation toward zero, as Pillow's (int) casts */
        int64_t lo = (int64_t)(center - support + 0.5), hi = (int64_t)(center + support + 0.5);
        if (lo < 0) lo = 0;
        if (hi > in_size) hi = in_size;
        if (hi < lo) hi = lo;
        t->first[xx] = (uint32_t)lo;
        t->count[xx] = (uint32_t)(hi - lo);
        t->at[xx] = total;
        if (g3_add_overflow_size(total, t->count[xx], &total)) goto oom;
    }
    size_t bytes;
    if (g3_mul_overflow_size(total ? total : 1, sizeof *t->k, &bytes) || !(t->k = malloc(bytes))) goto oom;
    for (uint32_t xx = 0; xx < out_size; xx++) {
        double center = (xx + 0.5) * scale, ww = 0.0;
        int32_t *k = t->k + t->at[xx];
        for (uint32_t x = 0; x < t->count[xx]; x++) ww += triangle((x + t->first[xx] - center + 0.5) * ss);
        for (uint32_t x = 0; x < t->count[xx]; x++) {
            double v = triangle((x + t->first[xx] - center + 0.5) * ss);
            if (ww != 0.0) v /= ww;
            k[x] = (int32_t)(v < 0 ? -0.5 + v * (1 << PRECISION_BITS) : 0.5 + v * (1 << PRECISION_BITS));
        }
    }
    return 0;
oom:
    taps_free(t);
    return g3_fail(err, "out of memory preparing the image resize (%u -> %u)", in_size, out_size);
}

static uint8_t clip8(int64_t acc) {
    int64_t v = acc >> PRECISION_BITS; /* acc >= 0 with a triangle filter; the clamp is for safety */
    return (uint8_t)(v < 0 ? 0 : v > 255 ? 255 : v);
}

/* src: w_in x h RGB -> dst: w_out x h RGB */
static void resample_rows(const uint8_t *src, size_t w_in, size_t h, uint8_t *dst, size_t w_out, const taps *t) {
    for (size_t y = 0; y < h; y++) {
        const uint8_t *row = src + y * w_in * 3;
        uint8_t *out = dst + y * w_out * 3;
        for (size_t xx = 0; xx < w_out; xx++) {
            const int32_t *k = t->k + t->at[xx];
            const uint8_t *p = row + (size_t)t->first[xx] * 3;
            int64_t a0 = 1 << (PRECISION_BITS - 1), a1 = a0, a2 = a0;
            for (uint32_t x = 0; x < t->count[xx]; x++) {
                a0 += (int64_t)p[3 * x + 0] * k[x];
                a1 += (int64_t)p[3 * x + 1] * k[x];
                a2 += (int64_t)p[3 * x + 2] * k[x];
            }
            out[3 * xx + 0] = clip8(a0);
            out[3 * xx + 1] = clip8(a1);
            out[3 * xx + 2] = clip8(a2);
        }
    }
}

/* src: w x h_in RGB -> dst: w x h_out RGB; acc: w * 3 accumulators */
static void resample_cols(const uint8_t *src, size_t w, uint8_t *dst, size_t h_out, const taps *t, int64_t *acc) {
    size_t row_len = w * 3;
    for (size_t yy = 0; yy < h_out; yy++) {
        const int32_t *k = t->k + t->at[yy];
        for (size_t i = 0; i < row_len; i++) acc[i] = 1 << (PRECISION_BITS - 1);
        for (uint32_t y = 0; y < t->count[yy]; y++) {
            const uint8_t *row = src + ((size_t)t->first[yy] + y) * row_len;
            for (size_t i = 0; i < row_len; i++) acc[i] += (int64_t)row[i] * k[y];
        }
        for (size_t i = 0; i < row_len; i++) dst[yy * row_len + i] = clip8(acc[i]);
    }
}

/* Resizes to size x size into dst (size * size * 3 bytes). */
static int resize_stretch(const g3_image *img, uint32_t size, uint8_t *dst, g3_error *err) {
    size_t w = img->width, h = img->height, mid_bytes, acc_bytes;
    if (g3_mul_overflow_size((size_t)size * 3, h, &mid_bytes) ||
        g3_mul_overflow_size((size_t)size * 3, sizeof(int64_t), &acc_bytes))
        return g3_fail(err, "image too large to resize (%zu x %zu)", w, h);
    uint8_t *mid = w == size ? NULL : malloc(mid_bytes);
    int64_t *acc = malloc(acc_bytes);
    taps th = {0}, tv = {0};
    int rc = -1;
    if ((w != size && !mid) || !acc) {
        g3_fail(err, "out of memory resizing a %zu x %zu image", w, h);
        goto done;
    }
    const uint8_t *rows = img->rgb;
    if (w != size) { /* Pillow skips a pass whose size does not change */
        if (taps_init(&th, img->width, size, err)) goto done;
        resample_rows(img->rgb, w, h, mid, size, &th);
        rows = mid;
    }
    if (h != size) {
        if (taps_init(&tv, img->height, size, err)) goto done;
        resample_cols(rows, size, dst, size, &tv, acc);
    } else {
        memcpy(dst, rows, (size_t)size * size * 3);
    }
    rc = 0;
done:
    taps_free(&th);
    taps_free(&tv);
    free(mid);
    free(acc);
    return rc;
}

/* ---- PAD: llama.cpp mtmd ------------------------------------------------ */

static float lerpf(float s, float e, float t) { return s + (e - s) * t; }

/* mtmd's resize_bilinear: corner-aligned, float, truncated to uint8. */
static void bilinear_llama(const g3_image *img, uint8_t *dst, int tw, int th, size_t dst_stride, int ox, int oy) {
    int sw = (int)img->width, sh = (int)img->height;
    float xr = tw > 1 ? (float)(sw - 1) / (float)(tw - 1) : 0.0f;
    float yr = th > 1 ? (float)(sh - 1) / (float)(th - 1) : 0.0f;
    for (int y = 0; y < th; y++) {
        float py = (float)y * yr;
        int y0 = (int)py < sh - 1 ? (int)py : sh - 1, y1 = y0 + 1 < sh - 1 ? y0 + 1 : sh - 1;
        float yf = py - (float)y0;
        uint8_t *out = dst + (size_t)(oy + y) * dst_stride + (size_t)ox * 3;
        for (int x = 0; x < tw; x++) {
            float px = (float)x * xr;
            int x0 = (int)px < sw - 1 ? (int)px : sw - 1, x1 = x0 + 1 < sw - 1 ? x0 + 1 : sw - 1;
            float xf = px - (float)x0;
            const uint8_t *r0 = img->rgb + (size_t)y0 * sw * 3, *r1 = img->rgb + (size_t)y1 * sw * 3;
            for (int c = 0; c < 3; c++) {
                float top = lerpf(r0[3 * x0 + c], r0[3 * x1 + c], xf);
                float bottom = lerpf(r1[3 * x0 + c], r1[3 * x1 + c], xf);
                out[3 * x + c] = (uint8_t)lerpf(top, bottom, yf);
            }
        }
    }
}

static void resize_pad(const g3_image *img, uint32_t size, uint8_t *dst) {
    float s = (float)size;
    float scale_w = s / (float)img->width, scale_h = s / (float)img->height;
    float scale = scale_w < scale_h ? scale_w : scale_h;
    int nw = (int)ceilf((float)img->width * scale), nh = (int)ceilf((float)img->height * scale);
    if (nw > (int)size) nw = (int)size;
    if (nh > (int)size) nh = (int)size;
    if (nw < 1) nw = 1; /* mtmd clamps a zero target to 1 */
    if (nh < 1) nh = 1;
    memset(dst, 0, (size_t)size * size * 3); /* black bars */
    bilinear_llama(img, dst, nw, nh, (size_t)size * 3, ((int)size - nw) / 2, ((int)size - nh) / 2);
}

/* ---- normalize ---------------------------------------------------------- */

static void to_chw(const uint8_t *rgb, uint32_t size, const float mean[3], const float std[3], float *out) {
    float lut[3][256];
    for (int c = 0; c < 3; c++)
        for (int v = 0; v < 256; v++) /* rescale 1/255 then normalize, rounded once to float */
            lut[c][v] = (float)(((double)v / 255.0 - (double)mean[c]) / (double)std[c]);
    size_t plane = (size_t)size * size;
    for (size_t i = 0; i < plane; i++)
        for (int c = 0; c < 3; c++) out[(size_t)c * plane + i] = lut[c][rgb[3 * i + c]];
}

int g3_image_to_tensor(const g3_image *img, uint32_t size, g3_resize_mode mode, const float mean[3],
                       const float std[3], float *out, g3_error *err) {
    if (!img || !img->rgb || img->width == 0 || img->height == 0)
        return g3_fail(err, "image to tensor: empty image");
    if (size == 0 || size > 65536) return g3_fail(err, "image to tensor: bad target size %u", size);
    if (!mean || !std || !out) return g3_fail(err, "image to tensor: missing mean, std or output");
    for (int c = 0; c < 3; c++)
        if (!(std[c] != 0.0f) || !isfinite(std[c]) || !isfinite(mean[c]))
            return g3_fail(err, "image to tensor: bad normalization (mean %g, std %g)", mean[c], std[c]);
    if (mode != G3_RESIZE_STRETCH && mode != G3_RESIZE_PAD)
        return g3_fail(err, "image to tensor: unknown resize mode %d", (int)mode);
    if (img->width > INT32_MAX / 4 || img->height > INT32_MAX / 4)
        return g3_fail(err, "image to tensor: image too large (%u x %u)", img->width, img->height);

    if (img->width == size && img->height == size) {
        to_chw(img->rgb, size, mean, std, out);
        return 0;
    }
    size_t bytes = (size_t)size * size * 3; /* size <= 65536: no overflow on 64-bit size_t */
    uint8_t *square = malloc(bytes);
    if (!square) return g3_fail(err, "out of memory resizing the image to %u x %u", size, size);
    if (mode == G3_RESIZE_STRETCH) {
        if (resize_stretch(img, size, square, err)) {
            free(square);
            return -1;
        }
    } else {
        resize_pad(img, size, square);
    }
    to_chw(square, size, mean, std, out);
    free(square);
    return 0;
}
