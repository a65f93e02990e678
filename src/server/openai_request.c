#include "server/openai_request.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "server/data_url.h"

/* ---- growable text ------------------------------------------------------- */

typedef struct strbuf {
    char *s;
    size_t len, cap;
} strbuf;

static bool sb_append(strbuf *b, const char *text, size_t n) {
    if (n > SIZE_MAX - b->len - 1) return false;
    if (b->len + n + 1 > b->cap) {
        size_t cap = b->cap ? b->cap : 64;
        while (cap < b->len + n + 1) cap = cap > SIZE_MAX / 2 ? b->len + n + 1 : cap * 2;
        char *s = realloc(b->s, cap);
        if (!s) return false;
        b->s = s;
        b->cap = cap;
    }
    memcpy(b->s + b->len, text, n);
    b->len += n;
    b->s[b->len] = 0;
    return true;
}

/* ---- the conversation being built --------------------------------------- */

/* One turn after merging: its role, its parts (text runs coalesced), and
 * the first message it came from (for error messages). */
typedef struct draft_turn {
    g3_role role;
    g3_part *parts;
    size_t n_parts, cap;
    strbuf text;        /* the text run being built (becomes a part when an image follows, or at the end) */
    bool has_text;
    size_t first_msg;
} draft_turn;

typedef struct draft {
    strbuf system;
    bool has_system;
    draft_turn *turns;
    size_t n_turns, cap;
    uint32_t n_images;
} draft;

static void draft_free(draft *d) {
    free(d->system.s);
    for (size_t i = 0; i < d->n_turns; i++) {
        g3_parts_free(d->turns[i].parts, d->turns[i].n_parts);
        free(d->turns[i].text.s);
    }
    free(d->turns);
    memset(d, 0, sizeof *d);
}

static int oom(srv_error *e) { return srv_fail(e, 500, "server_error", NULL, NULL, "out of memory reading the request"); }

static int turn_add_part(draft_turn *t, g3_part p, srv_error *e) {
    if (t->n_parts == t->cap) {
        size_t cap = t->cap ? t->cap * 2 : 4;
        g3_part *parts = realloc(t->parts, cap * sizeof *parts);
        if (!parts) return oom(e);
        t->parts = parts;
        t->cap = cap;
    }
    t->parts[t->n_parts++] = p;
    return 0;
}

/* Ends the turn's text run as a part (images split runs). */
static int turn_flush_text(draft_turn *t, srv_error *e) {
    if (!t->has_text) return 0;
    g3_part p = {.type = G3_PART_TEXT, .text = t->text.s ? t->text.s : strdup("")};
    if (!p.text) return oom(e);
    memset(&t->text, 0, sizeof t->text);
    t->has_text = false;
    if (turn_add_part(t, p, e)) {
        free(p.text);
        return -1;
    }
    return 0;
}

/* Appends text to the turn's run, after sep when the run is not empty. */
static int turn_add_text(draft_turn *t, const char *sep, const char *text, srv_error *e) {
    if ((t->has_text && !sb_append(&t->text, sep, strlen(sep))) || !sb_append(&t->text, text, strlen(text)))
        return oom(e);
    t->has_text = true;
    return 0;
}

/* The turn for message msg of this role: the last one when it has the
 * same role (consecutive messages merge), else a new one. *merged says
 * which. */
static draft_turn *draft_turn_for(draft *d, g3_role role, size_t msg, bool *merged, srv_error *e) {
    if (d->n_turns && d->turns[d->n_turns - 1].role == role) {
        *merged = true;
        return &d->turns[d->n_turns - 1];
    }
    *merged = false;
    if (d->n_turns == d->cap) {
        size_t cap = d->cap ? d->cap * 2 : 8;
        draft_turn *turns = realloc(d->turns, cap * sizeof *turns);
        if (!turns) return oom(e), NULL;
        d->turns = turns;
        d->cap = cap;
    }
    draft_turn *t = &d->turns[d->n_turns++];
    memset(t, 0, sizeof *t);
    t->role = role;
    t->first_msg = msg;
    return t;
}

/* ---- field checks -------------------------------------------------------- */

static int want_type(const cJSON *v, bool ok, const char *param, const char *expected, srv_error *e) {
    if (ok) return 0;
    return srv_bad_field(e, "invalid_type", param, "expected %s, got %s", expected, srv_json_type_name(v));
}

static int get_number(const cJSON *v, const char *param, double lo, double hi, bool lo_open, double *out,
                      srv_error *e) {
    if (want_type(v, cJSON_IsNumber(v), param, "a number", e)) return -1;
    double x = v->valuedouble;
    if (!isfinite(x) || x > hi || (lo_open ? x <= lo : x < lo))
        return srv_bad_field(e, "invalid_value", param, "must be in %s%g, %g], got %g", lo_open ? "(" : "[", lo, hi,
                             x);
    *out = x;
    return 0;
}

static int get_integer(const cJSON *v, const char *param, double lo, double hi, double *out, srv_error *e) {
    if (want_type(v, cJSON_IsNumber(v), param, "an integer", e)) return -1;
    double x = v->valuedouble;
    if (!isfinite(x) || x != floor(x)) return srv_bad_field(e, "invalid_type", param, "expected an integer, got %g", x);
    if (x < lo || x > hi) return srv_bad_field(e, "invalid_value", param, "must be between %.0f and %.0f, got %.0f", lo, hi, x);
    *out = x;
    return 0;
}

/* ---- messages ------------------------------------------------------------ */

static int parse_role(const cJSON *msg, const char *param_base, g3_role *role, bool *system, srv_error *e) {
    char param[128];
    snprintf(param, sizeof param, "%s.role", param_base);
    const cJSON *r = cJSON_GetObjectItemCaseSensitive(msg, "role");
    if (!r) return srv_bad_field(e, "missing_required_parameter", param, "every message needs a role");
    if (want_type(r, cJSON_IsString(r), param, "a string", e)) return -1;
    const char *s = r->valuestring;
    *system = !strcmp(s, "system") || !strcmp(s, "developer");
    if (*system || !strcmp(s, "user")) *role = G3_ROLE_USER;
    else if (!strcmp(s, "assistant")) *role = G3_ROLE_MODEL;
    else if (!strcmp(s, "tool") || !strcmp(s, "function"))
        return srv_bad_field(e, "unsupported_value", param, "role '%s' is not supported (this server has no tools)", s);
    else
        return srv_bad_field(e, "invalid_value", param, "unknown role '%.40s' (system, user or assistant)", s);
    return 0;
}

/* An image_url part of a user message: decoded into an image part. */
static int parse_image_part(const cJSON *part, const char *param_base, draft *d, draft_turn *t,
                            const srv_request_limits *lim, srv_error *e) {
    char param[128];
    snprintf(param, sizeof param, "%s.image_url", param_base);
    const cJSON *iu = cJSON_GetObjectItemCaseSensitive(part, "image_url");
    if (!iu) return srv_bad_field(e, "missing_required_parameter", param, "an image_url part needs \"image_url\"");
    if (want_type(iu, cJSON_IsObject(iu), param, "an object {\"url\": \"data:...\"}", e)) return -1;
    const cJSON *detail = cJSON_GetObjectItemCaseSensitive(iu, "detail");
    if (detail && !cJSON_IsNull(detail)) {
        snprintf(param, sizeof param, "%s.image_url.detail", param_base);
        if (want_type(detail, cJSON_IsString(detail), param, "a string", e)) return -1;
        if (strcmp(detail->valuestring, "auto") && strcmp(detail->valuestring, "low") &&
            strcmp(detail->valuestring, "high"))
            return srv_bad_field(e, "invalid_value", param, "must be auto, low or high");
    }
    snprintf(param, sizeof param, "%s.image_url.url", param_base);
    const cJSON *url = cJSON_GetObjectItemCaseSensitive(iu, "url");
    if (!url) return srv_bad_field(e, "missing_required_parameter", param, "an image needs a url");
    if (want_type(url, cJSON_IsString(url), param, "a string", e)) return -1;
    if (!strncasecmp(url->valuestring, "http://", 7) || !strncasecmp(url->valuestring, "https://", 8))
        return srv_bad_field(e, "image_url_not_supported", param,
                             "remote image URLs are not fetched (the server fetches nothing); send the image "
                             "inline as a data: URL (data:image/png;base64,...)");
    if (!lim->has_vision)
        return srv_bad_field(e, "images_not_supported", param,
                             "this server has no vision encoder (it was started without --mmproj), so it takes no "
                             "images");
    if (d->n_images == SRV_MAX_IMAGES)
        return srv_bad_field(e, "too_many_images", param, "at most %d images per request", SRV_MAX_IMAGES);
    g3_part p = {.type = G3_PART_IMAGE};
    if (srv_data_url_decode(url->valuestring, strlen(url->valuestring), lim->max_image_bytes, param, &p.data,
                            &p.data_len, e))
        return -1;
    if (turn_flush_text(t, e) || turn_add_part(t, p, e)) {
        free(p.data);
        return -1;
    }
    d->n_images++;
    return 0;
}

/* content: a string, or an array of parts. Text goes to the turn (or the
 * system prompt); images to the turn. */
static int parse_content(const cJSON *msg, const char *param_base, bool system, g3_role role, draft *d, draft_turn *t,
                         const char *sep, const srv_request_limits *lim, srv_error *e) {
    char param[128];
    snprintf(param, sizeof param, "%s.content", param_base);
    const cJSON *c = cJSON_GetObjectItemCaseSensitive(msg, "content");
    if (!c) return srv_bad_field(e, "missing_required_parameter", param, "every message needs content");
    if (cJSON_IsString(c)) {
        if (system) {
            if ((d->has_system && !sb_append(&d->system, "\n\n", 2)) ||
                !sb_append(&d->system, c->valuestring, strlen(c->valuestring)))
                return oom(e);
            d->has_system = true;
            return 0;
        }
        return turn_add_text(t, sep, c->valuestring, e);
    }
    if (want_type(c, cJSON_IsArray(c), param, "a string or an array of content parts", e)) return -1;
    int k = 0;
    const cJSON *part;
    bool first = true;
    cJSON_ArrayForEach(part, c) {
        char pbase[96];
        snprintf(pbase, sizeof pbase, "%s.content[%d]", param_base, k++);
        if (want_type(part, cJSON_IsObject(part), pbase, "a content part object", e)) return -1;
        const cJSON *type = cJSON_GetObjectItemCaseSensitive(part, "type");
        snprintf(param, sizeof param, "%s.type", pbase);
        if (!type) return srv_bad_field(e, "missing_required_parameter", param, "every content part needs a type");
        if (want_type(type, cJSON_IsString(type), param, "a string", e)) return -1;
        if (!strcmp(type->valuestring, "text")) {
            const cJSON *text = cJSON_GetObjectItemCaseSensitive(part, "text");
            snprintf(param, sizeof param, "%s.text", pbase);
            if (!text) return srv_bad_field(e, "missing_required_parameter", param, "a text part needs \"text\"");
            if (want_type(text, cJSON_IsString(text), param, "a string", e)) return -1;
            const char *s = system ? (first ? "\n\n" : "\n") : (first ? sep : "\n");
            if (system) {
                if ((d->has_system && !sb_append(&d->system, s, strlen(s))) ||
                    !sb_append(&d->system, text->valuestring, strlen(text->valuestring)))
                    return oom(e);
                d->has_system = true;
            } else if (turn_add_text(t, s, text->valuestring, e)) {
                return -1;
            }
        } else if (!strcmp(type->valuestring, "image_url")) {
            if (system || role != G3_ROLE_USER)
                return srv_bad_field(e, "invalid_value", param, "images are taken only in user messages");
            if (parse_image_part(part, pbase, d, t, lim, e)) return -1;
        } else {
            return srv_bad_field(e, "unsupported_value", param, "content part type '%.40s' is not supported (text or "
                                 "image_url)", type->valuestring);
        }
        first = false;
    }
    return 0;
}

static int parse_message(const cJSON *msg, size_t i, draft *d, const srv_request_limits *lim, srv_error *e) {
    char base[48];
    snprintf(base, sizeof base, "messages[%zu]", i);
    if (want_type(msg, cJSON_IsObject(msg), base, "a message object", e)) return -1;
    static const char *const k_unsupported[] = {"tool_calls", "function_call", "tool_call_id", "audio"};
    for (size_t k = 0; k < sizeof k_unsupported / sizeof *k_unsupported; k++) {
        const cJSON *v = cJSON_GetObjectItemCaseSensitive(msg, k_unsupported[k]);
        if (v && !cJSON_IsNull(v)) {
            char param[96];
            snprintf(param, sizeof param, "%s.%s", base, k_unsupported[k]);
            return srv_bad_field(e, "unsupported_parameter", param, "not supported (this server has no tools or audio)");
        }
    }
    const cJSON *name = cJSON_GetObjectItemCaseSensitive(msg, "name");
    if (name && !cJSON_IsNull(name)) {
        char param[96];
        snprintf(param, sizeof param, "%s.name", base);
        if (want_type(name, cJSON_IsString(name), param, "a string", e)) return -1;
    }
    g3_role role = G3_ROLE_USER;
    bool system = false, merged = false;
    if (parse_role(msg, base, &role, &system, e)) return -1;
    draft_turn *t = NULL;
    if (!system && !(t = draft_turn_for(d, role, i, &merged, e))) return -1;
    return parse_content(msg, base, system, role, d, t, merged ? "\n\n" : "", lim, e);
}

/* The drafted turns into the conversation, checking its shape. */
static int build_conversation(draft *d, size_t n_messages, g3_conversation *conv, srv_error *e) {
    g3_error ge;
    if (d->n_turns == 0)
        return srv_bad_field(e, "invalid_value", "messages", "needs a user message (only system messages were given)");
    if (d->turns[0].role != G3_ROLE_USER) {
        char param[64];
        snprintf(param, sizeof param, "messages[%zu].role", d->turns[0].first_msg);
        return srv_bad_field(e, "invalid_value", param, "after the system messages the conversation must start "
                             "with a user message (Gemma 3's template has no assistant turn first)");
    }
    if (d->turns[d->n_turns - 1].role != G3_ROLE_USER) {
        char param[64];
        snprintf(param, sizeof param, "messages[%zu].role", n_messages - 1);
        return srv_bad_field(e, "invalid_value", param, "the last message must be the user's (the one to answer)");
    }
    if (d->has_system && g3_conversation_set_system(conv, d->system.s, &ge)) return oom(e);
    for (size_t i = 0; i < d->n_turns; i++) {
        draft_turn *t = &d->turns[i];
        if (turn_flush_text(t, e)) return -1;
        bool has_image = false;
        for (size_t k = 0; k < t->n_parts; k++) has_image |= t->parts[k].type == G3_PART_IMAGE;
        int rc;
        if (has_image) {
            rc = g3_conversation_add_parts(conv, t->parts, t->n_parts, &ge);
        } else {
            const char *text = t->n_parts ? t->parts[0].text : "";
            rc = g3_conversation_add(conv, t->role, text, NULL, 0, &ge);
        }
        if (rc) return srv_fail(e, 500, "server_error", NULL, "messages", "messages: %s", ge.msg);
    }
    return 0;
}

static int parse_messages(const cJSON *v, const srv_request_limits *lim, srv_chat_request *out, srv_error *e) {
    if (want_type(v, cJSON_IsArray(v), "messages", "an array of messages", e)) return -1;
    size_t n = (size_t)cJSON_GetArraySize(v);
    if (n == 0) return srv_bad_field(e, "invalid_value", "messages", "must not be empty");
    draft d = {0};
    size_t i = 0;
    const cJSON *msg;
    int rc = 0;
    cJSON_ArrayForEach(msg, v) {
        if ((rc = parse_message(msg, i++, &d, lim, e))) break;
    }
    if (!rc) rc = build_conversation(&d, n, &out->conv, e);
    out->n_images = d.n_images;
    draft_free(&d);
    return rc;
}

/* ---- the other fields ---------------------------------------------------- */

static int add_stop(srv_chat_request *out, size_t n, const cJSON *item, const char *param, srv_error *e) {
    const char *s = item->valuestring;
    if (!*s) return srv_bad_field(e, "invalid_value", param, "a stop string must not be empty");
    if (strlen(s) > SRV_MAX_STOP_LEN)
        return srv_bad_field(e, "invalid_value", param, "a stop string is at most %d bytes", SRV_MAX_STOP_LEN);
    if (!(out->stop[n] = strdup(s))) return oom(e);
    return 0;
}

static int parse_stop(const cJSON *v, srv_chat_request *out, srv_error *e) {
    for (size_t i = 0; i < SRV_MAX_STOP; i++) { /* "stop" given twice is refused, but be safe */
        free(out->stop[i]);
        out->stop[i] = NULL;
    }
    if (cJSON_IsString(v)) return add_stop(out, 0, v, "stop", e);
    if (want_type(v, cJSON_IsArray(v), "stop", "a string or an array of strings", e)) return -1;
    if (cJSON_GetArraySize(v) > SRV_MAX_STOP)
        return srv_bad_field(e, "invalid_value", "stop", "at most %d stop strings", SRV_MAX_STOP);
    size_t n = 0;
    const cJSON *item;
    cJSON_ArrayForEach(item, v) {
        char param[32];
        snprintf(param, sizeof param, "stop[%zu]", n);
        if (want_type(item, cJSON_IsString(item), param, "a string", e) || add_stop(out, n, item, param, e)) return -1;
        n++;
    }
    return 0;
}

/* A field that must keep its "off" value: null, false, 0, "", [] or {}. */
static bool is_off(const cJSON *v) {
    return cJSON_IsNull(v) || cJSON_IsFalse(v) || (cJSON_IsNumber(v) && v->valuedouble == 0) ||
           (cJSON_IsString(v) && !*v->valuestring) || ((cJSON_IsArray(v) || cJSON_IsObject(v)) && !v->child);
}

static int parse_model(const cJSON *v, const srv_request_limits *lim, srv_error *e) {
    if (want_type(v, cJSON_IsString(v), "model", "a string", e)) return -1;
    const char *m = v->valuestring;
    if (!lim->model_id || !strcasecmp(m, lim->model_id) || (lim->model_name && !strcasecmp(m, lim->model_name)))
        return 0;
    return srv_fail(e, 404, "invalid_request_error", "model_not_found", "model",
                    "model: '%.80s' is not served here; this server serves '%s' (GET /v1/models)", m, lim->model_id);
}

static int parse_stream_options(const cJSON *v, srv_chat_request *out, srv_error *e) {
    if (want_type(v, cJSON_IsObject(v), "stream_options", "an object", e)) return -1;
    const cJSON *f;
    cJSON_ArrayForEach(f, v) {
        if (strcmp(f->string, "include_usage") != 0) {
            char param[96];
            snprintf(param, sizeof param, "stream_options.%.60s", f->string);
            return srv_bad_field(e, "unknown_parameter", param, "unknown field");
        }
        if (cJSON_IsNull(f)) continue;
        if (want_type(f, cJSON_IsBool(f), "stream_options.include_usage", "a boolean", e)) return -1;
        out->include_usage = cJSON_IsTrue(f);
    }
    return 0;
}

/* Fields of OpenAI's API that change nothing for this server. */
static const char *const k_ignored[] = {"user", "store", "metadata", "service_tier", "parallel_tool_calls",
                                        "prediction", "safety_identifier", "prompt_cache_key"};
/* Features this server does not have: refused unless off. */
static const char *const k_unsupported[] = {"tools", "tool_choice", "functions", "function_call", "logprobs",
                                            "top_logprobs", "logit_bias", "audio", "web_search_options",
                                            "reasoning_effort"};

static bool in_list(const char *s, const char *const *list, size_t n) {
    for (size_t i = 0; i < n; i++)
        if (!strcmp(s, list[i])) return true;
    return false;
}

typedef struct numbers {
    double max_tokens;   /* < 0: not given */
    double top_p;        /* < 0: not given */
} numbers;

static int parse_field(const cJSON *f, const srv_request_limits *lim, srv_chat_request *out, numbers *num,
                       srv_error *e) {
    const char *k = f->string;
    g3_sampler_params *sp = &out->gen.sampler;
    double x = 0;
    if (!strcmp(k, "messages")) return parse_messages(f, lim, out, e);
    if (cJSON_IsNull(f)) return 0; /* an optional field given as null is not given */
    if (!strcmp(k, "model")) return parse_model(f, lim, e);
    if (!strcmp(k, "max_tokens") || !strcmp(k, "max_completion_tokens")) {
        if (get_integer(f, k, 1, 1e9, &x, e)) return -1;
        if (num->max_tokens < 0 || x < num->max_tokens) num->max_tokens = x;
        return 0;
    }
    if (!strcmp(k, "temperature")) {
        if (get_number(f, k, 0, 2, false, &x, e)) return -1;
        sp->temperature = (float)x;
        return 0;
    }
    if (!strcmp(k, "top_p")) {
        if (get_number(f, k, 0, 1, false, &x, e)) return -1;
        num->top_p = x;
        return 0;
    }
    if (!strcmp(k, "top_k")) {
        if (get_integer(f, k, 0, 1e9, &x, e)) return -1;
        sp->top_k = (uint32_t)x;
        return 0;
    }
    if (!strcmp(k, "min_p")) {
        if (get_number(f, k, 0, 1, false, &x, e)) return -1;
        if (x >= 1) return srv_bad_field(e, "invalid_value", k, "must be in [0, 1), got %g", x);
        sp->min_p = (float)x;
        return 0;
    }
    if (!strcmp(k, "repetition_penalty")) {
        if (get_number(f, k, 0, 10, true, &x, e)) return -1;
        sp->repeat_penalty = (float)x;
        return 0;
    }
    if (!strcmp(k, "frequency_penalty") || !strcmp(k, "presence_penalty")) {
        if (get_number(f, k, -2, 2, false, &x, e)) return -1;
        if (x != 0)
            return srv_bad_field(e, "unsupported_value", k, "only 0 is supported (the sampler has no additive "
                                 "penalties); use repetition_penalty (e.g. 1.1) instead");
        return 0;
    }
    if (!strcmp(k, "seed")) {
        if (get_integer(f, k, -9007199254740991.0, 9007199254740991.0, &x, e)) return -1;
        sp->seed = (uint64_t)(int64_t)x;
        return 0;
    }
    if (!strcmp(k, "stop")) return parse_stop(f, out, e);
    if (!strcmp(k, "n")) {
        if (get_integer(f, k, 1, 1e9, &x, e)) return -1;
        if (x != 1) return srv_bad_field(e, "unsupported_value", k, "only n = 1 is supported (one answer per request)");
        return 0;
    }
    if (!strcmp(k, "stream")) {
        if (want_type(f, cJSON_IsBool(f), k, "a boolean", e)) return -1;
        out->stream = cJSON_IsTrue(f);
        return 0;
    }
    if (!strcmp(k, "stream_options")) return parse_stream_options(f, out, e);
    if (!strcmp(k, "response_format")) {
        const cJSON *t = cJSON_IsObject(f) ? cJSON_GetObjectItemCaseSensitive(f, "type") : NULL;
        if (!cJSON_IsString(t) || strcmp(t->valuestring, "text") != 0)
            return srv_bad_field(e, "unsupported_value", k, "only {\"type\": \"text\"} is supported");
        return 0;
    }
    if (!strcmp(k, "modalities")) {
        if (!cJSON_IsArray(f) || cJSON_GetArraySize(f) != 1 || !cJSON_IsString(f->child) ||
            strcmp(f->child->valuestring, "text") != 0)
            return srv_bad_field(e, "unsupported_value", k, "only [\"text\"] is supported");
        return 0;
    }
    if (in_list(k, k_ignored, sizeof k_ignored / sizeof *k_ignored)) return 0;
    if (in_list(k, k_unsupported, sizeof k_unsupported / sizeof *k_unsupported)) {
        if (is_off(f) || (!strcmp(k, "tool_choice") && cJSON_IsString(f) && !strcmp(f->valuestring, "none")))
            return 0;
        return srv_bad_field(e, "unsupported_parameter", k, "not supported by this server");
    }
    return srv_bad_field(e, "unknown_parameter", k, "unknown field");
}

/* ---- the request --------------------------------------------------------- */

int srv_json_check_depth(const char *text, size_t len, int max_depth, srv_error *e) {
    int depth = 0;
    bool in_string = false;
    for (size_t i = 0; i < len; i++) {
        char c = text[i];
        if (in_string) {
            if (c == '\\') i++;
            else if (c == '"') in_string = false;
        } else if (c == '"') {
            in_string = true;
        } else if (c == '[' || c == '{') {
            if (++depth > max_depth)
                return srv_fail(e, 400, NULL, "invalid_json", NULL,
                                "the JSON body nests deeper than %d levels (at byte %zu)", max_depth, i);
        } else if (c == ']' || c == '}') {
            depth--;
        }
    }
    return 0;
}

int srv_chat_request_parse(const char *body, size_t len, const srv_request_limits *lim, srv_chat_request *out,
                           srv_error *e) {
    memset(out, 0, sizeof *out);
    g3_conversation_init(&out->conv);
    out->gen = g3_gen_defaults();
    out->gen.stop = NULL;
    if (srv_json_check_depth(body, len, SRV_MAX_JSON_DEPTH, e)) return -1;
    const char *end = NULL;
    cJSON *root = cJSON_ParseWithLengthOpts(body, len, &end, false);
    if (!root) {
        size_t at = end && end >= body && end <= body + len ? (size_t)(end - body) : 0;
        return srv_fail(e, 400, NULL, "invalid_json", NULL, "the request body is not valid JSON (error near byte %zu)",
                        at);
    }
    while (end && end < body + len && strchr(" \t\r\n", *end)) end++;
    if (end && end < body + len) {
        cJSON_Delete(root);
        return srv_fail(e, 400, NULL, "invalid_json", NULL, "the request body has data after its JSON value (byte %zu)",
                        (size_t)(end - body));
    }
    int rc = 0;
    numbers num = {.max_tokens = -1, .top_p = -1};
    if (!cJSON_IsObject(root)) {
        rc = srv_fail(e, 400, NULL, "invalid_type", NULL, "the request body must be a JSON object, got %s",
                      srv_json_type_name(root));
    } else if (!cJSON_GetObjectItemCaseSensitive(root, "messages")) {
        rc = srv_bad_field(e, "missing_required_parameter", "messages", "required");
    } else {
        const cJSON *f;
        cJSON_ArrayForEach(f, root) {
            if (cJSON_GetObjectItemCaseSensitive(root, f->string) != f) {
                rc = srv_bad_field(e, "invalid_json", f->string, "given twice");
                break;
            }
            if ((rc = parse_field(f, lim, out, &num, e))) break;
        }
    }
    if (!rc && !out->stream && out->include_usage)
        rc = srv_bad_field(e, "invalid_value", "stream_options", "only allowed when stream is true");
    cJSON_Delete(root);
    if (rc) {
        srv_chat_request_free(out);
        return -1;
    }
    g3_sampler_params *sp = &out->gen.sampler;
    if (num.top_p == 0) { /* nothing but the most likely token */
        sp->top_k = 1;
        sp->top_p = 1;
    } else if (num.top_p > 0) {
        sp->top_p = (float)num.top_p;
    }
    uint32_t room = lim->n_ctx ? lim->n_ctx : UINT32_MAX;
    out->gen.max_new_tokens = num.max_tokens < 0 || num.max_tokens > room ? room : (uint32_t)num.max_tokens;
    out->gen.stop = out->stop[0] ? (const char *const *)out->stop : NULL;
    return 0;
}

void srv_chat_request_free(srv_chat_request *r) {
    g3_conversation_free(&r->conv);
    for (size_t i = 0; i < SRV_MAX_STOP && r->stop[i]; i++) free(r->stop[i]);
    memset(r->stop, 0, sizeof r->stop);
    r->gen.stop = NULL;
}
