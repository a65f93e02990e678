#include "server/native_request.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "base/base64.h"
#include "base/utf8.h"
#include "gemma3_chat.h"
#include "server/multipart.h"
#include "server/openai_request.h"

const srv_setting_range srv_setting_ranges[SRV_N_SETTINGS] = {
    {"max_tokens", 100, 2000, 700, true},          {"max_images", 1, 4, 2, true},
    {"temperature", 0.1, 2.0, 0.7, false},         {"top_p", 0.1, 1.0, 0.9, false},
    {"top_k", 1, 100, 50, true},                   {"repetition_penalty", 1.0, 2.0, 1.1, false},
};

static int oom(srv_error *e) {
    return srv_fail(e, 500, "server_error", NULL, NULL, "out of memory reading the request");
}

bool srv_is_utf8(const char *s, size_t len) {
    for (size_t i = 0; i < len;) {
        if (!s[i]) return false;
        size_t n = g3_utf8_seq_len((const unsigned char *)s + i, len - i);
        if (!n) return false;
        i += n;
    }
    return true;
}

static int wrong_type(const cJSON *v, const char *param, const char *expected, srv_error *e) {
    return srv_bad_field(e, "invalid_type", param, "expected %s, got %s", expected, srv_json_type_name(v));
}

/* The body as a JSON object (depth checked, nothing after it). */
static cJSON *parse_object(const char *body, size_t len, srv_error *e) {
    if (srv_json_check_depth(body, len, SRV_MAX_JSON_DEPTH, e)) return NULL;
    const char *end = NULL;
    cJSON *root = cJSON_ParseWithLengthOpts(body, len, &end, false);
    if (!root) {
        size_t at = end && end >= body && end <= body + len ? (size_t)(end - body) : 0;
        srv_fail(e, 400, NULL, "invalid_json", NULL, "the request body is not valid JSON (error near byte %zu)", at);
        return NULL;
    }
    while (end && end < body + len && strchr(" \t\r\n", *end)) end++;
    if (end && end < body + len) {
        cJSON_Delete(root);
        srv_fail(e, 400, NULL, "invalid_json", NULL, "the request body has data after its JSON value (byte %zu)",
                 (size_t)(end - body));
        return NULL;
    }
    if (!cJSON_IsObject(root)) {
        srv_fail(e, 400, NULL, "invalid_type", NULL, "the request body must be a JSON object, got %s",
                 srv_json_type_name(root));
        cJSON_Delete(root);
        return NULL;
    }
    return root;
}

/* A string field copied (UTF-8, at most max bytes). */
static int take_string(const cJSON *v, const char *param, size_t max, char **out, srv_error *e) {
    if (!cJSON_IsString(v)) return wrong_type(v, param, "a string", e);
    size_t n = strlen(v->valuestring);
    if (n > max) return srv_bad_field(e, "string_above_max_length", param, "longer than %zu bytes", max);
    if (!srv_is_utf8(v->valuestring, n)) return srv_bad_field(e, "invalid_value", param, "not valid UTF-8");
    if (!(*out = strdup(v->valuestring))) return oom(e);
    return 0;
}

/* Settings given in obj merged onto *st. */
static int parse_settings(const cJSON *obj, g3_store_settings *st, srv_error *e) {
    if (!cJSON_IsObject(obj)) return wrong_type(obj, "settings", "an object", e);
    const cJSON *f;
    cJSON_ArrayForEach(f, obj) {
        char param[96];
        snprintf(param, sizeof param, "settings.%.60s", f->string ? f->string : "");
        const srv_setting_range *r = NULL;
        for (size_t i = 0; i < SRV_N_SETTINGS; i++)
            if (f->string && !strcmp(f->string, srv_setting_ranges[i].key)) r = &srv_setting_ranges[i];
        if (!r) return srv_bad_field(e, "unknown_parameter", param, "unknown setting (max_tokens, temperature, top_p, "
                                     "top_k, repetition_penalty, max_images)");
        if (!cJSON_IsNumber(f)) return wrong_type(f, param, r->integer ? "an integer" : "a number", e);
        double v = f->valuedouble;
        if (!isfinite(v)) return srv_bad_field(e, "invalid_value", param, "not a finite number");
        if (r->integer && v != floor(v)) return wrong_type(f, param, "an integer", e);
        /* A small tolerance: 0.1 typed by a client may arrive as 0.09999999. */
        if (v < r->min - 1e-9 || v > r->max + 1e-9)
            return srv_bad_field(e, "out_of_range", param, "%g is out of range (%g to %g)", v, r->min, r->max);
        if (!strcmp(r->key, "max_tokens")) st->max_tokens = (uint32_t)v;
        else if (!strcmp(r->key, "max_images")) st->max_images = (uint32_t)v;
        else if (!strcmp(r->key, "temperature")) st->temperature = (float)v;
        else if (!strcmp(r->key, "top_p")) st->top_p = (float)v;
        else if (!strcmp(r->key, "top_k")) st->top_k = (uint32_t)v;
        else st->repetition_penalty = (float)v;
    }
    return 0;
}

void srv_conv_request_free(srv_conv_request *r) {
    if (!r) return;
    free(r->title);
    free(r->preset);
    free(r->system);
    memset(r, 0, sizeof *r);
}

int srv_conv_request_parse(const char *body, size_t len, bool create, const g3_store_settings *base,
                           srv_conv_request *out, srv_error *e) {
    memset(out, 0, sizeof *out);
    out->settings = *base;
    bool empty = true;
    for (size_t i = 0; i < len; i++) empty &= strchr(" \t\r\n", body[i]) != NULL;
    if (empty && create) return 0; /* POST /api/conversations with no body: the defaults */
    cJSON *root = parse_object(body, len, e);
    if (!root) return -1;
    int rc = 0;
    const cJSON *f;
    cJSON_ArrayForEach(f, root) {
        const char *k = f->string ? f->string : "";
        if (cJSON_GetObjectItemCaseSensitive(root, k) != f) {
            rc = srv_bad_field(e, "invalid_value", k, "given twice");
        } else if (!strcmp(k, "title")) {
            rc = take_string(f, "title", SRV_NATIVE_MAX_TITLE, &out->title, e);
        } else if (!strcmp(k, "system")) {
            rc = take_string(f, "system", SRV_NATIVE_MAX_SYSTEM, &out->system, e);
        } else if (!strcmp(k, "preset")) {
            rc = take_string(f, "preset", 64, &out->preset, e);
            /* "" clears the preset; anything else must be a key (not a display name). */
            const g3_preset *p = !rc && out->preset[0] ? g3_preset_find(out->preset) : NULL;
            if (!rc && out->preset[0] && (!p || strcasecmp(p->key, out->preset) != 0)) {
                char keys[200] = "";
                for (size_t i = 0; i < g3_preset_count(); i++)
                    snprintf(keys + strlen(keys), sizeof keys - strlen(keys), "%s%s", i ? ", " : "",
                             g3_preset_at(i)->key);
                rc = srv_bad_field(e, "invalid_value", "preset", "unknown preset '%.64s' (%s)", out->preset, keys);
            } else if (!rc && p) {
                free(out->preset);
                if (!(out->preset = strdup(p->key))) rc = oom(e);
            }
        } else if (!strcmp(k, "settings")) {
            out->has_settings = true;
            rc = parse_settings(f, &out->settings, e);
        } else {
            rc = srv_bad_field(e, "unknown_parameter", k[0] ? k : "(empty)",
                               "unknown field (title, preset, system, settings)");
        }
        if (rc) break;
    }
    cJSON_Delete(root);
    if (!rc && create && out->preset && out->preset[0] && !out->system) {
        const g3_preset *p = g3_preset_find(out->preset);
        if (p && !(out->system = strdup(p->system_prompt))) rc = oom(e);
    }
    if (rc) srv_conv_request_free(out);
    return rc;
}

/* ---- messages ------------------------------------------------------------ */

void srv_message_request_free(srv_message_request *r) {
    if (!r) return;
    free(r->content);
    for (size_t i = 0; i < r->n_files; i++) {
        free(r->files[i].name);
        free(r->files[i].type);
        free(r->files[i].data);
    }
    free(r->files);
    memset(r, 0, sizeof *r);
}

static srv_upload *add_file(srv_message_request *r, srv_error *e) {
    if (r->n_files == SRV_NATIVE_MAX_FILES) {
        srv_bad_field(e, "too_many_files", "attachments", "at most %d files per message", SRV_NATIVE_MAX_FILES);
        return NULL;
    }
    if (!r->files && !(r->files = calloc(SRV_NATIVE_MAX_FILES, sizeof *r->files))) {
        oom(e);
        return NULL;
    }
    return &r->files[r->n_files++];
}

/* A declared media type: printable ASCII, no more than 127 bytes. */
static bool plausible_type(const char *t, size_t n) {
    if (!n || n > 127) return false;
    for (size_t i = 0; i < n; i++)
        if (t[i] < 0x20 || t[i] > 0x7e) return false;
    return true;
}

static int parse_attachment(const cJSON *a, size_t i, srv_message_request *r, srv_error *e) {
    char param[64];
    snprintf(param, sizeof param, "attachments[%zu]", i);
    if (!cJSON_IsObject(a)) return wrong_type(a, param, "an object", e);
    srv_upload *u = add_file(r, e);
    if (!u) return -1;
    const cJSON *f;
    const cJSON *data = NULL;
    cJSON_ArrayForEach(f, a) {
        const char *k = f->string ? f->string : "";
        char p[128];
        snprintf(p, sizeof p, "%s.%.40s", param, k);
        if (cJSON_GetObjectItemCaseSensitive(a, k) != f) return srv_bad_field(e, "invalid_value", p, "given twice");
        if (!strcmp(k, "name")) {
            if (take_string(f, p, 255, &u->name, e)) return -1;
        } else if (!strcmp(k, "type")) {
            if (!cJSON_IsNull(f)) {
                if (!cJSON_IsString(f)) return wrong_type(f, p, "a string", e);
                size_t n = strlen(f->valuestring);
                if (n && !plausible_type(f->valuestring, n))
                    return srv_bad_field(e, "invalid_value", p, "not a media type");
                if (n && !(u->type = strdup(f->valuestring))) return oom(e);
            }
        } else if (!strcmp(k, "data")) {
            data = f;
        } else {
            return srv_bad_field(e, "unknown_parameter", p, "unknown field (name, type, data)");
        }
    }
    snprintf(param, sizeof param, "attachments[%zu].data", i);
    if (!data) return srv_bad_field(e, "missing_required_parameter", param, "required (the file's bytes in base64)");
    if (!cJSON_IsString(data)) return wrong_type(data, param, "a base64 string", e);
    size_t n = strlen(data->valuestring);
    size_t max = g3_base64_decoded_max(n);
    if (!(u->data = malloc(max ? max : 1))) return oom(e);
    g3_error ge;
    if (g3_base64_decode(data->valuestring, n, u->data, &u->size, &ge))
        return srv_bad_field(e, "invalid_base64", param, "not valid base64: %s", ge.msg);
    if (!u->name && !(u->name = strdup("attachment"))) return oom(e);
    return 0;
}

static int parse_bool_text(const char *v, size_t n, const char *param, bool *out, srv_error *e) {
    if (n == 4 && !memcmp(v, "true", 4)) *out = true;
    else if (n == 5 && !memcmp(v, "false", 5)) *out = false;
    else return srv_bad_field(e, "invalid_value", param, "expected \"true\" or \"false\"");
    return 0;
}

static int parse_message_json(srv_message_kind kind, const char *body, size_t len, srv_message_request *r,
                              srv_error *e) {
    cJSON *root = parse_object(body, len, e);
    if (!root) return -1;
    int rc = 0;
    bool has_content = false;
    const cJSON *f;
    cJSON_ArrayForEach(f, root) {
        const char *k = f->string ? f->string : "";
        if (cJSON_GetObjectItemCaseSensitive(root, k) != f) {
            rc = srv_bad_field(e, "invalid_value", k, "given twice");
        } else if (!strcmp(k, "stream")) {
            if (!cJSON_IsBool(f)) rc = wrong_type(f, "stream", "a boolean", e);
            else r->stream = cJSON_IsTrue(f);
        } else if (kind != SRV_MSG_REGENERATE && !strcmp(k, "content")) {
            has_content = true;
            rc = take_string(f, "content", SIZE_MAX, &r->content, e);
        } else if (kind != SRV_MSG_REGENERATE && !strcmp(k, "attachments")) {
            if (!cJSON_IsArray(f)) {
                rc = wrong_type(f, "attachments", "an array", e);
            } else {
                size_t i = 0;
                const cJSON *a;
                cJSON_ArrayForEach(a, f) {
                    if ((rc = parse_attachment(a, i++, r, e))) break;
                }
            }
        } else if (kind == SRV_MSG_EDIT && !strcmp(k, "keep_attachments")) {
            if (!cJSON_IsBool(f)) rc = wrong_type(f, "keep_attachments", "a boolean", e);
            else r->keep_attachments = cJSON_IsTrue(f);
        } else {
            rc = srv_bad_field(e, "unknown_parameter", k[0] ? k : "(empty)", "unknown field (%s)",
                               kind == SRV_MSG_REGENERATE ? "stream"
                               : kind == SRV_MSG_EDIT     ? "content, attachments, keep_attachments, stream"
                                                          : "content, attachments, stream");
        }
        if (rc) break;
    }
    cJSON_Delete(root);
    if (!rc && kind != SRV_MSG_REGENERATE && !has_content)
        rc = srv_bad_field(e, "missing_required_parameter", "content", "required (the message's text; \"\" with "
                           "attachments)");
    return rc;
}

static int parse_message_multipart(srv_message_kind kind, const char *ct, const char *body, size_t len,
                                   srv_message_request *r, srv_error *e) {
    char boundary[SRV_MP_MAX_BOUNDARY + 1];
    if (srv_multipart_boundary(ct, boundary, sizeof boundary, e)) return -1;
    srv_mp_body mp;
    if (srv_multipart_parse(body, len, boundary, &mp, e)) return -1;
    int rc = 0;
    bool has_content = false, has_stream = false, has_keep = false;
    for (size_t i = 0; i < mp.n && !rc; i++) {
        const srv_mp_part *p = &mp.parts[i];
        if (p->filename) {
            char param[64];
            snprintf(param, sizeof param, "attachments[%zu]", r->n_files);
            srv_upload *u = add_file(r, e);
            if (!u) {
                rc = -1;
                break;
            }
            size_t n = strlen(p->filename);
            const char *name = n ? p->filename : "attachment";
            /* Browsers send the base name; older ones a Windows path. */
            const char *slash = strrchr(name, '/'), *bs = strrchr(name, '\\');
            if (bs && (!slash || bs > slash)) slash = bs;
            if (slash && slash[1]) name = slash + 1;
            if (!srv_is_utf8(name, strlen(name))) {
                rc = srv_bad_field(e, "invalid_value", param, "the file name is not valid UTF-8");
                break;
            }
            if (!(u->name = strdup(name))) rc = oom(e);
            if (!rc && p->content_type) {
                const char *t = p->content_type;
                if (!plausible_type(t, strlen(t)))
                    rc = srv_bad_field(e, "invalid_value", param, "the part's Content-Type is not a media type");
                else if (!(u->type = strdup(t)))
                    rc = oom(e);
            }
            if (!rc && !(u->data = malloc(p->len ? p->len : 1))) rc = oom(e);
            if (!rc) {
                if (p->len) memcpy(u->data, p->data, p->len);
                u->size = p->len;
            }
        } else if (!strcmp(p->name, "content")) {
            if (has_content) {
                rc = srv_bad_field(e, "invalid_value", "content", "given twice");
            } else if (!srv_is_utf8(p->data, p->len)) {
                rc = srv_bad_field(e, "invalid_value", "content", "not valid UTF-8");
            } else if (!(r->content = malloc(p->len + 1))) {
                rc = oom(e);
            } else {
                memcpy(r->content, p->data, p->len);
                r->content[p->len] = 0;
                has_content = true;
            }
        } else if (!strcmp(p->name, "stream")) {
            rc = has_stream ? srv_bad_field(e, "invalid_value", "stream", "given twice")
                            : parse_bool_text(p->data, p->len, "stream", &r->stream, e);
            has_stream = true;
        } else if (kind == SRV_MSG_EDIT && !strcmp(p->name, "keep_attachments")) {
            rc = has_keep ? srv_bad_field(e, "invalid_value", "keep_attachments", "given twice")
                          : parse_bool_text(p->data, p->len, "keep_attachments", &r->keep_attachments, e);
            has_keep = true;
        } else {
            char param[96];
            snprintf(param, sizeof param, "%.80s", p->name[0] ? p->name : "(empty)");
            rc = srv_bad_field(e, "unknown_parameter", param, "unknown form field (content, stream%s, and files)",
                               kind == SRV_MSG_EDIT ? ", keep_attachments" : "");
        }
    }
    srv_multipart_free(&mp);
    if (!rc && !has_content)
        rc = srv_bad_field(e, "missing_required_parameter", "content", "required (a form field; may be empty with "
                           "files)");
    return rc;
}

int srv_message_request_parse(srv_message_kind kind, const char *content_type, const char *body, size_t len,
                              srv_message_request *out, srv_error *e) {
    memset(out, 0, sizeof *out);
    bool empty = true;
    for (size_t i = 0; i < len; i++) empty &= strchr(" \t\r\n", body[i]) != NULL;
    int rc;
    if (kind == SRV_MSG_REGENERATE && empty)
        return 0;
    if (kind != SRV_MSG_REGENERATE && srv_is_multipart_type(content_type))
        rc = parse_message_multipart(kind, content_type, body, len, out, e);
    else
        rc = parse_message_json(kind, body, len, out, e);
    if (!rc && out->content && !out->content[0] && !out->n_files && !(kind == SRV_MSG_EDIT && out->keep_attachments))
        rc = srv_bad_field(e, "invalid_value", "content", "the message is empty (no text and no attachments)");
    if (rc) srv_message_request_free(out);
    return rc;
}
