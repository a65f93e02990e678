/* native_api.c: the routes of the native conversation API (/api/...):
 * which path is which operation (ids in paths: decimal, 1 to 2^63-1, else
 * 404), the checks before the body (method 405, API key 401, store 404
 * under --no-db, Content-Type 415, length 413), and the routes that only
 * read or change the store: list, create, get, patch, delete, export,
 * attachments, presets and info. The routes that generate are in
 * native_answer.c. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "gemma3_chat.h"
#include "server/multipart.h"
#include "server/native.h"
#include "server/native_request.h"

int srv_store_error(int status, const g3_error *ge, srv_error *e) {
    switch (status) {
    case G3_STORE_NOT_FOUND:
        return srv_fail(e, 404, NULL, "not_found", NULL, "%s", ge->msg);
    case G3_STORE_INVALID:
        return srv_fail(e, 400, NULL, "invalid_value", NULL, "%s", ge->msg);
    case G3_STORE_CONFLICT:
        return srv_fail(e, 409, NULL, "conflict", NULL, "%s", ge->msg);
    case G3_STORE_BUSY:
        return srv_fail(e, 503, "server_error", "store_busy", NULL, "%s", ge->msg);
    case G3_STORE_READONLY:
        return srv_fail(e, 503, "server_error", "store_read_only", NULL, "%s", ge->msg);
    case G3_STORE_FULL:
        return srv_fail(e, 507, "server_error", "store_full", NULL, "%s", ge->msg);
    default:
        return srv_fail(e, 500, "server_error", "store_error", NULL, "%s", ge->msg);
    }
}

int srv_reply_json(srv_exchange *x, int status, cJSON *o) {
    char *text = o ? cJSON_PrintUnformatted(o) : NULL;
    cJSON_Delete(o);
    if (!text) {
        srv_error e;
        srv_fail(&e, 500, "server_error", NULL, NULL, "out of memory");
        return srv_reply_error(x, &e);
    }
    return srv_reply(x, status, "application/json", text, strlen(text), NULL);
}

static int reply_fail(srv_exchange *x, const srv_error *e) { return srv_reply_error(x, e); }

/* ---- routing ------------------------------------------------------------- */

/* A decimal id: 1 to INT64_MAX, digits only. */
static bool parse_id(const char *s, size_t n, int64_t *out) {
    if (n == 0 || n > 19) return false;
    uint64_t v = 0;
    for (size_t i = 0; i < n; i++) {
        if (s[i] < '0' || s[i] > '9') return false;
        v = v * 10 + (uint64_t)(s[i] - '0'); /* 19 digits fit in 64 bits */
    }
    if (v == 0 || v > (uint64_t)INT64_MAX) return false;
    *out = (int64_t)v;
    return true;
}

/* The operation of a path, its id; 0 when unknown, -1 when the id is not one. */
static int parse_path(const char *path, int64_t *id) {
    static const char conv[] = "/api/conversations", att[] = "/api/attachments/";
    if (!strcmp(path, "/api/presets")) return SRV_OP_PRESETS;
    if (!strcmp(path, "/api/info")) return SRV_OP_INFO;
    if (!strcmp(path, conv)) return SRV_OP_CONVERSATIONS;
    if (!strncmp(path, att, sizeof att - 1)) {
        const char *s = path + sizeof att - 1;
        return parse_id(s, strlen(s), id) ? SRV_OP_ATTACHMENT : -1;
    }
    if (strncmp(path, conv, sizeof conv - 1) || path[sizeof conv - 1] != '/') return 0;
    const char *s = path + sizeof conv, *slash = strchr(s, '/');
    size_t n = slash ? (size_t)(slash - s) : strlen(s);
    if (!parse_id(s, n, id)) return -1;
    if (!slash) return SRV_OP_CONVERSATION;
    static const struct { const char *name; int op; } k_sub[] = {
        {"messages", SRV_OP_MESSAGES}, {"regenerate", SRV_OP_REGENERATE}, {"edit", SRV_OP_EDIT},
        {"stop", SRV_OP_STOP},         {"export", SRV_OP_EXPORT}};
    for (size_t i = 0; i < sizeof k_sub / sizeof *k_sub; i++)
        if (!strcmp(slash + 1, k_sub[i].name)) return k_sub[i].op;
    return 0;
}

static srv_route route_of(int op) {
    switch (op) {
    case SRV_OP_CONVERSATIONS: return SRV_ROUTE_API_CONVERSATIONS;
    case SRV_OP_CONVERSATION: return SRV_ROUTE_API_CONVERSATION;
    case SRV_OP_MESSAGES: case SRV_OP_REGENERATE: case SRV_OP_EDIT: return SRV_ROUTE_API_ANSWER;
    case SRV_OP_STOP: return SRV_ROUTE_API_STOP;
    case SRV_OP_EXPORT: return SRV_ROUTE_API_EXPORT;
    case SRV_OP_ATTACHMENT: return SRV_ROUTE_API_ATTACHMENT;
    default: return SRV_ROUTE_API_INFO;
    }
}

static const char *allow_of(int op) {
    switch (op) {
    case SRV_OP_CONVERSATIONS: return "GET, HEAD, POST, OPTIONS";
    case SRV_OP_CONVERSATION: return "GET, HEAD, PATCH, DELETE, OPTIONS";
    case SRV_OP_MESSAGES: case SRV_OP_REGENERATE: case SRV_OP_EDIT: case SRV_OP_STOP: return "POST, OPTIONS";
    default: return "GET, HEAD, OPTIONS";
    }
}

static bool method_allowed(int op, const char *m) {
    const char *allow = allow_of(op);
    size_t n = strlen(m);
    for (const char *p = allow; (p = strstr(p, m)); p += n)
        if ((p == allow || p[-1] == ' ') && (p[n] == ',' || p[n] == 0)) return strcmp(m, "OPTIONS") != 0;
    return false;
}

int srv_native_begin(srv_exchange *x, unsigned long long content_length, bool has_length) {
    int64_t id = 0;
    int op = parse_path(x->path, &id);
    char msg[400];
    if (op <= 0) {
        if (op < 0)
            snprintf(msg, sizeof msg, "not found: %.200s (ids are positive decimal numbers)", x->path);
        else
            snprintf(msg, sizeof msg, "unknown route %.16s %.200s (the native API: /api/conversations, "
                     "/api/conversations/{id}[/messages|/regenerate|/edit|/stop|/export], /api/attachments/{id}, "
                     "/api/presets, /api/info)", x->method, x->path);
        return srv_refuse(x, 404, op < 0 ? "not_found" : "unknown_url", NULL, msg);
    }
    x->api_op = op;
    x->api_id = id;
    x->route = route_of(op);
    const char *allow = allow_of(op), *m = x->method;
    if (!strcmp(m, "OPTIONS") && x->srv->cfg.cors_origin) return srv_reply(x, 204, NULL, NULL, 0, allow) ? -1 : 1;
    if (!method_allowed(op, m)) {
        snprintf(msg, sizeof msg, "method %.16s is not allowed on %.200s (use %s)", m, x->path, allow);
        return srv_refuse(x, 405, "method_not_allowed", allow, msg);
    }
    int rc = srv_check_key(x);
    if (rc) return rc;
    if (!x->srv->cfg.store && op != SRV_OP_PRESETS && op != SRV_OP_INFO)
        return srv_refuse(x, 404, "no_store", NULL,
                          "this server runs without a conversation store (started with --no-db): the conversation "
                          "routes are off; /v1/chat/completions works");
    bool has_body = !strcmp(m, "POST") || !strcmp(m, "PATCH");
    if (!has_body) return 0; /* answered when the (empty) body is in */
    const char *ct = srv_header(x, "Content-Type");
    bool multipart_ok = op == SRV_OP_MESSAGES || op == SRV_OP_EDIT;
    bool empty_ok = op == SRV_OP_REGENERATE || op == SRV_OP_STOP || op == SRV_OP_CONVERSATIONS;
    bool type_ok = srv_is_json_type(ct) || (multipart_ok && srv_is_multipart_type(ct)) ||
                   (empty_ok && !ct && (!has_length || content_length == 0));
    if (!type_ok) {
        snprintf(msg, sizeof msg, "Content-Type must be application/json%s, got '%.80s'",
                 multipart_ok ? " or multipart/form-data" : "", ct ? ct : "(none)");
        return srv_refuse(x, 415, "unsupported_media_type", NULL, msg);
    }
    if (has_length && content_length > x->srv->cfg.max_body) {
        snprintf(msg, sizeof msg, "the request body is %llu bytes; at most %zu (--max-body)", content_length,
                 x->srv->cfg.max_body);
        return srv_refuse(x, 413, "request_too_large", NULL, msg);
    }
    return 0;
}

/* ---- conversations ------------------------------------------------------- */

static int reply_conv(srv_exchange *x, int status, int64_t id) {
    srv_error e;
    g3_error ge;
    g3_store_conv c;
    int rc = g3_store_get(x->srv->cfg.store, id, &c, &ge);
    if (rc) {
        srv_store_error(rc, &ge, &e);
        return reply_fail(x, &e);
    }
    char *json = g3_store_conv_to_json(&c);
    g3_store_conv_free(&c);
    if (!json) {
        srv_fail(&e, 500, "server_error", NULL, NULL, "out of memory");
        return reply_fail(x, &e);
    }
    return srv_reply(x, status, "application/json", json, strlen(json), NULL);
}

/* A cursor "UPDATEDAT_ID" (both positive decimals). */
static bool parse_cursor(const char *s, int64_t *updated, int64_t *id) {
    const char *us = strchr(s, '_');
    return us && parse_id(s, (size_t)(us - s), updated) && parse_id(us + 1, strlen(us + 1), id);
}

static int list(srv_exchange *x) {
    srv_error e;
    g3_store_list_params p = {.q = srv_query(x, "q"), .limit = 50};
    const char *limit = srv_query(x, "limit"), *before = srv_query(x, "before");
    if (limit) {
        int64_t v = 0;
        if (!parse_id(limit, strlen(limit), &v) || v > 1000) {
            srv_bad_field(&e, "invalid_value", "limit", "expected an integer from 1 to 1000, got '%.40s'", limit);
            return reply_fail(x, &e);
        }
        p.limit = (uint32_t)v;
    }
    if (before && before[0] && !parse_cursor(before, &p.before_updated_at, &p.before_id)) {
        srv_bad_field(&e, "invalid_value", "before", "not a cursor from next_before: '%.40s'", before);
        return reply_fail(x, &e);
    }
    g3_store_list l;
    g3_error ge;
    int rc = g3_store_list_convs(x->srv->cfg.store, &p, &l, &ge);
    if (rc) {
        srv_store_error(rc, &ge, &e);
        return reply_fail(x, &e);
    }
    cJSON *o = cJSON_CreateObject(), *arr = o ? cJSON_AddArrayToObject(o, "conversations") : NULL;
    bool ok = arr != NULL;
    for (size_t i = 0; ok && i < l.n; i++) {
        const g3_store_conv *c = &l.items[i];
        cJSON *it = cJSON_CreateObject();
        ok = it && cJSON_AddNumberToObject(it, "id", (double)c->id) &&
             cJSON_AddStringToObject(it, "title", c->title ? c->title : "") &&
             cJSON_AddStringToObject(it, "preset", c->preset ? c->preset : "") &&
             cJSON_AddNumberToObject(it, "updated_at", (double)c->updated_at) &&
             cJSON_AddNumberToObject(it, "created_at", (double)c->created_at) &&
             cJSON_AddNumberToObject(it, "n_messages", c->n_turns);
        if (it) cJSON_AddItemToArray(arr, it);
    }
    if (ok && l.n == p.limit && l.n) {
        char cursor[48];
        snprintf(cursor, sizeof cursor, "%lld_%lld", (long long)l.items[l.n - 1].updated_at,
                 (long long)l.items[l.n - 1].id);
        ok = cJSON_AddStringToObject(o, "next_before", cursor) != NULL;
    } else if (ok) {
        ok = cJSON_AddNullToObject(o, "next_before") != NULL;
    }
    g3_store_list_free(&l);
    if (!ok) {
        cJSON_Delete(o);
        o = NULL;
    }
    return srv_reply_json(x, 200, o);
}

static int create(srv_exchange *x, const char *body, size_t len) {
    srv_error e;
    srv_conv_request r;
    g3_store_settings defaults = g3_store_settings_defaults();
    if (srv_conv_request_parse(body, len, true, &defaults, &r, &e)) return reply_fail(x, &e);
    g3_store_conv_fields f = g3_store_conv_fields_defaults();
    f.title = r.title && r.title[0] ? r.title : NULL;
    f.preset = r.preset;
    f.system = r.system;
    f.settings = &r.settings;
    int64_t id;
    g3_error ge;
    int rc = g3_store_create(x->srv->cfg.store, &f, &id, &ge);
    srv_conv_request_free(&r);
    if (rc) {
        srv_store_error(rc, &ge, &e);
        return reply_fail(x, &e);
    }
    return reply_conv(x, 201, id);
}

static int patch(srv_exchange *x, const char *body, size_t len) {
    srv_error e;
    g3_error ge;
    g3_store_conv c;
    int rc = g3_store_get(x->srv->cfg.store, x->api_id, &c, &ge);
    if (rc) {
        srv_store_error(rc, &ge, &e);
        return reply_fail(x, &e);
    }
    srv_conv_request r;
    rc = srv_conv_request_parse(body, len, false, &c.settings, &r, &e);
    g3_store_conv_free(&c);
    if (rc) return reply_fail(x, &e);
    g3_store_conv_fields f = g3_store_conv_fields_defaults();
    f.title = r.title;
    f.preset = r.preset;
    f.system = r.system;
    f.settings = r.has_settings ? &r.settings : NULL;
    rc = g3_store_update(x->srv->cfg.store, x->api_id, &f, &ge);
    srv_conv_request_free(&r);
    if (rc) {
        srv_store_error(rc, &ge, &e);
        return reply_fail(x, &e);
    }
    return reply_conv(x, 200, x->api_id);
}

static int delete_conv(srv_exchange *x) {
    srv_native_cancel(x->srv, x->api_id);
    g3_error ge;
    int rc = g3_store_delete(x->srv->cfg.store, x->api_id, &ge);
    if (rc) {
        srv_error e;
        srv_store_error(rc, &ge, &e);
        return reply_fail(x, &e);
    }
    return srv_reply(x, 204, NULL, NULL, 0, NULL);
}

/* A file name for Content-Disposition from a title: letters, digits, space,
 * '.', '-', '_' kept, others '_'; at most 60 bytes; never empty or hidden. */
static void safe_filename(const char *title, int64_t id, const char *ext, char *out, size_t n) {
    char base[64];
    size_t k = 0;
    for (const char *p = title ? title : ""; *p && k < 60; p++) {
        char c = *p;
        bool ok = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == ' ' ||
                  c == '-' || c == '_' || (c == '.' && k > 0);
        if (ok) base[k++] = c;
        else if (k && base[k - 1] != '_') base[k++] = '_';
    }
    while (k && (base[k - 1] == ' ' || base[k - 1] == '_' || base[k - 1] == '.')) k--;
    base[k] = 0;
    if (!k) snprintf(out, n, "conversation-%lld.%s", (long long)id, ext);
    else snprintf(out, n, "%s.%s", base, ext);
}

static int export_conv(srv_exchange *x) {
    srv_error e;
    const char *format = srv_query(x, "format");
    if (!format) format = "json";
    bool md = !strcmp(format, "md") || !strcmp(format, "markdown");
    if (!md && strcmp(format, "json") != 0) {
        srv_bad_field(&e, "invalid_value", "format", "expected json or md, got '%.40s'", format);
        return reply_fail(x, &e);
    }
    g3_error ge;
    g3_store_conv c;
    int rc = g3_store_get(x->srv->cfg.store, x->api_id, &c, &ge);
    if (rc) {
        srv_store_error(rc, &ge, &e);
        return reply_fail(x, &e);
    }
    char *text = md ? g3_store_conv_to_markdown(&c) : g3_store_conv_to_json(&c);
    char name[96], disposition[160];
    safe_filename(c.title, c.id, md ? "md" : "json", name, sizeof name);
    g3_store_conv_free(&c);
    if (!text) {
        srv_fail(&e, 500, "server_error", NULL, NULL, "out of memory");
        return reply_fail(x, &e);
    }
    snprintf(disposition, sizeof disposition, "attachment; filename=\"%s\"", name);
    const char *headers[] = {"Content-Disposition", disposition, "X-Content-Type-Options", "nosniff", NULL};
    return srv_reply_with(x, 200, md ? "text/markdown; charset=utf-8" : "application/json", text, strlen(text),
                          headers);
}

/* Content-Disposition for a stored file name: an ASCII fallback (quotes,
 * backslashes, controls and non-ASCII as '_') and RFC 5987's filename* with
 * the name percent-encoded. */
static void disposition_of(const char *name, char *out, size_t n) {
    char ascii[256], enc[800];
    size_t a = 0, k = 0;
    for (const unsigned char *p = (const unsigned char *)(name && name[0] ? name : "attachment"); *p; p++) {
        if (a + 1 < sizeof ascii)
            ascii[a++] = (*p < 0x20 || *p >= 0x7f || *p == '"' || *p == '\\' || *p == '/' || *p == ';') ? '_'
                                                                                                         : (char)*p;
        bool plain = (*p >= 'a' && *p <= 'z') || (*p >= 'A' && *p <= 'Z') || (*p >= '0' && *p <= '9') ||
                     strchr("!#$&+-.^_`|~", *p);
        if (k + 4 >= sizeof enc) break;
        if (plain) enc[k++] = (char)*p;
        else k += (size_t)snprintf(enc + k, sizeof enc - k, "%%%02X", *p);
    }
    ascii[a] = 0;
    enc[k] = 0;
    snprintf(out, n, "attachment; filename=\"%s\"; filename*=UTF-8''%s", ascii, enc);
}

static int attachment(srv_exchange *x) {
    srv_error e;
    g3_error ge;
    g3_store_attachment a;
    int rc = g3_store_attachment_get(x->srv->cfg.store, x->api_id, &a, &ge);
    if (rc) {
        srv_store_error(rc, &ge, &e);
        return reply_fail(x, &e);
    }
    char disposition[1200], type[160];
    disposition_of(a.name, disposition, sizeof disposition);
    /* The stored type is what the client declared or we sniffed: sent as is
     * (nosniff, sandboxed), but only when it looks like a media type. */
    bool plain = a.media_type && a.media_type[0] && strlen(a.media_type) < sizeof type;
    for (const char *p = a.media_type; plain && *p; p++) plain = *p > 0x20 && *p < 0x7f && *p != ',';
    snprintf(type, sizeof type, "%s", plain ? a.media_type : "application/octet-stream");
    const char *headers[] = {"Content-Disposition", disposition, "X-Content-Type-Options", "nosniff",
                             "Content-Security-Policy", "sandbox", NULL};
    uint8_t *data = a.data;
    size_t size = (size_t)a.size;
    a.data = NULL;
    g3_store_attachment_free(&a);
    if (!data) return srv_reply_with(x, 200, type, NULL, 0, headers);
    return srv_reply_with(x, 200, type, (char *)data, size, headers);
}

/* ---- presets and info ---------------------------------------------------- */

static int presets(srv_exchange *x) {
    cJSON *o = cJSON_CreateObject(), *arr = o ? cJSON_AddArrayToObject(o, "presets") : NULL,
          *set = o ? cJSON_AddObjectToObject(o, "settings") : NULL;
    bool ok = arr && set;
    for (size_t i = 0; ok && i < g3_preset_count(); i++) {
        const g3_preset *p = g3_preset_at(i);
        cJSON *it = cJSON_CreateObject();
        ok = it && cJSON_AddStringToObject(it, "key", p->key) && cJSON_AddStringToObject(it, "label", p->name) &&
             cJSON_AddStringToObject(it, "system", p->system_prompt);
        if (it) cJSON_AddItemToArray(arr, it);
    }
    for (size_t i = 0; ok && i < SRV_N_SETTINGS; i++) {
        const srv_setting_range *r = &srv_setting_ranges[i];
        cJSON *it = cJSON_AddObjectToObject(set, r->key);
        ok = it && cJSON_AddNumberToObject(it, "min", r->min) && cJSON_AddNumberToObject(it, "max", r->max) &&
             cJSON_AddNumberToObject(it, "default", r->def);
    }
    if (!ok) {
        cJSON_Delete(o);
        o = NULL;
    }
    return srv_reply_json(x, 200, o);
}

static int info(srv_exchange *x) {
    srv_server *s = x->srv;
    g3_engine *e = atomic_load(&s->engine);
    cJSON *o = cJSON_CreateObject();
    bool ok = o && cJSON_AddStringToObject(o, "model", e ? g3_engine_model_name(e) : s->model_id) &&
              cJSON_AddStringToObject(o, "model_id", s->model_id) &&
              cJSON_AddBoolToObject(o, "loading", e == NULL) &&
              cJSON_AddNumberToObject(o, "n_ctx", e ? g3_engine_n_ctx(e) : 0) &&
              cJSON_AddBoolToObject(o, "vision", e && g3_engine_has_vision(e)) &&
              /* MP4 and MOV attachments: their frames need the vision encoder too */
              cJSON_AddBoolToObject(o, "video", e && g3_engine_has_vision(e)) &&
              cJSON_AddNumberToObject(o, "max_body", (double)s->cfg.max_body) &&
              (s->cfg.store ? cJSON_AddStringToObject(o, "store", g3_store_path(s->cfg.store)) != NULL
                            : cJSON_AddNullToObject(o, "store") != NULL);
    if (!ok) {
        cJSON_Delete(o);
        o = NULL;
    }
    return srv_reply_json(x, 200, o);
}

int srv_native_body(srv_exchange *x, const char *body, size_t len) {
    const char *m = x->method;
    bool get = !strcmp(m, "GET") || !strcmp(m, "HEAD");
    switch (x->api_op) {
    case SRV_OP_CONVERSATIONS:
        return get ? list(x) : create(x, body, len);
    case SRV_OP_CONVERSATION:
        if (get) return reply_conv(x, 200, x->api_id);
        return !strcmp(m, "PATCH") ? patch(x, body, len) : delete_conv(x);
    case SRV_OP_MESSAGES:
    case SRV_OP_REGENERATE:
    case SRV_OP_EDIT:
        return srv_native_answer(x, body, len);
    case SRV_OP_STOP:
        return srv_native_stop(x);
    case SRV_OP_EXPORT:
        return export_conv(x);
    case SRV_OP_ATTACHMENT:
        return attachment(x);
    case SRV_OP_PRESETS:
        return presets(x);
    default:
        return info(x);
    }
}
