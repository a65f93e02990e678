/* utf8.h: UTF-8 validation. Text from files and terminals may be anything;
 * these turn it into valid UTF-8 before it reaches the model or a JSON file. */
#ifndef G3_BASE_UTF8_H
#define G3_BASE_UTF8_H

#include <stddef.h>

/* Length of the valid UTF-8 sequence at s (1-4), or 0 if the bytes there do
 * not start one (overlong forms, surrogates and values past U+10FFFF are
 * invalid). n is the number of bytes available. */
size_t g3_utf8_seq_len(const unsigned char *s, size_t n);

/* A malloc'd, NUL-terminated copy of len bytes with every invalid byte
 * replaced by U+FFFD; *n_replaced counts them. NULL when out of memory. */
char *g3_utf8_sanitize(const char *s, size_t len, size_t *n_replaced);

#endif
