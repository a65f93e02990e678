/* test_vision: the SigLIP encoder + Gemma 3 projector against the golden
 * image embeddings (golden/tiny-gemma3/vision), through the API and through
 * `gemma-chat embed-image` under every CPU kernel path this machine runs;
 * and the bad mmproj files: wrong projector type, missing tensor, missing
 * key, a text model given as mmproj, a projection size that does not match
 * the text model, a truncated file; and make-test-model --vision.
 *
 * Acceptance (issue [4] and the golden README): max |d| <= 5e-3 x max |golden|
 * (the reference evaluates GELU through an fp16 table). */
#include <math.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "base/cpu_features.h"
#include "gemma3.h"
#include "gemma3_media.h"
#include "gemma3_vision.h"
#include "test_util.h"

#define GOLDEN G3_GOLDEN_DIR "/tiny-gemma3"
#define MMPROJ GOLDEN "/models/mmproj-g3-s99-f32.gguf"
#define TEXT_MODEL GOLDEN "/models/g3-1b-s1234-f32.gguf"
#define IMAGE GOLDEN "/vision/img1_64x64.png"
#define EMBD GOLDEN "/vision/img1-f32.img_embd.f32"
#define REL_TOL 5e-3

/* max |a - b| / max |b| over n floats (NaN counts as a failure) */
static double rel_err(const float *a, const float *b, size_t n) {
    double e = 0.0, m = 0.0;
    for (size_t i = 0; i < n; i++) {
        const double d = fabs((double)a[i] - b[i]);
        if (isnan(d)) return INFINITY;
        if (d > e) e = d;
        if (fabs(b[i]) > m) m = fabs(b[i]);
    }
    return m > 0.0 ? e / m : INFINITY;
}

static float *read_f32(const char *path, size_t *count) {
    size_t bytes = 0;
    uint8_t *data = tu_read_file(path, &bytes);
    *count = bytes / sizeof(float);
    return (float *)data;
}

/* ---- the API ---- */

static void test_api_golden(void **state) {
    (void)state;
    g3_error err = {{0}};
    g3_vision *v = NULL;
    if (g3_vision_load(MMPROJ, NULL, &v, &err)) fail_msg("%s", err.msg);
    assert_int_equal(g3_vision_image_size(v), 64);
    assert_int_equal(g3_vision_n_tokens(v), 16);
    assert_int_equal(g3_vision_n_embd(v), 256);
    float mean[3], std[3];
    g3_vision_norm(v, mean, std);
    for (int c = 0; c < 3; c++) {
        assert_true(mean[c] == 0.5f);
        assert_true(std[c] == 0.5f);
    }

    g3_image img = {0};
    const g3_media_limits lim = g3_media_limits_default();
    if (g3_image_load(IMAGE, &lim, &img, &err)) fail_msg("%s", err.msg);
    float *pixels = malloc(sizeof(float) * 3 * 64 * 64), *out = malloc(sizeof(float) * 16 * 256);
    assert_non_null(pixels);
    assert_non_null(out);
    if (g3_image_to_tensor(&img, 64, G3_RESIZE_PAD, mean, std, pixels, &err)) fail_msg("%s", err.msg);
    if (g3_vision_encode(v, pixels, out, &err)) fail_msg("%s", err.msg);
    size_t n = 0;
    float *ref = read_f32(EMBD, &n);
    assert_non_null(ref);
    assert_int_equal(n, 16 * 256);
    const double e = rel_err(out, ref, n);
    printf("api (default path): max|d| / max|golden| = %.3e\n", e);
    assert_true(e <= REL_TOL);

    /* a second image through the same encoder gives the same result */
    float *again = malloc(sizeof(float) * 16 * 256);
    assert_non_null(again);
    if (g3_vision_encode(v, pixels, again, &err)) fail_msg("%s", err.msg);
    assert_memory_equal(out, again, sizeof(float) * 16 * 256);

    free(again);
    free(ref);
    free(out);
    free(pixels);
    g3_image_free(&img);
    g3_vision_free(v);
}

/* ---- the CLI, every kernel path ---- */

static float *run_embed(const char *cpu, const char *extra, size_t *n) {
    char cmd[2048], out_path[512];
    snprintf(out_path, sizeof out_path, G3_TEST_TMP "/vision-%s%s.f32", cpu, extra[0] ? "-x" : "");
    snprintf(cmd, sizeof cmd,
             "G3_CPU=%s %s embed-image --mmproj " MMPROJ " --image " IMAGE " --out %s --image-wrap golden %s 2>&1",
             cpu, G3_BINARY, out_path, extra);
    int status = -1;
    char *out = tu_run(cmd, &status);
    assert_non_null(out);
    if (status != 0) fail_msg("embed-image failed (%d): %s\n%s", status, cmd, out);
    free(out);
    float *f = read_f32(out_path, n);
    remove(out_path);
    return f;
}

static void test_cli_golden_all_paths(void **state) {
    (void)state;
    size_t n_ref = 0, n_scalar = 0;
    float *ref = read_f32(EMBD, &n_ref);
    assert_non_null(ref);
    float *scalar = run_embed("scalar", "", &n_scalar);
    assert_non_null(scalar);
    assert_int_equal(n_scalar, n_ref);
    const double es = rel_err(scalar, ref, n_ref);
    printf("cli scalar: max|d| / max|golden| = %.3e\n", es);
    assert_true(es <= REL_TOL);
    const g3_cpu_path simd[] = {G3_CPU_AVX2, G3_CPU_AVX512};
    for (size_t i = 0; i < 2; i++) {
        if (!g3_cpu_has_path(simd[i])) continue;
        size_t n = 0;
        float *f = run_embed(g3_cpu_path_name(simd[i]), "", &n);
        assert_non_null(f);
        assert_int_equal(n, n_ref);
        const double e = rel_err(f, ref, n), evs = rel_err(f, scalar, n);
        printf("cli %s: max|d| / max|golden| = %.3e, vs scalar %.3e\n", g3_cpu_path_name(simd[i]), e, evs);
        assert_true(e <= REL_TOL);
        assert_true(evs <= 1e-4);
        free(f);
    }
    /* one thread and two give the same embeddings */
    size_t n1 = 0, n2 = 0;
    float *t1 = run_embed(g3_cpu_path_name(g3_cpu_features_get()->best), "-t 1", &n1);
    float *t2 = run_embed(g3_cpu_path_name(g3_cpu_features_get()->best), "-t 2", &n2);
    assert_non_null(t1);
    assert_non_null(t2);
    assert_int_equal(n1, n_ref);
    assert_int_equal(n2, n_ref);
    assert_true(rel_err(t1, t2, n1) <= 1e-5);
    free(t1);
    free(t2);
    free(scalar);
    free(ref);
}

static void test_cli_bad_args(void **state) {
    (void)state;
    int status = -1;
    char *out = tu_run(G3_BINARY " embed-image --mmproj " MMPROJ " --image " IMAGE " 2>&1", &status);
    assert_non_null(out);
    assert_int_equal(status, 2);
    assert_non_null(strstr(out, "--out"));
    free(out);
    out = tu_run(G3_BINARY " embed-image --mmproj " TEXT_MODEL " --image " IMAGE " --out " G3_TEST_TMP
                           "/never.f32 2>&1",
                 &status);
    assert_non_null(out);
    assert_int_equal(status, 1);
    assert_non_null(strstr(out, "general.architecture"));
    free(out);
    assert_null(tu_read_file(G3_TEST_TMP "/never.f32", NULL));
}

/* ---- bad mmproj files ---- */

/* A copy of the golden mmproj with `len` bytes at (position of `find`) +
 * `skip` replaced by `with`. */
static void patched_copy(const char *dst, const char *find, size_t skip, const void *with, size_t len) {
    size_t size = 0;
    uint8_t *data = tu_read_file(MMPROJ, &size);
    assert_non_null(data);
    uint8_t *at = memmem(data, size, find, strlen(find));
    if (!at) fail_msg("'%s' not found in the golden mmproj", find);
    assert_true((size_t)(at - data) + skip + len <= size);
    memcpy(at + skip, with, len);
    assert_int_equal(tu_write_file(dst, data, size), 0);
    free(data);
}

/* Loads path and expects a failure whose message holds every needle. */
static void expect_load_error(const char *path, const char *const *needles, size_t n) {
    g3_error err = {{0}};
    g3_vision *v = NULL;
    assert_int_equal(g3_vision_load(path, NULL, &v, &err), -1);
    assert_null(v);
    printf("expected error: %s\n", err.msg);
    for (size_t i = 0; i < n; i++)
        if (!strstr(err.msg, needles[i])) fail_msg("'%s' not in the message: %s", needles[i], err.msg);
}

static void test_wrong_projector_type(void **state) {
    (void)state;
    const char *path = G3_TEST_TMP "/mmproj-llava.gguf";
    /* key, then u32 type (string) and u64 length: the value follows */
    patched_copy(path, "clip.projector_type", strlen("clip.projector_type") + 12, "idefic", 6);
    const char *needles[] = {"clip.projector_type", "idefic", "gemma3", path};
    expect_load_error(path, needles, 4);
    remove(path);
}

static void test_missing_tensor(void **state) {
    (void)state;
    const char *path = G3_TEST_TMP "/mmproj-no-fc2.gguf";
    patched_copy(path, "v.blk.1.ffn_down.weight", 0, "v.blk.1.ffn_dowX.weight", strlen("v.blk.1.ffn_down.weight"));
    const char *needles[] = {"v.blk.1.ffn_down.weight", path};
    expect_load_error(path, needles, 2);
    remove(path);
}

static void test_missing_key(void **state) {
    (void)state;
    const char *path = G3_TEST_TMP "/mmproj-no-patch.gguf";
    patched_copy(path, "clip.vision.patch_size", 0, "clip.vision.patch_sizX", strlen("clip.vision.patch_size"));
    const char *needles[] = {"clip.vision.patch_size", path};
    expect_load_error(path, needles, 2);
    remove(path);
}

static void test_text_model_as_mmproj(void **state) {
    (void)state;
    const char *needles[] = {"general.architecture", "gemma3", "clip", TEXT_MODEL};
    expect_load_error(TEXT_MODEL, needles, 4);
}

static void test_truncated(void **state) {
    (void)state;
    const char *path = G3_TEST_TMP "/mmproj-truncated.gguf";
    size_t size = 0;
    uint8_t *data = tu_read_file(MMPROJ, &size);
    assert_non_null(data);
    assert_int_equal(tu_write_file(path, data, size / 2), 0);
    free(data);
    const char *needles[] = {path};
    expect_load_error(path, needles, 1);
    remove(path);
}

/* The projection size must equal the text model's n_embd: the golden pair
 * fits; an mmproj projecting to 128 (key and tensor shape rewritten) does
 * not, and the message names both sizes. */
static void test_projection_size(void **state) {
    (void)state;
    g3_error err = {{0}};
    g3_model *model = NULL;
    g3_vision *v = NULL;
    if (g3_model_load(TEXT_MODEL, &model, &err)) fail_msg("%s", err.msg);
    if (g3_vision_load(MMPROJ, NULL, &v, &err)) fail_msg("%s", err.msg);
    if (g3_vision_check_model(v, model, &err)) fail_msg("%s", err.msg);
    g3_vision_free(v);

    const char *path = G3_TEST_TMP "/mmproj-proj128.gguf", *tmp = G3_TEST_TMP "/mmproj-proj128a.gguf";
    const uint32_t u32_128 = 128;
    const uint64_t u64_128 = 128;
    /* key, u32 type, then the u32 value */
    patched_copy(tmp, "clip.vision.projection_dim", strlen("clip.vision.projection_dim") + 4, &u32_128, 4);
    /* tensor info: name, u32 n_dims, then ne[0] (u64): a smaller tensor in the same place */
    size_t size = 0;
    uint8_t *data = tu_read_file(tmp, &size);
    assert_non_null(data);
    const char *name = "mm.input_projection.weight";
    uint8_t *at = memmem(data, size, name, strlen(name));
    assert_non_null(at);
    memcpy(at + strlen(name) + 4, &u64_128, 8);
    assert_int_equal(tu_write_file(path, data, size), 0);
    free(data);
    remove(tmp);

    if (g3_vision_load(path, NULL, &v, &err)) fail_msg("%s", err.msg);
    assert_int_equal(g3_vision_n_embd(v), 128);
    assert_int_equal(g3_vision_check_model(v, model, &err), -1);
    printf("expected error: %s\n", err.msg);
    assert_non_null(strstr(err.msg, "128"));
    assert_non_null(strstr(err.msg, "256"));
    assert_non_null(strstr(err.msg, path));
    g3_vision_free(v);
    g3_model_free(model);
    remove(path);
}

/* make-test-model --vision writes an mmproj in the real layout that loads
 * and encodes; the 1B shape has no vision encoder and says so. */
static void test_make_test_mmproj(void **state) {
    (void)state;
    int status = -1;
    char *out = tu_run(G3_BINARY " make-test-model --shape tiny --vision --type q8_0 --seed 3 --quiet -o " G3_TEST_TMP
                                 "/mm-tiny.gguf 2>&1 && " G3_BINARY " embed-image --mmproj " G3_TEST_TMP
                                 "/mm-tiny.gguf --image " IMAGE " --out " G3_TEST_TMP "/mm-tiny.f32 2>&1",
                       &status);
    assert_non_null(out);
    if (status != 0) fail_msg("make-test-model --vision / embed-image failed: %s", out);
    free(out);
    size_t n = 0;
    float *f = read_f32(G3_TEST_TMP "/mm-tiny.f32", &n);
    assert_non_null(f);
    assert_int_equal(n, 16 * 256);
    double mx = 0.0;
    for (size_t i = 0; i < n; i++) {
        assert_true(isfinite(f[i]));
        if (fabs(f[i]) > mx) mx = fabs(f[i]);
    }
    assert_true(mx > 0.0);
    free(f);
    remove(G3_TEST_TMP "/mm-tiny.gguf");
    remove(G3_TEST_TMP "/mm-tiny.f32");
    out = tu_run(G3_BINARY " make-test-model --shape 1b --vision --quiet -o " G3_TEST_TMP "/mm-1b.gguf 2>&1", &status);
    assert_non_null(out);
    assert_int_not_equal(status, 0);
    assert_non_null(strstr(out, "no vision encoder"));
    free(out);
    assert_null(tu_read_file(G3_TEST_TMP "/mm-1b.gguf", NULL));
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_api_golden),
        cmocka_unit_test(test_cli_golden_all_paths),
        cmocka_unit_test(test_cli_bad_args),
        cmocka_unit_test(test_wrong_projector_type),
        cmocka_unit_test(test_missing_tensor),
        cmocka_unit_test(test_missing_key),
        cmocka_unit_test(test_text_model_as_mmproj),
        cmocka_unit_test(test_truncated),
        cmocka_unit_test(test_projection_size),
        cmocka_unit_test(test_make_test_mmproj),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
