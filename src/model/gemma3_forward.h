/* gemma3_forward.h: what a context allocates besides the KV cache, for the
 * memory planner (the context itself is the public g3_context, gemma3.h).
 *
 * The scratch of a context: the activations of one batch (residual, normed
 * input, q/k/v, attention output, the feed-forward hidden layer, their
 * 8-bit forms for quantized weights, RoPE tables), the attention scores of
 * each thread, and each thread's matrix-product buffers (a packed 32-row
 * weight tile, the packer's scratch, a staging area). It depends on the
 * kernel path (G3_CPU) and the thread count, and is what g3_context_new
 * allocates for the same arguments. */
#ifndef G3_MODEL_GEMMA3_FORWARD_H
#define G3_MODEL_GEMMA3_FORWARD_H

#include <stdint.h>

#include "gemma3.h"

/* n_ctx, n_ubatch as resolved by g3_context_new (n_ubatch <= n_ctx);
 * n_threads 0 = physical cores. Uses the active kernel path, or the best
 * one when G3_CPU is invalid. */
uint64_t g3_forward_scratch_bytes(const g3_config *cfg, uint32_t n_ctx, uint32_t n_ubatch, uint32_t n_threads);

#endif
