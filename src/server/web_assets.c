/* web_assets.c: serves the embedded chat page (see web_assets.h). */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "server/server_internal.h"
#include "server/web_assets.h"

/* Everything the page needs is on this origin; the sanitized Markdown may
 * hold no script and the CSP makes sure of it a second time. Images: the
 * page's own, and blob:/data: for attachment previews. */
#define WEB_CSP                                                                                                  \
    "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' blob: data:; connect-src 'self'; " \
    "font-src 'self'; manifest-src 'self'; object-src 'none'; base-uri 'none'; form-action 'self'; "            \
    "frame-ancestors 'none'"

#define ASSETS_PREFIX "/assets/"

static const char k_no_page[] =
    "gemma-chat serve\n\n"
    "This binary was built without the web chat page (configured with -DG3_WEB=OFF, or without node and npm).\n"
    "The APIs work: /api/info, /api/conversations, /v1/chat/completions, /v1/models, /health, /metrics.\n"
    "To get the page, install nodejs and npm and build again (cmake -DG3_WEB=ON).\n";

const srv_web_file *srv_web_find(const char *path) {
    if (!strcmp(path, "/")) path = "/index.html";
    else if (!strcmp(path, "/favicon.ico")) path = ASSETS_PREFIX "favicon.svg";
    for (size_t i = 0; i < srv_web_n_files; i++)
        if (!strcmp(srv_web_files[i].path, path)) return &srv_web_files[i];
    return NULL;
}

bool srv_web_is_page_path(const char *path) {
    return !strcmp(path, "/") || !strcmp(path, "/index.html") || !strcmp(path, "/favicon.ico") ||
           !strncmp(path, ASSETS_PREFIX, strlen(ASSETS_PREFIX));
}

bool srv_web_etag_matches(const char *inm, const char *etag) {
    if (!inm || !etag) return false;
    size_t elen = strlen(etag);
    const char *p = inm;
    while (*p) {
        while (*p == ' ' || *p == '\t' || *p == ',') p++;
        if (!*p) break;
        const char *start = p;
        while (*p && *p != ',') p++;
        const char *end = p;
        while (end > start && (end[-1] == ' ' || end[-1] == '\t')) end--;
        if (end - start == 1 && *start == '*') return true;
        /* If-None-Match compares weakly (RFC 9110 13.1.2): W/"x" matches "x". */
        if (end - start > 2 && start[0] == 'W' && start[1] == '/') start += 2;
        if ((size_t)(end - start) == elen && !memcmp(start, etag, elen)) return true;
    }
    return false;
}

int srv_web_asset(srv_exchange *x) {
    const char *common[] = {"X-Content-Type-Options", "nosniff", "Content-Security-Policy", WEB_CSP,
                            "Referrer-Policy", "no-referrer", "X-Frame-Options", "DENY", NULL};
    if (srv_web_n_files == 0) {
        if (strcmp(x->path, "/") && strcmp(x->path, "/index.html")) goto not_found;
        return srv_reply_static(x, 200, "text/plain; charset=utf-8", k_no_page, sizeof k_no_page - 1, common, NULL);
    }
    const srv_web_file *f = srv_web_find(x->path);
    if (!f) goto not_found;
    const char *cache[] = {"ETag", f->etag, "Cache-Control", "no-cache", NULL};
    if (srv_web_etag_matches(srv_header(x, "If-None-Match"), f->etag))
        return srv_reply_static(x, 304, NULL, NULL, 0, common, cache);
    return srv_reply_static(x, 200, f->content_type, f->data, f->len, common, cache);

not_found:;
    srv_error e;
    srv_fail(&e, 404, "invalid_request_error", "unknown_url", NULL, "no such file: %.200s", x->path);
    return srv_reply_error(x, &e);
}
