/* completions.c: POST /v1/chat/completions.
 *
 * The body becomes an engine request (openai_request.c); submitting it
 * either queues it or refuses at once (400 for what the engine finds wrong,
 * 429 when its queue is full). Then the connection's thread waits for the
 * job (job.c) and answers with one chat.completion object, or streams
 * chunks as text arrives; either way a client that disconnects cancels the
 * generation (its slot frees at the next step). */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "gemma3_text.h"
#include "server/job.h"
#include "server/openai_request.h"
#include "server/openai_response.h"
#include "server/server_internal.h"

#define MAX_IMAGE_BYTES (10u << 20) /* as the terminal's limit on image files */

static void make_meta(srv_server *s, bool include_usage, srv_completion_meta *m) {
    uint64_t n = atomic_fetch_add(&s->next_id, 1);
    uint64_t h = (n + s->id_salt) * 0x9E3779B97F4A7C15ull;
    h ^= h >> 31;
    snprintf(m->id, sizeof m->id, "chatcmpl-%016llx%06llx", (unsigned long long)h, (unsigned long long)(n & 0xFFFFFF));
    m->created = (long long)time(NULL);
    m->model = s->model_id;
    m->include_usage = include_usage;
}

static srv_usage usage_of(const g3_gen_result *r) {
    srv_usage u = {.prompt = r->n_prompt, .cached = r->n_cached, .completion = r->n_generated};
    return u;
}

/* Why a finished job has no answer to give (finish reason NULL). */
static void failure_of(srv_server *s, const srv_job *j, srv_error *e) {
    if (j->out_of_memory)
        srv_fail(e, 500, "server_error", NULL, NULL, "out of memory while answering");
    else if (j->result.stop == G3_STOP_ERROR && j->result.error_kind == G3_ERROR_REQUEST)
        srv_fail(e, 400, "invalid_request_error", NULL, "messages", "%s", j->result.err.msg);
    else if (j->result.stop == G3_STOP_ERROR)
        srv_fail(e, 500, "server_error", NULL, NULL, "generation failed: %s", j->result.err.msg);
    else if (atomic_load(&s->stopping))
        srv_fail(e, 503, "server_error", "shutting_down", NULL, "the server is shutting down");
    else
        srv_fail(e, 500, "server_error", NULL, NULL, "the request was cancelled");
}

static void log_result(srv_server *s, const srv_job *j) {
    if (!s->cfg.verbose) return;
    const g3_gen_result *r = &j->result;
    fprintf(stderr, "gemma-chat serve:   prompt %u tokens (%u cached), generated %u, %.2f s queued, "
            "%.2f s prefill, %.2f s generating; stop: %s\n", r->n_prompt, r->n_cached, r->n_generated, r->queue_s,
            r->prefill_s, r->generate_s, g3_stop_reason_name(r->stop));
}

/* ---- one answer ---------------------------------------------------------- */

static int answer_whole(srv_exchange *x, srv_job *job, const srv_completion_meta *meta) {
    int fd = srv_client_fd(x);
    srv_hold_connection(x, true);
    for (;;) {
        char *text;
        size_t len;
        bool done;
        srv_job_take(job, &text, &len, &done);
        free(text);
        if (done) break;
        if (srv_job_wait(job, fd, -1) == SRV_WAIT_CLIENT_GONE) {
            srv_count_dropped(x);
            srv_job_release(job);
            return -1; /* close the connection */
        }
    }
    srv_hold_connection(x, false);
    log_result(x->srv, job);
    const char *finish = srv_finish_reason(job->result.stop);
    int rc;
    if (!finish || job->out_of_memory) {
        srv_error e;
        failure_of(x->srv, job, &e);
        rc = srv_reply_error(x, &e);
    } else {
        srv_usage u = usage_of(&job->result);
        char *json = srv_completion_json(meta, job->text, job->result.text_len, finish, &u);
        rc = json ? srv_reply(x, 200, "application/json", json, strlen(json), NULL) : -1;
    }
    srv_job_release(job);
    return rc;
}

/* ---- a stream ------------------------------------------------------------ */

typedef struct stream {
    srv_job *job;
    srv_server *srv;
    int fd;
    int ping_ms;
    srv_completion_meta meta;
    char *out;          /* bytes ready for the client */
    size_t out_len, out_off;
    bool started, finished;
} stream;

/* Appends a malloc'd event to what is ready; false when out of memory. */
static bool push(stream *st, char *event) {
    if (!event) return false;
    size_t n = strlen(event);
    char *out = realloc(st->out, st->out_len + n + 1);
    if (!out) {
        free(event);
        return false;
    }
    memcpy(out + st->out_len, event, n + 1);
    st->out = out;
    st->out_len += n;
    free(event);
    return true;
}

/* The events for what the job has made since the last call. */
static bool collect(stream *st) {
    char *text;
    size_t len;
    bool done;
    if (srv_job_take(st->job, &text, &len, &done)) {
        free(text);
        atomic_store(&st->job->cancel, true);
        return false;
    }
    bool ok = !len || push(st, srv_sse_content(&st->meta, text, len));
    free(text);
    if (!ok || !done) return ok;
    st->finished = true;
    log_result(st->srv, st->job);
    const char *finish = srv_finish_reason(st->job->result.stop);
    if (!finish) {
        srv_error e;
        failure_of(st->srv, st->job, &e);
        return push(st, srv_sse_error(&st->meta, &e));
    }
    srv_usage u = usage_of(&st->job->result);
    return push(st, srv_sse_finish(&st->meta, finish, &u));
}

static ssize_t stream_read(void *cls, char *buf, size_t max) {
    stream *st = cls;
    for (;;) {
        if (st->out_off < st->out_len) {
            size_t n = st->out_len - st->out_off;
            if (n > max) n = max;
            memcpy(buf, st->out + st->out_off, n);
            st->out_off += n;
            return (ssize_t)n;
        }
        free(st->out);
        st->out = NULL;
        st->out_len = st->out_off = 0;
        if (st->finished) return SRV_STREAM_END;
        if (!st->started) {
            st->started = true;
            if (!push(st, srv_sse_role(&st->meta))) return SRV_STREAM_ABORT;
            continue;
        }
        if (!collect(st)) {
            atomic_store(&st->job->cancel, true);
            return SRV_STREAM_ABORT;
        }
        if (st->out_len) continue;
        srv_wait w = srv_job_wait(st->job, st->fd, st->ping_ms);
        if (w == SRV_WAIT_CLIENT_GONE) return SRV_STREAM_ABORT;
        if (w == SRV_WAIT_TIMEOUT) {
            char *ping = strdup(": ping\n\n");
            if (!push(st, ping)) return SRV_STREAM_ABORT;
        }
    }
}

static void stream_free(void *cls) {
    stream *st = cls;
    if (!st->finished) atomic_store(&st->job->cancel, true); /* the client left before the end */
    srv_job_release(st->job);
    free(st->out);
    free(st);
}

static int answer_stream(srv_exchange *x, srv_job *job, const srv_completion_meta *meta) {
    stream *st = calloc(1, sizeof *st);
    if (!st) {
        atomic_store(&job->cancel, true);
        srv_job_release(job);
        return -1;
    }
    st->job = job;
    st->srv = x->srv;
    st->fd = srv_client_fd(x);
    st->ping_ms = (int)x->srv->cfg.ping_ms;
    st->meta = *meta;
    return srv_reply_stream(x, stream_read, st, stream_free);
}

/* ---- the route ----------------------------------------------------------- */

/* The message to answer must fit one slot's context (the engine leaves out
 * earlier turns, never this one). Checked here, so a request that cannot
 * fit is a 400 before a stream starts rather than a failure after. A token
 * covers at least one byte, so a text shorter than the context needs no
 * tokenizing; the template's tokens and images are not counted (a lower
 * bound: what passes here may still be refused by the engine). */
static int check_fits(g3_engine *engine, const srv_chat_request *req, srv_error *e) {
    const g3_turn *last = &req->conv.turns[req->conv.n_turns - 1];
    const size_t n_ctx = g3_engine_n_ctx(engine), overhead = 8;
    size_t len = strlen(last->text);
    if (len + overhead < n_ctx) return 0;
    int32_t *ids = NULL;
    size_t n = 0;
    g3_error ge;
    if (g3_tokenize(g3_engine_tokenizer(engine), last->text, len, false, false, &ids, &n, &ge))
        return srv_fail(e, 500, "server_error", NULL, NULL, "tokenizing the last message: %s", ge.msg);
    free(ids);
    if (n + overhead < n_ctx) return 0;
    return srv_fail(e, 400, "invalid_request_error", "context_length_exceeded", "messages",
                    "messages: the last message is %zu tokens; the context holds %zu per conversation", n + overhead,
                    n_ctx);
}

static int refuse(srv_exchange *x, const srv_error *e) { return srv_reply_error(x, e); }

int srv_chat_completions(srv_exchange *x, const char *body, size_t len) {
    srv_server *s = x->srv;
    srv_error e;
    g3_engine *engine = atomic_load(&s->engine);
    if (!engine) {
        srv_fail(&e, 503, "server_error", "model_loading", NULL, "the model is still loading; try again shortly");
        return refuse(x, &e);
    }
    srv_request_limits lim = {.n_ctx = g3_engine_n_ctx(engine),
                              .has_vision = g3_engine_has_vision(engine),
                              .max_image_bytes = MAX_IMAGE_BYTES,
                              .model_id = s->model_id,
                              .model_name = g3_engine_model_name(engine)};
    srv_chat_request req;
    if (srv_chat_request_parse(body, len, &lim, &req, &e)) return refuse(x, &e);
    if (check_fits(engine, &req, &e)) {
        srv_chat_request_free(&req);
        return refuse(x, &e);
    }
    const bool streaming = req.stream;
    srv_completion_meta meta;
    make_meta(s, req.include_usage, &meta);
    srv_job *job = srv_job_new(streaming);
    if (!job) {
        srv_chat_request_free(&req);
        srv_fail(&e, 500, "server_error", NULL, NULL, "out of memory (or descriptors) for a request");
        return refuse(x, &e);
    }
    g3_request r = {.conv = &req.conv, .gen = req.gen, .cb = srv_job_callbacks(job), .cancel = &job->cancel};
    bool queue_full = false;
    g3_error ge = {{0}};
    srv_job_ref(job); /* the engine's, dropped by on_done */
    pthread_mutex_lock(&s->submit_mu);
    int rc = atomic_load(&s->stopping) ? 1 : g3_engine_submit(engine, &r, &queue_full, &ge);
    pthread_mutex_unlock(&s->submit_mu);
    srv_chat_request_free(&req);
    if (rc) {
        srv_job_release(job);
        srv_job_release(job);
        if (rc > 0)
            srv_fail(&e, 503, "server_error", "shutting_down", NULL, "the server is shutting down");
        else if (queue_full)
            srv_fail(&e, 429, "rate_limit_error", "queue_full", NULL,
                     "the server is busy: every slot is working and the queue is full; retry shortly");
        else
            srv_fail(&e, 400, "invalid_request_error", "invalid_request", "messages", "messages: %s", ge.msg);
        return refuse(x, &e);
    }
    return streaming ? answer_stream(x, job, &meta) : answer_whole(x, job, &meta);
}
