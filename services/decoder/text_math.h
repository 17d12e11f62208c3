/* text_math.h - vectorised tanh for the fast weight formats' elementwise
 * work (the head's soft-capping over the whole vocabulary every token and
 * the MLP's gelu), a few ulp from libm's tanhf. The exact path keeps
 * libm (g3n_gelu_tanh, tanhf); these are used only when --weights is not f32. */
#ifndef G3N_TEXT_MATH_H
#define G3N_TEXT_MATH_H

#include <stdint.h>

/* x[i] = tanh(x[i] / cap) * cap, in place. */
void g3n_text_softcap(float *x, int64_t n, float cap);
/* out[i] = gelu_tanh(x[i]) (PyTorch gelu(approximate="tanh")); out may be x. */
void g3n_text_gelu_tanh(const float *x, float *out, int64_t n);

/* AVX-512 bodies (text_math_avx512.c): whole vectors only, n a multiple of 16. */
void g3n_text_softcap_avx512(float *x, int64_t n, float cap);
void g3n_text_gelu_tanh_avx512(const float *x, float *out, int64_t n);
/* AVX2 bodies (text_math_avx2.c): n a multiple of 8. */
void g3n_text_softcap_avx2(float *x, int64_t n, float cap);
void g3n_text_gelu_tanh_avx2(const float *x, float *out, int64_t n);

#endif
