/* gemma-chat eval: the interface the golden tests use. Keep it stable.
 *   eval -m MODEL (--tokens 2,9259,... | --tokens-file F.json | --prompt-file F) [--chunk N]
 *        [--logits OUT.f32] [--kl-base REF.f32] [--generate N] [-c N]
 * Logits: float32 little-endian, row-major [n_pos][n_vocab]. --generate N
 * prints the N greedy ids that follow (ties go to the lowest id) as a JSON
 * array on stdout. */
#include <cjson/cJSON.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "app/app.h"
#include "gemma3_chat.h"
#include "gemma3_media.h"
#include "gemma3_text.h"
#include "gemma3_vision.h"

static const char *k_cmd = "eval";

#define MAX_IMAGES 8

typedef struct eval_opts {
    const char *model, *tokens, *tokens_file, *prompt_file, *logits_path, *kl_base;
    const char *mmproj, *images[MAX_IMAGES];
    uint32_t n_images;
    bool golden_wrap;
    app_activations activations; /* --activations (default exact) */
    uint32_t chunk, generate, n_ctx, n_threads;
    g3_kv_type kv_type;
    g3_device device;
} eval_opts;

#define MEDIA_MARKER "<__media__>"

static int fail(g3_error *err, const char *msg) {
    snprintf(err->msg, sizeof err->msg, "%s", msg);
    return -1;
}

static void usage(FILE *out) {
    fprintf(out,
            "usage: gemma-chat eval -m MODEL (--tokens 2,9259,... | --tokens-file F.json | --prompt-file F)\n"
            "                       [--chunk N] [--logits OUT.f32] [--generate N] [-c N] [-t N] [--kv-type T]\n"
            "  --prompt-file F  tokenize F's bytes with the model's vocabulary (<bos> added,\n"
            "                control tokens such as <start_of_turn> in the text parsed)\n"
            "  --chunk N     feed the sequence N tokens at a time (through the KV cache)\n"
            "  --logits F    write float32 logits for every position, [n_pos][n_vocab]\n"
            "  --kl-base F   compare this run's logits with F (--logits of the same sequence,\n"
            "                e.g. with --activations exact): KL divergence per position (mean,\n"
            "                median, p99, max) and top-1 agreement, as one JSON line\n"
            "  --generate N  print the N greedy token ids that follow, as a JSON array\n"
            "  -c N          context size (default: sequence + generated, at most the model's)\n"
            "  -t N          threads (default: the physical cores; more than the CPUs this process\n"
            "                may use is an error)\n"
            "  --kv-type T   KV cache type: f32 (default here: eval is the numerics check),\n"
            "                f16, bf16 or q8_0\n"
            "  --device D    cuda or cpu (default: cuda when this binary has the CUDA backend and\n"
            "                a GPU is present); with cuda, exact activations are f32 products and\n"
            "                int15 means TF32 tensor-core products for prefill\n"
            "  --activations A  exact (default here: every product in f32), int15 (15-bit\n"
            "                activations) or int8 (8-bit activations on AVX2/AVX-512)\n"
            "  --mmproj F --image P [--image P2 ...] [--image-wrap official|golden]\n"
            "                images (at most %d) where the prompt file says " MEDIA_MARKER ", in order\n",
            MAX_IMAGES);
}

static int push_token(int32_t **ids, uint32_t *n, uint32_t *cap, long long v, const char *where) {
    if (v < 0 || v > INT32_MAX) {
        app_error(k_cmd, "token id %lld in %s is out of range", v, where);
        return -1;
    }
    if (*n == *cap) {
        uint32_t grown_cap = *cap ? *cap * 2 : 64;
        int32_t *grown = realloc(*ids, sizeof **ids * grown_cap);
        if (!grown) {
            app_error(k_cmd, "out of memory");
            return -1;
        }
        *ids = grown;
        *cap = grown_cap;
    }
    (*ids)[(*n)++] = (int32_t)v;
    return 0;
}

static int parse_token_list(const char *text, int32_t **ids, uint32_t *n) {
    uint32_t cap = 0;
    const char *p = text;
    while (*p) {
        char *end;
        errno = 0;
        long long v = strtoll(p, &end, 10);
        if (end == p || errno || (*end && *end != ',')) {
            app_error(k_cmd, "--tokens expects comma-separated integers, bad entry at '%.20s'", p);
            return -1;
        }
        if (push_token(ids, n, &cap, v, "--tokens")) return -1;
        p = *end ? end + 1 : end;
    }
    return 0;
}

static int parse_token_file(const char *path, int32_t **ids, uint32_t *n) {
    char *buf = app_read_text_file(k_cmd, path);
    if (!buf) return -1;
    cJSON *json = cJSON_Parse(buf);
    free(buf);
    if (!cJSON_IsArray(json)) {
        app_error(k_cmd, "'%s' is not a JSON array of token ids", path);
        cJSON_Delete(json);
        return -1;
    }
    uint32_t count = 0;
    int rc = 0;
    const cJSON *item;
    cJSON_ArrayForEach(item, json) {
        if (!cJSON_IsNumber(item) || item->valuedouble != (double)(long long)item->valuedouble) {
            app_error(k_cmd, "'%s': entry %u is not an integer", path, *n);
            rc = -1;
            break;
        }
        if ((rc = push_token(ids, n, &count, (long long)item->valuedouble, path))) break;
    }
    cJSON_Delete(json);
    return rc;
}

static int parse_args(int argc, char **argv, eval_opts *o) {
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        if (strcmp(a, "--help") == 0) {
            usage(stdout);
            exit(0);
        }
        const char *v = app_flag_value(k_cmd, argc, argv, &i);
        if (!v) return -1;
        if (strcmp(a, "-m") == 0 || strcmp(a, "--model") == 0) o->model = v;
        else if (strcmp(a, "--tokens") == 0) o->tokens = v;
        else if (strcmp(a, "--tokens-file") == 0) o->tokens_file = v;
        else if (strcmp(a, "--prompt-file") == 0) o->prompt_file = v;
        else if (strcmp(a, "--logits") == 0) o->logits_path = v;
        else if (strcmp(a, "--kl-base") == 0) o->kl_base = v;
        else if (strcmp(a, "--mmproj") == 0) o->mmproj = v;
        else if (strcmp(a, "--image") == 0) {
            if (o->n_images == MAX_IMAGES) {
                app_error(k_cmd, "at most %d --image", MAX_IMAGES);
                return -1;
            }
            o->images[o->n_images++] = v;
        }
        else if (strcmp(a, "--activations") == 0) {
            if (app_parse_activations(k_cmd, a, v, &o->activations)) return -1;
        }
        else if (strcmp(a, "--image-wrap") == 0) {
            if (strcmp(v, "golden") && strcmp(v, "official")) {
                app_error(k_cmd, "--image-wrap must be official or golden, got '%s'", v);
                return -1;
            }
            o->golden_wrap = !strcmp(v, "golden");
        }
        else if (strcmp(a, "--chunk") == 0) { if (app_parse_u32(k_cmd, a, v, 1, UINT32_MAX, &o->chunk)) return -1; }
        else if (strcmp(a, "--generate") == 0) { if (app_parse_u32(k_cmd, a, v, 0, 1u << 20, &o->generate)) return -1; }
        else if (strcmp(a, "-c") == 0 || strcmp(a, "--ctx-size") == 0) { if (app_parse_u32(k_cmd, a, v, 1, 1u << 24, &o->n_ctx)) return -1; }
        else if (strcmp(a, "-t") == 0 || strcmp(a, "--threads") == 0) { if (app_parse_u32(k_cmd, a, v, 1, 1024, &o->n_threads)) return -1; }
        else if (strcmp(a, "--kv-type") == 0) { if (app_parse_kv_type(k_cmd, a, v, &o->kv_type)) return -1; }
        else if (strcmp(a, "--device") == 0) { if (app_parse_device(k_cmd, a, v, &o->device)) return -1; }
        else {
            app_error(k_cmd, "unknown option '%s'", a);
            return -1;
        }
    }
    if (!o->model) { app_error(k_cmd, "-m MODEL is required"); return -1; }
    int sources = !!o->tokens + !!o->tokens_file + !!o->prompt_file;
    if (sources != 1) {
        app_error(k_cmd, "give exactly one of --tokens, --tokens-file, --prompt-file");
        return -1;
    }
    if (!o->n_images != !o->mmproj || (o->n_images && !o->prompt_file)) {
        app_error(k_cmd, "--image needs --mmproj and a --prompt-file holding " MEDIA_MARKER);
        return -1;
    }
    return 0;
}

/* --prompt-file: the file's exact bytes, tokenized the way the golden prompts
 * were (llama.cpp add_special = true, parse_special = true: <bos> first, and
 * <start_of_turn> etc. written in the file are control tokens). */
static int append_tokens(const g3_tokenizer *tok, const char *text, size_t len, bool bos, int32_t **ids, size_t *n,
                         g3_error *err) {
    int32_t *part;
    size_t n_part;
    if (g3_tokenize(tok, text, len, bos, true, &part, &n_part, err)) return -1;
    int32_t *grown = realloc(*ids, (*n + n_part + 1) * sizeof *grown);
    if (!grown) {
        free(part);
        return fail(err, "out of memory");
    }
    memcpy(grown + *n, part, n_part * sizeof *part);
    *ids = grown;
    *n += n_part;
    free(part);
    return 0;
}

/* The prompt file's tokens; with images, the k-th MEDIA_MARKER becomes the
 * k-th image's wrap around n_img positions marked -(k + 1) (its soft
 * tokens). The text between the markers is tokenized piece by piece, as
 * llama.cpp's multimodal tokenizer does. */
static int tokenize_prompt(const char *text, size_t len, const g3_tokenizer *tok, const eval_opts *o, uint32_t n_img,
                           int32_t **ids, size_t *n, g3_error *err) {
    *ids = NULL;
    *n = 0;
    if (!o->n_images) return append_tokens(tok, text, len, true, ids, n, err);
    if (memchr(text, 0, len)) return fail(err, "the prompt file holds a NUL byte");
    uint32_t marks = 0;
    for (const char *m = strstr(text, MEDIA_MARKER); m; m = strstr(m + 1, MEDIA_MARKER)) marks++;
    if (marks != o->n_images) {
        snprintf(err->msg, sizeof err->msg, "the prompt file holds %u " MEDIA_MARKER " but %u --image were given: "
                 "one marker per image, in order", marks, o->n_images);
        return -1;
    }
    /* official: "\n\n<start_of_image>" ... "<end_of_image>\n\n"; golden (llama.cpp): no newlines */
    const char *open = o->golden_wrap ? "<start_of_image>" : "\n\n<start_of_image>";
    const char *close = o->golden_wrap ? "<end_of_image>" : "<end_of_image>\n\n";
    char *piece = malloc(len + strlen(open) + strlen(close) + 1);
    if (!piece) return fail(err, "out of memory");
    const char *at = text;
    int rc = 0;
    for (uint32_t k = 0; rc == 0 && k <= o->n_images; k++) {
        const char *mark = k < o->n_images ? strstr(at, MEDIA_MARKER) : text + len;
        const size_t before = (size_t)(mark - at);
        size_t plen = 0;
        if (k > 0) plen = (size_t)(stpcpy(piece, close) - piece);
        memcpy(piece + plen, at, before);
        plen += before;
        if (k < o->n_images) plen = (size_t)(stpcpy(piece + plen, open) - piece);
        piece[plen] = 0;
        rc = append_tokens(tok, piece, plen, k == 0, ids, n, err);
        if (rc || k == o->n_images) break;
        int32_t *grown = realloc(*ids, (*n + n_img) * sizeof *grown);
        if (!grown) {
            rc = fail(err, "out of memory");
            break;
        }
        *ids = grown;
        for (uint32_t i = 0; i < n_img; i++) (*ids)[(*n)++] = -(int32_t)(k + 1);
        at = mark + strlen(MEDIA_MARKER);
    }
    free(piece);
    return rc;
}

static int tokenize_prompt_file(const eval_opts *o, const g3_model *model, uint32_t n_img, int32_t **ids,
                                uint32_t *n) {
    size_t len = 0;
    char *text = app_read_file(k_cmd, o->prompt_file, &len);
    if (!text) return -1;
    g3_error err;
    g3_tokenizer *tok;
    int32_t *toks = NULL;
    size_t n_toks = 0;
    int rc = g3_tokenizer_from_model(model, &tok, &err);
    if (rc == 0) {
        rc = tokenize_prompt(text, len, tok, o, n_img, &toks, &n_toks, &err);
        g3_tokenizer_free(tok);
    }
    free(text);
    if (rc) {
        app_error(k_cmd, "%s: %s", o->prompt_file, err.msg);
        free(toks);
        return -1;
    }
    if (n_toks > UINT32_MAX) {
        app_error(k_cmd, "%s: %zu tokens is too many", o->prompt_file, n_toks);
        free(toks);
        return -1;
    }
    *ids = toks;
    *n = (uint32_t)n_toks;
    return 0;
}

/* The images' soft tokens, one after the other (n_images x n_tokens x
 * n_embd), from --mmproj and the --image files. */
static float *encode_images(const eval_opts *o, const g3_model *model, uint32_t *n_img) {
    g3_error err;
    g3_vision *v = NULL;
    float *all = NULL;
    g3_media_limits lim = g3_media_limits_default();
    if (g3_vision_load(o->mmproj, NULL, &v, &err) || g3_vision_check_model(v, model, &err)) goto fail;
    const size_t per = (size_t)g3_vision_n_tokens(v) * g3_vision_n_embd(v);
    all = malloc(sizeof(float) * per * o->n_images);
    if (!all) {
        fail(&err, "out of memory");
        goto fail;
    }
    for (uint32_t k = 0; k < o->n_images; k++) {
        g3_image img;
        float *embd;
        if (g3_image_load(o->images[k], &lim, &img, &err)) goto fail;
        const int rc = g3_image_soft_tokens(v, &img, o->golden_wrap ? G3_IMAGE_WRAP_GOLDEN : G3_IMAGE_WRAP_OFFICIAL,
                                            &embd, &err);
        g3_image_free(&img);
        if (rc) {
            app_error(k_cmd, "%s: %s", o->images[k], err.msg);
            free(all);
            g3_vision_free(v);
            return NULL;
        }
        memcpy(all + per * k, embd, sizeof(float) * per);
        free(embd);
    }
    *n_img = g3_vision_n_tokens(v);
    g3_vision_free(v);
    return all;
fail:
    app_error(k_cmd, "%s", err.msg);
    free(all);
    g3_vision_free(v);
    return NULL;
}

static uint32_t argmax(const float *row, uint32_t n) {
    uint32_t best = 0;
    for (uint32_t i = 1; i < n; i++)
        if (row[i] > row[best]) best = i; /* strict: ties keep the lowest id */
    return best;
}

static int write_logits(const char *path, const float *logits, size_t count) {
    FILE *f = fopen(path, "wb");
    if (!f) {
        app_error(k_cmd, "cannot create '%s': %s", path, strerror(errno));
        return -1;
    }
    size_t w = fwrite(logits, sizeof(float), count, f);
    if (fclose(f) != 0 || w != count) {
        app_error(k_cmd, "cannot write '%s': %s", path, strerror(errno));
        return -1;
    }
    return 0;
}

static double now_s(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return ts.tv_sec + ts.tv_nsec * 1e-9;
}

/* Evaluates ids[0..n) in chunks; a run of -(k + 1) is image k (its soft
 * tokens in embd, one bidirectional batch). Logits rows are written for
 * text positions only. */
static int eval_sequence(const eval_opts *o, g3_context *ctx, const g3_config *cfg, const int32_t *ids, uint32_t n,
                         const float *embd, float *logits, g3_error *err) {
    uint32_t row = 0, chunk = o->chunk ? o->chunk : n;
    for (uint32_t i = 0; i < n;) {
        uint32_t j = i;
        if (ids[i] < 0) {
            while (j < n && ids[j] == ids[i]) j++;
            const float *image = embd + (size_t)(-ids[i] - 1) * (j - i) * cfg->n_embd;
            if (g3_eval_embeddings(ctx, image, j - i, true, NULL, false, err)) return -1;
        } else {
            while (j < n && ids[j] >= 0 && j - i < chunk) j++;
            if (g3_eval(ctx, ids + i, j - i, logits + (size_t)row * cfg->n_vocab, true, err)) return -1;
            row += j - i;
        }
        i = j;
    }
    return 0;
}

/* Evaluates the prompt (in chunks) and the greedy continuation. */
static int run(const eval_opts *o, g3_model *model, const int32_t *ids, uint32_t n, const float *embd) {
    const g3_config *cfg = g3_model_config(model);
    g3_error err;
    uint64_t need = (uint64_t)n + o->generate;
    uint32_t n_ctx = o->n_ctx ? o->n_ctx : (uint32_t)(need < cfg->n_ctx_train ? need : cfg->n_ctx_train);
    /* the last generated id is never evaluated: n + generate - 1 positions */
    const uint64_t used = o->generate ? need - 1 : n;
    if (used > n_ctx) {
        app_error(k_cmd,
                  "the sequence (%u positions) and --generate %u need %llu positions but the context holds %u "
                  "(%s); shorten them%s",
                  n, o->generate, (unsigned long long)used, n_ctx,
                  o->n_ctx ? "-c" : "the model's trained length", o->n_ctx ? " or raise -c" : "");
        return -1;
    }
    g3_context_params cp = {.n_ctx = n_ctx, .n_threads = o->n_threads, .kv_type = o->kv_type, .device = o->device};
    app_apply_activations(o->activations, &cp);
    g3_context *ctx;
    if (g3_context_new(model, &cp, &ctx, &err)) { app_error(k_cmd, "%s", err.msg); return -1; }
    if (g3_context_device(ctx) == G3_DEVICE_CUDA) fprintf(stderr, "eval: on the CUDA device\n");
    float *logits = malloc(sizeof(float) * (size_t)n * cfg->n_vocab);
    int64_t *generated = malloc(sizeof(int64_t) * (o->generate + 1));
    int rc = -1;
    if (!logits || !generated) { app_error(k_cmd, "out of memory for %u x %u logits", n, cfg->n_vocab); goto done; }
    double t0 = now_s();
    uint32_t n_text = 0;
    for (uint32_t i = 0; i < n; i++) n_text += ids[i] >= 0;
    if (eval_sequence(o, ctx, cfg, ids, n, embd, logits, &err)) {
        app_error(k_cmd, "%s", err.msg);
        goto done;
    }
    double t1 = now_s();
    if (o->logits_path && write_logits(o->logits_path, logits, (size_t)n_text * cfg->n_vocab)) goto done;
    if (o->kl_base && app_compare_logits(k_cmd, o->kl_base, logits, n_text, cfg->n_vocab, stdout)) goto done;
    float *row = logits + (size_t)(n_text - 1) * cfg->n_vocab;
    for (uint32_t g = 0; g < o->generate; g++) {
        int32_t next = (int32_t)argmax(row, cfg->n_vocab);
        generated[g] = next;
        if (g + 1 < o->generate && g3_eval(ctx, &next, 1, row, false, &err)) {
            app_error(k_cmd, "%s", err.msg);
            goto done;
        }
    }
    double t2 = now_s();
    if (o->generate) {
        printf("[");
        for (uint32_t g = 0; g < o->generate; g++) printf(g ? ", %lld" : "%lld", (long long)generated[g]);
        printf("]\n");
    }
    fprintf(stderr, "eval: %u tokens in %.3f s (%.1f tok/s)", n, t1 - t0, n / (t1 - t0 + 1e-9));
    if (o->generate) fprintf(stderr, "; generated %u in %.3f s", o->generate, t2 - t1);
    fprintf(stderr, "\n");
    rc = 0;
done:
    free(logits);
    free(generated);
    g3_context_free(ctx);
    return rc;
}

int cmd_eval(int argc, char **argv) {
    eval_opts o = {0};
    if (parse_args(argc, argv, &o)) return 2;
    int32_t *ids = NULL;
    uint32_t n = 0;
    if (!o.prompt_file &&
        (o.tokens ? parse_token_list(o.tokens, &ids, &n) : parse_token_file(o.tokens_file, &ids, &n))) {
        free(ids);
        return 2;
    }
    if (!o.prompt_file && n == 0) {
        app_error(k_cmd, "the token sequence is empty");
        free(ids);
        return 2;
    }
    g3_error err;
    g3_model *model;
    if (g3_model_load(o.model, &model, &err)) {
        app_error(k_cmd, "%s", err.msg);
        free(ids);
        return 1;
    }
    uint32_t n_img = 0;
    float *embd = o.n_images ? encode_images(&o, model, &n_img) : NULL;
    if ((o.n_images && !embd) || (o.prompt_file && tokenize_prompt_file(&o, model, n_img, &ids, &n))) {
        free(embd);
        g3_model_free(model);
        return o.n_images && !embd ? 1 : 2;
    }
    int rc = run(&o, model, ids, n, embd) ? 1 : 0;
    g3_model_free(model);
    free(embd);
    free(ids);
    return rc;
}
