/* gemma3_store.h: the conversation store (one SQLite file) that the server
 * and the terminal chat keep their conversations in.
 *
 * What it stores:
 *   conversations  id, title, preset key, system prompt, generation settings
 *                  (max_tokens, temperature, top_p, top_k,
 *                  repetition_penalty, max_images), created/updated times;
 *   turns          alternating user / model turns of a conversation: the
 *                  text, and for answers the token counts (prompt, cached,
 *                  completion), timings, finish reason, a `stopped` flag and
 *                  the generated token ids (with the vocabulary they belong
 *                  to, so a resumed chat reuses them only with that model);
 *   attachments    of a user turn: name, media type, size and the original
 *                  bytes, so images and documents can be re-read later.
 *
 * Documents: a user turn has two texts. `text` is what the user typed (what
 * the page shows, what the title and export use); `prompt_text` is what the
 * model was given for the turn when that differs: the typed text with the
 * extracted text of the turn's documents, laid out by the document code.
 * The document's original bytes are its attachment. Images are attachments
 * too and become image parts again (with their bytes) when a stored
 * conversation is turned back into a g3_conversation; so do videos (media
 * type video/...), as G3_STORE_VIDEO_FRAMES frames sampled from their bytes,
 * each after its "Frame 1.50:" label (g3_video_parts_memory: the parts the
 * native API gave the model when it answered). `text_pos` says how many of
 * the turn's images and videos came before the text (0: text first, as the
 * web page sends it; all: media first, as the terminal's /image and /video
 * do).
 *
 * Guarantees:
 *   - every operation is one transaction: a user turn and its answer are
 *     committed together (complete, or stopped with the partial answer kept
 *     and `stopped` set), so a crash loses at most the turn in flight and
 *     never leaves half a pair; regenerate and edit replace in one
 *     transaction too;
 *   - a failed write (disk full, I/O error, lock held too long) leaves
 *     everything committed before it as it was;
 *   - the file: WAL journal, synchronous=FULL (a committed turn survives a
 *     power loss), foreign keys on (deleting a conversation deletes its
 *     turns and attachments), a busy timeout for other processes' locks;
 *   - opening takes the write lock once (to migrate, or to see that no one
 *     holds it), so a database that is locked, read-only, corrupt, someone
 *     else's, or from a newer gemma-chat is refused at open with a message
 *     saying which, before anyone types a message that could not be saved;
 *     such a file is left unchanged;
 *   - an older schema is migrated at open, all steps in one transaction;
 *   - ids (of conversations, turns, attachments) are 64-bit integers, never
 *     reused after a delete (a stale link cannot reach another's data);
 *   - texts are stored byte for byte as given; they must be valid UTF-8
 *     (refused otherwise: callers sanitize); times are Unix milliseconds.
 *
 * Limits: an attachment, a text or a token-id list each up to SQLite's
 * length limit (1,000,000,000 bytes by default); the front ends set their
 * own, smaller limits. `q` searches titles (SQL LIKE, case-insensitive for
 * ASCII only). A g3_store handle may be shared by threads (calls are
 * serialized); several processes may open the same file.
 *
 * Errors: functions return G3_STORE_OK (0) or a negative g3_store_status and
 * fill the g3_error with what failed: the operation, the file and SQLite's
 * own message ("appending to conversation 7 in chats.db: database or disk
 * is full (SQLite: ...)"). Results are malloc'd; free them with the
 * matching _free function.
 *
 * Use:
 *   g3_store *st;
 *   if (g3_store_open("chats.db", NULL, &st, &err)) { puts(err.msg); ... }
 *   g3_store_conv_fields f = g3_store_conv_fields_defaults();
 *   int64_t id; g3_store_create(st, &f, &id, &err);
 *   g3_store_user_msg u = {.text = "Hello"};
 *   g3_store_answer a = {0}; g3_store_answer_from_result(&a, &result, model_record);
 *   g3_store_append(st, id, &u, &a, NULL, NULL, &err);
 *   g3_conversation c; g3_store_to_conversation(st, id, model_record, &c, &err);
 *   g3_store_close(st);
 */
#ifndef GEMMA3_STORE_H
#define GEMMA3_STORE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "gemma3.h"
#include "gemma3_chat.h"
#include "gemma3_engine.h"

#ifdef __cplusplus
extern "C" {
#endif

/* The schema version this build writes (PRAGMA user_version). */
#define G3_STORE_SCHEMA_VERSION 1
/* PRAGMA application_id of a gemma-chat store: "G3CH". */
#define G3_STORE_APPLICATION_ID 0x47334348

typedef enum g3_store_status {
    G3_STORE_OK = 0,
    G3_STORE_ERROR = -1,     /* anything else: I/O error, out of memory, damaged data */
    G3_STORE_NOT_FOUND = -2, /* no conversation / attachment with that id (HTTP 404) */
    G3_STORE_INVALID = -3,   /* bad input: not UTF-8, out of range, too large (400) */
    G3_STORE_CONFLICT = -4,  /* the conversation's state forbids it: regenerate without an answer (409) */
    G3_STORE_BUSY = -5,      /* another process held the lock past the busy timeout (503; retry) */
    G3_STORE_READONLY = -6,  /* the file, its folder or the handle is read-only */
    G3_STORE_FULL = -7,      /* disk full or a size limit (507) */
    G3_STORE_CORRUPT = -8,   /* not a database, damaged, someone else's, or from a newer version */
} g3_store_status;

const char *g3_store_status_name(int status); /* "not_found", ... */

typedef struct g3_store g3_store;

/* Unix milliseconds; a clock for tests. */
typedef int64_t (*g3_store_clock)(void *user);

typedef struct g3_store_options {
    const char *backend;     /* NULL or "sqlite" */
    bool read_only;          /* open for reading: writes fail with G3_STORE_READONLY */
    int busy_timeout_ms;     /* wait for another process's lock; 0: 5000 */
    bool verify;             /* run PRAGMA quick_check at open (reads the whole file) */
    g3_store_clock now_ms;   /* NULL: the real-time clock */
    void *now_user;
} g3_store_options;

/* Opens (or creates) the store at path. opts may be NULL (defaults). The
 * folder must exist (see g3_store_default_path). */
int g3_store_open(const char *path, const g3_store_options *opts, g3_store **out, g3_error *err);
void g3_store_close(g3_store *s);
const char *g3_store_path(const g3_store *s);

/* $XDG_DATA_HOME/gemma-chat/chats.db, else $HOME/.local/share/gemma-chat/chats.db;
 * creates the gemma-chat folder (0700) if it is missing. */
int g3_store_default_path(char *out, size_t out_size, g3_error *err);

/* PRAGMA integrity_check: 0 when "ok", else G3_STORE_CORRUPT with the
 * first problems in the message. */
int g3_store_check(g3_store *s, g3_error *err);

/* ---- conversations ------------------------------------------------------ */

typedef struct g3_store_settings {
    uint32_t max_tokens;      /* max new tokens per answer */
    float temperature;
    float top_p;
    uint32_t top_k;
    float repetition_penalty;
    uint32_t max_images;      /* images per message */
} g3_store_settings;

/* The product's defaults: 700 tokens, 0.7, 0.9, 50, 1.1, 2 images. */
g3_store_settings g3_store_settings_defaults(void);
/* The store only refuses what cannot be a setting (negative, not finite,
 * top_p above 1, a penalty <= 0); the product's ranges are the front
 * ends' to enforce. The message names the field. */
int g3_store_settings_check(const g3_store_settings *st, g3_error *err);

/* What a conversation is made with or changed to. In an update a NULL
 * pointer leaves the field as it is. */
typedef struct g3_store_conv_fields {
    const char *title;    /* NULL at create: taken from the first user message */
    const char *preset;   /* a preset key ("general"), or "" */
    const char *system;   /* the system prompt, or "" */
    const g3_store_settings *settings; /* NULL at create: the defaults */
} g3_store_conv_fields;

typedef struct g3_store_attachment {
    int64_t id;
    int64_t turn_id;
    uint32_t ord;             /* position among the turn's attachments */
    char *name;
    char *media_type;         /* "image/png", "application/pdf", ... */
    uint64_t size;
    uint8_t *data;            /* only from g3_store_attachment_get; else NULL */
} g3_store_attachment;

typedef struct g3_store_turn {
    int64_t id;
    uint32_t index;           /* 0-based position in the conversation */
    g3_role role;
    char *text;               /* user: as typed; model: the answer */
    char *prompt_text;        /* user: what the model was given, when not `text` (documents); else NULL */
    uint32_t text_pos;        /* user: images placed before the text */
    int64_t created_at;
    /* model turns (zero for user turns): */
    uint32_t prompt_tokens, cached_tokens, completion_tokens;
    uint32_t images_encoded, dropped_turns;
    double queue_s, encode_s, prefill_s, generate_s;
    char *finish_reason;      /* g3_stop_reason_name(), or NULL */
    bool stopped;             /* the answer was cut short (cancelled); its text is the partial answer */
    int32_t *ids;             /* the generated ids, or NULL */
    size_t n_ids;
    g3_model_record model;    /* the model that generated them (name "" if unknown) */
    g3_store_attachment *attachments; /* metadata only (data NULL) */
    size_t n_attachments;
} g3_store_turn;

typedef struct g3_store_conv {
    int64_t id;
    char *title;
    bool title_auto;          /* the title comes from the first user message (not set by hand) */
    char *preset;
    char *system;
    g3_store_settings settings;
    int64_t created_at;
    int64_t updated_at;       /* the last change of any kind: a turn, a title, settings */
    uint32_t n_turns;         /* also set by list, which loads no turns */
    g3_store_turn *turns;     /* get: all turns; list: NULL */
} g3_store_conv;

g3_store_conv_fields g3_store_conv_fields_defaults(void); /* all NULL: defaults */

int g3_store_create(g3_store *s, const g3_store_conv_fields *f, int64_t *id, g3_error *err);
/* The conversation with its turns and attachment metadata. */
int g3_store_get(g3_store *s, int64_t id, g3_store_conv *out, g3_error *err);
void g3_store_conv_free(g3_store_conv *c);

typedef struct g3_store_list_params {
    const char *q;            /* NULL/"": all; else titles containing q (%, _ and \ match themselves) */
    uint32_t limit;           /* 0: 50; at most 1000 */
    /* Cursor: only conversations sorting after (before_updated_at, before_id)
     * in the newest-first order; before_updated_at 0 = from the newest.
     * Pass the last row's updated_at and id to get the next page. */
    int64_t before_updated_at;
    int64_t before_id;        /* 0: every row with updated_at < before_updated_at */
} g3_store_list_params;

typedef struct g3_store_list {
    g3_store_conv *items;     /* newest first by updated_at (then by id); no turns */
    size_t n;
} g3_store_list;

int g3_store_list_convs(g3_store *s, const g3_store_list_params *p, g3_store_list *out, g3_error *err);
void g3_store_list_free(g3_store_list *l);

/* Changes the non-NULL fields. A title set here is kept (no longer taken
 * from the first message); title "" goes back to the automatic one. */
int g3_store_update(g3_store *s, int64_t id, const g3_store_conv_fields *f, g3_error *err);
/* Deletes the conversation with its turns and attachments. */
int g3_store_delete(g3_store *s, int64_t id, g3_error *err);

/* ---- turns -------------------------------------------------------------- */

typedef struct g3_store_attachment_in {
    const char *name;         /* the file's name as the user gave it */
    const char *media_type;   /* "image/jpeg", "application/pdf", "text/x-c", ... */
    const uint8_t *data;
    size_t size;
} g3_store_attachment_in;

typedef struct g3_store_user_msg {
    const char *text;         /* as typed ("" allowed with attachments) */
    const char *prompt_text;  /* NULL: the model was given `text` */
    uint32_t text_pos;        /* images and videos before the text (at most their number) */
    const g3_store_attachment_in *attachments;
    size_t n_attachments;
} g3_store_user_msg;

typedef struct g3_store_answer {
    const char *text;
    size_t text_len;          /* 0: strlen(text) */
    const int32_t *ids;       /* may be NULL */
    size_t n_ids;
    uint32_t prompt_tokens, cached_tokens, completion_tokens, images_encoded, dropped_turns;
    double queue_s, encode_s, prefill_s, generate_s;
    const char *finish_reason; /* NULL: none */
    bool stopped;
    const g3_model_record *model; /* may be NULL */
} g3_store_answer;

/* Fills an answer from the engine's result (pointers into r: valid while r
 * is). stopped = (r->stop == G3_STOP_CANCELLED). model may be NULL. */
void g3_store_answer_from_result(g3_store_answer *a, const g3_gen_result *r, const g3_model_record *model);

/* Appends a user turn (with its attachments) and its answer in one
 * transaction. The conversation must be empty or end with an answer
 * (G3_STORE_CONFLICT otherwise). Ids out may be NULL. */
int g3_store_append(g3_store *s, int64_t conv, const g3_store_user_msg *u, const g3_store_answer *a,
                    int64_t *user_turn_id, int64_t *answer_turn_id, g3_error *err);
/* Regenerate: replaces the last answer (it gets a new id). */
int g3_store_replace_answer(g3_store *s, int64_t conv, const g3_store_answer *a, int64_t *answer_turn_id,
                            g3_error *err);
/* Edit: replaces the last user message (same turn id) and its answer (new
 * id). keep_attachments keeps the old message's attachments (the new ones
 * follow them); else they are deleted. */
int g3_store_replace_last_pair(g3_store *s, int64_t conv, const g3_store_user_msg *u, bool keep_attachments,
                               const g3_store_answer *a, int64_t *answer_turn_id, g3_error *err);

/* An attachment with its bytes (out->data, malloc'd). */
int g3_store_attachment_get(g3_store *s, int64_t attachment_id, g3_store_attachment *out, g3_error *err);
void g3_store_attachment_free(g3_store_attachment *a);
/* media_type is image/... (it becomes an image part). */
bool g3_store_media_is_image(const char *media_type);
/* media_type is video/... (it becomes G3_STORE_VIDEO_FRAMES frame parts). */
bool g3_store_media_is_video(const char *media_type);

/* Frames sampled from a stored video when its conversation is rebuilt, and
 * so the frames the native API gives the model for a video attachment (the
 * terminal's default --max-frames): the rule both follow, so a follow-up
 * after a restart sees the same frames. Each counts as one image against
 * max_images. */
#define G3_STORE_VIDEO_FRAMES 2u

/* ---- using a stored conversation ---------------------------------------- */

/* Builds the conversation the model sees: the system prompt; each user turn
 * as its prompt_text (else text), with its images as image parts holding
 * their bytes and its videos as G3_STORE_VIDEO_FRAMES labelled frame parts
 * (sampled here: a video that no longer decodes fails the rebuild), placed
 * by text_pos; each answer with its ids when they were
 * made by `model` (same vocabulary fingerprint), else as text only (the
 * engine tokenizes it again). model may be NULL (ids dropped). *out is
 * initialized here; free it with g3_conversation_free. */
int g3_store_to_conversation(g3_store *s, int64_t id, const g3_model_record *model, g3_conversation *out,
                             g3_error *err);

typedef enum g3_store_format { G3_STORE_JSON = 0, G3_STORE_MARKDOWN = 1 } g3_store_format;

/* The conversation as JSON (the native API's shape: {id, title, preset,
 * system, settings, created_at, updated_at, messages: [{id, role
 * ("user"|"assistant"), content, created_at, attachments: [{id, name, type,
 * size}], usage?, timings?, finish_reason?, stopped?}]}) or as Markdown.
 * *out is malloc'd and NUL-terminated. */
int g3_store_export(g3_store *s, int64_t id, g3_store_format fmt, char **out, g3_error *err);
/* The same, from a conversation already read with g3_store_get. NULL when
 * out of memory. */
char *g3_store_conv_to_json(const g3_store_conv *c);
char *g3_store_conv_to_markdown(const g3_store_conv *c);

/* The automatic title: the first non-empty line of text, trimmed, cut at a
 * word boundary to at most max_chars characters ("..." marks a cut; a word
 * longer than the limit is cut inside). "" for empty text. Writes at most
 * out_size bytes (NUL included), never splitting a UTF-8 sequence. */
void g3_store_default_title(const char *text, size_t max_chars, char *out, size_t out_size);
#define G3_STORE_TITLE_CHARS 60

#ifdef __cplusplus
}
#endif

#endif
