/* gemma-chat serve: the OpenAI-compatible HTTP API (src/server/).
 *
 * Threads: the main thread waits for signals; an engine thread opens the
 * model (the HTTP server already listens, answering /health with 503 until
 * then) and runs the engine loop; libmicrohttpd runs one thread per
 * connection. SIGINT/SIGTERM: stop accepting, shut the engine down (every
 * request in flight ends: its client gets a 503 or an error chunk), wait
 * for the connections, exit 0. */
#include <errno.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "app/app.h"
#include "gemma3_engine.h"
#include "gemma3_store.h"
#include "server/server.h"

typedef struct serve_options {
    const char *model, *mmproj, *host, *api_key, *cors, *db;
    bool no_db;
    uint32_t port, parallel, max_queue, timeout_s, ping_ms;
    uint64_t max_body;
    g3_context_params cp;
    bool verbose, force;
    g3_default_model default_model;
} serve_options;

static void usage(FILE *out) {
    fprintf(out,
            "usage: gemma-chat serve [-m MODEL] [options]\n"
            "  -m, --model FILE        the model (default: " G3_DEFAULT_MODEL_NAME ", " G3_DEFAULT_MODEL_PATH ")\n"
            "  --mmproj FILE           the vision encoder: image_url parts become images\n"
            "  --host ADDR             address to listen on (default 127.0.0.1; 0.0.0.0 or :: for all)\n"
            "  --port N                port (default 8080; 0 = any free port, printed when listening)\n"
            "  --api-key KEY           require 'Authorization: Bearer KEY' on every /v1 route\n"
            "  --parallel N            conversations decoded at once, each with its own KV cache (default 4)\n"
            "  -c, --ctx-size N        context per slot (default 8192, or the model's trained length if shorter)\n"
            "  --kv-type T             KV cache type: f16 (default), bf16, q8_0, f32\n"
            APP_ACTIVATIONS_HELP
            APP_DEVICE_HELP
            "  -t, --threads N         worker threads (default: physical cores)\n"
            "  --max-body BYTES        largest request body (default 20 MB)\n"
            "  --max-queue N           requests waiting for a slot before 429 (default 64)\n"
            "  --cors ORIGIN           allow this one browser origin (CORS is off by default)\n"
            "  --timeout S             close idle connections after S seconds (default 60)\n"
            "  --ping-interval S       ': ping' on a stream idle S seconds (default 10)\n"
            "  --db PATH               the conversation store of the native API /api/... (default:\n"
            "                          $XDG_DATA_HOME/gemma-chat/chats.db, as the terminal chat's)\n"
            "  --no-db                 no store: the /api/conversations routes answer 404\n"
            "  --force                 load although the memory plan does not fit\n"
            "  -v, --verbose           a line on stderr per request\n");
}

/* Seconds, a fraction allowed (0.1 .. 3600), as milliseconds. */
/* From 0.01 s: a test's queued stream must see a ping while the two streams
 * ahead of it run, a tenth of a second on a tiny model. */
static int parse_seconds_ms(const char *cmd, const char *flag, const char *text, uint32_t *ms) {
    char *end;
    errno = 0;
    double s = strtod(text, &end);
    if (errno || end == text || *end || !(s >= 0.01 && s <= 3600)) {
        app_error(cmd, "%s expects seconds between 0.01 and 3600, got '%s'", flag, text);
        return -1;
    }
    *ms = (uint32_t)(s * 1000 + 0.5);
    return 0;
}

static int parse_args(const char *cmd, int argc, char **argv, serve_options *o) {
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i], *v = NULL;
        if (!strcmp(a, "--help") || !strcmp(a, "-h")) {
            usage(stdout);
            return 1;
        }
        if (!strcmp(a, "--force")) {
            o->force = true;
            continue;
        }
        if (!strcmp(a, "--no-db")) {
            o->no_db = true;
            continue;
        }
        if (!strcmp(a, "-v") || !strcmp(a, "--verbose")) {
            o->verbose = true;
            continue;
        }
        static const char *const k_valued[] = {"-m", "--model", "--mmproj", "--host", "--port", "--api-key",
                                               "--parallel", "-c", "--ctx-size", "--kv-type", "--device", "-t", "--threads", "--activations",
                                               "--max-body", "--max-queue", "--cors", "--timeout", "--ping-interval",
                                               "--db"};
        bool known = false;
        for (size_t k = 0; k < sizeof k_valued / sizeof *k_valued; k++) known |= !strcmp(a, k_valued[k]);
        if (!known) {
            app_error(cmd, "unknown option '%s' (gemma-chat serve --help)", a);
            return -1;
        }
        if (!(v = app_flag_value(cmd, argc, argv, &i))) return -1;
        int rc = 0;
        if (!strcmp(a, "-m") || !strcmp(a, "--model")) o->model = v;
        else if (!strcmp(a, "--mmproj")) o->mmproj = v;
        else if (!strcmp(a, "--host")) o->host = v;
        else if (!strcmp(a, "--api-key")) o->api_key = v;
        else if (!strcmp(a, "--cors")) o->cors = v;
        else if (!strcmp(a, "--db")) o->db = v;
        else if (!strcmp(a, "--port")) rc = app_parse_u32(cmd, a, v, 0, 65535, &o->port);
        else if (!strcmp(a, "--parallel")) rc = app_parse_u32(cmd, a, v, 1, 64, &o->parallel);
        else if (!strcmp(a, "-c") || !strcmp(a, "--ctx-size")) rc = app_parse_u32(cmd, a, v, 16, 1u << 20, &o->cp.n_ctx);
        else if (!strcmp(a, "--kv-type")) rc = app_parse_kv_type(cmd, a, v, &o->cp.kv_type);
        else if (!strcmp(a, "--device")) rc = app_parse_device(cmd, a, v, &o->cp.device);
        else if (!strcmp(a, "--activations")) rc = app_parse_activations_cp(cmd, a, v, &o->cp);
        else if (!strcmp(a, "-t") || !strcmp(a, "--threads")) rc = app_parse_u32(cmd, a, v, 1, 1024, &o->cp.n_threads);
        else if (!strcmp(a, "--max-queue")) rc = app_parse_u32(cmd, a, v, 1, 100000, &o->max_queue);
        else if (!strcmp(a, "--timeout")) rc = app_parse_u32(cmd, a, v, 1, 86400, &o->timeout_s);
        else if (!strcmp(a, "--ping-interval")) rc = parse_seconds_ms(cmd, a, v, &o->ping_ms);
        else if (!strcmp(a, "--max-body")) {
            rc = app_parse_u64(cmd, a, v, &o->max_body);
            if (!rc && (o->max_body < 1024 || o->max_body > (1ull << 32))) {
                app_error(cmd, "--max-body must be between 1024 bytes and 4 GB, got %s", v);
                rc = -1;
            }
        }
        if (rc) return -1;
    }
    if (o->no_db && o->db) {
        app_error(cmd, "--db and --no-db exclude each other");
        return -1;
    }
    return 0;
}

/* The store, opened before the model loads: a database that is locked,
 * read-only, damaged or someone else's stops serve at once, with the
 * store's message, rather than after the first answer could not be saved. */
static int open_store(const char *cmd, const serve_options *o, g3_store **out) {
    *out = NULL;
    if (o->no_db) return 0;
    char path[4096];
    g3_error err;
    const char *p = o->db;
    if (!p) {
        if (g3_store_default_path(path, sizeof path, &err)) {
            app_error(cmd, "%s (give --db PATH, or --no-db)", err.msg);
            return -1;
        }
        p = path;
    }
    if (g3_store_open(p, NULL, out, &err)) {
        app_error(cmd, "%s (give another --db PATH, or --no-db)", err.msg);
        return -1;
    }
    fprintf(stderr, "gemma-chat: conversations in %s\n", g3_store_path(*out));
    return 0;
}

/* The model's id in the API: its file's base name without ".gguf". */
static void model_id_of(const char *path, char *id, size_t n) {
    const char *base = strrchr(path, '/');
    base = base ? base + 1 : path;
    size_t len = strlen(base);
    if (len > 5 && !strcmp(base + len - 5, ".gguf")) len -= 5;
    snprintf(id, n, "%.*s", (int)len, base);
}

/* ---- the engine thread --------------------------------------------------- */

typedef struct engine_thread {
    const serve_options *o;
    srv_server *server;
    pthread_t main_thread;
    pthread_mutex_t mu;
    bool stop;               /* under mu: SIGINT before the model was ready */
    g3_engine *engine;       /* under mu: published once open */
    atomic_bool failed;
    g3_error err;
    g3_engine_open_info info;
    char url[320];
    const char *model_id;
} engine_thread;

static void *engine_main(void *arg) {
    engine_thread *t = arg;
    const serve_options *o = t->o;
    g3_engine_params p = {.model_path = o->model, .mmproj_path = o->mmproj, .cp = o->cp, .n_slots = o->parallel,
                          .max_queue = o->max_queue, .wrap = G3_IMAGE_WRAP_OFFICIAL};
    p.cp.skip_memory_check = o->force;
    g3_engine *e = NULL;
    if (g3_engine_open(&p, &e, &t->info, &t->err)) {
        atomic_store(&t->failed, true);
        pthread_kill(t->main_thread, SIGUSR1);
        return NULL;
    }
    pthread_mutex_lock(&t->mu);
    bool stop = t->stop;
    t->engine = e;
    pthread_mutex_unlock(&t->mu);
    if (stop) return NULL; /* main frees it */
    srv_set_engine(t->server, e);
    fprintf(stderr, "gemma-chat: serving %s at %s (%u slot%s, context %u)\n", t->model_id, t->url,
            g3_engine_n_slots(e), g3_engine_n_slots(e) == 1 ? "" : "s", g3_engine_n_ctx(e));
    if (t->info.ctx_above_train)
        fprintf(stderr, "gemma-chat serve: warning: context %u is above the model's trained %u; answers may "
                        "degrade past it\n", t->info.n_ctx, t->info.n_ctx_train);
    g3_engine_run(e);
    return NULL;
}

static void print_open_failure(const char *cmd, const engine_thread *t) {
    app_error(cmd, "%s", t->err.msg);
    const g3_engine_open_info *i = &t->info;
    if (i->failure == G3_OPEN_NO_MEMORY) {
        if (i->longest_ctx)
            fprintf(stderr, "gemma-chat %s: the longest context that fits %u slots is %u (-c %u); or use fewer "
                    "--parallel slots, a smaller --kv-type, or --force\n", cmd, t->o->parallel, i->longest_ctx,
                    i->longest_ctx);
        else
            fprintf(stderr, "gemma-chat %s: use fewer --parallel slots, a smaller model, or --force\n", cmd);
    } else if (i->failure == G3_OPEN_CTX_TOO_LONG) {
        fprintf(stderr, "gemma-chat %s: give a shorter -c (the model was trained on %u positions)\n", cmd,
                i->n_ctx_train);
    }
}

/* Sets the engine's shutdown until its thread has ended: a shutdown that
 * races the loop going idle is repeated rather than waited on forever. */
static void stop_engine_thread(engine_thread *t, pthread_t th) {
    for (;;) {
        pthread_mutex_lock(&t->mu);
        t->stop = true;
        g3_engine *e = t->engine;
        pthread_mutex_unlock(&t->mu);
        if (e) g3_engine_shutdown(e);
        struct timespec until;
        clock_gettime(CLOCK_REALTIME, &until);
        until.tv_nsec += 100 * 1000 * 1000;
        if (until.tv_nsec >= 1000000000L) {
            until.tv_sec++;
            until.tv_nsec -= 1000000000L;
        }
        if (pthread_timedjoin_np(th, NULL, &until) == 0) return;
    }
}

int cmd_serve(int argc, char **argv) {
    const char *cmd = "serve";
    serve_options o = {.host = "127.0.0.1", .port = 8080, .parallel = 4, .max_body = SRV_DEFAULT_MAX_BODY,
                       .timeout_s = SRV_DEFAULT_TIMEOUT_S, .ping_ms = SRV_DEFAULT_PING_MS};
    o.cp.kv_type = APP_DEFAULT_KV_TYPE;
    int rc = parse_args(cmd, argc, argv, &o);
    if (rc) return rc > 0 ? 0 : 2;
    if (!o.model) {
        g3_error err;
        if (g3_default_model_find(&o.default_model, &err)) {
            app_error(cmd, "%s", err.msg);
            return 1;
        }
        o.model = o.default_model.path;
        fprintf(stderr, "gemma-chat: %s (default%s)\n", o.default_model.shown,
                o.default_model.from_env ? " from " G3_DEFAULT_MODEL_ENV : "");
    }
    if (app_check_model_path(cmd, o.model)) return 1;
    char model_id[256];
    model_id_of(o.model, model_id, sizeof model_id);

    /* Signals go to the main thread's sigwait: block them before any thread starts. */
    sigset_t set;
    sigemptyset(&set);
    sigaddset(&set, SIGINT);
    sigaddset(&set, SIGTERM);
    sigaddset(&set, SIGUSR1);
    pthread_sigmask(SIG_BLOCK, &set, NULL);
    signal(SIGPIPE, SIG_IGN);

    g3_store *store;
    if (open_store(cmd, &o, &store)) return 1;

    srv_config cfg = {.store = store, .host = o.host, .port = (uint16_t)o.port, .api_key = o.api_key, .cors_origin = o.cors,
                      .max_body = (size_t)o.max_body, .max_connections = SRV_DEFAULT_MAX_CONNECTIONS,
                      .timeout_s = o.timeout_s, .ping_ms = o.ping_ms, .model_id = model_id, .verbose = o.verbose};
    srv_server *server;
    uint16_t port;
    g3_error err;
    if (srv_start(&cfg, &server, &port, &err)) {
        app_error(cmd, "%s", err.msg);
        g3_store_close(store);
        return 1;
    }
    engine_thread t = {.o = &o, .server = server, .main_thread = pthread_self(), .model_id = model_id};
    pthread_mutex_init(&t.mu, NULL);
    bool v6 = strchr(o.host, ':') != NULL;
    snprintf(t.url, sizeof t.url, "http://%s%s%s:%u/", v6 ? "[" : "", o.host, v6 ? "]" : "", (unsigned)port);
    fprintf(stderr, "gemma-chat: listening at %s (loading %s)\n", t.url, o.model);

    pthread_t th;
    if (pthread_create(&th, NULL, engine_main, &t)) {
        app_error(cmd, "cannot start the engine thread");
        srv_quiesce(server);
        srv_stop(server);
        g3_store_close(store);
        return 1;
    }
    int sig = 0;
    while (sigwait(&set, &sig) != 0 || (sig == SIGUSR1 && !atomic_load(&t.failed))) {
    }
    srv_quiesce(server);
    if (sig == SIGUSR1) {
        pthread_join(th, NULL);
        print_open_failure(cmd, &t);
        srv_stop(server);
        g3_store_close(store);
        pthread_mutex_destroy(&t.mu);
        return 1;
    }
    fprintf(stderr, "gemma-chat: %s: stopping (requests in flight are cancelled)\n", strsignal(sig));
    stop_engine_thread(&t, th);
    srv_stop(server); /* joins the connections' threads: the last answers are stored */
    g3_store_close(store);
    g3_engine_free(t.engine);
    pthread_mutex_destroy(&t.mu);
    fprintf(stderr, "gemma-chat: stopped\n");
    return 0;
}
