/* fp16.c: IEEE binary16 and bfloat16 <-> binary32, by bit manipulation.
 *
 * No _Float16 or F16C: these are the portable reference the SIMD paths are
 * tested against. Rounding is to nearest, ties to even; NaN stays NaN (quiet,
 * top payload bits kept); f16 overflow goes to infinity.
 */
#include <string.h>

#include "tensor/type_ops.h"

static inline uint32_t f32_bits(float f) {
    uint32_t u;
    memcpy(&u, &f, sizeof u);
    return u;
}

static inline float f32_from_bits(uint32_t u) {
    float f;
    memcpy(&f, &u, sizeof f);
    return f;
}

float g3_f16_to_f32(uint16_t h) {
    uint32_t sign = (uint32_t)(h & 0x8000u) << 16;
    uint32_t exp = (h >> 10) & 0x1fu;
    uint32_t man = h & 0x3ffu;
    if (exp == 0x1f) return f32_from_bits(sign | 0x7f800000u | (man << 13));
    if (exp != 0) return f32_from_bits(sign | ((exp + (127 - 15)) << 23) | (man << 13));
    /* Zero or subnormal: man * 2^-24 is exact in f32 and does not depend on
     * the FPU's denormal mode (every f16 subnormal is an f32 normal). */
    float v = (float)man * 0x1p-24f;
    return sign ? -v : v;
}

/* Shifts m right by s (1 <= s <= 31) rounding to nearest, ties to even. */
static inline uint32_t shift_round_even(uint32_t m, uint32_t s) {
    uint32_t q = m >> s;
    uint32_t rem = m & ((1u << s) - 1);
    uint32_t half = 1u << (s - 1);
    if (rem > half || (rem == half && (q & 1))) q++;
    return q;
}

uint16_t g3_f32_to_f16(float f) {
    uint32_t u = f32_bits(f);
    uint16_t sign = (uint16_t)((u >> 16) & 0x8000u);
    uint32_t a = u & 0x7fffffffu;
    if (a > 0x7f800000u) /* NaN: keep it quiet so no payload can become inf */
        return (uint16_t)(sign | 0x7e00u | ((a >> 13) & 0x3ffu));
    /* 65520 is halfway between 65504 (max, odd mantissa) and 2^16: ties to
     * even go up, so everything from there on is infinity. */
    if (a >= 0x477ff000u) return (uint16_t)(sign | 0x7c00u);
    if (a >= 0x38800000u) { /* normal in f16: rebias 127 -> 15, round 23 -> 10 bits */
        /* A carry out of the mantissa correctly bumps the exponent. */
        uint32_t r = shift_round_even(a - ((127u - 15u) << 23), 13);
        return (uint16_t)(sign | r);
    }
    /* Subnormal in f16: value = m * 2^(e-150); in units of 2^-24 that is
     * m >> (126 - e). Below 2^-25 (shift > 24) it rounds to zero. */
    uint32_t e = a >> 23;
    uint32_t shift = 126u - e;
    if (shift > 24) return sign;
    uint32_t m = (a & 0x7fffffu) | (e ? 0x800000u : 0);
    return (uint16_t)(sign | shift_round_even(m, shift));
}

float g3_bf16_to_f32(uint16_t h) {
    return f32_from_bits((uint32_t)h << 16);
}

uint16_t g3_f32_to_bf16(float f) {
    uint32_t u = f32_bits(f);
    /* Truncating a signalling NaN whose payload lives in the low half would
     * give infinity: force the quiet bit. */
    if ((u & 0x7fffffffu) > 0x7f800000u) return (uint16_t)((u >> 16) | 0x40u);
    /* Ties to even; a carry into the exponent is the correct next value
     * (up to infinity for the largest finite floats). */
    return (uint16_t)((u + 0x7fffu + ((u >> 16) & 1u)) >> 16);
}
