/* audio_stream.c - samples -> features -> streaming conformer -> embed_audio. */
#include "audio_stream.h"

#include <stdlib.h>
#include <string.h>

/* Feature frames computed and pushed per step: bounds the sample buffer. */
#define STEP_FRAMES 256

struct g3n_audio_stream {
    const g3n_audio_features *features;
    const g3n_audio_config *audio;
    const g3n_audio_feature_config *fc;
    const g3n_multimodal_embedder *embedder;
    g3n_audio_soft_sink sink;
    void *user;
    g3n_audio_encoder_state *state;
    /* samples of the current segment from sample_first on */
    float *samples;
    int64_t sample_first, sample_count, sample_capacity;
    int64_t segment_samples;   /* samples of the current segment so far */
    int64_t next_frame;        /* next feature frame of the segment */
    float *frames;             /* [STEP_FRAMES][feature_size] */
    float *soft;               /* embedder output for one batch of tokens */
    int64_t soft_capacity;     /* tokens */
    int segment;
    int64_t clip_tokens;
    int64_t clip_samples;
};

/* Encoder tokens -> embed_audio -> user sink. */
static int on_tokens(void *user, int64_t first_token, const float *tokens, const uint8_t *padding, int64_t count,
                     g3n_error *err)
{
    g3n_audio_stream *s = user;
    (void)padding; /* a single clip has no padded frames */
    s->clip_tokens += count;
    if (s->embedder == NULL)
        return s->sink(s->user, s->segment, first_token, tokens, count, s->audio->hidden_size, err);
    while (count > 0) {
        int64_t n = count < s->soft_capacity ? count : s->soft_capacity;
        if (g3n_multimodal_embedder_soft(s->embedder, tokens, n, s->soft, err) != G3N_OK)
            return G3N_ERR;
        if (s->sink(s->user, s->segment, first_token, s->soft, n, s->embedder->text_hidden, err) != G3N_OK)
            return G3N_ERR;
        tokens += n * s->audio->hidden_size;
        first_token += n;
        count -= n;
    }
    return G3N_OK;
}

void g3n_audio_stream_free(g3n_audio_stream *s)
{
    if (s == NULL)
        return;
    g3n_audio_encoder_state_free(s->state);
    free(s->samples);
    free(s->frames);
    free(s->soft);
    free(s);
}

static void start_segment(g3n_audio_stream *s)
{
    g3n_audio_encoder_state_reset(s->state);
    s->sample_first = 0;
    s->sample_count = 0;
    s->segment_samples = 0;
    s->next_frame = 0;
}

int g3n_audio_stream_create(g3n_audio_stream **out, const g3n_audio_features *features,
                            const g3n_audio_encoder *encoder, const g3n_multimodal_embedder *embedder,
                            g3n_audio_soft_sink sink, void *user, g3n_error *err)
{
    *out = NULL;
    const g3n_audio_feature_config *fc = g3n_audio_features_config(features);
    if (fc->feature_size != encoder->config.input_feat_size)
        return g3n_error_set(err, "audio stream: the features have %d mel bins, the encoder expects %lld",
                             fc->feature_size, (long long)encoder->config.input_feat_size);
    if (embedder != NULL && embedder->multimodal_hidden != encoder->config.hidden_size)
        return g3n_error_set(err, "audio stream: embed_audio takes width %lld, the encoder gives %lld",
                             (long long)embedder->multimodal_hidden, (long long)encoder->config.hidden_size);
    g3n_audio_stream *s = calloc(1, sizeof(*s));
    if (s == NULL)
        return g3n_error_set(err, "audio stream: out of memory");
    s->features = features;
    s->audio = &encoder->config;
    s->fc = fc;
    s->embedder = embedder;
    s->sink = sink;
    s->user = user;
    s->sample_capacity = (int64_t)STEP_FRAMES * fc->hop_length + fc->frame_length + 1 + fc->pad_to_multiple_of;
    s->samples = malloc(sizeof(float) * (size_t)s->sample_capacity);
    s->frames = malloc(sizeof(float) * (size_t)STEP_FRAMES * (size_t)fc->feature_size);
    s->soft_capacity = 64;
    if (embedder)
        s->soft = malloc(sizeof(float) * (size_t)(s->soft_capacity * embedder->text_hidden));
    if (s->samples == NULL || s->frames == NULL || (embedder && s->soft == NULL) ||
        g3n_audio_encoder_state_create(&s->state, encoder, on_tokens, s, err) != G3N_OK) {
        g3n_audio_stream_free(s);
        return g3n_error_set(err, "audio stream: out of memory");
    }
    start_segment(s);
    *out = s;
    return G3N_OK;
}

/* Computes and pushes frames [next_frame, end_frame) (their samples are in the buffer). */
static int push_frames(g3n_audio_stream *s, int64_t end_frame, g3n_error *err)
{
    const int64_t hop = s->fc->hop_length;
    while (s->next_frame < end_frame) {
        int64_t n = end_frame - s->next_frame;
        if (n > STEP_FRAMES)
            n = STEP_FRAMES;
        const float *base = s->samples + (s->next_frame * hop - s->sample_first);
        g3n_audio_features_frames(s->features, base, 0, n, s->frames);
        if (g3n_audio_encoder_state_push(s->state, s->frames, NULL, n, err) != G3N_OK)
            return G3N_ERR;
        s->next_frame += n;
        /* drop samples no later frame reads */
        int64_t keep_from = s->next_frame * hop;
        if (keep_from > s->sample_first + s->sample_count)
            keep_from = s->sample_first + s->sample_count;
        int64_t drop = keep_from - s->sample_first;
        if (drop > 0) {
            s->sample_count -= drop;
            memmove(s->samples, s->samples + drop, sizeof(float) * (size_t)s->sample_count);
            s->sample_first += drop;
        }
    }
    return G3N_OK;
}

/* Frames that are final: every sample they read is in (HTK pre-emphasis, and
 * no pre-emphasis, leave the frame's last sample unused), and they exist
 * whatever the final length (the padded length already holds them). */
static int64_t complete_frames(const g3n_audio_stream *s)
{
    const g3n_audio_feature_config *fc = s->fc;
    int uses_last = fc->preemphasis > 0.0 && !fc->preemphasis_htk;
    int64_t span = fc->frame_length + uses_last;
    if (s->segment_samples < span)
        return 0;
    int64_t by_samples = (s->segment_samples - span) / fc->hop_length + 1;
    int64_t by_padding = g3n_audio_frame_count(fc, g3n_audio_padded_samples(fc, s->segment_samples));
    return by_samples < by_padding ? by_samples : by_padding;
}

/* Ends the current segment: padding, last frames, last tokens. */
static int finish_segment(g3n_audio_stream *s, g3n_error *err)
{
    const g3n_audio_feature_config *fc = s->fc;
    int64_t padded = g3n_audio_padded_samples(fc, s->segment_samples);
    if (padded < fc->frame_length + 1)
        padded = fc->frame_length + 1; /* a short last segment becomes one frame */
    int64_t total = g3n_audio_frame_count(fc, padded);
    /* frames still missing read at most the padded end: zero-fill it in the buffer */
    int64_t needed = padded - (s->sample_first + s->sample_count);
    while (s->next_frame < total) {
        int64_t space = s->sample_capacity - s->sample_count;
        int64_t n = needed < space ? needed : space;
        if (n > 0) {
            memset(s->samples + s->sample_count, 0, sizeof(float) * (size_t)n);
            s->sample_count += n;
            needed -= n;
        }
        int64_t end = s->sample_first + s->sample_count;
        int64_t ready = end < fc->frame_length + 1 ? 0 : (end - fc->frame_length - 1) / fc->hop_length + 1;
        if (ready > total)
            ready = total;
        if (ready <= s->next_frame)
            return g3n_error_set(err, "audio stream: internal error: padding does not advance");
        if (push_frames(s, ready, err) != G3N_OK)
            return G3N_ERR;
    }
    if (g3n_audio_encoder_state_finish(s->state, err) != G3N_OK)
        return G3N_ERR;
    s->segment++;
    start_segment(s);
    return G3N_OK;
}

int g3n_audio_stream_push(g3n_audio_stream *s, const float *samples, int64_t count, g3n_error *err)
{
    const int64_t window = s->fc->max_samples;
    while (count > 0) {
        int64_t n = s->sample_capacity - s->sample_count;
        if (n > count)
            n = count;
        if (window > 0 && s->segment_samples + n > window)
            n = window - s->segment_samples;
        memcpy(s->samples + s->sample_count, samples, sizeof(float) * (size_t)n);
        s->sample_count += n;
        s->segment_samples += n;
        s->clip_samples += n;
        samples += n;
        count -= n;
        if (push_frames(s, complete_frames(s), err) != G3N_OK)
            return G3N_ERR;
        if (window > 0 && s->segment_samples == window && finish_segment(s, err) != G3N_OK)
            return G3N_ERR;
    }
    return G3N_OK;
}

int g3n_audio_stream_flush(g3n_audio_stream *s, g3n_error *err)
{
    int rc = G3N_OK;
    if (s->clip_samples < s->fc->frame_length + 1)
        rc = g3n_error_set(err, "audio stream: the clip has %lld samples; at least %d (one %d-sample frame) are "
                           "needed", (long long)s->clip_samples, s->fc->frame_length + 1, s->fc->frame_length + 1);
    else if (s->segment_samples > 0)
        rc = finish_segment(s, err);
    /* ready for the next clip */
    s->segment = 0;
    s->clip_tokens = 0;
    s->clip_samples = 0;
    start_segment(s);
    return rc;
}

int g3n_audio_stream_segments(const g3n_audio_stream *s)
{
    return s->segment;
}

int64_t g3n_audio_stream_tokens(const g3n_audio_stream *s)
{
    return s->clip_tokens;
}

/* ---- whole clip ---- */

typedef struct clip_collector {
    float *tokens;
    int64_t count, capacity, width;
    int64_t *starts;
    int segments;
} clip_collector;

static int collect_clip(void *user, int segment, int64_t first_token, const float *tokens, int64_t count,
                        int64_t width, g3n_error *err)
{
    clip_collector *c = user;
    if (segment >= c->segments) { /* a new segment starts here */
        int64_t *starts = realloc(c->starts, sizeof(int64_t) * (size_t)(segment + 1));
        if (starts == NULL)
            return g3n_error_set(err, "audio: out of memory");
        c->starts = starts;
        for (int i = c->segments; i <= segment; i++)
            c->starts[i] = c->count;
        c->segments = segment + 1;
    }
    (void)first_token;
    if (c->count + count > c->capacity) {
        int64_t capacity = c->capacity ? 2 * c->capacity : 256;
        while (capacity < c->count + count)
            capacity *= 2;
        float *grown = realloc(c->tokens, sizeof(float) * (size_t)(capacity * width));
        if (grown == NULL)
            return g3n_error_set(err, "audio: out of memory for %lld tokens", (long long)capacity);
        c->tokens = grown;
        c->capacity = capacity;
    }
    c->width = width;
    memcpy(c->tokens + c->count * width, tokens, sizeof(float) * (size_t)(count * width));
    c->count += count;
    return G3N_OK;
}

int g3n_audio_encode_clip(const g3n_audio_features *features, const g3n_audio_encoder *encoder,
                          const g3n_multimodal_embedder *embedder, const float *samples, int64_t sample_count,
                          float **tokens, int64_t *count, int64_t **segment_starts, int *segments, g3n_error *err)
{
    clip_collector c;
    memset(&c, 0, sizeof(c));
    *tokens = NULL;
    *count = 0;
    if (segment_starts)
        *segment_starts = NULL;
    if (segments)
        *segments = 0;
    g3n_audio_stream *s;
    if (g3n_audio_stream_create(&s, features, encoder, embedder, collect_clip, &c, err) != G3N_OK)
        return G3N_ERR;
    int rc = g3n_audio_stream_push(s, samples, sample_count, err);
    if (rc == G3N_OK)
        rc = g3n_audio_stream_flush(s, err);
    g3n_audio_stream_free(s);
    if (rc != G3N_OK) {
        free(c.tokens);
        free(c.starts);
        return G3N_ERR;
    }
    *tokens = c.tokens;
    *count = c.count;
    if (segment_starts)
        *segment_starts = c.starts;
    else
        free(c.starts);
    if (segments)
        *segments = c.segments;
    return G3N_OK;
}
