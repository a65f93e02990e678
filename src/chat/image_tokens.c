/* image_tokens.c: an image as the model reads it: resized to the encoder's
 * square, normalized, encoded and projected (the one place the engine, eval
 * and embed-image all go through). */
#include <stdlib.h>

#include "base/error.h"
#include "gemma3_chat.h"
#include "gemma3_media.h"
#include "gemma3_vision.h"

int g3_image_soft_tokens(g3_vision *v, const g3_image *img, g3_image_wrap wrap, float **out, g3_error *err) {
    *out = NULL;
    const uint32_t size = g3_vision_image_size(v);
    float mean[3], std[3];
    g3_vision_norm(v, mean, std);
    float *pixels = malloc(sizeof(float) * 3 * size * size);
    float *embd = malloc(sizeof(float) * g3_vision_n_tokens(v) * g3_vision_n_embd(v));
    if (!pixels || !embd) {
        free(pixels);
        free(embd);
        return g3_fail(err, "out of memory for an image");
    }
    /* the official processor stretches to the square; llama.cpp (the golden data) pads */
    const g3_resize_mode mode = wrap == G3_IMAGE_WRAP_GOLDEN ? G3_RESIZE_PAD : G3_RESIZE_STRETCH;
    const int rc = g3_image_to_tensor(img, size, mode, mean, std, pixels, err) || g3_vision_encode(v, pixels, embd, err);
    free(pixels);
    if (rc) {
        free(embd);
        return -1;
    }
    *out = embd;
    return 0;
}
