/* error.h: errors as values.
 *
 * A function that can fail takes a `g3_error *` last, returns 0 on success and
 * -1 on failure after writing a human-readable reason into the error. Callers
 * add context on the way up with g3_error_prefix ("loading model.gguf: ...").
 * Nothing here aborts; the process decides what to do with a failure.
 */
#ifndef G3_BASE_ERROR_H
#define G3_BASE_ERROR_H

#include <stddef.h>

#include "gemma3_error.h" /* the g3_error struct is part of the public API */

#if defined(__GNUC__)
#define G3_PRINTF(a, b) __attribute__((format(printf, a, b)))
#else
#define G3_PRINTF(a, b)
#endif

/* Sets the message (err may be NULL) and returns -1, so `return g3_fail(...)`. */
int g3_fail(g3_error *err, const char *fmt, ...) G3_PRINTF(2, 3);

/* Puts context in front of an existing message; returns -1. */
int g3_error_prefix(g3_error *err, const char *fmt, ...) G3_PRINTF(2, 3);

/* Clears the message (an empty message means "no error"). */
void g3_error_clear(g3_error *err);

#endif
