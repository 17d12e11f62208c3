/* matmul_internal.h - the stored formats' kernels (matmul_avx2.c,
 * matmul_avx512.c), listed in the format table (matrix_format.c) and driven
 * by matmul.c. */
#ifndef G3N_MATMUL_INTERNAL_H
#define G3N_MATMUL_INTERNAL_H

#include "matrix.h"

/* Rows of x handled by one GEMM micro-kernel call and K columns packed per block. */
#define G3N_GEMM_MR 6
#define G3N_GEMM_KC 256

/* Packs W[row0 .. row0+rows) × [k0 .. k0+kc) as f32, transposed to
 * out[kk * panel_width + r]; rows beyond `rows` (up to panel_width) are zero. */
void g3n_pack_panel_f32(const g3n_matrix *w, int64_t row0, int64_t rows, int64_t panel_width, int64_t k0,
                        int64_t kc, float *out);

/* dot: y[i][j] for rows i < m (m <= 4) and j in [j0, j1), one per stored format and ISA. */
#define G3N_MATMUL_DOT(NAME)                                                                                      \
    void NAME(const float *x, int64_t m, size_t x_stride, const g3n_matrix *w, float *y, size_t y_stride,         \
              int64_t j0, int64_t j1)
G3N_MATMUL_DOT(g3n_matmul_dot_f32_avx512);
G3N_MATMUL_DOT(g3n_matmul_dot_bf16_avx512);
G3N_MATMUL_DOT(g3n_matmul_dot_f16_avx512);
G3N_MATMUL_DOT(g3n_matmul_dot_f32_avx2);
G3N_MATMUL_DOT(g3n_matmul_dot_bf16_avx2);
G3N_MATMUL_DOT(g3n_matmul_dot_f16_avx2);
#undef G3N_MATMUL_DOT
/* Micro-kernel: y[0..6)[0..nr) (+)= x[0..6)[0..kc) · packed[kc][panel]; `accumulate` adds to y.
 * y_columns <= panel width: columns actually stored. Any stored format (the panels are f32). */
void g3n_gemm_micro_avx512(const float *x, size_t x_stride, const float *packed, int64_t kc, float *y,
                           size_t y_stride, int64_t y_columns, int accumulate);
void g3n_gemm_micro_avx2(const float *x, size_t x_stride, const float *packed, int64_t kc, float *y,
                         size_t y_stride, int64_t y_columns, int accumulate);
#define G3N_GEMM_NR_AVX512 32
#define G3N_GEMM_NR_AVX2 16

#endif
