/* gguf.c: GGUF reader (versions 2 and 3).
 *
 * The whole file is treated as hostile. A `reader` cursor walks the image and
 * every read first checks that the bytes exist; every count is compared with
 * the bytes left before anything is allocated for it, so a file that claims
 * 2^40 elements fails at once. Strings, scalar arrays and tensor data are
 * pointers into the image; string arrays, nested arrays, the key and tensor
 * tables and the hash tables live in one arena freed by g3_gguf_close.
 *
 * Decisions (see gguf.h for the contract):
 * - a bool byte other than 0/1 reads as true (llama.cpp does the same);
 * - a tensor dimension of 0 is refused: no real model has an empty tensor and
 *   a zero-byte tensor would only move the failure somewhere less clear;
 * - n_dims must be 1..4 (ggml always writes at least 1);
 * - tensors may be in any order and may overlap; each must be aligned and lie
 *   inside the data section.
 */
#include "model/gguf.h"

#include <inttypes.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "base/checked_math.h"
#include "tensor/type_info.h"

#define MAX_DEPTH 8
#define MAX_DIMS 4
#define DEFAULT_ALIGNMENT 32
#define HEADER_BYTES 24 /* magic, version, n_tensors, n_kv */
/* Smallest possible encodings, to refuse impossible counts before allocating. */
#define MIN_KV_BYTES 13     /* u64 key length + u32 type + a 1-byte value */
#define MIN_TENSOR_BYTES 32 /* u64 name length + u32 n_dims + u64 ne + u32 type + u64 offset */
#define MIN_STRING_BYTES 8  /* u64 length */
#define MIN_ARRAY_BYTES 12  /* u32 element type + u64 count */
#define NAME_SHOWN_MAX 128  /* longest name quoted in a message */
#define NO_INDEX UINT64_MAX

/* ---- arena: few allocations, one free ---------------------------------- */

typedef struct chunk {
    struct chunk *next;
    size_t used, cap;
    max_align_t data[]; /* max_align_t keeps every allocation aligned */
} chunk;

typedef struct arena {
    chunk *head;
} arena;

#define CHUNK_BYTES ((size_t)64 * 1024)

static size_t round_up16(size_t n) { return (n + 15) & ~(size_t)15; }

/* Zeroed memory for n items of `size` bytes; n == 0 gives NULL. */
static int arena_alloc(arena *a, uint64_t n, size_t size, void **out, g3_error *err) {
    *out = NULL;
    if (n == 0) return 0;
    size_t bytes;
    if (n > SIZE_MAX || g3_mul_overflow_size((size_t)n, size, &bytes) ||
        bytes > SIZE_MAX - 16 - sizeof(chunk))
        return g3_fail(err, "out of memory: %" PRIu64 " items of %zu bytes", n, size);
    bytes = round_up16(bytes);
    chunk *c = a->head;
    if (!c || c->cap - c->used < bytes) {
        size_t cap = bytes > CHUNK_BYTES / 4 ? bytes : CHUNK_BYTES;
        c = calloc(1, sizeof *c + cap);
        if (!c) return g3_fail(err, "out of memory allocating %zu bytes", cap);
        c->cap = cap;
        /* A big private chunk goes behind the head, whose free space stays usable. */
        if (cap != CHUNK_BYTES && a->head) {
            c->next = a->head->next;
            a->head->next = c;
        } else {
            c->next = a->head;
            a->head = c;
        }
    }
    *out = (unsigned char *)c->data + c->used;
    c->used += bytes;
    return 0;
}

static void arena_free(arena *a) {
    chunk *c = a->head;
    while (c) {
        chunk *next = c->next;
        free(c);
        c = next;
    }
    a->head = NULL;
}

/* ---- hash tables over names (the first member of kv and tensor) -------- */

/* Open addressing; slots hold index + 1 (0 = empty) into an array of
 * structs whose first member is a g3_str. */
typedef struct table {
    uint64_t *slots;
    uint64_t mask;
    const unsigned char *base;
    size_t stride;
} table;

static uint64_t fnv1a(const char *p, uint64_t n) {
    uint64_t h = 14695981039346656037ull;
    for (uint64_t i = 0; i < n; i++) {
        h ^= (unsigned char)p[i];
        h *= 1099511628211ull;
    }
    return h;
}

static int table_init(table *t, arena *a, uint64_t n, const void *base, size_t stride,
                      g3_error *err) {
    uint64_t cap = 8;
    while (cap < n * 2) cap *= 2; /* n is bounded by the file size: no overflow */
    t->mask = cap - 1;
    t->base = base;
    t->stride = stride;
    return arena_alloc(a, cap, sizeof *t->slots, (void **)&t->slots, err);
}

static const g3_str *table_name(const table *t, uint64_t i) {
    return (const g3_str *)(const void *)(t->base + i * t->stride);
}

/* Index of the entry named (p, n), or NO_INDEX. */
static uint64_t table_find(const table *t, const char *p, uint64_t n) {
    if (!t->slots) return NO_INDEX;
    uint64_t s = fnv1a(p, n) & t->mask;
    for (uint64_t probes = 0; probes <= t->mask; probes++, s = (s + 1) & t->mask) {
        uint64_t v = t->slots[s];
        if (v == 0) return NO_INDEX;
        const g3_str *name = table_name(t, v - 1);
        if (name->len == n && (n == 0 || memcmp(name->ptr, p, n) == 0)) return v - 1;
    }
    return NO_INDEX;
}

/* Adds entry i; false when its name is already present. The table is sized
 * for every entry up front, so it never fills. */
static bool table_insert(table *t, uint64_t i) {
    const g3_str *name = table_name(t, i);
    uint64_t s = fnv1a(name->ptr, name->len) & t->mask;
    for (;; s = (s + 1) & t->mask) {
        uint64_t v = t->slots[s];
        if (v == 0) break;
        const g3_str *other = table_name(t, v - 1);
        if (other->len == name->len && (name->len == 0 || memcmp(other->ptr, name->ptr, name->len) == 0))
            return false;
    }
    t->slots[s] = i + 1;
    return true;
}

typedef struct lookup {
    arena arena;
    table kv, tensors;
} lookup;

/* ---- little-endian loads ----------------------------------------------- */

static uint16_t le16(const uint8_t *p) { return (uint16_t)(p[0] | p[1] << 8); }
static uint32_t le32(const uint8_t *p) {
    return (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 | (uint32_t)p[3] << 24;
}
static uint64_t le64(const uint8_t *p) { return (uint64_t)le32(p) | (uint64_t)le32(p + 4) << 32; }

static float f32_bits(uint32_t u) {
    float f;
    memcpy(&f, &u, sizeof f);
    return f;
}
static double f64_bits(uint64_t u) {
    double d;
    memcpy(&d, &u, sizeof d);
    return d;
}

/* ---- the cursor --------------------------------------------------------- */

typedef struct reader {
    const uint8_t *base;
    size_t size, pos;
    arena *arena;
    g3_error *err;
    /* What is being read, for messages: "key" #index, named once known. */
    const char *what;
    uint64_t index;
    g3_str name;
} reader;

static int shown_len(g3_str s) { return s.len > NAME_SHOWN_MAX ? NAME_SHOWN_MAX : (int)s.len; }

/* "key 'general.name'" once the name is read, "key #3" before. */
static const char *describe(const reader *r, char *buf, size_t n) {
    if (!r->what)
        snprintf(buf, n, "the header");
    else if (r->name.ptr)
        snprintf(buf, n, "%s '%.*s'", r->what, shown_len(r->name), r->name.ptr);
    else
        snprintf(buf, n, "%s #%" PRIu64, r->what, r->index);
    return buf;
}

static size_t remaining(const reader *r) { return r->size - r->pos; }

static int need(reader *r, size_t n) {
    if (n <= remaining(r)) return 0;
    if (!r->what)
        return g3_fail(r->err, "file truncated at offset %zu while reading the header", r->size);
    char named[NAME_SHOWN_MAX + 8] = "";
    if (r->name.ptr) snprintf(named, sizeof named, " '%.*s'", shown_len(r->name), r->name.ptr);
    return g3_fail(r->err,
                   "file truncated at offset %zu while reading %s #%" PRIu64 "%s "
                   "(%zu bytes needed at offset %zu)",
                   r->size, r->what, r->index, named, n, r->pos);
}

static int rd_u32(reader *r, uint32_t *out) {
    if (need(r, 4) != 0) return -1;
    *out = le32(r->base + r->pos);
    r->pos += 4;
    return 0;
}

static int rd_u64(reader *r, uint64_t *out) {
    if (need(r, 8) != 0) return -1;
    *out = le64(r->base + r->pos);
    r->pos += 8;
    return 0;
}

/* `field` names the string in messages ("name", "string"); `elem` is its
 * index within an array or NO_INDEX. */
static int rd_str(reader *r, g3_str *out, const char *field, uint64_t elem) {
    uint64_t len;
    if (rd_u64(r, &len) != 0) return -1;
    if (len > remaining(r)) {
        char d[NAME_SHOWN_MAX + 32], at[48] = "";
        if (elem != NO_INDEX) snprintf(at, sizeof at, " element #%" PRIu64 ":", elem);
        return g3_fail(r->err, "%s:%s %s length %" PRIu64 " runs past the end of the file (offset %zu)",
                       describe(r, d, sizeof d), at, field, len, r->pos);
    }
    out->ptr = (const char *)(r->base + r->pos);
    out->len = len;
    r->pos += (size_t)len;
    return 0;
}

/* ---- values ------------------------------------------------------------- */

static const char *const k_vtype_names[G3_GGUF_VTYPE_COUNT] = {
    "uint8", "int8", "uint16", "int16", "uint32", "int32", "float32",
    "bool", "string", "array", "uint64", "int64", "float64",
};

const char *g3_gguf_vtype_name(g3_gguf_vtype t) {
    if ((unsigned)t >= G3_GGUF_VTYPE_COUNT) return "unknown";
    return k_vtype_names[t];
}

/* Bytes of a scalar; 0 for string and array. */
static size_t scalar_size(g3_gguf_vtype t) {
    switch (t) {
    case G3_GGUF_UINT8: case G3_GGUF_INT8: case G3_GGUF_BOOL: return 1;
    case G3_GGUF_UINT16: case G3_GGUF_INT16: return 2;
    case G3_GGUF_UINT32: case G3_GGUF_INT32: case G3_GGUF_FLOAT32: return 4;
    case G3_GGUF_UINT64: case G3_GGUF_INT64: case G3_GGUF_FLOAT64: return 8;
    default: return 0;
    }
}

static void decode_scalar(g3_gguf_vtype t, const uint8_t *p, g3_gguf_value *v) {
    switch (t) {
    case G3_GGUF_UINT8: v->v.u64 = p[0]; break;
    case G3_GGUF_INT8: v->v.i64 = (int8_t)p[0]; break;
    case G3_GGUF_UINT16: v->v.u64 = le16(p); break;
    case G3_GGUF_INT16: v->v.i64 = (int16_t)le16(p); break;
    case G3_GGUF_UINT32: v->v.u64 = le32(p); break;
    case G3_GGUF_INT32: v->v.i64 = (int32_t)le32(p); break;
    case G3_GGUF_FLOAT32: v->v.f64 = f32_bits(le32(p)); break;
    case G3_GGUF_BOOL: v->v.b = p[0] != 0; break; /* lenient, like llama.cpp */
    case G3_GGUF_UINT64: v->v.u64 = le64(p); break;
    case G3_GGUF_INT64: v->v.i64 = (int64_t)le64(p); break;
    case G3_GGUF_FLOAT64: v->v.f64 = f64_bits(le64(p)); break;
    default: break;
    }
}

static int rd_vtype(reader *r, g3_gguf_vtype *out) {
    uint32_t t;
    if (rd_u32(r, &t) != 0) return -1;
    if (t >= G3_GGUF_VTYPE_COUNT) {
        char d[NAME_SHOWN_MAX + 32];
        return g3_fail(r->err, "%s: unknown value type %u", describe(r, d, sizeof d), t);
    }
    *out = (g3_gguf_vtype)t;
    return 0;
}

static int parse_array(reader *r, int depth, g3_gguf_array *a);

static int parse_string_elems(reader *r, g3_gguf_array *a) {
    if (arena_alloc(r->arena, a->n, sizeof *a->strings, (void **)&a->strings, r->err) != 0) return -1;
    for (uint64_t i = 0; i < a->n; i++)
        if (rd_str(r, &a->strings[i], "string", i) != 0) return -1;
    return 0;
}

static int parse_array_elems(reader *r, int depth, g3_gguf_array *a) {
    if (arena_alloc(r->arena, a->n, sizeof *a->items, (void **)&a->items, r->err) != 0) return -1;
    for (uint64_t i = 0; i < a->n; i++) {
        a->items[i].type = G3_GGUF_ARRAY;
        if (parse_array(r, depth + 1, &a->items[i].v.arr) != 0) return -1;
    }
    return 0;
}

/* An array at nesting level `depth` (a key's own array is level 1). */
static int parse_array(reader *r, int depth, g3_gguf_array *a) {
    char d[NAME_SHOWN_MAX + 32];
    if (depth > MAX_DEPTH)
        return g3_fail(r->err, "array '%.*s' nested deeper than %d", shown_len(r->name), r->name.ptr,
                       MAX_DEPTH);
    uint64_t n;
    if (rd_vtype(r, &a->elem_type) != 0 || rd_u64(r, &n) != 0) return -1;
    size_t elem = scalar_size(a->elem_type);
    if (a->elem_type == G3_GGUF_STRING) elem = MIN_STRING_BYTES;
    if (a->elem_type == G3_GGUF_ARRAY) elem = MIN_ARRAY_BYTES;
    uint64_t bytes;
    if (g3_mul_overflow_u64(n, elem, &bytes) || bytes > remaining(r))
        return g3_fail(r->err, "%s: array of %" PRIu64 " %s elements runs past the end of the file (offset %zu)",
                       describe(r, d, sizeof d), n, g3_gguf_vtype_name(a->elem_type), r->pos);
    a->n = n;
    if (a->elem_type == G3_GGUF_STRING) return parse_string_elems(r, a);
    if (a->elem_type == G3_GGUF_ARRAY) return parse_array_elems(r, depth, a);
    a->data = r->base + r->pos; /* scalars stay in the file */
    r->pos += (size_t)bytes;
    return 0;
}

static int parse_value(reader *r, g3_gguf_vtype type, g3_gguf_value *v) {
    v->type = type;
    if (type == G3_GGUF_STRING) return rd_str(r, &v->v.str, "string", NO_INDEX);
    if (type == G3_GGUF_ARRAY) return parse_array(r, 1, &v->v.arr);
    size_t n = scalar_size(type);
    if (need(r, n) != 0) return -1;
    decode_scalar(type, r->base + r->pos, v);
    r->pos += n;
    return 0;
}

/* ---- header, keys, tensors --------------------------------------------- */

static int parse_header(reader *r, g3_gguf *g) {
    if (need(r, 4) != 0) return -1;
    if (memcmp(r->base, "GGUF", 4) != 0) return g3_fail(r->err, "not a GGUF file (bad magic)");
    r->pos = 4;
    if (rd_u32(r, &g->version) != 0) return -1;
    if (g->version != 2 && g->version != 3) {
        /* A big-endian file reads as a huge version with zero low bits. */
        const char *hint = (g->version & 0xFFFF) == 0 ? " (a big-endian file?)" : "";
        return g3_fail(r->err, "unsupported GGUF version %u%s", g->version, hint);
    }
    if (rd_u64(r, &g->n_tensors) != 0 || rd_u64(r, &g->n_kv) != 0) return -1;
    if (g->n_kv > remaining(r) / MIN_KV_BYTES)
        return g3_fail(r->err, "n_kv %" PRIu64 " is impossible for a file of %zu bytes", g->n_kv, r->size);
    if (g->n_tensors > remaining(r) / MIN_TENSOR_BYTES)
        return g3_fail(r->err, "n_tensors %" PRIu64 " is impossible for a file of %zu bytes", g->n_tensors,
                       r->size);
    return 0;
}

static int parse_kvs(reader *r, g3_gguf *g, lookup *lk) {
    if (arena_alloc(r->arena, g->n_kv, sizeof *g->kv, (void **)&g->kv, r->err) != 0 ||
        table_init(&lk->kv, r->arena, g->n_kv, g->kv, sizeof *g->kv, r->err) != 0)
        return -1;
    r->what = "key";
    for (uint64_t i = 0; i < g->n_kv; i++) {
        g3_gguf_kv *kv = &g->kv[i];
        r->index = i;
        r->name = (g3_str){0};
        if (rd_str(r, &kv->key, "name", NO_INDEX) != 0) return -1;
        r->name = kv->key;
        if (!table_insert(&lk->kv, i))
            return g3_fail(r->err, "duplicate key '%.*s'", shown_len(kv->key), kv->key.ptr);
        g3_gguf_vtype type = G3_GGUF_UINT8;
        if (rd_vtype(r, &type) != 0 || parse_value(r, type, &kv->value) != 0) return -1;
    }
    return 0;
}

static int check_alignment(g3_gguf *g, g3_error *err) {
    g->alignment = DEFAULT_ALIGNMENT;
    const g3_gguf_kv *kv = g3_gguf_find_kv(g, "general.alignment");
    if (!kv) return 0;
    if (kv->value.type != G3_GGUF_UINT32)
        return g3_fail(err, "key 'general.alignment' has type %s, expected uint32",
                       g3_gguf_vtype_name(kv->value.type));
    uint64_t a = kv->value.v.u64;
    if (a == 0 || (a & (a - 1)) != 0)
        return g3_fail(err, "key 'general.alignment' must be a power of two, got %" PRIu64, a);
    g->alignment = a;
    return 0;
}

static int tensor_fail(reader *r, const g3_gguf_tensor *t, const char *fmt, ...) G3_PRINTF(3, 4);

/* "tensor 'NAME': " + the formatted problem. */
static int tensor_fail(reader *r, const g3_gguf_tensor *t, const char *fmt, ...) {
    char msg[G3_ERROR_MSG_MAX];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    return g3_fail(r->err, "tensor '%.*s': %s", shown_len(t->name), t->name.ptr, msg);
}

static int parse_shape(reader *r, g3_gguf_tensor *t) {
    if (rd_u32(r, &t->n_dims) != 0) return -1;
    if (t->n_dims == 0 || t->n_dims > MAX_DIMS)
        return tensor_fail(r, t, "n_dims %u %s", t->n_dims, t->n_dims ? "> 4" : "(must be 1..4)");
    uint64_t count = 1;
    for (uint32_t j = 0; j < MAX_DIMS; j++) {
        t->ne[j] = 1;
        if (j < t->n_dims && rd_u64(r, &t->ne[j]) != 0) return -1;
        if (t->ne[j] == 0) return tensor_fail(r, t, "dimension ne[%u] = 0", j);
        if (g3_mul_overflow_u64(count, t->ne[j], &count) || count > INT64_MAX)
            return tensor_fail(r, t, "element count overflows at ne[%u] = %" PRIu64, j, t->ne[j]);
    }
    t->n_elements = count;
    return 0;
}

static int parse_type(reader *r, g3_gguf_tensor *t) {
    if (rd_u32(r, &t->type) != 0) return -1;
    if (!g3_type_info_get(t->type))
        return tensor_fail(r, t, "unknown tensor type id %u", t->type);
    uint64_t row;
    if (g3_type_row_bytes(t->type, t->ne[0], &row, r->err) != 0)
        return g3_error_prefix(r->err, "tensor '%.*s': ", shown_len(t->name), t->name.ptr);
    /* The element count fits, so the rows count does too; the bytes may not. */
    if (g3_mul_overflow_u64(row, t->n_elements / t->ne[0], &t->n_bytes))
        return tensor_fail(r, t, "size of %" PRIu64 " elements overflows", t->n_elements);
    return 0;
}

static int parse_tensor(reader *r, g3_gguf *g, lookup *lk, uint64_t i) {
    g3_gguf_tensor *t = &g->tensors[i];
    r->index = i;
    r->name = (g3_str){0};
    if (rd_str(r, &t->name, "name", NO_INDEX) != 0) return -1;
    r->name = t->name;
    if (!table_insert(&lk->tensors, i))
        return g3_fail(r->err, "duplicate tensor name '%.*s'", shown_len(t->name), t->name.ptr);
    if (parse_shape(r, t) != 0 || parse_type(r, t) != 0 || rd_u64(r, &t->offset) != 0) return -1;
    if (t->offset % g->alignment != 0)
        return tensor_fail(r, t, "data offset %" PRIu64 " is not a multiple of the alignment %" PRIu64,
                           t->offset, g->alignment);
    return 0;
}

static int parse_tensors(reader *r, g3_gguf *g, lookup *lk) {
    if (g->n_tensors > remaining(r) / MIN_TENSOR_BYTES)
        return g3_fail(r->err,
                       "n_tensors %" PRIu64 " is impossible: only %zu bytes remain after the metadata "
                       "(offset %zu)",
                       g->n_tensors, remaining(r), r->pos);
    if (arena_alloc(r->arena, g->n_tensors, sizeof *g->tensors, (void **)&g->tensors, r->err) != 0 ||
        table_init(&lk->tensors, r->arena, g->n_tensors, g->tensors, sizeof *g->tensors, r->err) != 0)
        return -1;
    r->what = "tensor";
    for (uint64_t i = 0; i < g->n_tensors; i++)
        if (parse_tensor(r, g, lk, i) != 0) return -1;
    return 0;
}

/* Places every tensor inside the data section, which starts at the first
 * aligned offset after the tensor infos. */
static int place_tensors(reader *r, g3_gguf *g) {
    if (g3_align_up_u64(r->pos, g->alignment, &g->data_offset))
        return g3_fail(r->err, "data section offset overflows");
    if (g->data_offset > r->size) {
        if (g->n_tensors == 0) return 0; /* metadata-only file without final padding */
        return g3_fail(r->err, "file truncated at offset %zu before the data section (which starts at offset %" PRIu64 ")",
                       r->size, g->data_offset);
    }
    uint64_t data_size = r->size - g->data_offset;
    for (uint64_t i = 0; i < g->n_tensors; i++) {
        g3_gguf_tensor *t = &g->tensors[i];
        uint64_t end;
        if (g3_add_overflow_u64(t->offset, t->n_bytes, &end) || end > data_size)
            return g3_fail(r->err,
                           "tensor '%.*s': data [%" PRIu64 ", %" PRIu64 ") lies outside the file "
                           "(data section is %" PRIu64 " bytes)",
                           shown_len(t->name), t->name.ptr, t->offset,
                           end < t->offset ? UINT64_MAX : end, data_size);
        t->data = r->base + g->data_offset + t->offset;
    }
    return 0;
}

static int parse_all(reader *r, g3_gguf *g, lookup *lk) {
    if (parse_header(r, g) != 0 || parse_kvs(r, g, lk) != 0) return -1;
    r->what = NULL;
    r->name = (g3_str){0};
    if (check_alignment(g, r->err) != 0) return -1;
    if (parse_tensors(r, g, lk) != 0) return -1;
    return place_tensors(r, g);
}

int g3_gguf_parse(const uint8_t *data, size_t size, g3_gguf **out, g3_error *err) {
    *out = NULL;
    g3_gguf *g = calloc(1, sizeof *g);
    lookup *lk = calloc(1, sizeof *lk);
    if (!g || !lk) {
        free(g);
        free(lk);
        return g3_fail(err, "out of memory");
    }
    g->priv = lk;
    reader r = {.base = data, .size = data ? size : 0, .arena = &lk->arena, .err = err};
    if (parse_all(&r, g, lk) != 0) {
        g3_gguf_close(g);
        return -1;
    }
    *out = g;
    return 0;
}

int g3_gguf_open(const char *path, g3_gguf **out, g3_error *err) {
    *out = NULL;
    g3_mapped_file f;
    if (g3_mapped_file_open(path, &f, err) != 0) return g3_error_prefix(err, "%s: ", path);
    if (g3_gguf_parse(f.data, f.size, out, err) != 0) {
        g3_mapped_file_close(&f);
        return g3_error_prefix(err, "%s: ", path);
    }
    (*out)->file = f;
    return 0;
}

void g3_gguf_close(g3_gguf *g) {
    if (!g) return;
    lookup *lk = g->priv;
    if (lk) arena_free(&lk->arena);
    free(lk);
    g3_mapped_file_close(&g->file);
    free(g);
}

/* ---- lookups and getters ----------------------------------------------- */

const g3_gguf_kv *g3_gguf_find_kv(const g3_gguf *g, const char *key) {
    const lookup *lk = g->priv;
    uint64_t i = table_find(&lk->kv, key, strlen(key));
    return i == NO_INDEX ? NULL : &g->kv[i];
}

const g3_gguf_tensor *g3_gguf_find_tensor(const g3_gguf *g, const char *name) {
    const lookup *lk = g->priv;
    uint64_t i = table_find(&lk->tensors, name, strlen(name));
    return i == NO_INDEX ? NULL : &g->tensors[i];
}

bool g3_str_eq(g3_str s, const char *c) {
    size_t n = strlen(c);
    return s.len == n && (n == 0 || memcmp(s.ptr, c, n) == 0);
}

static bool is_unsigned(g3_gguf_vtype t) {
    return t == G3_GGUF_UINT8 || t == G3_GGUF_UINT16 || t == G3_GGUF_UINT32 || t == G3_GGUF_UINT64;
}
static bool is_signed(g3_gguf_vtype t) {
    return t == G3_GGUF_INT8 || t == G3_GGUF_INT16 || t == G3_GGUF_INT32 || t == G3_GGUF_INT64;
}
static bool is_float(g3_gguf_vtype t) { return t == G3_GGUF_FLOAT32 || t == G3_GGUF_FLOAT64; }

/* The value of `key`, or NULL when absent and not required. */
static int find_value(const g3_gguf *g, const char *key, bool required, const g3_gguf_value **v,
                      g3_error *err) {
    const g3_gguf_kv *kv = g3_gguf_find_kv(g, key);
    *v = kv ? &kv->value : NULL;
    if (!kv && required) return g3_fail(err, "missing required key '%s'", key);
    return 0;
}

static int wrong_type(const char *key, g3_gguf_vtype t, const char *expected, g3_error *err) {
    return g3_fail(err, "key '%s' has type %s, expected %s", key, g3_gguf_vtype_name(t), expected);
}

/* Any integer value that is >= 0 and <= max. */
static int get_unsigned(const g3_gguf_value *v, const char *key, uint64_t max, const char *what,
                        uint64_t *out, g3_error *err) {
    if (is_unsigned(v->type)) {
        if (v->v.u64 > max)
            return g3_fail(err, "key '%s' value %" PRIu64 " does not fit in %s", key, v->v.u64, what);
        *out = v->v.u64;
        return 0;
    }
    if (!is_signed(v->type)) return wrong_type(key, v->type, "an integer", err);
    if (v->v.i64 < 0 || (uint64_t)v->v.i64 > max)
        return g3_fail(err, "key '%s' value %" PRId64 " does not fit in %s", key, v->v.i64, what);
    *out = (uint64_t)v->v.i64;
    return 0;
}

int g3_gguf_get_u32(const g3_gguf *g, const char *key, bool required, uint32_t def,
                    uint32_t *out, g3_error *err) {
    const g3_gguf_value *v;
    uint64_t u = 0;
    *out = def;
    if (find_value(g, key, required, &v, err) != 0) return -1;
    if (!v) return 0;
    if (get_unsigned(v, key, UINT32_MAX, "uint32", &u, err) != 0) return -1;
    *out = (uint32_t)u;
    return 0;
}

int g3_gguf_get_u64(const g3_gguf *g, const char *key, bool required, uint64_t def,
                    uint64_t *out, g3_error *err) {
    const g3_gguf_value *v;
    *out = def;
    if (find_value(g, key, required, &v, err) != 0) return -1;
    if (!v) return 0;
    return get_unsigned(v, key, UINT64_MAX, "uint64", out, err);
}

int g3_gguf_get_f32(const g3_gguf *g, const char *key, bool required, float def,
                    float *out, g3_error *err) {
    const g3_gguf_value *v;
    *out = def;
    if (find_value(g, key, required, &v, err) != 0) return -1;
    if (!v) return 0;
    if (is_float(v->type))
        *out = (float)v->v.f64;
    else if (is_unsigned(v->type))
        *out = (float)v->v.u64;
    else if (is_signed(v->type))
        *out = (float)v->v.i64;
    else
        return wrong_type(key, v->type, "a float", err);
    return 0;
}

int g3_gguf_get_bool(const g3_gguf *g, const char *key, bool required, bool def,
                     bool *out, g3_error *err) {
    const g3_gguf_value *v;
    *out = def;
    if (find_value(g, key, required, &v, err) != 0) return -1;
    if (!v) return 0;
    if (v->type != G3_GGUF_BOOL) return wrong_type(key, v->type, "a bool", err);
    *out = v->v.b;
    return 0;
}

int g3_gguf_get_str(const g3_gguf *g, const char *key, bool required, g3_str *out,
                    g3_error *err) {
    const g3_gguf_value *v;
    *out = (g3_str){0};
    if (find_value(g, key, required, &v, err) != 0) return -1;
    if (!v) return 0;
    if (v->type != G3_GGUF_STRING) return wrong_type(key, v->type, "a string", err);
    *out = v->v.str;
    return 0;
}

int g3_gguf_get_arr(const g3_gguf *g, const char *key, bool required,
                    g3_gguf_vtype elem_type, const g3_gguf_array **out, g3_error *err) {
    const g3_gguf_value *v;
    *out = NULL;
    if (find_value(g, key, required, &v, err) != 0) return -1;
    if (!v) return 0;
    if (v->type != G3_GGUF_ARRAY) return wrong_type(key, v->type, "an array", err);
    if (elem_type != G3_GGUF_VTYPE_COUNT && v->v.arr.elem_type != elem_type)
        return g3_fail(err, "key '%s' is an array of %s, expected an array of %s", key,
                       g3_gguf_vtype_name(v->v.arr.elem_type), g3_gguf_vtype_name(elem_type));
    *out = &v->v.arr;
    return 0;
}

static g3_gguf_value array_elem(const g3_gguf_array *a, uint64_t i) {
    g3_gguf_value v = {.type = a->elem_type};
    size_t n = scalar_size(a->elem_type);
    if (n) decode_scalar(a->elem_type, (const uint8_t *)a->data + i * n, &v);
    return v;
}

/* Out-of-range float to integer conversion is undefined: saturate. */
static int64_t f64_to_i64(double d) {
    if (d != d) return 0;
    if (d >= 9223372036854775807.0) return INT64_MAX;
    if (d <= -9223372036854775808.0) return INT64_MIN;
    return (int64_t)d;
}

/* UINT64 elements above INT64_MAX wrap; bools read as 0/1; floats truncate
 * (saturating). */
int64_t g3_gguf_array_i64(const g3_gguf_array *a, uint64_t i) {
    g3_gguf_value v = array_elem(a, i);
    if (is_unsigned(v.type)) return (int64_t)v.v.u64;
    if (is_signed(v.type)) return v.v.i64;
    if (is_float(v.type)) return f64_to_i64(v.v.f64);
    if (v.type == G3_GGUF_BOOL) return v.v.b;
    return 0;
}

double g3_gguf_array_f64(const g3_gguf_array *a, uint64_t i) {
    g3_gguf_value v = array_elem(a, i);
    if (is_float(v.type)) return v.v.f64;
    if (is_unsigned(v.type)) return (double)v.v.u64;
    if (is_signed(v.type)) return (double)v.v.i64;
    if (v.type == G3_GGUF_BOOL) return v.v.b;
    return 0;
}
