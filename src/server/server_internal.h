/* server_internal.h: what the server's files share: the server itself and
 * one HTTP exchange as the routes see it (http.c hides libmicrohttpd). */
#ifndef G3_SERVER_SERVER_INTERNAL_H
#define G3_SERVER_SERVER_INTERNAL_H

#include <pthread.h>
#include <stdatomic.h>
#include <sys/types.h>

#include "server/api_error.h"
#include "server/metrics.h"
#include "server/server.h"

struct MHD_Daemon;
struct MHD_Connection;
struct srv_job;

/* A native-API generation in flight: one per conversation at a time. */
typedef struct srv_inflight {
    int64_t conv;
    struct srv_job *job;
    bool stop_requested;    /* POST .../stop or DELETE asked for the end */
} srv_inflight;

struct srv_server {
    srv_config cfg;             /* strings point into the copies below */
    char *host, *api_key, *cors_origin, *model_id;
    _Atomic(g3_engine *) engine;
    pthread_mutex_t submit_mu;  /* submits and srv_quiesce exclude each other */
    atomic_bool stopping;       /* set under submit_mu */
    srv_metrics metrics;
    atomic_uint_fast64_t next_id;
    uint64_t id_salt;
    long long started;          /* Unix seconds */
    atomic_int active;          /* requests begun and not yet completed (answer sent or connection gone) */
    struct MHD_Daemon *daemon;
    int listen_fd;              /* after srv_quiesce: closed by srv_stop */
    /* The native API (native_*.c): */
    pthread_mutex_t native_mu;  /* guards inflight */
    srv_inflight *inflight;
    size_t n_inflight, cap_inflight;
    g3_model_record record;     /* the served model, as stored answers record it (set with the engine) */
};

/* One request being answered. */
typedef struct srv_exchange {
    srv_server *srv;
    struct MHD_Connection *conn;
    const char *method, *path;
    srv_route route;
    bool answered;
    int api_op;                 /* native routes: which operation (native_api.c) */
    int64_t api_id;             /* native routes: the conversation or attachment id in the path */
} srv_exchange;

/* ---- http.c: answers ----------------------------------------------------- */

const char *srv_header(srv_exchange *x, const char *name);  /* NULL when absent */
int srv_client_fd(srv_exchange *x);
/* Queues a response: body (malloc'd, taken, may be NULL for none). allow:
 * the Allow header of a 405, or NULL. 0, or -1 when it could not be queued. */
int srv_reply(srv_exchange *x, int status, const char *content_type, char *body, size_t len, const char *allow);
int srv_reply_error(srv_exchange *x, const srv_error *e);
/* srv_reply with extra headers: pairs name, value, ..., NULL. */
int srv_reply_with(srv_exchange *x, int status, const char *content_type, char *body, size_t len,
                   const char *const *headers);
/* A query-string argument (?name=value), decoded; NULL when absent. */
const char *srv_query(srv_exchange *x, const char *name);
/* hold: no idle timeout while a request is being worked on (a long
 * generation); release: the idle timeout again, its clock restarted. */
void srv_hold_connection(srv_exchange *x, bool hold);
/* A request that ended without an answer (the client left): counted as 499. */
void srv_count_dropped(srv_exchange *x);

#define SRV_STREAM_END ((ssize_t)-1)   /* the stream is complete */
#define SRV_STREAM_ABORT ((ssize_t)-2) /* close the connection now */
/* Bytes for the stream, blocking until there are some (thread per connection). */
typedef ssize_t (*srv_stream_read)(void *cls, char *buf, size_t max);
/* Queues a 200 text/event-stream response read from fn; free_fn(cls) when it is done. */
int srv_reply_stream(srv_exchange *x, srv_stream_read fn, void *cls, void (*free_fn)(void *));

/* ---- routes.c ------------------------------------------------------------ */

/* The request line and headers are in: 1 when answered already (a GET, or
 * a refusal), 0 to read the body. */
int srv_route_begin(srv_exchange *x, unsigned long long content_length, bool has_length);
/* The whole body is in: 0 when answered, -1 to drop the connection. */
int srv_route_body(srv_exchange *x, const char *body, size_t len);

/* The route checks routes.c and native_api.c share. */
int srv_refuse(srv_exchange *x, int status, const char *code, const char *allow, const char *msg);
/* 0 when no key is needed or the right one came; else answered (1) or -1. */
int srv_check_key(srv_exchange *x);
bool srv_is_json_type(const char *content_type);

/* ---- native_api.c: /api/... ------------------------------------------------ */

/* Like srv_route_begin for paths under /api/. */
int srv_native_begin(srv_exchange *x, unsigned long long content_length, bool has_length);
int srv_native_body(srv_exchange *x, const char *body, size_t len);

/* ---- completions.c ------------------------------------------------------- */

int srv_chat_completions(srv_exchange *x, const char *body, size_t len);

#endif
