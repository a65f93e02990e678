/* test_default_model: `run` and `chat` without -m use the default model
 * (Gemma 3 270M at <repo>/models/, fetched by scripts/get-model.sh) and say
 * so on their first line on stderr; a missing default names the places
 * tried and how to get it; -m at a directory or a non-GGUF file names it.
 *
 * The lookup is exercised with copies of the binary in throwaway folder
 * layouts (the executable's folder is what counts, so a symlink would not
 * do) and the tiny golden model standing in for the default file; the real
 * model, when scripts/get-model.sh has fetched it, once as it ships. */
#include <setjmp.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cmocka.h>

#include "gemma3_chat.h"
#include "test_util.h"

#define TINY_MODEL G3_GOLDEN_DIR "/tiny-gemma3/models/g3-1b-s1234-f32.gguf"
#define ROOT G3_TEST_TMP "/default-model"
#define FLAGS "--temp 0 --repeat-penalty 1 -n 3"

typedef struct result {
    int status;
    char *out, *err; /* stdout, stderr */
} result;

/* Runs `cd DIR && ENV BINARY ARGS`, without G3_DEFAULT_MODEL unless ENV sets it. */
static result run_in(const char *dir, const char *env, const char *binary, const char *args) {
    char cmd[8192];
    if ((size_t)snprintf(cmd, sizeof cmd, "cd '%s' && env -u G3_DEFAULT_MODEL %s '%s' %s 2>'%s/stderr.txt' </dev/null",
                         dir, env ? env : "", binary, args, ROOT) >= sizeof cmd)
        fail_msg("command too long");
    result r;
    r.out = tu_run(cmd, &r.status);
    assert_non_null(r.out);
    r.err = (char *)tu_read_file(ROOT "/stderr.txt", NULL);
    assert_non_null(r.err);
    return r;
}

static void result_free(result *r) {
    free(r->out);
    free(r->err);
}

static void expect_first_line(const result *r, const char *want) {
    const size_t n = strlen(want);
    if (strncmp(r->err, want, n) != 0 || r->err[n] != '\n')
        fail_msg("stderr's first line is not '%s':\n%s", want, r->err);
}

static void expect(const char *text, const char *needle) {
    if (!strstr(text, needle)) fail_msg("'%s' not in:\n%s", needle, text);
}

static void sh(const char *cmd) {
    int status;
    char *out = tu_run(cmd, &status);
    assert_non_null(out);
    if (status != 0) fail_msg("'%s' failed: %s", cmd, out);
    free(out);
}

/* ROOT/repo/build/gemma-chat with ROOT/repo/models/<default> (the tiny
 * model), and ROOT/elsewhere/bin/gemma-chat with nothing beside it. */
static int make_layouts(void **state) {
    char cmd[8192];
    snprintf(cmd, sizeof cmd,
             "rm -rf '%s' && mkdir -p '%s/repo/build' '%s/repo/models' '%s/elsewhere/bin' '%s/empty' && "
             "cp '%s' '%s/repo/build/gemma-chat' && cp '%s' '%s/elsewhere/bin/gemma-chat' && "
             "ln -s '%s' '%s/repo/" G3_DEFAULT_MODEL_PATH "'",
             ROOT, ROOT, ROOT, ROOT, ROOT, G3_BINARY, ROOT, G3_BINARY, ROOT, TINY_MODEL, ROOT);
    sh(cmd);
    return 0;
}

static void test_beside_the_executable(void **state) {
    /* from any current directory: <exe dir>/../models/ */
    result r = run_in(ROOT "/empty", NULL, ROOT "/repo/build/gemma-chat", "run -p 'Hello, how are you?' " FLAGS);
    assert_int_equal(r.status, 0);
    expect_first_line(&r, "gemma-chat: Gemma 3 270M (default, " ROOT "/repo/" G3_DEFAULT_MODEL_PATH ")");
    assert_true(strlen(r.out) > 1); /* answered */
    result_free(&r);
    /* from the repository: shown relative, as the README says */
    r = run_in(ROOT "/repo", NULL, ROOT "/repo/build/gemma-chat", "run -p 'Hello, how are you?' " FLAGS);
    assert_int_equal(r.status, 0);
    expect_first_line(&r, "gemma-chat: Gemma 3 270M (default, " G3_DEFAULT_MODEL_PATH ")");
    result_free(&r);
    /* chat too (piped: no prompt) */
    r = run_in(ROOT "/empty", NULL, ROOT "/repo/build/gemma-chat", "chat --no-save " FLAGS);
    assert_int_equal(r.status, 0);
    expect_first_line(&r, "gemma-chat: Gemma 3 270M (default, " ROOT "/repo/" G3_DEFAULT_MODEL_PATH ")");
    result_free(&r);
}

static void test_current_directory(void **state) {
    /* nothing beside the executable: ./models/ */
    result r = run_in(ROOT "/repo", NULL, ROOT "/elsewhere/bin/gemma-chat", "run -p 'Hello, how are you?' " FLAGS);
    assert_int_equal(r.status, 0);
    expect_first_line(&r, "gemma-chat: Gemma 3 270M (default, " G3_DEFAULT_MODEL_PATH ")");
    result_free(&r);
}

static void test_environment_variable(void **state) {
    result r = run_in(ROOT "/empty", "G3_DEFAULT_MODEL=" TINY_MODEL, ROOT "/elsewhere/bin/gemma-chat",
                      "run -p 'Hello, how are you?' " FLAGS);
    assert_int_equal(r.status, 0);
    expect_first_line(&r, "gemma-chat: " TINY_MODEL " (default from G3_DEFAULT_MODEL)");
    result_free(&r);
    /* set, it is the only place looked at: a wrong value is an error, not a fallback */
    r = run_in(ROOT "/repo", "G3_DEFAULT_MODEL=" ROOT "/no-such.gguf", ROOT "/repo/build/gemma-chat",
               "run -p Hi " FLAGS);
    assert_int_equal(r.status, 1);
    expect(r.err, "G3_DEFAULT_MODEL=" ROOT "/no-such.gguf does not exist");
    expect(r.err, "-m FILE");
    result_free(&r);
    /* -m wins over everything */
    r = run_in(ROOT "/empty", "G3_DEFAULT_MODEL=" ROOT "/no-such.gguf", ROOT "/elsewhere/bin/gemma-chat",
               "run -m " TINY_MODEL " -p 'Hello, how are you?' " FLAGS);
    assert_int_equal(r.status, 0);
    assert_null(strstr(r.err, "default"));
    result_free(&r);
}

static void test_missing_default(void **state) {
    const char *cmds[] = {"run -p Hi " FLAGS, "chat --no-save " FLAGS};
    for (size_t i = 0; i < 2; i++) {
        result r = run_in(ROOT "/empty", NULL, ROOT "/elsewhere/bin/gemma-chat", cmds[i]);
        assert_int_equal(r.status, 1);
        expect(r.err, "the default model (Gemma 3 270M) is not there");
        expect(r.err, ROOT "/elsewhere/" G3_DEFAULT_MODEL_PATH);
        expect(r.err, ROOT "/empty/" G3_DEFAULT_MODEL_PATH);
        expect(r.err, "bash scripts/get-model.sh");
        expect(r.err, "-m FILE");
        assert_string_equal(r.out, "");
        result_free(&r);
    }
}

/* -m at something that is not a model: the message names it, exit 1. */
static void test_model_path_errors(void **state) {
    sh("printf 'just some text\\n' > '" ROOT "/notes.txt' && : > '" ROOT "/empty.gguf'");
    const struct { const char *path, *why; } cases[] = {
        {ROOT "/empty", "is a directory, not a model: give a Gemma 3 .gguf file with -m FILE"},
        {ROOT "/notes.txt", "not a GGUF file"},
        {ROOT "/empty.gguf", "empty.gguf"},
        {ROOT "/no-such.gguf", "no-such.gguf"},
    };
    const char *cmds[] = {"run -p Hi -m", "chat -m", "info -m"};
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++)
        for (size_t k = 0; k < 3; k++) {
            char args[1024];
            snprintf(args, sizeof args, "%s '%s'", cmds[k], cases[i].path);
            result r = run_in(ROOT, NULL, G3_BINARY, args);
            if (r.status != 1) fail_msg("%s: exit %d\n%s", args, r.status, r.err);
            expect(r.err, cases[i].path);
            expect(r.err, cases[i].why);
            result_free(&r);
        }
}

/* The real default model, where scripts/get-model.sh has put it beside the
 * build folder: exactly the README's first line. */
static void test_real_default_model(void **state) {
    char path[4096];
    snprintf(path, sizeof path, "%s", G3_BINARY);
    char *slash = strrchr(path, '/');
    assert_non_null(slash);
    *slash = 0;
    slash = strrchr(path, '/');
    assert_non_null(slash);
    snprintf(slash, sizeof path - (size_t)(slash - path), "/%s", G3_DEFAULT_MODEL_PATH);
    if (access(path, R_OK) != 0) {
        printf("skipped: %s is absent (bash scripts/get-model.sh fetches it)\n", path);
        skip();
    }
    char repo[4096];
    snprintf(repo, sizeof repo, "%.*s", (int)(strlen(path) - strlen(G3_DEFAULT_MODEL_PATH) - 1), path);
    result r = run_in(repo, NULL, G3_BINARY, "run -p 'The capital of France is' --temp 0 -n 4");
    assert_int_equal(r.status, 0);
    expect_first_line(&r, "gemma-chat: Gemma 3 270M (default, " G3_DEFAULT_MODEL_PATH ")");
    assert_true(strlen(r.out) > 1);
    printf("answer: %s", r.out);
    result_free(&r);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_beside_the_executable), cmocka_unit_test(test_current_directory),
        cmocka_unit_test(test_environment_variable),  cmocka_unit_test(test_missing_default),
        cmocka_unit_test(test_model_path_errors),     cmocka_unit_test(test_real_default_model),
    };
    return cmocka_run_group_tests(tests, make_layouts, NULL);
}
