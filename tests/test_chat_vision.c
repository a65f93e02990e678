/* test_chat_vision: images through the prompt layout, the session and the CLI.
 * - `eval --mmproj --image --image-wrap golden` reproduces the golden image
 *   case (logits of every text position, greedy ids), one pass and chunked;
 * - a session given [image, question] with the golden wrap renders the golden
 *   layout and answers with the golden greedy continuation; a follow-up
 *   question reuses the image from the KV cache and matches a full re-prefill;
 * - the official wrap puts "\n\n" around the image, merged with the text as
 *   the Gemma 3 processor's string replacement does;
 * - images without a vision encoder are refused clearly. */
#include <cjson/cJSON.h>
#include <math.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#define STB_IMAGE_WRITE_IMPLEMENTATION
#include <stb/stb_image_write.h>

#include "chat/prompt.h"
#include "gemma3_chat.h"
#include "gemma3_vision.h"
#include "test_util.h"

#define TINY G3_GOLDEN_DIR "/tiny-gemma3"
#define MODEL TINY "/models/g3-1b-s1234-f32.gguf"
#define MMPROJ TINY "/models/mmproj-g3-s99-f32.gguf"
#define IMAGE TINY "/vision/img1_64x64.png"
#define N_VOCAB 796

static cJSON *layout(void) {
    char *text = (char *)tu_read_file(TINY "/vision/img1-f32.layout.json", NULL);
    assert_non_null(text);
    cJSON *j = cJSON_Parse(text);
    free(text);
    assert_non_null(j);
    return j;
}

static float max_diff(const float *a, const float *b, size_t n) {
    float m = 0;
    for (size_t i = 0; i < n; i++) {
        float d = fabsf(a[i] - b[i]);
        if (!(d <= m)) m = d;
    }
    return m;
}

static void eval_cli(const char *chunk) {
    char cmd[2048];
    snprintf(cmd, sizeof cmd,
             "%s eval -m %s --mmproj %s --image %s --image-wrap golden --prompt-file %s/prompts/vis_chat.txt "
             "--logits %s/vis.f32 --generate 20 %s 2>&1",
             G3_BINARY, MODEL, MMPROJ, IMAGE, TINY, G3_TEST_TMP, chunk);
    int status;
    char *out = tu_run(cmd, &status);
    if (status != 0) fail_msg("%s\n%s", cmd, out);
    size_t n_ours, n_ref;
    float *ours = (float *)tu_read_file(G3_TEST_TMP "/vis.f32", &n_ours);
    float *ref = (float *)tu_read_file(TINY "/vision/img1-f32.logits.f32", &n_ref);
    assert_int_equal(n_ours, n_ref);
    float d = max_diff(ours, ref, n_ref / sizeof(float));
    printf("eval image case %s: max |d| vs llama.cpp = %.3g\n", chunk, d);
    assert_true(d <= 5e-3f);
    int64_t *greedy;
    long n = tu_parse_int_array(strrchr(out, '['), &greedy);
    cJSON *j = layout();
    const cJSON *want = cJSON_GetObjectItem(j, "greedy");
    assert_int_equal(n, cJSON_GetArraySize(want));
    for (long i = 0; i < n; i++) assert_int_equal(greedy[i], cJSON_GetArrayItem(want, (int)i)->valueint);
    cJSON_Delete(j);
    free(greedy);
    free(out);
    free(ours);
    free(ref);
}

static void test_eval_reproduces_the_golden_image_case(void **state) {
    eval_cli("");
    eval_cli("--chunk 7");
}

static void test_session_with_an_image(void **state) {
    g3_model *model;
    g3_vision *vision;
    g3_error err;
    if (g3_model_load(MODEL, &model, &err) || g3_vision_load(MMPROJ, NULL, &vision, &err)) fail_msg("%s", err.msg);
    g3_context_params cp = {.n_ctx = 256};
    g3_session *a, *b;
    assert_int_equal(g3_session_new(model, &cp, &a, &err), 0);
    assert_int_equal(g3_session_new(model, &cp, &b, &err), 0);
    assert_int_equal(g3_session_set_vision(a, vision, G3_IMAGE_WRAP_GOLDEN, &err), 0);
    assert_int_equal(g3_session_set_vision(b, vision, G3_IMAGE_WRAP_GOLDEN, &err), 0);
    g3_part parts[2] = {{.type = G3_PART_IMAGE, .path = IMAGE}, {.type = G3_PART_TEXT, .text = "What is in this image?"}};
    g3_gen_params g = tu_greedy(1);
    g3_gen_stats st;
    assert_int_equal(g3_session_send_parts(a, parts, 2, &g, NULL, NULL, NULL, &st, &err), 0);
    /* the prompt is the golden layout: its last logits row is the golden one */
    size_t n_ref;
    float *ref = (float *)tu_read_file(TINY "/vision/img1-f32.logits.f32", &n_ref);
    size_t rows = n_ref / sizeof(float) / N_VOCAB;
    float d = max_diff(g3_session_logits(a), ref + (rows - 1) * N_VOCAB, N_VOCAB);
    printf("session image prompt: %u tokens, last row max |d| vs llama.cpp = %.3g\n", st.n_prefill, d);
    assert_int_equal(st.n_prefill, 42);
    assert_int_equal(st.n_encoded, 1);
    assert_true(d <= 5e-3f);
    free(ref);

    /* a follow-up reuses the image: only the new turn is evaluated */
    g3_gen_stats s2, sb;
    assert_int_equal(g3_session_send(a, "And the colours?", &g, NULL, NULL, NULL, &s2, &err), 0);
    assert_true(s2.n_reused >= 42);
    assert_int_equal(s2.n_encoded, 0); /* nor encoded again */
    /* the same conversation from scratch gives the same logits */
    g3_conversation *ca = g3_session_conversation(a), *cb = g3_session_conversation(b);
    assert_int_equal(g3_conversation_add_parts(cb, ca->turns[0].parts, ca->turns[0].n_parts, &err), 0);
    assert_int_equal(g3_conversation_add(cb, G3_ROLE_MODEL, ca->turns[1].text, ca->turns[1].ids, ca->turns[1].n_ids,
                                         &err), 0);
    assert_int_equal(g3_session_send(b, "And the colours?", &g, NULL, NULL, NULL, &sb, &err), 0);
    assert_int_equal(sb.n_reused, 0);
    assert_int_equal(sb.n_encoded, 1);
    assert_int_equal(sb.n_prefill, s2.n_reused + s2.n_prefill);
    d = max_diff(g3_session_logits(a), g3_session_logits(b), N_VOCAB);
    printf("follow-up after an image vs full re-prefill: max |d| = %.3g\n", d);
    assert_true(d < 1e-4f);

    /* the conversation, images included, survives a save and a load */
    assert_int_equal(g3_conversation_save(ca, G3_TEST_TMP "/vis-conv.json", &err), 0);
    g3_conversation loaded;
    g3_conversation_init(&loaded);
    assert_int_equal(g3_conversation_load(&loaded, G3_TEST_TMP "/vis-conv.json", &err), 0);
    assert_int_equal(loaded.turns[0].n_parts, 2);
    assert_int_equal(loaded.turns[0].parts[0].type, G3_PART_IMAGE);
    assert_string_equal(loaded.turns[0].parts[0].path, IMAGE);
    g3_conversation_free(&loaded);
    g3_session_free(a);
    g3_session_free(b);
    g3_vision_free(vision);
    g3_model_free(model);
}

static int32_t fake_image(void *user, const g3_part *p, g3_error *err) { return -7; }

static void test_official_wrap_joins_the_newlines(void **state) {
    g3_tokenizer *tok;
    g3_error err;
    if (g3_tokenizer_load(G3_GOLDEN_DIR "/tokenizer/gemma3-vocab.gguf", &tok, &err)) fail_msg("%s", err.msg);
    g3_conversation c;
    g3_conversation_init(&c);
    g3_part parts[2] = {{.type = G3_PART_IMAGE, .path = "x.png"}, {.type = G3_PART_TEXT, .text = "Describe it."}};
    assert_int_equal(g3_conversation_add_parts(&c, parts, 2, &err), 0);
    g3_render_images img = {.n_tokens = 4, .wrap = G3_IMAGE_WRAP_OFFICIAL, .image_id = fake_image};
    int32_t *ids;
    size_t n;
    assert_int_equal(g3_chat_render_from(tok, &c, 0, true, &img, &ids, &n, &err), 0);
    /* the processor's string: "<bos><start_of_turn>user\n" "\n\n<start_of_image>" ... "<end_of_image>\n\n" "Describe it." */
    char expect_text[] = "<start_of_turn>user\n\n\n<start_of_image>";
    int32_t *head;
    size_t n_head;
    assert_int_equal(g3_tokenize(tok, expect_text, strlen(expect_text), true, true, &head, &n_head, &err), 0);
    assert_true(n > n_head + 4);
    for (size_t i = 0; i < n_head; i++) assert_int_equal(ids[i], head[i]);
    for (size_t i = 0; i < 4; i++) assert_int_equal(ids[n_head + i], -7);
    char tail_text[] = "<end_of_image>\n\nDescribe it.<end_of_turn>\n<start_of_turn>model\n";
    int32_t *tail;
    size_t n_tail;
    assert_int_equal(g3_tokenize(tok, tail_text, strlen(tail_text), false, true, &tail, &n_tail, &err), 0);
    assert_int_equal(n, n_head + 4 + n_tail);
    for (size_t i = 0; i < n_tail; i++) assert_int_equal(ids[n_head + 4 + i], tail[i]);
    free(head);
    free(tail);
    free(ids);
    g3_conversation_free(&c);
    g3_tokenizer_free(tok);
}

static void test_images_need_a_vision_encoder(void **state) {
    char cmd[1024];
    snprintf(cmd, sizeof cmd, "%s run -m %s --image %s -p hi -n 2 2>&1", G3_BINARY, MODEL, IMAGE);
    int status;
    char *out = tu_run(cmd, &status);
    assert_int_not_equal(status, 0);
    if (!strstr(out, "no vision encoder")) fail_msg("%s", out);
    free(out);
    snprintf(cmd, sizeof cmd, "%s run -m %s --mmproj %s --image /nonexistent.png -p hi -n 2 2>&1", G3_BINARY, MODEL,
             MMPROJ);
    out = tu_run(cmd, &status);
    assert_int_not_equal(status, 0);
    if (!strstr(out, "/nonexistent.png")) fail_msg("%s", out);
    free(out);
    /* an answer comes through run with an image */
    snprintf(cmd, sizeof cmd, "%s run -m %s --mmproj %s --image %s --image-wrap golden -p 'What is in this image?' "
             "--temp 0 --repeat-penalty 1 -n 4 2>&1", G3_BINARY, MODEL, MMPROJ, IMAGE);
    out = tu_run(cmd, &status);
    if (status != 0) fail_msg("%s", out);
    free(out);
}

/* eval with two images: one per <__media__>, in order. The rows before the
 * second image equal a one-image prompt cut there (the model is causal);
 * a different second image changes what follows it; a marker count
 * that does not match the --image count is refused naming both. */
static void write_second_image(const char *path) {
    unsigned char px[32 * 32 * 3];
    for (int i = 0; i < 32 * 32; i++) {
        px[3 * i] = (unsigned char)(i * 7);
        px[3 * i + 1] = (unsigned char)(255 - i);
        px[3 * i + 2] = (unsigned char)(i % 32 * 8);
    }
    assert_true(stbi_write_png(path, 32, 32, 3, px, 32 * 3) != 0);
}

static float *eval_prompt(const char *prompt, const char *images, size_t *n_floats) {
    char path[512], cmd[4096];
    snprintf(path, sizeof path, G3_TEST_TMP "/two_images_prompt.txt");
    assert_int_equal(tu_write_file(path, prompt, strlen(prompt)), 0);
    snprintf(cmd, sizeof cmd, "%s eval -m %s --mmproj %s %s --prompt-file %s --logits %s/two.f32 2>&1", G3_BINARY,
             MODEL, MMPROJ, images, path, G3_TEST_TMP);
    int status;
    char *out = tu_run(cmd, &status);
    if (status != 0) fail_msg("%s\n%s", cmd, out);
    free(out);
    return (float *)tu_read_file(G3_TEST_TMP "/two.f32", n_floats);
}

static void test_eval_takes_several_images(void **state) {
    (void)state;
    const char *second = G3_TEST_TMP "/second.png";
    write_second_image(second);
    char both[1024], swapped[1024]; /* swapped: the first image twice */
    snprintf(both, sizeof both, "--image %s --image %s", IMAGE, second);
    snprintf(swapped, sizeof swapped, "--image %s --image %s", IMAGE, IMAGE);
    const char *two = "<start_of_turn>user\nFirst <__media__> then <__media__> which?<end_of_turn>\n";
    const char *cut = "<start_of_turn>user\nFirst <__media__> then";
    size_t n_two, n_cut, n_swapped;
    float *a = eval_prompt(two, both, &n_two);
    char only_first[600];
    snprintf(only_first, sizeof only_first, "--image %s", IMAGE);
    float *b = eval_prompt(cut, only_first, &n_cut);
    assert_true(n_cut < n_two);
    /* the cut prompt's rows are the two-image prompt's first rows, except its
     * last ("then" before the image wrap's "\n\n" tokenizes alike) */
    const size_t rows = n_cut / sizeof(float) / N_VOCAB;
    assert_true(rows >= 2);
    assert_true(max_diff(a, b, (rows - 1) * N_VOCAB) <= 1e-5f);
    float *c = eval_prompt(two, swapped, &n_swapped);
    assert_int_equal(n_swapped, n_two);
    const size_t all = n_two / sizeof(float);
    assert_true(max_diff(a + all - N_VOCAB, c + all - N_VOCAB, N_VOCAB) > 1e-3f); /* after both images */
    free(a), free(b), free(c);

    char cmd[4096];
    snprintf(cmd, sizeof cmd, "%s eval -m %s --mmproj %s --image %s --prompt-file %s/two_images_prompt.txt 2>&1",
             G3_BINARY, MODEL, MMPROJ, IMAGE, G3_TEST_TMP);
    int status;
    tu_write_file(G3_TEST_TMP "/two_images_prompt.txt", two, strlen(two));
    char *out = tu_run(cmd, &status);
    assert_int_not_equal(status, 0);
    if (!strstr(out, "holds 2 <__media__> but 1 --image")) fail_msg("%s", out);
    free(out);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_eval_reproduces_the_golden_image_case),
        cmocka_unit_test(test_session_with_an_image),
        cmocka_unit_test(test_official_wrap_joins_the_newlines),
        cmocka_unit_test(test_images_need_a_vision_encoder),
        cmocka_unit_test(test_eval_takes_several_images),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
