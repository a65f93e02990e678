/* test_gguf.c: GGUF reader and writer.
 *
 * Round trip of every value type and several tensor types through the
 * writer and reader; the real tiny model from golden/; hostile files built
 * byte by byte, each checked for its specific message; every truncation of a
 * small valid file; random corruption (run under ASan in CI); writer misuse.
 */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "model/gguf.h"
#include "model/gguf_writer.h"
#include "tensor/type_info.h"
#include "test_util.h"

/* ---- helpers ------------------------------------------------------------- */

/* Runs a call that must succeed, showing its message if it does not. */
#define CHECK_OK(call)                                                   \
    do {                                                                 \
        g3_error_clear(&err);                                            \
        if ((call) != 0) fail_msg("%s failed: %s", #call, err.msg);      \
    } while (0)

/* Runs a call that must fail with a message containing `sub`. */
#define CHECK_FAILS(call, sub)                                           \
    do {                                                                 \
        g3_error_clear(&err);                                            \
        if ((call) == 0) fail_msg("%s succeeded, expected failure", #call); \
        expect_contains(err.msg, sub);                                   \
    } while (0)

static void expect_contains(const char *msg, const char *sub) {
    if (!strstr(msg, sub)) fail_msg("expected a message containing \"%s\", got \"%s\"", sub, msg);
}

static void tmp_path(char *buf, size_t n, const char *name) {
    snprintf(buf, n, "%s/%s", G3_TEST_TMP, name);
}

static bool file_exists(const char *path) { return access(path, F_OK) == 0; }

/* A distinct byte for each (tensor, index), so misplaced data shows. */
static uint8_t pattern(int tensor, uint64_t i) { return (uint8_t)(tensor * 37 + i * 7 + 1); }

/* ---- byte builder for hand-made (bad) files ------------------------------ */

typedef struct bb {
    uint8_t *p;
    size_t n, cap;
} bb;

static void bb_bytes(bb *b, const void *p, size_t n) {
    if (b->n + n > b->cap) {
        b->cap = (b->n + n) * 2 + 64;
        b->p = realloc(b->p, b->cap);
        assert_non_null(b->p);
    }
    memcpy(b->p + b->n, p, n);
    b->n += n;
}

static void bb_le(bb *b, uint64_t v, int n) {
    uint8_t tmp[8];
    for (int i = 0; i < n; i++) tmp[i] = (uint8_t)(v >> (8 * i));
    bb_bytes(b, tmp, (size_t)n);
}

static void bb_u8(bb *b, uint8_t v) { bb_le(b, v, 1); }
static void bb_u32(bb *b, uint32_t v) { bb_le(b, v, 4); }
static void bb_u64(bb *b, uint64_t v) { bb_le(b, v, 8); }
static void bb_str(bb *b, const char *s) {
    bb_u64(b, strlen(s));
    bb_bytes(b, s, strlen(s));
}
static void bb_zeros(bb *b, size_t n) {
    for (size_t i = 0; i < n; i++) bb_u8(b, 0);
}
static void bb_pad(bb *b, size_t align) {
    while (b->n % align) bb_u8(b, 0);
}

static void bb_header(bb *b, uint32_t version, uint64_t n_tensors, uint64_t n_kv) {
    bb_bytes(b, "GGUF", 4);
    bb_u32(b, version);
    bb_u64(b, n_tensors);
    bb_u64(b, n_kv);
}

static void bb_kv_u32(bb *b, const char *key, uint32_t v) {
    bb_str(b, key);
    bb_u32(b, G3_GGUF_UINT32);
    bb_u32(b, v);
}

static void bb_kv_str(bb *b, const char *key, const char *v) {
    bb_str(b, key);
    bb_u32(b, G3_GGUF_STRING);
    bb_str(b, v);
}

static void bb_tensor(bb *b, const char *name, uint32_t n_dims, const uint64_t *ne, uint32_t type,
                      uint64_t offset) {
    bb_str(b, name);
    bb_u32(b, n_dims);
    for (uint32_t i = 0; i < n_dims; i++) bb_u64(b, ne[i]);
    bb_u32(b, type);
    bb_u64(b, offset);
}

/* Parses an exact-size heap copy, so ASan sees any read past the end. */
static int parse_copy(const uint8_t *p, size_t n, g3_gguf **g, g3_error *err) {
    uint8_t *copy = malloc(n ? n : 1);
    assert_non_null(copy);
    if (n) memcpy(copy, p, n);
    int rc = g3_gguf_parse(n ? copy : NULL, n, g, err);
    if (rc == 0) {
        /* The caller's checks may touch the data: keep it alive with the object
         * by parsing the original instead (same bytes). */
        g3_gguf_close(*g);
        rc = g3_gguf_parse(p, n, g, err);
    }
    free(copy);
    return rc;
}

static void expect_bad(bb *b, const char *sub) {
    g3_gguf *g = (g3_gguf *)1;
    g3_error err = {{0}};
    if (parse_copy(b->p, b->n, &g, &err) == 0) {
        g3_gguf_close(g);
        fail_msg("parse succeeded, expected \"%s\"", sub);
    }
    assert_null(g);
    expect_contains(err.msg, sub);
    free(b->p);
    *b = (bb){0};
}

static g3_gguf *expect_good(const bb *b) {
    g3_gguf *g = NULL;
    g3_error err = {{0}};
    if (g3_gguf_parse(b->p, b->n, &g, &err) != 0) fail_msg("parse failed: %s", err.msg);
    return g;
}

/* A file with no keys and one tensor, for tensor-info tests. */
static void bb_one_tensor(bb *b, uint32_t n_dims, const uint64_t *ne, uint32_t type, uint64_t offset,
                          size_t data_bytes) {
    bb_header(b, 3, 1, 0);
    bb_tensor(b, "blk.0.attn_q.weight", n_dims, ne, type, offset);
    bb_pad(b, 32);
    bb_zeros(b, data_bytes);
}

/* ---- 1. round trip ------------------------------------------------------- */

typedef struct decl {
    const char *name;
    uint32_t type, n_dims;
    uint64_t ne[4];
    uint64_t bytes;
} decl;

static const decl k_decls[] = {
    {"t.f32", G3_TYPE_F32, 2, {7, 3, 1, 1}, 7 * 3 * 4},
    {"t.f16", G3_TYPE_F16, 1, {5, 1, 1, 1}, 5 * 2},
    {"t.q8_0", G3_TYPE_Q8_0, 2, {64, 2, 1, 1}, 2 * 2 * 34},
    {"t.q4_k", G3_TYPE_Q4_K, 3, {256, 2, 3, 1}, 6 * 144},
};
#define N_DECLS (sizeof k_decls / sizeof k_decls[0])

static const uint8_t k_u8s[] = {0, 1, 255};
static const int8_t k_i8s[] = {-128, 0, 127};
static const uint16_t k_u16s[] = {0, 65535, 1234};
static const int16_t k_i16s[] = {-32768, 32767, -1};
static const uint32_t k_u32s[] = {0, 4294967295u, 77};
static const int32_t k_i32s[] = {INT32_MIN, INT32_MAX, -5};
static const float k_f32s[] = {1.5f, -0.0f, 3.0e38f};
static const bool k_bools[] = {true, false, true};
static const uint64_t k_u64s[] = {0, UINT64_MAX >> 1, 1ull << 40};
static const int64_t k_i64s[] = {INT64_MIN, INT64_MAX, -3};
static const double k_f64s[] = {2.5, -1e300, 1e-300};
static const char *const k_strs[] = {"a", "", "\xc3\xbcnic\xc3\xb6\x64\x65", "with\nnewline"};

static void add_scalar_arrays(g3_gguf_writer *w) {
    g3_error err;
    CHECK_OK(g3_gguf_writer_kv_arr(w, "arr.u8", G3_GGUF_UINT8, k_u8s, 3, &err));
    CHECK_OK(g3_gguf_writer_kv_arr(w, "arr.i8", G3_GGUF_INT8, k_i8s, 3, &err));
    CHECK_OK(g3_gguf_writer_kv_arr(w, "arr.u16", G3_GGUF_UINT16, k_u16s, 3, &err));
    CHECK_OK(g3_gguf_writer_kv_arr(w, "arr.i16", G3_GGUF_INT16, k_i16s, 3, &err));
    CHECK_OK(g3_gguf_writer_kv_arr(w, "arr.u32", G3_GGUF_UINT32, k_u32s, 3, &err));
    CHECK_OK(g3_gguf_writer_kv_arr(w, "arr.i32", G3_GGUF_INT32, k_i32s, 3, &err));
    CHECK_OK(g3_gguf_writer_kv_arr(w, "arr.f32", G3_GGUF_FLOAT32, k_f32s, 3, &err));
    CHECK_OK(g3_gguf_writer_kv_arr(w, "arr.bool", G3_GGUF_BOOL, k_bools, 3, &err));
    CHECK_OK(g3_gguf_writer_kv_arr(w, "arr.u64", G3_GGUF_UINT64, k_u64s, 3, &err));
    CHECK_OK(g3_gguf_writer_kv_arr(w, "arr.i64", G3_GGUF_INT64, k_i64s, 3, &err));
    CHECK_OK(g3_gguf_writer_kv_arr(w, "arr.f64", G3_GGUF_FLOAT64, k_f64s, 3, &err));
    CHECK_OK(g3_gguf_writer_kv_arr(w, "arr.empty", G3_GGUF_UINT32, NULL, 0, &err));
    CHECK_OK(g3_gguf_writer_kv_arr_str(w, "arr.str", k_strs, 4, &err));
}

static const uint32_t k_row0[] = {1, 2, 3}, k_row2[] = {0xFFFFFFFFu};

static void add_values(g3_gguf_writer *w) {
    g3_error err;
    const g3_gguf_value u8 = {.type = G3_GGUF_UINT8, .v.u64 = 200};
    const g3_gguf_value i8 = {.type = G3_GGUF_INT8, .v.i64 = -100};
    const g3_gguf_value u16 = {.type = G3_GGUF_UINT16, .v.u64 = 60000};
    const g3_gguf_value i16 = {.type = G3_GGUF_INT16, .v.i64 = -30000};
    const g3_gguf_value i64 = {.type = G3_GGUF_INT64, .v.i64 = INT64_MIN + 1};
    const g3_gguf_value f64 = {.type = G3_GGUF_FLOAT64, .v.f64 = 2.718281828459045};
    g3_gguf_value items[3] = {
        {.type = G3_GGUF_ARRAY, .v.arr = {.elem_type = G3_GGUF_UINT32, .n = 3, .data = k_row0}},
        {.type = G3_GGUF_ARRAY, .v.arr = {.elem_type = G3_GGUF_UINT32, .n = 0}},
        {.type = G3_GGUF_ARRAY, .v.arr = {.elem_type = G3_GGUF_UINT32, .n = 1, .data = k_row2}},
    };
    const g3_gguf_value nested = {.type = G3_GGUF_ARRAY,
                                  .v.arr = {.elem_type = G3_GGUF_ARRAY, .n = 3, .items = items}};
    CHECK_OK(g3_gguf_writer_kv_copy(w, "v.u8", &u8, &err));
    CHECK_OK(g3_gguf_writer_kv_copy(w, "v.i8", &i8, &err));
    CHECK_OK(g3_gguf_writer_kv_copy(w, "v.u16", &u16, &err));
    CHECK_OK(g3_gguf_writer_kv_copy(w, "v.i16", &i16, &err));
    CHECK_OK(g3_gguf_writer_kv_u32(w, "v.u32", 4000000000u, &err));
    CHECK_OK(g3_gguf_writer_kv_i32(w, "v.i32", -2000000000, &err));
    CHECK_OK(g3_gguf_writer_kv_f32(w, "v.f32", 3.25f, &err));
    CHECK_OK(g3_gguf_writer_kv_bool(w, "v.true", true, &err));
    CHECK_OK(g3_gguf_writer_kv_bool(w, "v.false", false, &err));
    CHECK_OK(g3_gguf_writer_kv_str(w, "v.str", "hello, gguf", &err));
    CHECK_OK(g3_gguf_writer_kv_str(w, "v.empty", "", &err));
    CHECK_OK(g3_gguf_writer_kv_u64(w, "v.u64", 0xFEDCBA9876543210ull, &err));
    CHECK_OK(g3_gguf_writer_kv_copy(w, "v.i64", &i64, &err));
    CHECK_OK(g3_gguf_writer_kv_copy(w, "v.f64", &f64, &err));
    CHECK_OK(g3_gguf_writer_kv_copy(w, "arr.nested", &nested, &err));
    add_scalar_arrays(w);
}

/* Streams all tensor bytes in uneven pieces that cross tensor boundaries. */
static void stream_data(g3_gguf_writer *w) {
    g3_error err;
    uint64_t total = 0;
    for (size_t t = 0; t < N_DECLS; t++) total += k_decls[t].bytes;
    uint8_t *all = malloc(total);
    assert_non_null(all);
    uint64_t k = 0;
    for (size_t t = 0; t < N_DECLS; t++)
        for (uint64_t i = 0; i < k_decls[t].bytes; i++) all[k++] = pattern((int)t, i);
    static const size_t pieces[] = {1, 3, 17, 100, 0, 255};
    for (uint64_t at = 0, p = 0; at < total; p++) {
        size_t n = pieces[p % 6];
        if (n > total - at) n = (size_t)(total - at);
        CHECK_OK(g3_gguf_writer_data(w, all + at, n, &err));
        at += n;
    }
    free(all);
}

static void write_round_trip(const char *path) {
    g3_error err;
    g3_gguf_writer *w = g3_gguf_writer_open(path, &err);
    if (!w) fail_msg("open: %s", err.msg);
    CHECK_OK(g3_gguf_writer_set_alignment(w, 64, &err));
    add_values(w);
    for (size_t t = 0; t < N_DECLS; t++)
        CHECK_OK(g3_gguf_writer_tensor(w, k_decls[t].name, k_decls[t].type, k_decls[t].n_dims,
                                       k_decls[t].ne, &err));
    CHECK_OK(g3_gguf_writer_begin_data(w, &err));
    stream_data(w);
    CHECK_OK(g3_gguf_writer_close(w, &err));
}

static const g3_gguf_value *value_of(const g3_gguf *g, const char *key, g3_gguf_vtype type) {
    const g3_gguf_kv *kv = g3_gguf_find_kv(g, key);
    if (!kv) fail_msg("key '%s' missing", key);
    if (kv->value.type != type)
        fail_msg("key '%s' has type %s, want %s", key, g3_gguf_vtype_name(kv->value.type),
                 g3_gguf_vtype_name(type));
    return &kv->value;
}

static void check_scalars(const g3_gguf *g) {
    assert_int_equal(value_of(g, "v.u8", G3_GGUF_UINT8)->v.u64, 200);
    assert_int_equal(value_of(g, "v.i8", G3_GGUF_INT8)->v.i64, -100);
    assert_int_equal(value_of(g, "v.u16", G3_GGUF_UINT16)->v.u64, 60000);
    assert_int_equal(value_of(g, "v.i16", G3_GGUF_INT16)->v.i64, -30000);
    assert_int_equal(value_of(g, "v.u32", G3_GGUF_UINT32)->v.u64, 4000000000u);
    assert_int_equal(value_of(g, "v.i32", G3_GGUF_INT32)->v.i64, -2000000000);
    assert_true(value_of(g, "v.f32", G3_GGUF_FLOAT32)->v.f64 == 3.25);
    assert_true(value_of(g, "v.true", G3_GGUF_BOOL)->v.b);
    assert_false(value_of(g, "v.false", G3_GGUF_BOOL)->v.b);
    assert_true(g3_str_eq(value_of(g, "v.str", G3_GGUF_STRING)->v.str, "hello, gguf"));
    assert_int_equal(value_of(g, "v.empty", G3_GGUF_STRING)->v.str.len, 0);
    assert_true(value_of(g, "v.u64", G3_GGUF_UINT64)->v.u64 == 0xFEDCBA9876543210ull);
    assert_true(value_of(g, "v.i64", G3_GGUF_INT64)->v.i64 == INT64_MIN + 1);
    assert_true(value_of(g, "v.f64", G3_GGUF_FLOAT64)->v.f64 == 2.718281828459045);
}

static const g3_gguf_array *array_of(const g3_gguf *g, const char *key, g3_gguf_vtype elem,
                                     uint64_t n) {
    const g3_gguf_array *a = &value_of(g, key, G3_GGUF_ARRAY)->v.arr;
    assert_int_equal(a->elem_type, elem);
    assert_int_equal(a->n, n);
    return a;
}

static void check_int_array(const g3_gguf *g, const char *key, g3_gguf_vtype elem,
                            const int64_t *want, uint64_t n) {
    const g3_gguf_array *a = array_of(g, key, elem, n);
    for (uint64_t i = 0; i < n; i++) assert_true(g3_gguf_array_i64(a, i) == want[i]);
}

static void check_scalar_arrays(const g3_gguf *g) {
    check_int_array(g, "arr.u8", G3_GGUF_UINT8, (int64_t[]){0, 1, 255}, 3);
    check_int_array(g, "arr.i8", G3_GGUF_INT8, (int64_t[]){-128, 0, 127}, 3);
    check_int_array(g, "arr.u16", G3_GGUF_UINT16, (int64_t[]){0, 65535, 1234}, 3);
    check_int_array(g, "arr.i16", G3_GGUF_INT16, (int64_t[]){-32768, 32767, -1}, 3);
    check_int_array(g, "arr.u32", G3_GGUF_UINT32, (int64_t[]){0, 4294967295ll, 77}, 3);
    check_int_array(g, "arr.i32", G3_GGUF_INT32, (int64_t[]){INT32_MIN, INT32_MAX, -5}, 3);
    check_int_array(g, "arr.bool", G3_GGUF_BOOL, (int64_t[]){1, 0, 1}, 3);
    check_int_array(g, "arr.u64", G3_GGUF_UINT64, (int64_t[]){0, INT64_MAX, 1ll << 40}, 3);
    check_int_array(g, "arr.i64", G3_GGUF_INT64, (int64_t[]){INT64_MIN, INT64_MAX, -3}, 3);
    const g3_gguf_array *f = array_of(g, "arr.f32", G3_GGUF_FLOAT32, 3);
    for (int i = 0; i < 3; i++) assert_true(g3_gguf_array_f64(f, (uint64_t)i) == k_f32s[i]);
    assert_true(signbit(g3_gguf_array_f64(f, 1)));
    const g3_gguf_array *d = array_of(g, "arr.f64", G3_GGUF_FLOAT64, 3);
    for (int i = 0; i < 3; i++) assert_true(g3_gguf_array_f64(d, (uint64_t)i) == k_f64s[i]);
    array_of(g, "arr.empty", G3_GGUF_UINT32, 0);
}

static void check_compound(const g3_gguf *g) {
    const g3_gguf_array *s = array_of(g, "arr.str", G3_GGUF_STRING, 4);
    for (int i = 0; i < 4; i++) assert_true(g3_str_eq(s->strings[i], k_strs[i]));
    const g3_gguf_array *n = array_of(g, "arr.nested", G3_GGUF_ARRAY, 3);
    static const uint64_t lens[3] = {3, 0, 1};
    for (int i = 0; i < 3; i++) {
        assert_int_equal(n->items[i].type, G3_GGUF_ARRAY);
        assert_int_equal(n->items[i].v.arr.elem_type, G3_GGUF_UINT32);
        assert_int_equal(n->items[i].v.arr.n, lens[i]);
    }
    for (int i = 0; i < 3; i++) assert_int_equal(g3_gguf_array_i64(&n->items[0].v.arr, (uint64_t)i), i + 1);
    assert_int_equal(g3_gguf_array_i64(&n->items[2].v.arr, 0), 0xFFFFFFFFll);
}

static void check_tensors(const g3_gguf *g, size_t file_size) {
    assert_int_equal(g->alignment, 64);
    assert_int_equal(g->data_offset % 64, 0);
    assert_int_equal(g->n_tensors, N_DECLS);
    static const uint64_t offsets[N_DECLS] = {0, 128, 192, 384}; /* sizes padded to 64 */
    for (size_t t = 0; t < N_DECLS; t++) {
        const g3_gguf_tensor *x = g3_gguf_find_tensor(g, k_decls[t].name);
        assert_non_null(x);
        assert_ptr_equal(x, &g->tensors[t]); /* declaration order kept */
        assert_int_equal(x->type, k_decls[t].type);
        assert_int_equal(x->n_dims, k_decls[t].n_dims);
        assert_memory_equal(x->ne, k_decls[t].ne, sizeof x->ne);
        assert_int_equal(x->n_bytes, k_decls[t].bytes);
        assert_int_equal(x->offset, offsets[t]);
        assert_int_equal(x->offset % 64, 0);
        const uint8_t *d = x->data;
        assert_ptr_equal(d, g->file.data + g->data_offset + x->offset);
        for (uint64_t i = 0; i < x->n_bytes; i++)
            if (d[i] != pattern((int)t, i)) fail_msg("tensor %s byte %llu differs", k_decls[t].name, (unsigned long long)i);
    }
    /* The last tensor is padded too, as ggml expects. */
    assert_int_equal(file_size, g->data_offset + 384 + 896);
    assert_null(g3_gguf_find_tensor(g, "t.missing"));
}

static void test_round_trip(void **state) {
    char path[512], tmp[600];
    tmp_path(path, sizeof path, "roundtrip.gguf");
    snprintf(tmp, sizeof tmp, "%s.tmp", path);
    write_round_trip(path);
    assert_false(file_exists(tmp));
    g3_error err;
    g3_gguf *g;
    CHECK_OK(g3_gguf_open(path, &g, &err));
    assert_int_equal(g->version, 3);
    /* 15 values + 13 arrays + general.alignment */
    assert_int_equal(g->n_kv, 29);
    assert_int_equal(value_of(g, "general.alignment", G3_GGUF_UINT32)->v.u64, 64);
    check_scalars(g);
    check_scalar_arrays(g);
    check_compound(g);
    check_tensors(g, g->file.size);
    g3_gguf_close(g);
}

/* Getters over the round-trip file: conversions, defaults, messages. */
static void test_getters(void **state) {
    char path[512];
    tmp_path(path, sizeof path, "getters.gguf");
    write_round_trip(path);
    g3_error err;
    g3_gguf *g;
    CHECK_OK(g3_gguf_open(path, &g, &err));
    uint32_t u32;
    uint64_t u64;
    float f;
    bool b;
    g3_str s;
    const g3_gguf_array *a;
    CHECK_OK(g3_gguf_get_u32(g, "v.u8", true, 0, &u32, &err));
    assert_int_equal(u32, 200);
    CHECK_FAILS(g3_gguf_get_u32(g, "v.i16", false, 0, &u32, &err),
                "key 'v.i16' value -30000 does not fit in uint32");
    CHECK_FAILS(g3_gguf_get_u32(g, "v.u64", true, 0, &u32, &err), "does not fit in uint32");
    CHECK_OK(g3_gguf_get_u64(g, "v.u64", true, 0, &u64, &err));
    assert_true(u64 == 0xFEDCBA9876543210ull);
    CHECK_OK(g3_gguf_get_u32(g, "absent", false, 17, &u32, &err));
    assert_int_equal(u32, 17);
    CHECK_FAILS(g3_gguf_get_u32(g, "absent", true, 17, &u32, &err), "missing required key 'absent'");
    CHECK_FAILS(g3_gguf_get_u32(g, "v.str", true, 0, &u32, &err),
                "key 'v.str' has type string, expected an integer");
    CHECK_OK(g3_gguf_get_f32(g, "v.f64", true, 0, &f, &err));
    assert_true(f == (float)2.718281828459045);
    CHECK_OK(g3_gguf_get_f32(g, "v.i32", true, 0, &f, &err));
    assert_true(f == -2000000000.0f);
    CHECK_FAILS(g3_gguf_get_f32(g, "v.true", true, 0, &f, &err), "key 'v.true' has type bool, expected a float");
    CHECK_OK(g3_gguf_get_bool(g, "v.true", true, false, &b, &err));
    assert_true(b);
    CHECK_OK(g3_gguf_get_bool(g, "absent", false, true, &b, &err));
    assert_true(b);
    CHECK_FAILS(g3_gguf_get_bool(g, "v.u8", true, false, &b, &err), "key 'v.u8' has type uint8, expected a bool");
    CHECK_OK(g3_gguf_get_str(g, "v.str", true, &s, &err));
    assert_true(g3_str_eq(s, "hello, gguf"));
    CHECK_FAILS(g3_gguf_get_str(g, "v.u32", true, &s, &err), "key 'v.u32' has type uint32, expected a string");
    CHECK_FAILS(g3_gguf_get_str(g, "nope", true, &s, &err), "missing required key 'nope'");
    CHECK_OK(g3_gguf_get_arr(g, "arr.str", true, G3_GGUF_STRING, &a, &err));
    assert_int_equal(a->n, 4);
    CHECK_OK(g3_gguf_get_arr(g, "arr.i32", true, G3_GGUF_VTYPE_COUNT, &a, &err));
    assert_int_equal(a->elem_type, G3_GGUF_INT32);
    CHECK_OK(g3_gguf_get_arr(g, "absent", false, G3_GGUF_STRING, &a, &err));
    assert_null(a);
    CHECK_FAILS(g3_gguf_get_arr(g, "arr.i32", true, G3_GGUF_STRING, &a, &err),
                "key 'arr.i32' is an array of int32, expected an array of string");
    CHECK_FAILS(g3_gguf_get_arr(g, "v.str", true, G3_GGUF_STRING, &a, &err),
                "key 'v.str' has type string, expected an array");
    g3_gguf_close(g);
}

/* Thousands of keys and tensors: every one found through the hash tables
 * (a power of two, so a table sized without slack would fill up). */
static void test_many_names(void **state) {
    enum { N = 4096 };
    char path[512], name[64];
    tmp_path(path, sizeof path, "many.gguf");
    g3_error err;
    g3_gguf_writer *w = g3_gguf_writer_open(path, &err);
    assert_non_null(w);
    const uint64_t ne[1] = {1};
    for (int i = 0; i < N; i++) {
        snprintf(name, sizeof name, "key.%d", i);
        CHECK_OK(g3_gguf_writer_kv_u32(w, name, (uint32_t)i * 3, &err));
        snprintf(name, sizeof name, "t.%d", i);
        CHECK_OK(g3_gguf_writer_tensor(w, name, G3_TYPE_F32, 1, ne, &err));
    }
    CHECK_OK(g3_gguf_writer_begin_data(w, &err));
    for (int i = 0; i < N; i++) {
        float v = (float)i;
        CHECK_OK(g3_gguf_writer_data(w, &v, sizeof v, &err));
    }
    CHECK_OK(g3_gguf_writer_close(w, &err));
    g3_gguf *g;
    CHECK_OK(g3_gguf_open(path, &g, &err));
    for (int i = 0; i < N; i++) {
        uint32_t v;
        snprintf(name, sizeof name, "key.%d", i);
        CHECK_OK(g3_gguf_get_u32(g, name, true, 0, &v, &err));
        assert_int_equal(v, (uint32_t)i * 3);
        snprintf(name, sizeof name, "t.%d", i);
        const g3_gguf_tensor *t = g3_gguf_find_tensor(g, name);
        assert_non_null(t);
        assert_int_equal(t->offset, (uint64_t)i * 32);
        float f;
        memcpy(&f, t->data, sizeof f);
        assert_true(f == (float)i);
    }
    assert_null(g3_gguf_find_kv(g, "key.4096"));
    assert_null(g3_gguf_find_tensor(g, "t.4096"));
    assert_null(g3_gguf_find_kv(g, ""));
    g3_gguf_close(g);
}

/* ---- 2. the real tiny model ---------------------------------------------- */

static void check_golden_model(const g3_gguf *g) {
    g3_error err;
    g3_str arch;
    uint32_t blocks;
    CHECK_OK(g3_gguf_get_str(g, "general.architecture", true, &arch, &err));
    assert_true(g3_str_eq(arch, "gemma3"));
    CHECK_OK(g3_gguf_get_u32(g, "gemma3.block_count", true, 0, &blocks, &err));
    assert_int_equal(blocks, 7);
    const g3_gguf_array *toks;
    CHECK_OK(g3_gguf_get_arr(g, "tokenizer.ggml.tokens", true, G3_GGUF_STRING, &toks, &err));
    assert_int_equal(toks->n, 796);
    assert_true(g3_str_eq(toks->strings[2], "<bos>"));
    assert_int_equal(g->n_tensors, 7 * 13 + 2);
    const g3_gguf_tensor *q = g3_gguf_find_tensor(g, "blk.0.attn_q.weight");
    assert_non_null(q);
    assert_int_equal(q->n_dims, 2);
    assert_int_equal(q->ne[0], 256);
    assert_int_equal(q->ne[1], 128);
    assert_int_equal(q->type, G3_TYPE_Q4_K);
    assert_int_equal(q->n_bytes, 128 * 144);
    assert_int_equal(g->data_offset % g->alignment, 0);
}

/* Copies `key` from src into a new file and checks the copy, string by string. */
static void copy_and_compare(const g3_gguf *src, const char *key, const char *file) {
    char path[512];
    tmp_path(path, sizeof path, file);
    g3_error err;
    const g3_gguf_kv *kv = g3_gguf_find_kv(src, key);
    assert_non_null(kv);
    g3_gguf_writer *w = g3_gguf_writer_open(path, &err);
    assert_non_null(w);
    CHECK_OK(g3_gguf_writer_kv_copy(w, key, &kv->value, &err));
    CHECK_OK(g3_gguf_writer_close(w, &err));
    g3_gguf *g;
    CHECK_OK(g3_gguf_open(path, &g, &err));
    assert_int_equal(g->n_kv, 1);
    const g3_gguf_array *a = &kv->value.v.arr, *b;
    CHECK_OK(g3_gguf_get_arr(g, key, true, G3_GGUF_STRING, &b, &err));
    assert_int_equal(b->n, a->n);
    for (uint64_t i = 0; i < a->n; i++) {
        assert_int_equal(b->strings[i].len, a->strings[i].len);
        assert_memory_equal(b->strings[i].ptr, a->strings[i].ptr, a->strings[i].len);
    }
    g3_gguf_close(g);
}

static void test_golden_model(void **state) {
    const char *path = G3_GOLDEN_DIR "/tiny-gemma3/models/g3-1b-s1234-q4_k_m.gguf";
    g3_error err;
    g3_gguf *g;
    CHECK_OK(g3_gguf_open(path, &g, &err));
    check_golden_model(g);
    copy_and_compare(g, "tokenizer.ggml.tokens", "tokens-copy.gguf");
    g3_gguf_close(g);
}

/* Re-writes every key and tensor of src, in order, with the writer. */
static void rewrite(const g3_gguf *src, const char *path) {
    g3_error err;
    char name[256];
    g3_gguf_writer *w = g3_gguf_writer_open(path, &err);
    assert_non_null(w);
    for (uint64_t i = 0; i < src->n_kv; i++) {
        snprintf(name, sizeof name, "%.*s", (int)src->kv[i].key.len, src->kv[i].key.ptr);
        CHECK_OK(g3_gguf_writer_kv_copy(w, name, &src->kv[i].value, &err));
    }
    for (uint64_t i = 0; i < src->n_tensors; i++) {
        const g3_gguf_tensor *t = &src->tensors[i];
        snprintf(name, sizeof name, "%.*s", (int)t->name.len, t->name.ptr);
        CHECK_OK(g3_gguf_writer_tensor(w, name, t->type, t->n_dims, t->ne, &err));
    }
    CHECK_OK(g3_gguf_writer_begin_data(w, &err));
    for (uint64_t i = 0; i < src->n_tensors; i++)
        CHECK_OK(g3_gguf_writer_data(w, src->tensors[i].data, src->tensors[i].n_bytes, &err));
    CHECK_OK(g3_gguf_writer_close(w, &err));
}

/* The golden model was written by independent tooling (llama.cpp's
 * conventions): our writer must reproduce it byte for byte. */
static void test_golden_rewrite_identical(void **state) {
    const char *path = G3_GOLDEN_DIR "/tiny-gemma3/models/g3-1b-s1234-q4_k_m.gguf";
    char out[512];
    tmp_path(out, sizeof out, "rewrite.gguf");
    g3_error err;
    g3_gguf *g;
    CHECK_OK(g3_gguf_open(path, &g, &err));
    rewrite(g, out);
    size_t a_size, b_size;
    uint8_t *a = tu_read_file(path, &a_size), *b = tu_read_file(out, &b_size);
    assert_non_null(a);
    assert_non_null(b);
    assert_int_equal(a_size, b_size);
    assert_memory_equal(a, b, a_size);
    free(a);
    free(b);
    g3_gguf_close(g);
}

/* The real 262145-entry vocabulary: parsed and copied whole. */
static void test_golden_vocab(void **state) {
    const char *path = G3_GOLDEN_DIR "/tokenizer/gemma3-vocab.gguf";
    g3_error err;
    g3_gguf *g;
    CHECK_OK(g3_gguf_open(path, &g, &err));
    const g3_gguf_array *toks;
    CHECK_OK(g3_gguf_get_arr(g, "tokenizer.ggml.tokens", true, G3_GGUF_STRING, &toks, &err));
    assert_int_equal(toks->n, 262145);
    assert_true(g3_str_eq(toks->strings[106], "<end_of_turn>"));
    copy_and_compare(g, "tokenizer.ggml.tokens", "vocab-copy.gguf");
    g3_gguf_close(g);
}

/* ---- 3. bad files -------------------------------------------------------- */

static void test_bad_header(void **state) {
    bb b = {0};
    bb_bytes(&b, "GGUX", 4);
    bb_u32(&b, 3);
    bb_u64(&b, 0);
    bb_u64(&b, 0);
    expect_bad(&b, "not a GGUF file (bad magic)");
    bb_header(&b, 1, 0, 0);
    expect_bad(&b, "unsupported GGUF version 1");
    bb_header(&b, 4, 0, 0);
    expect_bad(&b, "unsupported GGUF version 4");
    bb_header(&b, 0x03000000, 0, 0);
    expect_bad(&b, "big-endian");
    bb_header(&b, 3, 0, 1ull << 62);
    expect_bad(&b, "n_kv 4611686018427387904 is impossible for a file of 24 bytes");
    bb_header(&b, 3, 1ull << 40, 0);
    bb_zeros(&b, 1000);
    expect_bad(&b, "n_tensors 1099511627776 is impossible for a file of 1024 bytes");
    /* Enough bytes for the claim up front, but the metadata uses them. */
    bb_header(&b, 3, 5, 1);
    bb_kv_str(&b, "k", "0123456789012345678901234567890123456789012345678901234567890123456789"
                       "0123456789012345678901234567890123456789012345678901234567890123456789");
    expect_bad(&b, "n_tensors 5 is impossible: only 0 bytes remain after the metadata");
}

static void test_version2_and_empty(void **state) {
    bb b = {0};
    bb_header(&b, 2, 0, 1);
    bb_kv_u32(&b, "a", 7);
    g3_gguf *g = expect_good(&b);
    assert_int_equal(g->version, 2);
    assert_int_equal(g->n_tensors, 0);
    assert_int_equal(g3_gguf_find_kv(g, "a")->value.v.u64, 7);
    g3_gguf_close(g);
    free(b.p);
}

static void test_bad_strings_and_arrays(void **state) {
    bb b = {0};
    bb_header(&b, 3, 0, 1);
    bb_u64(&b, 1ull << 63);
    bb_zeros(&b, 16);
    expect_bad(&b, "key #0: name length 9223372036854775808 runs past the end of the file (offset 32)");
    bb_header(&b, 3, 0, 1);
    bb_str(&b, "general.name");
    bb_u32(&b, G3_GGUF_STRING);
    bb_u64(&b, 1000);
    bb_bytes(&b, "short", 5);
    expect_bad(&b, "key 'general.name': string length 1000 runs past the end of the file (offset 56)");
    bb_header(&b, 3, 0, 1);
    bb_str(&b, "arr");
    bb_u32(&b, G3_GGUF_ARRAY);
    bb_u32(&b, G3_GGUF_UINT32);
    bb_u64(&b, 1ull << 40);
    bb_zeros(&b, 1000);
    expect_bad(&b, "key 'arr': array of 1099511627776 uint32 elements runs past the end of the file");
    bb_header(&b, 3, 0, 1);
    bb_str(&b, "arr");
    bb_u32(&b, G3_GGUF_ARRAY);
    bb_u32(&b, G3_GGUF_UINT64);
    bb_u64(&b, 1ull << 61); /* x 8 bytes overflows u64 */
    bb_zeros(&b, 100);
    expect_bad(&b, "key 'arr': array of 2305843009213693952 uint64 elements runs past the end");
    bb_header(&b, 3, 0, 1);
    bb_str(&b, "toks");
    bb_u32(&b, G3_GGUF_ARRAY);
    bb_u32(&b, G3_GGUF_STRING);
    bb_u64(&b, 1ull << 40);
    bb_zeros(&b, 1000);
    expect_bad(&b, "key 'toks': array of 1099511627776 string elements runs past the end");
    bb_header(&b, 3, 0, 1);
    bb_str(&b, "toks");
    bb_u32(&b, G3_GGUF_ARRAY);
    bb_u32(&b, G3_GGUF_STRING);
    bb_u64(&b, 2);
    bb_str(&b, "ok");
    bb_u64(&b, 1ull << 50);
    expect_bad(&b, "key 'toks': element #1: string length 1125899906842624 runs past the end");
    bb_header(&b, 3, 0, 1);
    bb_str(&b, "nest");
    bb_u32(&b, G3_GGUF_ARRAY);
    bb_u32(&b, G3_GGUF_ARRAY);
    bb_u64(&b, 1ull << 62); /* x 12 bytes overflows u64 */
    expect_bad(&b, "key 'nest': array of 4611686018427387904 array elements runs past the end");
}

static void test_bad_value_types(void **state) {
    bb b = {0};
    bb_header(&b, 3, 0, 1);
    bb_str(&b, "x");
    bb_u32(&b, 13);
    bb_u32(&b, 0);
    expect_bad(&b, "key 'x': unknown value type 13");
    bb_header(&b, 3, 0, 1);
    bb_str(&b, "x");
    bb_u32(&b, G3_GGUF_ARRAY);
    bb_u32(&b, 99);
    bb_u64(&b, 1);
    bb_u32(&b, 0);
    expect_bad(&b, "key 'x': unknown value type 99");
    bb_header(&b, 3, 0, 2);
    bb_kv_u32(&b, "dup", 1);
    bb_kv_u32(&b, "dup", 2);
    expect_bad(&b, "duplicate key 'dup'");
    /* A bool byte other than 0/1 reads as true (lenient, like llama.cpp). */
    bb_header(&b, 3, 0, 1);
    bb_str(&b, "flag");
    bb_u32(&b, G3_GGUF_BOOL);
    bb_u8(&b, 2);
    g3_gguf *g = expect_good(&b);
    assert_true(g3_gguf_find_kv(g, "flag")->value.v.b);
    g3_gguf_close(g);
    free(b.p);
}

/* An array nested `levels` deep whose innermost array holds one u32 42. */
static void bb_deep(bb *b, int levels) {
    bb_header(b, 3, 0, 1);
    bb_str(b, "deep");
    bb_u32(b, G3_GGUF_ARRAY);
    for (int d = 1; d < levels; d++) {
        bb_u32(b, G3_GGUF_ARRAY);
        bb_u64(b, 1);
    }
    bb_u32(b, G3_GGUF_UINT32);
    bb_u64(b, 1);
    bb_u32(b, 42);
}

static void test_nesting(void **state) {
    bb b = {0};
    bb_deep(&b, 8);
    g3_gguf *g = expect_good(&b);
    const g3_gguf_value *v = &g3_gguf_find_kv(g, "deep")->value;
    for (int d = 1; d < 8; d++) {
        assert_int_equal(v->v.arr.elem_type, G3_GGUF_ARRAY);
        assert_int_equal(v->v.arr.n, 1);
        v = &v->v.arr.items[0];
    }
    assert_int_equal(v->v.arr.elem_type, G3_GGUF_UINT32);
    assert_int_equal(g3_gguf_array_i64(&v->v.arr, 0), 42);
    g3_gguf_close(g);
    free(b.p);
    b = (bb){0};
    bb_deep(&b, 9);
    expect_bad(&b, "array 'deep' nested deeper than 8");
}

static void test_bad_alignment(void **state) {
    bb b = {0};
    bb_header(&b, 3, 0, 1);
    bb_kv_str(&b, "general.alignment", "32");
    expect_bad(&b, "key 'general.alignment' has type string, expected uint32");
    bb_header(&b, 3, 0, 1);
    bb_kv_u32(&b, "general.alignment", 48);
    expect_bad(&b, "key 'general.alignment' must be a power of two, got 48");
    bb_header(&b, 3, 0, 1);
    bb_kv_u32(&b, "general.alignment", 0);
    expect_bad(&b, "key 'general.alignment' must be a power of two, got 0");
    /* A custom alignment governs both the data section and tensor offsets. */
    const uint64_t ne[1] = {8};
    bb_header(&b, 3, 1, 1);
    bb_kv_u32(&b, "general.alignment", 64);
    bb_tensor(&b, "w", 1, ne, G3_TYPE_F32, 32);
    bb_pad(&b, 64);
    bb_zeros(&b, 128);
    expect_bad(&b, "tensor 'w': data offset 32 is not a multiple of the alignment 64");
}

static void test_bad_shapes(void **state) {
    bb b = {0};
    const uint64_t ne5[5] = {32, 1, 1, 1, 1};
    bb_one_tensor(&b, 5, ne5, G3_TYPE_F32, 0, 128);
    expect_bad(&b, "tensor 'blk.0.attn_q.weight': n_dims 5 > 4");
    bb_one_tensor(&b, 0, ne5, G3_TYPE_F32, 0, 128);
    expect_bad(&b, "tensor 'blk.0.attn_q.weight': n_dims 0");
    bb_one_tensor(&b, 2, (const uint64_t[]){32, 0}, G3_TYPE_F32, 0, 128);
    expect_bad(&b, "tensor 'blk.0.attn_q.weight': dimension ne[1] = 0");
    bb_one_tensor(&b, 2, (const uint64_t[]){1ull << 32, 1ull << 32}, G3_TYPE_F32, 0, 128);
    expect_bad(&b, "tensor 'blk.0.attn_q.weight': element count overflows at ne[1]");
    bb_one_tensor(&b, 3, (const uint64_t[]){1ull << 31, 1ull << 31, 2}, G3_TYPE_I8, 0, 128);
    expect_bad(&b, "element count overflows at ne[2]"); /* 2^63 > INT64_MAX */
    bb_one_tensor(&b, 1, (const uint64_t[]){1ull << 62}, G3_TYPE_F32, 0, 128);
    expect_bad(&b, "tensor 'blk.0.attn_q.weight': size of 4611686018427387904 F32 elements overflows");
    bb_one_tensor(&b, 1, (const uint64_t[]){32}, 77, 0, 128);
    expect_bad(&b, "tensor 'blk.0.attn_q.weight': unknown tensor type id 77");
    bb_one_tensor(&b, 1, (const uint64_t[]){32}, 4, 0, 128); /* Q4_2, removed from ggml */
    expect_bad(&b, "unknown tensor type id 4");
    bb_one_tensor(&b, 2, (const uint64_t[]){100, 2}, G3_TYPE_Q4_K, 0, 1000);
    expect_bad(&b, "tensor 'blk.0.attn_q.weight': row of 100 elements is not a multiple of the Q4_K block size 256");
}

static void test_bad_placement(void **state) {
    bb b = {0};
    bb_one_tensor(&b, 1, (const uint64_t[]){32}, G3_TYPE_F32, 16, 256);
    expect_bad(&b, "tensor 'blk.0.attn_q.weight': data offset 16 is not a multiple of the alignment 32");
    bb_one_tensor(&b, 2, (const uint64_t[]){32, 4}, G3_TYPE_F32, 64, 256);
    expect_bad(&b, "tensor 'blk.0.attn_q.weight': data [64, 576) lies outside the file (data section is 256 bytes)");
    bb_one_tensor(&b, 1, (const uint64_t[]){32}, G3_TYPE_F32, UINT64_MAX - 31, 256);
    expect_bad(&b, "lies outside the file");
    bb_header(&b, 3, 2, 0);
    bb_tensor(&b, "a", 1, (const uint64_t[]){8}, G3_TYPE_F32, 0);
    bb_tensor(&b, "a", 1, (const uint64_t[]){8}, G3_TYPE_F32, 32);
    bb_pad(&b, 32);
    bb_zeros(&b, 64);
    expect_bad(&b, "duplicate tensor name 'a'");
    bb_header(&b, 3, 1, 0);
    bb_u64(&b, 1ull << 40);
    bb_zeros(&b, 100);
    expect_bad(&b, "tensor #0: name length 1099511627776 runs past the end of the file");
    /* A valid hand-made file, to show the cases above fail for their reason. */
    bb_one_tensor(&b, 2, (const uint64_t[]){32, 2}, G3_TYPE_F32, 0, 256);
    g3_gguf *g = expect_good(&b);
    assert_int_equal(g->data_offset, 96); /* 83 bytes of header and info, padded */
    assert_int_equal(g->tensors[0].n_elements, 64);
    assert_ptr_equal(g->tensors[0].data, b.p + 96);
    g3_gguf_close(g);
    free(b.p);
}

/* A small valid file whose last tensor ends exactly at the end of the file,
 * so that every shorter prefix is invalid. */
static uint8_t *small_file(size_t *size) {
    char path[512];
    tmp_path(path, sizeof path, "small.gguf");
    g3_error err;
    g3_gguf_writer *w = g3_gguf_writer_open(path, &err);
    assert_non_null(w);
    static const char *const strs[] = {"x", "yz"};
    g3_gguf_value row = {.type = G3_GGUF_ARRAY, .v.arr = {.elem_type = G3_GGUF_UINT32, .n = 1, .data = k_row2}};
    g3_gguf_value nested = {.type = G3_GGUF_ARRAY, .v.arr = {.elem_type = G3_GGUF_ARRAY, .n = 1, .items = &row}};
    CHECK_OK(g3_gguf_writer_kv_str(w, "general.architecture", "gemma3", &err));
    CHECK_OK(g3_gguf_writer_kv_u32(w, "gemma3.block_count", 1, &err));
    CHECK_OK(g3_gguf_writer_kv_arr_str(w, "tokens", strs, 2, &err));
    CHECK_OK(g3_gguf_writer_kv_arr(w, "scores", G3_GGUF_FLOAT32, k_f32s, 3, &err));
    CHECK_OK(g3_gguf_writer_kv_copy(w, "nested", &nested, &err));
    CHECK_OK(g3_gguf_writer_tensor(w, "a", G3_TYPE_F32, 1, (const uint64_t[]){8}, &err));
    CHECK_OK(g3_gguf_writer_tensor(w, "b", G3_TYPE_F32, 2, (const uint64_t[]){4, 4}, &err));
    CHECK_OK(g3_gguf_writer_begin_data(w, &err));
    uint8_t data[96];
    for (int i = 0; i < 96; i++) data[i] = (uint8_t)i;
    CHECK_OK(g3_gguf_writer_data(w, data, sizeof data, &err));
    CHECK_OK(g3_gguf_writer_close(w, &err));
    uint8_t *p = tu_read_file(path, size);
    assert_non_null(p);
    return p;
}

static void test_every_truncation(void **state) {
    size_t size;
    uint8_t *p = small_file(&size);
    g3_gguf *g;
    g3_error err;
    CHECK_OK(g3_gguf_parse(p, size, &g, &err));
    assert_int_equal(g->data_offset + 32 + 64, size);
    g3_gguf_close(g);
    static const char *const ok_words[] = {"truncated", "past the end", "outside the file", "impossible"};
    for (size_t n = 0; n < size; n++) {
        g = (g3_gguf *)1;
        if (parse_copy(p, n, &g, &err) == 0) fail_msg("a %zu-byte prefix parsed", n);
        assert_null(g);
        bool named = false;
        for (size_t k = 0; k < 4; k++) named = named || strstr(err.msg, ok_words[k]);
        if (!named) fail_msg("prefix of %zu bytes: unexpected message \"%s\"", n, err.msg);
    }
    /* Truncation inside a key names the key: cut two bytes into its type. */
    const uint8_t *key = memmem(p, size, "tokens", 6);
    assert_non_null(key);
    size_t cut = (size_t)(key - p) + 6 + 2;
    parse_copy(p, cut, &g, &err);
    char want[160];
    snprintf(want, sizeof want, "file truncated at offset %zu while reading key #2 'tokens' (4 bytes needed at offset %zu)",
             cut, cut - 2);
    expect_contains(err.msg, want);
    free(p);
}

static uint64_t next_rand(uint64_t *state) {
    tu_randf(state); /* advances the xorshift state */
    return *state >> 11;
}

/* Random byte corruption must fail cleanly or parse; never crash (ASan). */
static void test_random_corruption(void **state) {
    size_t size;
    uint8_t *p = small_file(&size);
    uint8_t *q = malloc(size);
    assert_non_null(q);
    uint64_t rng = 0x9E3779B97F4A7C15ull;
    for (int iter = 0; iter < 3000; iter++) {
        memcpy(q, p, size);
        int flips = 1 + iter % 4;
        for (int f = 0; f < flips; f++) {
            size_t at = (size_t)(next_rand(&rng) % size);
            q[at] = (uint8_t)next_rand(&rng);
        }
        g3_gguf *g;
        g3_error err;
        if (parse_copy(q, size, &g, &err) == 0) {
            for (uint64_t i = 0; i < g->n_tensors; i++) {
                const uint8_t *d = g->tensors[i].data;
                assert_true(d >= q && d + g->tensors[i].n_bytes <= q + size);
            }
            g3_gguf_close(g);
        } else {
            assert_true(err.msg[0] != '\0');
        }
    }
    free(q);
    free(p);
}

static void test_open_prefix(void **state) {
    char path[512];
    tmp_path(path, sizeof path, "bad-magic.gguf");
    assert_int_equal(tu_write_file(path, "GGML\3\0\0\0", 8), 0);
    g3_gguf *g = (g3_gguf *)1;
    g3_error err;
    assert_int_equal(g3_gguf_open(path, &g, &err), -1);
    assert_null(g);
    char want[600];
    snprintf(want, sizeof want, "%s: not a GGUF file (bad magic)", path);
    assert_string_equal(err.msg, want);
    tmp_path(path, sizeof path, "does-not-exist.gguf");
    assert_int_equal(g3_gguf_open(path, &g, &err), -1);
    assert_true(strncmp(err.msg, path, strlen(path)) == 0);
    tmp_path(path, sizeof path, "empty.gguf");
    assert_int_equal(tu_write_file(path, "", 0), 0);
    assert_int_equal(g3_gguf_open(path, &g, &err), -1);
    expect_contains(err.msg, "empty.gguf: file truncated at offset 0");
}

/* ---- 4. writer misuse ---------------------------------------------------- */

static g3_gguf_writer *open_writer(const char *name, char *path, char *tmp) {
    tmp_path(path, 512, name);
    snprintf(tmp, 600, "%s.tmp", path);
    remove(path);
    g3_error err;
    g3_gguf_writer *w = g3_gguf_writer_open(path, &err);
    if (!w) fail_msg("open: %s", err.msg);
    assert_true(file_exists(tmp));
    return w;
}

static void test_writer_missing_bytes(void **state) {
    char path[512], tmp[600];
    g3_error err;
    g3_gguf_writer *w = open_writer("missing.gguf", path, tmp);
    CHECK_OK(g3_gguf_writer_tensor(w, "a", G3_TYPE_F32, 1, (const uint64_t[]){16}, &err));
    CHECK_OK(g3_gguf_writer_tensor(w, "b", G3_TYPE_F32, 1, (const uint64_t[]){16}, &err));
    CHECK_OK(g3_gguf_writer_begin_data(w, &err));
    uint8_t bytes[64] = {0};
    CHECK_OK(g3_gguf_writer_data(w, bytes, 10, &err));
    CHECK_FAILS(g3_gguf_writer_close(w, &err), "tensor 'a' is missing 54 bytes (and 1 later tensors were not written)");
    assert_false(file_exists(tmp));
    assert_false(file_exists(path));
}

static void test_writer_abort(void **state) {
    char path[512], tmp[600];
    g3_error err;
    g3_gguf_writer *w = open_writer("aborted.gguf", path, tmp);
    CHECK_OK(g3_gguf_writer_kv_u32(w, "k", 1, &err));
    CHECK_OK(g3_gguf_writer_tensor(w, "a", G3_TYPE_F32, 1, (const uint64_t[]){16}, &err));
    CHECK_OK(g3_gguf_writer_begin_data(w, &err));
    uint8_t bytes[8] = {0};
    CHECK_OK(g3_gguf_writer_data(w, bytes, sizeof bytes, &err));
    g3_gguf_writer_abort(w);
    assert_false(file_exists(tmp));
    assert_false(file_exists(path));
    g3_gguf_writer_abort(NULL);
    char bad[600];
    tmp_path(bad, sizeof bad, "no-such-dir/x.gguf");
    assert_null(g3_gguf_writer_open(bad, &err));
    expect_contains(err.msg, "cannot create");
}

/* Refused calls leave the writer usable and the file unharmed. */
static void writer_refusals(g3_gguf_writer *w) {
    g3_error err;
    uint8_t bytes[256] = {0};
    const g3_gguf_value big = {.type = G3_GGUF_UINT8, .v.u64 = 300};
    CHECK_FAILS(g3_gguf_writer_data(w, bytes, 4, &err), "before begin_data");
    CHECK_OK(g3_gguf_writer_kv_u32(w, "k", 1, &err));
    CHECK_FAILS(g3_gguf_writer_kv_str(w, "k", "again", &err), "duplicate key 'k'");
    CHECK_FAILS(g3_gguf_writer_kv_copy(w, "u8", &big, &err), "key 'u8': value 300 does not fit");
    CHECK_FAILS(g3_gguf_writer_kv_str(w, "general.alignment", "64", &err), "general.alignment");
    CHECK_FAILS(g3_gguf_writer_set_alignment(w, 48, &err), "power of two, got 48");
    CHECK_OK(g3_gguf_writer_kv_u32(w, "general.alignment", 128, &err));
    CHECK_OK(g3_gguf_writer_tensor(w, "a", G3_TYPE_Q8_0, 1, (const uint64_t[]){32}, &err));
    CHECK_FAILS(g3_gguf_writer_tensor(w, "a", G3_TYPE_F32, 1, (const uint64_t[]){4}, &err),
                "duplicate tensor name 'a'");
    CHECK_FAILS(g3_gguf_writer_tensor(w, "b", 77, 1, (const uint64_t[]){4}, &err),
                "tensor 'b': unknown tensor type id 77");
    CHECK_FAILS(g3_gguf_writer_tensor(w, "b", G3_TYPE_Q4_K, 1, (const uint64_t[]){100}, &err),
                "tensor 'b': row of 100 elements is not a multiple of the Q4_K block size 256");
    CHECK_FAILS(g3_gguf_writer_tensor(w, "b", G3_TYPE_F32, 5, (const uint64_t[]){1, 1, 1, 1, 1}, &err),
                "n_dims 5");
    CHECK_FAILS(g3_gguf_writer_tensor(w, "b", G3_TYPE_F32, 2, (const uint64_t[]){4, 0}, &err), "ne[1] = 0");
    CHECK_OK(g3_gguf_writer_begin_data(w, &err));
    CHECK_FAILS(g3_gguf_writer_kv_u32(w, "late", 1, &err), "after begin_data");
    CHECK_FAILS(g3_gguf_writer_tensor(w, "late", G3_TYPE_F32, 1, (const uint64_t[]){4}, &err), "after begin_data");
    CHECK_FAILS(g3_gguf_writer_begin_data(w, &err), "after begin_data");
    for (int i = 0; i < 34; i++) bytes[i] = (uint8_t)(i + 1);
    CHECK_FAILS(g3_gguf_writer_data(w, bytes, 40, &err), "6 bytes of data after all 1 tensors are complete");
}

static void test_writer_refusals(void **state) {
    char path[512], tmp[600];
    g3_error err;
    g3_gguf_writer *w = open_writer("refusals.gguf", path, tmp);
    writer_refusals(w);
    CHECK_OK(g3_gguf_writer_close(w, &err));
    assert_false(file_exists(tmp));
    g3_gguf *g;
    CHECK_OK(g3_gguf_open(path, &g, &err));
    assert_int_equal(g->n_kv, 2); /* k and general.alignment */
    assert_int_equal(g->alignment, 128);
    assert_int_equal(g->n_tensors, 1);
    assert_int_equal(g->tensors[0].n_bytes, 34);
    const uint8_t *d = g->tensors[0].data;
    for (int i = 0; i < 34; i++) assert_int_equal(d[i], i + 1);
    assert_int_equal(g->file.size, g->data_offset + 128);
    g3_gguf_close(g);
}

/* close without begin_data writes a metadata-only file. */
static void test_writer_metadata_only(void **state) {
    char path[512], tmp[600];
    g3_error err;
    g3_gguf_writer *w = open_writer("meta.gguf", path, tmp);
    CHECK_OK(g3_gguf_writer_kv_str(w, "general.name", "m", &err));
    CHECK_OK(g3_gguf_writer_close(w, &err));
    g3_gguf *g;
    CHECK_OK(g3_gguf_open(path, &g, &err));
    assert_int_equal(g->n_kv, 1);
    assert_int_equal(g->n_tensors, 0);
    assert_int_equal(g->file.size % 32, 0);
    g3_gguf_close(g);
}

static int setup(void **state) {
    if (mkdir(G3_TEST_TMP, 0777) != 0 && errno != EEXIST) return -1;
    return 0;
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_round_trip),
        cmocka_unit_test(test_getters),
        cmocka_unit_test(test_many_names),
        cmocka_unit_test(test_golden_model),
        cmocka_unit_test(test_golden_rewrite_identical),
        cmocka_unit_test(test_golden_vocab),
        cmocka_unit_test(test_bad_header),
        cmocka_unit_test(test_version2_and_empty),
        cmocka_unit_test(test_bad_strings_and_arrays),
        cmocka_unit_test(test_bad_value_types),
        cmocka_unit_test(test_nesting),
        cmocka_unit_test(test_bad_alignment),
        cmocka_unit_test(test_bad_shapes),
        cmocka_unit_test(test_bad_placement),
        cmocka_unit_test(test_every_truncation),
        cmocka_unit_test(test_random_corruption),
        cmocka_unit_test(test_open_prefix),
        cmocka_unit_test(test_writer_missing_bytes),
        cmocka_unit_test(test_writer_abort),
        cmocka_unit_test(test_writer_refusals),
        cmocka_unit_test(test_writer_metadata_only),
    };
    return cmocka_run_group_tests(tests, setup, NULL);
}
