/* prompt.h: prompt assembly internals shared by the chat layer. */
#ifndef G3_CHAT_PROMPT_H
#define G3_CHAT_PROMPT_H

#include "gemma3_chat.h"

/* Images in a rendered prompt: each takes n_tokens positions holding the
 * same negative id, one per distinct image (from image_id), so comparing two
 * renderings compares images by identity. */
typedef struct g3_render_images {
    uint32_t n_tokens;
    g3_image_wrap wrap;
    /* A negative id for the part's image; 0 on failure (message in err). */
    int32_t (*image_id)(void *user, const g3_part *part, g3_error *err);
    void *user;
} g3_render_images;

/* As g3_chat_render, but starting at turn `first` (even: a user turn; the
 * system prompt folds into that turn), and with images (img may be NULL
 * when the conversation has none). Used to drop the oldest turns when a
 * conversation outgrows the context. */
int g3_chat_render_from(const g3_tokenizer *tok, const g3_conversation *c, size_t first,
                        bool add_generation_prompt, const g3_render_images *img, int32_t **ids, size_t *n_ids,
                        g3_error *err);

#endif
