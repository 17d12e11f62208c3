/* audio_decode.c - FFmpeg decoding + libswresample to mono f32. */
#include "audio_decode.h"

#include <libavcodec/avcodec.h>
#include <libavformat/avformat.h>
#include <libavutil/channel_layout.h>
#include <libavutil/opt.h>
#include <libswresample/swresample.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

/* ---- memory input for avformat ---- */

typedef struct memory_reader {
    const uint8_t *data;
    size_t size;
    size_t position;
} memory_reader;

static int memory_read(void *opaque, uint8_t *buffer, int size)
{
    memory_reader *r = opaque;
    size_t left = r->size - r->position;
    if (left == 0)
        return AVERROR_EOF;
    size_t n = (size_t)size < left ? (size_t)size : left;
    memcpy(buffer, r->data + r->position, n);
    r->position += n;
    return (int)n;
}

static int64_t memory_seek(void *opaque, int64_t offset, int whence)
{
    memory_reader *r = opaque;
    int64_t base;
    switch (whence & ~AVSEEK_FORCE) {
    case AVSEEK_SIZE:
        return (int64_t)r->size;
    case SEEK_SET:
        base = 0;
        break;
    case SEEK_CUR:
        base = (int64_t)r->position;
        break;
    case SEEK_END:
        base = (int64_t)r->size;
        break;
    default:
        return AVERROR(EINVAL);
    }
    int64_t target = base + offset;
    if (target < 0 || target > (int64_t)r->size)
        return AVERROR(EINVAL);
    r->position = (size_t)target;
    return target;
}

/* ---- the decoding session ---- */

typedef struct decoder {
    const char *name;
    int sample_rate;
    AVFormatContext *format;
    AVIOContext *io;
    AVCodecContext *codec;
    SwrContext *swr;
    AVFrame *frame;
    AVPacket *packet;
    int stream_index;
    int channels;          /* channels swresample outputs (those of the source) */
    enum AVSampleFormat in_format;
    int in_rate;
    AVChannelLayout in_layout;
    float **planes;        /* [channels] converted planar samples */
    int plane_capacity;
    float *mono;           /* averaged output */
    g3n_audio_sink sink;
    void *user;
    int64_t emitted;
} decoder;

static int av_fail(g3n_error *err, const char *name, const char *what, int code)
{
    char text[AV_ERROR_MAX_STRING_SIZE];
    av_strerror(code, text, sizeof(text));
    return g3n_error_set(err, "%s: %s: %s", name, what, text);
}

static void decoder_close(decoder *d)
{
    if (d->planes) {
        for (int c = 0; c < d->channels; c++)
            av_free(d->planes[c]);
        free(d->planes);
    }
    av_free(d->mono);
    swr_free(&d->swr);
    av_frame_free(&d->frame);
    av_packet_free(&d->packet);
    avcodec_free_context(&d->codec);
    avformat_close_input(&d->format);
    if (d->io) {
        av_freep(&d->io->buffer);
        avio_context_free(&d->io);
    }
    av_channel_layout_uninit(&d->in_layout);
}

static int ensure_capacity(decoder *d, int samples, g3n_error *err)
{
    if (samples <= d->plane_capacity)
        return G3N_OK;
    for (int c = 0; c < d->channels; c++) {
        av_free(d->planes[c]);
        d->planes[c] = av_malloc(sizeof(float) * (size_t)samples);
        if (d->planes[c] == NULL)
            return g3n_error_set(err, "%s: out of memory", d->name);
    }
    av_free(d->mono);
    d->mono = av_malloc(sizeof(float) * (size_t)samples);
    if (d->mono == NULL)
        return g3n_error_set(err, "%s: out of memory", d->name);
    d->plane_capacity = samples;
    return G3N_OK;
}

/* Sets up swresample for the first frame's format (source layout kept, planar f32, target rate). */
static int setup_resampler(decoder *d, const AVFrame *frame, g3n_error *err)
{
    /* A header can claim any rate: swresample's filter for 16 kHz from 1.4 GHz took minutes to build
     * (a 1 KB WAV). Audio is sampled between 1 kHz and 768 kHz. */
    if (frame->sample_rate < G3N_AUDIO_MIN_INPUT_RATE || frame->sample_rate > G3N_AUDIO_MAX_INPUT_RATE)
        return g3n_error_set(err, "%s: a sample rate of %d Hz is not audio g3n reads (%d to %d Hz)", d->name,
                             frame->sample_rate, G3N_AUDIO_MIN_INPUT_RATE, G3N_AUDIO_MAX_INPUT_RATE);
    AVChannelLayout layout;
    memset(&layout, 0, sizeof(layout));
    if (frame->ch_layout.nb_channels > 0) {
        if (av_channel_layout_copy(&layout, &frame->ch_layout) < 0)
            return g3n_error_set(err, "%s: out of memory", d->name);
    } else {
        return g3n_error_set(err, "%s: decoded audio has no channels", d->name);
    }
    if (layout.order == AV_CHANNEL_ORDER_UNSPEC) {
        int n = layout.nb_channels;
        av_channel_layout_uninit(&layout);
        av_channel_layout_default(&layout, n);
    }
    int rc = swr_alloc_set_opts2(&d->swr, &layout, AV_SAMPLE_FMT_FLTP, d->sample_rate, &layout,
                                 (enum AVSampleFormat)frame->format, frame->sample_rate, 0, NULL);
    if (rc >= 0)
        rc = swr_init(d->swr);
    if (rc < 0) {
        av_channel_layout_uninit(&layout);
        return av_fail(err, d->name, "cannot set up the resampler", rc);
    }
    d->channels = layout.nb_channels;
    d->in_layout = layout;
    d->in_format = (enum AVSampleFormat)frame->format;
    d->in_rate = frame->sample_rate;
    d->planes = calloc((size_t)d->channels, sizeof(float *));
    if (d->planes == NULL)
        return g3n_error_set(err, "%s: out of memory", d->name);
    return G3N_OK;
}

/* Converts (frame may be NULL to drain the resampler) and hands samples to the sink. */
static int convert_and_emit(decoder *d, const AVFrame *frame, g3n_error *err)
{
    int in_samples = frame ? frame->nb_samples : 0;
    for (;;) {
        int out_capacity = swr_get_out_samples(d->swr, in_samples);
        if (out_capacity < 0)
            return av_fail(err, d->name, "resampler", out_capacity);
        if (out_capacity == 0 && frame == NULL)
            return G3N_OK;
        if (out_capacity < 256)
            out_capacity = 256;
        if (ensure_capacity(d, out_capacity, err) != G3N_OK)
            return G3N_ERR;
        int got = swr_convert(d->swr, (uint8_t **)d->planes, out_capacity,
                              frame ? (const uint8_t **)frame->extended_data : NULL, in_samples);
        if (got < 0)
            return av_fail(err, d->name, "resampler", got);
        if (got > 0) {
            /* mean of the channels */
            float scale = 1.0f / (float)d->channels;
            for (int i = 0; i < got; i++) {
                float sum = d->planes[0][i];
                for (int c = 1; c < d->channels; c++)
                    sum += d->planes[c][i];
                d->mono[i] = d->channels == 1 ? sum : sum * scale;
                /* floating-point sources can hold NaN or infinity: they would reach the tower */
                if (!isfinite(d->mono[i]))
                    return g3n_error_set(err, "%s: sample %lld is not a finite number (corrupt audio)", d->name,
                                         (long long)(d->emitted + i));
            }
            if (d->sink(d->user, d->mono, got, err) != G3N_OK)
                return G3N_ERR;
            d->emitted += got;
        }
        if (frame != NULL || got == 0)
            return G3N_OK;
        /* draining: loop until the resampler is empty */
    }
}

static int receive_frames(decoder *d, g3n_error *err)
{
    for (;;) {
        int rc = avcodec_receive_frame(d->codec, d->frame);
        if (rc == AVERROR(EAGAIN) || rc == AVERROR_EOF)
            return G3N_OK;
        if (rc < 0)
            return av_fail(err, d->name, "corrupt audio data", rc);
        if (d->frame->nb_samples > 0) {
            if (d->swr == NULL && setup_resampler(d, d->frame, err) != G3N_OK) {
                av_frame_unref(d->frame);
                return G3N_ERR;
            }
            if (d->frame->format != d->in_format || d->frame->sample_rate != d->in_rate ||
                av_channel_layout_compare(&d->frame->ch_layout, &d->in_layout) != 0) {
                if (d->frame->ch_layout.nb_channels != d->channels || d->frame->format != d->in_format ||
                    d->frame->sample_rate != d->in_rate) {
                    av_frame_unref(d->frame);
                    return g3n_error_set(err, "%s: the audio format changes mid-stream (not supported)", d->name);
                }
            }
            if (convert_and_emit(d, d->frame, err) != G3N_OK) {
                av_frame_unref(d->frame);
                return G3N_ERR;
            }
        }
        av_frame_unref(d->frame);
    }
}

static int decode_all(decoder *d, const char *url, g3n_error *err)
{
    int rc = avformat_open_input(&d->format, url, NULL, NULL);
    if (rc < 0)
        return av_fail(err, d->name, "cannot open or recognise the format", rc);
    rc = avformat_find_stream_info(d->format, NULL);
    if (rc < 0)
        return av_fail(err, d->name, "cannot read the stream information", rc);
    const AVCodec *codec = NULL;
    rc = av_find_best_stream(d->format, AVMEDIA_TYPE_AUDIO, -1, -1, &codec, 0);
    if (rc == AVERROR_STREAM_NOT_FOUND)
        return g3n_error_set(err, "%s: no audio stream", d->name);
    if (rc == AVERROR_DECODER_NOT_FOUND || (rc >= 0 && codec == NULL))
        return g3n_error_set(err, "%s: no decoder for its audio codec in this FFmpeg build", d->name);
    if (rc < 0)
        return av_fail(err, d->name, "cannot find an audio stream", rc);
    d->stream_index = rc;
    d->codec = avcodec_alloc_context3(codec);
    d->frame = av_frame_alloc();
    d->packet = av_packet_alloc();
    if (d->codec == NULL || d->frame == NULL || d->packet == NULL)
        return g3n_error_set(err, "%s: out of memory", d->name);
    rc = avcodec_parameters_to_context(d->codec, d->format->streams[d->stream_index]->codecpar);
    if (rc >= 0)
        rc = avcodec_open2(d->codec, codec, NULL);
    if (rc < 0)
        return av_fail(err, d->name, "cannot open the audio decoder", rc);

    for (;;) {
        rc = av_read_frame(d->format, d->packet);
        if (rc == AVERROR_EOF)
            break;
        if (rc < 0)
            return av_fail(err, d->name, "read error", rc);
        if (d->packet->stream_index == d->stream_index) {
            rc = avcodec_send_packet(d->codec, d->packet);
            av_packet_unref(d->packet);
            if (rc < 0 && rc != AVERROR(EAGAIN))
                return av_fail(err, d->name, "corrupt audio data", rc);
            if (receive_frames(d, err) != G3N_OK)
                return G3N_ERR;
        } else {
            av_packet_unref(d->packet);
        }
    }
    rc = avcodec_send_packet(d->codec, NULL); /* drain */
    if (rc < 0 && rc != AVERROR_EOF)
        return av_fail(err, d->name, "corrupt audio data", rc);
    if (receive_frames(d, err) != G3N_OK)
        return G3N_ERR;
    if (d->swr != NULL && convert_and_emit(d, NULL, err) != G3N_OK)
        return G3N_ERR;
    if (d->emitted == 0)
        return g3n_error_set(err, "%s: the audio stream holds no samples (zero-length)", d->name);
    return G3N_OK;
}

int g3n_audio_decode_file_pieces(const char *path, int sample_rate, g3n_audio_sink sink, void *user,
                                 g3n_error *err)
{
    if (sample_rate <= 0)
        return g3n_error_set(err, "%s: invalid target sample rate %d", path, sample_rate);
    struct stat st;
    if (stat(path, &st) == 0) {
        if (S_ISREG(st.st_mode) && st.st_size == 0)
            return g3n_error_set(err, "%s: empty file (0 bytes)", path);
    } else if (strstr(path, ":") == NULL) {
        return g3n_error_set(err, "%s: no such file", path);
    }
    av_log_set_level(AV_LOG_ERROR);
    decoder d;
    memset(&d, 0, sizeof(d));
    d.name = path;
    d.sample_rate = sample_rate;
    d.sink = sink;
    d.user = user;
    int rc = decode_all(&d, path, err);
    decoder_close(&d);
    return rc;
}

int g3n_audio_decode_memory_pieces(const void *data, size_t size, const char *name, int sample_rate,
                                   g3n_audio_sink sink, void *user, g3n_error *err)
{
    if (name == NULL)
        name = "audio buffer";
    if (sample_rate <= 0)
        return g3n_error_set(err, "%s: invalid target sample rate %d", name, sample_rate);
    if (data == NULL || size == 0)
        return g3n_error_set(err, "%s: empty input (0 bytes)", name);
    av_log_set_level(AV_LOG_ERROR);
    decoder d;
    memset(&d, 0, sizeof(d));
    d.name = name;
    d.sample_rate = sample_rate;
    d.sink = sink;
    d.user = user;
    memory_reader reader = {data, size, 0};
    int rc = G3N_ERR;
    const int io_size = 1 << 16;
    uint8_t *io_buffer = av_malloc(io_size);
    d.format = avformat_alloc_context();
    if (io_buffer == NULL || d.format == NULL) {
        av_free(io_buffer);
        g3n_error_set(err, "%s: out of memory", name);
        goto done;
    }
    d.io = avio_alloc_context(io_buffer, io_size, 0, &reader, memory_read, NULL, memory_seek);
    if (d.io == NULL) {
        av_free(io_buffer);
        g3n_error_set(err, "%s: out of memory", name);
        goto done;
    }
    d.format->pb = d.io;
    d.format->flags |= AVFMT_FLAG_CUSTOM_IO;
    rc = decode_all(&d, NULL, err);
done:
    decoder_close(&d);
    return rc;
}

/* ---- whole-clip collection ---- */

typedef struct collector {
    float *data;
    int64_t count;
    int64_t capacity;
} collector;

static int collect(void *user, const float *samples, int64_t count, g3n_error *err)
{
    collector *c = user;
    if (c->count + count > c->capacity) {
        int64_t capacity = c->capacity ? c->capacity : 1 << 16;
        while (capacity < c->count + count)
            capacity *= 2;
        float *grown = realloc(c->data, sizeof(float) * (size_t)capacity);
        if (grown == NULL)
            return g3n_error_set(err, "out of memory for %lld samples", (long long)capacity);
        c->data = grown;
        c->capacity = capacity;
    }
    memcpy(c->data + c->count, samples, sizeof(float) * (size_t)count);
    c->count += count;
    return G3N_OK;
}

int g3n_audio_decode_file(const char *path, int sample_rate, float **samples, int64_t *count, g3n_error *err)
{
    collector c = {NULL, 0, 0};
    *samples = NULL;
    *count = 0;
    if (g3n_audio_decode_file_pieces(path, sample_rate, collect, &c, err) != G3N_OK) {
        free(c.data);
        return G3N_ERR;
    }
    *samples = c.data;
    *count = c.count;
    return G3N_OK;
}

int g3n_audio_decode_memory(const void *data, size_t size, const char *name, int sample_rate, float **samples,
                            int64_t *count, g3n_error *err)
{
    collector c = {NULL, 0, 0};
    *samples = NULL;
    *count = 0;
    if (g3n_audio_decode_memory_pieces(data, size, name, sample_rate, collect, &c, err) != G3N_OK) {
        free(c.data);
        return G3N_ERR;
    }
    *samples = c.data;
    *count = c.count;
    return G3N_OK;
}
