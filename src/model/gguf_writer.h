/* gguf_writer.h: streaming GGUF (version 3) writer.
 *
 * Metadata and tensor infos are collected in memory (they are small); the
 * header is written by g3_gguf_writer_begin_data, after which tensor bytes are
 * streamed in declaration order in pieces of any size. Padding to the
 * alignment is inserted automatically when a tensor's bytes are complete, so a
 * model larger than RAM can be written piece by piece.
 *
 * Usage:
 *   w = g3_gguf_writer_open(path, &err);
 *   g3_gguf_writer_kv_str(w, "general.architecture", "gemma3", &err); ...
 *   g3_gguf_writer_tensor(w, "token_embd.weight", G3_TYPE_Q4_0, 2, ne, &err); ...
 *   g3_gguf_writer_begin_data(w, &err);
 *   g3_gguf_writer_data(w, bytes, n, &err); ...   (all tensors, in order)
 *   g3_gguf_writer_close(w, &err);   (fails if bytes are missing)
 * On any failure call g3_gguf_writer_abort(w), which removes the partial file.
 * The exception is close: it frees w whether it succeeds or not (a failed
 * close deletes the partial file itself), so never abort after close.
 */
#ifndef G3_MODEL_GGUF_WRITER_H
#define G3_MODEL_GGUF_WRITER_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "base/error.h"
#include "model/gguf.h"

typedef struct g3_gguf_writer g3_gguf_writer;

/* The file is written to PATH.tmp and renamed over PATH by close, so a
 * failed or interrupted write never leaves a half file under the real name. */
g3_gguf_writer *g3_gguf_writer_open(const char *path, g3_error *err);

/* Alignment for the data section (default 32; written as general.alignment
 * when not 32). Must be called before begin_data; power of two. */
int g3_gguf_writer_set_alignment(g3_gguf_writer *w, uint32_t alignment, g3_error *err);

int g3_gguf_writer_kv_u32(g3_gguf_writer *w, const char *key, uint32_t v, g3_error *err);
int g3_gguf_writer_kv_i32(g3_gguf_writer *w, const char *key, int32_t v, g3_error *err);
int g3_gguf_writer_kv_u64(g3_gguf_writer *w, const char *key, uint64_t v, g3_error *err);
int g3_gguf_writer_kv_f32(g3_gguf_writer *w, const char *key, float v, g3_error *err);
int g3_gguf_writer_kv_bool(g3_gguf_writer *w, const char *key, bool v, g3_error *err);
int g3_gguf_writer_kv_str(g3_gguf_writer *w, const char *key, const char *v, g3_error *err);
/* Array of scalars: `data` holds n packed elements of elem_type (host order,
 * little-endian machine). */
int g3_gguf_writer_kv_arr(g3_gguf_writer *w, const char *key, g3_gguf_vtype elem_type,
                          const void *data, uint64_t n, g3_error *err);
int g3_gguf_writer_kv_arr_str(g3_gguf_writer *w, const char *key, const char *const *strs,
                              uint64_t n, g3_error *err);
/* Copies any value read by the reader (including nested arrays), e.g. the
 * tokenizer.* keys of another model. */
int g3_gguf_writer_kv_copy(g3_gguf_writer *w, const char *key, const g3_gguf_value *v,
                           g3_error *err);

/* Declares a tensor (ne in ggml order, ne[0] = row length). */
int g3_gguf_writer_tensor(g3_gguf_writer *w, const char *name, uint32_t type, uint32_t n_dims,
                          const uint64_t *ne, g3_error *err);

int g3_gguf_writer_begin_data(g3_gguf_writer *w, g3_error *err);
int g3_gguf_writer_data(g3_gguf_writer *w, const void *bytes, size_t n, g3_error *err);

/* Checks every declared byte was written, flushes, fsyncs, renames. Frees w. */
int g3_gguf_writer_close(g3_gguf_writer *w, g3_error *err);
/* Frees w and deletes the partial file. NULL is fine. */
void g3_gguf_writer_abort(g3_gguf_writer *w);

#endif
