/* gemm_packed_avx512.c - micro-kernels of g3n_gemm_packed (gemm_packed.h),
 * compiled with -mavx512* and called only after g3n_isa_active() reported
 * AVX-512 (which includes AVX512-BF16 in g3n_isa_detect).
 *
 * Every kernel computes an 8 x 32 block of y (16 zmm accumulators) over kc
 * inputs: y[r][0..columns) (+)= x[r][0..kc) · panel[0..kc)[0..32), r < rows.
 * Missing rows (rows < 8) read row 0 again and are not stored.
 *   f32:        panel [kc][32] f32, x f32.
 *   bf16_widen: panel [kc/2][32][2] bf16 pairs widened exactly to f32, x f32,
 *               f32 FMAs (the exact path on bf16 weights).
 *   bf16_dot:   panel as above, x bf16 pairs, vdpbf16ps (the fast path).
 */
#include <immintrin.h>
#include <stdint.h>
#include <string.h>

#include "gemm_packed_internal.h"
#include "simd_exp_avx512.h"

static inline __mmask16 column_mask(int columns)
{
    if (columns >= 16)
        return (__mmask16)0xffff;
    if (columns <= 0)
        return 0;
    return (__mmask16)((1u << columns) - 1u);
}

/* Stores (or adds into y) the 8 x 32 accumulator block. */
static inline __attribute__((always_inline)) void store_block(const __m512 *c, float *y, size_t y_stride, int rows,
                                                              int columns, int accumulate)
{
    const __mmask16 m0 = column_mask(columns), m1 = column_mask(columns - 16);
    for (int r = 0; r < rows; r++) {
        float *yr = y + (size_t)r * y_stride;
        __m512 v0 = c[2 * r], v1 = c[2 * r + 1];
        if (accumulate) {
            v0 = _mm512_add_ps(v0, _mm512_maskz_loadu_ps(m0, yr));
            v1 = _mm512_add_ps(v1, _mm512_maskz_loadu_ps(m1, yr + 16));
        }
        _mm512_mask_storeu_ps(yr, m0, v0);
        _mm512_mask_storeu_ps(yr + 16, m1, v1);
    }
}

#define ROW_POINTERS(type, x, x_stride, rows)                                                                       \
    const type *x0 = x, *x1 = rows > 1 ? x + x_stride : x, *x2 = rows > 2 ? x + 2 * x_stride : x,                \
               *x3 = rows > 3 ? x + 3 * x_stride : x, *x4 = rows > 4 ? x + 4 * x_stride : x,                     \
               *x5 = rows > 5 ? x + 5 * x_stride : x, *x6 = rows > 6 ? x + 6 * x_stride : x,                     \
               *x7 = rows > 7 ? x + 7 * x_stride : x

/* c[2r], c[2r+1] += broadcast(x_r[i]) * (b0, b1) for the 8 rows. */
#define FMA_ROWS(i, b0, b1)                                                                                        \
    do {                                                                                                           \
        __m512 a;                                                                                                  \
        a = _mm512_set1_ps(x0[i]);                                                                                 \
        c0 = _mm512_fmadd_ps(a, b0, c0);                                                                           \
        c1 = _mm512_fmadd_ps(a, b1, c1);                                                                           \
        a = _mm512_set1_ps(x1[i]);                                                                                 \
        c2 = _mm512_fmadd_ps(a, b0, c2);                                                                           \
        c3 = _mm512_fmadd_ps(a, b1, c3);                                                                           \
        a = _mm512_set1_ps(x2[i]);                                                                                 \
        c4 = _mm512_fmadd_ps(a, b0, c4);                                                                           \
        c5 = _mm512_fmadd_ps(a, b1, c5);                                                                           \
        a = _mm512_set1_ps(x3[i]);                                                                                 \
        c6 = _mm512_fmadd_ps(a, b0, c6);                                                                           \
        c7 = _mm512_fmadd_ps(a, b1, c7);                                                                           \
        a = _mm512_set1_ps(x4[i]);                                                                                 \
        c8 = _mm512_fmadd_ps(a, b0, c8);                                                                           \
        c9 = _mm512_fmadd_ps(a, b1, c9);                                                                           \
        a = _mm512_set1_ps(x5[i]);                                                                                 \
        c10 = _mm512_fmadd_ps(a, b0, c10);                                                                         \
        c11 = _mm512_fmadd_ps(a, b1, c11);                                                                         \
        a = _mm512_set1_ps(x6[i]);                                                                                 \
        c12 = _mm512_fmadd_ps(a, b0, c12);                                                                         \
        c13 = _mm512_fmadd_ps(a, b1, c13);                                                                         \
        a = _mm512_set1_ps(x7[i]);                                                                                 \
        c14 = _mm512_fmadd_ps(a, b0, c14);                                                                         \
        c15 = _mm512_fmadd_ps(a, b1, c15);                                                                         \
    } while (0)

#define DECLARE_ACCUMULATORS                                                                                       \
    __m512 c0 = _mm512_setzero_ps(), c1 = _mm512_setzero_ps(), c2 = _mm512_setzero_ps(),                           \
           c3 = _mm512_setzero_ps(), c4 = _mm512_setzero_ps(), c5 = _mm512_setzero_ps(),                           \
           c6 = _mm512_setzero_ps(), c7 = _mm512_setzero_ps(), c8 = _mm512_setzero_ps(),                           \
           c9 = _mm512_setzero_ps(), c10 = _mm512_setzero_ps(), c11 = _mm512_setzero_ps(),                         \
           c12 = _mm512_setzero_ps(), c13 = _mm512_setzero_ps(), c14 = _mm512_setzero_ps(),                        \
           c15 = _mm512_setzero_ps()

#define STORE_ACCUMULATORS(y, y_stride, rows, columns, accumulate)                                                 \
    do {                                                                                                           \
        const __m512 c[16] = {c0, c1, c2, c3, c4, c5, c6, c7, c8, c9, c10, c11, c12, c13, c14, c15};               \
        store_block(c, y, y_stride, rows, columns, accumulate);                                                    \
    } while (0)

void g3n_gemm_kernel_f32_avx512(const void *x_any, size_t x_stride, int rows, const void *panel_any, int64_t kc,
                                float *y, size_t y_stride, int columns, int accumulate)
{
    const float *x = x_any;
    const float *panel = panel_any;
    ROW_POINTERS(float, x, x_stride, rows);
    DECLARE_ACCUMULATORS;
    for (int64_t kk = 0; kk < kc; kk++) {
        const __m512 b0 = _mm512_load_ps(panel + kk * 32);
        const __m512 b1 = _mm512_load_ps(panel + kk * 32 + 16);
        FMA_ROWS(kk, b0, b1);
    }
    STORE_ACCUMULATORS(y, y_stride, rows, columns, accumulate);
}

/* bf16 pair vector (16 columns x inputs k, k+1) -> the f32 values of input k
 * (low halves) and of input k+1 (high halves), exactly. */
static inline __m512 widen_even(__m512i pairs)
{
    return _mm512_castsi512_ps(_mm512_slli_epi32(pairs, 16));
}
static inline __m512 widen_odd(__m512i pairs)
{
    return _mm512_castsi512_ps(_mm512_and_si512(pairs, _mm512_set1_epi32((int)0xffff0000u)));
}

void g3n_gemm_kernel_bf16_widen_avx512(const void *x_any, size_t x_stride, int rows, const void *panel_any,
                                       int64_t kc, float *y, size_t y_stride, int columns, int accumulate)
{
    const float *x = x_any;
    const uint16_t *panel = panel_any;
    ROW_POINTERS(float, x, x_stride, rows);
    DECLARE_ACCUMULATORS;
    int64_t kk = 0;
    for (; kk + 2 <= kc; kk += 2) {
        const __m512i p0 = _mm512_load_si512(panel + kk * 32);
        const __m512i p1 = _mm512_load_si512(panel + kk * 32 + 32);
        const __m512 e0 = widen_even(p0), e1 = widen_even(p1);
        FMA_ROWS(kk, e0, e1);
        const __m512 o0 = widen_odd(p0), o1 = widen_odd(p1);
        FMA_ROWS(kk + 1, o0, o1);
    }
    if (kk < kc) { /* odd k: the last pair's second input is padding */
        const __m512i p0 = _mm512_load_si512(panel + kk * 32);
        const __m512i p1 = _mm512_load_si512(panel + kk * 32 + 32);
        const __m512 e0 = widen_even(p0), e1 = widen_even(p1);
        FMA_ROWS(kk, e0, e1);
    }
    STORE_ACCUMULATORS(y, y_stride, rows, columns, accumulate);
}

static inline __m512bh broadcast_pair(const uint16_t *p)
{
    int32_t v;
    memcpy(&v, p, sizeof v);
    return (__m512bh)_mm512_set1_epi32(v);
}

/* kc counts inputs (pairs = ceil(kc / 2)); x rows hold whole pairs (zero padded). */
void g3n_gemm_kernel_bf16_dot_avx512(const void *x_any, size_t x_stride, int rows, const void *panel_any, int64_t kc,
                                     float *y, size_t y_stride, int columns, int accumulate)
{
    const uint16_t *x = x_any;
    const uint16_t *panel = panel_any;
    ROW_POINTERS(uint16_t, x, x_stride, rows);
    DECLARE_ACCUMULATORS;
    const int64_t pairs = (kc + 1) / 2;
    for (int64_t p = 0; p < pairs; p++) {
        const __m512bh b0 = (__m512bh)_mm512_load_si512(panel + p * 64);
        const __m512bh b1 = (__m512bh)_mm512_load_si512(panel + p * 64 + 32);
        __m512bh a;
        a = broadcast_pair(x0 + 2 * p);
        c0 = _mm512_dpbf16_ps(c0, a, b0);
        c1 = _mm512_dpbf16_ps(c1, a, b1);
        a = broadcast_pair(x1 + 2 * p);
        c2 = _mm512_dpbf16_ps(c2, a, b0);
        c3 = _mm512_dpbf16_ps(c3, a, b1);
        a = broadcast_pair(x2 + 2 * p);
        c4 = _mm512_dpbf16_ps(c4, a, b0);
        c5 = _mm512_dpbf16_ps(c5, a, b1);
        a = broadcast_pair(x3 + 2 * p);
        c6 = _mm512_dpbf16_ps(c6, a, b0);
        c7 = _mm512_dpbf16_ps(c7, a, b1);
        a = broadcast_pair(x4 + 2 * p);
        c8 = _mm512_dpbf16_ps(c8, a, b0);
        c9 = _mm512_dpbf16_ps(c9, a, b1);
        a = broadcast_pair(x5 + 2 * p);
        c10 = _mm512_dpbf16_ps(c10, a, b0);
        c11 = _mm512_dpbf16_ps(c11, a, b1);
        a = broadcast_pair(x6 + 2 * p);
        c12 = _mm512_dpbf16_ps(c12, a, b0);
        c13 = _mm512_dpbf16_ps(c13, a, b1);
        a = broadcast_pair(x7 + 2 * p);
        c14 = _mm512_dpbf16_ps(c14, a, b0);
        c15 = _mm512_dpbf16_ps(c15, a, b1);
    }
    STORE_ACCUMULATORS(y, y_stride, rows, columns, accumulate);
}

/* out[r][0..depth) = bf16(x[r][0..k)) rounded to nearest even, zero beyond k. */
void g3n_gemm_rows_to_bf16_avx512(const float *x, int64_t rows, size_t x_stride, int64_t k, uint16_t *out,
                                  int64_t depth)
{
    for (int64_t r = 0; r < rows; r++) {
        const float *src = x + (size_t)r * x_stride;
        uint16_t *dst = out + r * depth;
        int64_t i = 0;
        for (; i + 32 <= k; i += 32) {
            __m512bh v = _mm512_cvtne2ps_pbh(_mm512_loadu_ps(src + i + 16), _mm512_loadu_ps(src + i));
            _mm512_storeu_si512(dst + i, (__m512i)v);
        }
        for (; i < k; i += 16) {
            const int64_t left = k - i;
            const __mmask16 m = left >= 16 ? (__mmask16)0xffff : (__mmask16)((1u << left) - 1u);
            __m256bh v = _mm512_cvtneps_pbh(_mm512_maskz_loadu_ps(m, src + i));
            _mm256_mask_storeu_epi16(dst + i, m, (__m256i)v);
        }
        for (i = k; i < depth; i++)
            dst[i] = 0;
    }
}

/* ---- int8 (VNNI) ---- */

void g3n_gemm_rows_to_u8_avx512(const float *x, int64_t rows, size_t x_stride, int64_t k, uint8_t *out,
                                int64_t depth, float *scale)
{
    for (int64_t r = 0; r < rows; r++) {
        const float *src = x + (size_t)r * x_stride;
        uint8_t *dst = out + r * depth;
        __m512 vmax = _mm512_setzero_ps();
        for (int64_t i = 0; i < k; i += 16) {
            const int64_t left = k - i;
            const __mmask16 m = left >= 16 ? (__mmask16)0xffff : (__mmask16)((1u << left) - 1u);
            vmax = _mm512_max_ps(vmax, _mm512_abs_ps(_mm512_maskz_loadu_ps(m, src + i)));
        }
        const float max = _mm512_reduce_max_ps(vmax);
        scale[r] = max > 0.0f ? max / 127.0f : 1.0f;
        const __m512 inverse = _mm512_set1_ps(max > 0.0f ? 127.0f / max : 0.0f);
        const __m512i offset = _mm512_set1_epi32(128);
        for (int64_t i = 0; i < k; i += 16) {
            const int64_t left = k - i;
            const __mmask16 m = left >= 16 ? (__mmask16)0xffff : (__mmask16)((1u << left) - 1u);
            __m512i q = _mm512_cvtps_epi32(_mm512_mul_ps(_mm512_maskz_loadu_ps(m, src + i), inverse));
            q = _mm512_add_epi32(_mm512_max_epi32(_mm512_min_epi32(q, _mm512_set1_epi32(127)),
                                                  _mm512_set1_epi32(-127)),
                                 offset);
            _mm_mask_storeu_epi8(dst + i, m, _mm512_cvtepi32_epi8(q));
        }
        for (int64_t i = k; i < depth; i++)
            dst[i] = 128;
    }
}

static inline __m512i broadcast_quad(const uint8_t *p)
{
    int32_t v;
    memcpy(&v, p, sizeof v);
    return _mm512_set1_epi32(v);
}

void g3n_gemm_kernel_i8_avx512(const uint8_t *x, size_t x_stride, int rows, const int8_t *panel, int64_t quads,
                               const float *x_scale, const float *w_scale, const int32_t *w_sum, float *y,
                               size_t y_stride, int columns)
{
    ROW_POINTERS(uint8_t, x, x_stride, rows);
    __m512i c0 = _mm512_setzero_si512(), c1 = _mm512_setzero_si512(), c2 = _mm512_setzero_si512(),
            c3 = _mm512_setzero_si512(), c4 = _mm512_setzero_si512(), c5 = _mm512_setzero_si512(),
            c6 = _mm512_setzero_si512(), c7 = _mm512_setzero_si512(), c8 = _mm512_setzero_si512(),
            c9 = _mm512_setzero_si512(), c10 = _mm512_setzero_si512(), c11 = _mm512_setzero_si512(),
            c12 = _mm512_setzero_si512(), c13 = _mm512_setzero_si512(), c14 = _mm512_setzero_si512(),
            c15 = _mm512_setzero_si512();
    for (int64_t q = 0; q < quads; q++) {
        const __m512i b0 = _mm512_load_si512(panel + q * 128);
        const __m512i b1 = _mm512_load_si512(panel + q * 128 + 64);
        __m512i a;
        a = broadcast_quad(x0 + 4 * q);
        c0 = _mm512_dpbusd_epi32(c0, a, b0);
        c1 = _mm512_dpbusd_epi32(c1, a, b1);
        a = broadcast_quad(x1 + 4 * q);
        c2 = _mm512_dpbusd_epi32(c2, a, b0);
        c3 = _mm512_dpbusd_epi32(c3, a, b1);
        a = broadcast_quad(x2 + 4 * q);
        c4 = _mm512_dpbusd_epi32(c4, a, b0);
        c5 = _mm512_dpbusd_epi32(c5, a, b1);
        a = broadcast_quad(x3 + 4 * q);
        c6 = _mm512_dpbusd_epi32(c6, a, b0);
        c7 = _mm512_dpbusd_epi32(c7, a, b1);
        a = broadcast_quad(x4 + 4 * q);
        c8 = _mm512_dpbusd_epi32(c8, a, b0);
        c9 = _mm512_dpbusd_epi32(c9, a, b1);
        a = broadcast_quad(x5 + 4 * q);
        c10 = _mm512_dpbusd_epi32(c10, a, b0);
        c11 = _mm512_dpbusd_epi32(c11, a, b1);
        a = broadcast_quad(x6 + 4 * q);
        c12 = _mm512_dpbusd_epi32(c12, a, b0);
        c13 = _mm512_dpbusd_epi32(c13, a, b1);
        a = broadcast_quad(x7 + 4 * q);
        c14 = _mm512_dpbusd_epi32(c14, a, b0);
        c15 = _mm512_dpbusd_epi32(c15, a, b1);
    }
    const __m512i acc[16] = {c0, c1, c2, c3, c4, c5, c6, c7, c8, c9, c10, c11, c12, c13, c14, c15};
    const __mmask16 m0 = column_mask(columns), m1 = column_mask(columns - 16);
    /* 128 * Σ w per column (the +128 of x), and the weight scales */
    const __m512i sum0 = _mm512_slli_epi32(_mm512_maskz_loadu_epi32(m0, w_sum), 7);
    const __m512i sum1 = _mm512_slli_epi32(_mm512_maskz_loadu_epi32(m1, w_sum + 16), 7);
    const __m512 ws0 = _mm512_maskz_loadu_ps(m0, w_scale), ws1 = _mm512_maskz_loadu_ps(m1, w_scale + 16);
    for (int r = 0; r < rows; r++) {
        const __m512 xs = _mm512_set1_ps(x_scale[r]);
        float *yr = y + (size_t)r * y_stride;
        const __m512 v0 = _mm512_cvtepi32_ps(_mm512_sub_epi32(acc[2 * r], sum0));
        const __m512 v1 = _mm512_cvtepi32_ps(_mm512_sub_epi32(acc[2 * r + 1], sum1));
        _mm512_mask_storeu_ps(yr, m0, _mm512_mul_ps(_mm512_mul_ps(v0, ws0), xs));
        _mm512_mask_storeu_ps(yr + 16, m1, _mm512_mul_ps(_mm512_mul_ps(v1, ws1), xs));
    }
}

void g3n_gemm_silu_block_avx512(float *y, size_t y_stride, int64_t rows, int columns)
{
    for (int64_t r = 0; r < rows; r++) {
        float *yr = y + (size_t)r * y_stride;
        for (int c = 0; c < columns; c += 16) {
            const __mmask16 m = column_mask(columns - c);
            const __m512 v = _mm512_maskz_loadu_ps(m, yr + c);
            _mm512_mask_storeu_ps(yr + c, m, _mm512_mul_ps(v, g3n_sigmoid_avx512(v)));
        }
    }
}
