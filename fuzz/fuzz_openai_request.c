/* libFuzzer target: a POST /v1/chat/completions body through the OpenAI
 * request parser (src/server/openai_request.c), with images as data: URLs
 * decoded and sniffed there. The first byte picks the limits (vision on or
 * off, a tiny or a normal context, a model name to match or any), the rest
 * is the body, not NUL-terminated (the HTTP layer hands over a length).
 * A refusal must say why with a 4xx/5xx status; an accepted request must
 * hold a conversation that ends with the user and serializes. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "gemma3_chat.h"
#include "server/openai_request.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    if (size == 0) return 0;
    uint8_t mode = data[0];
    data++;
    size--;
    srv_request_limits lim = {
        .n_ctx = (mode & 1) ? 16 : 4096,
        .has_vision = (mode & 2) != 0,
        .max_image_bytes = (mode & 4) ? 64 : (size_t)1 << 20,
        .model_id = (mode & 8) ? "gemma-3-tiny" : NULL,
        .model_name = (mode & 8) ? "g3-1b-s1234-q8_0" : NULL,
    };
    /* an exact-size, unterminated copy: a parser reading to a NUL would run off the end */
    char *body = malloc(size ? size : 1);
    if (!body) return 0;
    if (size) memcpy(body, data, size);
    srv_chat_request r;
    srv_error e;
    memset(&e, 0, sizeof e);
    if (srv_chat_request_parse(body, size, &lim, &r, &e) == 0) {
        if (r.conv.n_turns == 0 || r.conv.turns[r.conv.n_turns - 1].role != G3_ROLE_USER) abort();
        if (r.n_images > SRV_MAX_IMAGES || (r.n_images && !lim.has_vision)) abort();
        if (r.gen.max_new_tokens > lim.n_ctx) abort();
        char *json = g3_conversation_to_json(&r.conv);
        free(json);
        srv_chat_request_free(&r);
    } else if (e.status < 400 || e.status > 599 || !e.message[0]) {
        abort(); /* every refusal is an HTTP error with a message */
    }
    free(body);
    return 0;
}
