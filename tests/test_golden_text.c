/* test_golden_text: every golden text model x sequence through `gemma-chat
 * eval`, in one pass and in chunks of 7, against both references, under
 * every CPU kernel path this machine runs (G3_CPU=scalar, avx2, avx512): the
 * scalar reference and each SIMD path must meet the same rule. The SIMD
 * paths' distance from the scalar path is printed too.
 *
 * Acceptance (golden/tiny-gemma3/README.md), per case and per mode:
 *  (a) max|d| <= 5e-3 against exact.f32 and greedy == exact_greedy.json, or
 *  (b) max|d| <= 2e-2 against logits.f32 (llama.cpp) and greedy == greedy.json, or
 *  (c) quantized files only: max|d| and mean|d| against exact.f32 at most
 *      1.25 x llama.cpp's own, and argmax agreement with exact at least
 *      llama.cpp's minus 2 points.
 * The f16 KV cache (the default of run and chat) must meet the same rules;
 * bf16 and q8_0 caches are held to the tolerances stated at
 * check_small_caches.
 * Models and sequences are discovered from the folder, so added cases run too. */
#include <dirent.h>
#include <math.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "test_util.h"

#define GOLDEN G3_GOLDEN_DIR "/tiny-gemma3"

typedef struct golden_case {
    char model[64]; /* e.g. g3-1b-s1234-q4_0 */
    char seq[64];   /* e.g. long */
} golden_case;

typedef struct diff {
    double max, mean, argmax_agree; /* argmax agreement in percent */
} diff;

static diff compare(const float *a, const float *b, size_t n_pos, size_t n_vocab) {
    diff d = {0, 0, 0};
    size_t agree = 0;
    for (size_t p = 0; p < n_pos; p++) {
        const float *ra = a + p * n_vocab, *rb = b + p * n_vocab;
        size_t ia = 0, ib = 0;
        for (size_t v = 0; v < n_vocab; v++) {
            double e = fabs((double)ra[v] - rb[v]);
            if (e > d.max || isnan(e)) d.max = isnan(e) ? INFINITY : e;
            d.mean += e;
            if (ra[v] > ra[ia]) ia = v;
            if (rb[v] > rb[ib]) ib = v;
        }
        agree += ia == ib;
    }
    d.mean /= (double)(n_pos * n_vocab);
    d.argmax_agree = 100.0 * agree / n_pos;
    return d;
}

static float *read_f32(const char *path, size_t *count) {
    size_t bytes;
    uint8_t *data = tu_read_file(path, &bytes);
    if (!data) return NULL;
    *count = bytes / sizeof(float);
    return (float *)data;
}

static long read_ids(const char *path, int64_t **ids) {
    char *text = (char *)tu_read_file(path, NULL);
    if (!text) return -1;
    const char *p = strstr(text, "\"tokens\"");
    long n = tu_parse_int_array(p ? p : text, ids);
    free(text);
    return n;
}

static bool same_ids(const int64_t *a, long na, const int64_t *b, long nb) {
    return na == nb && memcmp(a, b, sizeof *a * (size_t)na) == 0;
}

static bool is_quantized(const char *model) {
    return strstr(model, "q8_0") || strstr(model, "q6_k") || strstr(model, "q4_k") || strstr(model, "q4_0") ||
           strstr(model, "q5_");
}

/* Runs one case in one mode on one path with a KV cache type; returns the
 * logits (caller frees). f32 and f16 caches must meet the golden rules;
 * for bf16 and q8_0 the caller compares (see test_case). */
static float *run_mode(const golden_case *c, int chunk, const char *cpu, const char *kv, const float *scalar) {
    char cmd[2048], out_path[512], base[512];
    snprintf(base, sizeof base, GOLDEN "/text/%s/%s", c->model, c->seq);
    snprintf(out_path, sizeof out_path, G3_TEST_TMP "/golden-%s-%s-%d-%s-%s.f32", c->model, c->seq, chunk, cpu, kv);
    char chunk_arg[32] = "";
    if (chunk) snprintf(chunk_arg, sizeof chunk_arg, "--chunk %d", chunk);
    snprintf(cmd, sizeof cmd, "G3_CPU=%s %s eval -m " GOLDEN "/models/%s.gguf --tokens-file %s.tokens.json "
             "--logits %s --generate 20 --kv-type %s %s 2>&1",
             cpu, G3_BINARY, c->model, base, out_path, kv, chunk_arg);
    int status;
    char *out = tu_run(cmd, &status);
    assert_non_null(out);
    if (status != 0) fail_msg("eval failed (%d): %s\n%s", status, cmd, out);

    char path[600];
    size_t n_ours = 0, n_exact = 0, n_ref = 0;
    float *ours = read_f32(out_path, &n_ours);
    snprintf(path, sizeof path, "%s.exact.f32", base);
    float *exact = read_f32(path, &n_exact);
    snprintf(path, sizeof path, "%s.logits.f32", base);
    float *ref = read_f32(path, &n_ref);
    int64_t *tokens, *greedy, *g_exact, *g_ref;
    snprintf(path, sizeof path, "%s.tokens.json", base);
    long n_pos = read_ids(path, &tokens);
    long n_greedy = tu_parse_int_array(strrchr(out, '['), &greedy); /* last line is the array */
    snprintf(path, sizeof path, "%s.exact_greedy.json", base);
    long n_gexact = read_ids(path, &g_exact);
    snprintf(path, sizeof path, "%s.greedy.json", base);
    long n_gref = read_ids(path, &g_ref);
    assert_non_null(ours);
    assert_non_null(exact);
    assert_non_null(ref);
    assert_true(n_pos > 0 && n_greedy == 20 && n_gexact == 20 && n_gref == 20);
    assert_int_equal(n_ours, n_exact);
    assert_int_equal(n_ours, n_ref);
    size_t n_vocab = n_ours / (size_t)n_pos;

    diff de = compare(ours, exact, (size_t)n_pos, n_vocab);
    diff dr = compare(ours, ref, (size_t)n_pos, n_vocab);
    diff llama = compare(ref, exact, (size_t)n_pos, n_vocab); /* llama.cpp vs exact */
    const bool ruled = strcmp(kv, "f32") == 0 || strcmp(kv, "f16") == 0;
    bool a = de.max <= 5e-3 && same_ids(greedy, n_greedy, g_exact, n_gexact);
    bool b = dr.max <= 2e-2 && same_ids(greedy, n_greedy, g_ref, n_gref);
    bool cq = is_quantized(c->model) && de.max <= 1.25 * llama.max && de.mean <= 1.25 * llama.mean &&
              de.argmax_agree >= llama.argmax_agree - 2.0;
    char vs_scalar[48] = "";
    if (scalar) snprintf(vs_scalar, sizeof vs_scalar, " | vs scalar max %.2e", compare(ours, scalar, (size_t)n_pos, n_vocab).max);
    printf("%-22s %-5s %-8s %-6s kv %-4s vs exact max %.2e mean %.2e | vs llama.cpp max %.2e mean %.2e | "
           "greedy=exact %s greedy=llama %s | rule %s%s\n",
           c->model, c->seq, chunk ? "chunk7" : "one-pass", cpu, kv, de.max, de.mean, dr.max, dr.mean,
           same_ids(greedy, n_greedy, g_exact, n_gexact) ? "yes" : "no",
           same_ids(greedy, n_greedy, g_ref, n_gref) ? "yes" : "no", a ? "a" : b ? "b" : cq ? "c" : ruled ? "FAIL" : "-",
           vs_scalar);
    bool ok = a || b || cq || !ruled;
    free(out); free(exact); free(ref); free(tokens); free(greedy); free(g_exact); free(g_ref);
    remove(out_path);
    if (!ok) {
        free(ours);
        fail_msg("%s/%s (%s, %s, %s KV cache) is outside the golden tolerances", c->model, c->seq,
                 chunk ? "chunk 7" : "one pass", cpu, kv);
    }
    return ours;
}

/* The kernel paths this machine runs, scalar first (G3_CPU values). */
static size_t cpu_paths(const char *paths[3]) {
    size_t n = 0;
    paths[n++] = "scalar";
    for (const char *p = "avx2"; p; p = strcmp(p, "avx2") == 0 ? "avx512" : NULL) {
        char cmd[1024];
        int status;
        snprintf(cmd, sizeof cmd, "G3_CPU=%s %s eval -m " GOLDEN "/models/g3-1b-s1234-f32.gguf --tokens 2 2>&1", p, G3_BINARY);
        char *out = tu_run(cmd, &status);
        if (out && status == 0) paths[n++] = p;
        else printf("(%s: not available on this CPU, skipped)\n", p);
        free(out);
    }
    return n;
}

static const char *g_paths[3];
static size_t g_n_paths;

/* Positions of a case (from its exact logits' size). */
static size_t case_positions(const golden_case *c, size_t *n_vocab) {
    char path[600];
    int64_t *tokens;
    snprintf(path, sizeof path, GOLDEN "/text/%s/%s.tokens.json", c->model, c->seq);
    long n_pos = read_ids(path, &tokens);
    assert_true(n_pos > 0);
    free(tokens);
    size_t n = 0;
    snprintf(path, sizeof path, GOLDEN "/text/%s/%s.exact.f32", c->model, c->seq);
    float *exact = read_f32(path, &n);
    assert_non_null(exact);
    free(exact);
    *n_vocab = n / (size_t)n_pos;
    return (size_t)n_pos;
}

/* The smaller caches, on the fastest path: bf16 (8-bit mantissa) must stay
 * within KV_BF16_MAX of the f32 cache; q8_0 within the stated distance of
 * the bf16 cache (max, mean, argmax agreement). Measured on the visible
 * cases: bf16 vs f32 <= 2.5e-2; q8_0 vs bf16 <= 8.2e-2 max, 1.6e-2 mean,
 * argmax agreement >= 92.3% (one position of 13). */
#define KV_BF16_MAX 5e-2
#define KV_Q8_0_MAX 0.15
#define KV_Q8_0_MEAN 0.03
#define KV_Q8_0_ARGMAX 75.0 /* one flip in a 13-token case is 7.7 points; a broken cache is near 0 */

static void check_small_caches(const golden_case *c, int chunk, const char *cpu, const float *f32) {
    size_t n_vocab, n_pos = case_positions(c, &n_vocab);
    float *bf16 = run_mode(c, chunk, cpu, "bf16", NULL), *q8 = run_mode(c, chunk, cpu, "q8_0", NULL);
    const diff db = compare(bf16, f32, n_pos, n_vocab), dq = compare(q8, bf16, n_pos, n_vocab);
    printf("%-22s %-5s %-8s %-6s bf16 cache vs f32 max %.2e | q8_0 cache vs bf16 max %.2e mean %.2e argmax %.1f%%\n",
           c->model, c->seq, chunk ? "chunk7" : "one-pass", cpu, db.max, dq.max, dq.mean, dq.argmax_agree);
    const bool ok = db.max <= KV_BF16_MAX && dq.max <= KV_Q8_0_MAX && dq.mean <= KV_Q8_0_MEAN &&
                    dq.argmax_agree >= KV_Q8_0_ARGMAX;
    free(bf16);
    free(q8);
    if (!ok) fail_msg("%s/%s: a bf16 or q8_0 KV cache moved the logits past the stated tolerance", c->model, c->seq);
}

static void test_case(void **state) {
    const golden_case *c = *state;
    const char *best = g_paths[g_n_paths - 1];
    for (int chunk = 0; chunk <= 7; chunk += 7) {
        float *scalar = run_mode(c, chunk, g_paths[0], "f32", NULL), *fast = NULL;
        for (size_t p = 1; p < g_n_paths; p++) {
            float *l = run_mode(c, chunk, g_paths[p], "f32", scalar);
            if (p + 1 == g_n_paths) fast = l;
            else free(l);
        }
        /* the default cache of run and chat meets the golden rules too */
        free(run_mode(c, chunk, g_paths[0], "f16", NULL));
        if (g_n_paths > 1) free(run_mode(c, chunk, best, "f16", NULL));
        check_small_caches(c, chunk, best, fast ? fast : scalar);
        free(scalar);
        free(fast);
    }
}

static int cmp_case(const void *a, const void *b) {
    const golden_case *x = a, *y = b;
    int r = strcmp(x->model, y->model);
    return r ? r : strcmp(x->seq, y->seq);
}

/* Every text/<model>/<seq>.tokens.json whose model file exists. */
static size_t discover(golden_case **out) {
    size_t n = 0, cap = 64;
    golden_case *cases = malloc(cap * sizeof *cases);
    DIR *top = opendir(GOLDEN "/text");
    struct dirent *m;
    while (cases && top && (m = readdir(top))) {
        if (m->d_name[0] == '.' || strlen(m->d_name) >= 64) continue;
        char dir[600];
        snprintf(dir, sizeof dir, GOLDEN "/text/%s", m->d_name);
        DIR *d = opendir(dir);
        struct dirent *f;
        while (d && (f = readdir(d))) {
            const char *suffix = strstr(f->d_name, ".tokens.json");
            if (!suffix || suffix[12] != 0 || (size_t)(suffix - f->d_name) >= 64) continue;
            if (n == cap) cases = realloc(cases, (cap *= 2) * sizeof *cases);
            if (!cases) break;
            memcpy(cases[n].model, m->d_name, strlen(m->d_name) + 1); /* < 64, checked above */
            snprintf(cases[n].seq, 64, "%.*s", (int)(suffix - f->d_name), f->d_name);
            n++;
        }
        if (d) closedir(d);
    }
    if (top) closedir(top);
    if (cases) qsort(cases, n, sizeof *cases, cmp_case);
    *out = cases;
    return n;
}

int main(void) {
    golden_case *cases;
    size_t n = discover(&cases);
    g_n_paths = cpu_paths(g_paths);
    if (n == 0) {
        fprintf(stderr, "no golden cases found under %s\n", GOLDEN "/text");
        return 1;
    }
    struct CMUnitTest *tests = calloc(n, sizeof *tests);
    char (*names)[160] = calloc(n, sizeof *names);
    if (!tests || !names) return 1;
    for (size_t i = 0; i < n; i++) {
        snprintf(names[i], sizeof names[i], "%s/%s", cases[i].model, cases[i].seq);
        tests[i].name = names[i];
        tests[i].test_func = test_case;
        tests[i].initial_state = &cases[i];
    }
    int rc = _cmocka_run_group_tests("golden_text", tests, n, NULL, NULL);
    free(tests);
    free(names);
    free(cases);
    return rc;
}
