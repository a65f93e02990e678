/* test_web_assets: the embedded page's table (built by cmake/web.cmake; empty
 * when G3_WEB=OFF), the paths that map onto it and If-None-Match matching. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include <cmocka.h>

#include "server/web_assets.h"

static void test_table(void **state) {
    (void)state;
    if (srv_web_n_files == 0) { /* built without the page: nothing to find */
        assert_null(srv_web_find("/"));
        skip();
    }
    const srv_web_file *index = srv_web_find("/");
    assert_non_null(index);
    assert_ptr_equal(index, srv_web_find("/index.html"));
    assert_true(!strncmp(index->content_type, "text/html", 9));
    /* The page loads its script and style from /assets/, never inline. */
    assert_non_null(memmem(index->data, index->len, "src=\"/assets/app.js\"", 20));
    assert_null(memmem(index->data, index->len, "<script>", 8));
    const srv_web_file *js = srv_web_find("/assets/app.js"), *css = srv_web_find("/assets/app.css");
    assert_non_null(js);
    assert_non_null(css);
    assert_true(js->len > 1000);
    assert_non_null(strstr(js->content_type, "javascript"));
    assert_non_null(srv_web_find("/favicon.ico"));
    for (size_t i = 0; i < srv_web_n_files; i++) {
        const char *t = srv_web_files[i].etag;
        size_t n = strlen(t);
        assert_true(n > 2 && t[0] == '"' && t[n - 1] == '"');
        for (size_t j = i + 1; j < srv_web_n_files; j++) assert_string_not_equal(t, srv_web_files[j].etag);
    }
    assert_null(srv_web_find("/assets/nope.js"));
    assert_null(srv_web_find("/assets/"));
    assert_null(srv_web_find("/index.htm"));
}

static void test_page_paths(void **state) {
    (void)state;
    assert_true(srv_web_is_page_path("/"));
    assert_true(srv_web_is_page_path("/index.html"));
    assert_true(srv_web_is_page_path("/favicon.ico"));
    assert_true(srv_web_is_page_path("/assets/app.js"));
    assert_true(srv_web_is_page_path("/assets/x"));
    assert_false(srv_web_is_page_path("/api/info"));
    assert_false(srv_web_is_page_path("/v1/models"));
    assert_false(srv_web_is_page_path("/assetsx"));
    assert_false(srv_web_is_page_path(""));
}

static void test_etag_matching(void **state) {
    (void)state;
    const char *tag = "\"abc123\"";
    assert_true(srv_web_etag_matches("\"abc123\"", tag));
    assert_true(srv_web_etag_matches("W/\"abc123\"", tag));          /* weak comparison */
    assert_true(srv_web_etag_matches("\"x\", \"abc123\"", tag));     /* a list */
    assert_true(srv_web_etag_matches("\"x\",\"abc123\" ", tag));
    assert_true(srv_web_etag_matches("*", tag));
    assert_true(srv_web_etag_matches(" * ", tag));
    assert_false(srv_web_etag_matches(NULL, tag));
    assert_false(srv_web_etag_matches("", tag));
    assert_false(srv_web_etag_matches("\"abc12\"", tag));
    assert_false(srv_web_etag_matches("\"abc1234\"", tag));
    assert_false(srv_web_etag_matches("abc123", tag));               /* unquoted is not the tag */
    assert_false(srv_web_etag_matches("W/", tag));
    assert_false(srv_web_etag_matches(",,, ,", tag));
    assert_false(srv_web_etag_matches("**", tag));
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_table),
        cmocka_unit_test(test_page_paths),
        cmocka_unit_test(test_etag_matching),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
