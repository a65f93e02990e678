/* session.c: one conversation with a model, for the terminal (`chat`,
 * `run`): a conversation kept here and an engine with one slot
 * (gemma3_engine.h), driven on the caller's thread. The engine renders the
 * conversation, reuses the cached prefix (a follow-up prefills only the new
 * turn), drops the oldest turn pairs when the context is outgrown (they
 * stay in the conversation and its saved file) and generates; the session
 * commits the answer to the conversation, or takes the user's message back
 * when the engine refused it. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "base/error.h"
#include "gemma3_chat.h"
#include "gemma3_engine.h"
#include "gemma3_media.h"
#include "gemma3_vision.h"

struct g3_session {
    g3_engine *engine;
    g3_conversation conv;
    g3_model_record record; /* this model, as saved conversations record it */
};

g3_gen_params g3_gen_defaults(void) {
    g3_gen_params g = {.sampler = g3_sampler_defaults(), .max_new_tokens = 700, .stop = NULL};
    return g;
}

/* "Gemma 3 1B" from the shape (the GGUF name is free text, the layer count
 * is not), or the layer count of a shape we do not know. */
static void model_name(const g3_config *c, char *buf, size_t n) {
    static const struct { uint32_t n_layer, n_embd; const char *size; } k_sizes[] = {
        {18, 640, "270M"}, {26, 1152, "1B"}, {34, 2560, "4B"}, {48, 3840, "12B"}, {62, 5376, "27B"}};
    for (size_t i = 0; i < sizeof k_sizes / sizeof k_sizes[0]; i++)
        if (c->n_layer == k_sizes[i].n_layer && c->n_embd == k_sizes[i].n_embd) {
            snprintf(buf, n, "Gemma 3 %s", k_sizes[i].size);
            return;
        }
    snprintf(buf, n, "Gemma 3 (%u layers, embedding %u)", c->n_layer, c->n_embd);
}

/* FNV-1a 64 over every token's bytes, each followed by a 0xFF separator
 * (a byte no UTF-8 text holds), so "ab","c" and "a","bc" differ. */
static uint64_t vocab_fingerprint(const g3_tokenizer *tok) {
    uint64_t h = 0xcbf29ce484222325ull;
    char buf[256];
    const uint32_t n = g3_tokenizer_n_vocab(tok);
    for (uint32_t id = 0; id < n; id++) {
        const int len = g3_token_to_bytes(tok, (int32_t)id, false, buf, sizeof buf);
        for (int i = 0; i < len; i++) h = (h ^ (unsigned char)buf[i]) * 0x100000001b3ull;
        h = (h ^ 0xFF) * 0x100000001b3ull;
    }
    return h;
}

void g3_model_record_of(const g3_model *model, const g3_tokenizer *tok, g3_model_record *out) {
    memset(out, 0, sizeof *out);
    model_name(g3_model_config(model), out->name, sizeof out->name);
    out->n_vocab = g3_tokenizer_n_vocab(tok);
    out->vocab_fingerprint = vocab_fingerprint(tok);
}

int g3_session_new(g3_model *model, const g3_context_params *cp, g3_session **out, g3_error *err) {
    *out = NULL;
    g3_session *s = calloc(1, sizeof *s);
    if (!s) return g3_fail(err, "out of memory");
    g3_conversation_init(&s->conv);
    if (g3_engine_new(model, cp, 1, 1, &s->engine, err)) {
        g3_session_free(s);
        return -1;
    }
    g3_model_record_of(model, g3_engine_tokenizer(s->engine), &s->record);
    s->conv.model = s->record;
    *out = s;
    return 0;
}

void g3_session_free(g3_session *s) {
    if (!s) return;
    g3_engine_free(s->engine);
    g3_conversation_free(&s->conv);
    free(s);
}

int g3_session_set_vision(g3_session *s, g3_vision *vision, g3_image_wrap wrap, g3_error *err) {
    return g3_engine_set_vision(s->engine, vision, wrap, err);
}

g3_conversation *g3_session_conversation(g3_session *s) { return &s->conv; }
uint32_t g3_session_n_ctx(const g3_session *s) { return g3_engine_n_ctx(s->engine); }
const g3_model_record *g3_session_model_record(const g3_session *s) { return &s->record; }
const float *g3_session_logits(const g3_session *s) { return g3_engine_slot_logits(s->engine, 0); }
const g3_tokenizer *g3_session_tokenizer(const g3_session *s) { return g3_engine_tokenizer(s->engine); }

/* The caller's text callback, and its cancel flag (set by a signal
 * handler) polled with each piece of text. */
typedef struct relay {
    g3_on_text on_text;
    void *user;
    volatile int *cancel;
} relay;

static bool relay_text(const char *text, size_t len, void *user) {
    relay *r = user;
    if (r->cancel && *r->cancel) return false;
    return r->on_text ? r->on_text(text, len, r->user) : true;
}

static void stats_of(const g3_gen_result *res, g3_gen_stats *st) {
    *st = (g3_gen_stats){.n_prefill = res->n_prompt - res->n_cached, .n_reused = res->n_cached,
                         .n_generated = res->n_generated, .n_encoded = res->n_encoded,
                         .n_dropped_turns = res->dropped_turns, .encode_s = res->encode_s,
                         .prefill_s = res->prefill_s, .generate_s = res->generate_s,
                         .stop_reason = g3_stop_reason_name(res->stop)};
}

static int generate(g3_session *s, const g3_conversation *conv, bool raw, const g3_gen_params *gp, g3_on_text on_text,
                    void *user, volatile int *cancel, g3_gen_result *res, g3_error *err) {
    relay r = {on_text, user, cancel};
    g3_request req = {.conv = conv, .raw = raw, .gen = *gp, .cb = {.on_text = relay_text, .user = &r}};
    return g3_engine_generate(s->engine, &req, res, err);
}

/* Answers the conversation's last turn (the user's new message) and commits
 * the answer; on failure the user turn is taken back: the conversation is
 * as it was. */
static int respond(g3_session *s, const g3_gen_params *gp, g3_on_text on_text, void *user, volatile int *cancel,
                   g3_gen_stats *stats, g3_error *err) {
    g3_gen_result res;
    if (generate(s, &s->conv, false, gp, on_text, user, cancel, &res, err) ||
        /* the ids are kept only when they are exactly the text (no stop-string cut) */
        g3_conversation_add(&s->conv, G3_ROLE_MODEL, res.text, res.ids, res.n_ids, err)) {
        g3_conversation_pop(&s->conv);
        return -1;
    }
    s->conv.model = s->record; /* its latest answer is this model's */
    if (stats) stats_of(&res, stats);
    return 0;
}

static int check_turn(g3_session *s, const g3_gen_params *gp, g3_error *err) {
    if (g3_sampler_params_check(&gp->sampler, err)) return -1;
    if (s->conv.n_turns % 2 != 0) return g3_fail(err, "the conversation is waiting for a model turn");
    return 0;
}

int g3_session_send(g3_session *s, const char *user_text, const g3_gen_params *gp, g3_on_text on_text,
                    void *user, volatile int *cancel, g3_gen_stats *stats, g3_error *err) {
    if (check_turn(s, gp, err) || g3_conversation_add(&s->conv, G3_ROLE_USER, user_text, NULL, 0, err)) return -1;
    return respond(s, gp, on_text, user, cancel, stats, err);
}

int g3_session_send_parts(g3_session *s, const g3_part *parts, size_t n_parts, const g3_gen_params *gp,
                          g3_on_text on_text, void *user, volatile int *cancel, g3_gen_stats *stats, g3_error *err) {
    if (check_turn(s, gp, err) || g3_conversation_add_parts(&s->conv, parts, n_parts, err)) return -1;
    return respond(s, gp, on_text, user, cancel, stats, err);
}

/* ---- loading ------------------------------------------------------------ */

/* True when ids are this vocabulary's tokens and spell exactly `text` (as
 * generate() streamed them: specials skipped). */
static bool ids_spell(const g3_tokenizer *tok, const int32_t *ids, size_t n, const char *text) {
    const uint32_t n_vocab = g3_tokenizer_n_vocab(tok);
    const size_t text_len = strlen(text);
    g3_detokenizer d;
    g3_detokenizer_init(&d, tok, true);
    char piece[256];
    size_t at = 0;
    for (size_t i = 0; i <= n; i++) {
        if (i < n && (ids[i] < 0 || (uint32_t)ids[i] >= n_vocab)) return false;
        const int len = i < n ? g3_detokenizer_push(&d, ids[i], piece, sizeof piece)
                              : g3_detokenizer_flush(&d, piece, sizeof piece);
        if (len < 0 || at + (size_t)len > text_len || memcmp(text + at, piece, (size_t)len) != 0) return false;
        at += (size_t)len;
    }
    return at == text_len;
}

int g3_session_load(g3_session *s, const char *path, g3_load_report *report, g3_error *err) {
    g3_load_report r = {0};
    g3_conversation c;
    g3_conversation_init(&c);
    if (g3_conversation_load(&c, path, err)) return -1;
    r.saved = c.model;
    r.other_vocab = c.model.n_vocab &&
                    (c.model.n_vocab != s->record.n_vocab || c.model.vocab_fingerprint != s->record.vocab_fingerprint);
    for (size_t i = 0; i < c.n_turns; i++) {
        g3_turn *t = &c.turns[i];
        if (t->role != G3_ROLE_MODEL || !t->n_ids || ids_spell(g3_engine_tokenizer(s->engine), t->ids, t->n_ids, t->text)) continue;
        free(t->ids);
        t->ids = NULL;
        t->n_ids = 0;
        r.n_reread++;
    }
    c.model = s->record; /* from here on, this model's conversation */
    g3_conversation_free(&s->conv);
    s->conv = c;
    if (report) *report = r;
    return 0;
}

/* "Frame 1.50:" before each frame, as the original demo wrote it. A path,
 * or bytes (copied once: the first frame part owns them). */
static int video_parts(const char *path, const char *name, const void *data, size_t len, uint32_t n_frames,
                       g3_part **parts, size_t *n_parts, g3_error *err) {
    g3_media_limits lim = g3_media_limits_default();
    g3_video_frame *frames;
    uint32_t n;
    *parts = NULL;
    *n_parts = 0;
    if (path ? g3_video_sample(path, n_frames, &lim, &frames, &n, err)
             : g3_video_sample_memory(data, len, n_frames, &lim, &frames, &n, err))
        return path ? -1 : g3_error_prefix(err, "%s: ", name ? name : "video");
    g3_part *p = calloc(2 * (size_t)n + 1, sizeof *p);
    uint8_t *bytes = NULL;
    int rc = p ? 0 : g3_fail(err, "out of memory");
    if (!rc && !path) {
        if ((bytes = malloc(len)) != NULL) memcpy(bytes, data, len); /* len >= 1: sampling succeeded */
        else rc = g3_fail(err, "out of memory");
    }
    for (uint32_t i = 0; rc == 0 && i < n; i++) {
        char label[48];
        snprintf(label, sizeof label, "Frame %.2f:", frames[i].seconds);
        p[2 * i] = (g3_part){.type = G3_PART_TEXT, .text = strdup(label)};
        p[2 * i + 1] = (g3_part){.type = G3_PART_VIDEO_FRAME, .seconds = frames[i].seconds, .frame = i, .n_frames = n};
        if (path) p[2 * i + 1].path = strdup(path);
        else p[2 * i + 1] = (g3_part){.type = G3_PART_VIDEO_FRAME, .data = bytes, .data_len = len, .shares_data = i > 0,
                                      .seconds = frames[i].seconds, .frame = i, .n_frames = n};
        if (!p[2 * i].text || (path && !p[2 * i + 1].path)) rc = g3_fail(err, "out of memory");
    }
    g3_video_frames_free(frames, n);
    if (rc) {
        const bool attached = p && bytes && p[1].data == bytes; /* then freed through the first frame part */
        g3_parts_free(p, p ? 2 * (size_t)n : 0);
        if (!attached) free(bytes);
        return -1;
    }
    *parts = p;
    *n_parts = 2 * (size_t)n;
    return 0;
}

int g3_video_parts(const char *path, uint32_t n_frames, g3_part **parts, size_t *n_parts, g3_error *err) {
    return video_parts(path, NULL, NULL, 0, n_frames, parts, n_parts, err);
}

int g3_video_parts_memory(const char *name, const void *data, size_t len, uint32_t n_frames, g3_part **parts,
                          size_t *n_parts, g3_error *err) {
    return video_parts(NULL, name, data, len, n_frames, parts, n_parts, err);
}

int g3_session_complete_raw(g3_session *s, const char *text, const g3_gen_params *gp, g3_on_text on_text,
                            void *user, volatile int *cancel, g3_gen_stats *stats, g3_error *err) {
    g3_conversation c; /* the text as a user turn, sent raw (no template) */
    g3_conversation_init(&c);
    g3_gen_result res;
    int rc = g3_conversation_add(&c, G3_ROLE_USER, text, NULL, 0, err) ||
             generate(s, &c, true, gp, on_text, user, cancel, &res, err);
    g3_conversation_free(&c);
    if (rc) return -1;
    if (stats) stats_of(&res, stats);
    return 0;
}
