/* tensor.h - a small n-dimensional array: dtype, shape, strides, data.
 *
 * Shapes are in PyTorch order (outermost first, innermost last), as in the
 * checkpoints. Strides are in elements. A tensor either owns its data
 * (owned != NULL, freed by g3n_tensor_free) or borrows it (a view into an
 * mmapped file or another tensor; g3n_tensor_free then frees nothing).
 */
#ifndef G3N_TENSOR_H
#define G3N_TENSOR_H

#include <stddef.h>
#include <stdint.h>

#include "status.h"

#define G3N_MAX_DIMS 8

typedef enum g3n_dtype {
    G3N_DTYPE_F32 = 0,
    G3N_DTYPE_BF16,
    G3N_DTYPE_F16,
    G3N_DTYPE_I32,
    G3N_DTYPE_I64,
    G3N_DTYPE_U8,
    G3N_DTYPE_COUNT, /* the tensor dtypes end here */
    /* Block-quantised weight formats (common/kernels/quant.h): g3n_matrix dtypes only,
     * no g3n_tensor holds them. Their numbers are written into weight cache
     * files, so they stay what they were when they were macros. */
    G3N_DTYPE_Q8 = G3N_DTYPE_COUNT + 1,
    G3N_DTYPE_Q4,
    G3N_MATRIX_DTYPE_END /* one past the last matrix dtype */
} g3n_dtype;

typedef struct g3n_tensor {
    g3n_dtype dtype;
    int ndim;
    int64_t shape[G3N_MAX_DIMS];
    int64_t strides[G3N_MAX_DIMS]; /* elements */
    void *data;                    /* first element */
    void *owned;                   /* allocation to free, or NULL for a view */
} g3n_tensor;

/* Bytes per element (0 for an unknown dtype). */
size_t g3n_dtype_size(g3n_dtype dtype);
/* "F32", "BF16", ... as safetensors writes them; NULL for unknown. */
const char *g3n_dtype_name(g3n_dtype dtype);
/* Parses a safetensors dtype name; returns G3N_ERR for an unknown one. */
int g3n_dtype_from_name(const char *name, g3n_dtype *out);

int64_t g3n_shape_numel(int ndim, const int64_t *shape);
int64_t g3n_tensor_numel(const g3n_tensor *t);
/* Writes "[a, b, c]" into buffer. */
void g3n_shape_format(int ndim, const int64_t *shape, char *buffer, size_t size);

/* Allocates a contiguous, zeroed tensor that owns its data (64-byte aligned). */
int g3n_tensor_alloc(g3n_tensor *t, g3n_dtype dtype, int ndim, const int64_t *shape, g3n_error *err);
/* A contiguous borrowed view over data. */
void g3n_tensor_view(g3n_tensor *t, g3n_dtype dtype, int ndim, const int64_t *shape, void *data);
/* Frees owned data (if any) and zeroes the struct. Accepts NULL. */
void g3n_tensor_free(g3n_tensor *t);
int g3n_tensor_is_contiguous(const g3n_tensor *t);
/* 1 when t has exactly this shape. */
int g3n_tensor_has_shape(const g3n_tensor *t, int ndim, const int64_t *shape);

/* Converts count contiguous elements of dtype src_dtype at src to f32.
 * Supports F32, BF16, F16, I32, I64, U8. */
void g3n_convert_to_f32(g3n_dtype src_dtype, const void *src, float *dst, int64_t count);
/* Copies a (possibly strided) tensor into a new contiguous owned f32 tensor. */
int g3n_tensor_to_f32(const g3n_tensor *src, g3n_tensor *dst, g3n_error *err);

/* Scalar conversions (round-to-nearest-even for the narrowing ones). */
static inline float g3n_bf16_to_f32(uint16_t v)
{
    union { uint32_t u; float f; } x;
    x.u = (uint32_t)v << 16;
    return x.f;
}
uint16_t g3n_f32_to_bf16(float f);
float g3n_f16_to_f32(uint16_t h);
uint16_t g3n_f32_to_f16(float f);

/* Aligned allocation helpers (64 bytes; blocks of 2 MiB or more on 2 MiB
 * boundaries with transparent huge pages advised); g3n_aligned_free accepts NULL. */
void *g3n_aligned_alloc(size_t bytes);
void g3n_aligned_free(void *p);

#endif
