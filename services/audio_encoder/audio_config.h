/* audio_config.h - the audio sub-config (Gemma3nAudioConfig) and the feature
 * extractor settings (Gemma3nAudioFeatureExtractor), as the audio encoder
 * needs them. Parsed from config.audio_json (common/model_io/config.h keeps the cJSON
 * object); absent keys take the reference defaults (the released E2B/E4B
 * values). Nothing here is E2B/E4B specific: every size comes from the file. */
#ifndef G3N_AUDIO_CONFIG_H
#define G3N_AUDIO_CONFIG_H

#include <stdint.h>

#include "config.h"
#include "status.h"

typedef struct g3n_audio_config {
    int64_t hidden_size;          /* conformer width D (1536 released) */
    int64_t input_feat_size;      /* mel bins (128) */
    double rms_norm_eps;
    int64_t vocab_size, vocab_offset;
    int num_layers;               /* conf_num_hidden_layers */
    int num_heads;                /* conf_num_attention_heads */
    int64_t head_dim;             /* hidden_size / num_heads */
    int chunk_size;               /* conf_attention_chunk_size */
    int context_left;             /* conf_attention_context_left (keys incl. self) */
    int context_right;            /* conf_attention_context_right (must be 0: causal) */
    double logit_cap;             /* conf_attention_logit_cap */
    int conv_kernel_size;         /* conf_conv_kernel_size (light conv) */
    int reduction_factor;         /* conf_reduction_factor */
    double residual_weight;       /* conf_residual_weight (feed-forward residual) */
    double gradient_clipping;
    int64_t sscp_channels[2];     /* sscp_conv_channel_size */
    int sscp_kernel[2][2];        /* [block][time, freq] */
    int sscp_stride[2][2];        /* [block][time, freq] */
    double sscp_group_norm_eps;
    /* derived */
    int64_t sscp_freq_out[2];     /* freq bins after each block (64, 32 released) */
    int64_t sscp_flat;            /* input_proj_linear input width = channels[1] * freq_out[1] */
    int past_keys;                /* max(0, context_left - 1): keys before the query */
    int64_t text_hidden_size;     /* width of the soft tokens after embed_audio */
} g3n_audio_config;

/* Feature extractor settings (defaults of Gemma3nAudioFeatureExtractor). */
typedef struct g3n_audio_feature_config {
    int sampling_rate;        /* 16000 */
    int feature_size;         /* 128 mel bins */
    int frame_length;         /* 512 samples (32 ms) */
    int hop_length;           /* 160 samples (10 ms) */
    int fft_length;           /* 1024 (2^ceil(log2 512), doubled by fft_overdrive) */
    double min_frequency;     /* 125 Hz */
    double max_frequency;     /* 7600 Hz */
    double preemphasis;       /* 0.97 */
    int preemphasis_htk;      /* 1 */
    double input_scale_factor;/* 1.0 */
    double mel_floor;         /* 1e-5 */
    int pad_to_multiple_of;   /* 128 samples */
    int64_t max_samples;      /* 480000 (30 s): one window */
    double *per_bin_mean;     /* [feature_size] or NULL, owned */
    double *per_bin_stddev;   /* [feature_size] or NULL, owned */
} g3n_audio_feature_config;

/* Reads config->audio_json (error if absent) and the text width. */
int g3n_audio_config_parse(g3n_audio_config *audio, const g3n_model_config *config, g3n_error *err);

/* Fills the defaults. */
void g3n_audio_feature_config_default(g3n_audio_feature_config *features);
/* Overrides the defaults from a preprocessor_config.json (Hugging Face layout)
 * when path names a file that exists; a missing file leaves the defaults. */
int g3n_audio_feature_config_load(g3n_audio_feature_config *features, const char *path, g3n_error *err);
void g3n_audio_feature_config_free(g3n_audio_feature_config *features);

#endif
