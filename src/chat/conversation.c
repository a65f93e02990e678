/* conversation.c: turns of a chat, and their JSON form for /save and /load.
 * Loading validates the whole document into a fresh conversation and only
 * then replaces the caller's, so a bad file never damages what is open. */
#include <cjson/cJSON.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "base/error.h"
#include "base/read_file.h"
#include "base/base64.h"
#include "gemma3_chat.h"

#define CONVERSATION_FORMAT "gemma-chat-conversation"
/* The format's version. The optional "model" record came later without a
 * new version: readers that predate it ignore it, and a file without it
 * still loads. A version above this one is refused, not half-read. */
#define CONVERSATION_VERSION 1
#define MAX_FILE_BYTES (256u << 20)

void g3_conversation_init(g3_conversation *c) { memset(c, 0, sizeof *c); }

void g3_parts_free(g3_part *parts, size_t n) {
    for (size_t i = 0; parts && i < n; i++) {
        free(parts[i].text);
        free(parts[i].path);
        if (!parts[i].shares_data) free(parts[i].data);
    }
    free(parts);
}

static void turn_free(g3_turn *t) {
    free(t->text);
    free(t->ids);
    g3_parts_free(t->parts, t->n_parts);
}

void g3_conversation_clear(g3_conversation *c) {
    for (size_t i = 0; i < c->n_turns; i++) turn_free(&c->turns[i]);
    c->n_turns = 0;
}

void g3_conversation_free(g3_conversation *c) {
    g3_conversation_clear(c);
    free(c->turns);
    free(c->system);
    memset(c, 0, sizeof *c);
}

int g3_conversation_set_system(g3_conversation *c, const char *system, g3_error *err) {
    char *copy = NULL;
    if (system && *system && !(copy = strdup(system))) return g3_fail(err, "out of memory");
    free(c->system);
    c->system = copy;
    return 0;
}

int g3_conversation_add(g3_conversation *c, g3_role role, const char *text, const int32_t *ids,
                        size_t n_ids, g3_error *err) {
    g3_role expected = c->n_turns % 2 == 0 ? G3_ROLE_USER : G3_ROLE_MODEL;
    if (role != expected)
        return g3_fail(err, "turn %zu must be a %s turn (roles alternate, starting with the user)",
                       c->n_turns + 1, expected == G3_ROLE_USER ? "user" : "model");
    if (c->n_turns == c->cap) {
        size_t cap = c->cap ? c->cap * 2 : 8;
        g3_turn *grown = realloc(c->turns, cap * sizeof *grown);
        if (!grown) return g3_fail(err, "out of memory");
        c->turns = grown;
        c->cap = cap;
    }
    g3_turn t = {.role = role, .text = strdup(text ? text : ""), .n_ids = ids ? n_ids : 0, .parts = NULL};
    if (ids && n_ids) {
        t.ids = malloc(sizeof *ids * n_ids);
        if (t.ids) memcpy(t.ids, ids, sizeof *ids * n_ids);
    }
    if (!t.text || (ids && n_ids && !t.ids)) {
        free(t.text);
        free(t.ids);
        return g3_fail(err, "out of memory");
    }
    c->turns[c->n_turns++] = t;
    return 0;
}

void g3_conversation_pop(g3_conversation *c) {
    if (c->n_turns == 0) return;
    turn_free(&c->turns[--c->n_turns]);
}

/* The part of src[0..i) that owns the bytes src[i] shares, or -1. */
static long data_owner(const g3_part *src, size_t i) {
    for (size_t k = 0; k < i; k++)
        if (src[k].data == src[i].data && !src[k].shares_data && src[k].type == G3_PART_VIDEO_FRAME) return (long)k;
    return -1;
}

static int copy_parts(const g3_part *src, size_t n, g3_part **out, g3_error *err) {
    *out = calloc(n ? n : 1, sizeof **out);
    if (!*out) return g3_fail(err, "out of memory");
    for (size_t i = 0; i < n; i++) {
        g3_part *d = &(*out)[i];
        *d = src[i];
        d->text = src[i].text ? strdup(src[i].text) : NULL;
        d->path = src[i].path ? strdup(src[i].path) : NULL;
        long owner = -1;
        bool shares = src[i].shares_data && src[i].type == G3_PART_VIDEO_FRAME && src[i].data &&
                      (owner = data_owner(src, i)) >= 0 && src[owner].data_len == src[i].data_len;
        d->shares_data = shares;
        if (shares) d->data = (*out)[owner].data;
        else d->data = src[i].data ? malloc(src[i].data_len ? src[i].data_len : 1) : NULL;
        if (d->data && !shares) memcpy(d->data, src[i].data, src[i].data_len);
        if ((src[i].text && !d->text) || (src[i].path && !d->path) || (src[i].data && !d->data)) {
            g3_parts_free(*out, i + 1);
            *out = NULL;
            return g3_fail(err, "out of memory");
        }
        bool text = d->type == G3_PART_TEXT;
        bool has_media = (d->path != NULL) != (d->data != NULL);
        if ((text && !d->text) || (!text && !has_media) || d->type > G3_PART_VIDEO_FRAME ||
            (src[i].shares_data && !shares)) {
            g3_parts_free(*out, i + 1);
            *out = NULL;
            return g3_fail(err, "part %zu: a text part needs text, an image or video frame a path or its bytes (one "
                                "of them); a frame sharing bytes, an earlier frame owning them", i + 1);
        }
    }
    return 0;
}

/* The text parts joined, for display and plain-text export. */
static char *joined_text(const g3_part *parts, size_t n) {
    size_t len = 0;
    for (size_t i = 0; i < n; i++)
        if (parts[i].type == G3_PART_TEXT) len += strlen(parts[i].text) + 1;
    char *out = malloc(len + 1), *p = out;
    if (!out) return NULL;
    for (size_t i = 0; i < n; i++) {
        if (parts[i].type != G3_PART_TEXT) continue;
        if (p != out) *p++ = ' ';
        p = stpcpy(p, parts[i].text);
    }
    *p = 0;
    return out;
}

int g3_conversation_add_parts(g3_conversation *c, const g3_part *parts, size_t n_parts, g3_error *err) {
    g3_part *copy;
    if (copy_parts(parts, n_parts, &copy, err)) return -1;
    char *text = joined_text(parts, n_parts);
    if (!text || g3_conversation_add(c, G3_ROLE_USER, text, NULL, 0, err)) {
        free(text);
        g3_parts_free(copy, n_parts);
        return text ? -1 : g3_fail(err, "out of memory");
    }
    free(text);
    c->turns[c->n_turns - 1].parts = copy;
    c->turns[c->n_turns - 1].n_parts = n_parts;
    return 0;
}

static const char *const k_part_names[] = {"text", "image", "video_frame"};

static bool parts_to_json(cJSON *jt, const g3_turn *t) {
    cJSON *parts = cJSON_AddArrayToObject(jt, "parts");
    for (size_t k = 0; parts && k < t->n_parts; k++) {
        const g3_part *p = &t->parts[k];
        cJSON *jp = cJSON_CreateObject();
        if (!jp) return false;
        cJSON_AddItemToArray(parts, jp);
        cJSON_AddStringToObject(jp, "type", k_part_names[p->type]);
        if (p->type == G3_PART_TEXT) cJSON_AddStringToObject(jp, "text", p->text);
        else if (p->path) cJSON_AddStringToObject(jp, "path", p->path);
        else {
            char *b64 = g3_base64_encode(p->data, p->data_len);
            bool ok = b64 && cJSON_AddStringToObject(jp, "data", b64);
            free(b64);
            if (!ok) return false;
        }
        if (p->type == G3_PART_VIDEO_FRAME) {
            cJSON_AddNumberToObject(jp, "seconds", p->seconds);
            cJSON_AddNumberToObject(jp, "frame", p->frame);
            cJSON_AddNumberToObject(jp, "n_frames", p->n_frames);
        }
    }
    return parts != NULL;
}

static bool model_to_json(cJSON *root, const g3_model_record *m) {
    char fp[17];
    snprintf(fp, sizeof fp, "%016llx", (unsigned long long)m->vocab_fingerprint);
    cJSON *jm = cJSON_AddObjectToObject(root, "model");
    return jm && cJSON_AddStringToObject(jm, "name", m->name) && cJSON_AddNumberToObject(jm, "n_vocab", m->n_vocab) &&
           cJSON_AddStringToObject(jm, "vocab_fingerprint", fp);
}

/* The optional "model" record; absent: *m stays zero. */
static int parse_model(const cJSON *jm, g3_model_record *m, g3_error *err) {
    memset(m, 0, sizeof *m);
    if (!jm) return 0;
    const cJSON *name = cJSON_GetObjectItemCaseSensitive(jm, "name");
    const cJSON *n_vocab = cJSON_GetObjectItemCaseSensitive(jm, "n_vocab");
    const cJSON *fp = cJSON_GetObjectItemCaseSensitive(jm, "vocab_fingerprint");
    if (!cJSON_IsObject(jm) || !cJSON_IsString(name) || strlen(name->valuestring) >= sizeof m->name ||
        !cJSON_IsNumber(n_vocab) || n_vocab->valuedouble < 1 || n_vocab->valuedouble > INT32_MAX ||
        n_vocab->valuedouble != (double)(uint32_t)n_vocab->valuedouble || !cJSON_IsString(fp) ||
        strlen(fp->valuestring) != 16 || strspn(fp->valuestring, "0123456789abcdef") != 16)
        return g3_fail(err, "\"model\" must be {\"name\": a string under %zu bytes, \"n_vocab\": a count, "
                            "\"vocab_fingerprint\": 16 hex digits}", sizeof m->name);
    snprintf(m->name, sizeof m->name, "%s", name->valuestring);
    m->n_vocab = (uint32_t)n_vocab->valuedouble;
    m->vocab_fingerprint = strtoull(fp->valuestring, NULL, 16);
    return 0;
}

/* Absent means 1 (the first files wrote it, but hand-made ones may not). */
static int check_version(const cJSON *v, g3_error *err) {
    if (!v) return 0;
    if (!cJSON_IsNumber(v) || v->valuedouble < 1 || v->valuedouble != (double)v->valueint) /* valueint saturates */
        return g3_fail(err, "\"version\" must be a whole number from 1 (this gemma-chat writes %d)",
                       CONVERSATION_VERSION);
    if (v->valuedouble > CONVERSATION_VERSION)
        return g3_fail(err, "\"version\" is %d, newer than this gemma-chat reads (%d): saved by a later "
                            "gemma-chat? Update it to load this file",
                       v->valueint, CONVERSATION_VERSION);
    return 0;
}

char *g3_conversation_to_json(const g3_conversation *c) {
    cJSON *root = cJSON_CreateObject(), *turns = cJSON_CreateArray();
    if (!root || !turns) goto oom;
    cJSON_AddStringToObject(root, "format", CONVERSATION_FORMAT);
    cJSON_AddNumberToObject(root, "version", CONVERSATION_VERSION);
    cJSON_AddStringToObject(root, "system", c->system ? c->system : "");
    if (c->model.n_vocab && !model_to_json(root, &c->model)) goto oom;
    cJSON_AddItemToObject(root, "turns", turns);
    for (size_t i = 0; i < c->n_turns; i++) {
        const g3_turn *t = &c->turns[i];
        cJSON *jt = cJSON_CreateObject();
        if (!jt) goto oom;
        cJSON_AddItemToArray(turns, jt);
        cJSON_AddStringToObject(jt, "role", t->role == G3_ROLE_USER ? "user" : "model");
        cJSON_AddStringToObject(jt, "text", t->text);
        if (t->n_ids) {
            cJSON *ids = cJSON_AddArrayToObject(jt, "ids");
            for (size_t k = 0; ids && k < t->n_ids; k++) cJSON_AddItemToArray(ids, cJSON_CreateNumber(t->ids[k]));
        }
        if (t->n_parts && !parts_to_json(jt, t)) goto oom;
    }
    char *text = cJSON_Print(root);
    cJSON_Delete(root);
    return text;
oom:
    cJSON_Delete(root);
    cJSON_Delete(turns);
    return NULL;
}

static int parse_ids(const cJSON *arr, size_t turn, int32_t **ids, size_t *n, g3_error *err) {
    *ids = NULL;
    *n = 0;
    if (!arr) return 0;
    if (!cJSON_IsArray(arr)) return g3_fail(err, "turn %zu: \"ids\" must be an array", turn);
    int count = cJSON_GetArraySize(arr);
    if (count == 0) return 0;
    *ids = malloc(sizeof **ids * (size_t)count);
    if (!*ids) return g3_fail(err, "out of memory");
    const cJSON *v;
    cJSON_ArrayForEach(v, arr) {
        if (!cJSON_IsNumber(v) || v->valuedouble < 0 || v->valuedouble > INT32_MAX ||
            v->valuedouble != (double)(int32_t)v->valuedouble) {
            free(*ids);
            *ids = NULL;
            return g3_fail(err, "turn %zu: \"ids\" entry %zu is not a token id", turn, *n);
        }
        (*ids)[(*n)++] = (int32_t)v->valuedouble;
    }
    return 0;
}

static int parse_part(const cJSON *jp, size_t turn, size_t k, g3_part *p, g3_error *err) {
    const cJSON *type = cJSON_GetObjectItemCaseSensitive(jp, "type");
    const cJSON *text = cJSON_GetObjectItemCaseSensitive(jp, "text");
    const cJSON *path = cJSON_GetObjectItemCaseSensitive(jp, "path");
    memset(p, 0, sizeof *p);
    int t = -1;
    for (int i = 0; cJSON_IsString(type) && i < 3; i++)
        if (!strcmp(type->valuestring, k_part_names[i])) t = i;
    if (t < 0) return g3_fail(err, "turn %zu, part %zu: \"type\" must be text, image or video_frame", turn, k);
    p->type = (g3_part_type)t;
    const cJSON *data = cJSON_GetObjectItemCaseSensitive(jp, "data");
    if (t != G3_PART_TEXT && !path && cJSON_IsString(data)) { /* an image or a video kept as its bytes */
        const size_t n = strlen(data->valuestring);
        p->data = malloc(g3_base64_decoded_max(n)); /* owned here: freed by parse_parts */
        if (!p->data) return g3_fail(err, "out of memory");
        if (g3_base64_decode(data->valuestring, n, p->data, &p->data_len, err))
            return g3_error_prefix(err, "turn %zu, part %zu: \"data\"", turn, k);
    } else if (t == G3_PART_TEXT ? !cJSON_IsString(text) : !cJSON_IsString(path)) {
        return g3_fail(err, "turn %zu, part %zu: needs a string \"%s\"", turn, k,
                       t == G3_PART_TEXT ? "text" : "path\" or \"data");
    } else {
        p->text = t == G3_PART_TEXT ? text->valuestring : NULL; /* borrowed: copied by add_parts */
        p->path = t == G3_PART_TEXT ? NULL : path->valuestring;
    }
    if (t == G3_PART_VIDEO_FRAME) {
        const cJSON *sec = cJSON_GetObjectItemCaseSensitive(jp, "seconds");
        const cJSON *fr = cJSON_GetObjectItemCaseSensitive(jp, "frame");
        const cJSON *nf = cJSON_GetObjectItemCaseSensitive(jp, "n_frames");
        if (!cJSON_IsNumber(sec) || !cJSON_IsNumber(fr) || !cJSON_IsNumber(nf) || nf->valuedouble < 1 ||
            nf->valuedouble > 64 || fr->valuedouble < 0 || fr->valuedouble >= nf->valuedouble)
            return g3_fail(err, "turn %zu, part %zu: a video frame needs seconds, frame < n_frames <= 64", turn, k);
        p->seconds = sec->valuedouble;
        p->frame = (uint32_t)fr->valuedouble;
        p->n_frames = (uint32_t)nf->valuedouble;
    }
    return 0;
}

static int parse_parts(g3_conversation *c, const cJSON *jparts, size_t turn, g3_error *err) {
    if (!cJSON_IsArray(jparts)) return g3_fail(err, "turn %zu: \"parts\" must be an array", turn);
    size_t n = (size_t)cJSON_GetArraySize(jparts), k = 0;
    g3_part *parts = calloc(n ? n : 1, sizeof *parts);
    if (!parts) return g3_fail(err, "out of memory");
    const cJSON *jp;
    int rc = 0;
    cJSON_ArrayForEach(jp, jparts) {
        if ((rc = parse_part(jp, turn, k + 1, &parts[k], err))) break;
        k++;
    }
    if (rc == 0) rc = g3_conversation_add_parts(c, parts, n, err);
    for (size_t i = 0; i < n; i++) free(parts[i].data); /* add_parts copied it */
    free(parts); /* the strings were borrowed from the JSON */
    return rc;
}

static int parse_turns(g3_conversation *c, const cJSON *turns, g3_error *err) {
    if (!cJSON_IsArray(turns)) return g3_fail(err, "\"turns\" must be an array");
    size_t i = 0;
    const cJSON *jt;
    cJSON_ArrayForEach(jt, turns) {
        i++;
        const cJSON *role = cJSON_GetObjectItemCaseSensitive(jt, "role");
        const cJSON *text = cJSON_GetObjectItemCaseSensitive(jt, "text");
        if (!cJSON_IsString(role) || !cJSON_IsString(text))
            return g3_fail(err, "turn %zu needs string \"role\" and \"text\"", i);
        g3_role r;
        if (strcmp(role->valuestring, "user") == 0) r = G3_ROLE_USER;
        else if (strcmp(role->valuestring, "model") == 0 || strcmp(role->valuestring, "assistant") == 0)
            r = G3_ROLE_MODEL;
        else return g3_fail(err, "turn %zu: unknown role '%.32s'", i, role->valuestring);
        const cJSON *jparts = cJSON_GetObjectItemCaseSensitive(jt, "parts");
        if (jparts && r == G3_ROLE_USER) {
            if (parse_parts(c, jparts, i, err)) return -1;
            continue;
        }
        int32_t *ids;
        size_t n_ids;
        if (parse_ids(cJSON_GetObjectItemCaseSensitive(jt, "ids"), i, &ids, &n_ids, err)) return -1;
        int rc = g3_conversation_add(c, r, text->valuestring, ids, n_ids, err);
        free(ids);
        if (rc) return -1;
    }
    return 0;
}

int g3_conversation_from_json(g3_conversation *c, const char *json, g3_error *err) {
    cJSON *root = cJSON_Parse(json);
    if (!root) return g3_fail(err, "not valid JSON (near byte %td)", cJSON_GetErrorPtr() ? cJSON_GetErrorPtr() - json : 0);
    g3_conversation fresh;
    g3_conversation_init(&fresh);
    int rc = -1;
    const cJSON *format = cJSON_GetObjectItemCaseSensitive(root, "format");
    const cJSON *system = cJSON_GetObjectItemCaseSensitive(root, "system");
    if (!cJSON_IsString(format) || strcmp(format->valuestring, CONVERSATION_FORMAT) != 0) {
        g3_fail(err, "not a gemma-chat conversation (\"format\" must be \"%s\")", CONVERSATION_FORMAT);
        goto done;
    }
    if (check_version(cJSON_GetObjectItemCaseSensitive(root, "version"), err) ||
        parse_model(cJSON_GetObjectItemCaseSensitive(root, "model"), &fresh.model, err))
        goto done;
    if (system && !cJSON_IsString(system)) {
        g3_fail(err, "\"system\" must be a string");
        goto done;
    }
    if ((system && g3_conversation_set_system(&fresh, system->valuestring, err)) ||
        parse_turns(&fresh, cJSON_GetObjectItemCaseSensitive(root, "turns"), err))
        goto done;
    g3_conversation_free(c);
    *c = fresh;
    g3_conversation_init(&fresh);
    rc = 0;
done:
    g3_conversation_free(&fresh);
    cJSON_Delete(root);
    return rc;
}

int g3_conversation_save(const g3_conversation *c, const char *path, g3_error *err) {
    char *text = g3_conversation_to_json(c);
    if (!text) return g3_fail(err, "out of memory");
    char tmp[4096];
    if ((size_t)snprintf(tmp, sizeof tmp, "%s.tmp", path) >= sizeof tmp) {
        free(text);
        return g3_fail(err, "path too long: %s", path);
    }
    FILE *f = fopen(tmp, "wb");
    if (!f) {
        free(text);
        return g3_fail(err, "cannot create '%s': %s", tmp, strerror(errno));
    }
    size_t len = strlen(text);
    bool ok = fwrite(text, 1, len, f) == len && fputc('\n', f) != EOF && fflush(f) == 0 && fsync(fileno(f)) == 0;
    int e = errno;
    ok = fclose(f) == 0 && ok;
    free(text);
    if (!ok || rename(tmp, path) != 0) {
        if (ok) e = errno;
        remove(tmp);
        return g3_fail(err, "cannot write '%s': %s", path, strerror(e));
    }
    return 0;
}

int g3_conversation_load(g3_conversation *c, const char *path, g3_error *err) {
    char *buf;
    size_t len;
    if (g3_read_file(path, MAX_FILE_BYTES, &buf, &len, err)) return -1;
    int rc = g3_conversation_from_json(c, buf, err);
    free(buf);
    return rc ? g3_error_prefix(err, "%s: ", path) : 0;
}
