/* Video ingest and the prompt layout: a short video with known content is
 * made in the test with the FFmpeg libraries we link (FFV1 frames of one
 * colour per second, a 440 Hz tone in PCM, 44.1 kHz stereo, Matroska), then
 * ingested from a file, a pipe and a loopback TCP stream. Checked: the sampled
 * timestamps and colours, the 16 kHz audio (length, tone), the order of frames
 * and audio, the segments of the timeline and their order in the rendered
 * prompt (begin/end tokens and placeholder counts); the RGB preprocessing
 * equals the still-image path. */
#define _GNU_SOURCE
#include <math.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>
#include <netinet/in.h>
#include <pthread.h>
#include <sys/socket.h>
#include <unistd.h>

#include "audio_config.h"
#include "chat_template.h"
#include "config.h"
#include "image_preprocess.h"
#include "image_preprocess_rgb.h"
#include "media_prompt.h"
#include "test_media_util.h"
#include "test_util.h"
#include "tokenizer.h"
#include "video_ingest.h"

/* the shared test video (dir, video = dir/colours.mkv), made once for the group */
typedef g3n_test_video_fixture fixture;

/* What the callbacks saw. */
typedef struct event {
    int is_frame;
    double seconds;
    int64_t audio_before; /* samples delivered before this event */
    int64_t count;        /* audio: samples */
    uint8_t centre[3];    /* frame: the pixel at the centre */
} event;

typedef struct recorder {
    event events[4096];
    int count;
    int64_t samples;
    float *audio; /* all samples */
    int64_t audio_capacity;
    g3n_media_timeline *timeline; /* optional */
} recorder;

static int on_frame(void *user, int index, double seconds, const uint8_t *rgb, int width, int height, g3n_error *err)
{
    recorder *r = user;
    (void)err;
    assert_int_equal(index, r->count > 0 ? index : 0);
    assert_int_equal(width, G3N_TEST_VIDEO_WIDTH);
    assert_int_equal(height, G3N_TEST_VIDEO_HEIGHT);
    event *e = &r->events[r->count++];
    e->is_frame = 1;
    e->seconds = seconds;
    e->audio_before = r->samples;
    memcpy(e->centre, rgb + ((height / 2) * width + width / 2) * 3, 3);
    if (r->timeline)
        assert_int_equal(g3n_media_timeline_frame(r->timeline, seconds, err), G3N_OK);
    return G3N_OK;
}

static int on_audio(void *user, double seconds, const float *samples, int64_t count, g3n_error *err)
{
    recorder *r = user;
    assert_true(fabs(seconds - (double)r->samples / 16000.0) < 1e-9);
    if (r->count < 4096) {
        event *e = &r->events[r->count++];
        e->is_frame = 0;
        e->seconds = seconds;
        e->audio_before = r->samples;
        e->count = count;
    }
    if (r->samples + count > r->audio_capacity) {
        r->audio_capacity = 2 * (r->samples + count);
        r->audio = realloc(r->audio, sizeof(float) * (size_t)r->audio_capacity);
    }
    memcpy(r->audio + r->samples, samples, sizeof(float) * (size_t)count);
    r->samples += count;
    if (r->timeline)
        for (int64_t left = count; left > 0;) {
            int64_t take = g3n_media_timeline_audio(r->timeline, left, err);
            assert_true(take > 0);
            left -= take;
        }
    return G3N_OK;
}

/* Frames at 0, 1, 2, 3 s with their colours; 3.5 s of the tone at 16 kHz;
 * every frame comes exactly after the audio before its timestamp. */
static void check_default_ingest(const recorder *r, const g3n_video_info *info)
{
    assert_int_equal(info->has_video, 1);
    assert_int_equal(info->has_audio, 1);
    assert_int_equal(info->frames, 4);
    int frame = 0;
    for (int i = 0; i < r->count; i++) {
        const event *e = &r->events[i];
        if (!e->is_frame)
            continue;
        assert_true(fabs(e->seconds - frame) < 1e-3);
        assert_int_equal(e->audio_before, (int64_t)llround(e->seconds * 16000));
        for (int k = 0; k < 3; k++)
            assert_true(abs((int)e->centre[k] - (int)g3n_test_video_colours[frame][k]) <= 6);
        frame++;
    }
    assert_int_equal(frame, 4);
    /* 3.5 s resampled: within a few samples of 56000 */
    assert_true(llabs(r->samples - 56000) <= 64);
    assert_int_equal(info->audio_samples, r->samples);
    /* the tone: RMS 0.5/sqrt(2), 440 Hz from the zero crossings (interior 3 s) */
    double energy = 0.0;
    int crossings = 0;
    for (int64_t i = 8000; i < 8000 + 48000; i++) {
        energy += (double)r->audio[i] * r->audio[i];
        crossings += (r->audio[i - 1] < 0) != (r->audio[i] < 0);
    }
    double rms = sqrt(energy / 48000);
    printf("ingest: %d events, %lld samples, tone RMS %.4f, %.1f Hz\n", r->count, (long long)r->samples, rms,
           crossings / 2.0 / 3.0);
    assert_true(fabs(rms - 0.5 / sqrt(2.0)) < 0.01);
    assert_true(fabs(crossings / 2.0 / 3.0 - G3N_TEST_VIDEO_TONE_HZ) < 2.0);
}

static void test_ingest_file(void **state)
{
    fixture *f = *state;
    recorder *r = calloc(1, sizeof(*r));
    g3n_error err = {{0}};
    g3n_video_info info;
    g3n_video_options options = g3n_video_default_options();
    assert_int_equal(g3n_video_ingest(f->video, &options, on_frame, on_audio, r, &info, &err), G3N_OK);
    check_default_ingest(r, &info);
    free(r->audio);
    free(r);
}

/* 2 per second, at most 3: frames at 0, 0.5, 1.0 s, then the audio goes on to the end. */
static void test_ingest_rate_and_cap(void **state)
{
    fixture *f = *state;
    recorder *r = calloc(1, sizeof(*r));
    g3n_error err = {{0}};
    g3n_video_info info;
    g3n_video_options options = g3n_video_default_options();
    options.fps = 2.0;
    options.max_frames = 3;
    assert_int_equal(g3n_video_ingest(f->video, &options, on_frame, on_audio, r, &info, &err), G3N_OK);
    assert_int_equal(info.frames, 3);
    int frame = 0;
    for (int i = 0; i < r->count; i++)
        if (r->events[i].is_frame) {
            assert_true(fabs(r->events[i].seconds - 0.5 * frame) < 1e-3);
            assert_int_equal(r->events[i].audio_before, llround(r->events[i].seconds * 16000));
            frame++;
        }
    assert_true(llabs(r->samples - 56000) <= 64);
    /* frames only, and audio only */
    recorder *v = calloc(1, sizeof(*v));
    assert_int_equal(g3n_video_ingest(f->video, &options, on_frame, NULL, v, &info, &err), G3N_OK);
    assert_int_equal(info.frames, 3);
    assert_int_equal(info.has_audio, 0);
    assert_int_equal(v->samples, 0);
    recorder *a = calloc(1, sizeof(*a));
    assert_int_equal(g3n_video_ingest(f->video, &options, NULL, on_audio, a, &info, &err), G3N_OK);
    assert_int_equal(info.frames, 0);
    assert_int_equal(a->samples, r->samples);
    for (int64_t i = 0; i < a->samples; i++)
        assert_true(a->audio[i] == r->audio[i]);
    free(r->audio);
    free(v->audio);
    free(a->audio);
    free(r);
    free(v);
    free(a);
}

typedef struct feeder {
    const char *path;
    int fd;          /* pipe write end, or -1 */
    int listen_fd;   /* server socket, or -1 */
} feeder;

static void *feed(void *user)
{
    feeder *fd = user;
    int out = fd->fd;
    if (fd->listen_fd >= 0)
        out = accept(fd->listen_fd, NULL, NULL);
    FILE *in = fopen(fd->path, "rb");
    char buffer[4096];
    size_t n;
    while (in && out >= 0 && (n = fread(buffer, 1, sizeof buffer, in)) > 0)
        if (write(out, buffer, n) != (ssize_t)n)
            break;
    if (in)
        fclose(in);
    if (out >= 0)
        close(out);
    return NULL;
}

/* The same video through a pipe (non-seekable, as stdin) and over loopback TCP. */
static void test_ingest_pipe_and_network(void **state)
{
    fixture *f = *state;
    g3n_error err = {{0}};
    g3n_video_info info;
    g3n_video_options options = g3n_video_default_options();
    /* pipe */
    int pipe_fds[2];
    assert_int_equal(pipe(pipe_fds), 0);
    feeder pf = {f->video, pipe_fds[1], -1};
    pthread_t thread;
    assert_int_equal(pthread_create(&thread, NULL, feed, &pf), 0);
    char url[64];
    snprintf(url, sizeof url, "pipe:%d", pipe_fds[0]);
    recorder *r = calloc(1, sizeof(*r));
    assert_int_equal(g3n_video_ingest(url, &options, on_frame, on_audio, r, &info, &err), G3N_OK);
    pthread_join(thread, NULL);
    close(pipe_fds[0]);
    check_default_ingest(r, &info);
    free(r->audio);
    free(r);
    /* loopback TCP: a server thread sends the file */
    int server = socket(AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in address;
    memset(&address, 0, sizeof(address));
    address.sin_family = AF_INET;
    address.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    address.sin_port = 0;
    assert_int_equal(bind(server, (struct sockaddr *)&address, sizeof(address)), 0);
    assert_int_equal(listen(server, 1), 0);
    socklen_t length = sizeof(address);
    assert_int_equal(getsockname(server, (struct sockaddr *)&address, &length), 0);
    feeder nf = {f->video, -1, server};
    assert_int_equal(pthread_create(&thread, NULL, feed, &nf), 0);
    snprintf(url, sizeof url, "tcp://127.0.0.1:%d", ntohs(address.sin_port));
    r = calloc(1, sizeof(*r));
    assert_int_equal(g3n_video_ingest(url, &options, on_frame, on_audio, r, &info, &err), G3N_OK);
    pthread_join(thread, NULL);
    close(server);
    check_default_ingest(r, &info);
    free(r->audio);
    free(r);
}

static void test_ingest_errors(void **state)
{
    fixture *f = *state;
    g3n_error err = {{0}};
    recorder *r = calloc(1, sizeof(*r));
    assert_int_equal(g3n_video_ingest("/nonexistent/clip.mkv", NULL, on_frame, on_audio, r, NULL, &err), G3N_ERR);
    assert_non_null(strstr(err.message, "/nonexistent/clip.mkv"));
    char wav[600];
    assert_int_equal(g3n_video_ingest(g3n_test_fixture("audio-tiny/speech.wav", wav, sizeof wav), NULL, on_frame,
                                      NULL, r, NULL, &err),
                     G3N_ERR);
    assert_non_null(strstr(err.message, "no video stream"));
    g3n_video_options bad = g3n_video_default_options();
    bad.fps = 0;
    assert_int_equal(g3n_video_ingest(f->video, &bad, on_frame, on_audio, r, NULL, &err), G3N_ERR);
    free(r->audio);
    free(r);
}

/* Counts runs in ids: fills kinds[] with 'I' / 'A' per media run, checking the
 * begin/end tokens around each and the placeholder counts. */
static int media_runs(const int32_t *ids, int64_t count, const g3n_chat_special_ids *sp, char *kinds, int capacity)
{
    int runs = 0;
    for (int64_t p = 0; p < count; p++) {
        int image = ids[p] == sp->image_token_id, audio = ids[p] == sp->audio_token_id;
        if (!image && !audio)
            continue;
        int64_t q = p;
        while (q < count && ids[q] == ids[p])
            q++;
        assert_int_equal(q - p, image ? sp->vision_soft_tokens_per_image : sp->audio_soft_tokens_per_image);
        assert_true(p > 0 && ids[p - 1] == (image ? sp->boi_token_id : sp->boa_token_id));
        assert_true(q < count && ids[q] == (image ? sp->eoi_token_id : sp->eoa_token_id));
        assert_true(runs < capacity);
        kinds[runs++] = image ? 'I' : 'A';
        p = q;
    }
    kinds[runs] = '\0';
    return runs;
}

/* The ingested video through the timeline and into the prompt: frame, then the
 * audio up to the next frame, in order; with a shorter segment cap the audio
 * between frames is split. */
static void test_layout(void **state)
{
    fixture *f = *state;
    g3n_error err = {{0}};
    char path[600];
    g3n_model_config config;
    memset(&config, 0, sizeof(config));
    assert_int_equal(g3n_config_load(&config, "scripts/demo-config.json", &err), G3N_OK);
    g3n_audio_config audio;
    g3n_audio_feature_config fc;
    g3n_audio_feature_config_default(&fc);
    assert_int_equal(g3n_audio_config_parse(&audio, &config, &err), G3N_OK);
    /* 188 placeholders hold the reference's whole 30 s window */
    int64_t segment = g3n_media_audio_segment_samples(&fc, &audio, config.audio_soft_tokens_per_image);
    assert_int_equal(segment, 480000);
    assert_true(g3n_media_audio_segment_samples(&fc, &audio, 48) < 48 * 2560 + 2560);
    g3n_tokenizer *tokenizer = NULL;
    assert_int_equal(g3n_tokenizer_load(&tokenizer, g3n_test_fixture("tokenizer/tokenizer.json", path, sizeof path),
                                        &err),
                     G3N_OK);
    g3n_chat_special_ids sp;
    g3n_chat_special_ids_from_config(&sp, &config);

    const int64_t caps[2] = {segment, 6000};
    const char *expected[2] = {"IAIAIAIA", "IAAAIAAAIAAAIAA"};
    for (int c = 0; c < 2; c++) {
        g3n_media_timeline timeline;
        g3n_media_timeline_init(&timeline, 16000, caps[c]);
        recorder *r = calloc(1, sizeof(*r));
        r->timeline = &timeline;
        g3n_video_info info;
        assert_int_equal(g3n_video_ingest(f->video, NULL, on_frame, on_audio, r, &info, &err), G3N_OK);
        g3n_media_timeline_close_audio(&timeline);
        /* segments: timestamps, samples, all closed */
        g3n_chat_item_type types[64];
        int64_t audio_total = 0;
        for (int i = 0; i < timeline.count; i++) {
            const g3n_media_segment *s = &timeline.segments[i];
            types[i] = s->type;
            assert_true(s->closed);
            if (s->type == G3N_CHAT_AUDIO) {
                assert_int_equal(s->first_sample, audio_total);
                assert_true(s->samples <= caps[c]);
                audio_total += s->samples;
            } else {
                assert_true(fabs(s->seconds - s->frame_index) < 1e-3);
                assert_int_equal(llround(s->seconds * 16000), audio_total);
            }
        }
        assert_int_equal(audio_total, r->samples);
        g3n_chat_prompt prompt;
        assert_int_equal(g3n_media_prompt_render(tokenizer, &sp, NULL, types, timeline.count, "What happens?", 1, 1,
                                                 &prompt, &err),
                         G3N_OK);
        char kinds[64];
        int runs = media_runs(prompt.ids.ids, prompt.ids.count, &sp, kinds, 63);
        printf("layout (segment cap %lld samples): %s, %lld prompt tokens\n", (long long)caps[c], kinds,
               (long long)prompt.ids.count);
        assert_int_equal(runs, timeline.count);
        assert_string_equal(kinds, expected[c]);
        assert_int_equal(prompt.ids.ids[0], sp.bos_token_id);
        assert_non_null(strstr(prompt.text, "What happens?<end_of_turn>\n<start_of_turn>model\n"));
        g3n_chat_prompt_free(&prompt);
        g3n_media_timeline_free(&timeline);
        free(r->audio);
        free(r);
    }
    g3n_tokenizer_free(tokenizer);
    g3n_config_free(&config);
}

/* A decoded image through the RGB entry point equals the file path, bit for bit. */
static void test_rgb_preprocess_matches_file(void **state)
{
    (void)state;
    g3n_error err = {{0}};
    char path[600];
    const char *names[2] = {"image-preprocess/image.png", "image-preprocess/image.jpg"};
    g3n_image_options options = g3n_image_default_options();
    const int64_t n = 3LL * options.size * options.size;
    float *a = malloc(sizeof(float) * (size_t)n), *b = malloc(sizeof(float) * (size_t)n);
    for (int i = 0; i < 2; i++) {
        g3n_test_fixture(names[i], path, sizeof path);
        uint8_t *rgb = NULL;
        int w, h;
        assert_int_equal(g3n_image_decode_file(path, &options, &rgb, &w, &h, &err), G3N_OK);
        assert_int_equal(g3n_image_preprocess_file(path, &options, a, &err), G3N_OK);
        assert_int_equal(g3n_image_preprocess_rgb(rgb, w, h, w * 3, &options, b, &err), G3N_OK);
        assert_memory_equal(a, b, sizeof(float) * (size_t)n);
        free(rgb);
    }
    /* enlarging a small frame, and geometry errors */
    uint8_t small[16 * 12 * 3];
    for (int i = 0; i < 16 * 12 * 3; i++)
        small[i] = (uint8_t)(i * 7);
    assert_int_equal(g3n_image_preprocess_rgb(small, 16, 12, 16 * 3, &options, b, &err), G3N_OK);
    for (int64_t i = 0; i < n; i++)
        assert_true(b[i] >= 0.0f && b[i] <= 1.0f);
    assert_int_equal(g3n_image_preprocess_rgb(small, 16, 12, 10, &options, b, &err), G3N_ERR);
    g3n_image_options tiny = options;
    tiny.max_pixels = 100;
    assert_int_equal(g3n_image_preprocess_rgb(small, 16, 12, 48, &tiny, b, &err), G3N_ERR);
    assert_non_null(strstr(err.message, "exceeds"));
    free(a);
    free(b);
}

/* g3n video end to end on the demo model: 2 frames and their audio, a short answer. */
static void test_cli_video(void **state)
{
    fixture *f = *state;
    char command[2048], log[700];
    snprintf(log, sizeof log, "%s/video.log", f->dir);
    snprintf(command, sizeof command,
             "%s video --demo --video %s --max-frames 2 --max-new-tokens 3 'What colour?' > %s.out 2> %s",
             g3n_test_binary(), f->video, log, log);
    int rc = system(command);
    FILE *in = fopen(log, "r");
    char text[8192] = {0};
    size_t n = in ? fread(text, 1, sizeof text - 1, in) : 0;
    text[n] = '\0';
    if (in)
        fclose(in);
    printf("%s", text);
    assert_int_equal(rc, 0);
    assert_non_null(strstr(text, "2 frames, 2 audio segments (3.5 s of audio)"));
    assert_non_null(strstr(text, "answer: first token after"));
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_ingest_file),
        cmocka_unit_test(test_ingest_rate_and_cap),
        cmocka_unit_test(test_ingest_pipe_and_network),
        cmocka_unit_test(test_ingest_errors),
        cmocka_unit_test(test_layout),
        cmocka_unit_test(test_rgb_preprocess_matches_file),
        cmocka_unit_test(test_cli_video),
    };
    return cmocka_run_group_tests(tests, g3n_test_video_setup, g3n_test_video_teardown);
}
