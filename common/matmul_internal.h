/* matmul_internal.h - what matmul.c shares with its per-ISA kernel files. */
#ifndef G3N_MATMUL_INTERNAL_H
#define G3N_MATMUL_INTERNAL_H

#include "matmul.h"

/* Rows of x handled by one GEMM micro-kernel call and K columns packed per block. */
#define G3N_GEMM_MR 6
#define G3N_GEMM_KC 256

/* Packs W[row0 .. row0+rows) × [k0 .. k0+kc) as f32, transposed to
 * out[kk * panel_width + r]; rows beyond `rows` (up to panel_width) are zero. */
void g3n_pack_panel_f32(const g3n_matrix *w, int64_t row0, int64_t rows, int64_t panel_width, int64_t k0,
                        int64_t kc, float *out);

/* Per-ISA kernels. dot: y[i][j] for rows i < m (m <= 4) and j in [j0, j1). */
void g3n_matmul_dot_avx512(const float *x, int64_t m, size_t x_stride, const g3n_matrix *w, float *y,
                           size_t y_stride, int64_t j0, int64_t j1);
void g3n_matmul_dot_avx2(const float *x, int64_t m, size_t x_stride, const g3n_matrix *w, float *y,
                         size_t y_stride, int64_t j0, int64_t j1);
/* Micro-kernel: y[0..6)[0..nr) (+)= x[0..6)[0..kc) · packed[kc][panel]; `accumulate` adds to y.
 * y_columns <= panel width: columns actually stored. */
void g3n_gemm_micro_avx512(const float *x, size_t x_stride, const float *packed, int64_t kc, float *y,
                           size_t y_stride, int64_t y_columns, int accumulate);
void g3n_gemm_micro_avx2(const float *x, size_t x_stride, const float *packed, int64_t kc, float *y,
                         size_t y_stride, int64_t y_columns, int accumulate);
#define G3N_GEMM_NR_AVX512 32
#define G3N_GEMM_NR_AVX2 16

#endif
