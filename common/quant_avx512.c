/* AVX-512 VNNI kernels for the Q8/Q4 formats (quant.h; compiled with
 * -mavx512* and called only after g3n_isa_active() reported AVX-512, which
 * includes VNNI). Per 64 weights and activation row: one vpdpbusd (unsigned
 * weight bytes × signed activation bytes, started from the row's offset
 * correction), one convert, one multiply of the two block scales, one fma. */
#include <immintrin.h>

#include "quant.h"

static inline __attribute__((always_inline)) __m512i load_chunk(g3n_dtype dtype, const uint8_t *q, int64_t c)
{
    if (dtype == G3N_DTYPE_Q8)
        return _mm512_loadu_si512((const void *)(q + c * 64));
    const __m256i packed = _mm256_loadu_si256((const __m256i *)(q + c * 32));
    const __m256i low_mask = _mm256_set1_epi8(15);
    const __m256i low = _mm256_and_si256(packed, low_mask);
    const __m256i high = _mm256_and_si256(_mm256_srli_epi16(packed, 4), low_mask);
    return _mm512_inserti64x4(_mm512_castsi256_si512(low), high, 1);
}

static inline __attribute__((always_inline)) __m512 chunk_weight_scales(const uint16_t *scales, int64_t c)
{
    uint32_t pair;
    __builtin_memcpy(&pair, scales + 2 * c, sizeof(pair));
    const __m128 two = _mm_cvtph_ps(_mm_cvtsi32_si128((int)pair));
    const __m512i index = _mm512_set_epi32(1, 1, 1, 1, 1, 1, 1, 1, 0, 0, 0, 0, 0, 0, 0, 0);
    return _mm512_permutexvar_ps(index, _mm512_castps128_ps512(two));
}

static inline __attribute__((always_inline)) void dot_rows(g3n_dtype dtype, int rows, const g3n_quant_activations *a,
                                                           int64_t row0, const g3n_matrix *w, float *y,
                                                           size_t y_stride, int64_t j0, int64_t j1)
{
    const int64_t cols = w->cols, chunks = cols / G3N_QUANT_CHUNK;
    const size_t scales_bytes = ((size_t)(cols / G3N_QUANT_BLOCK) * 2 + 63) / 64 * 64;
    const int8_t *x[4];
    const int32_t *start[4];
    const float *xs[4];
    for (int r = 0; r < 4; r++) {
        const int64_t row = row0 + (r < rows ? r : 0);
        x[r] = a->values + row * cols;
        start[r] = a->start + row * chunks * 16;
        xs[r] = a->scales + row * chunks * 16;
    }
    for (int64_t j = j0; j < j1; j++) {
        const uint8_t *base = (const uint8_t *)w->data + (size_t)j * w->row_stride;
        const uint16_t *scales = (const uint16_t *)base;
        const uint8_t *q = base + scales_bytes;
        __m512 acc[4] = {_mm512_setzero_ps(), _mm512_setzero_ps(), _mm512_setzero_ps(), _mm512_setzero_ps()};
        for (int64_t c = 0; c < chunks; c++) {
            const __m512i wv = load_chunk(dtype, q, c);
            const __m512 ws = chunk_weight_scales(scales, c);
            for (int r = 0; r < rows; r++) {
                __m512i sum = _mm512_dpbusd_epi32(_mm512_loadu_si512((const void *)(start[r] + c * 16)), wv,
                                                  _mm512_loadu_si512((const void *)(x[r] + c * 64)));
                const __m512 scale = _mm512_mul_ps(ws, _mm512_loadu_ps(xs[r] + c * 16));
                acc[r] = _mm512_fmadd_ps(_mm512_cvtepi32_ps(sum), scale, acc[r]);
            }
        }
        for (int r = 0; r < rows; r++)
            y[(size_t)r * y_stride + (size_t)j] = _mm512_reduce_add_ps(acc[r]);
    }
}

#define G3N_DOT_CASES(DTYPE)                                                                                       \
    switch (rows) {                                                                                                \
    case 1:                                                                                                        \
        dot_rows(DTYPE, 1, a, row0, w, y, y_stride, j0, j1);                                                       \
        break;                                                                                                     \
    case 2:                                                                                                        \
        dot_rows(DTYPE, 2, a, row0, w, y, y_stride, j0, j1);                                                       \
        break;                                                                                                     \
    case 3:                                                                                                        \
        dot_rows(DTYPE, 3, a, row0, w, y, y_stride, j0, j1);                                                       \
        break;                                                                                                     \
    default:                                                                                                       \
        dot_rows(DTYPE, 4, a, row0, w, y, y_stride, j0, j1);                                                       \
        break;                                                                                                     \
    }

void g3n_quant_dot_avx512(const g3n_quant_activations *a, int64_t row0, int64_t rows, const g3n_matrix *w,
                          float *y, size_t y_stride, int64_t j0, int64_t j1)
{
    if (w->dtype == G3N_DTYPE_Q8) {
        G3N_DOT_CASES(G3N_DTYPE_Q8)
    } else {
        G3N_DOT_CASES(G3N_DTYPE_Q4)
    }
}
