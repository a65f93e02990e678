/* cmd_quantize.c: `gemma-chat quantize IN.gguf OUT.gguf TYPE`. */
#include <stdio.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>
#include <unistd.h>

#include "app/app.h"
#include "gemma3_plan.h"

static void usage(FILE *out) {
    fprintf(out,
            "usage: gemma-chat quantize [--quiet] IN.gguf OUT.gguf TYPE\n"
            "  TYPE: Q8_0, Q4_0 or Q4_K_M (Q4_K, with Q6_K where llama-quantize keeps 6 bits)\n"
            "  IN is an F32, F16 or BF16 gemma3 model (or its clip mmproj). All metadata,\n"
            "  the tokenizer included, is kept; general.file_type is updated. Norms stay F32;\n"
            "  the tied output (token_embd) is Q6_K in Q4_0/Q4_K_M files, as llama-quantize writes.\n"
            "  OUT is written as OUT.tmp and renamed when complete.\n");
}

static long long file_size(const char *path) {
    struct stat st;
    return stat(path, &st) == 0 ? (long long)st.st_size : -1;
}

int cmd_quantize(int argc, char **argv) {
    const char *cmd = "quantize", *pos[3] = {NULL, NULL, NULL};
    int n_pos = 0;
    bool quiet = false;
    for (int i = 1; i < argc; i++) {
        if (strcmp(argv[i], "--help") == 0 || strcmp(argv[i], "-h") == 0) {
            usage(stdout);
            return 0;
        } else if (strcmp(argv[i], "--quiet") == 0) {
            quiet = true;
        } else if (argv[i][0] == '-' && argv[i][1] != '\0') {
            app_error(cmd, "unknown option '%s'", argv[i]);
            usage(stderr);
            return 2;
        } else if (n_pos < 3) {
            pos[n_pos++] = argv[i];
        } else {
            app_error(cmd, "too many arguments ('%s')", argv[i]);
            usage(stderr);
            return 2;
        }
    }
    if (n_pos != 3) {
        app_error(cmd, "expected IN.gguf OUT.gguf TYPE");
        usage(stderr);
        return 2;
    }
    int ftype = g3_ftype_from_name(pos[2]);
    if (ftype != G3_FTYPE_Q8_0 && ftype != G3_FTYPE_Q4_0 && ftype != G3_FTYPE_Q4_K_M) {
        app_error(cmd, "unsupported type '%s': choose Q8_0, Q4_0 or Q4_K_M", pos[2]);
        return 2;
    }
    /* the bar redraws itself with \r: only a terminal shows that as one
     * line, so a log gets only the final "wrote" line */
    g3_quantize_params p = {.in_path = pos[0], .out_path = pos[1], .ftype = (g3_ftype)ftype,
                            .progress = !quiet && isatty(STDERR_FILENO)};
    g3_error err;
    if (g3_quantize(&p, &err)) {
        app_error(cmd, "%s", err.msg);
        return 1;
    }
    if (!quiet)
        fprintf(stderr, "wrote %s (%s): %.1f MiB from %.1f MiB\n", p.out_path, pos[2],
                file_size(p.out_path) / 1048576.0, file_size(p.in_path) / 1048576.0);
    return 0;
}
