/* gemma3_media.h: turning user files into model input.
 *
 * Documents: plain text, Markdown and source files are read as UTF-8 (bytes
 * that are not valid UTF-8 become U+FFFD, and the count is reported) and
 * wrapped with their file name so the model knows what it is reading. PDF
 * extraction and images arrive with their issues; until then they are
 * refused with a message saying so. */
#ifndef GEMMA3_MEDIA_H
#define GEMMA3_MEDIA_H

#include <stddef.h>

#include "gemma3.h"

#ifdef __cplusplus
extern "C" {
#endif

#define G3_DOCUMENT_MAX_BYTES (10u << 20) /* the original demo's 10 MB limit */

/* Reads a document and formats it for a message:
 *   "File: NAME\n```\nCONTENT\n```\n"
 * *text is malloc'd; *n_replaced counts invalid UTF-8 bytes replaced. */
int g3_document_read(const char *path, size_t max_bytes, char **text, size_t *n_replaced, g3_error *err);

#ifdef __cplusplus
}
#endif

#endif
