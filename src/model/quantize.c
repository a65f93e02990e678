/* quantize.c: per-tensor type rules and the streaming quantizer.
 *
 * The quantizer maps the input (GGUF reader), declares every output tensor
 * with its chosen type, then converts and writes one row at a time through
 * the streaming GGUF writer: memory use is a couple of rows, whatever the
 * model size. Pages of the input already converted are dropped from the
 * process (madvise) so a 54 GB bf16 source does not crowd out the machine.
 * The writer writes OUT.tmp and renames it when complete, so a failure (a
 * bad input, a full disk) leaves nothing under OUT. */
#include "model/quantize.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "base/checked_math.h"
#include "base/error.h"
#include "model/gguf.h"
#include "model/gguf_writer.h"
#include "tensor/type_info.h"
#include "tensor/type_ops.h"

#define QUANT_VERSION 2 /* general.quantization_version: ggml's GGML_QNT_VERSION */

/* ---- formats ------------------------------------------------------------- */

static const struct { g3_ftype ftype; const char *name; uint32_t type; } k_formats[] = {
    {G3_FTYPE_F32, "f32", G3_TYPE_F32},       {G3_FTYPE_F16, "f16", G3_TYPE_F16},
    {G3_FTYPE_BF16, "bf16", G3_TYPE_BF16},    {G3_FTYPE_Q8_0, "q8_0", G3_TYPE_Q8_0},
    {G3_FTYPE_Q4_0, "q4_0", G3_TYPE_Q4_0},    {G3_FTYPE_Q4_K_M, "q4_k_m", G3_TYPE_Q4_K},
};
#define N_FORMATS (sizeof k_formats / sizeof k_formats[0])

const char *g3_ftype_name(g3_ftype ftype) {
    for (size_t i = 0; i < N_FORMATS; i++)
        if (k_formats[i].ftype == ftype) return k_formats[i].name;
    return NULL;
}

int g3_ftype_from_name(const char *name) {
    for (size_t i = 0; name && i < N_FORMATS; i++)
        if (strcasecmp(name, k_formats[i].name) == 0) return (int)k_formats[i].ftype;
    return -1;
}

uint32_t g3_ftype_default_type(g3_ftype ftype) {
    for (size_t i = 0; i < N_FORMATS; i++)
        if (k_formats[i].ftype == ftype) return k_formats[i].type;
    return G3_TYPE_COUNT;
}

/* ---- type rules ---------------------------------------------------------- */

static bool ends_with(const char *s, const char *suffix) {
    size_t n = strlen(s), m = strlen(suffix);
    return n >= m && strcmp(s + n - m, suffix) == 0;
}

/* llama-quantize's tensor_allows_quantization, for the tensors Gemma 3 and
 * its mmproj have: matrices only, never norms or position/patch embeddings. */
static bool allows_quantization(const char *name, uint32_t n_dims) {
    return n_dims >= 2 && ends_with(name, "weight") && !strstr(name, "_norm.weight") &&
           !strstr(name, ".position_embd") && !strstr(name, ".patch_embd");
}

/* The layers whose attn_v / ffn_down get Q6_K in Q4_K_M: the first and last
 * eighth, and every third layer in between (llama.cpp's use_more_bits). */
static bool use_more_bits(int il, int n) {
    return il < n / 8 || il >= 7 * n / 8 || (il - n / 8) % 3 == 2;
}

static uint32_t block_of(uint32_t type) { return g3_type_info_get(type)->block_size; }

/* llama-quantize's mix for a gemma3 model (the cases our formats reach). */
static uint32_t mix_type(const g3_quant_rules *r, const char *name, uint64_t ncols, uint32_t type) {
    bool output = strcmp(name, "output.weight") == 0 ||
                  (r->tied_output && strcmp(name, "token_embd.weight") == 0);
    if (output) {
        if (ncols % block_of(type) != 0) return G3_TYPE_Q8_0;
        return type == G3_TYPE_Q8_0 ? G3_TYPE_Q8_0 : G3_TYPE_Q6_K;
    }
    int il;
    if (r->ftype == G3_FTYPE_Q4_K_M && sscanf(name, "blk.%d.", &il) == 1 && il >= 0) {
        if (strstr(name, "attn_v.weight") && use_more_bits(il, (int)r->n_attn_v)) return G3_TYPE_Q6_K;
        if (strstr(name, "ffn_down") && use_more_bits(il, (int)r->n_layer)) return G3_TYPE_Q6_K;
    }
    return type;
}

/* A row must hold whole blocks: fall back to a type with smaller blocks. */
static uint32_t fallback(uint32_t type, uint64_t ncols) {
    if (ncols % block_of(type) == 0) return type;
    uint32_t alt = type == G3_TYPE_Q4_K ? G3_TYPE_Q5_0 : type == G3_TYPE_Q6_K ? G3_TYPE_Q8_0 : G3_TYPE_F16;
    return ncols % block_of(alt) == 0 ? alt : G3_TYPE_F16;
}

uint32_t g3_quant_tensor_type(const g3_quant_rules *r, const char *name, uint32_t n_dims,
                              const uint64_t *ne, uint32_t src_type) {
    uint32_t type = g3_ftype_default_type(r->ftype);
    if (type == G3_TYPE_COUNT || !allows_quantization(name, n_dims)) return src_type;
    if (block_of(type) == 1) return type; /* F32/F16/BF16: a plain conversion */
    if (r->mixes) type = mix_type(r, name, ne[0], type);
    return fallback(type, ne[0]);
}

/* ---- the quantizer ------------------------------------------------------- */

typedef struct job {
    const g3_quantize_params *p;
    g3_gguf *in;
    g3_gguf_writer *w;
    uint32_t *types;  /* output type per tensor */
    char **names;     /* NUL-terminated tensor names */
    uint64_t total, done;
    double last_draw; /* seconds, for drawing the bar a few times a second */
    bool drawn;       /* the bar is on the terminal line */
    float *row;       /* one row in f32 */
    uint8_t *qrow;    /* one converted row */
} job;

static char *dup_str(g3_str s) {
    char *c = malloc(s.len + 1);
    if (!c) return NULL;
    memcpy(c, s.ptr, s.len);
    c[s.len] = 0;
    return c;
}

static int same_file(const char *a, const char *b) {
    struct stat sa, sb;
    if (strcmp(a, b) == 0) return 1;
    if (stat(a, &sa) != 0 || stat(b, &sb) != 0) return 0;
    return sa.st_dev == sb.st_dev && sa.st_ino == sb.st_ino;
}

static double now_seconds(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + ts.tv_nsec * 1e-9;
}

static void progress(job *j, size_t i) {
    if (!j->p->progress) return;
    bool last = i >= j->in->n_tensors;
    double t = now_seconds();
    if (!last && t - j->last_draw < 0.2) return;
    j->last_draw = t;
    j->drawn = true;
    const int width = 30;
    double frac = j->total ? (double)j->done / (double)j->total : 1.0;
    int fill = (int)(frac * width + 0.5);
    char bar[64];
    for (int k = 0; k < width; k++) bar[k] = k < fill ? '=' : ' ';
    bar[width] = 0;
    fprintf(stderr, "\rquantizing [%s] %5.1f%% %4zu/%-4llu %-32.32s", bar, 100.0 * frac, i,
            (unsigned long long)j->in->n_tensors, i < j->in->n_tensors ? j->names[i] : "done");
    fflush(stderr);
}

/* Rules from the input: a gemma3 model gets llama-quantize's mix; a clip
 * mmproj one type for every matrix that fits it. */
static int make_rules(const job *j, g3_quant_rules *r, g3_error *err) {
    g3_str arch;
    if (g3_gguf_get_str(j->in, "general.architecture", true, &arch, err)) return -1;
    memset(r, 0, sizeof *r);
    r->ftype = j->p->ftype;
    if (g3_str_eq(arch, "clip")) return 0;
    if (!g3_str_eq(arch, "gemma3"))
        return g3_fail(err, "architecture '%.*s' is not supported (gemma3 models and their clip mmproj)",
                       (int)(arch.len > 64 ? 64 : arch.len), arch.ptr);
    r->mixes = true;
    r->tied_output = true;
    if (g3_gguf_get_u32(j->in, "gemma3.block_count", true, 0, &r->n_layer, err)) return -1;
    for (uint64_t i = 0; i < j->in->n_tensors; i++) {
        if (strcmp(j->names[i], "output.weight") == 0) r->tied_output = false;
        if (strstr(j->names[i], "attn_v.weight")) r->n_attn_v++;
    }
    return 0;
}

/* Names, the refusal of quantized inputs, and the output types. */
static int choose_types(job *j, g3_error *err) {
    const g3_gguf *g = j->in;
    j->names = calloc(g->n_tensors ? g->n_tensors : 1, sizeof *j->names);
    j->types = calloc(g->n_tensors ? g->n_tensors : 1, sizeof *j->types);
    if (!j->names || !j->types) return g3_fail(err, "out of memory");
    for (uint64_t i = 0; i < g->n_tensors; i++) {
        const g3_gguf_tensor *t = &g->tensors[i];
        if (!(j->names[i] = dup_str(t->name))) return g3_fail(err, "out of memory");
        if (t->n_elements == 0) return g3_fail(err, "tensor '%s' is empty", j->names[i]);
        if (t->type != G3_TYPE_F32 && t->type != G3_TYPE_F16 && t->type != G3_TYPE_BF16) {
            char buf[32];
            return g3_fail(err,
                           "the input is already quantized (tensor '%s' is %s): quantize from the "
                           "F32, F16 or BF16 file",
                           j->names[i], g3_type_name(t->type, buf));
        }
    }
    g3_quant_rules rules;
    if (make_rules(j, &rules, err)) return -1;
    j->total = 0;
    for (uint64_t i = 0; i < g->n_tensors; i++) {
        const g3_gguf_tensor *t = &g->tensors[i];
        j->types[i] = g3_quant_tensor_type(&rules, j->names[i], t->n_dims, t->ne, t->type);
        uint64_t row, bytes;
        if (g3_type_row_bytes(j->types[i], t->ne[0], &row, err) ||
            g3_mul_overflow_u64(row, t->n_elements / t->ne[0], &bytes) ||
            g3_add_overflow_u64(j->total, bytes, &j->total))
            return g3_error_prefix(err, "tensor '%s': ", j->names[i]);
    }
    return 0;
}

/* Every key of the input, general.file_type replaced (with the
 * quantization version beside it, as llama-quantize writes). */
static int copy_metadata(job *j, g3_error *err) {
    const g3_gguf *g = j->in;
    bool written = false;
    for (uint64_t i = 0; i < g->n_kv; i++) {
        const g3_gguf_kv *kv = &g->kv[i];
        if (g3_str_eq(kv->key, "general.quantization_version")) continue;
        char *key = dup_str(kv->key);
        if (!key) return g3_fail(err, "out of memory");
        int rc;
        if (strcmp(key, "general.file_type") == 0) {
            rc = g3_gguf_writer_kv_u32(j->w, "general.quantization_version", QUANT_VERSION, err) ||
                 g3_gguf_writer_kv_u32(j->w, "general.file_type", (uint32_t)j->p->ftype, err);
            written = true;
        } else {
            rc = g3_gguf_writer_kv_copy(j->w, key, &kv->value, err);
        }
        free(key);
        if (rc) return -1;
    }
    if (!written && (g3_gguf_writer_kv_u32(j->w, "general.quantization_version", QUANT_VERSION, err) ||
                     g3_gguf_writer_kv_u32(j->w, "general.file_type", (uint32_t)j->p->ftype, err)))
        return -1;
    return 0;
}

/* Lets the kernel drop the input pages of a finished tensor. */
static void drop_pages(const g3_gguf *g, const g3_gguf_tensor *t) {
    if (g->file.data) g3_drop_pages(t->data, t->n_bytes);
}

static int write_tensor(job *j, size_t i, g3_error *err) {
    const g3_gguf_tensor *t = &j->in->tensors[i];
    const uint32_t dst = j->types[i];
    const uint64_t n_rows = t->n_elements / t->ne[0];
    uint64_t src_row, dst_row;
    if (g3_type_row_bytes(t->type, t->ne[0], &src_row, err) ||
        g3_type_row_bytes(dst, t->ne[0], &dst_row, err))
        return -1;
    const g3_type_ops *from = g3_type_ops_get(t->type), *to = g3_type_ops_get(dst);
    const uint8_t *src = t->data;
    for (uint64_t r = 0; r < n_rows; r++, src += src_row) {
        const void *out = src;
        if (dst != t->type) {
            from->to_float(src, j->row, (int64_t)t->ne[0]);
            to->from_float(j->row, j->qrow, (int64_t)t->ne[0]);
            out = j->qrow;
        }
        if (g3_gguf_writer_data(j->w, out, (size_t)dst_row, err))
            return g3_error_prefix(err, "writing tensor '%s': ", j->names[i]);
        j->done += dst_row;
        if ((r & 1023) == 1023) progress(j, i);
    }
    drop_pages(j->in, t);
    return 0;
}

/* Row buffers for the widest row. */
static int alloc_rows(job *j, g3_error *err) {
    uint64_t widest = 1;
    for (uint64_t i = 0; i < j->in->n_tensors; i++)
        if (j->in->tensors[i].ne[0] > widest) widest = j->in->tensors[i].ne[0];
    if (widest > SIZE_MAX / sizeof(float)) return g3_fail(err, "a row of %llu elements is too long",
                                                          (unsigned long long)widest);
    j->row = malloc((size_t)widest * sizeof(float));
    j->qrow = malloc((size_t)widest * sizeof(float)); /* every target type is <= 4 bytes per element */
    return j->row && j->qrow ? 0 : g3_fail(err, "out of memory for a row of %llu elements",
                                           (unsigned long long)widest);
}

static int run(job *j, g3_error *err) {
    const g3_gguf *g = j->in;
    if (choose_types(j, err) || alloc_rows(j, err)) return -1;
    if (!(j->w = g3_gguf_writer_open(j->p->out_path, err))) return -1;
    if (copy_metadata(j, err)) return -1;
    for (uint64_t i = 0; i < g->n_tensors; i++)
        if (g3_gguf_writer_tensor(j->w, j->names[i], j->types[i], g->tensors[i].n_dims,
                                  g->tensors[i].ne, err))
            return -1;
    if (g3_gguf_writer_begin_data(j->w, err)) return -1;
    for (uint64_t i = 0; i < g->n_tensors; i++) {
        progress(j, (size_t)i);
        if (write_tensor(j, (size_t)i, err)) return -1;
    }
    progress(j, (size_t)g->n_tensors);
    if (j->p->progress) fputc('\n', stderr);
    g3_gguf_writer *w = j->w;
    j->w = NULL; /* close frees it, failed or not */
    return g3_gguf_writer_close(w, err);
}

int g3_quantize(const g3_quantize_params *p, g3_error *err) {
    if (!p || !p->in_path || !p->out_path) return g3_fail(err, "quantize needs an input and an output path");
    if (p->ftype != G3_FTYPE_Q8_0 && p->ftype != G3_FTYPE_Q4_0 && p->ftype != G3_FTYPE_Q4_K_M) {
        const char *name = g3_ftype_name(p->ftype);
        return g3_fail(err, "cannot quantize to %s%s: the types are Q8_0, Q4_0 and Q4_K_M",
                       name ? name : "file type ", name ? "" : "(unknown)");
    }
    if (same_file(p->in_path, p->out_path))
        return g3_fail(err, "input and output are the same file ('%s'): write to a new file", p->out_path);
    job j = {.p = p};
    if (g3_gguf_open(p->in_path, &j.in, err)) return -1;
    int rc = run(&j, err);
    if (rc) {
        if (j.drawn) fputc('\n', stderr);
        g3_error_prefix(err, "quantizing '%s': ", p->in_path);
    }
    g3_gguf_writer_abort(j.w); /* NULL after a close */
    for (uint64_t i = 0; j.names && i < j.in->n_tensors; i++) free(j.names[i]);
    free(j.names);
    free(j.types);
    free(j.row);
    free(j.qrow);
    g3_gguf_close(j.in);
    return rc;
}
