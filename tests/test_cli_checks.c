/* test_cli_checks: the small things a new user meets (issue [6], item 7).
 * - `info` labels the global layers as a count, then their indices; on an
 *   mmproj file it describes the vision projector;
 * - `eval --generate N` beyond the context is refused before any work;
 * - `bench -p 0 -n 0` is refused instead of measuring nothing for seconds;
 * - G3_MEM_LIMIT that is not a size, and `--stop ""`, are clear errors;
 * - progress bars draw (\r) only on a terminal: a log gets one final line;
 * - FFmpeg's own log lines stay off stderr (our errors say what was wrong);
 * - --activations reaches the kernels; eval --kl-base measures it. */
#include <fcntl.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <cmocka.h>
#include <libavutil/log.h>

#include "gemma3_media.h"
#include "test_util.h"

#define TINY G3_GOLDEN_DIR "/tiny-gemma3/models"
#define TINY_MODEL TINY "/g3-1b-s1234-f32.gguf"
#define MMPROJ TINY "/mmproj-g3-s99-f32.gguf"
#define ERR_FILE G3_TEST_TMP "/cli-checks-stderr.txt"

typedef struct result {
    int status;
    char *out, *err;
    double seconds;
} result;

static double now_s(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return ts.tv_sec + ts.tv_nsec * 1e-9;
}

/* `ENV gemma-chat ARGS`, stdout and stderr apart, stdin empty. */
static result cli(const char *env, const char *args) {
    char cmd[4096];
    snprintf(cmd, sizeof cmd, "env %s %s %s 2>%s </dev/null", env ? env : "", G3_BINARY, args, ERR_FILE);
    result r;
    const double t0 = now_s();
    r.out = tu_run(cmd, &r.status);
    r.seconds = now_s() - t0;
    assert_non_null(r.out);
    r.err = (char *)tu_read_file(ERR_FILE, NULL);
    assert_non_null(r.err);
    return r;
}

static void result_free(result *r) {
    free(r->out);
    free(r->err);
}

static void expect(const char *text, const char *needle) {
    if (!strstr(text, needle)) fail_msg("'%s' not in:\n%s", needle, text);
}

static void test_info_global_layers(void **state) {
    result r = cli(NULL, "info -m " TINY_MODEL);
    assert_int_equal(r.status, 0);
    /* 7 layers, layer 5 global: it printed "global layers: 5", which reads as a count */
    expect(r.out, "layers:             7\n");
    expect(r.out, "global layers:      1 of 7 (indices 5; the others: sliding window)\n");
    result_free(&r);
}

static void test_info_on_a_vision_projector(void **state) {
    result r = cli(NULL, "info -m " MMPROJ);
    if (r.status != 0) fail_msg("exit %d: %s", r.status, r.err);
    expect(r.out, "architecture:       clip (Gemma 3 vision projector");
    expect(r.out, "image size:         64 x 64 pixels");
    expect(r.out, "tokens per image:   16 soft tokens\n");
    expect(r.out, "projection:         256 (must equal the text model's embedding size)\n");
    expect(r.out, "--mmproj " MMPROJ);
    assert_string_equal(r.err, "");
    result_free(&r);
}

static void test_eval_generate_beyond_the_context(void **state) {
    /* 4 tokens + 13 generated need 16 positions (the last id is never evaluated): fits -c 16 */
    result r = cli(NULL, "eval -m " TINY_MODEL " --tokens 2,105,236,107 --generate 13 -c 16");
    if (r.status != 0) fail_msg("exit %d: %s", r.status, r.err);
    expect(r.err, "eval: 4 tokens in "); /* the timing line the refusals must not reach */
    result_free(&r);
    r = cli(NULL, "eval -m " TINY_MODEL " --tokens 2,105,236,107 --generate 14 -c 16");
    assert_int_equal(r.status, 1);
    expect(r.err, "the sequence (4 positions) and --generate 14 need 17 positions but the context holds 16 (-c)");
    assert_null(strstr(r.err, " tokens in ")); /* refused before evaluating anything (no timing line) */
    assert_string_equal(r.out, "");
    result_free(&r);
    /* without -c, the trained length (512) is the limit */
    r = cli(NULL, "eval -m " TINY_MODEL " --tokens 2,105,236,107 --generate 600");
    assert_int_equal(r.status, 1);
    expect(r.err, "need 603 positions but the context holds 512 (the model's trained length)");
    assert_null(strstr(r.err, " tokens in "));
    result_free(&r);
}

static void test_bench_with_nothing_to_measure(void **state) {
    result r = cli(NULL, "bench -m " TINY_MODEL " -p 0 -n 0");
    assert_int_equal(r.status, 2);
    expect(r.err, "-p 0 and -n 0 leave nothing to measure");
    assert_string_equal(r.out, "");
    assert_true(r.seconds < 5); /* it measured memory bandwidth for seconds, then printed an empty table */
    result_free(&r);
}

static void test_mem_limit_must_be_a_size(void **state) {
    const char *bad[] = {"lots", "6X", "1T", "-5G", "G", "1e9", "6 G"};
    const char *cmds[] = {"run -m " TINY_MODEL " -p Hi -n 2", "chat --no-save -m " TINY_MODEL " -n 2",
                          "plan -m " TINY_MODEL, "bench -m " TINY_MODEL " -p 8 -n 0 -r 1",
                          "eval -m " TINY_MODEL " --tokens 2,105"};
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++)
        for (size_t k = 0; k < sizeof cmds / sizeof cmds[0]; k++) {
            char env[64];
            snprintf(env, sizeof env, "'G3_MEM_LIMIT=%s'", bad[i]);
            result r = cli(env, cmds[k]);
            if (r.status != 2) fail_msg("G3_MEM_LIMIT=%s %s: exit %d", bad[i], cmds[k], r.status);
            char want[128];
            snprintf(want, sizeof want, "G3_MEM_LIMIT='%s' is not a size", bad[i]);
            expect(r.err, want);
            result_free(&r);
        }
    const char *good[] = {"6G", "1.5GiB", "700M", "123456789", "64mb", "2g"};
    for (size_t i = 0; i < sizeof good / sizeof good[0]; i++) {
        char env[64];
        snprintf(env, sizeof env, "G3_MEM_LIMIT=%s", good[i]);
        result r = cli(env, "run -m " TINY_MODEL " -p Hi -n 2 --temp 0");
        if (r.status != 0) fail_msg("G3_MEM_LIMIT=%s: exit %d: %s", good[i], r.status, r.err);
        result_free(&r);
    }
    /* a real limit still works: too small to load is refused with the plan's numbers */
    result r = cli("G3_MEM_LIMIT=1M", "run -m " TINY_MODEL " -p Hi -n 2");
    assert_int_equal(r.status, 1);
    expect(r.err, "available");
    result_free(&r);
}

static void test_empty_stop_string(void **state) {
    const char *cmds[] = {"run -m " TINY_MODEL " -p Hi --stop ''",
                          "chat --no-save -m " TINY_MODEL " --stop x --stop ''"};
    for (size_t k = 0; k < 2; k++) {
        result r = cli(NULL, cmds[k]);
        assert_int_equal(r.status, 2);
        expect(r.err, "--stop needs a non-empty TEXT");
        result_free(&r);
    }
}

/* stderr to a file: no \r redraws, one final line. */
static void test_progress_only_on_a_terminal(void **state) {
    result r = cli(NULL, "make-test-model --shape tiny --type f32 --seed 3 -o " G3_TEST_TMP "/progress-f32.gguf");
    assert_int_equal(r.status, 0);
    assert_null(strchr(r.err, '\r'));
    assert_string_equal(r.err, "wrote " G3_TEST_TMP "/progress-f32.gguf\n");
    result_free(&r);
    r = cli(NULL, "quantize " G3_TEST_TMP "/progress-f32.gguf " G3_TEST_TMP "/progress-q8.gguf Q8_0");
    assert_int_equal(r.status, 0);
    assert_null(strchr(r.err, '\r'));
    expect(r.err, "wrote " G3_TEST_TMP "/progress-q8.gguf (Q8_0)");
    assert_null(strchr(strchr(r.err, '\n') + 1, '\n')); /* one line */
    result_free(&r);
    r = cli(NULL, "make-test-model --quiet --shape tiny --type f32 --seed 3 -o " G3_TEST_TMP "/progress-f32.gguf");
    assert_int_equal(r.status, 0);
    assert_string_equal(r.err, "");
    result_free(&r);
}

/* A damaged MP4 (an ftyp box, then junk): FFmpeg's demuxer would log
 * "moov atom not found" on stderr beside our own error. */
static void test_ffmpeg_log_stays_quiet(void **state) {
    const char *path = G3_TEST_TMP "/damaged.mp4";
    unsigned char mp4[4096] = {0, 0, 0, 24, 'f', 't', 'y', 'p', 'i', 's', 'o', 'm', 0, 0, 2, 0,
                               'i', 's', 'o', 'm', 'm', 'p', '4', '1'};
    for (size_t i = 24; i < sizeof mp4; i++) mp4[i] = (unsigned char)(i * 7 + 3);
    assert_int_equal(tu_write_file(path, mp4, sizeof mp4), 0);
    fflush(stderr);
    const int saved = dup(STDERR_FILENO);
    const int fd = open(ERR_FILE, O_WRONLY | O_CREAT | O_TRUNC, 0644);
    assert_true(saved >= 0 && fd >= 0);
    dup2(fd, STDERR_FILENO);
    close(fd);
    g3_video_frame *frames = NULL;
    uint32_t n = 0;
    g3_error err;
    const int rc = g3_video_sample(path, 2, NULL, &frames, &n, &err);
    fflush(stderr);
    dup2(saved, STDERR_FILENO);
    close(saved);
    assert_int_equal(rc, -1);
    printf("our error: %s\n", err.msg);
    assert_non_null(strstr(err.msg, path));
    char *logged = (char *)tu_read_file(ERR_FILE, NULL);
    assert_non_null(logged);
    if (logged[0]) fail_msg("FFmpeg wrote to stderr: %s", logged);
    free(logged);
    assert_int_equal(av_log_get_level(), AV_LOG_QUIET);
}

/* --activations reaches the kernels, and eval --kl-base measures it: on a
 * Q4_0 model decoded one token at a time, int15 stays within 1e-4 of the
 * exact distributions; int8 moves further (AVX-512, the path with 8-bit
 * decode kernels; elsewhere it equals int15). A bad value and a reference
 * of another length are refused by name. */
static double kl_mean_of(const char *json) {
    const char *p = strstr(json, "\"kl_mean\": ");
    if (!p) fail_msg("no kl_mean in '%s'", json);
    return strtod(p + strlen("\"kl_mean\": "), NULL);
}

static void test_activations_flag(void **state) {
    const char *cmds[] = {"run -m " TINY_MODEL " -p Hi", "chat --no-save -m " TINY_MODEL, "serve -m " TINY_MODEL,
                          "bench -m " TINY_MODEL, "eval -m " TINY_MODEL " --tokens 2,105"};
    for (size_t k = 0; k < sizeof cmds / sizeof cmds[0]; k++) {
        char args[256];
        snprintf(args, sizeof args, "%s --activations int9", cmds[k]);
        result r = cli(NULL, args);
        if (r.status != 2) fail_msg("%s: exit %d", args, r.status);
        expect(r.err, "--activations must be exact, int15 or int8, got 'int9'");
        result_free(&r);
    }
    result r = cli(NULL, "make-test-model --quiet --shape tiny --type q4_0 --seed 5 -o " G3_TEST_TMP "/act-q4.gguf");
    assert_int_equal(r.status, 0);
    result_free(&r);
#define ACT_EVAL "eval -m " G3_TEST_TMP "/act-q4.gguf --tokens 2,105,236,107,12,40,77,300,41,9,18,33 "
    r = cli(NULL, ACT_EVAL "--chunk 1 --activations exact --logits " G3_TEST_TMP "/act-exact.f32");
    assert_int_equal(r.status, 0);
    result_free(&r);
    /* chunk 1: every token through the decode kernels; 12: one batched
     * pass (the tile kernels) */
    const char *chunks[] = {"1", "12"};
    for (size_t c = 0; c < 2; c++) {
        char args[512];
        snprintf(args, sizeof args, ACT_EVAL "--chunk %s --activations int15 --kl-base " G3_TEST_TMP "/act-exact.f32",
                 chunks[c]);
        r = cli(NULL, args);
        assert_int_equal(r.status, 0);
        expect(r.out, "\"positions\": 12,");
        const double kl15 = kl_mean_of(r.out);
        result_free(&r);
        snprintf(args, sizeof args, ACT_EVAL "--chunk %s --activations int8 --kl-base " G3_TEST_TMP "/act-exact.f32",
                 chunks[c]);
        r = cli(NULL, args);
        assert_int_equal(r.status, 0);
        const double kl8 = kl_mean_of(r.out);
        result_free(&r);
        printf("KL from exact, chunk %s: int15 %.3g, int8 %.3g\n", chunks[c], kl15, kl8);
        assert_true(kl15 >= 0 && kl15 < 1e-4);
        /* the AVX2 and AVX-512 paths have 8-bit kernels; the scalar one is exact */
        __builtin_cpu_init();
        const char *forced = getenv("G3_CPU");
        if (__builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma") && __builtin_cpu_supports("f16c") &&
            !(forced && strcmp(forced, "scalar") == 0))
            assert_true(kl8 > 10 * kl15);
    }
    r = cli(NULL, "eval -m " G3_TEST_TMP "/act-q4.gguf --tokens 2,105 --kl-base " G3_TEST_TMP "/act-exact.f32");
    assert_int_equal(r.status, 1);
    expect(r.err, "not the same sequence and model");
    result_free(&r);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_info_global_layers),
        cmocka_unit_test(test_info_on_a_vision_projector),
        cmocka_unit_test(test_eval_generate_beyond_the_context),
        cmocka_unit_test(test_bench_with_nothing_to_measure),
        cmocka_unit_test(test_mem_limit_must_be_a_size),
        cmocka_unit_test(test_empty_stop_string),
        cmocka_unit_test(test_progress_only_on_a_terminal),
        cmocka_unit_test(test_ffmpeg_log_stays_quiet),
        cmocka_unit_test(test_activations_flag),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
