/* gemma-chat embed-image: an image's projected soft tokens, for checking the
 * vision encoder against golden data.
 *   embed-image --mmproj MMPROJ --image PATH --out FILE.f32 [--image-wrap official|golden] [-t N]
 * FILE.f32: float32 little-endian, row-major [n_tokens][n_embd] (256 x the
 * text model's n_embd for real models). --image-wrap picks the resize the
 * layout goes with: official (stretch to the square, the Gemma 3 processor)
 * or golden (llama.cpp: keep the aspect ratio, pad with black). */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "app/app.h"
#include "gemma3_chat.h"
#include "gemma3_media.h"
#include "gemma3_vision.h"

static const char *k_cmd = "embed-image";

typedef struct embed_opts {
    const char *mmproj, *image, *out;
    bool golden;
    uint32_t n_threads;
} embed_opts;

static void usage(FILE *out) {
    fprintf(out,
            "usage: gemma-chat embed-image --mmproj MMPROJ --image PATH --out FILE.f32\n"
            "                              [--image-wrap official|golden] [-t N]\n"
            "  writes the image's soft tokens, float32 little-endian [n_tokens][n_embd]\n"
            "  --image-wrap  official: stretch-resize to the square (default); golden: keep\n"
            "                the aspect ratio and pad with black (llama.cpp, the golden data)\n"
            "  -t N          threads (default: the physical cores)\n");
}

/* 0 ok, 1 --help shown, -1 bad arguments (message printed) */
static int parse_args(int argc, char **argv, embed_opts *o) {
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i], *val = NULL;
        if (strcmp(a, "--help") == 0 || strcmp(a, "-h") == 0) {
            usage(stdout);
            return 1;
        }
        static const char *const known[] = {"--mmproj", "--image", "--out", "-o", "-t", "--threads", "--image-wrap"};
        bool is_known = false;
        for (size_t k = 0; k < sizeof known / sizeof known[0]; k++) is_known = is_known || strcmp(a, known[k]) == 0;
        if (!is_known) {
            app_error(k_cmd, "unknown option '%s'", a);
            return -1;
        }
        if (!(val = app_flag_value(k_cmd, argc, argv, &i))) return -1;
        if (strcmp(a, "--mmproj") == 0) o->mmproj = val;
        else if (strcmp(a, "--image") == 0) o->image = val;
        else if (strcmp(a, "--out") == 0 || strcmp(a, "-o") == 0) o->out = val;
        else if (strcmp(a, "-t") == 0 || strcmp(a, "--threads") == 0) {
            if (app_parse_u32(k_cmd, a, val, 1, 1024, &o->n_threads)) return -1;
        } else if (strcmp(a, "--image-wrap") == 0) {
            if (strcmp(val, "golden") == 0) o->golden = true;
            else if (strcmp(val, "official") == 0) o->golden = false;
            else {
                app_error(k_cmd, "--image-wrap must be 'official' or 'golden', not '%s'", val);
                return -1;
            }
        }
    }
    if (!o->mmproj || !o->image || !o->out) {
        app_error(k_cmd, "--mmproj, --image and --out are required");
        return -1;
    }
    return 0;
}

static double now_s(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + ts.tv_nsec * 1e-9;
}

/* Writes n floats; a failure removes the partial file. */
static int write_floats(const char *path, const float *data, size_t n) {
    FILE *f = fopen(path, "wb");
    if (!f) {
        app_error(k_cmd, "cannot create %s", path);
        return -1;
    }
    const bool ok = fwrite(data, sizeof(float), n, f) == n;
    if (fclose(f) != 0 || !ok) {
        remove(path);
        app_error(k_cmd, "cannot write %s", path);
        return -1;
    }
    return 0;
}

int cmd_embed_image(int argc, char **argv) {
    embed_opts o = {0};
    const int pr = parse_args(argc, argv, &o);
    if (pr) return pr > 0 ? 0 : 2;
    g3_error err = {{0}};
    g3_vision *v = NULL;
    g3_image img = {0};
    float *embd = NULL;
    int rc = 1;
    const g3_media_limits lim = g3_media_limits_default();
    const g3_vision_params vp = {.n_threads = o.n_threads};
    if (g3_vision_load(o.mmproj, &vp, &v, &err) || g3_image_load(o.image, &lim, &img, &err)) {
        app_error(k_cmd, "%s", err.msg);
        goto done;
    }
    const size_t n_out = (size_t)g3_vision_n_tokens(v) * g3_vision_n_embd(v);
    const double t0 = now_s(); /* resizing included */
    if (g3_image_soft_tokens(v, &img, o.golden ? G3_IMAGE_WRAP_GOLDEN : G3_IMAGE_WRAP_OFFICIAL, &embd, &err)) {
        app_error(k_cmd, "%s: %s", o.image, err.msg);
        goto done;
    }
    const double secs = now_s() - t0;
    if (write_floats(o.out, embd, n_out)) goto done;
    fprintf(stderr, "embed-image: %u x %u floats to %s; encoded in %.3f s\n", g3_vision_n_tokens(v),
            g3_vision_n_embd(v), o.out, secs);
    rc = 0;
done:
    free(embd);
    g3_image_free(&img);
    g3_vision_free(v);
    return rc;
}
