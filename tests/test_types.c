/* test_types.c: the scalar reference kernels of every supported weight type.
 *
 * - f16/bf16 conversions: exhaustive over all 16-bit patterns against an
 *   independent formula, round trips, hand-picked ties/subnormals, and random
 *   f32 values against a brute-force nearest-even search;
 * - hand-built blocks of every quantized type with known contents, decoded
 *   to values worked out by hand (the independent check of ggml's bit layout);
 * - quantize -> dequantize error on Gaussian rows, per type; Q4_1/Q5_1/IQ4_NL
 *   quantizer bytes against ggml's reference;
 * - dot_f32 against a double dot over to_float, on quantized and on random
 *   blocks.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "tensor/type_info.h"
#include "tensor/type_ops.h"
#include "test_util.h"

static const uint32_t k_supported[] = {
    G3_TYPE_F32,  G3_TYPE_F16,  G3_TYPE_BF16, G3_TYPE_Q8_0, G3_TYPE_Q4_0,  G3_TYPE_Q5_0,
    G3_TYPE_Q4_1, G3_TYPE_Q5_1, G3_TYPE_IQ4_NL, G3_TYPE_Q4_K, G3_TYPE_Q5_K, G3_TYPE_Q6_K,
};
#define N_SUPPORTED (sizeof k_supported / sizeof k_supported[0])

/* ---- helpers ---- */

static uint32_t f32_bits(float f) {
    uint32_t u;
    memcpy(&u, &f, sizeof u);
    return u;
}

static float f32_from_bits(uint32_t u) {
    float f;
    memcpy(&f, &u, sizeof f);
    return f;
}

static uint64_t rng_u64(uint64_t *s) {
    *s ^= *s << 13;
    *s ^= *s >> 7;
    *s ^= *s << 17;
    return *s;
}

static float gauss(uint64_t *s) {
    float u1 = 1.0f - 0.5f * (tu_randf(s) + 1.0f); /* (0, 1] */
    float u2 = 0.5f * (tu_randf(s) + 1.0f);
    return sqrtf(-2.0f * logf(u1)) * cosf(6.28318530718f * u2);
}

static void put_le16(uint8_t *p, uint16_t v) {
    p[0] = (uint8_t)(v & 0xff);
    p[1] = (uint8_t)(v >> 8);
}

static size_t row_bytes(uint32_t type, int64_t n) {
    uint64_t bytes = 0;
    g3_error err;
    assert_int_equal(g3_type_row_bytes(type, (uint64_t)n, &bytes, &err), 0);
    return (size_t)bytes;
}

static const g3_type_ops *ops_of(uint32_t type) {
    const g3_type_ops *ops = g3_type_ops_get(type);
    assert_non_null(ops);
    return ops;
}

static void assert_floats_equal(const float *got, const float *want, int n) {
    for (int i = 0; i < n; i++) {
        if (got[i] != want[i]) fail_msg("element %d: got %.9g, want %.9g", i, got[i], want[i]);
    }
}

/* ---- table ---- */

static void test_table_matches_type_info(void **state) {
    (void)state;
    for (uint32_t t = 0; t < G3_TYPE_COUNT + 8; t++) {
        const g3_type_info *ti = g3_type_info_get(t);
        const g3_type_ops *ops = g3_type_ops_get(t);
        bool supported = ti && ti->supported;
        if (supported != (ops != NULL)) fail_msg("type %u: info supported=%d, ops=%p", t, supported, (void *)ops);
        if (ops) {
            assert_non_null(ops->to_float);
            assert_non_null(ops->from_float);
            assert_non_null(ops->dot_f32);
        }
    }
    for (size_t i = 0; i < N_SUPPORTED; i++) assert_non_null(g3_type_ops_get(k_supported[i]));
    assert_null(g3_type_ops_get(G3_TYPE_Q8_1)); /* an activation type, never a weight */
    assert_null(g3_type_ops_get(G3_TYPE_Q2_K));
    assert_null(g3_type_ops_get(G3_TYPE_IQ4_XS));
    assert_null(g3_type_ops_get(G3_TYPE_Q8_K));
    assert_null(g3_type_ops_get(UINT32_MAX));
}

/* ---- f16 ---- */

/* Independent value of an f16 pattern: (1024 + man) * 2^(exp - 25), or
 * man * 2^-24 for subnormals. */
static double f16_value(uint16_t h) {
    int exp = (h >> 10) & 0x1f, man = h & 0x3ff;
    double v = exp ? ldexp(1024 + man, exp - 25) : ldexp(man, -24);
    return (h & 0x8000) ? -v : v;
}

static void test_f16_to_f32_exhaustive(void **state) {
    (void)state;
    for (uint32_t h = 0; h < 0x10000; h++) {
        float f = g3_f16_to_f32((uint16_t)h);
        int exp = (h >> 10) & 0x1f, man = h & 0x3ff;
        if (exp == 0x1f && man == 0) {
            if (!isinf(f) || (signbit(f) != 0) != ((h & 0x8000) != 0)) fail_msg("0x%04x: %g", h, f);
        } else if (exp == 0x1f) {
            if (!isnan(f)) fail_msg("0x%04x should be NaN, got %g", h, f);
        } else {
            if ((double)f != f16_value((uint16_t)h)) fail_msg("0x%04x: got %.9g want %.9g", h, f, f16_value((uint16_t)h));
            if ((signbit(f) != 0) != ((h & 0x8000) != 0)) fail_msg("0x%04x: sign", h);
        }
    }
    /* A few by hand. */
    assert_true(g3_f16_to_f32(0x3c00) == 1.0f);
    assert_true(g3_f16_to_f32(0xc000) == -2.0f);
    assert_true(g3_f16_to_f32(0x7bff) == 65504.0f);
    assert_true(g3_f16_to_f32(0x0400) == 0x1p-14f);
    assert_true(g3_f16_to_f32(0x0001) == 0x1p-24f);
    assert_true(g3_f16_to_f32(0x03ff) == 1023 * 0x1p-24f);
    assert_true(g3_f16_to_f32(0x3555) == 0.333251953125f);
    assert_true(signbit(g3_f16_to_f32(0x8000)) && g3_f16_to_f32(0x8000) == 0.0f);
}

static void test_f16_round_trip_exhaustive(void **state) {
    (void)state;
    for (uint32_t h = 0; h < 0x10000; h++) {
        uint16_t back = g3_f32_to_f16(g3_f16_to_f32((uint16_t)h));
        bool is_nan = ((h >> 10) & 0x1f) == 0x1f && (h & 0x3ff);
        if (is_nan) {
            if (((back >> 10) & 0x1f) != 0x1f || !(back & 0x3ff) || (back & 0x8000) != (h & 0x8000))
                fail_msg("NaN 0x%04x came back as 0x%04x", h, back);
        } else if (back != h) {
            fail_msg("0x%04x came back as 0x%04x", h, back);
        }
    }
}

static void test_f32_to_f16_known(void **state) {
    (void)state;
    static const struct {
        float f;
        uint16_t h;
    } cases[] = {
        {1.0f, 0x3c00},
        {-2.0f, 0xc000},
        {0.1f, 0x2e66},                  /* 0.0999755859375 */
        {1.0f + 0x1p-11f, 0x3c00},        /* tie: 1.0 (even) */
        {1.0f + 3 * 0x1p-11f, 0x3c02},    /* tie between 0x3c01 and 0x3c02: even */
        {1.0f + 0x1p-11f + 0x1p-20f, 0x3c01}, /* just above the tie */
        {2047.5f, 0x6800},               /* tie 2047/2048: carries into the exponent */
        {65504.0f, 0x7bff},
        {65519.99f, 0x7bff},
        {65520.0f, 0x7c00},              /* tie 65504/65536: even is "65536" = inf */
        {1e5f, 0x7c00},
        {-1e9f, 0xfc00},
        {0x1p-14f, 0x0400},              /* smallest normal */
        {0x1p-14f - 0x1p-25f, 0x0400},   /* tie 0x3ff/0x400: even */
        {0x1p-24f, 0x0001},              /* smallest subnormal */
        {0x1p-25f, 0x0000},              /* tie 0/1: even */
        {0x1p-25f * 1.0000001f, 0x0001}, /* just above it */
        {3 * 0x1p-25f, 0x0002},          /* tie 1/2: even */
        {5 * 0x1p-25f, 0x0002},          /* tie 2/3: even */
        {1e-8f, 0x0000},
        {-1e-8f, 0x8000},
        {0x1p-130f, 0x0000},             /* f32 subnormal */
        {-0.0f, 0x8000},
        {INFINITY, 0x7c00},
        {-INFINITY, 0xfc00},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        uint16_t got = g3_f32_to_f16(cases[i].f);
        if (got != cases[i].h) fail_msg("%.10g: got 0x%04x want 0x%04x", cases[i].f, got, cases[i].h);
    }
    uint16_t qnan = g3_f32_to_f16(NAN);
    assert_true(((qnan >> 10) & 0x1f) == 0x1f && (qnan & 0x3ff) != 0);
    /* A signalling NaN whose payload is only in the low bits must not become inf. */
    uint16_t snan = g3_f32_to_f16(f32_from_bits(0xff800001u));
    assert_true(((snan >> 10) & 0x1f) == 0x1f && (snan & 0x3ff) != 0 && (snan & 0x8000));
}

/* Brute-force round-to-nearest-even over the f16 grid (|f| finite). */
static uint16_t f16_reference(float f) {
    double a = fabs((double)f);
    uint16_t sign = signbit(f) ? 0x8000 : 0;
    /* Largest h in [0, 0x7bff] with value <= a (positive values are monotonic in h). */
    uint32_t lo = 0, hi = 0x7bff;
    if (f16_value(0x7bff) <= a) {
        lo = 0x7bff;
    } else {
        while (lo < hi) {
            uint32_t mid = (lo + hi + 1) / 2;
            if (f16_value((uint16_t)mid) <= a) lo = mid;
            else hi = mid - 1;
        }
    }
    /* The next value above 65504 is 65536 when rounding (exponent unbounded). */
    double v0 = f16_value((uint16_t)lo), v1 = lo == 0x7bff ? 65536.0 : f16_value((uint16_t)(lo + 1));
    uint32_t h;
    if (a - v0 < v1 - a) h = lo;
    else if (a - v0 > v1 - a) h = lo + 1;
    else h = (lo & 1) ? lo + 1 : lo;
    return (uint16_t)(sign | h); /* lo + 1 == 0x7c00 is inf */
}

static void test_f32_to_f16_random(void **state) {
    (void)state;
    uint64_t s = 0x9e3779b97f4a7c15ull;
    for (int i = 0; i < 200000; i++) {
        /* Exponents from 2^-27 to 2^16: the subnormal, normal and overflow zones. */
        uint32_t e = 100 + (uint32_t)(rng_u64(&s) % 44);
        uint32_t u = (uint32_t)(rng_u64(&s) & 0x807fffffu) | (e << 23);
        if (i % 4 == 0) u &= ~0x1fffu | (uint32_t)(rng_u64(&s) & 0x1000u); /* many exact ties */
        float f = f32_from_bits(u);
        uint16_t got = g3_f32_to_f16(f), want = f16_reference(f);
        if (got != want) fail_msg("0x%08x (%.10g): got 0x%04x want 0x%04x", u, f, got, want);
    }
}

/* ---- bf16 ---- */

static void test_bf16_exhaustive(void **state) {
    (void)state;
    for (uint32_t h = 0; h < 0x10000; h++) {
        float f = g3_bf16_to_f32((uint16_t)h);
        if (f32_bits(f) != h << 16) fail_msg("0x%04x: bits 0x%08x", h, f32_bits(f));
        uint16_t back = g3_f32_to_bf16(f);
        bool is_nan = ((h >> 7) & 0xff) == 0xff && (h & 0x7f);
        if (is_nan ? !(((back >> 7) & 0xff) == 0xff && (back & 0x7f)) : back != h)
            fail_msg("0x%04x came back as 0x%04x", h, back);
    }
}

static void test_bf16_known(void **state) {
    (void)state;
    static const struct {
        uint32_t f;
        uint16_t h;
    } cases[] = {
        {0x3f800000u, 0x3f80},  /* 1.0 */
        {0x3f808000u, 0x3f80},  /* 1 + 2^-8: tie, even stays */
        {0x3f818000u, 0x3f82},  /* 1 + 3*2^-8: tie, even goes up */
        {0x3f808001u, 0x3f81},  /* just above the tie */
        {0x3f80ffffu, 0x3f81},
        {0x40490fdbu, 0x4049},  /* pi */
        {0xc0400000u, 0xc040},  /* -3 */
        {0x7f7fffffu, 0x7f80},  /* FLT_MAX rounds to inf */
        {0x7f7f7fffu, 0x7f7f},
        {0x00018000u, 0x0002},  /* subnormal tie, goes to even */
        {0x7f800000u, 0x7f80},
        {0xff800000u, 0xff80},
        {0x80000000u, 0x8000},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        uint16_t got = g3_f32_to_bf16(f32_from_bits(cases[i].f));
        if (got != cases[i].h) fail_msg("0x%08x: got 0x%04x want 0x%04x", cases[i].f, got, cases[i].h);
    }
    /* Signalling NaN with only low payload bits: truncation would give inf. */
    uint16_t snan = g3_f32_to_bf16(f32_from_bits(0x7f800001u));
    assert_true(((snan >> 7) & 0xff) == 0xff && (snan & 0x7f) != 0);
    assert_true(isnan(g3_bf16_to_f32(g3_f32_to_bf16(NAN))));
    assert_true(g3_bf16_to_f32(0x4049) == 3.140625f);
}

static void test_bf16_random(void **state) {
    (void)state;
    uint64_t s = 12345;
    for (int i = 0; i < 200000; i++) {
        uint32_t u = (uint32_t)rng_u64(&s);
        if (i % 4 == 0) u = (u & 0xffff0000u) | 0x8000u; /* exact ties */
        if ((u & 0x7fffffffu) >= 0x7f800000u) continue;  /* inf/NaN tested above */
        uint32_t t = u >> 16;
        /* Candidates t and t+1 (as magnitudes); t+1 may be the "2^128" past FLT_MAX. */
        double a = fabs((double)f32_from_bits(u));
        double v0 = fabs((double)f32_from_bits(t << 16));
        double v1 = ((t + 1) & 0x7fff) == 0x7f80 ? ldexp(1.0, 128) : fabs((double)f32_from_bits((t + 1) << 16));
        uint32_t want = (a - v0 < v1 - a) ? t : (a - v0 > v1 - a) ? t + 1 : ((t & 1) ? t + 1 : t);
        uint16_t got = g3_f32_to_bf16(f32_from_bits(u));
        if (got != want) fail_msg("0x%08x: got 0x%04x want 0x%04x", u, got, want);
    }
}

/* ---- hand-built blocks ---- */

static void test_plain_types_decode(void **state) {
    (void)state;
    const uint16_t h16[] = {0x3c00, 0xc000, 0x0001, 0x7bff, 0x3555};
    const float w16[] = {1.0f, -2.0f, 0x1p-24f, 65504.0f, 0.333251953125f};
    float out[5];
    ops_of(G3_TYPE_F16)->to_float(h16, out, 5);
    assert_floats_equal(out, w16, 5);

    const uint16_t hb[] = {0x3f80, 0xc040, 0x4049, 0x0000, 0xbf00};
    const float wb[] = {1.0f, -3.0f, 3.140625f, 0.0f, -0.5f};
    ops_of(G3_TYPE_BF16)->to_float(hb, out, 5);
    assert_floats_equal(out, wb, 5);

    const float f[] = {1.5f, -0.25f, 1e-30f, 3e30f, -7.0f};
    ops_of(G3_TYPE_F32)->to_float(f, out, 5);
    assert_floats_equal(out, f, 5);
}

static void test_q8_0_decode(void **state) {
    (void)state;
    uint8_t b[2 * 34];
    put_le16(b, 0x3400); /* d = 0.25 */
    for (int j = 0; j < 32; j++) b[2 + j] = (uint8_t)(j * 8 - 128); /* -128, -120, ..., 120 */
    put_le16(b + 34, 0xbe00); /* second block: d = -1.5 */
    for (int j = 0; j < 32; j++) b[36 + j] = (uint8_t)(127 - j);
    float out[64], want[64];
    for (int j = 0; j < 32; j++) want[j] = (float)(2 * j - 32);
    for (int j = 0; j < 32; j++) want[32 + j] = -1.5f * (float)(127 - j);
    ops_of(G3_TYPE_Q8_0)->to_float(b, out, 64);
    assert_floats_equal(out, want, 64);
}

static void test_q4_0_decode(void **state) {
    (void)state;
    uint8_t b[18];
    put_le16(b, 0x3800); /* d = 0.5 */
    for (int j = 0; j < 16; j++) b[2 + j] = (uint8_t)(j | ((15 - j) << 4));
    /* Elements 0-15 are the low nibbles 0..15, 16-31 the high nibbles 15..0;
     * value (q - 8) * 0.5. */
    const float want[32] = {
        -4.0f, -3.5f, -3.0f, -2.5f, -2.0f, -1.5f, -1.0f, -0.5f,
        0.0f,  0.5f,  1.0f,  1.5f,  2.0f,  2.5f,  3.0f,  3.5f,
        3.5f,  3.0f,  2.5f,  2.0f,  1.5f,  1.0f,  0.5f,  0.0f,
        -0.5f, -1.0f, -1.5f, -2.0f, -2.5f, -3.0f, -3.5f, -4.0f,
    };
    float out[32];
    ops_of(G3_TYPE_Q4_0)->to_float(b, out, 32);
    assert_floats_equal(out, want, 32);
}

static void test_q5_0_decode(void **state) {
    (void)state;
    uint8_t b[22];
    put_le16(b, 0x3800); /* d = 0.5 */
    /* qh as a little-endian u32 = 0x40018003: bits 0, 1, 15, 16, 30 set. */
    b[2] = 0x03;
    b[3] = 0x80;
    b[4] = 0x01;
    b[5] = 0x40;
    for (int j = 0; j < 16; j++) b[6 + j] = (uint8_t)(j | ((15 - j) << 4));
    /* Element j < 16: q = j (+16 for j = 0, 1, 15); element 16 + j:
     * q = 15 - j (+16 for j = 0, 14); value (q - 16) * 0.5. */
    const float want[32] = {
        0.0f,  0.5f,  -7.0f, -6.5f, -6.0f, -5.5f, -5.0f, -4.5f,
        -4.0f, -3.5f, -3.0f, -2.5f, -2.0f, -1.5f, -1.0f, 7.5f,
        7.5f,  -1.0f, -1.5f, -2.0f, -2.5f, -3.0f, -3.5f, -4.0f,
        -4.5f, -5.0f, -5.5f, -6.0f, -6.5f, -7.0f, 0.5f,  -8.0f,
    };
    float out[32];
    ops_of(G3_TYPE_Q5_0)->to_float(b, out, 32);
    assert_floats_equal(out, want, 32);
}

static void test_q4_1_decode(void **state) {
    (void)state;
    uint8_t b[2 * 20];
    put_le16(b, 0x3800);     /* d = 0.5 */
    put_le16(b + 2, 0xc080); /* m = -2.25 */
    for (int j = 0; j < 16; j++) b[4 + j] = (uint8_t)(j | ((15 - j) << 4));
    put_le16(b + 20, 0xbe00); /* second block: d = -1.5 */
    put_le16(b + 22, 0x5640); /* m = 100 */
    for (int j = 0; j < 16; j++) b[24 + j] = (uint8_t)(0x5a ^ (j * 17));
    /* Elements 0-15 are the low nibbles 0..15, 16-31 the high nibbles
     * 15..0; value q * 0.5 - 2.25 (no code offset). */
    float want[64] = {
        -2.25f, -1.75f, -1.25f, -0.75f, -0.25f, 0.25f, 0.75f, 1.25f,
        1.75f,  2.25f,  2.75f,  3.25f,  3.75f,  4.25f, 4.75f, 5.25f,
        5.25f,  4.75f,  4.25f,  3.75f,  3.25f,  2.75f, 2.25f, 1.75f,
        1.25f,  0.75f,  0.25f,  -0.25f, -0.75f, -1.25f, -1.75f, -2.25f,
    };
    for (int j = 0; j < 16; j++) {
        const uint8_t q = (uint8_t)(0x5a ^ (j * 17));
        want[32 + j] = -1.5f * (float)(q & 15) + 100.0f;
        want[48 + j] = -1.5f * (float)(q >> 4) + 100.0f;
    }
    float out[64];
    ops_of(G3_TYPE_Q4_1)->to_float(b, out, 64);
    assert_floats_equal(out, want, 64);
}

static void test_q5_1_decode(void **state) {
    (void)state;
    uint8_t b[24];
    put_le16(b, 0x3400);     /* d = 0.25 */
    put_le16(b + 2, 0xc400); /* m = -4 */
    /* qh as a little-endian u32 = 0x40018003: bits 0, 1, 15, 16, 30 set. */
    b[4] = 0x03;
    b[5] = 0x80;
    b[6] = 0x01;
    b[7] = 0x40;
    for (int j = 0; j < 16; j++) b[8 + j] = (uint8_t)(j | ((15 - j) << 4));
    /* Element j < 16: q = j (+16 for j = 0, 1, 15); element 16 + j:
     * q = 15 - j (+16 for j = 0, 14); value q * 0.25 - 4. */
    const float want[32] = {
        0.0f,   0.25f,  -3.5f, -3.25f, -3.0f,  -2.75f, -2.5f,  -2.25f,
        -2.0f,  -1.75f, -1.5f, -1.25f, -1.0f,  -0.75f, -0.5f,  3.75f,
        3.75f,  -0.5f,  -0.75f, -1.0f, -1.25f, -1.5f,  -1.75f, -2.0f,
        -2.25f, -2.5f,  -2.75f, -3.0f, -3.25f, -3.5f,  0.25f,  -4.0f,
    };
    float out[32];
    ops_of(G3_TYPE_Q5_1)->to_float(b, out, 32);
    assert_floats_equal(out, want, 32);
}

static void test_iq4_nl_decode(void **state) {
    (void)state;
    uint8_t b[2 * 18];
    put_le16(b, 0x3800); /* d = 0.5 */
    for (int j = 0; j < 16; j++) b[2 + j] = (uint8_t)(j | ((15 - j) << 4));
    put_le16(b + 18, 0xc000); /* second block: d = -2, every nibble 8 (table value 1) */
    memset(b + 20, 0x88, 16);
    /* ggml's kvalues_iq4nl {-127, -104, -83, -65, -49, -35, -22, -10, 1, 13,
     * 25, 38, 53, 69, 89, 113} times 0.5: elements 0-15 index 0..15 (low
     * nibbles), 16-31 index 15..0 (high nibbles). */
    float want[64] = {
        -63.5f, -52.0f, -41.5f, -32.5f, -24.5f, -17.5f, -11.0f, -5.0f,
        0.5f,   6.5f,   12.5f,  19.0f,  26.5f,  34.5f,  44.5f,  56.5f,
        56.5f,  44.5f,  34.5f,  26.5f,  19.0f,  12.5f,  6.5f,   0.5f,
        -5.0f,  -11.0f, -17.5f, -24.5f, -32.5f, -41.5f, -52.0f, -63.5f,
    };
    for (int j = 32; j < 64; j++) want[j] = -2.0f;
    float out[64];
    ops_of(G3_TYPE_IQ4_NL)->to_float(b, out, 64);
    assert_floats_equal(out, want, 64);
}

/* Sub-block scales {1, 2, 3, 63, 10, 33, 47, 5} and mins {0, 4, 63, 7, 20, 1,
 * 32, 62} packed by hand into ggml's 12-byte layout:
 *   bytes 0-3:  scale[0..3] | top 2 bits of scale[4..7] << 6
 *   bytes 4-7:  min[0..3]   | top 2 bits of min[4..7] << 6
 *   bytes 8-11: low 4 bits of scale[4..7] | low 4 bits of min[4..7] << 4 */
static const uint8_t k_k4_scales[12] = {0x01, 0x82, 0x83, 0x3f, 0x40, 0x04,
                                        0xbf, 0xc7, 0x4a, 0x11, 0x0f, 0xe5};
static const int k_k4_sc[8] = {1, 2, 3, 63, 10, 33, 47, 5};
static const int k_k4_m[8] = {0, 4, 63, 7, 20, 1, 32, 62};

/* d = 0.5, dmin = 0.25, the scales above, qs[i] = (i%16) | (15 - i%16) << 4. */
static void build_k4_header(uint8_t *b, uint8_t *qs) {
    put_le16(b, 0x3800);
    put_le16(b + 2, 0x3400);
    memcpy(b + 4, k_k4_scales, 12);
    for (int i = 0; i < 128; i++) qs[i] = (uint8_t)((i % 16) | ((15 - i % 16) << 4));
}

/* Element e of a Q4_K/Q5_K block, decoded one element at a time. */
static float k4_element(const uint8_t *qs, const uint8_t *qh, int e) {
    int byte = qs[(e / 64) * 32 + e % 32];
    int high_half = (e / 32) % 2;
    int q = high_half ? byte >> 4 : byte & 15;
    if (qh) q += 16 * ((qh[e % 32] >> (2 * (e / 64) + high_half)) & 1);
    return 0.5f * (float)k_k4_sc[e / 32] * (float)q - 0.25f * (float)k_k4_m[e / 32];
}

static void test_q4_k_decode(void **state) {
    (void)state;
    uint8_t b[144];
    build_k4_header(b, b + 16);
    float out[256];
    ops_of(G3_TYPE_Q4_K)->to_float(b, out, 256);
    /* Worked by hand: x = 0.5 * sc * q - 0.25 * m. */
    assert_true(out[0] == 0.0f);      /* qs[0] low = 0, sub-block 0 */
    assert_true(out[4] == 2.0f);      /* qs[4] low = 4: 0.5*1*4 */
    assert_true(out[32] == 14.0f);    /* qs[0] high = 15, sub 1: 0.5*2*15 - 0.25*4 */
    assert_true(out[100] == 344.75f); /* qs[36] high = 11, sub 3: 0.5*63*11 - 0.25*7 */
    assert_true(out[170] == 82.25f);  /* qs[74] high = 5, sub 5: 0.5*33*5 - 0.25*1 */
    assert_true(out[200] == 180.0f);  /* qs[104] low = 8, sub 6: 0.5*47*8 - 0.25*32 */
    assert_true(out[255] == -15.5f);  /* qs[127] high = 0, sub 7: -0.25*62 */
    for (int e = 0; e < 256; e++)
        if (out[e] != k4_element(b + 16, NULL, e)) fail_msg("element %d: %g vs %g", e, out[e], k4_element(b + 16, NULL, e));
}

static void test_q5_k_decode(void **state) {
    (void)state;
    uint8_t b[176];
    uint8_t *qh = b + 16, *qs = b + 48;
    build_k4_header(b, qs);
    memset(qh, 0, 32);
    qh[0] = 0x01;  /* bit 0: chunk 0, low half, l = 0 -> element 0 */
    qh[4] = 0x08;  /* bit 3: chunk 1, high half, l = 4 -> element 100 */
    qh[31] = 0x80; /* bit 7: chunk 3, high half, l = 31 -> element 255 */
    float out[256];
    ops_of(G3_TYPE_Q5_K)->to_float(b, out, 256);
    assert_true(out[0] == 8.0f);      /* q = 0 + 16: 0.5*1*16 */
    assert_true(out[4] == 2.0f);      /* no fifth bit */
    assert_true(out[32] == 14.0f);    /* qh[0] bit 1 clear */
    assert_true(out[36] == 10.0f);    /* qh[4] bit 1 clear: q = 11, 0.5*2*11 - 1 */
    assert_true(out[68] == -9.75f);   /* qh[4] bit 2 clear: q = 4, 0.5*3*4 - 0.25*63 */
    assert_true(out[100] == 848.75f); /* q = 11 + 16: 0.5*63*27 - 0.25*7 */
    assert_true(out[255] == 24.5f);   /* q = 0 + 16: 0.5*5*16 - 0.25*62 */
    /* Every element, with a denser qh pattern. */
    for (int i = 0; i < 32; i++) qh[i] = (uint8_t)(0x5a ^ (i * 37));
    ops_of(G3_TYPE_Q5_K)->to_float(b, out, 256);
    for (int e = 0; e < 256; e++)
        if (out[e] != k4_element(qs, qh, e)) fail_msg("element %d: %g vs %g", e, out[e], k4_element(qs, qh, e));
}

static const int8_t k_q6_scales[16] = {1, -2, 3, -4, 5, 6, 7, -128, 127, 9, 10, -11, 12, 13, 14, 15};

/* ql[i] = i, qh[i] = 0xe4 (top bits 0, 1, 2, 3 for the four quarters), d = 0.125 LAST. */
static void build_q6_k(uint8_t *b) {
    for (int i = 0; i < 128; i++) b[i] = (uint8_t)i;
    memset(b + 128, 0xe4, 64);
    memcpy(b + 192, k_q6_scales, 16);
    put_le16(b + 208, 0x3000);
}

static float q6_element(const uint8_t *b, int e) {
    int half = e / 128, r = e % 128, quarter = r / 32, l = r % 32;
    int byte = b[64 * half + 32 * (quarter & 1) + l];
    int low = quarter < 2 ? byte & 15 : byte >> 4;
    int top = (b[128 + 32 * half + l] >> (2 * quarter)) & 3;
    return 0.125f * (float)k_q6_scales[e / 16] * (float)((low | (top << 4)) - 32);
}

static void test_q6_k_decode(void **state) {
    (void)state;
    uint8_t b[210];
    build_q6_k(b);
    float out[256];
    ops_of(G3_TYPE_Q6_K)->to_float(b, out, 256);
    /* Worked by hand: x = 0.125 * scales[e/16] * (q - 32). */
    assert_true(out[0] == -4.0f);       /* q = 0, sc 1 */
    assert_true(out[17] == 7.75f);      /* ql[17] low 1, top 0: q = 1, sc -2 */
    assert_true(out[40] == -3.0f);      /* ql[40] low 8, top 1: q = 24, sc 3 */
    assert_true(out[90] == 0.75f);      /* ql[26] high 1, top 2: q = 33, sc 6 */
    assert_true(out[120] == -304.0f);   /* ql[56] high 3, top 3: q = 51, sc -128 */
    assert_true(out[143] == -269.875f); /* ql[79] low 15, top 0: q = 15, sc 127 */
    assert_true(out[200] == 6.0f);      /* ql[72] high 4, top 2: q = 36, sc 12 */
    assert_true(out[255] == 43.125f);   /* ql[127] high 7, top 3: q = 55, sc 15 */
    for (int e = 0; e < 256; e++)
        if (out[e] != q6_element(b, e)) fail_msg("element %d: %g vs %g", e, out[e], q6_element(b, e));
}

/* ---- quantize -> dequantize ---- */

typedef struct rt_case {
    uint32_t type;
    double bound; /* relative RMS error, with margin over the measured value */
} rt_case;

/* Relative RMS error of quantize -> dequantize on N(0,1) rows, measured with
 * the seeds below: the long row (65536 + one block), and in brackets the
 * worst over all four lengths (short rows vary more). These are what the
 * formats give with ggml's reference quantizers: llama-quantize's own output
 * on the golden tiny-gemma3 weights has the same errors (Q8_0 0.52-0.54%,
 * Q6_K 1.73-1.81%, Q5_0 4.26-4.31%, Q4_K 6.96-7.20%, Q4_0 8.30-8.77%), and
 * our bytes equal its.
 *   F32 0                  F16 0.0208% [0.0213%]  BF16 0.166% [0.171%]
 *   Q8_0 0.535% [0.538%]   Q6_K 1.764% [1.793%]
 *   Q5_K 3.598% [3.598%]   Q5_1 3.801% [3.999%]   Q5_0 4.294% [4.294%]
 *   Q4_K 7.143% [7.169%]   IQ4_NL 7.577% [7.888%] Q4_1 7.763% [8.212%]
 *   Q4_0 8.614% [9.045%] */
static const rt_case k_rt_cases[] = {
    {G3_TYPE_F32, 0.0},     {G3_TYPE_F16, 3e-4},    {G3_TYPE_BF16, 2.5e-3},
    {G3_TYPE_Q8_0, 0.006},  {G3_TYPE_Q6_K, 0.020},  {G3_TYPE_Q5_K, 0.042},
    {G3_TYPE_Q5_0, 0.048},  {G3_TYPE_Q4_K, 0.080},  {G3_TYPE_Q4_0, 0.098},
    {G3_TYPE_Q5_1, 0.044},  {G3_TYPE_IQ4_NL, 0.086}, {G3_TYPE_Q4_1, 0.090},
};

static double round_trip_error(uint32_t type, int64_t n, uint64_t seed) {
    const g3_type_ops *ops = ops_of(type);
    float *x = malloc((size_t)n * sizeof *x), *y = malloc((size_t)n * sizeof *y);
    uint8_t *q = malloc(row_bytes(type, n)); /* exact size: ASan catches overruns */
    assert_non_null(x);
    assert_non_null(y);
    assert_non_null(q);
    for (int64_t i = 0; i < n; i++) x[i] = gauss(&seed);
    ops->from_float(x, q, n);
    ops->to_float(q, y, n);
    double se = 0.0, sx = 0.0;
    for (int64_t i = 0; i < n; i++) {
        se += ((double)x[i] - y[i]) * ((double)x[i] - y[i]);
        sx += (double)x[i] * x[i];
    }
    free(x);
    free(y);
    free(q);
    return sqrt(se / sx);
}

/* Error of the long row, for comparing types. */
static double long_row_error(uint32_t type) {
    int64_t bs = g3_type_info_get(type)->block_size;
    return round_trip_error(type, 65536 + bs, 1000 + type);
}

static void test_round_trip_gaussian(void **state) {
    (void)state;
    for (size_t c = 0; c < sizeof k_rt_cases / sizeof k_rt_cases[0]; c++) {
        uint32_t t = k_rt_cases[c].type;
        int64_t bs = g3_type_info_get(t)->block_size;
        /* Odd block counts, and 768 = 3 super-blocks = 24 legacy blocks. */
        const int64_t lens[] = {bs == 1 ? 7 : 5 * bs, 768, bs == 1 ? 1001 : 37 * bs};
        double worst = long_row_error(t);
        for (int k = 0; k < 3; k++) {
            double e = round_trip_error(t, lens[k], 2000 + (uint64_t)k * 77 + t);
            if (e > worst) worst = e;
        }
        print_message("round trip %-6s relative RMS error %.4f%% (long row %.4f%%)\n",
                      g3_type_info_get(t)->name, 100.0 * worst, 100.0 * long_row_error(t));
        if (worst > k_rt_cases[c].bound)
            fail_msg("%s: relative RMS error %.5f > bound %.5f", g3_type_info_get(t)->name, worst,
                     k_rt_cases[c].bound);
    }
    /* The super-block types must beat the legacy ones of the same width:
     * catches a K-quant search that silently degrades to the plain range. */
    assert_true(long_row_error(G3_TYPE_Q4_K) < 0.95 * long_row_error(G3_TYPE_Q4_0));
    assert_true(long_row_error(G3_TYPE_Q5_K) < 0.95 * long_row_error(G3_TYPE_Q5_0));
    /* Likewise the offset and non-linear 32-blocks against Q4_0/Q5_0
     * (measured ratios 0.90, 0.89, 0.88): a Q4_1/Q5_1 whose minimum is
     * ignored, or an IQ4_NL whose scale search is skipped, fails here. */
    assert_true(long_row_error(G3_TYPE_Q4_1) < 0.95 * long_row_error(G3_TYPE_Q4_0));
    assert_true(long_row_error(G3_TYPE_Q5_1) < 0.95 * long_row_error(G3_TYPE_Q5_0));
    assert_true(long_row_error(G3_TYPE_IQ4_NL) < 0.95 * long_row_error(G3_TYPE_Q4_0));
}

/* Zero rows must decode to exact zeros (no NaN from 0/0 scales), and a row
 * whose values are all equal must come back close for every type. */
static void test_round_trip_degenerate(void **state) {
    (void)state;
    enum { N = 512 };
    float x[N], y[N];
    for (size_t c = 0; c < N_SUPPORTED; c++) {
        uint32_t t = k_supported[c];
        const g3_type_ops *ops = ops_of(t);
        uint8_t *q = malloc(row_bytes(t, N));
        assert_non_null(q);
        memset(x, 0, sizeof x);
        ops->from_float(x, q, N);
        ops->to_float(q, y, N);
        for (int i = 0; i < N; i++)
            if (y[i] != 0.0f) fail_msg("%s: zero row element %d -> %g", g3_type_info_get(t)->name, i, y[i]);
        for (int sign = -1; sign <= 1; sign += 2) {
            for (int i = 0; i < N; i++) x[i] = 0.75f * (float)sign;
            ops->from_float(x, q, N);
            ops->to_float(q, y, N);
            for (int i = 0; i < N; i++)
                if (fabsf(y[i] - x[i]) > 0.01f)
                    fail_msg("%s: constant %g row element %d -> %g", g3_type_info_get(t)->name, x[i], i, y[i]);
        }
        /* One outlier among small values: the outlier itself must survive. */
        for (int i = 0; i < N; i++) x[i] = 0.001f * (float)(i % 7);
        x[300] = -50.0f;
        ops->from_float(x, q, N);
        ops->to_float(q, y, N);
        if (fabsf(y[300] + 50.0f) > 0.5f) fail_msg("%s: outlier -> %g", g3_type_info_get(t)->name, y[300]);
        free(q);
    }
}

/* For the legacy types the scale of a dequantized block is exactly
 * recoverable, so quantizing it again must give back the same bytes: checks
 * that from_float packs what to_float unpacks. */
static void test_legacy_requantize_is_identity(void **state) {
    (void)state;
    const uint32_t types[] = {G3_TYPE_Q8_0, G3_TYPE_Q4_0, G3_TYPE_Q5_0};
    enum { N = 32 * 21 };
    float x[N], y[N];
    uint64_t s = 4242;
    for (int i = 0; i < N; i++) x[i] = gauss(&s);
    for (size_t c = 0; c < 3; c++) {
        const g3_type_ops *ops = ops_of(types[c]);
        size_t nb = row_bytes(types[c], N);
        uint8_t *q1 = malloc(nb), *q2 = malloc(nb);
        assert_non_null(q1);
        assert_non_null(q2);
        ops->from_float(x, q1, N);
        ops->to_float(q1, y, N);
        ops->from_float(y, q2, N);
        assert_memory_equal(q1, q2, nb);
        free(q1);
        free(q2);
    }
}

/* The quantizers' bytes for three blocks (mixed signs; all positive, so m
 * > 0; repeated values with exact ties) against ggml's reference, computed
 * outside this project: Q4_1/Q5_1 by the gguf Python package's ports of
 * quantize_row_q4_1_ref / q5_1_ref, IQ4_NL by ggml's quantize_iq4_nl (no
 * importance matrix), which llama-quantize runs. */
static void test_quantizer_bytes_match_ggml(void **state) {
    (void)state;
    float x[96];
    for (int i = 0; i < 96; i++) {
        const unsigned u = (unsigned)(i * 7919 + 13) % 1999u;
        x[i] = i < 32 ? ((float)u - 999.0f) / 128.0f : i < 64 ? (float)u / 512.0f + 3.0f : (float)((i % 5) - 2) * 0.75f;
    }
    static const uint8_t q4_1[3 * 20] = {
        0x03, 0x3c, 0xba, 0xc7, 0x60, 0x5f, 0x5e, 0x4e, 0x4d, 0x3d, 0x2c, 0x2b, 0x1b, 0x1a, 0x0a, 0xf9, 0xe8, 0xe8, 0xd7, 0xd7,
        0x01, 0x34, 0x07, 0x42, 0x2c, 0x2b, 0x1b, 0x1a, 0x0a, 0xf9, 0xe8, 0xe8, 0xd7, 0xd7, 0xc6, 0xb5, 0xb5, 0xa4, 0xa4, 0x93,
        0x66, 0x32, 0x00, 0xbe, 0x0f, 0x40, 0x84, 0xb8, 0xfb, 0x0f, 0x40, 0x84, 0xb8, 0xfb, 0x0f, 0x40, 0x84, 0xb8, 0xfb, 0x0f,
    };
    static const uint8_t q5_1[3 * 24] = {
        0xc3, 0x37, 0xba, 0xc7, 0xfe, 0x3f, 0x00, 0xf8, 0xc0, 0xbf, 0xae, 0x9d, 0x7b, 0x6a, 0x59, 0x48,
        0x26, 0x15, 0x04, 0xf3, 0xe1, 0xc0, 0xbf, 0xae,
        0xc0, 0x2f, 0x07, 0x42, 0xff, 0x00, 0xe0, 0xff, 0x59, 0x48, 0x26, 0x15, 0x04, 0xf3, 0xe1, 0xd0,
        0xbf, 0xae, 0x9c, 0x8b, 0x6a, 0x59, 0x47, 0x36,
        0x32, 0x2e, 0x00, 0xbe, 0x39, 0xe7, 0x9c, 0x73, 0x0f, 0x80, 0x08, 0x70, 0xf7, 0x0f, 0x80, 0x08,
        0x70, 0xf7, 0x0f, 0x80, 0x08, 0x70, 0xf7, 0x0f,
    };
    static const uint8_t iq4_nl[3 * 18] = {
        0x05, 0x2c, 0x60, 0x5f, 0x4f, 0x4e, 0x3e, 0x2d, 0x2d, 0x1c, 0x1c, 0x1b, 0x0a, 0xfa, 0xf9, 0xe8, 0xe7, 0xd6,
        0xbe, 0xaa, 0x31, 0x31, 0x31, 0x31, 0x31, 0x01, 0x01, 0x01, 0x02, 0x02, 0x12, 0x12, 0x12, 0x12, 0x12, 0x13,
        0x62, 0xa2, 0xf0, 0xcf, 0x8c, 0x38, 0x03, 0xf0, 0xcf, 0x8c, 0x38, 0x03, 0xf0, 0xcf, 0x8c, 0x38, 0x03, 0xf0,
    };
    uint8_t got[3 * 24];
    ops_of(G3_TYPE_Q4_1)->from_float(x, got, 96);
    assert_memory_equal(got, q4_1, sizeof q4_1);
    ops_of(G3_TYPE_Q5_1)->from_float(x, got, 96);
    assert_memory_equal(got, q5_1, sizeof q5_1);
    ops_of(G3_TYPE_IQ4_NL)->from_float(x, got, 96);
    assert_memory_equal(got, iq4_nl, sizeof iq4_nl);
}

/* ---- dot ---- */

static void check_dot(uint32_t type, const void *w, const float *x, int64_t n) {
    const g3_type_ops *ops = ops_of(type);
    float *deq = malloc((size_t)n * sizeof *deq);
    assert_non_null(deq);
    ops->to_float(w, deq, n);
    double ref = 0.0, mag = 0.0;
    for (int64_t i = 0; i < n; i++) {
        ref += (double)deq[i] * x[i];
        mag += fabs((double)deq[i] * x[i]);
    }
    free(deq);
    double got = ops->dot_f32(w, x, n);
    if (!(fabs(got - ref) <= 1e-5 * mag))
        fail_msg("%s n=%lld: dot %.9g, reference %.9g (sum |w x| %.6g)", g3_type_info_get(type)->name,
                 (long long)n, got, ref, mag);
}

/* Fills a row with random bytes, then makes the f16 scale fields finite
 * and moderate: every code, sign and scale pattern gets exercised, not only
 * what our quantizer produces. */
static void random_row(uint32_t type, uint8_t *q, int64_t n, uint64_t *s) {
    const g3_type_info *ti = g3_type_info_get(type);
    size_t nbytes = row_bytes(type, n);
    for (size_t i = 0; i < nbytes; i++) q[i] = (uint8_t)rng_u64(s);
    if (type == G3_TYPE_F32 || type == G3_TYPE_F16 || type == G3_TYPE_BF16) {
        for (int64_t i = 0; i < n; i++) {
            float v = gauss(s);
            if (type == G3_TYPE_F32) memcpy(q + 4 * i, &v, 4);
            else put_le16(q + 2 * i, type == G3_TYPE_F16 ? g3_f32_to_f16(v) : g3_f32_to_bf16(v));
        }
        return;
    }
    /* Offsets of the f16 fields in each block: d (and dmin) first, except Q6_K's d at the end. */
    int off[2] = {0, -1};
    if (type == G3_TYPE_Q4_K || type == G3_TYPE_Q5_K || type == G3_TYPE_Q4_1 || type == G3_TYPE_Q5_1) off[1] = 2;
    if (type == G3_TYPE_Q6_K) off[0] = 208;
    for (int64_t blk = 0; blk < n / ti->block_size; blk++) {
        uint8_t *b = q + blk * ti->block_bytes;
        for (int k = 0; k < 2; k++)
            if (off[k] >= 0) put_le16(b + off[k], g3_f32_to_f16(0.01f * tu_randf(s)));
    }
}

static void test_dot_matches_to_float(void **state) {
    (void)state;
    uint64_t s = 777;
    for (size_t c = 0; c < N_SUPPORTED; c++) {
        uint32_t t = k_supported[c];
        uint32_t bs = g3_type_info_get(t)->block_size;
        const int64_t lens[] = {bs == 1 ? 13 : (int64_t)bs, bs == 1 ? 1001 : (int64_t)bs * 3,
                                bs == 1 ? 2049 : (int64_t)bs * 37};
        for (int k = 0; k < 3; k++) {
            int64_t n = lens[k];
            float *x = malloc((size_t)n * sizeof *x), *w = malloc((size_t)n * sizeof *w);
            uint8_t *q = malloc(row_bytes(t, n));
            assert_non_null(x);
            assert_non_null(w);
            assert_non_null(q);
            for (int64_t i = 0; i < n; i++) {
                x[i] = gauss(&s);
                w[i] = 0.05f * gauss(&s);
            }
            ops_of(t)->from_float(w, q, n);
            check_dot(t, q, x, n);
            for (int rep = 0; rep < 4; rep++) {
                random_row(t, q, n, &s);
                check_dot(t, q, x, n);
            }
            free(x);
            free(w);
            free(q);
        }
    }
}

/* The dot of a row with a one-hot x is that row's element: ties dot_f32's
 * indexing to to_float's element by element, independent of summation. */
static void test_dot_one_hot(void **state) {
    (void)state;
    uint64_t s = 99;
    enum { N = 512 };
    float x[N], deq[N];
    for (size_t c = 0; c < N_SUPPORTED; c++) {
        uint32_t t = k_supported[c];
        uint8_t *q = malloc(row_bytes(t, N));
        assert_non_null(q);
        random_row(t, q, N, &s);
        ops_of(t)->to_float(q, deq, N);
        memset(x, 0, sizeof x);
        for (int i = 0; i < N; i += 7) {
            x[i] = 1.0f;
            float got = ops_of(t)->dot_f32(q, x, N);
            x[i] = 0.0f;
            if (fabsf(got - deq[i]) > 1e-6f * fabsf(deq[i]) + 1e-30f)
                fail_msg("%s element %d: dot %.9g, to_float %.9g", g3_type_info_get(t)->name, i, got, deq[i]);
        }
        free(q);
    }
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_table_matches_type_info),
        cmocka_unit_test(test_f16_to_f32_exhaustive),
        cmocka_unit_test(test_f16_round_trip_exhaustive),
        cmocka_unit_test(test_f32_to_f16_known),
        cmocka_unit_test(test_f32_to_f16_random),
        cmocka_unit_test(test_bf16_exhaustive),
        cmocka_unit_test(test_bf16_known),
        cmocka_unit_test(test_bf16_random),
        cmocka_unit_test(test_plain_types_decode),
        cmocka_unit_test(test_q8_0_decode),
        cmocka_unit_test(test_q4_0_decode),
        cmocka_unit_test(test_q5_0_decode),
        cmocka_unit_test(test_q4_1_decode),
        cmocka_unit_test(test_q5_1_decode),
        cmocka_unit_test(test_iq4_nl_decode),
        cmocka_unit_test(test_q4_k_decode),
        cmocka_unit_test(test_q5_k_decode),
        cmocka_unit_test(test_q6_k_decode),
        cmocka_unit_test(test_round_trip_gaussian),
        cmocka_unit_test(test_round_trip_degenerate),
        cmocka_unit_test(test_legacy_requantize_is_identity),
        cmocka_unit_test(test_quantizer_bytes_match_ggml),
        cmocka_unit_test(test_dot_matches_to_float),
        cmocka_unit_test(test_dot_one_hot),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
