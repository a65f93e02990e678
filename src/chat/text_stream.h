/* text_stream.h: an answer's text as it is generated, with stop strings.
 *
 * Pieces of text are appended as tokens are detokenized; text that could
 * still turn into a stop string is held back until it cannot, so a stop
 * string never reaches the reader, even in part. When one appears, the text
 * is cut where it starts. A NUL byte (a model can emit the byte token
 * <0x00>) is dropped: the text is a C string for every reader after this
 * (the conversation, the store, JSON), which would end it there and lose
 * the rest of the answer. */
#ifndef G3_CHAT_TEXT_STREAM_H
#define G3_CHAT_TEXT_STREAM_H

#include <stdbool.h>
#include <stddef.h>

#include "gemma3_chat.h"

typedef struct g3_text_stream {
    char *text;               /* the answer so far, NUL-terminated (malloc'd) */
    size_t len, cap, emitted; /* emitted: bytes handed to on_text */
    const char *const *stop;  /* NULL-terminated, or NULL; empty strings are ignored */
    g3_on_text on_text;
    void *user;
    bool stopped_by_string, stopped_by_callback;
    bool dropped_nul; /* a NUL byte was left out: the text is not exactly the tokens */
} g3_text_stream;

/* Adds a piece (no terminating NUL needed; NUL bytes in it are dropped).
 * Fails only when out of memory. */
int g3_text_stream_append(g3_text_stream *o, const char *piece, size_t n, g3_error *err);
/* Looks for stop strings and hands the text that is safe to on_text; with
 * final, everything left. */
void g3_text_stream_update(g3_text_stream *o, bool final);
void g3_text_stream_free(g3_text_stream *o);

#endif
