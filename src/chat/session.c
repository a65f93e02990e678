/* session.c: one conversation with a model.
 *
 * The session remembers which tokens its KV cache holds (kv_ids). A new
 * message renders the whole conversation, keeps the longest common prefix
 * with kv_ids and evaluates only the rest: a follow-up question prefills
 * just the new turn. When the conversation outgrows the context, the oldest
 * user/model pairs are left out of the prompt (they stay in the
 * conversation and its saved file). */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "base/error.h"
#include "chat/prompt.h"
#include "gemma3_chat.h"
#include "gemma3_media.h"
#include "gemma3_vision.h"
#include "text/sampler.h"

/* An image the conversation refers to, and its soft tokens once encoded. */
typedef struct image_entry {
    g3_part_type type;
    char *path;
    uint32_t frame, n_frames;
    float *embd; /* n_tokens x n_embd, NULL until encoded */
} image_entry;

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
    g3_vision *vision; /* NULL: text only */
    g3_image_wrap wrap;
    g3_media_limits limits;
    image_entry *images; /* image i appears in kv_ids as -(i + 1) */
    size_t n_images, cap_images;
    g3_model_record record; /* this model, as saved conversations record it */
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
    s->limits = g3_media_limits_default();
    model_name(g3_model_config(model), s->record.name, sizeof s->record.name);
    s->record.n_vocab = g3_tokenizer_n_vocab(s->tok);
    s->record.vocab_fingerprint = vocab_fingerprint(s->tok);
    s->conv.model = s->record;
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
    for (size_t i = 0; i < s->n_images; i++) {
        free(s->images[i].path);
        free(s->images[i].embd);
    }
    free(s->images);
    free(s->kv_ids);
    free(s->logits);
    free(s);
}

int g3_session_set_vision(g3_session *s, g3_vision *vision, g3_image_wrap wrap, g3_error *err) {
    if (vision && g3_vision_check_model(vision, s->model, err)) return -1;
    s->vision = vision;
    s->wrap = wrap;
    return 0;
}

/* ---- images ------------------------------------------------------------- */

static bool same_image(const image_entry *e, const g3_part *p) {
    return e->type == p->type && strcmp(e->path, p->path) == 0 &&
           (p->type == G3_PART_IMAGE || (e->frame == p->frame && e->n_frames == p->n_frames));
}

static int32_t image_id(void *user, const g3_part *p, g3_error *err) {
    g3_session *s = user;
    for (size_t i = 0; i < s->n_images; i++)
        if (same_image(&s->images[i], p)) return -(int32_t)(i + 1);
    if (s->n_images == s->cap_images) {
        size_t cap = s->cap_images ? s->cap_images * 2 : 8;
        image_entry *grown = realloc(s->images, cap * sizeof *grown);
        if (!grown) return g3_fail(err, "out of memory"), 0;
        s->images = grown;
        s->cap_images = cap;
    }
    image_entry e = {.type = p->type, .path = strdup(p->path), .frame = p->frame, .n_frames = p->n_frames};
    if (!e.path) return g3_fail(err, "out of memory"), 0;
    s->images[s->n_images++] = e;
    return -(int32_t)s->n_images;
}

static int encode_pixels(g3_session *s, const g3_image *img, image_entry *e, g3_error *err) {
    const uint32_t size = g3_vision_image_size(s->vision);
    float mean[3], std[3];
    g3_vision_norm(s->vision, mean, std);
    float *pixels = malloc(sizeof(float) * 3 * size * size);
    float *embd = malloc(sizeof(float) * g3_vision_n_tokens(s->vision) * g3_vision_n_embd(s->vision));
    g3_resize_mode mode = s->wrap == G3_IMAGE_WRAP_GOLDEN ? G3_RESIZE_PAD : G3_RESIZE_STRETCH;
    if (!pixels || !embd) {
        free(pixels);
        free(embd);
        return g3_fail(err, "out of memory for an image");
    }
    int rc = g3_image_to_tensor(img, size, mode, mean, std, pixels, err) || g3_vision_encode(s->vision, pixels, embd, err);
    free(pixels);
    if (rc) {
        free(embd);
        return -1;
    }
    e->embd = embd;
    return 0;
}

/* Decodes and encodes an image; a video is sampled once for all of its
 * frames the conversation uses. */
static int ensure_encoded(g3_session *s, image_entry *e, g3_error *err) {
    if (e->embd) return 0;
    if (e->type == G3_PART_IMAGE) {
        g3_image img;
        if (g3_image_load(e->path, &s->limits, &img, err)) return -1;
        int rc = encode_pixels(s, &img, e, err);
        g3_image_free(&img);
        return rc;
    }
    g3_video_frame *frames;
    uint32_t n;
    if (g3_video_sample(e->path, e->n_frames, &s->limits, &frames, &n, err)) return -1;
    int rc = 0;
    for (size_t i = 0; rc == 0 && i < s->n_images; i++) {
        image_entry *o = &s->images[i];
        if (o->type == G3_PART_VIDEO_FRAME && !o->embd && o->n_frames == e->n_frames && !strcmp(o->path, e->path)) {
            if (o->frame >= n) rc = g3_fail(err, "'%s' gave %u frames, frame %u was asked for", o->path, n, o->frame + 1);
            else rc = encode_pixels(s, &frames[o->frame].image, o, err);
        }
    }
    g3_video_frames_free(frames, n);
    return rc;
}

g3_conversation *g3_session_conversation(g3_session *s) { return &s->conv; }
uint32_t g3_session_n_ctx(const g3_session *s) { return g3_context_n_ctx(s->ctx); }
const g3_model_record *g3_session_model_record(const g3_session *s) { return &s->record; }
const float *g3_session_logits(const g3_session *s) { return s->logits; }
const g3_tokenizer *g3_session_tokenizer(const g3_session *s) { return s->tok; }

/* Rolls the cache back to n_keep tokens; back to empty when the sliding
 * window no longer holds what a rollback needs (the same buffers: a second
 * cache is never allocated beside the first). */
static int rollback(g3_session *s, size_t n_keep, g3_error *err) {
    if (n_keep < s->n_kv_ids && g3_context_truncate(s->ctx, (uint32_t)n_keep, err)) {
        n_keep = 0;
        if (g3_context_truncate(s->ctx, 0, err)) return -1; /* cannot fail: kept for the contract */
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

/* Evaluates ids[from..n): token runs as tokens, each image's run of its
 * negative id as its soft tokens in one bidirectional batch. */
static int eval_runs(g3_session *s, const int32_t *ids, size_t from, size_t n, g3_error *err) {
    for (size_t i = from; i < n;) {
        size_t j = i + 1;
        while (j < n && (ids[i] >= 0 ? ids[j] >= 0 : ids[j] == ids[i])) j++;
        if (ids[i] >= 0) {
            if (eval_append(s, ids + i, j - i, err)) return -1;
        } else {
            const image_entry *e = &s->images[-ids[i] - 1];
            if (g3_eval_embeddings(s->ctx, e->embd, (uint32_t)(j - i), true, NULL, false, err)) return -1;
            memcpy(s->kv_ids + s->n_kv_ids, ids + i, (j - i) * sizeof *ids);
            s->n_kv_ids += j - i;
        }
        i = j;
    }
    return 0;
}

/* The first position to evaluate when the cache keeps `common` tokens: an
 * image is evaluated whole, so never resume inside one. */
static size_t image_start(const int32_t *ids, size_t common) {
    while (common > 0 && ids[common] < 0 && ids[common - 1] == ids[common]) common--;
    return common;
}

/* Makes the cache hold exactly `ids` and the logits follow its last token. */
static int sync_prompt(g3_session *s, const int32_t *ids, size_t n, g3_gen_stats *st, g3_error *err) {
    size_t common = 0;
    while (common < n && common < s->n_kv_ids && ids[common] == s->kv_ids[common]) common++;
    if (common == n) common--; /* the last token is evaluated again for its logits */
    common = image_start(ids, common);
    const double t_enc = now_s();
    for (size_t i = common; i < n; i++) { /* encode first: a bad image must not cost the cache */
        if (ids[i] >= 0 || s->images[-ids[i] - 1].embd) continue;
        if (ensure_encoded(s, &s->images[-ids[i] - 1], err)) return -1;
        st->n_encoded++;
    }
    st->encode_s = now_s() - t_enc;
    double t0 = now_s();
    /* a rollback the sliding window cannot do restarts from 0 */
    if (rollback(s, common, err) || rollback(s, image_start(ids, s->n_kv_ids), err)) return -1;
    common = s->n_kv_ids;
    if (eval_runs(s, ids, common, n, err)) return -1;
    st->n_reused = (uint32_t)common;
    st->n_prefill = (uint32_t)(n - common);
    st->prefill_s = now_s() - t0;
    return 0;
}

/* Room kept for the answer when choosing which turns stay in the prompt:
 * min(max_new, n_ctx / 4). Keeping all of max_new (700 by default, sized
 * for an 8K context) would, in a small context, push the earlier turns out
 * for an answer that is usually far shorter; a quarter of the context
 * leaves at least three quarters to the conversation. An answer that runs
 * past its reserve goes on while the context has room and then stops
 * ("context_full"); the next message makes room by dropping old turns. */
static size_t answer_reserve(size_t n_ctx, uint32_t max_new) {
    return max_new < n_ctx / 4 ? max_new : n_ctx / 4;
}

/* Renders the conversation, leaving out the oldest turn pairs while the
 * prompt plus the answer's reserve would not fit. */
static int render_fitting(g3_session *s, uint32_t max_new, int32_t **ids, size_t *n, uint32_t *n_dropped,
                          g3_error *err) {
    const size_t n_ctx = g3_context_n_ctx(s->ctx), reserve = answer_reserve(n_ctx, max_new);
    g3_render_images img = {.wrap = s->wrap, .image_id = image_id, .user = s};
    if (s->vision) img.n_tokens = g3_vision_n_tokens(s->vision);
    for (size_t first = 0;; first += 2) {
        if (g3_chat_render_from(s->tok, &s->conv, first, true, s->vision ? &img : NULL, ids, n, err)) return -1;
        *n_dropped = (uint32_t)first;
        if (*n + reserve <= n_ctx || first + 2 >= s->conv.n_turns) break;
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

/* Renders the conversation (its last turn: the user's new message), brings
 * the cache up to date, generates and commits the answer. On failure the
 * user turn is taken back: the conversation is as it was. */
static int respond(g3_session *s, const g3_gen_params *gp, g3_on_text on_text, void *user, volatile int *cancel,
                   g3_gen_stats *stats, g3_error *err) {
    g3_gen_stats st = {0};
    int32_t *prompt = NULL, *gen = NULL;
    size_t n_prompt = 0, n_gen = 0;
    text_out o = {.stop = gp->stop, .on_text = on_text, .user = user};
    if (render_fitting(s, gp->max_new_tokens, &prompt, &n_prompt, &st.n_dropped_turns, err) ||
        sync_prompt(s, prompt, n_prompt, &st, err) ||
        generate(s, gp, &o, cancel, &gen, &n_gen, &st, err))
        goto fail;
    /* keep the ids only when they are exactly the text (no stop-string cut) */
    if (g3_conversation_add(&s->conv, G3_ROLE_MODEL, o.text ? o.text : "", o.stopped_by_string ? NULL : gen,
                            n_gen, err))
        goto fail;
    s->conv.model = s->record; /* its latest answer is this model's */
    free(prompt);
    free(gen);
    free(o.text);
    if (stats) *stats = st;
    return 0;
fail:
    g3_conversation_pop(&s->conv);
    free(prompt);
    free(gen);
    free(o.text);
    return -1;
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
    if (check_turn(s, gp, err)) return -1;
    size_t n_images = 0;
    for (size_t i = 0; i < n_parts; i++) n_images += parts[i].type != G3_PART_TEXT;
    if (n_images && !s->vision)
        return g3_fail(err, "this message has images but no vision encoder is loaded: give --mmproj FILE "
                            "(Gemma 3 1B is text-only and has none)");
    if (n_images > s->limits.max_images)
        return g3_fail(err, "%zu images (or video frames) in one message; the limit is %u", n_images,
                       s->limits.max_images);
    if (g3_conversation_add_parts(&s->conv, parts, n_parts, err)) return -1;
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
        if (t->role != G3_ROLE_MODEL || !t->n_ids || ids_spell(s->tok, t->ids, t->n_ids, t->text)) continue;
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

/* "Frame 1.50:" before each frame, as the original demo wrote it. */
int g3_video_parts(const char *path, uint32_t n_frames, g3_part **parts, size_t *n_parts, g3_error *err) {
    g3_media_limits lim = g3_media_limits_default();
    g3_video_frame *frames;
    uint32_t n;
    *parts = NULL;
    *n_parts = 0;
    if (g3_video_sample(path, n_frames, &lim, &frames, &n, err)) return -1;
    g3_part *p = calloc(2 * (size_t)n + 1, sizeof *p);
    int rc = p ? 0 : g3_fail(err, "out of memory");
    for (uint32_t i = 0; rc == 0 && i < n; i++) {
        char label[48];
        snprintf(label, sizeof label, "Frame %.2f:", frames[i].seconds);
        p[2 * i] = (g3_part){.type = G3_PART_TEXT, .text = strdup(label)};
        p[2 * i + 1] = (g3_part){.type = G3_PART_VIDEO_FRAME, .path = strdup(path), .seconds = frames[i].seconds,
                                 .frame = i, .n_frames = n};
        if (!p[2 * i].text || !p[2 * i + 1].path) rc = g3_fail(err, "out of memory");
    }
    g3_video_frames_free(frames, n);
    if (rc) {
        g3_parts_free(p, 2 * (size_t)n);
        return -1;
    }
    *parts = p;
    *n_parts = 2 * (size_t)n;
    return 0;
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
