/* gemma-chat chat: the terminal chat.
 * Each line is a message (end a line with '\' to continue it on the next);
 * lines starting with '/' are commands. At a terminal, lines are read with
 * libedit (editing, and the session's history on the arrow keys); piped
 * stdin is read plainly, without prompts. Ctrl-C stops the current answer;
 * /quit or Ctrl-D leaves.
 * Every answered turn (a stopped one too, with its partial answer) is saved
 * to the conversation store (--db, default g3_store_default_path(); off
 * with --no-save) as the user's message and the answer in one append; the
 * first answer creates the conversation. --resume [ID] and /open ID go on
 * with a stored conversation (prefilled again from the store). A failed
 * save is said and the chat goes on in memory; the turns not saved are
 * appended with the next answer that can be saved. */
#include <editline/readline.h>
#include <errno.h>
#include <langinfo.h>
#include <locale.h>
#include <pthread.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>
#include <unistd.h>

#include "app/app.h"
#include "app/gen_options.h"
#include "gemma3_media.h"
#include "gemma3_store.h"
#include "gemma3_vision.h"

static volatile int g_cancel;

static void on_sigint(int sig) {
    (void)sig;
    g_cancel = 1;
}

typedef struct chat_state {
    g3_session *session;
    gen_options *opts;
    bool interactive;  /* stdin and stdout are terminals: prompts, messages on stdout */
    bool line_editing; /* stdin is a terminal: libedit reads the lines */
    bool terminal_out; /* stdout is a terminal: answers have their control bytes escaped */
    uint32_t n_dropped; /* turns the last answer's prompt left out (they no longer fit) */
    size_t printed;     /* bytes of the answer in progress written so far */
    char *attachments; /* documents waiting for the next message */
    size_t attach_len;
    const char *media[8]; /* images and videos waiting for the next message */
    bool is_video[8];
    char *media_owned[8];
    int n_media;
    bool has_vision;
    /* the store (NULL with --no-save) */
    g3_store *store;
    int64_t conv_id;     /* the stored conversation; 0 until the first answer creates it */
    size_t n_stored;     /* turns of the session's conversation that the store holds */
    const char *preset;  /* preset key for a new stored conversation ("" = none) */
    char *title;         /* /title before the first answer: given at create */
} chat_state;

static void forget_stored(chat_state *c);

static bool print_text(const char *text, size_t len, void *user) {
    chat_state *c = user;
    app_print_answer(text, len, c->terminal_out);
    c->printed += len;
    return true;
}

static void say(const chat_state *c, const char *fmt, const char *arg) {
    fprintf(c->interactive ? stdout : stderr, fmt, arg);
    fputc('\n', c->interactive ? stdout : stderr);
}

static void help(const chat_state *c) {
    say(c, "%s",
        "commands:\n"
        "  /reset              forget the conversation (keeps the system prompt)\n"
        "  /system TEXT        set the system prompt\n"
        "  /preset NAME        general, document, visual, tutor, reviewer, storyteller, custom\n"
        "  /file PATH          attach a text, Markdown or code file to the next message\n"
        "  /image PATH         attach an image to the next message (needs --mmproj)\n"
        "  /video PATH         attach a video: --max-frames frames with their times (needs --mmproj)\n"
        "  /save FILE          save the conversation as JSON\n"
        "  /load FILE          load a saved conversation (saved to the store as a new one)\n"
        "  /list               recent conversations in the store\n"
        "  /open ID            go on with a stored conversation\n"
        "  /title TEXT         set this conversation's title\n"
        "  /export FILE.md     write this conversation as Markdown\n"
        "  /quit               leave (Ctrl-D works too; Ctrl-C stops an answer)");
}

/* Pending documents and media: dropped together when a message with them is
 * refused, so that one file too long for the context cannot make every
 * later message fail. */
static void clear_media(chat_state *c) {
    for (int i = 0; i < c->n_media; i++) free(c->media_owned[i]);
    c->n_media = 0;
}

static void clear_pending(chat_state *c) {
    free(c->attachments);
    c->attachments = NULL;
    c->attach_len = 0;
    clear_media(c);
}

static bool has_pending(const chat_state *c) { return c->attach_len || c->n_media; }

/* A document that alone outgrows the context is refused here, not when the
 * question after it is sent (tokenizing is quick: ~13 ms per 100 KB). */
static int check_fits(chat_state *c, const char *path, const char *text, size_t len) {
    g3_error err;
    int32_t *ids;
    size_t n;
    if (g3_tokenize(g3_session_tokenizer(c->session), text, len, false, false, &ids, &n, &err)) {
        say(c, "error: %s", err.msg);
        return -1;
    }
    free(ids);
    const uint32_t n_ctx = g3_session_n_ctx(c->session);
    if (n >= n_ctx) {
        char msg[512];
        snprintf(msg, sizeof msg, "%s is %zu tokens but the context holds %u: not attached (attach a shorter file, "
                 "or start the chat with a larger -c)", path, n, n_ctx);
        say(c, "error: %s", msg);
        return -1;
    }
    return 0;
}

static void attach_file(chat_state *c, const char *path) {
    g3_error err;
    char *text;
    size_t replaced;
    if (g3_document_read(path, G3_DOCUMENT_MAX_BYTES, &text, &replaced, &err)) {
        say(c, "error: %s", err.msg);
        return;
    }
    size_t len = strlen(text);
    if (check_fits(c, path, text, len)) {
        free(text);
        return;
    }
    char *grown = realloc(c->attachments, c->attach_len + len + 2);
    if (!grown) {
        free(text);
        say(c, "error: %s", "out of memory");
        return;
    }
    c->attachments = grown;
    memcpy(c->attachments + c->attach_len, text, len + 1);
    c->attach_len += len;
    free(text);
    if (replaced) fprintf(stderr, "note: %zu bytes of %s were not valid UTF-8 and became U+FFFD\n", replaced, path);
    say(c, "attached %s (sent with your next message)", path);
}

static void attach_media(chat_state *c, const char *path, bool video) {
    if (c->n_media == 8) {
        say(c, "%s", "at most 8 images or videos per message");
        return;
    }
    g3_error err;
    if (!video) { /* decode now: a bad file is reported here, not after the question */
        g3_image img;
        g3_media_limits lim = g3_media_limits_default();
        if (g3_image_load(path, &lim, &img, &err)) {
            say(c, "error: %s", err.msg);
            return;
        }
        g3_image_free(&img);
    }
    char *copy = strdup(path);
    if (!copy) return;
    c->media_owned[c->n_media] = copy;
    c->media[c->n_media] = copy;
    c->is_video[c->n_media++] = video;
    say(c, "attached %s (sent with your next message)", path);
}

static void load_conversation(chat_state *c, const char *path) {
    g3_error err;
    g3_load_report r;
    if (g3_session_load(c->session, path, &r, &err)) {
        say(c, "error: %s (conversation unchanged)", err.msg);
        return;
    }
    c->n_dropped = 0;
    forget_stored(c); /* saved to the store as a new conversation with the next answer */
    char msg[512];
    int n = snprintf(msg, sizeof msg, "loaded %s", path);
    if (r.other_vocab && n > 0 && (size_t)n < sizeof msg)
        n += snprintf(msg + n, sizeof msg - (size_t)n, " (saved with %s, whose vocabulary differs from this model's)",
                      r.saved.name);
    if (r.n_reread && n > 0 && (size_t)n < sizeof msg)
        snprintf(msg + n, sizeof msg - (size_t)n, "; %zu earlier answer%s will be read again from %s text", r.n_reread,
                 r.n_reread == 1 ? "" : "s", r.n_reread == 1 ? "its" : "their");
    say(c, "%s", msg);
}

/* ---- the store ----------------------------------------------------------- */

static g3_store_settings store_settings(const chat_state *c) {
    g3_store_settings st = g3_store_settings_defaults();
    const g3_sampler_params *sp = &c->opts->gen.sampler;
    st.max_tokens = c->opts->gen.max_new_tokens;
    st.temperature = sp->temperature;
    st.top_p = sp->top_p;
    st.top_k = sp->top_k;
    st.repetition_penalty = sp->repeat_penalty;
    return st;
}

static bool store_on(const chat_state *c) {
    if (!c->store) say(c, "%s", "the conversation store is off (--no-save)");
    return c->store != NULL;
}

/* A new conversation in the store (the session's is not stored yet). */
static void forget_stored(chat_state *c) {
    c->conv_id = 0;
    c->n_stored = 0;
    free(c->title);
    c->title = NULL;
}

static const char *media_type_of(const char *path, bool video) {
    static const char *const k_types[][2] = {
        {".png", "image/png"},    {".jpg", "image/jpeg"},      {".jpeg", "image/jpeg"}, {".gif", "image/gif"},
        {".webp", "image/webp"},  {".bmp", "image/bmp"},       {".mp4", "video/mp4"},   {".webm", "video/webm"},
        {".mkv", "video/x-matroska"}, {".mov", "video/quicktime"}, {".avi", "video/x-msvideo"}};
    const char *dot = strrchr(path, '.');
    for (size_t i = 0; dot && i < sizeof k_types / sizeof k_types[0]; i++)
        if (!strcasecmp(dot, k_types[i][0]) && !strncmp(k_types[i][1], video ? "video/" : "image/", 6))
            return k_types[i][1];
    return video ? "video/octet-stream" : "image/octet-stream";
}

#define STORE_MAX_MEDIA_BYTES (64u << 20)

/* The bytes of a media file (malloc'd), or NULL (said why). */
static uint8_t *read_media(const chat_state *c, const char *path, size_t *size) {
    FILE *f = fopen(path, "rb");
    uint8_t *data = NULL;
    long n = -1;
    if (f && fseek(f, 0, SEEK_END) == 0 && (n = ftell(f)) >= 0 && n <= (long)STORE_MAX_MEDIA_BYTES &&
        fseek(f, 0, SEEK_SET) == 0 && (data = malloc(n ? (size_t)n : 1)) && fread(data, 1, (size_t)n, f) == (size_t)n) {
        fclose(f);
        *size = (size_t)n;
        return data;
    }
    if (f) fclose(f);
    free(data);
    say(c, "note: %s is not kept in the store (unreadable, or over 64 MiB)", path);
    return NULL;
}

/* Saves the turns of the session's conversation the store lacks: pairs of a
 * user message and its answer, each in one append. The last pair is the
 * message just answered: typed (what the user wrote), prompt (what the
 * model got, or NULL) and its media come with it, st its numbers. */
static void save_turns(chat_state *c, const char *typed, const char *prompt, const g3_gen_stats *st) {
    if (!c->store) return;
    const g3_conversation *conv = g3_session_conversation(c->session);
    g3_error err;
    if (!c->conv_id) {
        const g3_store_settings set = store_settings(c);
        g3_store_conv_fields f = g3_store_conv_fields_defaults();
        f.title = c->title;
        f.preset = c->preset;
        f.system = conv->system ? conv->system : "";
        f.settings = &set;
        if (g3_store_create(c->store, &f, &c->conv_id, &err)) {
            c->conv_id = 0;
            say(c, "error: the conversation was not saved: %s (it goes on in memory; /save FILE writes it as JSON)",
                err.msg);
            return;
        }
        c->n_stored = 0;
        free(c->title);
        c->title = NULL;
    }
    g3_store_attachment_in att[8];
    uint8_t *bytes[8] = {0};
    size_t n_att = 0;
    uint32_t n_images = 0;
    for (int i = 0; i < c->n_media; i++) {
        size_t size;
        if (!(bytes[n_att] = read_media(c, c->media[i], &size))) continue;
        const char *slash = strrchr(c->media[i], '/');
        att[n_att] = (g3_store_attachment_in){.name = slash ? slash + 1 : c->media[i],
                                              .media_type = media_type_of(c->media[i], c->is_video[i]),
                                              .data = bytes[n_att], .size = size};
        n_images++; /* images and videos (text_pos): all of them before the text */
        n_att++;
    }
    const g3_model_record *model = g3_session_model_record(c->session);
    while (c->n_stored + 2 <= conv->n_turns) {
        const g3_turn *q = &conv->turns[c->n_stored], *a = &conv->turns[c->n_stored + 1];
        const bool last = c->n_stored + 2 == conv->n_turns;
        g3_store_user_msg u = {.text = q->text};
        g3_store_answer ans = {.text = a->text, .ids = a->ids, .n_ids = a->n_ids, .model = model};
        if (last) {
            u = (g3_store_user_msg){.text = typed, .prompt_text = prompt, .text_pos = n_images,
                                    .attachments = att, .n_attachments = n_att};
            ans.prompt_tokens = st->n_prefill + st->n_reused;
            ans.cached_tokens = st->n_reused;
            ans.completion_tokens = st->n_generated;
            ans.images_encoded = st->n_encoded;
            ans.dropped_turns = st->n_dropped_turns;
            ans.encode_s = st->encode_s;
            ans.prefill_s = st->prefill_s;
            ans.generate_s = st->generate_s;
            ans.finish_reason = st->stop_reason;
            ans.stopped = !strcmp(st->stop_reason, "cancelled");
        }
        if (g3_store_append(c->store, c->conv_id, &u, &ans, NULL, NULL, &err)) {
            say(c, "error: this turn was not saved: %s (the conversation goes on in memory; the next answer tries "
                   "again, /save FILE writes it as JSON)", err.msg);
            break;
        }
        c->n_stored += 2;
    }
    for (size_t i = 0; i < n_att; i++) free(bytes[i]);
}

/* Replaces the session's conversation with stored conversation id. */
static int open_stored(chat_state *c, int64_t id, g3_error *err) {
    g3_conversation fresh;
    const g3_model_record *model = g3_session_model_record(c->session);
    if (g3_store_to_conversation(c->store, id, model, &fresh, err)) return -1;
    g3_store_conv info;
    const char *preset = "";
    if (g3_store_get(c->store, id, &info, err)) {
        g3_conversation_free(&fresh);
        return -1;
    }
    for (size_t i = 0; i < g3_preset_count(); i++) /* a static string for c->preset */
        if (info.preset && !strcmp(g3_preset_at(i)->key, info.preset)) preset = g3_preset_at(i)->key;
    fresh.model = *model;
    g3_conversation *conv = g3_session_conversation(c->session);
    g3_conversation_free(conv);
    *conv = fresh;
    forget_stored(c);
    c->conv_id = id;
    c->n_stored = conv->n_turns;
    c->preset = preset;
    c->n_dropped = 0;
    char msg[512];
    snprintf(msg, sizeof msg, "conversation %lld: %s (%zu turns)", (long long)id, info.title ? info.title : "",
             conv->n_turns);
    say(c, "%s", msg);
    g3_store_conv_free(&info);
    return 0;
}

static void format_time(int64_t ms, char *buf, size_t n) {
    const time_t t = (time_t)(ms / 1000);
    struct tm tm;
    if (!localtime_r(&t, &tm) || !strftime(buf, n, "%Y-%m-%d %H:%M", &tm)) snprintf(buf, n, "?");
}

static void list_convs(chat_state *c) {
    g3_store_list l;
    g3_error err;
    g3_store_list_params p = {.limit = 20};
    if (g3_store_list_convs(c->store, &p, &l, &err)) {
        say(c, "error: %s", err.msg);
        return;
    }
    if (!l.n) say(c, "%s", "no stored conversations yet");
    for (size_t i = 0; i < l.n; i++) {
        char when[32], line[512];
        format_time(l.items[i].updated_at, when, sizeof when);
        snprintf(line, sizeof line, "%c%6lld  %s  %3u turns  %s", l.items[i].id == c->conv_id ? '*' : ' ',
                 (long long)l.items[i].id, when, l.items[i].n_turns, l.items[i].title ? l.items[i].title : "");
        say(c, "%s", line);
    }
    g3_store_list_free(&l);
}

static bool parse_id(const char *s, int64_t *id) {
    char *end;
    errno = 0;
    const long long v = s ? strtoll(s, &end, 10) : 0;
    if (!s || !*s || *end || errno || v <= 0) return false;
    *id = v;
    return true;
}

static void export_markdown(chat_state *c, const char *path) {
    if (!c->conv_id) {
        say(c, "%s", "nothing to export yet: a conversation is stored with its first answer");
        return;
    }
    char *md, tmp[4200];
    g3_error err;
    if (g3_store_export(c->store, c->conv_id, G3_STORE_MARKDOWN, &md, &err)) {
        say(c, "error: %s", err.msg);
        return;
    }
    snprintf(tmp, sizeof tmp, "%s.tmp", path);
    FILE *f = fopen(tmp, "wb");
    const size_t n = strlen(md);
    bool ok = f && fwrite(md, 1, n, f) == n;
    if (f && fclose(f) != 0) ok = false;
    if (ok && rename(tmp, path) != 0) ok = false;
    if (!ok) {
        char msg[4400];
        snprintf(msg, sizeof msg, "%s: %s", path, strerror(errno));
        if (f) remove(tmp);
        say(c, "error: cannot write %s", msg);
    } else {
        say(c, "exported to %s", path);
    }
    free(md);
}

static void set_title(chat_state *c, const char *title) {
    g3_error err;
    if (!c->conv_id) { /* given to the conversation when its first answer creates it */
        char *copy = strdup(title);
        if (!copy) return;
        free(c->title);
        c->title = copy;
        say(c, "title set: %s", title);
        return;
    }
    g3_store_conv_fields f = g3_store_conv_fields_defaults();
    f.title = title;
    if (g3_store_update(c->store, c->conv_id, &f, &err)) say(c, "error: %s", err.msg);
    else say(c, "title set: %s", title);
}

/* The system prompt or preset changed: the stored conversation follows. */
static void store_system(chat_state *c) {
    if (!c->store || !c->conv_id) return;
    g3_error err;
    g3_store_conv_fields f = g3_store_conv_fields_defaults();
    const g3_conversation *conv = g3_session_conversation(c->session);
    f.system = conv->system ? conv->system : "";
    f.preset = c->preset;
    if (g3_store_update(c->store, c->conv_id, &f, &err)) say(c, "error: the change was not saved: %s", err.msg);
}

/* Returns 1 to quit. */
static int run_command(chat_state *c, char *line) {
    g3_error err;
    g3_conversation *conv = g3_session_conversation(c->session);
    char *arg = strchr(line, ' ');
    if (arg) {
        *arg++ = 0;
        while (*arg == ' ') arg++;
    }
    bool has_arg = arg && *arg;
    if (!strcmp(line, "/quit") || !strcmp(line, "/exit")) return 1;
    if (!strcmp(line, "/help")) help(c);
    else if (!strcmp(line, "/reset")) {
        g3_conversation_clear(conv);
        c->n_dropped = 0;
        forget_stored(c); /* the next answer starts a new stored conversation */
        say(c, "%s", has_pending(c) ? "conversation and attachments cleared" : "conversation cleared");
        clear_pending(c);
    } else if (!strcmp(line, "/system")) {
        if (g3_conversation_set_system(conv, has_arg ? arg : NULL, &err)) say(c, "error: %s", err.msg);
        else {
            say(c, "%s", has_arg ? "system prompt set" : "system prompt cleared");
            store_system(c);
        }
    } else if (!strcmp(line, "/preset")) {
        const g3_preset *p = has_arg ? g3_preset_find(arg) : NULL;
        if (!p) say(c, "unknown preset '%s' (general, document, visual, tutor, reviewer, storyteller, custom)", has_arg ? arg : "");
        else if (g3_conversation_set_system(conv, p->system_prompt, &err)) say(c, "error: %s", err.msg);
        else {
            say(c, "preset: %s", p->name);
            c->preset = p->key;
            store_system(c);
        }
    } else if (!strcmp(line, "/file")) {
        if (!has_arg) say(c, "%s", "usage: /file PATH");
        else attach_file(c, arg);
    } else if (!strcmp(line, "/image") || !strcmp(line, "/video")) {
        if (!c->has_vision) say(c, "%s: images and video need a vision encoder: start with --mmproj FILE "
                                   "(Gemma 3 1B is text-only)", line);
        else if (!has_arg) say(c, "usage: %s PATH", line);
        else attach_media(c, arg, !strcmp(line, "/video"));
    } else if (!strcmp(line, "/save")) {
        if (!has_arg) say(c, "%s", "usage: /save FILE");
        else if (g3_conversation_save(conv, arg, &err)) say(c, "error: %s", err.msg);
        else say(c, "saved to %s", arg);
    } else if (!strcmp(line, "/load")) {
        if (!has_arg) say(c, "%s", "usage: /load FILE");
        else load_conversation(c, arg);
    } else if (!strcmp(line, "/list")) {
        if (store_on(c)) list_convs(c);
    } else if (!strcmp(line, "/open")) {
        int64_t id;
        if (!parse_id(has_arg ? arg : NULL, &id)) say(c, "%s", "usage: /open ID (the ids are in /list)");
        else if (store_on(c) && open_stored(c, id, &err)) say(c, "error: %s (conversation unchanged)", err.msg);
        else if (c->store) clear_pending(c);
    } else if (!strcmp(line, "/title")) {
        if (!has_arg) say(c, "%s", "usage: /title TEXT");
        else if (store_on(c)) set_title(c, arg);
    } else if (!strcmp(line, "/export")) {
        if (!has_arg) say(c, "%s", "usage: /export FILE.md");
        else if (store_on(c)) export_markdown(c, arg);
    } else {
        say(c, "unknown command '%s' (try /help)", line);
    }
    return 0;
}

/* The message with its pending documents in front (malloc'd); NULL when
 * out of memory. */
static char *with_attachments(const chat_state *c, const char *text) {
    const size_t n = c->attach_len + strlen(text) + 2;
    char *message = malloc(n);
    if (message) snprintf(message, n, "%s\n%s", c->attach_len ? c->attachments : "", text);
    return message;
}

static void report_answer(chat_state *c, const g3_gen_stats *st) {
    if (!strcmp(st->stop_reason, "cancelled")) say(c, "%s", "[stopped]");
    if (st->n_dropped_turns > c->n_dropped) {
        const uint32_t n = st->n_dropped_turns - c->n_dropped;
        fprintf(stderr, "(%u earlier turn%s left the context)\n", n, n == 1 ? "" : "s");
    }
    c->n_dropped = st->n_dropped_turns;
    if (c->opts->verbose) app_print_stats(st);
}

static void send_message(chat_state *c, const char *text) {
    char *message = c->attach_len ? with_attachments(c, text) : NULL;
    const char *full = message ? message : text;
    g3_error err = {{0}};
    g3_gen_stats st;
    g_cancel = 0;
    c->printed = 0;
    int rc;
    if (c->attach_len && !message) {
        snprintf(err.msg, sizeof err.msg, "out of memory for the message and its attachments");
        rc = -1;
    } else if (c->n_media) {
        g3_part *parts = NULL;
        size_t n_parts = 0;
        rc = app_media_parts("chat", c->media, c->is_video, c->n_media, c->opts->max_frames, full, &parts, &n_parts);
        if (rc == 0) {
            rc = g3_session_send_parts(c->session, parts, n_parts, &c->opts->gen, print_text, c, &g_cancel, &st, &err);
            g3_parts_free(parts, n_parts);
        }
    } else {
        rc = g3_session_send(c->session, full, &c->opts->gen, print_text, c, &g_cancel, &st, &err);
    }
    if (c->printed || rc == 0) { /* an answer, even a cut one, ends its line */
        putchar('\n');
        fflush(stdout); /* before anything on stderr, and for a program reading the pipe */
    }
    if (rc) {
        if (err.msg[0]) { /* (app_media_parts has said why) */
            char line[sizeof err.msg + 64];
            snprintf(line, sizeof line, "%s%s", err.msg, app_hint(err.msg));
            say(c, "error: %s", line);
        }
        if (has_pending(c)) say(c, "%s", "(the attachments of that message were dropped)");
    } else {
        report_answer(c, &st);
        save_turns(c, text, message, &st);
    }
    clear_pending(c); /* sent with the message, or refused with it: nothing stays pending */
    free(message);
}

/* One line at a terminal, with libedit. NULL at end of input (Ctrl-D);
 * *interrupted when Ctrl-C ended it. */
static char *edit_line(const char *prompt, bool *interrupted) {
    g_cancel = 0;
    char *line = readline(prompt);
    *interrupted = g_cancel != 0;
    g_cancel = 0;
    if (line && *line) add_history(line);
    if (*interrupted) {
        free(line);
        return NULL;
    }
    return line;
}

/* One line, without its end of line, in *line (malloc'd, length *n); -1 at
 * end of input, 1 when Ctrl-C interrupted the prompt. */
static int read_line(chat_state *c, bool continued, char **line, size_t *cap, ssize_t *n) {
    if (c->line_editing) {
        bool interrupted;
        /* prompts go where libedit draws: stdout, or stderr when stdout is redirected */
        const bool shown = c->interactive || isatty(STDERR_FILENO);
        char *got = edit_line(!shown ? "" : continued ? ". " : "> ", &interrupted);
        if (interrupted) return 1;
        if (!got) return -1;
        free(*line);
        *line = got;
        *n = (ssize_t)strlen(got);
        *cap = (size_t)*n + 1;
        return 0;
    }
    errno = 0;
    *n = getline(line, cap, stdin);
    if (*n < 0) {
        if (errno == EINTR && c->interactive) { /* Ctrl-C at the prompt */
            clearerr(stdin);
            g_cancel = 0;
            return 1;
        }
        return -1;
    }
    return 0;
}

/* Reads one message: lines ending in '\' continue. NULL at end of input. */
static char *read_message(chat_state *c) {
    char *msg = NULL, *line = NULL;
    size_t msg_len = 0, cap = 0;
    for (;;) {
        if (c->interactive && !c->line_editing) {
            fputs(msg ? ". " : "> ", stdout);
            fflush(stdout);
        }
        ssize_t n;
        const int r = read_line(c, msg != NULL, &line, &cap, &n);
        if (r > 0) {
            fputs("\n(/quit or Ctrl-D to leave)\n", c->interactive ? stdout : stderr);
            continue;
        }
        if (r < 0) {
            free(line);
            if (msg) return msg; /* a last message without newline */
            return NULL;
        }
        while (n > 0 && (line[n - 1] == '\n' || line[n - 1] == '\r')) line[--n] = 0;
        bool more = n > 0 && line[n - 1] == '\\';
        if (more) line[--n] = 0;
        char *grown = realloc(msg, msg_len + (size_t)n + 2);
        if (!grown) break;
        msg = grown;
        memcpy(msg + msg_len, line, (size_t)n);
        msg_len += (size_t)n;
        if (more) msg[msg_len++] = '\n';
        msg[msg_len] = 0;
        if (!more) break;
    }
    free(line);
    return msg;
}

static void usage(FILE *out) {
    fprintf(out, "usage: gemma-chat chat [-m MODEL] [options]\n"
                 "  --db PATH               the conversation store (default $XDG_DATA_HOME/gemma-chat/chats.db)\n"
                 "  --no-save               keep the conversation in memory only\n"
                 "  --resume [ID]           go on with the latest stored conversation (or conversation ID)\n");
    gen_options_help(out);
}

static int read_byte(FILE *in) {
    for (;;) {
        if (g_cancel) return -1;
        unsigned char b;
        const ssize_t n = read(fileno(in), &b, 1);
        if (n == 1) return b;
        if (n < 0 && errno == EINTR) continue; /* g_cancel decides */
        return -1;
    }
}

/* libedit's character reader: one character as its code point (UTF-8
 * decoded here; invalid bytes become U+FFFD). -1 ends the line as end of
 * input: at end of input, and when Ctrl-C interrupted the read. libedit's
 * own reader may retry an interrupted read, and then a Ctrl-C at the prompt
 * did nothing until the next key (about one in 200 under load, by strace). */
static int chat_getc(FILE *in) {
    const int b = read_byte(in);
    if (b < 0x80) return b;
    if (b < 0xC2 || b > 0xF4) return 0xFFFD;
    const int extra = b >= 0xF0 ? 3 : b >= 0xE0 ? 2 : 1;
    int cp = b & (0x3F >> extra);
    for (int i = 0; i < extra; i++) {
        const int c = read_byte(in);
        if (c < 0) return -1;
        if ((c & 0xC0) != 0x80) return 0xFFFD;
        cp = (cp << 6) | (c & 0x3F);
    }
    return cp;
}

/* libedit's readline(): prompts and editing on stdout, or on stderr when
 * stdout is not a terminal (the answers then go to a file, the editing
 * stays on the screen); Tab inserts a tab (pasted code) instead of
 * completing file names. libedit edits characters through the C library's
 * locale, so LC_CTYPE comes from the environment, or is C.UTF-8 when that
 * is not UTF-8: the chat's text is UTF-8 whatever the locale says. */
static void setup_line_editing(void) {
    const char *loc = setlocale(LC_CTYPE, "");
    if (!loc || strcmp(nl_langinfo(CODESET), "UTF-8") != 0) setlocale(LC_CTYPE, "C.UTF-8");
    rl_readline_name = "gemma-chat";
    rl_instream = stdin;
    rl_outstream = isatty(STDOUT_FILENO) ? stdout : stderr;
    rl_getc_function = chat_getc;
    rl_initialize(); /* history included (using_history() first would set up a second, leaked editor) */
    rl_bind_key('\t', rl_insert);
}

int cmd_chat(int argc, char **argv) {
    const char *cmd = "chat", *system, *db = NULL;
    bool no_save = false, resume = false;
    int64_t resume_id = 0;
    gen_options o;
    gen_options_init(&o);
    for (int i = 1; i < argc; i++) {
        int r = gen_options_parse(cmd, &o, argc, argv, &i);
        if (r < 0) return 2;
        if (r > 0) continue;
        if (!strcmp(argv[i], "--db")) {
            if (i + 1 >= argc || !argv[i + 1][0]) {
                app_error(cmd, "--db needs a file path");
                return 2;
            }
            db = argv[++i];
            continue;
        }
        if (!strcmp(argv[i], "--no-save")) {
            no_save = true;
            continue;
        }
        if (!strcmp(argv[i], "--resume")) {
            resume = true;
            if (i + 1 < argc && argv[i + 1][0] >= '0' && argv[i + 1][0] <= '9' && !parse_id(argv[++i], &resume_id)) {
                app_error(cmd, "--resume takes a conversation id (a positive number), not '%s'", argv[i]);
                return 2;
            }
            continue;
        }
        if (!strcmp(argv[i], "--help")) {
            usage(stdout);
            return 0;
        }
        app_error(cmd, "unknown option '%s'", argv[i]);
        return 2;
    }
    if (gen_options_finish(cmd, &o, &system)) return 2;
    if (no_save && (db || resume)) {
        app_error(cmd, "--no-save turns the store off: it cannot go with %s", db ? "--db" : "--resume");
        return 2;
    }
    if (gen_options_model(cmd, &o)) return 1;
    g3_error err;
    g3_model *model;
    if (gen_options_preflight(cmd, &o)) return 1;
    /* the store first: a file that cannot take the conversation is refused
     * before anything is typed */
    g3_store *store = NULL;
    char db_path[4096];
    if (!no_save) {
        if (!db) {
            if (g3_store_default_path(db_path, sizeof db_path, &err)) {
                app_error(cmd, "the conversation store: %s (--db PATH picks a file; --no-save chats without saving)",
                          err.msg);
                return 1;
            }
            db = db_path;
        }
        if (g3_store_open(db, NULL, &store, &err)) {
            static const char k_hint[] = "--db PATH picks another file; --no-save chats without saving";
            if (strstr(err.msg, db)) app_error(cmd, "%s (%s)", err.msg, k_hint);
            else app_error(cmd, "cannot open the conversation store %s: %s (%s)", db, err.msg, k_hint);
            return 1;
        }
    }
    if (g3_model_load(o.model, &model, &err)) {
        app_error(cmd, "%s", err.msg);
        g3_store_close(store);
        return 1;
    }
    chat_state c = {.opts = &o, .interactive = isatty(STDIN_FILENO) && isatty(STDOUT_FILENO),
                    .line_editing = isatty(STDIN_FILENO), .terminal_out = isatty(STDOUT_FILENO), .store = store,
                    .preset = o.preset && g3_preset_find(o.preset) ? g3_preset_find(o.preset)->key : ""};
    g3_vision *vision = NULL;
    /* Ctrl-C is for the main thread, which reads the prompt: the engine's
     * worker threads, started with the session and the vision encoder,
     * inherit a mask that blocks it. (Delivered to a worker, the signal
     * left the main thread's read blocked until the next key.) */
    sigset_t sigint, old_mask;
    sigemptyset(&sigint);
    sigaddset(&sigint, SIGINT);
    pthread_sigmask(SIG_BLOCK, &sigint, &old_mask);
    int rc = 0;
    if (g3_session_new(model, &o.cp, &c.session, &err) ||
        g3_conversation_set_system(g3_session_conversation(c.session), system, &err)) {
        app_error(cmd, "%s", err.msg);
        rc = 1;
    } else if (gen_options_load_vision(cmd, &o, c.session, &vision)) {
        rc = 1;
    }
    pthread_sigmask(SIG_SETMASK, &old_mask, NULL);
    if (!rc && resume) { /* the latest conversation, or the one named */
        g3_store_list l = {0};
        g3_store_list_params p = {.limit = 1};
        if (!resume_id && g3_store_list_convs(store, &p, &l, &err) == 0) {
            if (l.n) resume_id = l.items[0].id;
            else fprintf(stderr, "gemma-chat: note: %s holds no conversation yet: starting a new one\n", db);
            g3_store_list_free(&l);
        } else if (!resume_id) {
            resume_id = -1;
        }
        if (resume_id < 0 || (resume_id > 0 && open_stored(&c, resume_id, &err))) {
            app_error(cmd, "cannot resume: %s", err.msg);
            rc = 1;
        }
    }
    if (rc) {
        g3_session_free(c.session);
        g3_vision_free(vision);
        g3_model_free(model);
        g3_store_close(store);
        return rc;
    }
    c.has_vision = vision != NULL;
    struct sigaction sa = {.sa_handler = on_sigint}; /* no SA_RESTART: Ctrl-C interrupts reads */
    sigemptyset(&sa.sa_mask);
    sigaction(SIGINT, &sa, NULL);
    if (c.line_editing) setup_line_editing();
    /* A pretrained checkpoint answers a chat turn by continuing the text
     * (often repeating the question): say so before the user wonders. */
    if (c.interactive && !g3_model_is_instruction_tuned(model))
        fprintf(stderr, "gemma-chat: note: this file is a pretrained model (it has no chat template): it continues "
                        "text rather than answering; an instruction-tuned Gemma 3 GGUF (-m FILE) chats properly, and "
                        "`run --raw` gets completions from this one (e.g. -p 'Question: ... Answer:')\n");
    if (c.interactive) {
        if (o.default_model.path[0]) printf("gemma-chat: type /help for commands\n"); /* the model: on stderr */
        else printf("gemma-chat: %s (type /help for commands)\n", o.model);
    }
    char *msg;
    int quit = 0;
    while (!quit && (msg = read_message(&c))) {
        if (msg[0] == '/') quit = run_command(&c, msg);
        else if (msg[0]) send_message(&c, msg);
        free(msg);
    }
    if (!quit && c.interactive) putchar('\n'); /* Ctrl-D: leave the shell's prompt on a line of its own */
    if (c.line_editing) clear_history(); /* the session's lines: history is not kept across runs */
    clear_pending(&c);
    forget_stored(&c);
    g3_store_close(c.store);
    g3_session_free(c.session);
    g3_vision_free(vision);
    g3_model_free(model);
    return 0;
}
