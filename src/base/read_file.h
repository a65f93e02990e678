/* read_file.h: a whole file into memory, with a size limit, for the small
 * files users hand us (documents, saved conversations, prompts). Model files
 * are memory-mapped instead (mapped_file.h). */
#ifndef G3_BASE_READ_FILE_H
#define G3_BASE_READ_FILE_H

#include <stddef.h>

#include "base/error.h"

/* g3_read_file is declared in the public header gemma3.h. */

#endif
