/* submodel.h - MatFormer sub-models: the smaller models inside a Gemma 3n
 * checkpoint (issue 21).
 *
 * Gemma 3n's language model is a MatFormer: every layer's feed-forward units
 * are ordered so that a prefix of them is a trained narrower layer, and whole
 * layers may be left out. A sub-model is
 *   - the layers kept (ascending source indices; the others are skipped), and
 *   - each kept layer's MLP width k: the first k rows of gate_proj/up_proj and
 *     the first k columns of down_proj.
 * Everything that depends on the layer list follows it: layer types,
 * activation sparsity, the per-layer embedding slices and projection rows of
 * the kept layers, and KV sharing. In Gemma 3n the last num_kv_shared_layers
 * layers read the KV cache of the last non-shared layer of their attention
 * type; a sub-model must keep every such source layer that a kept shared layer
 * reads, so that each kept layer reads exactly what it read in the full model
 * (the sliced config's num_kv_shared_layers = the kept shared layers, and the
 * transformers rule then picks the same sources).
 *
 * Written as a SPEC string:
 *   a preset name   full, e2b, e1.96b, e2.54b (see g3n_submodel_presets);
 *   a JSON object   {"name": "...", "layers_to_skip": [20, 21], "intermediate_size": 8192 | [..]}
 *                   (intermediate_size: one number for every kept layer, or a list with one entry per
 *                   kept layer, as Google's slicing configs give it, or one per layer of the model,
 *                   skipped ones included; absent: the layers' own widths);
 *   @FILE or a path ending in .json holding that object.
 * Presets are defined relative to the loaded config (never E2B/E4B sizes):
 * see g3n_submodel_presets.
 */
#ifndef G3N_SUBMODEL_H
#define G3N_SUBMODEL_H

#include <stdint.h>

#include "config.h"
#include "status.h"

struct cJSON;

typedef struct g3n_submodel {
    char name[64];              /* preset name, the JSON "name", or "custom" */
    int source_layers;          /* layers of the model it was made for */
    int num_layers;             /* kept layers */
    int *layers;                /* [num_layers] source index of each kept layer, ascending; owned */
    int64_t *intermediate_size; /* [num_layers] MLP width of each kept layer; owned */
} g3n_submodel;

/* "full, e2b, e1.96b, e2.54b" with one line each on what they keep. */
const char *g3n_submodel_presets(void);

/* Parses and validates SPEC against the full model's text config (errors name
 * the problem: unknown preset or key, a layer that does not exist, a width
 * above the layer's, a skip that breaks KV sharing, ...). */
int g3n_submodel_parse(g3n_submodel *out, const char *spec, const g3n_text_config *full, g3n_error *err);
/* The same from a parsed JSON object. */
int g3n_submodel_from_json(g3n_submodel *out, const struct cJSON *object, const g3n_text_config *full,
                           g3n_error *err);
void g3n_submodel_free(g3n_submodel *submodel); /* accepts a zeroed struct */

/* 1 if it keeps every layer at its full width. */
int g3n_submodel_is_full(const g3n_submodel *submodel, const g3n_text_config *full);

/* The text config of the sub-model (as a sliced checkpoint's config.json
 * gives it): out owns its arrays; free with g3n_text_config_free_arrays. */
int g3n_submodel_text_config(const g3n_submodel *submodel, const g3n_text_config *full, g3n_text_config *out,
                             g3n_error *err);
void g3n_text_config_free_arrays(g3n_text_config *config);

/* A copy of a config.json document (root: Gemma3nConfig with text_config, or
 * a bare text config) with the text config's num_hidden_layers,
 * intermediate_size, layer_types, activation_sparsity_pattern and
 * num_kv_shared_layers replaced by the sub-model's. NULL when out of memory. */
struct cJSON *g3n_submodel_config_json(const g3n_submodel *submodel, const g3n_text_config *full,
                                       const struct cJSON *root);

/* One line: "e2b: 30 of 35 layers (skipped 20-24), MLP widths 8192" etc. */
void g3n_submodel_describe(const g3n_submodel *submodel, const g3n_text_config *full, char *out, size_t size);

#endif
