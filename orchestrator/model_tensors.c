#include "model_tensors.h"

#include "audio_encoder.h"
#include "embedder_tensors.h"
#include "text_model.h"
#include "vision_encoder.h"

int g3n_model_list_tensors(const g3n_model_config *config, g3n_tensor_list *list, g3n_error *err)
{
    if (g3n_text_model_list_tensors(config, list, err) != G3N_OK ||
        g3n_multimodal_embedders_list_tensors(config, list, err) != G3N_OK)
        return G3N_ERR;
    if (config->audio_json && g3n_audio_encoder_list_tensors(config, list, err) != G3N_OK)
        return G3N_ERR;
    if (config->vision_json && g3n_vision_encoder_list_tensors(config, list, err) != G3N_OK)
        return G3N_ERR;
    return G3N_OK;
}
