/* tensor_list.h - a list of (checkpoint name, dtype, shape): what a model
 * component expects to find in a checkpoint. Each component enumerates its
 * tensors from the config (g3n_text_model_list_tensors, ...); `g3n synth` writes
 * exactly that list, and loaders can check a checkpoint against it. */
#ifndef G3N_TENSOR_LIST_H
#define G3N_TENSOR_LIST_H

#include <stdint.h>

#include "status.h"
#include "tensor.h"

typedef struct g3n_tensor_spec {
    char name[192];
    int ndim;
    int64_t shape[G3N_MAX_DIMS];
} g3n_tensor_spec;

typedef struct g3n_tensor_list {
    g3n_tensor_spec *items;
    int count;
    int capacity;
} g3n_tensor_list;

/* Appends name (printf-style) with the given shape. */
int g3n_tensor_list_add(g3n_tensor_list *list, int ndim, const int64_t *shape, g3n_error *err, const char *name_format,
                        ...) G3N_PRINTF(5, 6);
void g3n_tensor_list_free(g3n_tensor_list *list);
/* NULL when absent. */
const g3n_tensor_spec *g3n_tensor_list_find(const g3n_tensor_list *list, const char *name);

#endif
