/* quantize.h: which type each tensor gets in a quantized file, and the
 * streaming quantizer (g3_quantize, declared in include/gemma3_plan.h).
 *
 * The per-tensor rules are llama-quantize's for a gemma3 model (read from
 * llama.cpp's llama_tensor_get_type; written here for the types we make),
 * so our files have the tensor types and sizes of real ones:
 *  - only 2-D+ tensors whose name ends in "weight" are quantized; norms,
 *    biases, position and patch embeddings keep their type;
 *  - the output matrix (token_embd when there is no output.weight, as in
 *    Gemma 3) is Q6_K unless the format is Q8_0, and Q8_0 when its rows do
 *    not fit the format's block;
 *  - Q4_K_M: attn_v and ffn_down of the "more bits" layers are Q6_K (the
 *    first and last eighth of the layers and every third in between);
 *  - a row that does not fit the chosen type's block falls back: Q4_K ->
 *    Q5_0, Q6_K -> Q8_0, and F16 when even that does not fit (llama-quantize
 *    refuses Q4_0/Q8_0 rows that are not a multiple of 32; we write F16).
 * The memory planner calls the same function for the built-in shapes. */
#ifndef G3_MODEL_QUANTIZE_H
#define G3_MODEL_QUANTIZE_H

#include <stdbool.h>
#include <stdint.h>

#include "gemma3_plan.h"

typedef struct g3_quant_rules {
    g3_ftype ftype;
    bool mixes;       /* gemma3 text model: the per-tensor mix above; false (mmproj): one type */
    bool tied_output; /* no output.weight: token_embd is also the output matrix */
    uint32_t n_layer;  /* layers, for ffn_down's "more bits" */
    uint32_t n_attn_v; /* attn_v tensors, for attn_v's "more bits" */
} g3_quant_rules;

/* The ggml type for one tensor, given its source type. Counting is by the
 * layer number in the name (blk.N.), which is the order llama-quantize
 * counts in (it sorts tensors by layer). */
uint32_t g3_quant_tensor_type(const g3_quant_rules *rules, const char *name, uint32_t n_dims,
                              const uint64_t *ne, uint32_t src_type);

/* The type most tensors get: Q4_K for Q4_K_M, Q4_0, Q8_0, BF16, F16, F32;
 * G3_TYPE_COUNT for an unknown format. */
uint32_t g3_ftype_default_type(g3_ftype ftype);

#endif
