/* gemma3_chat.h: conversations with a Gemma 3 model.
 *
 * A g3_session owns a model's context (KV cache), a tokenizer and one
 * conversation: a system prompt plus alternating user / model turns. Sending
 * a message renders the whole conversation with the Gemma 3 chat template,
 * compares it with the tokens the KV cache already holds, evaluates only what
 * is new (a follow-up question does not re-read the conversation), then
 * samples the answer, streaming text pieces through a callback. The answer
 * is committed to the conversation only when generation ends normally or is
 * cancelled; an error leaves the conversation as it was.
 *
 * Presets are the system prompts the CLI, the server and the web page share.
 */
#ifndef GEMMA3_CHAT_H
#define GEMMA3_CHAT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "gemma3.h"
#include "gemma3_text.h"

struct g3_vision;

#ifdef __cplusplus
extern "C" {
#endif

/* ---- presets ------------------------------------------------------------ */

typedef struct g3_preset {
    const char *key;   /* "general", "document", "visual", "tutor", "reviewer", "storyteller", "custom" */
    const char *name;  /* "General Assistant", ... */
    const char *system_prompt; /* "" for custom */
} g3_preset;

size_t g3_preset_count(void);
const g3_preset *g3_preset_at(size_t i);
/* By key or display name, case-insensitive; NULL if unknown. */
const g3_preset *g3_preset_find(const char *name);

/* ---- conversations ------------------------------------------------------ */

typedef enum g3_role { G3_ROLE_USER = 0, G3_ROLE_MODEL = 1 } g3_role;

/* A piece of a user message, in the order the user placed them. */
typedef enum g3_part_type {
    G3_PART_TEXT = 0,
    G3_PART_IMAGE = 1,      /* an image file */
    G3_PART_VIDEO_FRAME = 2 /* frame `frame` of `n_frames` sampled from a video (file or bytes) */
} g3_part_type;

/* An image or video frame is a path or the file's bytes (an upload), one of
 * them. A part owns its strings and bytes (g3_parts_free frees them), except
 * that the frames of one video given as bytes share one buffer: the first
 * frame part owns it, the later ones of the same array point at the same
 * bytes with shares_data set (not freed through them). Copies (add_parts,
 * the engine's) keep that sharing: one copy of a video per turn. */
typedef struct g3_part {
    g3_part_type type;
    char *text;       /* TEXT */
    char *path;       /* IMAGE, VIDEO_FRAME: the file (or NULL when given as bytes) */
    uint8_t *data;    /* IMAGE, VIDEO_FRAME given as bytes: the encoded file, data_len bytes */
    size_t data_len;
    bool shares_data; /* VIDEO_FRAME: data is an earlier part's of the same array (it frees it) */
    double seconds;   /* VIDEO_FRAME: its time in the clip */
    uint32_t frame, n_frames;
} g3_part;

typedef struct g3_turn {
    g3_role role;
    char *text;     /* UTF-8; with parts, the text parts joined (for display) */
    int32_t *ids;   /* model turns: the generated ids (reused as they are); else NULL */
    size_t n_ids;
    g3_part *parts; /* user turns with images: the message as parts; else NULL */
    size_t n_parts;
} g3_turn;

/* The model a conversation was made with, saved beside it: model-turn ids
 * are only meaningful in the vocabulary that produced them. */
typedef struct g3_model_record {
    char name[64];              /* "Gemma 3 270M"; "" = no record (files saved before it existed) */
    uint32_t n_vocab;
    uint64_t vocab_fingerprint; /* FNV-1a 64 over every token's bytes, in id order */
} g3_model_record;

/* The record of a model (its name from the shape, its vocabulary's size and
 * fingerprint), as sessions and the server stamp conversations. */
void g3_model_record_of(const g3_model *model, const g3_tokenizer *tok, g3_model_record *out);

typedef struct g3_conversation {
    char *system;   /* NULL or "" = none */
    g3_model_record model; /* kept by clear; sessions stamp their model's */
    g3_turn *turns; /* alternating, starting with a user turn */
    size_t n_turns;
    size_t cap;
} g3_conversation;

void g3_conversation_init(g3_conversation *c);
void g3_conversation_free(g3_conversation *c);
void g3_conversation_clear(g3_conversation *c); /* keeps the system prompt */
int g3_conversation_set_system(g3_conversation *c, const char *system, g3_error *err);
/* Appends a turn (roles must alternate, starting with user). ids may be NULL. */
int g3_conversation_add(g3_conversation *c, g3_role role, const char *text, const int32_t *ids,
                        size_t n_ids, g3_error *err);
/* Appends a user turn made of parts (copied). */
int g3_conversation_add_parts(g3_conversation *c, const g3_part *parts, size_t n_parts, g3_error *err);
/* Drops the last turn (e.g. to regenerate an answer). */
void g3_conversation_pop(g3_conversation *c);

/* JSON: {"format": "gemma-chat-conversation", "version": 1, "system": "...",
 *        "model": {"name": "...", "n_vocab": N, "vocab_fingerprint": "16 hex digits"}?,
 *        "turns": [{"role": "user"|"model", "text": "...", "ids": [...]?}]}.
 * "model" is optional (files from before it load as they are); a newer
 * "version" than 1 is refused rather than half-read.
 * Save writes PATH.tmp and renames it, so a failure never damages an
 * existing file. Load validates everything before replacing *c. */
int g3_conversation_save(const g3_conversation *c, const char *path, g3_error *err);
int g3_conversation_load(g3_conversation *c, const char *path, g3_error *err);
char *g3_conversation_to_json(const g3_conversation *c);            /* malloc'd */
int g3_conversation_from_json(g3_conversation *c, const char *json, g3_error *err);

/* Renders the conversation with the Gemma 3 template into token ids:
 * <bos><start_of_turn>user\n{system\n\n}{text}<end_of_turn>\n<start_of_turn>model\n...
 * Template tokens are inserted as ids; message text is tokenized without
 * special-token parsing (a user typing "<start_of_turn>" cannot open a turn).
 * With add_generation_prompt, ends with "<start_of_turn>model\n". */
int g3_chat_render(const g3_tokenizer *tok, const g3_conversation *c, bool add_generation_prompt,
                   int32_t **ids, size_t *n_ids, g3_error *err);

/* How images sit in the prompt. OFFICIAL (the product): the Gemma 3
 * processor's "\n\n<start_of_image>" + soft tokens + "<end_of_image>\n\n";
 * GOLDEN: llama.cpp's layout without the newlines (to reproduce the golden
 * data). */
typedef enum g3_image_wrap { G3_IMAGE_WRAP_OFFICIAL = 0, G3_IMAGE_WRAP_GOLDEN = 1 } g3_image_wrap;

struct g3_image;
/* The image's soft tokens: resized to the encoder's square (stretched as the
 * official processor does; padded, llama.cpp's way, for the GOLDEN wrap),
 * normalized and encoded: *out gets g3_vision_n_tokens x g3_vision_n_embd
 * floats (malloc'd), not scaled by sqrt(n_embd). */
int g3_image_soft_tokens(struct g3_vision *v, const struct g3_image *img, g3_image_wrap wrap, float **out,
                         g3_error *err);

/* ---- sessions ----------------------------------------------------------- */

typedef struct g3_session g3_session;

typedef struct g3_gen_params {
    g3_sampler_params sampler;
    uint32_t max_new_tokens;  /* default 700 */
    const char *const *stop;  /* extra stop strings, NULL-terminated list or NULL */
} g3_gen_params;

g3_gen_params g3_gen_defaults(void);

typedef struct g3_gen_stats {
    uint32_t n_prefill;   /* tokens evaluated for the prompt (new ones only) */
    uint32_t n_reused;    /* prompt tokens already in the KV cache */
    uint32_t n_generated;
    uint32_t n_encoded;   /* images and video frames run through the vision encoder for this turn */
    uint32_t n_dropped_turns; /* oldest turns left out of the prompt: they no longer fit the context */
    double encode_s, prefill_s, generate_s;
    const char *stop_reason; /* "end_of_turn", "eos", "stop_string", "max_tokens", "context_full", "cancelled" */
} g3_gen_stats;

/* Called with each complete piece of UTF-8 text; return false to stop. */
typedef bool (*g3_on_text)(const char *text, size_t len, void *user);

int g3_session_new(g3_model *model, const g3_context_params *cp, g3_session **out, g3_error *err);
void g3_session_free(g3_session *s);
g3_conversation *g3_session_conversation(g3_session *s);
/* The distribution (n_vocab logits) after the last token the cache holds. */
const float *g3_session_logits(const g3_session *s);
const g3_tokenizer *g3_session_tokenizer(const g3_session *s);
/* Sends a user message and generates the answer. `cancel` (may be NULL) is
 * polled between tokens: set it from a signal handler to stop early; the
 * partial answer is kept. */
int g3_session_send(g3_session *s, const char *user_text, const g3_gen_params *gp, g3_on_text on_text,
                    void *user, volatile int *cancel, g3_gen_stats *stats, g3_error *err);
/* Gives the session a vision encoder (owned by the caller, must outlive the
 * session); checks it fits the model. Without one, image parts are refused. */
int g3_session_set_vision(g3_session *s, struct g3_vision *vision, g3_image_wrap wrap, g3_error *err);
/* Like g3_session_send, for a message made of parts (text, images, video
 * frames). Images are decoded and encoded here, once; their soft tokens stay
 * in the KV cache, so later questions about them cost nothing. */
int g3_session_send_parts(g3_session *s, const g3_part *parts, size_t n_parts, const g3_gen_params *gp,
                          g3_on_text on_text, void *user, volatile int *cancel, g3_gen_stats *stats, g3_error *err);
/* Samples a video into n_frames parts: "Frame 1.50:" text + the frame, as the
 * original demo did. *parts is malloc'd (free with g3_parts_free). */
int g3_video_parts(const char *path, uint32_t n_frames, g3_part **parts, size_t *n_parts, g3_error *err);
/* The same from a video's bytes (copied: the first frame part owns the copy,
 * the others share it). name is for messages (NULL: "video"). */
int g3_video_parts_memory(const char *name, const void *data, size_t len, uint32_t n_frames, g3_part **parts,
                          size_t *n_parts, g3_error *err);
void g3_parts_free(g3_part *parts, size_t n);
/* Positions the session's context holds. */
uint32_t g3_session_n_ctx(const g3_session *s);
/* This session's model, as conversations record it. */
const g3_model_record *g3_session_model_record(const g3_session *s);

/* What g3_session_load found. */
typedef struct g3_load_report {
    g3_model_record saved; /* the file's record (name "" for files saved before records) */
    bool other_vocab;      /* the record names another vocabulary than the session's model */
    size_t n_reread;       /* model turns whose saved ids are not this model's tokens for their
                            * text: the ids were dropped and the text is tokenized again */
} g3_load_report;

/* Loads a saved conversation into the session, replacing its own. The
 * saved text is what counts: a model turn keeps its ids only when they are
 * in this model's vocabulary and spell exactly its text, else it is read
 * again from the text (a conversation saved with another model goes on
 * with this one). report may be NULL. On failure the session's
 * conversation is unchanged. */
int g3_session_load(g3_session *s, const char *path, g3_load_report *report, g3_error *err);

/* Evaluates raw text (no template) and continues it: `run --raw`. */
int g3_session_complete_raw(g3_session *s, const char *text, const g3_gen_params *gp, g3_on_text on_text,
                            void *user, volatile int *cancel, g3_gen_stats *stats, g3_error *err);

/* ---- the default model -------------------------------------------------- */

/* Gemma 3 270M, Q4_K_M: put into <repo>/models/ by scripts/get-model.sh.
 * Front ends use it when no model is given. */
#define G3_DEFAULT_MODEL_NAME "Gemma 3 270M"
#define G3_DEFAULT_MODEL_PATH "models/gemma-3-270m-q4_k_m.gguf"
#define G3_DEFAULT_MODEL_ENV "G3_DEFAULT_MODEL"

typedef struct g3_default_model {
    char path[4096];  /* the file to load */
    char shown[4096]; /* the path for messages: relative when under the current directory */
    bool from_env;    /* named by G3_DEFAULT_MODEL */
} g3_default_model;

/* Finds the default model: the file G3_DEFAULT_MODEL names, if that is set
 * (and nowhere else); else G3_DEFAULT_MODEL_PATH under the folder above the
 * executable's folder (build/gemma-chat -> <repo>/models/...); else under
 * the current directory. Fails naming every place tried, and how to get the
 * file (bash scripts/get-model.sh) or give another (-m FILE). */
int g3_default_model_find(g3_default_model *out, g3_error *err);

/* ---- text for a terminal ------------------------------------------------- */

/* Model text made safe to print on a terminal: C0 control bytes other than
 * newline and tab, and DEL, become caret notation ("^[" for ESC, "^M" for
 * CR, as cat -v writes them); C1 controls (U+0080..U+009F, which some
 * terminals obey as escapes) become "<U+009B>". Everything else is copied.
 * out needs room for 4 * len bytes; returns the bytes written (no NUL). */
size_t g3_escape_for_terminal(const char *text, size_t len, char *out);

#ifdef __cplusplus
}
#endif

#endif
