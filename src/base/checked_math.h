/* checked_math.h: size arithmetic that reports overflow instead of wrapping.
 * Every size computed from file contents or user input goes through these. */
#ifndef G3_BASE_CHECKED_MATH_H
#define G3_BASE_CHECKED_MATH_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* Each returns true when the result overflowed (and *out is then unspecified). */
static inline bool g3_mul_overflow_u64(uint64_t a, uint64_t b, uint64_t *out) {
    return __builtin_mul_overflow(a, b, out);
}
static inline bool g3_add_overflow_u64(uint64_t a, uint64_t b, uint64_t *out) {
    return __builtin_add_overflow(a, b, out);
}
static inline bool g3_mul_overflow_size(size_t a, size_t b, size_t *out) {
    return __builtin_mul_overflow(a, b, out);
}
static inline bool g3_add_overflow_size(size_t a, size_t b, size_t *out) {
    return __builtin_add_overflow(a, b, out);
}

/* Rounds x up to a multiple of align (align > 0); true on overflow. */
static inline bool g3_align_up_u64(uint64_t x, uint64_t align, uint64_t *out) {
    uint64_t rem = x % align;
    if (rem == 0) { *out = x; return false; }
    return g3_add_overflow_u64(x, align - rem, out);
}

#endif
