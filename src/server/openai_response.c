#include "server/openai_response.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

const char *srv_finish_reason(g3_stop_reason r) {
    switch (r) {
    case G3_STOP_END_OF_TURN:
    case G3_STOP_EOS:
    case G3_STOP_STRING:
        return "stop";
    case G3_STOP_MAX_TOKENS:
    case G3_STOP_CONTEXT_FULL:
        return "length";
    default:
        return NULL;
    }
}

/* A JSON string from len bytes (NUL bytes dropped: C strings end there). */
static cJSON *string_n(const char *text, size_t len) {
    char *copy = malloc(len + 1);
    if (!copy) return NULL;
    size_t n = 0;
    for (size_t i = 0; i < len; i++)
        if (text[i]) copy[n++] = text[i];
    copy[n] = 0;
    cJSON *s = cJSON_CreateString(copy);
    free(copy);
    return s;
}

static cJSON *usage_object(const srv_usage *u) {
    cJSON *o = cJSON_CreateObject(), *d;
    if (!o) return NULL;
    bool ok = cJSON_AddNumberToObject(o, "prompt_tokens", u->prompt) &&
              cJSON_AddNumberToObject(o, "completion_tokens", u->completion) &&
              cJSON_AddNumberToObject(o, "total_tokens", (double)u->prompt + u->completion) &&
              (d = cJSON_AddObjectToObject(o, "prompt_tokens_details")) &&
              cJSON_AddNumberToObject(d, "cached_tokens", u->cached);
    if (!ok) {
        cJSON_Delete(o);
        return NULL;
    }
    return o;
}

/* id, object, created, model, system_fingerprint: the head every object shares. */
static cJSON *head(const srv_completion_meta *m, const char *object) {
    cJSON *o = cJSON_CreateObject();
    if (!o) return NULL;
    if (!cJSON_AddStringToObject(o, "id", m->id) || !cJSON_AddStringToObject(o, "object", object) ||
        !cJSON_AddNumberToObject(o, "created", (double)m->created) || !cJSON_AddStringToObject(o, "model", m->model) ||
        !cJSON_AddNullToObject(o, "system_fingerprint")) {
        cJSON_Delete(o);
        return NULL;
    }
    return o;
}

static bool add_finish(cJSON *choice, const char *finish) {
    return finish ? cJSON_AddStringToObject(choice, "finish_reason", finish) != NULL
                  : cJSON_AddNullToObject(choice, "finish_reason") != NULL;
}

char *srv_completion_json(const srv_completion_meta *m, const char *text, size_t len, const char *finish,
                          const srv_usage *u) {
    cJSON *o = head(m, "chat.completion"), *choices, *choice, *msg, *content = string_n(text, len), *usage = usage_object(u);
    char *out = NULL;
    if (o && content && usage && (choices = cJSON_AddArrayToObject(o, "choices")) && (choice = cJSON_CreateObject())) {
        cJSON_AddItemToArray(choices, choice);
        if (cJSON_AddNumberToObject(choice, "index", 0) && (msg = cJSON_AddObjectToObject(choice, "message")) &&
            cJSON_AddStringToObject(msg, "role", "assistant")) {
            cJSON_AddItemToObject(msg, "content", content);
            content = NULL;
            if (cJSON_AddNullToObject(msg, "refusal") && cJSON_AddNullToObject(choice, "logprobs") &&
                add_finish(choice, finish)) {
                cJSON_AddItemToObject(o, "usage", usage);
                usage = NULL;
                out = cJSON_PrintUnformatted(o);
            }
        }
    }
    cJSON_Delete(content);
    cJSON_Delete(usage);
    cJSON_Delete(o);
    return out;
}

/* "data: JSON\n\n" then `tail` (may be ""). */
static char *event(cJSON *o, const char *tail) {
    if (!o) return NULL;
    char *json = cJSON_PrintUnformatted(o);
    cJSON_Delete(o);
    if (!json) return NULL;
    size_t n = strlen(json) + strlen(tail) + 9;
    char *out = malloc(n);
    if (out) snprintf(out, n, "data: %s\n\n%s", json, tail);
    free(json);
    return out;
}

/* A chunk with one choice whose delta is `delta` (taken). */
static cJSON *chunk(const srv_completion_meta *m, cJSON *delta, const char *finish) {
    cJSON *o = head(m, "chat.completion.chunk"), *choices, *choice;
    if (!o || !delta || !(choices = cJSON_AddArrayToObject(o, "choices")) || !(choice = cJSON_CreateObject())) {
        cJSON_Delete(delta);
        cJSON_Delete(o);
        return NULL;
    }
    cJSON_AddItemToArray(choices, choice);
    cJSON_AddNumberToObject(choice, "index", 0);
    cJSON_AddItemToObject(choice, "delta", delta);
    if (!cJSON_AddNullToObject(choice, "logprobs") || !add_finish(choice, finish) ||
        (m->include_usage && !cJSON_AddNullToObject(o, "usage"))) {
        cJSON_Delete(o);
        return NULL;
    }
    return o;
}

char *srv_sse_role(const srv_completion_meta *m) {
    cJSON *delta = cJSON_CreateObject();
    if (delta && (!cJSON_AddStringToObject(delta, "role", "assistant") || !cJSON_AddStringToObject(delta, "content", ""))) {
        cJSON_Delete(delta);
        return NULL;
    }
    return event(chunk(m, delta, NULL), "");
}

char *srv_sse_content(const srv_completion_meta *m, const char *text, size_t len) {
    cJSON *delta = cJSON_CreateObject(), *s = string_n(text, len);
    if (!delta || !s) {
        cJSON_Delete(delta);
        cJSON_Delete(s);
        return NULL;
    }
    cJSON_AddItemToObject(delta, "content", s);
    return event(chunk(m, delta, NULL), "");
}

char *srv_sse_finish(const srv_completion_meta *m, const char *finish, const srv_usage *u) {
    char *last = NULL;
    if (m->include_usage) {
        cJSON *o = head(m, "chat.completion.chunk"), *usage = usage_object(u);
        if (!o || !usage || !cJSON_AddArrayToObject(o, "choices")) {
            cJSON_Delete(o);
            cJSON_Delete(usage);
            return NULL;
        }
        cJSON_AddItemToObject(o, "usage", usage);
        if (!(last = event(o, "data: [DONE]\n\n"))) return NULL;
    }
    char *out = event(chunk(m, cJSON_CreateObject(), finish), last ? last : "data: [DONE]\n\n");
    free(last);
    return out;
}

char *srv_sse_error(const srv_completion_meta *m, const srv_error *e) {
    cJSON *o = head(m, "chat.completion.chunk"), *err = srv_error_object(e);
    if (!o || !err || !cJSON_AddArrayToObject(o, "choices")) {
        cJSON_Delete(o);
        cJSON_Delete(err);
        return NULL;
    }
    cJSON_AddItemToObject(o, "error", err);
    return event(o, "");
}
