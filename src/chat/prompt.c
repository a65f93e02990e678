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

/* Text between two control tokens, built up and then tokenized at once:
 * the tokenizer sees exactly the string the official template would. */
typedef struct text_run {
    char *s;
    size_t len, cap;
} text_run;

static int run_add(text_run *r, const char *s, size_t n, g3_error *err) {
    if (r->len + n + 1 > r->cap) {
        size_t cap = r->cap ? r->cap : 256;
        while (cap < r->len + n + 1) cap *= 2;
        char *grown = realloc(r->s, cap);
        if (!grown) return g3_fail(err, "out of memory rendering the conversation");
        r->s = grown;
        r->cap = cap;
    }
    memcpy(r->s + r->len, s, n);
    r->len += n;
    r->s[r->len] = 0;
    return 0;
}

static int run_add_trimmed(text_run *r, const char *text, g3_error *err) {
    const char *body;
    size_t len;
    trim(text, &body, &len);
    return run_add(r, body, len, err);
}

static int run_flush(text_run *r, id_buf *b, const g3_tokenizer *tok, g3_error *err) {
    int rc = push_text(b, tok, r->s, r->len, err);
    r->len = 0;
    return rc;
}

/* The official processor writes "\n\n<start_of_image>" + soft tokens +
 * "<end_of_image>\n\n"; the newlines join the text around them. */
static int push_image(id_buf *b, text_run *r, const g3_tokenizer *tok, const g3_render_images *img,
                      const g3_part *part, g3_error *err) {
    if (!img) return g3_fail(err, "the message holds an image but no vision encoder is loaded (give --mmproj)");
    const int32_t soi = g3_tokenizer_find(tok, "<start_of_image>"), eoi = g3_tokenizer_find(tok, "<end_of_image>");
    if (soi < 0 || eoi < 0) return g3_fail(err, "the vocabulary lacks <start_of_image>/<end_of_image>");
    int32_t id = img->image_id(img->user, part, err);
    if (id >= 0) return -1;
    const bool official = img->wrap == G3_IMAGE_WRAP_OFFICIAL;
    if ((official && run_add(r, "\n\n", 2, err)) || run_flush(r, b, tok, err) || push_id(b, soi, err)) return -1;
    for (uint32_t i = 0; i < img->n_tokens; i++)
        if (push_id(b, id, err)) return -1;
    if (push_id(b, eoi, err) || (official && run_add(r, "\n\n", 2, err))) return -1;
    return 0;
}

/* One turn after <start_of_turn>: "user\n" [+ system "\n\n"] + its content. */
static int push_turn(id_buf *b, const g3_tokenizer *tok, const g3_turn *t, const char *system,
                     const g3_render_images *img, g3_error *err) {
    const bool user = t->role == G3_ROLE_USER;
    text_run r = {0};
    int rc = run_add(&r, user ? "user\n" : "model\n", user ? 5 : 6, err);
    if (rc == 0 && system && *system)
        rc = run_add(&r, system, strlen(system), err) || run_add(&r, "\n\n", 2, err) ? -1 : 0;
    if (rc == 0 && !user && t->n_ids) {
        /* the model's own ids, as generated: the KV cache holds exactly these */
        rc = run_flush(&r, b, tok, err) || push(b, t->ids, t->n_ids, err) ? -1 : 0;
    } else if (rc == 0 && t->n_parts) {
        for (size_t k = 0; rc == 0 && k < t->n_parts; k++)
            rc = t->parts[k].type == G3_PART_TEXT ? run_add_trimmed(&r, t->parts[k].text, err)
                                                 : push_image(b, &r, tok, img, &t->parts[k], err);
    } else if (rc == 0) {
        rc = run_add_trimmed(&r, t->text, err);
    }
    if (rc == 0) rc = run_flush(&r, b, tok, err);
    free(r.s);
    return rc;
}

int g3_chat_render(const g3_tokenizer *tok, const g3_conversation *c, bool add_generation_prompt,
                   int32_t **ids, size_t *n_ids, g3_error *err) {
    return g3_chat_render_from(tok, c, 0, add_generation_prompt, NULL, ids, n_ids, err);
}

int g3_chat_render_from(const g3_tokenizer *tok, const g3_conversation *c, size_t first,
                        bool add_generation_prompt, const g3_render_images *img, int32_t **ids, size_t *n_ids,
                        g3_error *err) {
    const int32_t bos = g3_tokenizer_bos(tok), sot = g3_tokenizer_find(tok, "<start_of_turn>"),
                  eot = g3_tokenizer_find(tok, "<end_of_turn>");
    if (bos < 0 || sot < 0 || eot < 0)
        return g3_fail(err, "the vocabulary lacks <bos>, <start_of_turn> or <end_of_turn>: not a Gemma chat model");
    id_buf b = {0};
    if (push_id(&b, bos, err)) goto fail;
    for (size_t i = first; i < c->n_turns; i++) {
        const g3_turn *t = &c->turns[i];
        const char *system = i == first && t->role == G3_ROLE_USER ? c->system : NULL;
        if (push_id(&b, sot, err) || push_turn(&b, tok, t, system, img, err) || push_id(&b, eot, err) ||
            push_text(&b, tok, "\n", 1, err))
            goto fail;
    }
    if (add_generation_prompt && (push_id(&b, sot, err) || push_text(&b, tok, "model\n", 6, err))) goto fail;
    *ids = b.ids;
    *n_ids = b.n;
    return 0;
fail:
    free(b.ids);
    return -1;
}
