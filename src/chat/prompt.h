/* prompt.h: prompt assembly internals shared by the chat layer. */
#ifndef G3_CHAT_PROMPT_H
#define G3_CHAT_PROMPT_H

#include "gemma3_chat.h"

/* As g3_chat_render, but starting at turn `first` (even: a user turn); the
 * system prompt folds into that turn. Used to drop the oldest turns when a
 * conversation outgrows the context. */
int g3_chat_render_from(const g3_tokenizer *tok, const g3_conversation *c, size_t first,
                        bool add_generation_prompt, int32_t **ids, size_t *n_ids, g3_error *err);

#endif
