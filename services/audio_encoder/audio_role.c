/* audio_role.c - the audio-encoder role (audio_role.h). */
#include "audio_role.h"

#include <pthread.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "audio_config.h"
#include "audio_decode.h"
#include "audio_encoder.h"
#include "audio_features.h"
#include "audio_stream_table.h"
#include "ops.h"
#include "wire.h"

typedef struct audio_role {
    g3n_weights *weights;
    const g3n_model_config *config;
    g3n_role_options options;
    pthread_mutex_t lock;
    g3n_audio_config audio_config;
    g3n_audio_feature_config feature_config;
    g3n_audio_features *features;
    g3n_audio_encoder audio;
    int audio_loaded;
    g3n_audio_stream_table *audio_streams;
} audio_role;

static int audio_open(audio_role *r, g3n_error *err)
{
    g3n_audio_feature_config_default(&r->feature_config);
    if (r->options.model_dir) {
        char path[1200];
        snprintf(path, sizeof(path), "%s/preprocessor_config.json", r->options.model_dir);
        if (g3n_audio_feature_config_load(&r->feature_config, path, err) != G3N_OK)
            return G3N_ERR;
    }
    if (g3n_audio_config_parse(&r->audio_config, r->config, err) != G3N_OK ||
        g3n_audio_features_create(&r->features, &r->feature_config, err) != G3N_OK ||
        g3n_audio_encoder_load(&r->audio, &r->audio_config, r->weights, err) != G3N_OK)
        return G3N_ERR;
    r->audio_loaded = 1;
    return G3N_OK;
}

/* EncodeAudioRequest (a whole clip of at most one window, max_samples: longer
 * clips are refused, never cut; the pipeline sends each 30 s window as its own
 * request) -> EncodeAudioReply, as the reference's feature extractor (batch of
 * one) and audio tower. */
static int audio_encode(audio_role *r, g3n_worker_call *call, const G3n__EncodeAudioRequest *q, g3n_error *err)
{
    double t0 = g3n_now_seconds();
    float *samples = NULL, *features = NULL, *tokens = NULL;
    uint8_t *mask = NULL, *padding = NULL, *frame_padding = NULL;
    int64_t count = 0, frames = 0;
    int rc = G3N_ERR;
    const int rate = r->feature_config.sampling_rate;
    if (q->stream_id && q->stream_id[0]) { /* a piece of a stream kept on this worker (audio_stream_table.h) */
        pthread_mutex_lock(&r->lock);
        int rc_stream = r->audio_streams ? G3N_OK
                                         : g3n_audio_stream_table_create(
                                               &r->audio_streams, r->features, &r->audio, r->audio_config.hidden_size,
                                               16, 600.0, r->feature_config.max_samples,
                                               r->feature_config.sampling_rate, err);
        if (rc_stream == G3N_OK)
            rc_stream = g3n_audio_stream_table_handle(r->audio_streams, call, q, err);
        pthread_mutex_unlock(&r->lock);
        return rc_stream;
    }
    if ((q->audio.len > 0) + (q->samples != NULL) + (q->features != NULL) != 1)
        return g3n_error_set(err, "encode_audio: give exactly one of audio bytes, samples, features"),
               g3n_role_bad_request(call, err);
    if (q->features) {
        int64_t fshape[2] = {-1, r->audio_config.input_feat_size};
        g3n_tensor fview, pview;
        if (g3n_wire_tensor_view(q->features, "encode_audio.features", G3N_DTYPE_F32, 2, fshape,
                                 (r->feature_config.max_samples / r->feature_config.hop_length + 1) *
                                     r->audio_config.input_feat_size,
                                 &fview, err) != G3N_OK)
            return g3n_role_bad_request(call, err);
        frames = fview.shape[0];
        if (frames < 1)
            return g3n_error_set(err, "encode_audio.features: no frames"), g3n_role_bad_request(call, err);
        features = malloc(sizeof(float) * (size_t)(frames * r->audio_config.input_feat_size));
        mask = malloc((size_t)frames);
        if (!features || !mask) {
            free(features);
            free(mask);
            return g3n_error_set(err, "encode_audio: out of memory");
        }
        memcpy(features, fview.data, sizeof(float) * (size_t)(frames * r->audio_config.input_feat_size));
        if (q->features_padding) {
            int64_t pshape[1] = {frames};
            if (g3n_wire_tensor_view(q->features_padding, "encode_audio.features_padding", G3N_DTYPE_U8, 1, pshape, 0,
                                     &pview, err) != G3N_OK) {
                free(features);
                free(mask);
                return g3n_role_bad_request(call, err);
            }
            for (int64_t f = 0; f < frames; f++)
                mask[f] = ((const uint8_t *)pview.data)[f] ? 0 : 1;
        } else {
            memset(mask, 1, (size_t)frames);
        }
        pthread_mutex_lock(&r->lock);
        goto encode;
    }
    if (q->audio.len > 0) {
        if (g3n_audio_decode_memory(q->audio.data, q->audio.len, "encode_audio.audio", rate, &samples, &count, err) !=
            G3N_OK)
            return g3n_role_bad_request(call, err);
        if (count > r->feature_config.max_samples) { /* never cut silently: the orchestrator sends windows */
            free(samples);
            return g3n_error_set(err,
                                 "encode_audio.audio: a clip of %.1f s is longer than one window of %.0f s "
                                 "(%lld samples): send it as windows (the pipeline splits longer clips)",
                                 (double)count / rate, (double)r->feature_config.max_samples / rate,
                                 (long long)r->feature_config.max_samples),
                   g3n_role_bad_request(call, err);
        }
    } else {
        g3n_tensor view;
        if (g3n_wire_tensor_view(q->samples, "encode_audio.samples", G3N_DTYPE_F32, 1, NULL,
                                 r->feature_config.max_samples, &view, err) != G3N_OK)
            return g3n_role_bad_request(call, err);
        count = view.shape[0];
        if (count < 1) /* shape [0]: no data at all (view.data is NULL) */
            return g3n_error_set(err, "encode_audio.samples: empty (no samples)"), g3n_role_bad_request(call, err);
        samples = malloc(sizeof(float) * (size_t)count);
        if (!samples)
            return g3n_error_set(err, "encode_audio: out of memory");
        memcpy(samples, view.data, sizeof(float) * (size_t)count);
    }
    const float *clips[1] = {samples};
    int64_t lengths[1] = {count};
    pthread_mutex_lock(&r->lock);
    if (g3n_audio_features_batch(r->features, clips, lengths, 1, &features, &mask, &frames, err) != G3N_OK) {
        g3n_role_bad_request(call, err);
        goto done;
    }
encode:;
    const int64_t token_count = g3n_audio_encoder_token_count(&r->audio_config, frames);
    frame_padding = malloc((size_t)frames);
    tokens = malloc(sizeof(float) * (size_t)(token_count * r->audio_config.hidden_size + 1));
    padding = malloc((size_t)token_count + 1);
    if (!frame_padding || !tokens || !padding) {
        g3n_error_set(err, "encode_audio: out of memory");
        goto done;
    }
    for (int64_t f = 0; f < frames; f++)
        frame_padding[f] = mask[f] ? 0 : 1;
    if (g3n_audio_encoder_encode(&r->audio, features, frame_padding, frames, tokens, padding, err) != G3N_OK)
        goto done;
    {
        G3n__Envelope env;
        G3n__EncodeAudioReply reply;
        g3n__envelope__init(&env);
        g3n__encode_audio_reply__init(&reply);
        g3n_wire_tensor t_tokens, t_padding;
        int64_t shape[2] = {token_count, r->audio_config.hidden_size};
        g3n_wire_tensor_borrow(&t_tokens, G3N_DTYPE_F32, 2, shape, tokens);
        g3n_wire_tensor_borrow(&t_padding, G3N_DTYPE_U8, 1, shape, padding);
        reply.tokens = &t_tokens.message;
        reply.padding = &t_padding.message;
        reply.final = 1;
        reply.seconds = g3n_now_seconds() - t0;
        reply.audio_seconds = count ? (double)count / rate
                                    : (double)frames * r->feature_config.hop_length / rate;
        env.body_case = G3N__ENVELOPE__BODY_ENCODE_AUDIO_REPLY;
        env.encode_audio_reply = &reply;
        rc = g3n_worker_call_send(call, &env, 0, err);
    }
done:
    pthread_mutex_unlock(&r->lock);
    free(samples);
    free(features);
    free(mask);
    free(frame_padding);
    free(tokens);
    free(padding);
    return rc;
}

static void audio_close(void *state)
{
    audio_role *r = state;
    if (!r)
        return;
    g3n_audio_stream_table_free(r->audio_streams);
    if (r->audio_loaded)
        g3n_audio_encoder_free(&r->audio);
    g3n_audio_features_free(r->features);
    g3n_audio_feature_config_free(&r->feature_config);
    pthread_mutex_destroy(&r->lock);
    free(r);
}

static int audio_role_open(void **state, g3n_weights *weights, const g3n_model_config *config,
                           const g3n_role_options *options, g3n_error *err)
{
    audio_role *r = calloc(1, sizeof(*r));
    if (!(*state = r))
        return g3n_error_set(err, "audio-encoder: out of memory");
    r->weights = weights;
    r->config = config;
    r->options = *options;
    pthread_mutex_init(&r->lock, NULL);
    return audio_open(r, err);
}

static int audio_handle(void *state, g3n_worker_call *call, const G3n__Envelope *q, g3n_error *err)
{
    if (q->body_case == G3N__ENVELOPE__BODY_ENCODE_AUDIO)
        return audio_encode(state, call, q->encode_audio, err);
    return g3n_role_unsupported(G3N_ROLE_AUDIO_ENCODER, call, q, err);
}

static int audio_capacity(const g3n_role_options *options)
{
    (void)options;
    return 1; /* one encoder: requests take turns (its OpenMP pool is the parallelism) */
}

const g3n_role_ops g3n_audio_role_ops = {
    .role = G3N_ROLE_AUDIO_ENCODER,
    .open = audio_role_open,
    .close = audio_close,
    .handle = audio_handle,
    .capacity = audio_capacity,
};
