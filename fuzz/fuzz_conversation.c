/* libFuzzer target: loading a saved conversation from arbitrary JSON; a
 * failed load must leave the open conversation exactly as it was. */
#include <stdlib.h>
#include <string.h>

#include "gemma3_chat.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    char *text = malloc(size + 1);
    if (!text) return 0;
    memcpy(text, data, size);
    text[size] = 0;
    g3_conversation c;
    g3_conversation_init(&c);
    g3_error err;
    g3_conversation_add(&c, G3_ROLE_USER, "kept", NULL, 0, &err);
    if (g3_conversation_from_json(&c, text, &err) != 0 && (c.n_turns != 1 || strcmp(c.turns[0].text, "kept") != 0))
        abort();
    char *json = g3_conversation_to_json(&c);
    free(json);
    g3_conversation_free(&c);
    free(text);
    return 0;
}
