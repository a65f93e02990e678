/* test_conversation: turns, JSON save/load (a bad file never damages the
 * open conversation or an existing file), presets, document attachments. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cmocka.h>

#include "gemma3_chat.h"
#include "gemma3_media.h"
#include "test_util.h"

static void fill(g3_conversation *c) {
    g3_error err;
    int32_t ids[3] = {5, 6, 7};
    assert_int_equal(g3_conversation_set_system(c, "Be \"brief\".\nPlease.", &err), 0);
    assert_int_equal(g3_conversation_add(c, G3_ROLE_USER, "héllo <start_of_turn> \xF0\x9F\x98\x80", NULL, 0, &err), 0);
    assert_int_equal(g3_conversation_add(c, G3_ROLE_MODEL, "hi", ids, 3, &err), 0);
}

static void test_roles_alternate(void **state) {
    g3_conversation c;
    g3_conversation_init(&c);
    g3_error err;
    assert_int_equal(g3_conversation_add(&c, G3_ROLE_MODEL, "x", NULL, 0, &err), -1);
    assert_non_null(strstr(err.msg, "turn 1 must be a user turn"));
    fill(&c);
    assert_int_equal(g3_conversation_add(&c, G3_ROLE_MODEL, "x", NULL, 0, &err), -1);
    g3_conversation_pop(&c);
    assert_int_equal(c.n_turns, 1);
    g3_conversation_clear(&c);
    assert_int_equal(c.n_turns, 0);
    assert_string_equal(c.system, "Be \"brief\".\nPlease.");
    g3_conversation_free(&c);
}

static void test_json_round_trip(void **state) {
    g3_conversation a, b;
    g3_conversation_init(&a);
    g3_conversation_init(&b);
    fill(&a);
    g3_error err;
    const char *path = G3_TEST_TMP "/conv.json";
    assert_int_equal(g3_conversation_save(&a, path, &err), 0);
    assert_int_equal(access(G3_TEST_TMP "/conv.json.tmp", F_OK), -1);
    assert_int_equal(g3_conversation_load(&b, path, &err), 0);
    assert_string_equal(b.system, a.system);
    assert_int_equal(b.n_turns, 2);
    assert_string_equal(b.turns[0].text, a.turns[0].text);
    assert_int_equal(b.turns[1].role, G3_ROLE_MODEL);
    assert_int_equal(b.turns[1].n_ids, 3);
    assert_int_equal(b.turns[1].ids[2], 7);
    g3_conversation_free(&a);
    g3_conversation_free(&b);
}

static void test_bad_files_leave_the_conversation_alone(void **state) {
    g3_conversation c;
    g3_conversation_init(&c);
    fill(&c);
    g3_error err;
    const char *bad[] = {
        "{not json",
        "{\"format\": \"something-else\", \"turns\": []}",
        "{\"format\": \"gemma-chat-conversation\", \"turns\": [{\"role\": \"model\", \"text\": \"x\"}]}",
        "{\"format\": \"gemma-chat-conversation\", \"turns\": [{\"role\": \"wizard\", \"text\": \"x\"}]}",
        "{\"format\": \"gemma-chat-conversation\", \"turns\": [{\"role\": \"user\"}]}",
        "{\"format\": \"gemma-chat-conversation\", \"turns\": [{\"role\": \"user\", \"text\": \"a\"},"
        " {\"role\": \"model\", \"text\": \"b\", \"ids\": [1, -3]}]}",
        "{\"format\": \"gemma-chat-conversation\", \"system\": 5, \"turns\": []}",
    };
    const char *expect[] = {"not valid JSON", "not a gemma-chat conversation", "turn 1 must be a user turn",
                            "unknown role 'wizard'", "turn 1 needs string", "is not a token id", "\"system\" must be"};
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        const char *path = G3_TEST_TMP "/bad-conv.json";
        assert_int_equal(tu_write_file(path, bad[i], strlen(bad[i])), 0);
        assert_int_equal(g3_conversation_load(&c, path, &err), -1);
        if (!strstr(err.msg, expect[i])) fail_msg("case %zu: '%s' lacks '%s'", i, err.msg, expect[i]);
        assert_int_equal(c.n_turns, 2); /* untouched */
        assert_string_equal(c.turns[1].text, "hi");
    }
    assert_int_equal(g3_conversation_load(&c, G3_TEST_TMP "/no-such-file.json", &err), -1);
    assert_non_null(strstr(err.msg, "cannot open"));
    /* saving where it cannot be written fails and creates nothing */
    assert_int_equal(g3_conversation_save(&c, G3_TEST_TMP "/no-such-dir/x.json", &err), -1);
    assert_non_null(strstr(err.msg, "no-such-dir"));
    g3_conversation_free(&c);
}

/* The version is checked: a newer file is refused with a reason, not
 * half-read; files without a version (hand-made) or with 1 load. */
static void test_versions(void **state) {
    g3_conversation c;
    g3_conversation_init(&c);
    g3_error err;
    const char *path = G3_TEST_TMP "/version-conv.json";
    const char *bad[] = {
        "{\"format\": \"gemma-chat-conversation\", \"version\": 99, \"turns\": []}",
        "{\"format\": \"gemma-chat-conversation\", \"version\": \"1\", \"turns\": []}",
        "{\"format\": \"gemma-chat-conversation\", \"version\": 0, \"turns\": []}",
        "{\"format\": \"gemma-chat-conversation\", \"version\": 1.5, \"turns\": []}",
        "{\"format\": \"gemma-chat-conversation\", \"version\": 1e300, \"turns\": []}",
    };
    const char *expect[] = {"\"version\" is 99, newer than this gemma-chat reads (1)", "must be a whole number",
                            "must be a whole number", "must be a whole number", "must be a whole number"};
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        assert_int_equal(tu_write_file(path, bad[i], strlen(bad[i])), 0);
        assert_int_equal(g3_conversation_load(&c, path, &err), -1);
        if (!strstr(err.msg, expect[i])) fail_msg("case %zu: '%s' lacks '%s'", i, err.msg, expect[i]);
        assert_non_null(strstr(err.msg, path)); /* names the file */
    }
    const char *good[] = {
        "{\"format\": \"gemma-chat-conversation\", \"version\": 1, \"turns\": [{\"role\": \"user\", \"text\": \"a\"}]}",
        "{\"format\": \"gemma-chat-conversation\", \"turns\": [{\"role\": \"user\", \"text\": \"a\"}]}",
    };
    for (size_t i = 0; i < sizeof good / sizeof good[0]; i++) {
        assert_int_equal(tu_write_file(path, good[i], strlen(good[i])), 0);
        if (g3_conversation_load(&c, path, &err)) fail_msg("case %zu: %s", i, err.msg);
        assert_int_equal(c.n_turns, 1);
        assert_int_equal(c.model.n_vocab, 0); /* no record: none invented */
    }
    g3_conversation_free(&c);
}

/* The model record (name, vocabulary size, fingerprint) survives a save and
 * load, clear keeps it, and a malformed one is refused. */
static void test_model_record(void **state) {
    g3_conversation a, b;
    g3_conversation_init(&a);
    g3_conversation_init(&b);
    fill(&a);
    snprintf(a.model.name, sizeof a.model.name, "Gemma 3 1B");
    a.model.n_vocab = 262144;
    a.model.vocab_fingerprint = 0xfedcba9876543210ull; /* above 2^53: would not survive as a JSON number */
    g3_error err;
    const char *path = G3_TEST_TMP "/record-conv.json";
    assert_int_equal(g3_conversation_save(&a, path, &err), 0);
    char *json = (char *)tu_read_file(path, NULL);
    assert_non_null(strstr(json, "\"vocab_fingerprint\":\t\"fedcba9876543210\""));
    free(json);
    assert_int_equal(g3_conversation_load(&b, path, &err), 0);
    assert_string_equal(b.model.name, "Gemma 3 1B");
    assert_int_equal(b.model.n_vocab, 262144);
    assert_true(b.model.vocab_fingerprint == 0xfedcba9876543210ull);
    g3_conversation_clear(&b);
    assert_int_equal(b.model.n_vocab, 262144);
    const char *bad[] = {
        "{\"format\": \"gemma-chat-conversation\", \"model\": 5, \"turns\": []}",
        "{\"format\": \"gemma-chat-conversation\", \"model\": {\"name\": \"x\", \"n_vocab\": -1, "
        "\"vocab_fingerprint\": \"0123456789abcdef\"}, \"turns\": []}",
        "{\"format\": \"gemma-chat-conversation\", \"model\": {\"name\": \"x\", \"n_vocab\": 10, "
        "\"vocab_fingerprint\": \"0123\"}, \"turns\": []}",
        "{\"format\": \"gemma-chat-conversation\", \"model\": {\"n_vocab\": 10, "
        "\"vocab_fingerprint\": \"0123456789abcdef\"}, \"turns\": []}",
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        assert_int_equal(tu_write_file(path, bad[i], strlen(bad[i])), 0);
        assert_int_equal(g3_conversation_load(&b, path, &err), -1);
        if (!strstr(err.msg, "\"model\" must be")) fail_msg("case %zu: '%s'", i, err.msg);
    }
    /* no record, nothing written */
    g3_conversation_free(&a);
    g3_conversation_init(&a);
    fill(&a);
    json = g3_conversation_to_json(&a);
    assert_null(strstr(json, "\"model\":")); /* (a role is "model" too) */
    free(json);
    g3_conversation_free(&a);
    g3_conversation_free(&b);
}

static void test_presets(void **state) {
    assert_int_equal(g3_preset_count(), 7);
    const char *keys[] = {"general", "document", "visual", "tutor", "reviewer", "storyteller", "custom"};
    for (size_t i = 0; i < 7; i++) {
        const g3_preset *p = g3_preset_find(keys[i]);
        assert_non_null(p);
        assert_ptr_equal(g3_preset_find(p->name), p);
        assert_true(i == 6 ? p->system_prompt[0] == 0 : strlen(p->system_prompt) > 100);
    }
    assert_ptr_equal(g3_preset_find("DOCUMENT ANALYZER"), g3_preset_find("document"));
    assert_null(g3_preset_find("pirate"));
}

static void test_documents(void **state) {
    g3_error err;
    char *text;
    size_t replaced;
    const char *path = G3_TEST_TMP "/notes.md";
    assert_int_equal(tu_write_file(path, "# Title\nbody", 12), 0);
    assert_int_equal(g3_document_read(path, G3_DOCUMENT_MAX_BYTES, &text, &replaced, &err), 0);
    assert_string_equal(text, "File: notes.md\n```\n# Title\nbody\n```\n");
    assert_int_equal(replaced, 0);
    free(text);
    /* UTF-8 with one stray byte keeps its text (bytes that are mostly not
     * UTF-8 would be read as Windows-1252 instead) */
    assert_int_equal(tu_write_file(path, "\xC3\xA9t\xC3\xA9 \xFF", 7), 0);
    assert_int_equal(g3_document_read(path, G3_DOCUMENT_MAX_BYTES, &text, &replaced, &err), 0);
    assert_int_equal(replaced, 1);
    assert_non_null(strstr(text, "\xC3\xA9t\xC3\xA9 \xEF\xBF\xBD"));
    free(text);
    assert_int_equal(tu_write_file(path, "%PDF-1.7 ...", 12), 0);
    assert_int_equal(g3_document_read(path, G3_DOCUMENT_MAX_BYTES, &text, &replaced, &err), -1);
    assert_non_null(strstr(err.msg, "PDF"));
    assert_int_equal(tu_write_file(path, "ab\0cd", 5), 0);
    assert_int_equal(g3_document_read(path, G3_DOCUMENT_MAX_BYTES, &text, &replaced, &err), -1);
    assert_non_null(strstr(err.msg, "binary"));
    assert_int_equal(tu_write_file(path, "0123456789", 10), 0);
    assert_int_equal(g3_document_read(path, 9, &text, &replaced, &err), -1);
    assert_non_null(strstr(err.msg, "limit"));
    assert_int_equal(g3_document_read(G3_TEST_TMP, 100, &text, &replaced, &err), -1);
    assert_non_null(strstr(err.msg, "not a regular file"));
}

/* Video frames given as bytes: the frames of one video share one buffer (the
 * first owns it; freeing frees it once: ASan checks); saved as JSON and
 * loaded back, each frame has the bytes. */
static void test_video_frames_as_bytes(void **state) {
    (void)state;
    g3_error err;
    uint8_t *bytes = malloc(6);
    assert_non_null(bytes);
    memcpy(bytes, "\0\0\0\0ftyp", 6);
    g3_part parts[] = {
        {.type = G3_PART_TEXT, .text = "Frame 0.00:"},
        {.type = G3_PART_VIDEO_FRAME, .data = bytes, .data_len = 6, .frame = 0, .n_frames = 2},
        {.type = G3_PART_TEXT, .text = "Frame 2.00:"},
        {.type = G3_PART_VIDEO_FRAME, .data = bytes, .data_len = 6, .shares_data = true, .seconds = 2.0, .frame = 1,
         .n_frames = 2},
        {.type = G3_PART_TEXT, .text = "What moves?"},
    };
    g3_conversation a, b;
    g3_conversation_init(&a);
    g3_conversation_init(&b);
    assert_int_equal(g3_conversation_add_parts(&a, parts, 5, &err), 0);
    free(bytes);
    const g3_part *p = a.turns[0].parts;
    assert_ptr_equal(p[3].data, p[1].data);
    assert_false(p[1].shares_data);
    assert_true(p[3].shares_data);
    assert_string_equal(a.turns[0].text, "Frame 0.00: Frame 2.00: What moves?");
    char *json = g3_conversation_to_json(&a);
    assert_non_null(json);
    assert_int_equal(g3_conversation_from_json(&b, json, &err), 0);
    free(json);
    const g3_part *q = b.turns[0].parts;
    assert_int_equal(b.turns[0].n_parts, 5);
    for (int i = 1; i <= 3; i += 2) {
        assert_int_equal(q[i].type, G3_PART_VIDEO_FRAME);
        assert_int_equal(q[i].data_len, 6);
        assert_memory_equal(q[i].data, "\0\0\0\0ftyp", 6);
        assert_int_equal(q[i].frame, (uint32_t)(i / 2));
    }
    assert_true(q[3].seconds == 2.0);
    g3_conversation_free(&a);
    g3_conversation_free(&b);
    /* a path and bytes both: refused */
    uint8_t other[6] = {0};
    parts[1].path = "x.mp4";
    parts[1].data = other;
    assert_int_equal(g3_conversation_add_parts(&a, parts, 2, &err), -1);
    g3_conversation_free(&a);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_roles_alternate), cmocka_unit_test(test_json_round_trip),
        cmocka_unit_test(test_bad_files_leave_the_conversation_alone), cmocka_unit_test(test_versions),
        cmocka_unit_test(test_model_record), cmocka_unit_test(test_presets),
        cmocka_unit_test(test_documents), cmocka_unit_test(test_video_frames_as_bytes),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
