/* web_assets.h: the chat page, embedded in the binary.
 *
 * The build (cmake/web.cmake) bundles web/ and generates a C file with the
 * table below: index.html at /index.html, the rest under /assets/. The
 * server answers GET/HEAD / and /index.html with the page, /assets/NAME
 * with its file and /favicon.ico with the icon; with ETags (If-None-Match
 * gives 304), Cache-Control: no-cache (the names carry no hash, so every
 * use revalidates: a 304 costs a round trip, never a stale page), nosniff
 * and a strict Content-Security-Policy (scripts from this origin only, no
 * inline script, no plugins, no framing). No API key is needed for the page
 * itself: its requests to /api carry the key. A binary built without the
 * page (G3_WEB=OFF) answers / with a short note saying so. */
#ifndef G3_SERVER_WEB_ASSETS_H
#define G3_SERVER_WEB_ASSETS_H

#include <stdbool.h>
#include <stddef.h>

typedef struct srv_web_file {
    const char *path;          /* "/index.html", "/assets/app.js", ... */
    const char *content_type;
    const unsigned char *data;
    size_t len;
    const char *etag;          /* quoted, strong: "\"<hex>\"" */
} srv_web_file;

/* The generated table (build dir/generated/web_assets_data.c). */
extern const srv_web_file srv_web_files[];
extern const size_t srv_web_n_files;

/* The embedded file served at path ("/" is /index.html, /favicon.ico the
 * icon), or NULL. */
const srv_web_file *srv_web_find(const char *path);
/* The paths the page owns: /, /index.html, /assets/..., /favicon.ico. */
bool srv_web_is_page_path(const char *path);
/* Does an If-None-Match header's value match etag? ("*", a list, weak W/ tags.) */
bool srv_web_etag_matches(const char *if_none_match, const char *etag);

struct srv_exchange;
/* In http.c (which hides libmicrohttpd): a response whose body is not
 * copied (static bytes; NULL for none), with extra headers given as
 * name, value, ..., NULL lists (either list may be NULL). 0, or -1. */
int srv_reply_static(struct srv_exchange *x, int status, const char *content_type, const void *body, size_t len,
                     const char *const *headers, const char *const *more_headers);
/* Answers a GET or HEAD of a page path: 200 (or 304), 404 for an unknown
 * asset, the note when built without the page. 0, or -1 to drop the connection. */
int srv_web_asset(struct srv_exchange *x);

#endif
