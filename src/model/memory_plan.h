/* memory_plan.h: the memory arithmetic shared by the planner, the KV
 * allocator and the context (the public plan API is include/gemma3_plan.h).
 *
 * Whoever allocates calls these functions for its sizes, so `gemma-chat
 * plan` reports what the process allocates: g3_kv_cache_init sizes each
 * layer with g3_plan_kv_tensor_bytes; g3_context_new sizes its scratch with
 * g3_plan_scratch_bytes. Sizes saturate at UINT64_MAX instead of wrapping
 * (callers that allocate check the result fits size_t). */
#ifndef G3_MODEL_MEMORY_PLAN_H
#define G3_MODEL_MEMORY_PLAN_H

#include <stdint.h>

#include "gemma3.h"
#include "gemma3_plan.h"

/* n_ctx and n_ubatch as g3_context_new resolves its parameters: n_ctx 0 =
 * the model's trained length; n_ubatch 0 = 512, clamped to n_ctx. The ring
 * slack of the local layers is this n_ubatch. */
void g3_plan_context_sizes(const g3_config *cfg, const g3_context_params *params,
                           uint32_t *n_ctx, uint32_t *n_ubatch);

/* Slots (positions) layer il keeps: n_ctx for a global layer (or without a
 * window), min(n_ctx, window + slack) for a local one. */
uint32_t g3_plan_kv_layer_slots(const g3_config *cfg, uint32_t il, uint32_t n_ctx, uint32_t slack);

/* Bytes of the keys (equally: the values) of one position in one layer:
 * n_head_kv * head_dim elements of kv_type. 0 when the row does not fit the
 * type's block (q8_0 needs a multiple of 32); g3_plan_kv_check says why. */
uint64_t g3_plan_kv_row_bytes(const g3_config *cfg, g3_kv_type kv_type);
int g3_plan_kv_check(const g3_config *cfg, g3_kv_type kv_type, g3_error *err);

/* Bytes of one layer's key buffer (its value buffer is the same size). */
uint64_t g3_plan_kv_tensor_bytes(const g3_config *cfg, uint32_t il, uint32_t n_ctx, uint32_t slack,
                                 g3_kv_type kv_type);

/* Keys + values of all layers: the sliding-window cache the allocator makes. */
uint64_t g3_plan_kv_bytes(const g3_config *cfg, uint32_t n_ctx, uint32_t slack, g3_kv_type kv_type);

/* Keys + values if every layer kept every position (full attention). */
uint64_t g3_plan_kv_full_bytes(const g3_config *cfg, uint32_t n_ctx, g3_kv_type kv_type);

/* The forward-pass scratch of one context, in floats per buffer. */
typedef struct g3_scratch_layout {
    uint64_t x;      /* n_ubatch x n_embd: residual stream */
    uint64_t q;      /* n_ubatch x n_head*head_dim */
    uint64_t att;    /* n_ubatch x n_head*head_dim: attention output */
    uint64_t xb;     /* n_embd */
    uint64_t gate;   /* n_ff */
    uint64_t up;     /* n_ff */
    uint64_t scores; /* n_ctx: one head's attention scores */
} g3_scratch_layout;

/* Bytes of the scratch g3_context_new allocates for (n_ctx, n_ubatch) as
 * resolved by g3_plan_context_sizes; n_threads is for per-thread buffers
 * (none yet). Fills *layout when not NULL. */
uint64_t g3_plan_scratch_bytes(const g3_config *cfg, uint32_t n_ctx, uint32_t n_ubatch,
                               uint32_t n_threads, g3_scratch_layout *layout);

#endif
