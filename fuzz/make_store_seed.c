/* make_store_seed: writes the store seeds of fuzz/corpus/store/ (real
 * stores made through the public API, so the fuzzer starts from files that
 * open). Run once by hand; the output is committed after shrinking:
 *   fuzz_make_store_seed OUT.db KIND        (KIND 0: empty store;
 *     1: two conversations, turns with ids, a stopped answer, an image and
 *     a document attachment, settings, a title set by hand)
 *   sqlite3 OUT.db 'PRAGMA journal_mode=DELETE; PRAGMA page_size=512; VACUUM;'
 * The model record matches the one fuzz_store.c passes to
 * to_conversation, so stored ids are reused there. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "gemma3_store.h"

int main(int argc, char **argv) {
    if (argc != 3) {
        fprintf(stderr, "usage: %s OUT.db KIND\n", argv[0]);
        return 2;
    }
    g3_store *st;
    g3_error err;
    if (g3_store_open(argv[1], NULL, &st, &err)) {
        fprintf(stderr, "%s\n", err.msg);
        return 1;
    }
    if (atoi(argv[2]) == 1) {
        g3_model_record model;
        memset(&model, 0, sizeof model);
        snprintf(model.name, sizeof model.name, "fuzz");
        model.n_vocab = 262144;
        model.vocab_fingerprint = 0x0123456789abcdefull;
        g3_store_settings set = g3_store_settings_defaults();
        set.max_tokens = 64;
        set.temperature = 0.0f;
        g3_store_conv_fields f = {.title = "Seed", .preset = "general", .system = "Be brief.", .settings = &set};
        int64_t a, b;
        static const uint8_t png[] = {0x89, 'P', 'N', 'G', '\r', '\n', 0x1a, '\n', 0, 0, 0, 13, 'I', 'H', 'D', 'R'};
        g3_store_attachment_in atts[2] = {
            {.name = "dot.png", .media_type = "image/png", .data = png, .size = sizeof png},
            {.name = "notes.txt", .media_type = "text/plain", .data = (const uint8_t *)"hello\n", .size = 6},
        };
        int32_t ids[] = {2, 9259, 236888, 1};
        g3_store_user_msg u1 = {.text = "Hi there", .prompt_text = "Hi there\n\nnotes.txt:\nhello",
                                .text_pos = 1, .attachments = atts, .n_attachments = 2};
        g3_store_answer a1 = {.text = "Hello!", .ids = ids, .n_ids = 4, .prompt_tokens = 12, .completion_tokens = 4,
                              .finish_reason = "end_of_turn", .model = &model, .generate_s = 0.25};
        g3_store_user_msg u2 = {.text = "Tell me more \xC3\xA9\xE2\x82\xAC"};
        g3_store_answer a2 = {.text = "Well, ", .stopped = true, .finish_reason = "cancelled"};
        g3_store_conv_fields f2 = g3_store_conv_fields_defaults();
        if (g3_store_create(st, &f, &a, &err) || g3_store_append(st, a, &u1, &a1, NULL, NULL, &err) ||
            g3_store_append(st, a, &u2, &a2, NULL, NULL, &err) || g3_store_create(st, &f2, &b, &err) ||
            g3_store_append(st, b, &u2, &a1, NULL, NULL, &err)) {
            fprintf(stderr, "%s\n", err.msg);
            g3_store_close(st);
            return 1;
        }
    }
    g3_store_close(st);
    return 0;
}
