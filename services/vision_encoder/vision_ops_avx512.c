/* vision_ops_avx512.c - gelu (tanh form) with AVX-512F; called only when
 * g3n_isa_active() >= G3N_ISA_AVX512 (see vision_ops.c). Same method as
 * vision_ops_avx2.c: x / (1 + exp(-2u)). */
#include <immintrin.h>
#include <stdint.h>

void g3n_vision_gelu_avx512(float *x, int64_t count);
double g3n_vision_exp_sum_avx512(float *x, int64_t count, float max);

static inline __m512 exp_avx512(__m512 v)
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

static inline __m512 gelu_avx512(__m512 v)
{
    __m512 v3 = _mm512_mul_ps(_mm512_mul_ps(v, v), v);
    __m512 u = _mm512_mul_ps(_mm512_set1_ps(0.7978845608028654f), _mm512_fmadd_ps(_mm512_set1_ps(0.044715f), v3, v));
    __m512 e = exp_avx512(_mm512_mul_ps(u, _mm512_set1_ps(-2.0f)));
    return _mm512_div_ps(v, _mm512_add_ps(_mm512_set1_ps(1.0f), e));
}

void g3n_vision_gelu_avx512(float *x, int64_t count)
{
    int64_t i = 0;
    for (; i + 16 <= count; i += 16)
        _mm512_storeu_ps(x + i, gelu_avx512(_mm512_loadu_ps(x + i)));
    if (i < count) {
        __mmask16 mask = (__mmask16)((1u << (count - i)) - 1u);
        _mm512_mask_storeu_ps(x + i, mask, gelu_avx512(_mm512_maskz_loadu_ps(mask, x + i)));
    }
}

double g3n_vision_exp_sum_avx512(float *x, int64_t count, float max)
{
    __m512 m = _mm512_set1_ps(max), acc = _mm512_setzero_ps();
    int64_t i = 0;
    for (; i + 16 <= count; i += 16) {
        __m512 e = exp_avx512(_mm512_sub_ps(_mm512_loadu_ps(x + i), m));
        _mm512_storeu_ps(x + i, e);
        acc = _mm512_add_ps(acc, e);
    }
    float lanes[16];
    _mm512_storeu_ps(lanes, acc);
    double sum = 0.0;
    for (int j = 0; j < 16; j++)
        sum += lanes[j];
    for (; i < count; i++) {
        float lane[16] = {0};
        lane[0] = x[i] - max;
        _mm512_storeu_ps(lane, exp_avx512(_mm512_loadu_ps(lane)));
        x[i] = lane[0];
        sum += lane[0];
    }
    return sum;
}
