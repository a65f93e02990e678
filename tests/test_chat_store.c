/* test_chat_store: the terminal chat on the conversation store (piped
 * stdin, the tiny golden model, --db under G3_TEST_TMP).
 * - two answered turns are saved (texts, numbers, /title);
 * - a second process with --resume goes on with them: its first prompt is
 *   the whole conversation (prefilled again, nothing reused), /list and
 *   /export show the earlier turns;
 * - --no-save writes nothing; without --db the store is
 *   $XDG_DATA_HOME/gemma-chat/chats.db;
 * - a --db that cannot be a store (a folder, a file of garbage) is refused
 *   at start with the file named, and left as it was. */
#include <setjmp.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include <cmocka.h>

#include "gemma3_store.h"
#include "test_util.h"

#define MODEL G3_GOLDEN_DIR "/tiny-gemma3/models/g3-1b-s1234-f32.gguf"
#define FLAGS "--temp 0 --repeat-penalty 1 -n 3"

/* `env ENV gemma-chat chat -m MODEL ARGS < input`, stdout and stderr together. */
static char *chat(const char *env, const char *args, const char *input, int *status) {
    const char *in_path = G3_TEST_TMP "/chat-store-input.txt";
    assert_int_equal(tu_write_file(in_path, input, strlen(input)), 0);
    char cmd[4096];
    snprintf(cmd, sizeof cmd, "env %s %s chat -m %s %s < %s 2>&1", env ? env : "", G3_BINARY, MODEL, args, in_path);
    char *out = tu_run(cmd, status);
    assert_non_null(out);
    return out;
}

static void expect_in(const char *out, const char *needle) {
    if (!strstr(out, needle)) fail_msg("output lacks '%s':\n%s", needle, out);
}

static void remove_db(const char *path) {
    char p[1024];
    remove(path);
    snprintf(p, sizeof p, "%s-wal", path);
    remove(p);
    snprintf(p, sizeof p, "%s-shm", path);
    remove(p);
}

static size_t count(const char *text, const char *needle) {
    size_t n = 0;
    for (const char *p = text; (p = strstr(p, needle)); p += strlen(needle)) n++;
    return n;
}

/* The k-th (0-based) "prefill N tokens (R reused)" line of -v. */
static void prefill_line(const char *out, int k, unsigned *prefill, unsigned *reused) {
    const char *p = out;
    for (int i = 0; i <= k; i++) {
        p = strstr(p, "prefill ");
        if (!p) fail_msg("no prefill line %d in:\n%s", k, out);
        if (i < k) p++;
    }
    if (sscanf(p, "prefill %u tokens (%u reused)", prefill, reused) != 2) fail_msg("bad prefill line: %.80s", p);
}

static g3_store *open_store(const char *path) {
    g3_store *st;
    g3_error err;
    if (g3_store_open(path, NULL, &st, &err)) fail_msg("%s", err.msg);
    return st;
}

static void test_turns_are_saved_and_resumed(void **state) {
    (void)state;
    const char *db = G3_TEST_TMP "/chat-store.db";
    remove_db(db);
    int status;
    char *out = chat(NULL, "--db " G3_TEST_TMP "/chat-store.db -v " FLAGS,
                     "Hello, how are you?\n/title Pets and people\nAnd the dog?\n", &status);
    assert_int_equal(status, 0);
    expect_in(out, "title set: Pets and people");
    unsigned p2, r2;
    prefill_line(out, 1, &p2, &r2);
    assert_true(r2 > 0); /* the second turn reused the first */
    free(out);

    g3_store *st = open_store(db);
    g3_error err;
    g3_store_list l;
    g3_store_list_params lp = {0};
    assert_int_equal(g3_store_list_convs(st, &lp, &l, &err), 0);
    assert_int_equal(l.n, 1);
    const int64_t id = l.items[0].id;
    assert_string_equal(l.items[0].title, "Pets and people");
    assert_int_equal(l.items[0].n_turns, 4);
    g3_store_list_free(&l);
    g3_store_conv c;
    assert_int_equal(g3_store_get(st, id, &c, &err), 0);
    assert_int_equal(c.n_turns, 4);
    assert_string_equal(c.turns[0].text, "Hello, how are you?");
    assert_string_equal(c.turns[2].text, "And the dog?");
    for (int i = 1; i < 4; i += 2) {
        assert_int_equal(c.turns[i].role, G3_ROLE_MODEL);
        assert_int_equal(c.turns[i].completion_tokens, 3);
        assert_string_equal(c.turns[i].finish_reason, "max_tokens");
        assert_false(c.turns[i].stopped);
        assert_true(c.turns[i].n_ids > 0);
        assert_true(c.turns[i].text[0] != 0);
    }
    assert_int_equal(c.turns[3].cached_tokens, r2);
    assert_int_equal(c.turns[3].prompt_tokens, p2 + r2);
    assert_int_equal(c.settings.max_tokens, 3);
    g3_store_conv_free(&c);
    g3_store_close(st);

    /* a new process goes on with it: its prompt is the whole conversation */
    out = chat(NULL, "--db " G3_TEST_TMP "/chat-store.db --resume -v " FLAGS,
               "/list\n/export " G3_TEST_TMP "/chat-store.md\nAnd the cat?\n", &status);
    assert_int_equal(status, 0);
    expect_in(out, "Pets and people (4 turns)");
    expect_in(out, "4 turns  Pets and people"); /* /list */
    expect_in(out, "exported to " G3_TEST_TMP "/chat-store.md");
    unsigned p3, r3;
    prefill_line(out, 0, &p3, &r3);
    printf("turn 2: prefill %u (%u reused); resumed turn 3: prefill %u (%u reused)\n", p2, r2, p3, r3);
    assert_int_equal(r3, 0);
    assert_true(p3 > p2 + r2 + 3); /* turn 2's prompt, its answer and the new message */
    free(out);
    char *md = (char *)tu_read_file(G3_TEST_TMP "/chat-store.md", NULL);
    assert_non_null(md);
    expect_in(md, "Pets and people");
    expect_in(md, "Hello, how are you?");
    expect_in(md, "And the dog?");
    assert_int_equal(count(md, "## User"), 2);
    assert_int_equal(count(md, "## Assistant"), 2);
    free(md);

    st = open_store(db);
    assert_int_equal(g3_store_get(st, id, &c, &err), 0);
    assert_int_equal(c.n_turns, 6);
    assert_string_equal(c.turns[4].text, "And the cat?");
    assert_int_equal(c.turns[5].cached_tokens, 0);
    assert_int_equal(c.turns[5].prompt_tokens, p3);
    g3_store_conv_free(&c);
    assert_int_equal(g3_store_check(st, &err), 0);
    g3_store_close(st);

    /* --resume ID names one; an unknown one is an error */
    out = chat(NULL, "--db " G3_TEST_TMP "/chat-store.db --resume 1 " FLAGS, "/list\n", &status);
    assert_int_equal(status, 0);
    expect_in(out, "6 turns  Pets and people");
    free(out);
    out = chat(NULL, "--db " G3_TEST_TMP "/chat-store.db --resume 42 " FLAGS, "Hi\n", &status);
    assert_int_not_equal(status, 0);
    expect_in(out, "42");
    free(out);
}

/* /reset starts a new stored conversation; /open goes back to the first. */
static void test_reset_and_open(void **state) {
    (void)state;
    const char *db = G3_TEST_TMP "/chat-store-open.db";
    remove_db(db);
    int status;
    char *out = chat(NULL, "--db " G3_TEST_TMP "/chat-store-open.db " FLAGS,
                     "Hello\n/reset\nSecond one\n/open 1\nAnd the dog?\n/list\n", &status);
    assert_int_equal(status, 0);
    expect_in(out, "conversation 1: Hello (2 turns)");
    expect_in(out, "*     1");
    free(out);
    g3_store *st = open_store(db);
    g3_error err;
    g3_store_conv c;
    assert_int_equal(g3_store_get(st, 1, &c, &err), 0);
    assert_int_equal(c.n_turns, 4);
    assert_string_equal(c.turns[2].text, "And the dog?");
    g3_store_conv_free(&c);
    assert_int_equal(g3_store_get(st, 2, &c, &err), 0);
    assert_int_equal(c.n_turns, 2);
    assert_string_equal(c.turns[0].text, "Second one");
    g3_store_conv_free(&c);
    g3_store_close(st);
}

static bool exists(const char *path) {
    struct stat s;
    return stat(path, &s) == 0;
}

static void test_no_save_and_the_default_store(void **state) {
    (void)state;
    int status;
    assert_int_equal(system("rm -rf '" G3_TEST_TMP "/xdg-nosave' '" G3_TEST_TMP "/xdg-default'"), 0);
    char *out = chat("XDG_DATA_HOME=" G3_TEST_TMP "/xdg-nosave", "--no-save " FLAGS, "Hello\n/list\n", &status);
    assert_int_equal(status, 0);
    expect_in(out, "the conversation store is off (--no-save)");
    free(out);
    assert_false(exists(G3_TEST_TMP "/xdg-nosave"));

    /* without --db: the user's data folder (the store makes its gemma-chat
     * folder in it); /title before the first answer */
    assert_int_equal(system("mkdir -p '" G3_TEST_TMP "/xdg-default'"), 0);
    out = chat("XDG_DATA_HOME=" G3_TEST_TMP "/xdg-default", FLAGS, "/title Early title\nHello\n", &status);
    assert_int_equal(status, 0);
    free(out);
    g3_store *st = open_store(G3_TEST_TMP "/xdg-default/gemma-chat/chats.db");
    g3_error err;
    g3_store_conv c;
    assert_int_equal(g3_store_get(st, 1, &c, &err), 0);
    assert_string_equal(c.title, "Early title");
    assert_int_equal(c.n_turns, 2);
    g3_store_conv_free(&c);
    g3_store_close(st);
}

static void test_unopenable_store_is_refused(void **state) {
    (void)state;
    int status;
    assert_int_equal(system("rm -rf '" G3_TEST_TMP "/store-dir' && mkdir -p '" G3_TEST_TMP "/store-dir'"), 0);
    char *out = chat(NULL, "--db " G3_TEST_TMP "/store-dir " FLAGS, "Hello\n", &status);
    assert_int_not_equal(status, 0);
    expect_in(out, G3_TEST_TMP "/store-dir");
    expect_in(out, "--no-save");
    free(out);

    char garbage[4096];
    uint64_t seed = 7;
    for (size_t i = 0; i < sizeof garbage; i++) garbage[i] = (char)(tu_randf(&seed) * 127);
    const char *path = G3_TEST_TMP "/garbage.db";
    remove_db(path);
    assert_int_equal(tu_write_file(path, garbage, sizeof garbage), 0);
    out = chat(NULL, "--db " G3_TEST_TMP "/garbage.db " FLAGS, "Hello\n", &status);
    assert_int_not_equal(status, 0);
    expect_in(out, path);
    expect_in(out, "--no-save");
    free(out);
    size_t size;
    uint8_t *after = tu_read_file(path, &size);
    assert_non_null(after);
    assert_int_equal(size, sizeof garbage);
    assert_memory_equal(after, garbage, sizeof garbage);
    free(after);

    out = chat(NULL, "--no-save --resume " FLAGS, "Hello\n", &status);
    assert_int_equal(status, 2);
    free(out);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_turns_are_saved_and_resumed),
        cmocka_unit_test(test_reset_and_open),
        cmocka_unit_test(test_no_save_and_the_default_store),
        cmocka_unit_test(test_unopenable_store_is_refused),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
