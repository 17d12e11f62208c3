/* simd_exp_avx2.h - e^x, the sigmoid and tanh for 8 floats: the method of
 * simd_exp_avx512.h (range reduction by ln 2 in two parts, degree-5
 * polynomial, exponent bits; relative error ~1e-7, inputs clamped to
 * [-87, 88]). Header-only, for *_avx2.c files (compiled with -mavx2 -mfma;
 * call them only after g3n_isa_active() says AVX2). */
#ifndef G3N_SIMD_EXP_AVX2_H
#define G3N_SIMD_EXP_AVX2_H

#include <immintrin.h>

static inline __m256 g3n_exp_avx2(__m256 v)
{
    v = _mm256_min_ps(_mm256_max_ps(v, _mm256_set1_ps(-87.0f)), _mm256_set1_ps(88.0f));
    __m256 n = _mm256_round_ps(_mm256_mul_ps(v, _mm256_set1_ps(1.44269504088896341f)),
                               _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC);
    __m256 r = _mm256_fnmadd_ps(n, _mm256_set1_ps(0.693359375f), v);
    r = _mm256_fnmadd_ps(n, _mm256_set1_ps(-2.12194440e-4f), r);
    __m256 p = _mm256_set1_ps(1.9875691500e-4f);
    p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(1.3981999507e-3f));
    p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(8.3334519073e-3f));
    p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(4.1665795894e-2f));
    p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(1.6666665459e-1f));
    p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(5.0000001201e-1f));
    __m256 y = _mm256_fmadd_ps(_mm256_mul_ps(p, r), r, _mm256_add_ps(r, _mm256_set1_ps(1.0f)));
    __m256i e = _mm256_slli_epi32(_mm256_add_epi32(_mm256_cvtps_epi32(n), _mm256_set1_epi32(127)), 23);
    return _mm256_mul_ps(y, _mm256_castsi256_ps(e));
}

/* 1 / (1 + e^-v): vrcpps (12 bits) and one Newton step (relative error ~3e-7),
 * cheaper than vdivps; the audio gates and the GEMMs' fused SiLU share it. */
static inline __m256 g3n_sigmoid_avx2(__m256 v)
{
    const __m256 one = _mm256_set1_ps(1.0f);
    const __m256 d = _mm256_add_ps(one, g3n_exp_avx2(_mm256_sub_ps(_mm256_setzero_ps(), v)));
    const __m256 r = _mm256_rcp_ps(d);
    return _mm256_mul_ps(r, _mm256_fnmadd_ps(d, r, _mm256_set1_ps(2.0f)));
}

/* Lane mask of the first min(left, 8) lanes (for maskload / maskstore). */
static inline __m256i g3n_lanes_avx2(long left)
{
    const __m256i index = _mm256_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7);
    const int n = left <= 0 ? 0 : left >= 8 ? 8 : (int)left;
    return _mm256_cmpgt_epi32(_mm256_set1_epi32(n), index);
}

/* Sum of the 8 lanes (pairwise, fixed order). */
static inline float g3n_sum_avx2(__m256 v)
{
    __m128 s = _mm_add_ps(_mm256_castps256_ps128(v), _mm256_extractf128_ps(v, 1));
    s = _mm_add_ps(s, _mm_movehl_ps(s, s));
    s = _mm_add_ss(s, _mm_movehdup_ps(s));
    return _mm_cvtss_f32(s);
}

static inline float g3n_max_avx2(__m256 v)
{
    __m128 s = _mm_max_ps(_mm256_castps256_ps128(v), _mm256_extractf128_ps(v, 1));
    s = _mm_max_ps(s, _mm_movehl_ps(s, s));
    s = _mm_max_ss(s, _mm_movehdup_ps(s));
    return _mm_cvtss_f32(s);
}

/* The accurate e^y for y <= 0 and tanh of the text model's fast paths
 * (text_math.h; a few ulp from libm's tanhf): |x| < 0.25: odd Taylor series
 * to x^11; else tanh|x| = (1 - e)/(1 + e), e = exp(-2|x|) (no cancellation:
 * e <= 0.61), exp by the two-part ln 2 reduction above and a degree-7
 * polynomial (2^n in the exponent bits:
 * AVX2 has no vscalefps, so the argument is clamped at -87, still a normal
 * float); sign restored at the end. A different polynomial from
 * g3n_exp_avx2 on purpose: tanh must be 1 to the last bit for large |x|. */
static inline __attribute__((always_inline)) __m256 g3n_exp_negative_avx2(__m256 y)
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

static inline __attribute__((always_inline)) __m256 g3n_abs_avx2(__m256 x)
{
    return _mm256_andnot_ps(_mm256_set1_ps(-0.0f), x);
}

static inline __attribute__((always_inline)) __m256 g3n_tanh_avx2(__m256 x)
{
    const __m256 a = g3n_abs_avx2(x);
    const __m256 a2 = _mm256_mul_ps(a, a);
    __m256 s = _mm256_set1_ps(-1382.0f / 155925.0f);
    s = _mm256_fmadd_ps(s, a2, _mm256_set1_ps(62.0f / 2835.0f));
    s = _mm256_fmadd_ps(s, a2, _mm256_set1_ps(-17.0f / 315.0f));
    s = _mm256_fmadd_ps(s, a2, _mm256_set1_ps(2.0f / 15.0f));
    s = _mm256_fmadd_ps(s, a2, _mm256_set1_ps(-1.0f / 3.0f));
    s = _mm256_fmadd_ps(_mm256_mul_ps(s, a2), a, a);
    const __m256 e = g3n_exp_negative_avx2(_mm256_mul_ps(a, _mm256_set1_ps(-2.0f)));
    const __m256 one = _mm256_set1_ps(1.0f);
    const __m256 l = _mm256_div_ps(_mm256_sub_ps(one, e), _mm256_add_ps(one, e));
    const __m256 small = _mm256_cmp_ps(a, _mm256_set1_ps(0.25f), _CMP_LT_OQ);
    const __m256 t = _mm256_blendv_ps(l, s, small);
    return _mm256_or_ps(t, _mm256_and_ps(x, _mm256_set1_ps(-0.0f)));
}

#endif
