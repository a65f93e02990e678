#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "app/app.h"
#include "app/gen_options.h"

void gen_options_init(gen_options *o) {
    memset(o, 0, sizeof *o);
    o->gen = g3_gen_defaults();
    o->cp.n_ctx = 8192;
}

static int parse_float(const char *cmd, const char *flag, const char *v, float *out) {
    char *end;
    float f = strtof(v, &end);
    if (end == v || *end) {
        app_error(cmd, "%s expects a number, got '%s'", flag, v);
        return -1;
    }
    *out = f;
    return 0;
}

int gen_options_parse(const char *cmd, gen_options *o, int argc, char **argv, int *i) {
    static const char *const with_value[] = {"-m", "--model", "-c", "--ctx-size", "-t", "--threads", "-n",
                                             "--n-predict", "--temp", "--top-k", "--top-p", "--min-p",
                                             "--repeat-penalty", "--repeat-last-n", "--seed", "-s", "--system",
                                             "--preset", "--stop", NULL};
    const char *a = argv[*i];
    if (strcmp(a, "--verbose") == 0 || strcmp(a, "-v") == 0) {
        o->verbose = true;
        return 1;
    }
    bool ours = false;
    for (int k = 0; with_value[k]; k++) ours |= strcmp(a, with_value[k]) == 0;
    if (!ours) return 0;
    const char *v = app_flag_value(cmd, argc, argv, i);
    if (!v) return -1;
    g3_sampler_params *sp = &o->gen.sampler;
    int rc = 0;
    if (!strcmp(a, "-m") || !strcmp(a, "--model")) o->model = v;
    else if (!strcmp(a, "-c") || !strcmp(a, "--ctx-size")) rc = app_parse_u32(cmd, a, v, 16, 1u << 24, &o->cp.n_ctx);
    else if (!strcmp(a, "-t") || !strcmp(a, "--threads")) rc = app_parse_u32(cmd, a, v, 1, 1024, &o->cp.n_threads);
    else if (!strcmp(a, "-n") || !strcmp(a, "--n-predict")) rc = app_parse_u32(cmd, a, v, 1, 1u << 20, &o->gen.max_new_tokens);
    else if (!strcmp(a, "--temp")) rc = parse_float(cmd, a, v, &sp->temperature);
    else if (!strcmp(a, "--top-k")) rc = app_parse_u32(cmd, a, v, 0, 1u << 24, &sp->top_k);
    else if (!strcmp(a, "--top-p")) rc = parse_float(cmd, a, v, &sp->top_p);
    else if (!strcmp(a, "--min-p")) rc = parse_float(cmd, a, v, &sp->min_p);
    else if (!strcmp(a, "--repeat-penalty")) rc = parse_float(cmd, a, v, &sp->repeat_penalty);
    else if (!strcmp(a, "--repeat-last-n")) rc = app_parse_u32(cmd, a, v, 0, 1u << 24, &sp->repeat_last_n);
    else if (!strcmp(a, "--seed")) rc = app_parse_u64(cmd, a, v, &sp->seed);
    else if (!strcmp(a, "-s") || !strcmp(a, "--system")) o->system = v;
    else if (!strcmp(a, "--preset")) o->preset = v;
    else if (!strcmp(a, "--stop")) {
        if (o->n_stop == GEN_MAX_STOP) {
            app_error(cmd, "at most %d --stop strings", GEN_MAX_STOP);
            return -1;
        }
        o->stop[o->n_stop++] = v;
        o->gen.stop = o->stop;
    }
    return rc ? -1 : 1;
}

int gen_options_finish(const char *cmd, gen_options *o, const char **system) {
    if (!o->model) {
        app_error(cmd, "-m MODEL is required");
        return -1;
    }
    g3_error err;
    if (g3_sampler_params_check(&o->gen.sampler, &err)) {
        app_error(cmd, "%s", err.msg);
        return -1;
    }
    *system = o->system;
    if (o->preset) {
        const g3_preset *p = g3_preset_find(o->preset);
        if (!p) {
            app_error(cmd, "unknown preset '%s' (general, document, visual, tutor, reviewer, storyteller, custom)",
                      o->preset);
            return -1;
        }
        if (!o->system) *system = p->system_prompt;
    }
    return 0;
}

void gen_options_help(FILE *out) {
    fprintf(out,
            "  -m, --model FILE        Gemma 3 GGUF model (required)\n"
            "  -s, --system TEXT       system prompt (overrides --preset)\n"
            "  --preset NAME           general, document, visual, tutor, reviewer, storyteller, custom\n"
            "  -c, --ctx-size N        context size in tokens (default 8192)\n"
            "  -t, --threads N         worker threads (default: physical cores)\n"
            "  -n, --n-predict N       max new tokens (default 700)\n"
            "  --temp T                temperature, 0 = greedy (default 0.7)\n"
            "  --top-k K               (default 50, 0 = off)\n"
            "  --top-p P               (default 0.9, 1 = off)\n"
            "  --min-p P               (default 0 = off)\n"
            "  --repeat-penalty R      (default 1.1, 1 = off)\n"
            "  --repeat-last-n N       tokens the penalty looks back over (default 64)\n"
            "  --seed S                random seed (default: from the clock)\n"
            "  --stop TEXT             stop when the answer contains TEXT (repeatable)\n"
            "  -v, --verbose           print prefill and generation speed after each answer\n");
}
