/* gen_options.h: the model, context and sampling flags `run` and `chat`
 * share, spelled as llama.cpp spells them. */
#ifndef G3_APP_GEN_OPTIONS_H
#define G3_APP_GEN_OPTIONS_H

#include <stdbool.h>

#include "gemma3_chat.h"

#define GEN_MAX_STOP 8

typedef struct gen_options {
    const char *model;
    const char *system;       /* -s TEXT */
    const char *preset;       /* --preset NAME */
    g3_context_params cp;
    g3_gen_params gen;
    const char *stop[GEN_MAX_STOP + 1];
    int n_stop;
    bool verbose;
} gen_options;

void gen_options_init(gen_options *o);
/* Consumes argv[*i] (and its value) if it is a shared flag: returns 1 when
 * consumed, 0 when not ours, -1 on a bad value (message printed). */
int gen_options_parse(const char *cmd, gen_options *o, int argc, char **argv, int *i);
/* After parsing: -m present, the preset known. Returns the system prompt
 * to use (from -s, or the preset) through *system. */
int gen_options_finish(const char *cmd, gen_options *o, const char **system);
void gen_options_help(FILE *out);

#endif
