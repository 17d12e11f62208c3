/* text_math.c - dispatch of the vectorised tanh (text_math.h). */
#include "text_math.h"

#include <math.h>

#include "matmul.h"
#include "ops.h"

void g3n_text_softcap(float *x, int64_t n, float cap)
{
    int64_t done = 0;
    if (g3n_isa_active() == G3N_ISA_AVX512) {
        done = n / 16 * 16;
        g3n_text_softcap_avx512(x, done, cap);
    } else if (g3n_isa_active() == G3N_ISA_AVX2) {
        done = n / 8 * 8;
        g3n_text_softcap_avx2(x, done, cap);
    }
    for (int64_t i = done; i < n; i++)
        x[i] = tanhf(x[i] / cap) * cap;
}

void g3n_text_gelu_tanh(const float *x, float *out, int64_t n)
{
    int64_t done = 0;
    if (g3n_isa_active() == G3N_ISA_AVX512) {
        done = n / 16 * 16;
        g3n_text_gelu_tanh_avx512(x, out, done);
    } else if (g3n_isa_active() == G3N_ISA_AVX2) {
        done = n / 8 * 8;
        g3n_text_gelu_tanh_avx2(x, out, done);
    }
    for (int64_t i = done; i < n; i++)
        out[i] = g3n_gelu_tanh_scalar(x[i]);
}
