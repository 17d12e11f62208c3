/* matmul.h - y = x · Wᵀ, the one kernel everything heavy goes through.
 *
 * x: m rows of k f32 activations (row stride x_stride floats).
 * W: a g3n_matrix (matrix.h) of n rows (output features) × k columns (input
 *    features), PyTorch Linear layout, in any format of matrix_format.h (F32,
 *    BF16, F16 as stored; Q8, Q4 block-quantised).
 * y: m rows of n f32 outputs (row stride y_stride floats).
 * Parallel over OpenMP threads (rows of W for small m, tiles for large m),
 * through the kernels the format table lists for the instruction-set level
 * chosen at start (isa.h: AVX-512, AVX2, portable C).
 * Accumulation is f32.
 */
#ifndef G3N_MATMUL_H
#define G3N_MATMUL_H

#include <stddef.h>
#include <stdint.h>

#include "isa.h"
#include "matrix.h"
#include "matrix_format.h"
#include "status.h"
#include "tensor.h"

void g3n_matmul(const float *x, int64_t m, size_t x_stride, const g3n_matrix *w, float *y, size_t y_stride);

/* Several products of the same x (e.g. q/k/v projections): the same results
 * as one g3n_matmul per output. For Q8/Q4 weights of one dtype and width the
 * activations are quantised once and all outputs share one parallel region. */
typedef struct g3n_matmul_output {
    const g3n_matrix *w;
    float *y;
    size_t y_stride;
} g3n_matmul_output;
void g3n_matmul_many(const float *x, int64_t m, size_t x_stride, const g3n_matmul_output *outputs, int count);

/* Dot product of k f32 values with row `row` of w (used by gathers and tests). */
float g3n_matrix_row_dot(const g3n_matrix *w, int64_t row, const float *x);

/* Selected rows only: y[i] = x · W[rows[i]]ᵀ for i < count (one x row of w->cols
 * values). Parallel over the rows. */
void g3n_matmul_gather(const float *x, const g3n_matrix *w, const int32_t *rows, int64_t count, float *y);
/* Weighted sum of selected rows: y[0 .. w->cols) = Σ_i coefs[i] · W[rows[i]].
 * With W stored transposed this is a product with a sparse vector (the sparse
 * MLP's down_proj). Parallel over column slices; y is overwritten. */
void g3n_matrix_combine_rows(const g3n_matrix *w, const int32_t *rows, const float *coefs, int64_t count, float *y);

/* Sets the number of OpenMP threads for all kernels (<= 0: leave default). */
void g3n_set_threads(int threads);
int g3n_get_threads(void);

#endif
