/* test_store: the conversation store (gemma3_store.h) on SQLite.
 *
 * Round trips (create/get/list/search/update/delete), attachments' bytes,
 * cascade deletes counted in the file itself, regenerate and edit, the
 * conversation rebuilt for the engine, exports; the schema's versions
 * (an empty file, a hand-made version-1 file, an upgrade with data, a
 * failing upgrade rolled back, newer and foreign files refused unchanged);
 * files that cannot be used (read-only, locked, not a database, damaged);
 * a full disk; and processes killed in the middle of a turn pair. Every
 * check reopens the file or reads it with a separate SQLite connection. */
#include <cjson/cJSON.h>
#include <errno.h>
#include <fcntl.h>
#include <math.h>
#include <pthread.h>
#include <setjmp.h>
#include <signal.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cmocka.h>
#include <sqlite3.h>

#include "chat/store_backend.h"
#include "gemma3_store.h"
#include "test_util.h"
#include "video_clip.h"

/* ---- helpers ------------------------------------------------------------ */

static const g3_model_record k_model = {.name = "Test model", .n_vocab = 1000,
                                        .vocab_fingerprint = 0xfedcba9876543210ull};

/* A fresh path under the test folder (the file and its -wal/-shm removed). */
static const char *fresh(const char *name) {
    static char path[4][512];
    static int next;
    char *p = path[next++ % 4];
    snprintf(p, sizeof path[0], "%s/store-%s.db", G3_TEST_TMP, name);
    char side[600];
    unlink(p);
    snprintf(side, sizeof side, "%s-wal", p);
    unlink(side);
    snprintf(side, sizeof side, "%s-shm", p);
    unlink(side);
    return p;
}

static g3_store *open_ok(const char *path) {
    g3_store *s = NULL;
    g3_error err;
    int rc = g3_store_open(path, NULL, &s, &err);
    if (rc) fail_msg("open %s: %s", path, err.msg);
    return s;
}

/* A clock for ordering tests: each call one second later (or fixed). */
typedef struct test_clock {
    int64_t t;
    int64_t step;
} test_clock;
static int64_t tick(void *user) {
    test_clock *c = user;
    c->t += c->step;
    return c->t;
}

/* One integer from a query on a separate, plain SQLite connection. */
static int64_t query_int(const char *path, const char *sql) {
    sqlite3 *db;
    if (sqlite3_open_v2(path, &db, SQLITE_OPEN_READONLY, NULL) != SQLITE_OK) fail_msg("raw open %s", path);
    sqlite3_stmt *st;
    if (sqlite3_prepare_v2(db, sql, -1, &st, NULL) != SQLITE_OK) fail_msg("%s: %s", sql, sqlite3_errmsg(db));
    int64_t v = -1;
    if (sqlite3_step(st) == SQLITE_ROW) v = sqlite3_column_int64(st, 0);
    sqlite3_finalize(st);
    sqlite3_close(db);
    return v;
}

static void exec_raw(const char *path, const char *sql) {
    sqlite3 *db;
    if (sqlite3_open(path, &db) != SQLITE_OK) fail_msg("raw open %s", path);
    char *msg = NULL;
    if (sqlite3_exec(db, sql, NULL, NULL, &msg) != SQLITE_OK) fail_msg("%s: %s", sql, msg);
    sqlite3_close(db);
}

static void integrity_ok(const char *path) {
    sqlite3 *db;
    assert_int_equal(sqlite3_open_v2(path, &db, SQLITE_OPEN_READONLY, NULL), SQLITE_OK);
    sqlite3_stmt *st;
    assert_int_equal(sqlite3_prepare_v2(db, "PRAGMA integrity_check", -1, &st, NULL), SQLITE_OK);
    assert_int_equal(sqlite3_step(st), SQLITE_ROW);
    assert_string_equal((const char *)sqlite3_column_text(st, 0), "ok");
    sqlite3_finalize(st);
    sqlite3_close(db);
}

static void expect_msg(const char *msg, const char *part) {
    if (!strstr(msg, part)) fail_msg("'%s' lacks '%s'", msg, part);
}

/* An answer to store. */
static g3_store_answer answer(const char *text) {
    static const int32_t ids[] = {7, 8, 999, 0};
    return (g3_store_answer){.text = text, .ids = ids, .n_ids = 4, .prompt_tokens = 31, .cached_tokens = 12,
                             .completion_tokens = 4, .images_encoded = 1, .queue_s = 0.01, .encode_s = 0.5,
                             .prefill_s = 0.25, .generate_s = 1.5, .finish_reason = "end_of_turn",
                             .model = &k_model};
}

static int64_t add_pair(g3_store *s, int64_t conv, const char *q, const char *a) {
    g3_store_user_msg u = {.text = q};
    g3_store_answer ans = answer(a);
    g3_error err;
    int64_t uid = 0, aid = 0;
    int rc = g3_store_append(s, conv, &u, &ans, &uid, &aid, &err);
    if (rc) fail_msg("append: %s", err.msg);
    assert_true(aid > uid);
    return aid;
}

static uint8_t *pattern_bytes(size_t n, uint64_t seed) {
    uint8_t *b = malloc(n ? n : 1);
    assert_non_null(b);
    for (size_t i = 0; i < n; i++) {
        seed ^= seed << 13, seed ^= seed >> 7, seed ^= seed << 17;
        b[i] = (uint8_t)seed;
    }
    return b;
}

static int64_t create_conv(g3_store *s, const char *title) {
    g3_store_conv_fields f = {.title = title};
    int64_t id;
    g3_error err;
    if (g3_store_create(s, &f, &id, &err)) fail_msg("create: %s", err.msg);
    return id;
}

/* ---- round trips -------------------------------------------------------- */

static void test_round_trip(void **state) {
    const char *path = fresh("round");
    g3_store *s = open_ok(path);
    g3_error err;
    g3_store_settings st = {.max_tokens = 1200, .temperature = 0.3f, .top_p = 0.85f, .top_k = 20,
                            .repetition_penalty = 1.25f, .max_images = 3};
    g3_store_conv_fields f = {.preset = "document", .system = "Be brief.\nCite pages.", .settings = &st};
    int64_t id;
    assert_int_equal(g3_store_create(s, &f, &id, &err), 0);
    assert_true(id > 0);

    static const char png[] = "\x89PNG\r\n\x1a\n\0\0\0\rIHDR";
    const char *doc = "%PDF-1.4 ...";
    g3_store_attachment_in atts[] = {
        {.name = "cat picture.png", .media_type = "image/png", .data = (const uint8_t *)png, .size = sizeof png},
        {.name = "paper.pdf", .media_type = "application/pdf", .data = (const uint8_t *)doc, .size = strlen(doc)},
    };
    const char *typed = "Héllo — what's in these? \xF0\x9F\x98\x80\nSecond line";
    g3_store_user_msg u = {.text = typed, .prompt_text = "Page 1:\nAbstract...\n\nHéllo", .text_pos = 1,
                           .attachments = atts, .n_attachments = 2};
    g3_store_answer a = answer("A cat, and a paper about cats.");
    int64_t uid, aid;
    assert_int_equal(g3_store_append(s, id, &u, &a, &uid, &aid, &err), 0);
    g3_store_close(s);

    s = open_ok(path); /* everything below comes back from the file */
    g3_store_conv c;
    assert_int_equal(g3_store_get(s, id, &c, &err), 0);
    assert_int_equal(c.id, id);
    assert_string_equal(c.title, "Héllo — what's in these? \xF0\x9F\x98\x80"); /* first line */
    assert_true(c.title_auto);
    assert_string_equal(c.preset, "document");
    assert_string_equal(c.system, "Be brief.\nCite pages.");
    assert_int_equal(c.settings.max_tokens, 1200);
    assert_true(c.settings.temperature == 0.3f && c.settings.top_p == 0.85f);
    assert_int_equal(c.settings.top_k, 20);
    assert_true(c.settings.repetition_penalty == 1.25f);
    assert_int_equal(c.settings.max_images, 3);
    assert_true(c.created_at > 0 && c.updated_at >= c.created_at);
    assert_int_equal(c.n_turns, 2);
    const g3_store_turn *tu = &c.turns[0], *ta = &c.turns[1];
    assert_int_equal(tu->id, uid);
    assert_int_equal(tu->role, G3_ROLE_USER);
    assert_string_equal(tu->text, typed);
    assert_string_equal(tu->prompt_text, "Page 1:\nAbstract...\n\nHéllo");
    assert_int_equal(tu->text_pos, 1);
    assert_int_equal(tu->n_attachments, 2);
    assert_string_equal(tu->attachments[0].name, "cat picture.png");
    assert_string_equal(tu->attachments[0].media_type, "image/png");
    assert_int_equal(tu->attachments[0].size, sizeof png);
    assert_null(tu->attachments[0].data); /* metadata only */
    assert_string_equal(tu->attachments[1].name, "paper.pdf");
    assert_int_equal(tu->attachments[1].ord, 1);
    assert_int_equal(ta->id, aid);
    assert_int_equal(ta->role, G3_ROLE_MODEL);
    assert_string_equal(ta->text, "A cat, and a paper about cats.");
    assert_null(ta->prompt_text);
    assert_int_equal(ta->prompt_tokens, 31);
    assert_int_equal(ta->cached_tokens, 12);
    assert_int_equal(ta->completion_tokens, 4);
    assert_int_equal(ta->images_encoded, 1);
    assert_true(ta->encode_s == 0.5 && ta->prefill_s == 0.25 && ta->generate_s == 1.5 && ta->queue_s == 0.01);
    assert_string_equal(ta->finish_reason, "end_of_turn");
    assert_false(ta->stopped);
    assert_int_equal(ta->n_ids, 4);
    assert_int_equal(ta->ids[2], 999);
    assert_string_equal(ta->model.name, "Test model");
    assert_int_equal(ta->model.n_vocab, 1000);
    assert_true(ta->model.vocab_fingerprint == 0xfedcba9876543210ull);

    g3_store_attachment att;
    assert_int_equal(g3_store_attachment_get(s, tu->attachments[0].id, &att, &err), 0);
    assert_int_equal(att.size, sizeof png);
    assert_memory_equal(att.data, png, sizeof png);
    assert_string_equal(att.media_type, "image/png");
    assert_int_equal(att.turn_id, uid);
    g3_store_attachment_free(&att);
    g3_store_conv_free(&c);

    /* update: each field, then the title back to the automatic one */
    g3_store_settings st2 = g3_store_settings_defaults();
    g3_store_conv_fields up = {.title = "My title", .system = "", .settings = &st2};
    assert_int_equal(g3_store_update(s, id, &up, &err), 0);
    assert_int_equal(g3_store_get(s, id, &c, &err), 0);
    assert_string_equal(c.title, "My title");
    assert_false(c.title_auto);
    assert_string_equal(c.preset, "document"); /* NULL: unchanged */
    assert_string_equal(c.system, "");
    assert_int_equal(c.settings.max_tokens, 700);
    assert_true(c.settings.temperature == 0.7f);
    g3_store_conv_free(&c);
    up = (g3_store_conv_fields){.title = "", .preset = "tutor"};
    assert_int_equal(g3_store_update(s, id, &up, &err), 0);
    assert_int_equal(g3_store_get(s, id, &c, &err), 0);
    assert_string_equal(c.title, "Héllo — what's in these? \xF0\x9F\x98\x80");
    assert_true(c.title_auto);
    assert_string_equal(c.preset, "tutor");
    g3_store_conv_free(&c);
    assert_int_equal(g3_store_check(s, &err), 0);

    /* delete cascades to the turns and attachments */
    assert_int_equal(query_int(path, "SELECT count(*) FROM attachments"), 2);
    assert_int_equal(g3_store_delete(s, id, &err), 0);
    assert_int_equal(g3_store_get(s, id, &c, &err), G3_STORE_NOT_FOUND);
    expect_msg(err.msg, "not found");
    assert_int_equal(g3_store_delete(s, id, &err), G3_STORE_NOT_FOUND);
    assert_int_equal(query_int(path, "SELECT count(*) FROM turns"), 0);
    assert_int_equal(query_int(path, "SELECT count(*) FROM attachments"), 0);
    assert_int_equal(query_int(path, "SELECT count(*) FROM conversations"), 0);
    /* ids are not reused after a delete */
    int64_t id2 = create_conv(s, NULL);
    assert_true(id2 > id);
    g3_store_close(s);
    integrity_ok(path);
    assert_int_equal(query_int(path, "PRAGMA user_version"), G3_STORE_SCHEMA_VERSION);
    assert_int_equal(query_int(path, "PRAGMA application_id"), G3_STORE_APPLICATION_ID);
    assert_int_equal(query_int(path, "SELECT count(*) FROM pragma_journal_mode WHERE journal_mode = 'wal'"), 1);
}

/* Bytes of every value, a large file and an empty one come back exact
 * after a restart. */
static void test_attachment_bytes(void **state) {
    const char *path = fresh("bytes");
    g3_store *s = open_ok(path);
    g3_error err;
    int64_t id = create_conv(s, "files");
    size_t big_n = 3u << 20;
    uint8_t *big = pattern_bytes(big_n, 42), all[256];
    for (int i = 0; i < 256; i++) all[i] = (uint8_t)i;
    g3_store_attachment_in atts[] = {
        {.name = "big.bin", .media_type = "application/octet-stream", .data = big, .size = big_n},
        {.name = "all.bin", .media_type = "application/octet-stream", .data = all, .size = sizeof all},
        {.name = "empty.txt", .media_type = "text/plain", .data = NULL, .size = 0},
    };
    g3_store_user_msg u = {.text = "", .attachments = atts, .n_attachments = 3};
    g3_store_answer a = answer("ok");
    assert_int_equal(g3_store_append(s, id, &u, &a, NULL, NULL, &err), 0);
    g3_store_close(s);
    s = open_ok(path);
    g3_store_conv c;
    assert_int_equal(g3_store_get(s, id, &c, &err), 0);
    assert_string_equal(c.title, "files"); /* set by hand: not replaced by the first message */
    assert_int_equal(c.turns[0].n_attachments, 3);
    for (size_t i = 0; i < 3; i++) {
        g3_store_attachment got;
        assert_int_equal(g3_store_attachment_get(s, c.turns[0].attachments[i].id, &got, &err), 0);
        assert_int_equal(got.size, atts[i].size);
        if (atts[i].size) assert_memory_equal(got.data, atts[i].data, atts[i].size);
        assert_non_null(got.data);
        assert_string_equal(got.name, atts[i].name);
        g3_store_attachment_free(&got);
    }
    g3_store_attachment none;
    assert_int_equal(g3_store_attachment_get(s, 424242, &none, &err), G3_STORE_NOT_FOUND);
    expect_msg(err.msg, "attachment 424242 not found");
    g3_store_conv_free(&c);
    /* an image-only first message names the conversation after its file */
    int64_t id2 = create_conv(s, NULL);
    g3_store_attachment_in img = {.name = "sunset.jpg", .media_type = "image/jpeg", .data = all, .size = 16};
    u = (g3_store_user_msg){.text = "", .attachments = &img, .n_attachments = 1};
    assert_int_equal(g3_store_append(s, id2, &u, &a, NULL, NULL, &err), 0);
    assert_int_equal(g3_store_get(s, id2, &c, &err), 0);
    assert_string_equal(c.title, "sunset.jpg");
    g3_store_conv_free(&c);
    g3_store_close(s);
    free(big);
    integrity_ok(path);
}

static void test_list_search_paging(void **state) {
    const char *path = fresh("list");
    test_clock clk = {.t = 1700000000000, .step = 1000};
    g3_store_options o = {.now_ms = tick, .now_user = &clk};
    g3_store *s;
    g3_error err;
    assert_int_equal(g3_store_open(path, &o, &s, &err), 0);
    const char *titles[] = {"Plain talk", "50% off", "a_b", "back\\slash", "Percent free", "ab"};
    int64_t ids[6];
    for (int i = 0; i < 6; i++) ids[i] = create_conv(s, titles[i]);

    g3_store_list l;
    assert_int_equal(g3_store_list_convs(s, NULL, &l, &err), 0);
    assert_int_equal(l.n, 6);
    for (int i = 0; i < 6; i++) assert_int_equal(l.items[i].id, ids[5 - i]); /* newest first */
    assert_null(l.items[0].turns);
    g3_store_list_free(&l);

    /* LIKE's wildcards are literal in q; ASCII case does not matter */
    struct { const char *q; size_t n; int64_t first; } cases[] = {
        {"%", 1, ids[1]}, {"_", 1, ids[2]}, {"\\", 1, ids[3]}, {"PLAIN", 1, ids[0]}, {"a", 4, ids[5]}, {"zzz", 0, 0},
    };
    for (size_t k = 0; k < sizeof cases / sizeof cases[0]; k++) {
        g3_store_list_params p = {.q = cases[k].q};
        assert_int_equal(g3_store_list_convs(s, &p, &l, &err), 0);
        if (l.n != cases[k].n) fail_msg("q '%s': %zu results, expected %zu", cases[k].q, l.n, cases[k].n);
        if (l.n) assert_int_equal(l.items[0].id, cases[k].first);
        g3_store_list_free(&l);
    }

    /* a new turn moves a conversation to the top, with its turn count */
    add_pair(s, ids[0], "hi", "hello");
    assert_int_equal(g3_store_list_convs(s, NULL, &l, &err), 0);
    assert_int_equal(l.items[0].id, ids[0]);
    assert_int_equal(l.items[0].n_turns, 2);
    assert_string_equal(l.items[0].title, "Plain talk");
    g3_store_list_free(&l);

    /* pages of 2 with the cursor; three conversations share an updated_at,
     * and a page ends between two of them */
    clk.step = 0;
    int64_t tie1 = create_conv(s, "tie one"), tie2 = create_conv(s, "tie two"), tie3 = create_conv(s, "tie three");
    int64_t seen[16];
    size_t n_seen = 0;
    g3_store_list_params p = {.limit = 2};
    for (int page = 0; page < 8; page++) {
        assert_int_equal(g3_store_list_convs(s, &p, &l, &err), 0);
        for (size_t i = 0; i < l.n; i++) seen[n_seen++] = l.items[i].id;
        if (l.n) {
            p.before_updated_at = l.items[l.n - 1].updated_at;
            p.before_id = l.items[l.n - 1].id;
        }
        size_t n = l.n;
        g3_store_list_free(&l);
        if (n < 2) break;
    }
    assert_int_equal(n_seen, 9);
    assert_int_equal(seen[0], tie3);
    assert_int_equal(seen[1], tie2);
    assert_int_equal(seen[2], tie1);
    assert_int_equal(seen[3], ids[0]);
    for (size_t i = 0; i < n_seen; i++)
        for (size_t j = i + 1; j < n_seen; j++) assert_true(seen[i] != seen[j]);
    g3_store_close(s);
}

static void test_default_title(void **state) {
    char t[256];
    g3_store_default_title("Hello there", 60, t, sizeof t);
    assert_string_equal(t, "Hello there");
    g3_store_default_title("\n  \n\t  What is RoPE?  \nMore", 60, t, sizeof t);
    assert_string_equal(t, "What is RoPE?");
    g3_store_default_title("Explain the difference between sliding window attention and global attention in Gemma",
                           60, t, sizeof t);
    assert_string_equal(t, "Explain the difference between sliding window attention...");
    assert_true(strlen(t) <= 60);
    g3_store_default_title("Supercalifragilisticexpialidocious-and-more-and-more-and-more-and-more", 20, t, sizeof t);
    assert_string_equal(t, "Supercalifragilis...");
    /* 100 two-byte characters: cut at 57 characters, no split sequence */
    char e[201];
    for (int i = 0; i < 100; i++) memcpy(e + 2 * i, "\xC3\xA9", 2);
    e[200] = 0;
    g3_store_default_title(e, 60, t, sizeof t);
    assert_int_equal(strlen(t), 57 * 2 + 3);
    assert_string_equal(t + 114, "...");
    g3_store_default_title(e, 60, t, 8); /* a small buffer never splits a character */
    assert_string_equal(t, "\xC3\xA9\xC3\xA9...");
    g3_store_default_title(e, 60, t, 4);
    assert_string_equal(t, "\xC3\xA9");
    g3_store_default_title("", 60, t, sizeof t);
    assert_string_equal(t, "");
    g3_store_default_title("  \n \n", 60, t, sizeof t);
    assert_string_equal(t, "");
}

/* $XDG_DATA_HOME/gemma-chat/chats.db, else under $HOME/.local/share; the
 * folder is made (0700); a relative XDG_DATA_HOME is ignored (XDG spec). */
static void test_default_path(void **state) {
    char *old_xdg = getenv("XDG_DATA_HOME") ? strdup(getenv("XDG_DATA_HOME")) : NULL;
    char *old_home = getenv("HOME") ? strdup(getenv("HOME")) : NULL;
    free(tu_run("rm -rf " G3_TEST_TMP "/store-xdg " G3_TEST_TMP "/store-home", NULL));
    assert_int_equal(mkdir(G3_TEST_TMP "/store-xdg", 0755), 0);
    assert_int_equal(mkdir(G3_TEST_TMP "/store-home", 0755), 0);
    char path[4096];
    g3_error err;
    setenv("XDG_DATA_HOME", G3_TEST_TMP "/store-xdg", 1);
    assert_int_equal(g3_store_default_path(path, sizeof path, &err), 0);
    assert_string_equal(path, G3_TEST_TMP "/store-xdg/gemma-chat/chats.db");
    struct stat sb;
    assert_int_equal(stat(G3_TEST_TMP "/store-xdg/gemma-chat", &sb), 0);
    assert_int_equal(sb.st_mode & 0777, 0700);
    g3_store *s = open_ok(path);
    g3_store_close(s);
    setenv("XDG_DATA_HOME", "relative/dir", 1);
    setenv("HOME", G3_TEST_TMP "/store-home", 1);
    assert_int_equal(g3_store_default_path(path, sizeof path, &err), 0);
    assert_string_equal(path, G3_TEST_TMP "/store-home/.local/share/gemma-chat/chats.db");
    assert_int_equal(stat(G3_TEST_TMP "/store-home/.local/share/gemma-chat", &sb), 0);
    /* an XDG_DATA_HOME that does not exist yet is made, folder by folder */
    setenv("XDG_DATA_HOME", G3_TEST_TMP "/store-xdg/not/yet", 1);
    assert_int_equal(g3_store_default_path(path, sizeof path, &err), 0);
    assert_string_equal(path, G3_TEST_TMP "/store-xdg/not/yet/gemma-chat/chats.db");
    assert_int_equal(stat(G3_TEST_TMP "/store-xdg/not/yet/gemma-chat", &sb), 0);
    assert_int_equal(g3_store_default_path(path, 10, &err), G3_STORE_ERROR);
    expect_msg(err.msg, "too long");
    if (old_xdg) setenv("XDG_DATA_HOME", old_xdg, 1);
    else unsetenv("XDG_DATA_HOME");
    if (old_home) setenv("HOME", old_home, 1);
    free(old_xdg);
    free(old_home);
}

static void test_regenerate_and_edit(void **state) {
    const char *path = fresh("edit");
    g3_store *s = open_ok(path);
    g3_error err;
    int64_t id = create_conv(s, NULL);
    g3_store_answer a = answer("x");
    int64_t aid;
    assert_int_equal(g3_store_replace_answer(s, id, &a, &aid, &err), G3_STORE_CONFLICT);
    expect_msg(err.msg, "no answer to replace");
    g3_store_user_msg u0 = {.text = "x"};
    assert_int_equal(g3_store_replace_last_pair(s, id, &u0, false, &a, &aid, &err), G3_STORE_CONFLICT);

    uint8_t img[32];
    memset(img, 7, sizeof img);
    g3_store_attachment_in atts[] = {{.name = "one.png", .media_type = "image/png", .data = img, .size = 32}};
    g3_store_user_msg u = {.text = "First question", .attachments = atts, .n_attachments = 1};
    assert_int_equal(g3_store_append(s, id, &u, &a, NULL, &aid, &err), 0);
    int64_t old_aid = aid;

    /* regenerate: a new answer (new id), the question and its image stay */
    g3_store_answer a2 = answer("better answer");
    a2.stopped = true;
    a2.finish_reason = "cancelled";
    assert_int_equal(g3_store_replace_answer(s, id, &a2, &aid, &err), 0);
    assert_true(aid != old_aid);
    g3_store_conv c;
    assert_int_equal(g3_store_get(s, id, &c, &err), 0);
    assert_int_equal(c.n_turns, 2);
    assert_string_equal(c.turns[1].text, "better answer");
    assert_true(c.turns[1].stopped);
    assert_string_equal(c.turns[1].finish_reason, "cancelled");
    assert_int_equal(c.turns[0].n_attachments, 1);
    assert_string_equal(c.title, "First question");
    int64_t user_id = c.turns[0].id;
    g3_store_conv_free(&c);

    /* edit keeping the image, adding a second: the title follows the edited first message */
    g3_store_attachment_in more[] = {{.name = "two.png", .media_type = "image/png", .data = img, .size = 16}};
    g3_store_user_msg e = {.text = "Edited question", .text_pos = 2, .attachments = more, .n_attachments = 1};
    g3_store_answer a3 = answer("edited answer");
    assert_int_equal(g3_store_replace_last_pair(s, id, &e, true, &a3, &aid, &err), 0);
    assert_int_equal(g3_store_get(s, id, &c, &err), 0);
    assert_int_equal(c.n_turns, 2);
    assert_int_equal(c.turns[0].id, user_id);
    assert_string_equal(c.turns[0].text, "Edited question");
    assert_int_equal(c.turns[0].n_attachments, 2);
    assert_string_equal(c.turns[0].attachments[0].name, "one.png");
    assert_string_equal(c.turns[0].attachments[1].name, "two.png");
    assert_string_equal(c.turns[1].text, "edited answer");
    assert_false(c.turns[1].stopped);
    assert_string_equal(c.title, "Edited question");
    g3_store_conv_free(&c);

    /* a refused edit (text_pos past the images) changes nothing */
    e = (g3_store_user_msg){.text = "bad", .text_pos = 5};
    assert_int_equal(g3_store_replace_last_pair(s, id, &e, true, &a3, &aid, &err), G3_STORE_INVALID);
    expect_msg(err.msg, "text_pos 5");
    assert_int_equal(g3_store_get(s, id, &c, &err), 0);
    assert_string_equal(c.turns[0].text, "Edited question");
    assert_int_equal(c.turns[0].n_attachments, 2);
    g3_store_conv_free(&c);

    /* edit dropping the attachments; a second pair's edit leaves the title */
    e = (g3_store_user_msg){.text = "Plain question"};
    assert_int_equal(g3_store_replace_last_pair(s, id, &e, false, &a3, &aid, &err), 0);
    assert_int_equal(query_int(path, "SELECT count(*) FROM attachments"), 0);
    add_pair(s, id, "Second", "second answer");
    e = (g3_store_user_msg){.text = "Second, edited"};
    assert_int_equal(g3_store_replace_last_pair(s, id, &e, false, &a3, &aid, &err), 0);
    assert_int_equal(g3_store_get(s, id, &c, &err), 0);
    assert_int_equal(c.n_turns, 4);
    assert_string_equal(c.title, "Plain question");
    assert_string_equal(c.turns[2].text, "Second, edited");
    g3_store_conv_free(&c);
    assert_int_equal(query_int(path, "SELECT count(*) FROM turns"), 4);
    g3_store_close(s);
    integrity_ok(path);
}

/* The conversation the engine gets back: system prompt, images as parts
 * with their bytes in their place, the documents' prompt text, ids only
 * for the model that made them. */
static void test_to_conversation(void **state) {
    const char *path = fresh("conv");
    g3_store *s = open_ok(path);
    g3_error err;
    g3_store_conv_fields f = {.system = "You are terse."};
    int64_t id;
    assert_int_equal(g3_store_create(s, &f, &id, &err), 0);
    uint8_t a_bytes[10], b_bytes[20];
    memset(a_bytes, 0xAA, sizeof a_bytes);
    memset(b_bytes, 0xBB, sizeof b_bytes);
    g3_store_attachment_in atts[] = {
        {.name = "a.png", .media_type = "image/png", .data = a_bytes, .size = sizeof a_bytes},
        {.name = "notes.md", .media_type = "text/markdown", .data = (const uint8_t *)"# Notes", .size = 7},
        {.name = "b.jpg", .media_type = "IMAGE/JPEG", .data = b_bytes, .size = sizeof b_bytes},
    };
    g3_store_user_msg u = {.text = "Compare", .prompt_text = "File: notes.md\n# Notes\n\nCompare", .text_pos = 1,
                           .attachments = atts, .n_attachments = 3};
    g3_store_answer a = answer("They differ.");
    assert_int_equal(g3_store_append(s, id, &u, &a, NULL, NULL, &err), 0);
    add_pair(s, id, "Why?", "Colors.");

    g3_conversation c;
    assert_int_equal(g3_store_to_conversation(s, id, &k_model, &c, &err), 0);
    assert_string_equal(c.system, "You are terse.");
    assert_int_equal(c.n_turns, 4);
    const g3_turn *t0 = &c.turns[0];
    assert_int_equal(t0->n_parts, 3); /* image, text, image: text_pos 1 */
    assert_int_equal(t0->parts[0].type, G3_PART_IMAGE);
    assert_int_equal(t0->parts[0].data_len, sizeof a_bytes);
    assert_memory_equal(t0->parts[0].data, a_bytes, sizeof a_bytes);
    assert_int_equal(t0->parts[1].type, G3_PART_TEXT);
    assert_string_equal(t0->parts[1].text, "File: notes.md\n# Notes\n\nCompare");
    assert_int_equal(t0->parts[2].type, G3_PART_IMAGE);
    assert_memory_equal(t0->parts[2].data, b_bytes, sizeof b_bytes);
    assert_int_equal(c.turns[1].role, G3_ROLE_MODEL);
    assert_string_equal(c.turns[1].text, "They differ.");
    assert_int_equal(c.turns[1].n_ids, 4);
    assert_int_equal(c.turns[1].ids[2], 999);
    assert_string_equal(c.turns[2].text, "Why?");
    assert_null(c.turns[2].parts);
    assert_int_equal(c.model.n_vocab, 1000);
    g3_conversation_free(&c);

    /* another vocabulary, or none: the answers' ids are dropped, the text stays */
    g3_model_record other = k_model;
    other.vocab_fingerprint ^= 1;
    assert_int_equal(g3_store_to_conversation(s, id, &other, &c, &err), 0);
    assert_int_equal(c.turns[1].n_ids, 0);
    assert_null(c.turns[1].ids);
    assert_string_equal(c.turns[1].text, "They differ.");
    g3_conversation_free(&c);
    assert_int_equal(g3_store_to_conversation(s, id, NULL, &c, &err), 0);
    assert_int_equal(c.turns[3].n_ids, 0);
    g3_conversation_free(&c);

    /* text first (text_pos 0), as the web page sends it */
    int64_t id2 = create_conv(s, NULL);
    u = (g3_store_user_msg){.text = "Caption this", .attachments = atts, .n_attachments = 1};
    assert_int_equal(g3_store_append(s, id2, &u, &a, NULL, NULL, &err), 0);
    assert_int_equal(g3_store_to_conversation(s, id2, &k_model, &c, &err), 0);
    assert_null(c.system);
    assert_int_equal(c.turns[0].n_parts, 2);
    assert_int_equal(c.turns[0].parts[0].type, G3_PART_TEXT);
    assert_int_equal(c.turns[0].parts[1].type, G3_PART_IMAGE);
    g3_conversation_free(&c);
    assert_int_equal(g3_store_to_conversation(s, 9999, NULL, &c, &err), G3_STORE_NOT_FOUND);
    assert_int_equal(c.n_turns, 0);
    g3_store_close(s);
}

/* The bytes of a test clip written to G3_TEST_TMP/name (video_clip.h). */
static uint8_t *clip_bytes(const char *name, int w, int h, int fps, int seconds, size_t *len) {
    char path[512];
    snprintf(path, sizeof path, "%s/%s", G3_TEST_TMP, name);
    video_clip_write(path, w, h, fps, seconds, false, 0.0);
    uint8_t *mp4 = tu_read_file(path, len);
    assert_non_null(mp4);
    return mp4;
}

static double now_s(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + ts.tv_nsec * 1e-9;
}

typedef struct rebuild_job {
    g3_store *s;
    int64_t id;
    volatile int started;
    double end;
    int rc;
    g3_error err;
} rebuild_job;

static void *rebuild_thread(void *arg) {
    rebuild_job *j = arg;
    g3_conversation c;
    __atomic_store_n(&j->started, 1, __ATOMIC_SEQ_CST);
    j->rc = g3_store_to_conversation(j->s, j->id, &k_model, &c, &j->err);
    j->end = now_s();
    if (!j->rc) g3_conversation_free(&c);
    return NULL;
}

/* Rebuilding a conversation decodes its videos' frames (seconds for long
 * ones) without holding the store: another thread lists the conversations
 * meanwhile instead of waiting for the decoding. */
static void test_rebuild_decodes_without_the_lock(void **state) {
    (void)state;
    size_t len;
    uint8_t *mp4 = clip_bytes("store-long-clip.mp4", 640, 360, 30, 6, &len);
    g3_store *s = open_ok(fresh("rebuild-lock"));
    g3_error err;
    g3_store_answer a = answer("Colours.");
    /* enough copies of the clip that a rebuild takes at least 0.3 s here */
    int64_t id = 0;
    double took = 0;
    for (size_t copies = 2; copies <= 1024 && took < 0.3; copies *= 2) {
        g3_store_attachment_in *atts = calloc(copies, sizeof *atts);
        assert_non_null(atts);
        for (size_t i = 0; i < copies; i++)
            atts[i] = (g3_store_attachment_in){.name = "clip.mp4", .media_type = "video/mp4", .data = mp4, .size = len};
        g3_store_user_msg u = {.text = "Which colours?", .attachments = atts, .n_attachments = copies};
        id = create_conv(s, NULL);
        if (g3_store_append(s, id, &u, &a, NULL, NULL, &err)) fail_msg("%s", err.msg);
        free(atts);
        g3_conversation c;
        const double t0 = now_s();
        if (g3_store_to_conversation(s, id, &k_model, &c, &err)) fail_msg("%s", err.msg);
        took = now_s() - t0;
        g3_conversation_free(&c);
    }
    assert_true(took >= 0.3);
    rebuild_job job = {.s = s, .id = id};
    pthread_t th;
    assert_int_equal(pthread_create(&th, NULL, rebuild_thread, &job), 0);
    while (!__atomic_load_n(&job.started, __ATOMIC_SEQ_CST)) usleep(1000);
    usleep((useconds_t)(took * 0.2 * 1e6)); /* well into the decoding */
    g3_store_list_params lp = {0};
    g3_store_list l;
    const double t_list = now_s();
    if (g3_store_list_convs(s, &lp, &l, &err)) fail_msg("%s", err.msg);
    const double listed = now_s();
    g3_store_list_free(&l);
    assert_int_equal(pthread_join(th, NULL), 0);
    if (job.rc) fail_msg("rebuild: %s", job.err.msg);
    printf("rebuild %.3f s; a list during it took %.3f s and ended %.3f s before the rebuild\n", took,
           listed - t_list, job.end - listed);
    assert_true(listed < job.end); /* it did not wait for the decoding */
    g3_store_close(s);
    free(mp4);
}

/* A video attachment becomes G3_STORE_VIDEO_FRAMES labelled frame parts
 * again, the parts g3_video_parts_memory makes (what the native API gave the
 * model), with the video's bytes once: the later frames share the first's.
 * text_pos counts videos with images. A stored video that no longer decodes
 * fails the rebuild, naming it. */
static void test_to_conversation_video(void **state) {
    (void)state;
    size_t len;
    uint8_t *mp4 = clip_bytes("store-clip.mp4", 32, 32, 5, 2, &len);
    g3_store *s = open_ok(fresh("video"));
    g3_error err;
    int64_t id = create_conv(s, NULL);
    uint8_t png[8] = {0x89, 'P', 'N', 'G'};
    g3_store_attachment_in atts[] = {
        {.name = "clip.mp4", .media_type = "video/mp4", .data = mp4, .size = len},
        {.name = "p.png", .media_type = "image/png", .data = png, .size = sizeof png},
    };
    g3_store_user_msg u = {.text = "What moves?", .text_pos = 1, .attachments = atts, .n_attachments = 2};
    g3_store_answer a = answer("Nothing.");
    assert_int_equal(g3_store_append(s, id, &u, &a, NULL, NULL, &err), 0);
    u.text_pos = 3; /* past the 2 images and videos */
    assert_int_equal(g3_store_append(s, id, &u, &a, NULL, NULL, &err), G3_STORE_INVALID);

    g3_part *want;
    size_t n_want;
    if (g3_video_parts_memory("clip.mp4", mp4, len, G3_STORE_VIDEO_FRAMES, &want, &n_want, &err))
        fail_msg("%s", err.msg);
    assert_int_equal(n_want, 2 * G3_STORE_VIDEO_FRAMES);
    g3_conversation c;
    if (g3_store_to_conversation(s, id, &k_model, &c, &err)) fail_msg("%s", err.msg);
    const g3_turn *t = &c.turns[0];
    assert_int_equal(t->n_parts, n_want + 2); /* the frames, then the text (text_pos 1), then the image */
    for (size_t i = 0; i < n_want; i++) {
        const g3_part *p = &t->parts[i], *w = &want[i];
        assert_int_equal(p->type, w->type);
        if (p->type == G3_PART_TEXT) {
            assert_string_equal(p->text, w->text);
            continue;
        }
        assert_null(p->path);
        assert_int_equal(p->data_len, len);
        assert_memory_equal(p->data, mp4, len);
        assert_int_equal(p->frame, w->frame);
        assert_int_equal(p->n_frames, G3_STORE_VIDEO_FRAMES);
        assert_true(p->seconds == w->seconds);
        assert_int_equal(p->shares_data, p->frame > 0);
        if (p->frame > 0) assert_ptr_equal(p->data, t->parts[1].data); /* one copy of the video */
    }
    assert_string_equal(want[0].text, "Frame 0.00:");
    assert_string_equal(want[2].text, "Frame 1.00:");
    assert_int_equal(t->parts[n_want].type, G3_PART_TEXT);
    assert_string_equal(t->parts[n_want].text, "What moves?");
    assert_int_equal(t->parts[n_want + 1].type, G3_PART_IMAGE);
    /* a copy keeps the sharing */
    g3_conversation copy;
    g3_conversation_init(&copy);
    assert_int_equal(g3_conversation_add_parts(&copy, t->parts, t->n_parts, &err), 0);
    assert_ptr_equal(copy.turns[0].parts[3].data, copy.turns[0].parts[1].data);
    assert_ptr_not_equal(copy.turns[0].parts[1].data, t->parts[1].data);
    assert_true(copy.turns[0].parts[3].shares_data);
    g3_conversation_free(&copy);
    /* a sharing frame without its owner before it is refused */
    g3_conversation_init(&copy);
    assert_int_equal(g3_conversation_add_parts(&copy, t->parts + 3, 1, &err), -1);
    g3_conversation_free(&copy);
    g3_conversation_free(&c);
    g3_parts_free(want, n_want);

    /* bytes that are not a video any more (stored by another client): the rebuild fails, naming the file */
    int64_t id2 = create_conv(s, NULL);
    atts[0] = (g3_store_attachment_in){.name = "junk.mp4", .media_type = "video/mp4", .data = png, .size = 4};
    u = (g3_store_user_msg){.text = "?", .attachments = atts, .n_attachments = 1};
    assert_int_equal(g3_store_append(s, id2, &u, &a, NULL, NULL, &err), 0);
    assert_int_equal(g3_store_to_conversation(s, id2, &k_model, &c, &err), G3_STORE_ERROR);
    assert_non_null(strstr(err.msg, "junk.mp4"));
    assert_int_equal(c.n_turns, 0);
    g3_store_close(s);
    free(mp4);
}

static void test_export(void **state) {
    const char *path = fresh("export");
    g3_store *s = open_ok(path);
    g3_error err;
    g3_store_conv_fields f = {.preset = "visual", .system = "Describe images."};
    int64_t id;
    assert_int_equal(g3_store_create(s, &f, &id, &err), 0);
    uint8_t img[4] = {1, 2, 3, 4};
    g3_store_attachment_in att = {.name = "odd `name`.png", .media_type = "image/png", .data = img, .size = 4};
    g3_store_user_msg u = {.text = "What is \"this\"?", .attachments = &att, .n_attachments = 1};
    g3_store_answer a = answer("A \"thing\".\nDone.");
    a.stopped = true;
    a.finish_reason = "cancelled";
    assert_int_equal(g3_store_append(s, id, &u, &a, NULL, NULL, &err), 0);

    char *json;
    assert_int_equal(g3_store_export(s, id, G3_STORE_JSON, &json, &err), 0);
    cJSON *root = cJSON_Parse(json);
    assert_non_null(root);
    assert_int_equal(cJSON_GetObjectItem(root, "id")->valuedouble, id);
    assert_string_equal(cJSON_GetObjectItem(root, "title")->valuestring, "What is \"this\"?");
    assert_string_equal(cJSON_GetObjectItem(root, "preset")->valuestring, "visual");
    cJSON *set = cJSON_GetObjectItem(root, "settings");
    assert_true(cJSON_GetObjectItem(set, "temperature")->valuedouble == 0.7); /* not 0.699999988 */
    assert_int_equal(cJSON_GetObjectItem(set, "max_tokens")->valuedouble, 700);
    cJSON *msgs = cJSON_GetObjectItem(root, "messages");
    assert_int_equal(cJSON_GetArraySize(msgs), 2);
    cJSON *m0 = cJSON_GetArrayItem(msgs, 0), *m1 = cJSON_GetArrayItem(msgs, 1);
    assert_string_equal(cJSON_GetObjectItem(m0, "role")->valuestring, "user");
    cJSON *ja = cJSON_GetArrayItem(cJSON_GetObjectItem(m0, "attachments"), 0);
    assert_string_equal(cJSON_GetObjectItem(ja, "name")->valuestring, "odd `name`.png");
    assert_string_equal(cJSON_GetObjectItem(ja, "type")->valuestring, "image/png");
    assert_int_equal(cJSON_GetObjectItem(ja, "size")->valuedouble, 4);
    assert_null(cJSON_GetObjectItem(ja, "data")); /* bytes are fetched by id */
    assert_null(cJSON_GetObjectItem(m0, "usage"));
    assert_string_equal(cJSON_GetObjectItem(m1, "role")->valuestring, "assistant");
    assert_string_equal(cJSON_GetObjectItem(m1, "content")->valuestring, "A \"thing\".\nDone.");
    assert_true(cJSON_IsTrue(cJSON_GetObjectItem(m1, "stopped")));
    assert_string_equal(cJSON_GetObjectItem(m1, "finish_reason")->valuestring, "cancelled");
    cJSON *usage = cJSON_GetObjectItem(m1, "usage");
    assert_int_equal(cJSON_GetObjectItem(usage, "prompt_tokens")->valuedouble, 31);
    assert_int_equal(cJSON_GetObjectItem(usage, "cached_tokens")->valuedouble, 12);
    assert_int_equal(cJSON_GetObjectItem(usage, "completion_tokens")->valuedouble, 4);
    cJSON_Delete(root);
    free(json);

    char *md;
    assert_int_equal(g3_store_export(s, id, G3_STORE_MARKDOWN, &md, &err), 0);
    expect_msg(md, "# What is \"this\"?\n");
    expect_msg(md, "- Preset: visual\n");
    expect_msg(md, "## System\n\nDescribe images.\n");
    expect_msg(md, "## User\n\nWhat is \"this\"?\n\nAttachments: `odd 'name'.png` (image/png, 4 bytes)\n");
    expect_msg(md, "## Assistant\n\nA \"thing\".\nDone.\n\n*(stopped");
    free(md);
    assert_int_equal(g3_store_export(s, id + 100, G3_STORE_JSON, &md, &err), G3_STORE_NOT_FOUND);
    assert_null(md);
    g3_store_close(s);
}

/* ---- bad input ---------------------------------------------------------- */

static void test_bad_input(void **state) {
    const char *path = fresh("bad");
    g3_store *s = open_ok(path);
    g3_error err;
    int64_t id = create_conv(s, "kept");
    add_pair(s, id, "q", "a");
    g3_store_answer a = answer("fine");
    g3_store_user_msg ok = {.text = "fine"};

    g3_store_user_msg u = {.text = "bad \xC3\x28 byte"};
    assert_int_equal(g3_store_append(s, id, &u, &a, NULL, NULL, &err), G3_STORE_INVALID);
    expect_msg(err.msg, "message text is not valid UTF-8 (byte 4)");
    expect_msg(err.msg, "conversation");
    u = (g3_store_user_msg){.text = ""};
    assert_int_equal(g3_store_append(s, id, &u, &a, NULL, NULL, &err), G3_STORE_INVALID);
    expect_msg(err.msg, "empty");
    g3_store_answer bad = answer("a\0b");
    bad.text_len = 3;
    assert_int_equal(g3_store_append(s, id, &ok, &bad, NULL, NULL, &err), G3_STORE_INVALID);
    expect_msg(err.msg, "NUL byte at offset 1");
    bad = answer("x");
    bad.prefill_s = NAN;
    assert_int_equal(g3_store_append(s, id, &ok, &bad, NULL, NULL, &err), G3_STORE_INVALID);
    static const int32_t big_ids[] = {5, 1000};
    bad = answer("x");
    bad.ids = big_ids;
    bad.n_ids = 2;
    assert_int_equal(g3_store_append(s, id, &ok, &bad, NULL, NULL, &err), G3_STORE_INVALID);
    expect_msg(err.msg, "token id 1 (1000)");
    g3_store_attachment_in att = {.name = "x", .media_type = "png", .data = (const uint8_t *)"x", .size = 1};
    u = (g3_store_user_msg){.text = "see", .attachments = &att, .n_attachments = 1};
    assert_int_equal(g3_store_append(s, id, &u, &a, NULL, NULL, &err), G3_STORE_INVALID);
    expect_msg(err.msg, "not type/subtype");
    att = (g3_store_attachment_in){.name = "", .media_type = "text/plain", .data = (const uint8_t *)"x", .size = 1};
    u = (g3_store_user_msg){.text = "see", .attachments = &att, .n_attachments = 1};
    assert_int_equal(g3_store_append(s, id, &u, &a, NULL, NULL, &err), G3_STORE_INVALID);
    expect_msg(err.msg, "attachment 1 has no name");
    u = (g3_store_user_msg){.text = "see", .text_pos = 1};
    assert_int_equal(g3_store_append(s, id, &u, &a, NULL, NULL, &err), G3_STORE_INVALID);
    g3_store_settings st = g3_store_settings_defaults();
    st.temperature = INFINITY;
    g3_store_conv_fields f = {.settings = &st};
    assert_int_equal(g3_store_update(s, id, &f, &err), G3_STORE_INVALID);
    expect_msg(err.msg, "temperature");
    st = g3_store_settings_defaults();
    st.top_p = 1.5f;
    assert_int_equal(g3_store_create(s, &f, NULL, &err), G3_STORE_INVALID);
    f = (g3_store_conv_fields){.title = "\xFF"};
    assert_int_equal(g3_store_update(s, id, &f, &err), G3_STORE_INVALID);

    /* unknown ids */
    assert_int_equal(g3_store_append(s, 777, &ok, &a, NULL, NULL, &err), G3_STORE_NOT_FOUND);
    expect_msg(err.msg, "conversation 777 not found");
    assert_null(strstr(err.msg, G3_TEST_TMP)); /* a request's error does not show the server's files */
    f = (g3_store_conv_fields){.title = "t"};
    assert_int_equal(g3_store_update(s, 777, &f, &err), G3_STORE_NOT_FOUND);
    assert_int_equal(g3_store_replace_answer(s, 777, &a, NULL, &err), G3_STORE_NOT_FOUND);

    /* nothing of the above reached the file */
    g3_store_conv c;
    assert_int_equal(g3_store_get(s, id, &c, &err), 0);
    assert_int_equal(c.n_turns, 2);
    assert_string_equal(c.title, "kept");
    assert_true(c.settings.temperature == 0.7f);
    g3_store_conv_free(&c);
    assert_int_equal(query_int(path, "SELECT count(*) FROM conversations"), 1);
    assert_int_equal(query_int(path, "SELECT count(*) FROM turns"), 2);
    g3_store_close(s);

    g3_store *none;
    assert_int_equal(g3_store_open(G3_TEST_TMP "/no-such-dir/x.db", NULL, &none, &err), G3_STORE_ERROR);
    expect_msg(err.msg, "no-such-dir does not exist");
    assert_null(none);
    g3_store_options o = {.backend = "postgres"};
    assert_int_equal(g3_store_open(path, &o, &none, &err), G3_STORE_INVALID);
    expect_msg(err.msg, "unknown store backend 'postgres'");
}

/* ---- schema versions ---------------------------------------------------- */

static uint8_t *file_bytes(const char *path, size_t *n) {
    uint8_t *b = tu_read_file(path, n);
    assert_non_null(b);
    return b;
}

static void expect_unchanged(const char *path, const uint8_t *before, size_t n) {
    size_t m;
    uint8_t *after = file_bytes(path, &m);
    assert_int_equal(m, n);
    assert_memory_equal(after, before, n);
    free(after);
}

static void test_versions(void **state) {
    g3_error err;
    g3_store *s;
    /* version 0: an empty file becomes a store */
    const char *empty = fresh("v0");
    assert_int_equal(tu_write_file(empty, "", 0), 0);
    s = open_ok(empty);
    g3_store_close(s);
    assert_int_equal(query_int(empty, "PRAGMA user_version"), 1);
    assert_int_equal(query_int(empty, "SELECT count(*) FROM sqlite_master WHERE type = 'table' AND name IN "
                                      "('conversations', 'turns', 'attachments')"), 3);

    /* a version-1 file made by hand (plain SQL, no store code) reads back */
    const char *v1 = fresh("v1");
    size_t n_m;
    const g3_store_migration *m = g3_store_sqlite_migrations(&n_m);
    assert_int_equal(n_m, 1);
    exec_raw(v1, m[0].sql);
    exec_raw(v1, "PRAGMA user_version = 1; PRAGMA application_id = 1194541896;"
                 "INSERT INTO conversations VALUES (5, 'Old chat', 0, 'general', 'sys', 700, 0.7, 0.9, 50, 1.1, 2, "
                 "1000, 2000);"
                 "INSERT INTO turns (id, conversation_id, idx, role, text, created_at) "
                 "VALUES (10, 5, 0, 'user', 'q', 1000);"
                 "INSERT INTO turns (id, conversation_id, idx, role, text, created_at, token_ids) "
                 "VALUES (11, 5, 1, 'model', 'a', 2000, x'0700000008000000');"
                 "INSERT INTO attachments VALUES (3, 10, 0, 'f.txt', 'text/plain', 2, x'6869');");
    s = open_ok(v1);
    g3_store_conv c;
    assert_int_equal(g3_store_get(s, 5, &c, &err), 0);
    assert_string_equal(c.title, "Old chat");
    assert_int_equal(c.n_turns, 2);
    assert_int_equal(c.turns[1].n_ids, 2);
    assert_int_equal(c.turns[1].ids[1], 8);
    assert_int_equal(c.turns[0].n_attachments, 1);
    g3_store_conv_free(&c);
    g3_store_close(s);

    /* an upgrade to a version 2 keeps the data; its steps run in one transaction */
    g3_store_migration up[2] = {m[0], {2, "pinned conversations",
                                       "ALTER TABLE conversations ADD COLUMN pinned INTEGER NOT NULL DEFAULT 0;"
                                       "UPDATE conversations SET pinned = 1 WHERE title = 'Old chat';"}};
    /* first a step that fails halfway: nothing of it stays */
    g3_store_migration broken[2] = {m[0], {2, "a broken step",
                                           "ALTER TABLE conversations ADD COLUMN pinned INTEGER NOT NULL DEFAULT 0;"
                                           "INSERT INTO no_such_table VALUES (1);"}};
    assert_int_equal(g3_store_open_sqlite_migrations(v1, NULL, broken, 2, &s, &err), G3_STORE_ERROR);
    expect_msg(err.msg, "migrating the store from schema version 1 to 2 (a broken step)");
    expect_msg(err.msg, "no such table: no_such_table");
    assert_null(s);
    assert_int_equal(query_int(v1, "PRAGMA user_version"), 1);
    assert_int_equal(query_int(v1, "SELECT count(*) FROM pragma_table_info('conversations') WHERE name = 'pinned'"), 0);
    /* a good step followed by a failing one: the good one is undone too */
    g3_store_migration two[3] = {m[0], up[1], {3, "another broken step", "INSERT INTO no_such_table VALUES (1);"}};
    assert_int_equal(g3_store_open_sqlite_migrations(v1, NULL, two, 3, &s, &err), G3_STORE_ERROR);
    expect_msg(err.msg, "from schema version 2 to 3 (another broken step)");
    assert_int_equal(query_int(v1, "PRAGMA user_version"), 1);
    assert_int_equal(query_int(v1, "SELECT count(*) FROM pragma_table_info('conversations') WHERE name = 'pinned'"), 0);
    assert_int_equal(g3_store_open_sqlite_migrations(v1, NULL, up, 2, &s, &err), 0);
    assert_int_equal(g3_store_get(s, 5, &c, &err), 0);
    assert_int_equal(c.n_turns, 2);
    g3_store_conv_free(&c);
    g3_store_close(s);
    assert_int_equal(query_int(v1, "PRAGMA user_version"), 2);
    assert_int_equal(query_int(v1, "SELECT pinned FROM conversations WHERE id = 5"), 1);
    integrity_ok(v1);

    /* now the file is newer than this build: refused, unchanged */
    size_t n;
    uint8_t *before = file_bytes(v1, &n);
    assert_int_equal(g3_store_open(v1, NULL, &s, &err), G3_STORE_CORRUPT);
    expect_msg(err.msg, "newer gemma-chat (schema version 2; this one knows versions up to 1)");
    expect_msg(err.msg, "not changed");
    expect_msg(err.msg, v1);
    expect_unchanged(v1, before, n);
    free(before);

    /* someone else's database: tables without our id, or another id */
    const char *other = fresh("other");
    exec_raw(other, "CREATE TABLE notes (x); INSERT INTO notes VALUES ('mine')");
    before = file_bytes(other, &n);
    assert_int_equal(g3_store_open(other, NULL, &s, &err), G3_STORE_CORRUPT);
    expect_msg(err.msg, "not a gemma-chat store");
    expect_unchanged(other, before, n);
    free(before);
    const char *app = fresh("app");
    exec_raw(app, "PRAGMA application_id = 1234");
    assert_int_equal(g3_store_open(app, NULL, &s, &err), G3_STORE_CORRUPT);
    expect_msg(err.msg, "another application");
}

/* ---- files that cannot be used ----------------------------------------- */

static void test_not_a_database(void **state) {
    g3_error err;
    g3_store *s;
    const char *junk = fresh("junk");
    char text[4096];
    memset(text, 'x', sizeof text);
    assert_int_equal(tu_write_file(junk, text, sizeof text), 0);
    assert_int_equal(g3_store_open(junk, NULL, &s, &err), G3_STORE_CORRUPT);
    expect_msg(err.msg, "not an SQLite database");
    expect_msg(err.msg, junk);
    size_t n;
    uint8_t *after = file_bytes(junk, &n);
    assert_int_equal(n, sizeof text);
    assert_memory_equal(after, text, n);
    free(after);

    /* a store whose schema page is damaged */
    const char *dmg = fresh("damaged");
    s = open_ok(dmg);
    int64_t id = create_conv(s, "x");
    add_pair(s, id, "q", "a");
    g3_store_close(s); /* the last close checkpoints the WAL into the file */
    uint8_t *b = file_bytes(dmg, &n);
    int page = b[16] << 8 | b[17];
    assert_true(n >= (size_t)page * 2);
    memset(b + 100, 0xA5, (size_t)page - 100); /* page 1 after the header: sqlite_master */
    assert_int_equal(tu_write_file(dmg, b, n), 0);
    assert_int_equal(g3_store_open(dmg, NULL, &s, &err), G3_STORE_CORRUPT);
    expect_msg(err.msg, "damaged");
    /* a damaged table page is found by verify (quick_check) at open */
    const char *dmg2 = fresh("damaged2");
    s = open_ok(dmg2);
    id = create_conv(s, "x");
    for (int i = 0; i < 40; i++) add_pair(s, id, "a longer question to fill a few pages of the turns table", "ok");
    g3_store_close(s);
    free(b);
    b = file_bytes(dmg2, &n);
    size_t last = n / (size_t)page - 1;
    memset(b + last * (size_t)page + 8, 0x5A, 64);
    assert_int_equal(tu_write_file(dmg2, b, n), 0);
    free(b);
    g3_store_options o = {.verify = true};
    assert_int_equal(g3_store_open(dmg2, &o, &s, &err), G3_STORE_CORRUPT);
    expect_msg(err.msg, "damaged");
}

/* In a child: as nobody if we are root (root writes to 0444 files). */
static void drop_root(void) {
    if (geteuid() != 0) return;
    if (setgid(65534) != 0 || setuid(65534) != 0) _exit(90);
}

static int child_status(pid_t pid) {
    int st;
    assert_int_equal(waitpid(pid, &st, 0), pid);
    return WIFEXITED(st) ? WEXITSTATUS(st) : 128 + WTERMSIG(st);
}

static void test_read_only(void **state) {
    char dir[512], file[600], dir2[512], file2[600];
    snprintf(dir, sizeof dir, "%s/store-ro", G3_TEST_TMP);
    snprintf(dir2, sizeof dir2, "%s/store-rodir", G3_TEST_TMP);
    snprintf(file, sizeof file, "%s/chats.db", dir);
    snprintf(file2, sizeof file2, "%s/chats.db", dir2);
    free(tu_run("chmod -R u+w " G3_TEST_TMP "/store-ro " G3_TEST_TMP "/store-rodir 2>/dev/null; rm -rf " G3_TEST_TMP
                "/store-ro " G3_TEST_TMP "/store-rodir", NULL));
    assert_int_equal(mkdir(dir, 0755), 0);
    assert_int_equal(mkdir(dir2, 0755), 0);
    const char *paths[] = {file, file2};
    for (int i = 0; i < 2; i++) {
        g3_store *s = open_ok(paths[i]);
        int64_t id = create_conv(s, "keep me");
        add_pair(s, id, "q", "a");
        g3_store_close(s);
    }
    /* a read-only file; a writable file in a read-only folder (no room for -wal) */
    assert_int_equal(chmod(file, 0444), 0);
    assert_int_equal(chmod(dir, 0555), 0);
    assert_int_equal(chmod(file2, 0666), 0);
    assert_int_equal(chmod(dir2, 0555), 0);
    pid_t pid = fork();
    assert_true(pid >= 0);
    if (pid == 0) {
        drop_root();
        g3_store *s;
        g3_error err;
        if (g3_store_open(file, NULL, &s, &err) != G3_STORE_READONLY || !strstr(err.msg, "cannot be written")) _exit(1);
        if (!strstr(err.msg, file)) _exit(2);
        if (g3_store_open(file2, NULL, &s, &err) != G3_STORE_READONLY || !strstr(err.msg, "folder")) _exit(3);
        if (!strstr(err.msg, "-wal")) _exit(4);
        _exit(0);
    }
    assert_int_equal(child_status(pid), 0);
    free(tu_run("chmod -R u+w " G3_TEST_TMP "/store-ro " G3_TEST_TMP "/store-rodir", NULL));
    /* opened read-only on purpose: reads work, writes are refused */
    g3_store_options o = {.read_only = true};
    g3_store *s;
    g3_error err;
    assert_int_equal(g3_store_open(file, &o, &s, &err), 0);
    g3_store_list l;
    assert_int_equal(g3_store_list_convs(s, NULL, &l, &err), 0);
    assert_int_equal(l.n, 1);
    int64_t id = l.items[0].id;
    g3_store_list_free(&l);
    g3_store_answer a = answer("x");
    g3_store_user_msg u = {.text = "x"};
    assert_int_equal(g3_store_append(s, id, &u, &a, NULL, NULL, &err), G3_STORE_READONLY);
    expect_msg(err.msg, "read-only");
    assert_int_equal(g3_store_delete(s, id, &err), G3_STORE_READONLY);
    g3_store_close(s);
    for (int i = 0; i < 2; i++) {
        s = open_ok(paths[i]); /* nothing lost */
        g3_store_conv c;
        assert_int_equal(g3_store_get(s, id, &c, &err), 0);
        assert_int_equal(c.n_turns, 2);
        assert_string_equal(c.title, "keep me");
        g3_store_conv_free(&c);
        g3_store_close(s);
        integrity_ok(paths[i]);
    }
}

static void test_locked(void **state) {
    const char *path = fresh("locked");
    g3_store *s = open_ok(path);
    int64_t id = create_conv(s, "locked");
    add_pair(s, id, "q1", "a1");
    /* another connection takes the write lock and holds it */
    sqlite3 *other;
    assert_int_equal(sqlite3_open(path, &other), SQLITE_OK);
    assert_int_equal(sqlite3_exec(other, "BEGIN EXCLUSIVE; INSERT INTO conversations (title, title_auto, preset, "
                                         "system, max_tokens, temperature, top_p, top_k, repetition_penalty, "
                                         "max_images, created_at, updated_at) VALUES ('other', 0, '', '', 1, 1, 1, "
                                         "1, 1, 1, 1, 1)", NULL, NULL, NULL), SQLITE_OK);
    g3_error err;
    g3_store_options o = {.busy_timeout_ms = 100};
    g3_store *s2;
    assert_int_equal(g3_store_open(path, &o, &s2, &err), G3_STORE_BUSY);
    expect_msg(err.msg, "locked by another process");
    expect_msg(err.msg, "waited 100 ms");
    expect_msg(err.msg, path);
    /* a handle opened before: its write fails clearly, reads still work */
    g3_store_close(s);
    assert_int_equal(g3_store_open(path, &(g3_store_options){.busy_timeout_ms = 1}, &s, &err), G3_STORE_BUSY);
    sqlite3_exec(other, "ROLLBACK", NULL, NULL, NULL);
    assert_int_equal(g3_store_open(path, &(g3_store_options){.busy_timeout_ms = 100}, &s, &err), 0);
    assert_int_equal(sqlite3_exec(other, "BEGIN IMMEDIATE", NULL, NULL, NULL), SQLITE_OK);
    g3_store_user_msg u = {.text = "q2"};
    g3_store_answer a = answer("a2");
    assert_int_equal(g3_store_append(s, id, &u, &a, NULL, NULL, &err), G3_STORE_BUSY);
    expect_msg(err.msg, "appending to conversation");
    expect_msg(err.msg, "locked");
    g3_store_conv c;
    assert_int_equal(g3_store_get(s, id, &c, &err), 0);
    assert_int_equal(c.n_turns, 2);
    g3_store_conv_free(&c);
    sqlite3_exec(other, "COMMIT", NULL, NULL, NULL);
    sqlite3_close(other);
    /* the lock gone, the same write goes through */
    assert_int_equal(g3_store_append(s, id, &u, &a, NULL, NULL, &err), 0);
    assert_int_equal(g3_store_get(s, id, &c, &err), 0);
    assert_int_equal(c.n_turns, 4);
    g3_store_conv_free(&c);
    g3_store_close(s);
    integrity_ok(path);
    assert_int_equal(query_int(path, "SELECT count(*) FROM conversations"), 1); /* the other's insert rolled back */
}

/* ---- a full disk -------------------------------------------------------- */

static void check_pairs(const char *path, int64_t id, uint32_t n_turns) {
    g3_store *s = open_ok(path);
    g3_store_conv c;
    g3_error err;
    assert_int_equal(g3_store_get(s, id, &c, &err), 0);
    assert_int_equal(c.n_turns, n_turns);
    for (uint32_t i = 0; i < n_turns; i += 2) {
        char q[32];
        snprintf(q, sizeof q, "question %u", i / 2);
        assert_string_equal(c.turns[i].text, q);
        assert_string_equal(c.turns[i + 1].text, "answer");
    }
    g3_store_conv_free(&c);
    assert_int_equal(g3_store_check(s, &err), 0);
    g3_store_close(s);
    integrity_ok(path);
}

static void add_questions(g3_store *s, int64_t id, int from, int to) {
    for (int i = from; i < to; i++) {
        char q[32];
        snprintf(q, sizeof q, "question %d", i);
        add_pair(s, id, q, "answer");
    }
}

static void test_disk_full(void **state) {
    /* the database's size limit (max_page_count) */
    const char *path = fresh("full");
    g3_store *s = open_ok(path);
    int64_t id = create_conv(s, "full");
    add_questions(s, id, 0, 3);
    sqlite3 *db = g3_store_sqlite_db(s);
    assert_non_null(db);
    char sql[96];
    int64_t pages = 0;
    sqlite3_stmt *st;
    assert_int_equal(sqlite3_prepare_v2(db, "PRAGMA page_count", -1, &st, NULL), SQLITE_OK);
    assert_int_equal(sqlite3_step(st), SQLITE_ROW);
    pages = sqlite3_column_int64(st, 0);
    sqlite3_finalize(st);
    snprintf(sql, sizeof sql, "PRAGMA max_page_count = %lld", (long long)pages + 2);
    assert_int_equal(sqlite3_exec(db, sql, NULL, NULL, NULL), SQLITE_OK);
    size_t n = 1u << 20;
    uint8_t *big = pattern_bytes(n, 7);
    g3_store_attachment_in att = {.name = "big.bin", .media_type = "application/octet-stream", .data = big, .size = n};
    g3_store_user_msg u = {.text = "question 3", .attachments = &att, .n_attachments = 1};
    g3_store_answer a = answer("answer");
    g3_error err;
    assert_int_equal(g3_store_append(s, id, &u, &a, NULL, NULL, &err), G3_STORE_FULL);
    expect_msg(err.msg, "appending to conversation");
    expect_msg(err.msg, "disk is full");
    g3_store_conv c;
    assert_int_equal(g3_store_get(s, id, &c, &err), 0); /* the handle still works */
    assert_int_equal(c.n_turns, 6);
    g3_store_conv_free(&c);
    assert_int_equal(sqlite3_exec(db, "PRAGMA max_page_count = 1073741823", NULL, NULL, NULL), SQLITE_OK);
    add_questions(s, id, 3, 4);
    g3_store_close(s);
    check_pairs(path, id, 8);

    /* the file system's limit: a child whose files cannot grow (RLIMIT_FSIZE) */
    const char *path2 = fresh("fsize");
    s = open_ok(path2);
    id = create_conv(s, "fsize");
    add_questions(s, id, 0, 2);
    g3_store_close(s);
    pid_t pid = fork();
    assert_true(pid >= 0);
    if (pid == 0) {
        signal(SIGXFSZ, SIG_IGN); /* write() fails with EFBIG instead of a signal */
        g3_store *cs;
        if (g3_store_open(path2, NULL, &cs, &err)) _exit(1);
        struct rlimit rl = {.rlim_cur = 256 << 10, .rlim_max = RLIM_INFINITY};
        if (setrlimit(RLIMIT_FSIZE, &rl) != 0) _exit(2);
        int rc = g3_store_append(cs, id, &u, &a, NULL, NULL, &err);
        if (rc != G3_STORE_FULL) {
            fprintf(stderr, "child: rc %d: %s\n", rc, err.msg);
            _exit(3);
        }
        if (!strstr(err.msg, "File too large")) {
            fprintf(stderr, "child: %s\n", err.msg);
            _exit(4);
        }
        g3_store_user_msg small = {.text = "question 2"};
        if (g3_store_append(cs, id, &small, &a, NULL, NULL, &err)) { /* still usable */
            fprintf(stderr, "child: %s\n", err.msg);
            _exit(5);
        }
        g3_store_close(cs);
        _exit(0);
    }
    assert_int_equal(child_status(pid), 0);
    check_pairs(path2, id, 6);
    free(big);
}

/* ---- a crash in the middle of a turn pair ------------------------------- */

/* The child dies at a point of the pair's transaction: after the first
 * row of a table is inserted ("turns": the user turn, before its answer;
 * "attachments") or when the pair is about to commit ("commit"). */
static void die_after_insert(void *user, int op, const char *db, const char *table, sqlite3_int64 row) {
    if (op == SQLITE_INSERT && strcmp(table, (const char *)user) == 0) raise(SIGKILL);
}

static int die_at_commit(void *user) {
    raise(SIGKILL);
    return 0;
}

static void crash_child(const char *path, int64_t id, const char *point) {
    g3_store *s;
    g3_error err;
    if (g3_store_open(path, NULL, &s, &err)) _exit(1);
    sqlite3 *db = g3_store_sqlite_db(s);
    if (strcmp(point, "commit") == 0) sqlite3_commit_hook(db, die_at_commit, NULL);
    else sqlite3_update_hook(db, die_after_insert, (void *)point);
    uint8_t img[64] = {1};
    g3_store_attachment_in att = {.name = "in-flight.png", .media_type = "image/png", .data = img, .size = 64};
    g3_store_user_msg u = {.text = "question in flight", .attachments = &att, .n_attachments = 1};
    g3_store_answer a = answer("answer in flight");
    g3_store_append(s, id, &u, &a, NULL, NULL, &err);
    _exit(0); /* the hook should have killed us */
}

static void test_crash_mid_pair(void **state) {
    const char *points[] = {"turns", "attachments", "commit"};
    for (size_t k = 0; k < 3; k++) {
        const char *path = fresh("crash");
        g3_store *s = open_ok(path);
        int64_t id = create_conv(s, "crash");
        add_questions(s, id, 0, 2);
        g3_store_close(s);
        pid_t pid = fork();
        assert_true(pid >= 0);
        if (pid == 0) crash_child(path, id, points[k]);
        assert_int_equal(child_status(pid), 128 + SIGKILL);
        /* the file as the dead process left it (WAL and all): no half pair */
        check_pairs(path, id, 4);
        assert_int_equal(query_int(path, "SELECT count(*) FROM turns"), 4);
        assert_int_equal(query_int(path, "SELECT count(*) FROM attachments"), 0);
        s = open_ok(path); /* and it goes on */
        add_questions(s, id, 2, 3);
        g3_store_close(s);
        check_pairs(path, id, 6);
    }
}

/* A killed process after the commit: the pair is all there. */
static void test_crash_after_commit(void **state) {
    const char *path = fresh("crash-after");
    g3_store *s = open_ok(path);
    int64_t id = create_conv(s, "crash");
    add_questions(s, id, 0, 1);
    g3_store_close(s);
    pid_t pid = fork();
    assert_true(pid >= 0);
    if (pid == 0) {
        g3_store *cs;
        g3_error err;
        if (g3_store_open(path, NULL, &cs, &err)) _exit(1);
        g3_store_user_msg u = {.text = "question 1"};
        g3_store_answer a = answer("answer");
        a.stopped = true; /* a stopped answer is committed like a complete one */
        if (g3_store_append(cs, id, &u, &a, NULL, NULL, &err)) _exit(2);
        raise(SIGKILL);
    }
    assert_int_equal(child_status(pid), 128 + SIGKILL);
    check_pairs(path, id, 4);
    assert_int_equal(query_int(path, "SELECT stopped FROM turns WHERE idx = 3"), 1);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_round_trip),        cmocka_unit_test(test_attachment_bytes),
        cmocka_unit_test(test_list_search_paging), cmocka_unit_test(test_default_title),
        cmocka_unit_test(test_default_path),
        cmocka_unit_test(test_regenerate_and_edit), cmocka_unit_test(test_to_conversation),
        cmocka_unit_test(test_to_conversation_video),
        cmocka_unit_test(test_rebuild_decodes_without_the_lock),
        cmocka_unit_test(test_export),            cmocka_unit_test(test_bad_input),
        cmocka_unit_test(test_versions),          cmocka_unit_test(test_not_a_database),
        cmocka_unit_test(test_read_only),         cmocka_unit_test(test_locked),
        cmocka_unit_test(test_disk_full),         cmocka_unit_test(test_crash_mid_pair),
        cmocka_unit_test(test_crash_after_commit),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
