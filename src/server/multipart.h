/* multipart.h: a multipart/form-data body (RFC 7578 over RFC 2046) split
 * into its parts: a pure function over the body buffer (no server state),
 * so it can be fuzzed on its own.
 *
 * Strict on purpose (a browser's and curl's bodies pass; a malformed body
 * is a 400 naming what is wrong, never a guess):
 *   - the boundary comes from the Content-Type's `boundary` parameter
 *     (quoted or not, 1..70 characters of RFC 2046's set);
 *   - lines end with CRLF; text before the first delimiter (the preamble)
 *     and after the closing one (the epilogue) is ignored, as RFC 2046 says;
 *   - every part has headers, among them a Content-Disposition of type
 *     form-data with a `name`; `filename` is optional; parameters are
 *     tokens or quoted strings (backslash escapes \" and \\ undone);
 *   - the closing delimiter `--BOUNDARY--` must be there.
 * Limits: SRV_MP_MAX_PARTS parts, SRV_MP_MAX_HEADERS bytes of headers per
 * part. A part's data points into the body (not copied); names, file names
 * and content types are copied (NUL-terminated). */
#ifndef G3_SERVER_MULTIPART_H
#define G3_SERVER_MULTIPART_H

#include <stdbool.h>
#include <stddef.h>

#include "server/api_error.h"

#define SRV_MP_MAX_PARTS 64
#define SRV_MP_MAX_HEADERS 8192
#define SRV_MP_MAX_BOUNDARY 70

typedef struct srv_mp_part {
    char *name;           /* the form field's name */
    char *filename;       /* NULL when the part is not a file */
    char *content_type;   /* NULL when the part has none (text/plain by default) */
    const char *data;     /* into the body */
    size_t len;
} srv_mp_part;

typedef struct srv_mp_body {
    srv_mp_part *parts;
    size_t n;
} srv_mp_body;

/* true when the Content-Type is multipart/form-data (parameters not checked). */
bool srv_is_multipart_type(const char *content_type);

/* The boundary of a multipart/form-data Content-Type into out (room for
 * SRV_MP_MAX_BOUNDARY + 1). -1 (400) when missing or invalid. */
int srv_multipart_boundary(const char *content_type, char *out, size_t out_size, srv_error *e);

/* Splits body into parts. 0 with *out filled (free with
 * srv_multipart_free), or -1 with e set (400; 500 when out of memory). */
int srv_multipart_parse(const char *body, size_t len, const char *boundary, srv_mp_body *out, srv_error *e);
void srv_multipart_free(srv_mp_body *b);

#endif
