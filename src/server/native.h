/* native.h: what the native API's files (native_api.c: routing and the
 * conversation routes; native_answer.c: the routes that generate) share. */
#ifndef G3_SERVER_NATIVE_H
#define G3_SERVER_NATIVE_H

#include <cjson/cJSON.h>

#include "gemma3_store.h"
#include "server/server_internal.h"

typedef enum srv_native_op {
    SRV_OP_CONVERSATIONS = 1, /* /api/conversations */
    SRV_OP_CONVERSATION,      /* /api/conversations/{id} */
    SRV_OP_MESSAGES,          /* /api/conversations/{id}/messages */
    SRV_OP_REGENERATE,
    SRV_OP_EDIT,
    SRV_OP_STOP,
    SRV_OP_EXPORT,
    SRV_OP_ATTACHMENT,        /* /api/attachments/{id} */
    SRV_OP_PRESETS,
    SRV_OP_INFO
} srv_native_op;

/* A store failure as an API error: NOT_FOUND 404, INVALID 400, CONFLICT
 * 409, BUSY and READONLY 503, FULL 507, anything else 500. Returns -1. */
int srv_store_error(int status, const g3_error *ge, srv_error *e);

/* Answers with o as JSON (taken; NULL: a 500 for out of memory). */
int srv_reply_json(srv_exchange *x, int status, cJSON *o);

/* POST .../messages, .../regenerate, .../edit. */
int srv_native_answer(srv_exchange *x, const char *body, size_t len);
/* POST .../stop: 204 when a generation was stopped, 200 {"stopped": false} when idle. */
int srv_native_stop(srv_exchange *x);
/* Cancels the generation in flight for conv, if any (DELETE). */
void srv_native_cancel(srv_server *s, int64_t conv);

#endif
