/* cmd_plan.c: `gemma-chat plan`, the memory a model needs before loading it.
 *
 * Without -m: every built-in size (1b/4b/12b/27b) x weight format (bf16,
 * q4_0, q8_0, q4_k_m) x KV type (bf16, f16, q8_0), beside the table from the
 * project's analysis. With -m: one real file, exact tensor bytes, and whether
 * it fits the machine's available memory. */
#include <cjson/cJSON.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "app/app.h"
#include "gemma3_plan.h"

static const char *const k_models[] = {"1b", "4b", "12b", "27b"};
static const g3_ftype k_formats[] = {G3_FTYPE_BF16, G3_FTYPE_Q4_0, G3_FTYPE_Q8_0, G3_FTYPE_Q4_K_M};
static const g3_kv_type k_kv_types[] = {G3_KV_BF16, G3_KV_F16, G3_KV_Q8_0};
#define N_MODELS 4
#define N_FORMATS 4
#define N_KV 3

/* The table from the project's analysis (GB; "+KV" = with a full-attention
 * KV cache at 32K). Columns: bf16, int4 (per-channel), int4 (blocks=32),
 * 8-bit (SFP8); rows: weights, +KV, per model. */
static const double k_table[N_MODELS][2][4] = {
    {{2.0, 0.5, 0.7, 1.0}, {2.9, 1.4, 1.6, 1.9}},
    {{8.0, 2.6, 2.9, 4.4}, {12.7, 7.3, 7.6, 9.1}},
    {{24.0, 6.6, 7.1, 12.4}, {38.9, 21.5, 22.0, 27.3}},
    {{54.0, 14.1, 15.3, 27.4}, {72.7, 32.8, 34.0, 46.1}},
};
/* Our format nearest each table column: int4 per-channel has no GGUF twin;
 * Q4_K_M (4-bit with 6-bit parts) is the closest. */
static const int k_table_format[4] = {0 /* bf16 */, 3 /* q4_k_m */, 1 /* q4_0 */, 2 /* q8_0 */};

typedef struct options {
    const char *model_path, *mmproj_path, *only_model, *only_format;
    g3_plan_params params;
    bool kv_given, json, verbose;
    g3_device device;
} options;

static void usage(FILE *out) {
    fprintf(out,
            "usage: gemma-chat plan [--ctx N] [--kv-type T] [--model SIZE] [--weights FORMAT]\n"
            "                       [--ubatch N] [--parallel N] [--json] [--verbose]\n"
            "       gemma-chat plan -m MODEL.gguf [--mmproj MMPROJ.gguf] [--ctx N] [--kv-type T]\n"
            "                       [--ubatch N] [--parallel N] [--json] [--verbose]\n"
            "  Memory for weights, KV cache (full attention vs our sliding-window cache),\n"
            "  scratch, and the total (weights + windowed KV + scratch).\n"
            "  --ctx N       positions per sequence (default 32768)\n"
            "  --kv-type T   KV element type: bf16 f16 q8_0 f32 (default: bf16, f16 and q8_0 for\n"
            "                the built-in sizes; f16, what run and chat use, for -m)\n"
            "  --model SIZE  only 1b, 4b, 12b or 27b;  --weights F  only bf16, q4_0, q8_0, q4_k_m\n"
            "  --ubatch N    tokens per forward chunk = the sliding-window ring slack (default 512)\n"
            "  --parallel N  sequences, one context each (default 1)\n"
            "  --json        an array of rows for scripts;  --verbose  the arithmetic\n"
            "  --device cuda (with -m) the GPU memory of the CUDA backend: the weights' device copy,\n"
            "                the KV cache and the scratch, against the GPU's free memory\n");
}

static int parse(int argc, char **argv, options *o) {
    const char *cmd = "plan";
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        if (strcmp(a, "--help") == 0 || strcmp(a, "-h") == 0) {
            usage(stdout);
            return 1;
        } else if (strcmp(a, "--json") == 0) {
            o->json = true;
        } else if (strcmp(a, "--verbose") == 0 || strcmp(a, "-v") == 0) {
            o->verbose = true;
        } else if (strcmp(a, "-m") == 0 || strcmp(a, "--model-file") == 0 || strcmp(a, "--mmproj") == 0 ||
                   strcmp(a, "--ctx") == 0 || strcmp(a, "-c") == 0 || strcmp(a, "--kv-type") == 0 ||
                   strcmp(a, "--model") == 0 || strcmp(a, "--weights") == 0 ||
                   strcmp(a, "--ubatch") == 0 || strcmp(a, "--parallel") == 0 || strcmp(a, "--device") == 0) {
            const char *v = app_flag_value(cmd, argc, argv, &i);
            if (!v) return -1;
            if (strcmp(a, "-m") == 0 || strcmp(a, "--model-file") == 0) o->model_path = v;
            else if (strcmp(a, "--mmproj") == 0) o->mmproj_path = v;
            else if (strcmp(a, "--model") == 0) o->only_model = v;
            else if (strcmp(a, "--weights") == 0) o->only_format = v;
            else if (strcmp(a, "--ctx") == 0 || strcmp(a, "-c") == 0) {
                if (app_parse_u32(cmd, a, v, 1, G3_PLAN_MAX_CTX, &o->params.n_ctx)) return -1;
            } else if (strcmp(a, "--ubatch") == 0) {
                if (app_parse_u32(cmd, a, v, 1, 1u << 20, &o->params.n_ubatch)) return -1;
            } else if (strcmp(a, "--parallel") == 0) {
                if (app_parse_u32(cmd, a, v, 1, 4096, &o->params.n_parallel)) return -1;
            } else if (strcmp(a, "--device") == 0) {
                if (app_parse_device(cmd, a, v, &o->device)) return -1;
            } else {
                if (app_parse_kv_type(cmd, a, v, &o->params.kv_type)) return -1;
                o->kv_given = true;
            }
        } else {
            app_error(cmd, "unknown option '%s'", a);
            usage(stderr);
            return -1;
        }
    }
    if (o->device == G3_DEVICE_CUDA && !o->model_path) {
        app_error(cmd, "--device cuda needs -m MODEL.gguf");
        return -1;
    }
    if (!o->model_path && o->mmproj_path) {
        app_error(cmd, "--mmproj needs -m MODEL.gguf");
        return -1;
    }
    if (o->only_model) {
        bool ok = false;
        for (int i = 0; i < N_MODELS; i++) ok |= strcmp(o->only_model, k_models[i]) == 0;
        if (!ok) {
            app_error(cmd, "unknown model size '%s' (1b, 4b, 12b, 27b)", o->only_model);
            return -1;
        }
    }
    if (o->only_format) {
        int f = g3_ftype_from_name(o->only_format);
        bool ok = false;
        for (int i = 0; i < N_FORMATS; i++) ok |= f == (int)k_formats[i];
        if (!ok) {
            app_error(cmd, "unknown weight format '%s' (bf16, q4_0, q8_0, q4_k_m)", o->only_format);
            return -1;
        }
    }
    return 0;
}

static double gb(uint64_t b) { return (double)b / 1e9; }
static double mib(uint64_t b) { return (double)b / 1048576.0; }

static cJSON *json_row(const g3_plan *p) {
    cJSON *o = cJSON_CreateObject();
    cJSON_AddStringToObject(o, "model", p->model);
    cJSON_AddStringToObject(o, "weights", p->format);
    cJSON_AddStringToObject(o, "kv_type", g3_kv_type_name(p->kv_type));
    cJSON_AddNumberToObject(o, "ctx", p->n_ctx);
    cJSON_AddNumberToObject(o, "weights_bytes", (double)p->weights_bytes);
    cJSON_AddNumberToObject(o, "kv_full_bytes", (double)p->kv_full_bytes);
    cJSON_AddNumberToObject(o, "kv_window_bytes", (double)p->kv_window_bytes);
    cJSON_AddNumberToObject(o, "scratch_bytes", (double)p->scratch_bytes);
    cJSON_AddNumberToObject(o, "total_bytes", (double)p->total_bytes);
    return o;
}

static int print_json(cJSON *arr) {
    char *text = cJSON_Print(arr);
    cJSON_Delete(arr);
    if (!text) {
        app_error("plan", "out of memory");
        return 1;
    }
    printf("%s\n", text);
    free(text);
    return 0;
}

/* ---- one real file -------------------------------------------------------- */

/* --device cuda: the CUDA backend's GPU memory for the file (the vision
 * encoder stays on the CPU: its weights are not counted). */
static int plan_gpu(const options *o) {
    g3_model *model = NULL;
    g3_error err;
    if (g3_model_load(o->model_path, &model, &err)) {
        app_error("plan", "%s", err.msg);
        return 1;
    }
    const g3_context_params cp = {.n_ctx = o->params.n_ctx ? o->params.n_ctx : 32768,
                                  .n_ubatch = o->params.n_ubatch,
                                  .kv_type = o->kv_given ? o->params.kv_type : APP_DEFAULT_KV_TYPE,
                                  .n_seq = o->params.n_parallel ? o->params.n_parallel : 1,
                                  .device = G3_DEVICE_CUDA};
    uint64_t w = 0, kv = 0, sc = 0;
    if (g3_gpu_context_memory(model, &cp, &w, &kv, &sc, &err)) {
        app_error("plan", "%s", err.msg);
        g3_model_free(model);
        return 1;
    }
    const uint64_t total = w + kv + sc;
    printf("%s on the GPU (CUDA backend): context %u, KV %s, %u sequence%s\n", o->model_path, cp.n_ctx,
           g3_kv_type_name(cp.kv_type), cp.n_seq, cp.n_seq == 1 ? "" : "s");
    printf("  weights %9.3f GB %10.1f MiB  (device copy of the text model)\n", gb(w), mib(w));
    printf("  KV      %9.3f GB %10.1f MiB\n", gb(kv), mib(kv));
    printf("  scratch %9.3f GB %10.1f MiB\n", gb(sc), mib(sc));
    printf("  total   %9.3f GB %10.1f MiB  (plus the CUDA context, a few hundred MiB)\n", gb(total), mib(total));
    g3_gpu_info gi;
    if (g3_gpu_info_get(&gi, &err) == 0) {
        const uint64_t fr = gi.total_bytes - gi.used_bytes;
        if (total > fr) printf("  does NOT fit: the %s has %.1f MiB free\n", gi.name, mib(fr));
        else printf("  fits: the %s has %.1f MiB free\n", gi.name, mib(fr));
    } else {
        printf("  no GPU here to compare with (%s)\n", err.msg);
    }
    g3_model_free(model);
    return 0;
}

static int plan_file(const options *o) {
    g3_plan_params params = o->params;
    if (!o->kv_given) params.kv_type = APP_DEFAULT_KV_TYPE;
    g3_plan p;
    g3_error err;
    if (g3_plan_file(o->model_path, o->mmproj_path, &params, &p, &err)) {
        app_error("plan", "%s", err.msg);
        return 1;
    }
    if (p.warning[0]) app_error("plan", "warning: %s", p.warning);
    int rc = 0;
    if (o->json) {
        cJSON *arr = cJSON_CreateArray();
        cJSON_AddItemToArray(arr, json_row(&p));
        rc = print_json(arr);
    } else {
        printf("%s (%s): %u layers (%u global, %u local, window %u), context %u, KV %s, "
               "n_ubatch %u, %u sequence%s\n",
               o->model_path, p.format, p.n_layer, p.n_global, p.n_local, p.window, p.n_ctx,
               g3_kv_type_name(p.kv_type), p.n_ubatch, p.n_parallel, p.n_parallel == 1 ? "" : "s");
        printf("  weights %9.3f GB %10.1f MiB  (text %.1f MiB + vision %.1f MiB)\n", gb(p.weights_bytes),
               mib(p.weights_bytes), mib(p.text_weights_bytes), mib(p.vision_weights_bytes));
        printf("  KV      %9.3f GB %10.1f MiB  (full attention would be %.1f MiB)\n", gb(p.kv_window_bytes),
               mib(p.kv_window_bytes), mib(p.kv_full_bytes));
        printf("  scratch %9.3f GB %10.1f MiB\n", gb(p.scratch_bytes), mib(p.scratch_bytes));
        printf("  total   %9.3f GB %10.1f MiB\n", gb(p.total_bytes), mib(p.total_bytes));
        uint64_t avail;
        if (g3_plan_mem_available(&avail, &err) == 0) {
            if (g3_plan_check_fit(&p, avail, &err)) printf("  does NOT fit: %s\n", err.msg);
            else printf("  fits: %.2f GB available\n", gb(avail));
            uint32_t longest;
            if (g3_plan_file_max_ctx(o->model_path, o->mmproj_path, &params, avail, G3_PLAN_MAX_CTX, &longest,
                                     &err) == 0) {
                if (longest) printf("  longest context that fits with a %s cache: %u positions\n",
                                    g3_kv_type_name(p.kv_type), longest);
                else printf("  not even a 16-position context fits\n");
            }
        }
    }
    if (o->verbose) g3_plan_print_arithmetic(&p, o->json ? stderr : stdout);
    return rc;
}

/* ---- the built-in sizes --------------------------------------------------- */

typedef struct grid {
    g3_plan p[N_MODELS][N_FORMATS][N_KV];
    bool on[N_MODELS][N_FORMATS][N_KV];
} grid;

static int fill_grid(const options *o, grid *g) {
    for (int m = 0; m < N_MODELS; m++)
        for (int f = 0; f < N_FORMATS; f++)
            for (int k = 0; k < N_KV; k++) {
                g3_plan_params params = o->params;
                params.kv_type = o->kv_given ? o->params.kv_type : k_kv_types[k];
                g3_error err;
                if (g3_plan_builtin(k_models[m], k_formats[f], &params, &g->p[m][f][k], &err)) {
                    app_error("plan", "%s %s: %s", k_models[m], g3_ftype_name(k_formats[f]), err.msg);
                    return -1;
                }
                g->on[m][f][k] = (!o->only_model || strcmp(o->only_model, k_models[m]) == 0) &&
                                 (!o->only_format || g3_ftype_from_name(o->only_format) == (int)k_formats[f]) &&
                                 (!o->kv_given || k == 0); /* one KV type given: one column */
            }
    return 0;
}

static bool model_on(const grid *g, int m) {
    for (int f = 0; f < N_FORMATS; f++)
        for (int k = 0; k < N_KV; k++)
            if (g->on[m][f][k]) return true;
    return false;
}

static bool format_on(const grid *g, int f) {
    for (int m = 0; m < N_MODELS; m++)
        for (int k = 0; k < N_KV; k++)
            if (g->on[m][f][k]) return true;
    return false;
}

static int n_kv_shown(const options *o) { return o->kv_given ? 1 : N_KV; }

static void print_weights(const grid *g) {
    printf("\nweights, GB (text model; 4b/12b/27b also the SigLIP vision encoder + projector)\n%-6s", "model");
    for (int f = 0; f < N_FORMATS; f++)
        if (format_on(g, f)) printf(" %9s", g3_ftype_name(k_formats[f]));
    printf("\n");
    for (int m = 0; m < N_MODELS; m++) {
        if (!model_on(g, m)) continue;
        printf("%-6s", k_models[m]);
        for (int f = 0; f < N_FORMATS; f++)
            if (format_on(g, f)) printf(" %9.2f", gb(g->p[m][f][0].weights_bytes));
        printf("\n");
    }
}

static void print_kv(const options *o, const grid *g) {
    const g3_plan *any = &g->p[0][0][0];
    printf("\nKV cache at %u positions, GB: full = every layer keeps every position; ours = global "
           "layers keep all,\nlocal layers a ring of window + %u (the n_ubatch slack)\n",
           any->n_ctx, any->n_ubatch);
    printf("%-6s %6s %6s %6s", "model", "layers", "global", "window");
    for (int k = 0; k < n_kv_shown(o); k++) {
        const char *name = g3_kv_type_name(g->p[0][0][k].kv_type);
        printf("  %5s full %5s ours", name, name);
    }
    printf("\n");
    for (int m = 0; m < N_MODELS; m++) {
        if (!model_on(g, m)) continue;
        const g3_plan *p = &g->p[m][0][0];
        printf("%-6s %6u %6u %6u", k_models[m], p->n_layer, p->n_global, p->window);
        for (int k = 0; k < n_kv_shown(o); k++)
            printf("  %10.2f %10.2f", gb(g->p[m][0][k].kv_full_bytes), gb(g->p[m][0][k].kv_window_bytes));
        printf("\n");
    }
    printf("\nscratch (forward-pass buffers of one context), MiB:");
    for (int m = 0; m < N_MODELS; m++)
        if (model_on(g, m)) printf("  %s %.1f", k_models[m], g->p[m][0][0].scratch_bytes / 1048576.0);
    printf("\n");
}

static void print_totals(const options *o, const grid *g) {
    printf("\ntotal = weights + our KV + scratch, GB\n%-6s %-5s", "model", "kv");
    for (int f = 0; f < N_FORMATS; f++)
        if (format_on(g, f)) printf(" %9s", g3_ftype_name(k_formats[f]));
    printf("\n");
    for (int m = 0; m < N_MODELS; m++) {
        if (!model_on(g, m)) continue;
        for (int k = 0; k < n_kv_shown(o); k++) {
            printf("%-6s %-5s", k == 0 ? k_models[m] : "", g3_kv_type_name(g->p[m][0][k].kv_type));
            for (int f = 0; f < N_FORMATS; f++)
                if (format_on(g, f)) printf(" %9.2f", gb(g->p[m][f][k].total_bytes));
            printf("\n");
        }
    }
}

/* The analysis table beside ours; +KV rows compare its full-attention
 * total with our total (windowed KV of the first KV type shown). */
static void print_comparison(const options *o, const grid *g) {
    const g3_plan *any = &g->p[0][0][0];
    if (any->n_ctx != G3_PLAN_DEFAULT_CTX || any->n_parallel != 1) {
        printf("\n(the project's analysis table is for one 32768-position sequence: run without "
               "--ctx/--parallel to compare)\n");
        return;
    }
    printf("\nthe project's analysis (GB; its +KV counts a full-attention cache at 32K) beside ours "
           "(+KV: our total\nwith a %s sliding-window cache and scratch): table | ours (ours / table)\n",
           g3_kv_type_name(any->kv_type));
    static const char *const cols[4] = {"bf16", "int4 ~ q4_k_m", "int4 blocks=32 = q4_0", "8-bit SFP8 ~ q8_0"};
    printf("%-8s", "");
    for (int c = 0; c < 4; c++) printf("  %-22s", cols[c]);
    printf("\n");
    for (int m = 0; m < N_MODELS; m++) {
        if (!model_on(g, m)) continue;
        for (int row = 0; row < 2; row++) {
            char label[16];
            snprintf(label, sizeof label, "%s%s", k_models[m], row ? " +KV" : "");
            printf("%-8s", label);
            for (int c = 0; c < 4; c++) {
                const g3_plan *p = &g->p[m][k_table_format[c]][0];
                double ours = gb(row ? p->total_bytes : p->weights_bytes), table = k_table[m][row][c];
                char cell[32];
                snprintf(cell, sizeof cell, "%.1f | %.2f (%.2f)", table, ours, ours / table);
                printf("  %-22s", cell);
            }
            printf("\n");
        }
    }
    (void)o;
}

static int plan_builtin(const options *o) {
    grid *g = calloc(1, sizeof *g);
    if (!g) {
        app_error("plan", "out of memory");
        return 1;
    }
    if (fill_grid(o, g)) {
        free(g);
        return 1;
    }
    int rc = 0;
    if (o->json) {
        cJSON *arr = cJSON_CreateArray();
        for (int m = 0; m < N_MODELS; m++)
            for (int f = 0; f < N_FORMATS; f++)
                for (int k = 0; k < N_KV; k++)
                    if (g->on[m][f][k]) cJSON_AddItemToArray(arr, json_row(&g->p[m][f][k]));
        rc = print_json(arr);
    } else {
        const g3_plan *any = &g->p[0][0][0];
        printf("memory plan: %u sequence%s of %u positions, n_ubatch %u (= the sliding-window ring "
               "slack); GB = 1e9 bytes\n",
               any->n_parallel, any->n_parallel == 1 ? "" : "s", any->n_ctx, any->n_ubatch);
        print_weights(g);
        print_kv(o, g);
        print_totals(o, g);
        print_comparison(o, g);
        for (int m = 0; m < N_MODELS; m++)
            if (model_on(g, m) && g->p[m][0][0].warning[0])
                printf("warning: %s: %s\n", k_models[m], g->p[m][0][0].warning);
    }
    if (o->verbose) {
        FILE *out = o->json ? stderr : stdout;
        fprintf(out, "\n");
        for (int m = 0; m < N_MODELS; m++)
            for (int f = 0; f < N_FORMATS; f++)
                for (int k = 0; k < N_KV; k++)
                    if (g->on[m][f][k]) g3_plan_print_arithmetic(&g->p[m][f][k], out);
    }
    free(g);
    return rc;
}

int cmd_plan(int argc, char **argv) {
    options o = {0};
    int rc = parse(argc, argv, &o);
    if (rc) return rc > 0 ? 0 : 2;
    if (o.device == G3_DEVICE_CUDA) return plan_gpu(&o);
    return o.model_path ? plan_file(&o) : plan_builtin(&o);
}
