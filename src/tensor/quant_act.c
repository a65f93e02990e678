/* quant_act.c: 8-bit activations, reference integer dot products and the
 * reference GEMM panel packer (formats in quant_act.h).
 *
 * The weight layouts are ggml's (see quant_legacy.c and quant_k.c, whose
 * header comments describe the bits); the decoders here turn a block into
 * its integer codes and scales, which is all the integer kernels need. */
#include "tensor/quant_act.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "tensor/quant_legacy.h"
#include "tensor/type_info.h"
#include "tensor/type_ops.h"

static inline float load_f16(const uint8_t *p) { return g3_f16_to_f32((uint16_t)(p[0] | (p[1] << 8))); }

/* ---- the activation buffer ---- */

uint64_t g3_qa_bytes(uint32_t cap_rows, uint32_t cap_K) {
    const uint64_t n = (uint64_t)cap_rows * cap_K;
    return 4 * n + 3 * 4 * (n / 32) + 2 * 4 * (n / 16) + 9 * 64;
}

/* 64-byte aligned: the kernels load whole vectors. */
static void *alloc64(uint64_t bytes) {
    void *p = NULL;
    size_t rounded = (size_t)((bytes + 63) & ~(uint64_t)63);
    if (posix_memalign(&p, 64, rounded ? rounded : 64) != 0) return NULL;
    return p;
}

int g3_qa_alloc(g3_qa *qa, uint32_t cap_rows, uint32_t cap_K) {
    memset(qa, 0, sizeof *qa);
    const uint64_t n = (uint64_t)cap_rows * cap_K;
    qa->cap_rows = cap_rows;
    qa->cap_K = cap_K;
    qa->K = cap_K;
    qa->q1 = alloc64(n);
    qa->q2 = alloc64(n);
    qa->q1u = alloc64(n);
    qa->q2u = alloc64(n);
    qa->d = alloc64(4 * (n / 32));
    qa->dsum = alloc64(4 * (n / 32));
    qa->s16 = alloc64(4 * (n / 16));
    qa->dsum8 = alloc64(4 * (n / 32));
    qa->s8_16 = alloc64(4 * (n / 16));
    if (!qa->q1 || !qa->q2 || !qa->q1u || !qa->q2u || !qa->d || !qa->dsum || !qa->s16 || !qa->dsum8 || !qa->s8_16) {
        g3_qa_free(qa);
        return -1;
    }
    return 0;
}

void g3_qa_free(g3_qa *qa) {
    free(qa->q1);
    free(qa->q2);
    free(qa->q1u);
    free(qa->q2u);
    free(qa->d);
    free(qa->dsum);
    free(qa->s16);
    free(qa->dsum8);
    free(qa->s8_16);
    memset(qa, 0, sizeof *qa);
}

/* ---- reference activation quantizer ---- */

void g3_qa_quantize_blocks_ref(const float *x, uint32_t b0, uint32_t b1, const g3_qa_row_out *o) {
    for (uint32_t b = b0; b < b1; b++) {
        const float *xb = x + 32 * b;
        float amax = 0.0f;
        for (int j = 0; j < 32; j++) amax = fmaxf(amax, fabsf(xb[j]));
        const float d = amax / 127.0f;
        const float id = d != 0.0f ? 1.0f / d : 0.0f;
        int Q[32], q1s[32];
        for (int j = 0; j < 32; j++) {
            float v = xb[j] * id;
            if (!(v >= -127.0f)) v = -127.0f; /* also NaN */
            if (v > 127.0f) v = 127.0f;
            /* nearest, ties to even (what SIMD conversions do); v * 128 is exact */
            const int q1 = (int)lrintf(v);
            Q[j] = (int)lrintf(v * 128.0f);
            const int q2 = Q[j] - 128 * q1; /* |128 v - 128 q1| <= 64 */
            q1s[j] = q1;
            o->q1[32 * b + j] = (int8_t)q1;
            o->q2[32 * b + j] = (int8_t)q2;
            o->q1u[32 * b + j] = (uint8_t)(q1 + 128);
            o->q2u[32 * b + j] = (uint8_t)(q2 + 128);
        }
        int32_t s0 = 0, s1 = 0, t0 = 0, t1 = 0;
        for (int j = 0; j < 16; j++) {
            s0 += Q[j];
            s1 += Q[16 + j];
            t0 += q1s[j];
            t1 += q1s[16 + j];
        }
        o->d[b] = d * (1.0f / 128.0f); /* exact: a power of two */
        o->dsum[b] = o->d[b] * (float)(s0 + s1);
        o->s16[2 * b] = s0;
        o->s16[2 * b + 1] = s1;
        o->dsum8[b] = d * (float)(t0 + t1);
        o->s8_16[2 * b] = t0;
        o->s8_16[2 * b + 1] = t1;
    }
}

/* ---- block decoders: integer codes (with the offset removed) and scales ---- */

/* Q4_K/Q5_K packed 6-bit scale and min of sub-block j (ggml's get_scale_min_k4). */
static inline void k4_scale_min(const uint8_t *s, int j, int *sc, int *m) {
    if (j < 4) {
        *sc = s[j] & 63;
        *m = s[j + 4] & 63;
    } else {
        *sc = (s[j + 4] & 0x0f) | ((s[j - 4] >> 6) << 4);
        *m = (s[j + 4] >> 4) | ((s[j] >> 6) << 4);
    }
}

/* One block or super-block: values v (q - o), per-sub-block scale and min. */
static void unpack_block(uint32_t type, const uint8_t *b, int8_t *v, float *scale, float *minv) {
    switch (type) {
    case G3_TYPE_Q8_0:
        memcpy(v, b + 2, 32);
        scale[0] = load_f16(b);
        break;
    case G3_TYPE_Q4_0:
        for (int j = 0; j < 16; j++) {
            v[j] = (int8_t)((b[2 + j] & 15) - 8);
            v[j + 16] = (int8_t)((b[2 + j] >> 4) - 8);
        }
        scale[0] = load_f16(b);
        break;
    case G3_TYPE_Q5_0:
    case G3_TYPE_Q5_1: {
        /* Q5_1: d, m, then Q5_0's qh and qs; codes without an offset */
        const int off = type == G3_TYPE_Q5_1 ? 2 : 0, o = type == G3_TYPE_Q5_1 ? 0 : 16;
        const uint8_t *h = b + 2 + off, *qs = b + 6 + off;
        const uint32_t qh = (uint32_t)h[0] | (uint32_t)h[1] << 8 | (uint32_t)h[2] << 16 | (uint32_t)h[3] << 24;
        for (int j = 0; j < 16; j++) {
            v[j] = (int8_t)(((qs[j] & 15) | (((qh >> j) & 1) << 4)) - o);
            v[j + 16] = (int8_t)(((qs[j] >> 4) | (((qh >> (j + 16)) & 1) << 4)) - o);
        }
        scale[0] = load_f16(b);
        if (off && minv) minv[0] = load_f16(b + 2);
        break;
    }
    case G3_TYPE_Q4_1:
        for (int j = 0; j < 16; j++) {
            v[j] = (int8_t)(b[4 + j] & 15);
            v[j + 16] = (int8_t)(b[4 + j] >> 4);
        }
        scale[0] = load_f16(b);
        if (minv) minv[0] = load_f16(b + 2);
        break;
    case G3_TYPE_IQ4_NL:
        for (int j = 0; j < 16; j++) {
            v[j] = g3_iq4_nl_values[b[2 + j] & 15];
            v[j + 16] = g3_iq4_nl_values[b[2 + j] >> 4];
        }
        scale[0] = load_f16(b);
        break;
    case G3_TYPE_Q4_K:
    case G3_TYPE_Q5_K: {
        const bool q5 = type == G3_TYPE_Q5_K;
        const uint8_t *qs = b + (q5 ? 48 : 16), *qh = q5 ? b + 16 : NULL;
        for (int c = 0; c < 4; c++)
            for (int l = 0; l < 32; l++) {
                int lo = qs[32 * c + l] & 15, hi = qs[32 * c + l] >> 4;
                if (qh) {
                    lo |= ((qh[l] >> (2 * c)) & 1) << 4;
                    hi |= ((qh[l] >> (2 * c + 1)) & 1) << 4;
                }
                v[64 * c + l] = (int8_t)lo;
                v[64 * c + 32 + l] = (int8_t)hi;
            }
        const float d = load_f16(b), dmin = load_f16(b + 2);
        for (int s = 0; s < 8; s++) {
            int sc, m;
            k4_scale_min(b + 4, s, &sc, &m);
            scale[s] = d * (float)sc;
            minv[s] = -(dmin * (float)m);
        }
        break;
    }
    case G3_TYPE_Q6_K: {
        for (int h = 0; h < 2; h++) {
            const uint8_t *ql = b + 64 * h, *qh = b + 128 + 32 * h;
            int8_t *vv = v + 128 * h;
            for (int l = 0; l < 32; l++) {
                vv[l] = (int8_t)(((ql[l] & 15) | ((qh[l] & 3) << 4)) - 32);
                vv[l + 32] = (int8_t)(((ql[l + 32] & 15) | (((qh[l] >> 2) & 3) << 4)) - 32);
                vv[l + 64] = (int8_t)(((ql[l] >> 4) | (((qh[l] >> 4) & 3) << 4)) - 32);
                vv[l + 96] = (int8_t)(((ql[l + 32] >> 4) | (((qh[l] >> 6) & 3) << 4)) - 32);
            }
        }
        const float d = load_f16(b + 208);
        for (int s = 0; s < 16; s++) scale[s] = d * (float)(int8_t)b[192 + s];
        break;
    }
    default:
        break;
    }
}

bool g3_qa_type_supported(uint32_t type) {
    switch (type) {
    case G3_TYPE_Q8_0: case G3_TYPE_Q4_0: case G3_TYPE_Q5_0:
    case G3_TYPE_Q4_1: case G3_TYPE_Q5_1: case G3_TYPE_IQ4_NL:
    case G3_TYPE_Q4_K: case G3_TYPE_Q5_K: case G3_TYPE_Q6_K:
        return true;
    default:
        return false;
    }
}

g3_panel_layout g3_panel_layout_of(uint32_t type) {
    g3_panel_layout l = {32, false};
    if (type == G3_TYPE_Q6_K) l.S = 16;
    if (type == G3_TYPE_Q4_K || type == G3_TYPE_Q5_K || type == G3_TYPE_Q4_1 || type == G3_TYPE_Q5_1)
        l.has_min = true;
    return l;
}

void g3_unpack_row_s8(uint32_t type, const void *w, uint32_t K, int8_t *vals, float *scale, float *minv) {
    const g3_type_info *ti = g3_type_info_get(type);
    const g3_panel_layout l = g3_panel_layout_of(type);
    const uint32_t per_block = ti->block_size / l.S;
    const uint8_t *b = w;
    for (uint32_t i = 0; i < K / ti->block_size; i++, b += ti->block_bytes)
        unpack_block(type, b, vals + (size_t)i * ti->block_size, scale + i * per_block,
                     l.has_min ? minv + i * per_block : NULL);
}

/* ---- reference dot products ---- */

static inline int32_t act_Q(const g3_qa_row *a, uint32_t k, bool a8) {
    return a8 ? a->q1[k] : 128 * a->q1[k] + a->q2[k];
}

/* a8: q1 alone, whose scale is 128 d and whose block sums are dsum8 */
static float dot_ref(uint32_t type, const void *w, const g3_qa_row *a, uint32_t K, bool a8) {
    const float d_scale = a8 ? 128.0f : 1.0f;
    const float *dsum = a8 ? a->dsum8 : a->dsum;
    const g3_type_info *ti = g3_type_info_get(type);
    const uint8_t *b = w;
    int8_t v[256];
    float scale[16], minv[16];
    float sum = 0.0f;
    for (uint32_t i = 0; i < K / ti->block_size; i++, b += ti->block_bytes) {
        const uint32_t k0 = i * ti->block_size;
        unpack_block(type, b, v, scale, minv);
        if (type == G3_TYPE_Q6_K) {
            for (int s = 0; s < 16; s++) {
                int32_t isum = 0;
                for (int j = 0; j < 16; j++) isum += v[16 * s + j] * act_Q(a, k0 + 16 * s + j, a8);
                sum += (scale[s] * (d_scale * a->d[(k0 + 16 * s) / 32])) * (float)isum;
            }
        } else {
            const bool has_min = g3_panel_layout_of(type).has_min;
            for (uint32_t s = 0; s < ti->block_size / 32; s++) {
                const uint32_t ab = k0 / 32 + s;
                int32_t isum = 0;
                for (int j = 0; j < 32; j++) isum += v[32 * s + j] * act_Q(a, 32 * ab + j, a8);
                sum += (scale[s] * (d_scale * a->d[ab])) * (float)isum;
                if (has_min) sum += minv[s] * dsum[ab];
            }
        }
    }
    return sum;
}

float g3_qa_dot_ref(uint32_t type, const void *w, const g3_qa_row *a, uint32_t K) {
    return dot_ref(type, w, a, K, false);
}

float g3_qa_dot8_ref(uint32_t type, const void *w, const g3_qa_row *a, uint32_t K) {
    return dot_ref(type, w, a, K, true);
}

/* ---- reference panel packer ---- */

size_t g3_pack_tmp_bytes(uint32_t K) { return ((size_t)K + 63) / 64 * 64 + 2 * sizeof(float) * (K / 16); }

void g3_pack_panel_ref(uint32_t type, const uint8_t *rows, size_t row_bytes, uint32_t n_rows, uint32_t K,
                       uint32_t R, uint8_t *panel, void *tmp) {
    const g3_panel_layout l = g3_panel_layout_of(type);
    const uint32_t n_sub = K / l.S;
    const size_t sub_bytes = g3_panel_sub_bytes(l, R);
    int8_t *vals = tmp;
    float *scale = (float *)((uint8_t *)tmp + ((K + 63) & ~63u)), *minv = scale + n_sub;
    for (uint32_t r = 0; r < R; r++) {
        if (r < n_rows) {
            g3_unpack_row_s8(type, rows + r * row_bytes, K, vals, scale, minv);
        } else {
            memset(vals, 0, K);
            memset(scale, 0, sizeof(float) * n_sub);
            memset(minv, 0, sizeof(float) * n_sub);
        }
        for (uint32_t s = 0; s < n_sub; s++) {
            uint8_t *p = panel + s * sub_bytes;
            const int8_t *vs = vals + s * l.S;
            int wsum = 0;
            for (uint32_t j = 0; j < l.S / 4; j++) {
                memcpy(p + (j * R + r) * 4, vs + 4 * j, 4);
                wsum += vs[4 * j] + vs[4 * j + 1] + vs[4 * j + 2] + vs[4 * j + 3];
            }
            float *pscale = (float *)(p + (size_t)l.S * R);
            int32_t *pcorr = (int32_t *)(pscale + R);
            pscale[r] = scale[s];
            pcorr[r] = -129 * wsum;
            if (l.has_min) ((float *)(pcorr + R))[r] = minv[s];
        }
    }
}
