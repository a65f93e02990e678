/* base64.h: standard base64 (RFC 4648, '+' '/', '=' padding), for image
 * bytes in JSON (data: URLs, saved conversations).
 *
 * Decoding is strict: characters outside the alphabet, misplaced padding
 * and a length that is not a multiple of 4 are refused (ASCII whitespace is
 * skipped, as MIME line breaks are common in pasted data). */
#ifndef G3_BASE_BASE64_H
#define G3_BASE_BASE64_H

#include <stddef.h>
#include <stdint.h>

#include "gemma3_error.h"

/* Bytes the decoding of n characters can need at most. */
size_t g3_base64_decoded_max(size_t n);
/* Decodes n characters into out (room for g3_base64_decoded_max(n));
 * *out_len gets the bytes written. The message names the offending offset. */
int g3_base64_decode(const char *in, size_t n, uint8_t *out, size_t *out_len, g3_error *err);
/* Encodes into a malloc'd NUL-terminated string; NULL when out of memory
 * or when n is too large to encode. */
char *g3_base64_encode(const uint8_t *in, size_t n);

#endif
