/* mapped_file.h: read-only memory mapping of a whole file.
 * Model weights are used in place from the map, so the OS page cache is
 * the only copy and loading is instant; the exception is the x16 copy of
 * Q4_0/Q5_0/Q8_0/Q4_K/Q6_K matrices for the AVX-512 kernels (tensor/repack.h), whose
 * file pages are then given back (g3_drop_pages). */
#ifndef G3_BASE_MAPPED_FILE_H
#define G3_BASE_MAPPED_FILE_H

#include <stddef.h>
#include <stdint.h>

#include "base/error.h"

typedef struct g3_mapped_file {
    const uint8_t *data; /* NULL for an empty file */
    size_t size;
} g3_mapped_file;

int g3_mapped_file_open(const char *path, g3_mapped_file *out, g3_error *err);
void g3_mapped_file_close(g3_mapped_file *f);

/* Gives back the whole pages of [p, p + n) of a read-only map: they are
 * clean file pages, so this only unmaps them (reading them again faults
 * them back in from the page cache or the file). */
void g3_drop_pages(const void *p, size_t n);

#endif
