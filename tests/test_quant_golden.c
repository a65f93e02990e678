/* test_quant_golden: our kernels against llama-quantize's own output.
 * The golden folder holds one model in F32 and in quantized forms made by
 * llama-quantize from it. For every quantized tensor:
 *  - to_float of the file's bytes is close to the F32 weights (a wrong bit
 *    layout gives errors of the order of the weights themselves), and
 *  - our from_float of the F32 weights gives the same bytes, block for block
 *    (the reference quantizers reproduce ggml's, so `gemma-chat quantize`
 *    files match llama.cpp's). */
#include <dirent.h>
#include <math.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "model/gguf.h"
#include "tensor/type_info.h"
#include "tensor/type_ops.h"

#define MODELS G3_GOLDEN_DIR "/tiny-gemma3/models"

static void check_file(const g3_gguf *f32, const char *path) {
    g3_gguf *q;
    g3_error err;
    if (g3_gguf_open(path, &q, &err)) fail_msg("%s", err.msg);
    uint64_t blocks = 0, same = 0, checked = 0;
    for (uint64_t i = 0; i < q->n_tensors; i++) {
        const g3_gguf_tensor *t = &q->tensors[i];
        if (t->type == G3_TYPE_F32) continue;
        char name[128];
        snprintf(name, sizeof name, "%.*s", (int)t->name.len, t->name.ptr);
        const g3_gguf_tensor *ref = g3_gguf_find_tensor(f32, name);
        assert_non_null(ref);
        assert_int_equal(ref->n_elements, t->n_elements);
        const g3_type_ops *ops = g3_type_ops_get(t->type);
        assert_non_null(ops);
        const g3_type_info *ti = g3_type_info_get(t->type);
        size_t n = (size_t)t->n_elements;
        float *deq = malloc(n * sizeof(float));
        uint8_t *ours = malloc((size_t)t->n_bytes);
        ops->to_float(t->data, deq, (int64_t)n);
        const float *w = ref->data;
        double err2 = 0, ref2 = 0;
        for (size_t k = 0; k < n; k++) {
            err2 += (deq[k] - w[k]) * (double)(deq[k] - w[k]);
            ref2 += (double)w[k] * w[k];
        }
        double rel = sqrt(err2 / ref2);
        if (rel > 0.12) fail_msg("%s: %s dequantizes with relative RMS error %.3f", path, name, rel);
        /* quantize row by row, as the file was written */
        uint64_t row_bytes;
        assert_int_equal(g3_type_row_bytes(t->type, t->ne[0], &row_bytes, &err), 0);
        for (uint64_t r = 0; r < t->n_elements / t->ne[0]; r++)
            ops->from_float(w + r * t->ne[0], ours + r * row_bytes, (int64_t)t->ne[0]);
        for (uint64_t b = 0; b < t->n_bytes / ti->block_bytes; b++) {
            blocks++;
            same += memcmp(ours + b * ti->block_bytes, (const uint8_t *)t->data + b * ti->block_bytes,
                           ti->block_bytes) == 0;
        }
        checked++;
        free(deq);
        free(ours);
    }
    printf("%s: %llu tensors, %llu/%llu blocks byte-identical to llama-quantize\n", strrchr(path, '/') + 1,
           (unsigned long long)checked, (unsigned long long)same, (unsigned long long)blocks);
    assert_true(checked > 0);
    assert_int_equal(same, blocks);
    g3_gguf_close(q);
}

static void test_all_golden_quantizations(void **state) {
    g3_gguf *f32;
    g3_error err;
    if (g3_gguf_open(MODELS "/g3-1b-s1234-f32.gguf", &f32, &err)) fail_msg("%s", err.msg);
    DIR *d = opendir(MODELS);
    assert_non_null(d);
    struct dirent *e;
    int files = 0;
    while ((e = readdir(d))) {
        if (strncmp(e->d_name, "g3-1b-s1234-", 12) != 0 || strstr(e->d_name, "-f32.gguf")) continue;
        char path[512];
        snprintf(path, sizeof path, MODELS "/%s", e->d_name);
        check_file(f32, path);
        files++;
    }
    closedir(d);
    assert_true(files >= 6);
    g3_gguf_close(f32);
}

int main(void) {
    const struct CMUnitTest tests[] = {cmocka_unit_test(test_all_golden_quantizations)};
    return cmocka_run_group_tests(tests, NULL, NULL);
}
