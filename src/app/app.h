/* app.h: the gemma-chat subcommands and the small helpers they share. */
#ifndef G3_APP_APP_H
#define G3_APP_APP_H

#include <stdbool.h>
#include <stdint.h>

#include "gemma3.h"

int cmd_eval(int argc, char **argv);
int cmd_info(int argc, char **argv);
int cmd_make_test_model(int argc, char **argv);
int cmd_run(int argc, char **argv);          /* cmd_run.c */
int cmd_chat(int argc, char **argv);         /* cmd_chat.c */
int cmd_tokenize(int argc, char **argv);     /* cmd_tokenize.c */
int cmd_detokenize(int argc, char **argv);   /* cmd_tokenize.c */
int cmd_bench(int argc, char **argv);        /* cmd_bench.c */
int cmd_plan(int argc, char **argv);         /* cmd_plan.c */
int cmd_quantize(int argc, char **argv);     /* cmd_quantize.c */
int cmd_embed_image(int argc, char **argv);  /* cmd_embed_image.c */

/* Argument helpers: each prints "gemma-chat CMD: ..." and returns -1 on bad input. */
int app_parse_u32(const char *cmd, const char *flag, const char *text, uint32_t min, uint32_t max,
                  uint32_t *out);
int app_parse_u64(const char *cmd, const char *flag, const char *text, uint64_t *out);
/* The KV cache type of run, chat, bench and plan -m: f16, as llama.cpp.
 * Half of f32's memory; on the golden models its logits stay within 3.3e-3
 * of the exact ones (f32: 6e-6), inside the acceptance rule's 5e-3. `eval`
 * keeps f32: it is the numerics check. */
#define APP_DEFAULT_KV_TYPE G3_KV_F16
/* --kv-type: f16, bf16, q8_0, f32. */
int app_parse_kv_type(const char *cmd, const char *flag, const char *text, g3_kv_type *out);
/* --device: cuda, cpu or auto (the default: cuda when this binary has the
 * CUDA backend and a GPU is present). */
int app_parse_device(const char *cmd, const char *flag, const char *text, g3_device *out);
/* --activations: how the input of quantized weights is rounded. exact: f32
 * products (eval's default); int15: 15-bit integers throughout; int8: 8-bit
 * (g3_context_params.int8_activations). */
typedef enum { APP_ACT_EXACT, APP_ACT_INT15, APP_ACT_INT8 } app_activations;
int app_parse_activations(const char *cmd, const char *flag, const char *text, app_activations *out);
void app_apply_activations(app_activations a, g3_context_params *cp);
/* What run, chat, serve and bench use: see README "Activations". */
#define APP_DEFAULT_ACTIVATIONS APP_ACT_INT15
#define APP_DEFAULT_ACTIVATIONS_NAME "int15"
const char *app_activations_name(app_activations a);
/* --activations straight into context parameters (run, chat, serve). */
int app_parse_activations_cp(const char *cmd, const char *flag, const char *text, g3_context_params *cp);
#define APP_ACTIVATIONS_HELP \
    "  --activations A         int15 (default: 15-bit integer inputs of quantized weights,\n" \
    "                          KL 1.4e-7 from exact on the 270M), int8 (8-bit inputs on\n" \
    "                          AVX2/AVX-512, as llama.cpp: prefill 1.6-2x, decode <= 1.25x,\n" \
    "                          KL 2.3e-3, another top token at 3 in 100 steps;\n" \
    "                          bench/RESULTS.md) or exact (f32 products)\n"
/* Prints (JSON, one line) the KL divergence and top-1 agreement of n_pos
 * rows of logits against the f32 file base_path (eval --logits of the
 * same sequence): logit_compare.c. */
int app_compare_logits(const char *cmd, const char *base_path, const float *logits, size_t n_pos,
                       uint32_t n_vocab, FILE *out);
#define APP_DEVICE_HELP \
    "  --device D              cuda or cpu (default: cuda when this binary has the CUDA\n" \
    "                          backend and a GPU is present, else cpu)\n"
#define APP_MAX_INPUT_FILE ((size_t)1 << 30)
/* Reads a whole input file (malloc'd, NUL-terminated, *len bytes which may
 * include NULs); NULL after printing why. */
char *app_read_file(const char *cmd, const char *path, size_t *len);
/* The same for text that must not hold NUL bytes (it would be cut there). */
char *app_read_text_file(const char *cmd, const char *path);
/* G3_MEM_LIMIT, when set, must be a size: digits (a fraction allowed) and
 * an optional K, M or G (KiB, MiB, GiB; a trailing B or iB is fine), e.g.
 * 6G or 1500M. The library reads it leniently (a typo would silently mean
 * no limit, or bytes), so the commands that plan memory check it first.
 * -1 after printing why. */
int app_check_mem_limit(const char *cmd);
struct g3_default_model;
/* The first line on stderr when the default model is used (run, chat,
 * serve): "gemma-chat: Gemma 3 270M (default, models/gemma-3-270m-q4_k_m.gguf)",
 * or "gemma-chat: PATH (default from G3_DEFAULT_MODEL)". */
void app_print_default_model(const struct g3_default_model *d);
/* A model path that is a directory gets its own message; -1 after printing it. */
int app_check_model_path(const char *cmd, const char *path);
/* Returns the value after a flag, or NULL (with a message) when it is missing. */
const char *app_flag_value(const char *cmd, int argc, char **argv, int *i);
void app_error(const char *cmd, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
/* What the user can do about a library error, in this CLI's flags ("" when
 * nothing): the library's messages name no flag. */
const char *app_hint(const char *library_message);

/* Writes answer text to stdout and flushes it; with `terminal`, control
 * bytes are escaped (g3_escape_for_terminal) so a model cannot drive the
 * terminal. Pieces arrive as whole UTF-8 characters. */
void app_print_answer(const char *text, size_t len, bool terminal);

struct g3_gen_stats;
/* "prefill N tokens, X tok/s; generated M tokens, Y tok/s" on stderr. */
void app_print_stats(const struct g3_gen_stats *st);

#endif
