/* native_answer.c: the routes that generate: POST /api/conversations/{id}/
 * messages, /regenerate and /edit, and /stop.
 *
 * One generation per conversation at a time (a table of those in flight,
 * srv_server.inflight: a second one is a 409). The request becomes the
 * stored conversation (g3_store_to_conversation, the answers' token ids
 * reused when this model made them) plus the new user turn: its text, its
 * images as image parts, its videos (MP4, MOV) as G3_STORE_VIDEO_FRAMES
 * labelled frame parts sampled from their bytes (g3_video_parts_memory, as
 * the store's rebuild makes them again), its documents' text
 * (g3_document_from_memory) before the typed text as the turn's
 * prompt_text. The settings are the conversation's. Then the job pattern
 * of completions.c: the connection's thread waits on the engine and on the
 * client's socket.
 *
 * What is stored, and when: nothing before the generation has ended (on
 * the connection's thread, after the engine's on_done: the store may block,
 * on_done must not). A complete answer, or a partial one when the client
 * left, /stop was asked or the server shuts down (stopped = true,
 * finish_reason "cancelled"), is written with its user turn in one
 * transaction; an engine error stores nothing. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "base/utf8.h"
#include "gemma3_media.h"
#include "gemma3_text.h"
#include "server/data_url.h"
#include "server/job.h"
#include "server/native.h"
#include "server/native_request.h"

/* ---- generations in flight ----------------------------------------------- */

/* Claims conv for job; false when a generation for it is in flight. */
static bool claim(srv_server *s, int64_t conv, srv_job *job, bool *oom) {
    *oom = false;
    pthread_mutex_lock(&s->native_mu);
    for (size_t i = 0; i < s->n_inflight; i++)
        if (s->inflight[i].conv == conv) {
            pthread_mutex_unlock(&s->native_mu);
            return false;
        }
    if (s->n_inflight == s->cap_inflight) {
        size_t cap = s->cap_inflight ? s->cap_inflight * 2 : 8;
        srv_inflight *p = realloc(s->inflight, cap * sizeof *p);
        if (!p) {
            pthread_mutex_unlock(&s->native_mu);
            *oom = true;
            return false;
        }
        s->inflight = p;
        s->cap_inflight = cap;
    }
    s->inflight[s->n_inflight++] = (srv_inflight){.conv = conv, .job = job};
    pthread_mutex_unlock(&s->native_mu);
    return true;
}

static void release_claim(srv_server *s, int64_t conv) {
    pthread_mutex_lock(&s->native_mu);
    for (size_t i = 0; i < s->n_inflight; i++)
        if (s->inflight[i].conv == conv) {
            s->inflight[i] = s->inflight[--s->n_inflight];
            break;
        }
    pthread_mutex_unlock(&s->native_mu);
}

/* Sets the cancel flag of conv's generation; true when there was one. */
static bool cancel_conv(srv_server *s, int64_t conv) {
    bool found = false;
    pthread_mutex_lock(&s->native_mu);
    for (size_t i = 0; i < s->n_inflight; i++)
        if (s->inflight[i].conv == conv && s->inflight[i].job) {
            s->inflight[i].stop_requested = true;
            atomic_store(&s->inflight[i].job->cancel, true);
            found = true;
        }
    pthread_mutex_unlock(&s->native_mu);
    return found;
}

void srv_native_cancel(srv_server *s, int64_t conv) { cancel_conv(s, conv); }

int srv_native_stop(srv_exchange *x) {
    if (cancel_conv(x->srv, x->api_id)) return srv_reply(x, 204, NULL, NULL, 0, NULL);
    g3_store_conv c; /* idle: 200, for a conversation that exists */
    g3_error ge;
    int rc = g3_store_get(x->srv->cfg.store, x->api_id, &c, &ge);
    if (rc) {
        srv_error e;
        srv_store_error(rc, &ge, &e);
        return srv_reply_error(x, &e);
    }
    g3_store_conv_free(&c);
    cJSON *o = cJSON_CreateObject();
    if (o && !cJSON_AddBoolToObject(o, "stopped", false)) {
        cJSON_Delete(o);
        o = NULL;
    }
    return srv_reply_json(x, 200, o);
}

/* ---- one answer ---------------------------------------------------------- */

typedef struct answer {
    srv_server *srv;
    srv_job *job;
    int64_t conv;
    srv_message_kind kind;
    bool claimed;
    uint32_t n_ctx;
    srv_message_request req;
    /* the user turn to store (send and edit) */
    char *prompt_text;                 /* NULL: the typed text */
    g3_store_attachment_in *att;       /* the new files */
    size_t n_att;
    char **att_types;                  /* media types chosen for them (owned) */
    g3_part *vparts;                   /* the videos' labels and frames (owned; the request's parts borrow them) */
    size_t n_vparts;
    uint32_t text_pos;
    /* a stream */
    int fd, ping_ms;
    char *out;
    size_t out_len, out_off;
    bool finished, stored;
} answer;

static void answer_free(answer *a) {
    if (!a) return;
    if (a->claimed) release_claim(a->srv, a->conv);
    if (a->job) srv_job_release(a->job);
    for (size_t i = 0; a->att_types && i < a->n_att; i++) free(a->att_types[i]);
    free(a->att_types);
    g3_parts_free(a->vparts, a->n_vparts);
    free(a->att);
    free(a->prompt_text);
    srv_message_request_free(&a->req);
    free(a->out);
    free(a);
}

static int oom(srv_error *e) { return srv_fail(e, 500, "server_error", NULL, NULL, "out of memory"); }

typedef struct file_ref {
    const char *name, *type;
    const uint8_t *data;
    size_t size;
    bool is_new;   /* not an attachment kept from the edited message */
} file_ref;

/* An ISO media file (MP4, MOV: `ftyp` at offset 4) that is not an image
 * (HEIC and AVIF use the same box, with their own major brands). */
static bool is_iso_video(const uint8_t *d, size_t n) {
    static const char *const k_image_brands[] = {"heic", "heix", "hevc", "hevx", "heim", "heis",
                                                 "mif1", "msf1", "avif", "avis"};
    if (n < 12 || memcmp(d + 4, "ftyp", 4) != 0) return false;
    for (size_t i = 0; i < sizeof k_image_brands / sizeof k_image_brands[0]; i++)
        if (!memcmp(d + 8, k_image_brands[i], 4)) return false;
    return true;
}

/* A file that is a video (the bytes or the declared type). */
static bool is_video(const srv_upload *u) {
    if (u->type && !strncasecmp(u->type, "video/", 6)) return true;
    if (is_iso_video(u->data, u->size)) return true;                             /* MP4, MOV */
    return u->size >= 4 && !memcmp(u->data, "\x1a\x45\xdf\xa3", 4);             /* WebM, Matroska */
}

/* A video attachment: its labelled frames appended to a->vparts and, borrowed,
 * to parts; its media type in *type (static). 415 for a kind of video the
 * API does not take (WebM...), 400 for no vision encoder, or bytes that are
 * not an MP4/MOV or do not decode. */
static int prepare_video(answer *a, g3_engine *eng, const file_ref *f, const char *param, g3_part *parts,
                         size_t *n_parts, size_t *n_frames, const char **type, srv_error *e) {
    const uint8_t *d = f->data;
    const size_t n = f->size;
    const bool other = (n >= 4 && !memcmp(d, "\x1a\x45\xdf\xa3", 4)) ||                /* WebM, Matroska */
                       (n >= 12 && !memcmp(d, "RIFF", 4) && !memcmp(d + 8, "AVI ", 4)) || /* AVI */
                       (n >= 4 && (!memcmp(d, "OggS", 4) || !memcmp(d, "FLV\x01", 4) ||
                                   !memcmp(d, "\x00\x00\x01\xba", 4))) ||             /* Ogg, FLV, MPEG-PS */
                       (n >= 189 && d[0] == 0x47 && d[188] == 0x47);                   /* MPEG-TS */
    if (other)
        return srv_fail(e, 415, NULL, "unsupported_media_type", param,
                        "%s: %.80s is a kind of video the native API does not take (it takes MP4 and MOV)", param,
                        f->name);
    if (!g3_engine_has_vision(eng))
        return srv_bad_field(e, "no_vision", param, "%.80s is a video, but this server has no vision encoder (start "
                             "it with --mmproj)", f->name);
    if (!is_iso_video(d, n))
        return srv_bad_field(e, "invalid_file", param, "%.80s is declared a video but is not an MP4 or MOV file (no "
                             "'ftyp' box)", f->name);
    g3_part *vp;
    size_t n_vp;
    g3_error ge;
    if (g3_video_parts_memory(f->name, f->data, f->size, G3_STORE_VIDEO_FRAMES, &vp, &n_vp, &ge))
        return srv_bad_field(e, "invalid_file", param, "%.80s is not a video this server can decode (MP4, MOV): %s",
                             f->name, ge.msg);
    g3_part *grown = realloc(a->vparts, (a->n_vparts + n_vp) * sizeof *grown);
    if (!grown) {
        g3_parts_free(vp, n_vp);
        return oom(e);
    }
    a->vparts = grown;
    memcpy(a->vparts + a->n_vparts, vp, n_vp * sizeof *vp); /* moved: the bytes and strings now belong to a->vparts */
    memcpy(parts + *n_parts, vp, n_vp * sizeof *vp);
    free(vp);
    a->n_vparts += n_vp;
    *n_parts += n_vp;
    *n_frames = n_vp / 2;
    *type = f->size >= 12 && !memcmp(f->data + 8, "qt  ", 4) ? "video/quicktime" : "video/mp4";
    return 0;
}

/* Tokens of text (for the context checks). */
static int count_tokens(g3_engine *eng, const char *text, size_t *n, srv_error *e) {
    int32_t *ids = NULL;
    g3_error ge;
    if (g3_tokenize(g3_engine_tokenizer(eng), text, strlen(text), false, false, &ids, n, &ge))
        return srv_fail(e, 500, "server_error", NULL, NULL, "tokenizing: %s", ge.msg);
    free(ids);
    return 0;
}

static bool append_text(char **buf, size_t *len, const char *s, size_t n) {
    if (n > SIZE_MAX - *len - 2) return false;
    char *p = realloc(*buf, *len + n + 2);
    if (!p) return false;
    memcpy(p + *len, s, n);
    *len += n;
    p[*len] = 0;
    *buf = p;
    return true;
}

/* Turns the files into image parts, video frame parts and document text:
 * checks each (415, 413, 400 naming attachments[i]), fills parts (images,
 * data borrowed; videos, borrowed from a->vparts; room for
 * 2 * G3_STORE_VIDEO_FRAMES parts a file), the prompt text and the store's
 * attachment list. A video's frames count against max_images one each, as
 * the terminal's /video counts them. */
static int prepare_files(answer *a, g3_engine *eng, const file_ref *files, size_t n_files, uint32_t max_images,
                         g3_part *parts, size_t *n_parts, srv_error *e) {
    size_t new_index = 0, n_images = 0, docs_len = 0;
    char *docs = NULL;
    *n_parts = 0;
    if (n_files && !(a->att = calloc(n_files, sizeof *a->att))) return oom(e);
    if (n_files && !(a->att_types = calloc(n_files, sizeof *a->att_types))) return oom(e);
    for (size_t i = 0; i < n_files; i++) {
        const file_ref *f = &files[i];
        char param[64];
        snprintf(param, sizeof param, f->is_new ? "attachments[%zu]" : "kept attachment %zu",
                 f->is_new ? new_index : i);
        const char *fmt = srv_image_format(f->data, f->size);
        const char *type = NULL;
        char *owned_type = NULL;
        const srv_upload u = {.type = (char *)f->type, .data = (uint8_t *)f->data, .size = f->size};
        if (fmt) {
            if (!g3_engine_has_vision(eng)) {
                free(docs);
                return srv_bad_field(e, "no_vision", param, "%.80s is an image, but this server has no vision "
                                     "encoder (start it with --mmproj)", f->name);
            }
            n_images++;
            parts[(*n_parts)++] = (g3_part){.type = G3_PART_IMAGE, .data = (uint8_t *)f->data, .data_len = f->size};
            char t[32];
            snprintf(t, sizeof t, "image/%s", fmt);
            if (!(owned_type = strdup(t))) {
                free(docs);
                return oom(e);
            }
        } else if (is_video(&u)) {
            size_t n_frames = 0;
            if (prepare_video(a, eng, f, param, parts, n_parts, &n_frames, &type, e)) {
                free(docs);
                return -1;
            }
            n_images += n_frames;
            if (!(owned_type = strdup(type))) {
                free(docs);
                return oom(e);
            }
        } else {
            g3_document doc;
            g3_error ge;
            int rc = g3_document_from_memory(f->name, f->type, f->data, f->size, NULL, &doc, &ge);
            if (rc) {
                free(docs);
                if (rc == G3_DOCUMENT_UNSUPPORTED)
                    return srv_fail(e, 415, NULL, "unsupported_media_type", param,
                                    "%s: %.80s is not a supported file (images: JPEG, PNG, WebP, GIF; documents: PDF, "
                                    "text, Markdown, source code): %s", param, f->name, ge.msg);
                if (rc == G3_DOCUMENT_TOO_LARGE)
                    return srv_fail(e, 413, NULL, "file_too_large", param, "%s: %s", param, ge.msg);
                return srv_bad_field(e, "invalid_file", param, "%s", ge.msg);
            }
            size_t n_tok = 0;
            if (count_tokens(eng, doc.text, &n_tok, e)) {
                g3_document_free(&doc);
                free(docs);
                return -1;
            }
            if (n_tok + 8 >= a->n_ctx) {
                g3_document_free(&doc);
                free(docs);
                return srv_bad_field(e, "context_length_exceeded", param, "%.80s is %zu tokens; the context holds %u "
                                     "per conversation", f->name, n_tok, a->n_ctx);
            }
            bool ok = append_text(&docs, &docs_len, doc.text, doc.len) &&
                      (doc.len && doc.text[doc.len - 1] == '\n' ? true : append_text(&docs, &docs_len, "\n", 1));
            if (doc.kind == G3_DOCUMENT_PDF) type = "application/pdf";
            else if (f->type && strncasecmp(f->type, "application/octet-stream", 24) != 0) type = f->type;
            else type = "text/plain";
            g3_document_free(&doc);
            if (!ok || !(owned_type = strdup(type))) {
                free(docs);
                return oom(e);
            }
        }
        if (f->is_new) {
            a->att_types[a->n_att] = owned_type;
            a->att[a->n_att] = (g3_store_attachment_in){.name = f->name, .media_type = owned_type, .data = f->data,
                                                        .size = f->size};
            a->n_att++;
            new_index++;
        } else {
            free(owned_type);
        }
    }
    if (n_images > max_images) {
        free(docs);
        return srv_bad_field(e, "too_many_images", "attachments", "%zu images (a video's %u frames count one "
                             "each); this conversation allows at most %u per message (settings.max_images)", n_images,
                             G3_STORE_VIDEO_FRAMES, max_images);
    }
    if (docs) {
        const char *typed = a->req.content ? a->req.content : "";
        if (!append_text(&docs, &docs_len, "\n", 1) || !append_text(&docs, &docs_len, typed, strlen(typed))) {
            free(docs);
            return oom(e);
        }
        a->prompt_text = docs;
    }
    return 0;
}

/* The attachments of the last user turn with their bytes (edit with keep_attachments). */
static int load_kept(g3_store *st, const g3_store_turn *t, g3_store_attachment *kept, srv_error *e) {
    for (size_t i = 0; i < t->n_attachments; i++) {
        g3_error ge;
        int rc = g3_store_attachment_get(st, t->attachments[i].id, &kept[i], &ge);
        if (rc) {
            for (size_t j = 0; j < i; j++) g3_store_attachment_free(&kept[j]);
            return srv_store_error(rc, &ge, e);
        }
    }
    return 0;
}

/* Model text as the store and JSON take it: a NUL byte (a token can decode
 * to one) becomes U+FFFD, as does any invalid byte. The engine's pieces
 * are complete UTF-8, so cleaning each piece and cleaning the whole answer
 * give the same text: the token events add up to the stored message. */
static char *clean_text(const char *s, size_t len) {
    size_t n_nul = 0;
    for (size_t i = 0; i < len; i++) n_nul += s[i] == 0;
    if (!n_nul) return g3_utf8_sanitize(s, len, &(size_t){0});
    if (len > (SIZE_MAX - 1) / 3) return NULL;
    char *t = malloc(len + 2 * n_nul + 1), *p = t;
    if (!t) return NULL;
    for (size_t i = 0; i < len; i++) {
        if (s[i]) {
            *p++ = s[i];
        } else {
            memcpy(p, "\xEF\xBF\xBD", 3);
            p += 3;
        }
    }
    char *out = g3_utf8_sanitize(t, (size_t)(p - t), &(size_t){0});
    free(t);
    return out;
}

/* ---- storing the result ---------------------------------------------------- */

static void error_of(const answer *a, srv_error *e) {
    const srv_job *j = a->job;
    if (j->out_of_memory)
        srv_fail(e, 500, "server_error", NULL, NULL, "out of memory while answering");
    else if (j->result.stop == G3_STOP_ERROR && j->result.error_kind == G3_ERROR_REQUEST)
        srv_fail(e, 400, NULL, "invalid_request", "content", "%s", j->result.err.msg);
    else
        srv_fail(e, 500, "server_error", NULL, NULL, "generation failed: %s", j->result.err.msg);
}

/* A copy of messages[i] of the conversation's JSON. */
static cJSON *message_at(cJSON *conv, int from_end) {
    cJSON *msgs = cJSON_GetObjectItemCaseSensitive(conv, "messages");
    int n = cJSON_GetArraySize(msgs);
    cJSON *m = n >= from_end ? cJSON_GetArrayItem(msgs, n - from_end) : NULL;
    return m ? cJSON_Duplicate(m, true) : cJSON_CreateNull();
}

/* Stores the finished job and builds the `done` object; NULL with e set. */
static cJSON *store_result(answer *a, srv_error *e) {
    srv_job *j = a->job;
    a->stored = true;
    if (j->out_of_memory || j->result.stop == G3_STOP_ERROR || j->result.stop == G3_STOP_NONE) {
        error_of(a, e);
        release_claim(a->srv, a->conv);
        a->claimed = false;
        return NULL;
    }
    g3_store *st = a->srv->cfg.store;
    char *text = clean_text(j->text ? j->text : "", j->text ? j->result.text_len : 0);
    if (!text) {
        release_claim(a->srv, a->conv);
        a->claimed = false;
        oom(e);
        return NULL;
    }
    g3_store_answer ans;
    g3_store_answer_from_result(&ans, &j->result, &a->srv->record);
    ans.text = text;
    ans.text_len = strlen(text);
    ans.ids = j->ids;
    ans.n_ids = j->n_ids;
    g3_store_user_msg u = {.text = a->req.content ? a->req.content : "", .prompt_text = a->prompt_text,
                           .text_pos = a->text_pos, .attachments = a->att, .n_attachments = a->n_att};
    g3_error ge;
    int rc = a->kind == SRV_MSG_SEND ? g3_store_append(st, a->conv, &u, &ans, NULL, NULL, &ge)
             : a->kind == SRV_MSG_EDIT
                 ? g3_store_replace_last_pair(st, a->conv, &u, a->req.keep_attachments, &ans, NULL, &ge)
                 : g3_store_replace_answer(st, a->conv, &ans, NULL, &ge);
    free(text);
    release_claim(a->srv, a->conv);
    a->claimed = false;
    if (rc) {
        srv_store_error(rc, &ge, e);
        /* The store's message, prefixed (memmove: the prefix and a cut tail fit the buffer). */
        static const char prefix[] = "the answer was not saved: ";
        size_t n = strnlen(e->message, sizeof e->message - sizeof prefix);
        memmove(e->message + sizeof prefix - 1, e->message, n);
        memcpy(e->message, prefix, sizeof prefix - 1);
        e->message[sizeof prefix - 1 + n] = 0;
        return NULL;
    }
    g3_store_conv c;
    if ((rc = g3_store_get(st, a->conv, &c, &ge))) {
        srv_store_error(rc, &ge, e);
        return NULL;
    }
    char *json = g3_store_conv_to_json(&c);
    cJSON *conv = json ? cJSON_Parse(json) : NULL;
    free(json);
    const g3_gen_result *r = &j->result;
    cJSON *o = cJSON_CreateObject(), *usage = NULL, *timings = NULL, *ci = NULL;
    bool ok = conv && o;
    if (ok) {
        cJSON_AddItemToObject(o, "message", message_at(conv, 1));
        cJSON_AddItemToObject(o, "user_message", message_at(conv, 2));
        ok = (usage = cJSON_AddObjectToObject(o, "usage")) && (timings = cJSON_AddObjectToObject(o, "timings")) &&
             cJSON_AddNumberToObject(usage, "prompt_tokens", r->n_prompt) &&
             cJSON_AddNumberToObject(usage, "cached_tokens", r->n_cached) &&
             cJSON_AddNumberToObject(usage, "completion_tokens", r->n_generated) &&
             cJSON_AddNumberToObject(timings, "queue_s", r->queue_s) &&
             cJSON_AddNumberToObject(timings, "prefill_s", r->prefill_s) &&
             cJSON_AddNumberToObject(timings, "generate_s", r->generate_s) &&
             cJSON_AddNumberToObject(timings, "tokens_per_s",
                                     r->generate_s > 0 ? r->n_generated / r->generate_s : 0.0) &&
             cJSON_AddStringToObject(o, "finish_reason", g3_stop_reason_name(r->stop)) &&
             cJSON_AddBoolToObject(o, "stopped", r->stop == G3_STOP_CANCELLED) &&
             cJSON_AddNumberToObject(o, "dropped_turns", r->dropped_turns) &&
             cJSON_AddNumberToObject(o, "n_ctx", a->n_ctx) &&
             (ci = cJSON_AddObjectToObject(o, "conversation")) &&
             cJSON_AddNumberToObject(ci, "id", (double)c.id) &&
             cJSON_AddStringToObject(ci, "title", c.title ? c.title : "") &&
             cJSON_AddNumberToObject(ci, "updated_at", (double)c.updated_at);
    }
    g3_store_conv_free(&c);
    cJSON_Delete(conv);
    if (!ok) {
        cJSON_Delete(o);
        oom(e);
        return NULL;
    }
    return o;
}

static void log_result(const answer *a) {
    if (!a->srv->cfg.verbose) return;
    const g3_gen_result *r = &a->job->result;
    fprintf(stderr, "gemma-chat serve:   conversation %lld: prompt %u tokens (%u cached), generated %u, "
            "dropped %u turns; stop: %s\n", (long long)a->conv, r->n_prompt, r->n_cached, r->n_generated,
            r->dropped_turns, g3_stop_reason_name(r->stop));
}

/* Waits for the job's end without a client (it left: the cancel is set). */
static void wait_done(answer *a) {
    for (;;) {
        char *text;
        size_t len;
        bool done;
        srv_job_take(a->job, &text, &len, &done);
        free(text);
        if (done) return;
        srv_job_wait(a->job, -1, 1000);
    }
}

/* ---- a whole answer ---------------------------------------------------------- */

static int answer_whole(srv_exchange *x, answer *a) {
    int fd = srv_client_fd(x);
    bool gone = false;
    srv_hold_connection(x, true);
    for (;;) {
        char *text;
        size_t len;
        bool done;
        srv_job_take(a->job, &text, &len, &done);
        free(text);
        if (done) break;
        if (srv_job_wait(a->job, gone ? -1 : fd, gone ? 1000 : -1) == SRV_WAIT_CLIENT_GONE) gone = true;
    }
    srv_hold_connection(x, false);
    log_result(a);
    srv_error e;
    cJSON *o = store_result(a, &e);
    answer_free(a);
    if (gone) { /* the partial answer is stored; nobody to tell */
        cJSON_Delete(o);
        srv_count_dropped(x);
        return -1;
    }
    return o ? srv_reply_json(x, 200, o) : srv_reply_error(x, &e);
}

/* ---- a stream ---------------------------------------------------------------- */

static bool push_raw(answer *a, const char *s, size_t n) {
    char *out = realloc(a->out, a->out_len + n + 1);
    if (!out) return false;
    memcpy(out + a->out_len, s, n);
    a->out = out;
    a->out_len += n;
    out[a->out_len] = 0;
    return true;
}

/* "event: NAME\ndata: JSON\n\n" (o taken). */
static bool push_event(answer *a, const char *name, cJSON *o) {
    char *json = o ? cJSON_PrintUnformatted(o) : NULL;
    cJSON_Delete(o);
    if (!json) return false;
    char head[32];
    int n = snprintf(head, sizeof head, "event: %s\ndata: ", name);
    bool ok = push_raw(a, head, (size_t)n) && push_raw(a, json, strlen(json)) && push_raw(a, "\n\n", 2);
    free(json);
    return ok;
}

static bool push_error(answer *a, const srv_error *e) {
    cJSON *o = cJSON_CreateObject(), *err = srv_error_object(e);
    if (!o || !err) {
        cJSON_Delete(o);
        cJSON_Delete(err);
        return false;
    }
    cJSON_AddNumberToObject(err, "status", e->status);
    cJSON_AddItemToObject(o, "error", err);
    return push_event(a, "error", o);
}

static bool collect(answer *a) {
    char *text;
    size_t len;
    bool done;
    if (srv_job_take(a->job, &text, &len, &done)) {
        free(text);
        atomic_store(&a->job->cancel, true);
        return false;
    }
    bool ok = true;
    if (len) {
        char *clean = clean_text(text, len);
        cJSON *o = clean ? cJSON_CreateObject() : NULL;
        if (o && cJSON_AddStringToObject(o, "text", clean)) {
            ok = push_event(a, "token", o); /* takes o */
        } else {
            cJSON_Delete(o);
            ok = false;
        }
        free(clean);
    }
    free(text);
    if (!ok || !done) return ok;
    a->finished = true;
    log_result(a);
    srv_error e;
    cJSON *o = store_result(a, &e);
    return o ? push_event(a, "done", o) : push_error(a, &e);
}

static ssize_t stream_read(void *cls, char *buf, size_t max) {
    answer *a = cls;
    for (;;) {
        if (a->out_off < a->out_len) {
            size_t n = a->out_len - a->out_off;
            if (n > max) n = max;
            memcpy(buf, a->out + a->out_off, n);
            a->out_off += n;
            return (ssize_t)n;
        }
        free(a->out);
        a->out = NULL;
        a->out_len = a->out_off = 0;
        if (a->finished) return SRV_STREAM_END;
        if (!collect(a)) {
            atomic_store(&a->job->cancel, true);
            return SRV_STREAM_ABORT;
        }
        if (a->out_len) continue;
        srv_wait w = srv_job_wait(a->job, a->fd, a->ping_ms);
        if (w == SRV_WAIT_CLIENT_GONE) return SRV_STREAM_ABORT;
        if (w == SRV_WAIT_TIMEOUT && !push_raw(a, ": ping\n\n", 8)) return SRV_STREAM_ABORT;
    }
}

static void stream_free(void *cls) {
    answer *a = cls;
    if (!a->stored) { /* the client left before the end: keep what was made */
        atomic_store(&a->job->cancel, true);
        wait_done(a);
        log_result(a);
        srv_error e;
        cJSON_Delete(store_result(a, &e));
    }
    answer_free(a);
}

/* ---- the route ------------------------------------------------------------- */

static int refuse(srv_exchange *x, answer *a, const srv_error *e) {
    answer_free(a);
    return srv_reply_error(x, e);
}

int srv_native_answer(srv_exchange *x, const char *body, size_t len) {
    srv_server *s = x->srv;
    srv_error e;
    g3_error ge;
    g3_engine *eng = atomic_load(&s->engine);
    if (!eng) {
        srv_fail(&e, 503, "server_error", "model_loading", NULL, "the model is still loading; try again shortly");
        return srv_reply_error(x, &e);
    }
    answer *a = calloc(1, sizeof *a);
    if (!a) {
        oom(&e);
        return srv_reply_error(x, &e);
    }
    a->srv = s;
    a->conv = x->api_id;
    a->n_ctx = g3_engine_n_ctx(eng);
    a->kind = x->api_op == SRV_OP_MESSAGES ? SRV_MSG_SEND
              : x->api_op == SRV_OP_EDIT   ? SRV_MSG_EDIT
                                           : SRV_MSG_REGENERATE;
    if (srv_message_request_parse(a->kind, srv_header(x, "Content-Type"), body, len, &a->req, &e))
        return refuse(x, a, &e);
    g3_store_conv c;
    int rc = g3_store_get(s->cfg.store, a->conv, &c, &ge);
    if (rc) {
        srv_store_error(rc, &ge, &e);
        return refuse(x, a, &e);
    }
    if (a->kind != SRV_MSG_SEND && c.n_turns < 2) {
        g3_store_conv_free(&c);
        srv_fail(&e, 409, NULL, "conflict", NULL, "conversation %lld has no %s yet", (long long)a->conv,
                 a->kind == SRV_MSG_EDIT ? "message to edit" : "answer to regenerate");
        return refuse(x, a, &e);
    }
    if (!(a->job = srv_job_new(a->req.stream))) {
        g3_store_conv_free(&c);
        srv_fail(&e, 500, "server_error", NULL, NULL, "out of memory (or descriptors) for a request");
        return refuse(x, a, &e);
    }
    bool no_mem;
    if (!claim(s, a->conv, a->job, &no_mem)) {
        g3_store_conv_free(&c);
        if (no_mem) oom(&e);
        else
            srv_fail(&e, 409, NULL, "generation_in_progress", NULL, "conversation %lld is answering already; "
                     "wait for it or POST /api/conversations/%lld/stop", (long long)a->conv, (long long)a->conv);
        return refuse(x, a, &e);
    }
    a->claimed = true;
    const g3_store_settings set = c.settings;

    /* The files: those kept from the edited message, then the new ones. */
    const g3_store_turn *last_user = c.n_turns >= 2 ? &c.turns[c.n_turns - 2] : NULL;
    size_t n_kept = a->kind == SRV_MSG_EDIT && a->req.keep_attachments && last_user ? last_user->n_attachments : 0;
    g3_store_attachment *kept = n_kept ? calloc(n_kept, sizeof *kept) : NULL;
    file_ref *files = calloc(n_kept + a->req.n_files + 1, sizeof *files);
    g3_part *parts = calloc((n_kept + a->req.n_files) * 2 * G3_STORE_VIDEO_FRAMES + 1, sizeof *parts);
    size_t n_parts = 0;
    rc = (n_kept && !kept) || !files || !parts ? oom(&e) : 0;
    if (!rc && n_kept && load_kept(s->cfg.store, last_user, kept, &e)) {
        free(kept);
        kept = NULL;
        n_kept = 0;
        rc = -1;
    }
    g3_store_conv_free(&c);
    for (size_t i = 0; !rc && i < n_kept; i++)
        files[i] = (file_ref){kept[i].name, kept[i].media_type, kept[i].data, (size_t)kept[i].size, false};
    for (size_t i = 0; !rc && i < a->req.n_files; i++) {
        const srv_upload *u = &a->req.files[i];
        files[n_kept + i] = (file_ref){u->name, u->type, u->data, u->size, true};
    }
    if (!rc && a->kind != SRV_MSG_REGENERATE)
        rc = prepare_files(a, eng, files, n_kept + a->req.n_files, set.max_images, parts, &n_parts, &e);

    /* The conversation the model sees. */
    g3_conversation conv;
    g3_conversation_init(&conv);
    bool conv_made = false;
    if (!rc) {
        if (g3_store_to_conversation(s->cfg.store, a->conv, &s->record, &conv, &ge)) {
            rc = srv_store_error(G3_STORE_ERROR, &ge, &e);
        } else {
            conv_made = true;
            if (a->kind == SRV_MSG_REGENERATE) g3_conversation_pop(&conv);
            if (a->kind == SRV_MSG_EDIT) {
                g3_conversation_pop(&conv);
                g3_conversation_pop(&conv);
            }
        }
    }
    if (!rc && a->kind != SRV_MSG_REGENERATE) {
        const char *text = a->prompt_text ? a->prompt_text : a->req.content;
        size_t n_tok = 0;
        if (strlen(text) + 8 >= a->n_ctx) {
            if (count_tokens(eng, text, &n_tok, &e))
                rc = -1;
            else if (n_tok + 8 >= a->n_ctx)
                rc = srv_bad_field(&e, "context_length_exceeded", "content", "the message is %zu tokens; the "
                                   "context holds %u per conversation", n_tok + 8, a->n_ctx);
        }
        if (!rc && n_parts) {
            /* Text first, then the images and videos (text_pos 0), as the stored turn is rebuilt. */
            memmove(parts + 1, parts, n_parts * sizeof *parts);
            parts[0] = (g3_part){.type = G3_PART_TEXT, .text = (char *)text};
            bool has_text = text[0] != 0;
            rc = g3_conversation_add_parts(&conv, has_text ? parts : parts + 1, has_text ? n_parts + 1 : n_parts, &ge)
                     ? srv_bad_field(&e, "invalid_request", "attachments", "%s", ge.msg)
                     : 0;
        } else if (!rc) {
            rc = g3_conversation_add(&conv, G3_ROLE_USER, text, NULL, 0, &ge)
                     ? srv_bad_field(&e, "invalid_request", "content", "%s", ge.msg)
                     : 0;
        }
    }
    free(files);
    free(parts);
    for (size_t i = 0; i < n_kept; i++) g3_store_attachment_free(&kept[i]);
    free(kept);
    if (rc) {
        if (conv_made) g3_conversation_free(&conv);
        return refuse(x, a, &e);
    }

    g3_gen_params gen = g3_gen_defaults();
    gen.sampler.temperature = set.temperature;
    gen.sampler.top_p = set.top_p;
    gen.sampler.top_k = set.top_k;
    gen.sampler.repeat_penalty = set.repetition_penalty;
    gen.max_new_tokens = set.max_tokens;
    g3_request r = {.conv = &conv, .gen = gen, .cb = srv_job_callbacks(a->job), .cancel = &a->job->cancel};
    bool queue_full = false;
    srv_job_ref(a->job); /* the engine's, dropped by on_done */
    pthread_mutex_lock(&s->submit_mu);
    rc = atomic_load(&s->stopping) ? 1 : g3_engine_submit(eng, &r, &queue_full, &ge);
    pthread_mutex_unlock(&s->submit_mu);
    g3_conversation_free(&conv);
    if (rc) {
        srv_job_release(a->job);
        if (rc > 0)
            srv_fail(&e, 503, "server_error", "shutting_down", NULL, "the server is shutting down");
        else if (queue_full)
            srv_fail(&e, 429, "rate_limit_error", "queue_full",
                     NULL, "the server is busy: every slot is working and the queue is full; retry shortly");
        else
            srv_fail(&e, 400, NULL, "invalid_request", "content", "content: %s", ge.msg);
        return refuse(x, a, &e);
    }
    if (!a->req.stream) return answer_whole(x, a);
    a->fd = srv_client_fd(x);
    a->ping_ms = (int)s->cfg.ping_ms;
    return srv_reply_stream(x, stream_read, a, stream_free);
}
