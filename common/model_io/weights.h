/* weights.h - where a model gets its tensors: a checkpoint folder or synth.
 *
 * A model asks for a tensor by its checkpoint name (e.g.
 * "model.language_model.layers.0.self_attn.q_proj.weight") and the shape it
 * expects; it gets the same answer from either source:
 *   - checkpoint: a view of the mmapped file, in its stored dtype (BF16, F16, F32);
 *   - synth: synth(name, shape, seed) generated on first request in the source's
 *     dtype (BF16 by default: exact, half the memory of F32) and kept until close.
 * A missing tensor or a wrong shape is an error naming the tensor and both shapes.
 * Returned tensors are borrowed: valid until g3n_weights_close. Thread-safe.
 */
#ifndef G3N_WEIGHTS_H
#define G3N_WEIGHTS_H

#include <stdint.h>

#include "safetensors.h"
#include "status.h"
#include "tensor.h"

typedef struct g3n_weights g3n_weights;

int g3n_weights_open_checkpoint(g3n_weights **out, const char *path, g3n_error *err);
/* dtype: G3N_DTYPE_BF16 or G3N_DTYPE_F32. */
int g3n_weights_open_synth(g3n_weights **out, uint64_t seed, g3n_dtype dtype, g3n_error *err);
void g3n_weights_close(g3n_weights *weights); /* accepts NULL */

/* "checkpoint PATH" or "synth seed N". */
const char *g3n_weights_describe(const g3n_weights *weights);
/* The checkpoint behind the source, or NULL for synth. */
const g3n_checkpoint *g3n_weights_checkpoint(const g3n_weights *weights);

/* 1 if the tensor exists (synth: always 1). */
int g3n_weights_has(g3n_weights *weights, const char *name);
/* The tensor in its stored dtype, checked against shape[0..ndim). */
int g3n_weights_get(g3n_weights *weights, const char *name, int ndim, const int64_t *shape, g3n_tensor *out,
                    g3n_error *err);
/* The tensor as contiguous f32 (converted once and cached by the source;
 * meant for small tensors: norm scales, per-dim scales, conv kernels). */
int g3n_weights_get_f32(g3n_weights *weights, const char *name, int ndim, const int64_t *shape, const float **out,
                        g3n_error *err);

/* Bytes of memory the source allocated (synth data and f32 copies), for reports. */
uint64_t g3n_weights_allocated_bytes(const g3n_weights *weights);

/* Parses "--synth CONFIG:SEED" style strings: "path/config.json:41". */
int g3n_parse_synth_spec(const char *spec, char *config_path, size_t config_path_size, uint64_t *seed, g3n_error *err);

#endif
