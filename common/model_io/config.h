/* config.h - Gemma 3n config.json (Gemma3nConfig) as the model code needs it.
 *
 * Both styles are read: the released one (rope_theta, rope_local_base_freq,
 * rope_scaling) and the transformers-5 one (rope_parameters with
 * full_attention / sliding_attention entries). intermediate_size may be a
 * number or a per-layer list; layer_types and activation_sparsity_pattern are
 * derived as transformers does when absent. Defaults where a key is absent
 * follow Gemma3nTextConfig (the E4B values). Nothing E2B/E4B specific is
 * hard-coded in the model code: every size comes from here.
 *
 * The audio and vision sub-configs are parsed by their own services
 * (services/audio_encoder, services/vision_encoder) from the cJSON objects kept
 * here (audio_json / vision_json, owned by the config).
 */
#ifndef G3N_CONFIG_H
#define G3N_CONFIG_H

#include <stdint.h>

#include "status.h"

struct cJSON;

typedef enum g3n_layer_type { G3N_LAYER_SLIDING = 0, G3N_LAYER_FULL = 1 } g3n_layer_type;

typedef struct g3n_text_config {
    int64_t vocab_size;                  /* rows of embed_tokens / lm head */
    int64_t vocab_size_per_layer_input;  /* rows of embed_tokens_per_layer */
    int64_t hidden_size;
    int64_t hidden_size_per_layer_input;
    int num_hidden_layers;
    int64_t *intermediate_size;          /* [num_hidden_layers] */
    int num_attention_heads;
    int num_key_value_heads;
    int64_t head_dim;
    char hidden_activation[32];          /* "gelu_pytorch_tanh" */
    double rms_norm_eps;
    int64_t sliding_window;
    g3n_layer_type *layer_types;         /* [num_hidden_layers] */
    double rope_theta_full;              /* rope theta of full_attention layers */
    double rope_theta_sliding;           /* rope theta of sliding_attention layers */
    double final_logit_softcapping;      /* 0 = none */
    int num_kv_shared_layers;
    int64_t laurel_rank;
    int altup_num_inputs;
    int altup_active_idx;
    int altup_correct_scale;
    double *activation_sparsity_pattern; /* [num_hidden_layers] */
    int64_t max_position_embeddings;
    int pad_token_id;
    int bos_token_id;
    int eos_token_ids[8];                /* from eos_token_id (number or list) */
    int num_eos_token_ids;
} g3n_text_config;

typedef struct g3n_model_config {
    g3n_text_config text;
    /* top level (Gemma3nConfig) */
    int64_t audio_soft_tokens_per_image;
    int64_t vision_soft_tokens_per_image;
    int boi_token_id, eoi_token_id, image_token_id;
    int boa_token_id, eoa_token_id, audio_token_id;
    /* vision/audio side constants the LM and embedders need */
    int64_t vision_hidden_size, vision_vocab_size, vision_vocab_offset;
    double vision_rms_norm_eps;
    int64_t audio_hidden_size, audio_vocab_size, audio_vocab_offset;
    double audio_rms_norm_eps;
    struct cJSON *root;        /* the whole document, owned */
    struct cJSON *audio_json;  /* borrowed from root, NULL if absent */
    struct cJSON *vision_json; /* borrowed from root, NULL if absent */
    char path[1024];           /* file it came from ("" for a string) */
} g3n_model_config;

/* path may be a config.json file or a folder holding one. */
int g3n_config_load(g3n_model_config *config, const char *path, g3n_error *err);
int g3n_config_parse(g3n_model_config *config, const char *json_text, g3n_error *err);
void g3n_config_free(g3n_model_config *config); /* accepts a zeroed struct */

/* Index of the layer whose KV cache layer `layer` reads (itself unless shared). */
int g3n_text_config_kv_source_layer(const g3n_text_config *text, int layer);

#endif
