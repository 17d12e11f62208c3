/* text_math_avx512.c - soft-capping and gelu on 16 floats (text_math.h;
 * compiled with -mavx512*, called only after g3n_isa_active() reported
 * AVX-512), through the accurate tanh of simd_exp_avx512.h. */
#include <immintrin.h>

#include "simd_exp_avx512.h"
#include "text_math.h"

void g3n_text_softcap_avx512(float *x, int64_t n, float cap)
{
    const __m512 c = _mm512_set1_ps(cap);
    for (int64_t i = 0; i < n; i += 16) {
        const __m512 v = _mm512_div_ps(_mm512_loadu_ps(x + i), c);
        _mm512_storeu_ps(x + i, _mm512_mul_ps(g3n_tanh_avx512(v), c));
    }
}

void g3n_text_gelu_tanh_avx512(const float *x, float *out, int64_t n)
{
    /* 0.5·x·(1 + tanh(u)), u = sqrt(2/π)·(x + 0.044715·x³), as g3n_gelu_tanh_scalar;
     * 1 + tanh(u) without cancellation: 2/(1 + e) for u > 0, 2e/(1 + e) for
     * u < 0 (e = exp(−2|u|)), 1 + the series for |u| < 0.25 */
    const __m512 k = _mm512_set1_ps(0.7978845608028654f), c = _mm512_set1_ps(0.044715f);
    const __m512 half = _mm512_set1_ps(0.5f), one = _mm512_set1_ps(1.0f), two = _mm512_set1_ps(2.0f);
    for (int64_t i = 0; i < n; i += 16) {
        const __m512 v = _mm512_loadu_ps(x + i);
        const __m512 cube = _mm512_mul_ps(_mm512_mul_ps(v, v), v);
        const __m512 u = _mm512_mul_ps(k, _mm512_fmadd_ps(c, cube, v));
        const __m512 a = _mm512_abs_ps(u);
        const __m512 e = g3n_exp_negative_avx512(_mm512_mul_ps(a, _mm512_set1_ps(-2.0f)));
        const __mmask16 negative = _mm512_cmp_ps_mask(u, _mm512_setzero_ps(), _CMP_LT_OQ);
        const __m512 numerator = _mm512_mask_blend_ps(negative, two, _mm512_mul_ps(two, e));
        const __m512 large = _mm512_div_ps(numerator, _mm512_add_ps(one, e));
        const __mmask16 small = _mm512_cmp_ps_mask(a, _mm512_set1_ps(0.25f), _CMP_LT_OQ);
        const __m512 one_plus = _mm512_mask_blend_ps(small, large, _mm512_add_ps(one, g3n_tanh_avx512(u)));
        _mm512_storeu_ps(out + i, _mm512_mul_ps(_mm512_mul_ps(half, v), one_plus));
    }
}
