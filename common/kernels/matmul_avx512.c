/* AVX-512 kernels for g3n_matmul (compiled with -mavx512*; called only after
 * g3n_isa_active() reported AVX-512). Weights are widened to f32 exactly and
 * multiplied in f32, so results match the portable path up to summation order. */
#include <immintrin.h>

#include "matmul_internal.h"

static inline __attribute__((always_inline)) __m512 load_weights(g3n_dtype dtype, const void *row, int64_t k,
                                                                 __mmask16 mask)
{
    if (dtype == G3N_DTYPE_BF16) {
        __m256i half = _mm256_maskz_loadu_epi16(mask, (const uint16_t *)row + k);
        return _mm512_castsi512_ps(_mm512_slli_epi32(_mm512_cvtepu16_epi32(half), 16));
    }
    if (dtype == G3N_DTYPE_F16) {
        __m256i half = _mm256_maskz_loadu_epi16(mask, (const uint16_t *)row + k);
        return _mm512_cvtph_ps(half);
    }
    return _mm512_maskz_loadu_ps(mask, (const float *)row + k);
}

static inline __attribute__((always_inline)) void dot_one_row(g3n_dtype dtype, const float *x, const g3n_matrix *w,
                                                              float *y, int64_t j0, int64_t j1)
{
    const int64_t k = w->cols;
    for (int64_t j = j0; j < j1; j++) {
        const void *row = (const char *)w->data + (size_t)j * w->row_stride;
        __m512 acc0 = _mm512_setzero_ps(), acc1 = _mm512_setzero_ps();
        int64_t kk = 0;
        for (; kk + 32 <= k; kk += 32) {
            acc0 = _mm512_fmadd_ps(load_weights(dtype, row, kk, 0xffff), _mm512_loadu_ps(x + kk), acc0);
            acc1 = _mm512_fmadd_ps(load_weights(dtype, row, kk + 16, 0xffff), _mm512_loadu_ps(x + kk + 16), acc1);
        }
        for (; kk < k; kk += 16) {
            __mmask16 mask = k - kk >= 16 ? (__mmask16)0xffff : (__mmask16)((1u << (k - kk)) - 1);
            acc0 = _mm512_fmadd_ps(load_weights(dtype, row, kk, mask), _mm512_maskz_loadu_ps(mask, x + kk), acc0);
        }
        y[j] = _mm512_reduce_add_ps(_mm512_add_ps(acc0, acc1));
    }
}

static inline __attribute__((always_inline)) void dot_rows(g3n_dtype dtype, const float *x, int64_t m,
                                                           size_t x_stride, const g3n_matrix *w, float *y,
                                                           size_t y_stride, int64_t j0, int64_t j1)
{
    if (m == 1) {
        dot_one_row(dtype, x, w, y, j0, j1);
        return;
    }
    const int64_t k = w->cols;
    /* up to 4 rows share each weight load; missing rows repeat row 0 and are not stored */
    const float *x0 = x;
    const float *x1 = m > 1 ? x + x_stride : x;
    const float *x2 = m > 2 ? x + 2 * x_stride : x;
    const float *x3 = m > 3 ? x + 3 * x_stride : x;
    for (int64_t j = j0; j < j1; j++) {
        const void *row = (const char *)w->data + (size_t)j * w->row_stride;
        __m512 a0 = _mm512_setzero_ps(), a1 = _mm512_setzero_ps(), a2 = _mm512_setzero_ps(),
               a3 = _mm512_setzero_ps();
        for (int64_t kk = 0; kk < k; kk += 16) {
            __mmask16 mask = k - kk >= 16 ? (__mmask16)0xffff : (__mmask16)((1u << (k - kk)) - 1);
            __m512 wv = load_weights(dtype, row, kk, mask);
            a0 = _mm512_fmadd_ps(wv, _mm512_maskz_loadu_ps(mask, x0 + kk), a0);
            a1 = _mm512_fmadd_ps(wv, _mm512_maskz_loadu_ps(mask, x1 + kk), a1);
            a2 = _mm512_fmadd_ps(wv, _mm512_maskz_loadu_ps(mask, x2 + kk), a2);
            a3 = _mm512_fmadd_ps(wv, _mm512_maskz_loadu_ps(mask, x3 + kk), a3);
        }
        y[j] = _mm512_reduce_add_ps(a0);
        y[y_stride + (size_t)j] = _mm512_reduce_add_ps(a1);
        if (m > 2)
            y[2 * y_stride + (size_t)j] = _mm512_reduce_add_ps(a2);
        if (m > 3)
            y[3 * y_stride + (size_t)j] = _mm512_reduce_add_ps(a3);
    }
}

void g3n_matmul_dot_f32_avx512(const float *x, int64_t m, size_t x_stride, const g3n_matrix *w, float *y,
                            size_t y_stride, int64_t j0, int64_t j1)
{
    dot_rows(G3N_DTYPE_F32, x, m, x_stride, w, y, y_stride, j0, j1);
}

void g3n_matmul_dot_bf16_avx512(const float *x, int64_t m, size_t x_stride, const g3n_matrix *w, float *y,
                            size_t y_stride, int64_t j0, int64_t j1)
{
    dot_rows(G3N_DTYPE_BF16, x, m, x_stride, w, y, y_stride, j0, j1);
}

void g3n_matmul_dot_f16_avx512(const float *x, int64_t m, size_t x_stride, const g3n_matrix *w, float *y,
                            size_t y_stride, int64_t j0, int64_t j1)
{
    dot_rows(G3N_DTYPE_F16, x, m, x_stride, w, y, y_stride, j0, j1);
}

static inline __mmask16 column_mask(int64_t columns)
{
    if (columns >= 16)
        return (__mmask16)0xffff;
    if (columns <= 0)
        return 0;
    return (__mmask16)((1u << columns) - 1);
}

void g3n_gemm_micro_avx512(const float *x, size_t x_stride, const float *packed, int64_t kc, float *y,
                           size_t y_stride, int64_t y_columns, int accumulate)
{
    __m512 c00 = _mm512_setzero_ps(), c01 = _mm512_setzero_ps(), c10 = _mm512_setzero_ps(),
           c11 = _mm512_setzero_ps(), c20 = _mm512_setzero_ps(), c21 = _mm512_setzero_ps(),
           c30 = _mm512_setzero_ps(), c31 = _mm512_setzero_ps(), c40 = _mm512_setzero_ps(),
           c41 = _mm512_setzero_ps(), c50 = _mm512_setzero_ps(), c51 = _mm512_setzero_ps();
    const float *x0 = x, *x1 = x + x_stride, *x2 = x + 2 * x_stride, *x3 = x + 3 * x_stride,
                *x4 = x + 4 * x_stride, *x5 = x + 5 * x_stride;
    for (int64_t kk = 0; kk < kc; kk++) {
        const __m512 b0 = _mm512_load_ps(packed + kk * 32);
        const __m512 b1 = _mm512_load_ps(packed + kk * 32 + 16);
        __m512 a;
        a = _mm512_set1_ps(x0[kk]);
        c00 = _mm512_fmadd_ps(a, b0, c00);
        c01 = _mm512_fmadd_ps(a, b1, c01);
        a = _mm512_set1_ps(x1[kk]);
        c10 = _mm512_fmadd_ps(a, b0, c10);
        c11 = _mm512_fmadd_ps(a, b1, c11);
        a = _mm512_set1_ps(x2[kk]);
        c20 = _mm512_fmadd_ps(a, b0, c20);
        c21 = _mm512_fmadd_ps(a, b1, c21);
        a = _mm512_set1_ps(x3[kk]);
        c30 = _mm512_fmadd_ps(a, b0, c30);
        c31 = _mm512_fmadd_ps(a, b1, c31);
        a = _mm512_set1_ps(x4[kk]);
        c40 = _mm512_fmadd_ps(a, b0, c40);
        c41 = _mm512_fmadd_ps(a, b1, c41);
        a = _mm512_set1_ps(x5[kk]);
        c50 = _mm512_fmadd_ps(a, b0, c50);
        c51 = _mm512_fmadd_ps(a, b1, c51);
    }
    const __mmask16 m0 = column_mask(y_columns), m1 = column_mask(y_columns - 16);
#define G3N_STORE_ROW(r, lo, hi)                                                                                   \
    do {                                                                                                           \
        float *yr = y + (size_t)(r) * y_stride;                                                                    \
        __m512 v0 = lo, v1 = hi;                                                                                   \
        if (accumulate) {                                                                                          \
            v0 = _mm512_add_ps(v0, _mm512_maskz_loadu_ps(m0, yr));                                                 \
            v1 = _mm512_add_ps(v1, _mm512_maskz_loadu_ps(m1, yr + 16));                                            \
        }                                                                                                          \
        _mm512_mask_storeu_ps(yr, m0, v0);                                                                         \
        _mm512_mask_storeu_ps(yr + 16, m1, v1);                                                                    \
    } while (0)
    G3N_STORE_ROW(0, c00, c01);
    G3N_STORE_ROW(1, c10, c11);
    G3N_STORE_ROW(2, c20, c21);
    G3N_STORE_ROW(3, c30, c31);
    G3N_STORE_ROW(4, c40, c41);
    G3N_STORE_ROW(5, c50, c51);
#undef G3N_STORE_ROW
}
