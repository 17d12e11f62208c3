#include "embedder.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "ops.h"

int g3n_embedder_load(g3n_embedder *e, g3n_weights *weights, const g3n_model_config *config, g3n_error *err)
{
    memset(e, 0, sizeof(*e));
    if (g3n_text_embedder_load(&e->text, weights, &config->text, err) != G3N_OK)
        return G3N_ERR;
    const int64_t text_hidden = config->text.hidden_size;
    e->hidden_size = text_hidden;
    e->per_layer_width = (int64_t)config->text.num_hidden_layers * config->text.hidden_size_per_layer_input;
    e->vocab_size = config->text.vocab_size;
    e->image_token_id = config->image_token_id;
    e->audio_token_id = config->audio_token_id;
    e->audio_pad_id = (int32_t)(config->text.vocab_size - 1);
    e->vision_soft_tokens_per_image = config->vision_soft_tokens_per_image;
    e->audio_soft_tokens_per_image = config->audio_soft_tokens_per_image;
    e->vision_token_scale = (float)sqrt((double)config->vision_hidden_size);
    if (config->vision_json) {
        if (g3n_multimodal_embedder_load(&e->vision, weights, "model.embed_vision", config->vision_hidden_size,
                                         text_hidden, config->vision_vocab_size, config->vision_vocab_offset,
                                         config->vision_rms_norm_eps, err) != G3N_OK)
            return G3N_ERR;
        e->has_vision = 1;
    }
    if (config->audio_json) {
        if (g3n_multimodal_embedder_load(&e->audio, weights, "model.embed_audio", config->audio_hidden_size,
                                         text_hidden, config->audio_vocab_size, config->audio_vocab_offset,
                                         config->audio_rms_norm_eps, err) != G3N_OK)
            return G3N_ERR;
        e->has_audio = 1;
    }
    return G3N_OK;
}

int g3n_embedder_image_tokens(const g3n_embedder *e, const float *tower_tokens, int64_t count, float *out,
                              g3n_error *err)
{
    if (!e->has_vision)
        return g3n_error_set(err, "this model has no vision embedder");
    const int64_t width = e->vision.multimodal_hidden;
    float *scaled = malloc(sizeof(float) * (size_t)(count * width + 1));
    if (!scaled)
        return g3n_error_set(err, "out of memory");
    for (int64_t i = 0; i < count * width; i++)
        scaled[i] = tower_tokens[i] * e->vision_token_scale;
    int status = g3n_multimodal_embedder_soft(&e->vision, scaled, count, out, err);
    free(scaled);
    return status;
}

int g3n_embedder_audio_tokens(const g3n_embedder *e, const float *encoder_output, const uint8_t *padding_mask,
                              int64_t count, float *out, g3n_error *err)
{
    if (!e->has_audio)
        return g3n_error_set(err, "this model has no audio embedder");
    const int64_t slots = e->audio_soft_tokens_per_image, d = e->hidden_size;
    if (count > slots)
        return g3n_error_set(err, "audio clip gives %lld soft tokens, more than audio_soft_tokens_per_image = %lld",
                             (long long)count, (long long)slots);
    if (count > 0 && g3n_multimodal_embedder_soft(&e->audio, encoder_output, count, out, err) != G3N_OK)
        return G3N_ERR;
    float *pad = malloc(sizeof(float) * (size_t)d);
    if (!pad)
        return g3n_error_set(err, "out of memory");
    if (g3n_multimodal_embedder_hard(&e->audio, &e->audio_pad_id, 1, pad, err) != G3N_OK) {
        free(pad);
        return G3N_ERR;
    }
    for (int64_t t = 0; t < slots; t++)
        if (t >= count || (padding_mask && padding_mask[t]))
            memcpy(out + t * d, pad, sizeof(float) * (size_t)d);
    free(pad);
    return G3N_OK;
}


int g3n_embedder_build(const g3n_embedder *e, const int32_t *ids, int64_t count, const g3n_media_tokens *media,
                       int media_count, int64_t begin, int64_t end, float *inputs_embeds, float *per_layer_inputs,
                       g3n_error *err)
{
    if (begin < 0 || end > count || begin > end)
        return g3n_error_set(err, "embed range [%lld, %lld) outside a prompt of %lld tokens", (long long)begin,
                             (long long)end, (long long)count);
    const int64_t d = e->hidden_size, n = end - begin;
    for (int64_t t = 0; t < count; t++)
        if (ids[t] < 0 || ids[t] >= e->vocab_size)
            return g3n_error_set(err, "token id %d at position %lld is outside the vocabulary of %lld", ids[t],
                                 (long long)t, (long long)e->vocab_size);
    /* Check placeholders against media: image runs and audio runs, in order. */
    int64_t image_placeholders = 0, audio_placeholders = 0, images = 0, audios = 0;
    for (int64_t t = 0; t < count; t++) {
        image_placeholders += ids[t] == e->image_token_id;
        audio_placeholders += ids[t] == e->audio_token_id;
    }
    for (int m = 0; m < media_count; m++) {
        if (media[m].kind == G3N_MEDIA_IMAGE) {
            if (media[m].count != e->vision_soft_tokens_per_image || !e->has_vision ||
                media[m].width != e->vision.multimodal_hidden)
                return g3n_error_set(err, "image %d has [%lld, %lld] tokens, expected [%lld, %lld]", m,
                                     (long long)media[m].count, (long long)media[m].width,
                                     (long long)e->vision_soft_tokens_per_image,
                                     (long long)(e->has_vision ? e->vision.multimodal_hidden : 0));
            images++;
        } else {
            if (!e->has_audio || media[m].width != e->audio.multimodal_hidden)
                return g3n_error_set(err, "audio clip %d has width %lld, expected %lld", m, (long long)media[m].width,
                                     (long long)(e->has_audio ? e->audio.multimodal_hidden : 0));
            audios++;
        }
    }
    if (image_placeholders != images * e->vision_soft_tokens_per_image)
        return g3n_error_set(err, "the prompt has %lld image placeholders for %lld image(s) of %lld tokens",
                             (long long)image_placeholders, (long long)images,
                             (long long)e->vision_soft_tokens_per_image);
    if (audio_placeholders != audios * e->audio_soft_tokens_per_image)
        return g3n_error_set(err, "the prompt has %lld audio placeholders for %lld clip(s) of %lld tokens",
                             (long long)audio_placeholders, (long long)audios,
                             (long long)e->audio_soft_tokens_per_image);

    /* 1. text embeddings; hard multimodal ids through their embedders */
    if (g3n_text_embedder_embed_tokens(&e->text, ids + begin, n, inputs_embeds, err) != G3N_OK)
        return G3N_ERR;
    for (int64_t t = 0; t < n; t++) {
        int32_t id = ids[begin + t];
        const g3n_multimodal_embedder *hard = NULL;
        if (e->has_vision && id >= e->vision.vocab_offset && id < e->vision.vocab_offset + e->vision.vocab_size)
            hard = &e->vision;
        else if (e->has_audio && id >= e->audio.vocab_offset && id < e->audio.vocab_offset + e->audio.vocab_size)
            hard = &e->audio;
        if (hard && g3n_multimodal_embedder_hard(hard, &id, 1, inputs_embeds + t * d, err) != G3N_OK)
            return G3N_ERR;
    }

    /* 2. media soft tokens into their placeholders (only the media that reach [begin, end)) */
    int64_t image_seen = 0, audio_seen = 0; /* placeholders before the current position */
    int image_index = -1, audio_index = -1;
    float *soft = NULL;
    int soft_media = -1;
    int status = G3N_OK;
    for (int64_t t = 0; t < end && status == G3N_OK; t++) {
        int32_t id = ids[t];
        int is_image = id == e->image_token_id, is_audio = id == e->audio_token_id;
        if (!is_image && !is_audio)
            continue;
        int64_t slots = is_image ? e->vision_soft_tokens_per_image : e->audio_soft_tokens_per_image;
        int64_t *seen = is_image ? &image_seen : &audio_seen;
        int *index = is_image ? &image_index : &audio_index;
        int64_t row = *seen % slots;
        if (row == 0) { /* the next media item of this kind */
            int m = *index + 1;
            while (m < media_count && media[m].kind != (is_image ? G3N_MEDIA_IMAGE : G3N_MEDIA_AUDIO))
                m++;
            *index = m;
        }
        (*seen)++;
        if (t < begin)
            continue;
        const int m = *index;
        if (soft_media != m) {
            free(soft);
            soft = malloc(sizeof(float) * (size_t)(slots * d));
            if (!soft) {
                status = g3n_error_set(err, "out of memory");
                break;
            }
            soft_media = m;
            status = is_image ? g3n_embedder_image_tokens(e, media[m].tokens, media[m].count, soft, err)
                              : g3n_embedder_audio_tokens(e, media[m].tokens, media[m].padding_mask, media[m].count,
                                                          soft, err);
            if (status != G3N_OK)
                break;
        }
        memcpy(inputs_embeds + (t - begin) * d, soft + row * d, sizeof(float) * (size_t)d);
    }
    free(soft);
    if (status != G3N_OK)
        return G3N_ERR;

    /* 3. per-layer inputs from the merged embeddings */
    float *tokens = malloc(sizeof(float) * (size_t)(n * e->per_layer_width + 1));
    if (!tokens)
        return g3n_error_set(err, "out of memory");
    g3n_text_embedder_per_layer_tokens(&e->text, ids + begin, n, tokens);
    g3n_text_embedder_project_per_layer(&e->text, inputs_embeds, tokens, n, per_layer_inputs);
    free(tokens);
    return G3N_OK;
}

int g3n_embedder_select_weights(g3n_embedder *e, g3n_weight_format format, g3n_error *err)
{
    const int dtype = g3n_weight_format_dtype(format);
    g3n_matrix *projection = &e->text.per_layer_model_projection;
    if (dtype < 0 || e->projection_storage || projection->data == NULL || projection->rows < 16 ||
        !g3n_quant_supported((g3n_dtype)dtype, projection->cols))
        return G3N_OK; /* as stored (the decoder's cache keeps a matrix it cannot quantise as stored, too) */
    void *storage =
        g3n_aligned_alloc(g3n_quant_row_bytes((g3n_dtype)dtype, projection->cols) * (size_t)projection->rows);
    if (storage == NULL)
        return g3n_error_set(err, "embedder: out of memory for the %s per_layer_model_projection",
                             g3n_weight_format_name(format));
    *projection = g3n_quantize_matrix(projection, (g3n_dtype)dtype, storage);
    e->projection_storage = storage;
    return G3N_OK;
}

void g3n_embedder_free(g3n_embedder *e)
{
    g3n_aligned_free(e->projection_storage);
    e->projection_storage = NULL;
}
