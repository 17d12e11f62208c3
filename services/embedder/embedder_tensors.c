#include "embedder_tensors.h"

static int list_one(g3n_tensor_list *list, const char *prefix, int64_t hidden, int64_t vocab, int64_t text_hidden,
                    g3n_error *err)
{
    const int64_t embedding[2] = {vocab, hidden}, norm[1] = {hidden}, projection[2] = {text_hidden, hidden};
    if (g3n_tensor_list_add(list, 2, embedding, err, "%s.embedding.weight", prefix) != G3N_OK ||
        g3n_tensor_list_add(list, 2, projection, err, "%s.embedding_projection.weight", prefix) != G3N_OK ||
        g3n_tensor_list_add(list, 1, norm, err, "%s.hard_embedding_norm.weight", prefix) != G3N_OK ||
        g3n_tensor_list_add(list, 1, norm, err, "%s.soft_embedding_norm.weight", prefix) != G3N_OK)
        return G3N_ERR;
    return G3N_OK;
}

int g3n_multimodal_embedders_list_tensors(const g3n_model_config *config, g3n_tensor_list *list, g3n_error *err)
{
    const int64_t text_hidden = config->text.hidden_size;
    if (config->audio_json && list_one(list, "model.embed_audio", config->audio_hidden_size,
                                       config->audio_vocab_size, text_hidden, err) != G3N_OK)
        return G3N_ERR;
    if (config->vision_json && list_one(list, "model.embed_vision", config->vision_hidden_size,
                                        config->vision_vocab_size, text_hidden, err) != G3N_OK)
        return G3N_ERR;
    return G3N_OK;
}
