/* openai_request.h: a POST /v1/chat/completions body as a conversation.
 *
 * Parses OpenAI's chat completion request into the chat layer's plain data
 * (a g3_conversation and g3_gen_params), validating every field it reads
 * and refusing, with a 400 that names the field, what it cannot honour:
 *   - messages: roles system/developer, user, assistant; content a string or
 *     content parts (`text`; `image_url` with a data: URL, user messages
 *     only, decoded here). System messages (wherever they are) become the
 *     conversation's system prompt, joined by blank lines; consecutive
 *     messages of one role merge with a blank line; a message's text parts
 *     join with a newline. After the system messages the conversation starts
 *     with the user and must end with the user's message.
 *   - sampling: temperature [0, 2] (0 = greedy), top_p [0, 1] (0 = greedy),
 *     top_k >= 0 (0 = off), min_p [0, 1), repetition_penalty (0, 10], seed;
 *     frequency_penalty and presence_penalty are accepted only as 0 (the
 *     sampler has no additive penalties: use repetition_penalty).
 *     Fields not given keep the chat layer's defaults (g3_gen_defaults).
 *   - max_tokens / max_completion_tokens (the smaller when both), clamped to
 *     the context; without them the answer may fill the context.
 *   - stop (a string or up to SRV_MAX_STOP strings), n (1 only), stream,
 *     stream_options.include_usage (only with stream).
 *   - fields of OpenAI's API that change nothing here (user, store,
 *     metadata, ...) are ignored; tools, logprobs, logit_bias, a
 *     response_format other than text are refused when set; any other
 *     field is refused as unknown (a typo must not pass silently).
 * The body's nesting depth is checked before parsing (SRV_MAX_JSON_DEPTH). */
#ifndef G3_SERVER_OPENAI_REQUEST_H
#define G3_SERVER_OPENAI_REQUEST_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "gemma3_chat.h"
#include "server/api_error.h"

#define SRV_MAX_STOP 8
#define SRV_MAX_STOP_LEN 256
#define SRV_MAX_JSON_DEPTH 32
#define SRV_MAX_IMAGES 4   /* per request */

typedef struct srv_request_limits {
    uint32_t n_ctx;          /* max_tokens is clamped to this */
    bool has_vision;         /* image parts are refused without it */
    size_t max_image_bytes;  /* one image, decoded */
    const char *model_id;    /* "model" must name it or model_name (case-insensitive); NULL: any */
    const char *model_name;
} srv_request_limits;

typedef struct srv_chat_request {
    g3_conversation conv;
    g3_gen_params gen;           /* gen.stop points into stop */
    char *stop[SRV_MAX_STOP + 1];
    bool stream, include_usage;
    uint32_t n_images;
} srv_chat_request;

/* 0 with *out filled (free with srv_chat_request_free), or -1 with e set
 * (400, or 404 for an unknown model, 500 when out of memory). */
int srv_chat_request_parse(const char *body, size_t len, const srv_request_limits *lim, srv_chat_request *out,
                           srv_error *e);
void srv_chat_request_free(srv_chat_request *r);

/* -1 (400) when the JSON text nests arrays/objects deeper than max_depth. */
int srv_json_check_depth(const char *text, size_t len, int max_depth, srv_error *e);

#endif
