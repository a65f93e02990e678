/* gen_options.h: the model, context and sampling flags `run` and `chat`
 * share, spelled as llama.cpp spells them. */
#ifndef G3_APP_GEN_OPTIONS_H
#define G3_APP_GEN_OPTIONS_H

#include <stdbool.h>

#include "gemma3_chat.h"

#define GEN_MAX_STOP 8
#define GEN_DEFAULT_CTX 8192u   /* or the model's trained length, if shorter */
#define GEN_MAX_CTX_FACTOR 4u   /* -c above this times the trained length is refused */

typedef struct gen_options {
    const char *model;
    const char *system;       /* -s TEXT */
    const char *preset;       /* --preset NAME */
    g3_context_params cp;
    g3_gen_params gen;
    const char *stop[GEN_MAX_STOP + 1];
    int n_stop;
    bool verbose;
    bool force;               /* --force: load although the memory plan does not fit */
    bool ctx_given;           /* -c was given (else the default, capped by the model) */
    const char *mmproj;       /* --mmproj FILE: the vision encoder */
    g3_image_wrap wrap;       /* --image-wrap official|golden */
    uint32_t max_frames;      /* --max-frames N: frames sampled per video (default 2, at most 4) */
    g3_default_model default_model; /* where model points when -m was not given */
} gen_options;

void gen_options_init(gen_options *o);
/* Consumes argv[*i] (and its value) if it is a shared flag: returns 1 when
 * consumed, 0 when not ours, -1 on a bad value (message printed). */
int gen_options_parse(const char *cmd, gen_options *o, int argc, char **argv, int *i);
/* After parsing: the sampler settings valid, the preset known. Returns the
 * system prompt to use (from -s, or the preset) through *system. */
int gen_options_finish(const char *cmd, gen_options *o, const char **system);
/* Without -m: the default model (g3_default_model_find), announced as the
 * first line on stderr ("gemma-chat: Gemma 3 270M (default, models/...)");
 * -1 after printing why it is missing. */
int gen_options_model(const char *cmd, gen_options *o);
void gen_options_help(FILE *out);
/* Before loading: plans the model (and --mmproj) at the chosen context and
 * KV type; caps the default context at the trained length; warns above
 * it and refuses above GEN_MAX_CTX_FACTOR times it; refuses (with the
 * numbers) a plan that does not fit the memory available, unless --force.
 * Returns -1 after printing why. */
int gen_options_preflight(const char *cmd, gen_options *o);
/* Loads --mmproj (if given) into the session; *vision must be freed by the
 * caller after the session. Returns -1 after printing why. */
/* The message parts: images and sampled video frames in the order given,
 * then the text. */
int app_media_parts(const char *cmd, const char *const *media, const bool *is_video, int n_media, uint32_t max_frames,
                    const char *text, g3_part **parts, size_t *n_parts);
int gen_options_load_vision(const char *cmd, const gen_options *o, g3_session *s, struct g3_vision **vision);

#endif
