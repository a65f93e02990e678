/* kv_cache.h: keys and values of one sequence, per layer.
 *
 * Global layers keep every position (n_ctx slots). Sliding-window layers keep
 * a ring of window + slack slots, slot = pos % slots. The slack is at least
 * the largest batch: a batch writes all its keys before it attends, and its
 * first query still needs the window before it, so the ring must hold
 * window - 1 + batch positions (llama.cpp sizes its SWA cache the same way).
 * Extra slack lets a conversation roll back that many positions without
 * re-evaluating.
 *
 * Sizes come from the memory planner (model/memory_plan.h): each layer's
 * buffers are g3_plan_kv_tensor_bytes for G3_KV_CACHE_TYPE, so `gemma-chat
 * plan` reports what this allocates. Storage is f32 today. */
#ifndef G3_MODEL_KV_CACHE_H
#define G3_MODEL_KV_CACHE_H

#include <stdint.h>

#include "gemma3.h"
#include "gemma3_plan.h"

/* The element type the cache stores (what plans of a context count by default). */
#define G3_KV_CACHE_TYPE G3_KV_F32

typedef struct g3_kv_cache {
    uint32_t n_layer;
    uint32_t kv_dim;   /* n_head_kv * head_dim */
    uint32_t n_ctx;
    uint32_t *n_slots; /* per layer: n_ctx (global) or min(n_ctx, window + slack) */
    float **k;         /* per layer: n_slots x kv_dim */
    float **v;
    uint64_t bytes;    /* keys + values allocated = g3_plan_kv_bytes(cfg, n_ctx, slack, G3_KV_CACHE_TYPE) */
    uint32_t n_past;   /* positions written: 0 .. n_past-1 */
    uint32_t n_valid_from; /* oldest position still recoverable after a truncate */
} g3_kv_cache;

/* Slots a layer needs (= g3_plan_kv_layer_slots). */
uint32_t g3_kv_layer_slots(const g3_config *cfg, uint32_t il, uint32_t n_ctx, uint32_t slack);

/* Bytes the cache will allocate (= g3_plan_kv_bytes for G3_KV_CACHE_TYPE). */
uint64_t g3_kv_cache_bytes(const g3_config *cfg, uint32_t n_ctx, uint32_t slack);

int g3_kv_cache_init(g3_kv_cache *kv, const g3_config *cfg, uint32_t n_ctx, uint32_t slack,
                     g3_error *err);
void g3_kv_cache_free(g3_kv_cache *kv);

static inline float *g3_kv_key(const g3_kv_cache *kv, uint32_t il, uint32_t pos) {
    return kv->k[il] + (uint64_t)(pos % kv->n_slots[il]) * kv->kv_dim;
}
static inline float *g3_kv_value(const g3_kv_cache *kv, uint32_t il, uint32_t pos) {
    return kv->v[il] + (uint64_t)(pos % kv->n_slots[il]) * kv->kv_dim;
}

#endif
