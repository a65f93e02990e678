/* test_sampler: greedy, temperature, top-k, top-p, min-p, repetition
 * penalty and seeding, each checked on logits whose answer is known. */
#include <math.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "gemma3_chat.h"
#include "text/sampler.h"

static g3_sampler_params plain(float temp) {
    g3_sampler_params p = {.temperature = temp, .top_k = 0, .top_p = 1.0f, .min_p = 0.0f,
                           .repeat_penalty = 1.0f, .repeat_last_n = 64, .seed = 42};
    return p;
}

static int32_t sample_once(g3_sampler *s, const float *logits, uint32_t n, const int32_t *recent, size_t nr) {
    float copy[16];
    memcpy(copy, logits, n * sizeof *copy);
    return g3_sampler_sample(s, copy, recent, nr);
}

static void histogram(const g3_sampler_params *p, const float *logits, uint32_t n, int draws, int *counts) {
    g3_error err;
    g3_sampler *s = g3_sampler_new(p, n, &err);
    assert_non_null(s);
    memset(counts, 0, n * sizeof *counts);
    for (int i = 0; i < draws; i++) counts[sample_once(s, logits, n, NULL, 0)]++;
    g3_sampler_free(s);
}

static void test_greedy_takes_the_first_maximum(void **state) {
    g3_sampler_params p = plain(0.0f);
    g3_error err;
    g3_sampler *s = g3_sampler_new(&p, 5, &err);
    float logits[5] = {0.1f, 3.0f, -1.0f, 3.0f, 2.9f};
    assert_int_equal(sample_once(s, logits, 5, NULL, 0), 1);
    g3_sampler_free(s);
}

static void test_temperature_follows_softmax(void **state) {
    /* probabilities 1/7, 2/7, 4/7 at temperature 1 */
    float logits[3] = {0.0f, logf(2.0f), logf(4.0f)};
    int counts[3];
    g3_sampler_params p = plain(1.0f);
    histogram(&p, logits, 3, 70000, counts);
    assert_true(abs(counts[0] - 10000) < 600);
    assert_true(abs(counts[1] - 20000) < 800);
    assert_true(abs(counts[2] - 40000) < 1000);
    /* at temperature 0.5 the ratios square: 1/21, 4/21, 16/21 */
    p.temperature = 0.5f;
    histogram(&p, logits, 3, 42000, counts);
    assert_true(abs(counts[0] - 2000) < 300);
    assert_true(abs(counts[2] - 32000) < 800);
}

static void test_top_k_top_p_min_p_cut_the_tail(void **state) {
    /* probabilities 0.5, 0.3, 0.15, 0.05 */
    float logits[4] = {logf(0.5f), logf(0.3f), logf(0.15f), logf(0.05f)};
    int counts[4];
    g3_sampler_params p = plain(1.0f);
    p.top_k = 2;
    histogram(&p, logits, 4, 5000, counts);
    assert_true(counts[0] > 0 && counts[1] > 0 && counts[2] == 0 && counts[3] == 0);
    p = plain(1.0f);
    p.top_p = 0.85f; /* 0.5 + 0.3 = 0.8 < 0.85, so the third token stays */
    histogram(&p, logits, 4, 5000, counts);
    assert_true(counts[2] > 0 && counts[3] == 0);
    p = plain(1.0f);
    p.min_p = 0.5f; /* keep p >= 0.25 */
    histogram(&p, logits, 4, 5000, counts);
    assert_true(counts[0] > 0 && counts[1] > 0 && counts[2] == 0 && counts[3] == 0);
    p = plain(5.0f);
    p.top_k = 1; /* top-k 1 is greedy at any temperature */
    histogram(&p, logits, 4, 500, counts);
    assert_int_equal(counts[0], 500);
}

static void test_repetition_penalty(void **state) {
    g3_sampler_params p = plain(0.0f);
    p.repeat_penalty = 1.1f;
    p.repeat_last_n = 2;
    g3_error err;
    g3_sampler *s = g3_sampler_new(&p, 4, &err);
    float logits[4] = {2.0f, 1.9f, -1.0f, -1.05f};
    int32_t recent[3] = {0, 3, 3};
    /* token 0 is outside the window of 2: not penalized */
    assert_int_equal(sample_once(s, logits, 4, recent, 3), 0);
    /* inside the window: 2.0 / 1.1 < 1.9 */
    int32_t recent2[2] = {3, 0};
    assert_int_equal(sample_once(s, logits, 4, recent2, 2), 1);
    /* negative logits are multiplied: -1.0 * 1.1 < -1.05 */
    float neg[4] = {-5.0f, -5.0f, -1.0f, -1.05f};
    int32_t recent3[1] = {2};
    assert_int_equal(sample_once(s, neg, 4, recent3, 1), 3);
    g3_sampler_free(s);
}

static void test_seed_reproduces(void **state) {
    float logits[8] = {0, 0.1f, 0.2f, 0.3f, 0.4f, 0.5f, 0.6f, 0.7f};
    g3_sampler_params p = plain(1.0f);
    g3_error err;
    int32_t a[64], b[64], c[64];
    for (int run = 0; run < 3; run++) {
        p.seed = run == 2 ? 43 : 42;
        g3_sampler *s = g3_sampler_new(&p, 8, &err);
        for (int i = 0; i < 64; i++) (run == 0 ? a : run == 1 ? b : c)[i] = sample_once(s, logits, 8, NULL, 0);
        g3_sampler_free(s);
    }
    assert_memory_equal(a, b, sizeof a);
    assert_memory_not_equal(a, c, sizeof a);
}

static void test_bad_parameters(void **state) {
    g3_error err;
    g3_sampler_params p = plain(-1.0f);
    assert_null(g3_sampler_new(&p, 4, &err));
    assert_non_null(strstr(err.msg, "temperature"));
    p = plain(1.0f);
    p.top_p = 0.0f;
    assert_int_equal(g3_sampler_params_check(&p, &err), -1);
    assert_non_null(strstr(err.msg, "top-p"));
    p = plain(1.0f);
    p.repeat_penalty = NAN;
    assert_int_equal(g3_sampler_params_check(&p, &err), -1);
    assert_non_null(strstr(err.msg, "repetition penalty"));
    g3_sampler_params d = g3_sampler_defaults();
    assert_true(d.temperature == 0.7f && d.top_k == 50 && d.top_p == 0.9f && d.repeat_penalty == 1.1f);
    assert_int_equal(g3_gen_defaults().max_new_tokens, 700);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_greedy_takes_the_first_maximum), cmocka_unit_test(test_temperature_follows_softmax),
        cmocka_unit_test(test_top_k_top_p_min_p_cut_the_tail), cmocka_unit_test(test_repetition_penalty),
        cmocka_unit_test(test_seed_reproduces),                cmocka_unit_test(test_bad_parameters),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
