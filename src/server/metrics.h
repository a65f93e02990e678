/* metrics.h: the server's own counters and the /metrics page.
 *
 * HTTP requests are counted by route and status (atomics: connection
 * threads count, /metrics reads). The engine's numbers (tokens, times,
 * queue, busy slots) come from g3_engine_get_metrics when /metrics is read.
 * The page is Prometheus' text exposition format (version 0.0.4). */
#ifndef G3_SERVER_METRICS_H
#define G3_SERVER_METRICS_H

#include <stdatomic.h>
#include <stdint.h>

#include "gemma3_engine.h"

typedef enum srv_route {
    SRV_ROUTE_CHAT = 0,    /* /v1/chat/completions */
    SRV_ROUTE_MODELS,      /* /v1/models */
    SRV_ROUTE_HEALTH,      /* /health */
    SRV_ROUTE_METRICS,     /* /metrics */
    SRV_ROUTE_API_CONVERSATIONS, /* /api/conversations (list, create) */
    SRV_ROUTE_API_CONVERSATION,  /* /api/conversations/{id} (get, patch, delete) */
    SRV_ROUTE_API_ANSWER,        /* /api/conversations/{id}/messages, /regenerate, /edit */
    SRV_ROUTE_API_STOP,          /* /api/conversations/{id}/stop */
    SRV_ROUTE_API_EXPORT,        /* /api/conversations/{id}/export */
    SRV_ROUTE_API_ATTACHMENT,    /* /api/attachments/{id} */
    SRV_ROUTE_API_INFO,          /* /api/presets, /api/info */
    SRV_ROUTE_WEB,               /* the chat page: /, /index.html, /assets/..., /favicon.ico */
    SRV_ROUTE_OTHER,       /* anything else (404) */
    SRV_ROUTE_COUNT
} srv_route;

const char *srv_route_path(srv_route r);

#define SRV_STATUS_SLOTS 18 /* the statuses the server sends, and one for any other */

typedef struct srv_metrics {
    atomic_uint_fast64_t requests[SRV_ROUTE_COUNT][SRV_STATUS_SLOTS];
} srv_metrics;

void srv_metrics_init(srv_metrics *m);
void srv_metrics_count(srv_metrics *m, srv_route route, int status);
uint64_t srv_metrics_requests(srv_metrics *m, srv_route route, int status);

/* The /metrics page (malloc'd); em is NULL while the model loads. */
char *srv_metrics_text(srv_metrics *m, const g3_engine_metrics *em, uint32_t n_slots, bool loaded);

#endif
