/* audio_check.c - `g3n check` kind "audio": WAV through FFmpeg -> features and
 * masks for the batch [full clip, first part], then the encoder output and the
 * embed_audio soft tokens from the golden features (tests/fixtures/README.md). */
#include <cjson/cJSON.h>
#include <stdlib.h>
#include <string.h>

#include "audio_check.h"
#include "audio_config.h"
#include "audio_decode.h"
#include "audio_encoder.h"
#include "audio_features.h"
#include "json_util.h"
#include "multimodal_embedder.h"
#include "ops.h"

/* A golden tensor as owned contiguous f32 with the expected element count. */
static int golden_f32(g3n_check_case *c, const char *name, int64_t count, g3n_tensor *out, g3n_error *err)
{
    g3n_tensor view;
    if (g3n_check_golden(c, name, &view, err) != G3N_OK || g3n_tensor_to_f32(&view, out, err) != G3N_OK)
        return G3N_ERR;
    if (count >= 0 && g3n_tensor_numel(out) != count) {
        g3n_tensor_free(out);
        return g3n_error_set(err, "golden %s: %lld values, expected %lld", name, (long long)g3n_tensor_numel(&view),
                             (long long)count);
    }
    return G3N_OK;
}

static int compare_mask(g3n_check_case *c, const char *name, const uint8_t *mask, int64_t count, g3n_error *err)
{
    g3n_tensor golden;
    if (g3n_check_golden(c, name, &golden, err) != G3N_OK)
        return G3N_ERR;
    int64_t *values = malloc(sizeof(int64_t) * (size_t)count);
    if (values == NULL)
        return g3n_error_set(err, "out of memory");
    for (int64_t i = 0; i < count; i++)
        values[i] = mask[i];
    g3n_check_compare_exact(c, name, values, count, &golden);
    free(values);
    return G3N_OK;
}

/* The stated rel-L2 budget of a fast path (check.h of this service). */
static double fast_budget(g3n_precision precision)
{
    return precision == G3N_PRECISION_INT8 ? G3N_AUDIO_INT8_REL_L2 : G3N_AUDIO_BF16_REL_L2;
}

int g3n_check_kind_audio(g3n_check_case *c, g3n_error *err)
{
    return g3n_audio_check_case(c, G3N_PRECISION_F32, err);
}

int g3n_audio_check_case(g3n_check_case *c, g3n_precision precision, g3n_error *err)
{
    if (!c->has_config)
        return g3n_error_set(err, "%s: the audio case needs a config.json", c->case_dir);
    uint64_t seed;
    g3n_audio_config audio;
    if (g3n_check_seed(c, &seed, err) != G3N_OK || g3n_audio_config_parse(&audio, &c->config, err) != G3N_OK)
        return G3N_ERR;
    const char *wave_name = g3n_json_get_string(c->case_json, "waveform", "speech.wav");
    const cJSON *clip_json = cJSON_GetObjectItemCaseSensitive(c->case_json, "clip_samples");
    if (!cJSON_IsArray(clip_json) || cJSON_GetArraySize(clip_json) < 1 || cJSON_GetArraySize(clip_json) > 16)
        return g3n_error_set(err, "%s: case.json needs \"clip_samples\" (1 to 16 lengths)", c->case_dir);
    int batch = cJSON_GetArraySize(clip_json);
    int64_t lengths[16];

    int rc = G3N_ERR;
    float *wave = NULL, *features = NULL, *encoded = NULL, *embeds = NULL;
    uint8_t *mask = NULL, *encoded_padding = NULL;
    int64_t samples = 0, frames = 0;
    g3n_audio_features *extractor = NULL;
    g3n_weights *weights = NULL;
    g3n_audio_encoder encoder;
    g3n_multimodal_embedder embedder;
    g3n_tensor golden_wave = {0}, golden_features = {0}, golden_mask = {0};
    memset(&encoder, 0, sizeof(encoder));
    g3n_audio_feature_config fc;
    g3n_audio_feature_config_default(&fc);

    /* 1. decode the WAV through FFmpeg (16 kHz mono f32) */
    char path[2048];
    g3n_check_case_file(c, wave_name, path, sizeof(path));
    if (g3n_audio_decode_file(path, fc.sampling_rate, &wave, &samples, err) != G3N_OK)
        goto done;
    if (golden_f32(c, "waveform_full", -1, &golden_wave, err) != G3N_OK)
        goto done;
    g3n_check_compare_f32(c, "waveform_full", wave, samples, &golden_wave, -1.0, 0.0);
    for (int b = 0; b < batch; b++) {
        const cJSON *v = cJSON_GetArrayItem(clip_json, b);
        lengths[b] = cJSON_IsNumber(v) ? (int64_t)v->valuedouble : -1;
        if (lengths[b] < 1 || lengths[b] > samples) {
            g3n_error_set(err, "%s: clip_samples[%d] is not within the %lld decoded samples", c->case_dir, b,
                          (long long)samples);
            goto done;
        }
    }

    /* 2. features and masks of the batch (every clip is a prefix of the waveform) */
    if (g3n_audio_features_create(&extractor, &fc, err) != G3N_OK)
        goto done;
    const float *clips[16];
    for (int b = 0; b < batch; b++)
        clips[b] = wave;
    if (g3n_audio_features_batch(extractor, clips, lengths, batch, &features, &mask, &frames, err) != G3N_OK)
        goto done;
    int64_t feature_count = batch * frames * fc.feature_size;
    if (golden_f32(c, "input_features", -1, &golden_features, err) != G3N_OK)
        goto done;
    g3n_check_compare_f32(c, "input_features", features, feature_count, &golden_features, -1.0,
                          g3n_check_tolerance(c, "input_features_max_abs", 2e-3));
    if (compare_mask(c, "input_features_mask", mask, batch * frames, err) != G3N_OK)
        goto done;
    if (g3n_tensor_numel(&golden_features) != feature_count) {
        g3n_error_set(err, "input_features: golden has %lld values, ours %lld; cannot run the encoder on them",
                      (long long)g3n_tensor_numel(&golden_features), (long long)feature_count);
        goto done;
    }

    /* 3. the encoder on the golden features and mask */
    if (golden_f32(c, "input_features_mask", batch * frames, &golden_mask, err) != G3N_OK)
        goto done;
    if (g3n_weights_open_synth(&weights, seed, G3N_DTYPE_BF16, err) != G3N_OK ||
        g3n_audio_encoder_load_precision(&encoder, &audio, weights, precision, err) != G3N_OK)
        goto done;
    int64_t tokens = g3n_audio_encoder_token_count(&audio, frames);
    encoded = malloc(sizeof(float) * (size_t)(batch * tokens * audio.hidden_size));
    encoded_padding = malloc((size_t)(batch * tokens));
    uint8_t *padding = malloc((size_t)frames);
    if (encoded == NULL || encoded_padding == NULL || padding == NULL) {
        free(padding);
        g3n_error_set(err, "out of memory");
        goto done;
    }
    const float *gf = golden_features.data, *gm = golden_mask.data;
    double start = g3n_now_seconds();
    for (int b = 0; b < batch; b++) {
        for (int64_t t = 0; t < frames; t++)
            padding[t] = gm[b * frames + t] == 0.0f; /* the model gets ~input_features_mask */
        if (g3n_audio_encoder_encode(&encoder, gf + b * frames * fc.feature_size, padding, frames,
                                     encoded + b * tokens * audio.hidden_size, encoded_padding + b * tokens,
                                     err) != G3N_OK) {
            free(padding);
            goto done;
        }
    }
    free(padding);
    double seconds = g3n_now_seconds() - start;
    g3n_tensor golden;
    if (g3n_check_golden(c, "encoder_output", &golden, err) != G3N_OK)
        goto done;
    /* the exact path meets the case's tolerance, bf16 compute its stated budget */
    const int exact = precision == G3N_PRECISION_F32;
    g3n_check_compare_f32(c, "encoder_output", encoded, batch * tokens * audio.hidden_size, &golden,
                          exact ? g3n_check_tolerance(c, "encoder_output_rel_l2", 1e-4) : fast_budget(precision), -1.0);
    if (compare_mask(c, "encoder_output_padding_mask", encoded_padding, batch * tokens, err) != G3N_OK)
        goto done;
    fprintf(c->out, "  (encoder: %d clips, %lld frames each, %.3f s, %s compute)\n", batch, (long long)frames, seconds,
            g3n_precision_name(precision));

    /* 4. embed_audio soft tokens */
    if (g3n_multimodal_embedder_load(&embedder, weights, "model.embed_audio", audio.hidden_size,
                                     c->config.text.hidden_size, audio.vocab_size, audio.vocab_offset,
                                     audio.rms_norm_eps, err) != G3N_OK)
        goto done;
    embeds = malloc(sizeof(float) * (size_t)(batch * tokens * c->config.text.hidden_size));
    if (embeds == NULL) {
        g3n_error_set(err, "out of memory");
        goto done;
    }
    if (g3n_multimodal_embedder_soft(&embedder, encoded, batch * tokens, embeds, err) != G3N_OK)
        goto done;
    if (g3n_check_golden(c, "audio_embeds", &golden, err) != G3N_OK)
        goto done;
    g3n_check_compare_f32(c, "audio_embeds", embeds, batch * tokens * c->config.text.hidden_size, &golden,
                          exact ? g3n_check_tolerance(c, "audio_embeds_rel_l2", 1e-4) : fast_budget(precision), -1.0);
    rc = G3N_OK;
done:
    free(wave);
    free(features);
    free(mask);
    free(encoded);
    free(encoded_padding);
    free(embeds);
    g3n_tensor_free(&golden_wave);
    g3n_tensor_free(&golden_features);
    g3n_tensor_free(&golden_mask);
    g3n_audio_encoder_free(&encoder);
    g3n_weights_close(weights);
    g3n_audio_features_free(extractor);
    g3n_audio_feature_config_free(&fc);
    return rc;
}
