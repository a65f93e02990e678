/* test_util.h: small helpers shared by the test programs. */
#ifndef G3_TEST_UTIL_H
#define G3_TEST_UTIL_H

#include <stddef.h>
#include <stdint.h>

#include "gemma3_chat.h"

/* Reads a whole file into a malloc'd buffer (NUL-terminated); NULL on error. */
uint8_t *tu_read_file(const char *path, size_t *size);

/* Writes bytes to a file; 0 on success. */
int tu_write_file(const char *path, const void *data, size_t size);

/* Runs a shell command, captures stdout (malloc'd, NUL-terminated) and the
 * exit status. Returns NULL if the command could not be started. */
char *tu_run(const char *cmd, int *status);

/* Parses the first JSON array of integers in text into a malloc'd array.
 * Returns the count, or -1 if there is none. */
long tu_parse_int_array(const char *text, int64_t **out);

/* Deterministic uniform float in [-1, 1) from a state (xorshift). */
float tu_randf(uint64_t *state);

/* Generation parameters for deterministic runs: at most n tokens, each the
 * most likely one (temperature 0, no repeat penalty). */
g3_gen_params tu_greedy(uint32_t n);

#endif
