/* prompt.c: the Gemma 3 chat template, rendered straight into token ids.
 *
 * The official template (golden/tokenizer/chat_template.jinja) produces
 *   <bos><start_of_turn>user\n{system}\n\n{text}<end_of_turn>\n<start_of_turn>model\n...
 * with the system prompt folded into the first user turn, message text
 * trimmed, and "assistant" written as "model". Here the control tokens are
 * inserted as ids and every text run between two of them is tokenized
 * without special-token parsing. Since control tokens always split the
 * tokenizer's input, this gives the ids the template + tokenizer would give,
 * except that text a user types can never become a control token. */
#include <stdlib.h>
#include <string.h>

#include "base/error.h"
#include "chat/prompt.h"
#include "gemma3_chat.h"

typedef struct id_buf {
    int32_t *ids;
    size_t n, cap;
} id_buf;

static int push(id_buf *b, const int32_t *ids, size_t n, g3_error *err) {
    if (b->n + n > b->cap) {
        size_t cap = b->cap ? b->cap : 256;
        while (cap < b->n + n) cap *= 2;
        int32_t *grown = realloc(b->ids, cap * sizeof *grown);
        if (!grown) return g3_fail(err, "out of memory rendering the conversation");
        b->ids = grown;
        b->cap = cap;
    }
    memcpy(b->ids + b->n, ids, n * sizeof *ids);
    b->n += n;
    return 0;
}

static int push_id(id_buf *b, int32_t id, g3_error *err) { return push(b, &id, 1, err); }

static int push_text(id_buf *b, const g3_tokenizer *tok, const char *text, size_t len, g3_error *err) {
    if (len == 0) return 0;
    int32_t *ids;
    size_t n;
    if (g3_tokenize(tok, text, len, false, false, &ids, &n, err)) return -1;
    int rc = push(b, ids, n, err);
    free(ids);
    return rc;
}

/* Jinja's trim: leading and trailing whitespace. */
static void trim(const char *s, const char **start, size_t *len) {
    size_t n = strlen(s), a = 0;
    while (a < n && strchr(" \t\n\r\v\f", s[a])) a++;
    while (n > a && strchr(" \t\n\r\v\f", s[n - 1])) n--;
    *start = s + a;
    *len = n - a;
}

/* The text run of one turn: "user\n" [+ system "\n\n"] + trimmed text. */
static int push_turn_text(id_buf *b, const g3_tokenizer *tok, const char *role, const char *system,
                          const char *text, g3_error *err) {
    const char *body;
    size_t body_len;
    trim(text, &body, &body_len);
    size_t sys_len = system ? strlen(system) : 0;
    size_t len = strlen(role) + 1 + (sys_len ? sys_len + 2 : 0) + body_len;
    char *run = malloc(len + 1);
    if (!run) return g3_fail(err, "out of memory rendering the conversation");
    char *p = run;
    p += sprintf(p, "%s\n", role);
    if (sys_len) {
        memcpy(p, system, sys_len);
        memcpy(p + sys_len, "\n\n", 2);
        p += sys_len + 2;
    }
    memcpy(p, body, body_len);
    int rc = push_text(b, tok, run, len, err);
    free(run);
    return rc;
}

int g3_chat_render(const g3_tokenizer *tok, const g3_conversation *c, bool add_generation_prompt,
                   int32_t **ids, size_t *n_ids, g3_error *err) {
    return g3_chat_render_from(tok, c, 0, add_generation_prompt, ids, n_ids, err);
}

int g3_chat_render_from(const g3_tokenizer *tok, const g3_conversation *c, size_t first,
                        bool add_generation_prompt, int32_t **ids, size_t *n_ids, g3_error *err) {
    const int32_t bos = g3_tokenizer_bos(tok), sot = g3_tokenizer_find(tok, "<start_of_turn>"),
                  eot = g3_tokenizer_find(tok, "<end_of_turn>");
    if (bos < 0 || sot < 0 || eot < 0)
        return g3_fail(err, "the vocabulary lacks <bos>, <start_of_turn> or <end_of_turn>: not a Gemma chat model");
    id_buf b = {0};
    if (push_id(&b, bos, err)) goto fail;
    for (size_t i = first; i < c->n_turns; i++) {
        const g3_turn *t = &c->turns[i];
        const bool user = t->role == G3_ROLE_USER;
        const char *system = i == first && user ? c->system : NULL;
        if (push_id(&b, sot, err)) goto fail;
        if (!user && t->n_ids) {
            /* the model's own ids, as generated: the KV cache holds exactly these */
            if (push_text(&b, tok, "model\n", 6, err) || push(&b, t->ids, t->n_ids, err)) goto fail;
        } else if (push_turn_text(&b, tok, user ? "user" : "model", system, t->text, err)) {
            goto fail;
        }
        if (push_id(&b, eot, err) || push_text(&b, tok, "\n", 1, err)) goto fail;
    }
    if (add_generation_prompt && (push_id(&b, sot, err) || push_text(&b, tok, "model\n", 6, err))) goto fail;
    *ids = b.ids;
    *n_ids = b.n;
    return 0;
fail:
    free(b.ids);
    return -1;
}
