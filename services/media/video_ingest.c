/* video_ingest.c - FFmpeg demux/decode, frame sampling, RGB conversion and
 * 16 kHz mono audio, delivered in timestamp order (see video_ingest.h). */
#include "video_ingest.h"

#include <libavcodec/avcodec.h>
#include <libavformat/avformat.h>
#include <libavutil/channel_layout.h>
#include <libavutil/pixdesc.h>
#include <libswresample/swresample.h>
#include <libswscale/swscale.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "image_preprocess.h"

typedef struct pending_frame {
    double seconds;
    int64_t sample; /* audio sample index the frame sits before */
    uint8_t *rgb;   /* width * height * 3, owned */
    int width, height;
} pending_frame;

typedef struct ingest {
    g3n_video_options options;
    const char *url;
    g3n_video_frame_callback on_frame;
    g3n_video_audio_callback on_audio;
    void *user;
    g3n_video_info info;
    AVFormatContext *format;
    AVCodecContext *video, *audio;
    int video_index, audio_index;
    AVPacket *packet;
    AVFrame *frame;
    double start_seconds;
    /* video sampling */
    struct SwsContext *sws;
    uint8_t *sws_buffer;
    int sws_stride, sws_height;
    double next_time;
    int taken;
    int video_done;
    pending_frame *pending; /* FIFO of pending_count frames */
    int pending_count, pending_capacity;
    /* audio */
    SwrContext *swr;
    int channels;
    float **planes;
    int plane_capacity;
    float *buffer;             /* decoded, not yet delivered samples */
    int64_t buffer_count, buffer_capacity;
    int64_t delivered;         /* samples delivered so far */
    int audio_done;
} ingest;

g3n_video_options g3n_video_default_options(void)
{
    g3n_video_options o;
    memset(&o, 0, sizeof(o));
    o.fps = 1.0;
    o.max_frames = 32;
    o.want_video = 1;
    o.want_audio = 1;
    o.sample_rate = 16000;
    o.max_pixels = g3n_image_default_options().max_pixels;
    o.max_pending_frames = 8;
    return o;
}

static int av_fail(g3n_error *err, const char *url, const char *what, int code)
{
    char text[AV_ERROR_MAX_STRING_SIZE] = {0};
    av_strerror(code, text, sizeof(text));
    return g3n_error_set(err, "%s: %s: %s", url, what, text);
}

static int audio_active(const ingest *g)
{
    return g->audio != NULL && !g->audio_done;
}

/* Delivers buffered audio samples with index < limit. */
static int deliver_audio(ingest *g, int64_t limit, g3n_error *err)
{
    int64_t n = limit - g->delivered;
    if (n > g->buffer_count)
        n = g->buffer_count;
    if (n <= 0)
        return G3N_OK;
    double seconds = (double)g->delivered / g->options.sample_rate;
    if (g->on_audio(g->user, seconds, g->buffer, n, err) != G3N_OK)
        return G3N_ERR;
    memmove(g->buffer, g->buffer + n, sizeof(float) * (size_t)(g->buffer_count - n));
    g->buffer_count -= n;
    g->delivered += n;
    g->info.audio_samples = g->delivered;
    return G3N_OK;
}

/* Audio may run ahead of the video by this much before it is delivered
 * without waiting for the next frame (a stalled video stream must not hold
 * the audio forever). */
#define MAX_AUDIO_LEAD_SECONDS 5.0

/* The first audio sample a frame still to come could sit before: frames
 * earlier than next_time are never sampled. INT64_MAX when no frame can come. */
static int64_t video_limit(const ingest *g, int final)
{
    if (final || !g->video || g->video_done)
        return INT64_MAX;
    return (int64_t)llround((g->next_time - 1e-6) * g->options.sample_rate);
}

/* Hands over every frame whose audio has arrived (all of them when final),
 * each after the audio before it, then the audio that no later frame can
 * precede. */
static int release(ingest *g, int final, g3n_error *err)
{
    while (g->pending_count > 0) {
        pending_frame *f = &g->pending[0];
        int ready = final || !audio_active(g) || g->delivered + g->buffer_count >= f->sample ||
                    g->pending_count > g->options.max_pending_frames;
        if (!ready)
            break;
        if (g->audio && deliver_audio(g, f->sample, err) != G3N_OK)
            return G3N_ERR;
        int rc = g->on_frame(g->user, g->info.frames, f->seconds, f->rgb, f->width, f->height, err);
        free(f->rgb);
        g->pending_count--;
        memmove(g->pending, g->pending + 1, sizeof(pending_frame) * (size_t)g->pending_count);
        if (rc != G3N_OK)
            return G3N_ERR;
        g->info.frames++;
    }
    if (!g->audio)
        return G3N_OK;
    int64_t limit = g->pending_count > 0 ? g->pending[0].sample : video_limit(g, final);
    const int64_t lead = (int64_t)(MAX_AUDIO_LEAD_SECONDS * g->options.sample_rate);
    if (g->pending_count == 0 && g->delivered + g->buffer_count - limit > lead)
        limit = g->delivered + g->buffer_count - lead; /* the video stalls: let the audio go */
    return deliver_audio(g, limit, err);
}

/* A decoded video frame: sample it or skip it. */
static int take_frame(ingest *g, AVFrame *frame, g3n_error *err)
{
    if (g->video_done)
        return G3N_OK;
    AVStream *stream = g->format->streams[g->video_index];
    int64_t pts = frame->best_effort_timestamp != AV_NOPTS_VALUE ? frame->best_effort_timestamp : frame->pts;
    if (pts == AV_NOPTS_VALUE)
        return g3n_error_set(err, "%s: a video frame without a timestamp", g->url);
    double seconds = (double)pts * av_q2d(stream->time_base) - g->start_seconds;
    if (seconds < 0)
        seconds = 0;
    if (seconds + 1e-6 < g->next_time)
        return G3N_OK;
    g->next_time = (floor(seconds * g->options.fps + 1e-6) + 1.0) / g->options.fps;
    const int w = frame->width, h = frame->height;
    if (w < 1 || h < 1 || (int64_t)w * h > g->options.max_pixels)
        return g3n_error_set(err, "%s: video frame of %dx%d pixels (limit %lld)", g->url, w, h,
                             (long long)g->options.max_pixels);
    g->sws = sws_getCachedContext(g->sws, w, h, (enum AVPixelFormat)frame->format, w, h, AV_PIX_FMT_RGB24,
                                  SWS_BILINEAR | SWS_ACCURATE_RND | SWS_FULL_CHR_H_INT, NULL, NULL, NULL);
    if (!g->sws)
        return g3n_error_set(err, "%s: cannot convert %s frames to RGB", g->url,
                             av_get_pix_fmt_name((enum AVPixelFormat)frame->format));
    int stride = (w * 3 + 63) & ~63;
    if (stride != g->sws_stride || h + 1 > g->sws_height) {
        free(g->sws_buffer);
        g->sws_buffer = malloc((size_t)stride * (size_t)(h + 1)); /* a spare row for SIMD overreads */
        if (!g->sws_buffer)
            return g3n_error_set(err, "%s: out of memory", g->url);
        g->sws_stride = stride;
        g->sws_height = h + 1;
    }
    uint8_t *dst[4] = {g->sws_buffer, NULL, NULL, NULL};
    int dst_stride[4] = {stride, 0, 0, 0};
    if (sws_scale(g->sws, (const uint8_t *const *)frame->data, frame->linesize, 0, h, dst, dst_stride) != h)
        return g3n_error_set(err, "%s: RGB conversion failed", g->url);
    if (g->pending_count == g->pending_capacity) {
        int capacity = g->pending_capacity ? 2 * g->pending_capacity : 4;
        pending_frame *grown = realloc(g->pending, sizeof(pending_frame) * (size_t)capacity);
        if (!grown)
            return g3n_error_set(err, "%s: out of memory", g->url);
        g->pending = grown;
        g->pending_capacity = capacity;
    }
    pending_frame *f = &g->pending[g->pending_count];
    f->rgb = malloc((size_t)w * 3 * (size_t)h);
    if (!f->rgb)
        return g3n_error_set(err, "%s: out of memory", g->url);
    for (int y = 0; y < h; y++)
        memcpy(f->rgb + (size_t)y * w * 3, g->sws_buffer + (size_t)y * stride, (size_t)w * 3);
    f->seconds = seconds;
    f->sample = (int64_t)llround(seconds * g->options.sample_rate);
    f->width = w;
    f->height = h;
    g->pending_count++;
    g->taken++;
    if (g->options.max_frames > 0 && g->taken >= g->options.max_frames)
        g->video_done = 1;
    return G3N_OK;
}

static int setup_resampler(ingest *g, const AVFrame *frame, g3n_error *err)
{
    AVChannelLayout layout;
    memset(&layout, 0, sizeof(layout));
    if (frame->ch_layout.nb_channels < 1)
        return g3n_error_set(err, "%s: decoded audio has no channels", g->url);
    if (av_channel_layout_copy(&layout, &frame->ch_layout) < 0)
        return g3n_error_set(err, "%s: out of memory", g->url);
    if (layout.order == AV_CHANNEL_ORDER_UNSPEC) {
        int n = layout.nb_channels;
        av_channel_layout_uninit(&layout);
        av_channel_layout_default(&layout, n);
    }
    int rc = swr_alloc_set_opts2(&g->swr, &layout, AV_SAMPLE_FMT_FLTP, g->options.sample_rate, &layout,
                                 (enum AVSampleFormat)frame->format, frame->sample_rate, 0, NULL);
    if (rc >= 0)
        rc = swr_init(g->swr);
    g->channels = layout.nb_channels;
    av_channel_layout_uninit(&layout);
    if (rc < 0)
        return av_fail(err, g->url, "cannot set up the resampler", rc);
    g->planes = calloc((size_t)g->channels, sizeof(float *));
    if (!g->planes)
        return g3n_error_set(err, "%s: out of memory", g->url);
    return G3N_OK;
}

/* Resamples (frame NULL: drains) and appends the mono mean to the buffer. */
static int take_audio(ingest *g, const AVFrame *frame, g3n_error *err)
{
    int in_samples = frame ? frame->nb_samples : 0;
    for (;;) {
        int capacity = swr_get_out_samples(g->swr, in_samples);
        if (capacity < 0)
            return av_fail(err, g->url, "resampler", capacity);
        if (capacity < 256)
            capacity = 256;
        if (capacity > g->plane_capacity) {
            for (int c = 0; c < g->channels; c++) {
                free(g->planes[c]);
                g->planes[c] = malloc(sizeof(float) * (size_t)capacity);
                if (!g->planes[c])
                    return g3n_error_set(err, "%s: out of memory", g->url);
            }
            g->plane_capacity = capacity;
        }
        int got = swr_convert(g->swr, (uint8_t **)g->planes, capacity,
                              frame ? (const uint8_t **)frame->extended_data : NULL, in_samples);
        if (got < 0)
            return av_fail(err, g->url, "resampler", got);
        if (g->buffer_count + got > g->buffer_capacity) {
            int64_t grown_capacity = 2 * (g->buffer_count + got) + 4096;
            float *grown = realloc(g->buffer, sizeof(float) * (size_t)grown_capacity);
            if (!grown)
                return g3n_error_set(err, "%s: out of memory", g->url);
            g->buffer = grown;
            g->buffer_capacity = grown_capacity;
        }
        const float scale = 1.0f / (float)g->channels;
        float *out = g->buffer + g->buffer_count;
        for (int i = 0; i < got; i++) {
            float sum = g->planes[0][i];
            for (int c = 1; c < g->channels; c++)
                sum += g->planes[c][i];
            out[i] = g->channels == 1 ? sum : sum * scale;
        }
        g->buffer_count += got;
        if (frame != NULL || got == 0)
            return G3N_OK;
    }
}

static int receive(ingest *g, AVCodecContext *codec, g3n_error *err)
{
    for (;;) {
        int rc = avcodec_receive_frame(codec, g->frame);
        if (rc == AVERROR(EAGAIN) || rc == AVERROR_EOF)
            return G3N_OK;
        if (rc < 0)
            return av_fail(err, g->url, codec == g->video ? "corrupt video data" : "corrupt audio data", rc);
        int status = G3N_OK;
        if (codec == g->video) {
            status = take_frame(g, g->frame, err);
        } else if (g->frame->nb_samples > 0) {
            if (!g->swr)
                status = setup_resampler(g, g->frame, err);
            else if (g->frame->ch_layout.nb_channels != g->channels)
                status = g3n_error_set(err, "%s: the audio channel count changes mid-stream", g->url);
            if (status == G3N_OK)
                status = take_audio(g, g->frame, err);
        }
        av_frame_unref(g->frame);
        if (status != G3N_OK)
            return G3N_ERR;
    }
}

static int open_decoder(ingest *g, enum AVMediaType type, AVCodecContext **out, int *index, g3n_error *err)
{
    const AVCodec *codec = NULL;
    int rc = av_find_best_stream(g->format, type, -1, -1, &codec, 0);
    if (rc < 0 || !codec)
        return G3N_OK; /* no such stream: not an error here */
    *index = rc;
    *out = avcodec_alloc_context3(codec);
    if (!*out)
        return g3n_error_set(err, "%s: out of memory", g->url);
    rc = avcodec_parameters_to_context(*out, g->format->streams[*index]->codecpar);
    if (rc >= 0)
        rc = avcodec_open2(*out, codec, NULL);
    if (rc < 0)
        return av_fail(err, g->url, type == AVMEDIA_TYPE_VIDEO ? "cannot open the video decoder"
                                                                : "cannot open the audio decoder",
                       rc);
    return G3N_OK;
}

static int interrupted(void *user)
{
    const ingest *g = user;
    return g->options.cancel && *g->options.cancel;
}

static int run(ingest *g, g3n_error *err)
{
    const char *url = strcmp(g->url, "-") == 0 ? "pipe:0" : g->url;
    g->format = avformat_alloc_context();
    if (!g->format)
        return g3n_error_set(err, "%s: out of memory", g->url);
    g->format->interrupt_callback.callback = interrupted;
    g->format->interrupt_callback.opaque = g;
    int rc = avformat_open_input(&g->format, url, NULL, NULL);
    if (rc < 0)
        return av_fail(err, g->url, "cannot open", rc);
    rc = avformat_find_stream_info(g->format, NULL);
    if (rc < 0)
        return av_fail(err, g->url, "cannot read the stream info", rc);
    g->video_index = g->audio_index = -1;
    if (g->on_frame && g->options.want_video && open_decoder(g, AVMEDIA_TYPE_VIDEO, &g->video, &g->video_index, err))
        return G3N_ERR;
    if (g->on_audio && g->options.want_audio && open_decoder(g, AVMEDIA_TYPE_AUDIO, &g->audio, &g->audio_index, err))
        return G3N_ERR;
    if (!g->video && !g->audio)
        return g3n_error_set(err, "%s: no %s stream", g->url,
                             g->on_frame && g->on_audio ? "video or audio" : g->on_frame ? "video" : "audio");
    g->info.has_video = g->video != NULL;
    g->info.has_audio = g->audio != NULL;
    if (g->video) {
        g->info.width = g->video->width;
        g->info.height = g->video->height;
    }
    if (g->format->duration > 0)
        g->info.duration = (double)g->format->duration / AV_TIME_BASE;
    if (g->format->start_time != AV_NOPTS_VALUE)
        g->start_seconds = (double)g->format->start_time / AV_TIME_BASE;
    else if (g->video && g->format->streams[g->video_index]->start_time != AV_NOPTS_VALUE)
        g->start_seconds = (double)g->format->streams[g->video_index]->start_time *
                           av_q2d(g->format->streams[g->video_index]->time_base);
    g->packet = av_packet_alloc();
    g->frame = av_frame_alloc();
    if (!g->packet || !g->frame)
        return g3n_error_set(err, "%s: out of memory", g->url);
    for (;;) {
        rc = av_read_frame(g->format, g->packet);
        if (rc == AVERROR_EOF)
            break;
        if (rc < 0)
            return av_fail(err, g->url, "read error", rc);
        AVCodecContext *codec = NULL;
        if (g->video && g->packet->stream_index == g->video_index && !g->video_done)
            codec = g->video;
        else if (g->audio && g->packet->stream_index == g->audio_index)
            codec = g->audio;
        if (codec) {
            rc = avcodec_send_packet(codec, g->packet);
            av_packet_unref(g->packet);
            if (rc < 0 && rc != AVERROR(EAGAIN) && rc != AVERROR_INVALIDDATA)
                return av_fail(err, g->url, "decoder", rc);
            if (receive(g, codec, err) != G3N_OK || release(g, 0, err) != G3N_OK)
                return G3N_ERR;
        } else {
            av_packet_unref(g->packet);
        }
    }
    /* drain the decoders and the resampler */
    if (g->video && !g->video_done && avcodec_send_packet(g->video, NULL) >= 0 && receive(g, g->video, err) != G3N_OK)
        return G3N_ERR;
    if (g->audio) {
        if (avcodec_send_packet(g->audio, NULL) >= 0 && receive(g, g->audio, err) != G3N_OK)
            return G3N_ERR;
        if (g->swr && take_audio(g, NULL, err) != G3N_OK)
            return G3N_ERR;
        g->audio_done = 1;
    }
    return release(g, 1, err);
}

int g3n_video_ingest(const char *url, const g3n_video_options *options, g3n_video_frame_callback on_frame,
                     g3n_video_audio_callback on_audio, void *user, g3n_video_info *info, g3n_error *err)
{
    ingest g;
    memset(&g, 0, sizeof(g));
    g.options = options ? *options : g3n_video_default_options();
    if (!(g.options.fps > 0) || g.options.sample_rate < 1000)
        return g3n_error_set(err, "%s: bad options (fps %g, sample rate %d)", url ? url : "(null)", g.options.fps,
                             g.options.sample_rate);
    if (g.options.max_pending_frames < 1)
        g.options.max_pending_frames = 1;
    if (g.options.max_pixels <= 0)
        g.options.max_pixels = g3n_image_default_options().max_pixels;
    if (!url || !*url)
        return g3n_error_set(err, "video: no input given");
    g.url = url;
    g.on_frame = on_frame;
    g.on_audio = on_audio;
    g.user = user;
    int rc = run(&g, err);
    if (info)
        *info = g.info;
    for (int i = 0; i < g.pending_count; i++)
        free(g.pending[i].rgb);
    free(g.pending);
    free(g.sws_buffer);
    sws_freeContext(g.sws);
    if (g.planes)
        for (int c = 0; c < g.channels; c++)
            free(g.planes[c]);
    free(g.planes);
    free(g.buffer);
    swr_free(&g.swr);
    av_frame_free(&g.frame);
    av_packet_free(&g.packet);
    avcodec_free_context(&g.video);
    avcodec_free_context(&g.audio);
    avformat_close_input(&g.format);
    return rc;
}
