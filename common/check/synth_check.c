/* The `synth` check kind: synth(name, shape, seed) for each golden tensor. */
#include <stdlib.h>

#include "check_kinds.h"
#include "synth.h"

int g3n_check_kind_synth(g3n_check_case *c, g3n_error *err)
{
    uint64_t seed;
    if (g3n_check_seed(c, &seed, err) != G3N_OK)
        return G3N_ERR;
    if (!c->golden)
        return g3n_error_set(err, "%s: no golden.safetensors", c->case_dir);
    int count = g3n_safetensors_count(c->golden);
    if (count == 0)
        return g3n_error_set(err, "%s: golden.safetensors holds no tensors", c->case_dir);
    for (int i = 0; i < count; i++) {
        const g3n_safetensors_entry *e = g3n_safetensors_entry_at(c->golden, i);
        g3n_tensor golden;
        if (g3n_safetensors_get(c->golden, e->name, &golden, err) != G3N_OK)
            return G3N_ERR;
        int64_t n = g3n_tensor_numel(&golden);
        float *values = malloc(sizeof(float) * (size_t)(n ? n : 1));
        if (!values)
            return g3n_error_set(err, "out of memory");
        g3n_synth_fill_f32(e->name, e->ndim, e->shape, seed, 0, n, values);
        /* bit-exact: both limits 0 */
        g3n_check_compare_f32(c, e->name, values, n, &golden, 0.0, 0.0);
        free(values);
    }
    return G3N_OK;
}
