#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "app/app.h"
#include "app/gen_options.h"
#include "gemma3_plan.h"
#include "gemma3_vision.h"

void gen_options_init(gen_options *o) {
    memset(o, 0, sizeof *o);
    o->gen = g3_gen_defaults();
    o->cp.n_ctx = GEN_DEFAULT_CTX;
    o->cp.kv_type = APP_DEFAULT_KV_TYPE;
    o->max_frames = 2;
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
                                             "--preset", "--stop", "--mmproj", "--image-wrap", "--max-frames", "--kv-type",
                                             "--device", "--activations", NULL};
    const char *a = argv[*i];
    if (strcmp(a, "--verbose") == 0 || strcmp(a, "-v") == 0) {
        o->verbose = true;
        return 1;
    }
    if (strcmp(a, "--force") == 0) {
        o->force = o->cp.skip_memory_check = true;
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
    else if (!strcmp(a, "-c") || !strcmp(a, "--ctx-size")) {
        rc = app_parse_u32(cmd, a, v, 16, G3_PLAN_MAX_CTX, &o->cp.n_ctx);
        o->ctx_given = true;
    }
    else if (!strcmp(a, "-t") || !strcmp(a, "--threads")) rc = app_parse_u32(cmd, a, v, 1, 1024, &o->cp.n_threads);
    else if (!strcmp(a, "--kv-type")) rc = app_parse_kv_type(cmd, a, v, &o->cp.kv_type);
    else if (!strcmp(a, "--device")) rc = app_parse_device(cmd, a, v, &o->cp.device);
    else if (!strcmp(a, "--activations")) rc = app_parse_activations_cp(cmd, a, v, &o->cp);
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
    else if (!strcmp(a, "--mmproj")) o->mmproj = v;
    else if (!strcmp(a, "--max-frames")) rc = app_parse_u32(cmd, a, v, 1, 4, &o->max_frames);
    else if (!strcmp(a, "--image-wrap")) {
        if (!strcmp(v, "official")) o->wrap = G3_IMAGE_WRAP_OFFICIAL;
        else if (!strcmp(v, "golden")) o->wrap = G3_IMAGE_WRAP_GOLDEN;
        else {
            app_error(cmd, "--image-wrap must be official or golden, got '%s'", v);
            return -1;
        }
    }
    else if (!strcmp(a, "--stop")) {
        if (!*v) { /* was ignored without a word: the user meant something */
            app_error(cmd, "--stop needs a non-empty TEXT");
            return -1;
        }
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

int gen_options_model(const char *cmd, gen_options *o) {
    if (o->model) return 0;
    g3_error err;
    if (g3_default_model_find(&o->default_model, &err)) {
        app_error(cmd, "%s", err.msg);
        return -1;
    }
    o->model = o->default_model.path;
    app_print_default_model(&o->default_model);
    return 0;
}

int gen_options_preflight(const char *cmd, gen_options *o) {
    if (app_check_model_path(cmd, o->model)) return -1;
    g3_error err;
    g3_plan plan;
    g3_plan_params pp = {.n_ctx = o->cp.n_ctx, .n_ubatch = o->cp.n_ubatch, .kv_type = o->cp.kv_type};
    if (g3_plan_file(o->model, o->mmproj, &pp, &plan, &err)) {
        app_error(cmd, "%s", err.msg);
        return -1;
    }
    const uint32_t trained = plan.n_ctx_train;
    if (!o->ctx_given && trained && o->cp.n_ctx > trained) {
        o->cp.n_ctx = pp.n_ctx = trained;
        if (g3_plan_file(o->model, o->mmproj, &pp, &plan, &err)) {
            app_error(cmd, "%s", err.msg);
            return -1;
        }
    }
    if (trained && (uint64_t)o->cp.n_ctx > (uint64_t)GEN_MAX_CTX_FACTOR * trained) {
        app_error(cmd,
                  "-c %u is more than %u times the model's trained context length (%u): positions that far "
                  "are meaningless to it; use -c %u or less",
                  o->cp.n_ctx, GEN_MAX_CTX_FACTOR, trained, GEN_MAX_CTX_FACTOR * trained);
        return -1;
    }
    if (trained && o->cp.n_ctx > trained)
        app_error(cmd, "warning: -c %u is longer than the model's trained context length %u; answers may "
                       "degrade past it", o->cp.n_ctx, trained);
    uint64_t avail;
    if (g3_plan_mem_available(&avail, &err)) return 0; /* no /proc/meminfo: nothing to compare with */
    if (g3_plan_check_fit(&plan, avail, &err)) {
        if (o->force) {
            app_error(cmd, "warning: %s; loading anyway (--force)", err.msg);
            return 0;
        }
        uint32_t longest = 0;
        g3_error ignored;
        g3_plan_file_max_ctx(o->model, o->mmproj, &pp, avail, o->cp.n_ctx, &longest, &ignored);
        if (longest >= 16)
            app_error(cmd, "%s. -c %u would fit; or try --kv-type q8_0, a smaller weight format, or --force",
                      err.msg, longest);
        else
            app_error(cmd, "%s. Even the smallest context does not fit: try a smaller weight format, or --force",
                      err.msg);
        return -1;
    }
    if (o->verbose)
        fprintf(stderr, "memory plan: %.2f GB (weights %.2f + %s KV %.2f + scratch %.2f) of %.2f GB available\n",
                plan.total_bytes / 1e9, plan.weights_bytes / 1e9, g3_kv_type_name(plan.kv_type),
                plan.kv_window_bytes / 1e9, plan.scratch_bytes / 1e9, avail / 1e9);
    return 0;
}

void gen_options_help(FILE *out) {
    fprintf(out,
            "  -m, --model FILE        Gemma 3 GGUF model (default: " G3_DEFAULT_MODEL_NAME ", " G3_DEFAULT_MODEL_PATH "\n"
            "                          beside the build folder or here, or $" G3_DEFAULT_MODEL_ENV ";\n"
            "                          bash scripts/get-model.sh fetches it)\n"
            "  -s, --system TEXT       system prompt (overrides --preset)\n"
            "  --preset NAME           general, document, visual, tutor, reviewer, storyteller, custom\n"
            "  -c, --ctx-size N        context size in tokens (default 8192, or the model's trained\n"
            "                          length if shorter; above it a warning, above 4x refused)\n"
            "  --force                 load even when the memory plan says it will not fit\n"
            "  -t, --threads N         worker threads (default: physical cores)\n"
            "  --kv-type T             KV cache type: f16 (default), bf16, q8_0 (half of f16's\n"
            "                          memory, logits move ~0.05) or f32 (exact, twice f16)\n"
            APP_ACTIVATIONS_HELP
            APP_DEVICE_HELP
            "  -n, --n-predict N       max new tokens (default 700)\n"
            "  --temp T                temperature, 0 = greedy (default 0.7)\n"
            "  --top-k K               (default 50, 0 = off)\n"
            "  --top-p P               (default 0.9, 1 = off)\n"
            "  --min-p P               (default 0 = off)\n"
            "  --repeat-penalty R      (default 1.1, 1 = off)\n"
            "  --repeat-last-n N       tokens the penalty looks back over (default 64)\n"
            "  --seed S                random seed (default: from the clock)\n"
            "  --stop TEXT             stop when the answer contains TEXT (repeatable)\n"
            "  -v, --verbose           print prefill and generation speed after each answer\n"
            "  --mmproj FILE           the vision encoder (mmproj GGUF) for images and video\n"
            "  --max-frames N          frames sampled from each video (default 2, at most 4)\n"
            "  --image-wrap MODE       official (default: \\n\\n around images, stretch to the square)\n"
            "                          or golden (llama.cpp's layout and padding)\n");
}

int gen_options_load_vision(const char *cmd, const gen_options *o, g3_session *s, g3_vision **vision) {
    *vision = NULL;
    if (!o->mmproj) return 0;
    g3_error err;
    g3_vision_params vp = {.n_threads = o->cp.n_threads};
    if (g3_vision_load(o->mmproj, &vp, vision, &err) || g3_session_set_vision(s, *vision, o->wrap, &err)) {
        app_error(cmd, "%s", err.msg);
        g3_vision_free(*vision);
        *vision = NULL;
        return -1;
    }
    return 0;
}

int app_media_parts(const char *cmd, const char *const *media, const bool *is_video, int n_media, uint32_t max_frames,
                    const char *text, g3_part **parts, size_t *n_parts) {
    size_t cap = (size_t)n_media * 2 * 4 + 1, n = 0;
    g3_part *p = calloc(cap, sizeof *p);
    g3_error err;
    if (!p) {
        app_error(cmd, "out of memory");
        return -1;
    }
    for (int i = 0; i < n_media; i++) {
        if (!is_video[i]) {
            p[n++] = (g3_part){.type = G3_PART_IMAGE, .path = strdup(media[i])};
            continue;
        }
        g3_part *frames;
        size_t n_frames;
        if (g3_video_parts(media[i], max_frames, &frames, &n_frames, &err)) {
            app_error(cmd, "%s", err.msg);
            g3_parts_free(p, n);
            return -1;
        }
        memcpy(p + n, frames, n_frames * sizeof *frames);
        n += n_frames;
        free(frames); /* the strings now belong to p */
    }
    if (text && *text) p[n++] = (g3_part){.type = G3_PART_TEXT, .text = strdup(text)};
    *parts = p;
    *n_parts = n;
    return 0;
}
