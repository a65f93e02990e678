/* gguf.h: GGUF reader (versions 2 and 3).
 *
 * The file is memory-mapped; strings, arrays and tensor data point into the
 * map, nothing is copied. Every count, length, offset and size is checked
 * against the file before use, with overflow-safe arithmetic, so a truncated
 * or hostile file fails with a message naming what was wrong (the key, the
 * tensor, the byte offset) and never reads out of bounds.
 *
 * Limits: at most 4 dimensions per tensor; nested arrays at most 8 deep.
 */
#ifndef G3_MODEL_GGUF_H
#define G3_MODEL_GGUF_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "base/error.h"
#include "base/mapped_file.h"

typedef enum g3_gguf_vtype {
    G3_GGUF_UINT8 = 0,
    G3_GGUF_INT8 = 1,
    G3_GGUF_UINT16 = 2,
    G3_GGUF_INT16 = 3,
    G3_GGUF_UINT32 = 4,
    G3_GGUF_INT32 = 5,
    G3_GGUF_FLOAT32 = 6,
    G3_GGUF_BOOL = 7,
    G3_GGUF_STRING = 8,
    G3_GGUF_ARRAY = 9,
    G3_GGUF_UINT64 = 10,
    G3_GGUF_INT64 = 11,
    G3_GGUF_FLOAT64 = 12,
    G3_GGUF_VTYPE_COUNT
} g3_gguf_vtype;

/* A string inside the file: not NUL-terminated. */
typedef struct g3_str {
    const char *ptr;
    uint64_t len;
} g3_str;

typedef struct g3_gguf_value g3_gguf_value;

typedef struct g3_gguf_array {
    g3_gguf_vtype elem_type;
    uint64_t n;
    /* elem_type scalar: the packed little-endian elements in the map
     *   (possibly unaligned: read them with g3_gguf_array_* below);
     * elem_type STRING: `strings` holds n entries (heap, owned by the file);
     * elem_type ARRAY:  `items` holds n nested values (heap). */
    const void *data;
    g3_str *strings;
    g3_gguf_value *items;
} g3_gguf_array;

struct g3_gguf_value {
    g3_gguf_vtype type;
    union {
        uint64_t u64; /* UINT8/16/32/64 (zero-extended) */
        int64_t i64;  /* INT8/16/32/64 (sign-extended) */
        double f64;   /* FLOAT32/FLOAT64 */
        bool b;
        g3_str str;
        g3_gguf_array arr;
    } v;
};

typedef struct g3_gguf_kv {
    g3_str key;
    g3_gguf_value value;
} g3_gguf_kv;

typedef struct g3_gguf_tensor {
    g3_str name;
    uint32_t type;       /* ggml type id (tensor/type_info.h) */
    uint32_t n_dims;     /* 1..4 */
    uint64_t ne[4];      /* ggml order: ne[0] is the row length; unused dims are 1 */
    uint64_t n_elements;
    uint64_t offset;     /* from the start of the data section */
    uint64_t n_bytes;
    const void *data;    /* points into the map */
} g3_gguf_tensor;

typedef struct g3_gguf {
    g3_mapped_file file; /* empty when parsed from caller memory */
    uint32_t version;
    uint64_t alignment;   /* general.alignment or 32 */
    uint64_t data_offset; /* start of the tensor data section */
    uint64_t n_kv;
    g3_gguf_kv *kv;
    uint64_t n_tensors;
    g3_gguf_tensor *tensors;
    void *priv; /* lookup tables */
} g3_gguf;

/* Maps and parses a file. *out is NULL on failure. The message starts with
 * the file name. */
int g3_gguf_open(const char *path, g3_gguf **out, g3_error *err);

/* Parses a GGUF image already in memory (tests, fuzzing). The memory must
 * outlive the returned object. */
int g3_gguf_parse(const uint8_t *data, size_t size, g3_gguf **out, g3_error *err);

void g3_gguf_close(g3_gguf *g);

/* O(1) average lookups; NULL when absent. */
const g3_gguf_kv *g3_gguf_find_kv(const g3_gguf *g, const char *key);
const g3_gguf_tensor *g3_gguf_find_tensor(const g3_gguf *g, const char *name);

const char *g3_gguf_vtype_name(g3_gguf_vtype t);

/* Typed getters. A missing key gives `def` (return 0) unless `required`,
 * then an error "missing required key 'K'". A key of the wrong type gives
 * "key 'K' has type string, expected an integer". Integer getters accept any
 * integer type whose value fits; float getters accept FLOAT32/FLOAT64 and
 * integers. get_str returns a pointer into the map plus its length. */
int g3_gguf_get_u32(const g3_gguf *g, const char *key, bool required, uint32_t def,
                    uint32_t *out, g3_error *err);
int g3_gguf_get_u64(const g3_gguf *g, const char *key, bool required, uint64_t def,
                    uint64_t *out, g3_error *err);
int g3_gguf_get_f32(const g3_gguf *g, const char *key, bool required, float def,
                    float *out, g3_error *err);
int g3_gguf_get_bool(const g3_gguf *g, const char *key, bool required, bool def,
                     bool *out, g3_error *err);
int g3_gguf_get_str(const g3_gguf *g, const char *key, bool required, g3_str *out,
                    g3_error *err);
/* Finds an array and checks its element type (elem_type G3_GGUF_VTYPE_COUNT
 * accepts any). Absent and not required: *out = NULL, return 0. */
int g3_gguf_get_arr(const g3_gguf *g, const char *key, bool required,
                    g3_gguf_vtype elem_type, const g3_gguf_array **out, g3_error *err);

/* Element access for scalar arrays (bounds are the caller's: i < a->n). */
int64_t g3_gguf_array_i64(const g3_gguf_array *a, uint64_t i);   /* integer elem types */
double g3_gguf_array_f64(const g3_gguf_array *a, uint64_t i);    /* float or integer */

/* Compares a g3_str with a C string. */
bool g3_str_eq(g3_str s, const char *c);

#endif
