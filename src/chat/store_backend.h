/* store_backend.h: what a conversation-store backend implements.
 *
 * store.c checks every input (UTF-8, ranges, sizes), takes the clock and a
 * mutex, works out automatic titles and builds conversations and exports
 * from `get`; a backend only stores and reads. Each operation must be one
 * transaction (all or nothing) and return a g3_store_status with the
 * message filled. Adding a backend: a file with its ops table, one row in
 * store.c's table of backends; callers do not change.
 */
#ifndef G3_CHAT_STORE_BACKEND_H
#define G3_CHAT_STORE_BACKEND_H

#include "gemma3_store.h"

typedef struct g3_store_backend {
    const char *name;
    int (*open)(const char *path, const g3_store_options *o, void **impl, g3_error *err);
    void (*close)(void *impl);
    int (*check)(void *impl, g3_error *err);
    /* f->title NULL: the automatic title (""); settings non-NULL. */
    int (*create)(void *impl, const g3_store_conv_fields *f, int64_t now, int64_t *id, g3_error *err);
    int (*get)(void *impl, int64_t id, g3_store_conv *out, g3_error *err);
    int (*list)(void *impl, const g3_store_list_params *p, g3_store_list *out, g3_error *err);
    /* f->title "" returns to the automatic title (g3_store_title_for of
     * the first user message; "" for an empty conversation). */
    int (*update)(void *impl, int64_t id, const g3_store_conv_fields *f, int64_t now, g3_error *err);
    int (*remove)(void *impl, int64_t id, g3_error *err);
    /* An automatic title is set from the first user turn (g3_store_title_for). */
    int (*append)(void *impl, int64_t conv, const g3_store_user_msg *u, const g3_store_answer *a, int64_t now,
                  int64_t *user_id, int64_t *answer_id, g3_error *err);
    int (*replace_answer)(void *impl, int64_t conv, const g3_store_answer *a, int64_t now, int64_t *answer_id,
                          g3_error *err);
    int (*replace_last_pair)(void *impl, int64_t conv, const g3_store_user_msg *u, bool keep_attachments,
                             const g3_store_answer *a, int64_t now, int64_t *answer_id,
                             g3_error *err);
    int (*attachment_get)(void *impl, int64_t id, g3_store_attachment *out, g3_error *err);
} g3_store_backend;

extern const g3_store_backend g3_store_sqlite_backend;

/* The automatic title of a conversation whose first user message is text
 * (with first_attachment, may be NULL, the name of its first attachment):
 * g3_store_default_title of the text, else the attachment's name, else "". */
#define G3_STORE_TITLE_BYTES (G3_STORE_TITLE_CHARS * 4 + 8)
void g3_store_title_for(const char *text, const char *first_attachment, char *out, size_t out_size);

/* ---- for the tests ---------------------------------------------------- */

/* One step of the SQLite schema: the SQL that takes a database from
 * version - 1 to version. */
typedef struct g3_store_migration {
    int version;
    const char *what;
    const char *sql;
} g3_store_migration;

/* The migrations this build applies (versions 1 .. G3_STORE_SCHEMA_VERSION). */
const g3_store_migration *g3_store_sqlite_migrations(size_t *n);
/* g3_store_open with another migration table (its last version is the
 * target): the tests add a step to see an upgrade with data, and a failing
 * one to see it roll back. */
int g3_store_open_sqlite_migrations(const char *path, const g3_store_options *o, const g3_store_migration *m,
                                    size_t n, g3_store **out, g3_error *err);
/* The connection of a store opened with the SQLite backend (NULL for
 * another): the tests set hooks on it (to die in the middle of a
 * transaction) and limits (max_page_count, for a full disk). */
struct sqlite3 *g3_store_sqlite_db(g3_store *s);

/* store.c: the backend's state behind a handle, if b is its backend. */
void *g3_store_impl_of(g3_store *s, const g3_store_backend *b);
/* store.c: wraps an opened backend into a handle (takes impl). */
int g3_store_wrap(const g3_store_backend *b, void *impl, const char *path, const g3_store_options *o,
                  g3_store **out, g3_error *err);

#endif
