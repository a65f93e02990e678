#include "model/kv_cache.h"

#include <stdlib.h>
#include <string.h>

#include "base/error.h"
#include "model/memory_plan.h"
#include "tensor/type_ops.h"

uint64_t g3_kv_cache_bytes(const g3_config *cfg, uint32_t n_ctx, uint32_t slack, g3_kv_type type) {
    return g3_plan_kv_bytes(cfg, n_ctx, slack, type);
}

/* Zeroed, and every page touched (see kv_cache.h). */
static uint8_t *alloc_touched(uint64_t bytes) {
    if (bytes == 0 || bytes > SIZE_MAX / 2) return NULL;
    void *p = NULL;
    if (posix_memalign(&p, 64, (size_t)bytes)) return NULL;
    memset(p, 0, (size_t)bytes);
    return p;
}

int g3_kv_cache_init(g3_kv_cache *kv, const g3_config *cfg, uint32_t n_ctx, uint32_t slack, g3_kv_type type,
                     g3_error *err) {
    memset(kv, 0, sizeof *kv);
    if (g3_plan_kv_check(cfg, type, err)) return -1;
    kv->n_layer = cfg->n_layer;
    kv->kv_dim = cfg->n_head_kv * cfg->head_dim;
    kv->head_dim = cfg->head_dim;
    kv->type = type;
    kv->row_bytes = (size_t)g3_plan_kv_row_bytes(cfg, type);
    kv->head_bytes = kv->row_bytes / cfg->n_head_kv;
    kv->n_ctx = n_ctx;
    kv->n_slots = calloc(cfg->n_layer, sizeof *kv->n_slots);
    kv->k = calloc(cfg->n_layer, sizeof *kv->k);
    kv->v = calloc(cfg->n_layer, sizeof *kv->v);
    if (!kv->n_slots || !kv->k || !kv->v) goto oom;
    for (uint32_t il = 0; il < cfg->n_layer; il++) {
        kv->n_slots[il] = g3_plan_kv_layer_slots(cfg, il, n_ctx, slack);
        /* the planner's figure is the allocation (saturates: then refused here) */
        const uint64_t bytes = g3_plan_kv_tensor_bytes(cfg, il, n_ctx, slack, type);
        kv->k[il] = alloc_touched(bytes);
        kv->v[il] = alloc_touched(bytes);
        if (!kv->k[il] || !kv->v[il]) goto oom;
        kv->bytes += 2 * bytes;
    }
    return 0;
oom:
    g3_kv_cache_free(kv);
    return g3_fail(err, "out of memory for a %s KV cache of %u positions (%.1f MiB)", g3_kv_type_name(type),
                   n_ctx, g3_kv_cache_bytes(cfg, n_ctx, slack, type) / 1048576.0);
}

void g3_kv_cache_free(g3_kv_cache *kv) {
    for (uint32_t il = 0; kv->k && il < kv->n_layer; il++) free(kv->k[il]);
    for (uint32_t il = 0; kv->v && il < kv->n_layer; il++) free(kv->v[il]);
    free(kv->k);
    free(kv->v);
    free(kv->n_slots);
    memset(kv, 0, sizeof *kv);
}

static void store_f16_saturated(const float *x, uint16_t *out, uint32_t n) {
    const float max = 65504.0f;
    for (uint32_t i = 0; i < n; i++) out[i] = g3_f32_to_f16(x[i] > max ? max : x[i] < -max ? -max : x[i]);
}

void g3_kv_cache_store(g3_kv_cache *kv, uint32_t il, uint32_t pos, const float *keys, const float *values) {
    const size_t off = (size_t)(pos % kv->n_slots[il]) * kv->row_bytes;
    if (kv->type == G3_KV_F32) {
        memcpy(kv->k[il] + off, keys, kv->row_bytes);
        memcpy(kv->v[il] + off, values, kv->row_bytes);
        return;
    }
    if (kv->type == G3_KV_F16) { /* saturate: a value past the f16 range must not become inf (then NaN) */
        store_f16_saturated(keys, (uint16_t *)(kv->k[il] + off), kv->kv_dim);
        store_f16_saturated(values, (uint16_t *)(kv->v[il] + off), kv->kv_dim);
        return;
    }
    const g3_type_ops *ops = g3_type_ops_get((uint32_t)kv->type);
    ops->from_float(keys, kv->k[il] + off, kv->kv_dim);
    ops->from_float(values, kv->v[il] + off, kv->kv_dim);
}
