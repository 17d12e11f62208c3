#include "model_tensors.h"

#include <stddef.h>

#include "embedder_tensors.h"

/* The component listings land with their components; until one has, synth
 * refuses rather than write an incomplete checkpoint. */
int g3n_text_model_list_tensors(const g3n_model_config *, g3n_tensor_list *, g3n_error *) __attribute__((weak));
int g3n_audio_encoder_list_tensors(const g3n_model_config *, g3n_tensor_list *, g3n_error *) __attribute__((weak));
int g3n_vision_encoder_list_tensors(const g3n_model_config *, g3n_tensor_list *, g3n_error *) __attribute__((weak));

int g3n_model_list_tensors(const g3n_model_config *config, g3n_tensor_list *list, g3n_error *err)
{
    if (!g3n_text_model_list_tensors || !g3n_audio_encoder_list_tensors || !g3n_vision_encoder_list_tensors)
        return g3n_error_set(err, "a model component cannot list its tensors yet");
    if (g3n_text_model_list_tensors(config, list, err) != G3N_OK ||
        g3n_multimodal_embedders_list_tensors(config, list, err) != G3N_OK)
        return G3N_ERR;
    if (config->audio_json && g3n_audio_encoder_list_tensors(config, list, err) != G3N_OK)
        return G3N_ERR;
    if (config->vision_json && g3n_vision_encoder_list_tensors(config, list, err) != G3N_OK)
        return G3N_ERR;
    return G3N_OK;
}
