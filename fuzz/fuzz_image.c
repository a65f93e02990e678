/* libFuzzer: every byte string through the image loader and both resizes. */
#include <stdint.h>
#include <stdlib.h>
#include "gemma3_media.h"
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    g3_media_limits lim = g3_media_limits_default();
    lim.max_pixels = 4u << 20; /* keep each run small */
    g3_image img;
    g3_error err;
    if (g3_image_load_memory(data, size, &lim, &img, &err) == 0) {
        float *t = malloc(3 * 16 * 16 * sizeof *t);
        const float h[3] = {0.5f, 0.5f, 0.5f};
        if (t) {
            g3_image_to_tensor(&img, 16, G3_RESIZE_STRETCH, h, h, t, &err);
            g3_image_to_tensor(&img, 16, G3_RESIZE_PAD, h, h, t, &err);
        }
        free(t);
        g3_image_free(&img);
    }
    return 0;
}
