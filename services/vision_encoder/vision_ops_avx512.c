/* vision_ops_avx512.c - gelu (tanh form), softmax rows, the depthwise conv
 * and the RmsNorm tail with AVX-512F; called only when g3n_isa_active() >=
 * G3N_ISA_AVX512 (see vision_ops.c). gelu uses the method of
 * vision_ops_avx2.c: x / (1 + exp(-2u)). */
#include <immintrin.h>
#include <math.h>
#include <stdint.h>

#include "simd_exp_avx512.h"
#include "vision_ops.h"

void g3n_vision_gelu_avx512(float *x, int64_t count);

static inline __m512 gelu_avx512(__m512 v)
{
    __m512 v3 = _mm512_mul_ps(_mm512_mul_ps(v, v), v);
    __m512 u = _mm512_mul_ps(_mm512_set1_ps(0.7978845608028654f), _mm512_fmadd_ps(_mm512_set1_ps(0.044715f), v3, v));
    __m512 e = g3n_exp_avx512(_mm512_mul_ps(u, _mm512_set1_ps(-2.0f)));
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

/* ---- depthwise conv, norm tail and softmax rows (vision_ops.h contracts) ---- */

void g3n_vision_depthwise_conv_avx512(const float *in, int height, int width, int channels, const float *packed,
                                      int kernel, int stride, float *out);
void g3n_vision_rms_norm_rows_avx512(const float *x, int64_t rows, int channels, const float *weight, float eps,
                                     int gelu, const float *gamma, const float *residual, float *out);
void g3n_vision_softmax_row_avx512(float *row, int64_t n);

/* Mask of the first min(left, 16) lanes (none when left <= 0). */
static inline __mmask16 lanes(int64_t left)
{
    if (left <= 0)
        return 0;
    return left >= 16 ? (__mmask16)0xffff : (__mmask16)((1u << left) - 1u);
}

/* Channels in blocks of 64 (four accumulators), taps in order (i, j) as the portable loop. */
void g3n_vision_depthwise_conv_avx512(const float *in, int height, int width, int channels, const float *packed,
                                      int kernel, int stride, float *out)
{
    /* timm 'same' padding (vision_ops.c) */
    const int out_h = g3n_vision_same_output(height, kernel, stride);
    const int out_w = g3n_vision_same_output(width, kernel, stride);
    const int pad_top = g3n_vision_same_pad_before(height, kernel, stride);
    const int pad_left = g3n_vision_same_pad_before(width, kernel, stride);
#pragma omp parallel for schedule(static)
    for (int oy = 0; oy < out_h; oy++) {
        const int i0 = pad_top - oy * stride > 0 ? pad_top - oy * stride : 0;
        const int i1 = height + pad_top - oy * stride < kernel ? height + pad_top - oy * stride : kernel;
        for (int ox = 0; ox < out_w; ox++) {
            const int j0 = pad_left - ox * stride > 0 ? pad_left - ox * stride : 0;
            const int j1 = width + pad_left - ox * stride < kernel ? width + pad_left - ox * stride : kernel;
            float *dst = out + ((int64_t)oy * out_w + ox) * channels;
            for (int c = 0; c < channels; c += 64) {
                const __mmask16 m0 = lanes(channels - c), m1 = lanes(channels - c - 16),
                                m2 = lanes(channels - c - 32), m3 = lanes(channels - c - 48);
                __m512 a0 = _mm512_setzero_ps(), a1 = _mm512_setzero_ps(), a2 = _mm512_setzero_ps(),
                       a3 = _mm512_setzero_ps();
                for (int i = i0; i < i1; i++) {
                    const int iy = oy * stride + i - pad_top;
                    for (int j = j0; j < j1; j++) {
                        const int ix = ox * stride + j - pad_left;
                        const float *w = packed + (int64_t)(i * kernel + j) * channels + c;
                        const float *s = in + ((int64_t)iy * width + ix) * channels + c;
                        a0 = _mm512_fmadd_ps(_mm512_maskz_loadu_ps(m0, w), _mm512_maskz_loadu_ps(m0, s), a0);
                        if (m1) {
                            a1 = _mm512_fmadd_ps(_mm512_maskz_loadu_ps(m1, w + 16), _mm512_maskz_loadu_ps(m1, s + 16), a1);
                            a2 = _mm512_fmadd_ps(_mm512_maskz_loadu_ps(m2, w + 32), _mm512_maskz_loadu_ps(m2, s + 32), a2);
                            a3 = _mm512_fmadd_ps(_mm512_maskz_loadu_ps(m3, w + 48), _mm512_maskz_loadu_ps(m3, s + 48), a3);
                        }
                    }
                }
                _mm512_mask_storeu_ps(dst + c, m0, a0);
                _mm512_mask_storeu_ps(dst + c + 16, m1, a1);
                _mm512_mask_storeu_ps(dst + c + 32, m2, a2);
                _mm512_mask_storeu_ps(dst + c + 48, m3, a3);
            }
        }
    }
}

/* y = (x * rsqrt(mean x^2 + eps)) * weight [-> gelu] [* gamma] [+ residual], per row.
 * Each element of x and residual is read before the same element of out is
 * written, so out may alias either (the portable contract). */
void g3n_vision_rms_norm_rows_avx512(const float *x, int64_t rows, int channels, const float *weight, float eps,
                                     int gelu, const float *gamma, const float *residual, float *out)
{
#pragma omp parallel for schedule(static) if (rows * channels > 65536)
    for (int64_t r = 0; r < rows; r++) {
        const float *in = x + r * channels;
        float *dst = out + r * channels;
        const float *res = residual ? residual + r * channels : NULL;
        __m512 s0 = _mm512_setzero_ps(), s1 = _mm512_setzero_ps();
        int c = 0;
        for (; c + 32 <= channels; c += 32) {
            const __m512 v0 = _mm512_loadu_ps(in + c), v1 = _mm512_loadu_ps(in + c + 16);
            s0 = _mm512_fmadd_ps(v0, v0, s0);
            s1 = _mm512_fmadd_ps(v1, v1, s1);
        }
        for (; c < channels; c += 16) {
            const __m512 v = _mm512_maskz_loadu_ps(lanes(channels - c), in + c);
            s0 = _mm512_fmadd_ps(v, v, s0);
        }
        const float mean = _mm512_reduce_add_ps(_mm512_add_ps(s0, s1)) / (float)channels;
        const __m512 scale = _mm512_set1_ps(1.0f / sqrtf(mean + eps));
        for (c = 0; c < channels; c += 16) {
            const __mmask16 m = lanes(channels - c);
            __m512 y = _mm512_mul_ps(_mm512_mul_ps(_mm512_maskz_loadu_ps(m, in + c), scale),
                                     _mm512_maskz_loadu_ps(m, weight + c));
            if (gelu)
                y = gelu_avx512(y);
            if (gamma)
                y = _mm512_mul_ps(y, _mm512_maskz_loadu_ps(m, gamma + c));
            if (res)
                y = _mm512_add_ps(y, _mm512_maskz_loadu_ps(m, res + c));
            _mm512_mask_storeu_ps(dst + c, m, y);
        }
    }
}

/* In-place softmax of one row (max-subtracted). */
void g3n_vision_softmax_row_avx512(float *row, int64_t n)
{
    __m512 vmax = _mm512_set1_ps(-INFINITY);
    for (int64_t i = 0; i < n; i += 16)
        vmax = _mm512_max_ps(vmax, _mm512_mask_loadu_ps(_mm512_set1_ps(-INFINITY), lanes(n - i), row + i));
    const __m512 m = _mm512_set1_ps(_mm512_reduce_max_ps(vmax));
    __m512 sum = _mm512_setzero_ps();
    for (int64_t i = 0; i < n; i += 16) {
        const __mmask16 k = lanes(n - i);
        const __m512 e = g3n_exp_avx512(_mm512_sub_ps(_mm512_maskz_loadu_ps(k, row + i), m));
        _mm512_mask_storeu_ps(row + i, k, e);
        sum = _mm512_add_ps(sum, _mm512_maskz_mov_ps(k, e));
    }
    const __m512 inverse = _mm512_set1_ps(1.0f / _mm512_reduce_add_ps(sum));
    for (int64_t i = 0; i < n; i += 16) {
        const __mmask16 k = lanes(n - i);
        _mm512_mask_storeu_ps(row + i, k, _mm512_mul_ps(_mm512_maskz_loadu_ps(k, row + i), inverse));
    }
}
