#include <stdint.h>
#include <stdio.h>
#include <unistd.h>
#include <libavutil/log.h>
#include "gemma3_media.h"
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    static char path[64];
    if (!path[0]) { snprintf(path, sizeof path, "/tmp/fz/vid-%d.bin", (int)getpid()); av_log_set_level(AV_LOG_QUIET); }
    FILE *f = fopen(path, "wb");
    if (!f) return 0;
    fwrite(data, 1, size, f);
    fclose(f);
    g3_media_limits lim = g3_media_limits_default();
    lim.max_pixels = 1u << 20;
    g3_video_frame *fr; uint32_t n; g3_error err;
    if (g3_video_sample(path, 3, &lim, &fr, &n, &err) == 0) g3_video_frames_free(fr, n);
    return 0;
}
