/* replay_main.c: runs a libFuzzer target without libFuzzer.
 *
 * Linked with one fuzz/fuzz_TARGET.c and built by the normal compiler (see
 * fuzz/CMakeLists.txt), so CI replays the committed corpora, and every
 * crash input found by a fuzzer stays a regression test, on machines
 * without clang. Under the ASan + UBSan build the replays are as strict as
 * the fuzzer itself.
 *
 *   fuzz_replay_TARGET [PATH...]
 *
 * Every PATH is a file, or a folder whose regular files are all replayed
 * (not recursively; names sorted, so a failure reproduces in order). A few
 * built-in edge inputs (empty, single bytes, a run of 0xFF, a NUL-filled
 * page) always run first: they need no corpus and catch the commonest
 * boundary slips. Exit status: 0 when every input ran; 1 when a PATH could
 * not be read (a missing corpus must fail the test, not pass it empty).
 * A bug in the target aborts the program, as it would the fuzzer. */
#include <dirent.h>
#include <errno.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);
/* Optional in a target (the tokenizer loads its vocabulary there). */
__attribute__((weak)) int LLVMFuzzerInitialize(int *argc, char ***argv);

static size_t g_inputs;

/* Each input gets its own exact-size heap copy, so a read one byte past
 * the end is an ASan report here too (libFuzzer does the same). */
static void run_one(const uint8_t *data, size_t size) {
    uint8_t *copy = malloc(size ? size : 1);
    if (!copy) {
        fprintf(stderr, "replay: out of memory for a %zu-byte input\n", size);
        exit(1);
    }
    if (size) memcpy(copy, data, size);
    LLVMFuzzerTestOneInput(copy, size);
    free(copy);
    g_inputs++;
}

static int replay_file(const char *path) {
    FILE *f = fopen(path, "rb");
    if (!f) {
        fprintf(stderr, "replay: %s: %s\n", path, strerror(errno));
        return -1;
    }
    size_t cap = 4096, len = 0;
    uint8_t *buf = malloc(cap);
    int rc = 0;
    while (buf) {
        if (len == cap) {
            uint8_t *nb = cap > SIZE_MAX / 2 ? NULL : realloc(buf, cap * 2);
            if (!nb) {
                free(buf);
                buf = NULL;
                break;
            }
            buf = nb;
            cap *= 2;
        }
        size_t got = fread(buf + len, 1, cap - len, f);
        len += got;
        if (got == 0) break;
    }
    if (!buf) {
        fprintf(stderr, "replay: %s: out of memory\n", path);
        rc = -1;
    } else if (ferror(f)) {
        fprintf(stderr, "replay: %s: read error\n", path);
        rc = -1;
    }
    fclose(f);
    if (rc == 0) run_one(buf, len);
    free(buf);
    return rc;
}

static int cmp_names(const void *a, const void *b) {
    return strcmp(*(char *const *)a, *(char *const *)b);
}

static int replay_dir(const char *dir) {
    DIR *d = opendir(dir);
    if (!d) {
        fprintf(stderr, "replay: %s: %s\n", dir, strerror(errno));
        return -1;
    }
    char **names = NULL;
    size_t n = 0, cap = 0;
    int rc = 0;
    struct dirent *e;
    while ((e = readdir(d)) != NULL) {
        if (e->d_name[0] == '.') continue; /* ., .., and hidden files (editor droppings) */
        if (n == cap) {
            size_t ncap = cap ? cap * 2 : 64;
            char **nn = realloc(names, ncap * sizeof *nn);
            if (!nn) {
                rc = -1;
                break;
            }
            names = nn;
            cap = ncap;
        }
        if (!(names[n] = strdup(e->d_name))) {
            rc = -1;
            break;
        }
        n++;
    }
    closedir(d);
    if (rc) fprintf(stderr, "replay: %s: out of memory listing the folder\n", dir);
    if (n) qsort(names, n, sizeof *names, cmp_names);
    for (size_t i = 0; i < n && rc == 0; i++) {
        size_t plen = strlen(dir) + strlen(names[i]) + 2;
        char *path = malloc(plen);
        if (!path) {
            rc = -1;
            break;
        }
        snprintf(path, plen, "%s/%s", dir, names[i]);
        struct stat st;
        if (stat(path, &st) == 0 && S_ISREG(st.st_mode)) rc = replay_file(path);
        free(path);
    }
    for (size_t i = 0; i < n; i++) free(names[i]);
    free(names);
    return rc;
}

int main(int argc, char **argv) {
    if (LLVMFuzzerInitialize) LLVMFuzzerInitialize(&argc, &argv);
    struct timespec t0, t1;
    clock_gettime(CLOCK_MONOTONIC, &t0);

    static const uint8_t zero = 0, ff = 0xFF, one = 1, lt = '{';
    static uint8_t ffs[64], nul_page[4096];
    memset(ffs, 0xFF, sizeof ffs);
    run_one(NULL, 0);
    run_one(&zero, 1);
    run_one(&one, 1);
    run_one(&ff, 1);
    run_one(&lt, 1);
    run_one(ffs, sizeof ffs);
    run_one(nul_page, sizeof nul_page);
    size_t builtin = g_inputs;

    int failed = 0;
    for (int i = 1; i < argc; i++) {
        struct stat st;
        if (stat(argv[i], &st) != 0) {
            fprintf(stderr, "replay: %s: %s\n", argv[i], strerror(errno));
            failed = 1;
            continue;
        }
        if ((S_ISDIR(st.st_mode) ? replay_dir(argv[i]) : replay_file(argv[i])) != 0) failed = 1;
    }
    clock_gettime(CLOCK_MONOTONIC, &t1);
    double s = (double)(t1.tv_sec - t0.tv_sec) + (double)(t1.tv_nsec - t0.tv_nsec) / 1e9;
    printf("replay: %zu inputs (%zu built-in, %zu from %d path(s)) in %.2f s%s\n", g_inputs, builtin,
           g_inputs - builtin, argc - 1, s, failed ? "; some paths could not be read" : "");
    return failed;
}
