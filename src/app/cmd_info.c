#include <stdio.h>
#include <string.h>

#include "app/app.h"

int cmd_info(int argc, char **argv) {
    const char *path = NULL;
    for (int i = 1; i < argc; i++) {
        if (strcmp(argv[i], "-m") == 0 || strcmp(argv[i], "--model") == 0) {
            if (!(path = app_flag_value("info", argc, argv, &i))) return 2;
        } else if (strcmp(argv[i], "--help") == 0) {
            printf("usage: gemma-chat info -m MODEL.gguf\n");
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
    g3_error err;
    g3_model *model;
    if (g3_model_load(path, &model, &err)) {
        app_error("info", "%s", err.msg);
        return 1;
    }
    printf("model:              %s\n", path);
    g3_model_print_info(model, stdout);
    g3_model_free(model);
    return 0;
}
