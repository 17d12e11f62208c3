/* matrix.h - a weight matrix as the kernels see it: n rows (output features)
 * × k columns (input features), PyTorch Linear layout, in one of the formats
 * of matrix_format.h (F32, BF16, F16 as stored; Q8/Q4 block-quantised). A
 * view: the data belongs to a tensor, a mapped file or a weight cache. */
#ifndef G3N_MATRIX_H
#define G3N_MATRIX_H

#include <stddef.h>
#include <stdint.h>

#include "tensor.h"

typedef struct g3n_matrix {
    g3n_dtype dtype;      /* F32, BF16, F16, or Q8/Q4 (quant.h) */
    int64_t rows;         /* n: output features */
    int64_t cols;         /* k: input features */
    size_t row_stride;    /* bytes between rows */
    const void *data;
    /* BF16 weights only: 1 lets products with 16 or more rows of x round x to
     * bf16 and run on AVX512-BF16 vdpbf16ps (twice the f32 FMA rate; the bf16
     * weight format's prefill, with its tested budget). 0 (the default, the
     * exact path): x stays f32. */
    int bf16_products;
    /* Q8/Q4 only: a view of the first `cols` columns of rows quantised at this
     * width (a MatFormer sub-model's down_proj; cols a multiple of
     * G3N_QUANT_GROUP); 0: the rows hold cols columns. */
    int64_t stored_cols;
} g3n_matrix;

/* A view of rows [first, first + count). */
static inline g3n_matrix g3n_matrix_rows(const g3n_matrix *matrix, int64_t first, int64_t count)
{
    g3n_matrix view = *matrix;
    view.rows = count;
    view.data = (const char *)matrix->data + (size_t)first * matrix->row_stride;
    return view;
}

/* The first byte of row `row`. */
static inline const void *g3n_matrix_row(const g3n_matrix *matrix, int64_t row)
{
    return (const char *)matrix->data + (size_t)row * matrix->row_stride;
}

#endif
