/* The `multimodal` check kind, in one process: the vision tower on the
 * image-preprocess pixels, the audio encoder on the golden log-mel features,
 * the embedder's merge into the prompt (spec §5.2), then the language model:
 * teacher-forced logits over input_ids, and the cached greedy decode from the
 * prompt (step logits and tokens). */
#include <cjson/cJSON.h>
#include <stdlib.h>
#include <string.h>

#include "audio_config.h"
#include "audio_encoder.h"
#include "embedder.h"
#include "generate.h"
#include "json_util.h"
#include "multimodal_check.h"
#include "text_model.h"
#include "vision_encoder.h"

typedef struct multimodal_run {
    g3n_weights *weights;
    g3n_vision_encoder *vision;
    g3n_audio_config audio_config;
    g3n_audio_encoder audio;
    g3n_embedder embedder;
    g3n_text_model model;
    g3n_text_session *session;
    g3n_tensor pixel_values, features;
    float *tower_tokens, *audio_tokens, *embeds, *per_layer, *logits;
    uint8_t *feature_padding, *audio_padding;
    int32_t *ids;
} multimodal_run;

static void run_free(multimodal_run *r)
{
    g3n_text_session_free(r->session);
    g3n_text_model_free(&r->model);
    g3n_audio_encoder_free(&r->audio);
    g3n_vision_encoder_free(r->vision);
    g3n_weights_close(r->weights);
    g3n_tensor_free(&r->pixel_values);
    g3n_tensor_free(&r->features);
    free(r->tower_tokens);
    free(r->audio_tokens);
    free(r->embeds);
    free(r->per_layer);
    free(r->logits);
    free(r->feature_padding);
    free(r->audio_padding);
    free(r->ids);
}

/* Embeds positions [begin, end) of ids with the media and runs them through the session. */
static int forward_range(multimodal_run *r, const int32_t *ids, int64_t count, const g3n_media_tokens *media,
                         int media_count, int64_t begin, int64_t end, float *logits, int all_logits, g3n_error *err)
{
    if (g3n_embedder_build(&r->embedder, ids, count, media, media_count, begin, end, r->embeds, r->per_layer, err) !=
        G3N_OK)
        return G3N_ERR;
    return g3n_text_session_forward(r->session, r->embeds, r->per_layer, end - begin, logits, all_logits, err);
}

static int run_case(g3n_check_case *c, multimodal_run *r, g3n_error *err)
{
    uint64_t seed;
    if (!c->has_config)
        return g3n_error_set(err, "%s: no config.json", c->case_dir);
    if (g3n_check_seed(c, &seed, err) != G3N_OK)
        return G3N_ERR;
    const g3n_model_config *config = &c->config;
    if (g3n_weights_open_synth(&r->weights, seed, G3N_DTYPE_BF16, err) != G3N_OK)
        return G3N_ERR;
    /* media: pixels from the image-preprocess case, features from the golden */
    const char *pixels = g3n_json_get_string(c->case_json, "pixel_values", NULL);
    if (!pixels)
        return g3n_error_set(err, "%s: case.json names no pixel_values", c->case_dir);
    if (g3n_check_resolve_reference(c, pixels, &r->pixel_values, err) != G3N_OK)
        return G3N_ERR;
    g3n_tensor golden_features, golden_mask, golden_ids, golden_logits, golden_steps;
    if (g3n_check_golden(c, "input_features", &golden_features, err) != G3N_OK ||
        g3n_check_golden(c, "input_features_mask", &golden_mask, err) != G3N_OK ||
        g3n_check_golden(c, "input_ids", &golden_ids, err) != G3N_OK ||
        g3n_check_golden(c, "logits", &golden_logits, err) != G3N_OK ||
        g3n_check_golden(c, "decode_step_logits", &golden_steps, err) != G3N_OK)
        return G3N_ERR;
    if (g3n_tensor_to_f32(&golden_features, &r->features, err) != G3N_OK)
        return G3N_ERR;
    const cJSON *prompt_item = cJSON_GetObjectItemCaseSensitive(c->case_json, "prompt_len");
    if (!cJSON_IsNumber(prompt_item))
        return g3n_error_set(err, "%s: case.json has no prompt_len", c->case_dir);
    const int64_t prompt_len = (int64_t)prompt_item->valuedouble;
    const int64_t total = g3n_tensor_numel(&golden_ids);
    const int64_t steps = golden_steps.shape[0];
    const int64_t vocab = config->text.vocab_size;
    if (prompt_len <= 0 || prompt_len + steps > total || golden_ids.dtype != G3N_DTYPE_I32)
        return g3n_error_set(err, "%s: inconsistent prompt_len / input_ids / decode_step_logits", c->case_dir);
    r->ids = malloc(sizeof(int32_t) * (size_t)total);
    if (!r->ids)
        return g3n_error_set(err, "out of memory");
    memcpy(r->ids, golden_ids.data, sizeof(int32_t) * (size_t)total);

    /* vision tower */
    if (g3n_vision_encoder_load(&r->vision, config, r->weights, err) != G3N_OK)
        return G3N_ERR;
    const g3n_vision_config *vision_config = g3n_vision_encoder_config(r->vision);
    const int64_t image_tokens = config->vision_soft_tokens_per_image;
    r->tower_tokens = malloc(sizeof(float) * (size_t)(image_tokens * vision_config->hidden_size));
    if (!r->tower_tokens)
        return g3n_error_set(err, "out of memory");
    if (g3n_vision_encoder_tower(r->vision, r->pixel_values.data, 1, (int)r->pixel_values.shape[2],
                                 (int)r->pixel_values.shape[3], r->tower_tokens, err) != G3N_OK)
        return G3N_ERR;

    /* audio encoder on the golden features (mask: 1 = valid frame) */
    if (g3n_audio_config_parse(&r->audio_config, config, err) != G3N_OK ||
        g3n_audio_encoder_load(&r->audio, &r->audio_config, r->weights, err) != G3N_OK)
        return G3N_ERR;
    const int64_t frames = golden_features.shape[1];
    const int64_t audio_count = g3n_audio_encoder_token_count(&r->audio_config, frames);
    r->feature_padding = malloc((size_t)frames);
    r->audio_tokens = malloc(sizeof(float) * (size_t)(audio_count * r->audio_config.hidden_size));
    r->audio_padding = malloc((size_t)audio_count);
    if (!r->feature_padding || !r->audio_tokens || !r->audio_padding)
        return g3n_error_set(err, "out of memory");
    for (int64_t f = 0; f < frames; f++)
        r->feature_padding[f] = ((const uint8_t *)golden_mask.data)[f] ? 0 : 1;
    if (g3n_audio_encoder_encode(&r->audio, r->features.data, r->feature_padding, frames, r->audio_tokens,
                                 r->audio_padding, err) != G3N_OK)
        return G3N_ERR;

    /* embedder and language model */
    if (g3n_embedder_load(&r->embedder, r->weights, config, err) != G3N_OK ||
        g3n_text_model_load(&r->model, r->weights, config, err) != G3N_OK)
        return G3N_ERR;
    g3n_text_session_params params = g3n_text_session_default_params(&r->model);
    params.max_positions = total + 8;
    if (g3n_text_session_create(&r->session, &r->model, &params, err) != G3N_OK)
        return G3N_ERR;
    const g3n_media_tokens media[2] = {
        {G3N_MEDIA_IMAGE, r->tower_tokens, image_tokens, vision_config->hidden_size, NULL},
        {G3N_MEDIA_AUDIO, r->audio_tokens, audio_count, r->audio_config.hidden_size, r->audio_padding},
    };
    const int64_t chunk = 64;
    const int64_t width = r->embedder.per_layer_width;
    r->embeds = malloc(sizeof(float) * (size_t)(chunk * config->text.hidden_size));
    r->per_layer = malloc(sizeof(float) * (size_t)(chunk * width));
    r->logits = malloc(sizeof(float) * (size_t)(total * vocab));
    if (!r->embeds || !r->per_layer || !r->logits)
        return g3n_error_set(err, "out of memory");

    /* 1. teacher-forced logits over all of input_ids, chunk by chunk */
    for (int64_t begin = 0; begin < total; begin += chunk) {
        int64_t end = begin + chunk < total ? begin + chunk : total;
        if (forward_range(r, r->ids, total, media, 2, begin, end, r->logits + begin * vocab, 1, err) != G3N_OK)
            return G3N_ERR;
    }
    g3n_check_compare_f32(c, "logits", r->logits, total * vocab, &golden_logits,
                          g3n_check_tolerance(c, "logits_rel_l2", 3e-3), g3n_check_tolerance(c, "logits_max_abs", 3e-2));

    /* 2. cached greedy decode from the prompt */
    g3n_text_session_reset(r->session);
    float *step_logits = r->logits; /* reuse: [steps, vocab] */
    float *last = r->logits + steps * vocab;
    for (int64_t begin = 0; begin < prompt_len; begin += chunk) {
        int64_t end = begin + chunk < prompt_len ? begin + chunk : prompt_len;
        if (forward_range(r, r->ids, prompt_len, media, 2, begin, end, last, 0, err) != G3N_OK)
            return G3N_ERR;
    }
    int64_t *tokens = malloc(sizeof(int64_t) * (size_t)steps);
    if (!tokens)
        return g3n_error_set(err, "out of memory");
    for (int64_t s = 0; s < steps; s++) {
        memcpy(step_logits + s * vocab, last, sizeof(float) * (size_t)vocab);
        int32_t next = g3n_argmax(last, config->text.vocab_size_per_layer_input);
        tokens[s] = next;
        if (s + 1 < steps && forward_range(r, &next, 1, NULL, 0, 0, 1, last, 0, err) != G3N_OK) {
            free(tokens);
            return G3N_ERR;
        }
    }
    g3n_check_compare_f32(c, "decode_step_logits", step_logits, steps * vocab, &golden_steps,
                          g3n_check_tolerance(c, "decode_step_logits_rel_l2", 3e-3),
                          g3n_check_tolerance(c, "decode_step_logits_max_abs", 3e-2));
    g3n_tensor continuation = golden_ids;
    continuation.data = (int32_t *)golden_ids.data + prompt_len;
    continuation.shape[0] = steps;
    g3n_check_compare_exact(c, "greedy_tokens", tokens, steps, &continuation);
    free(tokens);
    return G3N_OK;
}

int g3n_check_kind_multimodal(g3n_check_case *c, g3n_error *err)
{
    multimodal_run run;
    memset(&run, 0, sizeof(run));
    int status = run_case(c, &run, err);
    run_free(&run);
    return status;
}
