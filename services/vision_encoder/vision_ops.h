/* vision_ops.h - the MobileNetV5 primitives on NHWC f32 activations
 * (pixels x channels, row-major: element (y, x, c) at (y*W + x)*C + c).
 *
 * Convolutions follow timm's padding='same' (timm get_same_padding): symmetric
 * (k-1)/2 for stride 1, and for stride 2 the dynamic Conv2dSame padding, whose
 * extra row/column goes at the bottom/right. Kernels are repacked once at load
 * time into the layouts below (f32, owned by the caller). All functions are
 * parallel over output rows/pixels with OpenMP and allocate nothing.
 */
#ifndef G3N_VISION_OPS_H
#define G3N_VISION_OPS_H

#include <stdint.h>

#include "gemm_packed.h"
#include "matmul.h"

/* 'same' padding of one axis: output size and the zeros before it. */
int g3n_vision_same_output(int size, int kernel, int stride);
int g3n_vision_same_pad_before(int size, int kernel, int stride);

/* Repacks a PyTorch depthwise kernel [C, 1, k, k] (any stored dtype, given as
 * f32) into [k*k, C] (tap-major, channels contiguous). */
void g3n_vision_pack_depthwise(const float *torch_kernel, int channels, int kernel, float *packed);
/* Repacks a dense kernel [Cout, Cin, k, k] (f32) into [Cout, k, k, Cin], the
 * column order of g3n_vision_dense_conv's im2col. */
void g3n_vision_pack_dense(const float *torch_kernel, int out_channels, int in_channels, int kernel, float *packed);

/* Depthwise conv (groups = C, no bias): in [H, W, C] -> out [OH, OW, C] with
 * OH = same_output(H, k, stride). packed: [k*k, C]. */
void g3n_vision_depthwise_conv(const float *in, int height, int width, int channels, const float *packed, int kernel,
                               int stride, float *out);

/* Dense conv through im2col + g3n_matmul: in [H, W, Cin] -> out [OH, OW, Cout].
 * kernel: a matrix [Cout, k*k*Cin] (g3n_vision_pack_dense layout). bias: [Cout] or NULL.
 * column: scratch of column_pixels * k*k*Cin floats (column_pixels >= 1). */
void g3n_vision_dense_conv(const float *in, int height, int width, int in_channels, const g3n_matrix *kernel,
                           int kernel_size, int stride, const float *bias, float *column, int64_t column_pixels,
                           float *out);

/* The same conv with the kernel packed once (gemm_packed.h, from the matrix
 * above) and an epilogue run on finished rows of out (row index = output
 * pixel; NULL: none). No bias: the epilogue adds it where there is one. */
void g3n_vision_dense_conv_packed(const float *in, int height, int width, int in_channels,
                                  const g3n_packed_matrix *kernel, int kernel_size, int stride, float *column,
                                  int64_t column_pixels, float *out, const g3n_gemm_epilogue *epilogue);

/* The fused per-pixel tail of timm's ConvNormAct / blocks, over rows x channels:
 *   y = (x * rsqrt(mean_c x^2 + eps)) * weight        (RmsNorm2d, eps inside)
 *   if gelu:     y = gelu_tanh(y)                      (RmsNormAct2d)
 *   if gamma:    y = y * gamma                         (LayerScale2d)
 *   if residual: y = y + residual                      (shortcut)
 * out may alias x; it may alias residual only when gelu is 0 (the norms with
 * an activation never feed a shortcut). */
void g3n_vision_rms_norm_rows(const float *x, int64_t rows, int channels, const float *weight, float eps, int gelu,
                              const float *gamma, const float *residual, float *out);

/* The norm tail above as a GEMM epilogue (gemm_packed.h): on rows
 * [first, first + rows) of a conv's output y (row stride = channels):
 * y += bias (when given), then g3n_vision_rms_norm_rows into out + first * channels,
 * with residual + first * channels. out may be y; user = this struct. */
typedef struct g3n_vision_norm_epilogue {
    int channels;
    const float *bias;     /* [channels] or NULL */
    const float *weight;   /* [channels] norm scale */
    float eps;
    int gelu;
    const float *gamma;    /* [channels] or NULL */
    const float *residual; /* row 0 of the shortcut, or NULL */
    float *out;            /* row 0 of the result */
} g3n_vision_norm_epilogue;
void g3n_vision_norm_epilogue_apply(void *user, float *y, int64_t first_row, int64_t rows, size_t y_stride);

/* Row softmax as a GEMM epilogue (attention scores; user unused). */
void g3n_vision_softmax_epilogue_apply(void *user, float *y, int64_t first_row, int64_t rows, size_t y_stride);

/* Softmax over each of rows rows of n values, in place (max-subtracted), parallel over rows. */
void g3n_vision_softmax_rows(float *x, int64_t rows, int64_t n);

/* gelu with the tanh approximation, in place (vectorised where the CPU allows). */
void g3n_vision_gelu(float *x, int64_t count);

/* Nearest resize (F.interpolate mode='nearest'): in [H, W, C] -> out [OH, OW, C]
 * written with row stride out_stride floats (to write into a channel slice). */
void g3n_vision_resize_nearest(const float *in, int height, int width, int channels, int out_height, int out_width,
                               float *out, int64_t out_stride);
/* Bilinear resize (align_corners=False, no antialias): [H, W, C] -> [OH, OW, C]. */
void g3n_vision_resize_bilinear(const float *in, int height, int width, int channels, int out_height, int out_width,
                                float *out);
/* Average pooling with kernel = stride = (sh, sw), no padding: [H, W, C] -> [H/sh, W/sw, C]. */
void g3n_vision_avg_pool(const float *in, int height, int width, int channels, int stride_h, int stride_w, float *out);

#endif
