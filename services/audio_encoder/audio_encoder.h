/* audio_encoder.h - the USM conformer audio encoder (Gemma3nAudioEncoder),
 * offline and streaming.
 *
 * log-mel frames [N][128] -> subsample conv projection (two conv blocks with
 * the cumulative group norm) -> conformer blocks (half-step feed-forwards,
 * chunked local attention with relative positions, light conv) -> every
 * reduction_factor-th frame -> tokens [Ta][hidden]; then embed_audio (see
 * audio_stream.h) maps them to the text width.
 *
 * Everything after the convolutions is causal, so the encoder runs as a
 * stream over feature frames (g3n_audio_encoder_state): a token is emitted as
 * soon as the frames it depends on (token k: frames 0 .. 16k+6 in the released
 * config) have arrived; after finish() the tokens equal the offline encoding.
 * The offline call is the same machinery fed in one piece.
 *
 * Ownership: a g3n_audio_encoder borrows its weights from a g3n_weights source
 * (keep it open) and owns the few tensors it precomputes (relative position
 * embeddings, softplus(per_dim_scale)) and the packed copies of its linears. It is read-only after load: several
 * states (one per clip or stream) may use it from different threads.
 */
#ifndef G3N_AUDIO_ENCODER_H
#define G3N_AUDIO_ENCODER_H

#include <stdint.h>

#include "audio_config.h"
#include "config.h"
#include "gemm_packed.h"
#include "matmul.h"
#include "status.h"
#include "tensor_list.h"
#include "weights.h"

/* Gemma3nAudioConformerFeedForward */
typedef struct g3n_audio_feed_forward {
    const float *pre_layer_norm;   /* [D] */
    g3n_packed_matrix ffw_layer_1; /* [4D, D] */
    g3n_packed_matrix ffw_layer_2; /* [D, 4D] */
    const float *post_layer_norm;  /* [D] */
} g3n_audio_feed_forward;

/* Gemma3nAudioConformerBlock */
typedef struct g3n_audio_layer {
    g3n_audio_feed_forward ffw_start;
    /* attention (Gemma3nAudioConformerAttention + Gemma3nAudioAttention) */
    const float *pre_attn_norm;    /* [D] */
    g3n_packed_matrix q_proj, k_proj, v_proj; /* [D, D] */
    float *per_dim_softplus;       /* [head_dim] softplus(per_dim_scale), owned */
    float *relative;               /* [past_keys + 1][D]: pos_proj(timing signal of distance d), owned */
    g3n_packed_matrix post;        /* [D, D] */
    const float *post_norm;        /* [D] */
    /* Gemma3nAudioConformerLightConv1d */
    const float *lconv_pre_norm;   /* [D] */
    g3n_packed_matrix linear_start; /* [2D, D] */
    float *depthwise;              /* [D][kernel] f32 copy, owned */
    float *depthwise_taps;         /* [kernel][D] the same, tap-major (fast paths), owned */
    const float *conv_norm;        /* [D] */
    g3n_packed_matrix linear_end;  /* [D, D] */
    g3n_audio_feed_forward ffw_end;
    const float *norm;             /* [D] block output norm */
} g3n_audio_layer;

typedef struct g3n_audio_encoder {
    g3n_audio_config config;
    g3n_precision precision;       /* of the conformer's and input_proj's GEMMs (gemm_packed.h) */
    /* Gemma3nAudioSubSampleConvProjection */
    g3n_matrix conv[2];            /* conv_i.conv.weight viewed [C_out, C_in * kt * kf] */
    const float *conv_norm[2];     /* conv_i.norm.weight [C_out] */
    g3n_packed_matrix input_proj;  /* input_proj_linear [D, C1 * F1] */
    g3n_audio_layer *layers;       /* [num_layers], owned */
    /* owned: one stream state kept between g3n_audio_encoder_encode calls (its
     * ~60 MB of chunk buffers are not allocated and faulted in per clip); a
     * concurrent encode that finds it taken makes its own */
    struct g3n_audio_spare_state *spare;
} g3n_audio_encoder;

/* Every model.audio_tower.* tensor a checkpoint of this config holds. */
int g3n_audio_encoder_list_tensors(const g3n_model_config *config, g3n_tensor_list *list, g3n_error *err);

/* Loads (borrows) the audio tower's weights and packs every linear layer
 * once for g3n_gemm_packed (the packed panels are owned); config is copied.
 * Precision: g3n_tower_precision_default() (F32, exact, unless env
 * G3N_TOWER_PRECISION=bf16). */
int g3n_audio_encoder_load(g3n_audio_encoder *encoder, const g3n_audio_config *config, g3n_weights *weights,
                           g3n_error *err);
/* The same with the compute precision chosen: G3N_PRECISION_F32 (exact, the
 * goldens' rel-L2 <= 1e-4), G3N_PRECISION_BF16 (AVX512-BF16 products) or
 * G3N_PRECISION_INT8 (AVX512-VNNI); budgets in audio_check.h, tested in
 * tests/unit/test_tower_speed.c. */
int g3n_audio_encoder_load_precision(g3n_audio_encoder *encoder, const g3n_audio_config *config,
                                     g3n_weights *weights, g3n_precision precision, g3n_error *err);
void g3n_audio_encoder_free(g3n_audio_encoder *encoder); /* accepts a zeroed struct */

/* Sub-sampled frames T2 and tokens Ta for N feature frames (Gemma3nAudioSubSampleConvProjection). */
int64_t g3n_audio_encoder_subsampled_frames(const g3n_audio_config *config, int64_t frames);
int64_t g3n_audio_encoder_token_count(const g3n_audio_config *config, int64_t frames);

/* Receives tokens in order: count rows of [hidden_size] (borrowed for the call)
 * and their padding flags (1 = padded frame: the row is all zeros, as the
 * reference's masked_fill). first_token is the index of the first row. */
typedef int (*g3n_audio_token_sink)(void *user, int64_t first_token, const float *tokens, const uint8_t *padding,
                                    int64_t count, g3n_error *err);

/* Streaming state for one clip. */
typedef struct g3n_audio_encoder_state g3n_audio_encoder_state;

int g3n_audio_encoder_state_create(g3n_audio_encoder_state **out, const g3n_audio_encoder *encoder,
                                   g3n_audio_token_sink sink, void *user, g3n_error *err);
void g3n_audio_encoder_state_free(g3n_audio_encoder_state *state); /* accepts NULL */
/* Starts a new clip (keeps the buffers). */
void g3n_audio_encoder_state_reset(g3n_audio_encoder_state *state);
/* Appends feature frames [frames][input_feat_size]; padding (1 = padded frame,
 * the reference's ~input_features_mask) may be NULL (all valid). Emits every
 * token that can no longer change. */
int g3n_audio_encoder_state_push(g3n_audio_encoder_state *state, const float *features, const uint8_t *padding,
                                 int64_t frames, g3n_error *err);
/* End of the clip: the convolutions' end padding, then the remaining tokens. */
int g3n_audio_encoder_state_finish(g3n_audio_encoder_state *state, g3n_error *err);
/* Frames pushed and tokens emitted so far. */
int64_t g3n_audio_encoder_state_frames(const g3n_audio_encoder_state *state);
int64_t g3n_audio_encoder_state_tokens(const g3n_audio_encoder_state *state);

/* Offline: one clip's features [frames][input_feat_size] with optional
 * padding flags -> tokens [token_count][hidden] and padding [token_count]
 * (out_padding may be NULL). Error if frames < 1. */
int g3n_audio_encoder_encode(const g3n_audio_encoder *encoder, const float *features, const uint8_t *padding,
                             int64_t frames, float *out, uint8_t *out_padding, g3n_error *err);

#endif
