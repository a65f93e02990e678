/* gemma-chat tokenize / detokenize: the tokenizer from the command line.
 *   tokenize -m MODEL (--text T | --file F) [--no-bos] [--special] [--verbose]
 *     prints the ids as a JSON array on one line.
 *   detokenize -m MODEL --ids 1,2,3 [--skip-special]
 *     prints the text, byte for byte (a newline is added only on a terminal).
 * MODEL is any GGUF with tokenizer.* keys; only the vocabulary is loaded, so
 * a vocabulary-only file without tensors works. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "app/app.h"
#include "gemma3_text.h"

static double now_ms(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return ts.tv_sec * 1e3 + ts.tv_nsec * 1e-6;
}

static int load_tokenizer(const char *cmd, const char *path, g3_tokenizer **tok) {
    g3_error err;
    if (g3_tokenizer_load(path, tok, &err)) {
        app_error(cmd, "%s", err.msg);
        return -1;
    }
    return 0;
}

/* ---- tokenize ------------------------------------------------------------ */

typedef struct tok_opts {
    const char *model, *text, *file;
    bool no_bos, special, verbose;
} tok_opts;

static void tokenize_usage(FILE *out) {
    fprintf(out,
            "usage: gemma-chat tokenize -m MODEL (--text T | --file F) [--no-bos] [--special] [--verbose]\n"
            "  prints the token ids as a JSON array on one line\n"
            "  --no-bos   do not prepend <bos>\n"
            "  --special  match control tokens (<start_of_turn>, <bos>, ...) written in the text\n"
            "  --verbose  print load and tokenize timings to stderr\n"
            "  MODEL is any GGUF with tokenizer.* keys (a vocabulary-only file works)\n");
}

static int tokenize_args(int argc, char **argv, tok_opts *o) {
    const char *cmd = "tokenize";
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        if (strcmp(a, "--help") == 0 || strcmp(a, "-h") == 0) { tokenize_usage(stdout); exit(0); }
        if (strcmp(a, "--no-bos") == 0) { o->no_bos = true; continue; }
        if (strcmp(a, "--special") == 0) { o->special = true; continue; }
        if (strcmp(a, "--verbose") == 0 || strcmp(a, "-v") == 0) { o->verbose = true; continue; }
        const char *v;
        if (strcmp(a, "-m") == 0 || strcmp(a, "--model") == 0) {
            if (!(v = app_flag_value(cmd, argc, argv, &i))) return -1;
            o->model = v;
        } else if (strcmp(a, "--text") == 0) {
            if (!(v = app_flag_value(cmd, argc, argv, &i))) return -1;
            o->text = v;
        } else if (strcmp(a, "--file") == 0) {
            if (!(v = app_flag_value(cmd, argc, argv, &i))) return -1;
            o->file = v;
        } else {
            app_error(cmd, "unknown option '%s' (see --help)", a);
            return -1;
        }
    }
    if (!o->model) { app_error(cmd, "-m MODEL is required"); return -1; }
    if (!o->text == !o->file) { app_error(cmd, "give exactly one of --text, --file"); return -1; }
    return 0;
}

static void print_ids(const int32_t *ids, size_t n) {
    putchar('[');
    for (size_t i = 0; i < n; i++) printf(i ? ", %d" : "%d", (int)ids[i]);
    puts("]");
}

int cmd_tokenize(int argc, char **argv) {
    tok_opts o = {0};
    if (tokenize_args(argc, argv, &o)) return 2;
    size_t len = 0;
    char *file_text = NULL;
    if (o.file && !(file_text = app_read_file("tokenize", o.file, &len))) return 1;
    const char *text = o.file ? file_text : o.text;
    if (!o.file) len = strlen(o.text);

    double t0 = now_ms();
    g3_tokenizer *tok;
    if (load_tokenizer("tokenize", o.model, &tok)) { free(file_text); return 1; }
    double t1 = now_ms();
    int32_t *ids = NULL;
    size_t n = 0;
    g3_error err;
    int rc = g3_tokenize(tok, text, len, !o.no_bos, o.special, &ids, &n, &err);
    double t2 = now_ms();
    if (rc) {
        app_error("tokenize", "%s", err.msg);
    } else {
        print_ids(ids, n);
        if (o.verbose)
            fprintf(stderr, "tokenize: vocabulary of %u tokens loaded in %.2f ms; %zu bytes -> %zu tokens in %.2f ms (%.1f MB/s)\n",
                    g3_tokenizer_n_vocab(tok), t1 - t0, len, n, t2 - t1, len / ((t2 - t1) * 1e3 + 1e-9));
    }
    free(ids);
    g3_tokenizer_free(tok);
    free(file_text);
    return rc ? 1 : 0;
}

/* ---- detokenize ---------------------------------------------------------- */

/* "1,2,3", "1, 2, 3" or "[1,2,3]"; every id checked against the vocabulary. */
static int parse_ids(const char *text, const g3_tokenizer *tok, int32_t **ids, size_t *n) {
    const char *cmd = "detokenize";
    size_t cap = 0;
    const char *p = text;
    for (;;) {
        while (*p == ' ' || *p == ',' || *p == '[' || *p == ']' || *p == '\t' || *p == '\n') p++;
        if (!*p) return 0;
        char *end;
        errno = 0;
        long long v = strtoll(p, &end, 10);
        if (end == p || errno || (*end && !strchr(" ,]\t\n", *end))) {
            app_error(cmd, "--ids expects comma-separated integers, bad entry at '%.20s'", p);
            return -1;
        }
        if (v < 0 || v >= (long long)g3_tokenizer_n_vocab(tok)) {
            app_error(cmd, "token id %lld is outside the vocabulary (%u tokens)", v, g3_tokenizer_n_vocab(tok));
            return -1;
        }
        if (*n == cap) {
            cap = cap ? cap * 2 : 64;
            int32_t *grown = realloc(*ids, sizeof **ids * cap);
            if (!grown) { app_error(cmd, "out of memory"); return -1; }
            *ids = grown;
        }
        (*ids)[(*n)++] = (int32_t)v;
        p = end;
    }
}

static void detokenize_usage(FILE *out) {
    fprintf(out,
            "usage: gemma-chat detokenize -m MODEL --ids 1,2,3 [--skip-special]\n"
            "  prints the text the ids stand for (invalid UTF-8 as U+FFFD)\n"
            "  --skip-special  leave out <bos>, <eos>, <pad>, <start_of_turn>, ... (keeps <unusedN>, <mask>)\n");
}

/* Streams the ids through the incremental detokenizer, as a chat would. */
static int print_text(const g3_tokenizer *tok, const int32_t *ids, size_t n, bool skip_special) {
    g3_detokenizer d;
    g3_detokenizer_init(&d, tok, skip_special);
    char buf[1024];
    for (size_t i = 0; i <= n; i++) {
        int k = i < n ? g3_detokenizer_push(&d, ids[i], buf, sizeof buf) : g3_detokenizer_flush(&d, buf, sizeof buf);
        if (k < 0) {
            app_error("detokenize", "cannot decode token %d", i < n ? (int)ids[i] : -1);
            return -1;
        }
        fwrite(buf, 1, (size_t)k, stdout);
    }
    if (isatty(STDOUT_FILENO)) putchar('\n');
    return fflush(stdout) == 0 ? 0 : -1;
}

int cmd_detokenize(int argc, char **argv) {
    const char *cmd = "detokenize", *model = NULL, *ids_text = NULL;
    bool skip_special = false;
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        if (strcmp(a, "--help") == 0 || strcmp(a, "-h") == 0) { detokenize_usage(stdout); return 0; }
        if (strcmp(a, "--skip-special") == 0) { skip_special = true; continue; }
        const char *v;
        if (strcmp(a, "-m") == 0 || strcmp(a, "--model") == 0) {
            if (!(v = app_flag_value(cmd, argc, argv, &i))) return 2;
            model = v;
        } else if (strcmp(a, "--ids") == 0) {
            if (!(v = app_flag_value(cmd, argc, argv, &i))) return 2;
            ids_text = v;
        } else {
            app_error(cmd, "unknown option '%s' (see --help)", a);
            return 2;
        }
    }
    if (!model || !ids_text) { app_error(cmd, "-m MODEL and --ids are required"); return 2; }
    g3_tokenizer *tok;
    if (load_tokenizer(cmd, model, &tok)) return 1;
    int32_t *ids = NULL;
    size_t n = 0;
    int rc = parse_ids(ids_text, tok, &ids, &n) ? 2 : print_text(tok, ids, n, skip_special) ? 1 : 0;
    free(ids);
    g3_tokenizer_free(tok);
    return rc;
}
