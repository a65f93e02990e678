/* test_load: `gemma-chat serve` under slow clients and a bounded load, on
 * loopback with the golden tiny model (q8_0, -t 1).
 * - a client that sends its body byte by byte, one that connects and sends
 *   nothing, and one that stops reading its stream do not block anyone:
 *   while each dawdles, another client's request completes (checked by
 *   order, not by time: the dawdler has not finished when the other has);
 * - load: CLIENTS threads x REQUESTS requests each (default 32 x 10; the
 *   environment's G3_LOAD_CLIENTS / G3_LOAD_REQUESTS lower it, as the ASan
 *   run in scripts/test.sh does), a seeded mix of non-streaming and
 *   streaming completions, streams cancelled midway (the client closes
 *   after the first token), messages to the native API (each client its
 *   own conversation, streamed or not) and bad requests (malformed JSON, an unknown
 *   field, an unknown path, a wrong method, an oversized Content-Length).
 *   Every request must complete (200, a whole answer or a stream ending in
 *   [DONE]) or be refused as it should be (429/503 for the good ones, its
 *   4xx for the bad ones); nothing may hang (every read has a deadline).
 *   The counts, p50/p99 time to first token and request times are
 *   printed, never asserted;
 * - afterwards the server is idle (no busy slot, empty queue), answers
 *   /health, and exits 0 on SIGTERM (under ASan, LeakSanitizer makes a
 *   leak a non-zero exit). */
#include <pthread.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include "http_client.h"

#define MODEL G3_GOLDEN_DIR "/tiny-gemma3/models/g3-1b-s1234-q8_0.gguf"
#define JSON_HDR "Content-Type: application/json\r\n"
#define CHAT "/v1/chat/completions"
#define CONTENT "\"delta\":{\"content\":\""
#define SHORT_REQ(stream) "{\"messages\":[{\"role\":\"user\",\"content\":\"Hello there\"}],\"max_tokens\":32,\"stream\":" stream "}"
/* greedy without a repetition penalty loops without ever ending: a long answer */
#define LONG_REQ(stream) "{\"messages\":[{\"role\":\"user\",\"content\":\"Hello\"}],\"max_tokens\":800," \
                         "\"temperature\":0,\"repetition_penalty\":1,\"stream\":" stream "}"

static hc_server g_srv;

static int group_setup(void **state) {
    (void)state;
    const char *extra[] = {"--parallel", "4", "--max-queue", "24", "--max-body", "65536", "--timeout", "60",
                           "--ping-interval", "0.5", "--db", G3_TEST_TMP "/load.db", NULL};
    if (hc_start_server(&g_srv, MODEL, "serve-load.log", extra, 0)) {
        fprintf(stderr, "serve did not start; see %s\n", g_srv.log);
        return -1;
    }
    return 0;
}

static int group_teardown(void **state) {
    (void)state;
    if (g_srv.pid > 0) hc_stop_server(&g_srv, 20);
    return 0;
}

/* A whole request; the raw response (malloc'd) and its status. */
static char *do_request(const char *method, const char *path, const char *headers, const char *body, int *status) {
    int fd = hc_send_request(g_srv.port, method, path, headers, body);
    if (fd < 0) {
        *status = -1;
        return NULL;
    }
    bool to;
    char *raw = hc_read_all(fd, 120, &to);
    close(fd);
    *status = to ? -2 : hc_status(raw);
    return raw;
}

static double metric(const char *name) {
    int st;
    char *raw = do_request("GET", "/metrics", NULL, NULL, &st);
    double v = -1;
    if (st == 200) {
        char key[200];
        snprintf(key, sizeof key, "\n%s ", name);
        const char *at = strstr(hc_body(raw), key);
        if (at) v = atof(at + strlen(key));
    }
    free(raw);
    return v;
}

/* Waits up to timeout_s for no busy slot and an empty queue. */
static bool wait_idle(double timeout_s) {
    double end = hc_now() + timeout_s;
    do {
        if (metric("gemma_chat_busy_slots") == 0 && metric("gemma_chat_queue_length") == 0) return true;
        usleep(50 * 1000);
    } while (hc_now() < end);
    return false;
}

static void expect_short_completion(void) {
    int st;
    char *raw = do_request("POST", CHAT, JSON_HDR, SHORT_REQ("false"), &st);
    if (st != 200 || !strstr(raw, "\"choices\"")) fail_msg("a request beside the dawdler failed (%d): %s", st, raw);
    free(raw);
}

/* The body sent a byte at a time, with a request completed in the middle. */
static void test_body_byte_by_byte(void **state) {
    (void)state;
    const char *body = SHORT_REQ("false");
    size_t n = strlen(body);
    int fd = hc_connect(g_srv.port, 0);
    assert_true(fd >= 0);
    char head[512];
    int hn = hc_head(head, sizeof head, "POST", CHAT, JSON_HDR, n, true);
    assert_int_equal(hc_send_all(fd, head, (size_t)hn), 0);
    for (size_t i = 0; i < n / 2; i++) {
        assert_int_equal(hc_send_all(fd, body + i, 1), 0);
        usleep(5000);
    }
    double t0 = hc_now();
    expect_short_completion(); /* while half the slow body is still to come */
    printf("# a request completed in %.3f s while another body was half sent\n", hc_now() - t0);
    for (size_t i = n / 2; i < n; i++) {
        assert_int_equal(hc_send_all(fd, body + i, 1), 0);
        usleep(5000);
    }
    bool to;
    char *raw = hc_read_all(fd, 60, &to);
    close(fd);
    assert_false(to);
    if (hc_status(raw) != 200 || !strstr(raw, "\"choices\"")) fail_msg("the slow body's answer: %s", raw);
    free(raw);
}

/* Connections that send nothing at all, or only half a head. */
static void test_silent_clients(void **state) {
    (void)state;
    int silent = hc_connect(g_srv.port, 0), half = hc_connect(g_srv.port, 0);
    assert_true(silent >= 0 && half >= 0);
    assert_int_equal(hc_send_all(half, "POST /v1/chat/comp", 18), 0);
    expect_short_completion();
    close(silent);
    close(half);
}

/* A stream whose client stops reading (a tiny receive buffer, so the
 * server's writes back up), then one that reads a byte at a time. */
static void test_stream_not_read(void **state) {
    (void)state;
    assert_true(wait_idle(30));
    int fd = hc_connect(g_srv.port, 1024);
    assert_true(fd >= 0);
    char head[512];
    const char *body = LONG_REQ("true");
    int hn = hc_head(head, sizeof head, "POST", CHAT, JSON_HDR, strlen(body), true);
    assert_int_equal(hc_send_all(fd, head, (size_t)hn), 0);
    assert_int_equal(hc_send_all(fd, body, strlen(body)), 0);
    assert_true(hc_read_until(fd, CONTENT, 30));
    /* now it reads nothing while the answer goes on */
    expect_short_completion();
    expect_short_completion();
    /* a reader of one byte every 2 ms on the same stream, while others go on */
    char c;
    for (int i = 0; i < 200 && recv(fd, &c, 1, 0) == 1; i++) usleep(2000);
    expect_short_completion();
    close(fd); /* gone: its generation is cancelled and its slot freed */
    if (!wait_idle(30)) fail_msg("a slot stayed busy after the unread stream's client left");
}

/* ---- load ------------------------------------------------------------------ */

enum { K_PLAIN, K_STREAM, K_CANCEL, K_NATIVE, K_BAD, K_KINDS };
static const char *const k_kind_names[K_KINDS] = {"non-streaming", "streaming", "cancelled midway",
                                                  "native API", "bad request"};

typedef struct outcome {
    int kind;
    int status;         /* HTTP status; -1: could not connect; -2: timed out */
    bool complete;      /* a whole answer ([DONE] for a stream) */
    double ttft;        /* streams: first content token, s since the request was sent; else -1 */
    double total;       /* s until the response ended (cancel: until the client closed) */
} outcome;

typedef struct client {
    int id, n_requests;
    uint64_t rng;
    outcome *out;
    long long conv; /* the client's conversation in the native API (0: not made yet) */
} client;

static uint64_t next_rand(uint64_t *s) { /* xorshift64* */
    *s ^= *s >> 12;
    *s ^= *s << 25;
    *s ^= *s >> 27;
    return *s * 2685821657736338717ull;
}

static void bad_request(int which, outcome *o) {
    static const char *const bodies[] = {"{\"messages\": [", "{\"messages\":[{\"role\":\"user\",\"content\":\"x\"}],\"temprature\":1}"};
    char *raw = NULL;
    int st;
    switch (which % 5) {
    case 0:
    case 1: raw = do_request("POST", CHAT, JSON_HDR, bodies[which % 5], &st); break;
    case 2: raw = do_request("GET", "/v1/nothing-here", NULL, NULL, &st); break;
    case 3: raw = do_request("DELETE", CHAT, NULL, NULL, &st); break;
    default: { /* a Content-Length past --max-body, refused before the body is read */
        int fd = hc_connect(g_srv.port, 0);
        if (fd < 0) {
            st = -1;
            break;
        }
        const char *h = "POST " CHAT " HTTP/1.1\r\nHost: x\r\nConnection: close\r\n" JSON_HDR
                        "Content-Length: 999999999\r\n\r\n{";
        hc_send_all(fd, h, strlen(h));
        bool to;
        raw = hc_read_all(fd, 60, &to);
        close(fd);
        st = to ? -2 : hc_status(raw);
    }
    }
    o->status = st;
    o->complete = st >= 400 && st < 500 && raw && strstr(raw, "\"error\"");
    free(raw);
}

/* A streamed request: the time to its first token (the first `token`
 * marker) and, unless cancelled there, the whole stream up to end_marker. */
static void stream_fetch(const char *path, const char *body, const char *token, const char *end_marker,
                         bool cancel, outcome *o, double t0) {
    int fd = hc_send_request(g_srv.port, "POST", path, JSON_HDR, body);
    if (fd < 0) {
        o->status = -1;
        return;
    }
    /* read until the first content chunk (its time is the TTFT), then the rest */
    size_t cap = 65536, len = 0;
    char *buf = malloc(cap);
    if (!buf) {
        close(fd);
        return;
    }
    double end = t0 + 120;
    bool closed = false;
    for (;;) {
        int left = (int)((end - hc_now()) * 1000);
        struct pollfd p = {.fd = fd, .events = POLLIN};
        if (left <= 0 || poll(&p, 1, left) <= 0) {
            o->status = -2;
            break;
        }
        if (cap - len < 4096) {
            char *nb = realloc(buf, cap * 2);
            if (!nb) break;
            buf = nb;
            cap *= 2;
        }
        ssize_t r = recv(fd, buf + len, cap - len - 1, 0);
        if (r <= 0) {
            closed = true;
            break;
        }
        len += (size_t)r;
        buf[len] = 0;
        if (o->ttft < 0 && strstr(buf, token)) {
            o->ttft = hc_now() - t0;
            if (cancel) break;
        }
    }
    buf[len] = 0;
    if (o->status != -2) o->status = hc_status(buf);
    if (cancel) o->complete = o->status == 200 && o->ttft >= 0;
    else o->complete = closed && o->status == 200 && strstr(buf, end_marker);
    close(fd);
    free(buf);
}

static void stream_request(bool cancel, outcome *o, double t0) {
    stream_fetch(CHAT, cancel ? LONG_REQ("true") : SHORT_REQ("true"), CONTENT, "data: [DONE]", cancel, o, t0);
}

/* A message to the client's own conversation of the native API (made at
 * its first native request), streamed or not: 200 with the stored answer
 * (the stream's done event) counts as complete. */
static void native_request(client *c, bool stream, outcome *o, double t0) {
    if (!c->conv) {
        int st;
        char *raw = do_request("POST", "/api/conversations", JSON_HDR, "{\"settings\":{\"max_tokens\":100}}", &st);
        const char *id = raw ? strstr(hc_body(raw), "\"id\":") : NULL;
        if (st == 201 && id) c->conv = atoll(id + 5);
        free(raw);
        if (!c->conv) {
            o->status = st;
            return;
        }
    }
    char path[96];
    snprintf(path, sizeof path, "/api/conversations/%lld/messages", c->conv);
    if (stream) {
        stream_fetch(path, "{\"content\":\"Hello there\",\"stream\":true}", "event: token", "event: done", false, o,
                     t0);
        return;
    }
    char *raw = do_request("POST", path, JSON_HDR, "{\"content\":\"Hello there\"}", &o->status);
    o->complete = o->status == 200 && raw && strstr(raw, "\"message\"");
    free(raw);
}

static void *client_main(void *arg) {
    client *c = arg;
    for (int i = 0; i < c->n_requests; i++) {
        outcome *o = &c->out[i];
        memset(o, 0, sizeof *o);
        o->ttft = -1;
        uint64_t r = next_rand(&c->rng) % 100;
        o->kind = r < 30 ? K_PLAIN : r < 55 ? K_STREAM : r < 70 ? K_CANCEL : r < 85 ? K_NATIVE : K_BAD;
        double t0 = hc_now();
        if (o->kind == K_PLAIN) {
            char *raw = do_request("POST", CHAT, JSON_HDR, SHORT_REQ("false"), &o->status);
            o->complete = o->status == 200 && raw && strstr(raw, "\"choices\"") && strstr(raw, "\"finish_reason\"");
            free(raw);
        } else if (o->kind == K_BAD) {
            bad_request((int)(next_rand(&c->rng) % 5), o);
        } else if (o->kind == K_NATIVE) {
            native_request(c, next_rand(&c->rng) % 2, o, t0);
        } else {
            stream_request(o->kind == K_CANCEL, o, t0);
        }
        o->total = hc_now() - t0;
    }
    return NULL;
}

static int cmp_double(const void *a, const void *b) {
    double x = *(const double *)a, y = *(const double *)b;
    return x < y ? -1 : x > y;
}

static double pct(const double *sorted, size_t n, double p) {
    if (!n) return 0;
    size_t i = (size_t)(p * (double)(n - 1) + 0.5);
    return sorted[i < n ? i : n - 1];
}

static int env_int(const char *name, int def, int lo, int hi) {
    const char *v = getenv(name);
    int x = v && *v ? atoi(v) : def;
    return x < lo ? lo : x > hi ? hi : x;
}

static void test_load(void **state) {
    (void)state;
    int n_clients = env_int("G3_LOAD_CLIENTS", 32, 1, 256), n_req = env_int("G3_LOAD_REQUESTS", 10, 1, 1000);
    uint64_t seed = (uint64_t)env_int("G3_LOAD_SEED", 20261204, 1, 1 << 30);
    printf("# load: %d clients x %d requests, seed %llu (G3_LOAD_CLIENTS / G3_LOAD_REQUESTS / G3_LOAD_SEED)\n",
           n_clients, n_req, (unsigned long long)seed);
    assert_true(wait_idle(30));
    client *cl = calloc((size_t)n_clients, sizeof *cl);
    outcome *all = calloc((size_t)n_clients * (size_t)n_req, sizeof *all);
    pthread_t *th = calloc((size_t)n_clients, sizeof *th);
    assert_true(cl && all && th);
    double t0 = hc_now();
    for (int i = 0; i < n_clients; i++) {
        cl[i] = (client){.id = i, .n_requests = n_req, .rng = seed * 7919u + (uint64_t)i * 104729u + 1,
                         .out = all + (size_t)i * (size_t)n_req};
        assert_int_equal(pthread_create(&th[i], NULL, client_main, &cl[i]), 0);
    }
    for (int i = 0; i < n_clients; i++) pthread_join(th[i], NULL);
    double wall = hc_now() - t0;

    size_t n = (size_t)n_clients * (size_t)n_req, failures = 0, refused = 0, done[K_KINDS] = {0},
           count[K_KINDS] = {0}, n_ttft = 0, n_plain = 0;
    double *ttft = calloc(n, sizeof *ttft), *plain = calloc(n, sizeof *plain);
    assert_true(ttft && plain);
    int statuses[600] = {0};
    for (size_t i = 0; i < n; i++) {
        outcome *o = &all[i];
        count[o->kind]++;
        if (o->status > 0 && o->status < 600) statuses[o->status]++;
        bool ok;
        if (o->kind == K_BAD) ok = o->complete;
        else if (o->status == 429 || o->status == 503) {
            ok = true;
            refused++;
        } else ok = o->complete;
        if (ok && o->complete) done[o->kind]++;
        if (!ok) {
            failures++;
            if (failures <= 10)
                printf("# FAILED: client %zu request %zu (%s): status %d\n", i / (size_t)n_req, i % (size_t)n_req,
                       k_kind_names[o->kind], o->status);
        }
        if (o->ttft >= 0) ttft[n_ttft++] = o->ttft;
        if (o->kind == K_PLAIN && o->complete) plain[n_plain++] = o->total;
    }
    qsort(ttft, n_ttft, sizeof *ttft, cmp_double);
    qsort(plain, n_plain, sizeof *plain, cmp_double);
    printf("# load: %zu requests in %.1f s: %zu failed, %zu refused with 429/503\n", n, wall, failures, refused);
    for (int k = 0; k < K_KINDS; k++) printf("#   %-17s %4zu sent, %4zu as expected\n", k_kind_names[k], count[k], done[k]);
    printf("#   statuses:");
    for (int s = 0; s < 600; s++)
        if (statuses[s]) printf(" %d x%d", s, statuses[s]);
    printf("\n#   time to first token (streams, %zu): p50 %.3f s, p99 %.3f s, max %.3f s\n", n_ttft, pct(ttft, n_ttft, 0.5),
           pct(ttft, n_ttft, 0.99), n_ttft ? ttft[n_ttft - 1] : 0);
    printf("#   non-streaming request time (%zu): p50 %.3f s, p99 %.3f s\n", n_plain, pct(plain, n_plain, 0.5),
           pct(plain, n_plain, 0.99));
    free(ttft);
    free(plain);
    free(all);
    free(cl);
    free(th);
    assert_int_equal(failures, 0);

    /* the server is still whole */
    if (!wait_idle(60)) fail_msg("busy slots or a queue left after the load");
    int st;
    char *raw = do_request("GET", "/health", NULL, NULL, &st);
    assert_int_equal(st, 200);
    free(raw);
    expect_short_completion();
}

/* Last: SIGTERM ends it cleanly (exit 0; under ASan, no leak either). */
static void test_sigterm(void **state) {
    (void)state;
    int rc = hc_stop_server(&g_srv, 30);
    if (rc != 0) fail_msg("serve exited with %d on SIGTERM; see %s", rc, g_srv.log);
    char *log = (char *)tu_read_file(g_srv.log, NULL);
    assert_non_null(log);
    assert_non_null(strstr(log, "gemma-chat: stopped"));
    assert_null(strstr(log, "AddressSanitizer"));
    assert_null(strstr(log, "runtime error"));
    free(log);
}

int main(void) {
    setvbuf(stdout, NULL, _IOLBF, 0);
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_body_byte_by_byte),
        cmocka_unit_test(test_silent_clients),
        cmocka_unit_test(test_stream_not_read),
        cmocka_unit_test(test_load),
        cmocka_unit_test(test_sigterm),
    };
    return cmocka_run_group_tests(tests, group_setup, group_teardown);
}
