/* server.h: the HTTP server of `gemma-chat serve`.
 *
 * An OpenAI-compatible API over an engine (gemma3_engine.h): POST
 * /v1/chat/completions (plain or streamed as server-sent events), GET
 * /v1/models, GET /health, GET /metrics. The server listens before the
 * engine exists, so /health can say 503 while the model loads; requests
 * are served once srv_set_engine gives it the engine.
 *
 * Limits: bodies up to max_body bytes (413 above), JSON nesting 32 deep,
 * images 10 MB each and 4 per request, at most max_connections open
 * connections (thread per connection: see http.c), idle connections closed
 * after timeout_s. With api_key, every /v1 route needs `Authorization:
 * Bearer KEY`. CORS is off unless cors_origin names the one origin allowed.
 *
 * The native conversation API (/api/..., native_api.c, native_answer.c)
 * keeps conversations in cfg.store (opened and closed by the caller, who
 * must close it only after srv_stop). */
#ifndef G3_SERVER_SERVER_H
#define G3_SERVER_SERVER_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "gemma3.h"
#include "gemma3_engine.h"

typedef struct srv_config {
    const char *host;          /* address to bind: "127.0.0.1", "::1", "0.0.0.0", a name */
    uint16_t port;             /* 0: a free port (srv_start says which) */
    const char *api_key;       /* NULL: no key */
    const char *cors_origin;   /* NULL: CORS off */
    size_t max_body;           /* request body limit in bytes */
    unsigned max_connections;
    unsigned timeout_s;        /* idle (or slowly sending) connections are closed after it */
    unsigned ping_ms;          /* a `: ping` comment on a stream idle this long */
    const char *model_id;      /* the served model's id in the API (e.g. its file's base name) */
    bool verbose;              /* a line on stderr per request */
    struct g3_store *store;    /* the conversation store of the native API (/api/...); NULL: --no-db (404) */
} srv_config;

#define SRV_DEFAULT_MAX_BODY (20u << 20)
#define SRV_DEFAULT_MAX_CONNECTIONS 256u
#define SRV_DEFAULT_TIMEOUT_S 60u
#define SRV_DEFAULT_PING_MS 10000u

typedef struct srv_server srv_server;

/* Binds and starts listening (connection threads answer at once; /health
 * is 503 until srv_set_engine). *port gets the bound port. */
int srv_start(const srv_config *cfg, srv_server **out, uint16_t *port, g3_error *err);
/* The engine is ready: requests are served from now on. */
void srv_set_engine(srv_server *s, g3_engine *e);
/* Stops accepting connections and requests (new requests on open
 * connections get 503); after it returns nothing more is submitted to
 * the engine, so g3_engine_shutdown ends every request. */
void srv_quiesce(srv_server *s);
/* Gives the requests that are ending (after g3_engine_shutdown) up to 5 s
 * to deliver their answers, closes every connection and frees the server. */
void srv_stop(srv_server *s);

#endif
