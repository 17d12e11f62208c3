/* kv_half_avx512.c - half-precision KV storage, 16 lanes (kv_half.h; compiled
 * with -mavx512f -mf16c, called only after g3n_isa_active() reported AVX-512). */
#include <immintrin.h>

#include "kv_half.h"

void g3n_kv_half_from_f32_avx512(const float *x, uint16_t *out, int64_t n)
{
    for (int64_t i = 0; i < n; i += 16)
        _mm256_storeu_si256((__m256i *)(out + i),
                            _mm512_cvtps_ph(_mm512_loadu_ps(x + i), _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC));
}

void g3n_kv_half_to_f32_avx512(const uint16_t *h, float *out, int64_t n)
{
    for (int64_t i = 0; i < n; i += 16)
        _mm512_storeu_ps(out + i, _mm512_cvtph_ps(_mm256_loadu_si256((const __m256i *)(h + i))));
}

float g3n_kv_half_dot_avx512(const float *x, const uint16_t *h, int64_t n)
{
    __m512 a0 = _mm512_setzero_ps(), a1 = _mm512_setzero_ps();
    int64_t i = 0;
    for (; i + 32 <= n; i += 32) {
        a0 = _mm512_fmadd_ps(_mm512_loadu_ps(x + i), _mm512_cvtph_ps(_mm256_loadu_si256((const __m256i *)(h + i))),
                             a0);
        a1 = _mm512_fmadd_ps(_mm512_loadu_ps(x + i + 16),
                             _mm512_cvtph_ps(_mm256_loadu_si256((const __m256i *)(h + i + 16))), a1);
    }
    for (; i < n; i += 16)
        a0 = _mm512_fmadd_ps(_mm512_loadu_ps(x + i), _mm512_cvtph_ps(_mm256_loadu_si256((const __m256i *)(h + i))),
                             a0);
    return _mm512_reduce_add_ps(_mm512_add_ps(a0, a1));
}

void g3n_kv_half_axpy_avx512(float *acc, float s, const uint16_t *h, int64_t n)
{
    const __m512 scale = _mm512_set1_ps(s);
    for (int64_t i = 0; i < n; i += 16)
        _mm512_storeu_ps(acc + i, _mm512_fmadd_ps(scale, _mm512_cvtph_ps(_mm256_loadu_si256((const __m256i *)(h + i))),
                                                  _mm512_loadu_ps(acc + i)));
}

void g3n_kv_half_dot_group_avx512(const float *q, int64_t q_stride, int heads, const uint16_t *k, int64_t n,
                                  float *out)
{
    __m512 acc[G3N_KV_HALF_MAX_HEADS];
    for (int h = 0; h < heads; h++)
        acc[h] = _mm512_setzero_ps();
    for (int64_t i = 0; i < n; i += 16) {
        const __m512 key = _mm512_cvtph_ps(_mm256_loadu_si256((const __m256i *)(k + i)));
        for (int h = 0; h < heads; h++)
            acc[h] = _mm512_fmadd_ps(_mm512_loadu_ps(q + h * q_stride + i), key, acc[h]);
    }
    for (int h = 0; h < heads; h++)
        out[h] = _mm512_reduce_add_ps(acc[h]);
}

void g3n_kv_half_axpy_group_avx512(float *o, int64_t o_stride, int heads, const float *coefs, const uint16_t *v,
                                   int64_t n)
{
    for (int64_t i = 0; i < n; i += 16) {
        const __m512 value = _mm512_cvtph_ps(_mm256_loadu_si256((const __m256i *)(v + i)));
        for (int h = 0; h < heads; h++) {
            float *oh = o + h * o_stride + i;
            _mm512_storeu_ps(oh, _mm512_fmadd_ps(_mm512_set1_ps(coefs[h]), value, _mm512_loadu_ps(oh)));
        }
    }
}
