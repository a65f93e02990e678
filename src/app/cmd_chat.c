/* gemma-chat chat: the terminal chat.
 * Each line is a message (end a line with '\' to continue it on the next);
 * lines starting with '/' are commands. Piped stdin works the same way
 * without prompts. Ctrl-C stops the current answer; /quit or Ctrl-D leaves. */
#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "app/app.h"
#include "app/gen_options.h"
#include "gemma3_media.h"
#include "gemma3_vision.h"

static volatile int g_cancel;

static void on_sigint(int sig) {
    (void)sig;
    g_cancel = 1;
}

typedef struct chat_state {
    g3_session *session;
    gen_options *opts;
    bool interactive;
    char *attachments; /* documents waiting for the next message */
    size_t attach_len;
    const char *media[8]; /* images and videos waiting for the next message */
    bool is_video[8];
    char *media_owned[8];
    int n_media;
    bool has_vision;
} chat_state;

static bool print_text(const char *text, size_t len, void *user) {
    fwrite(text, 1, len, stdout);
    fflush(stdout);
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
        "  /load FILE          load a saved conversation\n"
        "  /quit               leave (Ctrl-D works too; Ctrl-C stops an answer)");
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

static void clear_media(chat_state *c) {
    for (int i = 0; i < c->n_media; i++) free(c->media_owned[i]);
    c->n_media = 0;
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
        say(c, "%s", "conversation cleared");
    } else if (!strcmp(line, "/system")) {
        if (g3_conversation_set_system(conv, has_arg ? arg : NULL, &err)) say(c, "error: %s", err.msg);
        else say(c, "%s", has_arg ? "system prompt set" : "system prompt cleared");
    } else if (!strcmp(line, "/preset")) {
        const g3_preset *p = has_arg ? g3_preset_find(arg) : NULL;
        if (!p) say(c, "unknown preset '%s' (general, document, visual, tutor, reviewer, storyteller, custom)", has_arg ? arg : "");
        else if (g3_conversation_set_system(conv, p->system_prompt, &err)) say(c, "error: %s", err.msg);
        else say(c, "preset: %s", p->name);
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
        else if (g3_conversation_load(conv, arg, &err)) say(c, "error: %s (conversation unchanged)", err.msg);
        else say(c, "loaded %s", arg);
    } else {
        say(c, "unknown command '%s' (try /help)", line);
    }
    return 0;
}

static void send_message(chat_state *c, const char *text) {
    char *message = NULL;
    if (c->attach_len) {
        size_t n = c->attach_len + strlen(text) + 2;
        message = malloc(n);
        if (!message) {
            say(c, "error: %s", "out of memory");
            return;
        }
        snprintf(message, n, "%s\n%s", c->attachments, text);
    }
    g3_error err;
    g3_gen_stats st;
    g_cancel = 0;
    g3_part *parts = NULL;
    size_t n_parts = 0;
    int rc;
    if (c->n_media) {
        if (app_media_parts("chat", c->media, c->is_video, c->n_media, c->opts->max_frames, message ? message : text,
                            &parts, &n_parts)) {
            free(message);
            return;
        }
        rc = g3_session_send_parts(c->session, parts, n_parts, &c->opts->gen, print_text, NULL, &g_cancel, &st, &err);
        g3_parts_free(parts, n_parts);
    } else {
        rc = g3_session_send(c->session, message ? message : text, &c->opts->gen, print_text, NULL, &g_cancel, &st, &err);
    }
    if (rc) {
        fflush(stdout);
        say(c, "\nerror: %s", err.msg);
    } else {
        clear_media(c);
        printf("\n");
        if (!strcmp(st.stop_reason, "cancelled")) say(c, "%s", "[stopped]");
        if (c->opts->verbose) app_print_stats(&st);
        free(c->attachments); /* sent: attachments belong to that message now */
        c->attachments = NULL;
        c->attach_len = 0;
    }
    free(message);
}

/* Reads one message: lines ending in '\' continue. NULL at end of input. */
static char *read_message(chat_state *c) {
    char *msg = NULL, *line = NULL;
    size_t msg_len = 0, cap = 0;
    for (;;) {
        if (c->interactive) {
            fputs(msg ? ". " : "> ", stdout);
            fflush(stdout);
        }
        errno = 0;
        ssize_t n = getline(&line, &cap, stdin);
        if (n < 0) {
            if (errno == EINTR && c->interactive) { /* Ctrl-C at the prompt */
                clearerr(stdin);
                g_cancel = 0;
                fputs("\n(/quit or Ctrl-D to leave)\n", stdout);
                continue;
            }
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
    fprintf(out, "usage: gemma-chat chat -m MODEL [options]\n");
    gen_options_help(out);
}

int cmd_chat(int argc, char **argv) {
    const char *cmd = "chat", *system;
    gen_options o;
    gen_options_init(&o);
    for (int i = 1; i < argc; i++) {
        int r = gen_options_parse(cmd, &o, argc, argv, &i);
        if (r < 0) return 2;
        if (r > 0) continue;
        if (!strcmp(argv[i], "--help")) {
            usage(stdout);
            return 0;
        }
        app_error(cmd, "unknown option '%s'", argv[i]);
        return 2;
    }
    if (gen_options_finish(cmd, &o, &system)) return 2;
    g3_error err;
    g3_model *model;
    if (gen_options_preflight(cmd, &o)) return 1;
    if (g3_model_load(o.model, &model, &err)) {
        app_error(cmd, "%s", err.msg);
        return 1;
    }
    chat_state c = {.opts = &o, .interactive = isatty(STDIN_FILENO) && isatty(STDOUT_FILENO)};
    g3_vision *vision = NULL;
    if (g3_session_new(model, &o.cp, &c.session, &err) ||
        g3_conversation_set_system(g3_session_conversation(c.session), system, &err)) {
        app_error(cmd, "%s", err.msg);
        g3_session_free(c.session);
        g3_model_free(model);
        return 1;
    }
    if (gen_options_load_vision(cmd, &o, c.session, &vision)) {
        g3_session_free(c.session);
        g3_model_free(model);
        return 1;
    }
    c.has_vision = vision != NULL;
    struct sigaction sa = {.sa_handler = on_sigint}; /* no SA_RESTART: Ctrl-C interrupts reads */
    sigemptyset(&sa.sa_mask);
    sigaction(SIGINT, &sa, NULL);
    if (c.interactive) printf("gemma-chat: %s (type /help for commands)\n", o.model);
    char *msg;
    while ((msg = read_message(&c))) {
        int quit = 0;
        if (msg[0] == '/') quit = run_command(&c, msg);
        else if (msg[0]) send_message(&c, msg);
        free(msg);
        if (quit) break;
    }
    free(c.attachments);
    clear_media(&c);
    g3_session_free(c.session);
    g3_vision_free(vision);
    g3_model_free(model);
    return 0;
}
