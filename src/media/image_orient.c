/* image_orient.c: EXIF orientations 1-8 as pixel moves, the same
 * transforms as PIL.ImageOps.exif_transpose (and, for 90-degree steps, as a
 * video's display matrix). */
#include <stdlib.h>
#include <string.h>

#include "base/error.h"
#include "media/media_internal.h"

/* For output pixel (x, y) of an ow x oh result, the source pixel in the
 * w x h stored image. */
static void source_of(int orientation, size_t x, size_t y, size_t w, size_t h, size_t *sx, size_t *sy) {
    switch (orientation) {
    case 2: *sx = w - 1 - x; *sy = y; break;             /* mirrored left-right */
    case 3: *sx = w - 1 - x; *sy = h - 1 - y; break;     /* upside down */
    case 4: *sx = x; *sy = h - 1 - y; break;             /* mirrored top-bottom */
    case 5: *sx = y; *sy = x; break;                     /* transposed */
    case 6: *sx = y; *sy = h - 1 - x; break;             /* needs 90 degrees clockwise */
    case 7: *sx = w - 1 - y; *sy = h - 1 - x; break;     /* transversed */
    case 8: *sx = w - 1 - y; *sy = x; break;             /* needs 90 degrees counter-clockwise */
    default: *sx = x; *sy = y; break;
    }
}

int g3_image_orient(g3_image *img, int orientation, g3_error *err) {
    if (orientation <= 1 || orientation > 8) return 0;
    size_t w = img->width, h = img->height;
    bool swap = orientation >= 5;
    size_t ow = swap ? h : w, oh = swap ? w : h;
    size_t bytes = w * h * 3; /* the image already holds this many */
    uint8_t *out = malloc(bytes);
    if (!out) return g3_fail(err, "out of memory rotating the image (%zu bytes)", bytes);
    for (size_t y = 0; y < oh; y++) {
        for (size_t x = 0; x < ow; x++) {
            size_t sx, sy;
            source_of(orientation, x, y, w, h, &sx, &sy);
            memcpy(out + 3 * (y * ow + x), img->rgb + 3 * (sy * w + sx), 3);
        }
    }
    free(img->rgb);
    img->rgb = out;
    img->width = (uint32_t)ow;
    img->height = (uint32_t)oh;
    return 0;
}
