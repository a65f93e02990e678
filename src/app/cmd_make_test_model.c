#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "app/app.h"

static void usage(FILE *out) {
    fprintf(out,
            "usage: gemma-chat make-test-model --shape tiny|1b|4b|12b|27b [--type T] [--seed S]\n"
            "                                  [--vocab VOCAB.gguf] [--vision] [--quiet] -o OUT.gguf\n"
            "  --type   weight type of the matrices: f32 f16 bf16 q8_0 q4_0 q5_0 q4_k q5_k q6_k (default f16)\n"
            "  --seed   random seed (default 1)\n"
            "  --vocab  copy the tokenizer (tokenizer.* keys) from another GGUF\n"
            "  --vision write the shape's vision projector (mmproj: SigLIP + Gemma 3 projector) instead\n"
            "           (tiny, 4b, 12b, 27b)\n");
}

int cmd_make_test_model(int argc, char **argv) {
    const char *cmd = "make-test-model";
    g3_test_model_params p = {.shape = NULL, .type = "f16", .seed = 1, .progress = true};
    bool vision = false;
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        if (strcmp(a, "--help") == 0) {
            usage(stdout);
            return 0;
        } else if (strcmp(a, "--quiet") == 0) {
            p.progress = false;
        } else if (strcmp(a, "--vision") == 0) {
            vision = true;
        } else if (strcmp(a, "--shape") == 0 || strcmp(a, "--type") == 0 || strcmp(a, "--seed") == 0 ||
                   strcmp(a, "--vocab") == 0 || strcmp(a, "-o") == 0 || strcmp(a, "--output") == 0) {
            const char *v = app_flag_value(cmd, argc, argv, &i);
            if (!v) return 2;
            if (strcmp(a, "--shape") == 0) p.shape = v;
            else if (strcmp(a, "--type") == 0) p.type = v;
            else if (strcmp(a, "--vocab") == 0) p.vocab_path = v;
            else if (strcmp(a, "--seed") == 0) {
                if (app_parse_u64(cmd, a, v, &p.seed)) return 2;
            } else p.out_path = v;
        } else {
            app_error(cmd, "unknown option '%s'", a);
            usage(stderr);
            return 2;
        }
    }
    if (!p.shape || !p.out_path) {
        app_error(cmd, "--shape and -o are required");
        usage(stderr);
        return 2;
    }
    /* the progress line redraws itself with \r: only on a terminal; a log
     * gets one final line instead */
    const bool quiet = !p.progress;
    p.progress = p.progress && isatty(STDERR_FILENO);
    g3_error err;
    if (vision ? g3_make_test_mmproj(&p, &err) : g3_make_test_model(&p, &err)) {
        app_error(cmd, "%s", err.msg);
        return 1;
    }
    if (!quiet && !p.progress) fprintf(stderr, "wrote %s\n", p.out_path);
    return 0;
}
