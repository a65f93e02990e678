#include "server/metrics.h"

#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static const int k_statuses[SRV_STATUS_SLOTS - 1] = {200, 201, 204, 304, 400, 401, 404, 405, 409,
                                                     413, 415, 429, 500, 503, 507, 499, 206};

static const char *const k_paths[SRV_ROUTE_COUNT] = {"/v1/chat/completions", "/v1/models", "/health", "/metrics",
                                                     "/api/conversations", "/api/conversations/{id}",
                                                     "/api/conversations/{id}/answer", "/api/conversations/{id}/stop",
                                                     "/api/conversations/{id}/export", "/api/attachments/{id}",
                                                     "/api/info", "/", "other"};

const char *srv_route_path(srv_route r) { return r < SRV_ROUTE_COUNT ? k_paths[r] : "other"; }

static int slot_of(int status) {
    for (int i = 0; i < SRV_STATUS_SLOTS - 1; i++)
        if (k_statuses[i] == status) return i;
    return SRV_STATUS_SLOTS - 1;
}

void srv_metrics_init(srv_metrics *m) {
    for (int r = 0; r < SRV_ROUTE_COUNT; r++)
        for (int s = 0; s < SRV_STATUS_SLOTS; s++) atomic_init(&m->requests[r][s], 0);
}

void srv_metrics_count(srv_metrics *m, srv_route route, int status) {
    if (route >= SRV_ROUTE_COUNT) route = SRV_ROUTE_OTHER;
    atomic_fetch_add(&m->requests[route][slot_of(status)], 1);
}

uint64_t srv_metrics_requests(srv_metrics *m, srv_route route, int status) {
    return atomic_load(&m->requests[route][slot_of(status)]);
}

typedef struct out {
    char *s;
    size_t len, cap;
    bool failed;
} out;

static void put(out *o, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void put(out *o, const char *fmt, ...) {
    if (o->failed) return;
    for (;;) {
        va_list ap;
        va_start(ap, fmt);
        int n = vsnprintf(o->s + o->len, o->cap - o->len, fmt, ap);
        va_end(ap);
        if (n < 0) {
            o->failed = true;
            return;
        }
        if ((size_t)n < o->cap - o->len) {
            o->len += (size_t)n;
            return;
        }
        size_t cap = o->cap * 2 + (size_t)n;
        char *s = realloc(o->s, cap);
        if (!s) {
            o->failed = true;
            return;
        }
        o->s = s;
        o->cap = cap;
    }
}

static void metric(out *o, const char *name, const char *type, const char *help) {
    put(o, "# HELP gemma_chat_%s %s\n# TYPE gemma_chat_%s %s\n", name, help, name, type);
}

char *srv_metrics_text(srv_metrics *m, const g3_engine_metrics *em, uint32_t n_slots, bool loaded) {
    out o = {.s = malloc(4096), .cap = 4096};
    if (!o.s) return NULL;
    o.s[0] = 0;
    metric(&o, "http_requests_total", "counter", "HTTP requests answered, by route and status.");
    for (int r = 0; r < SRV_ROUTE_COUNT; r++)
        for (int s = 0; s < SRV_STATUS_SLOTS; s++) {
            uint64_t n = atomic_load(&m->requests[r][s]);
            if (!n) continue;
            char status[8];
            snprintf(status, sizeof status, "%d", s < SRV_STATUS_SLOTS - 1 ? k_statuses[s] : 0);
            put(&o, "gemma_chat_http_requests_total{route=\"%s\",status=\"%s\"} %llu\n", k_paths[r],
                s < SRV_STATUS_SLOTS - 1 ? status : "other", (unsigned long long)n);
        }
    metric(&o, "model_loaded", "gauge", "1 when the model is loaded and requests are served.");
    put(&o, "gemma_chat_model_loaded %d\n", loaded ? 1 : 0);
    metric(&o, "slots", "gauge", "KV cache slots (conversations decoded at once).");
    put(&o, "gemma_chat_slots %u\n", n_slots);
    g3_engine_metrics z = {0};
    if (!em) em = &z;
    metric(&o, "busy_slots", "gauge", "Slots running a request.");
    put(&o, "gemma_chat_busy_slots %u\n", em->busy_slots);
    metric(&o, "queue_length", "gauge", "Requests waiting for a slot.");
    put(&o, "gemma_chat_queue_length %u\n", em->queue_length);
    metric(&o, "engine_requests_total", "counter", "Requests the engine finished, by result.");
    put(&o, "gemma_chat_engine_requests_total{result=\"done\"} %llu\n", (unsigned long long)em->requests_done);
    put(&o, "gemma_chat_engine_requests_total{result=\"failed\"} %llu\n", (unsigned long long)em->requests_failed);
    put(&o, "gemma_chat_engine_requests_total{result=\"cancelled\"} %llu\n",
        (unsigned long long)em->requests_cancelled);
    metric(&o, "prompt_tokens_total", "counter", "Prompt tokens of finished requests (cached ones included).");
    put(&o, "gemma_chat_prompt_tokens_total %llu\n", (unsigned long long)em->prompt_tokens);
    metric(&o, "cached_prompt_tokens_total", "counter", "Prompt tokens found in a slot's KV cache (not prefilled).");
    put(&o, "gemma_chat_cached_prompt_tokens_total %llu\n", (unsigned long long)em->cached_tokens);
    metric(&o, "generated_tokens_total", "counter", "Tokens generated.");
    put(&o, "gemma_chat_generated_tokens_total %llu\n", (unsigned long long)em->generated_tokens);
    metric(&o, "prefill_seconds_total", "counter", "Prefill time, summed over requests.");
    put(&o, "gemma_chat_prefill_seconds_total %.6f\n", em->prefill_s);
    metric(&o, "decode_seconds_total", "counter", "Decoding time, summed over requests (batched ones overlap).");
    put(&o, "gemma_chat_decode_seconds_total %.6f\n", em->decode_s);
    uint64_t prefilled = em->prompt_tokens > em->cached_tokens ? em->prompt_tokens - em->cached_tokens : 0;
    metric(&o, "prefill_tokens_per_second", "gauge",
           "Prompt tokens prefilled per second of the requests' prefill time, since start.");
    put(&o, "gemma_chat_prefill_tokens_per_second %.3f\n", em->prefill_s > 0 ? prefilled / em->prefill_s : 0.0);
    metric(&o, "decode_tokens_per_second", "gauge",
           "Tokens generated per second of each request's decoding time, since start: the speed one stream sees "
           "(batched streams add up to more).");
    put(&o, "gemma_chat_decode_tokens_per_second %.3f\n",
        em->decode_s > 0 ? em->generated_tokens / em->decode_s : 0.0);
    if (o.failed) {
        free(o.s);
        return NULL;
    }
    return o.s;
}
