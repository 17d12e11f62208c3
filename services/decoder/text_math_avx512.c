/* text_math_avx512.c - tanh on 16 floats (text_math.h; compiled with
 * -mavx512*, called only after g3n_isa_active() reported AVX-512).
 * |x| < 0.25: odd Taylor series to x^11 (next term < 1e-9 relative);
 * else tanh|x| = (1 − e)/(1 + e) with e = exp(−2|x|) (no cancellation: e <= 0.61),
 * exp by n = round(y·log2 e), r = y − n·ln 2 (two-part constant), a degree-7
 * polynomial and vscalefps. Sign restored at the end. */
#include <immintrin.h>

#include "text_math.h"

static inline __attribute__((always_inline)) __m512 exp_negative(__m512 y)
{
    /* y <= 0; below -88 the result underflows to 0 through vscalefps */
    y = _mm512_max_ps(y, _mm512_set1_ps(-104.0f));
    const __m512 n = _mm512_roundscale_ps(_mm512_mul_ps(y, _mm512_set1_ps(1.44269504088896341f)),
                                          _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC);
    __m512 r = _mm512_fnmadd_ps(n, _mm512_set1_ps(0.693359375f), y);
    r = _mm512_fnmadd_ps(n, _mm512_set1_ps(-2.12194440e-4f), r);
    __m512 p = _mm512_set1_ps(1.0f / 5040.0f);
    p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(1.0f / 720.0f));
    p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(1.0f / 120.0f));
    p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(1.0f / 24.0f));
    p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(1.0f / 6.0f));
    p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(0.5f));
    p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(1.0f));
    p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(1.0f));
    return _mm512_scalef_ps(p, n);
}

static inline __attribute__((always_inline)) __m512 tanh16(__m512 x)
{
    const __m512 a = _mm512_abs_ps(x);
    /* small: a·(1 + a²·(c3 + a²·(c5 + a²·(c7 + a²·(c9 + a²·c11))))) */
    const __m512 a2 = _mm512_mul_ps(a, a);
    __m512 s = _mm512_set1_ps(-1382.0f / 155925.0f);
    s = _mm512_fmadd_ps(s, a2, _mm512_set1_ps(62.0f / 2835.0f));
    s = _mm512_fmadd_ps(s, a2, _mm512_set1_ps(-17.0f / 315.0f));
    s = _mm512_fmadd_ps(s, a2, _mm512_set1_ps(2.0f / 15.0f));
    s = _mm512_fmadd_ps(s, a2, _mm512_set1_ps(-1.0f / 3.0f));
    s = _mm512_fmadd_ps(_mm512_mul_ps(s, a2), a, a);
    /* large: (1 - e) / (1 + e) */
    const __m512 e = exp_negative(_mm512_mul_ps(a, _mm512_set1_ps(-2.0f)));
    const __m512 one = _mm512_set1_ps(1.0f);
    const __m512 l = _mm512_div_ps(_mm512_sub_ps(one, e), _mm512_add_ps(one, e));
    const __mmask16 small = _mm512_cmp_ps_mask(a, _mm512_set1_ps(0.25f), _CMP_LT_OQ);
    const __m512 t = _mm512_mask_blend_ps(small, l, s);
    /* sign of x back on */
    const __m512i sign = _mm512_and_si512(_mm512_castps_si512(x), _mm512_set1_epi32((int)0x80000000u));
    return _mm512_castsi512_ps(_mm512_or_si512(_mm512_castps_si512(t), sign));
}

void g3n_text_softcap_avx512(float *x, int64_t n, float cap)
{
    const __m512 c = _mm512_set1_ps(cap);
    for (int64_t i = 0; i < n; i += 16) {
        const __m512 v = _mm512_div_ps(_mm512_loadu_ps(x + i), c);
        _mm512_storeu_ps(x + i, _mm512_mul_ps(tanh16(v), c));
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
        const __m512 e = exp_negative(_mm512_mul_ps(a, _mm512_set1_ps(-2.0f)));
        const __mmask16 negative = _mm512_cmp_ps_mask(u, _mm512_setzero_ps(), _CMP_LT_OQ);
        const __m512 numerator = _mm512_mask_blend_ps(negative, two, _mm512_mul_ps(two, e));
        const __m512 large = _mm512_div_ps(numerator, _mm512_add_ps(one, e));
        const __mmask16 small = _mm512_cmp_ps_mask(a, _mm512_set1_ps(0.25f), _CMP_LT_OQ);
        const __m512 one_plus = _mm512_mask_blend_ps(small, large, _mm512_add_ps(one, tanh16(u)));
        _mm512_storeu_ps(out + i, _mm512_mul_ps(_mm512_mul_ps(half, v), one_plus));
    }
}
