/* libFuzzer: bytes through the video sampler. FFmpeg opens files by name,
 * so each input is written to a scratch file first: $TMPDIR (else /tmp)
 * /g3-fuzz-video-PID.bin, removed after each input. */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <unistd.h>
#include <libavutil/log.h>
#include "gemma3_media.h"
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    static char path[512];
    if (!path[0]) {
        const char *dir = getenv("TMPDIR");
        snprintf(path, sizeof path, "%s/g3-fuzz-video-%d.bin", dir && dir[0] ? dir : "/tmp", (int)getpid());
        av_log_set_level(AV_LOG_QUIET);
    }
    FILE *f = fopen(path, "wb");
    if (!f) return 0;
    if (size) fwrite(data, 1, size, f);
    fclose(f);
    g3_media_limits lim = g3_media_limits_default();
    lim.max_pixels = 1u << 20;
    g3_video_frame *fr; uint32_t n; g3_error err;
    if (g3_video_sample(path, 3, &lim, &fr, &n, &err) == 0) g3_video_frames_free(fr, n);
    unlink(path);
    return 0;
}
