/* embedder_tensors.h - the checkpoint tensors of the two multimodal embedders. */
#ifndef G3N_EMBEDDER_TENSORS_H
#define G3N_EMBEDDER_TENSORS_H

#include "config.h"
#include "tensor_list.h"

/* Appends model.embed_vision.* and model.embed_audio.* (name + shape). */
int g3n_multimodal_embedders_list_tensors(const g3n_model_config *config, g3n_tensor_list *list, g3n_error *err);

#endif
