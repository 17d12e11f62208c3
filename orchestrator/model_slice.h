/* model_slice.h - `g3n slice`: a MatFormer sub-model (common/model_io/submodel.h)
 * written as a checkpoint folder of its own, in the Hugging Face layout.
 *
 * The folder holds config.json (the source document with the text config's
 * num_hidden_layers, per-layer intermediate_size list, layer_types,
 * activation_sparsity_pattern and num_kv_shared_layers of the sub-model),
 * model-0000i-of-0000N.safetensors shards, model.safetensors.index.json, and
 * copies of the source folder's tokenizer and processor files. Tensors keep
 * their stored dtype:
 *   layers.{j}.*                     from layers.{kept[j]}.*; mlp gate/up: the first k rows,
 *                                    down: the first k columns
 *   embed_tokens_per_layer           the kept layers' slices of every row
 *   per_layer_model_projection       the kept layers' rows
 *   everything else                  as stored (embeddings, norms, vision, audio)
 * (the MatFormer Lab recipe). Streams row by row from the source (mapped
 * checkpoint or synth), so memory stays flat whatever the model size; a
 * tensor the source does not hold (KV-shared layers' unused k/v projections
 * in a transformers-5 save) is left out. */
#ifndef G3N_MODEL_SLICE_H
#define G3N_MODEL_SLICE_H

#include <stdint.h>

#include "config.h"
#include "status.h"
#include "submodel.h"
#include "weights.h"

typedef struct g3n_slice_stats {
    int tensors, shards;
    uint64_t bytes;
} g3n_slice_stats;

/* source_dir: the checkpoint folder whose tokenizer/processor files are
 * copied, or NULL (synthetic weights). out_dir is created if missing. */
int g3n_slice_checkpoint(g3n_weights *weights, const g3n_model_config *config, const g3n_submodel *submodel,
                         const char *source_dir, const char *out_dir, uint64_t shard_size, g3n_slice_stats *stats,
                         g3n_error *err);

#endif
