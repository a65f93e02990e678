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
 * Rows are stored in the cache's element type (f32, f16, bf16 or q8_0, one
 * row = n_head_kv heads of head_dim values; q8_0 blocks never straddle two
 * heads) and attention reads them in that type (tensor/kernels.h).
 *
 * Sizes come from the memory planner (model/memory_plan.h): each layer's
 * buffers are g3_plan_kv_tensor_bytes, so `gemma-chat plan` reports what
 * this allocates (one mapping for all layers, huge pages where the
 * system grants them; see kv_cache.c). Every page is written at creation: the memory is really
 * taken when the context is made, not discovered missing in the middle of
 * a conversation, and the resident size matches the plan from the start. */
#ifndef G3_MODEL_KV_CACHE_H
#define G3_MODEL_KV_CACHE_H

#include <stddef.h>
#include <stdint.h>

#include "gemma3.h"
#include "model/gemma3_config.h"

typedef struct g3_kv_cache {
    uint32_t n_layer;
    uint32_t kv_dim;    /* n_head_kv * head_dim */
    g3_kv_type type;
    size_t row_bytes;   /* bytes of one position's keys (or values) of a layer */
    size_t head_bytes;  /* bytes of one head's part of a row */
    uint32_t n_ctx;
    uint32_t *n_slots;  /* per layer: n_ctx (global) or min(n_ctx, window + slack) */
    uint8_t **k;        /* per layer: n_slots rows (inside region) */
    uint8_t **v;
    uint8_t *region;    /* one mapping holding every layer's keys and values */
    size_t region_bytes;
    uint64_t bytes;     /* keys + values allocated = g3_plan_kv_bytes(cfg, n_ctx, slack, type) */
    uint32_t n_past;    /* positions written: 0 .. n_past-1 */
    uint32_t n_valid_from; /* oldest position still recoverable after a truncate */
} g3_kv_cache;

/* Bytes the cache will allocate (= g3_plan_kv_bytes). */
uint64_t g3_kv_cache_bytes(const g3_config *cfg, uint32_t n_ctx, uint32_t slack, g3_kv_type type);

/* Fails with a message when the type does not fit the model's heads or the
 * memory cannot be had. */
int g3_kv_cache_init(g3_kv_cache *kv, const g3_config *cfg, uint32_t n_ctx, uint32_t slack, g3_kv_type type,
                     g3_error *err);
void g3_kv_cache_free(g3_kv_cache *kv);

/* Writes position pos of layer il: kv_dim keys and values, converted to the
 * cache type (q8_0 with the reference round-to-nearest quantizer). */
void g3_kv_cache_store(g3_kv_cache *kv, uint32_t il, uint32_t pos, const float *keys, const float *values);

/* The first byte of head h in row 0 of a layer (attention walks the ring
 * from there, row_bytes apart). */
static inline const uint8_t *g3_kv_keys_of_head(const g3_kv_cache *kv, uint32_t il, uint32_t h) {
    return kv->k[il] + h * kv->head_bytes;
}
static inline const uint8_t *g3_kv_values_of_head(const g3_kv_cache *kv, uint32_t il, uint32_t h) {
    return kv->v[il] + h * kv->head_bytes;
}

#endif
