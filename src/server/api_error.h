/* api_error.h: errors of the HTTP API, in OpenAI's shape.
 *
 * Every refusal the server sends is {"error": {"message", "type", "param",
 * "code"}} with its HTTP status: the message starts with the request field
 * it is about (param, a JSON path such as "messages[1].content[0].text"),
 * so a client sees what to fix. */
#ifndef G3_SERVER_API_ERROR_H
#define G3_SERVER_API_ERROR_H

#include <cjson/cJSON.h>

#if defined(__GNUC__)
#define SRV_PRINTF(a, b) __attribute__((format(printf, a, b)))
#else
#define SRV_PRINTF(a, b)
#endif

typedef struct srv_error {
    int status;          /* HTTP status */
    const char *type;    /* "invalid_request_error", "server_error", ... (static) */
    const char *code;    /* "invalid_value", "model_not_found", ... (static) or NULL */
    char param[128];     /* the field, as a JSON path; "" = null */
    char message[768];
} srv_error;

/* Fills e (status 400 and type invalid_request_error unless given) and
 * returns -1, so `return srv_fail(...)`. param may be NULL. */
int srv_fail(srv_error *e, int status, const char *type, const char *code, const char *param, const char *fmt,
             ...) SRV_PRINTF(6, 7);
/* The usual case: 400, invalid_request_error, the message prefixed with "PARAM: ". */
int srv_bad_field(srv_error *e, const char *code, const char *param, const char *fmt, ...) SRV_PRINTF(4, 5);

/* {"message", "type", "param", "code"}; NULL when out of memory. */
cJSON *srv_error_object(const srv_error *e);
/* {"error": {...}} as malloc'd text; NULL when out of memory. */
char *srv_error_json(const srv_error *e);

/* "a string", "an array", ...: what a JSON value is, for "expected X, got Y". */
const char *srv_json_type_name(const cJSON *v);

#endif
