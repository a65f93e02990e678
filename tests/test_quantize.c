/* test_quantize: `gemma-chat quantize` against llama-quantize's own output.
 * - the golden F32 model quantized to Q8_0, Q4_0 and Q4_K_M has, tensor by
 *   tensor, the golden file's type, shape and bytes (the kernels are
 *   byte-identical per block, so this tests the per-tensor type rules; the
 *   data is compared too); every metadata key is kept, general.file_type is
 *   llama.cpp's value (7, 2, 15);
 * - F16 and BF16 inputs give the same types;
 * - the quantization error per tensor (RMS of dequantized - original over
 *   RMS of the original) is below a bound per type, and exactly 0 for the
 *   tensors kept as they were (norms stay F32);
 * - the outputs load and evaluate like the golden files (max |d| <= 5e-3
 *   from the golden exact logits, same argmax);
 * - an mmproj (clip) file quantizes every matrix that fits the block;
 * - bad input: an unknown type, a quantized input, a missing input, an
 *   output that cannot be written, the same path twice, a full disk: a clear
 *   error and no file (nor OUT.tmp) left behind. */
#include <math.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cmocka.h>

#include "gemma3.h"
#include "gemma3_plan.h"
#include "model/gguf.h"
#include "tensor/type_info.h"
#include "tensor/type_ops.h"
#include "test_util.h"

#define GOLDEN G3_GOLDEN_DIR "/tiny-gemma3"
#define MODELS GOLDEN "/models"
#define F32_MODEL MODELS "/g3-1b-s1234-f32.gguf"

typedef struct target {
    const char *arg;    /* as typed on the command line */
    const char *golden; /* golden file suffix */
    g3_ftype ftype;
    uint32_t file_type; /* llama.cpp's general.file_type */
} target;

static const target k_targets[] = {
    {"Q8_0", "q8_0", G3_FTYPE_Q8_0, 7},
    {"Q4_0", "q4_0", G3_FTYPE_Q4_0, 2},
    {"Q4_K_M", "q4_k_m", G3_FTYPE_Q4_K_M, 15},
};
#define N_TARGETS 3

/* Relative RMS error bounds per tensor type for N(0, sigma) weights, about
 * 1.5x what we measure (Q8_0 0.5%, Q6_K 2%, Q5_0 4%, Q4_K 7%, Q4_0 8%):
 * a wrong scale, a swapped nibble or a wrong block layout is far above. */
static double rms_bound(uint32_t type) {
    switch (type) {
    case G3_TYPE_Q8_0: return 0.008;
    case G3_TYPE_Q6_K: return 0.03;
    case G3_TYPE_Q5_0: return 0.06;
    case G3_TYPE_Q4_K: return 0.11;
    case G3_TYPE_Q4_0: return 0.12;
    default: return 0.0; /* kept as they were: exact */
    }
}

static void out_path(char *buf, size_t n, const char *name) {
    snprintf(buf, n, "%s/%s", G3_TEST_TMP, name);
}

static bool exists(const char *path) { return access(path, F_OK) == 0; }

static void quantize_or_fail(const char *in, const char *out, g3_ftype ftype) {
    g3_quantize_params p = {.in_path = in, .out_path = out, .ftype = ftype, .progress = false};
    g3_error err;
    if (g3_quantize(&p, &err)) fail_msg("%s", err.msg);
}

static char *name_of(g3_str s) {
    char *c = malloc(s.len + 1);
    memcpy(c, s.ptr, s.len);
    c[s.len] = 0;
    return c;
}

/* Types, shapes (and with `data`, bytes) of every tensor equal. */
static void compare_tensors(const g3_gguf *ours, const g3_gguf *gold, bool data) {
    assert_int_equal(ours->n_tensors, gold->n_tensors);
    for (uint64_t i = 0; i < gold->n_tensors; i++) {
        const g3_gguf_tensor *g = &gold->tensors[i];
        char *name = name_of(g->name);
        const g3_gguf_tensor *o = g3_gguf_find_tensor(ours, name);
        if (!o) fail_msg("tensor %s missing", name);
        char a[32], b[32];
        if (o->type != g->type)
            fail_msg("%s: type %s, llama-quantize wrote %s", name, g3_type_name(o->type, a),
                     g3_type_name(g->type, b));
        assert_int_equal(o->n_dims, g->n_dims);
        assert_memory_equal(o->ne, g->ne, sizeof o->ne);
        assert_int_equal(o->n_bytes, g->n_bytes);
        if (data && memcmp(o->data, g->data, g->n_bytes) != 0) fail_msg("%s: bytes differ", name);
        free(name);
    }
}

/* Every key of the input is in the output with the same type (file_type
 * updated; quantization_version added). */
static void compare_metadata(const g3_gguf *in, const g3_gguf *out, uint32_t file_type) {
    for (uint64_t i = 0; i < in->n_kv; i++) {
        char *key = name_of(in->kv[i].key);
        const g3_gguf_kv *kv = g3_gguf_find_kv(out, key);
        if (!kv) fail_msg("key %s was dropped", key);
        assert_int_equal(kv->value.type, in->kv[i].value.type);
        if (kv->value.type == G3_GGUF_ARRAY) {
            assert_int_equal(kv->value.v.arr.n, in->kv[i].value.v.arr.n);
        } else if (strcmp(key, "general.file_type") != 0 && kv->value.type != G3_GGUF_STRING) {
            assert_memory_equal(&kv->value.v, &in->kv[i].value.v, sizeof kv->value.v.u64);
        } else if (kv->value.type == G3_GGUF_STRING) {
            assert_int_equal(kv->value.v.str.len, in->kv[i].value.v.str.len);
            assert_memory_equal(kv->value.v.str.ptr, in->kv[i].value.v.str.ptr, kv->value.v.str.len);
        }
        free(key);
    }
    uint32_t ft = 0, qv = 0;
    g3_error err;
    assert_int_equal(g3_gguf_get_u32(out, "general.file_type", true, 0, &ft, &err), 0);
    assert_int_equal(g3_gguf_get_u32(out, "general.quantization_version", true, 0, &qv, &err), 0);
    assert_int_equal(ft, file_type);
    assert_int_equal(qv, 2);
    const g3_gguf_array *a, *b;
    assert_int_equal(g3_gguf_get_arr(in, "tokenizer.ggml.tokens", true, G3_GGUF_STRING, &a, &err), 0);
    assert_int_equal(g3_gguf_get_arr(out, "tokenizer.ggml.tokens", true, G3_GGUF_STRING, &b, &err), 0);
    for (uint64_t i = 0; i < a->n; i++) {
        assert_int_equal(a->strings[i].len, b->strings[i].len);
        assert_memory_equal(a->strings[i].ptr, b->strings[i].ptr, a->strings[i].len);
    }
}

static void test_matches_llama_quantize(void **state) {
    (void)state;
    g3_gguf *src, *ours, *gold;
    g3_error err;
    assert_int_equal(g3_gguf_open(F32_MODEL, &src, &err), 0);
    for (int t = 0; t < N_TARGETS; t++) {
        char out[512], golden[512];
        snprintf(out, sizeof out, "%s/quant-%s.gguf", G3_TEST_TMP, k_targets[t].golden);
        snprintf(golden, sizeof golden, "%s/g3-1b-s1234-%s.gguf", MODELS, k_targets[t].golden);
        quantize_or_fail(F32_MODEL, out, k_targets[t].ftype);
        assert_int_equal(g3_gguf_open(out, &ours, &err), 0);
        assert_int_equal(g3_gguf_open(golden, &gold, &err), 0);
        compare_tensors(ours, gold, true);
        compare_metadata(src, ours, k_targets[t].file_type);
        printf("%-6s: %llu tensors, types, shapes and bytes equal to llama-quantize's\n", k_targets[t].arg,
               (unsigned long long)ours->n_tensors);
        g3_gguf_close(ours);
        g3_gguf_close(gold);
    }
    g3_gguf_close(src);
}

static void test_f16_bf16_inputs(void **state) {
    (void)state;
    static const char *const sources[] = {"f16", "bf16"};
    g3_error err;
    for (int s = 0; s < 2; s++)
        for (int t = 0; t < N_TARGETS; t++) {
            char in[512], out[512], golden[512];
            snprintf(in, sizeof in, "%s/g3-1b-s1234-%s.gguf", MODELS, sources[s]);
            snprintf(out, sizeof out, "%s/quant-%s-from-%s.gguf", G3_TEST_TMP, k_targets[t].golden,
                     sources[s]);
            snprintf(golden, sizeof golden, "%s/g3-1b-s1234-%s.gguf", MODELS, k_targets[t].golden);
            quantize_or_fail(in, out, k_targets[t].ftype);
            g3_gguf *ours, *gold;
            assert_int_equal(g3_gguf_open(out, &ours, &err), 0);
            assert_int_equal(g3_gguf_open(golden, &gold, &err), 0);
            compare_tensors(ours, gold, false); /* rounded sources: other bytes */
            g3_gguf_close(ours);
            g3_gguf_close(gold);
            remove(out);
        }
}

/* RMS(dequantized - original) / RMS(original), per tensor. */
static double rel_rms(const g3_gguf_tensor *orig, const g3_gguf_tensor *q) {
    const uint64_t n = orig->ne[0], rows = orig->n_elements / n;
    uint64_t qrow;
    assert_int_equal(g3_type_row_bytes(q->type, n, &qrow, NULL), 0);
    float *a = malloc(sizeof(float) * n), *b = malloc(sizeof(float) * n);
    double se = 0, so = 0;
    for (uint64_t r = 0; r < rows; r++) {
        g3_type_ops_get(orig->type)->to_float((const uint8_t *)orig->data + r * n * 4, a, (int64_t)n);
        g3_type_ops_get(q->type)->to_float((const uint8_t *)q->data + r * qrow, b, (int64_t)n);
        for (uint64_t i = 0; i < n; i++) {
            se += ((double)b[i] - a[i]) * ((double)b[i] - a[i]);
            so += (double)a[i] * a[i];
        }
    }
    free(a);
    free(b);
    return sqrt(se / so);
}

static void test_rms_error(void **state) {
    (void)state;
    g3_gguf *src, *q;
    g3_error err;
    assert_int_equal(g3_gguf_open(F32_MODEL, &src, &err), 0);
    for (int t = 0; t < N_TARGETS; t++) {
        char out[512];
        snprintf(out, sizeof out, "%s/quant-%s.gguf", G3_TEST_TMP, k_targets[t].golden);
        if (!exists(out)) quantize_or_fail(F32_MODEL, out, k_targets[t].ftype);
        assert_int_equal(g3_gguf_open(out, &q, &err), 0);
        double worst[G3_TYPE_COUNT] = {0};
        for (uint64_t i = 0; i < src->n_tensors; i++) {
            char *name = name_of(src->tensors[i].name);
            const g3_gguf_tensor *qt = g3_gguf_find_tensor(q, name);
            assert_non_null(qt);
            double e = rel_rms(&src->tensors[i], qt);
            if (e > worst[qt->type]) worst[qt->type] = e;
            char tn[32];
            if (!(e <= rms_bound(qt->type)))
                fail_msg("%s %s: relative RMS error %.4f above the %s bound %.4f", k_targets[t].arg, name, e,
                         g3_type_name(qt->type, tn), rms_bound(qt->type));
            free(name);
        }
        printf("%-6s worst relative RMS error:", k_targets[t].arg);
        for (uint32_t ty = 0; ty < G3_TYPE_COUNT; ty++)
            if (worst[ty] > 0 || ty == G3_TYPE_F32) {
                char tn[32];
                printf(" %s %.4f (bound %.3f)", g3_type_name(ty, tn), worst[ty], rms_bound(ty));
            }
        printf("\n");
        g3_gguf_close(q);
    }
    g3_gguf_close(src);
}

static void test_outputs_evaluate(void **state) {
    (void)state;
    int64_t *ids;
    char *text = (char *)tu_read_file(GOLDEN "/text/g3-1b-s1234-f32/fox.tokens.json", NULL);
    assert_non_null(text);
    long n = tu_parse_int_array(text, &ids);
    free(text);
    assert_true(n > 0);
    int32_t *tok = malloc(sizeof *tok * (size_t)n);
    for (long i = 0; i < n; i++) tok[i] = (int32_t)ids[i];
    for (int t = 0; t < N_TARGETS; t++) {
        char out[512], exact_path[512];
        snprintf(out, sizeof out, "%s/quant-%s.gguf", G3_TEST_TMP, k_targets[t].golden);
        snprintf(exact_path, sizeof exact_path, "%s/text/g3-1b-s1234-%s/fox.exact.f32", GOLDEN,
                 k_targets[t].golden);
        if (!exists(out)) quantize_or_fail(F32_MODEL, out, k_targets[t].ftype);
        g3_model *m;
        g3_context *ctx;
        g3_error err;
        if (g3_model_load(out, &m, &err)) fail_msg("%s", err.msg);
        const uint32_t V = g3_model_config(m)->n_vocab;
        g3_context_params cp = {.n_ctx = 64};
        assert_int_equal(g3_context_new(m, &cp, &ctx, &err), 0);
        float *logits = malloc(sizeof(float) * (size_t)n * V);
        if (g3_eval(ctx, tok, (uint32_t)n, logits, true, &err)) fail_msg("%s", err.msg);
        size_t bytes;
        float *exact = (float *)tu_read_file(exact_path, &bytes);
        assert_non_null(exact);
        assert_int_equal(bytes, sizeof(float) * (size_t)n * V);
        double max = 0;
        for (long p = 0; p < n; p++) {
            uint32_t ia = 0, ib = 0;
            for (uint32_t v = 0; v < V; v++) {
                double d = fabs((double)logits[p * V + v] - exact[p * V + v]);
                if (!(d <= max)) max = d;
                if (logits[p * V + v] > logits[p * V + ia]) ia = v;
                if (exact[p * V + v] > exact[p * V + ib]) ib = v;
            }
            assert_int_equal(ia, ib);
        }
        printf("%-6s output evaluates: max |d| %.2e from the golden exact logits\n", k_targets[t].arg, max);
        assert_true(max <= 5e-3);
        free(exact);
        free(logits);
        g3_context_free(ctx);
        g3_model_free(m);
    }
    free(tok);
    free(ids);
}

static void test_mmproj(void **state) {
    (void)state;
    char out[512];
    out_path(out, sizeof out, "quant-mmproj-q8_0.gguf");
    quantize_or_fail(MODELS "/mmproj-g3-s99-f32.gguf", out, G3_FTYPE_Q8_0);
    g3_gguf *g;
    g3_error err;
    assert_int_equal(g3_gguf_open(out, &g, &err), 0);
    for (uint64_t i = 0; i < g->n_tensors; i++) {
        const g3_gguf_tensor *t = &g->tensors[i];
        char *name = name_of(t->name);
        bool matrix = t->n_dims == 2 && !strstr(name, "position_embd") && strstr(name, ".weight");
        uint32_t want = matrix && t->ne[0] % 32 == 0 ? G3_TYPE_Q8_0 : G3_TYPE_F32;
        if (t->type != want) fail_msg("mmproj %s: type %u, expected %u", name, t->type, want);
        free(name);
    }
    g3_gguf_close(g);
    remove(out);
}

/* Runs the binary; expects exit status `want`, a message containing
 * `needle`, and no output file (nor OUT.tmp). */
static void expect_refusal(const char *args, const char *out, int want, const char *needle) {
    char cmd[2048], tmp[600];
    snprintf(cmd, sizeof cmd, "%s 2>&1", args);
    int status;
    char *text = tu_run(cmd, &status);
    assert_non_null(text);
    if (status != want || !strstr(text, needle))
        fail_msg("`%s`: status %d (want %d), output: %s (want '%s')", args, status, want, text, needle);
    printf("refused as expected: %s", text);
    free(text);
    snprintf(tmp, sizeof tmp, "%s.tmp", out);
    assert_false(exists(out));
    assert_false(exists(tmp));
}

static void test_bad_input(void **state) {
    (void)state;
    char out[512], args[1600], copy[512];
    out_path(out, sizeof out, "bad-out.gguf");
    remove(out);

    snprintf(args, sizeof args, "%s quantize %s %s Q3_K", G3_BINARY, F32_MODEL, out);
    expect_refusal(args, out, 2, "unsupported type 'Q3_K'");

    snprintf(args, sizeof args, "%s quantize %s/g3-1b-s1234-q4_0.gguf %s Q8_0", G3_BINARY, MODELS, out);
    expect_refusal(args, out, 1, "already quantized");

    snprintf(args, sizeof args, "%s quantize %s/no-such-model.gguf %s Q8_0", G3_BINARY, G3_TEST_TMP, out);
    expect_refusal(args, out, 1, "no-such-model.gguf");

    char unwritable[512];
    out_path(unwritable, sizeof unwritable, "no-such-dir/out.gguf");
    snprintf(args, sizeof args, "%s quantize %s %s Q8_0", G3_BINARY, F32_MODEL, unwritable);
    expect_refusal(args, unwritable, 1, "no-such-dir/out.gguf.tmp");

    /* same file twice: the input must survive */
    out_path(copy, sizeof copy, "same.gguf");
    size_t size;
    uint8_t *bytes = tu_read_file(F32_MODEL, &size);
    assert_non_null(bytes);
    assert_int_equal(tu_write_file(copy, bytes, size), 0);
    snprintf(args, sizeof args, "%s quantize %s %s/./same.gguf Q8_0", G3_BINARY, copy, G3_TEST_TMP);
    int status;
    char *text = tu_run(args, &status);
    assert_int_equal(status, 1);
    free(text);
    size_t size2;
    uint8_t *after = tu_read_file(copy, &size2);
    assert_int_equal(size2, size);
    assert_memory_equal(after, bytes, size);
    free(after);
    free(bytes);
    remove(copy);

    /* a disk that fills up: a 1 MB file size limit (SIGXFSZ ignored, so
     * writes fail with EFBIG as on a full disk) */
    snprintf(args, sizeof args, "sh -c \"trap '' XFSZ; ulimit -f 2048; exec %s quantize --quiet %s %s Q8_0\"",
             G3_BINARY, F32_MODEL, out);
    expect_refusal(args, out, 1, "quantizing");
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_matches_llama_quantize),
        cmocka_unit_test(test_f16_bf16_inputs),
        cmocka_unit_test(test_rms_error),
        cmocka_unit_test(test_outputs_evaluate),
        cmocka_unit_test(test_mmproj),
        cmocka_unit_test(test_bad_input),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
