/* synth.h - the synthetic weights the fixtures use, bit for bit.
 *
 * synth(name, shape, seed) as defined in tests/fixtures/README.md: a
 * splitmix64 stream keyed by FNV-1a-64(name) and the seed; >= 2-D tensors get
 * small values scaled by fan-in, 1-D "...weight" tensors (norm scales) values
 * near 1, other 1-D tensors small values. Every value is exact in bfloat16.
 */
#ifndef G3N_SYNTH_H
#define G3N_SYNTH_H

#include <stdint.h>

#include "tensor.h"

/* Writes elements [first, first + count) of synth(name, shape, seed) as f32. */
void g3n_synth_fill_f32(const char *name, int ndim, const int64_t *shape, uint64_t seed, int64_t first, int64_t count,
                        float *out);
/* The same values as bf16 (exact). */
void g3n_synth_fill_bf16(const char *name, int ndim, const int64_t *shape, uint64_t seed, int64_t first,
                         int64_t count, uint16_t *out);

#endif
