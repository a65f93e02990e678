/* gemma3_plan.h: how much memory a model needs, and the quantizer.
 *
 * Planner. A plan counts what the process maps and allocates for one model
 * and its contexts:
 *   weights  the tensor bytes of the GGUF file (memory-mapped, used in
 *            place), plus the vision encoder and projector (mmproj) if any;
 *   KV cache global layers keep every position; sliding-window (local)
 *            layers keep a ring of window + n_ubatch positions. The planner
 *            also gives the full-attention figure (every layer keeps every
 *            position), which is what most published tables count;
 *   scratch  the forward-pass buffers of a context, and with a vision
 *            encoder its buffers for one image (g3_vision_load allocates
 *            them once, from the same formula);
 *   total    weights + windowed KV + scratch.
 * The KV allocator and the context call the same functions (src/model/
 * memory_plan.h), so a plan is what g3_context_new really allocates; a test
 * checks the process's resident memory against it.
 *
 * Built-in plans cover the real Gemma 3 shapes (1b, 4b, 12b, 27b; the last
 * three with the SigLIP encoder and projector) in each weight format, with
 * the per-tensor types `gemma-chat quantize` (and llama-quantize) choose:
 * e.g. Q4_K_M keeps some tensors Q6_K, token_embd (the tied output) is Q6_K
 * in Q4_0 files, and rows that do not fit a type's block fall back.
 * Built-in plans assume the source is the bf16 release: tensors that are not
 * quantized (1-D norms and biases F32, patch and position embeddings BF16)
 * keep their type.
 *
 * Quantizer. g3_quantize converts an F32/F16/BF16 GGUF (a gemma3 model or
 * its clip mmproj) to Q8_0, Q4_0 or Q4_K_M, streaming: the input is mapped,
 * each row is converted and written at once, so no model is held in memory.
 * All metadata is kept (tokenizer included); general.file_type is updated.
 *
 * Limits: --parallel N plans one context holding N sequences (N KV
 * caches, one scratch, one vision encoder: g3_context_params.n_seq); every
 * KV type is allocated as planned (g3_context_params.kv_type).
 */
#ifndef GEMMA3_PLAN_H
#define GEMMA3_PLAN_H

#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>

#include "gemma3.h"

#ifdef __cplusplus
extern "C" {
#endif

/* Weight formats, with llama.cpp's general.file_type values. */
typedef enum g3_ftype {
    G3_FTYPE_F32 = 0,
    G3_FTYPE_F16 = 1,
    G3_FTYPE_Q4_0 = 2,
    G3_FTYPE_Q8_0 = 7,
    G3_FTYPE_Q4_K_M = 15,
    G3_FTYPE_BF16 = 32,
} g3_ftype;

/* "q4_k_m"; NULL for a value not listed above. */
const char *g3_ftype_name(g3_ftype ftype);
/* Case-insensitive ("Q4_K_M", "q8_0", "bf16"); -1 if unknown. */
int g3_ftype_from_name(const char *name);

#define G3_PLAN_DEFAULT_CTX 32768u
#define G3_PLAN_DEFAULT_UBATCH 512u /* = g3_context_params.n_ubatch default */
#define G3_PLAN_MAX_CTX 16777216u   /* g3_context_new refuses more */
#define G3_PLAN_N_TYPES 40          /* ggml type ids counted in g3_plan.type_bytes */

typedef struct g3_plan_params {
    uint32_t n_ctx;      /* positions per sequence; 0 = 32768 (g3_plan_model: the model's
                          * trained length, as g3_context_new reads 0) */
    uint32_t n_ubatch;   /* tokens per forward chunk = the ring slack; 0 = 512 */
    uint32_t n_parallel; /* sequences, each with its own KV cache, sharing one scratch; 0 = 1 */
    g3_kv_type kv_type;  /* 0 = f32 (as g3_context_params) */
} g3_plan_params;

typedef struct g3_plan {
    char model[64];  /* "27b", or the file's name */
    char format[16]; /* "q4_0" (from general.file_type for files; "unknown" without one) */
    g3_kv_type kv_type;
    uint32_t n_ctx, n_ubatch, n_parallel;

    uint64_t text_weights_bytes;   /* tensors of the text model */
    uint64_t vision_weights_bytes; /* tensors of the vision encoder + projector */
    uint64_t weights_bytes;        /* text + vision */
    uint64_t kv_full_bytes;        /* every layer keeps n_ctx positions (x n_parallel) */
    uint64_t kv_window_bytes;      /* what the contexts allocate (x n_parallel) */
    uint64_t scratch_bytes;        /* forward-pass buffers (one, shared by the sequences) + vision_scratch_bytes */
    uint64_t vision_scratch_bytes; /* the encoder's buffers for one image and its f32 projection copy */
    uint64_t total_bytes;          /* weights + kv_window + scratch */
    uint64_t header_bytes;         /* file plans: GGUF metadata, mapped too (not in total) */

    /* the arithmetic, for --verbose */
    uint32_t n_layer, n_global, n_local, window, n_head, n_head_kv, head_dim;
    uint32_t n_embd, n_ff, n_vocab, n_ctx_train;
    uint32_t local_slots;       /* min(n_ctx, window + n_ubatch) */
    uint64_t kv_position_bytes; /* keys + values of one position in one layer */
    uint64_t type_bytes[G3_PLAN_N_TYPES]; /* weight bytes per ggml type id */
    uint32_t type_count[G3_PLAN_N_TYPES]; /* tensors per ggml type id */
    uint64_t scratch_floats[7];           /* x, q, att, xb, gate, up, scores */
    char warning[192];                    /* e.g. context above the trained length; "" if none */
} g3_plan;

/* A built-in shape ("1b", "4b", "12b", "27b"; also "tiny") in a format
 * (G3_FTYPE_BF16, _Q4_0, _Q8_0, _Q4_K_M, _F16, _F32). */
int g3_plan_builtin(const char *model, g3_ftype format, const g3_plan_params *params, g3_plan *out,
                    g3_error *err);

/* A real file: exact tensor bytes; mmproj_path may be NULL. */
int g3_plan_file(const char *path, const char *mmproj_path, const g3_plan_params *params,
                 g3_plan *out, g3_error *err);

/* A loaded model (no mmproj): what g3_context_new will add, before creating it. */
int g3_plan_model(const g3_model *model, const g3_plan_params *params, g3_plan *out, g3_error *err);

/* Prints the arithmetic behind a plan (layers, window, heads, per-type bytes). */
void g3_plan_print_arithmetic(const g3_plan *plan, FILE *out);

/* Memory the process can have: MemAvailable from /proc/meminfo, capped by
 * the cgroup's memory.max (containers) and by G3_MEM_LIMIT=BYTES (K/M/G
 * suffixes allowed) when set. The context allocator checks the same. */
int g3_plan_mem_available(uint64_t *bytes, g3_error *err);

/* 0 when total_bytes fits in `available` bytes; else -1 with a message that
 * gives the numbers (for apps: say so before loading, refuse unless --force). */
int g3_plan_check_fit(const g3_plan *plan, uint64_t available, g3_error *err);

/* The longest context (at most `limit` positions) whose plan for this file
 * (and mmproj, KV type, n_ubatch, n_parallel of params) fits in `available`
 * bytes; 0 when not even a 16-position context does. */
int g3_plan_file_max_ctx(const char *path, const char *mmproj_path, const g3_plan_params *params,
                         uint64_t available, uint32_t limit, uint32_t *n_ctx, g3_error *err);

/* ---- quantizer ----------------------------------------------------------- */

typedef struct g3_quantize_params {
    const char *in_path;  /* F32/F16/BF16 GGUF: gemma3 model or clip mmproj */
    const char *out_path; /* written as OUT.tmp, renamed when complete */
    g3_ftype ftype;       /* G3_FTYPE_Q8_0, G3_FTYPE_Q4_0 or G3_FTYPE_Q4_K_M */
    bool progress;        /* progress bar on stderr */
} g3_quantize_params;

/* On failure nothing is left under out_path (nor OUT.tmp). */
int g3_quantize(const g3_quantize_params *params, g3_error *err);

#ifdef __cplusplus
}
#endif

#endif
