/* engine.c: requests, slots and the scheduler (see gemma3_engine.h).
 *
 * A slot is one sequence of the engine's context plus the ids its cache
 * holds (kv_ids; an image's soft tokens appear as its negative id, one per
 * position). A request is admitted to a free slot, the one whose kv_ids
 * share the longest prefix with the request's rendered prompt, counting
 * only slots whose cache is at least half that prefix (ties and misses:
 * the least recently used); the slot's cache is rolled back to
 * that prefix and the rest is prefilled, one chunk of at most n_ubatch
 * positions per scheduler step, so slots already answering keep streaming.
 * Each step then samples the next token of every answering slot and
 * evaluates all of them as one batched forward pass (g3_decode_batch).
 *
 * A conversation sent back as text (the OpenAI API's way) is rendered from
 * the text: an earlier answer is tokenized again, as a cold server would,
 * so the answer never depends on what the cache held. Where that spelling
 * differs from the ids the answer was generated as, the reuse stops there
 * and the rest is prefilled. Model turns that carry their ids (the
 * terminal chat's conversations) are rendered with them. */
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "base/error.h"
#include "chat/prompt.h"
#include "chat/text_stream.h"
#include "gemma3_engine.h"
#include "gemma3_media.h"
#include "gemma3_plan.h"
#include "gemma3_vision.h"
#include "text/sampler.h"

#define DEFAULT_CTX 8192u
#define MAX_CTX_FACTOR 4u
#define DEFAULT_MAX_QUEUE 64u
#define MAX_IMAGES 256u  /* remembered image identities */

typedef struct image_entry {
    uint64_t key;     /* FNV-1a of the bytes, or of the path (+ frame) */
    g3_part_type type;
    int32_t id;       /* negative, never reused */
    float *embd;      /* n_tokens x n_embd once encoded, NULL before */
    uint64_t used;
} image_entry;

typedef enum job_phase { JOB_QUEUED, JOB_PREFILL, JOB_ANSWER } job_phase;

typedef struct job job;
typedef struct slot {
    uint32_t seq;
    int32_t *kv_ids;  /* n_ctx capacity */
    size_t n_kv_ids;
    float *logits;    /* n_vocab: after the last kv id, when fresh */
    uint64_t used;
    job *job;
} slot;

struct job {
    job *next;
    g3_conversation conv;
    bool raw;
    g3_gen_params gen;
    char **stop;      /* copies, NULL-terminated */
    g3_request_callbacks cb;
    atomic_bool *cancel;
    double t_submit, t_start, t_prefill, t_answer;
    job_phase phase;
    slot *slot;
    int32_t *prompt;
    size_t n_prompt;
    g3_sampler *sampler;
    g3_detokenizer detok;
    g3_text_stream out;
    int32_t *gen_ids;
    size_t n_gen;
    bool fresh;       /* the slot's logits follow the last evaluated token */
    int32_t pending;  /* sampled, to be evaluated in this step's batch; -1 none */
    g3_gen_result res;
};

struct g3_engine {
    g3_model *model;
    g3_vision *vision;
    bool owns_model;   /* opened here (g3_engine_open), else the caller's */
    g3_tokenizer *tok;
    g3_context *ctx;
    g3_image_wrap wrap;
    g3_media_limits limits;
    uint32_t n_ctx, n_ubatch, n_vocab;
    int32_t eot, eos;
    char name[256];
    slot *slots;
    uint32_t n_slots;
    image_entry images[MAX_IMAGES];
    uint32_t n_images;
    int32_t next_image_id;
    uint64_t tick;
    uint32_t prefill_turn; /* round robin over prefilling slots */
    /* batch buffers: one row per slot */
    uint32_t *batch_seq;
    int32_t *batch_tok;
    job **batch_job;
    float *batch_logits;
    /* shared with other threads: the queue, the metrics, shutdown */
    pthread_mutex_t mu;
    pthread_cond_t cv;
    job *queue_head, *queue_tail;
    uint32_t n_queued, max_queue;
    atomic_bool shutdown;
    g3_engine_metrics m;
    /* g3_engine_generate's copy of the result */
    char *last_text;
    int32_t *last_ids;
};

static double now_s(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return ts.tv_sec + ts.tv_nsec * 1e-9;
}

static uint64_t fnv1a(uint64_t h, const void *data, size_t n) {
    const unsigned char *p = data;
    for (size_t i = 0; i < n; i++) h = (h ^ p[i]) * 0x100000001b3ull;
    return h;
}

const char *g3_stop_reason_name(g3_stop_reason r) {
    static const char *const names[] = {"none", "end_of_turn", "eos", "stop_string", "max_tokens",
                                        "context_full", "cancelled", "error"};
    return (unsigned)r < sizeof names / sizeof names[0] ? names[r] : "unknown";
}

/* ---- opening ------------------------------------------------------------ */

static int plan_and_check(const g3_engine_params *p, g3_context_params *cp, g3_engine_open_info *info,
                          g3_error *err) {
    g3_plan plan;
    g3_plan_params pp = {.n_ctx = cp->n_ctx ? cp->n_ctx : DEFAULT_CTX, .n_ubatch = cp->n_ubatch,
                         .kv_type = cp->kv_type, .n_parallel = cp->n_seq};
    if (g3_plan_file(p->model_path, p->mmproj_path, &pp, &plan, err)) {
        info->failure = G3_OPEN_BAD_FILE;
        return -1;
    }
    const uint32_t trained = plan.n_ctx_train;
    info->n_ctx_train = trained;
    if (!cp->n_ctx && trained && pp.n_ctx > trained) { /* the default, capped by the model */
        pp.n_ctx = trained;
        if (g3_plan_file(p->model_path, p->mmproj_path, &pp, &plan, err)) {
            info->failure = G3_OPEN_BAD_FILE;
            return -1;
        }
    }
    cp->n_ctx = info->n_ctx = pp.n_ctx;
    if (trained && (uint64_t)pp.n_ctx > (uint64_t)MAX_CTX_FACTOR * trained) {
        info->failure = G3_OPEN_CTX_TOO_LONG;
        return g3_fail(err,
                       "a context of %u positions is more than %u times the model's trained length (%u): "
                       "positions that far are meaningless to it",
                       pp.n_ctx, MAX_CTX_FACTOR, trained);
    }
    info->ctx_above_train = trained && pp.n_ctx > trained;
    info->plan_bytes = plan.total_bytes;
    uint64_t avail;
    g3_error ignored;
    if (g3_plan_mem_available(&avail, &ignored)) return 0; /* nothing to compare with */
    info->available_bytes = avail;
    if (!cp->skip_memory_check && g3_plan_check_fit(&plan, avail, err)) {
        info->failure = G3_OPEN_NO_MEMORY;
        g3_plan_file_max_ctx(p->model_path, p->mmproj_path, &pp, avail, pp.n_ctx, &info->longest_ctx, &ignored);
        return -1;
    }
    return 0;
}

static void set_name(g3_engine *e, const char *path) {
    const char *base = strrchr(path, '/');
    base = base ? base + 1 : path;
    snprintf(e->name, sizeof e->name, "%s", base);
    size_t n = strlen(e->name);
    if (n > 5 && !strcmp(e->name + n - 5, ".gguf")) e->name[n - 5] = 0;
}

static int alloc_slots(g3_engine *e, g3_error *err) {
    e->slots = calloc(e->n_slots, sizeof *e->slots);
    e->batch_seq = malloc(sizeof *e->batch_seq * e->n_slots);
    e->batch_tok = malloc(sizeof *e->batch_tok * e->n_slots);
    e->batch_job = malloc(sizeof *e->batch_job * e->n_slots);
    e->batch_logits = malloc(sizeof(float) * e->n_vocab * e->n_slots);
    if (!e->slots || !e->batch_seq || !e->batch_tok || !e->batch_job || !e->batch_logits)
        return g3_fail(err, "out of memory");
    for (uint32_t i = 0; i < e->n_slots; i++) {
        e->slots[i].seq = i;
        e->slots[i].kv_ids = malloc(sizeof(int32_t) * e->n_ctx);
        e->slots[i].logits = malloc(sizeof(float) * e->n_vocab);
        if (!e->slots[i].kv_ids || !e->slots[i].logits) return g3_fail(err, "out of memory");
    }
    return 0;
}

int g3_engine_new(g3_model *model, const g3_context_params *cp, uint32_t n_slots, uint32_t max_queue,
                  g3_engine **out, g3_error *err) {
    *out = NULL;
    g3_engine *e = calloc(1, sizeof *e);
    if (!e) return g3_fail(err, "out of memory");
    pthread_mutex_init(&e->mu, NULL);
    pthread_cond_init(&e->cv, NULL);
    atomic_init(&e->shutdown, false);
    e->model = model;
    e->limits = g3_media_limits_default();
    e->max_queue = max_queue ? max_queue : DEFAULT_MAX_QUEUE;
    e->next_image_id = -1;
    g3_context_params p = cp ? *cp : (g3_context_params){0};
    p.n_seq = n_slots ? n_slots : 1;
    e->n_slots = p.n_seq;
    if (g3_tokenizer_from_model(model, &e->tok, err) || g3_context_new(model, &p, &e->ctx, err)) goto fail;
    e->n_ctx = g3_context_n_ctx(e->ctx);
    e->n_ubatch = g3_context_n_ubatch(e->ctx);
    e->n_vocab = g3_model_config(model)->n_vocab;
    e->eot = g3_tokenizer_find(e->tok, "<end_of_turn>");
    e->eos = g3_tokenizer_eos(e->tok);
    if (alloc_slots(e, err)) goto fail;
    snprintf(e->name, sizeof e->name, "gemma3");
    *out = e;
    return 0;
fail:
    g3_engine_free(e);
    return -1;
}

int g3_engine_set_vision(g3_engine *e, g3_vision *vision, g3_image_wrap wrap, g3_error *err) {
    if (vision && g3_vision_check_model(vision, e->model, err)) return -1;
    if (e->owns_model) g3_vision_free(e->vision);
    e->vision = vision;
    e->wrap = wrap;
    return 0;
}

const float *g3_engine_slot_logits(const g3_engine *e, uint32_t i) {
    return i < e->n_slots ? e->slots[i].logits : NULL;
}

int g3_engine_open(const g3_engine_params *p, g3_engine **out, g3_engine_open_info *info, g3_error *err) {
    *out = NULL;
    g3_engine_open_info local;
    if (!info) info = &local;
    memset(info, 0, sizeof *info);
    g3_context_params cp = p->cp;
    cp.n_seq = p->n_slots ? p->n_slots : 1;
    if (plan_and_check(p, &cp, info, err)) return -1;
    g3_model *model = NULL;
    g3_vision *vision = NULL;
    g3_engine *e = NULL;
    if (g3_model_load(p->model_path, &model, err)) goto fail;
    if (p->mmproj_path) {
        g3_vision_params vp = {.n_threads = cp.n_threads};
        if (g3_vision_load(p->mmproj_path, &vp, &vision, err)) goto fail;
    }
    if (g3_engine_new(model, &cp, cp.n_seq, p->max_queue, &e, err)) goto fail;
    e->owns_model = true; /* from here on, g3_engine_free frees them */
    if (g3_engine_set_vision(e, vision, p->wrap, err)) {
        g3_vision_free(vision);
        vision = NULL;
        model = NULL;
        goto fail;
    }
    set_name(e, p->model_path);
    *out = e;
    return 0;
fail:
    if (info->failure == G3_OPEN_OK) info->failure = G3_OPEN_BAD_FILE;
    if (e) g3_engine_free(e); /* frees the model once it owns it */
    else g3_model_free(model);
    g3_vision_free(vision);
    return -1;
}

static void job_free(job *j) {
    if (!j) return;
    g3_conversation_free(&j->conv);
    for (size_t i = 0; j->stop && j->stop[i]; i++) free(j->stop[i]);
    free(j->stop);
    free(j->prompt);
    g3_sampler_free(j->sampler);
    g3_text_stream_free(&j->out);
    free(j->gen_ids);
    free(j);
}

void g3_engine_free(g3_engine *e) {
    if (!e) return;
    for (job *j = e->queue_head, *next; j; j = next) {
        next = j->next;
        job_free(j);
    }
    for (uint32_t i = 0; e->slots && i < e->n_slots; i++) {
        job_free(e->slots[i].job);
        free(e->slots[i].kv_ids);
        free(e->slots[i].logits);
    }
    free(e->slots);
    for (uint32_t i = 0; i < e->n_images; i++) free(e->images[i].embd);
    free(e->batch_seq);
    free(e->batch_tok);
    free(e->batch_job);
    free(e->batch_logits);
    free(e->last_text);
    free(e->last_ids);
    g3_context_free(e->ctx);
    g3_tokenizer_free(e->tok);
    if (e->owns_model) {
        g3_vision_free(e->vision);
        g3_model_free(e->model);
    }
    pthread_mutex_destroy(&e->mu);
    pthread_cond_destroy(&e->cv);
    free(e);
}

const g3_model *g3_engine_model(const g3_engine *e) { return e->model; }
const g3_tokenizer *g3_engine_tokenizer(const g3_engine *e) { return e->tok; }
const char *g3_engine_model_name(const g3_engine *e) { return e->name; }
uint32_t g3_engine_n_ctx(const g3_engine *e) { return e->n_ctx; }
uint32_t g3_engine_n_slots(const g3_engine *e) { return e->n_slots; }
bool g3_engine_has_vision(const g3_engine *e) { return e->vision != NULL; }
uint32_t g3_engine_image_tokens(const g3_engine *e) { return e->vision ? g3_vision_n_tokens(e->vision) : 0; }

/* ---- submitting --------------------------------------------------------- */

static int check_request(const g3_engine *e, const g3_request *r, g3_error *err) {
    if (!r->conv || r->conv->n_turns == 0 || r->conv->n_turns % 2 == 0)
        return g3_fail(err, "the conversation must end with a user message");
    if (g3_sampler_params_check(&r->gen.sampler, err)) return -1;
    if (r->gen.max_new_tokens == 0) return g3_fail(err, "the answer must be allowed at least one token");
    const g3_turn *last = &r->conv->turns[r->conv->n_turns - 1];
    size_t n_images = 0;
    for (size_t i = 0; i < last->n_parts; i++) n_images += last->parts[i].type != G3_PART_TEXT;
    for (size_t t = 0; t < r->conv->n_turns; t++)
        for (size_t i = 0; i < r->conv->turns[t].n_parts; i++)
            if (r->conv->turns[t].parts[i].type != G3_PART_TEXT && !e->vision)
                return g3_fail(err, "the conversation has images but no vision encoder is loaded (Gemma 3 1B and "
                                    "270M are text-only)");
    if (n_images > e->limits.max_images)
        return g3_fail(err, "%zu images (or video frames) in one message; the limit is %u", n_images,
                       e->limits.max_images);
    return 0;
}

static int copy_conversation(g3_conversation *dst, const g3_conversation *src, g3_error *err) {
    g3_conversation_init(dst);
    if (src->system && g3_conversation_set_system(dst, src->system, err)) return -1;
    for (size_t i = 0; i < src->n_turns; i++) {
        const g3_turn *t = &src->turns[i];
        int rc = t->n_parts ? g3_conversation_add_parts(dst, t->parts, t->n_parts, err)
                            : g3_conversation_add(dst, t->role, t->text, t->ids, t->n_ids, err);
        if (rc) return -1;
    }
    return 0;
}

static job *job_new(const g3_request *r, g3_error *err) {
    job *j = calloc(1, sizeof *j);
    if (!j) return g3_fail(err, "out of memory"), NULL;
    j->pending = -1;
    j->raw = r->raw;
    j->gen = r->gen;
    j->cb = r->cb;
    j->cancel = r->cancel;
    size_t n_stop = 0;
    while (r->gen.stop && r->gen.stop[n_stop]) n_stop++;
    j->stop = calloc(n_stop + 1, sizeof *j->stop);
    bool ok = j->stop != NULL;
    for (size_t i = 0; ok && i < n_stop; i++) ok = (j->stop[i] = strdup(r->gen.stop[i])) != NULL;
    if (!ok) {
        job_free(j);
        return g3_fail(err, "out of memory"), NULL;
    }
    j->gen.stop = (const char *const *)j->stop;
    if (copy_conversation(&j->conv, r->conv, err)) {
        job_free(j);
        return NULL;
    }
    j->t_submit = now_s();
    return j;
}

int g3_engine_submit(g3_engine *e, const g3_request *r, bool *queue_full, g3_error *err) {
    if (queue_full) *queue_full = false;
    if (check_request(e, r, err)) return -1;
    job *j = job_new(r, err);
    if (!j) return -1;
    pthread_mutex_lock(&e->mu);
    /* under the lock: a request queued after the loop's last look at the
     * queue would wait forever */
    if (atomic_load(&e->shutdown)) {
        pthread_mutex_unlock(&e->mu);
        job_free(j);
        return g3_fail(err, "the engine is shutting down");
    }
    if (e->n_queued >= e->max_queue) {
        pthread_mutex_unlock(&e->mu);
        job_free(j);
        if (queue_full) *queue_full = true;
        return g3_fail(err, "%u requests are already waiting; try again shortly", e->max_queue);
    }
    if (e->queue_tail) e->queue_tail->next = j;
    else e->queue_head = j;
    e->queue_tail = j;
    e->n_queued++;
    e->m.queue_length = e->n_queued;
    pthread_cond_signal(&e->cv);
    pthread_mutex_unlock(&e->mu);
    return 0;
}

static job *queue_pop(g3_engine *e) {
    pthread_mutex_lock(&e->mu);
    job *j = e->queue_head;
    if (j) {
        e->queue_head = j->next;
        if (!e->queue_head) e->queue_tail = NULL;
        j->next = NULL;
        e->n_queued--;
        e->m.queue_length = e->n_queued;
    }
    pthread_mutex_unlock(&e->mu);
    return j;
}

/* ---- finishing ---------------------------------------------------------- */

/* Ends a job: fills the result, calls on_done, frees the slot (which keeps
 * its cache for the next request that shares its prefix). */
static void finish(g3_engine *e, job *j, g3_stop_reason stop) {
    g3_gen_result *res = &j->res;
    if (j->phase == JOB_ANSWER && stop != G3_STOP_ERROR && !j->out.stopped_by_string) {
        char piece[256];
        int len = g3_detokenizer_flush(&j->detok, piece, sizeof piece);
        if (len > 0) g3_text_stream_append(&j->out, piece, (size_t)len, NULL);
        g3_text_stream_update(&j->out, true);
    }
    const double t = now_s();
    res->stop = stop;
    res->text = j->out.text ? j->out.text : "";
    res->text_len = j->out.len;
    /* the ids only when they are exactly the text */
    const bool ids_are_text = !j->out.stopped_by_string && !j->out.dropped_nul;
    res->ids = ids_are_text ? j->gen_ids : NULL;
    res->n_ids = ids_are_text ? j->n_gen : 0;
    res->n_generated = (uint32_t)j->n_gen;
    res->queue_s = (j->t_start ? j->t_start : t) - j->t_submit;
    if (j->t_prefill) res->prefill_s = (j->t_answer ? j->t_answer : t) - j->t_prefill;
    if (j->t_answer) res->generate_s = t - j->t_answer;
    if (j->slot) {
        j->slot->job = NULL;
        j->slot->used = ++e->tick;
    }
    pthread_mutex_lock(&e->mu);
    if (stop == G3_STOP_ERROR) e->m.requests_failed++;
    else if (stop == G3_STOP_CANCELLED) e->m.requests_cancelled++;
    else e->m.requests_done++;
    e->m.prompt_tokens += res->n_prompt;
    e->m.cached_tokens += res->n_cached;
    e->m.generated_tokens += res->n_generated;
    e->m.prefill_s += res->prefill_s;
    e->m.decode_s += res->generate_s;
    if (j->slot && e->m.busy_slots) e->m.busy_slots--;
    pthread_mutex_unlock(&e->mu);
    if (j->cb.on_done) j->cb.on_done(res, j->cb.user);
    job_free(j);
}

static void fail_job(g3_engine *e, job *j, g3_error_kind kind, const g3_error *err) {
    j->res.err = *err;
    j->res.error_kind = kind;
    finish(e, j, G3_STOP_ERROR);
}

static bool cancelled(const job *j) {
    return (j->cancel && atomic_load(j->cancel)) || j->out.stopped_by_callback;
}

/* ---- images ------------------------------------------------------------- */

static uint64_t part_key(const g3_part *p) {
    uint64_t h = 0xcbf29ce484222325ull;
    h = fnv1a(h, &p->type, sizeof p->type);
    if (p->data) h = fnv1a(fnv1a(h, "b", 1), p->data, p->data_len);
    else h = fnv1a(fnv1a(h, "p", 1), p->path, strlen(p->path));
    if (p->type == G3_PART_VIDEO_FRAME) {
        h = fnv1a(h, &p->frame, sizeof p->frame);
        h = fnv1a(h, &p->n_frames, sizeof p->n_frames);
    }
    return h;
}

static image_entry *image_by_id(g3_engine *e, int32_t id) {
    for (uint32_t i = 0; i < e->n_images; i++)
        if (e->images[i].id == id) return &e->images[i];
    return NULL;
}

/* The identity of an image: the same bytes (or file and frame) get the same
 * negative id for as long as the engine remembers them. When the table is
 * full, the least recently used entry is forgotten (a cache holding its id
 * then simply stops matching: the id is never given out again). */
static int32_t image_id(void *user, const g3_part *p, g3_error *err) {
    g3_engine *e = user;
    const uint64_t key = part_key(p);
    for (uint32_t i = 0; i < e->n_images; i++)
        if (e->images[i].key == key && e->images[i].type == p->type) {
            e->images[i].used = ++e->tick;
            return e->images[i].id;
        }
    if (e->next_image_id == INT32_MIN) return g3_fail(err, "too many distinct images for one engine"), 0;
    image_entry *entry = e->n_images < MAX_IMAGES ? &e->images[e->n_images++] : NULL;
    if (!entry) {
        entry = &e->images[0];
        for (uint32_t i = 1; i < MAX_IMAGES; i++)
            if (e->images[i].used < entry->used) entry = &e->images[i];
        free(entry->embd);
    }
    *entry = (image_entry){.key = key, .type = p->type, .id = e->next_image_id--, .used = ++e->tick};
    return entry->id;
}

/* Decodes and encodes the image of a part (its entry must exist). */
static int encode_part(g3_engine *e, const g3_part *p, image_entry *entry, g3_error *err) {
    g3_image img;
    int rc;
    if (p->type == G3_PART_IMAGE) {
        rc = p->data ? g3_image_load_memory(p->data, p->data_len, &e->limits, &img, err)
                     : g3_image_load(p->path, &e->limits, &img, err);
        if (rc) return -1;
        rc = g3_image_soft_tokens(e->vision, &img, e->wrap, &entry->embd, err);
        g3_image_free(&img);
        return rc;
    }
    g3_video_frame *frames;
    uint32_t n;
    rc = p->data ? g3_video_sample_memory(p->data, p->data_len, p->n_frames, &e->limits, &frames, &n, err)
                 : g3_video_sample(p->path, p->n_frames, &e->limits, &frames, &n, err);
    if (rc) return -1;
    rc = p->frame < n ? g3_image_soft_tokens(e->vision, &frames[p->frame].image, e->wrap, &entry->embd, err)
                      : g3_fail(err, "'%s' gave %u frames, frame %u was asked for", p->path ? p->path : "the video", n,
                                p->frame + 1);
    g3_video_frames_free(frames, n);
    return rc;
}

/* Encodes every image of the conversation whose id appears in
 * prompt[from..n) and has no embedding yet. */
static int encode_needed(g3_engine *e, job *j, size_t from, g3_error *err) {
    for (size_t t = 0; t < j->conv.n_turns; t++)
        for (size_t i = 0; i < j->conv.turns[t].n_parts; i++) {
            const g3_part *p = &j->conv.turns[t].parts[i];
            if (p->type == G3_PART_TEXT) continue;
            image_entry *entry = NULL;
            const uint64_t key = part_key(p);
            for (uint32_t k = 0; k < e->n_images && !entry; k++)
                if (e->images[k].key == key && e->images[k].type == p->type) entry = &e->images[k];
            if (!entry || entry->embd) continue;
            bool needed = false;
            for (size_t k = from; k < j->n_prompt && !needed; k++) needed = j->prompt[k] == entry->id;
            if (!needed) continue;
            const double t0 = now_s();
            if (encode_part(e, p, entry, err)) return -1;
            j->res.encode_s += now_s() - t0;
            j->res.n_encoded++;
        }
    return 0;
}

/* ---- admitting ---------------------------------------------------------- */

/* Renders the conversation, leaving out the oldest user/model pairs while
 * the prompt and the room kept for the answer do not fit. The room kept is
 * the answer's budget, but at most a quarter of the context: a long budget
 * must not push out the whole conversation (the answer may still run on
 * until the context is full). */
static int render_fitting(g3_engine *e, job *j, g3_error *err) {
    const size_t n_ctx = e->n_ctx;
    const size_t reserve = j->gen.max_new_tokens < n_ctx / 4 ? j->gen.max_new_tokens : n_ctx / 4;
    if (j->raw) {
        const char *text = j->conv.turns[j->conv.n_turns - 1].text;
        if (g3_tokenize(e->tok, text, strlen(text), true, true, &j->prompt, &j->n_prompt, err)) return -1;
    } else {
        g3_render_images img = {.wrap = e->wrap, .image_id = image_id, .user = e};
        if (e->vision) img.n_tokens = g3_vision_n_tokens(e->vision);
        for (size_t first = 0;; first += 2) {
            if (g3_chat_render_from(e->tok, &j->conv, first, true, e->vision ? &img : NULL, &j->prompt, &j->n_prompt,
                                    err))
                return -1;
            if (j->n_prompt + reserve <= n_ctx || first + 2 >= j->conv.n_turns) break;
            free(j->prompt);
            j->prompt = NULL;
            j->res.dropped_turns += 2;
        }
    }
    if (j->n_prompt >= n_ctx)
        return g3_fail(err, "the message needs %zu tokens but the context holds %zu", j->n_prompt, n_ctx);
    return 0;
}

static size_t common_prefix(const slot *s, const int32_t *ids, size_t n) {
    size_t c = 0;
    while (c < n && c < s->n_kv_ids && ids[c] == s->kv_ids[c]) c++;
    return c;
}

/* An image is evaluated whole: never resume inside one. */
static size_t image_start(const int32_t *ids, size_t common) {
    while (common > 0 && ids[common] < 0 && ids[common - 1] == ids[common]) common--;
    return common;
}

static slot *pick_slot(g3_engine *e, const job *j) {
    slot *best = NULL;
    size_t best_common = 0;
    for (uint32_t i = 0; i < e->n_slots; i++) {
        slot *s = &e->slots[i];
        if (s->job) continue;
        /* A slot continues this request when at least half of what it holds
         * is the request's prefix. A shorter match (the template's first
         * tokens, a system prompt two conversations share) counts as a miss:
         * taking that slot would evict another conversation while the least
         * recently used one, or an empty one, may be free. */
        size_t c = common_prefix(s, j->prompt, j->n_prompt);
        if (2 * c < s->n_kv_ids) c = 0;
        if (!best || c > best_common || (c == best_common && s->used < best->used)) {
            best = s;
            best_common = c;
        }
    }
    return best;
}

/* Rolls the slot's cache back to n_keep ids; to empty when the sliding
 * window no longer holds what the rollback needs. */
static void rollback(g3_engine *e, slot *s, size_t n_keep) {
    g3_error ignored;
    if (n_keep < s->n_kv_ids && g3_context_truncate_seq(e->ctx, s->seq, (uint32_t)n_keep, &ignored)) {
        n_keep = 0;
        g3_context_truncate_seq(e->ctx, s->seq, 0, &ignored); /* always succeeds */
    }
    if (n_keep < s->n_kv_ids) s->n_kv_ids = n_keep;
}

static int start_answer(g3_engine *e, job *j, g3_error *err) {
    j->sampler = g3_sampler_new(&j->gen.sampler, e->n_vocab, err);
    j->gen_ids = malloc(sizeof *j->gen_ids * (j->gen.max_new_tokens + 1));
    if (!j->sampler || !j->gen_ids) return j->sampler ? g3_fail(err, "out of memory") : -1;
    g3_detokenizer_init(&j->detok, e->tok, true);
    j->out = (g3_text_stream){.stop = j->gen.stop, .on_text = j->cb.on_text, .user = j->cb.user};
    return 0;
}

/* Takes queued requests into free slots. A request that cannot start
 * (bad image, too long) ends here with its error; the slot stays free. */
static void admit(g3_engine *e) {
    for (;;) {
        bool free_slot = false;
        for (uint32_t i = 0; i < e->n_slots && !free_slot; i++) free_slot = !e->slots[i].job;
        if (!free_slot) return;
        job *j = queue_pop(e);
        if (!j) return;
        g3_error err = {0};
        j->t_start = now_s();
        if (cancelled(j)) {
            finish(e, j, G3_STOP_CANCELLED);
            continue;
        }
        if (render_fitting(e, j, &err)) {
            fail_job(e, j, G3_ERROR_REQUEST, &err);
            continue;
        }
        if (start_answer(e, j, &err)) {
            fail_job(e, j, G3_ERROR_ENGINE, &err);
            continue;
        }
        slot *s = pick_slot(e, j);
        size_t common = common_prefix(s, j->prompt, j->n_prompt);
        if (common == j->n_prompt) common--; /* the last token is evaluated again for its logits */
        common = image_start(j->prompt, common);
        if (encode_needed(e, j, common, &err)) { /* before the cache is touched */
            fail_job(e, j, G3_ERROR_REQUEST, &err);
            continue;
        }
        rollback(e, s, common);
        rollback(e, s, image_start(j->prompt, s->n_kv_ids));
        s->job = j;
        j->slot = s;
        j->phase = JOB_PREFILL;
        j->res.n_prompt = (uint32_t)j->n_prompt;
        j->res.n_cached = (uint32_t)s->n_kv_ids;
        j->t_prefill = now_s();
        pthread_mutex_lock(&e->mu);
        e->m.busy_slots++;
        pthread_mutex_unlock(&e->mu);
    }
}

/* ---- prefill ------------------------------------------------------------ */

/* Evaluates the next run of the prompt: up to n_ubatch tokens, or one whole
 * image. Returns -1 on failure (message in err). */
static int prefill_chunk(g3_engine *e, job *j, g3_error *err) {
    slot *s = j->slot;
    const int32_t *ids = j->prompt;
    const size_t i = s->n_kv_ids, n = j->n_prompt;
    size_t k = i + 1;
    while (k < n && k - i < e->n_ubatch && (ids[i] >= 0 ? ids[k] >= 0 : ids[k] == ids[i])) k++;
    const bool last = k == n;
    if (ids[i] >= 0) {
        if (g3_eval_seq(e->ctx, s->seq, ids + i, (uint32_t)(k - i), last ? s->logits : NULL, false, err)) return -1;
    } else {
        const image_entry *entry = image_by_id(e, ids[i]);
        if (!entry || !entry->embd) return g3_fail(err, "an image of the prompt was forgotten before it was read");
        if (g3_eval_embeddings_seq(e->ctx, s->seq, entry->embd, (uint32_t)(k - i), true, last ? s->logits : NULL,
                                   false, err))
            return -1;
    }
    memcpy(s->kv_ids + i, ids + i, (k - i) * sizeof *ids);
    s->n_kv_ids = k;
    if (last) {
        j->phase = JOB_ANSWER;
        j->fresh = true;
        j->t_answer = now_s();
    }
    return 0;
}

/* One chunk of one prefilling slot per step, taking turns. */
static bool prefill_step(g3_engine *e) {
    for (uint32_t k = 0; k < e->n_slots; k++) {
        const uint32_t i = (e->prefill_turn + k) % e->n_slots;
        job *j = e->slots[i].job;
        if (!j || j->phase != JOB_PREFILL) continue;
        e->prefill_turn = i + 1;
        if (cancelled(j)) {
            finish(e, j, G3_STOP_CANCELLED);
            return true;
        }
        g3_error err = {0};
        if (prefill_chunk(e, j, &err)) {
            /* what was evaluated may be half a run: the cache keeps only the ids recorded */
            g3_error ignored;
            if (g3_context_truncate_seq(e->ctx, j->slot->seq, (uint32_t)j->slot->n_kv_ids, &ignored)) {
                j->slot->n_kv_ids = 0;
                g3_context_truncate_seq(e->ctx, j->slot->seq, 0, &ignored);
            }
            fail_job(e, j, G3_ERROR_ENGINE, &err);
        }
        return true;
    }
    return false;
}

/* ---- answering ---------------------------------------------------------- */

/* Samples the next token of a job whose logits are fresh; ends the job or
 * leaves the token pending for the batch. */
static void sample_next(g3_engine *e, job *j) {
    slot *s = j->slot;
    j->fresh = false;
    if (cancelled(j)) return finish(e, j, G3_STOP_CANCELLED);
    const int32_t tok = g3_sampler_sample(j->sampler, s->logits, s->kv_ids, s->n_kv_ids);
    if (tok == e->eot) return finish(e, j, G3_STOP_END_OF_TURN);
    if (tok == e->eos) return finish(e, j, G3_STOP_EOS);
    j->gen_ids[j->n_gen++] = tok;
    char piece[256];
    const int len = g3_detokenizer_push(&j->detok, tok, piece, sizeof piece);
    g3_error err = {0};
    if (len > 0 && g3_text_stream_append(&j->out, piece, (size_t)len, &err))
        return fail_job(e, j, G3_ERROR_ENGINE, &err);
    g3_text_stream_update(&j->out, false);
    if (j->out.stopped_by_string) return finish(e, j, G3_STOP_STRING);
    if (j->out.stopped_by_callback) return finish(e, j, G3_STOP_CANCELLED);
    if (j->n_gen == j->gen.max_new_tokens) return finish(e, j, G3_STOP_MAX_TOKENS);
    if (s->n_kv_ids + 1 > e->n_ctx) return finish(e, j, G3_STOP_CONTEXT_FULL);
    j->pending = tok;
}

/* Samples every answering slot, then evaluates their tokens as one batch. */
static bool answer_step(g3_engine *e) {
    uint32_t n = 0;
    for (uint32_t i = 0; i < e->n_slots; i++) {
        job *j = e->slots[i].job;
        if (!j || j->phase != JOB_ANSWER || !j->fresh) continue;
        sample_next(e, j);
        if (e->slots[i].job != j || j->pending < 0) continue;
        e->batch_seq[n] = e->slots[i].seq;
        e->batch_tok[n] = j->pending;
        e->batch_job[n] = j;
        n++;
    }
    if (n == 0) return false;
    g3_error err = {0};
    /* n <= n_slots <= n_ubatch: g3_context_new made the batch that wide */
    if (g3_decode_batch(e->ctx, e->batch_seq, e->batch_tok, n, e->batch_logits, &err)) {
        for (uint32_t k = 0; k < n; k++) fail_job(e, e->batch_job[k], G3_ERROR_ENGINE, &err);
        return true;
    }
    pthread_mutex_lock(&e->mu);
    e->m.decode_steps++;
    e->m.decode_rows += n;
    pthread_mutex_unlock(&e->mu);
    for (uint32_t k = 0; k < n; k++) {
        job *j = e->batch_job[k];
        slot *s = j->slot;
        s->kv_ids[s->n_kv_ids++] = j->pending;
        memcpy(s->logits, e->batch_logits + (size_t)k * e->n_vocab, sizeof(float) * e->n_vocab);
        j->pending = -1;
        j->fresh = true;
    }
    return true;
}

/* One round of the scheduler; false when there was nothing to do. */
static bool engine_step(g3_engine *e) {
    admit(e);
    bool worked = prefill_step(e);
    worked |= answer_step(e);
    return worked;
}

static bool any_running(const g3_engine *e) {
    for (uint32_t i = 0; i < e->n_slots; i++)
        if (e->slots[i].job) return true;
    return false;
}

static void cancel_everything(g3_engine *e) {
    for (uint32_t i = 0; i < e->n_slots; i++)
        if (e->slots[i].job) finish(e, e->slots[i].job, G3_STOP_CANCELLED);
    for (job *j; (j = queue_pop(e));) finish(e, j, G3_STOP_CANCELLED);
}

void g3_engine_run(g3_engine *e) {
    while (!atomic_load(&e->shutdown)) {
        if (engine_step(e) || any_running(e)) continue;
        pthread_mutex_lock(&e->mu);
        while (!e->queue_head && !atomic_load(&e->shutdown)) pthread_cond_wait(&e->cv, &e->mu);
        pthread_mutex_unlock(&e->mu);
    }
    cancel_everything(e);
}

void g3_engine_shutdown(g3_engine *e) {
    /* the flag is set under the lock the idle loop waits with, so the
     * wake-up cannot fall between its check and its wait */
    pthread_mutex_lock(&e->mu);
    atomic_store(&e->shutdown, true);
    pthread_cond_broadcast(&e->cv);
    pthread_mutex_unlock(&e->mu);
}

/* ---- the single-threaded front end ------------------------------------ */

typedef struct generate_wait {
    g3_engine *e;
    g3_request_callbacks user_cb;
    g3_gen_result *result;
    bool done;
} generate_wait;

static bool generate_text(const char *text, size_t len, void *user) {
    generate_wait *w = user;
    return w->user_cb.on_text ? w->user_cb.on_text(text, len, w->user_cb.user) : true;
}

static void generate_done(const g3_gen_result *res, void *user) {
    generate_wait *w = user;
    g3_engine *e = w->e;
    *w->result = *res;
    free(e->last_text);
    free(e->last_ids);
    e->last_text = malloc(res->text_len + 1);
    e->last_ids = res->n_ids ? malloc(sizeof(int32_t) * res->n_ids) : NULL;
    if (e->last_text) {
        memcpy(e->last_text, res->text, res->text_len);
        e->last_text[res->text_len] = 0;
    }
    if (e->last_ids) memcpy(e->last_ids, res->ids, sizeof(int32_t) * res->n_ids);
    w->result->text = e->last_text ? e->last_text : "";
    w->result->text_len = e->last_text ? res->text_len : 0;
    w->result->ids = e->last_ids;
    w->result->n_ids = e->last_ids ? res->n_ids : 0;
    if (w->user_cb.on_done) w->user_cb.on_done(w->result, w->user_cb.user);
    w->done = true;
}

int g3_engine_generate(g3_engine *e, const g3_request *r, g3_gen_result *result, g3_error *err) {
    generate_wait w = {.e = e, .user_cb = r->cb, .result = result};
    g3_request mine = *r;
    mine.cb = (g3_request_callbacks){.on_text = generate_text, .on_done = generate_done, .user = &w};
    memset(result, 0, sizeof *result);
    if (g3_engine_submit(e, &mine, NULL, err)) return -1;
    while (!w.done) engine_step(e);
    if (result->stop == G3_STOP_ERROR) {
        *err = result->err;
        return -1;
    }
    return 0;
}

void g3_engine_get_metrics(g3_engine *e, g3_engine_metrics *m) {
    pthread_mutex_lock(&e->mu);
    *m = e->m;
    pthread_mutex_unlock(&e->mu);
}
