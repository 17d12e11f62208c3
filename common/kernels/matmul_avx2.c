/* AVX2+FMA+F16C kernels for g3n_matmul (called only after g3n_isa_active()
 * reported at least AVX2). */
#include <immintrin.h>

#include "matmul_internal.h"

static inline __attribute__((always_inline)) __m256 load_weights8(g3n_dtype dtype, const void *row, int64_t k)
{
    if (dtype == G3N_DTYPE_BF16) {
        __m128i half = _mm_loadu_si128((const __m128i *)((const uint16_t *)row + k));
        return _mm256_castsi256_ps(_mm256_slli_epi32(_mm256_cvtepu16_epi32(half), 16));
    }
    if (dtype == G3N_DTYPE_F16)
        return _mm256_cvtph_ps(_mm_loadu_si128((const __m128i *)((const uint16_t *)row + k)));
    return _mm256_loadu_ps((const float *)row + k);
}

static inline float horizontal_sum(__m256 v)
{
    __m128 lo = _mm256_castps256_ps128(v), hi = _mm256_extractf128_ps(v, 1);
    lo = _mm_add_ps(lo, hi);
    lo = _mm_hadd_ps(lo, lo);
    lo = _mm_hadd_ps(lo, lo);
    return _mm_cvtss_f32(lo);
}

static inline float weight_scalar(g3n_dtype dtype, const void *row, int64_t k)
{
    float v;
    g3n_convert_to_f32(dtype, (const char *)row + (size_t)k * g3n_dtype_size(dtype), &v, 1);
    return v;
}

static inline __attribute__((always_inline)) void dot_rows(g3n_dtype dtype, const float *x, int64_t m,
                                                           size_t x_stride, const g3n_matrix *w, float *y,
                                                           size_t y_stride, int64_t j0, int64_t j1)
{
    const int64_t k = w->cols;
    const int64_t k8 = k & ~(int64_t)7;
    for (int64_t i0 = 0; i0 < m; i0 += 2) {
        const float *xa = x + (size_t)i0 * x_stride;
        const float *xb = i0 + 1 < m ? xa + x_stride : xa;
        for (int64_t j = j0; j < j1; j++) {
            const void *row = (const char *)w->data + (size_t)j * w->row_stride;
            __m256 a = _mm256_setzero_ps(), b = _mm256_setzero_ps();
            for (int64_t kk = 0; kk < k8; kk += 8) {
                __m256 wv = load_weights8(dtype, row, kk);
                a = _mm256_fmadd_ps(wv, _mm256_loadu_ps(xa + kk), a);
                b = _mm256_fmadd_ps(wv, _mm256_loadu_ps(xb + kk), b);
            }
            float sa = horizontal_sum(a), sb = horizontal_sum(b);
            for (int64_t kk = k8; kk < k; kk++) {
                float wv = weight_scalar(dtype, row, kk);
                sa += wv * xa[kk];
                sb += wv * xb[kk];
            }
            y[(size_t)i0 * y_stride + (size_t)j] = sa;
            if (i0 + 1 < m)
                y[(size_t)(i0 + 1) * y_stride + (size_t)j] = sb;
        }
    }
}

void g3n_matmul_dot_f32_avx2(const float *x, int64_t m, size_t x_stride, const g3n_matrix *w, float *y,
                            size_t y_stride, int64_t j0, int64_t j1)
{
    dot_rows(G3N_DTYPE_F32, x, m, x_stride, w, y, y_stride, j0, j1);
}

void g3n_matmul_dot_bf16_avx2(const float *x, int64_t m, size_t x_stride, const g3n_matrix *w, float *y,
                            size_t y_stride, int64_t j0, int64_t j1)
{
    dot_rows(G3N_DTYPE_BF16, x, m, x_stride, w, y, y_stride, j0, j1);
}

void g3n_matmul_dot_f16_avx2(const float *x, int64_t m, size_t x_stride, const g3n_matrix *w, float *y,
                            size_t y_stride, int64_t j0, int64_t j1)
{
    dot_rows(G3N_DTYPE_F16, x, m, x_stride, w, y, y_stride, j0, j1);
}

static inline __m256i column_mask8(int64_t columns)
{
    const __m256i index = _mm256_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7);
    int c = columns < 0 ? 0 : columns > 8 ? 8 : (int)columns;
    return _mm256_cmpgt_epi32(_mm256_set1_epi32(c), index);
}

void g3n_gemm_micro_avx2(const float *x, size_t x_stride, const float *packed, int64_t kc, float *y,
                         size_t y_stride, int64_t y_columns, int accumulate)
{
    __m256 c[6][2];
    for (int r = 0; r < 6; r++)
        c[r][0] = c[r][1] = _mm256_setzero_ps();
    for (int64_t kk = 0; kk < kc; kk++) {
        const __m256 b0 = _mm256_load_ps(packed + kk * 16);
        const __m256 b1 = _mm256_load_ps(packed + kk * 16 + 8);
        for (int r = 0; r < 6; r++) {
            const __m256 a = _mm256_broadcast_ss(x + (size_t)r * x_stride + kk);
            c[r][0] = _mm256_fmadd_ps(a, b0, c[r][0]);
            c[r][1] = _mm256_fmadd_ps(a, b1, c[r][1]);
        }
    }
    const __m256i m0 = column_mask8(y_columns), m1 = column_mask8(y_columns - 8);
    for (int r = 0; r < 6; r++) {
        float *yr = y + (size_t)r * y_stride;
        __m256 v0 = c[r][0], v1 = c[r][1];
        if (accumulate) {
            v0 = _mm256_add_ps(v0, _mm256_maskload_ps(yr, m0));
            v1 = _mm256_add_ps(v1, _mm256_maskload_ps(yr + 8, m1));
        }
        _mm256_maskstore_ps(yr, m0, v0);
        _mm256_maskstore_ps(yr + 8, m1, v1);
    }
}
