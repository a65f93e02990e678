/* gemma3_vision.h: the SigLIP vision encoder and Gemma 3 projector.
 *
 * Loaded from the mmproj GGUF files real Gemma 3 vision setups use
 * (llama.cpp's clip.* keys, clip.projector_type = gemma3; tensors v.* and
 * mm.*). An image, given as a normalized float tensor of the encoder's size
 * (g3_image_to_tensor in gemma3_media.h), becomes n_tokens soft tokens of the
 * text model's embedding size: patch embedding, position embedding, the
 * pre-LN transformer blocks (bidirectional attention, GELU MLP), post
 * LayerNorm, average pooling to n_tokens, RMSNorm, linear projection. One
 * image is one batched pass. The 1B text model has no vision encoder.
 */
#ifndef GEMMA3_VISION_H
#define GEMMA3_VISION_H

#include <stdint.h>

#include "gemma3.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef struct g3_vision g3_vision;

typedef struct g3_vision_params {
    uint32_t n_threads; /* 0 = physical cores */
} g3_vision_params;

int g3_vision_load(const char *mmproj_path, const g3_vision_params *params, g3_vision **out, g3_error *err);
void g3_vision_free(g3_vision *v);

uint32_t g3_vision_image_size(const g3_vision *v); /* input side in pixels: 896 (real), 64 (golden tiny) */
uint32_t g3_vision_n_tokens(const g3_vision *v);   /* soft tokens per image: 256 (real), 16 (golden tiny) */
uint32_t g3_vision_n_embd(const g3_vision *v);     /* projection size = the text model's n_embd */
/* Per-channel normalization the encoder expects (clip.vision.image_mean/std). */
void g3_vision_norm(const g3_vision *v, float mean[3], float std[3]);

/* Fails with a clear message when the projection size differs from the
 * text model's embedding size (e.g. an mmproj of another model size). */
int g3_vision_check_model(const g3_vision *v, const g3_model *model, g3_error *err);

/* pixels: 3 x size x size floats, channel-major (CHW), already normalized.
 * out: n_tokens x n_embd floats (row-major), not scaled by sqrt(n_embd). */
int g3_vision_encode(g3_vision *v, const float *pixels, float *out, g3_error *err);

#ifdef __cplusplus
}
#endif

#endif
