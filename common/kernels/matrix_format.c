/* matrix_format.c - the table of weight formats (matrix_format.h). */
#include "matrix_format.h"

#include "matmul_internal.h"
#include "quant.h"

/* Stored formats: the elements converted as they are. */
static void stored_to_f32(const g3n_matrix *w, int64_t row, int64_t c0, int64_t c1, float *out)
{
    g3n_convert_to_f32(w->dtype, (const char *)g3n_matrix_row(w, row) + (size_t)c0 * g3n_dtype_size(w->dtype), out,
                       c1 - c0);
}

#define STORED_KERNELS(FORMAT, BF16_PRODUCTS)                                                                     \
    {                                                                                                              \
        [G3N_ISA_PORTABLE] = {0},                                                                                  \
        [G3N_ISA_AVX2] = {.dot = g3n_matmul_dot_##FORMAT##_avx2, .gemm = g3n_gemm_micro_avx2,                     \
                          .gemm_panel = G3N_GEMM_NR_AVX2},                                                         \
        [G3N_ISA_AVX512] = {.dot = g3n_matmul_dot_##FORMAT##_avx512, .gemm = g3n_gemm_micro_avx512,               \
                            .gemm_panel = G3N_GEMM_NR_AVX512, .bf16_products = BF16_PRODUCTS},                     \
    }

#define QUANT_KERNELS                                                                                              \
    {                                                                                                              \
        [G3N_ISA_PORTABLE] = {.quant_dot = g3n_quant_dot_portable},                                                \
        [G3N_ISA_AVX2] = {.quant_dot = g3n_quant_dot_avx2, .combine_group = g3n_quant_combine_group_avx2},         \
        [G3N_ISA_AVX512] = {.quant_dot = g3n_quant_dot_avx512, .combine_group = g3n_quant_combine_group_avx512},   \
    }

static const g3n_matrix_format formats[G3N_MATRIX_DTYPE_END] = {
    [G3N_DTYPE_F32] = {"F32", 1, 4, 0, stored_to_f32, STORED_KERNELS(f32, 0)},
    [G3N_DTYPE_BF16] = {"BF16", 1, 2, 0, stored_to_f32, STORED_KERNELS(bf16, 1)},
    [G3N_DTYPE_F16] = {"F16", 1, 2, 0, stored_to_f32, STORED_KERNELS(f16, 0)},
    [G3N_DTYPE_Q8] = {"Q8", G3N_QUANT_BLOCK, G3N_QUANT_BLOCK, 1, g3n_quant_row_slice_to_f32, QUANT_KERNELS},
    [G3N_DTYPE_Q4] = {"Q4", G3N_QUANT_BLOCK, G3N_QUANT_BLOCK / 2, 1, g3n_quant_row_slice_to_f32, QUANT_KERNELS},
};

const g3n_matrix_format *g3n_matrix_format_of(g3n_dtype dtype)
{
    return (unsigned)dtype < G3N_MATRIX_DTYPE_END && formats[dtype].name ? &formats[dtype] : NULL;
}

int g3n_matrix_from_tensor(g3n_matrix *matrix, const g3n_tensor *t, g3n_error *err)
{
    const g3n_matrix_format *format = g3n_matrix_format_of(t->dtype);
    if (t->ndim < 1 || !g3n_tensor_is_contiguous(t))
        return g3n_error_set(err, "matrix needs a contiguous tensor of rank >= 1");
    if (!format || format->quantised)
        return g3n_error_set(err, "matrix weights must be F32, BF16 or F16, not %s", g3n_dtype_name(t->dtype));
    *matrix = (g3n_matrix){0};
    matrix->dtype = t->dtype;
    matrix->rows = t->ndim >= 2 ? t->shape[0] : 1;
    matrix->cols = t->ndim >= 2 ? g3n_tensor_numel(t) / (t->shape[0] ? t->shape[0] : 1) : t->shape[0];
    matrix->row_stride = (size_t)matrix->cols * g3n_dtype_size(t->dtype);
    matrix->data = t->data;
    return G3N_OK;
}

void g3n_matrix_row_to_f32(const g3n_matrix *w, int64_t row, float *out)
{
    g3n_matrix_format_of(w->dtype)->to_f32(w, row, 0, w->cols, out);
}

const char *g3n_matrix_dtype_name(g3n_dtype dtype)
{
    const g3n_matrix_format *format = g3n_matrix_format_of(dtype);
    const char *name = format ? format->name : g3n_dtype_name(dtype);
    return name ? name : "?";
}
