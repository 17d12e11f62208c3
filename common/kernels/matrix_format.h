/* matrix_format.h - the weight formats a g3n_matrix can hold, as one table.
 *
 * One row per format (F32, BF16, F16 as stored in checkpoints; Q8, Q4 block-
 * quantised, quant.h): its name, block size, bytes per block, how a row
 * becomes f32, and its product kernels for each instruction-set level
 * (isa.h). g3n_matmul and its relatives (matmul.h) look everything up here,
 * so adding a format is one table row in matrix_format.c plus its kernels
 * (a *_avx2.c / *_avx512.c file and a portable fallback); a quantised format
 * that quantises the activations as Q8/Q4 do (int8 per block of 32, quant.h)
 * reuses the activation code and the parallel drivers of matmul.c as they are.
 */
#ifndef G3N_MATRIX_FORMAT_H
#define G3N_MATRIX_FORMAT_H

#include <stddef.h>
#include <stdint.h>

#include "isa.h"
#include "matrix.h"
#include "status.h"

struct g3n_quant_activations;

/* y[i][j] = x_i · W[j] for x rows i < m (m <= 4), weight rows [j0, j1). */
typedef void (*g3n_matrix_dot_kernel)(const float *x, int64_t m, size_t x_stride, const g3n_matrix *w, float *y,
                                      size_t y_stride, int64_t j0, int64_t j1);
/* GEMM micro-kernel over f32 panels packed from any stored format (matmul_internal.h). */
typedef void (*g3n_matrix_micro_kernel)(const float *x, size_t x_stride, const float *packed, int64_t kc, float *y,
                                        size_t y_stride, int64_t y_columns, int accumulate);
/* Quantised activations rows [row0, row0 + rows) (rows <= 8) × weight rows [j0, j1) (quant.h). */
typedef void (*g3n_matrix_quant_kernel)(const struct g3n_quant_activations *a, int64_t row0, int64_t rows,
                                        const g3n_matrix *w, float *y, size_t y_stride, int64_t j0, int64_t j1);
/* Σ_i coefs[i] · W[rows[i]] over one 512-column group (quant.h). */
typedef void (*g3n_matrix_combine_kernel)(const g3n_matrix *w, const int32_t *rows, const float *coefs,
                                          int64_t count, int64_t group, float *out);

/* What one format runs on one instruction-set level; NULL: not there (the
 * drivers in matmul.c then take the portable way named on each field). */
typedef struct g3n_matrix_kernels {
    /* stored formats (f32 activations) */
    g3n_matrix_dot_kernel dot;       /* NULL: the portable loop over all rows of x */
    g3n_matrix_micro_kernel gemm;    /* products of >= 12 rows of x; NULL: dot */
    int gemm_panel;                  /* output columns per packed panel of gemm */
    int bf16_products;               /* 1: honours g3n_matrix.bf16_products (AVX512-BF16) */
    /* quantised formats (activations quantised per block, quant.h) */
    g3n_matrix_quant_kernel quant_dot;       /* required for a quantised format */
    g3n_matrix_combine_kernel combine_group; /* NULL: rows dequantised slice by slice */
} g3n_matrix_kernels;

typedef struct g3n_matrix_format {
    const char *name;     /* "F32", "BF16", "F16", "Q8", "Q4" */
    int block;            /* weights per block along a row (1: each weight on its own) */
    size_t block_bytes;   /* bytes of one block's weights (a quantised row's scales come on top, quant.h) */
    int quantised;        /* 1: products quantise the activations (quant.h) */
    /* Columns [c0, c1) of row `row` as f32 (c0, c1 multiples of block). */
    void (*to_f32)(const g3n_matrix *w, int64_t row, int64_t c0, int64_t c1, float *out);
    g3n_matrix_kernels kernels[G3N_ISA_COUNT]; /* by g3n_isa */
} g3n_matrix_format;

/* The format of a matrix dtype; NULL for a dtype no matrix holds (I32, I64, U8). */
const g3n_matrix_format *g3n_matrix_format_of(g3n_dtype dtype);

/* The kernels of format on the active instruction-set level. */
static inline const g3n_matrix_kernels *g3n_matrix_format_kernels(const g3n_matrix_format *format)
{
    return &format->kernels[g3n_isa_active()];
}

/* A matrix view of a 2-D tensor (contiguous rows), or of a tensor viewed as
 * [shape[0], numel/shape[0]] (e.g. conv kernels [out, in, 1, 1]). */
int g3n_matrix_from_tensor(g3n_matrix *matrix, const g3n_tensor *tensor, g3n_error *err);
/* Row `row` of w as f32 (k values). */
void g3n_matrix_row_to_f32(const g3n_matrix *w, int64_t row, float *out);
/* "F32", "BF16", "F16", "Q8", "Q4" ("?" for a dtype no matrix holds). */
const char *g3n_matrix_dtype_name(g3n_dtype dtype);

#endif
