/* gemma-chat bench: prefill and decode speed, like llama-bench, plus the
 * memory-bandwidth roofline of decoding.
 *
 *   bench -m MODEL [-p 512] [-n 128] [-t N] [-r 3] [-c 4096] [--json]
 *
 * pp<P>: P random tokens evaluated as one batch from an empty context
 * (logits of the last position only). tg<N>: N tokens decoded one at a time
 * from an empty context, with the logits of each (what sampling needs).
 * Each test runs once to warm up, then -r times; tokens/s is mean +- sd.
 *
 * Roofline: decoding reads every weight once per token, so tokens/s is at
 * most bandwidth / bytes per token. The bandwidth is measured here: every
 * thread streams its part of a buffer larger than the last-level cache
 * (best of several passes). Bytes per token = the weights a decoded token
 * reads + the KV cache it reads at the average tg position. The bandwidth is
 * measured before and after the runs and the higher figure kept, so a burst
 * of other work on the machine cannot inflate the roofline fraction.
 *
 * Benchmarks print figures; they never fail on time. */
#include <errno.h>
#include <math.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "app/app.h"

static const char *k_cmd = "bench";

typedef struct bench_opts {
    const char *model;
    uint32_t n_prompt, n_gen, n_threads, reps, n_ctx;
    g3_kv_type kv_type;
    bool json;
    g3_device device;
    uint32_t parallel; /* sequences decoded together in the tg test */
    app_activations activations;
} bench_opts;

static void usage(FILE *out) {
    fprintf(out,
            "usage: gemma-chat bench -m MODEL [-p 512] [-n 128] [-t N] [-r 3] [-c 4096] [--kv-type f16] [--json]\n"
            "  -p N     prompt tokens of the prefill test ppN (0: skip)\n"
            "  -n N     tokens of the decode test tgN (0: skip)\n"
            "  -t N     threads (default: the physical cores); more than the CPUs this\n"
            "           process may use is an error, more than the physical cores a warning\n"
            "  -r N     repetitions after one warm-up run (default 3)\n"
            "  -c N     context size, for the memory line (default 4096, at least p and n)\n"
            "  --kv-type T  KV cache type: f16 (default), bf16, q8_0, f32\n"
            "  --activations A  exact, int15 or int8 (as chat; default " APP_DEFAULT_ACTIVATIONS_NAME ")\n"
            "  --parallel N decode N sequences together in the tg test (one batched forward\n"
            "           pass per step; the figure is all sequences' tokens per second)\n"
            "  --device D   cuda or cpu (default: cuda when this binary has the CUDA backend and a\n"
            "           GPU is present); on cuda the memory line is the GPU's\n"
            "  --json   one JSON object instead of the table\n");
}

static double now_s(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return ts.tv_sec + ts.tv_nsec * 1e-9;
}

static int parse_args(int argc, char **argv, bench_opts *o) {
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        if (strcmp(a, "--help") == 0 || strcmp(a, "-h") == 0) {
            usage(stdout);
            exit(0);
        }
        if (strcmp(a, "--json") == 0) {
            o->json = true;
            continue;
        }
        const char *v = app_flag_value(k_cmd, argc, argv, &i);
        if (!v) return -1;
        if (strcmp(a, "-m") == 0 || strcmp(a, "--model") == 0) o->model = v;
        else if (strcmp(a, "-p") == 0) { if (app_parse_u32(k_cmd, a, v, 0, 1u << 20, &o->n_prompt)) return -1; }
        else if (strcmp(a, "-n") == 0) { if (app_parse_u32(k_cmd, a, v, 0, 1u << 20, &o->n_gen)) return -1; }
        else if (strcmp(a, "-t") == 0 || strcmp(a, "--threads") == 0) { if (app_parse_u32(k_cmd, a, v, 1, 1024, &o->n_threads)) return -1; }
        else if (strcmp(a, "-r") == 0) { if (app_parse_u32(k_cmd, a, v, 1, 1000, &o->reps)) return -1; }
        else if (strcmp(a, "-c") == 0 || strcmp(a, "--ctx-size") == 0) { if (app_parse_u32(k_cmd, a, v, 1, 1u << 24, &o->n_ctx)) return -1; }
        else if (strcmp(a, "--kv-type") == 0) { if (app_parse_kv_type(k_cmd, a, v, &o->kv_type)) return -1; }
        else if (strcmp(a, "--activations") == 0) { if (app_parse_activations(k_cmd, a, v, &o->activations)) return -1; }
        else if (strcmp(a, "--device") == 0) { if (app_parse_device(k_cmd, a, v, &o->device)) return -1; }
        else if (strcmp(a, "--parallel") == 0) { if (app_parse_u32(k_cmd, a, v, 1, 256, &o->parallel)) return -1; }
        else {
            app_error(k_cmd, "unknown option '%s'", a);
            return -1;
        }
    }
    if (!o->model) {
        app_error(k_cmd, "-m MODEL is required");
        return -1;
    }
    if (!o->n_prompt && !o->n_gen) {
        app_error(k_cmd, "-p 0 and -n 0 leave nothing to measure: give -p N (prefill) or -n N (decode)");
        return -1;
    }
    return 0;
}

/* ---- memory read bandwidth ---- */

typedef struct bw_shared {
    const uint64_t *buf;
    size_t words;
    uint32_t n_threads;
    int passes;
    pthread_barrier_t start, done;
    volatile uint64_t sink[64];
} bw_shared;

typedef struct bw_thread {
    bw_shared *sh;
    uint32_t ith;
} bw_thread;

static void *bw_worker(void *arg) {
    bw_thread *bt = arg;
    bw_shared *sh = bt->sh;
    const size_t lo = sh->words * bt->ith / sh->n_threads, hi = sh->words * (bt->ith + 1) / sh->n_threads;
    for (int p = 0; p < sh->passes; p++) {
        pthread_barrier_wait(&sh->start);
        /* eight independent sums: the loads, not the adds, set the pace */
        uint64_t s[8] = {0};
        for (size_t i = lo; i + 8 <= hi; i += 8)
            for (int k = 0; k < 8; k++) s[k] += sh->buf[i + k];
        sh->sink[bt->ith % 64] = s[0] + s[1] + s[2] + s[3] + s[4] + s[5] + s[6] + s[7];
        pthread_barrier_wait(&sh->done);
    }
    return NULL;
}

/* Streaming read with n threads over max(1 GiB, 4 x L3) (at most a quarter
 * of the available memory); best of 5 passes, in bytes/s. 0 on failure. */
static double measure_bandwidth(uint32_t n_threads) {
    long l3 = sysconf(_SC_LEVEL3_CACHE_SIZE);
    size_t bytes = (size_t)1 << 30;
    if (l3 > 0 && (size_t)l3 * 4 > bytes) bytes = (size_t)l3 * 4;
    long pages = sysconf(_SC_AVPHYS_PAGES), psize = sysconf(_SC_PAGESIZE);
    if (pages > 0 && psize > 0 && bytes > (size_t)pages * (size_t)psize / 4) bytes = (size_t)pages * (size_t)psize / 4;
    bytes &= ~(size_t)4095;
    if (bytes < (64u << 20)) return 0;
    uint64_t *buf = NULL;
    if (posix_memalign((void **)&buf, 4096, bytes) != 0) return 0;
    memset(buf, 1, bytes); /* fault the pages in before timing */
    bw_shared sh = {.buf = buf, .words = bytes / 8, .n_threads = n_threads, .passes = 6};
    pthread_barrier_init(&sh.start, NULL, n_threads + 1);
    pthread_barrier_init(&sh.done, NULL, n_threads + 1);
    pthread_t *th = calloc(n_threads, sizeof *th);
    bw_thread *bt = calloc(n_threads, sizeof *bt);
    double best = 0;
    uint32_t started = 0;
    if (th && bt) {
        for (; started < n_threads; started++) {
            bt[started] = (bw_thread){&sh, started};
            if (pthread_create(&th[started], NULL, bw_worker, &bt[started]) != 0) break;
        }
    }
    if (started == n_threads) {
        for (int p = 0; p < sh.passes; p++) {
            pthread_barrier_wait(&sh.start);
            const double t0 = now_s();
            pthread_barrier_wait(&sh.done);
            const double dt = now_s() - t0;
            if (p > 0 && dt > 0 && bytes / dt > best) best = bytes / dt; /* pass 0 warms up */
        }
        for (uint32_t i = 0; i < started; i++) pthread_join(th[i], NULL);
    } else {
        /* could not start every thread: no figure rather than a wrong one
         * (the started ones wait at a barrier that cannot complete, so the
         * process exits without joining them) */
        best = 0;
    }
    free(th);
    free(bt);
    if (started == n_threads) {
        pthread_barrier_destroy(&sh.start);
        pthread_barrier_destroy(&sh.done);
        free(buf);
    }
    return best;
}

/* ---- the tests ---- */

typedef struct stats {
    double mean, sd;
} stats;

static stats summarize(const double *v, uint32_t n) {
    stats s = {0, 0};
    for (uint32_t i = 0; i < n; i++) s.mean += v[i];
    s.mean /= n;
    for (uint32_t i = 0; i < n; i++) s.sd += (v[i] - s.mean) * (v[i] - s.mean);
    s.sd = n > 1 ? sqrt(s.sd / (n - 1)) : 0;
    return s;
}

/* Random token ids (not special tokens), deterministic per seed. */
static void random_tokens(int32_t *ids, uint32_t n, uint32_t n_vocab, uint64_t seed) {
    uint64_t s = seed * 0x9e3779b97f4a7c15ULL + 1;
    for (uint32_t i = 0; i < n; i++) {
        s ^= s << 13;
        s ^= s >> 7;
        s ^= s << 17;
        ids[i] = (int32_t)(n_vocab > 300 ? 300 + s % (n_vocab - 300) : s % n_vocab);
    }
}

/* Prefill: tokens/s of one batch of n from an empty context. */
static int run_pp(g3_context *ctx, const int32_t *ids, uint32_t n, float *logits, double *tok_s) {
    g3_error err;
    if (g3_context_truncate(ctx, 0, &err)) goto fail;
    const double t0 = now_s();
    if (g3_eval(ctx, ids, n, logits, false, &err)) goto fail;
    *tok_s = n / (now_s() - t0);
    return 0;
fail:
    app_error(k_cmd, "%s", err.msg);
    return -1;
}

/* Decode: tokens/s of n single-token steps from an empty context. */
static int run_tg(g3_context *ctx, const int32_t *ids, uint32_t n, float *logits, double *tok_s) {
    g3_error err;
    if (g3_context_truncate(ctx, 0, &err)) goto fail;
    const double t0 = now_s();
    for (uint32_t i = 0; i < n; i++)
        if (g3_eval(ctx, &ids[i], 1, logits, false, &err)) goto fail;
    *tok_s = n / (now_s() - t0);
    return 0;
fail:
    app_error(k_cmd, "%s", err.msg);
    return -1;
}

/* Decode with P sequences: n steps, each one batched forward pass of one
 * token per sequence; tokens/s of all sequences together. */
static int run_tg_parallel(g3_context *ctx, const int32_t *ids, uint32_t n, uint32_t P, float *logits,
                           double *tok_s) {
    g3_error err;
    uint32_t seqs[256];
    int32_t toks[256];
    for (uint32_t s = 0; s < P; s++) {
        seqs[s] = s;
        if (g3_context_truncate_seq(ctx, s, 0, &err)) goto fail;
    }
    const double t0 = now_s();
    for (uint32_t i = 0; i < n; i++) {
        for (uint32_t s = 0; s < P; s++) toks[s] = ids[(i + 7 * s) % n];
        if (g3_decode_batch(ctx, seqs, toks, P, logits, &err)) goto fail;
    }
    *tok_s = (double)n * P / (now_s() - t0);
    return 0;
fail:
    app_error(k_cmd, "%s", err.msg);
    return -1;
}

static uint64_t rss_bytes(void) {
    FILE *f = fopen("/proc/self/status", "r");
    if (!f) return 0;
    char line[256];
    unsigned long long kb = 0;
    while (fgets(line, sizeof line, f))
        if (sscanf(line, "VmRSS: %llu kB", &kb) == 1) break;
    fclose(f);
    return (uint64_t)kb * 1024;
}

static void model_name(const g3_config *c, char *buf, size_t n) {
    const char *size = c->n_layer == 26 ? "1B" : c->n_layer == 34 ? "4B" : c->n_layer == 48 ? "12B"
                     : c->n_layer == 62 ? "27B" : NULL;
    if (size) snprintf(buf, n, "gemma3 %s", size);
    else snprintf(buf, n, "gemma3 %uL", c->n_layer);
}

typedef struct results {
    bool pp_done, tg_done;
    stats pp, tg;
    double bandwidth;       /* bytes/s */
    uint64_t bytes_per_token;
    uint64_t kv_bytes, scratch_bytes, rss;
    bool gpu;
    g3_gpu_info gpu_info; /* after the runs */
} results;

/* Bytes per cached value (q8_0: 34 per block of 32). */
static double kv_value_bytes(g3_kv_type t) {
    switch (t) {
    case G3_KV_F32: return 4;
    case G3_KV_F16:
    case G3_KV_BF16: return 2;
    case G3_KV_Q8_0: return 34.0 / 32;
    }
    return 4;
}

static void print_table(const bench_opts *o, const char *name, const g3_model_stats *ms,
                        const g3_system_info *si, const results *r) {
    char type[24];
    snprintf(type, sizeof type, "%s%s", ms->main_type, ms->mixed ? "+" : ""); /* +: other types too */
    printf("| %-14s | %10s | %-6s | %7s | %6s | %16s |\n", "model", "size", "type", "threads", "test", "t/s");
    printf("| %-14s | %10s | %-6s | %7s | %6s | %16s |\n", "--------------", "---------:", "------", "------:",
           "-----:", "---------------:");
    char size[32];
    snprintf(size, sizeof size, "%.2f MiB", ms->weight_bytes / 1048576.0);
    char test[24], ts[48];
    if (r->pp_done) {
        snprintf(test, sizeof test, "pp%u", o->n_prompt);
        snprintf(ts, sizeof ts, "%.2f ± %.2f", r->pp.mean, r->pp.sd);
        printf("| %-14s | %10s | %-6s | %7u | %6s | %17s |\n", name, size, type, o->n_threads, test, ts);
    }
    if (r->tg_done) {
        snprintf(test, sizeof test, "tg%u", o->n_gen);
        snprintf(ts, sizeof ts, "%.2f ± %.2f", r->tg.mean, r->tg.sd);
        printf("| %-14s | %10s | %-6s | %7u | %6s | %17s |\n", name, size, type, o->n_threads, test, ts);
    }
    if (o->parallel > 1 && r->tg_done) printf("(tg: %u sequences decoded together; t/s counts all of them)\n", o->parallel);
    if (r->gpu) {
        printf("\ndevice: %s (CUDA backend); %s KV cache %.1f MiB + scratch %.1f MiB on the GPU (context %u, "
               "batch %u, %u sequence%s); GPU memory in use after the runs (peak: nothing is allocated while "
               "evaluating) %.1f MiB of %.1f MiB; %.1f MB of weights read per decoded token\n",
               r->gpu_info.name, g3_kv_type_name(o->kv_type), r->kv_bytes / 1048576.0, r->scratch_bytes / 1048576.0,
               o->n_ctx, o->n_ctx < 512 ? o->n_ctx : 512, o->parallel, o->parallel == 1 ? "" : "s",
               r->gpu_info.used_bytes / 1048576.0, r->gpu_info.total_bytes / 1048576.0, r->bytes_per_token / 1e6);
        return;
    }
    printf("\nkernels %s on %s, %u threads\n", si->kernels, si->cpu, o->n_threads);
    if (r->bandwidth > 0) {
        const double roof = r->bandwidth / (double)r->bytes_per_token;
        printf("memory read bandwidth %.1f GB/s (%u threads, streaming); %.1f MB read per decoded token; "
               "roofline %.1f tok/s",
               r->bandwidth / 1e9, o->n_threads, r->bytes_per_token / 1e6, roof);
        if (r->tg_done) printf("; tg%u reaches %.1f%% of it", o->n_gen, 100.0 * r->tg.mean / roof);
        printf("\n");
    } else {
        printf("memory read bandwidth: not measured (not enough memory for the test buffer)\n");
    }
    printf("memory: weights %.1f MiB (mapped) + %s KV cache %.1f MiB + scratch %.1f MiB (context %u, batch %u) = "
           "%.1f MiB; resident after the runs %.1f MiB\n",
           ms->weight_bytes / 1048576.0, g3_kv_type_name(o->kv_type), r->kv_bytes / 1048576.0,
           r->scratch_bytes / 1048576.0, o->n_ctx,
           o->n_ctx < 512 ? o->n_ctx : 512, (ms->weight_bytes + r->kv_bytes + r->scratch_bytes) / 1048576.0,
           r->rss / 1048576.0);
}

static void print_json(const bench_opts *o, const char *name, const g3_model_stats *ms, const results *r) {
    const double roof = r->bandwidth > 0 ? r->bandwidth / (double)r->bytes_per_token : 0;
    printf("{\"model\": \"%s\", \"type\": \"%s%s\", \"size_bytes\": %llu, \"threads\": %u, \"kv_type\": \"%s\", ",
           name, ms->main_type, ms->mixed ? "+" : "", (unsigned long long)ms->weight_bytes, o->n_threads,
           g3_kv_type_name(o->kv_type));
    printf("\"pp\": {\"n\": %u, \"tok_s\": %.3f}, ", o->n_prompt, r->pp_done ? r->pp.mean : 0.0);
    printf("\"tg\": {\"n\": %u, \"tok_s\": %.3f}, ", o->n_gen, r->tg_done ? r->tg.mean : 0.0);
    printf("\"device\": \"%s\", \"activations\": \"%s\", \"parallel\": %u, \"gpu_mem_used_bytes\": %llu, \"kv_bytes\": %llu, ",
           r->gpu ? "cuda" : "cpu", app_activations_name(o->activations), o->parallel, (unsigned long long)(r->gpu ? r->gpu_info.used_bytes : 0),
           (unsigned long long)r->kv_bytes);
    printf("\"bandwidth_gbs\": %.3f, \"bytes_per_token\": %llu, \"roofline_fraction\": %.4f}\n",
           r->bandwidth / 1e9, (unsigned long long)r->bytes_per_token,
           roof > 0 && r->tg_done ? r->tg.mean / roof : 0.0);
}

int cmd_bench(int argc, char **argv) {
    bench_opts o = {.n_prompt = 512, .n_gen = 128, .reps = 3, .n_ctx = 4096, .kv_type = APP_DEFAULT_KV_TYPE,
                    .activations = APP_DEFAULT_ACTIVATIONS, .parallel = 1};
    if (parse_args(argc, argv, &o)) return 2;
    g3_system_info si;
    g3_error err;
    if (g3_system_info_get(&si, &err)) {
        app_error(k_cmd, "%s", err.msg);
        return 2;
    }
    if (!o.n_threads) o.n_threads = si.physical_cores;
    if (o.n_threads > si.usable_cpus) {
        app_error(k_cmd, "-t %u: this process can run on %u CPUs", o.n_threads, si.usable_cpus);
        return 2;
    }
    if (o.n_threads > si.physical_cores)
        fprintf(stderr, "gemma-chat bench: warning: -t %u is more than the %u physical cores; "
                        "threads will share cores and the figures will be lower\n",
                o.n_threads, si.physical_cores);
    if (o.n_ctx < o.n_prompt) o.n_ctx = o.n_prompt;
    if (o.n_ctx < o.n_gen) o.n_ctx = o.n_gen;

    const bool gpu = g3_device_resolve(o.device, NULL, 0) == G3_DEVICE_CUDA;
    if (o.device == G3_DEVICE_CUDA && !gpu) {
        char why[256];
        g3_device_resolve(o.device, why, sizeof why);
        app_error(k_cmd, "--device cuda: %s", why);
        return 2;
    }
    /* the host's bandwidth says nothing about a run on the GPU */
    const double bandwidth_before = gpu ? 0.0 : measure_bandwidth(o.n_threads);
    g3_model *model;
    if (g3_model_load(o.model, &model, &err)) {
        app_error(k_cmd, "%s", err.msg);
        return 1;
    }
    const g3_config *c = g3_model_config(model);
    g3_model_stats ms;
    g3_model_get_stats(model, &ms);
    char name[32];
    model_name(c, name, sizeof name);
    g3_context_params cp = {.n_ctx = o.n_ctx, .n_threads = o.n_threads, .kv_type = o.kv_type,
                            .device = o.device, .n_seq = o.parallel};
    app_apply_activations(o.activations, &cp);
    results r = {0};
    g3_context *ctx = NULL;
    int rc = 1;
    const uint32_t n_ids = o.n_prompt > o.n_gen ? o.n_prompt : o.n_gen;
    int32_t *ids = malloc(sizeof *ids * (n_ids ? n_ids : 1));
    float *logits = malloc(sizeof(float) * c->n_vocab * o.parallel);
    double *v = malloc(sizeof(double) * o.reps);
    if (!ids || !logits || !v) {
        app_error(k_cmd, "out of memory");
        goto done;
    }
    if (g3_context_memory(model, &cp, &r.kv_bytes, &r.scratch_bytes, &err) ||
        g3_context_new(model, &cp, &ctx, &err)) {
        app_error(k_cmd, "%s", err.msg);
        goto done;
    }
    /* progress on stderr in both modes: stdout holds only the table or the JSON */
    fprintf(stderr, "bench: %s, %s, %u threads, %s KV cache, kernels %s on %s\n", o.model, name, o.n_threads,
            g3_kv_type_name(o.kv_type), si.kernels, si.cpu);
    if (o.n_prompt) {
        random_tokens(ids, o.n_prompt, c->n_vocab, 1);
        if (run_pp(ctx, ids, o.n_prompt, logits, &v[0])) goto done; /* warm-up */
        for (uint32_t i = 0; i < o.reps; i++) {
            random_tokens(ids, o.n_prompt, c->n_vocab, 2 + i);
            if (run_pp(ctx, ids, o.n_prompt, logits, &v[i])) goto done;
            fprintf(stderr, "  pp%u run %u: %.2f tok/s\n", o.n_prompt, i + 1, v[i]);
        }
        r.pp = summarize(v, o.reps);
        r.pp_done = true;
    }
    if (o.n_gen) {
        random_tokens(ids, o.n_gen, c->n_vocab, 100);
        const uint32_t P = o.parallel;
        if (P > 1 ? run_tg_parallel(ctx, ids, o.n_gen < 16 ? o.n_gen : 16, P, logits, &v[0])
                  : run_tg(ctx, ids, o.n_gen < 16 ? o.n_gen : 16, logits, &v[0]))
            goto done; /* warm-up */
        for (uint32_t i = 0; i < o.reps; i++) {
            random_tokens(ids, o.n_gen, c->n_vocab, 101 + i);
            if (P > 1 ? run_tg_parallel(ctx, ids, o.n_gen, P, logits, &v[i]) : run_tg(ctx, ids, o.n_gen, logits, &v[i]))
                goto done;
            fprintf(stderr, "  tg%u run %u: %.2f tok/s\n", o.n_gen, i + 1, v[i]);
        }
        r.tg = summarize(v, o.reps);
        r.tg_done = true;
    }
    r.rss = rss_bytes();
    r.gpu = g3_context_device(ctx) == G3_DEVICE_CUDA;
    if (r.gpu && g3_gpu_info_get(&r.gpu_info, &err)) {
        app_error(k_cmd, "%s", err.msg);
        goto done;
    }
    g3_context_free(ctx);
    ctx = NULL;
    /* bytes per decoded token: the weights, plus the keys and values read at
     * the average position of the decode test (all layers see all of them
     * while the test stays inside the sliding window) */
    const double kv_row = 2.0 * kv_value_bytes(o.kv_type) * c->n_head_kv * c->head_dim * c->n_layer;
    r.bytes_per_token = ms.decode_bytes + (uint64_t)(kv_row * (o.n_gen / 2));
    r.bandwidth = r.gpu ? 0.0 : measure_bandwidth(o.n_threads);
    if (bandwidth_before > r.bandwidth) r.bandwidth = bandwidth_before;
    if (o.json) print_json(&o, name, &ms, &r);
    else print_table(&o, name, &ms, &si, &r);
    rc = 0;
done:
    g3_context_free(ctx);
    free(ids);
    free(logits);
    free(v);
    g3_model_free(model);
    return rc;
}
