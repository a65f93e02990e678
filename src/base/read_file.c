#include "base/read_file.h"

#include <stdbool.h>

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

int g3_read_file(const char *path, size_t max_bytes, char **data, size_t *len, g3_error *err) {
    *data = NULL;
    *len = 0;
    FILE *f = fopen(path, "rb");
    if (!f) return g3_fail(err, "cannot open '%s': %s", path, strerror(errno));
    struct stat st;
    if (fstat(fileno(f), &st) != 0 || !S_ISREG(st.st_mode)) {
        fclose(f);
        return g3_fail(err, "'%s' is not a regular file", path);
    }
    if ((unsigned long long)st.st_size > max_bytes) {
        fclose(f);
        return g3_fail(err, "'%s' is %.1f MB, over the %.1f MB limit", path, st.st_size / 1e6, max_bytes / 1e6);
    }
    size_t n = (size_t)st.st_size;
    char *buf = malloc(n + 1);
    if (!buf) {
        fclose(f);
        return g3_fail(err, "out of memory reading '%s' (%zu bytes)", path, n);
    }
    size_t got = fread(buf, 1, n, f);
    int read_errno = errno;
    bool failed = ferror(f) || got != n;
    fclose(f);
    if (failed) {
        free(buf);
        return g3_fail(err, "cannot read '%s': %s", path, got != n ? "file changed while reading" : strerror(read_errno));
    }
    buf[n] = 0;
    *data = buf;
    *len = n;
    return 0;
}
