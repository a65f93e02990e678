/* session.c: one conversation with a model.
 *
 * The session remembers which tokens its KV cache holds (kv_ids). A new
 * message renders the whole conversation, keeps the longest common prefix
 * with kv_ids and evaluates only the rest: a follow-up question prefills
 * just the new turn. When the conversation outgrows the context, the oldest
 * user/model pairs are left out of the prompt (they stay in the
 * conversation and its saved file). */
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "base/error.h"
#include "chat/prompt.h"
#include "gemma3_chat.h"
#include "text/sampler.h"

struct g3_session {
    g3_model *model;
    g3_tokenizer *tok;
    g3_context *ctx;
    g3_context_params cp;
    g3_conversation conv;
    int32_t *kv_ids; /* the tokens whose keys/values the context holds */
    size_t n_kv_ids, cap_kv_ids;
    float *logits;   /* n_vocab: the distribution after the last kv_id */
    int32_t eot, eos;
};

g3_gen_params g3_gen_defaults(void) {
    g3_gen_params g = {.sampler = g3_sampler_defaults(), .max_new_tokens = 700, .stop = NULL};
    return g;
}

static double now_s(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return ts.tv_sec + ts.tv_nsec * 1e-9;
}

int g3_session_new(g3_model *model, const g3_context_params *cp, g3_session **out, g3_error *err) {
    *out = NULL;
    g3_session *s = calloc(1, sizeof *s);
    if (!s) return g3_fail(err, "out of memory");
    s->model = model;
    s->cp = cp ? *cp : (g3_context_params){0};
    g3_conversation_init(&s->conv);
    if (g3_tokenizer_from_model(model, &s->tok, err) || g3_context_new(model, &s->cp, &s->ctx, err)) goto fail;
    s->logits = malloc(sizeof(float) * g3_model_config(model)->n_vocab);
    s->cap_kv_ids = g3_context_n_ctx(s->ctx);
    s->kv_ids = malloc(sizeof *s->kv_ids * s->cap_kv_ids);
    if (!s->logits || !s->kv_ids) {
        g3_fail(err, "out of memory");
        goto fail;
    }
    s->eot = g3_tokenizer_find(s->tok, "<end_of_turn>");
    s->eos = g3_tokenizer_eos(s->tok);
    *out = s;
    return 0;
fail:
    g3_session_free(s);
    return -1;
}

void g3_session_free(g3_session *s) {
    if (!s) return;
    g3_context_free(s->ctx);
    g3_tokenizer_free(s->tok);
    g3_conversation_free(&s->conv);
    free(s->kv_ids);
    free(s->logits);
    free(s);
}

g3_conversation *g3_session_conversation(g3_session *s) { return &s->conv; }
const float *g3_session_logits(const g3_session *s) { return s->logits; }
const g3_tokenizer *g3_session_tokenizer(const g3_session *s) { return s->tok; }

/* Rolls the cache back to n_keep tokens; a fresh context when the sliding
 * window no longer holds what a rollback needs. */
static int rollback(g3_session *s, size_t n_keep, g3_error *err) {
    if (n_keep < s->n_kv_ids && g3_context_truncate(s->ctx, (uint32_t)n_keep, err)) {
        g3_context *fresh;
        if (g3_context_new(s->model, &s->cp, &fresh, err)) return -1;
        g3_context_free(s->ctx);
        s->ctx = fresh;
        n_keep = 0;
    }
    if (n_keep < s->n_kv_ids) s->n_kv_ids = n_keep;
    return 0;
}

static int eval_append(g3_session *s, const int32_t *ids, size_t n, g3_error *err) {
    if (g3_eval(s->ctx, ids, (uint32_t)n, s->logits, false, err)) return -1;
    memcpy(s->kv_ids + s->n_kv_ids, ids, n * sizeof *ids);
    s->n_kv_ids += n;
    return 0;
}

/* Makes the cache hold exactly `ids` and the logits follow its last token. */
static int sync_prompt(g3_session *s, const int32_t *ids, size_t n, g3_gen_stats *st, g3_error *err) {
    size_t common = 0;
    while (common < n && common < s->n_kv_ids && ids[common] == s->kv_ids[common]) common++;
    if (common == n) common--; /* the last token is evaluated again for its logits */
    double t0 = now_s();
    if (rollback(s, common, err)) return -1;
    common = s->n_kv_ids;
    if (eval_append(s, ids + common, n - common, err)) return -1;
    st->n_reused = (uint32_t)common;
    st->n_prefill = (uint32_t)(n - common);
    st->prefill_s = now_s() - t0;
    return 0;
}

/* Renders the conversation, leaving out the oldest turn pairs while the
 * prompt plus the answer would not fit. */
static int render_fitting(g3_session *s, uint32_t max_new, int32_t **ids, size_t *n, g3_error *err) {
    const size_t n_ctx = g3_context_n_ctx(s->ctx);
    for (size_t first = 0;; first += 2) {
        if (g3_chat_render_from(s->tok, &s->conv, first, true, ids, n, err)) return -1;
        if (*n + max_new <= n_ctx || first + 2 >= s->conv.n_turns) break;
        free(*ids);
        *ids = NULL;
    }
    if (*n >= n_ctx) {
        free(*ids);
        *ids = NULL;
        return g3_fail(err, "the message needs %zu tokens but the context holds %zu; shorten it or raise -c",
                       *n, n_ctx);
    }
    return 0;
}

/* Text streaming with stop strings: text that could still become a stop
 * string is held back until it cannot. */
typedef struct text_out {
    char *text;
    size_t len, cap, emitted;
    const char *const *stop;
    g3_on_text on_text;
    void *user;
    bool stopped_by_string, stopped_by_callback;
} text_out;

static int out_append(text_out *o, const char *piece, size_t n, g3_error *err) {
    if (o->len + n + 1 > o->cap) {
        size_t cap = o->cap ? o->cap * 2 : 1024;
        while (cap < o->len + n + 1) cap *= 2;
        char *grown = realloc(o->text, cap);
        if (!grown) return g3_fail(err, "out of memory");
        o->text = grown;
        o->cap = cap;
    }
    memcpy(o->text + o->len, piece, n);
    o->len += n;
    o->text[o->len] = 0;
    return 0;
}

static size_t held_back(const text_out *o) {
    size_t hold = 0;
    for (size_t k = 0; o->stop && o->stop[k]; k++) {
        size_t sl = strlen(o->stop[k]);
        for (size_t m = sl > 1 ? sl - 1 : 0; m > hold; m--)
            if (m <= o->len - o->emitted && memcmp(o->text + o->len - m, o->stop[k], m) == 0) {
                hold = m;
                break;
            }
    }
    return hold;
}

static void out_emit(text_out *o, size_t upto) {
    if (upto > o->emitted && o->on_text && !o->on_text(o->text + o->emitted, upto - o->emitted, o->user))
        o->stopped_by_callback = true;
    if (upto > o->emitted) o->emitted = upto;
}

static void out_update(text_out *o, bool final) {
    for (size_t k = 0; o->stop && o->stop[k]; k++) {
        if (!*o->stop[k]) continue;
        char *hit = strstr(o->text, o->stop[k]);
        if (hit) {
            o->len = (size_t)(hit - o->text);
            o->text[o->len] = 0;
            o->stopped_by_string = true;
            out_emit(o, o->len);
            return;
        }
    }
    out_emit(o, final ? o->len : o->len - held_back(o));
}

static int generate(g3_session *s, const g3_gen_params *gp, text_out *o, volatile int *cancel,
                    int32_t **gen_ids, size_t *n_gen, g3_gen_stats *st, g3_error *err) {
    g3_sampler *sampler = g3_sampler_new(&gp->sampler, g3_model_config(s->model)->n_vocab, err);
    int32_t *gen = malloc(sizeof *gen * (gp->max_new_tokens + 1));
    if (!sampler || !gen) {
        g3_sampler_free(sampler);
        free(gen);
        return sampler ? g3_fail(err, "out of memory") : -1;
    }
    g3_detokenizer detok;
    g3_detokenizer_init(&detok, s->tok, true);
    char piece[256];
    size_t n = 0;
    double t0 = now_s();
    st->stop_reason = "max_tokens";
    int rc = 0;
    while (n < gp->max_new_tokens) {
        if (cancel && *cancel) { st->stop_reason = "cancelled"; break; }
        int32_t tok = g3_sampler_sample(sampler, s->logits, s->kv_ids, s->n_kv_ids);
        if (tok == s->eot) { st->stop_reason = "end_of_turn"; break; }
        if (tok == s->eos) { st->stop_reason = "eos"; break; }
        gen[n++] = tok;
        int len = g3_detokenizer_push(&detok, tok, piece, sizeof piece);
        if (len > 0 && (rc = out_append(o, piece, (size_t)len, err))) break;
        out_update(o, false);
        if (o->stopped_by_string) { st->stop_reason = "stop_string"; break; }
        if (o->stopped_by_callback) { st->stop_reason = "cancelled"; break; }
        if (n == gp->max_new_tokens) break;
        if (s->n_kv_ids + 1 > g3_context_n_ctx(s->ctx)) { st->stop_reason = "context_full"; break; }
        if ((rc = eval_append(s, &tok, 1, err))) break;
    }
    if (rc == 0 && !o->stopped_by_string) {
        int len = g3_detokenizer_flush(&detok, piece, sizeof piece);
        if (len > 0) rc = out_append(o, piece, (size_t)len, err);
        if (rc == 0) out_update(o, true);
    }
    st->n_generated = (uint32_t)n;
    st->generate_s = now_s() - t0;
    g3_sampler_free(sampler);
    *gen_ids = gen;
    *n_gen = n;
    return rc;
}

int g3_session_send(g3_session *s, const char *user_text, const g3_gen_params *gp, g3_on_text on_text,
                    void *user, volatile int *cancel, g3_gen_stats *stats, g3_error *err) {
    g3_gen_stats st = {0};
    if (g3_sampler_params_check(&gp->sampler, err)) return -1;
    if (s->conv.n_turns % 2 != 0) return g3_fail(err, "the conversation is waiting for a model turn");
    if (g3_conversation_add(&s->conv, G3_ROLE_USER, user_text, NULL, 0, err)) return -1;
    int32_t *prompt = NULL, *gen = NULL;
    size_t n_prompt = 0, n_gen = 0;
    text_out o = {.stop = gp->stop, .on_text = on_text, .user = user};
    if (render_fitting(s, gp->max_new_tokens, &prompt, &n_prompt, err) || sync_prompt(s, prompt, n_prompt, &st, err) ||
        generate(s, gp, &o, cancel, &gen, &n_gen, &st, err))
        goto fail;
    /* keep the ids only when they are exactly the text (no stop-string cut) */
    if (g3_conversation_add(&s->conv, G3_ROLE_MODEL, o.text ? o.text : "", o.stopped_by_string ? NULL : gen,
                            n_gen, err))
        goto fail;
    free(prompt);
    free(gen);
    free(o.text);
    if (stats) *stats = st;
    return 0;
fail:
    g3_conversation_pop(&s->conv); /* the conversation is as it was */
    free(prompt);
    free(gen);
    free(o.text);
    return -1;
}

int g3_session_complete_raw(g3_session *s, const char *text, const g3_gen_params *gp, g3_on_text on_text,
                            void *user, volatile int *cancel, g3_gen_stats *stats, g3_error *err) {
    g3_gen_stats st = {0};
    int32_t *prompt = NULL, *gen = NULL;
    size_t n_prompt = 0, n_gen = 0;
    text_out o = {.stop = gp->stop, .on_text = on_text, .user = user};
    int rc = -1;
    if (g3_tokenize(s->tok, text, strlen(text), true, true, &prompt, &n_prompt, err)) return -1;
    if (n_prompt >= g3_context_n_ctx(s->ctx)) {
        g3_fail(err, "the prompt needs %zu tokens but the context holds %u; shorten it or raise -c", n_prompt,
                g3_context_n_ctx(s->ctx));
        goto done;
    }
    if (sync_prompt(s, prompt, n_prompt, &st, err) || generate(s, gp, &o, cancel, &gen, &n_gen, &st, err)) goto done;
    if (stats) *stats = st;
    rc = 0;
done:
    free(prompt);
    free(gen);
    free(o.text);
    return rc;
}
