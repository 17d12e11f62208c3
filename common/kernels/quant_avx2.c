/* AVX2 kernels for the Q8/Q4 group layout (quant.h; compiled with -mavx2
 * -mfma -mf16c, called only after g3n_isa_active() reported AVX2). No VNNI
 * here (most AVX2 machines lack it): a 64-byte vector of the layout is two
 * 256-bit halves (blocks 0-7 and 8-15 of the group), and the products go
 * through vpmaddubsw (unsigned × signed bytes, pairs summed to int16,
 * saturating) and vpmaddwd against ones (int16 pairs to int32), exact by
 * construction:
 *   Q4: weights 0..15 against activations in [-127, 127]: each int16 lane
 *       of vpmaddubsw is at most 2·15·127 = 3810, so the 8 vectors of a half
 *       (4 vectors × 2 nibbles) add up in int16 (≤ 16·15·127 = 30480 <
 *       32767) and one vpmaddwd per half replaces eight; the offset 8·Σx
 *       comes from the start values as on AVX-512.
 *   Q8: weights made signed (q in [-127, 127]); vpmaddubsw gets |q| and x
 *       with q's sign applied (vpsignb), pairs ≤ 2·127·127 = 32258: no
 *       saturation, but no room to add two in int16, so one vpmaddwd per
 *       vector. |q| is taken once per weight vector and shared by the rows.
 * As on AVX-512: software prefetch ahead in the weight stream for decode, the
 * scales applied once per half-group, and K blocks when a slice of x leaves L1. */
#include <immintrin.h>

#include "quant.h"

static inline __attribute__((always_inline)) float horizontal_sum(__m256 v)
{
    __m128 s = _mm_add_ps(_mm256_castps256_ps128(v), _mm256_extractf128_ps(v, 1));
    s = _mm_add_ps(s, _mm_movehl_ps(s, s));
    s = _mm_add_ss(s, _mm_movehdup_ps(s));
    return _mm_cvtss_f32(s);
}

/* Rows of x per pass over the weights: 4 accumulators and the 8 weight
 * vectors of a half fill most of AVX2's 16 registers. */
#define MAX_ROWS 4

/* Decode streams every weight once (see quant_avx512.c: the hardware
 * prefetcher alone leaves it short of the stream rate). */
#define PREFETCH_BYTES 2048
static inline __attribute__((always_inline)) void prefetch_ahead(g3n_dtype dtype, const uint8_t *q, int64_t group)
{
    const int lines = dtype == G3N_DTYPE_Q8 ? G3N_QUANT_GROUP / 64 : G3N_QUANT_GROUP / 128;
    const char *ahead = (const char *)q + group * lines * 64 + PREFETCH_BYTES;
    for (int l = 0; l < lines; l++)
        _mm_prefetch(ahead + 64 * l, _MM_HINT_T0);
}

/* What every weight row of a call shares. */
typedef struct row_layout {
    int64_t groups, full; /* groups per row, of which full (512 weights) */
    int64_t tail_bytes;   /* the last group's vector bytes */
    size_t scales_bytes;  /* the f16 scales before the quants */
    int64_t m;            /* rows of the prepared activations */
} row_layout;

static inline row_layout layout_of(const g3n_quant_activations *a, const g3n_matrix *w)
{
    const row_layout layout = {a->groups, w->cols / G3N_QUANT_GROUP,
                               4 * (int64_t)g3n_quant_group_blocks(w->cols, a->groups - 1),
                               g3n_quant_matrix_scales_bytes(w), a->rows};
    return layout;
}

/* Groups [g0, g1) of weight row j into acc[0..rows) (rows of x from row0). */
static inline __attribute__((always_inline)) void dot_groups(g3n_dtype dtype, int rows, int prefetch,
                                                             const g3n_quant_activations *a, const row_layout *layout,
                                                             int64_t row0, const g3n_matrix *w, int64_t j, int64_t g0,
                                                             int64_t g1, __m256 *acc)
{
    const int64_t full = layout->full, m = layout->m;
    const uint8_t *base = (const uint8_t *)w->data + (size_t)j * w->row_stride;
    const uint16_t *scales = (const uint16_t *)base;
    const uint8_t *q = base + layout->scales_bytes;
    const __m256i ones = _mm256_set1_epi16(1);
    for (int64_t g = g0; g < g1; g++) {
        const int64_t vector_bytes = g < full ? 64 : layout->tail_bytes;
        if (prefetch)
            prefetch_ahead(dtype, q, g);
        const size_t at = (size_t)(g * m + row0);
        for (int half = 0; half < 2; half++) {
            const __m256 ws = _mm256_cvtph_ps(
                _mm_loadu_si128((const __m128i *)(scales + g * G3N_QUANT_GROUP_BLOCKS + half * 8)));
            if (dtype == G3N_DTYPE_Q4) {
                const uint8_t *p = q + g * (G3N_QUANT_GROUP / 2) + half * 32;
                const __m256i low_mask = _mm256_set1_epi8(15);
                __m256i wv[8];
                for (int k = 0; k < 4; k++) {
                    const __m256i packed = _mm256_loadu_si256((const __m256i *)(p + k * vector_bytes));
                    wv[k] = _mm256_and_si256(packed, low_mask);
                    wv[k + 4] = _mm256_and_si256(_mm256_srli_epi16(packed, 4), low_mask);
                }
                for (int r = 0; r < rows; r++) {
                    const int8_t *xr = a->values + (at + (size_t)r) * G3N_QUANT_GROUP + half * 32;
                    const size_t lane = (at + (size_t)r) * G3N_QUANT_GROUP_BLOCKS + (size_t)half * 8;
                    /* two int16 chains (latency), ≤ 30480 together: exact */
                    __m256i s0 = _mm256_maddubs_epi16(wv[0], _mm256_loadu_si256((const __m256i *)xr));
                    __m256i s1 = _mm256_maddubs_epi16(wv[1], _mm256_loadu_si256((const __m256i *)(xr + 64)));
                    for (int k = 2; k < 8; k += 2) {
                        s0 = _mm256_add_epi16(
                            s0, _mm256_maddubs_epi16(wv[k], _mm256_loadu_si256((const __m256i *)(xr + k * 64))));
                        s1 = _mm256_add_epi16(s1, _mm256_maddubs_epi16(
                                                      wv[k + 1], _mm256_loadu_si256((const __m256i *)(xr + k * 64 + 64))));
                    }
                    const __m256i sum = _mm256_add_epi32(_mm256_madd_epi16(_mm256_add_epi16(s0, s1), ones),
                                                         _mm256_loadu_si256((const __m256i *)(a->start + lane)));
                    const __m256 scale = _mm256_mul_ps(ws, _mm256_loadu_ps(a->block_scales + lane));
                    acc[r] = _mm256_fmadd_ps(_mm256_cvtepi32_ps(sum), scale, acc[r]);
                }
            } else {
                const uint8_t *p = q + g * G3N_QUANT_GROUP + half * 32;
                const __m256i flip = _mm256_set1_epi8((char)0x80);
                __m256i sw[8], aw[8]; /* signed weights and their magnitudes */
                for (int k = 0; k < 8; k++) {
                    sw[k] = _mm256_xor_si256(_mm256_loadu_si256((const __m256i *)(p + k * vector_bytes)), flip);
                    aw[k] = _mm256_abs_epi8(sw[k]);
                }
                for (int r = 0; r < rows; r++) {
                    const int8_t *xr = a->values + (at + (size_t)r) * G3N_QUANT_GROUP + half * 32;
                    const size_t lane = (at + (size_t)r) * G3N_QUANT_GROUP_BLOCKS + (size_t)half * 8;
                    __m256i s0 = _mm256_setzero_si256(), s1 = _mm256_setzero_si256();
                    for (int k = 0; k < 8; k += 2) {
                        const __m256i x0 = _mm256_loadu_si256((const __m256i *)(xr + k * 64));
                        const __m256i x1 = _mm256_loadu_si256((const __m256i *)(xr + k * 64 + 64));
                        s0 = _mm256_add_epi32(
                            s0, _mm256_madd_epi16(_mm256_maddubs_epi16(aw[k], _mm256_sign_epi8(x0, sw[k])), ones));
                        s1 = _mm256_add_epi32(s1, _mm256_madd_epi16(
                                                      _mm256_maddubs_epi16(aw[k + 1], _mm256_sign_epi8(x1, sw[k + 1])),
                                                      ones));
                    }
                    const __m256i sum = _mm256_add_epi32(s0, s1);
                    const __m256 scale = _mm256_mul_ps(ws, _mm256_loadu_ps(a->block_scales + lane));
                    acc[r] = _mm256_fmadd_ps(_mm256_cvtepi32_ps(sum), scale, acc[r]);
                }
            }
        }
    }
}

/* Weight rows [j0, j1), every group, rows (≤ MAX_ROWS) of x from row0. */
static inline __attribute__((always_inline)) void dot_rows(g3n_dtype dtype, int rows, const g3n_quant_activations *a,
                                                           int64_t row0, const g3n_matrix *w, float *y,
                                                           size_t y_stride, int64_t j0, int64_t j1)
{
    const row_layout layout = layout_of(a, w);
    for (int64_t j = j0; j < j1; j++) {
        __m256 acc[MAX_ROWS];
        for (int r = 0; r < rows; r++)
            acc[r] = _mm256_setzero_ps();
        dot_groups(dtype, rows, 1, a, &layout, row0, w, j, 0, layout.groups, acc);
        for (int r = 0; r < rows; r++)
            y[(size_t)r * y_stride + (size_t)j] = horizontal_sum(acc[r]);
    }
}

/* K blocking (as quant_avx512.c): with K > 4096 a slice of x no longer stays
 * in L1 while a weight row passes over it; the groups go in blocks of
 * K_BLOCK_GROUPS over up to J_CHUNK weight rows, each row's accumulators parked
 * between blocks (the same fma chain: the same sums bit for bit). */
#define K_BLOCK_GROUPS 4
#define J_CHUNK 32

/* dot_groups with rows and dtype made constants (no prefetch: blocks re-read
 * weights that are already near). */
static inline __attribute__((always_inline)) void groups_any(g3n_dtype dtype, int rows, const g3n_quant_activations *a,
                                                             const row_layout *layout, int64_t row0,
                                                             const g3n_matrix *w, int64_t j, int64_t g0, int64_t g1,
                                                             __m256 *acc)
{
    switch (rows + (dtype == G3N_DTYPE_Q8 ? 0 : MAX_ROWS)) {
    case 1: dot_groups(G3N_DTYPE_Q8, 1, 0, a, layout, row0, w, j, g0, g1, acc); break;
    case 2: dot_groups(G3N_DTYPE_Q8, 2, 0, a, layout, row0, w, j, g0, g1, acc); break;
    case 3: dot_groups(G3N_DTYPE_Q8, 3, 0, a, layout, row0, w, j, g0, g1, acc); break;
    case 4: dot_groups(G3N_DTYPE_Q8, 4, 0, a, layout, row0, w, j, g0, g1, acc); break;
    case 5: dot_groups(G3N_DTYPE_Q4, 1, 0, a, layout, row0, w, j, g0, g1, acc); break;
    case 6: dot_groups(G3N_DTYPE_Q4, 2, 0, a, layout, row0, w, j, g0, g1, acc); break;
    case 7: dot_groups(G3N_DTYPE_Q4, 3, 0, a, layout, row0, w, j, g0, g1, acc); break;
    default: dot_groups(G3N_DTYPE_Q4, 4, 0, a, layout, row0, w, j, g0, g1, acc); break;
    }
}

static __attribute__((noinline)) void dot_rows_blocked(g3n_dtype dtype, int rows, const g3n_quant_activations *a,
                                                       int64_t row0, const g3n_matrix *w, float *y, size_t y_stride,
                                                       int64_t j0, int64_t j1)
{
    const row_layout layout = layout_of(a, w);
    const int64_t groups = layout.groups;
    __m256 partial[J_CHUNK][MAX_ROWS];
    for (int64_t jc = j0; jc < j1; jc += J_CHUNK) {
        const int64_t count = j1 - jc < J_CHUNK ? j1 - jc : J_CHUNK;
        for (int64_t g0 = 0; g0 < groups; g0 += K_BLOCK_GROUPS) {
            const int64_t g1 = g0 + K_BLOCK_GROUPS < groups ? g0 + K_BLOCK_GROUPS : groups;
            for (int64_t i = 0; i < count; i++) {
                __m256 acc[MAX_ROWS];
                for (int r = 0; r < MAX_ROWS; r++)
                    acc[r] = g0 == 0 ? _mm256_setzero_ps() : partial[i][r];
                groups_any(dtype, rows, a, &layout, row0, w, jc + i, g0, g1, acc);
                if (g1 == groups) {
                    for (int r = 0; r < rows; r++)
                        y[(size_t)r * y_stride + (size_t)(jc + i)] = horizontal_sum(acc[r]);
                } else {
                    for (int r = 0; r < MAX_ROWS; r++)
                        partial[i][r] = acc[r];
                }
            }
        }
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
    /* a 4-row slice of x past 16 KB (K > 4096) is re-read from L2 by every
     * weight row unless blocked */
    const int blocked = a->groups > 2 * K_BLOCK_GROUPS && rows > 1;
    for (int64_t done = 0; done < rows; done += MAX_ROWS, y += MAX_ROWS * y_stride) {
        const int64_t first = row0 + done, n = rows - done < MAX_ROWS ? rows - done : MAX_ROWS;
        if (blocked && n > 1)
            dot_rows_blocked(w->dtype, (int)n, a, first, w, y, y_stride, j0, j1);
        else if (w->dtype == G3N_DTYPE_Q8) {
            G3N_DOT_CASES(G3N_DTYPE_Q8, first, n)
        } else {
            G3N_DOT_CASES(G3N_DTYPE_Q4, first, n)
        }
    }
}

/* Sparse-MLP down_proj: Σ coefs[i] · W[rows[i]] over one group (quant.h), as
 * the AVX-512 combine: per element coef·d·q summed in the interleaved order,
 * the offset (128 or 8 · Σ coef·d per block) taken off at the end, the sums put
 * back in column order. acc[k] holds vector k's 64 bytes; 8 bytes (two blocks
 * of 4 weights) per 256-bit step, with the two blocks' scales. */
#define COMBINE_AHEAD 4 /* rows */

static inline __attribute__((always_inline)) void combine_group(g3n_dtype dtype, const g3n_matrix *w,
                                                                const int32_t *rows, const float *coefs,
                                                                int64_t count, int64_t group, float *out)
{
    const int64_t cols = w->cols, full = cols / G3N_QUANT_GROUP;
    const int blocks = g3n_quant_group_blocks(cols, group); /* even: cols is a multiple of 64 */
    const int steps = blocks / 2;
    const int64_t vector_bytes = group < full ? 64 : 4 * (int64_t)blocks;
    const size_t sbytes = g3n_quant_matrix_scales_bytes(w);
    const int lines = (dtype == G3N_DTYPE_Q8 ? G3N_QUANT_GROUP : G3N_QUANT_GROUP / 2) / 64;
    /* step c covers blocks 2c, 2c + 1: lanes 0-3 take the first scale, 4-7 the second */
    __m256i pick[4];
    for (int c = 0; c < 4; c++)
        pick[c] = _mm256_setr_epi32(2 * c, 2 * c, 2 * c, 2 * c, 2 * c + 1, 2 * c + 1, 2 * c + 1, 2 * c + 1);
    __attribute__((aligned(32))) float acc[8][64];
    for (int k = 0; k < 8; k++)
        for (int e = 0; e < 64; e += 8)
            _mm256_store_ps(acc[k] + e, _mm256_setzero_ps());
    __m256 scale_sum[2] = {_mm256_setzero_ps(), _mm256_setzero_ps()};
    const __m128i low_mask = _mm_set1_epi8(15);
    for (int64_t i = 0; i < count; i++) {
        const uint8_t *base = (const uint8_t *)w->data + (size_t)rows[i] * w->row_stride;
        if (i + COMBINE_AHEAD < count) {
            /* the rows are scattered: no prefetcher sees them coming */
            const char *ahead = (const char *)w->data + (size_t)rows[i + COMBINE_AHEAD] * w->row_stride;
            _mm_prefetch(ahead + group * G3N_QUANT_GROUP_BLOCKS * 2, _MM_HINT_T0);
            for (int l = 0; l < lines; l++)
                _mm_prefetch(ahead + sbytes + group * lines * 64 + 64 * l, _MM_HINT_T0);
        }
        const uint16_t *scales = (const uint16_t *)base + group * G3N_QUANT_GROUP_BLOCKS;
        const __m256 coef = _mm256_set1_ps(coefs[i]);
        __m256 d[2];
        d[0] = _mm256_mul_ps(_mm256_cvtph_ps(_mm_loadu_si128((const __m128i *)scales)), coef);
        d[1] = _mm256_mul_ps(_mm256_cvtph_ps(_mm_loadu_si128((const __m128i *)(scales + 8))), coef);
        scale_sum[0] = _mm256_add_ps(scale_sum[0], d[0]);
        scale_sum[1] = _mm256_add_ps(scale_sum[1], d[1]);
        __m256 s[8];
        for (int c = 0; c < 8; c++)
            s[c] = _mm256_permutevar8x32_ps(d[c / 4], pick[c % 4]);
        if (dtype == G3N_DTYPE_Q8) {
            const uint8_t *p = base + sbytes + group * G3N_QUANT_GROUP;
            for (int k = 0; k < 8; k++)
                for (int c = 0; c < steps; c++) {
                    const __m128i bytes = _mm_loadl_epi64((const __m128i *)(p + k * vector_bytes + 8 * c));
                    const __m256 v = _mm256_cvtepi32_ps(_mm256_cvtepu8_epi32(bytes));
                    _mm256_store_ps(acc[k] + 8 * c, _mm256_fmadd_ps(v, s[c], _mm256_load_ps(acc[k] + 8 * c)));
                }
        } else {
            /* byte b of vector k: weight 4k + b%4 of block b/4 (low nibble) and 16 + 4k + b%4 (high) */
            const uint8_t *p = base + sbytes + group * (G3N_QUANT_GROUP / 2);
            for (int k = 0; k < 4; k++)
                for (int c = 0; c < steps; c++) {
                    const __m128i packed = _mm_loadl_epi64((const __m128i *)(p + k * vector_bytes + 8 * c));
                    const __m128i low = _mm_and_si128(packed, low_mask);
                    const __m128i high = _mm_and_si128(_mm_srli_epi16(packed, 4), low_mask);
                    const __m256 vl = _mm256_cvtepi32_ps(_mm256_cvtepu8_epi32(low));
                    const __m256 vh = _mm256_cvtepi32_ps(_mm256_cvtepu8_epi32(high));
                    _mm256_store_ps(acc[k] + 8 * c, _mm256_fmadd_ps(vl, s[c], _mm256_load_ps(acc[k] + 8 * c)));
                    _mm256_store_ps(acc[k + 4] + 8 * c,
                                    _mm256_fmadd_ps(vh, s[c], _mm256_load_ps(acc[k + 4] + 8 * c)));
                }
        }
    }
    /* element (k, b): weight 4k + b%4 of block b/4; Q4's vector k + 4 is weights 16 + 4k + .. */
    __attribute__((aligned(32))) float offset_sum[16];
    const float offset = dtype == G3N_DTYPE_Q8 ? 128.0f : 8.0f;
    _mm256_store_ps(offset_sum, _mm256_mul_ps(scale_sum[0], _mm256_set1_ps(offset)));
    _mm256_store_ps(offset_sum + 8, _mm256_mul_ps(scale_sum[1], _mm256_set1_ps(offset)));
    for (int l = 0; l < blocks; l++)
        for (int k = 0; k < 8; k++)
            for (int e = 0; e < 4; e++)
                out[l * 32 + 4 * k + e] = acc[k][4 * l + e] - offset_sum[l];
}

void g3n_quant_combine_group_avx2(const g3n_matrix *w, const int32_t *rows, const float *coefs, int64_t count,
                                  int64_t group, float *out)
{
    if (w->dtype == G3N_DTYPE_Q8)
        combine_group(G3N_DTYPE_Q8, w, rows, coefs, count, group, out);
    else
        combine_group(G3N_DTYPE_Q4, w, rows, coefs, count, group, out);
}
