/* test_chat_tty: the terminal chat on a real terminal (a pseudo-terminal
 * this test holds the other end of), as a person types into it:
 * - libedit: the arrow keys edit the line (a typo fixed in the middle, by
 *   characters in UTF-8 text), the up arrow brings back the previous
 *   message, Ctrl-C at the prompt drops the line and keeps the chat, Ctrl-D
 *   leaves;
 * - answers have their control bytes escaped on a terminal: the tiny q4_0
 *   model's greedy answer to "Hello, how are you?" ends in eight vertical
 *   tabs (0x0B), which must arrive as "^K", never raw; the same answer
 *   through a pipe keeps its bytes. */
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <setjmp.h>
#include <signal.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <termios.h>
#include <time.h>
#include <unistd.h>

#include <cmocka.h>

#include "gemma3_chat.h"
#include "test_util.h"

#define Q4_MODEL G3_GOLDEN_DIR "/tiny-gemma3/models/g3-1b-s1234-q4_0.gguf"
#define GREEDY "--temp", "0", "--repeat-penalty", "1", "-n", "20"
#define SAVED G3_TEST_TMP "/tty-chat.json"

typedef struct term {
    int master;
    pid_t pid;
    char out[1 << 16]; /* everything the program wrote to the terminal */
    size_t len;
} term;

/* Starts argv on a new pseudo-terminal (its stdin, stdout and stderr);
 * skips the test where the system has none to give (no /dev/ptmx). */
static void term_start(term *t, char *const argv[]) {
    memset(t, 0, sizeof *t);
    t->master = posix_openpt(O_RDWR | O_NOCTTY);
    if (t->master < 0) {
        printf("skipped: no pseudo-terminal (%s)\n", strerror(errno));
        skip();
    }
    assert_int_equal(grantpt(t->master), 0);
    assert_int_equal(unlockpt(t->master), 0);
    const char *slave = ptsname(t->master);
    assert_non_null(slave);
    t->pid = fork();
    assert_true(t->pid >= 0);
    if (t->pid == 0) {
        setsid(); /* the slave becomes the controlling terminal: Ctrl-C sends SIGINT */
        const int fd = open(slave, O_RDWR);
        if (fd < 0) _exit(126);
        dup2(fd, 0);
        dup2(fd, 1);
        dup2(fd, 2);
        if (fd > 2) close(fd);
        setenv("LC_ALL", "C", 1); /* no UTF-8 locale given: the chat must still edit UTF-8 */
        execv(argv[0], argv);
        _exit(127);
    }
}

static double now_s(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return ts.tv_sec + ts.tv_nsec * 1e-9;
}

/* Reads until `needle` has appeared `count` times in the output from byte
 * `from` on; returns the offset just past that occurrence. */
static size_t term_wait(term *t, size_t from, const char *needle, int count) {
    const double end = now_s() + 60;
    const size_t nl = strlen(needle);
    for (;;) {
        int seen = 0;
        for (const char *p = t->out + from; (p = memmem(p, t->len - (size_t)(p - t->out), needle, nl)); p += nl)
            if (++seen == count) return (size_t)(p - t->out) + nl;
        struct pollfd pfd = {.fd = t->master, .events = POLLIN};
        if (now_s() > end || poll(&pfd, 1, 1000) < 0) break;
        if (!(pfd.revents & (POLLIN | POLLHUP))) continue;
        const ssize_t n = read(t->master, t->out + t->len, sizeof t->out - 1 - t->len);
        if (n <= 0) break; /* EIO: the program has exited */
        t->len += (size_t)n;
        t->out[t->len] = 0;
    }
    fail_msg("waited for '%s' (x%d); the terminal shows from byte %zu:\n%s", needle, count, from, t->out + from);
    return 0;
}

/* The prompt that follows `after` (the end of an answer, a message), and
 * libedit reading in its own terminal mode: it prints the prompt a moment
 * before it leaves canonical mode, and keys typed in between (a ^D above
 * all) would reach the line discipline instead of the editor. */
static size_t term_prompt(term *t, size_t after) {
    const size_t at = term_wait(t, after, "> ", 1);
    const double end = now_s() + 30;
    struct termios tio;
    while (tcgetattr(t->master, &tio) == 0 && (tio.c_lflag & ICANON)) {
        if (now_s() > end) fail_msg("the terminal stayed in canonical mode after the prompt");
        usleep(1000);
    }
    return at;
}

static void term_type(term *t, const char *keys) {
    assert_int_equal(write(t->master, keys, strlen(keys)), (ssize_t)strlen(keys));
}

static int term_finish(term *t) {
    int st;
    const double end = now_s() + 30;
    while (waitpid(t->pid, &st, WNOHANG) == 0) {
        if (now_s() > end) {
            kill(t->pid, SIGKILL);
            waitpid(t->pid, &st, 0);
            break;
        }
        struct pollfd pfd = {.fd = t->master, .events = POLLIN};
        if (poll(&pfd, 1, 100) <= 0) continue;
        const ssize_t n = read(t->master, t->out + t->len, sizeof t->out - 1 - t->len);
        if (n <= 0) usleep(10000);
        else t->out[t->len += (size_t)n] = 0;
    }
    close(t->master);
    const int status = WIFEXITED(st) ? WEXITSTATUS(st) : -1;
    if (status != 0) printf("exit status %d; the terminal shows:\n%s\n", status, t->out);
    return status;
}

static void test_line_editing_history_and_keys(void **state) {
    char *argv[] = {G3_BINARY, "chat", "--no-save", "-m", Q4_MODEL, GREEDY, "-v", NULL};
    term t;
    term_start(&t, argv);
    size_t at = term_prompt(&t, 0);
    /* a typo in the middle, fixed with the left arrow: "ae" -> "are" */
    term_type(&t, "Hello, how ae you?\x1b[D\x1b[D\x1b[D\x1b[D\x1b[D\x1b[Dr\r");
    at = term_prompt(&t, term_wait(&t, at, "stop: ", 1)); /* -v: one stats line per answer */
    /* the up arrow brings the message back; Enter sends it again */
    term_type(&t, "\x1b[A\r");
    at = term_prompt(&t, term_wait(&t, at, "stop: ", 1));
    /* Ctrl-C at the prompt drops the line and keeps the chat: once libedit
     * shows the line, and at once with the keys (the terminal may discard
     * them with the signal) */
    term_type(&t, "never sent");
    term_wait(&t, at, "never sent", 1);
    term_type(&t, "\x03");
    at = term_prompt(&t, term_wait(&t, at, "(/quit or Ctrl-D to leave)", 1));
    for (int i = 0; i < 40; i++) { /* a lost Ctrl-C (one that did not end the read) shows up within a few */
        term_type(&t, "not sent either\x03");
        at = term_prompt(&t, term_wait(&t, at, "(/quit or Ctrl-D to leave)", 1));
    }
    /* text beyond ASCII, edited: the cursor moves by characters, not bytes */
    term_type(&t, "Caf\xc3\xa9 \xe2\x98\x95 ok\x1b[D\x1b[D\x1b[D\x1b[D\x1b[D!\r");
    at = term_prompt(&t, term_wait(&t, at, "stop: ", 1));
    term_type(&t, "/save " SAVED "\r");
    at = term_prompt(&t, term_wait(&t, at, "saved to", 1));
    term_type(&t, "\x04"); /* Ctrl-D on an empty line: leave */
    assert_int_equal(term_finish(&t), 0);

    g3_conversation c;
    g3_conversation_init(&c);
    g3_error err;
    if (g3_conversation_load(&c, SAVED, &err)) fail_msg("%s", err.msg);
    assert_int_equal(c.n_turns, 6);
    assert_string_equal(c.turns[0].text, "Hello, how are you?");
    assert_string_equal(c.turns[2].text, "Hello, how are you?");
    assert_string_equal(c.turns[4].text, "Caf\xc3\xa9! \xe2\x98\x95 ok");
    /* the first answer holds raw vertical tabs; the terminal got them escaped */
    assert_non_null(strchr(c.turns[1].text, '\v'));
    g3_conversation_free(&c);
    assert_null(memchr(t.out, '\v', t.len));
    if (!strstr(t.out, "^K^K^K^K^K^K^K^K")) fail_msg("no escaped vertical tabs in:\n%s", t.out);
}

static void test_run_escapes_on_a_terminal_only(void **state) {
    char *argv[] = {G3_BINARY, "run", "-m", Q4_MODEL, "-p", "Hello, how are you?", GREEDY, NULL};
    term t;
    term_start(&t, argv);
    term_wait(&t, 0, "^K^K^K^K^K^K^K^K", 1);
    assert_int_equal(term_finish(&t), 0);
    assert_null(memchr(t.out, '\v', t.len));
    /* through a pipe the bytes are the model's own */
    char cmd[1024];
    snprintf(cmd, sizeof cmd, "%s run -m %s -p 'Hello, how are you?' --temp 0 --repeat-penalty 1 -n 20 2>/dev/null",
             G3_BINARY, Q4_MODEL);
    int status;
    char *out = tu_run(cmd, &status);
    assert_int_equal(status, 0);
    assert_non_null(strstr(out, "\v\v\v\v\v\v\v\v\n"));
    assert_null(strstr(out, "^K"));
    free(out);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_line_editing_history_and_keys),
        cmocka_unit_test(test_run_escapes_on_a_terminal_only),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
