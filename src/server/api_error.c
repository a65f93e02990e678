#include "server/api_error.h"

#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <string.h>

static void set_head(srv_error *e, int status, const char *type, const char *code, const char *param) {
    e->status = status;
    e->type = type ? type : "invalid_request_error";
    e->code = code;
    snprintf(e->param, sizeof e->param, "%s", param ? param : "");
}

int srv_fail(srv_error *e, int status, const char *type, const char *code, const char *param, const char *fmt,
             ...) {
    set_head(e, status, type, code, param);
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(e->message, sizeof e->message, fmt, ap);
    va_end(ap);
    return -1;
}

int srv_bad_field(srv_error *e, const char *code, const char *param, const char *fmt, ...) {
    set_head(e, 400, NULL, code, param);
    int n = snprintf(e->message, sizeof e->message, "%s: ", param);
    if (n < 0 || (size_t)n >= sizeof e->message) n = 0;
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(e->message + n, sizeof e->message - (size_t)n, fmt, ap);
    va_end(ap);
    return -1;
}

cJSON *srv_error_object(const srv_error *e) {
    cJSON *o = cJSON_CreateObject();
    if (!o) return NULL;
    bool ok = cJSON_AddStringToObject(o, "message", e->message) && cJSON_AddStringToObject(o, "type", e->type) &&
              (e->param[0] ? cJSON_AddStringToObject(o, "param", e->param) != NULL
                           : cJSON_AddNullToObject(o, "param") != NULL) &&
              (e->code ? cJSON_AddStringToObject(o, "code", e->code) != NULL
                       : cJSON_AddNullToObject(o, "code") != NULL);
    if (!ok) {
        cJSON_Delete(o);
        return NULL;
    }
    return o;
}

char *srv_error_json(const srv_error *e) {
    cJSON *root = cJSON_CreateObject(), *o = srv_error_object(e);
    if (!root || !o) {
        cJSON_Delete(root);
        cJSON_Delete(o);
        return NULL;
    }
    cJSON_AddItemToObject(root, "error", o);
    char *s = cJSON_PrintUnformatted(root);
    cJSON_Delete(root);
    return s;
}

const char *srv_json_type_name(const cJSON *v) {
    if (cJSON_IsNull(v)) return "null";
    if (cJSON_IsBool(v)) return "a boolean";
    if (cJSON_IsNumber(v)) return "a number";
    if (cJSON_IsString(v)) return "a string";
    if (cJSON_IsArray(v)) return "an array";
    if (cJSON_IsObject(v)) return "an object";
    return "an invalid value";
}
