/* native_request.h: the bodies of the native conversation API (/api/...)
 * as plain data. Pure functions over the body (no server, store or engine),
 * so they can be fuzzed on their own; every refusal is a 400 naming the
 * field ("settings.temperature", "attachments[1].data"), 500 only when out
 * of memory.
 *
 *   conversation  {title?, preset?, system?, settings?: {max_tokens,
 *                 temperature, top_p, top_k, repetition_penalty,
 *                 max_images}} for POST /api/conversations and PATCH
 *                 /api/conversations/{id}: the settings given merge onto
 *                 `base` (the defaults, or the stored ones); each is
 *                 checked against the product's range (srv_setting_ranges)
 *                 and its JSON type (integers for the counts); a preset
 *                 must be a known key; on create a preset without `system`
 *                 fills the system prompt from the preset.
 *   message       {content, attachments?: [{name, type, data: base64}],
 *                 stream?} as JSON, or multipart/form-data (field `content`,
 *                 optional `stream` = "true"/"false", files as parts with a
 *                 filename); edit adds keep_attachments (a boolean, or
 *                 "true"/"false" in a form); regenerate takes an empty body
 *                 or {stream?}.
 * Unknown fields are refused (a typo must not pass silently). Texts must be
 * UTF-8. Limits: SRV_NATIVE_MAX_FILES files per message, titles
 * SRV_NATIVE_MAX_TITLE bytes, system prompts SRV_NATIVE_MAX_SYSTEM. */
#ifndef G3_SERVER_NATIVE_REQUEST_H
#define G3_SERVER_NATIVE_REQUEST_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "gemma3_store.h"
#include "server/api_error.h"

#define SRV_NATIVE_MAX_FILES 16
#define SRV_NATIVE_MAX_TITLE 1000
#define SRV_NATIVE_MAX_SYSTEM (256u << 10)

typedef struct srv_setting_range {
    const char *key;    /* "max_tokens", ... */
    double min, max, def;
    bool integer;
} srv_setting_range;

#define SRV_N_SETTINGS 6
/* max_tokens 100-2000/700, max_images 1-4/2, temperature 0.1-2.0/0.7,
 * top_p 0.1-1.0/0.9, top_k 1-100/50, repetition_penalty 1.0-2.0/1.1. */
extern const srv_setting_range srv_setting_ranges[SRV_N_SETTINGS];

typedef struct srv_conv_request {
    char *title, *preset, *system;  /* NULL: not given */
    bool has_settings;
    g3_store_settings settings;     /* base with the given ones merged */
} srv_conv_request;

/* create: a preset without system fills system. base: the settings to merge onto. */
int srv_conv_request_parse(const char *body, size_t len, bool create, const g3_store_settings *base,
                           srv_conv_request *out, srv_error *e);
void srv_conv_request_free(srv_conv_request *r);

typedef struct srv_upload {
    char *name;       /* as given ("attachment" when none) */
    char *type;       /* the declared media type, or NULL */
    uint8_t *data;
    size_t size;
} srv_upload;

typedef enum srv_message_kind { SRV_MSG_SEND = 0, SRV_MSG_EDIT, SRV_MSG_REGENERATE } srv_message_kind;

typedef struct srv_message_request {
    char *content;            /* NULL for regenerate */
    srv_upload *files;
    size_t n_files;
    bool stream;
    bool keep_attachments;    /* edit */
} srv_message_request;

/* content_type selects JSON or multipart (multipart only for send and edit;
 * an empty body only for regenerate). */
int srv_message_request_parse(srv_message_kind kind, const char *content_type, const char *body, size_t len,
                              srv_message_request *out, srv_error *e);
void srv_message_request_free(srv_message_request *r);

/* true when the bytes are valid UTF-8 (no NUL). */
bool srv_is_utf8(const char *s, size_t len);

#endif
