/* audio_config.c - Gemma3nAudioConfig and the feature extractor settings. */
#include "audio_config.h"

#include <cjson/cJSON.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "json_util.h"

/* 1 if v is a whole number within [-2^31, 2^31) (the sizes these lists hold; anything else,
 * converted as it is, would be undefined behaviour). */
static int is_int32(double v)
{
    return v >= -2147483648.0 && v < 2147483648.0 && v == (double)(int64_t)v;
}

/* Reads a [a, b] integer pair (list of two numbers). */
static int read_int_pair(const cJSON *obj, const char *key, int fallback0, int fallback1, int64_t out[2],
                         g3n_error *err)
{
    const cJSON *item = cJSON_GetObjectItemCaseSensitive(obj, key);
    if (item == NULL || cJSON_IsNull(item)) {
        out[0] = fallback0;
        out[1] = fallback1;
        return G3N_OK;
    }
    if (!cJSON_IsArray(item) || cJSON_GetArraySize(item) != 2)
        return g3n_error_set(err, "audio_config.%s: expected a list of two numbers", key);
    for (int i = 0; i < 2; i++) {
        const cJSON *v = cJSON_GetArrayItem(item, i);
        if (!cJSON_IsNumber(v) || !is_int32(v->valuedouble))
            return g3n_error_set(err, "audio_config.%s[%d]: expected a whole number", key, i);
        out[i] = (int64_t)v->valuedouble;
    }
    return G3N_OK;
}

/* Reads [[a, b], [c, d]] (per SSCP block: time, freq). */
static int read_int_pairs(const cJSON *obj, const char *key, int fallback, int out[2][2], g3n_error *err)
{
    const cJSON *item = cJSON_GetObjectItemCaseSensitive(obj, key);
    if (item == NULL || cJSON_IsNull(item)) {
        for (int b = 0; b < 2; b++)
            out[b][0] = out[b][1] = fallback;
        return G3N_OK;
    }
    if (!cJSON_IsArray(item) || cJSON_GetArraySize(item) != 2)
        return g3n_error_set(err, "audio_config.%s: expected two [time, freq] pairs", key);
    for (int b = 0; b < 2; b++) {
        int64_t pair[2];
        const cJSON *row = cJSON_GetArrayItem(item, b);
        if (!cJSON_IsArray(row) || cJSON_GetArraySize(row) != 2)
            return g3n_error_set(err, "audio_config.%s[%d]: expected a [time, freq] pair", key, b);
        for (int i = 0; i < 2; i++) {
            const cJSON *v = cJSON_GetArrayItem(row, i);
            if (!cJSON_IsNumber(v) || !is_int32(v->valuedouble))
                return g3n_error_set(err, "audio_config.%s[%d][%d]: expected a whole number", key, b, i);
            pair[i] = (int64_t)v->valuedouble;
        }
        out[b][0] = (int)pair[0];
        out[b][1] = (int)pair[1];
    }
    return G3N_OK;
}

int g3n_audio_config_parse(g3n_audio_config *a, const g3n_model_config *config, g3n_error *err)
{
    memset(a, 0, sizeof(*a));
    const cJSON *j = config->audio_json;
    if (j == NULL)
        return g3n_error_set(err, "%s: no audio_config", config->path[0] ? config->path : "config");
    int64_t v;
    double d;
#define GET_INT(key, fallback, field)                                                                                 \
    do {                                                                                                              \
        if (g3n_json_get_int(j, key, fallback, &v, err) != G3N_OK)                                                    \
            return g3n_error_prefix(err, "audio_config");                                                             \
        field = v;                                                                                                    \
    } while (0)
#define GET_DOUBLE(key, fallback, field)                                                                              \
    do {                                                                                                              \
        if (g3n_json_get_double(j, key, fallback, &d, err) != G3N_OK)                                                 \
            return g3n_error_prefix(err, "audio_config");                                                             \
        field = d;                                                                                                    \
    } while (0)
    GET_INT("hidden_size", 1536, a->hidden_size);
    GET_INT("input_feat_size", 128, a->input_feat_size);
    GET_DOUBLE("rms_norm_eps", 1e-6, a->rms_norm_eps);
    GET_INT("vocab_size", 128, a->vocab_size);
    GET_INT("vocab_offset", 262272, a->vocab_offset);
    GET_INT("conf_num_hidden_layers", 12, a->num_layers);
    GET_INT("conf_num_attention_heads", 8, a->num_heads);
    GET_INT("conf_attention_chunk_size", 12, a->chunk_size);
    GET_INT("conf_attention_context_left", 13, a->context_left);
    GET_INT("conf_attention_context_right", 0, a->context_right);
    GET_DOUBLE("conf_attention_logit_cap", 50.0, a->logit_cap);
    GET_INT("conf_conv_kernel_size", 5, a->conv_kernel_size);
    GET_INT("conf_reduction_factor", 4, a->reduction_factor);
    GET_DOUBLE("conf_residual_weight", 0.5, a->residual_weight);
    GET_DOUBLE("gradient_clipping", 1e10, a->gradient_clipping);
    GET_DOUBLE("sscp_conv_group_norm_eps", 1e-3, a->sscp_group_norm_eps);
#undef GET_INT
#undef GET_DOUBLE
    if (read_int_pair(j, "sscp_conv_channel_size", 128, 32, a->sscp_channels, err) != G3N_OK ||
        read_int_pairs(j, "sscp_conv_kernel_size", 3, a->sscp_kernel, err) != G3N_OK ||
        read_int_pairs(j, "sscp_conv_stride_size", 2, a->sscp_stride, err) != G3N_OK)
        return G3N_ERR;

    const char *where = config->path[0] ? config->path : "config";
    if (a->hidden_size <= 0 || a->num_heads <= 0 || a->hidden_size % a->num_heads != 0)
        return g3n_error_set(err, "%s: audio_config hidden_size %lld is not a positive multiple of "
                             "conf_num_attention_heads %d", where, (long long)a->hidden_size, a->num_heads);
    if (a->num_layers < 0 || a->input_feat_size <= 0 || a->conv_kernel_size <= 0 || a->reduction_factor <= 0 ||
        a->chunk_size <= 0 || a->context_left < 0)
        return g3n_error_set(err, "%s: audio_config has a non-positive size", where);
    if (a->context_right != 0)
        return g3n_error_set(err, "%s: audio_config conf_attention_context_right = %d: only 0 (causal attention) "
                             "is supported", where, a->context_right);
    a->head_dim = a->hidden_size / a->num_heads;
    a->past_keys = a->context_left > 1 ? a->context_left - 1 : 0;
    int64_t freq = a->input_feat_size;
    for (int b = 0; b < 2; b++) {
        if (a->sscp_channels[b] <= 0 || a->sscp_kernel[b][0] <= 0 || a->sscp_kernel[b][1] <= 0 ||
            a->sscp_stride[b][0] <= 0 || a->sscp_stride[b][1] <= 0)
            return g3n_error_set(err, "%s: audio_config sscp block %d has a non-positive size", where, b);
        /* Gemma3nAudioSubSampleConvProjection: freq padded (1, 1). */
        freq = (freq + 2 - a->sscp_kernel[b][1]) / a->sscp_stride[b][1] + 1;
        if (freq <= 0)
            return g3n_error_set(err, "%s: audio_config sscp block %d leaves no frequency bins", where, b);
        a->sscp_freq_out[b] = freq;
    }
    a->sscp_flat = a->sscp_channels[1] * a->sscp_freq_out[1];
    a->text_hidden_size = config->text.hidden_size;
    return G3N_OK;
}

void g3n_audio_feature_config_default(g3n_audio_feature_config *f)
{
    memset(f, 0, sizeof(*f));
    f->sampling_rate = 16000;
    f->feature_size = 128;
    f->frame_length = 512;
    f->hop_length = 160;
    f->fft_length = 1024;
    f->min_frequency = 125.0;
    f->max_frequency = 7600.0;
    f->preemphasis = 0.97;
    f->preemphasis_htk = 1;
    f->input_scale_factor = 1.0;
    f->mel_floor = 1e-5;
    f->pad_to_multiple_of = 128;
    f->max_samples = 480000;
}

static int read_double_list(const cJSON *obj, const char *key, int count, double **out, const char *path,
                            g3n_error *err)
{
    const cJSON *item = cJSON_GetObjectItemCaseSensitive(obj, key);
    if (item == NULL || cJSON_IsNull(item))
        return G3N_OK;
    if (!cJSON_IsArray(item) || cJSON_GetArraySize(item) != count)
        return g3n_error_set(err, "%s: %s must be a list of %d numbers", path, key, count);
    double *values = malloc(sizeof(double) * (size_t)count);
    if (values == NULL)
        return g3n_error_set(err, "%s: out of memory", path);
    for (int i = 0; i < count; i++) {
        const cJSON *v = cJSON_GetArrayItem(item, i);
        if (!cJSON_IsNumber(v)) {
            free(values);
            return g3n_error_set(err, "%s: %s[%d] is not a number", path, key, i);
        }
        values[i] = v->valuedouble;
    }
    free(*out);
    *out = values;
    return G3N_OK;
}

int g3n_audio_feature_config_load(g3n_audio_feature_config *f, const char *path, g3n_error *err)
{
    FILE *probe = fopen(path, "rb");
    if (probe == NULL)
        return G3N_OK; /* no preprocessor_config.json: defaults */
    fclose(probe);
    cJSON *root = NULL;
    if (g3n_json_load_file(path, &root, err) != G3N_OK)
        return G3N_ERR;
    int rc = G3N_ERR;
    int64_t v;
    double d, frame_ms = 32.0, hop_ms = 10.0;
    int b;
    if (g3n_json_get_int(root, "sampling_rate", f->sampling_rate, &v, err) != G3N_OK)
        goto done;
    f->sampling_rate = (int)v;
    if (g3n_json_get_int(root, "feature_size", f->feature_size, &v, err) != G3N_OK)
        goto done;
    f->feature_size = (int)v;
    if (g3n_json_get_double(root, "frame_length_ms", 32.0, &frame_ms, err) != G3N_OK ||
        g3n_json_get_double(root, "hop_length_ms", 10.0, &hop_ms, err) != G3N_OK ||
        g3n_json_get_double(root, "min_frequency", f->min_frequency, &f->min_frequency, err) != G3N_OK ||
        g3n_json_get_double(root, "max_frequency", f->max_frequency, &f->max_frequency, err) != G3N_OK ||
        g3n_json_get_double(root, "preemphasis", f->preemphasis, &f->preemphasis, err) != G3N_OK ||
        g3n_json_get_bool(root, "preemphasis_htk_flavor", f->preemphasis_htk, &f->preemphasis_htk, err) != G3N_OK ||
        g3n_json_get_double(root, "input_scale_factor", 1.0, &f->input_scale_factor, err) != G3N_OK ||
        g3n_json_get_double(root, "mel_floor", f->mel_floor, &f->mel_floor, err) != G3N_OK)
        goto done;
    if (g3n_json_get_double(root, "dither", 0.0, &d, err) != G3N_OK)
        goto done;
    if (d != 0.0) {
        g3n_error_set(err, "%s: dither %g is not supported (random noise; the released value is 0)", path, d);
        goto done;
    }
    if (g3n_json_get_bool(root, "fft_overdrive", 1, &b, err) != G3N_OK)
        goto done;
    f->frame_length = (int)(f->sampling_rate * frame_ms / 1000.0 + 0.5);
    f->hop_length = (int)(f->sampling_rate * hop_ms / 1000.0 + 0.5);
    if (f->frame_length <= 0 || f->hop_length <= 0 || f->feature_size <= 0) {
        g3n_error_set(err, "%s: non-positive frame, hop or feature size", path);
        goto done;
    }
    f->fft_length = 1;
    while (f->fft_length < f->frame_length)
        f->fft_length *= 2;
    if (b)
        f->fft_length *= 2;
    if (read_double_list(root, "per_bin_mean", f->feature_size, &f->per_bin_mean, path, err) != G3N_OK ||
        read_double_list(root, "per_bin_stddev", f->feature_size, &f->per_bin_stddev, path, err) != G3N_OK)
        goto done;
    rc = G3N_OK;
done:
    if (rc != G3N_OK && strstr(err ? err->message : "", path) == NULL)
        g3n_error_prefix(err, "%s", path);
    cJSON_Delete(root);
    return rc;
}

void g3n_audio_feature_config_free(g3n_audio_feature_config *f)
{
    free(f->per_bin_mean);
    free(f->per_bin_stddev);
    f->per_bin_mean = NULL;
    f->per_bin_stddev = NULL;
}
