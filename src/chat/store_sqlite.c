/* store_sqlite.c: the conversation store in one SQLite file.
 *
 * Schema (version 1; PRAGMA user_version, application_id "G3CH"):
 *   conversations(id, title, title_auto, preset, system, max_tokens,
 *                 temperature, top_p, top_k, repetition_penalty, max_images,
 *                 created_at, updated_at)
 *   turns(id, conversation_id -> conversations ON DELETE CASCADE, idx, role,
 *         text, prompt_text, text_pos, created_at, prompt_tokens,
 *         cached_tokens, completion_tokens, images_encoded, dropped_turns,
 *         queue_s, encode_s, prefill_s, generate_s, finish_reason, stopped,
 *         model_name, model_n_vocab, model_fingerprint, token_ids)
 *   attachments(id, turn_id -> turns ON DELETE CASCADE, ord, name,
 *               media_type, size, data)
 * AUTOINCREMENT keeps ids from being reused after a delete. token_ids is
 * int32 little-endian. An attachment's bytes are its row's last column, so
 * reading the other columns never reads them.
 *
 * The file is not trusted: what is read back is checked (ranges, roles
 * alternating, blob sizes) and a damaged row is reported, not used. Texts
 * read back are made valid UTF-8 (they were written valid). */
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <math.h>
#include <sqlite3.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "base/error.h"
#include "base/utf8.h"
#include "chat/store_backend.h"

#define DEFAULT_BUSY_MS 5000

typedef struct sq {
    sqlite3 *db;
    char *path;
    int busy_ms;
} sq;

/* ---- schema ------------------------------------------------------------- */

static const char k_schema_v1[] =
    "CREATE TABLE conversations (\n"
    "  id INTEGER PRIMARY KEY AUTOINCREMENT,\n"
    "  title TEXT NOT NULL,\n"
    "  title_auto INTEGER NOT NULL CHECK (title_auto IN (0, 1)),\n"
    "  preset TEXT NOT NULL,\n"
    "  system TEXT NOT NULL,\n"
    "  max_tokens INTEGER NOT NULL CHECK (max_tokens BETWEEN 0 AND 2147483647),\n"
    "  temperature REAL NOT NULL CHECK (temperature >= 0),\n"
    "  top_p REAL NOT NULL CHECK (top_p BETWEEN 0 AND 1),\n"
    "  top_k INTEGER NOT NULL CHECK (top_k BETWEEN 0 AND 2147483647),\n"
    "  repetition_penalty REAL NOT NULL CHECK (repetition_penalty > 0),\n"
    "  max_images INTEGER NOT NULL CHECK (max_images BETWEEN 0 AND 2147483647),\n"
    "  created_at INTEGER NOT NULL,\n"
    "  updated_at INTEGER NOT NULL\n"
    ");\n"
    "CREATE INDEX conversations_newest ON conversations (updated_at DESC, id DESC);\n"
    "CREATE TABLE turns (\n"
    "  id INTEGER PRIMARY KEY AUTOINCREMENT,\n"
    "  conversation_id INTEGER NOT NULL REFERENCES conversations (id) ON DELETE CASCADE,\n"
    "  idx INTEGER NOT NULL CHECK (idx >= 0),\n"
    "  role TEXT NOT NULL CHECK (role IN ('user', 'model')),\n"
    "  text TEXT NOT NULL,\n"
    "  prompt_text TEXT,\n"
    "  text_pos INTEGER NOT NULL DEFAULT 0 CHECK (text_pos >= 0),\n"
    "  created_at INTEGER NOT NULL,\n"
    "  prompt_tokens INTEGER NOT NULL DEFAULT 0,\n"
    "  cached_tokens INTEGER NOT NULL DEFAULT 0,\n"
    "  completion_tokens INTEGER NOT NULL DEFAULT 0,\n"
    "  images_encoded INTEGER NOT NULL DEFAULT 0,\n"
    "  dropped_turns INTEGER NOT NULL DEFAULT 0,\n"
    "  queue_s REAL NOT NULL DEFAULT 0,\n"
    "  encode_s REAL NOT NULL DEFAULT 0,\n"
    "  prefill_s REAL NOT NULL DEFAULT 0,\n"
    "  generate_s REAL NOT NULL DEFAULT 0,\n"
    "  finish_reason TEXT,\n"
    "  stopped INTEGER NOT NULL DEFAULT 0 CHECK (stopped IN (0, 1)),\n"
    "  model_name TEXT,\n"
    "  model_n_vocab INTEGER,\n"
    "  model_fingerprint INTEGER,\n"
    "  token_ids BLOB,\n"
    "  UNIQUE (conversation_id, idx)\n"
    ");\n"
    "CREATE TABLE attachments (\n"
    "  id INTEGER PRIMARY KEY AUTOINCREMENT,\n"
    "  turn_id INTEGER NOT NULL REFERENCES turns (id) ON DELETE CASCADE,\n"
    "  ord INTEGER NOT NULL CHECK (ord >= 0),\n"
    "  name TEXT NOT NULL,\n"
    "  media_type TEXT NOT NULL,\n"
    "  size INTEGER NOT NULL CHECK (size >= 0),\n"
    "  data BLOB NOT NULL CHECK (length(data) = size),\n"
    "  UNIQUE (turn_id, ord)\n"
    ");\n";

static const g3_store_migration k_migrations[] = {
    {1, "conversations, turns and attachments", k_schema_v1},
};

const g3_store_migration *g3_store_sqlite_migrations(size_t *n) {
    *n = sizeof k_migrations / sizeof k_migrations[0];
    return k_migrations;
}

/* ---- errors ------------------------------------------------------------- */

/* What a failed SQLite call means for the caller, in words and as a status. */
static int explain(int rc, int sys_errno, int busy_ms, char *why, size_t n) {
    switch (rc & 0xff) {
    case SQLITE_BUSY:
    case SQLITE_LOCKED:
        snprintf(why, n, "the database is locked by another process or connection (waited %d ms)", busy_ms);
        return G3_STORE_BUSY;
    case SQLITE_READONLY: snprintf(why, n, "the database is read-only"); return G3_STORE_READONLY;
    case SQLITE_FULL: snprintf(why, n, "the disk is full or the database reached its size limit"); return G3_STORE_FULL;
    case SQLITE_IOERR:
        if (sys_errno == ENOSPC || sys_errno == EFBIG || sys_errno == EDQUOT) {
            snprintf(why, n, "the file could not grow: %s", strerror(sys_errno));
            return G3_STORE_FULL;
        }
        if (sys_errno) snprintf(why, n, "I/O error: %s", strerror(sys_errno));
        else snprintf(why, n, "I/O error");
        return G3_STORE_ERROR;
    case SQLITE_CORRUPT: snprintf(why, n, "the database file is damaged"); return G3_STORE_CORRUPT;
    case SQLITE_NOTADB:
        snprintf(why, n, "the file is not an SQLite database (or it is encrypted or damaged)");
        return G3_STORE_CORRUPT;
    case SQLITE_CANTOPEN:
        if (sys_errno) snprintf(why, n, "the file cannot be opened: %s", strerror(sys_errno));
        else snprintf(why, n, "the file cannot be opened");
        return sys_errno == EACCES || sys_errno == EROFS ? G3_STORE_READONLY : G3_STORE_ERROR;
    case SQLITE_NOMEM: snprintf(why, n, "out of memory"); return G3_STORE_ERROR;
    case SQLITE_CONSTRAINT: snprintf(why, n, "a value breaks the schema's rules"); return G3_STORE_INVALID;
    case SQLITE_TOOBIG: snprintf(why, n, "a value is larger than SQLite's length limit"); return G3_STORE_INVALID;
    default: snprintf(why, n, "SQLite error %d", rc); return G3_STORE_ERROR;
    }
}

/* "<what> in <path>: <why> (SQLite: <message>)"; returns the status. Call
 * it before anything else touches the connection (a ROLLBACK would replace
 * SQLite's message). */
G3_PRINTF(4, 5) static int sq_fail(const sq *q, int rc, g3_error *err, const char *fmt, ...) {
    /* SQLite does not keep the errno of a failed write to the WAL
     * (sqlite3_system_errno is 0 then): take errno as the call left it,
     * but only the values that say the file could not grow (a stale
     * ENOENT from a journal probe must not be reported). */
    int last_errno = errno;
    char what[256], why[160];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(what, sizeof what, fmt, ap);
    va_end(ap);
    int sys = q->db ? sqlite3_system_errno(q->db) : 0;
    if (!sys && (rc & 0xff) == SQLITE_IOERR &&
        (last_errno == ENOSPC || last_errno == EFBIG || last_errno == EDQUOT))
        sys = last_errno;
    int status = explain(rc, sys, q->busy_ms, why, sizeof why);
    const char *msg = q->db ? sqlite3_errmsg(q->db) : sqlite3_errstr(rc);
    if (err) snprintf(err->msg, sizeof err->msg, "%s in %s: %s (SQLite: %s)", what, q->path, why, msg);
    return status;
}

/* A failure of our own with its status. Problems of the file name it;
 * problems of the request (an unknown id, bad input, a conflict) do not:
 * the server may show those messages to its clients. */
G3_PRINTF(4, 5) static int sq_fail_as(const sq *q, int status, g3_error *err, const char *fmt, ...) {
    char what[384];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(what, sizeof what, fmt, ap);
    va_end(ap);
    bool about_request = status == G3_STORE_NOT_FOUND || status == G3_STORE_INVALID || status == G3_STORE_CONFLICT;
    if (!err) return status;
    if (about_request || strstr(what, q->path)) snprintf(err->msg, sizeof err->msg, "%s", what);
    else snprintf(err->msg, sizeof err->msg, "%s (%s)", what, q->path);
    return status;
}

/* ---- small helpers ------------------------------------------------------ */

static int run(sq *q, const char *sql, const char *what, g3_error *err) {
    int rc = sqlite3_exec(q->db, sql, NULL, NULL, NULL);
    return rc == SQLITE_OK ? G3_STORE_OK : sq_fail(q, rc, err, "%s", what);
}

static int prep(sq *q, const char *sql, sqlite3_stmt **st, const char *what, g3_error *err) {
    int rc = sqlite3_prepare_v2(q->db, sql, -1, st, NULL);
    if (rc == SQLITE_OK) return G3_STORE_OK;
    *st = NULL;
    return sq_fail(q, rc, err, "%s", what);
}

static void rollback(sq *q) {
    if (!sqlite3_get_autocommit(q->db)) sqlite3_exec(q->db, "ROLLBACK", NULL, NULL, NULL);
}

static int begin_write(sq *q, const char *what, g3_error *err) { return run(q, "BEGIN IMMEDIATE", what, err); }

static int commit(sq *q, const char *what, g3_error *err) {
    int rc = run(q, "COMMIT", what, err);
    if (rc) rollback(q);
    return rc;
}

/* Ends a write: commits on success, else rolls back (err already set). */
static int finish(sq *q, int rc, const char *what, g3_error *err) {
    if (rc) {
        rollback(q);
        return rc;
    }
    return commit(q, what, err);
}

static int bind_text(sqlite3_stmt *st, int i, const char *s, size_t len) {
    if (!s) return sqlite3_bind_null(st, i);
    return sqlite3_bind_text64(st, i, s, len, SQLITE_STATIC, SQLITE_UTF8);
}
static int bind_str(sqlite3_stmt *st, int i, const char *s) { return bind_text(st, i, s, s ? strlen(s) : 0); }

/* Binds ?1 and steps: SQLite's result, or the bind's failure. */
static int step_with_id(sqlite3_stmt *st, sqlite3_int64 id) {
    int b = sqlite3_bind_int64(st, 1, id);
    return b == SQLITE_OK ? sqlite3_step(st) : b;
}

/* Steps a statement that returns no row; finalizes it. */
static int step_done(sq *q, sqlite3_stmt *st, int bind_rc, const char *what, g3_error *err) {
    int rc = bind_rc == SQLITE_OK ? sqlite3_step(st) : bind_rc;
    int status = rc == SQLITE_DONE ? G3_STORE_OK : sq_fail(q, rc, err, "%s", what);
    sqlite3_finalize(st);
    return status;
}

#define BIND(x)                          \
    do {                                 \
        if (b == SQLITE_OK) b = (x);     \
    } while (0)

/* A column as a malloc'd, valid UTF-8 string; NULL column: NULL (or "" if
 * !nullable). *oom on allocation failure. */
static char *col_str(sqlite3_stmt *st, int i, bool nullable, bool *oom) {
    const char *s = (const char *)sqlite3_column_text(st, i);
    bool is_null = sqlite3_column_type(st, i) == SQLITE_NULL;
    if (!s && !is_null) *oom = true; /* sqlite3_column_text's out-of-memory */
    if (!s && nullable && is_null) return NULL;
    size_t len = s ? (size_t)sqlite3_column_bytes(st, i) : 0, n_bad;
    char *out = g3_utf8_sanitize(s ? s : "", len, &n_bad);
    if (!out) *oom = true;
    return out;
}

static bool col_u32(sqlite3_stmt *st, int i, uint32_t *out) {
    sqlite3_int64 v = sqlite3_column_int64(st, i);
    *out = (uint32_t)v;
    return sqlite3_column_type(st, i) == SQLITE_INTEGER && v >= 0 && v <= UINT32_MAX;
}

static bool col_seconds(sqlite3_stmt *st, int i, double *out) {
    *out = sqlite3_column_double(st, i);
    return isfinite(*out) && *out >= 0;
}

/* Little-endian int32 ids <-> a blob. */
static uint8_t *ids_blob(const int32_t *ids, size_t n) {
    uint8_t *b = malloc(n ? n * 4 : 1);
    for (size_t i = 0; b && i < n; i++) {
        uint32_t v = (uint32_t)ids[i];
        b[4 * i] = (uint8_t)v, b[4 * i + 1] = (uint8_t)(v >> 8), b[4 * i + 2] = (uint8_t)(v >> 16),
        b[4 * i + 3] = (uint8_t)(v >> 24);
    }
    return b;
}

/* ---- opening ------------------------------------------------------------ */

static int read_int(sq *q, const char *sql, int64_t *out, const char *what, g3_error *err) {
    sqlite3_stmt *st;
    int rc = prep(q, sql, &st, what, err);
    if (rc) return rc;
    int s = sqlite3_step(st);
    if (s == SQLITE_ROW) *out = sqlite3_column_int64(st, 0);
    else if (s == SQLITE_DONE) rc = sq_fail_as(q, G3_STORE_ERROR, err, "%s: no result", what);
    else rc = sq_fail(q, s, err, "%s", what);
    sqlite3_finalize(st);
    return rc;
}

/* The file and its folder, before SQLite sees them: its messages for a
 * read-only folder ("unable to open database file", at the first query)
 * do not say what to fix. */
static int check_file(const sq *q, bool read_only, g3_error *err) {
    const char *path = q->path;
    char dir[4096];
    const char *slash = strrchr(path, '/');
    if (!slash) snprintf(dir, sizeof dir, ".");
    else if (slash == path) snprintf(dir, sizeof dir, "/");
    else snprintf(dir, sizeof dir, "%.*s", (int)(slash - path), path);
    struct stat sb;
    if (stat(path, &sb) == 0) {
        if (!S_ISREG(sb.st_mode))
            return sq_fail_as(q, G3_STORE_ERROR, err, "opening the store: %s is not a regular file", path);
        if (read_only) return G3_STORE_OK;
        if (faccessat(AT_FDCWD, path, R_OK | W_OK, AT_EACCESS) != 0)
            return sq_fail_as(q, G3_STORE_READONLY, err,
                              "opening the store: %s cannot be written (%s); gemma-chat saves every turn there: "
                              "make it writable or choose another file", path, strerror(errno));
    } else if (errno != ENOENT) {
        return sq_fail_as(q, G3_STORE_ERROR, err, "opening the store: %s: %s", path, strerror(errno));
    } else if (read_only) {
        return sq_fail_as(q, G3_STORE_NOT_FOUND, err, "opening the store read-only: %s does not exist", path);
    }
    if (stat(dir, &sb) != 0 || !S_ISDIR(sb.st_mode))
        return sq_fail_as(q, G3_STORE_ERROR, err, "opening the store: the folder %s does not exist", dir);
    if (faccessat(AT_FDCWD, dir, W_OK | X_OK, AT_EACCESS) != 0)
        return sq_fail_as(q, G3_STORE_READONLY, err,
                          "opening the store: the folder %s cannot be written (%s); SQLite keeps the journal of %s "
                          "(its -wal and -shm files) there", dir, strerror(errno), path);
    return G3_STORE_OK;
}

/* Refuses a file that is not ours or is newer, before anything is written. */
static int check_identity(sq *q, int target, int64_t *version, g3_error *err) {
    int64_t app_id, n_objects;
    int rc = read_int(q, "PRAGMA application_id", &app_id, "reading the store's header", err);
    if (!rc) rc = read_int(q, "PRAGMA user_version", version, "reading the store's schema version", err);
    if (!rc) rc = read_int(q, "SELECT count(*) FROM sqlite_master", &n_objects, "reading the store's schema", err);
    if (rc) return rc;
    if (app_id != 0 && app_id != G3_STORE_APPLICATION_ID)
        return sq_fail_as(q, G3_STORE_CORRUPT, err,
                          "opening the store: the file belongs to another application (SQLite application_id "
                          "0x%08llx); it was not changed", (unsigned long long)(uint32_t)app_id);
    if (*version > target)
        return sq_fail_as(q, G3_STORE_CORRUPT, err,
                          "opening the store: it was written by a newer gemma-chat (schema version %lld; this one "
                          "knows versions up to %d); use a newer gemma-chat or another file; it was not changed",
                          (long long)*version, target);
    if (*version < 0 || (app_id == 0 && n_objects > 0) || (*version == 0 && n_objects > 0))
        return sq_fail_as(q, G3_STORE_CORRUPT, err,
                          "opening the store: the file is an SQLite database but not a gemma-chat store (it has "
                          "tables and no gemma-chat schema version); it was not changed");
    return G3_STORE_OK;
}

static int set_pragmas(sq *q, bool read_only, g3_error *err) {
    int64_t fk;
    int rc = run(q, "PRAGMA foreign_keys = ON", "turning on foreign keys", err);
    if (!rc) rc = read_int(q, "PRAGMA foreign_keys", &fk, "reading foreign_keys", err);
    if (!rc && fk != 1)
        return sq_fail_as(q, G3_STORE_ERROR, err, "opening the store: this SQLite library cannot enforce foreign keys");
    if (rc || read_only) return rc;
    sqlite3_stmt *st;
    rc = prep(q, "PRAGMA journal_mode = WAL", &st, "switching to WAL mode", err);
    if (rc) return rc;
    int s = sqlite3_step(st);
    if (s != SQLITE_ROW) rc = sq_fail(q, s, err, "switching to WAL mode");
    else if (strcmp((const char *)sqlite3_column_text(st, 0), "wal") != 0)
        rc = sq_fail_as(q, G3_STORE_ERROR, err,
                        "opening the store: SQLite cannot use WAL mode on this file system (journal mode '%s')",
                        (const char *)sqlite3_column_text(st, 0));
    sqlite3_finalize(st);
    /* FULL in WAL mode: a committed turn survives a power loss, not only a crash */
    return rc ? rc : run(q, "PRAGMA synchronous = FULL", "setting synchronous = FULL", err);
}

/* Applies the migrations above *version (all in one transaction), under
 * the write lock that also tells at open whether someone else holds it. */
static int migrate(sq *q, const g3_store_migration *m, size_t n_m, int target, g3_error *err) {
    int rc = begin_write(q, "opening the store (taking the write lock)", err);
    if (rc) return rc;
    int64_t version;
    rc = read_int(q, "PRAGMA user_version", &version, "reading the store's schema version", err);
    if (!rc && version > target) /* migrated by a newer gemma-chat since we looked */
        rc = sq_fail_as(q, G3_STORE_CORRUPT, err, "opening the store: it was written by a newer gemma-chat (schema "
                                                  "version %lld; this one knows up to %d)", (long long)version, target);
    for (size_t i = 0; !rc && i < n_m; i++) {
        if (m[i].version <= version) continue;
        int s = sqlite3_exec(q->db, m[i].sql, NULL, NULL, NULL);
        if (s != SQLITE_OK)
            rc = sq_fail(q, s, err, "migrating the store from schema version %d to %d (%s)", m[i].version - 1,
                         m[i].version, m[i].what);
    }
    if (!rc && version < target) {
        char sql[96];
        snprintf(sql, sizeof sql, "PRAGMA user_version = %d; PRAGMA application_id = %d", target,
                 G3_STORE_APPLICATION_ID);
        rc = run(q, sql, "setting the store's schema version", err);
        int64_t bad = 0;
        if (!rc) rc = read_int(q, "SELECT count(*) FROM pragma_foreign_key_check", &bad, "checking foreign keys", err);
        if (!rc && bad)
            rc = sq_fail_as(q, G3_STORE_CORRUPT, err, "migrating the store: %lld rows point to missing rows",
                            (long long)bad);
    }
    int64_t tables = 0;
    if (!rc)
        rc = read_int(q, "SELECT count(*) FROM sqlite_master WHERE type = 'table' AND name IN "
                         "('conversations', 'turns', 'attachments')", &tables, "reading the store's schema", err);
    if (!rc && tables != 3)
        rc = sq_fail_as(q, G3_STORE_CORRUPT, err, "opening the store: tables are missing (%lld of 3)",
                        (long long)tables);
    return finish(q, rc, "opening the store (committing the schema)", err);
}

static int quick_check(sq *q, const char *pragma, g3_error *err) {
    sqlite3_stmt *st;
    int rc = prep(q, pragma, &st, "checking the database", err);
    if (rc) return rc;
    char found[400] = "";
    size_t len = 0;
    int s, rows = 0;
    while ((s = sqlite3_step(st)) == SQLITE_ROW) {
        const char *line = (const char *)sqlite3_column_text(st, 0);
        if (rows++ == 0 && line && strcmp(line, "ok") == 0) continue;
        if (line && len + 3 < sizeof found)
            len += (size_t)snprintf(found + len, sizeof found - len, "%s%s", len ? "; " : "", line);
        if (len >= sizeof found) len = sizeof found - 1;
    }
    if (s != SQLITE_DONE) rc = sq_fail(q, s, err, "checking the database");
    else if (found[0]) rc = sq_fail_as(q, G3_STORE_CORRUPT, err, "the database is damaged: %s", found);
    sqlite3_finalize(st);
    return rc;
}

static void sq_close(void *impl) {
    sq *q = impl;
    if (!q) return;
    sqlite3_close_v2(q->db);
    free(q->path);
    free(q);
}

static int sq_open_with(const char *path, const g3_store_options *o, const g3_store_migration *m, size_t n_m,
                        void **impl, g3_error *err) {
    *impl = NULL;
    bool read_only = o && o->read_only;
    int target = n_m ? m[n_m - 1].version : 0;
    sq *q = calloc(1, sizeof *q);
    if (!q || !(q->path = strdup(path))) {
        free(q);
        return g3_fail(err, "opening %s: out of memory", path);
    }
    q->busy_ms = o && o->busy_timeout_ms > 0 ? o->busy_timeout_ms : DEFAULT_BUSY_MS;
    int rc = check_file(q, read_only, err);
    if (rc) {
        sq_close(q);
        return rc;
    }
    int flags = (read_only ? SQLITE_OPEN_READONLY : SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE) |
                SQLITE_OPEN_EXRESCODE;
    int s = sqlite3_open_v2(path, &q->db, flags, NULL);
    if (s != SQLITE_OK) rc = sq_fail(q, s, err, "opening the store");
    if (!rc && (s = sqlite3_busy_timeout(q->db, q->busy_ms)) != SQLITE_OK) rc = sq_fail(q, s, err, "opening the store");
    if (!rc && !read_only && sqlite3_db_readonly(q->db, "main") == 1)
        rc = sq_fail_as(q, G3_STORE_READONLY, err, "opening the store: SQLite could only open the file read-only");
    int64_t version = 0;
    if (!rc) rc = check_identity(q, target, &version, err);
    if (!rc) rc = set_pragmas(q, read_only, err);
    if (!rc && read_only && version < target)
        rc = sq_fail_as(q, G3_STORE_READONLY, err,
                        "opening the store read-only: its schema (version %lld) needs migrating to version %d, "
                        "which needs write access: open it once read-write", (long long)version, target);
    if (!rc && !read_only) rc = migrate(q, m, n_m, target, err);
    if (!rc && o && o->verify) rc = quick_check(q, "PRAGMA quick_check", err);
    if (rc) {
        sq_close(q);
        return rc;
    }
    *impl = q;
    return G3_STORE_OK;
}

static int sq_open(const char *path, const g3_store_options *o, void **impl, g3_error *err) {
    size_t n;
    const g3_store_migration *m = g3_store_sqlite_migrations(&n);
    return sq_open_with(path, o, m, n, impl, err);
}

int g3_store_open_sqlite_migrations(const char *path, const g3_store_options *o, const g3_store_migration *m,
                                    size_t n, g3_store **out, g3_error *err) {
    *out = NULL;
    void *impl;
    int rc = sq_open_with(path, o, m, n, &impl, err);
    return rc ? rc : g3_store_wrap(&g3_store_sqlite_backend, impl, path, o, out, err);
}

struct sqlite3 *g3_store_sqlite_db(g3_store *s) {
    sq *q = g3_store_impl_of(s, &g3_store_sqlite_backend);
    return q ? q->db : NULL;
}

static int sq_check(void *impl, g3_error *err) { return quick_check(impl, "PRAGMA integrity_check", err); }

/* ---- conversations ------------------------------------------------------ */

/* Rounded to the decimal the float was given as, so the file reads 0.7. */
static double real_of(float f) {
    char buf[32];
    snprintf(buf, sizeof buf, "%.7g", (double)f);
    return strtod(buf, NULL);
}

/* The settings as parameters 5..10 (create and update share the order). */
static int bind_settings(sqlite3_stmt *st, const g3_store_settings *x) {
    int b = SQLITE_OK;
    BIND(sqlite3_bind_int64(st, 5, x->max_tokens));
    BIND(sqlite3_bind_double(st, 6, real_of(x->temperature)));
    BIND(sqlite3_bind_double(st, 7, real_of(x->top_p)));
    BIND(sqlite3_bind_int64(st, 8, x->top_k));
    BIND(sqlite3_bind_double(st, 9, real_of(x->repetition_penalty)));
    BIND(sqlite3_bind_int64(st, 10, x->max_images));
    return b;
}

static int sq_create(void *impl, const g3_store_conv_fields *f, int64_t now, int64_t *id, g3_error *err) {
    sq *q = impl;
    const char *what = "creating a conversation";
    sqlite3_stmt *st;
    int rc = prep(q, "INSERT INTO conversations (title, title_auto, preset, system, max_tokens, temperature, top_p, "
                     "top_k, repetition_penalty, max_images, created_at, updated_at) "
                     "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)", &st, what, err);
    if (rc) return rc;
    const g3_store_settings *x = f->settings;
    bool auto_title = !f->title || !f->title[0];
    int b = SQLITE_OK;
    BIND(bind_str(st, 1, auto_title ? "" : f->title));
    BIND(sqlite3_bind_int(st, 2, auto_title));
    BIND(bind_str(st, 3, f->preset));
    BIND(bind_str(st, 4, f->system));
    BIND(bind_settings(st, x));
    BIND(sqlite3_bind_int64(st, 11, now));
    BIND(sqlite3_bind_int64(st, 12, now));
    rc = step_done(q, st, b, what, err);
    if (!rc) *id = sqlite3_last_insert_rowid(q->db);
    return rc;
}

#define CONV_COLUMNS                                                                                    \
    "c.id, c.title, c.title_auto, c.preset, c.system, c.max_tokens, c.temperature, c.top_p, c.top_k, " \
    "c.repetition_penalty, c.max_images, c.created_at, c.updated_at, "                                  \
    "(SELECT count(*) FROM turns t WHERE t.conversation_id = c.id)"

/* One row of CONV_COLUMNS; false when a value is out of range (damaged). */
static bool read_conv(sqlite3_stmt *st, g3_store_conv *c, bool *oom) {
    c->id = sqlite3_column_int64(st, 0);
    c->title = col_str(st, 1, false, oom);
    c->title_auto = sqlite3_column_int(st, 2) != 0;
    c->preset = col_str(st, 3, false, oom);
    c->system = col_str(st, 4, false, oom);
    g3_store_settings *x = &c->settings;
    bool ok = col_u32(st, 5, &x->max_tokens) && col_u32(st, 8, &x->top_k) && col_u32(st, 10, &x->max_images) &&
              col_u32(st, 13, &c->n_turns);
    x->temperature = (float)sqlite3_column_double(st, 6);
    x->top_p = (float)sqlite3_column_double(st, 7);
    x->repetition_penalty = (float)sqlite3_column_double(st, 9);
    c->created_at = sqlite3_column_int64(st, 11);
    c->updated_at = sqlite3_column_int64(st, 12);
    return ok && g3_store_settings_check(x, NULL) == G3_STORE_OK;
}

static int read_turn(sq *q, sqlite3_stmt *st, uint32_t i, g3_store_turn *t, g3_error *err) {
    bool oom = false;
    t->id = sqlite3_column_int64(st, 0);
    int64_t idx = sqlite3_column_int64(st, 1);
    const char *role = (const char *)sqlite3_column_text(st, 2);
    t->role = role && strcmp(role, "model") == 0 ? G3_ROLE_MODEL : G3_ROLE_USER;
    t->index = i;
    t->text = col_str(st, 3, false, &oom);
    t->prompt_text = col_str(st, 4, true, &oom);
    t->created_at = sqlite3_column_int64(st, 6);
    t->finish_reason = col_str(st, 16, true, &oom);
    t->stopped = sqlite3_column_int(st, 17) != 0;
    const char *mname = (const char *)sqlite3_column_text(st, 18);
    if (mname) snprintf(t->model.name, sizeof t->model.name, "%s", mname);
    t->model.vocab_fingerprint = (uint64_t)sqlite3_column_int64(st, 20);
    const void *blob = sqlite3_column_blob(st, 21);
    size_t blen = (size_t)sqlite3_column_bytes(st, 21);
    bool ok = idx == i && role && (strcmp(role, i % 2 ? "model" : "user") == 0) && col_u32(st, 5, &t->text_pos) &&
              col_u32(st, 7, &t->prompt_tokens) && col_u32(st, 8, &t->cached_tokens) &&
              col_u32(st, 9, &t->completion_tokens) && col_u32(st, 10, &t->images_encoded) &&
              col_u32(st, 11, &t->dropped_turns) && col_seconds(st, 12, &t->queue_s) &&
              col_seconds(st, 13, &t->encode_s) && col_seconds(st, 14, &t->prefill_s) &&
              col_seconds(st, 15, &t->generate_s) && blen % 4 == 0 &&
              (sqlite3_column_type(st, 19) == SQLITE_NULL || col_u32(st, 19, &t->model.n_vocab));
    if (ok && blob && blen) {
        t->n_ids = blen / 4;
        t->ids = malloc(blen);
        if (!t->ids) oom = true;
        const uint8_t *p = blob;
        for (size_t k = 0; t->ids && k < t->n_ids; k++) {
            uint32_t v = p[4 * k] | (uint32_t)p[4 * k + 1] << 8 | (uint32_t)p[4 * k + 2] << 16 |
                         (uint32_t)p[4 * k + 3] << 24;
            t->ids[k] = (int32_t)v;
            if (t->ids[k] < 0) ok = false;
        }
    }
    if (oom) return sq_fail_as(q, G3_STORE_ERROR, err, "reading turn %u: out of memory", i + 1);
    if (!ok)
        return sq_fail_as(q, G3_STORE_CORRUPT, err, "reading turn %u (id %lld): the stored row is damaged (index, role "
                                                    "or a value out of range)", i + 1, (long long)t->id);
    return G3_STORE_OK;
}

static int read_turns(sq *q, g3_store_conv *c, g3_error *err) {
    sqlite3_stmt *st;
    int rc = prep(q, "SELECT id, idx, role, text, prompt_text, text_pos, created_at, prompt_tokens, cached_tokens, "
                     "completion_tokens, images_encoded, dropped_turns, queue_s, encode_s, prefill_s, generate_s, "
                     "finish_reason, stopped, model_name, model_n_vocab, model_fingerprint, token_ids "
                     "FROM turns WHERE conversation_id = ? ORDER BY idx", &st, "reading turns", err);
    if (rc) return rc;
    int b = sqlite3_bind_int64(st, 1, c->id);
    if (b != SQLITE_OK) rc = sq_fail(q, b, err, "reading turns");
    uint32_t expected = c->n_turns;
    c->turns = calloc(expected ? expected : 1, sizeof *c->turns);
    if (!rc && !c->turns) rc = sq_fail_as(q, G3_STORE_ERROR, err, "reading turns: out of memory");
    uint32_t n = 0;
    int s = SQLITE_DONE;
    while (!rc && (s = sqlite3_step(st)) == SQLITE_ROW) {
        if (n == expected) {
            rc = sq_fail_as(q, G3_STORE_CORRUPT, err, "reading turns: more rows than counted");
            break;
        }
        rc = read_turn(q, st, n, &c->turns[n], err);
        n++;
    }
    c->n_turns = n; /* what was allocated and filled, for freeing */
    if (!rc && s != SQLITE_DONE) rc = sq_fail(q, s, err, "reading turns");
    if (!rc && n != expected) rc = sq_fail_as(q, G3_STORE_CORRUPT, err, "reading turns: fewer rows than counted");
    sqlite3_finalize(st);
    return rc;
}

static int add_attachment(g3_store_turn *t, const g3_store_attachment *a) {
    g3_store_attachment *grown = realloc(t->attachments, (t->n_attachments + 1) * sizeof *grown);
    if (!grown) return -1;
    t->attachments = grown;
    t->attachments[t->n_attachments++] = *a;
    return 0;
}

/* The attachments' metadata, distributed to their turns (both in idx order). */
static int read_attachments(sq *q, g3_store_conv *c, g3_error *err) {
    sqlite3_stmt *st;
    int rc = prep(q, "SELECT a.id, a.turn_id, a.ord, a.name, a.media_type, a.size FROM attachments a "
                     "JOIN turns t ON t.id = a.turn_id WHERE t.conversation_id = ? ORDER BY t.idx, a.ord",
                  &st, "reading attachments", err);
    if (rc) return rc;
    int s = sqlite3_bind_int64(st, 1, c->id);
    if (s != SQLITE_OK) rc = sq_fail(q, s, err, "reading attachments");
    uint32_t ti = 0;
    while (!rc && (s = sqlite3_step(st)) == SQLITE_ROW) {
        bool oom = false;
        g3_store_attachment a = {.id = sqlite3_column_int64(st, 0), .turn_id = sqlite3_column_int64(st, 1)};
        sqlite3_int64 size = sqlite3_column_int64(st, 5);
        a.size = (uint64_t)size;
        bool ok = col_u32(st, 2, &a.ord) && size >= 0;
        a.name = col_str(st, 3, false, &oom);
        a.media_type = col_str(st, 4, false, &oom);
        while (ti < c->n_turns && c->turns[ti].id != a.turn_id) ti++;
        if (oom || !ok || ti == c->n_turns || add_attachment(&c->turns[ti], &a)) {
            g3_store_attachment_free(&a);
            rc = oom ? sq_fail_as(q, G3_STORE_ERROR, err, "reading attachments: out of memory")
                     : sq_fail_as(q, G3_STORE_CORRUPT, err, "reading attachment %lld: the stored row is damaged",
                                  (long long)a.id);
        }
    }
    if (!rc && s != SQLITE_DONE) rc = sq_fail(q, s, err, "reading attachments");
    sqlite3_finalize(st);
    return rc;
}

static int sq_get(void *impl, int64_t id, g3_store_conv *out, g3_error *err) {
    sq *q = impl;
    char what[64];
    snprintf(what, sizeof what, "reading conversation %lld", (long long)id);
    int rc = run(q, "BEGIN", what, err); /* one snapshot for the three queries */
    sqlite3_stmt *st = NULL;
    if (!rc) rc = prep(q, "SELECT " CONV_COLUMNS " FROM conversations c WHERE c.id = ?", &st, what, err);
    if (!rc) {
        int s = step_with_id(st, id);
        bool oom = false;
        if (s == SQLITE_DONE) rc = sq_fail_as(q, G3_STORE_NOT_FOUND, err, "conversation %lld not found", (long long)id);
        else if (s != SQLITE_ROW) rc = sq_fail(q, s, err, "%s", what);
        else if (!read_conv(st, out, &oom) || oom)
            rc = sq_fail_as(q, oom ? G3_STORE_ERROR : G3_STORE_CORRUPT, err, "%s: %s", what,
                            oom ? "out of memory" : "the stored row is damaged");
    }
    sqlite3_finalize(st);
    if (!rc) rc = read_turns(q, out, err);
    if (!rc) rc = read_attachments(q, out, err);
    if (rc && rc != G3_STORE_NOT_FOUND && rc != G3_STORE_BUSY) g3_error_prefix(err, "%s: ", what);
    rollback(q); /* ends the read transaction */
    if (rc) g3_store_conv_free(out);
    return rc;
}

/* "%q%" with LIKE's wildcards in q escaped by '\'. */
static char *like_pattern(const char *qs) {
    size_t n = strlen(qs);
    char *p = malloc(2 * n + 3), *w = p;
    if (!p) return NULL;
    *w++ = '%';
    for (const char *s = qs; *s; s++) {
        if (*s == '%' || *s == '_' || *s == '\\') *w++ = '\\';
        *w++ = *s;
    }
    *w++ = '%';
    *w = 0;
    return p;
}

static int sq_list(void *impl, const g3_store_list_params *p, g3_store_list *out, g3_error *err) {
    sq *q = impl;
    const char *what = "listing conversations";
    char *pattern = p->q && p->q[0] ? like_pattern(p->q) : NULL;
    if (p->q && p->q[0] && !pattern) return sq_fail_as(q, G3_STORE_ERROR, err, "%s: out of memory", what);
    sqlite3_stmt *st;
    int rc = prep(q, "SELECT " CONV_COLUMNS " FROM conversations c "
                     "WHERE (?1 IS NULL OR c.title LIKE ?1 ESCAPE '\\') "
                     "AND (?2 = 0 OR c.updated_at < ?2 OR (c.updated_at = ?2 AND c.id < ?3)) "
                     "ORDER BY c.updated_at DESC, c.id DESC LIMIT ?4", &st, what, err);
    if (rc) {
        free(pattern);
        return rc;
    }
    int b = SQLITE_OK;
    BIND(bind_str(st, 1, pattern));
    BIND(sqlite3_bind_int64(st, 2, p->before_updated_at));
    BIND(sqlite3_bind_int64(st, 3, p->before_id));
    BIND(sqlite3_bind_int64(st, 4, p->limit));
    out->items = calloc(p->limit ? p->limit : 1, sizeof *out->items);
    if (b != SQLITE_OK) rc = sq_fail(q, b, err, "%s", what);
    else if (!out->items) rc = sq_fail_as(q, G3_STORE_ERROR, err, "%s: out of memory", what);
    int s = SQLITE_DONE;
    while (!rc && out->n < p->limit && (s = sqlite3_step(st)) == SQLITE_ROW) {
        bool oom = false;
        g3_store_conv *c = &out->items[out->n++];
        if (!read_conv(st, c, &oom) || oom)
            rc = sq_fail_as(q, oom ? G3_STORE_ERROR : G3_STORE_CORRUPT, err, "%s: conversation %lld: %s", what,
                            (long long)c->id, oom ? "out of memory" : "the stored row is damaged");
    }
    if (!rc && s != SQLITE_DONE && s != SQLITE_ROW) rc = sq_fail(q, s, err, "%s", what);
    sqlite3_finalize(st);
    free(pattern);
    if (rc) g3_store_list_free(out);
    return rc;
}

/* The automatic title from the conversation's first user turn ("" if none). */
static int first_turn_title(sq *q, int64_t conv, char *title, size_t size, const char *what, g3_error *err) {
    sqlite3_stmt *st;
    int rc = prep(q, "SELECT t.text, (SELECT a.name FROM attachments a WHERE a.turn_id = t.id ORDER BY a.ord LIMIT 1) "
                     "FROM turns t WHERE t.conversation_id = ? AND t.idx = 0", &st, what, err);
    if (rc) return rc;
    title[0] = 0;
    int s = step_with_id(st, conv);
    if (s == SQLITE_ROW)
        g3_store_title_for((const char *)sqlite3_column_text(st, 0), (const char *)sqlite3_column_text(st, 1), title,
                           size);
    else if (s != SQLITE_DONE) rc = sq_fail(q, s, err, "%s", what);
    sqlite3_finalize(st);
    return rc;
}

static int sq_update(void *impl, int64_t id, const g3_store_conv_fields *f, int64_t now, g3_error *err) {
    sq *q = impl;
    char what[64], title[G3_STORE_TITLE_BYTES];
    snprintf(what, sizeof what, "changing conversation %lld", (long long)id);
    int rc = begin_write(q, what, err);
    if (rc) return rc;
    const char *new_title = f->title;
    if (new_title && !new_title[0]) {
        rc = first_turn_title(q, id, title, sizeof title, what, err);
        new_title = title;
    }
    sqlite3_stmt *st = NULL;
    if (!rc)
        rc = prep(q, "UPDATE conversations SET title = coalesce(?1, title), title_auto = coalesce(?2, title_auto), "
                     "preset = coalesce(?3, preset), system = coalesce(?4, system), "
                     "max_tokens = coalesce(?5, max_tokens), temperature = coalesce(?6, temperature), "
                     "top_p = coalesce(?7, top_p), top_k = coalesce(?8, top_k), "
                     "repetition_penalty = coalesce(?9, repetition_penalty), max_images = coalesce(?10, max_images), "
                     "updated_at = ?11 WHERE id = ?12", &st, what, err);
    if (!rc) {
        int b = SQLITE_OK;
        BIND(bind_str(st, 1, new_title));
        if (f->title) BIND(sqlite3_bind_int(st, 2, f->title[0] == 0));
        BIND(bind_str(st, 3, f->preset));
        BIND(bind_str(st, 4, f->system));
        const g3_store_settings *x = f->settings;
        if (x) BIND(bind_settings(st, x));
        BIND(sqlite3_bind_int64(st, 11, now));
        BIND(sqlite3_bind_int64(st, 12, id));
        rc = step_done(q, st, b, what, err);
        if (!rc && sqlite3_changes(q->db) == 0)
            rc = sq_fail_as(q, G3_STORE_NOT_FOUND, err, "conversation %lld not found", (long long)id);
    }
    return finish(q, rc, what, err);
}

static int sq_remove(void *impl, int64_t id, g3_error *err) {
    sq *q = impl;
    char what[64];
    snprintf(what, sizeof what, "deleting conversation %lld", (long long)id);
    sqlite3_stmt *st;
    int rc = prep(q, "DELETE FROM conversations WHERE id = ?", &st, what, err);
    if (rc) return rc;
    rc = step_done(q, st, sqlite3_bind_int64(st, 1, id), what, err); /* the turns and attachments cascade */
    if (!rc && sqlite3_changes(q->db) == 0)
        rc = sq_fail_as(q, G3_STORE_NOT_FOUND, err, "conversation %lld not found", (long long)id);
    return rc;
}

/* ---- turns -------------------------------------------------------------- */

typedef struct conv_state {
    uint32_t n_turns;
    bool last_is_model;
} conv_state;

/* Inside a write transaction: the conversation's turn count and last role. */
static int read_state(sq *q, int64_t conv, conv_state *cs, const char *what, g3_error *err) {
    sqlite3_stmt *st;
    int rc = prep(q, "SELECT (SELECT count(*) FROM turns t WHERE t.conversation_id = c.id), "
                     "(SELECT max(idx) FROM turns t WHERE t.conversation_id = c.id), "
                     "(SELECT role FROM turns t WHERE t.conversation_id = c.id ORDER BY idx DESC LIMIT 1) "
                     "FROM conversations c WHERE c.id = ?", &st, what, err);
    if (rc) return rc;
    int s = step_with_id(st, conv);
    if (s == SQLITE_DONE) rc = sq_fail_as(q, G3_STORE_NOT_FOUND, err, "conversation %lld not found", (long long)conv);
    else if (s != SQLITE_ROW) rc = sq_fail(q, s, err, "%s", what);
    else {
        bool ok = col_u32(st, 0, &cs->n_turns);
        const char *role = (const char *)sqlite3_column_text(st, 2);
        cs->last_is_model = role && strcmp(role, "model") == 0;
        if (ok && cs->n_turns > 0) ok = sqlite3_column_int64(st, 1) == (sqlite3_int64)cs->n_turns - 1 && role;
        if (ok && cs->n_turns > 0) ok = cs->last_is_model == (cs->n_turns % 2 == 0);
        if (!ok) rc = sq_fail_as(q, G3_STORE_CORRUPT, err, "%s: its turns are damaged (not alternating pairs)", what);
    }
    sqlite3_finalize(st);
    return rc;
}

static int insert_user_turn(sq *q, int64_t conv, uint32_t idx, const g3_store_user_msg *u, int64_t now, int64_t *id,
                            const char *what, g3_error *err) {
    sqlite3_stmt *st;
    int rc = prep(q, "INSERT INTO turns (conversation_id, idx, role, text, prompt_text, text_pos, created_at) "
                     "VALUES (?, ?, 'user', ?, ?, ?, ?)", &st, what, err);
    if (rc) return rc;
    int b = SQLITE_OK;
    BIND(sqlite3_bind_int64(st, 1, conv));
    BIND(sqlite3_bind_int64(st, 2, idx));
    BIND(bind_str(st, 3, u->text));
    BIND(bind_str(st, 4, u->prompt_text));
    BIND(sqlite3_bind_int64(st, 5, u->text_pos));
    BIND(sqlite3_bind_int64(st, 6, now));
    rc = step_done(q, st, b, what, err);
    if (!rc) *id = sqlite3_last_insert_rowid(q->db);
    return rc;
}

static int insert_attachments(sq *q, int64_t turn, uint32_t first_ord, const g3_store_user_msg *u, const char *what,
                              g3_error *err) {
    int limit = sqlite3_limit(q->db, SQLITE_LIMIT_LENGTH, -1);
    for (size_t i = 0; i < u->n_attachments; i++) {
        const g3_store_attachment_in *a = &u->attachments[i];
        if (a->size > (size_t)limit)
            return sq_fail_as(q, G3_STORE_INVALID, err,
                              "%s: attachment '%.64s' is %zu bytes; the store holds at most %d", what, a->name,
                              a->size, limit);
        sqlite3_stmt *st;
        int rc = prep(q, "INSERT INTO attachments (turn_id, ord, name, media_type, size, data) "
                         "VALUES (?, ?, ?, ?, ?, ?)", &st, what, err);
        if (rc) return rc;
        int b = SQLITE_OK;
        BIND(sqlite3_bind_int64(st, 1, turn));
        BIND(sqlite3_bind_int64(st, 2, (sqlite3_int64)first_ord + (sqlite3_int64)i));
        BIND(bind_str(st, 3, a->name));
        BIND(bind_str(st, 4, a->media_type));
        BIND(sqlite3_bind_int64(st, 5, (sqlite3_int64)a->size));
        /* a NULL pointer would bind NULL, not an empty blob */
        BIND(a->size ? sqlite3_bind_blob64(st, 6, a->data, a->size, SQLITE_STATIC) : sqlite3_bind_zeroblob(st, 6, 0));
        rc = step_done(q, st, b, what, err);
        if (rc) return rc;
    }
    return G3_STORE_OK;
}

static int insert_answer(sq *q, int64_t conv, uint32_t idx, const g3_store_answer *a, int64_t now, int64_t *id,
                         const char *what, g3_error *err) {
    uint8_t *ids = a->n_ids ? ids_blob(a->ids, a->n_ids) : NULL;
    if (a->n_ids && !ids) return sq_fail_as(q, G3_STORE_ERROR, err, "%s: out of memory", what);
    sqlite3_stmt *st;
    int rc = prep(q, "INSERT INTO turns (conversation_id, idx, role, text, created_at, prompt_tokens, cached_tokens, "
                     "completion_tokens, images_encoded, dropped_turns, queue_s, encode_s, prefill_s, generate_s, "
                     "finish_reason, stopped, model_name, model_n_vocab, model_fingerprint, token_ids) "
                     "VALUES (?, ?, 'model', ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)", &st, what, err);
    if (rc) {
        free(ids);
        return rc;
    }
    size_t len = a->text_len ? a->text_len : strlen(a->text);
    int b = SQLITE_OK;
    BIND(sqlite3_bind_int64(st, 1, conv));
    BIND(sqlite3_bind_int64(st, 2, idx));
    BIND(bind_text(st, 3, a->text, len));
    BIND(sqlite3_bind_int64(st, 4, now));
    BIND(sqlite3_bind_int64(st, 5, a->prompt_tokens));
    BIND(sqlite3_bind_int64(st, 6, a->cached_tokens));
    BIND(sqlite3_bind_int64(st, 7, a->completion_tokens));
    BIND(sqlite3_bind_int64(st, 8, a->images_encoded));
    BIND(sqlite3_bind_int64(st, 9, a->dropped_turns));
    BIND(sqlite3_bind_double(st, 10, a->queue_s));
    BIND(sqlite3_bind_double(st, 11, a->encode_s));
    BIND(sqlite3_bind_double(st, 12, a->prefill_s));
    BIND(sqlite3_bind_double(st, 13, a->generate_s));
    BIND(bind_str(st, 14, a->finish_reason));
    BIND(sqlite3_bind_int(st, 15, a->stopped));
    if (a->model) {
        BIND(bind_str(st, 16, a->model->name));
        BIND(sqlite3_bind_int64(st, 17, a->model->n_vocab));
        BIND(sqlite3_bind_int64(st, 18, (sqlite3_int64)a->model->vocab_fingerprint));
    }
    if (ids) BIND(sqlite3_bind_blob64(st, 19, ids, (sqlite3_uint64)a->n_ids * 4, SQLITE_STATIC));
    rc = step_done(q, st, b, what, err);
    free(ids);
    if (!rc) *id = sqlite3_last_insert_rowid(q->db);
    return rc;
}

/* updated_at, and the automatic title when the first user turn changed. */
static int touch(sq *q, int64_t conv, const char *auto_title, int64_t now, const char *what, g3_error *err) {
    sqlite3_stmt *st;
    int rc = prep(q, "UPDATE conversations SET updated_at = ?1, "
                     "title = CASE WHEN title_auto = 1 AND ?2 IS NOT NULL THEN ?2 ELSE title END WHERE id = ?3",
                  &st, what, err);
    if (rc) return rc;
    int b = SQLITE_OK;
    BIND(sqlite3_bind_int64(st, 1, now));
    BIND(bind_str(st, 2, auto_title));
    BIND(sqlite3_bind_int64(st, 3, conv));
    return step_done(q, st, b, what, err);
}

static int sq_append(void *impl, int64_t conv, const g3_store_user_msg *u, const g3_store_answer *a, int64_t now,
                     int64_t *user_id, int64_t *answer_id, g3_error *err) {
    sq *q = impl;
    char what[64], title[G3_STORE_TITLE_BYTES];
    snprintf(what, sizeof what, "appending to conversation %lld", (long long)conv);
    int rc = begin_write(q, what, err);
    if (rc) return rc;
    conv_state cs;
    rc = read_state(q, conv, &cs, what, err);
    if (!rc && cs.n_turns % 2)
        rc = sq_fail_as(q, G3_STORE_CONFLICT, err, "%s: its last turn has no answer", what);
    if (!rc && cs.n_turns > UINT32_MAX - 2) rc = sq_fail_as(q, G3_STORE_INVALID, err, "%s: too many turns", what);
    if (!rc) rc = insert_user_turn(q, conv, cs.n_turns, u, now, user_id, what, err);
    if (!rc) rc = insert_attachments(q, *user_id, 0, u, what, err);
    if (!rc) rc = insert_answer(q, conv, cs.n_turns + 1, a, now, answer_id, what, err);
    if (!rc && cs.n_turns == 0)
        g3_store_title_for(u->text, u->n_attachments ? u->attachments[0].name : NULL, title, sizeof title);
    if (!rc) rc = touch(q, conv, cs.n_turns == 0 ? title : NULL, now, what, err);
    return finish(q, rc, what, err);
}

static int delete_turn(sq *q, int64_t conv, uint32_t idx, const char *what, g3_error *err) {
    sqlite3_stmt *st;
    int rc = prep(q, "DELETE FROM turns WHERE conversation_id = ? AND idx = ?", &st, what, err);
    if (rc) return rc;
    int b = SQLITE_OK;
    BIND(sqlite3_bind_int64(st, 1, conv));
    BIND(sqlite3_bind_int64(st, 2, idx));
    return step_done(q, st, b, what, err);
}

static int sq_replace_answer(void *impl, int64_t conv, const g3_store_answer *a, int64_t now, int64_t *answer_id,
                             g3_error *err) {
    sq *q = impl;
    char what[80];
    snprintf(what, sizeof what, "replacing the answer in conversation %lld", (long long)conv);
    int rc = begin_write(q, what, err);
    if (rc) return rc;
    conv_state cs;
    rc = read_state(q, conv, &cs, what, err);
    if (!rc && !cs.last_is_model) rc = sq_fail_as(q, G3_STORE_CONFLICT, err, "%s: it has no answer to replace", what);
    if (!rc) rc = delete_turn(q, conv, cs.n_turns - 1, what, err);
    if (!rc) rc = insert_answer(q, conv, cs.n_turns - 1, a, now, answer_id, what, err);
    if (!rc) rc = touch(q, conv, NULL, now, what, err);
    return finish(q, rc, what, err);
}

/* The kept and new attachments of the edited user turn: text_pos within
 * their images and videos, and not an empty message. */
static int check_edited(sq *q, int64_t turn, const g3_store_user_msg *u, const char *what, g3_error *err) {
    int64_t n_all, n_images;
    char sql[192];
    snprintf(sql, sizeof sql, "SELECT count(*) FROM attachments WHERE turn_id = %lld", (long long)turn);
    int rc = read_int(q, sql, &n_all, what, err);
    snprintf(sql, sizeof sql, "SELECT count(*) FROM attachments WHERE turn_id = %lld AND (media_type LIKE 'image/%%' "
             "OR media_type LIKE 'video/%%')", (long long)turn);
    if (!rc) rc = read_int(q, sql, &n_images, what, err);
    if (!rc && !u->text[0] && n_all == 0)
        rc = sq_fail_as(q, G3_STORE_INVALID, err, "%s: the message is empty (no text and no attachment)", what);
    if (!rc && u->text_pos > n_images)
        rc = sq_fail_as(q, G3_STORE_INVALID, err, "%s: text_pos %u is past the message's %lld image(s) and video(s)",
                        what, u->text_pos, (long long)n_images);
    return rc;
}

static int sq_replace_last_pair(void *impl, int64_t conv, const g3_store_user_msg *u, bool keep_attachments,
                                const g3_store_answer *a, int64_t now, int64_t *answer_id, g3_error *err) {
    sq *q = impl;
    char what[80], sql[160], title[G3_STORE_TITLE_BYTES];
    snprintf(what, sizeof what, "editing the last message of conversation %lld", (long long)conv);
    int rc = begin_write(q, what, err);
    if (rc) return rc;
    conv_state cs;
    rc = read_state(q, conv, &cs, what, err);
    if (!rc && !cs.last_is_model) rc = sq_fail_as(q, G3_STORE_CONFLICT, err, "%s: it has no message to edit", what);
    uint32_t uidx = cs.n_turns - 2;
    int64_t turn = 0, next_ord = 0;
    if (!rc) {
        snprintf(sql, sizeof sql, "SELECT id FROM turns WHERE conversation_id = %lld AND idx = %u", (long long)conv,
                 uidx);
        rc = read_int(q, sql, &turn, what, err);
    }
    if (!rc && !keep_attachments) {
        snprintf(sql, sizeof sql, "DELETE FROM attachments WHERE turn_id = %lld", (long long)turn);
        rc = run(q, sql, what, err);
    }
    if (!rc) {
        snprintf(sql, sizeof sql, "SELECT coalesce(max(ord) + 1, 0) FROM attachments WHERE turn_id = %lld",
                 (long long)turn);
        rc = read_int(q, sql, &next_ord, what, err);
    }
    if (!rc && (uint64_t)next_ord + u->n_attachments > UINT32_MAX)
        rc = sq_fail_as(q, G3_STORE_INVALID, err, "%s: too many attachments", what);
    if (!rc) rc = insert_attachments(q, turn, (uint32_t)next_ord, u, what, err);
    if (!rc) rc = check_edited(q, turn, u, what, err);
    sqlite3_stmt *st = NULL;
    if (!rc) rc = prep(q, "UPDATE turns SET text = ?, prompt_text = ?, text_pos = ?, created_at = ? WHERE id = ?", &st,
                       what, err);
    if (!rc) {
        int b = SQLITE_OK;
        BIND(bind_str(st, 1, u->text));
        BIND(bind_str(st, 2, u->prompt_text));
        BIND(sqlite3_bind_int64(st, 3, u->text_pos));
        BIND(sqlite3_bind_int64(st, 4, now));
        BIND(sqlite3_bind_int64(st, 5, turn));
        rc = step_done(q, st, b, what, err);
    }
    if (!rc) rc = delete_turn(q, conv, uidx + 1, what, err);
    if (!rc) rc = insert_answer(q, conv, uidx + 1, a, now, answer_id, what, err);
    if (!rc && uidx == 0) rc = first_turn_title(q, conv, title, sizeof title, what, err);
    if (!rc) rc = touch(q, conv, uidx == 0 ? title : NULL, now, what, err);
    return finish(q, rc, what, err);
}

static int sq_attachment_get(void *impl, int64_t id, g3_store_attachment *out, g3_error *err) {
    sq *q = impl;
    char what[64];
    snprintf(what, sizeof what, "reading attachment %lld", (long long)id);
    sqlite3_stmt *st;
    int rc = prep(q, "SELECT id, turn_id, ord, name, media_type, size, data FROM attachments WHERE id = ?", &st, what,
                  err);
    if (rc) return rc;
    int s = step_with_id(st, id);
    if (s == SQLITE_DONE) rc = sq_fail_as(q, G3_STORE_NOT_FOUND, err, "attachment %lld not found", (long long)id);
    else if (s != SQLITE_ROW) rc = sq_fail(q, s, err, "%s", what);
    else {
        bool oom = false;
        out->id = sqlite3_column_int64(st, 0);
        out->turn_id = sqlite3_column_int64(st, 1);
        sqlite3_int64 size = sqlite3_column_int64(st, 5);
        bool ok = col_u32(st, 2, &out->ord) && size >= 0;
        out->name = col_str(st, 3, false, &oom);
        out->media_type = col_str(st, 4, false, &oom);
        const void *data = sqlite3_column_blob(st, 6);
        size_t n = (size_t)sqlite3_column_bytes(st, 6);
        if (sqlite3_errcode(q->db) == SQLITE_NOMEM) oom = true;
        ok = ok && (uint64_t)size == n;
        out->size = n;
        out->data = ok ? malloc(n ? n : 1) : NULL;
        if (ok && !out->data) oom = true;
        if (out->data && n) memcpy(out->data, data, n);
        if (oom) rc = sq_fail_as(q, G3_STORE_ERROR, err, "%s: out of memory", what);
        else if (!ok) rc = sq_fail_as(q, G3_STORE_CORRUPT, err, "%s: the stored row is damaged (size)", what);
    }
    sqlite3_finalize(st);
    if (rc) g3_store_attachment_free(out);
    return rc;
}

const g3_store_backend g3_store_sqlite_backend = {
    .name = "sqlite",
    .open = sq_open,
    .close = sq_close,
    .check = sq_check,
    .create = sq_create,
    .get = sq_get,
    .list = sq_list,
    .update = sq_update,
    .remove = sq_remove,
    .append = sq_append,
    .replace_answer = sq_replace_answer,
    .replace_last_pair = sq_replace_last_pair,
    .attachment_get = sq_attachment_get,
};
