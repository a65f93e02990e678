/* device-lite.c: `bench` and `make-test-model` of gemma-chat without the
 * layers that need system libraries (media, chat store, server, terminal).
 *
 * scripts/device-check.sh builds it on a GPU machine that has a C compiler
 * and the CUDA toolkit but none of the project's other dependencies (no
 * libwebp, FFmpeg, MuPDF, libmicrohttpd, SQLite, libedit, cJSON, cmocka
 * there, and nothing can be installed): the engine (src/base, src/tensor,
 * src/model, src/cuda) plus the real src/app/cmd_bench.c and
 * src/app/cmd_make_test_model.c and the flag parsers they use
 * (src/app/flags.c). The figures are gemma-chat bench's: the same code
 * measures them. */
#include <stdio.h>
#include <string.h>

#include "app/app.h"

int main(int argc, char **argv) {
    if (argc >= 2 && !strcmp(argv[1], "bench")) return cmd_bench(argc - 1, argv + 1);
    if (argc >= 2 && !strcmp(argv[1], "make-test-model")) return cmd_make_test_model(argc - 1, argv + 1);
    fprintf(stderr, "usage: gemma-chat-lite bench|make-test-model ... (as gemma-chat's)\n");
    return 2;
}
