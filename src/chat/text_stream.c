#include "chat/text_stream.h"

#include <stdlib.h>
#include <string.h>

#include "base/error.h"

int g3_text_stream_append(g3_text_stream *o, const char *piece, size_t n, g3_error *err) {
    if (o->len + n + 1 > o->cap) {
        size_t cap = o->cap ? o->cap * 2 : 1024;
        while (cap < o->len + n + 1) cap *= 2;
        char *grown = realloc(o->text, cap);
        if (!grown) return g3_fail(err, "out of memory");
        o->text = grown;
        o->cap = cap;
    }
    for (size_t i = 0; i < n; i++) {
        if (piece[i]) o->text[o->len++] = piece[i];
        else o->dropped_nul = true;
    }
    o->text[o->len] = 0;
    return 0;
}

/* The longest tail of the unemitted text that is a proper prefix of a stop
 * string: it may still become one. */
static size_t held_back(const g3_text_stream *o) {
    size_t hold = 0;
    for (size_t k = 0; o->stop && o->stop[k]; k++) {
        size_t sl = strlen(o->stop[k]);
        for (size_t m = sl > 1 ? sl - 1 : 0; m > hold; m--)
            if (m <= o->len - o->emitted && memcmp(o->text + o->len - m, o->stop[k], m) == 0) {
                hold = m;
                break;
            }
    }
    return hold;
}

static void emit(g3_text_stream *o, size_t upto) {
    if (upto > o->emitted && o->on_text && !o->on_text(o->text + o->emitted, upto - o->emitted, o->user))
        o->stopped_by_callback = true;
    if (upto > o->emitted) o->emitted = upto;
}

void g3_text_stream_update(g3_text_stream *o, bool final) {
    if (!o->text) return;
    for (size_t k = 0; o->stop && o->stop[k]; k++) {
        if (!*o->stop[k]) continue;
        char *hit = strstr(o->text, o->stop[k]);
        if (hit) {
            o->len = (size_t)(hit - o->text);
            o->text[o->len] = 0;
            o->stopped_by_string = true;
            emit(o, o->len);
            return;
        }
    }
    emit(o, final ? o->len : o->len - held_back(o));
}

void g3_text_stream_free(g3_text_stream *o) {
    free(o->text);
    o->text = NULL;
    o->len = o->cap = o->emitted = 0;
}
