/* test_media: images and video for the vision model. Every input is made
 * here: PNG/BMP with stb_image_write, JPEG with libavcodec's MJPEG encoder,
 * WebP with libwebp's encoder, a GIF and EXIF segments by hand, video clips
 * with libavcodec / libavformat. Expected pixels and resize values are
 * derived by hand in the comments. */
#include <math.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include <cmocka.h>

#include <libavcodec/avcodec.h>
#include <libavformat/avformat.h>
#include <libavutil/display.h>
#include <libswscale/swscale.h>
#include <webp/encode.h>

#define STB_IMAGE_WRITE_STATIC
#define STB_IMAGE_WRITE_IMPLEMENTATION
#pragma GCC diagnostic push
#if defined(__clang__)
#pragma clang diagnostic ignored "-Wunknown-warning-option" /* some groups below are GCC's */
#endif
#pragma GCC diagnostic ignored "-Wshadow"
#pragma GCC diagnostic ignored "-Wsign-compare"
#pragma GCC diagnostic ignored "-Wunused-function"
#pragma GCC diagnostic ignored "-Wunused-parameter"
#pragma GCC diagnostic ignored "-Wmissing-field-initializers"
#pragma GCC diagnostic ignored "-Wimplicit-fallthrough"
#pragma GCC diagnostic ignored "-Wmaybe-uninitialized"
#include <stb/stb_image_write.h>
#pragma GCC diagnostic pop

#include "gemma3_media.h"
#include "test_util.h"
#include "video_clip.h"

#define TMP(name) G3_TEST_TMP "/media-" name
#define GOLDEN_PNG G3_GOLDEN_DIR "/tiny-gemma3/vision/img1_64x64.png"

static const float HALF[3] = {0.5f, 0.5f, 0.5f};

/* ---- helpers ------------------------------------------------------------ */

static const uint8_t *px(const g3_image *img, uint32_t x, uint32_t y) {
    return img->rgb + 3 * ((size_t)y * img->width + x);
}

static void assert_px(const g3_image *img, uint32_t x, uint32_t y, int r, int g, int b, int tol) {
    const uint8_t *p = px(img, x, y);
    if (abs(p[0] - r) > tol || abs(p[1] - g) > tol || abs(p[2] - b) > tol)
        fail_msg("pixel (%u,%u) is (%d,%d,%d), expected (%d,%d,%d) +- %d", x, y, p[0], p[1], p[2], r, g, b, tol);
}

static void assert_err(const g3_error *err, const char *needle) {
    if (!strstr(err->msg, needle)) fail_msg("error '%s' does not mention '%s'", err->msg, needle);
}

/* the normalized value of an 8-bit level with mean = std = 0.5 */
static float norm(int v) { return (float)(((double)v / 255.0 - 0.5) / 0.5); }

static float *tensor(const g3_image *img, uint32_t size, g3_resize_mode mode) {
    float *t = malloc((size_t)3 * size * size * sizeof *t);
    assert_non_null(t);
    g3_error err = {{0}};
    if (g3_image_to_tensor(img, size, mode, HALF, HALF, t, &err)) fail_msg("%s", err.msg);
    return t;
}

static float at(const float *t, uint32_t size, int c, uint32_t x, uint32_t y) {
    return t[(size_t)c * size * size + (size_t)y * size + x];
}

static g3_image solid(uint32_t w, uint32_t h, uint8_t r, uint8_t g, uint8_t b) {
    g3_image img = {w, h, malloc((size_t)w * h * 3)};
    assert_non_null(img.rgb);
    for (size_t i = 0; i < (size_t)w * h; i++) {
        img.rgb[3 * i] = r;
        img.rgb[3 * i + 1] = g;
        img.rgb[3 * i + 2] = b;
    }
    return img;
}

static g3_image load_ok(const char *path) {
    g3_image img;
    g3_error err = {{0}};
    if (g3_image_load(path, NULL, &img, &err)) fail_msg("%s", err.msg);
    return img;
}

/* A JPEG from libavcodec's MJPEG encoder (4:4:4, quantizer 2): one MJPEG
 * frame is a complete JPEG file. (stb_image_write's JPEG writer trips
 * UBSan, so the tests do not use it.) */
static uint8_t *encode_jpeg(const uint8_t *rgb, int w, int h, size_t *len) {
    const AVCodec *codec = avcodec_find_encoder(AV_CODEC_ID_MJPEG);
    assert_non_null(codec);
    AVCodecContext *c = avcodec_alloc_context3(codec);
    assert_non_null(c);
    c->width = w;
    c->height = h;
    c->pix_fmt = AV_PIX_FMT_YUVJ444P;
    c->color_range = AVCOL_RANGE_JPEG;
    c->time_base = (AVRational){1, 25};
    c->flags |= AV_CODEC_FLAG_QSCALE;
    c->global_quality = FF_QP2LAMBDA * 2;
    assert_true(avcodec_open2(c, codec, NULL) >= 0);
    AVFrame *f = av_frame_alloc();
    AVPacket *pkt = av_packet_alloc();
    f->format = c->pix_fmt;
    f->width = w;
    f->height = h;
    f->quality = c->global_quality;
    assert_true(av_frame_get_buffer(f, 0) >= 0);
    struct SwsContext *sws = sws_getContext(w, h, AV_PIX_FMT_RGB24, w, h, AV_PIX_FMT_YUVJ444P,
                                            SWS_BILINEAR | SWS_ACCURATE_RND, NULL, NULL, NULL);
    assert_non_null(sws);
    const uint8_t *src[1] = {rgb};
    int src_stride[1] = {w * 3};
    assert_int_equal(sws_scale(sws, src, src_stride, 0, h, f->data, f->linesize), h);
    assert_true(avcodec_send_frame(c, f) >= 0);
    assert_true(avcodec_receive_packet(c, pkt) >= 0);
    uint8_t *out = malloc((size_t)pkt->size);
    assert_non_null(out);
    memcpy(out, pkt->data, (size_t)pkt->size);
    *len = (size_t)pkt->size;
    sws_freeContext(sws);
    av_packet_free(&pkt);
    av_frame_free(&f);
    avcodec_free_context(&c);
    return out;
}

static void write_jpeg(const char *path, const uint8_t *rgb, int w, int h) {
    size_t n;
    uint8_t *jpg = encode_jpeg(rgb, w, h, &n);
    assert_true(n > 4 && jpg[0] == 0xff && jpg[1] == 0xd8);
    assert_int_equal(tu_write_file(path, jpg, n), 0);
    free(jpg);
}

/* ---- decoding each format ----------------------------------------------- */

static const uint8_t SIX[6][3] = {{255, 0, 0}, {0, 255, 0}, {0, 0, 255}, {255, 255, 0}, {0, 0, 0}, {255, 255, 255}};

static void check_six(const g3_image *img, int tol) {
    assert_int_equal(img->width, 3);
    assert_int_equal(img->height, 2);
    for (int i = 0; i < 6; i++)
        assert_px(img, (uint32_t)(i % 3), (uint32_t)(i / 3), SIX[i][0], SIX[i][1], SIX[i][2], tol);
}

static void test_png_and_bmp_exact(void **state) {
    (void)state;
    assert_true(stbi_write_png(TMP("six.png"), 3, 2, 3, SIX, 9));
    g3_image img = load_ok(TMP("six.png"));
    check_six(&img, 0);
    g3_image_free(&img);
    assert_null(img.rgb);

    assert_true(stbi_write_bmp(TMP("six.bmp"), 3, 2, 3, SIX));
    img = load_ok(TMP("six.bmp"));
    check_six(&img, 0);
    g3_image_free(&img);

    /* the format comes from the bytes: a PNG named .jpg still decodes */
    size_t n;
    uint8_t *png = tu_read_file(TMP("six.png"), &n);
    assert_int_equal(tu_write_file(TMP("six-misnamed.jpg"), png, n), 0);
    img = load_ok(TMP("six-misnamed.jpg"));
    check_six(&img, 0);
    g3_image_free(&img);
    /* and from memory */
    g3_error err;
    assert_int_equal(g3_image_load_memory(png, n, NULL, &img, &err), 0);
    check_six(&img, 0);
    g3_image_free(&img);
    free(png);
}

/* Chunks before the image data: an empty IDAT (valid PNG) made stb 2.27 do
 * NULL-pointer arithmetic, which sanitizer builds stop on (found by
 * fuzzing): it must decode, to the same pixels. And a tRNS colour key. */
static void test_png_chunks(void **state) {
    (void)state;
    assert_true(stbi_write_png(TMP("six.png"), 3, 2, 3, SIX, 9));
    size_t n;
    uint8_t *png = tu_read_file(TMP("six.png"), &n);
    size_t at = 8;
    while (memcmp(png + at + 4, "IDAT", 4) != 0) at += 12 + ((size_t)png[at] << 24 | (size_t)png[at + 1] << 16 |
                                                             (size_t)png[at + 2] << 8 | png[at + 3]);
    static const uint8_t empty_idat[12] = {0, 0, 0, 0, 'I', 'D', 'A', 'T', 0x35, 0xaf, 0x06, 0x1e};
    uint8_t *out = malloc(n + 24);
    memcpy(out, png, at);
    memcpy(out + at, empty_idat, 12);
    memcpy(out + at + 12, empty_idat, 12);
    memcpy(out + at + 24, png + at, n - at);
    g3_image img;
    g3_error err = {{0}};
    if (g3_image_load_memory(out, n + 24, NULL, &img, &err)) fail_msg("%s", err.msg);
    check_six(&img, 0);
    g3_image_free(&img);

    /* the same place for a tRNS chunk: RGB with red as the transparent
     * colour key, so the red pixel comes out white */
    static const uint8_t trns[18] = {0, 0, 0, 6, 't', 'R', 'N', 'S', 0, 255, 0, 0, 0, 0, 0xa4, 0xc2, 0xc0, 0x1d};
    memcpy(out + at, trns, 18);
    memcpy(out + at + 18, png + at, n - at);
    if (g3_image_load_memory(out, n + 18, NULL, &img, &err)) fail_msg("%s", err.msg);
    assert_px(&img, 0, 0, 255, 255, 255, 0);
    assert_px(&img, 1, 0, 0, 255, 0, 0);
    g3_image_free(&img);
    free(out);
    free(png);
}

static void test_gray_expanded(void **state) {
    (void)state;
    const uint8_t gray[4] = {0, 85, 170, 255};
    assert_true(stbi_write_png(TMP("gray.png"), 2, 2, 1, gray, 2));
    g3_image img = load_ok(TMP("gray.png"));
    for (int i = 0; i < 4; i++) assert_px(&img, (uint32_t)(i % 2), (uint32_t)(i / 2), gray[i], gray[i], gray[i], 0);
    g3_image_free(&img);
    /* gray + alpha: 100 opaque, 100 transparent -> white */
    const uint8_t ga[4] = {100, 255, 100, 0};
    assert_true(stbi_write_png(TMP("gray-alpha.png"), 2, 1, 2, ga, 4));
    img = load_ok(TMP("gray-alpha.png"));
    assert_px(&img, 0, 0, 100, 100, 100, 0);
    assert_px(&img, 1, 0, 255, 255, 255, 0);
    g3_image_free(&img);
}

static void test_alpha_on_white(void **state) {
    (void)state;
    /* opaque red, transparent red, half-transparent red, opaque blue */
    const uint8_t rgba[16] = {255, 0, 0, 255, 255, 0, 0, 0, 255, 0, 0, 128, 0, 0, 255, 255};
    assert_true(stbi_write_png(TMP("alpha.png"), 4, 1, 4, rgba, 16));
    g3_image img = load_ok(TMP("alpha.png"));
    assert_int_equal(img.width, 4);
    assert_px(&img, 0, 0, 255, 0, 0, 0);
    assert_px(&img, 1, 0, 255, 255, 255, 0); /* transparent: the white behind */
    /* a = 128: (0 * 128 + 255 * 127 + 127) / 255 = 127 -> pink */
    assert_px(&img, 2, 0, 255, 127, 127, 0);
    assert_px(&img, 3, 0, 0, 0, 255, 0);
    g3_image_free(&img);
}

static uint8_t *quadrants(int w, int h, int bw, int bh, const uint8_t a[3], const uint8_t b[3]) {
    uint8_t *rgb = malloc((size_t)w * h * 3);
    assert_non_null(rgb);
    for (int y = 0; y < h; y++)
        for (int x = 0; x < w; x++) memcpy(rgb + 3 * (y * w + x), x < bw && y < bh ? a : b, 3);
    return rgb;
}

static void test_jpeg_colors(void **state) {
    (void)state;
    /* 16 x 16: four 8 x 8 JPEG blocks of one colour each */
    uint8_t rgb[16 * 16 * 3];
    const uint8_t colors[4][3] = {{220, 30, 30}, {30, 200, 40}, {40, 40, 210}, {240, 240, 240}};
    for (int y = 0; y < 16; y++)
        for (int x = 0; x < 16; x++) memcpy(rgb + 3 * (y * 16 + x), colors[(y / 8) * 2 + x / 8], 3);
    write_jpeg(TMP("quad.jpg"), rgb, 16, 16);
    g3_image img = load_ok(TMP("quad.jpg"));
    assert_int_equal(img.width, 16);
    assert_int_equal(img.height, 16);
    for (int q = 0; q < 4; q++)
        assert_px(&img, (uint32_t)(4 + 8 * (q % 2)), (uint32_t)(4 + 8 * (q / 2)), colors[q][0], colors[q][1],
                  colors[q][2], 8);
    g3_image_free(&img);
}

static void test_webp(void **state) {
    (void)state;
    /* lossless with alpha: exact, alpha composited on white */
    const uint8_t rgba[16] = {255, 0, 0, 255, 0, 255, 0, 255, 0, 0, 255, 0, 10, 20, 30, 255};
    uint8_t *enc = NULL;
    size_t n = WebPEncodeLosslessRGBA(rgba, 2, 2, 8, &enc);
    assert_true(n > 0);
    assert_int_equal(tu_write_file(TMP("lossless.webp"), enc, n), 0);
    WebPFree(enc);
    g3_image img = load_ok(TMP("lossless.webp"));
    assert_int_equal(img.width, 2);
    assert_px(&img, 0, 0, 255, 0, 0, 0);
    assert_px(&img, 1, 0, 0, 255, 0, 0);
    assert_px(&img, 0, 1, 255, 255, 255, 0);
    assert_px(&img, 1, 1, 10, 20, 30, 0);
    g3_image_free(&img);

    /* lossy: colours within a tolerance */
    const uint8_t a[3] = {200, 40, 40}, b[3] = {40, 40, 200};
    uint8_t *rgb = quadrants(32, 32, 16, 32, a, b);
    n = WebPEncodeRGB(rgb, 32, 32, 96, 95.0f, &enc);
    free(rgb);
    assert_true(n > 0);
    assert_int_equal(tu_write_file(TMP("lossy.webp"), enc, n), 0);
    WebPFree(enc);
    img = load_ok(TMP("lossy.webp"));
    assert_int_equal(img.width, 32);
    assert_int_equal(img.height, 32);
    assert_px(&img, 4, 16, 200, 40, 40, 12);
    assert_px(&img, 28, 16, 40, 40, 200, 12);
    g3_image_free(&img);
}

static void test_gif_first_frame(void **state) {
    (void)state;
    /* GIF89a, 2 x 2, palette red/green/blue/black with index 3 transparent.
     * Pixels 0 1 / 2 3 as LZW (min code size 2): codes CLEAR(4) 0 1 2 in 3
     * bits, then (the table reaching 8 entries) 3 EOI(5) in 4 bits, packed
     * LSB first: 0x44 0x34 0x05. A second frame (all red) must be ignored. */
    static const uint8_t gif[] = {
        'G', 'I', 'F', '8', '9', 'a', 2, 0, 2, 0, 0x81, 0, 0,             /* screen, 4-colour table */
        255, 0, 0, 0, 255, 0, 0, 0, 255, 0, 0, 0,                         /* palette */
        0x21, 0xf9, 4, 0x01, 0, 0, 3, 0,                                  /* transparent index 3 */
        0x2c, 0, 0, 0, 0, 2, 0, 2, 0, 0, 2, 3, 0x44, 0x34, 0x05, 0,       /* frame 1 */
        0x21, 0xf9, 4, 0x00, 0, 0, 0, 0,                                  /* frame 2 */
        0x2c, 0, 0, 0, 0, 2, 0, 2, 0, 0, 2, 3, 0x04, 0x00, 0x05, 0,       /* all red: CLEAR 0 0 0 0 EOI */
        0x3b};
    assert_int_equal(tu_write_file(TMP("tiny.gif"), gif, sizeof gif), 0);
    g3_image img = load_ok(TMP("tiny.gif"));
    assert_int_equal(img.width, 2);
    assert_int_equal(img.height, 2);
    assert_px(&img, 0, 0, 255, 0, 0, 0);
    assert_px(&img, 1, 0, 0, 255, 0, 0);
    assert_px(&img, 0, 1, 0, 0, 255, 0);
    assert_px(&img, 1, 1, 255, 255, 255, 0); /* transparent over white */
    g3_image_free(&img);
}

static void test_golden_png(void **state) {
    (void)state;
    g3_image img = load_ok(GOLDEN_PNG);
    assert_int_equal(img.width, 64);
    assert_int_equal(img.height, 64);
    for (int mode = 0; mode < 2; mode++) {
        float *t = tensor(&img, 64, (g3_resize_mode)mode);
        for (uint32_t y = 0; y < 64; y++)
            for (uint32_t x = 0; x < 64; x++)
                for (int c = 0; c < 3; c++) {
                    float want = (float)((px(&img, x, y)[c] / 255.0 - 0.5) / 0.5);
                    if (at(t, 64, c, x, y) != want)
                        fail_msg("mode %d (%u,%u,%d): %.9g != %.9g", mode, x, y, c, at(t, 64, c, x, y), want);
                }
        free(t);
    }
    g3_image_free(&img);
}

/* ---- EXIF orientation --------------------------------------------------- */

/* A JPEG of 32 x 16 (red 8 x 8 block top-left, blue elsewhere) with an APP1
 * Exif segment right after SOI: TIFF header (big or little endian), IFD0
 * with one entry: 0x0112 Orientation, SHORT, count 1. */
static uint8_t *jpeg_with_orientation(int orientation, bool big_endian, size_t *len) {
    const uint8_t red[3] = {230, 20, 20}, blue[3] = {20, 20, 230};
    uint8_t *rgb = quadrants(32, 16, 8, 8, red, blue);
    size_t n;
    uint8_t *jpg = encode_jpeg(rgb, 32, 16, &n);
    free(rgb);
    uint8_t o = (uint8_t)orientation;
    const uint8_t mm[36] = {0xff, 0xe1, 0, 34, 'E', 'x', 'i', 'f', 0, 0, 'M', 'M', 0, 0x2a, 0, 0, 0, 8,
                            0, 1, 0x01, 0x12, 0, 3, 0, 0, 0, 1, 0, o, 0, 0, 0, 0, 0, 0};
    const uint8_t ii[36] = {0xff, 0xe1, 0, 34, 'E', 'x', 'i', 'f', 0, 0, 'I', 'I', 0x2a, 0, 8, 0, 0, 0,
                            1, 0, 0x12, 0x01, 3, 0, 1, 0, 0, 0, o, 0, 0, 0, 0, 0, 0, 0};
    uint8_t *out = malloc(n + 36);
    assert_non_null(out);
    memcpy(out, jpg, 2); /* SOI */
    memcpy(out + 2, big_endian ? mm : ii, 36);
    memcpy(out + 38, jpg + 2, n - 2);
    *len = n + 36;
    free(jpg);
    return out;
}

static void test_exif_orientation(void **state) {
    (void)state;
    /* where the red block's centre lands, and the size, for each orientation */
    static const struct { int o; uint32_t w, h, rx, ry; } cases[] = {
        {1, 32, 16, 4, 4},  {2, 32, 16, 27, 4},  {3, 32, 16, 27, 11}, {4, 32, 16, 4, 11},
        {5, 16, 32, 4, 4},  {6, 16, 32, 11, 4},  {7, 16, 32, 11, 27}, {8, 16, 32, 4, 27},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        size_t n;
        uint8_t *jpg = jpeg_with_orientation(cases[i].o, i % 2 == 0, &n);
        assert_int_equal(tu_write_file(TMP("exif.jpg"), jpg, n), 0);
        free(jpg);
        g3_image img = load_ok(TMP("exif.jpg"));
        if (img.width != cases[i].w || img.height != cases[i].h)
            fail_msg("orientation %d: %ux%u, expected %ux%u", cases[i].o, img.width, img.height, cases[i].w,
                     cases[i].h);
        assert_px(&img, cases[i].rx, cases[i].ry, 230, 20, 20, 16);
        /* the opposite corner is blue */
        assert_px(&img, img.width - 1 - cases[i].rx, img.height - 1 - cases[i].ry, 20, 20, 230, 16);
        g3_image_free(&img);
    }
}

/* ---- resize ------------------------------------------------------------- */

static void test_resize_solid_and_identity(void **state) {
    (void)state;
    /* solid stays solid: down (50 -> 16), up (5 -> 16), non-square stretched */
    const uint32_t dims[3][2] = {{50, 50}, {5, 5}, {37, 23}};
    for (int d = 0; d < 3; d++) {
        g3_image img = solid(dims[d][0], dims[d][1], 10, 128, 250);
        for (int mode = 0; mode < 2; mode++) {
            if (mode == G3_RESIZE_PAD && dims[d][0] != dims[d][1]) continue; /* bars: next test */
            float *t = tensor(&img, 16, (g3_resize_mode)mode);
            for (uint32_t i = 0; i < 16 * 16; i++) {
                assert_true(t[i] == norm(10));
                assert_true(t[256 + i] == norm(128));
                assert_true(t[512 + i] == norm(250));
            }
            free(t);
        }
        g3_image_free(&img);
    }
}

static void test_resize_pad_bars(void **state) {
    (void)state;
    /* 64 x 32 red into 32: scale 0.5 -> 32 x 16 at y offset (32 - 16) / 2 = 8 */
    g3_image wide = solid(64, 32, 255, 0, 0);
    float *t = tensor(&wide, 32, G3_RESIZE_PAD);
    for (uint32_t y = 0; y < 32; y++) {
        bool bar = y < 8 || y >= 24;
        for (uint32_t x = 0; x < 32; x++) {
            assert_true(at(t, 32, 0, x, y) == (bar ? -1.0f : 1.0f));
            assert_true(at(t, 32, 1, x, y) == -1.0f);
        }
    }
    free(t);
    /* stretch fills the square */
    t = tensor(&wide, 32, G3_RESIZE_STRETCH);
    for (uint32_t i = 0; i < 32 * 32; i++) assert_true(t[i] == 1.0f);
    free(t);
    g3_image_free(&wide);
    /* 10 x 30 green into 12: scale 0.4 -> ceil(4.0) = 4 x 12 at x offset 4 */
    g3_image tall = solid(10, 30, 0, 255, 0);
    t = tensor(&tall, 12, G3_RESIZE_PAD);
    for (uint32_t x = 0; x < 12; x++) assert_true(at(t, 12, 1, x, 6) == (x >= 4 && x < 8 ? 1.0f : -1.0f));
    free(t);
    g3_image_free(&tall);
}

static g3_image pattern(uint32_t w, uint32_t h, int (*level)(uint32_t x, uint32_t y)) {
    g3_image img = solid(w, h, 0, 0, 0);
    for (uint32_t y = 0; y < h; y++)
        for (uint32_t x = 0; x < w; x++) memset(img.rgb + 3 * ((size_t)y * w + x), level(x, y), 3);
    return img;
}
static int checker(uint32_t x, uint32_t y) { return (x + y) % 2 ? 0 : 255; }
static int stripes(uint32_t x, uint32_t y) { return x % 4 == 3 ? 0 : 255; }
static int ramp2(uint32_t x, uint32_t y) { return x ? 255 : 0; }

static void assert_row(const float *t, uint32_t size, uint32_t y, const int *want) {
    for (uint32_t x = 0; x < size; x++)
        for (int c = 0; c < 3; c++)
            if (at(t, size, c, x, y) != norm(want[x]))
                fail_msg("(%u,%u,%d) = %.6f, expected level %d (%.6f)", x, y, c, at(t, size, c, x, y), want[x],
                         norm(want[x]));
}

static void test_resize_stretch_antialias(void **state) {
    (void)state;
    /* 16 x 16 one-pixel checkerboard (white at even x + y) down 4x to 4 x 4
     * (Pillow BILINEAR): support 4; an interior output takes 8 taps weighted
     * 1 - |d| / 4 = .125 .375 .625 .875 .875 .625 .375 .125 (sum 4): even
     * and odd taps weigh 2 each -> 127.5, in fixed point 2^21 + 127.5 * 2^22
     * -> 128. A border output takes 6 taps (.625 .875 .875 .625 .375 .125,
     * sum 3.5): the left one weighs its white taps 1.875 or 1.625 by row
     * phase -> 255 * 1.875 / 3.5 = 136.6 -> 137 or 118.4 -> 118; the right
     * one (taps 10..15, .125 .375 .625 .875 .875 .625) the other way round.
     * The vertical pass mixes those rows alike: interior -> (137 + 118) / 2 =
     * 127.5 -> 128; at corners (137 * 1.875 + 118 * 1.625) / 3.5 = 128.2 ->
     * 128 where the phases agree (top-left, bottom-right) and 126.8 -> 127
     * where they do not (top-right, bottom-left). Grey everywhere. */
    g3_image img = pattern(16, 16, checker);
    float *t = tensor(&img, 4, G3_RESIZE_STRETCH);
    const int grey[4][4] = {{128, 128, 128, 127}, {128, 128, 128, 128}, {128, 128, 128, 128}, {127, 128, 128, 128}};
    for (uint32_t y = 0; y < 4; y++) assert_row(t, 4, y, grey[y]);
    free(t);
    /* without antialias (llama.cpp's corner-aligned bilinear, PAD) the same
     * image samples single pixels 0, 5, 10, 15: black and white, not grey */
    t = tensor(&img, 4, G3_RESIZE_PAD);
    const int sampled[4] = {255, 0, 255, 0};
    assert_row(t, 4, 0, sampled);
    free(t);
    g3_image_free(&img);

    /* vertical stripes 255 255 255 0, 16 -> 4: interior windows hold the
     * zeros at weights .375 + .625 = 1 of 4 -> 255 * 3/4 = 191.25 -> 191;
     * left border (6 taps, zero at .625 of 3.5) -> 209.5 - -> 209; right
     * border (taps 10..15 .125 .375 .625 .875 .875 .625, zeros .375 + .625)
     * -> 255 * 2.5 / 3.5 = 182.1 -> 182. A plain 2-tap bilinear at the
     * centres 1.5, 5.5... would give 255 for the first three. */
    img = pattern(16, 16, stripes);
    t = tensor(&img, 4, G3_RESIZE_STRETCH);
    const int striped[4] = {209, 191, 191, 182};
    for (uint32_t y = 0; y < 4; y++) assert_row(t, 4, y, striped);
    free(t);
    g3_image_free(&img);

    /* upscale 2 -> 4 of [0 255]: support 1, centres .25 .75 1.25 1.75:
     * 0 | .75*0 + .25*255 = 63.75 -> 64 | 191.25 -> 191 | 255 */
    img = pattern(2, 2, ramp2);
    t = tensor(&img, 4, G3_RESIZE_STRETCH);
    const int up[4] = {0, 64, 191, 255};
    for (uint32_t y = 0; y < 4; y++) assert_row(t, 4, y, up);
    free(t);
    g3_image_free(&img);
}

static void test_tensor_bad_args(void **state) {
    (void)state;
    g3_image img = solid(4, 4, 1, 2, 3), empty = {0, 0, NULL};
    float out[3 * 4 * 4];
    const float zero[3] = {0.5f, 0.0f, 0.5f};
    g3_error err;
    assert_int_equal(g3_image_to_tensor(&img, 0, G3_RESIZE_STRETCH, HALF, HALF, out, &err), -1);
    assert_int_equal(g3_image_to_tensor(&empty, 4, G3_RESIZE_STRETCH, HALF, HALF, out, &err), -1);
    assert_int_equal(g3_image_to_tensor(&img, 4, G3_RESIZE_STRETCH, HALF, zero, out, &err), -1);
    assert_int_equal(g3_image_to_tensor(&img, 4, (g3_resize_mode)7, HALF, HALF, out, &err), -1);
    g3_image_free(&img);
}

/* ---- limits and bad input ----------------------------------------------- */

static void expect_refused(const char *path, const g3_media_limits *lim, const char *needle) {
    g3_image img = {1, 1, (uint8_t *)"x"};
    g3_error err = {{0}};
    if (g3_image_load(path, lim, &img, &err) == 0) fail_msg("'%s' was accepted", path);
    assert_null(img.rgb);
    assert_err(&err, needle);
}

static void expect_truncations_refused(const char *path, const uint8_t *data, size_t n, const size_t *cuts,
                                       size_t n_cuts) {
    for (size_t i = 0; i < n_cuts; i++) {
        assert_true(cuts[i] < n);
        assert_int_equal(tu_write_file(path, data, cuts[i]), 0);
        g3_image img;
        g3_error err = {{0}};
        if (g3_image_load(path, NULL, &img, &err) == 0) fail_msg("%s cut to %zu bytes was accepted", path, cuts[i]);
        assert_err(&err, path);
        /* the same from memory, in an exact-size buffer ASan watches */
        uint8_t *exact = malloc(cuts[i] ? cuts[i] : 1);
        memcpy(exact, data, cuts[i]);
        assert_int_equal(g3_image_load_memory(exact, cuts[i], NULL, &img, &err), -1);
        free(exact);
    }
}

static void test_truncated(void **state) {
    (void)state;
    uint64_t seed = 7;
    uint8_t noise[32 * 32 * 3];
    for (size_t i = 0; i < sizeof noise; i++) noise[i] = (uint8_t)(tu_randf(&seed) * 127.0f + 128.0f);
    assert_true(stbi_write_png(TMP("noise.png"), 32, 32, 3, noise, 96));
    size_t n;
    uint8_t *png = tu_read_file(TMP("noise.png"), &n);
    assert_true(n > 1000);
    const size_t png_cuts[] = {1, 7, 8, 16, 29, 33, 40, 100, n / 2, n - 13};
    expect_truncations_refused(TMP("cut.png"), png, n, png_cuts, sizeof png_cuts / sizeof png_cuts[0]);
    free(png);

    write_jpeg(TMP("noise.jpg"), noise, 32, 32);
    uint8_t *jpg = tu_read_file(TMP("noise.jpg"), &n);
    const size_t jpg_cuts[] = {2, 3, 4, 10, 30, 100, 300, n / 2, n - 2, n - 1};
    expect_truncations_refused(TMP("cut.jpg"), jpg, n, jpg_cuts, sizeof jpg_cuts / sizeof jpg_cuts[0]);
    /* cut inside the image data: named as such before stb sees it (some stb
     * versions decode the missing rows as grey without an error) */
    assert_int_equal(tu_write_file(TMP("cut.jpg"), jpg, n / 2), 0);
    expect_refused(TMP("cut.jpg"), NULL, "truncated JPEG (no end-of-image marker)");
    free(jpg);

    assert_true(stbi_write_bmp(TMP("noise.bmp"), 32, 32, 3, noise));
    uint8_t *bmp = tu_read_file(TMP("noise.bmp"), &n);
    const size_t bmp_cuts[] = {2, 20, 30, 54, n / 2, n - 1};
    expect_truncations_refused(TMP("cut.bmp"), bmp, n, bmp_cuts, sizeof bmp_cuts / sizeof bmp_cuts[0]);
    free(bmp);

    uint8_t *enc = NULL;
    size_t wn = WebPEncodeRGB(noise, 32, 32, 96, 80.0f, &enc);
    assert_true(wn > 100);
    const size_t webp_cuts[] = {12, 20, 40, wn / 2, wn - 1};
    expect_truncations_refused(TMP("cut.webp"), enc, wn, webp_cuts, sizeof webp_cuts / sizeof webp_cuts[0]);
    WebPFree(enc);
}

/* stb 2.27 writes past its Huffman size table when a DHT segment declares
 * more than 256 codes (found by fuzzing; fixed upstream in 2.28): such a
 * file must be refused before stb sees it. */
static void test_jpeg_bad_huffman(void **state) {
    (void)state;
    uint8_t rgb[16 * 16 * 3] = {0};
    size_t n;
    uint8_t *jpg = encode_jpeg(rgb, 16, 16, &n);
    size_t dht = 0;
    for (size_t i = 2; i + 1 < n && !dht; i++)
        if (jpg[i] == 0xff && jpg[i + 1] == 0xc4) dht = i;
    assert_true(dht > 0);
    for (int k = 0; k < 16; k++) jpg[dht + 5 + k] = 20; /* 16 x 20 = 320 codes */
    assert_int_equal(tu_write_file(TMP("bad-dht.jpg"), jpg, n), 0);
    free(jpg);
    expect_refused(TMP("bad-dht.jpg"), NULL, "bad Huffman table");
}

/* A PNG whose IHDR claims w x h, with no pixel data after it. */
static void write_png_header(const char *path, uint32_t w, uint32_t h) {
    uint8_t png[8 + 25 + 12] = {0x89, 'P', 'N', 'G', '\r', '\n', 0x1a, '\n', 0, 0, 0, 13, 'I', 'H', 'D', 'R'};
    for (int i = 0; i < 4; i++) {
        png[16 + i] = (uint8_t)(w >> (24 - 8 * i));
        png[20 + i] = (uint8_t)(h >> (24 - 8 * i));
    }
    png[24] = 8; /* depth 8, colour type 2 (RGB) */
    png[25] = 2;
    memcpy(png + 33, "\0\0\0\0IEND\xae\x42\x60\x82", 12);
    assert_int_equal(tu_write_file(path, png, sizeof png), 0);
}

static void test_bad_input(void **state) {
    (void)state;
    /* decompression bomb: refused from the header, before decoding */
    write_png_header(TMP("bomb.png"), 100000, 100000);
    expect_refused(TMP("bomb.png"), NULL, "100000 x 100000");
    expect_refused(TMP("bomb.png"), NULL, "before decoding");
    /* 8000 x 7000 = 56 Mpx: over the 50 Mpx default, under a raised limit
     * it reaches the decoder (which finds no pixel data) */
    write_png_header(TMP("56mpx.png"), 8000, 7000);
    expect_refused(TMP("56mpx.png"), NULL, "over the limit of 50.0 megapixels");
    g3_media_limits big = g3_media_limits_default();
    big.max_pixels = 60000000;
    expect_refused(TMP("56mpx.png"), &big, "corrupt or truncated PNG");
    write_png_header(TMP("zero.png"), 0, 10);
    expect_refused(TMP("zero.png"), NULL, "zero dimension");

    const char *text = "Hello, this is a plain text file.\nNot an image.\n";
    assert_int_equal(tu_write_file(TMP("notes.txt"), text, strlen(text)), 0);
    expect_refused(TMP("notes.txt"), NULL, "it looks like text");
    expect_refused(TMP("notes.txt"), NULL, "JPEG, PNG, WebP, GIF or BMP");
    expect_refused(TMP("notes.txt"), NULL, TMP("notes.txt"));
    assert_int_equal(tu_write_file(TMP("doc.pdf"), "%PDF-1.4\n%\xe2\xe3\n1 0 obj", 21), 0);
    expect_refused(TMP("doc.pdf"), NULL, "a PDF document");
    assert_int_equal(tu_write_file(TMP("scan.tif"), "II*\0\x08\0\0\0\0\0", 10), 0);
    expect_refused(TMP("scan.tif"), NULL, "a TIFF image");
    uint8_t garbage[300];
    uint64_t seed = 3;
    for (size_t i = 0; i < sizeof garbage; i++) garbage[i] = (uint8_t)(tu_randf(&seed) * 100.0f + 110.0f);
    garbage[0] = 0x01;
    assert_int_equal(tu_write_file(TMP("garbage.png"), garbage, sizeof garbage), 0);
    expect_refused(TMP("garbage.png"), NULL, "not a supported image");
    /* right magic, garbage after it */
    memcpy(garbage, "\xff\xd8\xff\xe0\x00\x10", 6);
    assert_int_equal(tu_write_file(TMP("garbage.jpg"), garbage, sizeof garbage), 0);
    expect_refused(TMP("garbage.jpg"), NULL, "JPEG");
    memcpy(garbage, "\x89PNG\r\n\x1a\n\0\0\0\x0dIHDR\0\0\0\x04\0\0\0\x04\x08\x02\0\0\0", 29);
    assert_int_equal(tu_write_file(TMP("garbage2.png"), garbage, sizeof garbage), 0);
    expect_refused(TMP("garbage2.png"), NULL, "corrupt or truncated PNG");

    assert_int_equal(tu_write_file(TMP("empty.png"), "", 0), 0);
    expect_refused(TMP("empty.png"), NULL, "empty");
    expect_refused(TMP("no-such-file.png"), NULL, "cannot open");
    expect_refused(G3_TEST_TMP, NULL, "not a regular file");

    /* over the size limit: the message names the file, its size, the limit */
    assert_true(stbi_write_png(TMP("six.png"), 3, 2, 3, SIX, 9));
    struct stat st;
    assert_int_equal(stat(TMP("six.png"), &st), 0);
    g3_media_limits small = g3_media_limits_default();
    small.max_image_bytes = 40;
    char want[128];
    snprintf(want, sizeof want, "is %lld bytes, over the image size limit of 40 bytes", (long long)st.st_size);
    expect_refused(TMP("six.png"), &small, want);
    expect_refused(TMP("six.png"), &small, TMP("six.png"));
    small.max_image_bytes = (size_t)st.st_size; /* at the limit is fine */
    g3_image img;
    g3_error err;
    assert_int_equal(g3_image_load(TMP("six.png"), &small, &img, &err), 0);
    g3_image_free(&img);
    assert_int_equal(g3_image_load_memory(NULL, 0, NULL, &img, &err), -1);
    assert_err(&err, "empty");
    g3_image_free(NULL);

    g3_media_limits d = g3_media_limits_default();
    assert_int_equal(d.max_image_bytes, 10u << 20);
    assert_int_equal(d.max_video_bytes, 100u << 20);
    assert_true(d.max_pixels == 50000000);
}

/* ---- video -------------------------------------------------------------- */

static int group_setup(void **state) {
    (void)state;
    av_log_set_level(AV_LOG_QUIET); /* the corrupt-input cases make libav chatty */
    mkdir(G3_TEST_TMP, 0755);
    return 0;
}

static void sample_ok(const char *path, uint32_t n, g3_video_frame **frames) {
    uint32_t got = 0;
    g3_error err = {{0}};
    if (g3_video_sample(path, n, NULL, frames, &got, &err)) fail_msg("%s", err.msg);
    assert_int_equal(got, n);
}

static void test_video_sampling(void **state) {
    (void)state;
    /* 4 s at 5 fps: frames at 0.0, 0.2, ... 3.8; second k is VIDEO_CLIP_COLORS[k] */
    video_clip_write(TMP("clip.mp4"), 64, 48, 5, 4, false, 0.0);
    for (uint32_t n = 1; n <= 4; n *= 2) {
        g3_video_frame *fr;
        sample_ok(TMP("clip.mp4"), n, &fr);
        for (uint32_t i = 0; i < n; i++) {
            double t = i * 4.0 / n; /* on a frame: that frame exactly */
            if (fabs(fr[i].seconds - t) > 1e-3)
                fail_msg("n=%u frame %u at %.4f s, expected %.4f", n, i, fr[i].seconds, t);
            assert_int_equal(fr[i].image.width, 64);
            assert_int_equal(fr[i].image.height, 48);
            const uint8_t *c = VIDEO_CLIP_COLORS[(int)t];
            assert_px(&fr[i].image, 32, 24, c[0], c[1], c[2], 24);
            assert_px(&fr[i].image, 0, 0, c[0], c[1], c[2], 24);
        }
        g3_video_frames_free(fr, n);
    }
    /* n = 3: t = 0, 1.333, 2.667 fall between frames: the first frame at or
     * after each is 0.0, 1.4 (green) and 2.8 (blue) */
    g3_video_frame *fr;
    sample_ok(TMP("clip.mp4"), 3, &fr);
    const double want[3] = {0.0, 1.4, 2.8};
    for (int i = 0; i < 3; i++) {
        if (fabs(fr[i].seconds - want[i]) > 1e-3)
            fail_msg("n=3 frame %d at %.4f s, expected %.1f", i, fr[i].seconds, want[i]);
        const uint8_t *c = VIDEO_CLIP_COLORS[(int)want[i]];
        assert_px(&fr[i].image, 10, 10, c[0], c[1], c[2], 24);
    }
    g3_video_frames_free(fr, 3);
    g3_video_frames_free(NULL, 0);
}

/* The display matrix angle as the demuxer reads it back (ffprobe's
 * "rotation of X degrees"). */
static double read_back_rotation(const char *path) {
    AVFormatContext *fmt = NULL;
    assert_true(avformat_open_input(&fmt, path, NULL, NULL) >= 0);
    assert_true(avformat_find_stream_info(fmt, NULL) >= 0);
    const AVStream *st = fmt->streams[0];
    const uint8_t *sd = NULL;
#if LIBAVCODEC_VERSION_INT >= AV_VERSION_INT(60, 29, 100)
    const AVPacketSideData *p = av_packet_side_data_get(st->codecpar->coded_side_data, st->codecpar->nb_coded_side_data,
                                                        AV_PKT_DATA_DISPLAYMATRIX);
    sd = p ? p->data : NULL;
#else
    sd = av_stream_get_side_data(st, AV_PKT_DATA_DISPLAYMATRIX, NULL);
#endif
    assert_non_null(sd);
    int32_t m[9];
    memcpy(m, sd, sizeof m);
    avformat_close_input(&fmt);
    return av_display_rotation_get(m);
}

static void test_video_rotation(void **state) {
    (void)state;
    /* A phone's portrait video reads back as "rotation of -90 degrees" and
     * is shown turned 90 degrees clockwise (ffmpeg's autorotate: transpose
     * = clock). (FFmpeg 5.1's MP4 muxer writes the angle it is given with
     * the opposite sign, so the test reads the angle back rather than trust
     * the writer's convention.) The 32 x 16 frame with a red top-left block
     * comes out 16 x 32 with the block top-right for -90, bottom-left for
     * +90. */
    video_clip_write(TMP("rotated.mp4"), 32, 16, 5, 1, true, 90.0);
    double angle = read_back_rotation(TMP("rotated.mp4"));
    assert_true(fabs(fabs(angle) - 90.0) < 0.5);
    g3_video_frame *fr;
    sample_ok(TMP("rotated.mp4"), 1, &fr);
    assert_int_equal(fr[0].image.width, 16);
    assert_int_equal(fr[0].image.height, 32);
    uint32_t rx = angle < 0 ? 12 : 3, ry = angle < 0 ? 3 : 28;
    assert_px(&fr[0].image, rx, ry, 255, 0, 0, 40);
    assert_px(&fr[0].image, 15 - rx, 31 - ry, 0, 0, 255, 40);
    assert_px(&fr[0].image, 3, 3, 0, 0, 255, 40); /* top-left is blue either way */
    g3_video_frames_free(fr, 1);
}

/* Matroska with one PCM audio stream and no video. */
static void write_audio_only(const char *path) {
    AVFormatContext *oc = NULL;
    assert_true(avformat_alloc_output_context2(&oc, NULL, "matroska", path) >= 0);
    AVStream *st = avformat_new_stream(oc, NULL);
    assert_non_null(st);
    st->codecpar->codec_type = AVMEDIA_TYPE_AUDIO;
    st->codecpar->codec_id = AV_CODEC_ID_PCM_S16LE;
    st->codecpar->sample_rate = 8000;
    st->codecpar->bits_per_coded_sample = 16;
    st->codecpar->block_align = 2;
    av_channel_layout_default(&st->codecpar->ch_layout, 1);
    st->time_base = (AVRational){1, 8000};
    assert_true(avio_open(&oc->pb, path, AVIO_FLAG_WRITE) >= 0);
    assert_true(avformat_write_header(oc, NULL) >= 0);
    AVPacket *pkt = av_packet_alloc();
    for (int i = 0; i < 4; i++) {
        assert_true(av_new_packet(pkt, 1600) >= 0);
        memset(pkt->data, 0, 1600);
        pkt->pts = pkt->dts = av_rescale_q(i * 800, (AVRational){1, 8000}, st->time_base);
        pkt->duration = av_rescale_q(800, (AVRational){1, 8000}, st->time_base);
        pkt->stream_index = st->index;
        assert_true(av_interleaved_write_frame(oc, pkt) >= 0);
    }
    av_packet_free(&pkt);
    assert_true(av_write_trailer(oc) >= 0);
    avio_closep(&oc->pb);
    avformat_free_context(oc);
}

static size_t mp4_size(const uint8_t *box) {
    return (size_t)box[0] << 24 | (size_t)box[1] << 16 | (size_t)box[2] << 8 | box[3];
}

/* Offset of the top-level mdat box (the coded frames). */
static size_t mp4_mdat(const uint8_t *d, size_t n) {
    for (size_t at = 0; at + 8 <= n;) {
        if (memcmp(d + at + 4, "mdat", 4) == 0) return at;
        size_t size = mp4_size(d + at);
        assert_true(size >= 8);
        at += size;
    }
    fail_msg("no mdat box");
    return 0;
}

static void expect_video_refused(const char *path, uint32_t n, const g3_media_limits *lim, const char *needle) {
    g3_video_frame *fr = (g3_video_frame *)1;
    uint32_t got = 99;
    g3_error err = {{0}};
    if (g3_video_sample(path, n, lim, &fr, &got, &err) == 0) fail_msg("'%s' was accepted", path);
    assert_null(fr);
    assert_int_equal(got, 0);
    assert_err(&err, needle);
}

/* The same frames from the bytes in memory as from the file (the native
 * API's uploads): times and pixels identical; the input is bounds-checked
 * (a cut file, no bytes, over the limit, an image, garbage: errors). */
static void test_video_memory(void **state) {
    (void)state;
    video_clip_write(TMP("mem.mp4"), 64, 48, 5, 4, false, 0.0);
    size_t len = 0;
    uint8_t *bytes = tu_read_file(TMP("mem.mp4"), &len);
    assert_non_null(bytes);
    g3_error err = {{0}};
    for (uint32_t n = 1; n <= 4; n++) {
        g3_video_frame *from_file, *from_mem;
        uint32_t got = 0;
        sample_ok(TMP("mem.mp4"), n, &from_file);
        if (g3_video_sample_memory(bytes, len, n, NULL, &from_mem, &got, &err)) fail_msg("%s", err.msg);
        assert_int_equal(got, n);
        for (uint32_t i = 0; i < n; i++) {
            assert_true(from_mem[i].seconds == from_file[i].seconds);
            assert_int_equal(from_mem[i].image.width, from_file[i].image.width);
            assert_int_equal(from_mem[i].image.height, from_file[i].image.height);
            assert_memory_equal(from_mem[i].image.rgb, from_file[i].image.rgb,
                                (size_t)from_file[i].image.width * from_file[i].image.height * 3);
        }
        g3_video_frames_free(from_file, n);
        g3_video_frames_free(from_mem, n);
    }
    g3_video_frame *fr = (g3_video_frame *)1;
    uint32_t got = 7;
    /* cut in half: the index (moov, written last) is missing */
    assert_int_equal(g3_video_sample_memory(bytes, len / 2, 2, NULL, &fr, &got, &err), -1);
    assert_null(fr);
    assert_int_equal(got, 0);
    assert_int_equal(g3_video_sample_memory(bytes, 0, 2, NULL, &fr, &got, &err), -1);
    assert_non_null(strstr(err.msg, "empty"));
    assert_int_equal(g3_video_sample_memory(NULL, 10, 2, NULL, &fr, &got, &err), -1);
    g3_media_limits lim = g3_media_limits_default();
    lim.max_video_bytes = len - 1;
    assert_int_equal(g3_video_sample_memory(bytes, len, 2, &lim, &fr, &got, &err), -1);
    assert_non_null(strstr(err.msg, "over the limit"));
    assert_int_equal(g3_video_sample_memory(bytes, len, 5, NULL, &fr, &got, &err), -1); /* at most 4 frames */
    size_t png_len = 0;
    uint8_t *png = tu_read_file(GOLDEN_PNG, &png_len);
    assert_non_null(png);
    assert_int_equal(g3_video_sample_memory(png, png_len, 1, NULL, &fr, &got, &err), -1);
    assert_non_null(strstr(err.msg, "image, not a video"));
    free(png);
    memset(bytes, 'x', len); /* garbage of the same size */
    assert_int_equal(g3_video_sample_memory(bytes, len, 1, NULL, &fr, &got, &err), -1);
    assert_non_null(strstr(err.msg, "cannot read"));
    free(bytes);
}

static void test_video_bad_input(void **state) {
    (void)state;
    video_clip_write(TMP("clip2.mp4"), 64, 48, 5, 4, false, 0.0);
    expect_video_refused(TMP("clip2.mp4"), 0, NULL, "must be 1 to 4");
    expect_video_refused(TMP("clip2.mp4"), 5, NULL, "must be 1 to 4");
    g3_media_limits small = g3_media_limits_default();
    small.max_video_bytes = 1000;
    expect_video_refused(TMP("clip2.mp4"), 2, &small, "over the video size limit of 1000 bytes");
    expect_video_refused(TMP("clip2.mp4"), 2, &small, TMP("clip2.mp4"));
    small = g3_media_limits_default();
    small.max_pixels = 1000;
    expect_video_refused(TMP("clip2.mp4"), 2, &small, "64 x 48 pixels");

    /* truncated (the index is written at the end) and overwritten middles */
    size_t n;
    uint8_t *mp4 = tu_read_file(TMP("clip2.mp4"), &n);
    assert_int_equal(tu_write_file(TMP("cut.mp4"), mp4, n / 2), 0);
    expect_video_refused(TMP("cut.mp4"), 2, NULL, TMP("cut.mp4"));
    uint64_t seed = 11;
    for (size_t i = 0; i < n; i++) mp4[i] = (uint8_t)(tu_randf(&seed) * 127.0f + 128.0f);
    assert_int_equal(tu_write_file(TMP("noise.mp4"), mp4, n), 0);
    expect_video_refused(TMP("noise.mp4"), 2, NULL, "cannot read");
    free(mp4);

    /* the index intact, the coded frames destroyed after their first bytes */
    mp4 = tu_read_file(TMP("clip2.mp4"), &n);
    size_t mdat = mp4_mdat(mp4, n);
    for (size_t i = mdat + 8 + 24; i < n && i < mdat + mp4_size(mp4 + mdat); i++)
        mp4[i] = (uint8_t)(tu_randf(&seed) * 127.0f + 128.0f);
    assert_int_equal(tu_write_file(TMP("damaged.mp4"), mp4, n), 0);
    expect_video_refused(TMP("damaged.mp4"), 2, NULL, "corrupt video");
    /* damage in the first second only: whatever frames come back are intact
     * ones, with their true times (a frame's colour matches its second) */
    free(mp4);
    mp4 = tu_read_file(TMP("clip2.mp4"), &n);
    for (size_t i = mdat + 8; i < mdat + 8 + mp4_size(mp4 + mdat) / 20; i++)
        mp4[i] = (uint8_t)(tu_randf(&seed) * 127.0f + 128.0f);
    assert_int_equal(tu_write_file(TMP("damaged2.mp4"), mp4, n), 0);
    free(mp4);
    g3_video_frame *fr;
    uint32_t got;
    g3_error err = {{0}};
    if (g3_video_sample(TMP("damaged2.mp4"), 4, NULL, &fr, &got, &err) == 0) {
        for (uint32_t i = 0; i < got; i++) {
            const uint8_t *c = VIDEO_CLIP_COLORS[(int)(fr[i].seconds + 1e-6)];
            assert_px(&fr[i].image, 32, 24, c[0], c[1], c[2], 24);
            assert_true(fr[i].seconds + 1e-6 >= i * 1.0);
        }
        g3_video_frames_free(fr, got);
    } else {
        assert_err(&err, "corrupt");
    }

    write_audio_only(TMP("audio.mkv"));
    expect_video_refused(TMP("audio.mkv"), 2, NULL, "no video stream");
    assert_true(stbi_write_png(TMP("six.png"), 3, 2, 3, SIX, 9));
    expect_video_refused(TMP("six.png"), 2, NULL, "is a PNG image, not a video");
    const char *text = "just some text, not a video at all\n";
    assert_int_equal(tu_write_file(TMP("notes.mp4"), text, strlen(text)), 0);
    expect_video_refused(TMP("notes.mp4"), 2, NULL, "it looks like text");
    assert_int_equal(tu_write_file(TMP("empty.mp4"), "", 0), 0);
    expect_video_refused(TMP("empty.mp4"), 2, NULL, "empty");
    expect_video_refused(TMP("missing.mp4"), 2, NULL, "cannot open");
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_png_and_bmp_exact),
        cmocka_unit_test(test_png_chunks),
        cmocka_unit_test(test_gray_expanded),
        cmocka_unit_test(test_alpha_on_white),
        cmocka_unit_test(test_jpeg_colors),
        cmocka_unit_test(test_webp),
        cmocka_unit_test(test_gif_first_frame),
        cmocka_unit_test(test_golden_png),
        cmocka_unit_test(test_exif_orientation),
        cmocka_unit_test(test_resize_solid_and_identity),
        cmocka_unit_test(test_resize_pad_bars),
        cmocka_unit_test(test_resize_stretch_antialias),
        cmocka_unit_test(test_tensor_bad_args),
        cmocka_unit_test(test_truncated),
        cmocka_unit_test(test_jpeg_bad_huffman),
        cmocka_unit_test(test_bad_input),
        cmocka_unit_test(test_video_sampling),
        cmocka_unit_test(test_video_rotation),
        cmocka_unit_test(test_video_memory),
        cmocka_unit_test(test_video_bad_input),
    };
    return cmocka_run_group_tests(tests, group_setup, NULL);
}
