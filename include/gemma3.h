/* gemma3.h: the public C API of libgemma3, the engine behind gemma-chat.
 *
 * A g3_model is a Gemma 3 text model loaded from a GGUF file (memory-mapped:
 * the weights are used in place). A g3_context is one sequence's state: the
 * KV cache (all positions for global layers, a ring of window + batch slots
 * for sliding-window layers) and the scratch buffers of the forward pass.
 * Evaluate tokens with g3_eval; it appends them to the context and can return
 * the logits of every position.
 *
 * Every function that can fail returns 0 on success and -1 on failure, with a
 * message in the g3_error (what was wrong, and where). Nothing aborts.
 * Limits: one sequence per context; a context is not thread-safe.
 */
#ifndef GEMMA3_H
#define GEMMA3_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

#include "gemma3_error.h"

#ifdef __cplusplus
extern "C" {
#endif

#define G3_MAX_LAYERS 256

/* Hyperparameters, read from the gemma3.* keys. */
typedef struct g3_config {
    uint32_t n_layer;
    uint32_t n_embd;
    uint32_t n_ff;
    uint32_t n_head;
    uint32_t n_head_kv;
    uint32_t head_dim;      /* attention.key_length (== value_length) */
    uint32_t n_vocab;       /* rows of token_embd */
    uint32_t n_ctx_train;   /* context_length */
    uint32_t window;        /* attention.sliding_window; 0 = none */
    float rms_eps;
    float rope_base_global; /* rope.freq_base */
    float rope_base_local;  /* rope.freq_base_swa or 10000 */
    float rope_scale_global;/* linear scaling factor (1 = none); local layers use none */
    float attn_scale;       /* 1/sqrt(head_dim), 27B: 1/sqrt(n_embd/n_head) */
    float attn_softcap;     /* 0 = absent */
    float final_softcap;    /* 0 = absent */
    bool is_global[G3_MAX_LAYERS];
} g3_config;

typedef struct g3_model g3_model;
typedef struct g3_context g3_context;

int g3_model_load(const char *path, g3_model **out, g3_error *err);
void g3_model_free(g3_model *model);
const g3_config *g3_model_config(const g3_model *model);
/* Whether the file carries a chat template (tokenizer.chat_template), as
 * instruction-tuned checkpoints converted by llama.cpp do; a pretrained one
 * continues text rather than following chat turns. */
bool g3_model_is_instruction_tuned(const g3_model *model);
/* Architecture, hyperparameters, tensor types and sizes, global layers. */
void g3_model_print_info(const g3_model *model, FILE *out);

/* What the weights are and what one decoded token reads (for benchmarks). */
typedef struct g3_model_stats {
    uint64_t weight_bytes;    /* all tensors of the text model */
    uint64_t decode_bytes;    /* weights a decoded token reads: every matrix once
                               * (a tied output reads the whole embedding table),
                               * the norms and one embedding row */
    char main_type[16];       /* type holding most of the matrix bytes, "Q4_0" */
    bool mixed;               /* the matrices have more than one type */
} g3_model_stats;
void g3_model_get_stats(const g3_model *model, g3_model_stats *out);

/* The machine as the engine sees it. */
typedef struct g3_system_info {
    char cpu[64];             /* CPUID brand string */
    char kernels[16];         /* kernel path of new contexts: "avx512", "avx2" or
                               * "scalar" (the environment variable G3_CPU forces one) */
    uint32_t physical_cores;  /* among the CPUs this process may run on */
    uint32_t usable_cpus;     /* CPUs this process may run on */
} g3_system_info;
/* Fails when G3_CPU names an unknown path or one this CPU lacks. */
int g3_system_info_get(g3_system_info *out, g3_error *err);

/* KV cache element types (values are ggml type ids). f32 is exact; f16 and
 * bf16 halve the cache; q8_0 (34 bytes per 32 values, per-block scale)
 * nearly halves it again. Attention reads every type directly. */
typedef enum g3_kv_type {
    G3_KV_F32 = 0,
    G3_KV_F16 = 1,
    G3_KV_Q8_0 = 8,
    G3_KV_BF16 = 30,
} g3_kv_type;

const char *g3_kv_type_name(g3_kv_type type); /* "bf16"; NULL if unknown */
int g3_kv_type_from_name(const char *name);   /* case-insensitive; -1 if unknown */

/* Where a context runs the text model. AUTO: the CUDA backend when this
 * binary has it and the driver lists a GPU, else the CPU; the environment
 * variable G3_DEVICE=cpu|cuda pins AUTO for the process. */
typedef enum g3_device {
    G3_DEVICE_AUTO = 0,
    G3_DEVICE_CPU = 1,
    G3_DEVICE_CUDA = 2,
} g3_device;
const char *g3_device_name(g3_device d);   /* "auto", "cpu", "cuda" */
int g3_device_from_name(const char *name); /* -1 if unknown */
/* AUTO resolved for this machine; why (may be NULL) says why CUDA was not
 * chosen when AUTO falls back to the CPU, or why CUDA is unavailable. */
g3_device g3_device_resolve(g3_device d, char *why, size_t why_cap);
/* The GPU the CUDA backend uses: its name and memory (in use by every
 * process, the CUDA context included). The backend allocates everything
 * when a model's first context is made, so after a run this is its peak.
 * Fails without a GPU or without the backend in the build. */
typedef struct g3_gpu_info {
    char name[96];
    uint64_t total_bytes, used_bytes;
} g3_gpu_info;
int g3_gpu_info_get(g3_gpu_info *out, g3_error *err);

typedef struct g3_context_params {
    uint32_t n_ctx;     /* positions the context can hold; 0 = the model's */
    uint32_t n_ubatch;  /* tokens per forward pass chunk; 0 = 512 */
    uint32_t n_threads; /* worker threads; 0 = physical cores */
    g3_kv_type kv_type; /* 0 = f32 */
    bool skip_memory_check; /* allocate even above the memory available (--force) */
    uint32_t n_seq;     /* sequences, each with its own KV cache of n_ctx positions; 0 = 1 */
    /* Exact activations: every matrix product takes its f32 input as it is
     * (each quantized weight dequantized exactly, f32 FMA sums), as the
     * scalar reference does, instead of rounding the input of quantized
     * weights to 15-bit integers (about 1e-3 of logit error on the AVX2 and
     * AVX-512 paths, up to ~1e-2 where logits are near 100). Cost, 270M
     * prefill of 1763 tokens: AVX-512 (VNNI) ~1.7x the CPU time of the 15-bit
     * path, AVX2 ~0.5x (its 15-bit integer products are the slower ones);
     * decode ~1.3x. No effect on the scalar path, which is always exact. */
    bool exact_activations;
    /* The input of quantized weights is rounded to 8 bits (q1 of the
     * 15-bit form: llama.cpp's Q8_0 activations) instead of 15, in decode
     * and prefill: one integer dot product per weight block instead of two.
     * KL divergence from exact activations and agreement, measured on the
     * real 270M, in bench/RESULTS.md. The AVX2 and AVX-512 paths have the
     * 8-bit kernels (the scalar path is always exact); ignored with
     * exact_activations. */
    bool int8_activations;
    /* CPU or the CUDA backend (src/cuda/g3_cuda.h: the text model on the
     * GPU, the KV cache in device memory, any of the four types). With
     * CUDA, n_threads is unused, the memory check is against the GPU's
     * free memory, and exact_activations makes prefill products f32 FMAs
     * instead of TF32 tensor-core products. */
    g3_device device;
} g3_context_params;

/* Fails (before allocating) when the KV cache and scratch would not fit in
 * the memory available (unless skip_memory_check), when n_threads exceeds the CPUs this process may
 * run on, or when G3_CPU names a kernel path the CPU lacks. */
int g3_context_new(const g3_model *model, const g3_context_params *params, g3_context **out,
                   g3_error *err);
/* Bytes g3_context_new would allocate for these parameters: the KV cache,
 * and the scratch (activations, per-thread buffers of the matrix products). */
int g3_context_memory(const g3_model *model, const g3_context_params *params, uint64_t *kv_bytes,
                      uint64_t *scratch_bytes, g3_error *err);
void g3_context_free(g3_context *ctx);
g3_device g3_context_device(const g3_context *ctx); /* CPU or CUDA, never AUTO */
/* GPU memory a CUDA context of these parameters takes: the weights' device
 * copy (made once per model), the KV caches and the scratch; what
 * g3_context_new allocates there. Needs no GPU; fails when this binary lacks
 * the CUDA backend or the KV type is not one it has. */
int g3_gpu_context_memory(const g3_model *model, const g3_context_params *params, uint64_t *weights_bytes,
                          uint64_t *kv_bytes, uint64_t *scratch_bytes, g3_error *err);
uint32_t g3_context_n_ctx(const g3_context *ctx);
uint32_t g3_context_n_seq(const g3_context *ctx);
uint32_t g3_context_n_ubatch(const g3_context *ctx); /* the most rows one forward pass takes */
/* Positions held by sequence 0 (by sequence seq; 0 for one that does not exist). */
uint32_t g3_context_n_past(const g3_context *ctx);
uint32_t g3_context_n_past_seq(const g3_context *ctx, uint32_t seq);
/* Forgets everything after the first n_keep positions (of sequence 0, of
 * sequence seq). A rollback that reaches past the sliding-window slack
 * fails (the caller re-evaluates); n_keep = 0 always succeeds. */
int g3_context_truncate(g3_context *ctx, uint32_t n_keep, g3_error *err);
int g3_context_truncate_seq(g3_context *ctx, uint32_t seq, uint32_t n_keep, g3_error *err);

/* Appends n tokens. logits: NULL for none; with all_logits, room for
 * n x n_vocab floats (row i = distribution of the token after tokens[i]);
 * without, room for n_vocab floats (the last position's row). Bad ids, an
 * empty sequence or one that does not fit leave the context untouched. */
int g3_eval(g3_context *ctx, const int32_t *tokens, uint32_t n, float *logits, bool all_logits,
            g3_error *err);

/* Appends n positions given as input embeddings (n x n_embd, not scaled by
 * sqrt(n_embd): image soft tokens). With `bidirectional`, the n positions
 * attend to each other in both directions (one image). logits as g3_eval. */
int g3_eval_embeddings(g3_context *ctx, const float *embd, uint32_t n, bool bidirectional,
                       float *logits, bool all_logits, g3_error *err);

/* The same for sequence seq of a context made with n_seq sequences
 * (g3_eval and g3_eval_embeddings act on sequence 0). */
int g3_eval_seq(g3_context *ctx, uint32_t seq, const int32_t *tokens, uint32_t n, float *logits, bool all_logits,
                g3_error *err);
int g3_eval_embeddings_seq(g3_context *ctx, uint32_t seq, const float *embd, uint32_t n, bool bidirectional,
                           float *logits, bool all_logits, g3_error *err);

/* One decoding step of n distinct sequences as one forward pass (every
 * weight read once for all of them): tokens[i] is appended to sequence
 * seqs[i], and row i of logits (n x n_vocab, or NULL) is the distribution
 * after it. n is at most g3_context_n_ubatch. The result equals n separate
 * g3_eval_seq calls up to the rounding of a batched product. A bad id,
 * sequence, duplicate or a full sequence leaves every sequence untouched. */
int g3_decode_batch(g3_context *ctx, const uint32_t *seqs, const int32_t *tokens, uint32_t n, float *logits,
                    g3_error *err);

/* Reads a whole small file (a prompt, a document, a saved conversation) into
 * a malloc'd, NUL-terminated buffer (*len excludes the NUL; the bytes may
 * contain NULs). Fails, naming the path, when it cannot be read, is not a
 * regular file, or is larger than max_bytes. Model files are mapped instead. */
int g3_read_file(const char *path, size_t max_bytes, char **data, size_t *len, g3_error *err);

/* Random-weight model of a real Gemma 3 shape, in the real GGUF layout. */
typedef struct g3_test_model_params {
    const char *shape;      /* "tiny", "1b", "4b", "12b", "27b" */
    const char *type;       /* weight type for matrices: f32 f16 bf16 q8_0 q4_0 q5_0 q4_k q5_k q6_k */
    uint64_t seed;
    const char *vocab_path; /* NULL: a small built-in tokenizer; else copy tokenizer.* from it */
    const char *out_path;
    bool progress;          /* progress on stderr */
} g3_test_model_params;

int g3_make_test_model(const g3_test_model_params *params, g3_error *err);
/* The vision projector (mmproj, llama.cpp's clip layout) of a shape with
 * vision: tiny (the golden mmproj's shape), 4b, 12b, 27b (SigLIP 896 px,
 * 27 blocks, projecting to the shape's n_embd). vocab_path is unused. */
int g3_make_test_mmproj(const g3_test_model_params *params, g3_error *err);

#ifdef __cplusplus
}
#endif

#endif
