/* vision_ops_avx2.c - gelu (tanh form) with AVX2 + FMA; called only when
 * g3n_isa_active() >= G3N_ISA_AVX2 (see vision_ops.c).
 *
 * 0.5 x (1 + tanh(u)) = x * sigmoid(2u) = x / (1 + exp(-2u)),
 * u = sqrt(2/pi) (x + 0.044715 x^3); exp by range reduction to [-ln2/2, ln2/2]
 * and the Cephes degree-6 polynomial (relative error ~1 ulp). */
#include <immintrin.h>
#include <stdint.h>
#include <string.h>

void g3n_vision_gelu_avx2(float *x, int64_t count);
double g3n_vision_exp_sum_avx2(float *x, int64_t count, float max);

static inline __m256 exp_avx2(__m256 v)
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

static inline __m256 gelu_avx2(__m256 v)
{
    __m256 v3 = _mm256_mul_ps(_mm256_mul_ps(v, v), v);
    __m256 u = _mm256_mul_ps(_mm256_set1_ps(0.7978845608028654f), _mm256_fmadd_ps(_mm256_set1_ps(0.044715f), v3, v));
    __m256 e = exp_avx2(_mm256_mul_ps(u, _mm256_set1_ps(-2.0f)));
    return _mm256_div_ps(v, _mm256_add_ps(_mm256_set1_ps(1.0f), e));
}

void g3n_vision_gelu_avx2(float *x, int64_t count)
{
    int64_t i = 0;
    for (; i + 8 <= count; i += 8)
        _mm256_storeu_ps(x + i, gelu_avx2(_mm256_loadu_ps(x + i)));
    if (i < count) {
        float tail[8] = {0};
        memcpy(tail, x + i, sizeof(float) * (size_t)(count - i));
        _mm256_storeu_ps(tail, gelu_avx2(_mm256_loadu_ps(tail)));
        memcpy(x + i, tail, sizeof(float) * (size_t)(count - i));
    }
}

double g3n_vision_exp_sum_avx2(float *x, int64_t count, float max)
{
    __m256 m = _mm256_set1_ps(max), acc = _mm256_setzero_ps();
    int64_t i = 0;
    for (; i + 8 <= count; i += 8) {
        __m256 e = exp_avx2(_mm256_sub_ps(_mm256_loadu_ps(x + i), m));
        _mm256_storeu_ps(x + i, e);
        acc = _mm256_add_ps(acc, e);
    }
    float lanes[8];
    _mm256_storeu_ps(lanes, acc);
    double sum = 0.0;
    for (int j = 0; j < 8; j++)
        sum += lanes[j];
    for (; i < count; i++) {
        float lane[8] = {0};
        lane[0] = x[i] - max;
        _mm256_storeu_ps(lane, exp_avx2(_mm256_loadu_ps(lane)));
        x[i] = lane[0];
        sum += lane[0];
    }
    return sum;
}
