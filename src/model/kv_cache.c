#include "model/kv_cache.h"

#include <stdlib.h>
#include <string.h>

#include "base/error.h"
#include "model/memory_plan.h"

uint32_t g3_kv_layer_slots(const g3_config *cfg, uint32_t il, uint32_t n_ctx, uint32_t slack) {
    return g3_plan_kv_layer_slots(cfg, il, n_ctx, slack);
}

uint64_t g3_kv_cache_bytes(const g3_config *cfg, uint32_t n_ctx, uint32_t slack) {
    return g3_plan_kv_bytes(cfg, n_ctx, slack, G3_KV_CACHE_TYPE);
}

int g3_kv_cache_init(g3_kv_cache *kv, const g3_config *cfg, uint32_t n_ctx, uint32_t slack,
                     g3_error *err) {
    memset(kv, 0, sizeof *kv);
    kv->n_layer = cfg->n_layer;
    kv->kv_dim = cfg->n_head_kv * cfg->head_dim;
    kv->n_ctx = n_ctx;
    kv->n_slots = calloc(cfg->n_layer, sizeof *kv->n_slots);
    kv->k = calloc(cfg->n_layer, sizeof *kv->k);
    kv->v = calloc(cfg->n_layer, sizeof *kv->v);
    if (!kv->n_slots || !kv->k || !kv->v) goto oom;
    for (uint32_t il = 0; il < cfg->n_layer; il++) {
        kv->n_slots[il] = g3_plan_kv_layer_slots(cfg, il, n_ctx, slack);
        /* the planner's figure is the allocation (saturates: then refused here) */
        uint64_t bytes = g3_plan_kv_tensor_bytes(cfg, il, n_ctx, slack, G3_KV_CACHE_TYPE);
        if (bytes == 0 || bytes > SIZE_MAX / 2) goto oom;
        /* calloc: pages are only touched when positions are written */
        kv->k[il] = calloc(1, (size_t)bytes);
        kv->v[il] = calloc(1, (size_t)bytes);
        if (!kv->k[il] || !kv->v[il]) goto oom;
        kv->bytes += 2 * bytes;
    }
    return 0;
oom:
    g3_kv_cache_free(kv);
    return g3_fail(err, "out of memory for a KV cache of %u positions (%.1f MiB)", n_ctx,
                   g3_kv_cache_bytes(cfg, n_ctx, slack) / 1048576.0);
}

void g3_kv_cache_free(g3_kv_cache *kv) {
    for (uint32_t il = 0; kv->k && il < kv->n_layer; il++) free(kv->k[il]);
    for (uint32_t il = 0; kv->v && il < kv->n_layer; il++) free(kv->v[il]);
    free(kv->k);
    free(kv->v);
    free(kv->n_slots);
    memset(kv, 0, sizeof *kv);
}
