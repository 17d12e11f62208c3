/* embedder.h - the embedder role: token ids + media soft tokens -> the
 * decoder's inputs (Gemma3nModel.forward up to the text model).
 *
 *   inputs_embeds     [count, D]    text embeddings (× sqrt(D)); hard
 *                                   multimodal ids through embed_vision /
 *                                   embed_audio; image and audio placeholders
 *                                   replaced by the media's soft tokens
 *   per_layer_inputs  [count, L*P]  from the merged embeddings and the ids
 *                                   (ids outside the per-layer vocabulary use row 0)
 *
 * Media come in prompt order. An image is the vision tower's tokens
 * [vision_soft_tokens_per_image, vision_hidden] as the tower gives them (the
 * embedder scales them by sqrt(vision_hidden) and applies embed_vision); it
 * fills the next run of image_token_id placeholders. An audio clip is the audio
 * encoder's output [Ta, audio_hidden] with its padding mask (1 = padded; may be
 * NULL); the embedder applies embed_audio, replaces padded frames and fills up to
 * audio_soft_tokens_per_image with the embedding of the pad id (text vocab_size
 * - 1), and it fills the next run of audio_token_id placeholders.
 * The embedder borrows its weights from a g3n_weights source; the one thing it
 * may own is a quantised copy of per_layer_model_projection (select_weights). */
#ifndef G3N_EMBEDDER_H
#define G3N_EMBEDDER_H

#include <stdint.h>

#include "config.h"
#include "multimodal_embedder.h"
#include "media_kind.h"
#include "quant.h"
#include "status.h"
#include "text_embedder.h"
#include "weights.h"

typedef struct g3n_media_tokens {
    g3n_media_kind kind;
    const float *tokens;         /* [count, width] */
    int64_t count;
    int64_t width;
    const uint8_t *padding_mask; /* audio only: [count], 1 = padded frame; may be NULL */
} g3n_media_tokens;

typedef struct g3n_embedder {
    g3n_text_embedder text;
    g3n_multimodal_embedder vision, audio;
    int has_vision, has_audio;
    int64_t hidden_size, per_layer_width; /* D, L*P */
    int64_t vocab_size;
    int32_t image_token_id, audio_token_id, audio_pad_id;
    int64_t vision_soft_tokens_per_image, audio_soft_tokens_per_image;
    float vision_token_scale; /* f32(sqrt(vision_hidden)) */
    void *projection_storage; /* owned: the quantised per_layer_model_projection (NULL: as stored) */
} g3n_embedder;

/* Loads the text tables and, when the config has them, both multimodal embedders. */
int g3n_embedder_load(g3n_embedder *embedder, g3n_weights *weights, const g3n_model_config *config, g3n_error *err);

/* What the per-token projection (per_layer_model_projection, L*P x D: the
 * embedder's one matrix product, 31 MB of bf16 read per decode step on E2B)
 * computes with, as the decoder's --weights: q8 / q4 quantise it once into
 * memory the embedder owns (the same rounding as the decoder's weight cache for
 * that format, so the pipeline at q8/q4 computes what g3n generate does; 1/2 and
 * 1/4 of the bytes per step); f32 and bf16 keep it as stored. Call once, after
 * load. Errors: out of memory. */
int g3n_embedder_select_weights(g3n_embedder *embedder, g3n_weight_format format, g3n_error *err);

/* Frees what the embedder owns (the quantised copy); accepts a zeroed struct. */
void g3n_embedder_free(g3n_embedder *embedder);

/* Builds positions [begin, end) of a prompt of `count` ids with its media (the
 * whole prompt's ids and media are passed, so chunks can be built one after
 * another). inputs_embeds: [end - begin, D]; per_layer_inputs: [end - begin, L*P].
 * Errors: an id outside the vocabulary, placeholder runs that do not match the
 * media (count and order), an audio clip longer than audio_soft_tokens_per_image. */
int g3n_embedder_build(const g3n_embedder *embedder, const int32_t *ids, int64_t count, const g3n_media_tokens *media,
                       int media_count, int64_t begin, int64_t end, float *inputs_embeds, float *per_layer_inputs,
                       g3n_error *err);

/* The soft tokens of one image (tower tokens -> × sqrt(hidden) -> embed_vision),
 * out [count, D]. */
int g3n_embedder_image_tokens(const g3n_embedder *embedder, const float *tower_tokens, int64_t count, float *out,
                              g3n_error *err);
/* The soft tokens of one audio clip, padded to audio_soft_tokens_per_image:
 * out [audio_soft_tokens_per_image, D]. */
int g3n_embedder_audio_tokens(const g3n_embedder *embedder, const float *encoder_output, const uint8_t *padding_mask,
                              int64_t count, float *out, g3n_error *err);

#endif
