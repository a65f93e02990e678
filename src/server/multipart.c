#include "server/multipart.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

static int oom(srv_error *e) {
    return srv_fail(e, 500, "server_error", NULL, NULL, "out of memory reading the multipart body");
}

static int bad(srv_error *e, const char *fmt, ...) SRV_PRINTF(2, 3);
static int bad(srv_error *e, const char *fmt, ...) {
    char msg[400];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    return srv_fail(e, 400, NULL, "invalid_multipart", "body", "body: malformed multipart/form-data: %s", msg);
}

bool srv_is_multipart_type(const char *ct) {
    if (!ct) return false;
    while (*ct == ' ' || *ct == '\t') ct++;
    if (strncasecmp(ct, "multipart/form-data", 19) != 0) return false;
    char c = ct[19];
    return c == 0 || c == ';' || c == ' ' || c == '\t';
}

static bool is_bchar(char c) {
    return (c >= '0' && c <= '9') || (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || strchr("'()+_,-./:=? ", c);
}

static bool is_tchar(char c) {
    return (c >= '0' && c <= '9') || (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || strchr("!#$%&'*+-.^_`|~", c);
}

/* One parameter "; name=value" from *p (p at the ';' or whitespace before
 * it). Writes the name and the (unquoted) value, bounded; returns 1 for a
 * parameter, 0 at the end, -1 when malformed. `end` bounds the text. */
static int next_param(const char **p, const char *end, char *name, size_t name_cap, char *value, size_t value_cap,
                      bool *truncated) {
    const char *s = *p;
    while (s < end && (*s == ' ' || *s == '\t')) s++;
    if (s == end) return 0;
    if (*s != ';') return -1;
    s++;
    while (s < end && (*s == ' ' || *s == '\t')) s++;
    size_t n = 0;
    while (s < end && is_tchar(*s)) {
        if (n + 1 < name_cap) name[n++] = *s;
        s++;
    }
    name[n] = 0;
    if (!n) return -1;
    while (s < end && (*s == ' ' || *s == '\t')) s++;
    if (s == end || *s != '=') return -1;
    s++;
    while (s < end && (*s == ' ' || *s == '\t')) s++;
    n = 0;
    *truncated = false;
    if (s < end && *s == '"') {
        s++;
        for (;;) {
            if (s == end) return -1; /* unterminated quoted string */
            char c = *s++;
            if (c == '"') break;
            if (c == '\\') {
                if (s == end) return -1;
                c = *s++;
            }
            if (c == '\r' || c == '\n' || c == 0) return -1;
            if (n + 1 < value_cap) value[n++] = c;
            else *truncated = true;
        }
    } else {
        while (s < end && *s != ';' && *s != ' ' && *s != '\t') {
            if (!is_tchar(*s)) return -1;
            if (n + 1 < value_cap) value[n++] = *s;
            else *truncated = true;
            s++;
        }
        if (!n) return -1;
    }
    value[n] = 0;
    *p = s;
    return 1;
}

int srv_multipart_boundary(const char *ct, char *out, size_t out_size, srv_error *e) {
    if (!srv_is_multipart_type(ct))
        return srv_fail(e, 400, NULL, "invalid_multipart", "Content-Type",
                        "Content-Type: expected multipart/form-data");
    while (*ct == ' ' || *ct == '\t') ct++;
    const char *p = ct + 19, *end = ct + strlen(ct);
    char name[32], value[128];
    bool truncated;
    out[0] = 0;
    int rc;
    while ((rc = next_param(&p, end, name, sizeof name, value, sizeof value, &truncated)) == 1) {
        if (strcasecmp(name, "boundary") != 0) continue;
        size_t n = strlen(value);
        if (truncated || n == 0 || n > SRV_MP_MAX_BOUNDARY || n + 1 > out_size || value[n - 1] == ' ')
            return srv_fail(e, 400, NULL, "invalid_multipart", "Content-Type",
                            "Content-Type: the multipart boundary must be 1 to 70 characters");
        for (size_t i = 0; i < n; i++)
            if (!is_bchar(value[i]))
                return srv_fail(e, 400, NULL, "invalid_multipart", "Content-Type",
                                "Content-Type: the multipart boundary has a character RFC 2046 does not allow");
        memcpy(out, value, n + 1);
    }
    if (rc < 0)
        return srv_fail(e, 400, NULL, "invalid_multipart", "Content-Type",
                        "Content-Type: malformed parameters after multipart/form-data");
    if (!out[0])
        return srv_fail(e, 400, NULL, "invalid_multipart", "Content-Type",
                        "Content-Type: multipart/form-data without a boundary parameter");
    return 0;
}

void srv_multipart_free(srv_mp_body *b) {
    if (!b) return;
    for (size_t i = 0; i < b->n; i++) {
        free(b->parts[i].name);
        free(b->parts[i].filename);
        free(b->parts[i].content_type);
    }
    free(b->parts);
    b->parts = NULL;
    b->n = 0;
}

static char *dup_n(const char *s, size_t n) {
    char *d = malloc(n + 1);
    if (!d) return NULL;
    memcpy(d, s, n);
    d[n] = 0;
    return d;
}

/* The headers of part `index` in [h, end) (CRLF-separated lines, the blank
 * line excluded) into *part. */
static int parse_headers(const char *h, const char *end, size_t index, srv_mp_part *part, srv_error *e) {
    bool has_disposition = false;
    while (h < end) {
        const char *eol = memmem(h, (size_t)(end - h), "\r\n", 2);
        if (!eol) eol = end;
        const char *colon = memchr(h, ':', (size_t)(eol - h));
        if (!colon || colon == h) return bad(e, "part %zu has a header line without a name and a colon", index);
        for (const char *q = h; q < colon; q++)
            if (!is_tchar(*q)) return bad(e, "part %zu has a malformed header name", index);
        const char *v = colon + 1;
        while (v < eol && (*v == ' ' || *v == '\t')) v++;
        const char *vend = eol;
        while (vend > v && (vend[-1] == ' ' || vend[-1] == '\t')) vend--;
        size_t name_len = (size_t)(colon - h);
        if (name_len == 19 && !strncasecmp(h, "Content-Disposition", 19)) {
            if (has_disposition) return bad(e, "part %zu has two Content-Disposition headers", index);
            has_disposition = true;
            if ((size_t)(vend - v) < 9 || strncasecmp(v, "form-data", 9) != 0 ||
                (v + 9 < vend && v[9] != ';' && v[9] != ' ' && v[9] != '\t'))
                return bad(e, "part %zu: Content-Disposition must be form-data", index);
            const char *p = v + 9;
            char pname[32], value[1024];
            bool truncated;
            int rc;
            while ((rc = next_param(&p, vend, pname, sizeof pname, value, sizeof value, &truncated)) == 1) {
                char **slot = !strcasecmp(pname, "name") ? &part->name
                              : !strcasecmp(pname, "filename") ? &part->filename : NULL;
                if (!slot) continue;
                if (truncated) return bad(e, "part %zu: a %s longer than 1023 bytes", index, pname);
                if (*slot) return bad(e, "part %zu: Content-Disposition gives %s twice", index, pname);
                if (!(*slot = strdup(value))) return oom(e);
            }
            if (rc < 0) return bad(e, "part %zu: malformed Content-Disposition parameters", index);
            if (!part->name) return bad(e, "part %zu: Content-Disposition without a name", index);
        } else if (name_len == 12 && !strncasecmp(h, "Content-Type", 12)) {
            if (part->content_type) return bad(e, "part %zu has two Content-Type headers", index);
            if (vend == v) return bad(e, "part %zu has an empty Content-Type", index);
            if (!(part->content_type = dup_n(v, (size_t)(vend - v)))) return oom(e);
        }
        h = eol + 2;
    }
    if (!has_disposition) return bad(e, "part %zu has no Content-Disposition header", index);
    return 0;
}

int srv_multipart_parse(const char *body, size_t len, const char *boundary, srv_mp_body *out, srv_error *e) {
    memset(out, 0, sizeof *out);
    const size_t blen = strlen(boundary);
    if (blen == 0 || blen > SRV_MP_MAX_BOUNDARY) return bad(e, "invalid boundary");
    char delim[SRV_MP_MAX_BOUNDARY + 5]; /* CRLF "--" boundary */
    const size_t dlen = blen + 4;
    memcpy(delim, "\r\n--", 4);
    memcpy(delim + 4, boundary, blen);
    /* The first delimiter: at the very start, or after a CRLF ending the preamble. */
    const char *end = body + len, *p;
    if (len >= dlen - 2 && !memcmp(body, delim + 2, dlen - 2)) {
        p = body + dlen - 2;
    } else {
        const char *f = memmem(body, len, delim, dlen);
        if (!f) return bad(e, "no boundary line (--%s) in the body", boundary);
        p = f + dlen;
    }
    size_t cap = 0;
    for (;;) {
        /* p is just after a delimiter: "--" closes; else padding and CRLF. */
        if (end - p >= 2 && p[0] == '-' && p[1] == '-') return 0; /* the epilogue is ignored */
        while (p < end && (*p == ' ' || *p == '\t')) p++;
        if (end - p < 2 || p[0] != '\r' || p[1] != '\n') {
            srv_multipart_free(out);
            return p >= end ? bad(e, "the body ends without the closing boundary (--%s--)", boundary)
                            : bad(e, "a boundary line is not followed by CRLF");
        }
        p += 2;
        const size_t index = out->n;
        if (index == SRV_MP_MAX_PARTS) {
            srv_multipart_free(out);
            return bad(e, "more than %d parts", SRV_MP_MAX_PARTS);
        }
        if (end - p >= 2 && p[0] == '\r' && p[1] == '\n') {
            srv_multipart_free(out);
            return bad(e, "part %zu has no headers (a Content-Disposition is required)", index);
        }
        size_t window = (size_t)(end - p) < SRV_MP_MAX_HEADERS ? (size_t)(end - p) : SRV_MP_MAX_HEADERS;
        const char *hend = memmem(p, window, "\r\n\r\n", 4);
        if (!hend) {
            srv_multipart_free(out);
            return (size_t)(end - p) <= SRV_MP_MAX_HEADERS
                       ? bad(e, "part %zu: its headers do not end with a blank line", index)
                       : bad(e, "part %zu: headers longer than 8192 bytes", index);
        }
        if (out->n == cap) {
            size_t ncap = cap ? cap * 2 : 4;
            srv_mp_part *parts = realloc(out->parts, ncap * sizeof *parts);
            if (!parts) {
                srv_multipart_free(out);
                return oom(e);
            }
            out->parts = parts;
            cap = ncap;
        }
        srv_mp_part *part = &out->parts[out->n++];
        memset(part, 0, sizeof *part);
        if (parse_headers(p, hend, index, part, e)) {
            srv_multipart_free(out);
            return -1;
        }
        const char *data = hend + 4;
        const char *next = memmem(data, (size_t)(end - data), delim, dlen);
        if (!next) {
            srv_multipart_free(out);
            return bad(e, "the body ends without the closing boundary (--%s--)", boundary);
        }
        part->data = data;
        part->len = (size_t)(next - data);
        p = next + dlen;
    }
}
