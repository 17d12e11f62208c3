#define _GNU_SOURCE
#include "test_media_util.h"

#include <math.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>

#include <cmocka.h>
#include <libavutil/channel_layout.h>
#include <libswscale/swscale.h>

#include "test_util.h"

const uint8_t g3n_test_video_colours[4][3] = {{220, 30, 30}, {30, 200, 40}, {40, 50, 210}, {235, 235, 235}};

int g3n_test_write_packets(AVCodecContext *codec, AVFormatContext *format, AVStream *stream, AVFrame *frame)
{
    int rc = avcodec_send_frame(codec, frame);
    if (rc < 0)
        return rc;
    AVPacket *packet = av_packet_alloc();
    while ((rc = avcodec_receive_packet(codec, packet)) >= 0) {
        av_packet_rescale_ts(packet, codec->time_base, stream->time_base);
        packet->stream_index = stream->index;
        rc = av_interleaved_write_frame(format, packet);
        if (rc < 0)
            break;
    }
    av_packet_free(&packet);
    return rc == AVERROR(EAGAIN) || rc == AVERROR_EOF ? 0 : rc;
}

void g3n_test_make_colour_video(const char *path)
{
    enum { width = G3N_TEST_VIDEO_WIDTH, height = G3N_TEST_VIDEO_HEIGHT, fps = G3N_TEST_VIDEO_FPS };
    const int audio_rate = G3N_TEST_VIDEO_AUDIO_RATE;
    AVFormatContext *format = NULL;
    assert_true(avformat_alloc_output_context2(&format, NULL, "matroska", path) >= 0);
    const AVCodec *video_encoder = avcodec_find_encoder(AV_CODEC_ID_FFV1);
    const AVCodec *audio_encoder = avcodec_find_encoder(AV_CODEC_ID_PCM_S16LE);
    assert_non_null(video_encoder);
    assert_non_null(audio_encoder);
    AVStream *video_stream = avformat_new_stream(format, NULL), *audio_stream = avformat_new_stream(format, NULL);
    AVCodecContext *video = avcodec_alloc_context3(video_encoder), *audio = avcodec_alloc_context3(audio_encoder);
    video->width = width;
    video->height = height;
    video->pix_fmt = AV_PIX_FMT_YUV444P;
    video->time_base = (AVRational){1, fps};
    video->framerate = (AVRational){fps, 1};
    audio->sample_rate = audio_rate;
    audio->sample_fmt = AV_SAMPLE_FMT_S16;
    av_channel_layout_default(&audio->ch_layout, 2);
    audio->time_base = (AVRational){1, audio_rate};
    if (format->oformat->flags & AVFMT_GLOBALHEADER) {
        video->flags |= AV_CODEC_FLAG_GLOBAL_HEADER;
        audio->flags |= AV_CODEC_FLAG_GLOBAL_HEADER;
    }
    assert_true(avcodec_open2(video, video_encoder, NULL) >= 0);
    assert_true(avcodec_open2(audio, audio_encoder, NULL) >= 0);
    assert_true(avcodec_parameters_from_context(video_stream->codecpar, video) >= 0);
    assert_true(avcodec_parameters_from_context(audio_stream->codecpar, audio) >= 0);
    video_stream->time_base = video->time_base;
    audio_stream->time_base = audio->time_base;
    assert_true(avio_open(&format->pb, path, AVIO_FLAG_WRITE) >= 0);
    assert_true(avformat_write_header(format, NULL) >= 0);

    struct SwsContext *scaler = sws_getContext(width, height, AV_PIX_FMT_RGB24, width, height, AV_PIX_FMT_YUV444P,
                                               SWS_BILINEAR | SWS_ACCURATE_RND, NULL, NULL, NULL);
    assert_non_null(scaler);
    uint8_t rgb[width * height * 3];
    AVFrame *frame = av_frame_alloc();
    const int video_frames = (int)(G3N_TEST_VIDEO_SECONDS * fps);
    const int64_t audio_samples = (int64_t)(G3N_TEST_VIDEO_SECONDS * audio_rate);
    const int audio_chunk = 1024;
    int next_video = 0;
    int64_t next_audio = 0;
    while (next_video < video_frames || next_audio < audio_samples) {
        double video_time = next_video < video_frames ? (double)next_video / fps : 1e9;
        double audio_time = next_audio < audio_samples ? (double)next_audio / audio_rate : 1e9;
        if (video_time <= audio_time) {
            const uint8_t *colour = g3n_test_video_colours[next_video / fps];
            for (int y = 0; y < height; y++)
                for (int x = 0; x < width; x++)
                    for (int k = 0; k < 3; k++)
                        rgb[(y * width + x) * 3 + k] = (x < 8 && y < 8) ? (uint8_t)(colour[k] / 2) : colour[k];
            frame->format = AV_PIX_FMT_YUV444P;
            frame->width = width;
            frame->height = height;
            assert_true(av_frame_get_buffer(frame, 0) >= 0);
            const uint8_t *source[1] = {rgb};
            int source_stride[1] = {width * 3};
            sws_scale(scaler, source, source_stride, 0, height, frame->data, frame->linesize);
            frame->pts = next_video++;
            assert_int_equal(g3n_test_write_packets(video, format, video_stream, frame), 0);
        } else {
            int n = (int)(audio_samples - next_audio < audio_chunk ? audio_samples - next_audio : audio_chunk);
            frame->format = AV_SAMPLE_FMT_S16;
            frame->nb_samples = n;
            frame->sample_rate = audio_rate;
            av_channel_layout_copy(&frame->ch_layout, &audio->ch_layout);
            assert_true(av_frame_get_buffer(frame, 0) >= 0);
            int16_t *pcm = (int16_t *)frame->data[0];
            for (int i = 0; i < n; i++) {
                double t = (double)(next_audio + i) / audio_rate;
                int16_t sample = (int16_t)lrint(0.5 * 32767.0 * sin(2.0 * M_PI * G3N_TEST_VIDEO_TONE_HZ * t));
                pcm[2 * i] = pcm[2 * i + 1] = sample;
            }
            frame->pts = next_audio;
            next_audio += n;
            assert_int_equal(g3n_test_write_packets(audio, format, audio_stream, frame), 0);
        }
        av_frame_unref(frame);
    }
    assert_int_equal(g3n_test_write_packets(video, format, video_stream, NULL), 0);
    assert_int_equal(g3n_test_write_packets(audio, format, audio_stream, NULL), 0);
    assert_true(av_write_trailer(format) >= 0);
    av_frame_free(&frame);
    sws_freeContext(scaler);
    avio_closep(&format->pb);
    avcodec_free_context(&video);
    avcodec_free_context(&audio);
    avformat_free_context(format);
}

int g3n_test_video_setup(void **state)
{
    g3n_test_video_fixture *fixture = calloc(1, sizeof(*fixture));
    g3n_test_temp_dir(fixture->dir, sizeof(fixture->dir));
    snprintf(fixture->video, sizeof(fixture->video), "%s/colours.mkv", fixture->dir);
    g3n_test_make_colour_video(fixture->video);
    *state = fixture;
    return 0;
}

int g3n_test_video_teardown(void **state)
{
    g3n_test_video_fixture *fixture = *state;
    g3n_test_remove_tree(fixture->dir);
    free(fixture);
    return 0;
}
