/* routes.c: which request goes where, and the checks every request passes
 * before its body is read: the route (404), the method (405, with Allow),
 * the API key on /v1 routes (401), the content type of a body (415) and
 * its declared length (413). Then the small routes: /health, /metrics,
 * /v1/models. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "server/server_internal.h"
#include "server/web_assets.h"

typedef struct route_def {
    const char *path;
    srv_route route;
    bool post;          /* POST with a JSON body (else GET/HEAD) */
    bool v1;            /* under /v1: the API key applies */
} route_def;

static const route_def k_routes[] = {
    {"/v1/chat/completions", SRV_ROUTE_CHAT, true, true},
    {"/v1/models", SRV_ROUTE_MODELS, false, true},
    {"/health", SRV_ROUTE_HEALTH, false, false},
    {"/metrics", SRV_ROUTE_METRICS, false, false},
};

#define MODELS_PREFIX "/v1/models/"

static const route_def *find_route(const char *path) {
    for (size_t i = 0; i < sizeof k_routes / sizeof *k_routes; i++)
        if (!strcmp(path, k_routes[i].path)) return &k_routes[i];
    static const route_def model = {MODELS_PREFIX, SRV_ROUTE_MODELS, false, true};
    if (!strncmp(path, MODELS_PREFIX, strlen(MODELS_PREFIX)) && path[strlen(MODELS_PREFIX)]) return &model;
    return NULL;
}

static int refuse(srv_exchange *x, int status, const char *type, const char *code, const char *param,
                  const char *allow, const char *msg) {
    srv_error e;
    srv_fail(&e, status, type, code, param, "%s", msg);
    char *json = srv_error_json(&e);
    if (!json) return srv_reply(x, 500, "text/plain", NULL, 0, NULL) ? -1 : 1;
    return srv_reply(x, status, "application/json", json, strlen(json), allow) ? -1 : 1;
}

int srv_refuse(srv_exchange *x, int status, const char *code, const char *allow, const char *msg) {
    return refuse(x, status, status >= 500 ? "server_error" : "invalid_request_error", code, NULL, allow, msg);
}

/* Compares without stopping at the first difference: the time a wrong key
 * takes says nothing about the right one. */
static bool same_secret(const char *a, const char *b) {
    size_t la = strlen(a), lb = strlen(b);
    unsigned char diff = (unsigned char)(la != lb);
    for (size_t i = 0; i < la; i++) diff |= (unsigned char)(a[i] ^ b[lb ? i % lb : 0]);
    return diff == 0;
}

int srv_check_key(srv_exchange *x) {
    const char *key = x->srv->cfg.api_key;
    if (!key) return 0;
    const char *auth = srv_header(x, "Authorization");
    if (!auth)
        return refuse(x, 401, "invalid_request_error", "invalid_api_key", NULL, NULL,
                      "missing API key: send the header 'Authorization: Bearer KEY'");
    if (strncasecmp(auth, "Bearer ", 7) != 0)
        return refuse(x, 401, "invalid_request_error", "invalid_api_key", NULL, NULL,
                      "the Authorization header must be 'Bearer KEY'");
    const char *given = auth + 7;
    while (*given == ' ') given++;
    if (!same_secret(given, key))
        return refuse(x, 401, "invalid_request_error", "invalid_api_key", NULL, NULL, "invalid API key");
    return 0;
}

/* application/json, with at most a charset parameter that says UTF-8. */
bool srv_is_json_type(const char *ct) {
    if (!ct) return false;
    while (*ct == ' ') ct++;
    if (strncasecmp(ct, "application/json", 16) != 0) return false;
    const char *p = ct + 16;
    while (*p == ' ') p++;
    if (!*p) return true;
    if (*p != ';') return false;
    p++;
    while (*p == ' ') p++;
    if (strncasecmp(p, "charset=", 8) != 0) return false;
    p += 8;
    if (*p == '"') p++;
    return !strncasecmp(p, "utf-8", 5) && (p[5] == 0 || p[5] == '"' || p[5] == ' ');
}

int srv_route_begin(srv_exchange *x, unsigned long long content_length, bool has_length) {
    if (!strncmp(x->path, "/api/", 5)) return srv_native_begin(x, content_length, has_length);
    if (srv_web_is_page_path(x->path)) { /* the chat page: no key (its API calls carry it) */
        x->route = SRV_ROUTE_WEB;
        if (!strcmp(x->method, "GET") || !strcmp(x->method, "HEAD")) return 0;
        char msg[160];
        snprintf(msg, sizeof msg, "method %.16s is not allowed on %.100s (use GET)", x->method, x->path);
        return refuse(x, 405, "invalid_request_error", "method_not_allowed", NULL, "GET, HEAD", msg);
    }
    const route_def *r = find_route(x->path);
    if (!r) {
        char msg[400];
        snprintf(msg, sizeof msg, "unknown route %.16s %.200s (this server answers POST /v1/chat/completions, "
                 "GET /v1/models, GET /health, GET /metrics)", x->method, x->path);
        return refuse(x, 404, "invalid_request_error", "unknown_url", NULL, NULL, msg);
    }
    x->route = r->route;
    const char *allow = r->post ? "POST, OPTIONS" : "GET, HEAD, OPTIONS";
    const char *m = x->method;
    if (!strcmp(m, "OPTIONS") && x->srv->cfg.cors_origin) /* a CORS preflight: no key needed */
        return srv_reply(x, 204, NULL, NULL, 0, allow) ? -1 : 1;
    bool method_ok = r->post ? !strcmp(m, "POST") : (!strcmp(m, "GET") || !strcmp(m, "HEAD"));
    if (!method_ok) {
        char msg[160];
        snprintf(msg, sizeof msg, "method %.16s is not allowed on %s (use %s)", m, r->path,
                 r->post ? "POST" : "GET");
        return refuse(x, 405, "invalid_request_error", "method_not_allowed", NULL, allow, msg);
    }
    if (r->v1) {
        int rc = srv_check_key(x);
        if (rc) return rc;
    }
    if (!r->post) return 0; /* answered when the (empty) body is in: answering now would close the connection */
    const char *ct = srv_header(x, "Content-Type");
    if (!srv_is_json_type(ct)) {
        char msg[200];
        snprintf(msg, sizeof msg, "Content-Type must be application/json, got '%.80s'", ct ? ct : "(none)");
        return refuse(x, 415, "invalid_request_error", "unsupported_media_type", NULL, NULL, msg);
    }
    if (has_length && content_length > x->srv->cfg.max_body) {
        char msg[160];
        snprintf(msg, sizeof msg, "the request body is %llu bytes; at most %zu", content_length,
                 x->srv->cfg.max_body);
        return refuse(x, 413, "invalid_request_error", "request_too_large", NULL, NULL, msg);
    }
    return 0;
}

/* ---- the small routes ---------------------------------------------------- */

static int reply_text(srv_exchange *x, int status, const char *type, char *text) {
    if (!text) return refuse(x, 500, "server_error", NULL, NULL, NULL, "out of memory") < 0 ? -1 : 0;
    return srv_reply(x, status, type, text, strlen(text), NULL);
}

static int health(srv_exchange *x) {
    g3_engine *e = atomic_load(&x->srv->engine);
    cJSON *o = cJSON_CreateObject();
    char *body = NULL;
    bool ok = o && cJSON_AddStringToObject(o, "status", e ? "ok" : "loading") &&
              cJSON_AddStringToObject(o, "model", x->srv->model_id);
    if (ok && e)
        ok = cJSON_AddNumberToObject(o, "slots", g3_engine_n_slots(e)) &&
             cJSON_AddNumberToObject(o, "n_ctx", g3_engine_n_ctx(e));
    if (ok) body = cJSON_PrintUnformatted(o);
    cJSON_Delete(o);
    return reply_text(x, e ? 200 : 503, "application/json", body);
}

static int metrics(srv_exchange *x) {
    g3_engine *e = atomic_load(&x->srv->engine);
    g3_engine_metrics em;
    if (e) g3_engine_get_metrics(e, &em);
    char *text = srv_metrics_text(&x->srv->metrics, e ? &em : NULL, e ? g3_engine_n_slots(e) : 0, e != NULL);
    return reply_text(x, 200, "text/plain; version=0.0.4; charset=utf-8", text);
}

static cJSON *model_object(srv_server *s) {
    cJSON *o = cJSON_CreateObject();
    if (o && cJSON_AddStringToObject(o, "id", s->model_id) && cJSON_AddStringToObject(o, "object", "model") &&
        cJSON_AddNumberToObject(o, "created", (double)s->started) && cJSON_AddStringToObject(o, "owned_by", "gemma-chat"))
        return o;
    cJSON_Delete(o);
    return NULL;
}

static int models(srv_exchange *x) {
    srv_server *s = x->srv;
    char *text = NULL;
    if (!strcmp(x->path, "/v1/models")) {
        cJSON *o = cJSON_CreateObject(), *data, *m = model_object(s);
        if (o && m && cJSON_AddStringToObject(o, "object", "list") && (data = cJSON_AddArrayToObject(o, "data"))) {
            cJSON_AddItemToArray(data, m);
            m = NULL;
            text = cJSON_PrintUnformatted(o);
        }
        cJSON_Delete(m);
        cJSON_Delete(o);
        return reply_text(x, 200, "application/json", text);
    }
    const char *id = x->path + strlen(MODELS_PREFIX);
    if (strcmp(id, s->model_id) != 0) {
        char msg[300];
        snprintf(msg, sizeof msg, "model '%.200s' is not served here (GET /v1/models)", id);
        return refuse(x, 404, "invalid_request_error", "model_not_found", "model", NULL, msg) < 0 ? -1 : 0;
    }
    cJSON *m = model_object(s);
    text = m ? cJSON_PrintUnformatted(m) : NULL;
    cJSON_Delete(m);
    return reply_text(x, 200, "application/json", text);
}

int srv_route_body(srv_exchange *x, const char *body, size_t len) {
    if (!strncmp(x->path, "/api/", 5)) return srv_native_body(x, body, len);
    switch (x->route) {
    case SRV_ROUTE_CHAT:
        return srv_chat_completions(x, body, len);
    case SRV_ROUTE_MODELS:
        return models(x);
    case SRV_ROUTE_HEALTH:
        return health(x);
    case SRV_ROUTE_METRICS:
        return metrics(x);
    case SRV_ROUTE_WEB:
        return srv_web_asset(x);
    default:
        return refuse(x, 404, "invalid_request_error", "unknown_url", NULL, NULL, "unknown route") < 0 ? -1 : 0;
    }
}
