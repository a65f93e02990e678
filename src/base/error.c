#include "base/error.h"

#include <stdarg.h>
#include <stdio.h>
#include <string.h>

int g3_fail(g3_error *err, const char *fmt, ...) {
    if (err) {
        va_list ap;
        va_start(ap, fmt);
        vsnprintf(err->msg, sizeof err->msg, fmt, ap);
        va_end(ap);
    }
    return -1;
}

int g3_error_prefix(g3_error *err, const char *fmt, ...) {
    if (!err) return -1;
    char prefix[G3_ERROR_MSG_MAX];
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(prefix, sizeof prefix, fmt, ap);
    va_end(ap);
    if (n <= 0) return -1;
    size_t plen = (size_t)n < sizeof prefix ? (size_t)n : sizeof prefix - 1;
    size_t mlen = strnlen(err->msg, sizeof err->msg - 1);
    /* keep the tail of the message if the two do not fit together */
    if (plen + mlen > sizeof err->msg - 1) mlen = sizeof err->msg - 1 - plen;
    memmove(err->msg + plen, err->msg, mlen);
    memcpy(err->msg, prefix, plen);
    err->msg[plen + mlen] = '\0';
    return -1;
}

void g3_error_clear(g3_error *err) {
    if (err) err->msg[0] = '\0';
}
