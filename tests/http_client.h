/* http_client.h: a raw HTTP/1.1 client and a `gemma-chat serve` launcher
 * for the reliability tests (test_load.c, test_crash_safety.c). Header-only
 * (static inline) so each test program takes what it uses; thread-safe (no
 * globals), since the load test runs clients on many threads. Failures are
 * returned, not asserted: a client thread must not longjmp out of cmocka.
 * Everything times out (poll), so a hung server fails a test instead of
 * hanging it. */
#ifndef G3_TEST_HTTP_CLIENT_H
#define G3_TEST_HTTP_CLIENT_H

#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <poll.h>
#include <signal.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "test_util.h"

static inline double hc_now(void) {
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return (double)t.tv_sec + (double)t.tv_nsec / 1e9;
}

/* A connected socket to 127.0.0.1:port, or -1. rcvbuf > 0 shrinks the
 * receive buffer first (a client that reads slowly fills it at once). */
static inline int hc_connect(int port, int rcvbuf) {
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    if (fd < 0) return -1;
    if (rcvbuf > 0) setsockopt(fd, SOL_SOCKET, SO_RCVBUF, &rcvbuf, sizeof rcvbuf);
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_port = htons((uint16_t)port)};
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    if (connect(fd, (struct sockaddr *)&a, sizeof a) != 0) {
        close(fd);
        return -1;
    }
    return fd;
}

/* 0 when everything was sent; -1 when the server closed first (it may
 * answer early, e.g. 413, and close). */
static inline int hc_send_all(int fd, const void *data, size_t n) {
    const char *p = data;
    while (n) {
        ssize_t w = send(fd, p, n, MSG_NOSIGNAL);
        if (w < 0 && errno == EINTR) continue;
        if (w <= 0) return -1;
        p += w;
        n -= (size_t)w;
    }
    return 0;
}

/* The request head ("METHOD PATH HTTP/1.1", Host, Connection: close, the
 * extra headers "Name: value\r\n...", Content-Length when body) into buf. */
static inline int hc_head(char *buf, size_t cap, const char *method, const char *path, const char *headers,
                          size_t body_len, bool has_body) {
    int n = snprintf(buf, cap, "%s %s HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n%s", method, path,
                     headers ? headers : "");
    if (has_body) n += snprintf(buf + n, cap - (size_t)n, "Content-Length: %zu\r\n", body_len);
    n += snprintf(buf + n, cap - (size_t)n, "\r\n");
    return n;
}

/* Connects and sends a whole request; the socket, or -1. */
static inline int hc_send_request(int port, const char *method, const char *path, const char *headers,
                                  const char *body) {
    int fd = hc_connect(port, 0);
    if (fd < 0) return -1;
    char head[2048];
    int n = hc_head(head, sizeof head, method, path, headers, body ? strlen(body) : 0, body != NULL);
    hc_send_all(fd, head, (size_t)n);
    if (body) hc_send_all(fd, body, strlen(body));
    return fd;
}

/* Reads until the server closes or timeout_s pass; malloc'd and
 * NUL-terminated (NULL when out of memory). *timed_out says which. */
static inline char *hc_read_all(int fd, double timeout_s, bool *timed_out) {
    size_t cap = 16384, len = 0;
    char *buf = malloc(cap);
    if (timed_out) *timed_out = false;
    if (!buf) return NULL;
    double end = hc_now() + timeout_s;
    for (;;) {
        int left = (int)((end - hc_now()) * 1000);
        struct pollfd p = {.fd = fd, .events = POLLIN};
        if (left <= 0 || poll(&p, 1, left) <= 0) {
            if (timed_out) *timed_out = true;
            break;
        }
        if (cap - len < 4096) {
            char *nb = realloc(buf, cap * 2);
            if (!nb) break;
            buf = nb;
            cap *= 2;
        }
        ssize_t r = recv(fd, buf + len, cap - len - 1, 0);
        if (r <= 0) break;
        len += (size_t)r;
    }
    buf[len] = 0;
    return buf;
}

/* Reads until `what` has arrived (kept in a sliding window), the server
 * closes, or timeout_s pass. true when seen. */
static inline bool hc_read_until(int fd, const char *what, double timeout_s) {
    char buf[8192];
    size_t len = 0, wl = strlen(what);
    double end = hc_now() + timeout_s;
    for (;;) {
        int left = (int)((end - hc_now()) * 1000);
        struct pollfd p = {.fd = fd, .events = POLLIN};
        if (left <= 0 || poll(&p, 1, left) <= 0) return false;
        if (len > sizeof buf / 2) { /* keep the tail: `what` may straddle reads */
            memmove(buf, buf + len - 256, 256);
            len = 256;
        }
        ssize_t r = recv(fd, buf + len, sizeof buf - len - 1, 0);
        if (r <= 0) return false;
        len += (size_t)r;
        if (memmem(buf, len, what, wl)) return true;
    }
}

/* The status of a raw response ("HTTP/1.1 200 ..."), 0 if none. */
static inline int hc_status(const char *raw) {
    return raw && strncmp(raw, "HTTP/1.", 7) == 0 && strlen(raw) > 12 ? atoi(raw + 9) : 0;
}

/* The body after the head, de-chunked in place when chunked. */
static inline char *hc_body(char *raw) {
    char *body = strstr(raw, "\r\n\r\n");
    if (!body) return raw + strlen(raw);
    body += 4;
    char *te = strcasestr(raw, "Transfer-Encoding: chunked");
    if (!te || te > body) return body;
    char *in = body, *out = body;
    while (*in) {
        char *end;
        unsigned long n = strtoul(in, &end, 16);
        if (end == in || strncmp(end, "\r\n", 2) != 0) break;
        in = end + 2;
        if (n == 0 || n > strlen(in)) break;
        memmove(out, in, n);
        out += n;
        in += n;
        if (!strncmp(in, "\r\n", 2)) in += 2;
    }
    *out = 0;
    return body;
}

/* ---- the server ----------------------------------------------------------- */

typedef struct hc_server {
    pid_t pid;
    int port;
    char log[512];
    bool as_nobody; /* set before starting: run as nobody when root (root writes to 0444 files) */
} hc_server;

/* Starts `gemma-chat serve -m MODEL --port 0 ARGS...` with stderr to
 * G3_TEST_TMP/LOG_NAME; waits (up to 60 s: the ASan build loads slowly)
 * until it says it serves. fsize_limit > 0 caps the files it may write
 * (RLIMIT_FSIZE, SIGXFSZ ignored, so a write past it fails with EFBIG as
 * on a full disk). 0 when serving; -1 when it exited or never got ready
 * (the log says why; the process is gone either way). */
static inline int hc_start_server(hc_server *s, const char *model, const char *log_name, const char *const *extra,
                                  long long fsize_limit) {
    snprintf(s->log, sizeof s->log, "%s/%s", G3_TEST_TMP, log_name);
    const char *argv[48] = {G3_BINARY, "serve", "-m", model, "--port", "0", "-t", "1", "-c", "1024", "-v"};
    int n = 11;
    for (int i = 0; extra && extra[i] && n < 46; i++) argv[n++] = extra[i];
    argv[n] = NULL;
    s->port = 0;
    s->pid = fork();
    if (s->pid < 0) return -1;
    if (s->pid == 0) {
        int fd = open(s->log, O_WRONLY | O_CREAT | O_TRUNC, 0644);
        if (fd < 0) _exit(127);
        dup2(fd, 2);
        if (s->as_nobody && geteuid() == 0 && (setgid(65534) != 0 || setuid(65534) != 0)) _exit(90);
        if (fsize_limit > 0) {
            signal(SIGXFSZ, SIG_IGN);
            struct rlimit rl = {.rlim_cur = (rlim_t)fsize_limit, .rlim_max = (rlim_t)fsize_limit};
            setrlimit(RLIMIT_FSIZE, &rl);
        }
        execv(G3_BINARY, (char *const *)argv);
        _exit(127);
    }
    for (int tries = 0; tries < 1200; tries++) { /* 60 s */
        usleep(50 * 1000);
        char *text = (char *)tu_read_file(s->log, NULL);
        const char *at = text ? strstr(text, "listening at http://127.0.0.1:") : NULL;
        bool ready = text && strstr(text, "gemma-chat: serving ");
        if (at) s->port = atoi(at + strlen("listening at http://127.0.0.1:"));
        free(text);
        if (ready && s->port > 0) return 0;
        if (waitpid(s->pid, NULL, WNOHANG) == s->pid) {
            s->pid = 0;
            return -1;
        }
    }
    kill(s->pid, SIGKILL);
    waitpid(s->pid, NULL, 0);
    s->pid = 0;
    return -1;
}

/* SIGTERM, then waits up to timeout_s. The exit status; -1 when it did not
 * exit in time (then SIGKILLed) or died of a signal. */
static inline int hc_stop_server(hc_server *s, double timeout_s) {
    if (s->pid <= 0) return -1;
    kill(s->pid, SIGTERM);
    double end = hc_now() + timeout_s;
    while (hc_now() < end) {
        int st;
        if (waitpid(s->pid, &st, WNOHANG) == s->pid) {
            s->pid = 0;
            return WIFEXITED(st) ? WEXITSTATUS(st) : -1;
        }
        usleep(20 * 1000);
    }
    kill(s->pid, SIGKILL);
    waitpid(s->pid, NULL, 0);
    s->pid = 0;
    return -1;
}

/* SIGKILL: no chance to clean up (the crash test). */
static inline void hc_kill_server(hc_server *s) {
    if (s->pid <= 0) return;
    kill(s->pid, SIGKILL);
    waitpid(s->pid, NULL, 0);
    s->pid = 0;
}

#endif
