/* gemma-chat run: one answer to stdout, for scripts. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "app/app.h"
#include "app/gen_options.h"
#include "gemma3_vision.h"

void app_print_answer(const char *text, size_t len, bool terminal) {
    char buf[1024];
    while (terminal && len) { /* 4 bytes out per byte in, at most */
        size_t n = len < sizeof buf / 4 ? len : sizeof buf / 4;
        if (n < len && (unsigned char)text[n - 1] == 0xC2) n--; /* keep a C1 control's two bytes together */
        fwrite(buf, 1, g3_escape_for_terminal(text, n, buf), stdout);
        text += n;
        len -= n;
    }
    fwrite(text, 1, len, stdout);
    fflush(stdout);
}

static bool print_text(const char *text, size_t len, void *user) {
    app_print_answer(text, len, *(const bool *)user);
    return true;
}

static void usage(FILE *out) {
    fprintf(out, "usage: gemma-chat run [-m MODEL] (-p TEXT | -f FILE) [--raw] [options]\n"
                 "  -p, --prompt TEXT       the user message (chat template applied)\n"
                 "  -f, --file FILE         read the prompt from a file instead\n"
                 "  --raw                   feed TEXT as is (special tokens parsed, <bos> added)\n"
                 "  --image PATH            an image before the text (repeatable; needs --mmproj)\n"
                 "  --video PATH            a video, as --max-frames frames with their times (needs --mmproj)\n");
    gen_options_help(out);
}

void app_print_stats(const g3_gen_stats *st) {
    if (st->n_encoded)
        fprintf(stderr, "encoded %u image%s in %.1f s; ", st->n_encoded, st->n_encoded == 1 ? "" : "s",
                st->encode_s);
    fprintf(stderr, "prefill %u tokens (%u reused), %.1f tok/s; generated %u tokens, %.1f tok/s; stop: %s\n",
            st->n_prefill, st->n_reused, st->n_prefill / (st->prefill_s + 1e-9), st->n_generated,
            st->n_generated / (st->generate_s + 1e-9), st->stop_reason);
}

int cmd_run(int argc, char **argv) {
    const char *cmd = "run", *prompt = NULL, *prompt_file = NULL, *system;
    const char *media[16];
    bool is_video[16];
    int n_media = 0;
    char *file_text = NULL;
    bool raw = false;
    gen_options o;
    gen_options_init(&o);
    for (int i = 1; i < argc; i++) {
        int r = gen_options_parse(cmd, &o, argc, argv, &i);
        if (r < 0) return 2;
        if (r > 0) continue;
        if (!strcmp(argv[i], "--help")) {
            usage(stdout);
            return 0;
        } else if (!strcmp(argv[i], "--raw")) {
            raw = true;
        } else if (!strcmp(argv[i], "-p") || !strcmp(argv[i], "--prompt")) {
            if (!(prompt = app_flag_value(cmd, argc, argv, &i))) return 2;
        } else if (!strcmp(argv[i], "-f") || !strcmp(argv[i], "--file")) {
            if (!(prompt_file = app_flag_value(cmd, argc, argv, &i))) return 2;
        } else if (!strcmp(argv[i], "--image") || !strcmp(argv[i], "--video")) {
            if (n_media == 16) {
                app_error(cmd, "at most 16 --image/--video files");
                return 2;
            }
            is_video[n_media] = !strcmp(argv[i], "--video");
            if (!(media[n_media++] = app_flag_value(cmd, argc, argv, &i))) return 2;
        } else {
            app_error(cmd, "unknown option '%s'", argv[i]);
            return 2;
        }
    }
    if (gen_options_finish(cmd, &o, &system)) return 2;
    if (!prompt == !prompt_file) {
        app_error(cmd, "give the prompt with -p TEXT or -f FILE");
        return 2;
    }
    if (prompt_file && !(prompt = file_text = app_read_text_file(cmd, prompt_file))) return 2;
    if (gen_options_model(cmd, &o)) {
        free(file_text);
        return 1;
    }
    g3_error err;
    g3_model *model;
    g3_session *s = NULL;
    if (gen_options_preflight(cmd, &o)) {
        free(file_text);
        return 1;
    }
    if (g3_model_load(o.model, &model, &err)) {
        app_error(cmd, "%s", err.msg);
        free(file_text);
        return 1;
    }
    int rc = 1;
    bool terminal = isatty(STDOUT_FILENO); /* escape control bytes there; pipes get them as they are */
    g3_gen_stats st;
    g3_vision *vision = NULL;
    g3_part *parts = NULL;
    size_t n_parts = 0;
    if (raw && n_media) {
        app_error(cmd, "--raw takes no --image or --video (images need the chat template)");
        rc = 2;
    } else if (g3_session_new(model, &o.cp, &s, &err)) {
        app_error(cmd, "%s", err.msg);
    } else if (gen_options_load_vision(cmd, &o, s, &vision) ||
               app_media_parts(cmd, media, is_video, n_media, o.max_frames, prompt, &parts, &n_parts)) {
        /* message printed */
    } else if ((!raw && g3_conversation_set_system(g3_session_conversation(s), system, &err)) ||
               (raw ? g3_session_complete_raw(s, prompt, &o.gen, print_text, &terminal, NULL, &st, &err)
                    : g3_session_send_parts(s, parts, n_parts, &o.gen, print_text, &terminal, NULL, &st, &err))) {
        fflush(stdout);
        app_error(cmd, "%s%s", err.msg, app_hint(err.msg));
    } else {
        printf("\n");
        fflush(stdout); /* before the stats on stderr */
        if (o.verbose) app_print_stats(&st);
        rc = 0;
    }
    g3_parts_free(parts, n_parts);
    g3_session_free(s);
    g3_vision_free(vision);
    g3_model_free(model);
    free(file_text);
    return rc;
}
