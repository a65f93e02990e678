/* gemma3_error.h: the error value every fallible libgemma3 function fills.
 *
 * A function that can fail takes a `g3_error *` last, returns 0 on success
 * and -1 on failure with a human-readable message here (what was wrong and
 * where: file, offset, tensor, field). Its own header so the lowest layer
 * (src/base) needs nothing above it. */
#ifndef GEMMA3_ERROR_H
#define GEMMA3_ERROR_H

#define G3_ERROR_MSG_MAX 512
typedef struct g3_error {
    char msg[G3_ERROR_MSG_MAX];
} g3_error;

#endif
