/* default_model.c: where the default model is, for every front end (chat,
 * run, later the server). scripts/get-model.sh writes it to <repo>/models/;
 * a binary in <repo>/build/ finds it there from any current directory, and
 * a binary installed elsewhere finds ./models/ or the file
 * G3_DEFAULT_MODEL names. */
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "base/error.h"
#include "gemma3_chat.h"

static bool exists(const char *path) {
    struct stat st;
    return stat(path, &st) == 0;
}

/* <dir of the executable>/../G3_DEFAULT_MODEL_PATH; false when /proc/self/exe
 * cannot be read or the result does not fit. */
static bool beside_executable(char *out, size_t cap) {
    char exe[PATH_MAX];
    const ssize_t n = readlink("/proc/self/exe", exe, sizeof exe - 1);
    if (n <= 0) return false;
    exe[n] = 0;
    for (int up = 0; up < 2; up++) { /* drop the file name, then its folder */
        char *slash = strrchr(exe, '/');
        if (!slash) return false;
        *slash = 0;
    }
    return (size_t)snprintf(out, cap, "%s/%s", exe, G3_DEFAULT_MODEL_PATH) < cap;
}

/* The path relative to the current directory when it lies under it. */
static void shown_path(const char *path, char *out, size_t cap) {
    char cwd[PATH_MAX];
    const char *rel = path;
    if (path[0] == '/' && getcwd(cwd, sizeof cwd)) {
        const size_t n = strlen(cwd);
        if (n > 1 && strncmp(path, cwd, n) == 0 && path[n] == '/') rel = path + n + 1;
    }
    snprintf(out, cap, "%s", rel);
}

static int found(g3_default_model *out, const char *path, bool from_env, g3_error *err) {
    if ((size_t)snprintf(out->path, sizeof out->path, "%s", path) >= sizeof out->path)
        return g3_fail(err, "the default model's path is too long: %.200s...", path);
    out->from_env = from_env;
    shown_path(out->path, out->shown, sizeof out->shown);
    return 0;
}

int g3_default_model_find(g3_default_model *out, g3_error *err) {
    memset(out, 0, sizeof *out);
    const char *env = getenv(G3_DEFAULT_MODEL_ENV);
    if (env && *env) {
        if (exists(env)) return found(out, env, true, err);
        return g3_fail(err,
                       "no model given, and the default model %s=%s does not exist: fix or unset "
                       G3_DEFAULT_MODEL_ENV ", or give a model with -m FILE",
                       G3_DEFAULT_MODEL_ENV, env);
    }
    char beside[PATH_MAX + 64];
    const bool have_beside = beside_executable(beside, sizeof beside);
    if (have_beside && exists(beside)) return found(out, beside, false, err);
    if (exists(G3_DEFAULT_MODEL_PATH)) return found(out, G3_DEFAULT_MODEL_PATH, false, err);
    char here[PATH_MAX + 64], cwd[PATH_MAX];
    if (getcwd(cwd, sizeof cwd)) snprintf(here, sizeof here, "%s/%s", cwd, G3_DEFAULT_MODEL_PATH);
    else snprintf(here, sizeof here, "./%s", G3_DEFAULT_MODEL_PATH);
    const bool same = have_beside && strcmp(beside, here) == 0; /* run from the repository */
    return g3_fail(err,
                   "no model given, and the default model (" G3_DEFAULT_MODEL_NAME ") is not there: "
                   "looked for %s%s%s. Fetch it with `bash scripts/get-model.sh` (in the repository), "
                   "or give a model with -m FILE",
                   have_beside ? beside : "", have_beside && !same ? " and " : "", same ? "" : here);
}
