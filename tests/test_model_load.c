/* test_model_load: a Gemma 3 model with one thing wrong at a time must be
 * refused with a message naming it; alternative spellings real files use
 * (per-layer sliding pattern arrays, explicit "none" scaling) must load and
 * give the same logits. The files are rewritten copies of the golden model. */
#include <math.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "gemma3.h"
#include "model/gguf.h"
#include "model/gguf_writer.h"
#include "tensor/type_info.h"

#define SRC G3_GOLDEN_DIR "/tiny-gemma3/models/g3-1b-s1234-f32.gguf"
#define DST G3_TEST_TMP "/edited.gguf"

typedef struct edit {
    const char *drop_key;      /* omit this key */
    const char *str_key;       /* write this key as a string instead */
    const char *arch;          /* replace general.architecture */
    const char *drop_tensor;   /* omit this tensor */
    const char *retype_tensor; /* write this tensor as IQ2_XXS */
    const char *swap_tensor;   /* swap ne[0] and ne[1] */
    uint32_t head_count_kv;    /* nonzero: replace */
    bool pattern_array;        /* add a per-layer sliding_window_pattern array */
    bool scaling_none;         /* add rope.scaling.type = "none" */
} edit;

static bool key_is(const g3_gguf_kv *kv, const char *k) { return g3_str_eq(kv->key, k); }

static void write_kvs(g3_gguf_writer *w, const g3_gguf *g, const edit *e) {
    g3_error err;
    char key[256];
    for (uint64_t i = 0; i < g->n_kv; i++) {
        const g3_gguf_kv *kv = &g->kv[i];
        snprintf(key, sizeof key, "%.*s", (int)kv->key.len, kv->key.ptr);
        if (e->drop_key && key_is(kv, e->drop_key)) continue;
        int rc;
        if (e->str_key && key_is(kv, e->str_key)) rc = g3_gguf_writer_kv_str(w, key, "oops", &err);
        else if (e->arch && key_is(kv, "general.architecture")) rc = g3_gguf_writer_kv_str(w, key, e->arch, &err);
        else if (e->head_count_kv && key_is(kv, "gemma3.attention.head_count_kv"))
            rc = g3_gguf_writer_kv_u32(w, key, e->head_count_kv, &err);
        else rc = g3_gguf_writer_kv_copy(w, key, &kv->value, &err);
        if (rc) fail_msg("%s", err.msg);
    }
    if (e->pattern_array) {
        bool sliding[7] = {true, true, true, true, true, false, true};
        assert_int_equal(g3_gguf_writer_kv_arr(w, "gemma3.attention.sliding_window_pattern", G3_GGUF_BOOL, sliding,
                                               7, &err), 0);
    }
    if (e->scaling_none) assert_int_equal(g3_gguf_writer_kv_str(w, "gemma3.rope.scaling.type", "none", &err), 0);
}

static void write_edited(const edit *e) {
    g3_gguf *g;
    g3_error err;
    if (g3_gguf_open(SRC, &g, &err)) fail_msg("%s", err.msg);
    g3_gguf_writer *w = g3_gguf_writer_open(DST, &err);
    assert_non_null(w);
    write_kvs(w, g, e);
    char name[128];
    for (uint64_t i = 0; i < g->n_tensors; i++) {
        const g3_gguf_tensor *t = &g->tensors[i];
        snprintf(name, sizeof name, "%.*s", (int)t->name.len, t->name.ptr);
        if (e->drop_tensor && !strcmp(name, e->drop_tensor)) continue;
        uint64_t ne[4] = {t->ne[0], t->ne[1], t->ne[2], t->ne[3]};
        uint32_t type = e->retype_tensor && !strcmp(name, e->retype_tensor) ? G3_TYPE_IQ2_XXS : t->type;
        if (e->swap_tensor && !strcmp(name, e->swap_tensor)) ne[0] = t->ne[1], ne[1] = t->ne[0];
        if (g3_gguf_writer_tensor(w, name, type, t->n_dims, ne, &err)) fail_msg("%s", err.msg);
    }
    assert_int_equal(g3_gguf_writer_begin_data(w, &err), 0);
    for (uint64_t i = 0; i < g->n_tensors; i++) {
        const g3_gguf_tensor *t = &g->tensors[i];
        snprintf(name, sizeof name, "%.*s", (int)t->name.len, t->name.ptr);
        if (e->drop_tensor && !strcmp(name, e->drop_tensor)) continue;
        uint64_t bytes = t->n_bytes;
        if (e->retype_tensor && !strcmp(name, e->retype_tensor))
            assert_int_equal(g3_type_row_bytes(G3_TYPE_IQ2_XXS, t->ne[0], &bytes, &err), 0), bytes *= t->ne[1];
        void *zero = bytes > t->n_bytes ? calloc(1, bytes) : NULL;
        if (g3_gguf_writer_data(w, zero ? zero : t->data, bytes, &err)) fail_msg("%s", err.msg);
        free(zero);
    }
    if (g3_gguf_writer_close(w, &err)) fail_msg("%s", err.msg);
    g3_gguf_close(g);
}

static void expect_refused(const edit *e, const char *message) {
    write_edited(e);
    g3_model *m;
    g3_error err;
    assert_int_equal(g3_model_load(DST, &m, &err), -1);
    assert_null(m);
    if (!strstr(err.msg, message)) fail_msg("'%s' lacks '%s'", err.msg, message);
    assert_non_null(strstr(err.msg, "edited.gguf")); /* names the file */
}

static void test_defects_are_named(void **state) {
    expect_refused(&(edit){.retype_tensor = "blk.2.ffn_up.weight"},
                   "tensor 'blk.2.ffn_up.weight' has type IQ2_XXS, which gemma-chat does not support");
    expect_refused(&(edit){.drop_key = "gemma3.block_count"}, "missing required key 'gemma3.block_count'");
    expect_refused(&(edit){.str_key = "gemma3.embedding_length"}, "'gemma3.embedding_length' has type string");
    expect_refused(&(edit){.arch = "llama"}, "architecture 'llama' is not supported");
    expect_refused(&(edit){.drop_tensor = "blk.3.attn_k.weight"}, "missing tensor 'blk.3.attn_k.weight'");
    expect_refused(&(edit){.swap_tensor = "blk.1.attn_q.weight"}, "tensor 'blk.1.attn_q.weight' has shape [128, 256");
    expect_refused(&(edit){.drop_tensor = "output_norm.weight"}, "missing tensor 'output_norm.weight'");
    expect_refused(&(edit){.head_count_kv = 3}, "head_count 4 is not a multiple of head_count_kv 3");
}

static float *logits_of(const char *path) {
    g3_model *m;
    g3_error err;
    if (g3_model_load(path, &m, &err)) fail_msg("%s", err.msg);
    g3_context *ctx;
    g3_context_params p = {.n_ctx = 64};
    assert_int_equal(g3_context_new(m, &p, &ctx, &err), 0);
    int32_t ids[40];
    for (int i = 0; i < 40; i++) ids[i] = 10 + (i * 53) % 780;
    uint32_t nv = g3_model_config(m)->n_vocab;
    float *l = malloc(sizeof(float) * 40 * nv);
    assert_int_equal(g3_eval(ctx, ids, 40, l, true, &err), 0);
    g3_context_free(ctx);
    g3_model_free(m);
    return l;
}

static void test_equivalent_spellings_load(void **state) {
    float *ref = logits_of(SRC);
    write_edited(&(edit){.pattern_array = true, .scaling_none = true});
    float *got = logits_of(DST);
    for (size_t i = 0; i < 40 * 796; i++) assert_true(got[i] == ref[i]);
    free(ref);
    free(got);
    remove(DST);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_defects_are_named),
        cmocka_unit_test(test_equivalent_spellings_load),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
