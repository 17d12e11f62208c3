/* `g3n run --video` end to end on the demo model (issue 10's interface): a
 * short video is made in the test with the FFmpeg libraries we link (FFV1
 * frames of one colour per second, a 440 Hz tone, Matroska), then answered
 * through the roles (vision encoder, audio encoder, embedder, decoder as
 * threads over inproc://). Checked: the progress lines name every sampled
 * frame (timestamps 0, 1, 2 s) and audio segment (0-1, 1-2, 2-3.5 s) in
 * timestamp order; the prompt length equals media_prompt.h's rendering of
 * frame, audio, frame, audio, frame, audio + the question; the answer streams;
 * and its greedy text equals `g3n video` (the in-process live session that
 * prefills while it ingests) on the same video, so both paths build the same
 * prompt and soft tokens. Also: the segment cap and argument errors. */
#include <math.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>

#include <cmocka.h>
#include <libavcodec/avcodec.h>
#include <libavformat/avformat.h>
#include <libavutil/channel_layout.h>
#include <libswscale/swscale.h>

#include "chat_template.h"
#include "config.h"
#include "media_prompt.h"
#include "test_util.h"
#include "tokenizer.h"

#define VIDEO_W 64
#define VIDEO_H 48
#define VIDEO_FPS 10
#define VIDEO_SECONDS 3.5
#define AUDIO_RATE 44100

static const uint8_t colours[4][3] = {{220, 30, 30}, {30, 200, 40}, {40, 50, 210}, {235, 235, 235}};

typedef struct fixture {
    char dir[512];
    char video[600];
} fixture;

static int write_packets(AVCodecContext *codec, AVFormatContext *format, AVStream *stream, AVFrame *frame)
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

/* Second k shows colours[k]; the audio is a 440 Hz tone; both interleaved in time order. */
static void make_video(const char *path)
{
    AVFormatContext *format = NULL;
    assert_true(avformat_alloc_output_context2(&format, NULL, "matroska", path) >= 0);
    const AVCodec *vcodec = avcodec_find_encoder(AV_CODEC_ID_FFV1);
    const AVCodec *acodec = avcodec_find_encoder(AV_CODEC_ID_PCM_S16LE);
    assert_non_null(vcodec);
    assert_non_null(acodec);
    AVStream *vs = avformat_new_stream(format, NULL), *as = avformat_new_stream(format, NULL);
    AVCodecContext *v = avcodec_alloc_context3(vcodec), *a = avcodec_alloc_context3(acodec);
    v->width = VIDEO_W;
    v->height = VIDEO_H;
    v->pix_fmt = AV_PIX_FMT_YUV444P;
    v->time_base = (AVRational){1, VIDEO_FPS};
    v->framerate = (AVRational){VIDEO_FPS, 1};
    a->sample_rate = AUDIO_RATE;
    a->sample_fmt = AV_SAMPLE_FMT_S16;
    av_channel_layout_default(&a->ch_layout, 2);
    a->time_base = (AVRational){1, AUDIO_RATE};
    if (format->oformat->flags & AVFMT_GLOBALHEADER) {
        v->flags |= AV_CODEC_FLAG_GLOBAL_HEADER;
        a->flags |= AV_CODEC_FLAG_GLOBAL_HEADER;
    }
    assert_true(avcodec_open2(v, vcodec, NULL) >= 0);
    assert_true(avcodec_open2(a, acodec, NULL) >= 0);
    assert_true(avcodec_parameters_from_context(vs->codecpar, v) >= 0);
    assert_true(avcodec_parameters_from_context(as->codecpar, a) >= 0);
    vs->time_base = v->time_base;
    as->time_base = a->time_base;
    assert_true(avio_open(&format->pb, path, AVIO_FLAG_WRITE) >= 0);
    assert_true(avformat_write_header(format, NULL) >= 0);
    struct SwsContext *sws = sws_getContext(VIDEO_W, VIDEO_H, AV_PIX_FMT_RGB24, VIDEO_W, VIDEO_H, AV_PIX_FMT_YUV444P,
                                            SWS_BILINEAR | SWS_ACCURATE_RND, NULL, NULL, NULL);
    assert_non_null(sws);
    uint8_t rgb[VIDEO_W * VIDEO_H * 3];
    AVFrame *frame = av_frame_alloc();
    const int video_frames = (int)(VIDEO_SECONDS * VIDEO_FPS);
    const int64_t audio_samples = (int64_t)(VIDEO_SECONDS * AUDIO_RATE);
    int next_video = 0;
    int64_t next_audio = 0;
    while (next_video < video_frames || next_audio < audio_samples) {
        double tv = next_video < video_frames ? (double)next_video / VIDEO_FPS : 1e9;
        double ta = next_audio < audio_samples ? (double)next_audio / AUDIO_RATE : 1e9;
        if (tv <= ta) {
            const uint8_t *c = colours[next_video / VIDEO_FPS];
            for (int y = 0; y < VIDEO_H; y++)
                for (int x = 0; x < VIDEO_W; x++)
                    for (int k = 0; k < 3; k++)
                        rgb[(y * VIDEO_W + x) * 3 + k] = (x < 8 && y < 8) ? (uint8_t)(c[k] / 2) : c[k];
            frame->format = AV_PIX_FMT_YUV444P;
            frame->width = VIDEO_W;
            frame->height = VIDEO_H;
            assert_true(av_frame_get_buffer(frame, 0) >= 0);
            const uint8_t *src[1] = {rgb};
            int src_stride[1] = {VIDEO_W * 3};
            sws_scale(sws, src, src_stride, 0, VIDEO_H, frame->data, frame->linesize);
            frame->pts = next_video++;
            assert_int_equal(write_packets(v, format, vs, frame), 0);
        } else {
            int n = (int)(audio_samples - next_audio < 1024 ? audio_samples - next_audio : 1024);
            frame->format = AV_SAMPLE_FMT_S16;
            frame->nb_samples = n;
            frame->sample_rate = AUDIO_RATE;
            av_channel_layout_copy(&frame->ch_layout, &a->ch_layout);
            assert_true(av_frame_get_buffer(frame, 0) >= 0);
            int16_t *pcm = (int16_t *)frame->data[0];
            for (int i = 0; i < n; i++) {
                double t = (double)(next_audio + i) / AUDIO_RATE;
                pcm[2 * i] = pcm[2 * i + 1] = (int16_t)lrint(0.5 * 32767.0 * sin(2.0 * M_PI * 440.0 * t));
            }
            frame->pts = next_audio;
            next_audio += n;
            assert_int_equal(write_packets(a, format, as, frame), 0);
        }
        av_frame_unref(frame);
    }
    assert_int_equal(write_packets(v, format, vs, NULL), 0);
    assert_int_equal(write_packets(a, format, as, NULL), 0);
    assert_true(av_write_trailer(format) >= 0);
    av_frame_free(&frame);
    sws_freeContext(sws);
    avio_closep(&format->pb);
    avcodec_free_context(&v);
    avcodec_free_context(&a);
    avformat_free_context(format);
}

static int setup(void **state)
{
    fixture *f = calloc(1, sizeof(*f));
    g3n_test_temp_dir(f->dir, sizeof(f->dir));
    snprintf(f->video, sizeof(f->video), "%s/colours.mkv", f->dir);
    make_video(f->video);
    *state = f;
    return 0;
}

static int teardown(void **state)
{
    fixture *f = *state;
    g3n_test_remove_tree(f->dir);
    free(f);
    return 0;
}

static char *slurp(const char *path)
{
    FILE *in = fopen(path, "r");
    if (!in)
        return calloc(1, 1);
    fseek(in, 0, SEEK_END);
    long n = ftell(in);
    fseek(in, 0, SEEK_SET);
    char *text = calloc(1, (size_t)n + 1);
    if (fread(text, 1, (size_t)n, in) != (size_t)n)
        text[0] = '\0';
    fclose(in);
    return text;
}

/* Runs `g3n ARGS` with stdout and stderr into files; returns the exit status. */
static int run_g3n(fixture *f, const char *name, const char *args, char **out, char **log)
{
    char command[4096], out_path[700], log_path[700];
    snprintf(out_path, sizeof out_path, "%s/%s.out", f->dir, name);
    snprintf(log_path, sizeof log_path, "%s/%s.log", f->dir, name);
    snprintf(command, sizeof command, "%s %s > %s 2> %s", g3n_test_binary(), args, out_path, log_path);
    int status = system(command);
    *out = slurp(out_path);
    *log = slurp(log_path);
    printf("--- g3n %s\n%s[stdout] %s\n", args, *log, *out);
    return WIFEXITED(status) ? WEXITSTATUS(status) : -1;
}

#define QUESTION "Which colours did you see, and what did you hear?"

static void test_run_video_through_roles(void **state)
{
    fixture *f = *state;
    char args[2048], *out, *log;
    snprintf(args, sizeof args, "run --demo --threads 2 --video %s --max-frames 3 --max-new-tokens 6 '%s'", f->video,
             QUESTION);
    assert_int_equal(run_g3n(f, "run", args, &out, &log), 0);

    /* every frame and audio segment, in timestamp order */
    const char *expected[] = {
        "frame 0 at 0.00 s (64x48) -> vision encoder (segment 0",
        "audio segment 1: 0.00-1.00 s (16000 samples) -> audio encoder",
        "frame 1 at 1.00 s (64x48) -> vision encoder (segment 2",
        "audio segment 3: 1.00-2.00 s (16000 samples) -> audio encoder",
        "frame 2 at 2.00 s (64x48) -> vision encoder (segment 4",
        "audio segment 5: 2.00-3.50 s (24000 samples) -> audio encoder",
        "ingest done: 3 frames, 56000 audio samples (3.50 s)",
        "prompt: 3 frames and 3 audio segments in timestamp order + the question = ",
    };
    const char *at = log;
    for (size_t i = 0; i < sizeof expected / sizeof expected[0]; i++) {
        const char *hit = strstr(at, expected[i]);
        if (!hit)
            fail_msg("missing (in order): %s", expected[i]);
        at = hit;
    }
    /* every segment came back from its encoder */
    for (int k = 0; k < 3; k++) {
        char line[64];
        snprintf(line, sizeof line, "encoded frame %d at %d.00 s", k, k);
        assert_non_null(strstr(log, line));
    }
    assert_non_null(strstr(log, "encoded audio 0.00-1.00 s: 1.00 s of audio"));
    assert_non_null(strstr(log, "encoded audio 2.00-3.50 s: 1.50 s of audio"));

    /* the prompt length is media_prompt.h's layout of those six segments + the question */
    g3n_model_config config;
    g3n_tokenizer *tokenizer = NULL;
    g3n_error err = {{0}};
    char path[1024];
    assert_int_equal(g3n_config_load(&config, "scripts/demo-config.json", &err), G3N_OK);
    assert_int_equal(
        g3n_tokenizer_load(&tokenizer, g3n_test_fixture("tokenizer/tokenizer.json", path, sizeof path), &err), G3N_OK);
    g3n_chat_special_ids special;
    g3n_chat_special_ids_from_config(&special, &config);
    g3n_chat_item_type types[6] = {G3N_CHAT_IMAGE, G3N_CHAT_AUDIO, G3N_CHAT_IMAGE,
                                   G3N_CHAT_AUDIO, G3N_CHAT_IMAGE, G3N_CHAT_AUDIO};
    g3n_chat_prompt prompt;
    assert_int_equal(g3n_media_prompt_render(tokenizer, &special, NULL, types, 6, QUESTION, 1, 1, &prompt, &err),
                     G3N_OK);
    assert_int_equal(prompt.image_count, 3);
    assert_int_equal(prompt.audio_count, 3);
    assert_true(prompt.ids.count > 3 * config.vision_soft_tokens_per_image + 3 * config.audio_soft_tokens_per_image);
    char line[160];
    snprintf(line, sizeof line, "+ the question = %lld tokens", (long long)prompt.ids.count);
    assert_non_null(strstr(log, line));
    snprintf(line, sizeof line, "g3n run: %lld prompt tokens", (long long)prompt.ids.count);
    assert_non_null(strstr(log, line));
    g3n_chat_prompt_free(&prompt);
    g3n_tokenizer_free(tokenizer);
    g3n_config_free(&config);

    /* the answer streamed */
    assert_true(strlen(out) > 1);

    /* the same video through the in-process live session: the same greedy answer */
    char *live_out, *live_log;
    snprintf(args, sizeof args, "video --demo --threads 2 --video %s --max-frames 3 --max-new-tokens 6 '%s'", f->video,
             QUESTION);
    assert_int_equal(run_g3n(f, "video", args, &live_out, &live_log), 0);
    assert_non_null(strstr(live_log, "3 frames, 3 audio segments (3.5 s of audio)"));
    assert_string_equal(out, live_out);
    free(live_out);
    free(live_log);
    free(out);
    free(log);
}

static void test_run_video_errors(void **state)
{
    fixture *f = *state;
    char args[2048], *out, *log;
    /* too many segments for one prompt: named, with what to change */
    snprintf(args, sizeof args, "run --demo --threads 2 --video %s --fps 10 --max-frames 40 --max-new-tokens 2 hi",
             f->video);
    assert_int_equal(run_g3n(f, "cap", args, &out, &log), 1);
    assert_non_null(strstr(log, "more than 64 frames and audio segments in one prompt (lower --max-frames or --fps)"));
    free(out);
    free(log);
    /* no such input: the url is named */
    snprintf(args, sizeof args, "run --demo --video %s/missing.mkv hi", f->dir);
    assert_int_equal(run_g3n(f, "missing", args, &out, &log), 1);
    assert_non_null(strstr(log, "missing.mkv"));
    free(out);
    free(log);
    /* --video goes alone */
    snprintf(args, sizeof args, "run --demo --video %s --image assets/demo-image.jpg hi", f->video);
    assert_int_equal(run_g3n(f, "alone", args, &out, &log), 2);
    assert_non_null(strstr(log, "--video goes alone"));
    free(out);
    free(log);
    assert_int_equal(run_g3n(f, "help", "run --help", &out, &log), 0);
    assert_non_null(strstr(out, "--video FILE|URL"));
    assert_non_null(strstr(out, "--max-frames N"));
    free(out);
    free(log);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_run_video_through_roles),
        cmocka_unit_test(test_run_video_errors),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
