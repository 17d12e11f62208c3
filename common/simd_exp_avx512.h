/* simd_exp_avx512.h - e^x for 16 floats (Cephes-style: range reduction by
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

#endif
