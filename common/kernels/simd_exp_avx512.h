/* simd_exp_avx512.h - e^x, the sigmoid and tanh for 16 floats (Cephes-style: range reduction by
 * ln 2 in two parts, degree-5 polynomial, exponent bits; relative error
 * ~1e-7, inputs clamped to [-87, 88]). Header-only, for *_avx512.c files
 * (compiled with -mavx512f; call them only after g3n_isa_active()). */
#ifndef G3N_SIMD_EXP_AVX512_H
#define G3N_SIMD_EXP_AVX512_H

#include <immintrin.h>

static inline __m512 g3n_exp_avx512(__m512 v)
{
    v = _mm512_min_ps(_mm512_max_ps(v, _mm512_set1_ps(-87.0f)), _mm512_set1_ps(88.0f));
    __m512 n = _mm512_roundscale_ps(_mm512_mul_ps(v, _mm512_set1_ps(1.44269504088896341f)),
                                    _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC);
    __m512 r = _mm512_fnmadd_ps(n, _mm512_set1_ps(0.693359375f), v);
    r = _mm512_fnmadd_ps(n, _mm512_set1_ps(-2.12194440e-4f), r);
    __m512 p = _mm512_set1_ps(1.9875691500e-4f);
    p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(1.3981999507e-3f));
    p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(8.3334519073e-3f));
    p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(4.1665795894e-2f));
    p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(1.6666665459e-1f));
    p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(5.0000001201e-1f));
    __m512 y = _mm512_fmadd_ps(_mm512_mul_ps(p, r), r, _mm512_add_ps(r, _mm512_set1_ps(1.0f)));
    __m512i e = _mm512_slli_epi32(_mm512_add_epi32(_mm512_cvtps_epi32(n), _mm512_set1_epi32(127)), 23);
    return _mm512_mul_ps(y, _mm512_castsi512_ps(e));
}

/* 1 / (1 + e^-v): the gates' sigmoid (the audio GLU/SiLU and the GEMMs' fused SiLU
 * use this one expression, so fused and separate passes agree bit for bit).
 * The reciprocal is vrcp14ps and one Newton step (relative error ~1e-8, a few
 * times cheaper than vdivps, which made the SiLU of the audio tower's 6144-wide
 * feed-forward a compute-bound 5 % of the encode). */
static inline __m512 g3n_sigmoid_avx512(__m512 v)
{
    const __m512 one = _mm512_set1_ps(1.0f);
    const __m512 d = _mm512_add_ps(one, g3n_exp_avx512(_mm512_sub_ps(_mm512_setzero_ps(), v)));
    const __m512 r = _mm512_rcp14_ps(d);
    return _mm512_mul_ps(r, _mm512_fnmadd_ps(d, r, _mm512_set1_ps(2.0f)));
}

/* The accurate e^y for y <= 0 and tanh of the text model's fast paths
 * (text_math.h; a few ulp from libm's tanhf): |x| < 0.25: odd Taylor series
 * to x^11; else tanh|x| = (1 - e)/(1 + e), e = exp(-2|x|) (no cancellation:
 * e <= 0.61), exp by the two-part ln 2 reduction above and a degree-7
 * polynomial and vscalefps; sign restored at the end. A different polynomial from
 * g3n_exp_avx512 on purpose: tanh must be 1 to the last bit for large |x|. */
static inline __attribute__((always_inline)) __m512 g3n_exp_negative_avx512(__m512 y)
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

static inline __attribute__((always_inline)) __m512 g3n_tanh_avx512(__m512 x)
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
    const __m512 e = g3n_exp_negative_avx512(_mm512_mul_ps(a, _mm512_set1_ps(-2.0f)));
    const __m512 one = _mm512_set1_ps(1.0f);
    const __m512 l = _mm512_div_ps(_mm512_sub_ps(one, e), _mm512_add_ps(one, e));
    const __mmask16 small = _mm512_cmp_ps_mask(a, _mm512_set1_ps(0.25f), _CMP_LT_OQ);
    const __m512 t = _mm512_mask_blend_ps(small, l, s);
    /* sign of x back on */
    const __m512i sign = _mm512_and_si512(_mm512_castps_si512(x), _mm512_set1_epi32((int)0x80000000u));
    return _mm512_castsi512_ps(_mm512_or_si512(_mm512_castps_si512(t), sign));
}

#endif
