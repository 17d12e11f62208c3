/* kv_half_avx2.c - half-precision KV storage, 8 lanes with F16C (kv_half.h;
 * compiled with -mavx2 -mfma -mf16c, called only after g3n_isa_active()
 * reported AVX2). */
#include <immintrin.h>

#include "kv_half.h"

void g3n_kv_half_from_f32_avx2(const float *x, uint16_t *out, int64_t n)
{
    for (int64_t i = 0; i < n; i += 8)
        _mm_storeu_si128((__m128i *)(out + i),
                         _mm256_cvtps_ph(_mm256_loadu_ps(x + i), _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC));
}

void g3n_kv_half_to_f32_avx2(const uint16_t *h, float *out, int64_t n)
{
    for (int64_t i = 0; i < n; i += 8)
        _mm256_storeu_ps(out + i, _mm256_cvtph_ps(_mm_loadu_si128((const __m128i *)(h + i))));
}

float g3n_kv_half_dot_avx2(const float *x, const uint16_t *h, int64_t n)
{
    __m256 a = _mm256_setzero_ps();
    for (int64_t i = 0; i < n; i += 8)
        a = _mm256_fmadd_ps(_mm256_loadu_ps(x + i), _mm256_cvtph_ps(_mm_loadu_si128((const __m128i *)(h + i))), a);
    __m128 s = _mm_add_ps(_mm256_castps256_ps128(a), _mm256_extractf128_ps(a, 1));
    s = _mm_add_ps(s, _mm_movehl_ps(s, s));
    s = _mm_add_ss(s, _mm_movehdup_ps(s));
    return _mm_cvtss_f32(s);
}

void g3n_kv_half_axpy_avx2(float *acc, float s, const uint16_t *h, int64_t n)
{
    const __m256 scale = _mm256_set1_ps(s);
    for (int64_t i = 0; i < n; i += 8)
        _mm256_storeu_ps(acc + i, _mm256_fmadd_ps(scale, _mm256_cvtph_ps(_mm_loadu_si128((const __m128i *)(h + i))),
                                                  _mm256_loadu_ps(acc + i)));
}
