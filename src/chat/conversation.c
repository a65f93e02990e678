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
#include "gemma3_chat.h"

#define CONVERSATION_FORMAT "gemma-chat-conversation"
#define MAX_FILE_BYTES (256u << 20)

void g3_conversation_init(g3_conversation *c) { memset(c, 0, sizeof *c); }

void g3_conversation_clear(g3_conversation *c) {
    for (size_t i = 0; i < c->n_turns; i++) {
        free(c->turns[i].text);
        free(c->turns[i].ids);
    }
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
    g3_turn t = {.role = role, .text = strdup(text ? text : ""), .n_ids = ids ? n_ids : 0};
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
    g3_turn *t = &c->turns[--c->n_turns];
    free(t->text);
    free(t->ids);
}

char *g3_conversation_to_json(const g3_conversation *c) {
    cJSON *root = cJSON_CreateObject(), *turns = cJSON_CreateArray();
    if (!root || !turns) goto oom;
    cJSON_AddStringToObject(root, "format", CONVERSATION_FORMAT);
    cJSON_AddNumberToObject(root, "version", 1);
    cJSON_AddStringToObject(root, "system", c->system ? c->system : "");
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
