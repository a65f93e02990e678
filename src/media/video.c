/* video.c: N frames evenly spaced over a whole clip, with FFmpeg's
 * libraries. Frame i is the first frame whose presentation time is at or
 * after t_i = i * duration / N (i = 0..N-1): we seek to the keyframe before
 * t_i and decode forward. Each frame carries its own presentation time.
 *
 * The file is read through our own descriptor, or the bytes from memory
 * (g3_video_sample_memory: an upload), by a custom AVIOContext, so a path is
 * never parsed as a URL or protocol, and only file-based video containers
 * are accepted: playlists and image sequences (which open other files) are
 * not. Both inputs share everything after opening (sample_opened). Frames
 * come out upright when the container carries a 90/180/270-degree display
 * matrix (phone videos), as players show them. */
#include <errno.h>
#include <fcntl.h>
#include <math.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <libavcodec/avcodec.h>
#include <libavformat/avformat.h>
#include <libavutil/display.h>
#include <libavutil/pixdesc.h>
#include <libswscale/swscale.h>

#include "base/checked_math.h"
#include "base/error.h"
#include "gemma3_media.h"
#include "media/media_internal.h"

#define MAX_FRAMES 4       /* the original demo's cap */
#define MAX_BAD_PACKETS 64 /* undecodable packets skipped before giving up */
#define AVIO_BUFFER 65536
/* demuxers (by libavformat name) that read one self-contained file */
#define VIDEO_FORMATS "mov,mp4,m4a,3gp,3g2,mj2,matroska,webm,avi,flv,mpegts,mpeg,ogg,asf,nut"

typedef struct vreader {
    const char *path; /* the file, or a name for messages (memory) */
    int fd;           /* the file; -1 when reading memory */
    const uint8_t *mem; /* memory input: mem_len bytes, read from mem_pos */
    size_t mem_len, mem_pos;
    AVIOContext *avio;
    AVFormatContext *fmt;
    AVCodecContext *dec;
    AVPacket *pkt;
    AVFrame *frame, *held; /* the frame just decoded; the last one before the target */
    struct SwsContext *sws;
    int stream;
    AVRational tb;
    int64_t start, duration, last_ts; /* stream time base */
    int orientation;                  /* EXIF numbering, from the display matrix */
    uint64_t max_pixels;
    bool input_done, need_key;
    int bad_packets;              /* decoder errors, bounded by MAX_BAD_PACKETS */
    int damage, damage_seen;      /* decoder errors and damaged frames; as last looked at */
    int read_error;
} vreader;

static int av_fail(g3_error *err, int code, const char *fmt_what, const char *path) {
    char why[AV_ERROR_MAX_STRING_SIZE] = {0};
    av_strerror(code, why, sizeof why);
    return g3_fail(err, "%s '%s': %s", fmt_what, path, why);
}

/* ---- input through our own descriptor ----------------------------------- */

static int io_read(void *opaque, uint8_t *buf, int size) {
    vreader *v = opaque;
    ssize_t n;
    do n = read(v->fd, buf, (size_t)size);
    while (n < 0 && errno == EINTR);
    if (n < 0) return AVERROR(errno);
    return n == 0 ? AVERROR_EOF : (int)n;
}

static int64_t io_seek(void *opaque, int64_t offset, int whence) {
    vreader *v = opaque;
    if (whence & AVSEEK_SIZE) {
        struct stat st;
        return fstat(v->fd, &st) == 0 ? (int64_t)st.st_size : AVERROR(errno);
    }
    off_t pos = lseek(v->fd, (off_t)offset, whence & ~AVSEEK_FORCE);
    return pos < 0 ? AVERROR(errno) : (int64_t)pos;
}

static int mem_read(void *opaque, uint8_t *buf, int size) {
    vreader *v = opaque;
    if (size <= 0) return 0;
    size_t left = v->mem_pos < v->mem_len ? v->mem_len - v->mem_pos : 0;
    if (!left) return AVERROR_EOF;
    size_t n = (size_t)size < left ? (size_t)size : left;
    memcpy(buf, v->mem + v->mem_pos, n);
    v->mem_pos += n;
    return (int)n;
}

static int64_t mem_seek(void *opaque, int64_t offset, int whence) {
    vreader *v = opaque;
    if (whence & AVSEEK_SIZE) return (int64_t)v->mem_len;
    int64_t base;
    switch (whence & ~AVSEEK_FORCE) {
    case SEEK_SET: base = 0; break;
    case SEEK_CUR: base = (int64_t)v->mem_pos; break;
    case SEEK_END: base = (int64_t)v->mem_len; break;
    default: return AVERROR(EINVAL);
    }
    /* inside [0, len]: no overflow, the length being at most the limit */
    if (offset < -base || offset > (int64_t)v->mem_len - base) return AVERROR(EINVAL);
    v->mem_pos = (size_t)(base + offset);
    return (int64_t)v->mem_pos;
}

/* The first bytes of the input, for the message when it is not a video. */
static size_t input_head(const vreader *v, uint8_t *head, size_t n) {
    if (v->fd < 0) {
        size_t k = v->mem_len < n ? v->mem_len : n;
        memcpy(head, v->mem, k);
        return k;
    }
    ssize_t got = pread(v->fd, head, n, 0);
    return got > 0 ? (size_t)got : 0;
}

static int open_input(vreader *v, g3_error *err) {
    if (!v->mem) {
        v->fd = open(v->path, O_RDONLY | O_CLOEXEC);
        if (v->fd < 0) return g3_fail(err, "cannot open video '%s': %s", v->path, strerror(errno));
    }
    uint8_t *buf = av_malloc(AVIO_BUFFER);
    if (!buf) return g3_fail(err, "out of memory opening video '%s'", v->path);
    v->avio = v->mem ? avio_alloc_context(buf, AVIO_BUFFER, 0, v, mem_read, NULL, mem_seek)
                     : avio_alloc_context(buf, AVIO_BUFFER, 0, v, io_read, NULL, io_seek);
    if (!v->avio) {
        av_free(buf);
        return g3_fail(err, "out of memory opening video '%s'", v->path);
    }
    v->fmt = avformat_alloc_context();
    if (!v->fmt) return g3_fail(err, "out of memory opening video '%s'", v->path);
    v->fmt->pb = v->avio;
    v->fmt->flags |= AVFMT_FLAG_CUSTOM_IO;
    AVDictionary *opts = NULL;
    if (av_dict_set(&opts, "format_whitelist", VIDEO_FORMATS, 0) < 0 ||
        av_dict_set(&opts, "protocol_whitelist", "none", 0) < 0) {
        av_dict_free(&opts);
        return g3_fail(err, "out of memory opening video '%s'", v->path);
    }
    int r = avformat_open_input(&v->fmt, NULL, NULL, &opts); /* frees fmt on failure */
    av_dict_free(&opts);
    if (r < 0) {
        uint8_t head[16];
        const char *what = "unrecognized data";
        g3_image_format img = g3_image_sniff(head, input_head(v, head, sizeof head), &what);
        if (img != G3_IMAGE_UNKNOWN)
            return g3_fail(err, "'%s' is a %s image, not a video: attach it as an image", v->path, what);
        char why[AV_ERROR_MAX_STRING_SIZE] = {0};
        av_strerror(r, why, sizeof why);
        if (strstr(what, "video")) /* the right kind of file, but broken */
            return g3_fail(err, "'%s' is a corrupt or truncated video (%s)", v->path, why);
        return g3_fail(err,
                       "cannot read '%s' as a video (it looks like %s: %s); videos must be MP4, MOV, WebM, "
                       "MKV, AVI, MPEG-TS or OGG",
                       v->path, what, why);
    }
    r = avformat_find_stream_info(v->fmt, NULL);
    if (r < 0) return av_fail(err, r, "corrupt video", v->path);
    return 0;
}

/* ---- the video stream --------------------------------------------------- */

static int pick_stream(vreader *v, g3_error *err) {
    int best = -1;
    for (unsigned i = 0; i < v->fmt->nb_streams; i++) {
        const AVStream *st = v->fmt->streams[i];
        if (st->codecpar->codec_type != AVMEDIA_TYPE_VIDEO) continue;
        if (st->disposition & AV_DISPOSITION_ATTACHED_PIC) continue; /* cover art, not the clip */
        if (best < 0) best = (int)i;
    }
    int r = av_find_best_stream(v->fmt, AVMEDIA_TYPE_VIDEO, -1, -1, NULL, 0);
    if (r >= 0 && !(v->fmt->streams[r]->disposition & AV_DISPOSITION_ATTACHED_PIC)) best = r;
    if (best < 0) return g3_fail(err, "'%s' has no video stream", v->path);
    v->stream = best;
    return 0;
}

/* 6, 3 or 8 for a display matrix rotating by 90, 180 or 270 degrees
 * clockwise (ffmpeg's own autorotate reading of it); 1 otherwise. */
static int display_orientation(const AVStream *st) {
    const uint8_t *sd = NULL;
    size_t size = 0;
#if LIBAVCODEC_VERSION_INT >= AV_VERSION_INT(60, 29, 100)
    const AVPacketSideData *p = av_packet_side_data_get(st->codecpar->coded_side_data,
                                                        st->codecpar->nb_coded_side_data, AV_PKT_DATA_DISPLAYMATRIX);
    if (p) {
        sd = p->data;
        size = p->size;
    }
#else
    sd = av_stream_get_side_data(st, AV_PKT_DATA_DISPLAYMATRIX, &size);
#endif
    if (!sd || size < 9 * sizeof(int32_t)) return 1;
    int32_t m[9];
    memcpy(m, sd, sizeof m);
    double ccw = av_display_rotation_get(m);
    if (isnan(ccw)) return 1;
    double cw = fmod(-ccw, 360.0);
    if (cw < 0) cw += 360.0;
    if (fabs(cw - 90.0) < 1.0) return 6;
    if (fabs(cw - 180.0) < 1.0) return 3;
    if (fabs(cw - 270.0) < 1.0) return 8;
    return 1;
}

static int open_decoder(vreader *v, g3_error *err) {
    const AVStream *st = v->fmt->streams[v->stream];
    const AVCodecParameters *par = st->codecpar;
    if (par->width <= 0 || par->height <= 0)
        return g3_fail(err, "'%s' is a corrupt video (its video stream has no frame size)", v->path);
    uint64_t px = (uint64_t)par->width * (uint64_t)par->height;
    if (px > v->max_pixels)
        return g3_fail(err, "'%s': video frames are %d x %d pixels, over the limit of %.1f megapixels", v->path,
                       par->width, par->height, (double)v->max_pixels / 1e6);
    const AVCodec *codec = avcodec_find_decoder(par->codec_id);
    if (!codec)
        return g3_fail(err, "'%s': no decoder for its video codec (%s)", v->path, avcodec_get_name(par->codec_id));
    v->dec = avcodec_alloc_context3(codec);
    if (!v->dec) return g3_fail(err, "out of memory opening video '%s'", v->path);
    int r = avcodec_parameters_to_context(v->dec, par);
    if (r < 0) return av_fail(err, r, "cannot set up the decoder for", v->path);
    v->dec->pkt_timebase = st->time_base;
    v->dec->thread_count = 0; /* the decoder's own threads: a seek may decode a whole GOP of HD frames */
    r = avcodec_open2(v->dec, codec, NULL);
    if (r < 0) return av_fail(err, r, "cannot open the video decoder for", v->path);
    v->tb = st->time_base;
    if (v->tb.num <= 0 || v->tb.den <= 0) return g3_fail(err, "'%s': the video stream has no time base", v->path);
    v->start = st->start_time != AV_NOPTS_VALUE ? st->start_time : 0;
    v->last_ts = v->start;
    v->orientation = display_orientation(st);
    return 0;
}

/* When neither the stream nor the container states a duration (browser-made
 * WebM often does not), read the packets through to the last one. */
static int scan_duration(vreader *v, g3_error *err) {
    int64_t end = AV_NOPTS_VALUE;
    int r;
    while ((r = av_read_frame(v->fmt, v->pkt)) >= 0) {
        if (v->pkt->stream_index == v->stream) {
            int64_t t = v->pkt->pts != AV_NOPTS_VALUE ? v->pkt->pts : v->pkt->dts;
            if (t != AV_NOPTS_VALUE) {
                t += v->pkt->duration > 0 ? v->pkt->duration : 0;
                if (end == AV_NOPTS_VALUE || t > end) end = t;
            }
        }
        av_packet_unref(v->pkt);
    }
    if (end == AV_NOPTS_VALUE || end <= v->start) return g3_fail(err, "'%s' has zero duration", v->path);
    v->duration = end - v->start;
    r = av_seek_frame(v->fmt, v->stream, v->start, AVSEEK_FLAG_BACKWARD);
    if (r < 0) return av_fail(err, r, "cannot seek back to the start of", v->path);
    return 0;
}

static int find_duration(vreader *v, g3_error *err) {
    const AVStream *st = v->fmt->streams[v->stream];
    if (st->duration != AV_NOPTS_VALUE && st->duration > 0) {
        v->duration = st->duration;
        return 0;
    }
    if (v->fmt->duration != AV_NOPTS_VALUE && v->fmt->duration > 0) {
        v->duration = av_rescale_q(v->fmt->duration, AV_TIME_BASE_Q, v->tb);
        if (v->duration > 0) return 0;
    }
    if ((st->duration != AV_NOPTS_VALUE && st->duration == 0) || v->fmt->duration == 0)
        return g3_fail(err, "'%s' has zero duration", v->path);
    return scan_duration(v, err);
}

/* ---- decoding ----------------------------------------------------------- */

static int corrupt_fail(vreader *v, int code, g3_error *err) {
    char why[AV_ERROR_MAX_STRING_SIZE] = {0};
    av_strerror(code, why, sizeof why);
    return g3_fail(err, "'%s' has corrupt video data (%s; %d undecodable packets)", v->path, why, v->bad_packets);
}

/* Counts an undecodable packet; false once there have been too many. */
static bool bad_packet(vreader *v) {
    v->damage++;
    return ++v->bad_packets <= MAX_BAD_PACKETS;
}

/* 1: a frame in v->frame; 0: the stream ended; -1: error. Undecodable
 * packets are skipped (as players do) up to a bound; a read error ends the
 * input like the end of the file, and is reported if nothing decoded. */
static int next_frame(vreader *v, g3_error *err) {
    for (;;) {
        int r = avcodec_receive_frame(v->dec, v->frame);
        if (r == 0) return 1;
        if (r == AVERROR_EOF) return 0;
        if (r == AVERROR_INVALIDDATA && bad_packet(v)) continue;
        if (r != AVERROR(EAGAIN)) return corrupt_fail(v, r, err);
        if (v->input_done) return 0;
        r = av_read_frame(v->fmt, v->pkt);
        if (r < 0) {
            if (r != AVERROR_EOF) v->read_error = r;
            v->input_done = true;
            r = avcodec_send_packet(v->dec, NULL); /* drain the frames still inside */
            if (r == AVERROR_INVALIDDATA) v->damage++; /* a threaded decoder's late error */
            else if (r < 0 && r != AVERROR_EOF) return corrupt_fail(v, r, err);
            continue;
        }
        if (v->pkt->stream_index != v->stream) {
            av_packet_unref(v->pkt);
            continue;
        }
        r = avcodec_send_packet(v->dec, v->pkt);
        av_packet_unref(v->pkt);
        if (r == AVERROR_INVALIDDATA && bad_packet(v)) continue;
        if (r < 0) return corrupt_fail(v, r, err);
    }
}

static int64_t frame_ts(vreader *v, const AVFrame *f) {
    int64_t t = f->best_effort_timestamp != AV_NOPTS_VALUE ? f->best_effort_timestamp : f->pts;
    if (t != AV_NOPTS_VALUE) v->last_ts = t;
    return v->last_ts; /* no timestamp: not later than the previous frame */
}

static bool is_keyframe(const AVFrame *f) {
#if LIBAVUTIL_VERSION_INT >= AV_VERSION_INT(58, 7, 100)
    return (f->flags & AV_FRAME_FLAG_KEY) != 0;
#else
    return f->key_frame != 0;
#endif
}

/* Concealed errors, missing references (leading pictures after a seek into
 * an open GOP), a frame the decoder calls corrupt; and, after any damage,
 * everything up to the next keyframe (predicted from what was lost, such
 * frames decode "cleanly" into grey). */
static bool frame_damaged(vreader *v, const AVFrame *f) {
    if (v->damage != v->damage_seen) v->need_key = true;
    v->damage_seen = v->damage;
    if (f->decode_error_flags != 0 || (f->flags & AV_FRAME_FLAG_CORRUPT)) {
        v->need_key = true;
        return true;
    }
    if (v->need_key && !is_keyframe(f)) return true;
    v->need_key = false;
    return false;
}

/* Leaves in v->frame the first intact frame at or after target, or the
 * clip's last frame when the clip ends before target (its duration counts
 * the last frame's display time). 1: found; 0: nothing left to decode;
 * -1: error, including corrupt data between the seek point and the target. */
static int frame_at(vreader *v, int64_t target, bool seek, g3_error *err) {
    if (seek && av_seek_frame(v->fmt, v->stream, target, AVSEEK_FLAG_BACKWARD) >= 0) {
        avcodec_flush_buffers(v->dec);
        v->input_done = false;
    } /* a failed seek decodes on from where we are: targets only increase */
    int damage_before = v->damage;
    av_frame_unref(v->held);
    bool held = false;
    for (;;) {
        int r = next_frame(v, err);
        if (r < 0) return -1;
        if (r == 0) break;
        if (frame_damaged(v, v->frame)) {
            v->damage_seen = ++v->damage;
            av_frame_unref(v->frame);
            continue;
        }
        if (frame_ts(v, v->frame) >= target) return 1;
        av_frame_unref(v->held);
        av_frame_move_ref(v->held, v->frame);
        held = true;
    }
    if (v->damage > damage_before || v->read_error) /* the target was lost to damage, not past the end */
        return g3_fail(err, "'%s' has corrupt video data: no intact frame at or after %.2f s", v->path,
                       (double)(target - v->start) * av_q2d(v->tb));
    if (!held) return 0;
    av_frame_unref(v->frame);
    av_frame_move_ref(v->frame, v->held);
    return 1;
}

/* ---- to RGB ------------------------------------------------------------- */

/* swscale wants the full-range "J" formats spelled as the plain ones plus a
 * range flag (it warns otherwise). */
static enum AVPixelFormat plain_format(enum AVPixelFormat f, int *full_range) {
    switch (f) {
    case AV_PIX_FMT_YUVJ420P: *full_range = 1; return AV_PIX_FMT_YUV420P;
    case AV_PIX_FMT_YUVJ422P: *full_range = 1; return AV_PIX_FMT_YUV422P;
    case AV_PIX_FMT_YUVJ444P: *full_range = 1; return AV_PIX_FMT_YUV444P;
    case AV_PIX_FMT_YUVJ440P: *full_range = 1; return AV_PIX_FMT_YUV440P;
    case AV_PIX_FMT_YUVJ411P: *full_range = 1; return AV_PIX_FMT_YUV411P;
    default: return f;
    }
}

static int setup_colors(vreader *v, const AVFrame *f, enum AVPixelFormat src, int full_range, g3_error *err) {
    const AVPixFmtDescriptor *desc = av_pix_fmt_desc_get(src);
    if (!desc || (desc->flags & AV_PIX_FMT_FLAG_RGB) || desc->nb_components < 3) return 0;
    /* the stream's matrix (BT.709 for HD...); unknown ones fall back to
     * swscale's default BT.601, as ffmpeg does */
    int cs = f->colorspace;
    if (cs == AVCOL_SPC_RGB || cs == AVCOL_SPC_UNSPECIFIED || cs == AVCOL_SPC_YCGCO || cs < 0 || cs > 10)
        cs = SWS_CS_DEFAULT;
    if (sws_setColorspaceDetails(v->sws, sws_getCoefficients(cs), full_range, sws_getCoefficients(SWS_CS_DEFAULT), 1,
                                 0, 1 << 16, 1 << 16) < 0)
        return g3_fail(err, "'%s': cannot set up the color conversion", v->path);
    return 0;
}

static int frame_to_image(vreader *v, const AVFrame *f, g3_image *out, g3_error *err) {
    if (f->width <= 0 || f->height <= 0) return g3_fail(err, "'%s': a decoded frame has no size", v->path);
    size_t w = (size_t)f->width, h = (size_t)f->height, row = w * 3, stride, padded, bytes;
    if ((uint64_t)w * h > v->max_pixels)
        return g3_fail(err, "'%s': a frame is %zu x %zu pixels, over the limit of %.1f megapixels", v->path, w, h,
                       (double)v->max_pixels / 1e6);
    stride = (row + 63) & ~(size_t)63; /* swscale may write whole SIMD blocks: give it room */
    if (stride > INT32_MAX || g3_mul_overflow_size(stride, h + 1, &padded) || g3_mul_overflow_size(row, h, &bytes))
        return g3_fail(err, "'%s': frame too large", v->path);
    int full_range = f->color_range == AVCOL_RANGE_JPEG;
    enum AVPixelFormat src = plain_format((enum AVPixelFormat)f->format, &full_range);
    v->sws = sws_getCachedContext(v->sws, f->width, f->height, src, f->width, f->height, AV_PIX_FMT_RGB24,
                                  SWS_BILINEAR | SWS_ACCURATE_RND | SWS_FULL_CHR_H_INT, NULL, NULL, NULL);
    if (!v->sws)
        return g3_fail(err, "'%s': cannot convert its pixel format (%s) to RGB", v->path,
                       av_get_pix_fmt_name(src) ? av_get_pix_fmt_name(src) : "unknown");
    if (setup_colors(v, f, src, full_range, err)) return -1;
    uint8_t *tmp = malloc(padded), *rgb = malloc(bytes);
    if (!tmp || !rgb) {
        free(tmp);
        free(rgb);
        return g3_fail(err, "out of memory converting a %zu x %zu frame of '%s'", w, h, v->path);
    }
    uint8_t *dst[4] = {tmp, NULL, NULL, NULL};
    int dst_stride[4] = {(int)stride, 0, 0, 0};
    int got = sws_scale(v->sws, (const uint8_t *const *)f->data, f->linesize, 0, f->height, dst, dst_stride);
    if (got != f->height) {
        free(tmp);
        free(rgb);
        return g3_fail(err, "'%s': converting a frame to RGB failed", v->path);
    }
    for (size_t y = 0; y < h; y++) memcpy(rgb + y * row, tmp + y * stride, row);
    free(tmp);
    out->width = (uint32_t)w;
    out->height = (uint32_t)h;
    out->rgb = rgb;
    if (g3_image_orient(out, v->orientation, err)) {
        g3_image_free(out);
        return g3_error_prefix(err, "'%s': ", v->path);
    }
    return 0;
}

/* ---- the sampler -------------------------------------------------------- */

static void vreader_close(vreader *v) {
    sws_freeContext(v->sws);
    av_frame_free(&v->frame);
    av_frame_free(&v->held);
    av_packet_free(&v->pkt);
    avcodec_free_context(&v->dec);
    avformat_close_input(&v->fmt); /* leaves our custom AVIOContext alone */
    if (v->avio) av_freep(&v->avio->buffer); /* libavformat may have replaced the buffer */
    avio_context_free(&v->avio);
    if (v->fd >= 0) close(v->fd);
    v->fd = -1;
}

/* Everything after the input: the stream, its decoder, its duration. */
static int vreader_start(vreader *v, g3_error *err) {
    v->pkt = av_packet_alloc();
    v->frame = av_frame_alloc();
    v->held = av_frame_alloc();
    if (!v->pkt || !v->frame || !v->held) return g3_fail(err, "out of memory opening video '%s'", v->path);
    if (open_input(v, err) || pick_stream(v, err) || open_decoder(v, err) || find_duration(v, err)) return -1;
    return 0;
}

static int vreader_open(vreader *v, const char *path, const g3_media_limits *lim, g3_error *err) {
    memset(v, 0, sizeof *v);
    v->fd = -1;
    v->path = path;
    v->max_pixels = lim->max_pixels;
    if (g3_media_check_file(path, lim->max_video_bytes, "video", NULL, err)) return -1;
    return vreader_start(v, err);
}

static int vreader_open_memory(vreader *v, const void *data, size_t len, const g3_media_limits *lim,
                               g3_error *err) {
    memset(v, 0, sizeof *v);
    v->fd = -1;
    v->path = "video attachment";
    v->max_pixels = lim->max_pixels;
    if (!data || !len) return g3_fail(err, "the video is empty (0 bytes)");
    if (len > lim->max_video_bytes || len > (size_t)INT64_MAX)
        return g3_fail(err, "the video is %zu bytes, over the limit of %zu", len, lim->max_video_bytes);
    v->mem = data;
    v->mem_len = len;
    return vreader_start(v, err);
}

/* FFmpeg logs to stderr by default ("moov atom not found", decoder
 * warnings): our errors already say what was wrong with the file, in our
 * words, so its log is silenced. The level is FFmpeg's process-wide
 * setting: set once, under pthread_once, before the first use. */
static pthread_once_t g_av_log_once = PTHREAD_ONCE_INIT;

static void silence_av_log(void) { av_log_set_level(AV_LOG_QUIET); }

/* The sampler proper, on an opened reader (a file's or memory's); closes it. */
static int sample_opened(vreader *v, uint32_t n_frames, g3_video_frame **frames, uint32_t *n_out, g3_error *err) {
    g3_video_frame *out = calloc(n_frames, sizeof *out);
    uint32_t n = 0;
    if (!out) {
        g3_fail(err, "out of memory sampling '%s'", v->path);
        goto fail;
    }
    for (; n < n_frames; n++) {
        int64_t target = v->start + av_rescale_rnd(v->duration, n, n_frames, AV_ROUND_UP);
        int r = frame_at(v, target, n > 0, err);
        if (r < 0) goto fail;
        if (r == 0) {
            if (n == 0) {
                g3_fail(err, "'%s' has no decodable video frame", v->path);
                goto fail;
            }
            /* a clean end right after the previous frame: show that one again */
            out[n] = out[n - 1];
            size_t bytes = (size_t)out[n].image.width * out[n].image.height * 3;
            out[n].image.rgb = malloc(bytes);
            if (!out[n].image.rgb) {
                g3_fail(err, "out of memory sampling '%s'", v->path);
                goto fail;
            }
            memcpy(out[n].image.rgb, out[n - 1].image.rgb, bytes);
            continue;
        }
        double t = (double)(frame_ts(v, v->frame) - v->start) * av_q2d(v->tb);
        out[n].seconds = t > 0 ? t : 0;
        if (frame_to_image(v, v->frame, &out[n].image, err)) goto fail;
        av_frame_unref(v->frame);
    }
    vreader_close(v);
    *frames = out;
    *n_out = n_frames;
    return 0;
fail:
    vreader_close(v);
    g3_video_frames_free(out, n_frames);
    return -1;
}

static int check_count(uint32_t n_frames, g3_video_frame **frames, uint32_t *n_out, g3_error *err) {
    pthread_once(&g_av_log_once, silence_av_log);
    *frames = NULL;
    *n_out = 0;
    if (n_frames < 1 || n_frames > MAX_FRAMES)
        return g3_fail(err, "video frames: asked for %u, must be 1 to %d", n_frames, MAX_FRAMES);
    return 0;
}

int g3_video_sample(const char *path, uint32_t n_frames, const g3_media_limits *lim_in, g3_video_frame **frames,
                    uint32_t *n_out, g3_error *err) {
    if (check_count(n_frames, frames, n_out, err)) return -1;
    g3_media_limits lim = g3_media_limits_or_default(lim_in);
    vreader v;
    if (vreader_open(&v, path, &lim, err)) {
        vreader_close(&v);
        return -1;
    }
    return sample_opened(&v, n_frames, frames, n_out, err);
}

int g3_video_sample_memory(const void *data, size_t len, uint32_t n_frames, const g3_media_limits *lim_in,
                           g3_video_frame **frames, uint32_t *n_out, g3_error *err) {
    if (check_count(n_frames, frames, n_out, err)) return -1;
    g3_media_limits lim = g3_media_limits_or_default(lim_in);
    vreader v;
    if (vreader_open_memory(&v, data, len, &lim, err)) {
        vreader_close(&v);
        return -1;
    }
    return sample_opened(&v, n_frames, frames, n_out, err);
}

void g3_video_frames_free(g3_video_frame *frames, uint32_t n) {
    if (!frames) return;
    for (uint32_t i = 0; i < n; i++) g3_image_free(&frames[i].image);
    free(frames);
}
