/* store.c: the conversation store's interface (gemma3_store.h) in front of
 * a backend (store_backend.h; SQLite in store_sqlite.c).
 *
 * Everything that does not depend on how the data is kept lives here, so a
 * second backend only stores and reads: the checks on every input (valid
 * UTF-8 without NUL bytes, finite numbers, sizes), the clock, one mutex per
 * handle (a connection's transactions must not interleave), automatic
 * titles, and what is built from a stored conversation (a g3_conversation
 * for the engine, JSON and Markdown exports). */
#include <cjson/cJSON.h>
#include <errno.h>
#include <math.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>
#include <time.h>

#include "base/error.h"
#include "base/utf8.h"
#include "chat/store_backend.h"
#include "gemma3_store.h"

struct g3_store {
    const g3_store_backend *b;
    void *impl;
    char *path;
    pthread_mutex_t mu;
    g3_store_clock now_ms;
    void *now_user;
    bool read_only;
};

static const g3_store_backend *const k_backends[] = {&g3_store_sqlite_backend};

#define NAME_MAX_BYTES 1024   /* attachment names */
#define TYPE_MAX_BYTES 255    /* media types (RFC 6838: 127 + "/" + 127) */
#define PRESET_MAX_BYTES 64
#define REASON_MAX_BYTES 32

const char *g3_store_status_name(int status) {
    switch (status) {
    case G3_STORE_OK: return "ok";
    case G3_STORE_NOT_FOUND: return "not_found";
    case G3_STORE_INVALID: return "invalid";
    case G3_STORE_CONFLICT: return "conflict";
    case G3_STORE_BUSY: return "busy";
    case G3_STORE_READONLY: return "read_only";
    case G3_STORE_FULL: return "full";
    case G3_STORE_CORRUPT: return "corrupt";
    default: return "error";
    }
}

G3_PRINTF(3, 4) static int fail_as(int status, g3_error *err, const char *fmt, ...) {
    if (err) {
        va_list ap;
        va_start(ap, fmt);
        vsnprintf(err->msg, sizeof err->msg, fmt, ap);
        va_end(ap);
    }
    return status;
}

/* ---- opening ------------------------------------------------------------ */

int g3_store_wrap(const g3_store_backend *b, void *impl, const char *path, const g3_store_options *o,
                  g3_store **out, g3_error *err) {
    g3_store *s = calloc(1, sizeof *s);
    char *p = strdup(path);
    if (!s || !p || pthread_mutex_init(&s->mu, NULL) != 0) {
        free(s);
        free(p);
        b->close(impl);
        return fail_as(G3_STORE_ERROR, err, "opening %s: out of memory", path);
    }
    s->b = b; /* field by field: a pthread mutex must not be copied */
    s->impl = impl;
    s->path = p;
    if (o) {
        s->now_ms = o->now_ms;
        s->now_user = o->now_user;
        s->read_only = o->read_only;
    }
    *out = s;
    return G3_STORE_OK;
}

int g3_store_open(const char *path, const g3_store_options *opts, g3_store **out, g3_error *err) {
    *out = NULL;
    if (!path || !*path) return fail_as(G3_STORE_INVALID, err, "opening the store: no file name");
    const char *name = opts && opts->backend ? opts->backend : "sqlite";
    const g3_store_backend *b = NULL;
    for (size_t i = 0; i < sizeof k_backends / sizeof k_backends[0]; i++)
        if (strcmp(k_backends[i]->name, name) == 0) b = k_backends[i];
    if (!b)
        return fail_as(G3_STORE_INVALID, err, "opening %s: unknown store backend '%.32s' (known: sqlite)", path, name);
    void *impl;
    int rc = b->open(path, opts, &impl, err);
    if (rc) return rc;
    return g3_store_wrap(b, impl, path, opts, out, err);
}

void g3_store_close(g3_store *s) {
    if (!s) return;
    s->b->close(s->impl);
    pthread_mutex_destroy(&s->mu);
    free(s->path);
    free(s);
}

const char *g3_store_path(const g3_store *s) { return s->path; }

void *g3_store_impl_of(g3_store *s, const g3_store_backend *b) { return s && s->b == b ? s->impl : NULL; }

static int mkdir_one(const char *dir, g3_error *err) {
    if (mkdir(dir, 0700) == 0 || errno == EEXIST) return 0;
    return fail_as(G3_STORE_ERROR, err, "creating the folder %s: %s", dir, strerror(errno));
}

int g3_store_default_path(char *out, size_t out_size, g3_error *err) {
    const char *xdg = getenv("XDG_DATA_HOME");
    const char *home = getenv("HOME");
    char dir[4096];
    int n;
    /* XDG: a relative XDG_DATA_HOME is invalid and must be ignored */
    if (xdg && xdg[0] == '/') n = snprintf(dir, sizeof dir, "%s/gemma-chat", xdg);
    else if (home && *home) n = snprintf(dir, sizeof dir, "%s/.local/share/gemma-chat", home);
    else return fail_as(G3_STORE_ERROR, err, "finding the store: neither XDG_DATA_HOME nor HOME is set");
    if (n < 0 || (size_t)n >= sizeof dir)
        return fail_as(G3_STORE_ERROR, err, "finding the store: the path is too long");
    /* every missing folder on the way, as `mkdir -p` (XDG_DATA_HOME may not exist yet) */
    for (char *slash = strchr(dir + 1, '/'); slash; slash = strchr(slash + 1, '/')) {
        *slash = 0;
        const int rc = mkdir_one(dir, err);
        *slash = '/';
        if (rc) return G3_STORE_ERROR;
    }
    if (mkdir_one(dir, err)) return G3_STORE_ERROR;
    n = snprintf(out, out_size, "%s/chats.db", dir);
    if (n < 0 || (size_t)n >= out_size) return fail_as(G3_STORE_ERROR, err, "finding the store: the path is too long");
    return G3_STORE_OK;
}

/* ---- input checks ------------------------------------------------------- */

/* len bytes of valid UTF-8 without NUL (a C string must read back whole). */
static int check_text(const char *what, const char *s, size_t len, size_t max, g3_error *err) {
    if (!s) return fail_as(G3_STORE_INVALID, err, "%s is missing", what);
    if (max && len > max) return fail_as(G3_STORE_INVALID, err, "%s is %zu bytes (at most %zu)", what, len, max);
    for (size_t i = 0; i < len;) {
        if (s[i] == 0) return fail_as(G3_STORE_INVALID, err, "%s contains a NUL byte at offset %zu", what, i);
        size_t n = g3_utf8_seq_len((const unsigned char *)s + i, len - i);
        if (!n) return fail_as(G3_STORE_INVALID, err, "%s is not valid UTF-8 (byte %zu)", what, i);
        i += n;
    }
    return G3_STORE_OK;
}

static int check_str(const char *what, const char *s, size_t max, g3_error *err) {
    return check_text(what, s, s ? strlen(s) : 0, max, err);
}

g3_store_settings g3_store_settings_defaults(void) {
    return (g3_store_settings){.max_tokens = 700, .temperature = 0.7f, .top_p = 0.9f, .top_k = 50,
                               .repetition_penalty = 1.1f, .max_images = 2};
}

int g3_store_settings_check(const g3_store_settings *st, g3_error *err) {
    if (!isfinite(st->temperature) || st->temperature < 0)
        return fail_as(G3_STORE_INVALID, err, "settings: temperature must be a number >= 0");
    if (!isfinite(st->top_p) || st->top_p < 0 || st->top_p > 1)
        return fail_as(G3_STORE_INVALID, err, "settings: top_p must be between 0 and 1");
    if (!isfinite(st->repetition_penalty) || st->repetition_penalty <= 0)
        return fail_as(G3_STORE_INVALID, err, "settings: repetition_penalty must be a number > 0");
    if (st->max_tokens > INT32_MAX || st->top_k > INT32_MAX || st->max_images > INT32_MAX)
        return fail_as(G3_STORE_INVALID, err, "settings: max_tokens, top_k and max_images must be below 2^31");
    return G3_STORE_OK;
}

g3_store_conv_fields g3_store_conv_fields_defaults(void) { return (g3_store_conv_fields){0}; }

static int check_fields(const g3_store_conv_fields *f, g3_error *err) {
    if (f->title && check_str("the title", f->title, 0, err)) return G3_STORE_INVALID;
    if (f->preset && check_str("the preset", f->preset, PRESET_MAX_BYTES, err)) return G3_STORE_INVALID;
    if (f->system && check_str("the system prompt", f->system, 0, err)) return G3_STORE_INVALID;
    if (f->settings && g3_store_settings_check(f->settings, err)) return G3_STORE_INVALID;
    return G3_STORE_OK;
}

bool g3_store_media_is_image(const char *media_type) {
    return media_type && strncasecmp(media_type, "image/", 6) == 0;
}

bool g3_store_media_is_video(const char *media_type) {
    return media_type && strncasecmp(media_type, "video/", 6) == 0;
}

/* An attachment the model sees as images: an image or a video's frames. */
static bool media_is_visual(const char *media_type) {
    return g3_store_media_is_image(media_type) || g3_store_media_is_video(media_type);
}

/* "type/subtype" in printable ASCII without spaces (parameters allowed). */
static bool media_type_ok(const char *t) {
    const char *slash = strchr(t, '/');
    if (!slash || slash == t || !slash[1]) return false;
    for (const char *p = t; *p; p++)
        if (*p <= ' ' && !(p > slash && *p == ' ')) return false;
        else if (*p >= 0x7f) return false;
    return true;
}

static int check_user_msg(const g3_store_user_msg *u, bool edit_keeps, g3_error *err) {
    if (!u) return fail_as(G3_STORE_INVALID, err, "the user message is missing");
    if (check_str("the message text", u->text, 0, err)) return G3_STORE_INVALID;
    if (u->prompt_text && check_str("the message's prompt text", u->prompt_text, 0, err)) return G3_STORE_INVALID;
    if (u->n_attachments && !u->attachments) return fail_as(G3_STORE_INVALID, err, "the attachments are missing");
    if (!edit_keeps && !u->text[0] && !u->n_attachments)
        return fail_as(G3_STORE_INVALID, err, "the message is empty (no text and no attachment)");
    size_t n_images = 0;
    for (size_t i = 0; i < u->n_attachments; i++) {
        const g3_store_attachment_in *a = &u->attachments[i];
        char what[64];
        snprintf(what, sizeof what, "attachment %zu's name", i + 1);
        if (check_str(what, a->name, NAME_MAX_BYTES, err)) return G3_STORE_INVALID;
        if (!a->name[0]) return fail_as(G3_STORE_INVALID, err, "attachment %zu has no name", i + 1);
        snprintf(what, sizeof what, "attachment %zu's media type", i + 1);
        if (check_str(what, a->media_type, TYPE_MAX_BYTES, err)) return G3_STORE_INVALID;
        if (!media_type_ok(a->media_type))
            return fail_as(G3_STORE_INVALID, err, "attachment %zu ('%.64s'): media type '%.64s' is not type/subtype",
                           i + 1, a->name, a->media_type);
        if (a->size && !a->data)
            return fail_as(G3_STORE_INVALID, err, "attachment %zu ('%.64s'): no bytes", i + 1, a->name);
        n_images += media_is_visual(a->media_type);
    }
    /* with kept attachments the backend checks text_pos against all of them */
    if (!edit_keeps && u->text_pos > n_images)
        return fail_as(G3_STORE_INVALID, err, "text_pos %u is past the message's %zu image(s) and video(s)",
                       u->text_pos, n_images);
    return G3_STORE_OK;
}

static int check_answer(const g3_store_answer *a, g3_error *err) {
    if (!a) return fail_as(G3_STORE_INVALID, err, "the answer is missing");
    size_t len = a->text_len ? a->text_len : a->text ? strlen(a->text) : 0;
    if (check_text("the answer", a->text, len, 0, err)) return G3_STORE_INVALID;
    if (a->n_ids && !a->ids) return fail_as(G3_STORE_INVALID, err, "the answer's token ids are missing");
    if (a->n_ids > SIZE_MAX / 4) return fail_as(G3_STORE_INVALID, err, "the answer has too many token ids");
    for (size_t i = 0; i < a->n_ids; i++)
        if (a->ids[i] < 0 || (a->model && a->model->n_vocab && (uint32_t)a->ids[i] >= a->model->n_vocab))
            return fail_as(G3_STORE_INVALID, err, "the answer's token id %zu (%d) is not in the vocabulary", i,
                           a->ids[i]);
    if (a->finish_reason && check_str("the finish reason", a->finish_reason, REASON_MAX_BYTES, err))
        return G3_STORE_INVALID;
    if (a->model && check_text("the model name", a->model->name, strnlen(a->model->name, sizeof a->model->name),
                               sizeof a->model->name - 1, err))
        return G3_STORE_INVALID;
    const double t[4] = {a->queue_s, a->encode_s, a->prefill_s, a->generate_s};
    for (int i = 0; i < 4; i++)
        if (!isfinite(t[i]) || t[i] < 0) return fail_as(G3_STORE_INVALID, err, "the answer's timings must be >= 0");
    return G3_STORE_OK;
}

void g3_store_answer_from_result(g3_store_answer *a, const g3_gen_result *r, const g3_model_record *model) {
    *a = (g3_store_answer){
        .text = r->text ? r->text : "",
        .text_len = r->text ? r->text_len : 0,
        .ids = r->ids,
        .n_ids = r->ids ? r->n_ids : 0,
        .prompt_tokens = r->n_prompt,
        .cached_tokens = r->n_cached,
        .completion_tokens = r->n_generated,
        .images_encoded = r->n_encoded,
        .dropped_turns = r->dropped_turns,
        .queue_s = r->queue_s,
        .encode_s = r->encode_s,
        .prefill_s = r->prefill_s,
        .generate_s = r->generate_s,
        .finish_reason = g3_stop_reason_name(r->stop),
        .stopped = r->stop == G3_STOP_CANCELLED,
        .model = model && model->name[0] ? model : NULL,
    };
}

/* ---- calls into the backend -------------------------------------------- */

static int64_t now_ms(const g3_store *s) {
    if (s->now_ms) return s->now_ms(s->now_user);
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static int refuse_read_only(const g3_store *s, const char *what, g3_error *err) {
    return fail_as(G3_STORE_READONLY, err, "%s in %s: the store was opened read-only", what, s->path);
}

#define LOCKED(s, call)                      \
    do {                                     \
        pthread_mutex_lock(&(s)->mu);        \
        int rc_ = (call);                    \
        pthread_mutex_unlock(&(s)->mu);      \
        return rc_;                          \
    } while (0)

int g3_store_check(g3_store *s, g3_error *err) { LOCKED(s, s->b->check(s->impl, err)); }

int g3_store_create(g3_store *s, const g3_store_conv_fields *f, int64_t *id, g3_error *err) {
    if (s->read_only) return refuse_read_only(s, "creating a conversation", err);
    g3_store_conv_fields d = f ? *f : g3_store_conv_fields_defaults();
    g3_store_settings def = g3_store_settings_defaults();
    if (!d.settings) d.settings = &def;
    if (!d.preset) d.preset = "";
    if (!d.system) d.system = "";
    int rc = check_fields(&d, err);
    if (rc) return g3_error_prefix(err, "creating a conversation: "), rc;
    int64_t dummy;
    LOCKED(s, s->b->create(s->impl, &d, now_ms(s), id ? id : &dummy, err));
}

int g3_store_get(g3_store *s, int64_t id, g3_store_conv *out, g3_error *err) {
    memset(out, 0, sizeof *out);
    LOCKED(s, s->b->get(s->impl, id, out, err));
}

int g3_store_list_convs(g3_store *s, const g3_store_list_params *p, g3_store_list *out, g3_error *err) {
    memset(out, 0, sizeof *out);
    g3_store_list_params d = p ? *p : (g3_store_list_params){0};
    if (d.q && check_str("the search text", d.q, 1024, err))
        return g3_error_prefix(err, "listing conversations: "), G3_STORE_INVALID;
    if (d.limit == 0) d.limit = 50;
    if (d.limit > 1000) d.limit = 1000;
    LOCKED(s, s->b->list(s->impl, &d, out, err));
}

int g3_store_update(g3_store *s, int64_t id, const g3_store_conv_fields *f, g3_error *err) {
    if (s->read_only) return refuse_read_only(s, "changing a conversation", err);
    int rc = f ? check_fields(f, err) : G3_STORE_OK;
    if (rc) return g3_error_prefix(err, "changing conversation %lld: ", (long long)id), rc;
    g3_store_conv_fields none = {0};
    LOCKED(s, s->b->update(s->impl, id, f ? f : &none, now_ms(s), err));
}

int g3_store_delete(g3_store *s, int64_t id, g3_error *err) {
    if (s->read_only) return refuse_read_only(s, "deleting a conversation", err);
    LOCKED(s, s->b->remove(s->impl, id, err));
}

int g3_store_append(g3_store *s, int64_t conv, const g3_store_user_msg *u, const g3_store_answer *a,
                    int64_t *user_turn_id, int64_t *answer_turn_id, g3_error *err) {
    if (s->read_only) return refuse_read_only(s, "appending a turn", err);
    int rc = check_user_msg(u, false, err);
    if (!rc) rc = check_answer(a, err);
    if (rc) return g3_error_prefix(err, "appending to conversation %lld: ", (long long)conv), rc;
    int64_t d1, d2;
    LOCKED(s, s->b->append(s->impl, conv, u, a, now_ms(s), user_turn_id ? user_turn_id : &d1,
                           answer_turn_id ? answer_turn_id : &d2, err));
}

int g3_store_replace_answer(g3_store *s, int64_t conv, const g3_store_answer *a, int64_t *answer_turn_id,
                            g3_error *err) {
    if (s->read_only) return refuse_read_only(s, "replacing an answer", err);
    int rc = check_answer(a, err);
    if (rc) return g3_error_prefix(err, "replacing the answer in conversation %lld: ", (long long)conv), rc;
    int64_t d;
    LOCKED(s, s->b->replace_answer(s->impl, conv, a, now_ms(s), answer_turn_id ? answer_turn_id : &d, err));
}

int g3_store_replace_last_pair(g3_store *s, int64_t conv, const g3_store_user_msg *u, bool keep_attachments,
                               const g3_store_answer *a, int64_t *answer_turn_id, g3_error *err) {
    if (s->read_only) return refuse_read_only(s, "editing a message", err);
    int rc = check_user_msg(u, keep_attachments, err);
    if (!rc) rc = check_answer(a, err);
    if (rc) return g3_error_prefix(err, "editing the last message of conversation %lld: ", (long long)conv), rc;
    int64_t d;
    LOCKED(s, s->b->replace_last_pair(s->impl, conv, u, keep_attachments, a, now_ms(s),
                                      answer_turn_id ? answer_turn_id : &d, err));
}

int g3_store_attachment_get(g3_store *s, int64_t attachment_id, g3_store_attachment *out, g3_error *err) {
    memset(out, 0, sizeof *out);
    LOCKED(s, s->b->attachment_get(s->impl, attachment_id, out, err));
}

/* ---- freeing ------------------------------------------------------------ */

void g3_store_attachment_free(g3_store_attachment *a) {
    if (!a) return;
    free(a->name);
    free(a->media_type);
    free(a->data);
    memset(a, 0, sizeof *a);
}

static void turn_free(g3_store_turn *t) {
    free(t->text);
    free(t->prompt_text);
    free(t->finish_reason);
    free(t->ids);
    for (size_t i = 0; i < t->n_attachments; i++) g3_store_attachment_free(&t->attachments[i]);
    free(t->attachments);
}

void g3_store_conv_free(g3_store_conv *c) {
    if (!c) return;
    for (uint32_t i = 0; c->turns && i < c->n_turns; i++) turn_free(&c->turns[i]);
    free(c->turns);
    free(c->title);
    free(c->preset);
    free(c->system);
    memset(c, 0, sizeof *c);
}

void g3_store_list_free(g3_store_list *l) {
    if (!l) return;
    for (size_t i = 0; i < l->n; i++) g3_store_conv_free(&l->items[i]);
    free(l->items);
    memset(l, 0, sizeof *l);
}

/* ---- titles ------------------------------------------------------------- */

static bool is_space(char c) { return c == ' ' || c == '\t' || c == '\r' || c == '\f' || c == '\v'; }

/* Copies at most n bytes of s (whole UTF-8 sequences only) into out; tabs
 * become spaces. Returns the bytes written. */
static size_t copy_utf8(char *out, size_t out_size, const char *s, size_t n) {
    size_t w = 0;
    for (size_t i = 0; i < n;) {
        size_t k = g3_utf8_seq_len((const unsigned char *)s + i, n - i);
        if (!k) k = 1; /* stored text is valid UTF-8; be safe anyway */
        if (w + k + 1 > out_size) break;
        for (size_t j = 0; j < k; j++) out[w++] = s[i + j] == '\t' ? ' ' : s[i + j];
        i += k;
    }
    if (out_size) out[w] = 0;
    return w;
}

void g3_store_default_title(const char *text, size_t max_chars, char *out, size_t out_size) {
    if (!out_size) return;
    out[0] = 0;
    if (!text) return;
    /* the first line with something in it, trimmed */
    const char *line = text, *end;
    for (;;) {
        while (is_space(*line)) line++;
        end = line + strcspn(line, "\n");
        if (end > line || !*end) break;
        line = end + 1;
    }
    while (end > line && is_space(end[-1])) end--;
    size_t len = (size_t)(end - line), chars = 0, cut = len, i = 0;
    const size_t keep = max_chars > 3 ? max_chars - 3 : max_chars;
    size_t at_keep = len; /* byte offset after `keep` characters */
    while (i < len) {
        size_t k = g3_utf8_seq_len((const unsigned char *)line + i, len - i);
        i += k ? k : 1;
        if (++chars == keep) at_keep = i;
    }
    if (chars <= max_chars) {
        copy_utf8(out, out_size, line, len);
        return;
    }
    /* cut at the last space inside the kept characters, unless that would
     * leave less than half of them (one very long word) */
    cut = at_keep;
    for (size_t j = at_keep; j > 0; j--)
        if (is_space(line[j])) {
            if (j >= at_keep / 2) cut = j;
            break;
        }
    while (cut > 0 && (is_space(line[cut - 1]) || strchr(",;:-", line[cut - 1]))) cut--;
    /* "..." when a character fits before it, else as many characters as fit */
    size_t w = out_size > 4 ? copy_utf8(out, out_size - 3, line, cut) : 0;
    if (w) memcpy(out + w, "...", 4);
    else copy_utf8(out, out_size, line, cut);
}

void g3_store_title_for(const char *text, const char *first_attachment, char *out, size_t out_size) {
    g3_store_default_title(text, G3_STORE_TITLE_CHARS, out, out_size);
    if (!out[0] && first_attachment) g3_store_default_title(first_attachment, G3_STORE_TITLE_CHARS, out, out_size);
}

/* ---- back to a g3_conversation ----------------------------------------- */

static bool same_vocab(const g3_model_record *a, const g3_model_record *b) {
    return a && b && a->n_vocab && a->n_vocab == b->n_vocab && a->vocab_fingerprint == b->vocab_fingerprint;
}

/* A user turn with images or videos: its text, its images as image parts,
 * its videos as labelled frame parts (g3_video_parts_memory, the native
 * API's parts), text_pos of them before the text. The mutex is held only
 * to read each attachment: decoding a video's frames takes seconds, and
 * every other request that uses the store would wait for it. */
static int add_user_parts(g3_store *s, g3_conversation *c, const g3_store_turn *t, const char *text,
                          size_t n_visual, g3_error *err) {
    size_t cap = n_visual * 2 * G3_STORE_VIDEO_FRAMES + 1;
    g3_part *parts = calloc(cap, sizeof *parts);
    g3_store_attachment *bytes = calloc(n_visual, sizeof *bytes);
    g3_part **videos = calloc(n_visual, sizeof *videos); /* each video's own parts (owned) */
    size_t *n_video_parts = calloc(n_visual, sizeof *n_video_parts);
    int rc = parts && bytes && videos && n_video_parts ? G3_STORE_OK : fail_as(G3_STORE_ERROR, err, "out of memory");
    const g3_part text_part = {.type = G3_PART_TEXT, .text = (char *)text};
    bool text_placed = !text[0]; /* a media-only message has no text part */
    size_t n = 0, k = 0;
    for (size_t i = 0; !rc && i < t->n_attachments; i++) {
        const char *type = t->attachments[i].media_type;
        if (!media_is_visual(type)) continue;
        if (!text_placed && k == t->text_pos) parts[n++] = text_part, text_placed = true;
        pthread_mutex_lock(&s->mu);
        rc = s->b->attachment_get(s->impl, t->attachments[i].id, &bytes[k], err);
        pthread_mutex_unlock(&s->mu);
        if (!rc && g3_store_media_is_image(type)) {
            parts[n++] = (g3_part){.type = G3_PART_IMAGE, .data = bytes[k].data, .data_len = bytes[k].size};
        } else if (!rc) {
            if (g3_video_parts_memory(bytes[k].name, bytes[k].data, bytes[k].size, G3_STORE_VIDEO_FRAMES, &videos[k],
                                      &n_video_parts[k], err))
                rc = G3_STORE_ERROR; /* err says which file, and why */
            else if (n_video_parts[k] + !text_placed > cap - n) /* never: at most 2 parts a frame */
                rc = fail_as(G3_STORE_ERROR, err, "'%s' gave more frames than asked for", bytes[k].name);
            for (size_t j = 0; !rc && j < n_video_parts[k]; j++) parts[n++] = videos[k][j]; /* borrowed */
        }
        k++;
    }
    if (!rc && !text_placed) parts[n++] = text_part;
    if (!rc && g3_conversation_add_parts(c, parts, n, err)) rc = G3_STORE_ERROR; /* copies */
    for (size_t i = 0; bytes && i < n_visual; i++) g3_store_attachment_free(&bytes[i]);
    for (size_t i = 0; videos && n_video_parts && i < n_visual; i++) g3_parts_free(videos[i], n_video_parts[i]);
    free(bytes);
    free(videos);
    free(n_video_parts);
    free(parts);
    return rc;
}

int g3_store_to_conversation(g3_store *s, int64_t id, const g3_model_record *model, g3_conversation *out,
                             g3_error *err) {
    g3_conversation_init(out);
    g3_store_conv sc;
    memset(&sc, 0, sizeof sc);
    pthread_mutex_lock(&s->mu);
    int rc = s->b->get(s->impl, id, &sc, err); /* sc is this call's copy: no lock needed after */
    pthread_mutex_unlock(&s->mu);
    if (!rc && sc.system[0] && g3_conversation_set_system(out, sc.system, err)) rc = G3_STORE_ERROR;
    for (uint32_t i = 0; !rc && i < sc.n_turns; i++) {
        const g3_store_turn *t = &sc.turns[i];
        if (t->role == G3_ROLE_MODEL) {
            bool ids = t->n_ids && same_vocab(&t->model, model);
            if (g3_conversation_add(out, G3_ROLE_MODEL, t->text, ids ? t->ids : NULL, ids ? t->n_ids : 0, err))
                rc = G3_STORE_ERROR;
            continue;
        }
        const char *text = t->prompt_text ? t->prompt_text : t->text;
        size_t n_visual = 0;
        for (size_t k = 0; k < t->n_attachments; k++) n_visual += media_is_visual(t->attachments[k].media_type);
        if (n_visual) rc = add_user_parts(s, out, t, text, n_visual, err);
        else if (g3_conversation_add(out, G3_ROLE_USER, text, NULL, 0, err)) rc = G3_STORE_ERROR;
    }
    g3_store_conv_free(&sc);
    if (rc) {
        g3_conversation_free(out);
        g3_conversation_init(out);
        if (rc != G3_STORE_NOT_FOUND) g3_error_prefix(err, "rebuilding conversation %lld: ", (long long)id);
        return rc;
    }
    if (model) out->model = *model;
    return G3_STORE_OK;
}

/* ---- exports ------------------------------------------------------------ */

/* A float setting as the decimal it was typed as (0.7f is 0.699999988 as a double). */
static double short_float(float f) {
    char buf[32];
    snprintf(buf, sizeof buf, "%.7g", (double)f);
    return strtod(buf, NULL);
}

static const char *role_name(g3_role r) { return r == G3_ROLE_USER ? "user" : "assistant"; }

static bool add_num(cJSON *o, const char *k, double v) { return cJSON_AddNumberToObject(o, k, v) != NULL; }
static bool add_str(cJSON *o, const char *k, const char *v) {
    return cJSON_AddStringToObject(o, k, v ? v : "") != NULL;
}

static bool settings_json(cJSON *root, const g3_store_settings *st) {
    cJSON *o = cJSON_AddObjectToObject(root, "settings");
    return o && add_num(o, "max_tokens", st->max_tokens) && add_num(o, "temperature", short_float(st->temperature)) &&
           add_num(o, "top_p", short_float(st->top_p)) && add_num(o, "top_k", st->top_k) &&
           add_num(o, "repetition_penalty", short_float(st->repetition_penalty)) &&
           add_num(o, "max_images", st->max_images);
}

static bool answer_json(cJSON *m, const g3_store_turn *t) {
    cJSON *u = cJSON_AddObjectToObject(m, "usage");
    cJSON *tm = u ? cJSON_AddObjectToObject(m, "timings") : NULL;
    return tm && add_num(u, "prompt_tokens", t->prompt_tokens) && add_num(u, "cached_tokens", t->cached_tokens) &&
           add_num(u, "completion_tokens", t->completion_tokens) && add_num(u, "images_encoded", t->images_encoded) &&
           add_num(tm, "queue_s", t->queue_s) && add_num(tm, "encode_s", t->encode_s) &&
           add_num(tm, "prefill_s", t->prefill_s) && add_num(tm, "generate_s", t->generate_s) &&
           (!t->finish_reason || add_str(m, "finish_reason", t->finish_reason)) &&
           cJSON_AddBoolToObject(m, "stopped", t->stopped) && add_num(m, "dropped_turns", t->dropped_turns) &&
           (!t->model.name[0] || add_str(m, "model", t->model.name));
}

static bool turn_json(cJSON *msgs, const g3_store_turn *t) {
    cJSON *m = cJSON_CreateObject();
    if (!m || !cJSON_AddItemToArray(msgs, m)) return cJSON_Delete(m), false;
    if (!add_num(m, "id", (double)t->id) || !add_str(m, "role", role_name(t->role)) ||
        !add_str(m, "content", t->text) || !add_num(m, "created_at", (double)t->created_at))
        return false;
    if (t->prompt_text && !add_str(m, "prompt_text", t->prompt_text)) return false;
    cJSON *atts = cJSON_AddArrayToObject(m, "attachments");
    if (!atts) return false;
    for (size_t k = 0; k < t->n_attachments; k++) {
        const g3_store_attachment *a = &t->attachments[k];
        cJSON *ja = cJSON_CreateObject();
        if (!ja || !cJSON_AddItemToArray(atts, ja)) return cJSON_Delete(ja), false;
        if (!add_num(ja, "id", (double)a->id) || !add_str(ja, "name", a->name) || !add_str(ja, "type", a->media_type) ||
            !add_num(ja, "size", (double)a->size))
            return false;
    }
    return t->role == G3_ROLE_USER || answer_json(m, t);
}

char *g3_store_conv_to_json(const g3_store_conv *c) {
    cJSON *root = cJSON_CreateObject();
    bool ok = root && add_num(root, "id", (double)c->id) && add_str(root, "title", c->title) &&
              cJSON_AddBoolToObject(root, "title_auto", c->title_auto) && add_str(root, "preset", c->preset) &&
              add_str(root, "system", c->system) && settings_json(root, &c->settings) &&
              add_num(root, "created_at", (double)c->created_at) && add_num(root, "updated_at", (double)c->updated_at);
    cJSON *msgs = ok ? cJSON_AddArrayToObject(root, "messages") : NULL;
    ok = msgs != NULL;
    for (uint32_t i = 0; ok && c->turns && i < c->n_turns; i++) ok = turn_json(msgs, &c->turns[i]);
    char *out = ok ? cJSON_PrintUnformatted(root) : NULL;
    cJSON_Delete(root);
    return out;
}

/* A growing string. */
typedef struct strbuf {
    char *s;
    size_t len, cap;
    bool failed;
} strbuf;

G3_PRINTF(2, 3) static void sb_printf(strbuf *b, const char *fmt, ...) {
    if (b->failed) return;
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(b->s ? b->s + b->len : NULL, b->s ? b->cap - b->len : 0, fmt, ap);
    va_end(ap);
    if (n < 0) { b->failed = true; return; }
    if (b->s && (size_t)n < b->cap - b->len) { b->len += (size_t)n; return; }
    size_t cap = b->cap ? b->cap : 256;
    while (cap - b->len <= (size_t)n) {
        if (cap > SIZE_MAX / 2) { b->failed = true; return; }
        cap *= 2;
    }
    char *s = realloc(b->s, cap);
    if (!s) { b->failed = true; return; }
    b->s = s;
    b->cap = cap;
    va_start(ap, fmt);
    vsnprintf(b->s + b->len, b->cap - b->len, fmt, ap);
    va_end(ap);
    b->len += (size_t)n;
}

static void sb_time(strbuf *b, int64_t ms) {
    time_t t = (time_t)(ms / 1000);
    struct tm tm;
    char buf[32];
    if (gmtime_r(&t, &tm) && strftime(buf, sizeof buf, "%Y-%m-%d %H:%M UTC", &tm)) sb_printf(b, "%s", buf);
    else sb_printf(b, "%lld ms", (long long)ms);
}

/* An attachment name inside `code` (backticks would end it). */
static void sb_code_name(strbuf *b, const char *name) {
    sb_printf(b, "`");
    for (const char *p = name; *p; p++) sb_printf(b, "%c", *p == '`' || *p == '\n' || *p == '\r' ? '\'' : *p);
    sb_printf(b, "`");
}

char *g3_store_conv_to_markdown(const g3_store_conv *c) {
    strbuf b = {0};
    sb_printf(&b, "# %s\n\n", c->title[0] ? c->title : "Untitled conversation");
    if (c->preset[0]) sb_printf(&b, "- Preset: %s\n", c->preset);
    sb_printf(&b, "- Created: ");
    sb_time(&b, c->created_at);
    sb_printf(&b, "\n- Updated: ");
    sb_time(&b, c->updated_at);
    const g3_store_settings *st = &c->settings;
    sb_printf(&b, "\n- Settings: max tokens %u, temperature %g, top-p %g, top-k %u, repetition penalty %g, "
                  "max images %u\n\n", st->max_tokens, short_float(st->temperature), short_float(st->top_p), st->top_k,
              short_float(st->repetition_penalty), st->max_images);
    if (c->system[0]) sb_printf(&b, "## System\n\n%s\n\n", c->system);
    for (uint32_t i = 0; c->turns && i < c->n_turns; i++) {
        const g3_store_turn *t = &c->turns[i];
        sb_printf(&b, "## %s\n\n%s\n\n", t->role == G3_ROLE_USER ? "User" : "Assistant", t->text);
        for (size_t k = 0; k < t->n_attachments; k++) {
            sb_printf(&b, "%s", k ? ", " : "Attachments: ");
            sb_code_name(&b, t->attachments[k].name);
            const g3_store_attachment *a = &t->attachments[k];
            sb_printf(&b, " (%s, %llu bytes)", a->media_type, (unsigned long long)a->size);
            if (k + 1 == t->n_attachments) sb_printf(&b, "\n\n");
        }
        if (t->role == G3_ROLE_MODEL && t->stopped) sb_printf(&b, "*(stopped: the answer was cut short)*\n\n");
    }
    if (b.failed) {
        free(b.s);
        return NULL;
    }
    return b.s;
}

int g3_store_export(g3_store *s, int64_t id, g3_store_format fmt, char **out, g3_error *err) {
    *out = NULL;
    g3_store_conv c;
    int rc = g3_store_get(s, id, &c, err);
    if (rc) return rc;
    *out = fmt == G3_STORE_MARKDOWN ? g3_store_conv_to_markdown(&c) : g3_store_conv_to_json(&c);
    g3_store_conv_free(&c);
    if (!*out) return fail_as(G3_STORE_ERROR, err, "exporting conversation %lld: out of memory", (long long)id);
    return G3_STORE_OK;
}
