/* text_embedder.h - the text embedding step of Gemma 3n (Gemma3nTextModel:
 * embed_tokens, get_per_layer_inputs, project_per_layer_inputs).
 *
 * Kept apart from the layer stack (services/decoder) because the embedder
 * daemon holds these tables and hands the decoder two arrays per token:
 *   inputs_embeds     [count, hidden_size]                      f32
 *   per_layer_inputs  [count, num_hidden_layers, per_layer_dim]  f32 (final, projected and combined)
 *
 * Weights are borrowed from a g3n_weights source (valid while it is open) and
 * stay in their stored dtype; only the small norm vector is f32.
 */
#ifndef G3N_TEXT_EMBEDDER_H
#define G3N_TEXT_EMBEDDER_H

#include <stdint.h>

#include "config.h"
#include "matmul.h"
#include "status.h"
#include "weights.h"

typedef struct g3n_text_embedder {
    int64_t vocab_size;                 /* rows of embed_tokens */
    int64_t vocab_size_per_layer_input; /* rows of embed_tokens_per_layer */
    int64_t hidden_size;                /* D */
    int64_t per_layer_dim;              /* P = hidden_size_per_layer_input */
    int num_layers;                     /* L: per-layer slices used */
    double eps;
    float embed_scale;                  /* f32(sqrt(D)) */
    float per_layer_embed_scale;        /* f32(sqrt(P)) */
    float per_layer_projection_scale;   /* f32(D^-0.5) */
    float per_layer_input_scale;        /* f32(rsqrt(2)) */
    g3n_matrix embed_tokens;               /* model.language_model.embed_tokens.weight [vocab, D] */
    g3n_matrix embed_tokens_per_layer;     /* ...embed_tokens_per_layer.weight [vocab_ple, >= L*P] */
    g3n_matrix per_layer_model_projection; /* ...per_layer_model_projection.weight [L*P, D] */
    const float *per_layer_projection_norm; /* ...per_layer_projection_norm.weight [P] */
    const g3n_checkpoint *checkpoint;       /* the tables' files (rows read with pread), or NULL */
} g3n_text_embedder;

/* Borrows the tables from weights. A checkpoint whose embed_tokens_per_layer is
 * wider than L*P (MatFormer slicing) is accepted: the first L slices are used. */
int g3n_text_embedder_load(g3n_text_embedder *embedder, g3n_weights *weights, const g3n_text_config *config,
                           g3n_error *err);

/* Only embed_tokens (the decoder's tied head): the per-layer table and its
 * projection stay unmapped and unread; the per-layer functions must not be used. */
int g3n_text_embedder_load_embed_tokens(g3n_text_embedder *embedder, g3n_weights *weights,
                                        const g3n_text_config *config, g3n_error *err);

/* Gemma3nTextScaledWordEmbedding(embed_tokens): out[t] = embed_tokens[id] * sqrt(D).
 * ids must be in [0, vocab_size). out: [count, D]. */
int g3n_text_embedder_embed_tokens(const g3n_text_embedder *embedder, const int32_t *ids, int64_t count, float *out,
                                   g3n_error *err);

/* get_per_layer_inputs: out[t] = embed_tokens_per_layer[id'] * sqrt(P), [count, L*P],
 * where id' = id if 0 <= id < vocab_size_per_layer_input, else 0 (the multimodal
 * hard-token ids use row 0, as Gemma3nModel.forward does). */
void g3n_text_embedder_per_layer_tokens(const g3n_text_embedder *embedder, const int32_t *ids, int64_t count,
                                        float *out);

/* project_per_layer_inputs: out = (RMSNorm(per_layer_model_projection(embeds) * D^-0.5)
 * + per_layer_tokens) * rsqrt(2), per layer slice of P. per_layer_tokens may be
 * NULL (then out is the normed projection alone, as in the reference).
 * embeds [count, D]; per_layer_tokens and out [count, L*P]; out must not
 * overlap the inputs. */
void g3n_text_embedder_project_per_layer(const g3n_text_embedder *embedder, const float *embeds,
                                         const float *per_layer_tokens, int64_t count, float *out);

/* Text-only input: both outputs from token ids (no allocation).
 * embeds_out [count, D], per_layer_out [count, L*P], scratch [count, L*P]. */
int g3n_text_embedder_embed_ids(const g3n_text_embedder *embedder, const int32_t *ids, int64_t count,
                                float *embeds_out, float *per_layer_out, float *scratch, g3n_error *err);

#endif
