/* gemma3_engine.h: the engine every front end (terminal chat, run, the HTTP
 * server) drives.
 *
 * An engine owns one model (and its vision encoder), one context with
 * n_slots KV caches, and a queue of requests. A request is a conversation
 * (plain data: the system prompt and the turns, the last one the user's new
 * message) plus generation settings; the engine renders it with the Gemma 3
 * template, binds it to a slot (the one whose cache already holds the
 * longest prefix of it, else the least recently used), prefills what is new
 * in chunks, and decodes every busy slot's next token as one batched forward
 * pass per step (continuous batching: a request joins at the next step and
 * leaves when it ends). Text streams out through a callback as it is made.
 *
 * Threading: g3_engine_submit may be called from any thread; everything
 * else (the model, the slots, the callbacks) runs on the one thread that
 * calls g3_engine_run (the server's engine thread) or g3_engine_generate
 * (the terminal, which has no other thread). Callbacks must not block.
 *
 * Limits: a request's prompt must fit one slot's context; the oldest
 * user/model turn pairs are left out of the prompt while it does not (the
 * result says how many), and the answer gets the room the context has left.
 * Messages name no command-line flag: front ends add their own hints. */
#ifndef GEMMA3_ENGINE_H
#define GEMMA3_ENGINE_H

#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "gemma3.h"
#include "gemma3_chat.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef struct g3_engine g3_engine;

typedef struct g3_engine_params {
    const char *model_path;
    const char *mmproj_path;   /* NULL: text only (images are refused) */
    g3_context_params cp;      /* n_ctx (0: 8192 or the trained length if shorter), n_threads, kv_type, n_ubatch,
                                  skip_memory_check; n_seq is set from n_slots */
    uint32_t n_slots;          /* conversations kept in KV caches at once; 0 = 1 */
    uint32_t max_queue;        /* requests waiting for a slot before submit refuses; 0 = 64 */
    g3_image_wrap wrap;
} g3_engine_params;

/* Why opening failed, for the front end's hint. */
typedef enum g3_engine_open_failure {
    G3_OPEN_OK = 0,
    G3_OPEN_BAD_FILE,       /* model or mmproj missing, unreadable, not a Gemma 3 GGUF */
    G3_OPEN_CTX_TOO_LONG,   /* n_ctx more than 4x the trained length */
    G3_OPEN_NO_MEMORY       /* the memory plan does not fit: see longest_ctx */
} g3_engine_open_failure;

typedef struct g3_engine_open_info {
    g3_engine_open_failure failure;
    uint32_t n_ctx;          /* the context each slot got */
    uint32_t n_ctx_train;
    bool ctx_above_train;    /* n_ctx > trained length: answers may degrade past it (a warning) */
    uint32_t longest_ctx;    /* NO_MEMORY: the longest context that would fit (0: none) */
    uint64_t plan_bytes, available_bytes;
} g3_engine_open_info;

/* Plans the memory (weights + n_slots KV caches + scratch + vision) before
 * loading anything and refuses a plan above the memory available (unless
 * cp.skip_memory_check), then loads. info (may be NULL) says why it failed
 * or what was chosen. */
int g3_engine_open(const g3_engine_params *p, g3_engine **out, g3_engine_open_info *info, g3_error *err);
void g3_engine_free(g3_engine *e);

/* An engine over a model the caller loaded (and planned for) and keeps: the
 * terminal's way, which loads the model itself. The model, and a vision
 * encoder given by g3_engine_set_vision, must outlive the engine. */
int g3_engine_new(g3_model *model, const g3_context_params *cp, uint32_t n_slots, uint32_t max_queue,
                  g3_engine **out, g3_error *err);
/* Checks that the encoder fits the model; NULL removes it. */
int g3_engine_set_vision(g3_engine *e, struct g3_vision *vision, g3_image_wrap wrap, g3_error *err);
/* The distribution after the last token slot's cache holds (n_vocab). */
const float *g3_engine_slot_logits(const g3_engine *e, uint32_t slot);

const g3_model *g3_engine_model(const g3_engine *e);
const g3_tokenizer *g3_engine_tokenizer(const g3_engine *e);
const char *g3_engine_model_name(const g3_engine *e); /* general.name, else the file's base name */
uint32_t g3_engine_n_ctx(const g3_engine *e);         /* per slot */
uint32_t g3_engine_n_slots(const g3_engine *e);
bool g3_engine_has_vision(const g3_engine *e);
/* Prompt positions one image takes (its soft tokens, without the text
 * around it); 0 without a vision encoder. */
uint32_t g3_engine_image_tokens(const g3_engine *e);

/* ---- requests ----------------------------------------------------------- */

typedef enum g3_stop_reason {
    G3_STOP_NONE = 0,
    G3_STOP_END_OF_TURN,   /* <end_of_turn> */
    G3_STOP_EOS,           /* <eos> */
    G3_STOP_STRING,        /* one of the stop strings (cut from the text) */
    G3_STOP_MAX_TOKENS,    /* max_new_tokens reached */
    G3_STOP_CONTEXT_FULL,  /* the slot's context is full */
    G3_STOP_CANCELLED,     /* the cancel flag, a callback returning false, or shutdown */
    G3_STOP_ERROR          /* see the result's message */
} g3_stop_reason;

const char *g3_stop_reason_name(g3_stop_reason r); /* "end_of_turn", ... */

/* Whose fault an error is: the request's (an image that does not decode, a
 * prompt the context cannot hold: a 400 for a server) or the engine's. */
typedef enum g3_error_kind { G3_ERROR_ENGINE = 0, G3_ERROR_REQUEST = 1 } g3_error_kind;

typedef struct g3_gen_result {
    g3_stop_reason stop;
    g3_error err;               /* G3_STOP_ERROR: what went wrong */
    g3_error_kind error_kind;
    const char *text;           /* the whole answer (valid until on_done returns) */
    size_t text_len;
    const int32_t *ids;         /* its token ids (NULL when a stop string cut the text) */
    size_t n_ids;
    uint32_t n_prompt;          /* prompt tokens (images count their soft tokens) */
    uint32_t n_cached;          /* of them, already in the slot's cache */
    uint32_t n_generated;
    uint32_t n_encoded;         /* images and video frames encoded for this request */
    uint32_t dropped_turns;     /* earlier turns left out of the prompt to fit the context */
    double queue_s, encode_s, prefill_s, generate_s;
} g3_gen_result;

typedef struct g3_request_callbacks {
    /* A complete piece of UTF-8 text of the answer; return false to cancel. */
    bool (*on_text)(const char *text, size_t len, void *user);
    /* Exactly once per submitted request, last: the answer or the error. */
    void (*on_done)(const g3_gen_result *result, void *user);
    void *user;
} g3_request_callbacks;

typedef struct g3_request {
    const g3_conversation *conv;  /* copied by submit; ends with a user turn */
    bool raw;                     /* complete conv's last user text as raw text, no template (`run --raw`) */
    g3_gen_params gen;            /* stop strings copied by submit */
    g3_request_callbacks cb;
    atomic_bool *cancel;          /* may be NULL; polled between steps; must outlive the request */
} g3_request;

/* Queues a request (thread-safe). Fails at once, with nothing queued and no
 * callback called, on a bad request (sampler ranges, a conversation not
 * ending with a user turn, images without a vision encoder or above the
 * limit) or a full queue (*queue_full set, may be NULL). */
int g3_engine_submit(g3_engine *e, const g3_request *r, bool *queue_full, g3_error *err);

/* The engine thread's loop: serves requests until g3_engine_shutdown, then
 * cancels what is queued or running (each gets on_done with CANCELLED) and
 * returns. */
void g3_engine_run(g3_engine *e);
/* Thread-safe (not from a signal handler: it takes the engine's lock). */
void g3_engine_shutdown(g3_engine *e);

/* For a single-threaded front end: submits and runs the engine on the
 * calling thread until this request is done (its callbacks run here).
 * Returns 0 when the request ended without an error (result filled;
 * result->text and ids are valid until the next call), -1 with err set. */
int g3_engine_generate(g3_engine *e, const g3_request *r, g3_gen_result *result, g3_error *err);

/* ---- numbers for /metrics and status lines ------------------------------ */

typedef struct g3_engine_metrics {
    uint64_t requests_done, requests_failed, requests_cancelled;
    uint64_t prompt_tokens, cached_tokens, generated_tokens;
    double prefill_s, decode_s;       /* time spent: tokens / time = the tok/s */
    uint64_t decode_steps, decode_rows; /* batched decoding: rows / steps = the mean batch */
    uint32_t queue_length, busy_slots;
} g3_engine_metrics;

void g3_engine_get_metrics(g3_engine *e, g3_engine_metrics *m); /* thread-safe */

#ifdef __cplusplus
}
#endif

#endif
