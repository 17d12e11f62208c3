/* FFmpeg decoding: the fixture speech re-encoded in the test as FLAC, MP3
 * (libmp3lame) and Ogg/Opus (libopus) with the libraries g3n links decodes to
 * features close to the WAV's; stereo is averaged to mono; memory and file
 * inputs agree; corrupt, empty and audio-less inputs fail with a message
 * naming the input. */
#include <math.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include <libavcodec/avcodec.h>
#include <libavformat/avformat.h>
#include <libavutil/channel_layout.h>

#include "audio_config.h"
#include "audio_decode.h"
#include "audio_features.h"
#include "json_util.h"
#include "test_media_util.h"
#include "test_util.h"

typedef struct fixture {
    char dir[512];
    float *wave;
    int64_t samples;
    g3n_audio_feature_config fc;
    g3n_audio_features *features;
} fixture;

static int setup(void **state)
{
    fixture *f = calloc(1, sizeof(*f));
    g3n_error err = {{0}};
    char path[1024];
    g3n_audio_feature_config_default(&f->fc);
    if (g3n_audio_decode_file(g3n_test_fixture("audio-tiny/speech.wav", path, sizeof(path)), 16000, &f->wave,
                              &f->samples, &err) ||
        g3n_audio_features_create(&f->features, &f->fc, &err)) {
        fprintf(stderr, "setup: %s\n", err.message);
        return -1;
    }
    g3n_test_temp_dir(f->dir, sizeof(f->dir));
    *state = f;
    return 0;
}

static int teardown(void **state)
{
    fixture *f = *state;
    g3n_test_remove_tree(f->dir);
    free(f->wave);
    g3n_audio_features_free(f->features);
    g3n_audio_feature_config_free(&f->fc);
    free(f);
    return 0;
}

static void put_sample(AVFrame *frame, int channel, int i, float v)
{
    int planar = av_sample_fmt_is_planar(frame->format);
    int channels = frame->ch_layout.nb_channels;
    uint8_t *base = frame->extended_data[planar ? channel : 0];
    int index = planar ? i : i * channels + channel;
    float c = v > 1.0f ? 1.0f : (v < -1.0f ? -1.0f : v);
    switch (av_get_packed_sample_fmt(frame->format)) {
    case AV_SAMPLE_FMT_FLT:
        ((float *)base)[index] = v;
        break;
    case AV_SAMPLE_FMT_S16: { /* the inverse of x / 32768: int16 sources stay exact */
        long q = lrintf(c * 32768.0f);
        ((int16_t *)base)[index] = (int16_t)(q > 32767 ? 32767 : q);
        break;
    }
    case AV_SAMPLE_FMT_S32: {
        long long q = llrint((double)c * 2147483648.0);
        ((int32_t *)base)[index] = (int32_t)(q > 2147483647LL ? 2147483647LL : q);
        break;
    }
    default:
        fail_msg("unexpected encoder sample format %s", av_get_sample_fmt_name(frame->format));
    }
}

/* Encodes mono samples (each channel gets `samples` times gain[c]) into `path`
 * with encoder `codec_name`; returns 0, or 1 when this FFmpeg lacks the encoder. */
static int encode_file(const char *path, const char *codec_name, int rate, int channels, const float *gain,
                       const float *samples, int64_t count, int64_t bit_rate)
{
    const AVCodec *codec = avcodec_find_encoder_by_name(codec_name);
    if (codec == NULL)
        return 1;
    AVFormatContext *format = NULL;
    assert_true(avformat_alloc_output_context2(&format, NULL, NULL, path) >= 0);
    AVStream *stream = avformat_new_stream(format, NULL);
    AVCodecContext *c = avcodec_alloc_context3(codec);
    c->sample_rate = rate;
    c->sample_fmt = codec->sample_fmts ? codec->sample_fmts[0] : AV_SAMPLE_FMT_S16;
    av_channel_layout_default(&c->ch_layout, channels);
    c->time_base = (AVRational){1, rate};
    if (bit_rate > 0)
        c->bit_rate = bit_rate;
    if (format->oformat->flags & AVFMT_GLOBALHEADER)
        c->flags |= AV_CODEC_FLAG_GLOBAL_HEADER;
    assert_true(avcodec_open2(c, codec, NULL) >= 0);
    assert_true(avcodec_parameters_from_context(stream->codecpar, c) >= 0);
    stream->time_base = c->time_base;
    assert_true(avio_open(&format->pb, path, AVIO_FLAG_WRITE) >= 0);
    assert_true(avformat_write_header(format, NULL) >= 0);
    int frame_size = c->frame_size > 0 ? c->frame_size : 1024;
    AVFrame *frame = av_frame_alloc();
    for (int64_t at = 0; at < count; at += frame_size) {
        int n = (int)(count - at < frame_size ? count - at : frame_size);
        if (c->frame_size > 0 && !(codec->capabilities & AV_CODEC_CAP_VARIABLE_FRAME_SIZE) && n < frame_size &&
            !(codec->capabilities & AV_CODEC_CAP_SMALL_LAST_FRAME))
            n = frame_size; /* pad the last frame with silence */
        frame->nb_samples = n;
        frame->format = c->sample_fmt;
        frame->sample_rate = rate;
        av_channel_layout_copy(&frame->ch_layout, &c->ch_layout);
        assert_true(av_frame_get_buffer(frame, 0) >= 0);
        for (int i = 0; i < n; i++)
            for (int ch = 0; ch < channels; ch++)
                put_sample(frame, ch, i, at + i < count ? samples[at + i] * gain[ch] : 0.0f);
        frame->pts = at;
        assert_int_equal(g3n_test_write_packets(c, format, stream, frame), 0);
        av_frame_unref(frame);
    }
    assert_int_equal(g3n_test_write_packets(c, format, stream, NULL), 0);
    assert_true(av_write_trailer(format) >= 0);
    av_frame_free(&frame);
    avio_closep(&format->pb);
    avcodec_free_context(&c);
    avformat_free_context(format);
    return 0;
}

/* Features of one clip (single-clip batch). */
static float *clip_features(fixture *f, const float *wave, int64_t samples, int64_t *frames)
{
    g3n_error err = {{0}};
    float *features;
    uint8_t *mask;
    const float *clips[1] = {wave};
    assert_int_equal(g3n_audio_features_batch(f->features, clips, &samples, 1, &features, &mask, frames, &err),
                     G3N_OK);
    free(mask);
    return features;
}

/* Decodes `path`, compares its features with the WAV's over the common frames. */
static void compare_with_wav(fixture *f, const char *path, const char *label, double mean_abs_limit,
                             double rel_l2_limit, int64_t length_slack, double min_snr_db)
{
    g3n_error err = {{0}};
    float *wave;
    int64_t samples, frames, wav_frames;
    assert_int_equal(g3n_audio_decode_file(path, 16000, &wave, &samples, &err), G3N_OK);
    int64_t difference = samples > f->samples ? samples - f->samples : f->samples - samples;
    int best_shift = 0;
    double best = -1e30;
    for (int shift = -64; shift <= 64; shift++) { /* alignment: correlation over the common part */
        double dot = 0.0;
        for (int64_t i = 64; i + 64 < samples && i + 64 < f->samples; i++)
            dot += (double)wave[i + shift] * f->wave[i];
        if (dot > best) {
            best = dot;
            best_shift = shift;
        }
    }
    double noise = 0.0, signal = 0.0;
    for (int64_t i = 0; i < samples && i < f->samples; i++) {
        noise += ((double)wave[i] - f->wave[i]) * ((double)wave[i] - f->wave[i]);
        signal += (double)f->wave[i] * f->wave[i];
    }
    double snr = 10.0 * log10(signal / (noise > 0 ? noise : 1e-30));
    printf("%-5s: best alignment shift %d samples, waveform SNR %.1f dB\n", label, best_shift, snr);
    assert_int_equal(best_shift, 0); /* encoder delay and padding trimmed (gapless headers) */
    assert_true(snr >= min_snr_db);
    float *features = clip_features(f, wave, samples, &frames);
    float *reference = clip_features(f, f->wave, f->samples, &wav_frames);
    int64_t common = (frames < wav_frames ? frames : wav_frames) * f->fc.feature_size;
    double diff2 = 0.0, ref2 = 0.0, abs_sum = 0.0, max_abs = 0.0;
    for (int64_t i = 0; i < common; i++) {
        double d = (double)features[i] - reference[i];
        diff2 += d * d;
        ref2 += (double)reference[i] * reference[i];
        abs_sum += fabs(d);
        if (fabs(d) > max_abs)
            max_abs = fabs(d);
    }
    double rel = sqrt(diff2 / ref2), mean_abs = abs_sum / (double)common;
    printf("%-5s: %lld samples (WAV %lld), features mean_abs %.3e rel_l2 %.3e max_abs %.3e (limits %.1e, %.1e)\n",
           label, (long long)samples, (long long)f->samples, mean_abs, rel, max_abs, mean_abs_limit, rel_l2_limit);
    assert_true(difference <= length_slack);
    assert_true(mean_abs <= mean_abs_limit);
    assert_true(rel <= rel_l2_limit);
    free(features);
    free(reference);
    free(wave);
}

static void test_flac_is_lossless(void **state)
{
    fixture *f = *state;
    char path[1024];
    float gain[1] = {1.0f};
    snprintf(path, sizeof(path), "%s/speech.flac", f->dir);
    assert_int_equal(encode_file(path, "flac", 16000, 1, gain, f->wave, f->samples, 0), 0);
    compare_with_wav(f, path, "FLAC", 0.0, 0.0, 0, 100.0); /* int16 -> FLAC -> int16: bit exact */
}

static void test_mp3(void **state)
{
    fixture *f = *state;
    char path[1024];
    float gain[1] = {1.0f};
    snprintf(path, sizeof(path), "%s/speech.mp3", f->dir);
    if (encode_file(path, "libmp3lame", 16000, 1, gain, f->wave, f->samples, 64000)) {
        printf("no libmp3lame encoder in this FFmpeg: skipped\n");
        skip();
    }
    /* lossy, 64 kb/s: measured waveform SNR 23.1 dB, features mean_abs 0.26, rel_l2 0.17 (the codec's
     * noise in quiet bins, amplified by the log; max_abs 8 near the 1e-5 floor) */
    compare_with_wav(f, path, "MP3", 0.35, 0.25, 0, 18.0);
}

static void test_opus(void **state)
{
    fixture *f = *state;
    char path[1024];
    float gain[1] = {1.0f};
    snprintf(path, sizeof(path), "%s/speech.opus", f->dir);
    if (encode_file(path, "libopus", 16000, 1, gain, f->wave, f->samples, 48000)) {
        printf("no libopus encoder in this FFmpeg: skipped\n");
        skip();
    }
    /* lossy, 48 kb/s, decoded at 48 kHz and resampled to 16 kHz by libswresample: measured waveform SNR
     * 23.3 dB, features mean_abs 0.20, rel_l2 0.09 */
    compare_with_wav(f, path, "Opus", 0.3, 0.15, 0, 18.0);
}

static void test_stereo_is_averaged(void **state)
{
    fixture *f = *state;
    char path[1024];
    float gain[2] = {0.5f, 1.5f}; /* mean = the mono signal */
    snprintf(path, sizeof(path), "%s/stereo.wav", f->dir);
    assert_int_equal(encode_file(path, "pcm_f32le", 16000, 2, gain, f->wave, f->samples, 0), 0);
    g3n_error err = {{0}};
    float *wave;
    int64_t samples;
    assert_int_equal(g3n_audio_decode_file(path, 16000, &wave, &samples, &err), G3N_OK);
    assert_int_equal(samples, f->samples);
    for (int64_t i = 0; i < samples; i++)
        assert_true(fabsf(wave[i] - f->wave[i]) <= 1e-7f);
    free(wave);
}

static void test_memory_matches_file(void **state)
{
    fixture *f = *state;
    g3n_error err = {{0}};
    char path[1024], *data;
    size_t size;
    float *wave;
    int64_t samples;
    assert_int_equal(g3n_read_file(g3n_test_fixture("audio-tiny/speech.wav", path, sizeof(path)), &data, &size, &err),
                     G3N_OK);
    assert_int_equal(g3n_audio_decode_memory(data, size, "speech.wav bytes", 16000, &wave, &samples, &err), G3N_OK);
    assert_int_equal(samples, f->samples);
    assert_memory_equal(wave, f->wave, sizeof(float) * (size_t)samples);
    free(wave);
    /* the same bytes resampled to 8 kHz: half the samples */
    assert_int_equal(g3n_audio_decode_memory(data, size, "speech.wav bytes", 8000, &wave, &samples, &err), G3N_OK);
    assert_true(llabs(samples - f->samples / 2) <= 2);
    free(wave);
    free(data);
}

static void expect_failure(const char *path, const char *fragment, const char *or_fragment)
{
    g3n_error err = {{0}};
    float *wave = (float *)1;
    int64_t samples = 7;
    assert_int_equal(g3n_audio_decode_file(path, 16000, &wave, &samples, &err), G3N_ERR);
    printf("%s\n", err.message);
    assert_null(wave);
    assert_int_equal(samples, 0);
    assert_non_null(strstr(err.message, path)); /* names the input */
    assert_true(strstr(err.message, fragment) != NULL || (or_fragment && strstr(err.message, or_fragment)));
}

static void test_bad_inputs_fail_cleanly(void **state)
{
    fixture *f = *state;
    char path[1024];
    /* random bytes: no format recognised, or taken for a codec and found corrupt */
    snprintf(path, sizeof(path), "%s/noise.bin", f->dir);
    FILE *file = fopen(path, "wb");
    float noise[4096];
    g3n_test_random_floats(noise, 4096, 5);
    fwrite(noise, sizeof(noise), 1, file);
    fclose(file);
    expect_failure(path, "cannot open or recognise", "corrupt audio data");
    /* a WAV whose header promises data that is garbage after the first bytes: truncated/corrupt */
    char wav[1024];
    g3n_error err = {{0}};
    char *data;
    size_t size;
    assert_int_equal(g3n_read_file(g3n_test_fixture("audio-tiny/speech.wav", wav, sizeof(wav)), &data, &size, &err),
                     G3N_OK);
    snprintf(path, sizeof(path), "%s/header-only.wav", f->dir);
    file = fopen(path, "wb");
    fwrite(data, 1, 44, file); /* RIFF header, no samples */
    fclose(file);
    expect_failure(path, "no samples", NULL);
    free(data);
    /* a FLAC file with its middle overwritten by garbage */
    float gain[1] = {1.0f};
    snprintf(path, sizeof(path), "%s/corrupt.flac", f->dir);
    assert_int_equal(encode_file(path, "flac", 16000, 1, gain, f->wave, f->samples, 0), 0);
    assert_int_equal(g3n_read_file(path, &data, &size, &err), G3N_OK);
    for (size_t i = size / 3; i < size / 3 + 4096 && i < size; i++)
        data[i] = (char)(0x5A ^ (i * 131));
    float *wave;
    int64_t samples;
    int rc = g3n_audio_decode_memory(data, size, "corrupt.flac bytes", 16000, &wave, &samples, &err);
    printf("corrupt FLAC: %s\n", rc == G3N_OK ? "decoded (the damaged frames skipped)" : err.message);
    if (rc == G3N_OK) {
        assert_true(samples < f->samples); /* damaged frames are not passed off as audio */
        free(wave);
    } else {
        assert_non_null(strstr(err.message, "corrupt.flac bytes"));
    }
    free(data);
    /* an empty file */
    snprintf(path, sizeof(path), "%s/empty.wav", f->dir);
    file = fopen(path, "wb");
    fclose(file);
    expect_failure(path, "empty", NULL);
    /* an image: a video stream and no audio */
    expect_failure(g3n_test_fixture("image-preprocess/image.png", path, sizeof(path)), "no audio stream", NULL);
    /* a missing file */
    snprintf(path, sizeof(path), "%s/missing.wav", f->dir);
    expect_failure(path, "no such file", NULL);
    /* memory: garbage and empty */
    assert_int_equal(g3n_audio_decode_memory(noise, sizeof(noise), "noise buffer", 16000, &wave, &samples, &err),
                     G3N_ERR);
    assert_non_null(strstr(err.message, "noise buffer"));
    assert_int_equal(g3n_audio_decode_memory(noise, 0, "empty buffer", 16000, &wave, &samples, &err), G3N_ERR);
    assert_non_null(strstr(err.message, "empty buffer"));
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_flac_is_lossless),   cmocka_unit_test(test_mp3),
        cmocka_unit_test(test_opus),               cmocka_unit_test(test_stereo_is_averaged),
        cmocka_unit_test(test_memory_matches_file), cmocka_unit_test(test_bad_inputs_fail_cleanly),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
