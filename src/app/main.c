/* gemma-chat: Gemma 3 chat and tools. One binary, one subcommand per job. */
#include <stdbool.h>
#include <stdio.h>
#include <string.h>

#include "app/app.h"

int cmd_serve(int argc, char **argv); /* cmd_serve.c */

typedef struct command {
    const char *name;
    int (*run)(int argc, char **argv);
    const char *summary;
    bool plans_memory; /* checks its plan against the memory available (G3_MEM_LIMIT) */
} command;

static const command k_commands[] = {
    {"chat", cmd_chat, "interactive terminal chat", true},
    {"run", cmd_run, "one answer to a prompt, for scripts", true},
    {"tokenize", cmd_tokenize, "text to token ids (JSON array)", false},
    {"detokenize", cmd_detokenize, "token ids to text", false},
    {"bench", cmd_bench, "prefill and decode speed, memory bandwidth roofline", true},
    {"plan", cmd_plan, "memory needed by each model size, format and context", true},
    {"quantize", cmd_quantize, "convert a F32/F16/BF16 GGUF to Q8_0, Q4_0 or Q4_K_M", false},
    {"eval", cmd_eval, "evaluate a token sequence: logits of every position, greedy continuation", true},
    {"info", cmd_info, "a model's (or vision projector's) architecture, hyperparameters and tensors", false},
    {"make-test-model", cmd_make_test_model, "write a random-weight Gemma 3 model of a real shape", false},
    {"serve", cmd_serve, "OpenAI-compatible HTTP API (chat completions, streaming, batching)", true},
    {"embed-image", cmd_embed_image, "an image's projected vision embeddings (float32), for checking", true},
};

static void usage(FILE *out) {
    fprintf(out, "usage: gemma-chat COMMAND [options]   (gemma-chat COMMAND --help for its options)\n\ncommands:\n");
    for (size_t i = 0; i < sizeof k_commands / sizeof k_commands[0]; i++)
        fprintf(out, "  %-16s %s\n", k_commands[i].name, k_commands[i].summary);
}

int main(int argc, char **argv) {
    if (argc < 2 || strcmp(argv[1], "--help") == 0 || strcmp(argv[1], "-h") == 0 ||
        strcmp(argv[1], "help") == 0) {
        usage(argc < 2 ? stderr : stdout);
        return argc < 2 ? 2 : 0;
    }
    if (strcmp(argv[1], "--version") == 0) {
        printf("gemma-chat 0.1.0\n");
        return 0;
    }
    for (size_t i = 0; i < sizeof k_commands / sizeof k_commands[0]; i++)
        if (strcmp(argv[1], k_commands[i].name) == 0) {
            if (k_commands[i].plans_memory && app_check_mem_limit(k_commands[i].name)) return 2;
            return k_commands[i].run(argc - 1, argv + 1);
        }
    fprintf(stderr, "gemma-chat: unknown command '%s'\n", argv[1]);
    usage(stderr);
    return 2;
}
