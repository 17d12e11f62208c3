/* The streaming audio encoder: the fixture clip pushed in random piece sizes
 * (1 sample to 2 s) gives the offline encoding (features of the whole clip,
 * encoder in one piece, embed_audio) within rel-L2 1e-6 for every split;
 * tokens come out as soon as they can no longer change; 30 s windows. */
#include <math.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "audio_config.h"
#include "audio_decode.h"
#include "audio_encoder.h"
#include "audio_features.h"
#include "audio_stream.h"
#include "check.h"
#include "config.h"
#include "multimodal_embedder.h"
#include "test_util.h"
#include "weights.h"

typedef struct fixture {
    g3n_model_config config;
    g3n_audio_config audio;
    g3n_audio_feature_config fc;
    g3n_weights *weights;
    g3n_audio_features *features;
    g3n_audio_encoder encoder;
    g3n_multimodal_embedder embedder;
    float *wave;
    int64_t samples;
} fixture;

static int setup(void **state)
{
    fixture *f = calloc(1, sizeof(*f));
    g3n_error err = {{0}};
    char path[1024];
    g3n_audio_feature_config_default(&f->fc);
    if (g3n_config_load(&f->config, g3n_test_fixture("audio-tiny/config.json", path, sizeof(path)), &err) ||
        g3n_audio_config_parse(&f->audio, &f->config, &err) ||
        g3n_weights_open_synth(&f->weights, 21, G3N_DTYPE_BF16, &err) ||
        g3n_audio_features_create(&f->features, &f->fc, &err) ||
        g3n_audio_encoder_load(&f->encoder, &f->audio, f->weights, &err) ||
        g3n_multimodal_embedder_load(&f->embedder, f->weights, "model.embed_audio", f->audio.hidden_size,
                                     f->config.text.hidden_size, f->audio.vocab_size, f->audio.vocab_offset,
                                     f->audio.rms_norm_eps, &err) ||
        g3n_audio_decode_file(g3n_test_fixture("audio-tiny/speech.wav", path, sizeof(path)), 16000, &f->wave,
                              &f->samples, &err)) {
        fprintf(stderr, "setup: %s\n", err.message);
        return -1;
    }
    *state = f;
    return 0;
}

static int teardown(void **state)
{
    fixture *f = *state;
    free(f->wave);
    g3n_audio_encoder_free(&f->encoder);
    g3n_audio_features_free(f->features);
    g3n_weights_close(f->weights);
    g3n_config_free(&f->config);
    g3n_audio_feature_config_free(&f->fc);
    free(f);
    return 0;
}

/* The offline path, independent of the stream: batch features, encoder in one piece, embedder. */
static float *offline_tokens(fixture *f, const float *wave, int64_t samples, int64_t *count)
{
    g3n_error err = {{0}};
    float *features;
    uint8_t *mask;
    int64_t frames;
    const float *clips[1] = {wave};
    assert_int_equal(g3n_audio_features_batch(f->features, clips, &samples, 1, &features, &mask, &frames, &err),
                     G3N_OK);
    for (int64_t t = 0; t < frames; t++)
        assert_int_equal(mask[t], 1); /* one clip: every frame valid */
    int64_t tokens = g3n_audio_encoder_token_count(&f->audio, frames);
    float *encoded = malloc(sizeof(float) * (size_t)(tokens * f->audio.hidden_size));
    float *soft = malloc(sizeof(float) * (size_t)(tokens * f->config.text.hidden_size));
    assert_int_equal(g3n_audio_encoder_encode(&f->encoder, features, NULL, frames, encoded, NULL, &err), G3N_OK);
    assert_int_equal(g3n_multimodal_embedder_soft(&f->embedder, encoded, tokens, soft, &err), G3N_OK);
    free(features);
    free(mask);
    free(encoded);
    *count = tokens;
    return soft;
}

typedef struct collected {
    float *tokens;
    int64_t count, capacity, width;
    int segments;
    int64_t segment_tokens[16];
} collected;

static int collect(void *user, int segment, int64_t first_token, const float *tokens, int64_t count, int64_t width,
                   g3n_error *err)
{
    (void)err;
    collected *c = user;
    assert_true(segment < 16);
    if (segment + 1 > c->segments)
        c->segments = segment + 1;
    assert_int_equal(first_token, c->segment_tokens[segment]); /* in order, nothing skipped */
    c->segment_tokens[segment] += count;
    if (c->count + count > c->capacity) {
        c->capacity = (c->count + count) * 2;
        c->tokens = realloc(c->tokens, sizeof(float) * (size_t)(c->capacity * width));
    }
    memcpy(c->tokens + c->count * width, tokens, sizeof(float) * (size_t)(count * width));
    c->count += count;
    c->width = width;
    return G3N_OK;
}

static double rel_l2(const float *a, const float *b, int64_t n)
{
    double diff = 0.0, norm = 0.0;
    for (int64_t i = 0; i < n; i++) {
        diff += ((double)a[i] - b[i]) * ((double)a[i] - b[i]);
        norm += (double)b[i] * b[i];
    }
    return sqrt(diff / norm);
}

static uint64_t next_random(uint64_t *s)
{
    *s ^= *s << 13;
    *s ^= *s >> 7;
    *s ^= *s << 17;
    return *s;
}

static void test_random_pieces_match_offline(void **state)
{
    fixture *f = *state;
    g3n_error err = {{0}};
    int64_t expected_count;
    float *expected = offline_tokens(f, f->wave, f->samples, &expected_count);
    assert_int_equal(expected_count, 43);
    int64_t width = f->config.text.hidden_size;
    g3n_audio_stream *stream;
    collected c;
    memset(&c, 0, sizeof(c));
    assert_int_equal(g3n_audio_stream_create(&stream, f->features, &f->encoder, &f->embedder, collect, &c, &err),
                     G3N_OK);
    /* split 0: every piece 1 sample; splits 1..: log-uniform sizes in [1, 32000] (1 sample to 2 s) */
    for (int split = 0; split < 8; split++) {
        memset(&c, 0, sizeof(c));
        uint64_t random = 0x1234567ull + (uint64_t)split * 7919;
        int64_t pieces = 0;
        for (int64_t at = 0; at < f->samples; pieces++) {
            int64_t size = 1;
            if (split > 0)
                size = (int64_t)exp((double)(next_random(&random) % 1000000) / 1000000.0 * log(32000.0)) + 0;
            if (size < 1)
                size = 1;
            if (size > f->samples - at)
                size = f->samples - at;
            assert_int_equal(g3n_audio_stream_push(stream, f->wave + at, size, &err), G3N_OK);
            at += size;
        }
        assert_int_equal(g3n_audio_stream_flush(stream, &err), G3N_OK);
        assert_int_equal(c.segments, 1);
        assert_int_equal(c.count, expected_count);
        assert_int_equal(c.width, width);
        double r = rel_l2(c.tokens, expected, expected_count * width);
        printf("split %d: %lld pieces, rel_l2 %.3e\n", split, (long long)pieces, r);
        assert_true(r <= 1e-6);
        free(c.tokens);
    }
    g3n_audio_stream_free(stream);
    free(expected);
}

/* Token k depends on samples [0, 2560k + 1472) only (frames up to 16k + 6, spec §7.6):
 * it comes out exactly when they are in, and equals the offline value. */
static void test_tokens_come_out_when_final(void **state)
{
    fixture *f = *state;
    g3n_error err = {{0}};
    int64_t expected_count;
    float *expected = offline_tokens(f, f->wave, f->samples, &expected_count);
    int64_t width = f->config.text.hidden_size;
    g3n_audio_stream *stream;
    collected c;
    memset(&c, 0, sizeof(c));
    assert_int_equal(g3n_audio_stream_create(&stream, f->features, &f->encoder, &f->embedder, collect, &c, &err),
                     G3N_OK);
    int64_t at = 0;
    for (int64_t k = 0; k < 20; k++) {
        int64_t needed = 2560 * k + 1472;
        assert_int_equal(g3n_audio_stream_push(stream, f->wave + at, needed - 1 - at, &err), G3N_OK);
        assert_int_equal(c.count, k); /* one sample short: token k not out yet */
        assert_int_equal(g3n_audio_stream_push(stream, f->wave + needed - 1, 1, &err), G3N_OK);
        assert_int_equal(c.count, k + 1);
        at = needed;
    }
    /* the tokens emitted early are final: they equal the offline ones */
    assert_true(rel_l2(c.tokens, expected, 20 * width) <= 1e-6);
    assert_int_equal(g3n_audio_stream_push(stream, f->wave + at, f->samples - at, &err), G3N_OK);
    assert_int_equal(g3n_audio_stream_flush(stream, &err), G3N_OK);
    assert_int_equal(c.count, expected_count);
    assert_true(rel_l2(c.tokens, expected, expected_count * width) <= 1e-6);
    free(c.tokens);
    g3n_audio_stream_free(stream);
    free(expected);
}

/* Longer than 30 s: 30 s windows, each its own segment, each equal to the offline encoding of its samples. */
static void test_thirty_second_windows(void **state)
{
    fixture *f = *state;
    g3n_error err = {{0}};
    int64_t total = 480000 * 2 + 20000; /* 61.25 s: two full windows and 1.25 s */
    float *wave = malloc(sizeof(float) * (size_t)total);
    for (int64_t i = 0; i < total; i++)
        wave[i] = f->wave[i % f->samples] * (float)(1.0 + 0.3 * sin((double)i / 7000.0));
    float *tokens;
    int64_t count, *starts;
    int segments;
    assert_int_equal(g3n_audio_encode_clip(f->features, &f->encoder, &f->embedder, wave, total, &tokens, &count,
                                           &starts, &segments, &err),
                     G3N_OK);
    assert_int_equal(segments, 3);
    assert_int_equal(starts[0], 0);
    assert_int_equal(starts[1], 188); /* a 30 s window gives 188 tokens */
    assert_int_equal(starts[2], 376);
    int64_t width = f->config.text.hidden_size;
    for (int s = 0; s < 3; s++) {
        int64_t first = 480000 * s, length = s < 2 ? 480000 : total - 960000, expected_count;
        float *expected = offline_tokens(f, wave + first, length, &expected_count);
        int64_t end = s < 2 ? starts[s + 1] : count;
        assert_int_equal(end - starts[s], expected_count);
        assert_true(rel_l2(tokens + starts[s] * width, expected, expected_count * width) <= 1e-6);
        free(expected);
    }
    free(tokens);
    free(starts);
    free(wave);
}

/* The encoder keeps one stream state between offline encodes: a clip encoded
 * after another (and two encoded at once, one of them on a state of its own)
 * must come out bit for bit as from a freshly loaded encoder. */
static void test_encoder_state_reuse_is_clean(void **state)
{
    fixture *f = *state;
    g3n_error err = {{0}};
    g3n_audio_encoder fresh;
    assert_int_equal(g3n_audio_encoder_load(&fresh, &f->audio, f->weights, &err), G3N_OK);
    const int64_t short_samples = f->samples / 2;
    float *features[2];
    uint8_t *mask[2];
    int64_t frames[2];
    const float *clips[1] = {f->wave};
    int64_t lengths[2] = {f->samples, short_samples};
    for (int c = 0; c < 2; c++)
        assert_int_equal(g3n_audio_features_batch(f->features, clips, &lengths[c], 1, &features[c], &mask[c],
                                                  &frames[c], &err),
                         G3N_OK);
    const int64_t width = f->audio.hidden_size;
    int64_t tokens[2];
    float *want[2], *got[2];
    for (int c = 0; c < 2; c++) {
        tokens[c] = g3n_audio_encoder_token_count(&f->audio, frames[c]);
        want[c] = malloc(sizeof(float) * (size_t)(tokens[c] * width));
        got[c] = malloc(sizeof(float) * (size_t)(tokens[c] * width));
    }
    /* the fresh encoder's first use of each clip is the reference */
    for (int c = 1; c >= 0; c--) {
        g3n_audio_encoder reference;
        assert_int_equal(g3n_audio_encoder_load(&reference, &f->audio, f->weights, &err), G3N_OK);
        assert_int_equal(g3n_audio_encoder_encode(&reference, features[c], NULL, frames[c], want[c], NULL, &err),
                         G3N_OK);
        g3n_audio_encoder_free(&reference);
    }
    /* long clip, then short clip on the kept state */
    assert_int_equal(g3n_audio_encoder_encode(&fresh, features[0], NULL, frames[0], got[0], NULL, &err), G3N_OK);
    assert_int_equal(g3n_audio_encoder_encode(&fresh, features[1], NULL, frames[1], got[1], NULL, &err), G3N_OK);
    for (int c = 0; c < 2; c++)
        assert_memory_equal(got[c], want[c], sizeof(float) * (size_t)(tokens[c] * width));
    /* both at once: one takes the kept state, the other makes its own */
    memset(got[0], 0, sizeof(float) * (size_t)(tokens[0] * width));
    memset(got[1], 0, sizeof(float) * (size_t)(tokens[1] * width));
    int rc[2] = {G3N_ERR, G3N_ERR};
#pragma omp parallel for num_threads(2)
    for (int c = 0; c < 2; c++) {
        g3n_error thread_err = {{0}};
        rc[c] = g3n_audio_encoder_encode(&fresh, features[c], NULL, frames[c], got[c], NULL, &thread_err);
    }
    for (int c = 0; c < 2; c++) {
        assert_int_equal(rc[c], G3N_OK);
        assert_memory_equal(got[c], want[c], sizeof(float) * (size_t)(tokens[c] * width));
        free(want[c]);
        free(got[c]);
        free(features[c]);
        free(mask[c]);
    }
    g3n_audio_encoder_free(&fresh);
}

static void test_too_short_clip_fails(void **state)
{
    fixture *f = *state;
    g3n_error err = {{0}};
    float *tokens;
    int64_t count;
    assert_int_equal(g3n_audio_encode_clip(f->features, &f->encoder, &f->embedder, f->wave, 300, &tokens, &count,
                                           NULL, NULL, &err),
                     G3N_ERR);
    assert_non_null(strstr(err.message, "300 samples"));
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_random_pieces_match_offline),
        cmocka_unit_test(test_tokens_come_out_when_final),
        cmocka_unit_test(test_thirty_second_windows),
        cmocka_unit_test(test_too_short_clip_fails),
        cmocka_unit_test(test_encoder_state_reuse_is_clean),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
