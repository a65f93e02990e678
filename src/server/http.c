/* http.c: the server on GNU libmicrohttpd.
 *
 * Threading: one thread per connection (MHD_USE_THREAD_PER_CONNECTION).
 * A chat completion lasts seconds and its connection's thread mostly waits:
 * on the engine's eventfd and, at the same time, on the client's socket, so
 * a client that disconnects (streaming or not) cancels its generation at
 * once. That wait needs the socket to belong to the waiting thread, which
 * thread-per-connection gives for free; with internal polling and suspended
 * connections, a suspended socket is watched by nobody, and a shared
 * watcher thread would race libmicrohttpd for the descriptor. The cost, a
 * thread (small stack) per open connection, is bounded by max_connections;
 * requests beyond the engine's slots wait in its queue anyway.
 *
 * Bodies accumulate up to max_body (a larger Content-Length is refused with
 * 413 before the body is read; a chunked body that grows past it is
 * dropped and answered with 413 at its end); idle connections close after timeout_s,
 * except while a request is being answered. */
#include <errno.h>
#include <microhttpd.h>
#include <netdb.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <time.h>
#include <unistd.h>

#include "base/error.h"
#include "server/web_assets.h"
#include "server/server_internal.h"

/* Per request: its exchange and its body so far. */
typedef struct request_state {
    srv_exchange x;
    char *body;
    size_t len, cap;
    bool body_done;
    bool too_large, out_of_memory;
    size_t dropped;      /* body bytes dropped after the limit */
} request_state;

/* ---- answers ------------------------------------------------------------- */

const char *srv_header(srv_exchange *x, const char *name) {
    return MHD_lookup_connection_value(x->conn, MHD_HEADER_KIND, name);
}

int srv_client_fd(srv_exchange *x) {
    const union MHD_ConnectionInfo *ci = MHD_get_connection_info(x->conn, MHD_CONNECTION_INFO_CONNECTION_FD);
    return ci ? ci->connect_fd : -1;
}

static void log_line(srv_exchange *x, int status) {
    if (x->srv->cfg.verbose) fprintf(stderr, "gemma-chat serve: %s %s %d\n", x->method, x->path, status);
}

static void add_common_headers(srv_exchange *x, struct MHD_Response *r) {
    if (x->srv->cfg.cors_origin) {
        MHD_add_response_header(r, "Access-Control-Allow-Origin", x->srv->cfg.cors_origin);
        MHD_add_response_header(r, "Vary", "Origin");
    }
}

static int queue(srv_exchange *x, int status, struct MHD_Response *r) {
    add_common_headers(x, r);
    enum MHD_Result ok = MHD_queue_response(x->conn, (unsigned)status, r);
    MHD_destroy_response(r);
    if (ok != MHD_YES) return -1;
    x->answered = true;
    srv_metrics_count(&x->srv->metrics, x->route, status);
    log_line(x, status);
    return 0;
}

/* A response owning body (malloc'd, or NULL for none), with its type; NULL
 * (body freed) when out of memory. */
static struct MHD_Response *new_response(const char *content_type, char *body, size_t len) {
    struct MHD_Response *r =
        body ? MHD_create_response_from_buffer(len, body, MHD_RESPMEM_MUST_FREE)
             : MHD_create_response_from_buffer(0, (void *)"", MHD_RESPMEM_PERSISTENT);
    if (!r) {
        free(body);
        return NULL;
    }
    if (content_type) MHD_add_response_header(r, MHD_HTTP_HEADER_CONTENT_TYPE, content_type);
    return r;
}

int srv_reply(srv_exchange *x, int status, const char *content_type, char *body, size_t len, const char *allow) {
    struct MHD_Response *r = new_response(content_type, body, len);
    if (!r) return -1;
    if (allow) MHD_add_response_header(r, MHD_HTTP_HEADER_ALLOW, allow);
    if (status == 401) MHD_add_response_header(r, MHD_HTTP_HEADER_WWW_AUTHENTICATE, "Bearer");
    if (status == 429 || status == 503) MHD_add_response_header(r, MHD_HTTP_HEADER_RETRY_AFTER, "1");
    if (x->srv->cfg.cors_origin && !strcmp(x->method, "OPTIONS")) {
        MHD_add_response_header(r, "Access-Control-Allow-Methods", allow ? allow : "GET, POST, OPTIONS");
        MHD_add_response_header(r, "Access-Control-Allow-Headers", "Authorization, Content-Type");
        MHD_add_response_header(r, "Access-Control-Max-Age", "600");
    }
    return queue(x, status, r);
}

int srv_reply_with(srv_exchange *x, int status, const char *content_type, char *body, size_t len,
                   const char *const *headers) {
    struct MHD_Response *r = new_response(content_type, body, len);
    if (!r) return -1;
    for (const char *const *h = headers; h && h[0] && h[1]; h += 2) MHD_add_response_header(r, h[0], h[1]);
    return queue(x, status, r);
}

const char *srv_query(srv_exchange *x, const char *name) {
    return MHD_lookup_connection_value(x->conn, MHD_GET_ARGUMENT_KIND, name);
}

int srv_reply_error(srv_exchange *x, const srv_error *e) {
    char *json = srv_error_json(e);
    if (!json) return srv_reply(x, 500, "text/plain", strdup("out of memory"), 13, NULL);
    return srv_reply(x, e->status, "application/json", json, strlen(json), NULL);
}

int srv_reply_static(srv_exchange *x, int status, const char *content_type, const void *body, size_t len,
                     const char *const *headers, const char *const *more_headers) {
    /* PERSISTENT: the bytes are the binary's own (the embedded page), never copied or freed. */
    struct MHD_Response *r = MHD_create_response_from_buffer(body ? len : 0, (void *)(body ? body : ""),
                                                             MHD_RESPMEM_PERSISTENT);
    if (!r) return -1;
    if (content_type) MHD_add_response_header(r, MHD_HTTP_HEADER_CONTENT_TYPE, content_type);
    for (const char *const *h = headers; h && h[0] && h[1]; h += 2) MHD_add_response_header(r, h[0], h[1]);
    for (const char *const *h = more_headers; h && h[0] && h[1]; h += 2) MHD_add_response_header(r, h[0], h[1]);
    return queue(x, status, r);
}

void srv_count_dropped(srv_exchange *x) {
    srv_metrics_count(&x->srv->metrics, x->route, 499);
    log_line(x, 499);
}

void srv_hold_connection(srv_exchange *x, bool hold) {
    /* 0 = no timeout; setting a timeout after 0 restarts its clock. */
    MHD_set_connection_option(x->conn, MHD_CONNECTION_OPTION_TIMEOUT, hold ? 0u : x->srv->cfg.timeout_s);
}

typedef struct stream_glue {
    srv_stream_read fn;
    void *cls;
    void (*free_fn)(void *);
    struct MHD_Connection *conn;
    unsigned timeout_s;
} stream_glue;

static ssize_t stream_reader(void *cls, uint64_t pos, char *buf, size_t max) {
    (void)pos;
    stream_glue *g = cls;
    ssize_t n = g->fn(g->cls, buf, max);
    if (n < 0) /* the connection may stay open (keep-alive): idle timeout again */
        MHD_set_connection_option(g->conn, MHD_CONNECTION_OPTION_TIMEOUT, g->timeout_s);
    if (n == SRV_STREAM_END) return MHD_CONTENT_READER_END_OF_STREAM;
    if (n < 0) return MHD_CONTENT_READER_END_WITH_ERROR;
    return n;
}

static void stream_free(void *cls) {
    stream_glue *g = cls;
    g->free_fn(g->cls);
    free(g);
}

int srv_reply_stream(srv_exchange *x, srv_stream_read fn, void *cls, void (*free_fn)(void *)) {
    stream_glue *g = malloc(sizeof *g);
    if (!g) {
        free_fn(cls);
        return -1;
    }
    *g = (stream_glue){fn, cls, free_fn, x->conn, x->srv->cfg.timeout_s};
    struct MHD_Response *r = MHD_create_response_from_callback(MHD_SIZE_UNKNOWN, 16384, stream_reader, g, stream_free);
    if (!r) {
        stream_free(g);
        return -1;
    }
    MHD_add_response_header(r, MHD_HTTP_HEADER_CONTENT_TYPE, "text/event-stream; charset=utf-8");
    MHD_add_response_header(r, MHD_HTTP_HEADER_CACHE_CONTROL, "no-cache");
    srv_hold_connection(x, true); /* a stream may wait long for its first token, queued behind others */
    return queue(x, 200, r);
}

/* ---- libmicrohttpd's callbacks ------------------------------------------- */

static bool body_append(request_state *st, const char *data, size_t n) {
    if (st->len + n + 1 > st->cap) {
        size_t cap = st->cap ? st->cap : 4096;
        while (cap < st->len + n + 1) cap *= 2;
        char *b = realloc(st->body, cap);
        if (!b) return false;
        st->body = b;
        st->cap = cap;
    }
    memcpy(st->body + st->len, data, n);
    st->len += n;
    st->body[st->len] = 0;
    return true;
}

static enum MHD_Result on_request(void *cls, struct MHD_Connection *conn, const char *url, const char *method,
                                  const char *version, const char *upload, size_t *upload_size, void **con_cls) {
    (void)version;
    srv_server *s = cls;
    request_state *st = *con_cls;
    if (!st) { /* headers in */
        if (!(st = calloc(1, sizeof *st))) return MHD_NO;
        *con_cls = st;
        atomic_fetch_add(&s->active, 1);
        st->x = (srv_exchange){.srv = s, .conn = conn, .method = method, .path = url, .route = SRV_ROUTE_OTHER};
        const char *cl = MHD_lookup_connection_value(conn, MHD_HEADER_KIND, MHD_HTTP_HEADER_CONTENT_LENGTH);
        unsigned long long length = cl ? strtoull(cl, NULL, 10) : 0;
        return srv_route_begin(&st->x, length, cl != NULL) < 0 ? MHD_NO : MHD_YES;
    }
    srv_exchange *x = &st->x;
    if (x->answered) { /* refused before its body: the body is dropped */
        *upload_size = 0;
        return MHD_YES;
    }
    if (*upload_size) {
        size_t n = *upload_size;
        *upload_size = 0;
        if (st->too_large || st->len + n > s->cfg.max_body) {
            /* libmicrohttpd answers only before or after the body: drop it
             * and answer 413 at its end, or close the connection if it goes
             * on for as long again (1 MiB at least). */
            st->too_large = true;
            st->dropped += n;
            size_t bound = s->cfg.max_body > (1u << 20) ? s->cfg.max_body : (1u << 20);
            return st->dropped > bound ? MHD_NO : MHD_YES;
        }
        if (!body_append(st, upload, n)) {
            st->out_of_memory = true;
            st->too_large = true;
        }
        return MHD_YES;
    }
    if (st->too_large) {
        srv_error e;
        if (st->out_of_memory)
            srv_fail(&e, 500, "server_error", NULL, NULL, "out of memory reading the request body");
        else
            srv_fail(&e, 413, NULL, "request_too_large", NULL, "the request body is larger than %zu bytes",
                     s->cfg.max_body);
        return srv_reply_error(x, &e) ? MHD_NO : MHD_YES;
    }
    if (st->body_done) return MHD_YES;
    st->body_done = true;
    return srv_route_body(x, st->body ? st->body : "", st->len) < 0 ? MHD_NO : MHD_YES;
}

static void on_completed(void *cls, struct MHD_Connection *conn, void **con_cls, enum MHD_RequestTerminationCode code) {
    (void)conn;
    (void)code;
    srv_server *s = cls;
    request_state *st = *con_cls;
    if (!st) return;
    atomic_fetch_sub(&s->active, 1);
    free(st->body);
    free(st);
    *con_cls = NULL;
}

static void on_mhd_log(void *cls, const char *fmt, va_list ap) {
    srv_server *s = cls;
    if (!s->cfg.verbose) return;
    fprintf(stderr, "gemma-chat serve: libmicrohttpd: ");
    vfprintf(stderr, fmt, ap);
}

/* ---- the server ---------------------------------------------------------- */

static char *dup_or_null(const char *s, bool *oom) {
    if (!s) return NULL;
    char *d = strdup(s);
    if (!d) *oom = true;
    return d;
}

static void server_free(srv_server *s) {
    if (!s) return;
    free(s->host);
    free(s->api_key);
    free(s->cors_origin);
    free(s->model_id);
    free(s->inflight);
    pthread_mutex_destroy(&s->native_mu);
    pthread_mutex_destroy(&s->submit_mu);
    free(s);
}

int srv_start(const srv_config *cfg, srv_server **out, uint16_t *port, g3_error *err) {
    *out = NULL;
    srv_server *s = calloc(1, sizeof *s);
    if (!s) return g3_fail(err, "out of memory");
    if (pthread_mutex_init(&s->submit_mu, NULL)) {
        free(s);
        return g3_fail(err, "cannot create a mutex");
    }
    if (pthread_mutex_init(&s->native_mu, NULL)) {
        pthread_mutex_destroy(&s->submit_mu);
        free(s);
        return g3_fail(err, "cannot create a mutex");
    }
    bool oom = false;
    s->cfg = *cfg;
    s->cfg.host = s->host = dup_or_null(cfg->host ? cfg->host : "127.0.0.1", &oom);
    s->cfg.api_key = s->api_key = dup_or_null(cfg->api_key, &oom);
    s->cfg.cors_origin = s->cors_origin = dup_or_null(cfg->cors_origin, &oom);
    s->cfg.model_id = s->model_id = dup_or_null(cfg->model_id ? cfg->model_id : "gemma-3", &oom);
    if (oom) {
        server_free(s);
        return g3_fail(err, "out of memory");
    }
    if (!s->cfg.max_body) s->cfg.max_body = SRV_DEFAULT_MAX_BODY;
    if (!s->cfg.max_connections) s->cfg.max_connections = SRV_DEFAULT_MAX_CONNECTIONS;
    if (!s->cfg.ping_ms) s->cfg.ping_ms = SRV_DEFAULT_PING_MS;
    if (!s->cfg.timeout_s) s->cfg.timeout_s = SRV_DEFAULT_TIMEOUT_S;
    s->listen_fd = -1;
    atomic_init(&s->engine, NULL);
    atomic_init(&s->next_id, 1);
    atomic_init(&s->active, 0);
    srv_metrics_init(&s->metrics);
    s->started = (long long)time(NULL);
    if (getrandom(&s->id_salt, sizeof s->id_salt, 0) != (ssize_t)sizeof s->id_salt)
        s->id_salt = (uint64_t)s->started * 0x9E3779B97F4A7C15ull ^ (uint64_t)getpid();

    struct addrinfo hints = {.ai_family = AF_UNSPEC, .ai_socktype = SOCK_STREAM, .ai_flags = AI_PASSIVE}, *ai;
    char port_text[8];
    snprintf(port_text, sizeof port_text, "%u", (unsigned)cfg->port);
    int gai = getaddrinfo(s->host, port_text, &hints, &ai);
    if (gai) {
        g3_fail(err, "cannot resolve the address '%s': %s", s->host, gai_strerror(gai));
        server_free(s);
        return -1;
    }
    unsigned flags = MHD_USE_THREAD_PER_CONNECTION | MHD_USE_INTERNAL_POLLING_THREAD | MHD_USE_POLL | MHD_USE_ITC |
                     MHD_USE_ERROR_LOG | (ai->ai_family == AF_INET6 ? MHD_USE_IPv6 : 0);
    s->daemon = MHD_start_daemon(flags, cfg->port, NULL, NULL, on_request, s,
                                 MHD_OPTION_EXTERNAL_LOGGER, on_mhd_log, s, /* first: it logs the options */
                                 MHD_OPTION_SOCK_ADDR, ai->ai_addr,
                                 MHD_OPTION_CONNECTION_LIMIT, s->cfg.max_connections,
                                 MHD_OPTION_CONNECTION_TIMEOUT, s->cfg.timeout_s,
                                 MHD_OPTION_THREAD_STACK_SIZE, (size_t)(1u << 20),
                                 MHD_OPTION_NOTIFY_COMPLETED, on_completed, s,
                                 MHD_OPTION_END);
    freeaddrinfo(ai);
    if (!s->daemon) {
        g3_fail(err, "cannot listen on %s port %u (in use, or not an address of this machine?)", s->host,
                (unsigned)cfg->port);
        server_free(s);
        return -1;
    }
    const union MHD_DaemonInfo *di = MHD_get_daemon_info(s->daemon, MHD_DAEMON_INFO_BIND_PORT);
    *port = di ? di->port : cfg->port;
    *out = s;
    return 0;
}

void srv_set_engine(srv_server *s, g3_engine *e) {
    /* Before the engine is published: the native API reads the record without a lock. */
    g3_model_record_of(g3_engine_model(e), g3_engine_tokenizer(e), &s->record);
    atomic_store(&s->engine, e);
}

void srv_quiesce(srv_server *s) {
    pthread_mutex_lock(&s->submit_mu);
    atomic_store(&s->stopping, true);
    pthread_mutex_unlock(&s->submit_mu);
    if (s->listen_fd < 0) s->listen_fd = (int)MHD_quiesce_daemon(s->daemon);
}

void srv_stop(srv_server *s) {
    if (!s) return;
    /* Let the requests that are ending deliver their last bytes (a 503, a
     * stream's error chunk): stopping the daemon closes every socket. */
    for (int i = 0; i < 500 && atomic_load(&s->active) > 0; i++) usleep(10 * 1000);
    MHD_stop_daemon(s->daemon);
    if (s->listen_fd >= 0) close(s->listen_fd);
    server_free(s);
}
