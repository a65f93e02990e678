/* test_exact_activations: g3_context_params.exact_activations on the SIMD
 * paths gives the scalar path's logits.
 *
 * With exact activations every product takes its f32 input, and quantized
 * weights are dequantized exactly (kernels_simd_common.h), as the scalar
 * reference does; what is left between the paths is the order of f32 sums.
 * - golden tiny models (every type): logits of the `long` sequence (145
 *   positions: one batched pass over 137, then 8 one-token decode steps, so
 *   both the tile and the decode kernels run) on AVX2 and AVX-512 with
 *   exact activations against G3_CPU=scalar: max |d| <= 2e-5 (logits up to
 *   ~3.5; measured 5e-6..8.5e-6, what F32 weights show too; the 15-bit path,
 *   printed for scale, is 8e-4..1e-3 away);
 * - the real Gemma 3 270M (skipped when absent): the first 64 positions of
 *   a prompt (56 batched + 8 decode steps) against G3_CPU=scalar: max |d|
 *   <= 1e-3 (logits up to 42; measured 1.3e-4..1.4e-4, the 15-bit path
 *   1.5e-2..1.9e-2).
 * The kernel path is fixed per process (G3_CPU is read once), so each path
 * runs in a child: this program re-executed with --logits. */
#include <math.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cmocka.h>

#include "base/cpu_features.h"
#include "gemma3.h"
#include "gemma3_text.h"
#include "test_util.h"

#define GOLDEN G3_GOLDEN_DIR "/tiny-gemma3"
#define N_DECODE 8 /* positions fed one at a time at the end */

static char g_self[4096];

static const char *k_real_prompt =
    "Write a short essay on the history of the printing press. The printing press, developed by Johannes "
    "Gutenberg around 1440, changed how knowledge spread across Europe. Before it, books were copied by "
    "hand, slowly and at great cost; afterwards, pamphlets, bibles and scientific treatises reached readers "
    "in every city, and literacy rose with them.";

/* ---- the child: logits of every position of a token file ---- */

static int child_logits(const char *model_path, const char *tokens_path, int n_max, bool exact, const char *out) {
    g3_error err;
    g3_model *m = NULL;
    if (g3_model_load(model_path, &m, &err)) {
        fprintf(stderr, "%s\n", err.msg);
        return 1;
    }
    size_t len = 0;
    char *text = (char *)tu_read_file(tokens_path, &len);
    if (!text) return 1;
    int32_t *ids = NULL;
    size_t n = 0;
    if (strstr(tokens_path, ".json")) {
        int64_t *v;
        long k = tu_parse_int_array(text, &v);
        if (k <= 0) return 1;
        ids = malloc(sizeof *ids * (size_t)k);
        for (long i = 0; i < k; i++) ids[i] = (int32_t)v[i];
        n = (size_t)k;
        free(v);
    } else {
        g3_tokenizer *tok;
        if (g3_tokenizer_from_model(m, &tok, &err) || g3_tokenize(tok, text, len, true, false, &ids, &n, &err)) {
            fprintf(stderr, "%s\n", err.msg);
            return 1;
        }
        g3_tokenizer_free(tok);
    }
    free(text);
    if (n_max > 0 && n > (size_t)n_max) n = (size_t)n_max;
    const uint32_t V = g3_model_config(m)->n_vocab;
    g3_context_params cp = {.n_ctx = (uint32_t)n, .n_ubatch = 256, .exact_activations = exact};
    g3_context *ctx;
    if (n <= N_DECODE || g3_context_new(m, &cp, &ctx, &err)) {
        fprintf(stderr, "context: %s\n", err.msg);
        return 1;
    }
    float *logits = malloc(sizeof(float) * V * n);
    const uint32_t nb = (uint32_t)n - N_DECODE;
    int rc = g3_eval(ctx, ids, nb, logits, true, &err);
    for (uint32_t i = nb; i < n && !rc; i++) rc = g3_eval(ctx, ids + i, 1, logits + (size_t)i * V, false, &err);
    if (rc || tu_write_file(out, logits, sizeof(float) * V * n)) {
        fprintf(stderr, "eval: %s\n", err.msg);
        return 1;
    }
    free(logits);
    free(ids);
    g3_context_free(ctx);
    g3_model_free(m);
    return 0;
}

/* ---- the parent ---- */

/* Logits of a path (its G3_CPU name) into a malloc'd buffer of *count floats. */
static float *run_path(const char *path, const char *model, const char *tokens, int n_max, bool exact, size_t *count) {
    char out[512], cmd[8192];
    snprintf(out, sizeof out, "%s/exact-%d-%s-%d.f32", G3_TEST_TMP, (int)getpid(), path, (int)exact);
    snprintf(cmd, sizeof cmd, "mkdir -p %s && G3_CPU=%s %s --logits %s %s %d %d %s 2>&1", G3_TEST_TMP, path, g_self,
             model, tokens, n_max, (int)exact, out);
    int status;
    char *text = tu_run(cmd, &status);
    if (status != 0) fail_msg("%s: %s", cmd, text ? text : "");
    free(text);
    size_t bytes = 0;
    float *v = (float *)tu_read_file(out, &bytes);
    unlink(out);
    assert_non_null(v);
    *count = bytes / sizeof(float);
    return v;
}

static double max_diff(const float *a, const float *b, size_t n, double *max_abs) {
    double m = 0, big = 0;
    for (size_t i = 0; i < n; i++) {
        const double d = fabs((double)a[i] - b[i]);
        if (!(d <= m)) m = d; /* NaN wins */
        if (fabs(a[i]) > big) big = fabs(a[i]);
    }
    if (max_abs) *max_abs = big;
    return m;
}

/* Every SIMD path this CPU runs, exact activations against scalar (and the
 * 15-bit path, printed only). */
static void compare_paths(const char *label, const char *model, const char *tokens, int n_max, double tol) {
    size_t n_ref, n;
    float *ref = run_path("scalar", model, tokens, n_max, false, &n_ref);
    assert_true(n_ref > 0);
    for (int p = G3_CPU_AVX2; p < G3_CPU_PATH_COUNT; p++) {
        if (!g3_cpu_has_path((g3_cpu_path)p)) {
            printf("  (%s: not available on this CPU, skipped)\n", g3_cpu_path_name((g3_cpu_path)p));
            continue;
        }
        const char *name = g3_cpu_path_name((g3_cpu_path)p);
        float *ex = run_path(name, model, tokens, n_max, true, &n);
        assert_int_equal(n, n_ref);
        float *q = run_path(name, model, tokens, n_max, false, &n);
        double big;
        const double d_ex = max_diff(ex, ref, n, &big), d_q = max_diff(q, ref, n, NULL);
        printf("  %-8s %-7s max |logit| %6.2f: exact vs scalar %.3g, 15-bit vs scalar %.3g\n", label, name, big, d_ex,
               d_q);
        if (!(d_ex <= tol)) fail_msg("%s %s: exact activations are %.3g from scalar (bound %.3g)", label, name, d_ex, tol);
        free(ex);
        free(q);
    }
    free(ref);
}

static void test_golden_models(void **state) {
    static const char *types[] = {"f32", "f16", "bf16", "q8_0", "q6_k", "q4_k_m", "q4_0"};
    for (size_t i = 0; i < sizeof types / sizeof types[0]; i++) {
        char model[512], tokens[512];
        snprintf(model, sizeof model, GOLDEN "/models/g3-1b-s1234-%s.gguf", types[i]);
        snprintf(tokens, sizeof tokens, GOLDEN "/text/g3-1b-s1234-%s/long.tokens.json", types[i]);
        compare_paths(types[i], model, tokens, 0, 2e-5);
    }
}

/* G3_REAL_MODEL, else <dir of the binary>/../models/<file> */
static void real_model_path(char *out, size_t cap) {
    const char *env = getenv("G3_REAL_MODEL");
    if (env && *env) {
        snprintf(out, cap, "%s", env);
        return;
    }
    snprintf(out, cap, "%s", G3_BINARY);
    char *slash = strrchr(out, '/');
    if (slash) snprintf(slash, cap - (size_t)(slash - out), "/../models/gemma-3-270m-q4_k_m.gguf");
}

static void test_real_model(void **state) {
    char model[4096];
    real_model_path(model, sizeof model);
    if (access(model, R_OK) != 0) {
        printf("  (real model %s absent: skipped)\n", model);
        skip();
    }
    char prompt[512];
    snprintf(prompt, sizeof prompt, "%s/exact-prompt-%d.txt", G3_TEST_TMP, (int)getpid());
    assert_int_equal(system("mkdir -p " G3_TEST_TMP), 0);
    assert_int_equal(tu_write_file(prompt, k_real_prompt, strlen(k_real_prompt)), 0);
    compare_paths("270m", model, prompt, 64, 1e-3);
    unlink(prompt);
}

int main(int argc, char **argv) {
    if (argc == 7 && strcmp(argv[1], "--logits") == 0)
        return child_logits(argv[2], argv[3], atoi(argv[4]), atoi(argv[5]) != 0, argv[6]);
    ssize_t k = readlink("/proc/self/exe", g_self, sizeof g_self - 1);
    if (k <= 0) return 1;
    g_self[k] = '\0';
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_golden_models),
        cmocka_unit_test(test_real_model),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
