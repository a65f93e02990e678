#include "model/kv_cache.h"

#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include "base/cpu_features.h"
#include "base/error.h"
#include "model/memory_plan.h"
#include "tensor/type_ops.h"

uint64_t g3_kv_cache_bytes(const g3_config *cfg, uint32_t n_ctx, uint32_t slack, g3_kv_type type) {
    return g3_plan_kv_bytes(cfg, n_ctx, slack, type);
}

#define KV_ALIGN 64                 /* each layer's buffers start on a cache line */
#define KV_HUGE ((size_t)2 << 20)    /* the transparent huge page size on x86-64 */

static uint64_t align_up(uint64_t x, uint64_t a) { return (x + a - 1) / a * a; }

/* One anonymous mapping for every layer's keys and values, 2 MiB aligned
 * and marked for transparent huge pages: attention walks a head's rows
 * kilobytes apart, so with 4 KiB pages nearly every row is a TLB miss
 * (huge pages measured +10% for f16, +44% for q8_0 at a 32K context). The
 * mapping is trimmed to the bytes used, so a partial last huge page stays
 * in small pages and the resident size is the plan's. Every page is
 * written here (see kv_cache.h). */
static uint8_t *map_region(uint64_t bytes, size_t *mapped) {
    if (bytes == 0 || bytes > SIZE_MAX - KV_HUGE) return NULL;
    const size_t len = (size_t)align_up(bytes, (uint64_t)sysconf(_SC_PAGESIZE));
    uint8_t *raw = mmap(NULL, len + KV_HUGE, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    if (raw == MAP_FAILED) return NULL;
    uint8_t *p = (uint8_t *)align_up((uintptr_t)raw, KV_HUGE);
    if (p > raw) munmap(raw, (size_t)(p - raw));
    const size_t tail = (size_t)(raw + len + KV_HUGE - (p + len));
    if (tail) munmap(p + len, tail);
#ifdef MADV_HUGEPAGE
    madvise(p, len, MADV_HUGEPAGE); /* a hint: without THP the cache works the same */
#endif
    memset(p, 0, (size_t)bytes);
    *mapped = len;
    return p;
}

int g3_kv_cache_init(g3_kv_cache *kv, const g3_config *cfg, uint32_t n_ctx, uint32_t slack, g3_kv_type type,
                     g3_error *err) {
    memset(kv, 0, sizeof *kv);
    if (g3_plan_kv_check(cfg, type, err)) return -1;
    kv->n_layer = cfg->n_layer;
    kv->kv_dim = cfg->n_head_kv * cfg->head_dim;
    kv->type = type;
    kv->row_bytes = (size_t)g3_plan_kv_row_bytes(cfg, type);
    kv->head_bytes = kv->row_bytes / cfg->n_head_kv;
    kv->n_ctx = n_ctx;
    kv->n_slots = calloc(cfg->n_layer, sizeof *kv->n_slots);
    kv->k = calloc(cfg->n_layer, sizeof *kv->k);
    kv->v = calloc(cfg->n_layer, sizeof *kv->v);
    if (!kv->n_slots || !kv->k || !kv->v) goto oom;
    /* the planner's figures are the allocation (they saturate: then refused here) */
    uint64_t region = 0;
    for (uint32_t il = 0; il < cfg->n_layer; il++) {
        kv->n_slots[il] = g3_plan_kv_layer_slots(cfg, il, n_ctx, slack);
        const uint64_t bytes = g3_plan_kv_tensor_bytes(cfg, il, n_ctx, slack, type);
        if (bytes == 0 || bytes > UINT64_MAX / 4 || region > UINT64_MAX / 4) goto oom;
        region += 2 * align_up(bytes, KV_ALIGN);
        kv->bytes += 2 * bytes;
    }
    kv->region = map_region(region, &kv->region_bytes);
    if (!kv->region) goto oom;
    uint64_t off = 0;
    for (uint32_t il = 0; il < cfg->n_layer; il++) {
        const uint64_t bytes = align_up(g3_plan_kv_tensor_bytes(cfg, il, n_ctx, slack, type), KV_ALIGN);
        kv->k[il] = kv->region + off;
        kv->v[il] = kv->region + off + bytes;
        off += 2 * bytes;
    }
    return 0;
oom:
    g3_kv_cache_free(kv);
    return g3_fail(err, "out of memory for a %s KV cache of %u positions (%.1f MiB)", g3_kv_type_name(type),
                   n_ctx, g3_kv_cache_bytes(cfg, n_ctx, slack, type) / 1048576.0);
}

void g3_kv_cache_free(g3_kv_cache *kv) {
    if (kv->region) munmap(kv->region, kv->region_bytes);
    free(kv->k);
    free(kv->v);
    free(kv->n_slots);
    memset(kv, 0, sizeof *kv);
}

static void store_f16_saturated_ref(const float *x, uint16_t *out, uint32_t n) {
    const float max = 65504.0f;
    for (uint32_t i = 0; i < n; i++) out[i] = g3_f32_to_f16(x[i] > max ? max : x[i] < -max ? -max : x[i]);
}

#if defined(__x86_64__)
#include <immintrin.h>
/* F16C's vcvtps2ph rounds to nearest even and quiets NaNs as
 * g3_f32_to_f16 does: the same bits, 8 values per instruction (the scalar
 * conversion was ~1.3% of a 4B prefill). max/min keep a NaN as it is. */
__attribute__((target("avx2,f16c"))) static void store_f16_saturated_f16c(const float *x, uint16_t *out,
                                                                          uint32_t n) {
    const __m256 hi = _mm256_set1_ps(65504.0f), lo = _mm256_set1_ps(-65504.0f);
    uint32_t i = 0;
    for (; i + 8 <= n; i += 8) {
        const __m256 v = _mm256_loadu_ps(x + i);
        const __m256 nan = _mm256_cmp_ps(v, v, _CMP_UNORD_Q);
        const __m256 c = _mm256_blendv_ps(_mm256_max_ps(_mm256_min_ps(v, hi), lo), v, nan);
        _mm_storeu_si128((__m128i *)(out + i), _mm256_cvtps_ph(c, _MM_FROUND_TO_NEAREST_INT));
    }
    store_f16_saturated_ref(x + i, out + i, n - i);
}
#endif

static void store_f16_saturated(const float *x, uint16_t *out, uint32_t n) {
#if defined(__x86_64__)
    const g3_cpu_features *f = g3_cpu_features_get();
    if (f->f16c && f->avx2 && f->os_ymm && f->active != G3_CPU_SCALAR) {
        store_f16_saturated_f16c(x, out, n);
        return;
    }
#endif
    store_f16_saturated_ref(x, out, n);
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
