/* vision_encoder.h - the Gemma 3n vision tower: timm `mobilenetv5_300m_enc`
 * (MobileNetV5Encoder.forward_features) and the soft-token path of
 * `get_image_features` (tokens * sqrt(hidden) -> embed_vision).
 *
 * The block structure (types, kernels,
 * strides, heads) is the architecture table of timm (`_gen_mobilenet_v5`);
 * channel counts follow `channel_multiplier` from the vision config and every
 * weight is loaded with its expected shape, so a checkpoint of another
 * multiplier fails with an error naming the tensor.
 *
 * Layout: activations are NHWC (pixels x channels) so that every 1x1
 * convolution is one g3n_matmul (pixels x Cin) . (Cout x Cin)^T. The tower
 * output in NHWC, [16*16, 2048], already is the token matrix (token t = y*16+x).
 *
 * Ownership: the encoder borrows weight views from the g3n_weights source (it
 * must stay open while the encoder lives) and owns its repacked f32 kernels
 * (dense 3x3 and depthwise convs) and its work buffers. One encoder serves one
 * caller at a time (its buffers are reused between calls); the compute inside a
 * call is parallel (OpenMP).
 */
#ifndef G3N_VISION_ENCODER_H
#define G3N_VISION_ENCODER_H

#include <stdint.h>

#include "config.h"
#include "gemm_packed.h"
#include "status.h"
#include "tensor_list.h"
#include "weights.h"

/* Gemma3nVisionConfig, as far as the encoder needs it. */
typedef struct g3n_vision_config {
    char architecture[64];     /* "mobilenetv5_300m_enc" (the only one built) */
    double channel_multiplier; /* model_args.channel_multiplier; 1.0 when absent */
    int64_t hidden_size;       /* tower output channels = soft-token width (2048) */
    double rms_norm_eps;       /* of embed_vision (the tower's norms use 1e-6, as timm) */
    int64_t vocab_size;        /* hard vision tokens */
    int64_t vocab_offset;      /* first hard vision token id */
    int64_t image_size;        /* pixel_values side: 768 */
    int64_t soft_tokens;       /* tokens per image: 256 (16 x 16) */
} g3n_vision_config;

/* Reads config->vision_json; error when absent or for an unknown architecture. */
int g3n_vision_config_parse(const g3n_model_config *config, g3n_vision_config *vision, g3n_error *err);

/* Every `model.vision_tower.*` tensor a checkpoint of this config holds. */
int g3n_vision_encoder_list_tensors(const g3n_model_config *config, g3n_tensor_list *list, g3n_error *err);

typedef struct g3n_vision_encoder g3n_vision_encoder;

/* Loads the tower and embed_vision from weights (borrowed, must outlive the
 * encoder), packing every conv/projection kernel once for g3n_gemm_packed.
 * Precision: g3n_tower_precision_default() (F32, the exact path, unless env
 * G3N_TOWER_PRECISION says bf16). */
int g3n_vision_encoder_load(g3n_vision_encoder **out, const g3n_model_config *config, g3n_weights *weights,
                            g3n_error *err);
/* The same with the tower's compute precision chosen: G3N_PRECISION_F32 (exact,
 * the goldens' tolerance rel-L2 <= 1e-4), G3N_PRECISION_BF16 (AVX512-BF16
 * products) or G3N_PRECISION_INT8 (AVX512-VNNI); their budgets vs the goldens
 * are in vision_check.h, tested in tests/unit/test_tower_speed.c. embed_vision
 * always runs in f32. */
int g3n_vision_encoder_load_precision(g3n_vision_encoder **out, const g3n_model_config *config, g3n_weights *weights,
                                      g3n_precision precision, g3n_error *err);
g3n_precision g3n_vision_encoder_precision(const g3n_vision_encoder *encoder);
void g3n_vision_encoder_free(g3n_vision_encoder *encoder); /* accepts NULL */
const g3n_vision_config *g3n_vision_encoder_config(const g3n_vision_encoder *encoder);
/* Width of the soft tokens after embed_vision (text hidden size). */
int64_t g3n_vision_encoder_text_hidden(const g3n_vision_encoder *encoder);

/* The tower, MobileNetV5Encoder.forward_features, for `images` images.
 * pixel_values: [images, 3, height, width] f32 NCHW (as the processor makes them).
 * tower_tokens: [images, 16*16, hidden_size] f32 (token-major: the NHWC output).
 * height and width >= 32; 768 x 768 is the model's size. */
int g3n_vision_encoder_tower(g3n_vision_encoder *encoder, const float *pixel_values, int images, int height, int width,
                             float *tower_tokens, g3n_error *err);

/* get_image_features' soft path: tokens * sqrt(hidden) -> embed_vision.
 * tower_tokens: [images, soft_tokens, hidden_size]; image_embeds: [images, soft_tokens, text_hidden]. */
int g3n_vision_encoder_embed(g3n_vision_encoder *encoder, const float *tower_tokens, int images, float *image_embeds,
                             g3n_error *err);

/* Both: pixel_values -> image_embeds. tower_tokens may be NULL (then a scratch buffer is used). */
int g3n_vision_encoder_encode(g3n_vision_encoder *encoder, const float *pixel_values, int images, int height, int width,
                              float *tower_tokens, float *image_embeds, g3n_error *err);

#endif
