/* openai_response.h: answers in OpenAI's chat completion shapes.
 *
 * A plain answer is one "chat.completion" object. A streamed one is a run
 * of server-sent events, each `data: {chunk}\n\n` with the same id, created
 * time and model: the first delta carries the role, then content deltas
 * with finish_reason null, then a delta-less chunk with the finish reason;
 * with include_usage every chunk has "usage": null and a last chunk with no
 * choices carries the usage; `data: [DONE]` ends the stream. An error after
 * the stream began is a chunk with an "error" object (and no [DONE]). */
#ifndef G3_SERVER_OPENAI_RESPONSE_H
#define G3_SERVER_OPENAI_RESPONSE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "gemma3_engine.h"
#include "server/api_error.h"

typedef struct srv_completion_meta {
    char id[48];          /* "chatcmpl-..." */
    long long created;    /* Unix seconds */
    const char *model;
    bool include_usage;   /* streams: usage: null on each chunk, and a usage chunk */
} srv_completion_meta;

typedef struct srv_usage {
    uint32_t prompt, cached, completion;
} srv_usage;

/* "stop" for an end of turn, EOS or stop string, "length" for max_tokens
 * or a full context, NULL for the rest (cancelled, error). */
const char *srv_finish_reason(g3_stop_reason r);

/* The whole answer as a chat.completion object (malloc'd JSON; NULL when
 * out of memory). */
char *srv_completion_json(const srv_completion_meta *m, const char *text, size_t len, const char *finish,
                          const srv_usage *u);

/* Server-sent events, each "data: ...\n\n" (malloc'd; NULL when out of memory). */
char *srv_sse_role(const srv_completion_meta *m);
char *srv_sse_content(const srv_completion_meta *m, const char *text, size_t len);
/* The finish chunk, then (include_usage) the usage chunk, then [DONE]. */
char *srv_sse_finish(const srv_completion_meta *m, const char *finish, const srv_usage *u);
char *srv_sse_error(const srv_completion_meta *m, const srv_error *e);

#endif
