#include "synth.h"

#include <math.h>
#include <string.h>

#define SYNTH_GOLDEN 0x9E3779B97F4A7C15ull

typedef enum synth_kind { SYNTH_MATRIX, SYNTH_NORM, SYNTH_SMALL } synth_kind;

typedef struct synth_stream {
    uint64_t base;
    synth_kind kind;
    float matrix_scale; /* 2^-(7 + e) */
} synth_stream;

static uint64_t fnv1a64(const char *s)
{
    uint64_t h = 0xCBF29CE484222325ull;
    for (; *s; s++)
        h = (h ^ (unsigned char)*s) * 0x100000001B3ull;
    return h;
}

static int ends_with(const char *s, const char *suffix)
{
    size_t n = strlen(s), m = strlen(suffix);
    return n >= m && strcmp(s + n - m, suffix) == 0;
}

static synth_stream synth_stream_init(const char *name, int ndim, const int64_t *shape, uint64_t seed)
{
    synth_stream s;
    s.base = fnv1a64(name) ^ (seed * SYNTH_GOLDEN);
    s.matrix_scale = 0.0f;
    if (ndim >= 2) {
        int64_t fan_in = 1;
        for (int i = 1; i < ndim; i++)
            fan_in *= shape[i];
        int log2_ceil = 0;
        while (log2_ceil < 62 && ((int64_t)1 << log2_ceil) < fan_in)
            log2_ceil++;
        int e = (log2_ceil + 1) / 2;
        s.kind = SYNTH_MATRIX;
        s.matrix_scale = ldexpf(1.0f, -(7 + e));
    } else if (ends_with(name, "weight")) {
        s.kind = SYNTH_NORM;
    } else {
        s.kind = SYNTH_SMALL;
    }
    return s;
}

static inline float synth_value(const synth_stream *s, int64_t i)
{
    uint64_t z = s->base + (uint64_t)(i + 1) * SYNTH_GOLDEN;
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
    z = z ^ (z >> 31);
    switch (s->kind) {
    case SYNTH_MATRIX:
        return (float)((int)(z >> 56) - 128) * s->matrix_scale;
    case SYNTH_NORM:
        return 1.0f + (float)((int)(z >> 60) - 8) / 64.0f;
    default:
        return (float)((int)(z >> 56) - 128) * (1.0f / 1024.0f);
    }
}

void g3n_synth_fill_f32(const char *name, int ndim, const int64_t *shape, uint64_t seed, int64_t first, int64_t count,
                        float *out)
{
    synth_stream s = synth_stream_init(name, ndim, shape, seed);
#pragma omp parallel for schedule(static) if (count > 65536)
    for (int64_t i = 0; i < count; i++)
        out[i] = synth_value(&s, first + i);
}

void g3n_synth_fill_bf16(const char *name, int ndim, const int64_t *shape, uint64_t seed, int64_t first,
                         int64_t count, uint16_t *out)
{
    synth_stream s = synth_stream_init(name, ndim, shape, seed);
#pragma omp parallel for schedule(static) if (count > 65536)
    for (int64_t i = 0; i < count; i++) {
        union { float f; uint32_t u; } v;
        v.f = synth_value(&s, first + i);
        out[i] = (uint16_t)(v.u >> 16); /* exact: every synth value fits bf16 */
    }
}
