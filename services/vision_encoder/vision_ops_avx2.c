/* vision_ops_avx2.c - gelu (tanh form), softmax rows, the depthwise conv and
 * the RmsNorm tail with AVX2 + FMA (the AVX-512 file's kernels at 8 lanes);
 * called only when g3n_isa_active() >= G3N_ISA_AVX2 (see vision_ops.c).
 *
 * 0.5 x (1 + tanh(u)) = x * sigmoid(2u) = x / (1 + exp(-2u)),
 * u = sqrt(2/pi) (x + 0.044715 x^3); exp by range reduction to [-ln2/2, ln2/2]
 * and the Cephes degree-6 polynomial (relative error ~1 ulp; simd_exp_avx2.h). */
#include <immintrin.h>
#include <math.h>
#include <stdint.h>
#include <string.h>

#include "simd_exp_avx2.h"
#include "vision_ops.h"

void g3n_vision_gelu_avx2(float *x, int64_t count);

#define exp_avx2 g3n_exp_avx2

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

/* ---- depthwise conv, norm tail and softmax rows (vision_ops.h contracts) ---- */

void g3n_vision_depthwise_conv_avx2(const float *in, int height, int width, int channels, const float *packed,
                                    int kernel, int stride, float *out);
void g3n_vision_rms_norm_rows_avx2(const float *x, int64_t rows, int channels, const float *weight, float eps,
                                   int gelu, const float *gamma, const float *residual, float *out);
void g3n_vision_softmax_row_avx2(float *row, int64_t n);

/* Channels in blocks of 32 (four accumulators), taps in order (i, j) as the portable loop. */
void g3n_vision_depthwise_conv_avx2(const float *in, int height, int width, int channels, const float *packed,
                                    int kernel, int stride, float *out)
{
    /* timm 'same' padding (vision_ops.c) */
    const int out_h = g3n_vision_same_output(height, kernel, stride);
    const int out_w = g3n_vision_same_output(width, kernel, stride);
    const int pad_top = g3n_vision_same_pad_before(height, kernel, stride);
    const int pad_left = g3n_vision_same_pad_before(width, kernel, stride);
    const int whole = channels & ~31;
#pragma omp parallel for schedule(static)
    for (int oy = 0; oy < out_h; oy++) {
        const int i0 = pad_top - oy * stride > 0 ? pad_top - oy * stride : 0;
        const int i1 = height + pad_top - oy * stride < kernel ? height + pad_top - oy * stride : kernel;
        for (int ox = 0; ox < out_w; ox++) {
            const int j0 = pad_left - ox * stride > 0 ? pad_left - ox * stride : 0;
            const int j1 = width + pad_left - ox * stride < kernel ? width + pad_left - ox * stride : kernel;
            float *dst = out + ((int64_t)oy * out_w + ox) * channels;
            for (int c = 0; c < whole; c += 32) {
                __m256 a0 = _mm256_setzero_ps(), a1 = _mm256_setzero_ps(), a2 = _mm256_setzero_ps(),
                       a3 = _mm256_setzero_ps();
                for (int i = i0; i < i1; i++) {
                    const int iy = oy * stride + i - pad_top;
                    for (int j = j0; j < j1; j++) {
                        const int ix = ox * stride + j - pad_left;
                        const float *w = packed + (int64_t)(i * kernel + j) * channels + c;
                        const float *s = in + ((int64_t)iy * width + ix) * channels + c;
                        a0 = _mm256_fmadd_ps(_mm256_loadu_ps(w), _mm256_loadu_ps(s), a0);
                        a1 = _mm256_fmadd_ps(_mm256_loadu_ps(w + 8), _mm256_loadu_ps(s + 8), a1);
                        a2 = _mm256_fmadd_ps(_mm256_loadu_ps(w + 16), _mm256_loadu_ps(s + 16), a2);
                        a3 = _mm256_fmadd_ps(_mm256_loadu_ps(w + 24), _mm256_loadu_ps(s + 24), a3);
                    }
                }
                _mm256_storeu_ps(dst + c, a0);
                _mm256_storeu_ps(dst + c + 8, a1);
                _mm256_storeu_ps(dst + c + 16, a2);
                _mm256_storeu_ps(dst + c + 24, a3);
            }
            for (int c = whole; c < channels; c += 8) { /* the last < 32 channels, 8 at a time */
                const __m256i m = g3n_lanes_avx2(channels - c);
                __m256 a = _mm256_setzero_ps();
                for (int i = i0; i < i1; i++) {
                    const int iy = oy * stride + i - pad_top;
                    for (int j = j0; j < j1; j++) {
                        const int ix = ox * stride + j - pad_left;
                        const float *w = packed + (int64_t)(i * kernel + j) * channels + c;
                        const float *s = in + ((int64_t)iy * width + ix) * channels + c;
                        a = _mm256_fmadd_ps(_mm256_maskload_ps(w, m), _mm256_maskload_ps(s, m), a);
                    }
                }
                _mm256_maskstore_ps(dst + c, m, a);
            }
        }
    }
}

/* y = (x * rsqrt(mean x^2 + eps)) * weight [-> gelu] [* gamma] [+ residual], per row.
 * Each element of x and residual is read before the same element of out is
 * written, so out may alias either (the portable contract). */
void g3n_vision_rms_norm_rows_avx2(const float *x, int64_t rows, int channels, const float *weight, float eps,
                                   int gelu, const float *gamma, const float *residual, float *out)
{
#pragma omp parallel for schedule(static) if (rows * channels > 65536)
    for (int64_t r = 0; r < rows; r++) {
        const float *in = x + r * channels;
        float *dst = out + r * channels;
        const float *res = residual ? residual + r * channels : NULL;
        __m256 s0 = _mm256_setzero_ps(), s1 = _mm256_setzero_ps();
        int c = 0;
        for (; c + 16 <= channels; c += 16) {
            const __m256 v0 = _mm256_loadu_ps(in + c), v1 = _mm256_loadu_ps(in + c + 8);
            s0 = _mm256_fmadd_ps(v0, v0, s0);
            s1 = _mm256_fmadd_ps(v1, v1, s1);
        }
        for (; c < channels; c += 8) {
            const __m256 v = _mm256_maskload_ps(in + c, g3n_lanes_avx2(channels - c));
            s0 = _mm256_fmadd_ps(v, v, s0);
        }
        const float mean = g3n_sum_avx2(_mm256_add_ps(s0, s1)) / (float)channels;
        const __m256 scale = _mm256_set1_ps(1.0f / sqrtf(mean + eps));
        for (c = 0; c < channels; c += 8) {
            const int full = c + 8 <= channels;
            const __m256i m = g3n_lanes_avx2(channels - c);
            const __m256 v = full ? _mm256_loadu_ps(in + c) : _mm256_maskload_ps(in + c, m);
            const __m256 w = full ? _mm256_loadu_ps(weight + c) : _mm256_maskload_ps(weight + c, m);
            __m256 y = _mm256_mul_ps(_mm256_mul_ps(v, scale), w);
            if (gelu)
                y = gelu_avx2(y);
            if (gamma)
                y = _mm256_mul_ps(y, full ? _mm256_loadu_ps(gamma + c) : _mm256_maskload_ps(gamma + c, m));
            if (res)
                y = _mm256_add_ps(y, full ? _mm256_loadu_ps(res + c) : _mm256_maskload_ps(res + c, m));
            if (full)
                _mm256_storeu_ps(dst + c, y);
            else
                _mm256_maskstore_ps(dst + c, m, y);
        }
    }
}

/* In-place softmax of one row (max-subtracted). */
void g3n_vision_softmax_row_avx2(float *row, int64_t n)
{
    const __m256 lowest = _mm256_set1_ps(-INFINITY);
    __m256 vmax = lowest;
    int64_t i = 0;
    for (; i + 8 <= n; i += 8)
        vmax = _mm256_max_ps(vmax, _mm256_loadu_ps(row + i));
    if (i < n) {
        const __m256i m = g3n_lanes_avx2(n - i);
        vmax = _mm256_max_ps(vmax, _mm256_blendv_ps(lowest, _mm256_maskload_ps(row + i, m), _mm256_castsi256_ps(m)));
    }
    const __m256 max = _mm256_set1_ps(g3n_max_avx2(vmax));
    __m256 sum = _mm256_setzero_ps();
    for (i = 0; i + 8 <= n; i += 8) {
        const __m256 e = g3n_exp_avx2(_mm256_sub_ps(_mm256_loadu_ps(row + i), max));
        _mm256_storeu_ps(row + i, e);
        sum = _mm256_add_ps(sum, e);
    }
    if (i < n) {
        const __m256i m = g3n_lanes_avx2(n - i);
        const __m256 e = _mm256_and_ps(g3n_exp_avx2(_mm256_sub_ps(_mm256_maskload_ps(row + i, m), max)),
                                       _mm256_castsi256_ps(m));
        _mm256_maskstore_ps(row + i, m, e);
        sum = _mm256_add_ps(sum, e);
    }
    const __m256 inverse = _mm256_set1_ps(1.0f / g3n_sum_avx2(sum));
    for (i = 0; i + 8 <= n; i += 8)
        _mm256_storeu_ps(row + i, _mm256_mul_ps(_mm256_loadu_ps(row + i), inverse));
    if (i < n) {
        const __m256i m = g3n_lanes_avx2(n - i);
        _mm256_maskstore_ps(row + i, m, _mm256_mul_ps(_mm256_maskload_ps(row + i, m), inverse));
    }
}
