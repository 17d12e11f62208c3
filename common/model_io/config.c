#include "config.h"

#include <cjson/cJSON.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "json_util.h"

#define GET_INT(obj, key, fallback, dst)                                                                            \
    do {                                                                                                           \
        int64_t value_;                                                                                            \
        if (g3n_json_get_int((obj), (key), (fallback), &value_, err) != G3N_OK)                                   \
            return G3N_ERR;                                                                                        \
        (dst) = value_;                                                                                            \
    } while (0)
#define GET_DOUBLE(obj, key, fallback, dst)                                                                         \
    do {                                                                                                           \
        if (g3n_json_get_double((obj), (key), (fallback), &(dst), err) != G3N_OK)                                 \
            return G3N_ERR;                                                                                        \
    } while (0)

static int parse_rope_theta(const cJSON *text, g3n_text_config *t, g3n_error *err)
{
    t->rope_theta_full = 1000000.0;
    t->rope_theta_sliding = 10000.0;
    /* released style */
    GET_DOUBLE(text, "rope_theta", t->rope_theta_full, t->rope_theta_full);
    GET_DOUBLE(text, "rope_local_base_freq", t->rope_theta_sliding, t->rope_theta_sliding);
    const cJSON *scaling = cJSON_GetObjectItemCaseSensitive(text, "rope_scaling");
    if (scaling && !cJSON_IsNull(scaling)) {
        const char *type = g3n_json_get_string(scaling, "rope_type", g3n_json_get_string(scaling, "type", "default"));
        if (strcmp(type, "default") != 0)
            return g3n_error_set(err, "rope_scaling type '%s' is not supported (only 'default')", type);
    }
    /* transformers-5 style overrides */
    const cJSON *parameters = cJSON_GetObjectItemCaseSensitive(text, "rope_parameters");
    if (parameters && !cJSON_IsNull(parameters)) {
        static const char *const kinds[2] = {"full_attention", "sliding_attention"};
        double *targets[2] = {&t->rope_theta_full, &t->rope_theta_sliding};
        for (int i = 0; i < 2; i++) {
            const cJSON *p = cJSON_GetObjectItemCaseSensitive(parameters, kinds[i]);
            if (!p || cJSON_IsNull(p))
                continue;
            const char *type = g3n_json_get_string(p, "rope_type", "default");
            if (strcmp(type, "default") != 0)
                return g3n_error_set(err, "rope_parameters.%s.rope_type '%s' is not supported (only 'default')",
                                     kinds[i], type);
            GET_DOUBLE(p, "rope_theta", *targets[i], *targets[i]);
        }
    }
    return G3N_OK;
}

static int parse_text(const cJSON *text, g3n_text_config *t, g3n_error *err)
{
    GET_INT(text, "vocab_size", 262400, t->vocab_size);
    GET_INT(text, "vocab_size_per_layer_input", 262144, t->vocab_size_per_layer_input);
    GET_INT(text, "hidden_size", 2048, t->hidden_size);
    GET_INT(text, "hidden_size_per_layer_input", 256, t->hidden_size_per_layer_input);
    GET_INT(text, "num_hidden_layers", 35, t->num_hidden_layers);
    GET_INT(text, "num_attention_heads", 8, t->num_attention_heads);
    GET_INT(text, "num_key_value_heads", 2, t->num_key_value_heads);
    GET_INT(text, "head_dim", 256, t->head_dim);
    GET_DOUBLE(text, "rms_norm_eps", 1e-6, t->rms_norm_eps);
    GET_INT(text, "sliding_window", 512, t->sliding_window);
    GET_DOUBLE(text, "final_logit_softcapping", 30.0, t->final_logit_softcapping);
    GET_INT(text, "num_kv_shared_layers", 15, t->num_kv_shared_layers);
    GET_INT(text, "laurel_rank", 64, t->laurel_rank);
    GET_INT(text, "altup_num_inputs", 4, t->altup_num_inputs);
    GET_INT(text, "altup_active_idx", 0, t->altup_active_idx);
    if (g3n_json_get_bool(text, "altup_correct_scale", 1, &t->altup_correct_scale, err) != G3N_OK)
        return G3N_ERR;
    GET_INT(text, "max_position_embeddings", 32768, t->max_position_embeddings);
    GET_INT(text, "pad_token_id", 0, t->pad_token_id);
    GET_INT(text, "bos_token_id", 2, t->bos_token_id);
    snprintf(t->hidden_activation, sizeof(t->hidden_activation), "%s",
             g3n_json_get_string(text, "hidden_activation", "gelu_pytorch_tanh"));

    const int layers = t->num_hidden_layers;
    if (layers <= 0 || layers > 4096)
        return g3n_error_set(err, "num_hidden_layers %d out of range", layers);
    if (t->hidden_size <= 0 || t->num_attention_heads <= 0 || t->num_key_value_heads <= 0 || t->head_dim <= 0 ||
        t->num_attention_heads % t->num_key_value_heads != 0)
        return g3n_error_set(err, "bad attention sizes (heads %d, kv heads %d, head_dim %lld)",
                             t->num_attention_heads, t->num_key_value_heads, (long long)t->head_dim);
    if (t->num_kv_shared_layers < 0 || t->num_kv_shared_layers >= layers)
        return g3n_error_set(err, "num_kv_shared_layers %d out of range for %d layers", t->num_kv_shared_layers,
                             layers);
    if (t->altup_num_inputs < 1 || t->altup_active_idx < 0 || t->altup_active_idx >= t->altup_num_inputs)
        return g3n_error_set(err, "bad altup_num_inputs / altup_active_idx");
    /* values that loaded and failed only later (or gave empty text): refused here, the field named */
    if (!(t->rms_norm_eps > 0) || t->rms_norm_eps > 1)
        return g3n_error_set(err, "rms_norm_eps %g must be in (0, 1]", t->rms_norm_eps);
    if (t->sliding_window <= 0)
        return g3n_error_set(err, "sliding_window %lld must be positive", (long long)t->sliding_window);
    if (t->max_position_embeddings <= 0)
        return g3n_error_set(err, "max_position_embeddings %lld must be positive",
                             (long long)t->max_position_embeddings);

    t->intermediate_size = calloc((size_t)layers, sizeof(int64_t));
    t->layer_types = calloc((size_t)layers, sizeof(g3n_layer_type));
    t->activation_sparsity_pattern = calloc((size_t)layers, sizeof(double));
    if (!t->intermediate_size || !t->layer_types || !t->activation_sparsity_pattern)
        return g3n_error_set(err, "out of memory");

    const cJSON *intermediate = cJSON_GetObjectItemCaseSensitive(text, "intermediate_size");
    if (cJSON_IsArray(intermediate)) {
        if (cJSON_GetArraySize(intermediate) != layers)
            return g3n_error_set(err, "intermediate_size has %d entries for %d layers",
                                 cJSON_GetArraySize(intermediate), layers);
        for (int i = 0; i < layers; i++) {
            const cJSON *v = cJSON_GetArrayItem(intermediate, i);
            if (!cJSON_IsNumber(v) || v->valuedouble <= 0)
                return g3n_error_set(err, "intermediate_size[%d] is not a positive number", i);
            t->intermediate_size[i] = (int64_t)v->valuedouble;
        }
    } else {
        int64_t width;
        GET_INT(text, "intermediate_size", 16384, width);
        for (int i = 0; i < layers; i++)
            t->intermediate_size[i] = width;
    }

    const cJSON *types = cJSON_GetObjectItemCaseSensitive(text, "layer_types");
    if (types && !cJSON_IsNull(types)) {
        if (!cJSON_IsArray(types) || cJSON_GetArraySize(types) != layers)
            return g3n_error_set(err, "layer_types must list %d layers", layers);
        for (int i = 0; i < layers; i++) {
            const cJSON *v = cJSON_GetArrayItem(types, i);
            if (cJSON_IsString(v) && strcmp(v->valuestring, "full_attention") == 0)
                t->layer_types[i] = G3N_LAYER_FULL;
            else if (cJSON_IsString(v) && strcmp(v->valuestring, "sliding_attention") == 0)
                t->layer_types[i] = G3N_LAYER_SLIDING;
            else
                return g3n_error_set(err, "layer_types[%d] is not full_attention or sliding_attention", i);
        }
    } else {
        for (int i = 0; i < layers; i++)
            t->layer_types[i] = (i + 1) % 5 == 0 ? G3N_LAYER_FULL : G3N_LAYER_SLIDING;
    }

    const cJSON *sparsity = cJSON_GetObjectItemCaseSensitive(text, "activation_sparsity_pattern");
    if (cJSON_IsArray(sparsity)) {
        if (cJSON_GetArraySize(sparsity) != layers)
            return g3n_error_set(err, "activation_sparsity_pattern has %d entries for %d layers",
                                 cJSON_GetArraySize(sparsity), layers);
        for (int i = 0; i < layers; i++) {
            const cJSON *v = cJSON_GetArrayItem(sparsity, i);
            if (!cJSON_IsNumber(v) || v->valuedouble < 0 || v->valuedouble >= 1)
                return g3n_error_set(err, "activation_sparsity_pattern[%d] must be in [0, 1)", i);
            t->activation_sparsity_pattern[i] = v->valuedouble;
        }
    } else if (cJSON_IsNumber(sparsity)) {
        for (int i = 0; i < layers; i++)
            t->activation_sparsity_pattern[i] = sparsity->valuedouble;
    } else {
        int sparse_layers = layers > 10 ? 10 : 0;
        for (int i = 0; i < layers; i++)
            t->activation_sparsity_pattern[i] = i < sparse_layers ? 0.95 : 0.0;
    }

    const cJSON *eos = cJSON_GetObjectItemCaseSensitive(text, "eos_token_id");
    t->num_eos_token_ids = 0;
    if (cJSON_IsArray(eos)) {
        for (const cJSON *v = eos->child; v && t->num_eos_token_ids < 8; v = v->next)
            if (cJSON_IsNumber(v))
                t->eos_token_ids[t->num_eos_token_ids++] = v->valueint;
    } else if (cJSON_IsNumber(eos)) {
        t->eos_token_ids[t->num_eos_token_ids++] = eos->valueint;
    } else {
        t->eos_token_ids[t->num_eos_token_ids++] = 1;
    }
    return parse_rope_theta(text, t, err);
}

static int parse_root(g3n_model_config *c, g3n_error *err)
{
    const cJSON *root = c->root;
    if (!cJSON_IsObject(root))
        return g3n_error_set(err, "config is not a JSON object");
    const cJSON *text = cJSON_GetObjectItemCaseSensitive(root, "text_config");
    if (!text) /* a bare text config (model_type gemma3n_text) */
        text = root;
    if (!cJSON_IsObject(text))
        return g3n_error_set(err, "text_config is not an object");
    if (parse_text(text, &c->text, err) != G3N_OK)
        return g3n_error_prefix(err, "text_config");
    c->audio_json = cJSON_GetObjectItemCaseSensitive(root, "audio_config");
    c->vision_json = cJSON_GetObjectItemCaseSensitive(root, "vision_config");
    if (c->audio_json && !cJSON_IsObject(c->audio_json))
        c->audio_json = NULL;
    if (c->vision_json && !cJSON_IsObject(c->vision_json))
        c->vision_json = NULL;

    GET_INT(root, "audio_soft_tokens_per_image", 188, c->audio_soft_tokens_per_image);
    GET_INT(root, "vision_soft_tokens_per_image", 256, c->vision_soft_tokens_per_image);
    GET_INT(root, "boi_token_id", 255999, c->boi_token_id);
    GET_INT(root, "eoi_token_id", 262144, c->eoi_token_id);
    GET_INT(root, "image_token_id", 262145, c->image_token_id);
    GET_INT(root, "boa_token_id", 256000, c->boa_token_id);
    GET_INT(root, "eoa_token_id", 262272, c->eoa_token_id);
    GET_INT(root, "audio_token_id", 262273, c->audio_token_id);
    /* top-level eos list (released configs put [1, 106] here) overrides the text one */
    const cJSON *eos = cJSON_GetObjectItemCaseSensitive(root, "eos_token_id");
    if (text != root && (cJSON_IsArray(eos) || cJSON_IsNumber(eos))) {
        c->text.num_eos_token_ids = 0;
        if (cJSON_IsNumber(eos))
            c->text.eos_token_ids[c->text.num_eos_token_ids++] = eos->valueint;
        for (const cJSON *v = cJSON_IsArray(eos) ? eos->child : NULL; v && c->text.num_eos_token_ids < 8; v = v->next)
            if (cJSON_IsNumber(v))
                c->text.eos_token_ids[c->text.num_eos_token_ids++] = v->valueint;
    }

    static const cJSON empty = {0};
    const cJSON *vision = c->vision_json ? c->vision_json : &empty;
    const cJSON *audio = c->audio_json ? c->audio_json : &empty;
    GET_INT(vision, "hidden_size", 2048, c->vision_hidden_size);
    GET_INT(vision, "vocab_size", 128, c->vision_vocab_size);
    GET_INT(vision, "vocab_offset", 262144, c->vision_vocab_offset);
    GET_DOUBLE(vision, "rms_norm_eps", 1e-6, c->vision_rms_norm_eps);
    GET_INT(audio, "hidden_size", 1536, c->audio_hidden_size);
    GET_INT(audio, "vocab_size", 128, c->audio_vocab_size);
    GET_INT(audio, "vocab_offset", 262272, c->audio_vocab_offset);
    GET_DOUBLE(audio, "rms_norm_eps", 1e-6, c->audio_rms_norm_eps);
    if (c->vision_soft_tokens_per_image < 0)
        return g3n_error_set(err, "vision_soft_tokens_per_image %lld must not be negative",
                             (long long)c->vision_soft_tokens_per_image);
    if (c->audio_soft_tokens_per_image < 0)
        return g3n_error_set(err, "audio_soft_tokens_per_image %lld must not be negative",
                             (long long)c->audio_soft_tokens_per_image);
    if (!(c->vision_rms_norm_eps > 0) || c->vision_rms_norm_eps > 1)
        return g3n_error_set(err, "vision_config.rms_norm_eps %g must be in (0, 1]", c->vision_rms_norm_eps);
    if (!(c->audio_rms_norm_eps > 0) || c->audio_rms_norm_eps > 1)
        return g3n_error_set(err, "audio_config.rms_norm_eps %g must be in (0, 1]", c->audio_rms_norm_eps);
    return G3N_OK;
}

int g3n_config_parse(g3n_model_config *config, const char *json_text, g3n_error *err)
{
    memset(config, 0, sizeof(*config));
    config->root = cJSON_Parse(json_text);
    if (!config->root)
        return g3n_error_set(err, "config: invalid JSON");
    if (parse_root(config, err) != G3N_OK) {
        g3n_config_free(config);
        return G3N_ERR;
    }
    return G3N_OK;
}

int g3n_config_load(g3n_model_config *config, const char *path, g3n_error *err)
{
    memset(config, 0, sizeof(*config));
    char file[1024];
    struct stat st;
    if (stat(path, &st) == 0 && S_ISDIR(st.st_mode))
        snprintf(file, sizeof(file), "%s/config.json", path);
    else
        snprintf(file, sizeof(file), "%s", path);
    if (g3n_json_load_file(file, &config->root, err) != G3N_OK)
        return G3N_ERR;
    snprintf(config->path, sizeof(config->path), "%s", file);
    if (parse_root(config, err) != G3N_OK) {
        g3n_error_prefix(err, "%s", file);
        g3n_config_free(config);
        return G3N_ERR;
    }
    return G3N_OK;
}

void g3n_config_free(g3n_model_config *config)
{
    if (!config)
        return;
    free(config->text.intermediate_size);
    free(config->text.layer_types);
    free(config->text.activation_sparsity_pattern);
    cJSON_Delete(config->root);
    memset(config, 0, sizeof(*config));
}

int g3n_text_config_kv_source_layer(const g3n_text_config *t, int layer)
{
    int first_shared = t->num_hidden_layers - t->num_kv_shared_layers;
    if (t->num_kv_shared_layers == 0 || layer < first_shared)
        return layer;
    /* the last non-shared layer of the same type */
    for (int i = first_shared - 1; i >= 0; i--)
        if (t->layer_types[i] == t->layer_types[layer])
            return i;
    return layer;
}
