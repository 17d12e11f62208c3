/* text_math_avx2.c - soft-capping and gelu on 8 floats (text_math.h;
 * compiled with -mavx2 -mfma, called only after g3n_isa_active() reported
 * AVX2), through the accurate tanh of simd_exp_avx2.h (its exp argument
 * clamped at -87, e^-87 ~ 1.6e-38: tanh is 1 to the last bit, and gelu's far
 * negative tail is below 1e-37 instead of a denormal). */
#include <immintrin.h>

#include "simd_exp_avx2.h"
#include "text_math.h"

void g3n_text_softcap_avx2(float *x, int64_t n, float cap)
{
    const __m256 c = _mm256_set1_ps(cap);
    for (int64_t i = 0; i < n; i += 8) {
        const __m256 v = _mm256_div_ps(_mm256_loadu_ps(x + i), c);
        _mm256_storeu_ps(x + i, _mm256_mul_ps(g3n_tanh_avx2(v), c));
    }
}

void g3n_text_gelu_tanh_avx2(const float *x, float *out, int64_t n)
{
    const __m256 k = _mm256_set1_ps(0.7978845608028654f), c = _mm256_set1_ps(0.044715f);
    const __m256 half = _mm256_set1_ps(0.5f), one = _mm256_set1_ps(1.0f), two = _mm256_set1_ps(2.0f);
    for (int64_t i = 0; i < n; i += 8) {
        const __m256 v = _mm256_loadu_ps(x + i);
        const __m256 cube = _mm256_mul_ps(_mm256_mul_ps(v, v), v);
        const __m256 u = _mm256_mul_ps(k, _mm256_fmadd_ps(c, cube, v));
        const __m256 a = g3n_abs_avx2(u);
        const __m256 e = g3n_exp_negative_avx2(_mm256_mul_ps(a, _mm256_set1_ps(-2.0f)));
        const __m256 negative = _mm256_cmp_ps(u, _mm256_setzero_ps(), _CMP_LT_OQ);
        const __m256 numerator = _mm256_blendv_ps(two, _mm256_mul_ps(two, e), negative);
        const __m256 large = _mm256_div_ps(numerator, _mm256_add_ps(one, e));
        const __m256 small = _mm256_cmp_ps(a, _mm256_set1_ps(0.25f), _CMP_LT_OQ);
        const __m256 one_plus = _mm256_blendv_ps(large, _mm256_add_ps(one, g3n_tanh_avx2(u)), small);
        _mm256_storeu_ps(out + i, _mm256_mul_ps(_mm256_mul_ps(half, v), one_plus));
    }
}
