/* text_math.c - the vectorised tanh of each instruction-set level (text_math.h). */
#include "text_math.h"

#include <math.h>
#include <stddef.h>

#include "isa.h"
#include "ops.h"

/* Bodies of one level: whole vectors of `width` floats; the tail is scalar. */
typedef struct text_math_kernels {
    int64_t width; /* 0: none (portable: all scalar) */
    void (*softcap)(float *x, int64_t n, float cap);
    void (*gelu_tanh)(const float *x, float *out, int64_t n);
} text_math_kernels;

static const text_math_kernels kernels_by_isa[G3N_ISA_COUNT] = {
    [G3N_ISA_PORTABLE] = {0, NULL, NULL},
    [G3N_ISA_AVX2] = {8, g3n_text_softcap_avx2, g3n_text_gelu_tanh_avx2},
    [G3N_ISA_AVX512] = {16, g3n_text_softcap_avx512, g3n_text_gelu_tanh_avx512},
};

void g3n_text_softcap(float *x, int64_t n, float cap)
{
    const text_math_kernels *k = &kernels_by_isa[g3n_isa_active()];
    int64_t done = 0;
    if (k->softcap) {
        done = n / k->width * k->width;
        k->softcap(x, done, cap);
    }
    for (int64_t i = done; i < n; i++)
        x[i] = tanhf(x[i] / cap) * cap;
}

void g3n_text_gelu_tanh(const float *x, float *out, int64_t n)
{
    const text_math_kernels *k = &kernels_by_isa[g3n_isa_active()];
    int64_t done = 0;
    if (k->gelu_tanh) {
        done = n / k->width * k->width;
        k->gelu_tanh(x, out, done);
    }
    for (int64_t i = done; i < n; i++)
        out[i] = g3n_gelu_tanh_scalar(x[i]);
}
