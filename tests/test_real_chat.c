/* test_real_chat: the CLI on the real Gemma 3 270M (models/, fetched by
 * scripts/get-model.sh; env G3_REAL_MODEL overrides the path). Skipped, with
 * a message, when the file is absent.
 *
 * The packaged file holds the *pretrained* 270M (its metadata: "Gemma 3
 * 270m", no chat template; converted from google/gemma-3-270m): it completes
 * text and does not follow chat turns. So the questions go in as a
 * completion ("Question: ...\nAnswer:", `run --raw`), the form a base model
 * answers; the chat path is held to `eval` on the same template tokens, whose
 * logits tools/reference/ checks independently.
 * - facts a 270M model knows come out at temperature 0;
 * - `run` with the chat template prints exactly the text of `eval`'s greedy
 *   ids for the hand-written template (the template, BOS handling and the
 *   streaming detokenizer on the real 262144-token vocabulary);
 * - the sampler on real logits: a seed reproduces its text, top-k 1 is
 *   greedy whatever the temperature, and the output is valid UTF-8. */
#include <setjmp.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cmocka.h>

#include "gemma3.h"
#include "test_util.h"

static char g_model[4096];

/* G3_REAL_MODEL, else <dir of the binary>/../models/<file>: where
 * scripts/get-model.sh puts it for a build folder in the repository. */
static bool find_model(void) {
    const char *env = getenv("G3_REAL_MODEL");
    if (env && *env) snprintf(g_model, sizeof g_model, "%s", env);
    else {
        snprintf(g_model, sizeof g_model, "%s", G3_BINARY);
        char *slash = strrchr(g_model, '/');
        if (!slash) return false;
        snprintf(slash, sizeof g_model - (size_t)(slash - g_model), "/../models/gemma-3-270m-q4_k_m.gguf");
    }
    return access(g_model, R_OK) == 0;
}

#define NEED_MODEL()                                                                                         \
    do {                                                                                                     \
        if (!find_model()) {                                                                                 \
            print_message("real model not found (%s): run 'bash scripts/get-model.sh'\n", g_model);          \
            skip();                                                                                          \
        }                                                                                                    \
    } while (0)

static bool valid_utf8(const char *s) {
    const unsigned char *p = (const unsigned char *)s;
    while (*p) {
        int n = *p < 0x80 ? 0 : (*p & 0xE0) == 0xC0 ? 1 : (*p & 0xF0) == 0xE0 ? 2 : (*p & 0xF8) == 0xF0 ? 3 : -1;
        if (n < 0 || (n == 1 && *p < 0xC2)) return false;
        p++;
        for (int i = 0; i < n; i++, p++)
            if ((*p & 0xC0) != 0x80) return false;
    }
    return true;
}

static char *run_ok(const char *cmd) {
    int status;
    char *out = tu_run(cmd, &status);
    assert_non_null(out);
    if (status != 0) fail_msg("'%s' exited with %d", cmd, status);
    assert_true(valid_utf8(out));
    return out;
}

static char *complete(const char *question, int n) {
    char cmd[8192];
    snprintf(cmd, sizeof cmd, "%s run -m '%s' --raw --temp 0 -n %d -p 'Question: %s\nAnswer:' 2>/dev/null", G3_BINARY,
             g_model, n, question);
    return run_ok(cmd);
}

static void test_answers_simple_questions(void **state) {
    (void)state;
    NEED_MODEL();
    static const char *const cases[][2] = {
        {"What is the capital of France?", "Paris"},
        {"What is the capital of Japan?", "Tokyo"},
        {"What is the largest planet in the solar system?", "Jupiter"},
        {"What is the chemical symbol for water?", "H2O"},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        char *out = complete(cases[i][0], 8);
        if (!strstr(out, cases[i][1])) fail_msg("'%s' -> '%s' (expected '%s' in it)", cases[i][0], out, cases[i][1]);
        free(out);
    }
}

/* `run -p Q` renders <bos><start_of_turn>user\nQ<end_of_turn>\n<start_of_turn>model\n
 * (empty system prompt with --preset custom); `eval --prompt-file` adds <bos>
 * and parses the control tokens of the same text written by hand. */
static void test_run_prints_the_greedy_continuation_of_the_template(void **state) {
    (void)state;
    NEED_MODEL();
    static const char *const questions[] = {"What is the capital of France?", "Write a haiku about the sea."};
    for (size_t q = 0; q < sizeof questions / sizeof questions[0]; q++) {
        char prompt[512], path[512], cmd[8192];
        snprintf(prompt, sizeof prompt, "<start_of_turn>user\n%s<end_of_turn>\n<start_of_turn>model\n", questions[q]);
        snprintf(path, sizeof path, G3_TEST_TMP "/real_chat_prompt_%zu.txt", q);
        assert_int_equal(tu_write_file(path, prompt, strlen(prompt)), 0);

        snprintf(cmd, sizeof cmd, "%s eval -m '%s' --prompt-file %s --generate 24 2>/dev/null", G3_BINARY, g_model, path);
        char *ids_json = run_ok(cmd);
        int64_t *ids;
        long n = tu_parse_int_array(ids_json, &ids);
        assert_int_equal(n, 24);
        char list[1024] = "";
        for (long i = 0; i < n; i++) {
            /* The answer is cut where a turn would end (106, or <eos> 1). */
            if (ids[i] == 106 || ids[i] == 1) break;
            snprintf(list + strlen(list), sizeof list - strlen(list), "%s%lld", i ? "," : "", (long long)ids[i]);
        }
        snprintf(cmd, sizeof cmd, "%s detokenize -m '%s' --ids %s 2>/dev/null", G3_BINARY, g_model, list);
        char *want = run_ok(cmd);

        snprintf(cmd, sizeof cmd, "%s run -m '%s' --preset custom --temp 0 --repeat-penalty 1 -n 24 -p '%s' 2>/dev/null",
                 G3_BINARY, g_model, questions[q]);
        char *got = run_ok(cmd);
        size_t lw = strlen(want), lg = strlen(got);
        while (lw && want[lw - 1] == '\n') want[--lw] = 0;
        while (lg && got[lg - 1] == '\n') got[--lg] = 0;
        if (strcmp(want, got)) fail_msg("run printed '%s', eval's greedy ids are '%s'", got, want);
        assert_true(lg > 0);
        free(ids_json), free(ids), free(want), free(got);
    }
}

static void test_sampler_on_real_logits(void **state) {
    (void)state;
    NEED_MODEL();
    char cmd[8192];
    const char *q = "Tell me about the sea.";
    snprintf(cmd, sizeof cmd, "%s run -m '%s' --temp 0.9 --seed 7 -n 24 -p '%s' 2>/dev/null", G3_BINARY, g_model, q);
    char *a = run_ok(cmd), *b = run_ok(cmd);
    assert_string_equal(a, b);
    snprintf(cmd, sizeof cmd, "%s run -m '%s' --temp 0.9 --seed 8 -n 24 -p '%s' 2>/dev/null", G3_BINARY, g_model, q);
    char *c = run_ok(cmd);
    snprintf(cmd, sizeof cmd, "%s run -m '%s' --temp 0.9 --seed 9 -n 24 -p '%s' 2>/dev/null", G3_BINARY, g_model, q);
    char *d = run_ok(cmd);
    /* Three seeds at temperature 0.9 over 24 tokens: all equal would mean the
     * seed is ignored or the draw is greedy. */
    assert_false(!strcmp(a, c) && !strcmp(a, d));

    snprintf(cmd, sizeof cmd, "%s run -m '%s' --temp 1.5 --top-k 1 --seed 3 -n 16 -p '%s' 2>/dev/null", G3_BINARY, g_model,
             q);
    char *topk1 = run_ok(cmd);
    snprintf(cmd, sizeof cmd, "%s run -m '%s' --temp 0 -n 16 -p '%s' 2>/dev/null", G3_BINARY, g_model, q);
    char *greedy = run_ok(cmd);
    assert_string_equal(topk1, greedy);
    free(a), free(b), free(c), free(d), free(topk1), free(greedy);
}

/* The packaged file is the pretrained model (no chat template: the chat
 * says so), the golden models were converted with one. */
static void test_pretrained_is_recognized(void **state) {
    (void)state;
    g3_model *m;
    g3_error err;
    if (g3_model_load(G3_GOLDEN_DIR "/tiny-gemma3/models/g3-1b-s1234-q4_0.gguf", &m, &err)) fail_msg("%s", err.msg);
    assert_true(g3_model_is_instruction_tuned(m));
    g3_model_free(m);
    NEED_MODEL();
    if (g3_model_load(g_model, &m, &err)) fail_msg("%s", err.msg);
    assert_false(g3_model_is_instruction_tuned(m));
    g3_model_free(m);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_answers_simple_questions),
        cmocka_unit_test(test_run_prints_the_greedy_continuation_of_the_template),
        cmocka_unit_test(test_sampler_on_real_logits),
        cmocka_unit_test(test_pretrained_is_recognized),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
