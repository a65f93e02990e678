/* video_clip.c: see video_clip.h. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdlib.h>
#include <string.h>
// clang-format off
#include <cmocka.h>
// clang-format on

#include <libavcodec/avcodec.h>
#include <libavformat/avformat.h>
#include <libavutil/display.h>
#include <libswscale/swscale.h>

#include "video_clip.h"

const uint8_t VIDEO_CLIP_COLORS[4][3] = {{255, 0, 0}, {0, 255, 0}, {0, 0, 255}, {255, 255, 255}};

static void encode_and_write(AVCodecContext *c, AVFrame *f, AVFormatContext *oc, AVStream *st, AVPacket *pkt) {
    assert_true(avcodec_send_frame(c, f) >= 0);
    for (;;) {
        int r = avcodec_receive_packet(c, pkt);
        if (r == AVERROR(EAGAIN) || r == AVERROR_EOF) return;
        assert_true(r >= 0);
        pkt->duration = 1; /* one frame: the muxer then counts the last frame in the duration */
        av_packet_rescale_ts(pkt, c->time_base, st->time_base);
        pkt->stream_index = st->index;
        assert_true(av_interleaved_write_frame(oc, pkt) >= 0);
    }
}

static void add_rotation(AVStream *st, double ccw_degrees) {
    int32_t m[9];
    av_display_rotation_set(m, ccw_degrees);
#if LIBAVCODEC_VERSION_INT >= AV_VERSION_INT(60, 29, 100)
    AVPacketSideData *sd = av_packet_side_data_new(&st->codecpar->coded_side_data, &st->codecpar->nb_coded_side_data,
                                                   AV_PKT_DATA_DISPLAYMATRIX, sizeof m, 0);
    assert_non_null(sd);
    memcpy(sd->data, m, sizeof m);
#else
    uint8_t *sd = av_stream_new_side_data(st, AV_PKT_DATA_DISPLAYMATRIX, sizeof m);
    assert_non_null(sd);
    memcpy(sd, m, sizeof m);
#endif
}

/* A clip of `seconds` at `fps`, each second a solid colour of VIDEO_CLIP_COLORS;
 * with `mark`, the top-left 8 x 8 block is red and the rest blue instead.
 * mpeg4 in MP4, a keyframe every 2 s (so seeks must decode forward). */
void video_clip_write(const char *path, int w, int h, int fps, int seconds, bool mark, double rotation) {
    const AVCodec *codec = avcodec_find_encoder(AV_CODEC_ID_MPEG4);
    assert_non_null(codec);
    AVFormatContext *oc = NULL;
    assert_true(avformat_alloc_output_context2(&oc, NULL, "mp4", path) >= 0);
    AVStream *st = avformat_new_stream(oc, NULL);
    AVCodecContext *c = avcodec_alloc_context3(codec);
    assert_non_null(st);
    assert_non_null(c);
    c->width = w;
    c->height = h;
    c->time_base = (AVRational){1, fps};
    c->framerate = (AVRational){fps, 1};
    c->pix_fmt = AV_PIX_FMT_YUV420P;
    c->gop_size = 2 * fps;
    c->max_b_frames = 0;
    c->bit_rate = 4000000;
    if (oc->oformat->flags & AVFMT_GLOBALHEADER) c->flags |= AV_CODEC_FLAG_GLOBAL_HEADER;
    assert_true(avcodec_open2(c, codec, NULL) >= 0);
    assert_true(avcodec_parameters_from_context(st->codecpar, c) >= 0);
    st->time_base = c->time_base;
    if (rotation != 0.0) add_rotation(st, rotation);
    assert_true(avio_open(&oc->pb, path, AVIO_FLAG_WRITE) >= 0);
    assert_true(avformat_write_header(oc, NULL) >= 0);

    AVFrame *f = av_frame_alloc();
    AVPacket *pkt = av_packet_alloc();
    f->format = c->pix_fmt;
    f->width = w;
    f->height = h;
    assert_true(av_frame_get_buffer(f, 0) >= 0);
    struct SwsContext *sws = sws_getContext(w, h, AV_PIX_FMT_RGB24, w, h, AV_PIX_FMT_YUV420P, SWS_BILINEAR, NULL, NULL,
                                            NULL);
    assert_non_null(sws);
    uint8_t *rgb = malloc((size_t)w * h * 3);
    const uint8_t red[3] = {255, 0, 0}, blue[3] = {0, 0, 255};
    for (int i = 0; i < fps * seconds; i++) {
        for (int p = 0; p < w * h; p++) {
            const uint8_t *col = mark ? (p % w < 8 && p / w < 8 ? red : blue) : VIDEO_CLIP_COLORS[(i / fps) % 4];
            memcpy(rgb + 3 * p, col, 3);
        }
        assert_true(av_frame_make_writable(f) >= 0);
        const uint8_t *src[1] = {rgb};
        int src_stride[1] = {w * 3};
        assert_int_equal(sws_scale(sws, src, src_stride, 0, h, f->data, f->linesize), h);
        f->pts = i;
        encode_and_write(c, f, oc, st, pkt);
    }
    encode_and_write(c, NULL, oc, st, pkt);
    assert_true(av_write_trailer(oc) >= 0);
    free(rgb);
    sws_freeContext(sws);
    av_frame_free(&f);
    av_packet_free(&pkt);
    avcodec_free_context(&c);
    avio_closep(&oc->pb);
    avformat_free_context(oc);
}

