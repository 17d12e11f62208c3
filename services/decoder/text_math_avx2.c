/* text_math_avx2.c - tanh on 8 floats (text_math.h; compiled with -mavx2
 * -mfma, called only after g3n_isa_active() reported AVX2): the AVX-512
 * body's method (text_math_avx512.c) on 256-bit vectors. AVX2 has no
 * vscalefps, so 2^n is built in the exponent bits, with the argument of exp
 * clamped at -87 (e^-87 ~ 1.6e-38, still a normal float): tanh is then 1 to
 * the last bit, and gelu's far negative tail is below 1e-37 instead of a
 * denormal. */
#include <immintrin.h>

#include "text_math.h"

static inline __attribute__((always_inline)) __m256 exp_negative(__m256 y)
{
    y = _mm256_max_ps(y, _mm256_set1_ps(-87.0f));
    const __m256 n = _mm256_round_ps(_mm256_mul_ps(y, _mm256_set1_ps(1.44269504088896341f)),
                                     _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC);
    __m256 r = _mm256_fnmadd_ps(n, _mm256_set1_ps(0.693359375f), y);
    r = _mm256_fnmadd_ps(n, _mm256_set1_ps(-2.12194440e-4f), r);
    __m256 p = _mm256_set1_ps(1.0f / 5040.0f);
    p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(1.0f / 720.0f));
    p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(1.0f / 120.0f));
    p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(1.0f / 24.0f));
    p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(1.0f / 6.0f));
    p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(0.5f));
    p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(1.0f));
    p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(1.0f));
    /* n in [-126, 0]: 2^n is a normal float */
    const __m256i bits = _mm256_slli_epi32(_mm256_add_epi32(_mm256_cvtps_epi32(n), _mm256_set1_epi32(127)), 23);
    return _mm256_mul_ps(p, _mm256_castsi256_ps(bits));
}

static inline __attribute__((always_inline)) __m256 abs8(__m256 x)
{
    return _mm256_andnot_ps(_mm256_set1_ps(-0.0f), x);
}

static inline __attribute__((always_inline)) __m256 tanh8(__m256 x)
{
    const __m256 a = abs8(x);
    const __m256 a2 = _mm256_mul_ps(a, a);
    __m256 s = _mm256_set1_ps(-1382.0f / 155925.0f);
    s = _mm256_fmadd_ps(s, a2, _mm256_set1_ps(62.0f / 2835.0f));
    s = _mm256_fmadd_ps(s, a2, _mm256_set1_ps(-17.0f / 315.0f));
    s = _mm256_fmadd_ps(s, a2, _mm256_set1_ps(2.0f / 15.0f));
    s = _mm256_fmadd_ps(s, a2, _mm256_set1_ps(-1.0f / 3.0f));
    s = _mm256_fmadd_ps(_mm256_mul_ps(s, a2), a, a);
    const __m256 e = exp_negative(_mm256_mul_ps(a, _mm256_set1_ps(-2.0f)));
    const __m256 one = _mm256_set1_ps(1.0f);
    const __m256 l = _mm256_div_ps(_mm256_sub_ps(one, e), _mm256_add_ps(one, e));
    const __m256 small = _mm256_cmp_ps(a, _mm256_set1_ps(0.25f), _CMP_LT_OQ);
    const __m256 t = _mm256_blendv_ps(l, s, small);
    return _mm256_or_ps(t, _mm256_and_ps(x, _mm256_set1_ps(-0.0f)));
}

void g3n_text_softcap_avx2(float *x, int64_t n, float cap)
{
    const __m256 c = _mm256_set1_ps(cap);
    for (int64_t i = 0; i < n; i += 8) {
        const __m256 v = _mm256_div_ps(_mm256_loadu_ps(x + i), c);
        _mm256_storeu_ps(x + i, _mm256_mul_ps(tanh8(v), c));
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
        const __m256 a = abs8(u);
        const __m256 e = exp_negative(_mm256_mul_ps(a, _mm256_set1_ps(-2.0f)));
        const __m256 negative = _mm256_cmp_ps(u, _mm256_setzero_ps(), _CMP_LT_OQ);
        const __m256 numerator = _mm256_blendv_ps(two, _mm256_mul_ps(two, e), negative);
        const __m256 large = _mm256_div_ps(numerator, _mm256_add_ps(one, e));
        const __m256 small = _mm256_cmp_ps(a, _mm256_set1_ps(0.25f), _CMP_LT_OQ);
        const __m256 one_plus = _mm256_blendv_ps(large, _mm256_add_ps(one, tanh8(u)), small);
        _mm256_storeu_ps(out + i, _mm256_mul_ps(_mm256_mul_ps(half, v), one_plus));
    }
}
