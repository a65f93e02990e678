/* libFuzzer target: the conversation store (src/chat/store.c,
 * store_sqlite.c) on a hostile database file. The bytes are written as the
 * database, then opened, listed, and every listed conversation read back
 * every way the front ends read it: get, JSON and Markdown export,
 * to_conversation (with and without a model record), then the integrity
 * check. A damaged, foreign or malicious file must be refused (at open or
 * per call) or read safely; nothing may crash, leak or read out of bounds.
 * Seeds (fuzz/corpus/store/) are real stores written by gemma-chat with a
 * 512-byte page size, so small mutations stay close to a valid file.
 * Scratch files: $TMPDIR (else /tmp)/g3-fuzz-store-PID.db and its -wal,
 * -shm and -journal, removed after each input. */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "gemma3_chat.h"
#include "gemma3_store.h"

static char g_path[512];

static void remove_files(void) {
    static const char *const suffixes[] = {"", "-wal", "-shm", "-journal"};
    char p[600];
    for (size_t i = 0; i < sizeof suffixes / sizeof suffixes[0]; i++) {
        snprintf(p, sizeof p, "%s%s", g_path, suffixes[i]);
        unlink(p);
    }
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    if (!g_path[0]) {
        const char *dir = getenv("TMPDIR");
        snprintf(g_path, sizeof g_path, "%s/g3-fuzz-store-%d.db", dir && dir[0] ? dir : "/tmp", (int)getpid());
    }
    remove_files();
    FILE *f = fopen(g_path, "wb");
    if (!f) return 0;
    if (size && fwrite(data, 1, size, f) != size) {
        fclose(f);
        remove_files();
        return 0;
    }
    fclose(f);

    g3_store_options opts = {.busy_timeout_ms = 50};
    g3_store *st = NULL;
    g3_error err;
    err.msg[0] = 0;
    if (g3_store_open(g_path, &opts, &st, &err) != 0) {
        if (st || !err.msg[0]) abort(); /* a refusal hands back nothing and says why */
        remove_files();
        return 0;
    }
    g3_model_record model;
    memset(&model, 0, sizeof model);
    snprintf(model.name, sizeof model.name, "fuzz");
    model.n_vocab = 262144;
    model.vocab_fingerprint = 0x0123456789abcdefull;

    g3_store_list_params lp = {.limit = 1000};
    g3_store_list list;
    if (g3_store_list_convs(st, &lp, &list, &err) == 0) {
        for (size_t i = 0; i < list.n; i++) {
            int64_t id = list.items[i].id;
            g3_store_conv c;
            if (g3_store_get(st, id, &c, &err) == 0) {
                char *j = g3_store_conv_to_json(&c);
                char *m = g3_store_conv_to_markdown(&c);
                free(j);
                free(m);
                for (size_t t = 0; t < c.n_turns; t++)
                    for (size_t a = 0; a < c.turns[t].n_attachments; a++) {
                        g3_store_attachment att;
                        if (g3_store_attachment_get(st, c.turns[t].attachments[a].id, &att, &err) == 0)
                            g3_store_attachment_free(&att);
                    }
                g3_store_conv_free(&c);
            }
            char *out = NULL;
            if (g3_store_export(st, id, G3_STORE_JSON, &out, &err) == 0) free(out);
            out = NULL;
            if (g3_store_export(st, id, G3_STORE_MARKDOWN, &out, &err) == 0) free(out);
            g3_conversation conv;
            if (g3_store_to_conversation(st, id, NULL, &conv, &err) == 0) g3_conversation_free(&conv);
            if (g3_store_to_conversation(st, id, &model, &conv, &err) == 0) g3_conversation_free(&conv);
        }
        g3_store_list_free(&list);
    }
    g3_store_check(st, &err);
    g3_store_close(st);
    remove_files();
    return 0;
}
