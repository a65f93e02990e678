/* test_base64: RFC 4648 vectors both ways, every length round-trips, and
 * malformed input is refused naming the offset. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "base/base64.h"

static void test_rfc4648_vectors(void **state) {
    (void)state;
    static const char *const plain[] = {"", "f", "fo", "foo", "foob", "fooba", "foobar"};
    static const char *const coded[] = {"", "Zg==", "Zm8=", "Zm9v", "Zm9vYg==", "Zm9vYmE=", "Zm9vYmFy"};
    for (int i = 0; i < 7; i++) {
        char *enc = g3_base64_encode((const uint8_t *)plain[i], strlen(plain[i]));
        assert_string_equal(enc, coded[i]);
        free(enc);
        uint8_t out[16];
        size_t n;
        g3_error err;
        assert_int_equal(g3_base64_decode(coded[i], strlen(coded[i]), out, &n, &err), 0);
        assert_int_equal(n, strlen(plain[i]));
        assert_memory_equal(out, plain[i], n);
    }
}

static void test_round_trip_all_bytes(void **state) {
    (void)state;
    uint8_t in[300], out[310];
    for (int i = 0; i < 300; i++) in[i] = (uint8_t)(i * 37 + 11);
    for (size_t len = 0; len <= 300; len++) {
        char *enc = g3_base64_encode(in, len);
        assert_non_null(enc);
        size_t n;
        g3_error err;
        assert_true(g3_base64_decoded_max(strlen(enc)) <= sizeof out);
        assert_int_equal(g3_base64_decode(enc, strlen(enc), out, &n, &err), 0);
        assert_int_equal(n, len);
        assert_memory_equal(out, in, len);
        free(enc);
    }
    /* MIME line breaks are skipped */
    uint8_t out2[16];
    size_t n;
    g3_error err;
    assert_int_equal(g3_base64_decode("Zm9v\r\nYmFy\n", 11, out2, &n, &err), 0);
    assert_int_equal(n, 6);
    assert_memory_equal(out2, "foobar", 6);
}

static void test_malformed_is_refused(void **state) {
    (void)state;
    static const char *const bad[] = {"Zm9", "Zm9v!", "Z===", "Zg==Zg==", "=Zm9", "Zm=v", "Zm9vY"};
    static const char *const why[] = {"multiple of 4", "not base64", "padding", "after the", "padding", "after the",
                                      "multiple of 4"};
    for (int i = 0; i < 7; i++) {
        uint8_t out[16];
        size_t n;
        g3_error err;
        assert_int_equal(g3_base64_decode(bad[i], strlen(bad[i]), out, &n, &err), -1);
        if (!strstr(err.msg, why[i])) fail_msg("'%s': %s", bad[i], err.msg);
    }
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_rfc4648_vectors),
        cmocka_unit_test(test_round_trip_all_bytes),
        cmocka_unit_test(test_malformed_is_refused),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
