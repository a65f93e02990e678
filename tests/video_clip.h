/* video_clip.h: MP4 clips made at test time (libavcodec's MPEG-4 encoder),
 * for the tests that need a video: test_media, test_native_api. cmocka
 * asserts: call it from a test. */
#ifndef G3_TEST_VIDEO_CLIP_H
#define G3_TEST_VIDEO_CLIP_H

#include <stdbool.h>
#include <stdint.h>

/* The colour of each second of a clip (cycling): red, green, blue, white. */
extern const uint8_t VIDEO_CLIP_COLORS[4][3];

/* A clip of `seconds` at `fps`, w x h, each second a solid colour of
 * VIDEO_CLIP_COLORS; with `mark`, the top-left 8 x 8 block is red and the
 * rest blue instead. mpeg4 in MP4, a keyframe every 2 s (so seeks must
 * decode forward); rotation: a display matrix of that many degrees
 * counter-clockwise (0: none). */
void video_clip_write(const char *path, int w, int h, int fps, int seconds, bool mark, double rotation);

#endif
