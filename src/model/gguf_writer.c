/* gguf_writer.c: streaming GGUF v3 writer.
 *
 * Key/value pairs are serialized into a memory buffer as they are added (so
 * kv_copy of a 262144-string tokenizer is one linear pass); tensor infos are
 * kept as a list. begin_data writes the header, the buffered metadata, the
 * tensor infos with offsets computed from the sizes, and the padding; then the
 * tensor bytes are streamed and each tensor is padded to the alignment as it
 * completes (the last one too, as ggml writes and expects).
 *
 * Everything goes to PATH.tmp; close renames it over PATH after an fsync, so
 * the real name only ever holds a complete file.
 */
#include "model/gguf_writer.h"

#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "base/checked_math.h"
#include "tensor/type_info.h"

#if defined(__BYTE_ORDER__) && __BYTE_ORDER__ != __ORDER_LITTLE_ENDIAN__
#error "kv_arr copies host-order arrays verbatim: a little-endian host is required"
#endif

#define GGUF_VERSION 3
#define DEFAULT_ALIGNMENT 32
#define MAX_DEPTH 8
#define MAX_DIMS 4
#define MAX_TENSOR_NAME 63 /* ggml's GGML_MAX_NAME is 64 including the NUL */
#define ALIGNMENT_KEY "general.alignment"

/* ---- growable byte buffer ---------------------------------------------- */

typedef struct buf {
    uint8_t *p;
    size_t n, cap;
} buf;

static int buf_reserve(buf *b, size_t extra, g3_error *err) {
    size_t want;
    if (g3_add_overflow_size(b->n, extra, &want)) return g3_fail(err, "out of memory: buffer size overflows");
    if (want <= b->cap) return 0;
    size_t cap = b->cap ? b->cap : 4096;
    while (cap < want) {
        if (cap > SIZE_MAX / 2) { cap = want; break; }
        cap *= 2;
    }
    uint8_t *p = realloc(b->p, cap);
    if (!p) return g3_fail(err, "out of memory growing a buffer to %zu bytes", cap);
    b->p = p;
    b->cap = cap;
    return 0;
}

static int put_bytes(buf *b, const void *p, size_t n, g3_error *err) {
    if (n == 0) return 0;
    if (buf_reserve(b, n, err) != 0) return -1;
    memcpy(b->p + b->n, p, n);
    b->n += n;
    return 0;
}

/* The low n (<= 8) bytes of v, least significant first. */
static int put_le(buf *b, uint64_t v, size_t n, g3_error *err) {
    uint8_t tmp[8];
    if (n > sizeof tmp) n = sizeof tmp; /* lets the compiler see the bound */
    for (size_t i = 0; i < n; i++) tmp[i] = (uint8_t)(v >> (8 * i));
    return put_bytes(b, tmp, n, err);
}

static int put_u32(buf *b, uint32_t v, g3_error *err) { return put_le(b, v, 4, err); }
static int put_u64(buf *b, uint64_t v, g3_error *err) { return put_le(b, v, 8, err); }

static int put_str(buf *b, const char *s, uint64_t len, g3_error *err) {
    if (len > SIZE_MAX) return g3_fail(err, "string of %" PRIu64 " bytes is too long", len);
    if (len > 0 && !s) return g3_fail(err, "string of %" PRIu64 " bytes has no data", len);
    if (put_u64(b, len, err) != 0) return -1;
    return put_bytes(b, s, (size_t)len, err);
}

static int put_f32(buf *b, float f, g3_error *err) {
    uint32_t u;
    memcpy(&u, &f, sizeof u);
    return put_u32(b, u, err);
}

static int put_f64(buf *b, double d, g3_error *err) {
    uint64_t u;
    memcpy(&u, &d, sizeof u);
    return put_u64(b, u, err);
}

/* ---- set of owned names -------------------------------------------------- */

typedef struct name_set {
    char **slots;
    size_t cap, n;
} name_set;

static size_t name_hash(const char *s) {
    uint64_t h = 14695981039346656037ull;
    for (; *s; s++) {
        h ^= (unsigned char)*s;
        h *= 1099511628211ull;
    }
    return (size_t)h;
}

static char **set_slot(const name_set *s, const char *name) {
    size_t mask = s->cap - 1;
    for (size_t i = name_hash(name) & mask;; i = (i + 1) & mask)
        if (!s->slots[i] || strcmp(s->slots[i], name) == 0) return &s->slots[i];
}

static bool set_has(const name_set *s, const char *name) {
    return s->cap && *set_slot(s, name) != NULL;
}

static int set_grow(name_set *s, g3_error *err) {
    size_t cap = s->cap ? s->cap * 2 : 64;
    char **old = s->slots;
    size_t old_cap = s->cap;
    s->slots = calloc(cap, sizeof *s->slots);
    if (!s->slots) {
        s->slots = old;
        return g3_fail(err, "out of memory");
    }
    s->cap = cap;
    for (size_t i = 0; i < old_cap; i++)
        if (old[i]) *set_slot(s, old[i]) = old[i];
    free(old);
    return 0;
}

/* Adds a copy of name (absent, checked by the caller); returns the copy. */
static const char *set_add(name_set *s, const char *name, g3_error *err) {
    if ((s->n + 1) * 2 > s->cap && set_grow(s, err) != 0) return NULL;
    char *copy = strdup(name);
    if (!copy) {
        g3_fail(err, "out of memory");
        return NULL;
    }
    *set_slot(s, name) = copy;
    s->n++;
    return copy;
}

static void set_free(name_set *s) {
    for (size_t i = 0; i < s->cap; i++) free(s->slots[i]);
    free(s->slots);
    *s = (name_set){0};
}

/* ---- the writer --------------------------------------------------------- */

typedef struct tensor_decl {
    const char *name; /* owned by the name set */
    uint32_t type, n_dims;
    uint64_t ne[MAX_DIMS];
    uint64_t n_bytes, offset;
} tensor_decl;

struct g3_gguf_writer {
    FILE *f;
    char *path, *tmp_path;
    uint32_t alignment;
    buf kv; /* serialized pairs, without general.alignment */
    uint64_t n_kv;
    name_set keys, names;
    tensor_decl *tensors;
    size_t n_tensors, cap_tensors;
    bool begun, failed;
    uint64_t pos;         /* bytes written to the file */
    size_t cur;           /* tensor being streamed */
    uint64_t cur_written; /* its bytes so far */
};

static void writer_free(g3_gguf_writer *w) {
    if (w->f) fclose(w->f);
    free(w->path);
    free(w->tmp_path);
    free(w->kv.p);
    set_free(&w->keys);
    set_free(&w->names);
    free(w->tensors);
    free(w);
}

g3_gguf_writer *g3_gguf_writer_open(const char *path, g3_error *err) {
    g3_gguf_writer *w = calloc(1, sizeof *w);
    size_t len = strlen(path);
    if (!w || !(w->path = strdup(path)) || !(w->tmp_path = malloc(len + 5))) {
        g3_fail(err, "out of memory");
        if (w) writer_free(w);
        return NULL;
    }
    memcpy(w->tmp_path, path, len);
    memcpy(w->tmp_path + len, ".tmp", 5);
    w->alignment = DEFAULT_ALIGNMENT;
    w->f = fopen(w->tmp_path, "wb");
    if (!w->f) {
        g3_fail(err, "cannot create '%s': %s", w->tmp_path, strerror(errno));
        writer_free(w);
        return NULL;
    }
    return w;
}

void g3_gguf_writer_abort(g3_gguf_writer *w) {
    if (!w) return;
    if (w->f) {
        fclose(w->f);
        w->f = NULL;
    }
    remove(w->tmp_path);
    writer_free(w);
}

/* Metadata and declarations are only possible before begin_data. */
static int check_metadata_phase(const g3_gguf_writer *w, g3_error *err) {
    if (!w) return g3_fail(err, "no writer");
    if (w->failed) return g3_fail(err, "an earlier write to '%s' failed", w->tmp_path);
    if (w->begun) return g3_fail(err, "metadata or tensor declared after begin_data");
    return 0;
}

int g3_gguf_writer_set_alignment(g3_gguf_writer *w, uint32_t alignment, g3_error *err) {
    if (check_metadata_phase(w, err) != 0) return -1;
    if (alignment == 0 || (alignment & (alignment - 1)) != 0)
        return g3_fail(err, "alignment must be a power of two, got %u", alignment);
    w->alignment = alignment;
    return 0;
}

/* ---- key/value pairs ---------------------------------------------------- */

/* Serializes a pair: `put` appends the type id and value after the key. On
 * failure the buffer is rolled back, so the writer stays usable. */
typedef int (*put_fn)(buf *b, const void *ctx, g3_error *err);

static int add_kv(g3_gguf_writer *w, const char *key, put_fn put, const void *ctx, g3_error *err) {
    if (check_metadata_phase(w, err) != 0) return -1;
    if (!key) return g3_fail(err, "key is NULL");
    if (strcmp(key, ALIGNMENT_KEY) == 0)
        return g3_fail(err, "key '%s' must be a uint32 (or use g3_gguf_writer_set_alignment)", key);
    if (set_has(&w->keys, key)) return g3_fail(err, "duplicate key '%s'", key);
    size_t mark = w->kv.n;
    if (put_str(&w->kv, key, strlen(key), err) != 0 || put(&w->kv, ctx, err) != 0 ||
        !set_add(&w->keys, key, err)) {
        w->kv.n = mark;
        return g3_error_prefix(err, "key '%s': ", key);
    }
    w->n_kv++;
    return 0;
}

static size_t scalar_size(g3_gguf_vtype t) {
    switch (t) {
    case G3_GGUF_UINT8: case G3_GGUF_INT8: case G3_GGUF_BOOL: return 1;
    case G3_GGUF_UINT16: case G3_GGUF_INT16: return 2;
    case G3_GGUF_UINT32: case G3_GGUF_INT32: case G3_GGUF_FLOAT32: return 4;
    case G3_GGUF_UINT64: case G3_GGUF_INT64: case G3_GGUF_FLOAT64: return 8;
    default: return 0;
    }
}

static int put_uint(buf *b, uint64_t v, size_t n, g3_error *err) {
    if (n < 8 && v >> (8 * n) != 0)
        return g3_fail(err, "value %" PRIu64 " does not fit in %zu bytes", v, n);
    return put_le(b, v, n, err);
}

static int put_int(buf *b, int64_t v, size_t n, g3_error *err) {
    int64_t lim = n < 8 ? (int64_t)1 << (8 * n - 1) : 0;
    if (n < 8 && (v < -lim || v >= lim))
        return g3_fail(err, "value %" PRId64 " does not fit in %zu bytes", v, n);
    return put_le(b, (uint64_t)v, n, err);
}

/* A scalar from a reader value (u64/i64/f64 union), range-checked. */
static int put_scalar(buf *b, const g3_gguf_value *v, g3_error *err) {
    size_t n = scalar_size(v->type);
    switch (v->type) {
    case G3_GGUF_UINT8: case G3_GGUF_UINT16: case G3_GGUF_UINT32: case G3_GGUF_UINT64:
        return put_uint(b, v->v.u64, n, err);
    case G3_GGUF_INT8: case G3_GGUF_INT16: case G3_GGUF_INT32: case G3_GGUF_INT64:
        return put_int(b, v->v.i64, n, err);
    case G3_GGUF_FLOAT32: return put_f32(b, (float)v->v.f64, err);
    case G3_GGUF_FLOAT64: return put_f64(b, v->v.f64, err);
    case G3_GGUF_BOOL: return put_le(b, v->v.b ? 1 : 0, 1, err);
    default: return g3_fail(err, "unknown value type %d", (int)v->type);
    }
}

static int put_array(buf *b, const g3_gguf_array *a, int depth, g3_error *err);

static int put_array_elems(buf *b, const g3_gguf_array *a, int depth, g3_error *err) {
    size_t size = scalar_size(a->elem_type);
    if (size) {
        uint64_t bytes;
        if (g3_mul_overflow_u64(a->n, size, &bytes) || bytes > SIZE_MAX)
            return g3_fail(err, "array of %" PRIu64 " elements is too large", a->n);
        if (bytes && !a->data) return g3_fail(err, "array of %" PRIu64 " elements has no data", a->n);
        return put_bytes(b, a->data, (size_t)bytes, err);
    }
    if (a->n && !(a->elem_type == G3_GGUF_STRING ? (void *)a->strings : (void *)a->items))
        return g3_fail(err, "array of %" PRIu64 " elements has no data", a->n);
    for (uint64_t i = 0; i < a->n; i++) {
        if (a->elem_type == G3_GGUF_STRING) {
            if (put_str(b, a->strings[i].ptr, a->strings[i].len, err) != 0) return -1;
        } else if (a->items[i].type != G3_GGUF_ARRAY) {
            return g3_fail(err, "element #%" PRIu64 " of an array of arrays has type %s", i,
                           g3_gguf_vtype_name(a->items[i].type));
        } else if (put_array(b, &a->items[i].v.arr, depth + 1, err) != 0) {
            return -1;
        }
    }
    return 0;
}

/* An array at nesting level `depth` (a key's own array is level 1). */
static int put_array(buf *b, const g3_gguf_array *a, int depth, g3_error *err) {
    if (depth > MAX_DEPTH) return g3_fail(err, "array nested deeper than %d", MAX_DEPTH);
    if ((unsigned)a->elem_type >= G3_GGUF_VTYPE_COUNT)
        return g3_fail(err, "unknown value type %d", (int)a->elem_type);
    if (put_u32(b, a->elem_type, err) != 0 || put_u64(b, a->n, err) != 0) return -1;
    return put_array_elems(b, a, depth, err);
}

static int put_value(buf *b, const void *ctx, g3_error *err) {
    const g3_gguf_value *v = ctx;
    if ((unsigned)v->type >= G3_GGUF_VTYPE_COUNT) return g3_fail(err, "unknown value type %d", (int)v->type);
    if (put_u32(b, v->type, err) != 0) return -1;
    if (v->type == G3_GGUF_STRING) return put_str(b, v->v.str.ptr, v->v.str.len, err);
    if (v->type == G3_GGUF_ARRAY) return put_array(b, &v->v.arr, 1, err);
    return put_scalar(b, v, err);
}

int g3_gguf_writer_kv_copy(g3_gguf_writer *w, const char *key, const g3_gguf_value *v,
                           g3_error *err) {
    if (!v) return g3_fail(err, "key '%s': value is NULL", key ? key : "(null)");
    if (key && strcmp(key, ALIGNMENT_KEY) == 0 && v->type == G3_GGUF_UINT32)
        return g3_gguf_writer_set_alignment(w, v->v.u64 > UINT32_MAX ? 0 : (uint32_t)v->v.u64, err);
    return add_kv(w, key, put_value, v, err);
}

int g3_gguf_writer_kv_u32(g3_gguf_writer *w, const char *key, uint32_t v, g3_error *err) {
    g3_gguf_value val = {.type = G3_GGUF_UINT32, .v.u64 = v};
    return g3_gguf_writer_kv_copy(w, key, &val, err);
}

int g3_gguf_writer_kv_i32(g3_gguf_writer *w, const char *key, int32_t v, g3_error *err) {
    g3_gguf_value val = {.type = G3_GGUF_INT32, .v.i64 = v};
    return add_kv(w, key, put_value, &val, err);
}

int g3_gguf_writer_kv_u64(g3_gguf_writer *w, const char *key, uint64_t v, g3_error *err) {
    g3_gguf_value val = {.type = G3_GGUF_UINT64, .v.u64 = v};
    return add_kv(w, key, put_value, &val, err);
}

int g3_gguf_writer_kv_f32(g3_gguf_writer *w, const char *key, float v, g3_error *err) {
    g3_gguf_value val = {.type = G3_GGUF_FLOAT32, .v.f64 = v};
    return add_kv(w, key, put_value, &val, err);
}

int g3_gguf_writer_kv_bool(g3_gguf_writer *w, const char *key, bool v, g3_error *err) {
    g3_gguf_value val = {.type = G3_GGUF_BOOL, .v.b = v};
    return add_kv(w, key, put_value, &val, err);
}

int g3_gguf_writer_kv_str(g3_gguf_writer *w, const char *key, const char *v, g3_error *err) {
    if (!v) return g3_fail(err, "key '%s': string is NULL", key ? key : "(null)");
    g3_gguf_value val = {.type = G3_GGUF_STRING, .v.str = {v, strlen(v)}};
    return add_kv(w, key, put_value, &val, err);
}

int g3_gguf_writer_kv_arr(g3_gguf_writer *w, const char *key, g3_gguf_vtype elem_type,
                          const void *data, uint64_t n, g3_error *err) {
    if (scalar_size(elem_type) == 0)
        return g3_fail(err, "key '%s': kv_arr takes scalar elements, not %s", key ? key : "(null)",
                       g3_gguf_vtype_name(elem_type));
    g3_gguf_value val = {.type = G3_GGUF_ARRAY, .v.arr = {.elem_type = elem_type, .n = n, .data = data}};
    return add_kv(w, key, put_value, &val, err);
}

typedef struct cstr_array {
    const char *const *strs;
    uint64_t n;
} cstr_array;

static int put_cstr_array(buf *b, const void *ctx, g3_error *err) {
    const cstr_array *a = ctx;
    if (a->n && !a->strs) return g3_fail(err, "string array has no data");
    if (put_u32(b, G3_GGUF_ARRAY, err) != 0 || put_u32(b, G3_GGUF_STRING, err) != 0 ||
        put_u64(b, a->n, err) != 0)
        return -1;
    for (uint64_t i = 0; i < a->n; i++) {
        if (!a->strs[i]) return g3_fail(err, "string #%" PRIu64 " is NULL", i);
        if (put_str(b, a->strs[i], strlen(a->strs[i]), err) != 0) return -1;
    }
    return 0;
}

int g3_gguf_writer_kv_arr_str(g3_gguf_writer *w, const char *key, const char *const *strs,
                              uint64_t n, g3_error *err) {
    cstr_array a = {strs, n};
    return add_kv(w, key, put_cstr_array, &a, err);
}

/* ---- tensors ------------------------------------------------------------- */

static int tensor_size(uint32_t type, uint32_t n_dims, const uint64_t *ne, uint64_t *bytes,
                       g3_error *err) {
    if (n_dims == 0 || n_dims > MAX_DIMS) return g3_fail(err, "n_dims %u is not in 1..4", n_dims);
    uint64_t count = 1;
    for (uint32_t i = 0; i < n_dims; i++) {
        if (ne[i] == 0) return g3_fail(err, "dimension ne[%u] = 0", i);
        if (g3_mul_overflow_u64(count, ne[i], &count) || count > INT64_MAX)
            return g3_fail(err, "element count overflows at ne[%u] = %" PRIu64, i, ne[i]);
    }
    uint64_t row;
    if (g3_type_row_bytes(type, ne[0], &row, err) != 0) return -1;
    if (g3_mul_overflow_u64(row, count / ne[0], bytes))
        return g3_fail(err, "size of %" PRIu64 " elements overflows", count);
    return 0;
}

static int grow_tensors(g3_gguf_writer *w, g3_error *err) {
    if (w->n_tensors < w->cap_tensors) return 0;
    size_t cap = w->cap_tensors ? w->cap_tensors * 2 : 64;
    tensor_decl *t = realloc(w->tensors, cap * sizeof *t);
    if (!t) return g3_fail(err, "out of memory");
    w->tensors = t;
    w->cap_tensors = cap;
    return 0;
}

int g3_gguf_writer_tensor(g3_gguf_writer *w, const char *name, uint32_t type, uint32_t n_dims,
                          const uint64_t *ne, g3_error *err) {
    if (check_metadata_phase(w, err) != 0) return -1;
    if (!name || !ne) return g3_fail(err, "tensor name or shape is NULL");
    if (strlen(name) > MAX_TENSOR_NAME)
        return g3_fail(err, "tensor '%s': name longer than %d bytes (ggml cannot load it)", name,
                       MAX_TENSOR_NAME);
    if (set_has(&w->names, name)) return g3_fail(err, "duplicate tensor name '%s'", name);
    tensor_decl t = {.type = type, .n_dims = n_dims, .ne = {1, 1, 1, 1}};
    if (tensor_size(type, n_dims, ne, &t.n_bytes, err) != 0)
        return g3_error_prefix(err, "tensor '%s': ", name);
    memcpy(t.ne, ne, n_dims * sizeof *ne);
    if (grow_tensors(w, err) != 0 || !(t.name = set_add(&w->names, name, err))) return -1;
    w->tensors[w->n_tensors++] = t;
    return 0;
}

/* ---- file output -------------------------------------------------------- */

static int write_bytes(g3_gguf_writer *w, const void *p, size_t n, g3_error *err) {
    if (n && fwrite(p, 1, n, w->f) != n) {
        w->failed = true;
        return g3_fail(err, "writing '%s': %s", w->tmp_path, strerror(errno));
    }
    w->pos += n;
    return 0;
}

static int write_padding(g3_gguf_writer *w, g3_error *err) {
    static const uint8_t zeros[4096];
    uint64_t end;
    if (g3_align_up_u64(w->pos, w->alignment, &end)) return g3_fail(err, "file size overflows");
    while (w->pos < end) {
        uint64_t n = end - w->pos < sizeof zeros ? end - w->pos : sizeof zeros;
        if (write_bytes(w, zeros, (size_t)n, err) != 0) return -1;
    }
    return 0;
}

/* Offsets follow declaration order, each tensor padded to the alignment. */
static int assign_offsets(g3_gguf_writer *w, g3_error *err) {
    uint64_t off = 0;
    for (size_t i = 0; i < w->n_tensors; i++) {
        uint64_t padded;
        w->tensors[i].offset = off;
        if (g3_align_up_u64(w->tensors[i].n_bytes, w->alignment, &padded) ||
            g3_add_overflow_u64(off, padded, &off))
            return g3_fail(err, "tensor '%s': data section size overflows", w->tensors[i].name);
    }
    return 0;
}

static int put_header(const g3_gguf_writer *w, buf *b, g3_error *err) {
    bool custom = w->alignment != DEFAULT_ALIGNMENT;
    if (put_bytes(b, "GGUF", 4, err) != 0 || put_u32(b, GGUF_VERSION, err) != 0 ||
        put_u64(b, w->n_tensors, err) != 0 || put_u64(b, w->n_kv + custom, err) != 0)
        return -1;
    if (custom && (put_str(b, ALIGNMENT_KEY, strlen(ALIGNMENT_KEY), err) != 0 ||
                   put_u32(b, G3_GGUF_UINT32, err) != 0 || put_u32(b, w->alignment, err) != 0))
        return -1;
    return 0;
}

static int put_tensor_infos(const g3_gguf_writer *w, buf *b, g3_error *err) {
    for (size_t i = 0; i < w->n_tensors; i++) {
        const tensor_decl *t = &w->tensors[i];
        if (put_str(b, t->name, strlen(t->name), err) != 0 || put_u32(b, t->n_dims, err) != 0)
            return -1;
        for (uint32_t j = 0; j < t->n_dims; j++)
            if (put_u64(b, t->ne[j], err) != 0) return -1;
        if (put_u32(b, t->type, err) != 0 || put_u64(b, t->offset, err) != 0) return -1;
    }
    return 0;
}

int g3_gguf_writer_begin_data(g3_gguf_writer *w, g3_error *err) {
    if (check_metadata_phase(w, err) != 0) return -1;
    if (assign_offsets(w, err) != 0) return -1;
    buf head = {0}, infos = {0};
    int rc = -1;
    if (put_header(w, &head, err) == 0 && put_tensor_infos(w, &infos, err) == 0 &&
        write_bytes(w, head.p, head.n, err) == 0 && write_bytes(w, w->kv.p, w->kv.n, err) == 0 &&
        write_bytes(w, infos.p, infos.n, err) == 0 && write_padding(w, err) == 0)
        rc = 0;
    free(head.p);
    free(infos.p);
    free(w->kv.p); /* written: no longer needed */
    w->kv = (buf){0};
    w->begun = true;
    if (rc != 0) w->failed = true;
    return rc;
}

int g3_gguf_writer_data(g3_gguf_writer *w, const void *bytes, size_t n, g3_error *err) {
    if (!w) return g3_fail(err, "no writer");
    if (w->failed) return g3_fail(err, "an earlier write to '%s' failed", w->tmp_path);
    if (!w->begun) return g3_fail(err, "tensor data written before begin_data");
    if (n && !bytes) return g3_fail(err, "tensor data pointer is NULL");
    const uint8_t *p = bytes;
    while (n > 0) {
        if (w->cur >= w->n_tensors)
            return g3_fail(err, "%zu bytes of data after all %zu tensors are complete", n, w->n_tensors);
        const tensor_decl *t = &w->tensors[w->cur];
        uint64_t left = t->n_bytes - w->cur_written;
        size_t take = left < n ? (size_t)left : n;
        if (write_bytes(w, p, take, err) != 0) return -1;
        p += take;
        n -= take;
        w->cur_written += take;
        if (w->cur_written == t->n_bytes) {
            if (write_padding(w, err) != 0) return -1;
            w->cur++;
            w->cur_written = 0;
        }
    }
    return 0;
}

static int check_complete(const g3_gguf_writer *w, g3_error *err) {
    if (w->cur >= w->n_tensors) return 0;
    const tensor_decl *t = &w->tensors[w->cur];
    size_t unwritten = w->n_tensors - w->cur - 1;
    char more[64] = "";
    if (unwritten) snprintf(more, sizeof more, " (and %zu later tensors were not written)", unwritten);
    return g3_fail(err, "tensor '%s' is missing %" PRIu64 " bytes%s", t->name,
                   t->n_bytes - w->cur_written, more);
}

/* Makes the rename itself survive a crash. Best effort: the file is already
 * complete under its real name, and some file systems refuse to fsync a
 * directory. */
static void sync_parent_dir(const char *path) {
    const char *slash = strrchr(path, '/');
    char *dir = slash ? strndup(path, (size_t)(slash - path) + (slash == path)) : strdup(".");
    if (!dir) return;
    int fd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (fd >= 0) {
        (void)fsync(fd);
        close(fd);
    }
    free(dir);
}

/* Durable before visible: flush and fsync the data, then rename. */
static int finish(g3_gguf_writer *w, g3_error *err) {
    if (!w->begun && g3_gguf_writer_begin_data(w, err) != 0) return -1;
    if (w->failed) return g3_fail(err, "an earlier write to '%s' failed", w->tmp_path);
    if (check_complete(w, err) != 0) return -1;
    if (fflush(w->f) != 0 || fsync(fileno(w->f)) != 0)
        return g3_fail(err, "writing '%s': %s", w->tmp_path, strerror(errno));
    int rc = fclose(w->f);
    w->f = NULL;
    if (rc != 0) return g3_fail(err, "closing '%s': %s", w->tmp_path, strerror(errno));
    if (rename(w->tmp_path, w->path) != 0)
        return g3_fail(err, "renaming '%s' to '%s': %s", w->tmp_path, w->path, strerror(errno));
    sync_parent_dir(w->path);
    return 0;
}

int g3_gguf_writer_close(g3_gguf_writer *w, g3_error *err) {
    if (!w) return g3_fail(err, "no writer");
    if (finish(w, err) != 0) {
        g3_gguf_writer_abort(w);
        return -1;
    }
    writer_free(w);
    return 0;
}
