/* terminal_text.c: model text made harmless for a terminal. A model can
 * write any byte, ESC included; printed raw, "\x1b[2J" clears the screen and
 * other sequences move the cursor, retitle the window or (on some
 * terminals) answer back into the input. Scripts reading a pipe get the
 * bytes unchanged; only a terminal gets this form. */
#include "gemma3_chat.h"

size_t g3_escape_for_terminal(const char *text, size_t len, char *out) {
    static const char hex[] = "0123456789ABCDEF";
    const unsigned char *s = (const unsigned char *)text;
    size_t o = 0;
    for (size_t i = 0; i < len; i++) {
        const unsigned char c = s[i];
        if ((c < 0x20 && c != '\n' && c != '\t') || c == 0x7F) {
            out[o++] = '^';
            out[o++] = c == 0x7F ? '?' : (char)(c + 0x40);
        } else if (c == 0xC2 && i + 1 < len && s[i + 1] >= 0x80 && s[i + 1] <= 0x9F) {
            /* U+0080..U+009F: 2 bytes in, 8 out */
            const unsigned char cp = s[++i];
            out[o++] = '<', out[o++] = 'U', out[o++] = '+', out[o++] = '0', out[o++] = '0';
            out[o++] = hex[cp >> 4], out[o++] = hex[cp & 15], out[o++] = '>';
        } else {
            out[o++] = (char)c;
        }
    }
    return o;
}
