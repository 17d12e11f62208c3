/* AVX2 kernels for the Q8/Q4 formats (quant.h; compiled with -mavx2 -mfma,
 * called only after g3n_isa_active() reported AVX2). No VNNI here: weights
 * are made signed, and the products use vpmaddubsw on |x| and weight·sign(x)
 * (each pair sum stays below 2·127·128, no saturation), then vpmaddwd. */
#include <immintrin.h>

#include "quant.h"

static inline __attribute__((always_inline)) void load_blocks(g3n_dtype dtype, const uint8_t *q, int64_t c,
                                                              __m256i *block_a, __m256i *block_b)
{
    if (dtype == G3N_DTYPE_Q8) {
        const __m256i flip = _mm256_set1_epi8((char)0x80);
        *block_a = _mm256_xor_si256(_mm256_loadu_si256((const __m256i *)(q + c * 64)), flip);
        *block_b = _mm256_xor_si256(_mm256_loadu_si256((const __m256i *)(q + c * 64 + 32)), flip);
        return;
    }
    const __m256i packed = _mm256_loadu_si256((const __m256i *)(q + c * 32));
    const __m256i low_mask = _mm256_set1_epi8(15), eight = _mm256_set1_epi8(8);
    *block_a = _mm256_sub_epi8(_mm256_and_si256(packed, low_mask), eight);
    *block_b = _mm256_sub_epi8(_mm256_and_si256(_mm256_srli_epi16(packed, 4), low_mask), eight);
}

static inline __attribute__((always_inline)) __m256 block_dot(__m256i w, const int8_t *x)
{
    const __m256i xv = _mm256_loadu_si256((const __m256i *)x);
    const __m256i products = _mm256_maddubs_epi16(_mm256_abs_epi8(xv), _mm256_sign_epi8(w, xv));
    return _mm256_cvtepi32_ps(_mm256_madd_epi16(products, _mm256_set1_epi16(1)));
}

static inline __attribute__((always_inline)) float horizontal_sum(__m256 v)
{
    __m128 s = _mm_add_ps(_mm256_castps256_ps128(v), _mm256_extractf128_ps(v, 1));
    s = _mm_add_ps(s, _mm_movehl_ps(s, s));
    s = _mm_add_ss(s, _mm_movehdup_ps(s));
    return _mm_cvtss_f32(s);
}

static inline __attribute__((always_inline)) void dot_rows(g3n_dtype dtype, int rows, const g3n_quant_activations *a,
                                                           int64_t row0, const g3n_matrix *w, float *y,
                                                           size_t y_stride, int64_t j0, int64_t j1)
{
    const int64_t cols = w->cols, chunks = cols / G3N_QUANT_CHUNK, blocks = cols / G3N_QUANT_BLOCK;
    const size_t scales_bytes = ((size_t)blocks * 2 + 63) / 64 * 64;
    const int8_t *x[4];
    const float *xs[4];
    for (int r = 0; r < 4; r++) {
        const int64_t row = row0 + (r < rows ? r : 0);
        x[r] = a->values + row * cols;
        xs[r] = a->block_scales + row * blocks;
    }
    for (int64_t j = j0; j < j1; j++) {
        const uint8_t *base = (const uint8_t *)w->data + (size_t)j * w->row_stride;
        const uint16_t *scales = (const uint16_t *)base;
        const uint8_t *q = base + scales_bytes;
        __m256 acc[4] = {_mm256_setzero_ps(), _mm256_setzero_ps(), _mm256_setzero_ps(), _mm256_setzero_ps()};
        for (int64_t c = 0; c < chunks; c++) {
            __m256i wa, wb;
            load_blocks(dtype, q, c, &wa, &wb);
            uint32_t pair;
            __builtin_memcpy(&pair, scales + 2 * c, sizeof(pair));
            const __m128 two = _mm_cvtph_ps(_mm_cvtsi32_si128((int)pair));
            const float da = _mm_cvtss_f32(two), db = _mm_cvtss_f32(_mm_movehdup_ps(two));
            for (int r = 0; r < rows; r++) {
                acc[r] = _mm256_fmadd_ps(block_dot(wa, x[r] + c * 64), _mm256_set1_ps(da * xs[r][2 * c]), acc[r]);
                acc[r] = _mm256_fmadd_ps(block_dot(wb, x[r] + c * 64 + 32), _mm256_set1_ps(db * xs[r][2 * c + 1]),
                                         acc[r]);
            }
        }
        for (int r = 0; r < rows; r++)
            y[(size_t)r * y_stride + (size_t)j] = horizontal_sum(acc[r]);
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

void g3n_quant_dot_avx2(const g3n_quant_activations *a, int64_t row0, int64_t rows, const g3n_matrix *w, float *y,
                        size_t y_stride, int64_t j0, int64_t j1)
{
    if (w->dtype == G3N_DTYPE_Q8) {
        G3N_DOT_CASES(G3N_DTYPE_Q8)
    } else {
        G3N_DOT_CASES(G3N_DTYPE_Q4)
    }
}
