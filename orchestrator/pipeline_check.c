/* pipeline_check.c - fixture cases through the transport (pipeline_check.h). */
#include "pipeline_check.h"

#include <cjson/cJSON.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "json_util.h"
#include "pipeline.h"

typedef struct check_run {
    float *prompt_logits; /* [prompt_len, vocab] */
    float *step_logits;   /* [steps, vocab] */
    int64_t *tokens;      /* [steps] */
    int64_t prompt_len, steps, vocab, got_steps, got_prompt_rows;
} check_run;

static void on_prompt_logits(void *user, const float *logits, int64_t rows, int64_t vocab)
{
    check_run *r = user;
    if (rows == r->prompt_len && vocab == r->vocab) {
        memcpy(r->prompt_logits, logits, sizeof(float) * (size_t)(rows * vocab));
        r->got_prompt_rows = rows;
    }
}

static int on_token(void *user, int64_t step, int32_t token, const float *logits, int64_t vocab)
{
    check_run *r = user;
    if (step < r->steps && logits && vocab == r->vocab) {
        memcpy(r->step_logits + step * vocab, logits, sizeof(float) * (size_t)vocab);
        r->tokens[step] = token;
        r->got_steps = step + 1;
    }
    return 0;
}

int g3n_pipeline_check_case(g3n_check_case *c, g3n_client *client, g3n_error *err)
{
    if (!c->has_config)
        return g3n_error_set(err, "%s: no config.json", c->case_dir);
    int multimodal = strcmp(c->kind, "multimodal") == 0;
    if (!multimodal && strcmp(c->kind, "text") != 0)
        return g3n_error_set(err, "%s: kind '%s' does not run through the pipeline (text and multimodal do)",
                             c->case_dir, c->kind);
    g3n_tensor golden_ids, golden_logits, golden_steps;
    if (g3n_check_golden(c, "input_ids", &golden_ids, err) != G3N_OK ||
        g3n_check_golden(c, "logits", &golden_logits, err) != G3N_OK ||
        g3n_check_golden(c, "decode_step_logits", &golden_steps, err) != G3N_OK)
        return G3N_ERR;
    const cJSON *prompt_item = cJSON_GetObjectItemCaseSensitive(c->case_json, "prompt_len");
    if (!cJSON_IsNumber(prompt_item))
        return g3n_error_set(err, "%s: case.json has no prompt_len", c->case_dir);
    check_run run;
    memset(&run, 0, sizeof(run));
    run.prompt_len = (int64_t)prompt_item->valuedouble;
    run.steps = golden_steps.shape[0];
    run.vocab = c->config.text.vocab_size;
    const int64_t total = g3n_tensor_numel(&golden_ids);
    if (golden_ids.dtype != G3N_DTYPE_I32 || run.prompt_len <= 0 || run.prompt_len + run.steps > total ||
        golden_logits.ndim != 2 || golden_logits.shape[1] != run.vocab)
        return g3n_error_set(err, "%s: inconsistent prompt_len / input_ids / logits", c->case_dir);

    g3n_pipeline_media media;
    memset(&media, 0, sizeof(media));
    g3n_tensor pixels, features, mask;
    memset(&pixels, 0, sizeof(pixels));
    memset(&features, 0, sizeof(features));
    uint8_t *padding = NULL;
    int rc = G3N_ERR;
    run.prompt_logits = malloc(sizeof(float) * (size_t)(run.prompt_len * run.vocab));
    run.step_logits = malloc(sizeof(float) * (size_t)(run.steps * run.vocab));
    run.tokens = calloc((size_t)run.steps, sizeof(int64_t));
    if (!run.prompt_logits || !run.step_logits || !run.tokens) {
        g3n_error_set(err, "out of memory");
        goto done;
    }
    if (multimodal) {
        /* the golden inputs of the encoders, as tensors on the wire */
        const char *pixel_ref = g3n_json_get_string(c->case_json, "pixel_values", NULL);
        if (!pixel_ref) {
            g3n_error_set(err, "%s: case.json names no pixel_values", c->case_dir);
            goto done;
        }
        if (g3n_check_resolve_reference(c, pixel_ref, &pixels, err) != G3N_OK ||
            g3n_check_golden(c, "input_features_mask", &mask, err) != G3N_OK)
            goto done;
        g3n_tensor golden_features;
        if (g3n_check_golden(c, "input_features", &golden_features, err) != G3N_OK ||
            g3n_tensor_to_f32(&golden_features, &features, err) != G3N_OK)
            goto done;
        if (pixels.ndim != 4 || pixels.shape[0] != 1 || features.ndim != 3 || features.shape[0] != 1 ||
            g3n_tensor_numel(&mask) != features.shape[1]) {
            g3n_error_set(err, "%s: unexpected pixel_values / input_features shapes", c->case_dir);
            goto done;
        }
        const int64_t frames = features.shape[1];
        padding = malloc((size_t)frames);
        if (!padding) {
            g3n_error_set(err, "out of memory");
            goto done;
        }
        for (int64_t f = 0; f < frames; f++)
            padding[f] = ((const uint8_t *)mask.data)[f] ? 0 : 1;
        G3n__Envelope image_env, audio_env;
        G3n__EncodeImageRequest image;
        G3n__EncodeAudioRequest audio;
        g3n_wire_tensor t_pixels, t_features, t_padding;
        g3n__envelope__init(&image_env);
        g3n__envelope__init(&audio_env);
        g3n__encode_image_request__init(&image);
        g3n__encode_audio_request__init(&audio);
        g3n_wire_tensor_borrow(&t_pixels, G3N_DTYPE_F32, 3, pixels.shape + 1, pixels.data);
        image.pixel_values = &t_pixels.message;
        image_env.body_case = G3N__ENVELOPE__BODY_ENCODE_IMAGE;
        image_env.encode_image = &image;
        g3n_wire_tensor_borrow(&t_features, G3N_DTYPE_F32, 2, features.shape + 1, features.data);
        int64_t pshape[1] = {frames};
        g3n_wire_tensor_borrow(&t_padding, G3N_DTYPE_U8, 1, pshape, padding);
        audio.features = &t_features.message;
        audio.features_padding = &t_padding.message;
        audio_env.body_case = G3N__ENVELOPE__BODY_ENCODE_AUDIO;
        audio_env.encode_audio = &audio;
        G3n__Envelope *requests[2] = {&image_env, &audio_env};
        const char *names[2] = {"pixel_values", "input_features"};
        if (g3n_pipeline_encode_requests(client, requests, names, 2, &media, NULL, NULL, err) != G3N_OK)
            goto done;
    }
    g3n_pipeline_generate_params params = g3n_pipeline_default_params(&c->config);
    params.max_new_tokens = run.steps;
    params.num_eos_ids = 0; /* the reference ran all steps */
    params.want_logits = 1;
    params.want_prompt_logits = 1;
    params.on_prompt_logits = on_prompt_logits;
    params.on_token = on_token;
    params.user = &run;
    g3n_pipeline_stats stats;
    if (g3n_pipeline_generate(client, golden_ids.data, run.prompt_len, &media, &params, &stats, err) != G3N_OK)
        goto done;
    if (run.got_prompt_rows != run.prompt_len || run.got_steps != run.steps) {
        g3n_error_set(err, "the pipeline gave %lld prompt rows and %lld steps, expected %lld and %lld",
                      (long long)run.got_prompt_rows, (long long)run.got_steps, (long long)run.prompt_len,
                      (long long)run.steps);
        goto done;
    }
    double rel = g3n_check_tolerance(c, "logits_rel_l2", 3e-3), abs_ = g3n_check_tolerance(c, "logits_max_abs", 3e-2);
    g3n_tensor prompt_rows;
    int64_t rows_shape[2] = {run.prompt_len, run.vocab};
    g3n_tensor_view(&prompt_rows, golden_logits.dtype, 2, rows_shape, golden_logits.data);
    g3n_check_compare_f32(c, "pipeline.prompt_logits", run.prompt_logits, run.prompt_len * run.vocab, &prompt_rows,
                          rel, abs_);
    g3n_check_compare_f32(c, "pipeline.decode_step_logits", run.step_logits, run.steps * run.vocab, &golden_steps,
                          g3n_check_tolerance(c, "decode_step_logits_rel_l2", 3e-3),
                          g3n_check_tolerance(c, "decode_step_logits_max_abs", 3e-2));
    g3n_tensor expected_tokens;
    int64_t tshape[1] = {run.steps};
    g3n_tensor_view(&expected_tokens, G3N_DTYPE_I32, 1, tshape, (int32_t *)golden_ids.data + run.prompt_len);
    g3n_check_compare_exact(c, "pipeline.tokens", run.tokens, run.steps, &expected_tokens);
    g3n_check_record(c, "pipeline.route", 1, "prefill+decode on %s; encode %.3f s, prefill %.3f s, decode %.1f tok/s",
                     stats.decoder, media.seconds, stats.prefill_seconds + stats.embed_seconds,
                     stats.generated_tokens > 1 ? (double)(stats.generated_tokens - 1) / (stats.decode_seconds + 1e-12)
                                                : 0.0);
    rc = G3N_OK;
done:
    g3n_pipeline_media_free(&media);
    g3n_tensor_free(&pixels);
    g3n_tensor_free(&features);
    free(padding);
    free(run.prompt_logits);
    free(run.step_logits);
    free(run.tokens);
    return rc;
}
