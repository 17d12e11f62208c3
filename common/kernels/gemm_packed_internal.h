/* gemm_packed_internal.h - what gemm_packed.c shares with its AVX-512 and AVX2 kernels. */
#ifndef G3N_GEMM_PACKED_INTERNAL_H
#define G3N_GEMM_PACKED_INTERNAL_H

#include <stddef.h>
#include <stdint.h>

/* Rows of x per micro-kernel call. */
#define G3N_GEMM_PACKED_MR 8

/* y[r][0..columns) (+)= x[r][0..kc) · panel, for r < rows (<= 8); see gemm_packed_avx512.c.
 * x_stride counts elements of x's type (float, or uint16 bf16 for the dot kernel). */
typedef void (*g3n_gemm_packed_kernel)(const void *x, size_t x_stride, int rows, const void *panel, int64_t kc,
                                       float *y, size_t y_stride, int columns, int accumulate);
void g3n_gemm_kernel_f32_avx512(const void *x, size_t x_stride, int rows, const void *panel, int64_t kc, float *y,
                                size_t y_stride, int columns, int accumulate);
void g3n_gemm_kernel_bf16_widen_avx512(const void *x, size_t x_stride, int rows, const void *panel, int64_t kc,
                                       float *y, size_t y_stride, int columns, int accumulate);
void g3n_gemm_kernel_bf16_dot_avx512(const void *x, size_t x_stride, int rows, const void *panel, int64_t kc,
                                     float *y, size_t y_stride, int columns, int accumulate);
/* out[r][0..depth) = bf16(x[r][0..k)), zero beyond k. */
void g3n_gemm_rows_to_bf16_avx512(const float *x, int64_t rows, size_t x_stride, int64_t k, uint16_t *out,
                                  int64_t depth);
/* int8: y[r][0..columns) = x_scale[r] * w_scale[c] * (Σ_k x[r][k] w[k][c] - 128 * w_sum[c]) over
 * quads (k4 = depth / 4) of u8 x rows (quantised + 128) and an int8 panel [k4][32][4]. */
void g3n_gemm_kernel_i8_avx512(const uint8_t *x, size_t x_stride, int rows, const int8_t *panel, int64_t quads,
                               const float *x_scale, const float *w_scale, const int32_t *w_sum, float *y,
                               size_t y_stride, int columns);
/* out[r][0..depth) = round(x[r][k] / scale[r]) + 128 (zero weights pad beyond k), scale[r] = max|x[r]| / 127. */
void g3n_gemm_rows_to_u8_avx512(const float *x, int64_t rows, size_t x_stride, int64_t k, uint8_t *out,
                                int64_t depth, float *scale);
/* y[r][c] = y[r][c] · sigmoid(y[r][c]) for r < rows, c < columns (g3n_sigmoid_avx512). */
void g3n_gemm_silu_block_avx512(float *y, size_t y_stride, int64_t rows, int columns);

/* The AVX2 twins (gemm_packed_avx2.c): the same contracts on the same panels (no bf16 dot product: the
 * bf16 precision runs the widening kernel on f32 x). The int8 kernel's sums are exact integers, so its
 * results are bit for bit the AVX-512 kernel's; it uses AVX-VNNI where g3n_gemm_avx_vnni() says so. */
void g3n_gemm_kernel_f32_avx2(const void *x, size_t x_stride, int rows, const void *panel, int64_t kc, float *y,
                              size_t y_stride, int columns, int accumulate);
void g3n_gemm_kernel_bf16_widen_avx2(const void *x, size_t x_stride, int rows, const void *panel, int64_t kc,
                                     float *y, size_t y_stride, int columns, int accumulate);
void g3n_gemm_kernel_i8_avx2(const uint8_t *x, size_t x_stride, int rows, const int8_t *panel, int64_t quads,
                             const float *x_scale, const float *w_scale, const int32_t *w_sum, float *y,
                             size_t y_stride, int columns);
void g3n_gemm_rows_to_u8_avx2(const float *x, int64_t rows, size_t x_stride, int64_t k, uint8_t *out, int64_t depth,
                              float *scale);
void g3n_gemm_silu_block_avx2(float *y, size_t y_stride, int64_t rows, int columns);
/* Nonzero when the CPU has AVX-VNNI (vpdpbusd on ymm) and env G3N_AVX_VNNI is not "0". */
int g3n_gemm_avx_vnni(void);
/* Turns the AVX-VNNI kernel on (where the CPU has it) or off; returns whether it is on (tests). */
int g3n_gemm_avx_vnni_set(int on);

#endif
