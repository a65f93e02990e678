/* gemma-chat info: what a GGUF file holds. A Gemma 3 model, or the vision
 * projector (mmproj) that gives the 4B, 12B and 27B their images. */
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>

#include "app/app.h"
#include "gemma3_vision.h"

/* Which text model a projection size fits (Gemma 3's n_embd). */
static const char *vision_model_for(uint32_t n_embd) {
    switch (n_embd) {
    case 2560: return "the embedding size of Gemma 3 4B";
    case 3840: return "the embedding size of Gemma 3 12B";
    case 5376: return "the embedding size of Gemma 3 27B";
    default: return "must equal the text model's embedding size";
    }
}

static void print_vision(const char *path, const g3_vision *v) {
    float mean[3], std[3];
    g3_vision_norm(v, mean, std);
    struct stat st;
    printf("model:              %s\n", path);
    printf("architecture:       clip (Gemma 3 vision projector: SigLIP encoder + projection, an mmproj file)\n");
    printf("image size:         %u x %u pixels (every image is resized to it)\n", g3_vision_image_size(v),
           g3_vision_image_size(v));
    printf("tokens per image:   %u soft tokens\n", g3_vision_n_tokens(v));
    printf("projection:         %u (%s)\n", g3_vision_n_embd(v),
           vision_model_for(g3_vision_n_embd(v)));
    printf("normalization:      mean %.4g %.4g %.4g, std %.4g %.4g %.4g\n", mean[0], mean[1], mean[2], std[0], std[1],
           std[2]);
    if (stat(path, &st) == 0) printf("file size:          %.2f MiB\n", st.st_size / 1048576.0);
    printf("use:                run/chat -m TEXT_MODEL.gguf --mmproj %s\n", path);
}

int cmd_info(int argc, char **argv) {
    const char *path = NULL;
    for (int i = 1; i < argc; i++) {
        if (strcmp(argv[i], "-m") == 0 || strcmp(argv[i], "--model") == 0) {
            if (!(path = app_flag_value("info", argc, argv, &i))) return 2;
        } else if (strcmp(argv[i], "--help") == 0) {
            printf("usage: gemma-chat info -m FILE.gguf   (a Gemma 3 model or its vision projector, mmproj)\n");
            return 0;
        } else {
            app_error("info", "unknown option '%s'", argv[i]);
            return 2;
        }
    }
    if (!path) {
        app_error("info", "-m MODEL is required");
        return 2;
    }
    if (app_check_model_path("info", path)) return 1;
    g3_error err;
    g3_model *model;
    if (g3_model_load(path, &model, &err) == 0) {
        printf("model:              %s\n", path);
        g3_model_print_info(model, stdout);
        g3_model_free(model);
        return 0;
    }
    /* not a text model: perhaps the vision projector */
    g3_error verr;
    g3_vision *v;
    g3_vision_params vp = {.n_threads = 1};
    if (g3_vision_load(path, &vp, &v, &verr) == 0) {
        print_vision(path, v);
        g3_vision_free(v);
        return 0;
    }
    /* a clip file that is not a usable projector: its own reason is the useful one */
    app_error("info", "%s", strstr(err.msg, "'clip'") ? verr.msg : err.msg);
    return 1;
}
