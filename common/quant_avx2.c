/* AVX2 kernels for the Q8/Q4 group layout (quant.h; compiled with -mavx2
 * -mfma, called only after g3n_isa_active() reported AVX2). No VNNI here: a
 * 64-byte vector of the layout is two 256-bit halves (blocks 0-7 and 8-15 of
 * the group). Q8 weights are made signed and multiplied with vpmaddubsw on
 * |x| and weight·sign(x) (each pair sum stays below 2·127·127, no
 * saturation); Q4 weights (0..15) go straight into vpmaddubsw against the
 * signed activations and the offset comes from the start values. */
#include <immintrin.h>

#include "quant.h"

static inline __attribute__((always_inline)) float horizontal_sum(__m256 v)
{
    __m128 s = _mm_add_ps(_mm256_castps256_ps128(v), _mm256_extractf128_ps(v, 1));
    s = _mm_add_ps(s, _mm_movehl_ps(s, s));
    s = _mm_add_ss(s, _mm_movehdup_ps(s));
    return _mm_cvtss_f32(s);
}

/* Weight half-vectors (blocks 8h..8h+7) of group g: wv[k], k = 0..7. */
static inline __attribute__((always_inline)) void load_half(g3n_dtype dtype, const uint8_t *q, int64_t group,
                                                            int64_t vector_bytes, int half, __m256i wv[8])
{
    if (dtype == G3N_DTYPE_Q8) {
        const uint8_t *p = q + group * G3N_QUANT_GROUP + half * 32;
        const __m256i flip = _mm256_set1_epi8((char)0x80);
        for (int k = 0; k < 8; k++)
            wv[k] = _mm256_xor_si256(_mm256_loadu_si256((const __m256i *)(p + k * vector_bytes)), flip);
        return;
    }
    const uint8_t *p = q + group * (G3N_QUANT_GROUP / 2) + half * 32;
    const __m256i low_mask = _mm256_set1_epi8(15);
    for (int k = 0; k < 4; k++) {
        const __m256i packed = _mm256_loadu_si256((const __m256i *)(p + k * vector_bytes));
        wv[k] = _mm256_and_si256(packed, low_mask);
        wv[k + 4] = _mm256_and_si256(_mm256_srli_epi16(packed, 4), low_mask);
    }
}

static inline __attribute__((always_inline)) void dot_rows(g3n_dtype dtype, int rows, const g3n_quant_activations *a,
                                                           int64_t row0, const g3n_matrix *w, float *y,
                                                           size_t y_stride, int64_t j0, int64_t j1)
{
    const int64_t cols = w->cols, groups = a->groups, full = cols / G3N_QUANT_GROUP;
    const int64_t tail_bytes = 4 * (int64_t)g3n_quant_group_blocks(cols, groups - 1);
    const size_t sbytes = g3n_quant_matrix_scales_bytes(w);
    const __m256i ones = _mm256_set1_epi16(1);
    const int64_t m = a->rows;
    for (int64_t j = j0; j < j1; j++) {
        const uint8_t *base = (const uint8_t *)w->data + (size_t)j * w->row_stride;
        const uint16_t *scales = (const uint16_t *)base;
        const uint8_t *q = base + sbytes;
        __m256 acc[4] = {_mm256_setzero_ps(), _mm256_setzero_ps(), _mm256_setzero_ps(), _mm256_setzero_ps()};
        for (int64_t g = 0; g < groups; g++) {
            const size_t at = (size_t)(g * m + row0);
            for (int half = 0; half < 2; half++) {
                __m256i wv[8];
                load_half(dtype, q, g, g < full ? 64 : tail_bytes, half, wv);
                const __m256 ws = _mm256_cvtph_ps(
                    _mm_loadu_si128((const __m128i *)(scales + g * G3N_QUANT_GROUP_BLOCKS + half * 8)));
                for (int r = 0; r < rows; r++) {
                    const int8_t *xg = a->values + (at + (size_t)r) * G3N_QUANT_GROUP + half * 32;
                    const size_t lane = (at + (size_t)r) * G3N_QUANT_GROUP_BLOCKS + (size_t)half * 8;
                    __m256i sum = dtype == G3N_DTYPE_Q8 ? _mm256_setzero_si256()
                                                        : _mm256_loadu_si256((const __m256i *)(a->start + lane));
                    for (int k = 0; k < 8; k++) {
                        const __m256i xv = _mm256_loadu_si256((const __m256i *)(xg + k * 64));
                        const __m256i products = dtype == G3N_DTYPE_Q8
                                                     ? _mm256_maddubs_epi16(_mm256_abs_epi8(xv), _mm256_sign_epi8(wv[k], xv))
                                                     : _mm256_maddubs_epi16(wv[k], xv);
                        sum = _mm256_add_epi32(sum, _mm256_madd_epi16(products, ones));
                    }
                    const __m256 scale = _mm256_mul_ps(ws, _mm256_loadu_ps(a->block_scales + lane));
                    acc[r] = _mm256_fmadd_ps(_mm256_cvtepi32_ps(sum), scale, acc[r]);
                }
            }
        }
        for (int r = 0; r < rows; r++)
            y[(size_t)r * y_stride + (size_t)j] = horizontal_sum(acc[r]);
    }
}

#define G3N_DOT_CASES(DTYPE, ROW0, ROWS)                                                                           \
    switch (ROWS) {                                                                                                \
    case 1:                                                                                                        \
        dot_rows(DTYPE, 1, a, ROW0, w, y, y_stride, j0, j1);                                                       \
        break;                                                                                                     \
    case 2:                                                                                                        \
        dot_rows(DTYPE, 2, a, ROW0, w, y, y_stride, j0, j1);                                                       \
        break;                                                                                                     \
    case 3:                                                                                                        \
        dot_rows(DTYPE, 3, a, ROW0, w, y, y_stride, j0, j1);                                                       \
        break;                                                                                                     \
    default:                                                                                                       \
        dot_rows(DTYPE, 4, a, ROW0, w, y, y_stride, j0, j1);                                                       \
        break;                                                                                                     \
    }

void g3n_quant_dot_avx2(const g3n_quant_activations *a, int64_t row0, int64_t rows, const g3n_matrix *w, float *y,
                        size_t y_stride, int64_t j0, int64_t j1)
{
    for (int64_t done = 0; done < rows; done += 4, y += 4 * y_stride) {
        const int64_t first = row0 + done, n = rows - done < 4 ? rows - done : 4;
        if (w->dtype == G3N_DTYPE_Q8) {
            G3N_DOT_CASES(G3N_DTYPE_Q8, first, n)
        } else {
            G3N_DOT_CASES(G3N_DTYPE_Q4, first, n)
        }
    }
}
