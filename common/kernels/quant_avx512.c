/* AVX-512 VNNI kernels for the Q8/Q4 group layout (quant.h; compiled with
 * -mavx512* and called only after g3n_isa_active() reported AVX-512, which
 * includes VNNI). Per group of 512 weights and activation row: 8 vpdpbusd
 * (unsigned weight bytes × signed activation bytes) into one int32 lane per
 * block, started from the row's offset correction, then one convert, one
 * multiply of the 16 weight scales by the 16 activation scales and one fma.
 * Q4 unpacks 128 weights per 64-byte load (and, shift, and). */
#include <immintrin.h>
#include <string.h>

#include "quant.h"

/* The 8 weight vectors of group g (vector_bytes = 4 × blocks in the group). */
static inline __attribute__((always_inline)) void load_group(g3n_dtype dtype, const uint8_t *q, int64_t group,
                                                             int64_t vector_bytes, __m512i wv[8])
{
    if (dtype == G3N_DTYPE_Q8) {
        const uint8_t *p = q + group * G3N_QUANT_GROUP;
        for (int k = 0; k < 8; k++)
            wv[k] = _mm512_loadu_si512((const void *)(p + k * vector_bytes));
        return;
    }
    const uint8_t *p = q + group * (G3N_QUANT_GROUP / 2);
    const __m512i low_mask = _mm512_set1_epi8(15);
    for (int k = 0; k < 4; k++) {
        const __m512i packed = _mm512_loadu_si512((const void *)(p + k * vector_bytes));
        wv[k] = _mm512_and_si512(packed, low_mask);
        wv[k + 4] = _mm512_and_si512(_mm512_srli_epi16(packed, 4), low_mask);
    }
}

/* Decode streams every weight once: the hardware prefetcher alone left long
 * rows (q8 1x8192x8192) below the stream rate that shorter rows of the same
 * bytes reach. Fetching the lines PREFETCH_BYTES ahead of group g (rows are
 * contiguous: past a row's end that is the next row's start) brings both to
 * it (docs/performance.md, "Quantised products"). */
#define PREFETCH_BYTES 2048
static inline __attribute__((always_inline)) void prefetch_ahead(g3n_dtype dtype, const uint8_t *q, int64_t group)
{
    const int lines = dtype == G3N_DTYPE_Q8 ? G3N_QUANT_GROUP / 64 : G3N_QUANT_GROUP / 128;
    const char *ahead = (const char *)q + group * lines * 64 + PREFETCH_BYTES;
    for (int l = 0; l < lines; l++)
        _mm_prefetch(ahead + 64 * l, _MM_HINT_T0);
}

static inline __attribute__((always_inline)) __m512 group_weight_scales(const uint16_t *scales, int64_t group)
{
    return _mm512_cvtph_ps(_mm256_loadu_si256((const __m256i *)(scales + group * G3N_QUANT_GROUP_BLOCKS)));
}

/* K blocking: with more than 2 x K_BLOCK_GROUPS groups (K > 4096) an 8-row
 * slice of x (8 x K bytes: 64 KB at K = 8192) no longer stays in L1 while a
 * weight row passes over it, and every weight row re-read it from L2 (E2B's
 * down_proj ran at half the rate of K = 2048: docs/performance.md). Then
 * the groups go in blocks of K_BLOCK_GROUPS (8 x 2048 bytes of x) over up to
 * J_CHUNK weight rows, each row's 8 accumulator vectors parked in `partial`
 * between blocks: the same fmadd chain per output, so the same sums bit for bit. */
#define K_BLOCK_GROUPS 4
#define J_CHUNK 32

/* What every weight row of a call shares (worked out once per call: the
 * helpers are calls into quant.c, too dear per row of a one-token product). */
typedef struct row_layout {
    int64_t groups, full;  /* groups per row, of which full (512 weights) */
    int64_t tail_bytes;    /* the last group's vector bytes */
    size_t scales_bytes;   /* the f16 scales before the quants */
    int64_t m;             /* rows of the prepared activations */
} row_layout;

/* The groups [g0, g1) of weight row j into acc[0..rows). */
static inline __attribute__((always_inline)) void dot_groups(g3n_dtype dtype, int rows, const g3n_quant_activations *a,
                                                             const row_layout *layout, int64_t row0,
                                                             const g3n_matrix *w, int64_t j, int64_t g0, int64_t g1,
                                                             __m512 *acc)
{
    const int64_t full = layout->full, tail_bytes = layout->tail_bytes;
    /* group g, row r of this call: at (g·m + row0 + r) in the group-major arrays */
    const int64_t m = layout->m;
    const uint8_t *base = (const uint8_t *)w->data + (size_t)j * w->row_stride;
    const uint16_t *scales = (const uint16_t *)base;
    const uint8_t *q = base + layout->scales_bytes;
    for (int64_t g = g0; g < g1; g++) {
        __m512i wv[8];
        load_group(dtype, q, g, g < full ? 64 : tail_bytes, wv);
        const __m512 ws = group_weight_scales(scales, g);
        const size_t at = (size_t)(g * m + row0);
        const int8_t *xg = a->values + at * G3N_QUANT_GROUP;
        const int32_t *sg = a->start + at * G3N_QUANT_GROUP_BLOCKS;
        const float *fg = a->block_scales + at * G3N_QUANT_GROUP_BLOCKS;
        for (int r = 0; r < rows; r++) {
            const int8_t *xr = xg + r * G3N_QUANT_GROUP;
            __m512i sum = _mm512_loadu_si512((const void *)(sg + r * G3N_QUANT_GROUP_BLOCKS));
            __m512i sum2 = _mm512_setzero_si512(); /* two chains for the latency */
            for (int k = 0; k < 8; k += 2) {
                sum = _mm512_dpbusd_epi32(sum, wv[k], _mm512_loadu_si512((const void *)(xr + k * 64)));
                sum2 = _mm512_dpbusd_epi32(sum2, wv[k + 1], _mm512_loadu_si512((const void *)(xr + k * 64 + 64)));
            }
            sum = _mm512_add_epi32(sum, sum2);
            const __m512 scale = _mm512_mul_ps(ws, _mm512_loadu_ps(fg + r * G3N_QUANT_GROUP_BLOCKS));
            acc[r] = _mm512_fmadd_ps(_mm512_cvtepi32_ps(sum), scale, acc[r]);
        }
    }
}

/* K blocks over weight rows [j0, j1) (see K_BLOCK_GROUPS). */
static inline __attribute__((always_inline)) void dot_rows_blocked(g3n_dtype dtype, int rows,
                                                                   const g3n_quant_activations *a,
                                                                   const row_layout *layout, int64_t row0,
                                                                   const g3n_matrix *w, float *y, size_t y_stride,
                                                                   int64_t j0, int64_t j1)
{
    const int64_t groups = layout->groups;
    __m512 partial[J_CHUNK][8];
    for (int64_t jc = j0; jc < j1; jc += J_CHUNK) {
        const int64_t count = j1 - jc < J_CHUNK ? j1 - jc : J_CHUNK;
        for (int64_t g0 = 0; g0 < groups; g0 += K_BLOCK_GROUPS) {
            const int64_t g1 = g0 + K_BLOCK_GROUPS < groups ? g0 + K_BLOCK_GROUPS : groups;
            for (int64_t i = 0; i < count; i++) {
                __m512 acc[8];
                for (int r = 0; r < rows; r++)
                    acc[r] = g0 == 0 ? _mm512_setzero_ps() : partial[i][r];
                dot_groups(dtype, rows, a, layout, row0, w, jc + i, g0, g1, acc);
                if (g1 == groups) {
                    for (int r = 0; r < rows; r++)
                        y[(size_t)r * y_stride + (size_t)(jc + i)] = _mm512_reduce_add_ps(acc[r]);
                } else {
                    for (int r = 0; r < rows; r++)
                        partial[i][r] = acc[r];
                }
            }
        }
    }
}

/* The K-blocked product of an x slice that leaves L1 (rows x cols > 32 KB with
 * K > 4096: 5..8-row slices of prefill), out of line and chosen before the
 * one-token kernels (dot_rows), which stay as they were. */
static int wants_k_blocks(const g3n_quant_activations *a, int64_t rows, const g3n_matrix *w)
{
    return a->groups > 2 * K_BLOCK_GROUPS && rows * w->cols > 32768;
}

static __attribute__((noinline)) void dot_rows_k_blocks(g3n_dtype dtype, int rows, const g3n_quant_activations *a,
                                                        int64_t row0, const g3n_matrix *w, float *y, size_t y_stride,
                                                        int64_t j0, int64_t j1)
{
    const int64_t groups = a->groups;
    const row_layout layout = {groups, w->cols / G3N_QUANT_GROUP,
                               4 * (int64_t)g3n_quant_group_blocks(w->cols, groups - 1),
                               g3n_quant_matrix_scales_bytes(w), a->rows};
#define G3N_BLOCKED_CASE(DTYPE, N)                                                                                 \
    if (dtype == DTYPE && rows == N) {                                                                             \
        dot_rows_blocked(DTYPE, N, a, &layout, row0, w, y, y_stride, j0, j1);                                      \
        return;                                                                                                    \
    }
    G3N_BLOCKED_CASE(G3N_DTYPE_Q8, 8)
    G3N_BLOCKED_CASE(G3N_DTYPE_Q4, 8)
#undef G3N_BLOCKED_CASE
    dot_rows_blocked(dtype, rows, a, &layout, row0, w, y, y_stride, j0, j1); /* (5-7 rows: a slice's tail) */
}

/* The one-token (and prefill, unblocked) kernel. Its group loop is dot_groups'
 * written out once more on purpose: built on dot_groups decode read the q8
 * head measurably slower (docs/performance.md), and decode is this loop. */
static inline __attribute__((always_inline)) void dot_rows(g3n_dtype dtype, int rows, const g3n_quant_activations *a,
                                                           int64_t row0, const g3n_matrix *w, float *y,
                                                           size_t y_stride, int64_t j0, int64_t j1)
{
    const int64_t cols = w->cols, groups = a->groups, full = cols / G3N_QUANT_GROUP;
    const int64_t tail_bytes = 4 * (int64_t)g3n_quant_group_blocks(cols, groups - 1);
    const size_t sbytes = g3n_quant_matrix_scales_bytes(w);
    /* group g, row r of this call: at (g·m + row0 + r) in the group-major arrays */
    const int64_t m = a->rows;
    for (int64_t j = j0; j < j1; j++) {
        const uint8_t *base = (const uint8_t *)w->data + (size_t)j * w->row_stride;
        const uint16_t *scales = (const uint16_t *)base;
        const uint8_t *q = base + sbytes;
        __m512 acc[8];
        for (int r = 0; r < rows; r++)
            acc[r] = _mm512_setzero_ps();
        for (int64_t g = 0; g < groups; g++) {
            __m512i wv[8];
            prefetch_ahead(dtype, q, g);
            load_group(dtype, q, g, g < full ? 64 : tail_bytes, wv);
            const __m512 ws = group_weight_scales(scales, g);
            const size_t at = (size_t)(g * m + row0);
            const int8_t *xg = a->values + at * G3N_QUANT_GROUP;
            const int32_t *sg = a->start + at * G3N_QUANT_GROUP_BLOCKS;
            const float *fg = a->block_scales + at * G3N_QUANT_GROUP_BLOCKS;
            for (int r = 0; r < rows; r++) {
                const int8_t *xr = xg + r * G3N_QUANT_GROUP;
                __m512i sum = _mm512_loadu_si512((const void *)(sg + r * G3N_QUANT_GROUP_BLOCKS));
                __m512i sum2 = _mm512_setzero_si512(); /* two chains for the latency */
                for (int k = 0; k < 8; k += 2) {
                    sum = _mm512_dpbusd_epi32(sum, wv[k], _mm512_loadu_si512((const void *)(xr + k * 64)));
                    sum2 = _mm512_dpbusd_epi32(sum2, wv[k + 1], _mm512_loadu_si512((const void *)(xr + k * 64 + 64)));
                }
                sum = _mm512_add_epi32(sum, sum2);
                const __m512 scale = _mm512_mul_ps(ws, _mm512_loadu_ps(fg + r * G3N_QUANT_GROUP_BLOCKS));
                acc[r] = _mm512_fmadd_ps(_mm512_cvtepi32_ps(sum), scale, acc[r]);
            }
        }
        for (int r = 0; r < rows; r++)
            y[(size_t)r * y_stride + (size_t)j] = _mm512_reduce_add_ps(acc[r]);
    }
}

#define G3N_DOT_CASE(DTYPE, N)                                                                                     \
    case N:                                                                                                        \
        dot_rows(DTYPE, N, a, row0, w, y, y_stride, j0, j1);                                                       \
        break;
#define G3N_DOT_CASES(DTYPE)                                                                                       \
    switch (rows) {                                                                                                \
        G3N_DOT_CASE(DTYPE, 1)                                                                                     \
        G3N_DOT_CASE(DTYPE, 2)                                                                                     \
        G3N_DOT_CASE(DTYPE, 3)                                                                                     \
        G3N_DOT_CASE(DTYPE, 4)                                                                                     \
        G3N_DOT_CASE(DTYPE, 5)                                                                                     \
        G3N_DOT_CASE(DTYPE, 6)                                                                                     \
        G3N_DOT_CASE(DTYPE, 7)                                                                                     \
    default:                                                                                                       \
        dot_rows(DTYPE, 8, a, row0, w, y, y_stride, j0, j1);                                                       \
        break;                                                                                                     \
    }

void g3n_quant_dot_avx512(const g3n_quant_activations *a, int64_t row0, int64_t rows, const g3n_matrix *w,
                          float *y, size_t y_stride, int64_t j0, int64_t j1)
{
    if (wants_k_blocks(a, rows, w)) {
        dot_rows_k_blocks(w->dtype, (int)rows, a, row0, w, y, y_stride, j0, j1);
        return;
    }
    if (w->dtype == G3N_DTYPE_Q8) {
        G3N_DOT_CASES(G3N_DTYPE_Q8)
    } else {
        G3N_DOT_CASES(G3N_DTYPE_Q4)
    }
}

/* 16 bytes qq of v (an immediate for every qq, also without unrolling). */
static inline __attribute__((always_inline)) __m128i quarter(__m512i v, int qq)
{
    switch (qq) {
    case 0:
        return _mm512_extracti32x4_epi32(v, 0);
    case 1:
        return _mm512_extracti32x4_epi32(v, 1);
    case 2:
        return _mm512_extracti32x4_epi32(v, 2);
    default:
        return _mm512_extracti32x4_epi32(v, 3);
    }
}

#define COMBINE_AHEAD 4 /* rows */

/* Sparse-MLP down_proj: Σ coefs[i] · W[rows[i]] over one group. The sum runs
 * in the interleaved order (vector k, byte b) with per-element scales
 * coef · d[block of b], and is put back in column order at the end. */
static inline __attribute__((always_inline)) void combine_group(g3n_dtype dtype, const g3n_matrix *w,
                                                                const int32_t *rows, const float *coefs,
                                                                int64_t count, int64_t group, float *out)
{
    const int64_t cols = w->cols, full = cols / G3N_QUANT_GROUP;
    const int blocks = g3n_quant_group_blocks(cols, group);
    const int64_t vector_bytes = group < full ? 64 : 4 * (int64_t)blocks;
    const size_t sbytes = g3n_quant_matrix_scales_bytes(w);
    const __m512 offset = _mm512_set1_ps(dtype == G3N_DTYPE_Q8 ? 128.0f : 8.0f);
    /* element e of quarter qq of a vector belongs to block 4·qq + e/4 */
    __m512i quarter_index[4];
    for (int qq = 0; qq < 4; qq++) {
        int32_t idx[16];
        for (int e = 0; e < 16; e++)
            idx[e] = 4 * qq + e / 4;
        quarter_index[qq] = _mm512_loadu_si512((const void *)idx);
    }
    __m512 acc[8][4];
    for (int k = 0; k < 8; k++)
        for (int qq = 0; qq < 4; qq++)
            acc[k][qq] = _mm512_setzero_ps();
    __m512 bias[4] = {_mm512_setzero_ps(), _mm512_setzero_ps(), _mm512_setzero_ps(), _mm512_setzero_ps()};
    const int lines = (dtype == G3N_DTYPE_Q8 ? G3N_QUANT_GROUP : G3N_QUANT_GROUP / 2) / 64;
    for (int64_t i = 0; i < count; i++) {
        const uint8_t *base = (const uint8_t *)w->data + (size_t)rows[i] * w->row_stride;
        if (i + COMBINE_AHEAD < count) {
            /* the rows are scattered: no prefetcher sees them coming */
            const char *ahead = (const char *)w->data + (size_t)rows[i + COMBINE_AHEAD] * w->row_stride;
            _mm_prefetch(ahead + group * G3N_QUANT_GROUP_BLOCKS * 2, _MM_HINT_T0);
            for (int l = 0; l < lines; l++)
                _mm_prefetch(ahead + sbytes + group * lines * 64 + 64 * l, _MM_HINT_T0);
        }
        __m512i wv[8];
        load_group(dtype, base + sbytes, group, vector_bytes, wv);
        const __m512 d = _mm512_mul_ps(group_weight_scales((const uint16_t *)base, group), _mm512_set1_ps(coefs[i]));
        for (int qq = 0; qq < 4; qq++) {
            const __m512 s = _mm512_permutexvar_ps(quarter_index[qq], d);
            bias[qq] = _mm512_fnmadd_ps(s, offset, bias[qq]); /* − offset · coef · d */
            for (int k = 0; k < 8; k++) {
                const __m128i bytes = quarter(wv[k], qq);
                const __m512 v = _mm512_cvtepi32_ps(_mm512_cvtepu8_epi32(bytes));
                acc[k][qq] = _mm512_fmadd_ps(v, s, acc[k][qq]);
            }
        }
    }
    /* element (k, qq, e): byte b = 16·qq + e of vector k = weight 4k + b%4 of block b/4 */
    float flat[8][64];
    for (int k = 0; k < 8; k++)
        for (int qq = 0; qq < 4; qq++)
            _mm512_storeu_ps(flat[k] + 16 * qq, _mm512_add_ps(acc[k][qq], bias[qq]));
    for (int l = 0; l < blocks; l++)
        for (int k = 0; k < 8; k++)
            for (int i = 0; i < 4; i++)
                out[l * 32 + 4 * k + i] = flat[k][4 * l + i];
}

void g3n_quant_combine_group_avx512(const g3n_matrix *w, const int32_t *rows, const float *coefs, int64_t count,
                                    int64_t group, float *out)
{
    if (w->dtype == G3N_DTYPE_Q8)
        combine_group(G3N_DTYPE_Q8, w, rows, coefs, count, group, out);
    else
        combine_group(G3N_DTYPE_Q4, w, rows, coefs, count, group, out);
}
