/* test_crash_safety: the conversation store's guarantees held by a front
 * end that is killed, starved of disk, or given a file it cannot use. The
 * terminal chat (`gemma-chat chat --db`, piped stdin, the golden tiny
 * model) is the front end here: it saves every answered turn as one
 * transaction, as the server's native API does.
 * - kills: 20 times (G3_CRASH_KILLS), a chat answering four long messages
 *   is SIGKILLed at a random moment (seeded, the seed printed; set
 *   G3_CRASH_SEED to replay), then restarted on the same file. After each
 *   kill: PRAGMA integrity_check is ok; every turn committed before is
 *   still there byte for byte (the test keeps its own record of every
 *   stored turn and compares); the new turns are whole user/answer pairs,
 *   in the order sent, each answer the text the chat printed; the
 *   restarted chat answers and saves. Where the kills landed (before the
 *   first answer, mid-answer, between answers) is printed.
 * - full disk: the chat runs with RLIMIT_FSIZE just above what the store
 *   needs to open (writes past it fail with EFBIG, as on a full disk), so
 *   saving a long answer fails: the chat says so clearly, goes on, and
 *   still reads the store (/list); nothing committed before is lost. The
 *   same at the store's level, in a child with the limit: the append fails
 *   with G3_STORE_FULL and a message naming the file, reads still work.
 * - a read-only database file (as an unprivileged user: root writes to
 *   0444 files) and a database locked by another process (BEGIN EXCLUSIVE
 *   through sqlite3): the chat refuses at start with a message naming the
 *   file and the reason, and leaves the file as it was. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/stat.h>

#include <cjson/cJSON.h>
#include <cmocka.h>
#include <sqlite3.h>

#include "gemma3_store.h"
#include "http_client.h"

#define MODEL G3_GOLDEN_DIR "/tiny-gemma3/models/g3-1b-s1234-q8_0.gguf"
/* greedy without a repetition penalty: long answers that loop, never ending early */
#define LONG_FLAGS "--temp 0 --repeat-penalty 1 -n 300 -c 2048"
#define DB G3_TEST_TMP "/crash.db"

/* ---- the test's own record of what the store holds ------------------------ */

typedef struct rec_turn {
    g3_role role;
    char *text;
} rec_turn;

typedef struct rec_conv {
    int64_t id;
    rec_turn *turns;
    size_t n;
} rec_conv;

typedef struct record {
    rec_conv *convs;
    size_t n;
} record;

static void record_free(record *r) {
    for (size_t i = 0; i < r->n; i++) {
        for (size_t k = 0; k < r->convs[i].n; k++) free(r->convs[i].turns[k].text);
        free(r->convs[i].turns);
    }
    free(r->convs);
    memset(r, 0, sizeof *r);
}

static const rec_conv *record_find(const record *r, int64_t id) {
    for (size_t i = 0; i < r->n; i++)
        if (r->convs[i].id == id) return &r->convs[i];
    return NULL;
}

/* Opens the store (recovering its WAL after a kill), checks its integrity
 * and reads every conversation into *out. */
static void read_store(const char *path, record *out) {
    memset(out, 0, sizeof *out);
    g3_store *st;
    g3_error err;
    if (g3_store_open(path, NULL, &st, &err)) fail_msg("the store does not open after the crash: %s", err.msg);
    if (g3_store_check(st, &err)) fail_msg("integrity_check: %s", err.msg);
    g3_store_list_params lp = {.limit = 1000};
    g3_store_list l;
    if (g3_store_list_convs(st, &lp, &l, &err)) fail_msg("list: %s", err.msg);
    out->convs = calloc(l.n ? l.n : 1, sizeof *out->convs);
    assert_non_null(out->convs);
    for (size_t i = 0; i < l.n; i++) {
        g3_store_conv c;
        if (g3_store_get(st, l.items[i].id, &c, &err)) fail_msg("get %lld: %s", (long long)l.items[i].id, err.msg);
        rec_conv *rc = &out->convs[out->n++];
        rc->id = c.id;
        rc->n = c.n_turns;
        rc->turns = calloc(c.n_turns ? c.n_turns : 1, sizeof *rc->turns);
        assert_non_null(rc->turns);
        for (size_t k = 0; k < c.n_turns; k++) {
            rc->turns[k].role = c.turns[k].role;
            rc->turns[k].text = strdup(c.turns[k].text);
            assert_non_null(rc->turns[k].text);
        }
        g3_store_conv_free(&c);
    }
    g3_store_list_free(&l);
    g3_store_close(st);
}

/* Every conversation of `before` is in `after`, turn for turn, byte for
 * byte (the chat never changes a finished conversation: each run starts a
 * new one). The number of turns lost. */
static size_t compare_records(const record *before, const record *after) {
    size_t lost = 0;
    for (size_t i = 0; i < before->n; i++) {
        const rec_conv *b = &before->convs[i], *a = record_find(after, b->id);
        if (!a) {
            printf("# LOST: conversation %lld (%zu turns)\n", (long long)b->id, b->n);
            lost += b->n;
            continue;
        }
        for (size_t k = 0; k < b->n; k++) {
            if (k >= a->n || a->turns[k].role != b->turns[k].role || strcmp(a->turns[k].text, b->turns[k].text)) {
                printf("# LOST or changed: conversation %lld turn %zu\n", (long long)b->id, k);
                lost++;
            }
        }
        if (a->n != b->n) printf("# conversation %lld changed length: %zu -> %zu\n", (long long)b->id, b->n, a->n);
        if (a->n != b->n) lost++;
    }
    return lost;
}

/* ---- the chat as a child process ------------------------------------------ */

typedef struct chat_run {
    pid_t pid;
    char out[512];
} chat_run;

/* Starts `gemma-chat chat -m MODEL --db db FLAGS` with stdin from in_path,
 * stdout and stderr to out_path. fsize > 0: RLIMIT_FSIZE (SIGXFSZ
 * ignored). unprivileged: as nobody when root. */
static void chat_start(chat_run *r, const char *db, const char *flags, const char *in_path, const char *out_path,
                       long long fsize, bool unprivileged) {
    snprintf(r->out, sizeof r->out, "%s", out_path);
    char cmd[2048];
    snprintf(cmd, sizeof cmd, "exec %s chat -m %s --db %s %s < %s > %s 2>&1", G3_BINARY, MODEL, db, flags, in_path,
             out_path);
    r->pid = fork();
    assert_true(r->pid >= 0);
    if (r->pid == 0) {
        if (fsize > 0) {
            signal(SIGXFSZ, SIG_IGN);
            struct rlimit rl = {.rlim_cur = (rlim_t)fsize, .rlim_max = (rlim_t)fsize};
            if (setrlimit(RLIMIT_FSIZE, &rl)) _exit(91);
        }
        if (unprivileged && geteuid() == 0 && (setgid(65534) != 0 || setuid(65534) != 0)) _exit(90);
        execl("/bin/sh", "sh", "-c", cmd, (char *)NULL);
        _exit(127);
    }
}

/* Waits for the chat to end (up to timeout_s); its exit status, or -1. */
static int chat_wait(chat_run *r, double timeout_s) {
    double end = hc_now() + timeout_s;
    int st;
    while (hc_now() < end) {
        if (waitpid(r->pid, &st, WNOHANG) == r->pid) return WIFEXITED(st) ? WEXITSTATUS(st) : -1;
        usleep(5000);
    }
    kill(r->pid, SIGKILL);
    waitpid(r->pid, NULL, 0);
    return -1;
}

static void write_messages(const char *path, int run, int n) {
    FILE *f = fopen(path, "w");
    assert_non_null(f);
    for (int k = 1; k <= n; k++) fprintf(f, "run %d message %d: tell me a story\n", run, k);
    fclose(f);
}

/* A copy with only printable ASCII, newlines and tabs. The chat prints a
 * model's bytes as they come (control characters, a character split over
 * tokens) and saves its text as clean UTF-8 (without control characters,
 * U+FFFD for a broken sequence, no NUL), so the two compare on what both
 * keep. */
static char *strip_controls(const char *s, size_t n) {
    char *out = malloc(n + 1), *o = out;
    assert_non_null(out);
    for (const char *end = s + n; s < end; s++) /* NUL too: a model may print one */
        if (((unsigned char)*s >= 0x20 && (unsigned char)*s < 0x80) || *s == '\n' || *s == '\t') *o++ = *s;
    *o = 0;
    return out;
}

static uint64_t next_rand(uint64_t *s) { /* xorshift64* */
    *s ^= *s >> 12;
    *s ^= *s << 25;
    *s ^= *s >> 27;
    return *s * 2685821657736338717ull;
}

/* The new conversation of a run (not in `before`): whole pairs, its user
 * turns the run's messages in order, each answer printed by the chat. The
 * number of pairs. */
static size_t check_new_turns(const record *before, const record *after, int run, const char *out_path) {
    size_t raw_len = 0;
    char *raw = (char *)tu_read_file(out_path, &raw_len);
    assert_non_null(raw);
    char *printed = strip_controls(raw, raw_len);
    free(raw);
    size_t pairs = 0;
    for (size_t i = 0; i < after->n; i++) {
        const rec_conv *c = &after->convs[i];
        if (record_find(before, c->id)) continue;
        if (c->n % 2) fail_msg("run %d: conversation %lld holds half a pair (%zu turns)", run, (long long)c->id, c->n);
        for (size_t k = 0; k < c->n; k++) {
            if (c->turns[k].role != (k % 2 ? G3_ROLE_MODEL : G3_ROLE_USER))
                fail_msg("run %d: turn %zu has the wrong role", run, k);
            if (k % 2 == 0) {
                char want[128];
                snprintf(want, sizeof want, "run %d message %zu: tell me a story", run, k / 2 + 1);
                if (strcmp(c->turns[k].text, want))
                    fail_msg("run %d: turn %zu is '%s', not '%s'", run, k, c->turns[k].text, want);
            } else {
                char *saved = strip_controls(c->turns[k].text, strlen(c->turns[k].text));
                bool found = strstr(printed, saved) != NULL;
                free(saved);
                if (!found)
                    fail_msg("run %d: the stored answer %zu is not what the chat printed", run, k);
            }
        }
        pairs += c->n / 2;
    }
    free(printed);
    return pairs;
}

static size_t count_lines(const char *path) {
    char *text = (char *)tu_read_file(path, NULL);
    size_t n = 0;
    for (const char *p = text; p && *p; p++) n += *p == '\n';
    free(text);
    return n;
}

static int env_int(const char *name, int def) {
    const char *v = getenv(name);
    return v && *v ? atoi(v) : def;
}

static void test_kills(void **state) {
    (void)state;
    unlink(DB);
    unlink(DB "-wal");
    unlink(DB "-shm");
    const int kills = env_int("G3_CRASH_KILLS", 20), n_msgs = 4;
    uint64_t seed = (uint64_t)env_int("G3_CRASH_SEED", (int)(time(NULL) % 1000000) + 1);
    printf("# crash: %d kills, seed %llu (G3_CRASH_SEED=%llu replays them)\n", kills, (unsigned long long)seed,
           (unsigned long long)seed);
    const char *in = G3_TEST_TMP "/crash-in.txt", *out = G3_TEST_TMP "/crash-out.txt";

    /* an uninterrupted run: it must save all its pairs, and gives the time
     * a run takes, over which the kills are spread */
    write_messages(in, 0, n_msgs);
    chat_run r;
    double t0 = hc_now();
    chat_start(&r, DB, LONG_FLAGS, in, out, 0, false);
    assert_int_equal(chat_wait(&r, 300), 0);
    double full = hc_now() - t0;
    record rec;
    read_store(DB, &rec);
    record none = {0};
    assert_int_equal(check_new_turns(&none, &rec, 0, out), (size_t)n_msgs);
    /* lines before the first answer (the chat's notes), then one per answer */
    size_t out_lines = count_lines(out), base_lines = out_lines > (size_t)n_msgs ? out_lines - (size_t)n_msgs : 0;
    double per_answer = full / n_msgs;
    printf("# an uninterrupted run of %d answers takes %.3f s\n", n_msgs, full);

    size_t total_lost = 0, landed = 0, before_first = 0, mid = 0, pairs_total = 0;
    /* runs until `kills` kills have landed on a running chat (a run that
     * ended before its moment is not counted), at most twice as many runs */
    for (int i = 1; (int)landed < kills && i <= 2 * kills; i++) {
        write_messages(in, i, n_msgs);
        /* a random moment: after j of the run's answers have been printed
         * (each ends its line; the chat saves it right after), a random
         * fraction of an answer's time later. Following the output rather
         * than the clock spreads the kills over the answers however busy
         * the machine is. */
        int j = (int)(next_rand(&seed) % (uint64_t)n_msgs);
        double frac = 0.9 * (double)(next_rand(&seed) % 10000) / 10000.0;
        chat_start(&r, DB, LONG_FLAGS, in, out, 0, false);
        double start = hc_now();
        int st = 0;
        bool exited = false;
        while (!exited && count_lines(out) < base_lines + (size_t)j && hc_now() - start < 120) {
            if (waitpid(r.pid, &st, WNOHANG) == r.pid) exited = true;
            else usleep(500);
        }
        double wait_until = hc_now() + frac * per_answer;
        while (!exited && hc_now() < wait_until) {
            if (waitpid(r.pid, &st, WNOHANG) == r.pid) exited = true;
            else usleep(500);
        }
        double at = hc_now() - start;
        if (!exited) {
            kill(r.pid, SIGKILL);
            waitpid(r.pid, &st, 0);
            landed++;
        } else {
            /* the answers come faster than when they were timed (the
             * machine got quieter): aim earlier, or the kills stop landing */
            per_answer *= 0.5;
        }
        record now;
        read_store(DB, &now);
        size_t lost = compare_records(&rec, &now);
        size_t pairs = check_new_turns(&rec, &now, i, out);
        /* where it landed: an answer was being streamed when the output
         * stops inside a line (an answer ends its line when it is done) */
        char *printed = (char *)tu_read_file(out, NULL);
        size_t plen = printed ? strlen(printed) : 0;
        bool in_answer = !exited && plen && printed[plen - 1] != '\n';
        free(printed);
        if (pairs == 0) before_first++;
        if (in_answer) mid++;
        pairs_total += pairs;
        printf("# kill %2d after answer %d + %.2f of one, at %.3f s%s: %zu of %d pairs saved, %zu turns lost\n", i, j,
               frac, at,
               exited ? " (the chat had already ended)" : in_answer ? " (mid-answer)" : "", pairs, n_msgs, lost);
        total_lost += lost;
        record_free(&rec);
        rec = now;
        /* the restart: a chat on the same file answers and saves */
        FILE *f = fopen(in, "w");
        assert_non_null(f);
        fprintf(f, "run %d message 1: tell me a story\n", 1000 + i);
        fclose(f);
        chat_start(&r, DB, "--temp 0 -n 4", in, out, 0, false);
        assert_int_equal(chat_wait(&r, 120), 0);
        read_store(DB, &now);
        assert_int_equal(compare_records(&rec, &now), 0);
        assert_int_equal(check_new_turns(&rec, &now, 1000 + i, out), 1);
        record_free(&rec);
        rec = now;
    }
    printf("# crash: %zu kills landed while the chat ran (%zu before its first saved answer, %zu mid-answer), "
           "%zu pairs saved by killed runs, %zu turns lost, integrity ok after each\n",
           landed, before_first, mid, pairs_total, total_lost);
    record_free(&rec);
    assert_int_equal(total_lost, 0);
    assert_int_equal(landed, (size_t)kills);
}

static long long file_size(const char *path) {
    struct stat s;
    return stat(path, &s) == 0 ? (long long)s.st_size : -1;
}

/* The chat with its files capped just above what the store needs to open
 * (the 32 KiB -shm index): a long answer's save does not fit. */
static void test_full_disk_chat(void **state) {
    (void)state;
    const char *db = G3_TEST_TMP "/full.db", *in = G3_TEST_TMP "/full-in.txt", *out = G3_TEST_TMP "/full-out.txt";
    unlink(db);
    /* a store with one conversation, made without a limit */
    write_messages(in, 0, 1);
    chat_run r;
    chat_start(&r, db, "--temp 0 -n 8", in, out, 0, false);
    assert_int_equal(chat_wait(&r, 120), 0);
    record before;
    read_store(db, &before);
    assert_int_equal(before.n, 1);
    long long limit = 32768 + 1024;
    if (file_size(db) > limit) limit = file_size(db) + 1024;
    printf("# full disk: database %lld bytes, files capped at %lld bytes\n", file_size(db), limit);
    /* a long answer (2000 tokens: ids and text well over the room left),
     * then a read */
    FILE *f = fopen(in, "w");
    assert_non_null(f);
    fputs("run 1 message 1: tell me a story\n/list\n", f);
    fclose(f);
    chat_start(&r, db, "--temp 0 --repeat-penalty 1 -n 1800 -c 2048", in, out, limit, false);
    int rc = chat_wait(&r, 300);
    char *printed = (char *)tu_read_file(out, NULL);
    assert_non_null(printed);
    const char *msg = strstr(printed, "error: the conversation was not saved");
    if (!msg) msg = strstr(printed, "not saved");
    if (!msg) fail_msg("no clear error for the failed save (exit %d):\n%.2000s", rc, printed);
    const char *nl = strchr(msg, '\n');
    printf("# the chat said: %.*s\n", nl ? (int)(nl - msg) : 300, msg);
    assert_true(strstr(msg, "could not grow") || strstr(msg, "disk is full") || strstr(msg, "too large"));
    /* /list after the failure: the store is still read */
    assert_non_null(strstr(msg, "run 0 message 1"));
    free(printed);
    assert_true(rc == 0 || rc == 1); /* it ended by itself, no crash */
    record after;
    read_store(db, &after);
    assert_int_equal(compare_records(&before, &after), 0);
    record_free(&before);
    record_free(&after);
}

/* The same at the store's level: a child with the limit appends a turn
 * too large for it, then reads. */
static void test_full_disk_store(void **state) {
    (void)state;
    const char *db = G3_TEST_TMP "/full-store.db";
    unlink(db);
    g3_store *st;
    g3_error err;
    assert_int_equal(g3_store_open(db, NULL, &st, &err), 0);
    int64_t id;
    g3_store_conv_fields fields = g3_store_conv_fields_defaults();
    assert_int_equal(g3_store_create(st, &fields, &id, &err), 0);
    g3_store_user_msg u = {.text = "kept"};
    g3_store_answer a = {.text = "kept answer", .finish_reason = "end_of_turn"};
    assert_int_equal(g3_store_append(st, id, &u, &a, NULL, NULL, &err), 0);
    g3_store_close(st);
    record before;
    read_store(db, &before);
    pid_t pid = fork();
    assert_true(pid >= 0);
    if (pid == 0) {
        signal(SIGXFSZ, SIG_IGN);
        struct rlimit rl = {.rlim_cur = 40000, .rlim_max = 40000};
        if (setrlimit(RLIMIT_FSIZE, &rl)) _exit(91);
        if (g3_store_open(db, NULL, &st, &err)) _exit(1);
        static uint8_t big[256 * 1024];
        memset(big, 'x', sizeof big);
        g3_store_attachment_in att = {.name = "big.txt", .media_type = "text/plain", .data = big, .size = sizeof big};
        g3_store_user_msg u2 = {.text = "too big", .attachments = &att, .n_attachments = 1};
        int rc = g3_store_append(st, id, &u2, &a, NULL, NULL, &err);
        if (rc != G3_STORE_FULL) {
            fprintf(stderr, "append: %d %s\n", rc, err.msg);
            _exit(2);
        }
        printf("# the store said: %s\n", err.msg);
        fflush(stdout);
        if (!strstr(err.msg, "could not grow") || !strstr(err.msg, "full-store.db")) _exit(3);
        g3_store_conv c;
        if (g3_store_get(st, id, &c, &err) || c.n_turns != 2) _exit(4); /* reads still served */
        g3_store_conv_free(&c);
        g3_store_close(st);
        _exit(0);
    }
    int status;
    assert_int_equal(waitpid(pid, &status, 0), pid);
    assert_true(WIFEXITED(status));
    assert_int_equal(WEXITSTATUS(status), 0);
    record after;
    read_store(db, &after);
    assert_int_equal(compare_records(&before, &after), 0);
    record_free(&before);
    record_free(&after);
}

/* A read-only file (as nobody, if root) and a locked one: refused at start. */
static void test_readonly_and_locked(void **state) {
    (void)state;
    const char *dir = G3_TEST_TMP "/crash-ro", *db = G3_TEST_TMP "/crash-ro/ro.db",
               *in = G3_TEST_TMP "/crash-ro/in.txt", *out = G3_TEST_TMP "/crash-ro/out.txt";
    free(tu_run("rm -rf " G3_TEST_TMP "/crash-ro", NULL));
    assert_int_equal(mkdir(dir, 0777), 0);
    assert_int_equal(chmod(dir, 0777), 0); /* nobody writes its output here */
    write_messages(in, 0, 1);
    chat_run r;
    chat_start(&r, db, "--temp 0 -n 4", in, out, 0, false);
    assert_int_equal(chat_wait(&r, 120), 0);
    record before;
    read_store(db, &before);
    long long size = file_size(db);
    assert_int_equal(chmod(db, 0444), 0);
    unlink(out);
    chat_start(&r, db, "--temp 0 -n 4", in, out, 0, true);
    int rc = chat_wait(&r, 120);
    char *printed = (char *)tu_read_file(out, NULL);
    assert_non_null(printed);
    printf("# read-only: exit %d: %.*s\n", rc, (int)strcspn(printed, "\n"), printed);
    assert_int_not_equal(rc, 0);
    assert_non_null(strstr(printed, db));
    assert_true(strstr(printed, "read-only") || strstr(printed, "cannot be written"));
    free(printed);
    assert_int_equal(chmod(db, 0644), 0);
    assert_int_equal(file_size(db), size);

    /* another process holds the write lock */
    sqlite3 *other;
    assert_int_equal(sqlite3_open(db, &other), SQLITE_OK);
    assert_int_equal(sqlite3_exec(other, "BEGIN EXCLUSIVE; UPDATE conversations SET title = title", NULL, NULL, NULL),
                     SQLITE_OK);
    chat_start(&r, db, "--temp 0 -n 4", in, out, 0, false);
    rc = chat_wait(&r, 120);
    printed = (char *)tu_read_file(out, NULL);
    assert_non_null(printed);
    printf("# locked: exit %d: %.*s\n", rc, (int)strcspn(printed, "\n"), printed);
    assert_int_not_equal(rc, 0);
    assert_non_null(strstr(printed, db));
    assert_non_null(strstr(printed, "locked"));
    free(printed);
    sqlite3_exec(other, "ROLLBACK", NULL, NULL, NULL);
    sqlite3_close(other);
    record after;
    read_store(db, &after);
    assert_int_equal(compare_records(&before, &after), 0);
    assert_int_equal(after.n, before.n);
    record_free(&before);
    record_free(&after);
}


/* ---- the same through `gemma-chat serve --db` and the native API ---------- */

#define SERVE_DB G3_TEST_TMP "/crash-serve.db"

/* The server a test is running: a failed assertion leaves the test at
 * once, and the teardown stops it rather than leaving it behind. */
static hc_server *g_live;

static int kill_live_server(void **state) {
    (void)state;
    if (g_live) hc_kill_server(g_live);
    g_live = NULL;
    return 0;
}

/* A request with a JSON body; the parsed JSON body (NULL if none) and the status. */
static cJSON *api(const hc_server *s, const char *method, const char *path, const char *body, int *status) {
    int fd = hc_send_request(s->port, method, path, body ? "Content-Type: application/json\r\n" : NULL, body);
    if (fd < 0) {
        *status = -1;
        return NULL;
    }
    bool to;
    char *raw = hc_read_all(fd, 120, &to);
    close(fd);
    *status = to ? -2 : hc_status(raw);
    cJSON *o = raw ? cJSON_Parse(hc_body(raw)) : NULL;
    free(raw);
    return o;
}

static const char *json_str(const cJSON *o, const char *a, const char *b) {
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(o, a);
    if (b) v = cJSON_GetObjectItemCaseSensitive(v, b);
    return cJSON_IsString(v) ? v->valuestring : NULL;
}

/* What the test knows was stored: the pairs whose request completed. */
typedef struct expect_pair {
    int64_t conv;
    char *user, *answer;
} expect_pair;

typedef struct expectations {
    expect_pair *p;
    size_t n, cap;
} expectations;

static void expect_add(expectations *x, int64_t conv, const char *user, const char *answer) {
    if (x->n == x->cap) {
        x->cap = x->cap ? x->cap * 2 : 64;
        x->p = realloc(x->p, x->cap * sizeof *x->p);
        assert_non_null(x->p);
    }
    x->p[x->n++] = (expect_pair){conv, strdup(user), strdup(answer)};
}

/* Every completed pair is in the store, in order, byte for byte; after a
 * conversation's completed pairs at most one more whole pair (the answer
 * being streamed when the kill came may have been committed just before).
 * The number of pairs missing or changed. */
static size_t check_completed(const expectations *x, const record *now) {
    size_t bad = 0;
    for (size_t i = 0; i < now->n; i++) {
        const rec_conv *c = &now->convs[i];
        size_t k = 0;
        for (size_t j = 0; j < x->n; j++) {
            if (x->p[j].conv != c->id) continue;
            if (k + 1 >= c->n || strcmp(c->turns[k].text, x->p[j].user) || strcmp(c->turns[k + 1].text, x->p[j].answer)) {
                printf("# LOST or changed: conversation %lld pair %zu\n", (long long)c->id, k / 2);
                bad++;
            }
            k += 2;
        }
        if (c->n % 2 || c->n > k + 2) {
            printf("# conversation %lld: %zu turns where %zu were completed (+ at most one pair)\n", (long long)c->id,
                   c->n, k);
            bad++;
        }
    }
    for (size_t j = 0; j < x->n; j++)
        if (!record_find(now, x->p[j].conv)) {
            printf("# LOST: conversation %lld\n", (long long)x->p[j].conv);
            bad++;
        }
    return bad;
}

/* One message to the conversation, to the end: the answer's text (malloc'd)
 * as the API returned it (the JSON reply, or the stream's done event). */
static char *send_message(const hc_server *s, int64_t conv, const char *text, bool stream) {
    char path[128], body[512];
    snprintf(path, sizeof path, "/api/conversations/%lld/messages", (long long)conv);
    snprintf(body, sizeof body, "{\"content\":\"%s\",\"stream\":%s}", text, stream ? "true" : "false");
    if (!stream) {
        int st;
        cJSON *o = api(s, "POST", path, body, &st);
        const char *ans = json_str(o, "message", "content");
        if (st != 200 || !ans) fail_msg("POST %s: status %d", path, st);
        char *out = strdup(ans);
        cJSON_Delete(o);
        return out;
    }
    int fd = hc_send_request(s->port, "POST", path, "Content-Type: application/json\r\n", body);
    assert_true(fd >= 0);
    bool to;
    char *raw = hc_read_all(fd, 120, &to);
    close(fd);
    const char *done = strstr(raw, "event: done\ndata: ");
    if (to || !done) { /* the events as text (a NUL in them would cut the message) */
        for (char *p = raw; !to && p < raw + strlen(raw); p++)
            if ((unsigned char)*p < 0x20 && *p != '\n') *p = '?';
        fail_msg("stream to %s: no done event (%s)", path, to ? "timed out" : raw);
    }
    cJSON *o = cJSON_Parse(done + strlen("event: done\ndata: "));
    const char *ans = json_str(o, "message", "content");
    assert_non_null(ans);
    char *out = strdup(ans);
    cJSON_Delete(o);
    free(raw);
    return out;
}

static int64_t create_conversation(const hc_server *s, const char *settings) {
    int st;
    cJSON *o = api(s, "POST", "/api/conversations", settings, &st);
    const cJSON *id = cJSON_GetObjectItemCaseSensitive(o, "id");
    if (st != 201 || !cJSON_IsNumber(id)) fail_msg("create: status %d", st);
    int64_t v = (int64_t)id->valuedouble;
    cJSON_Delete(o);
    return v;
}

static void test_serve_kills(void **state) {
    (void)state;
    unlink(SERVE_DB);
    unlink(SERVE_DB "-wal");
    unlink(SERVE_DB "-shm");
    const int kills = env_int("G3_CRASH_KILLS", 20);
    uint64_t seed = (uint64_t)env_int("G3_CRASH_SEED", (int)(time(NULL) % 1000000) + 1);
    printf("# serve crash: %d kills, seed %llu (G3_CRASH_SEED replays them)\n", kills, (unsigned long long)seed);
    const char *extra[] = {"--db", SERVE_DB, NULL};
    expectations x = {0};
    record prev = {0};
    size_t lost = 0, committed_at_kill = 0;
    size_t landed = 0;
    /* until `kills` kills have landed inside a streamed answer (one that
     * ended first is not counted), at most twice as many runs */
    int i;
    for (i = 1; (int)landed < kills && i <= 2 * kills; i++) {
        static hc_server s;
        s = (hc_server){0};
        if (hc_start_server(&s, MODEL, "crash-serve.log", extra, 0))
            fail_msg("serve did not start after kill %d; see %s", i - 1, s.log);
        g_live = &s;
        /* it answers: a conversation, one answer in full, one streamed in full */
        int64_t conv = create_conversation(&s, "{\"settings\":{\"max_tokens\":400}}");
        char msg[64];
        snprintf(msg, sizeof msg, "kill %d message 1", i);
        char *ans = send_message(&s, conv, msg, false);
        expect_add(&x, conv, msg, ans);
        free(ans);
        snprintf(msg, sizeof msg, "kill %d message 2", i);
        double t0 = hc_now();
        ans = send_message(&s, conv, msg, true);
        double full = hc_now() - t0;
        expect_add(&x, conv, msg, ans);
        free(ans);
        /* the third, streamed, killed at a random moment after its first token */
        char path[128], body[256];
        snprintf(path, sizeof path, "/api/conversations/%lld/messages", (long long)conv);
        snprintf(body, sizeof body, "{\"content\":\"kill %d message 3\",\"stream\":true}", i);
        int fd = hc_send_request(s.port, "POST", path, "Content-Type: application/json\r\n", body);
        assert_true(fd >= 0);
        assert_true(hc_read_until(fd, "event: token", 60));
        double frac = 0.9 * (double)(next_rand(&seed) % 10000) / 10000.0;
        double until = hc_now() + frac * full;
        bool ended = false;
        while (!ended && hc_now() < until) {
            char buf[4096];
            struct pollfd p = {.fd = fd, .events = POLLIN};
            if (poll(&p, 1, 1) > 0 && recv(fd, buf, sizeof buf, MSG_DONTWAIT) == 0) ended = true;
        }
        hc_kill_server(&s);
        landed += !ended;
        close(fd);
        record now;
        read_store(SERVE_DB, &now); /* integrity_check inside */
        size_t l = compare_records(&prev, &now) + check_completed(&x, &now);
        const rec_conv *c = record_find(&now, conv);
        bool third = c && c->n == 6;
        committed_at_kill += third;
        printf("# kill %2d at %.2f of an answer's time after its first token%s: %s, %zu lost\n", i, frac,
               ended ? " (the stream had ended: not counted)" : "",
               third ? "the streamed answer had been committed" : "the streamed answer not committed", l);
        /* a committed third pair is now part of what must last */
        if (third) expect_add(&x, conv, c->turns[4].text, c->turns[5].text);
        lost += l;
        record_free(&prev);
        prev = now;
    }
    /* a last restart answers too, then exits cleanly */
    static hc_server s;
    s = (hc_server){0};
    assert_int_equal(hc_start_server(&s, MODEL, "crash-serve.log", extra, 0), 0);
    g_live = &s;
    int64_t conv = create_conversation(&s, NULL);
    char *ans = send_message(&s, conv, "after the kills", false);
    free(ans);
    assert_int_equal(hc_stop_server(&s, 30), 0);
    printf("# serve crash: %zu kills inside a streamed answer survived (%d runs), %zu answers committed before "
           "their kill, %zu pairs completed and kept, %zu lost; integrity ok after each\n",
           landed, i - 1, committed_at_kill, x.n, lost);
    for (size_t j = 0; j < x.n; j++) {
        free(x.p[j].user);
        free(x.p[j].answer);
    }
    free(x.p);
    record_free(&prev);
    assert_int_equal(lost, 0);
    assert_int_equal(landed, (size_t)kills);
}

/* serve with its files capped (RLIMIT_FSIZE, lowered with prlimit once it
 * runs) at their current size: the next answer cannot be saved. The client
 * gets a clear error, reads are still served, nothing committed is lost. */
static void test_serve_full_disk(void **state) {
    (void)state;
    const char *db = G3_TEST_TMP "/serve-full.db";
    unlink(db);
    unlink(G3_TEST_TMP "/serve-full.db-wal");
    unlink(G3_TEST_TMP "/serve-full.db-shm");
    const char *extra[] = {"--db", db, "-c", "2048", NULL};
    static hc_server s;
    s = (hc_server){0};
    g_live = &s;
    /* a limit far away for now: it makes serve ignore SIGXFSZ */
    assert_int_equal(hc_start_server(&s, MODEL, "serve-full.log", extra, 1ll << 40), 0);
    int64_t conv = create_conversation(&s, "{\"settings\":{\"max_tokens\":2000,\"temperature\":0.1}}");
    free(send_message(&s, conv, "first", false));
    record before;
    read_store(db, &before);
    /* the store's files may not grow any more: the database and its WAL
     * (the -shm index is mapped and already its full 32 KiB) */
    long long limit = file_size(db), wal = file_size(G3_TEST_TMP "/serve-full.db-wal");
    if (wal > limit) limit = wal;
    limit += 512;
    /* the soft limit only: the hard one stays, so the limit can be raised again */
    struct rlimit rl = {.rlim_cur = (rlim_t)limit, .rlim_max = (rlim_t)(1ll << 40)};
    assert_int_equal(prlimit(s.pid, RLIMIT_FSIZE, &rl, NULL), 0);
    printf("# full disk: database %lld bytes, WAL %lld bytes: serve's files capped at %lld bytes\n", file_size(db),
           wal, limit);
    char path[128];
    snprintf(path, sizeof path, "/api/conversations/%lld/messages", (long long)conv);
    /* streamed: the tokens come, then the error event instead of done */
    int fd = hc_send_request(s.port, "POST", path, "Content-Type: application/json\r\n",
                             "{\"content\":\"tell me a long story\",\"stream\":true}");
    bool to;
    char *raw = hc_read_all(fd, 120, &to);
    close(fd);
    assert_false(to);
    const char *err = strstr(raw, "event: error");
    if (!err) {
        size_t raw_len = strlen(raw);
        fail_msg("no error event for the answer that could not be saved (%zu bytes): ...%s", raw_len,
                 raw + (raw_len > 1500 ? raw_len - 1500 : 0));
    }
    const char *nl = strstr(err, "\n\n");
    printf("# serve, full disk: %.*s\n", nl ? (int)(nl - err) : 400, err);
    assert_non_null(strstr(err, "not saved"));
    assert_true(strstr(err, "could not grow") || strstr(err, "disk is full"));
    assert_null(strstr(raw, "event: done"));
    free(raw);
    /* non-streaming: a 5xx with the same message */
    int st;
    cJSON *o = api(&s, "POST", path, "{\"content\":\"and another\"}", &st);
    printf("# serve, full disk, non-streaming: status %d: %s\n", st, json_str(o, "error", "message"));
    assert_true(st >= 500 && st <= 599);
    assert_non_null(strstr(json_str(o, "error", "message"), "not saved"));
    cJSON_Delete(o);
    /* reads are still served */
    snprintf(path, sizeof path, "/api/conversations/%lld", (long long)conv);
    o = api(&s, "GET", path, NULL, &st);
    assert_int_equal(st, 200);
    const cJSON *msgs = cJSON_GetObjectItemCaseSensitive(o, "messages");
    assert_int_equal(cJSON_GetArraySize(msgs), 2);
    cJSON_Delete(o);
    o = api(&s, "GET", "/api/conversations", NULL, &st);
    assert_int_equal(st, 200);
    cJSON_Delete(o);
    /* room again (the disk freed): it saves again, and exits cleanly */
    rl.rlim_cur = rl.rlim_max;
    assert_int_equal(prlimit(s.pid, RLIMIT_FSIZE, &rl, NULL), 0);
    free(send_message(&s, conv, "after the disk was freed", false));
    assert_int_equal(hc_stop_server(&s, 30), 0);
    record after;
    read_store(db, &after);
    assert_int_equal(after.n, 1);
    assert_int_equal(after.convs[0].n, 4); /* the first pair kept, the refused ones absent, the last saved */
    assert_string_equal(after.convs[0].turns[0].text, before.convs[0].turns[0].text);
    assert_string_equal(after.convs[0].turns[1].text, before.convs[0].turns[1].text);
    assert_string_equal(after.convs[0].turns[2].text, "after the disk was freed");
    record_free(&before);
    record_free(&after);
}

/* serve refuses a read-only and a locked --db at start, naming the file. */
static void test_serve_readonly_and_locked(void **state) {
    (void)state;
    const char *dir = G3_TEST_TMP "/serve-ro", *db = G3_TEST_TMP "/serve-ro/ro.db";
    free(tu_run("rm -rf " G3_TEST_TMP "/serve-ro", NULL));
    assert_int_equal(mkdir(dir, 0777), 0);
    assert_int_equal(chmod(dir, 0777), 0);
    g3_store *st;
    g3_error err;
    assert_int_equal(g3_store_open(db, NULL, &st, &err), 0);
    g3_store_close(st);
    assert_int_equal(chmod(db, 0444), 0);
    const char *extra[] = {"--db", db, NULL};
    hc_server s = {.as_nobody = true};
    assert_int_not_equal(hc_start_server(&s, MODEL, "serve-ro/serve.log", extra, 0), 0);
    char *log = (char *)tu_read_file(s.log, NULL);
    assert_non_null(log);
    printf("# serve, read-only db: %.*s\n", (int)strcspn(log, "\n"), log);
    assert_non_null(strstr(log, db));
    assert_true(strstr(log, "read-only") || strstr(log, "cannot be written"));
    free(log);
    assert_int_equal(chmod(db, 0644), 0);
    sqlite3 *other;
    assert_int_equal(sqlite3_open(db, &other), SQLITE_OK);
    assert_int_equal(sqlite3_exec(other, "BEGIN EXCLUSIVE; UPDATE conversations SET title = title", NULL, NULL, NULL),
                     SQLITE_OK);
    s = (hc_server){0};
    assert_int_not_equal(hc_start_server(&s, MODEL, "serve-ro/serve-locked.log", extra, 0), 0);
    log = (char *)tu_read_file(s.log, NULL);
    assert_non_null(log);
    printf("# serve, locked db: %.*s\n", (int)strcspn(log, "\n"), log);
    assert_non_null(strstr(log, db));
    assert_non_null(strstr(log, "locked"));
    free(log);
    sqlite3_exec(other, "ROLLBACK", NULL, NULL, NULL);
    sqlite3_close(other);
}

int main(void) {
    setvbuf(stdout, NULL, _IOLBF, 0);
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_kills),
        cmocka_unit_test(test_full_disk_chat),
        cmocka_unit_test(test_full_disk_store),
        cmocka_unit_test(test_readonly_and_locked),
        cmocka_unit_test_teardown(test_serve_kills, kill_live_server),
        cmocka_unit_test_teardown(test_serve_full_disk, kill_live_server),
        cmocka_unit_test(test_serve_readonly_and_locked),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
