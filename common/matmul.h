/* matmul.h - y = x · Wᵀ, the one kernel everything heavy goes through.
 *
 * x: m rows of k f32 activations (row stride x_stride floats).
 * W: a g3n_matrix of n rows (output features) × k columns (input features),
 *    PyTorch Linear layout, in its stored dtype (F32, BF16, F16); later int8/int4
 *    block formats add dtypes here without changing callers.
 * y: m rows of n f32 outputs (row stride y_stride floats).
 * Parallel over OpenMP threads (rows of W for small m, tiles for large m),
 * vectorised with AVX-512 / AVX2 chosen at run time, with a portable C path.
 * Accumulation is f32.
 */
#ifndef G3N_MATMUL_H
#define G3N_MATMUL_H

#include <stddef.h>
#include <stdint.h>

#include "status.h"
#include "tensor.h"

/* Block-quantised formats: g3n_matrix dtypes only (no g3n_tensor holds them);
 * common/quant.h describes their layout. */
#define G3N_DTYPE_Q8 ((g3n_dtype)(G3N_DTYPE_COUNT + 1))
#define G3N_DTYPE_Q4 ((g3n_dtype)(G3N_DTYPE_COUNT + 2))

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

/* A matrix view of a 2-D tensor (contiguous rows), or of a tensor viewed as
 * [shape[0], numel/shape[0]] (e.g. conv kernels [out, in, 1, 1]). */
int g3n_matrix_from_tensor(g3n_matrix *matrix, const g3n_tensor *tensor, g3n_error *err);
/* A view of rows [first, first + count). */
g3n_matrix g3n_matrix_rows(const g3n_matrix *matrix, int64_t first, int64_t count);

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
/* Row `row` of w as f32 (k values). */
void g3n_matrix_row_to_f32(const g3n_matrix *w, int64_t row, float *out);

/* "F32", "BF16", "F16", "Q8", "Q4". */
const char *g3n_matrix_dtype_name(g3n_dtype dtype);

/* Selected rows only: y[i] = x · W[rows[i]]ᵀ for i < count (one x row of w->cols
 * values). Parallel over the rows. */
void g3n_matmul_gather(const float *x, const g3n_matrix *w, const int32_t *rows, int64_t count, float *y);
/* Weighted sum of selected rows: y[0 .. w->cols) = Σ_i coefs[i] · W[rows[i]].
 * With W stored transposed this is a product with a sparse vector (the sparse
 * MLP's down_proj). Parallel over column slices; y is overwritten. */
void g3n_matrix_combine_rows(const g3n_matrix *w, const int32_t *rows, const float *coefs, int64_t count, float *y);

/* Instruction-set level of the kernels. */
typedef enum g3n_isa { G3N_ISA_PORTABLE = 0, G3N_ISA_AVX2 = 1, G3N_ISA_AVX512 = 2 } g3n_isa;

/* The best level this CPU supports. */
g3n_isa g3n_isa_detect(void);
/* Level in use (default: detected; G3N_ISA env var "portable|avx2|avx512" caps it). */
g3n_isa g3n_isa_active(void);
/* Forces a level (capped by what the CPU supports); for tests and benchmarks. */
g3n_isa g3n_isa_set(g3n_isa isa);
const char *g3n_isa_name(g3n_isa isa);

/* Sets the number of OpenMP threads for all kernels (<= 0: leave default). */
void g3n_set_threads(int threads);
int g3n_get_threads(void);

#endif
