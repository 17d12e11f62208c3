/* model_tensors.h - every tensor a Gemma 3n checkpoint of a config holds:
 * the text model, the multimodal embedders, and the audio and vision towers
 * (each component lists its own). */
#ifndef G3N_MODEL_TENSORS_H
#define G3N_MODEL_TENSORS_H

#include "config.h"
#include "tensor_list.h"

int g3n_model_list_tensors(const g3n_model_config *config, g3n_tensor_list *list, g3n_error *err);

#endif
