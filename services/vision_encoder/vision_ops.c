/* vision_ops.c - MobileNetV5 primitives on NHWC f32 activations (see vision_ops.h). */
#include "vision_ops.h"

#include <math.h>
#include <string.h>

#include "isa.h"
#include "ops.h"

/* Vectorised gelu (vision_ops_avx2.c / vision_ops_avx512.c): run only after g3n_isa_active() says so. */
void g3n_vision_gelu_avx2(float *x, int64_t count);
void g3n_vision_gelu_avx512(float *x, int64_t count);
/* AVX-512 depthwise conv and norm tail (vision_ops_avx512.c), same contracts as the portable ones. */
void g3n_vision_depthwise_conv_avx512(const float *in, int height, int width, int channels, const float *packed,
                                      int kernel, int stride, float *out);
void g3n_vision_rms_norm_rows_avx512(const float *x, int64_t rows, int channels, const float *weight, float eps,
                                     int gelu, const float *gamma, const float *residual, float *out);
void g3n_vision_softmax_row_avx512(float *row, int64_t n);
/* Their AVX2 twins (vision_ops_avx2.c). */
void g3n_vision_depthwise_conv_avx2(const float *in, int height, int width, int channels, const float *packed,
                                    int kernel, int stride, float *out);
void g3n_vision_rms_norm_rows_avx2(const float *x, int64_t rows, int channels, const float *weight, float eps,
                                   int gelu, const float *gamma, const float *residual, float *out);
void g3n_vision_softmax_row_avx2(float *row, int64_t n);

/* The vector kernels of one instruction-set level; NULL: the portable code below. */
typedef struct vision_kernels {
    void (*gelu)(float *x, int64_t count);
    void (*depthwise_conv)(const float *in, int height, int width, int channels, const float *packed, int kernel,
                           int stride, float *out);
    void (*rms_norm_rows)(const float *x, int64_t rows, int channels, const float *weight, float eps, int gelu,
                          const float *gamma, const float *residual, float *out);
    void (*softmax_row)(float *row, int64_t n);
} vision_kernels;

static const vision_kernels kernels_by_isa[G3N_ISA_COUNT] = {
    [G3N_ISA_PORTABLE] = {NULL, NULL, NULL, NULL},
    [G3N_ISA_AVX2] = {g3n_vision_gelu_avx2, g3n_vision_depthwise_conv_avx2, g3n_vision_rms_norm_rows_avx2,
                      g3n_vision_softmax_row_avx2},
    [G3N_ISA_AVX512] = {g3n_vision_gelu_avx512, g3n_vision_depthwise_conv_avx512, g3n_vision_rms_norm_rows_avx512,
                        g3n_vision_softmax_row_avx512},
};

static inline const vision_kernels *active_kernels(void)
{
    return &kernels_by_isa[g3n_isa_active()];
}

/* timm get_same_padding: pad_total = max((ceil(x/s) - 1)*s + k - x, 0); stride 1
 * with odd k is the static symmetric (k-1)/2, which the same formula gives. */
int g3n_vision_same_output(int size, int kernel, int stride)
{
    (void)kernel;
    return (size + stride - 1) / stride;
}

static int same_pad_total(int size, int kernel, int stride)
{
    int total = (g3n_vision_same_output(size, kernel, stride) - 1) * stride + kernel - size;
    return total > 0 ? total : 0;
}

int g3n_vision_same_pad_before(int size, int kernel, int stride)
{
    return same_pad_total(size, kernel, stride) / 2;
}

void g3n_vision_pack_depthwise(const float *torch_kernel, int channels, int kernel, float *packed)
{
    int taps = kernel * kernel;
    for (int c = 0; c < channels; c++)
        for (int t = 0; t < taps; t++)
            packed[(int64_t)t * channels + c] = torch_kernel[(int64_t)c * taps + t];
}

void g3n_vision_pack_dense(const float *torch_kernel, int out_channels, int in_channels, int kernel, float *packed)
{
    int taps = kernel * kernel;
    for (int o = 0; o < out_channels; o++)
        for (int ci = 0; ci < in_channels; ci++)
            for (int t = 0; t < taps; t++)
                packed[((int64_t)o * taps + t) * in_channels + ci] =
                    torch_kernel[((int64_t)o * in_channels + ci) * taps + t];
}

void g3n_vision_depthwise_conv(const float *in, int height, int width, int channels, const float *packed, int kernel,
                               int stride, float *out)
{
    const vision_kernels *vector = active_kernels();
    if (vector->depthwise_conv) {
        vector->depthwise_conv(in, height, width, channels, packed, kernel, stride, out);
        return;
    }
    int out_h = g3n_vision_same_output(height, kernel, stride);
    int out_w = g3n_vision_same_output(width, kernel, stride);
    int pad_top = g3n_vision_same_pad_before(height, kernel, stride);
    int pad_left = g3n_vision_same_pad_before(width, kernel, stride);
#pragma omp parallel for schedule(static)
    for (int oy = 0; oy < out_h; oy++) {
        for (int ox = 0; ox < out_w; ox++) {
            float *acc = out + ((int64_t)oy * out_w + ox) * channels;
            memset(acc, 0, sizeof(float) * (size_t)channels);
            for (int i = 0; i < kernel; i++) {
                int iy = oy * stride + i - pad_top;
                if (iy < 0 || iy >= height)
                    continue;
                for (int j = 0; j < kernel; j++) {
                    int ix = ox * stride + j - pad_left;
                    if (ix < 0 || ix >= width)
                        continue;
                    const float *w = packed + (int64_t)(i * kernel + j) * channels;
                    const float *src = in + ((int64_t)iy * width + ix) * channels;
                    for (int c = 0; c < channels; c++)
                        acc[c] += w[c] * src[c];
                }
            }
        }
    }
}

/* im2col of output pixels [first, first + count): row p holds the k x k x Cin patch of pixel first + p. */
static void im2col(const float *in, int height, int width, int in_channels, int kernel_size, int stride,
                   int64_t first, int64_t count, float *column)
{
    int out_w = g3n_vision_same_output(width, kernel_size, stride);
    int pad_top = g3n_vision_same_pad_before(height, kernel_size, stride);
    int pad_left = g3n_vision_same_pad_before(width, kernel_size, stride);
    int64_t depth = (int64_t)kernel_size * kernel_size * in_channels;
#pragma omp parallel for schedule(static)
    for (int64_t p = 0; p < count; p++) {
        int oy = (int)((first + p) / out_w), ox = (int)((first + p) % out_w);
        float *row = column + p * depth;
        for (int i = 0; i < kernel_size; i++) {
            int iy = oy * stride + i - pad_top;
            for (int j = 0; j < kernel_size; j++) {
                int ix = ox * stride + j - pad_left;
                float *dst = row + (int64_t)(i * kernel_size + j) * in_channels;
                if (iy < 0 || iy >= height || ix < 0 || ix >= width)
                    memset(dst, 0, sizeof(float) * (size_t)in_channels);
                else
                    memcpy(dst, in + ((int64_t)iy * width + ix) * in_channels, sizeof(float) * (size_t)in_channels);
            }
        }
    }
}

void g3n_vision_dense_conv(const float *in, int height, int width, int in_channels, const g3n_matrix *kernel,
                           int kernel_size, int stride, const float *bias, float *column, int64_t column_pixels,
                           float *out)
{
    int out_h = g3n_vision_same_output(height, kernel_size, stride);
    int out_w = g3n_vision_same_output(width, kernel_size, stride);
    int64_t depth = (int64_t)kernel_size * kernel_size * in_channels;
    int64_t out_channels = kernel->rows;
    int64_t pixels = (int64_t)out_h * out_w;
    for (int64_t first = 0; first < pixels; first += column_pixels) {
        int64_t count = pixels - first < column_pixels ? pixels - first : column_pixels;
        im2col(in, height, width, in_channels, kernel_size, stride, first, count, column);
        g3n_matmul(column, count, (size_t)depth, kernel, out + first * out_channels, (size_t)out_channels);
    }
    if (bias) {
#pragma omp parallel for schedule(static)
        for (int64_t p = 0; p < pixels; p++)
            for (int64_t c = 0; c < out_channels; c++)
                out[p * out_channels + c] += bias[c];
    }
}

/* An epilogue seen from one im2col chunk: row indices shifted by the chunk's first pixel. */
typedef struct shifted_epilogue {
    const g3n_gemm_epilogue *inner;
    int64_t shift;
} shifted_epilogue;

static void shifted_apply(void *user, float *y, int64_t first_row, int64_t rows, size_t y_stride)
{
    const shifted_epilogue *s = user;
    s->inner->apply(s->inner->user, y, first_row + s->shift, rows, y_stride);
}

void g3n_vision_dense_conv_packed(const float *in, int height, int width, int in_channels,
                                  const g3n_packed_matrix *kernel, int kernel_size, int stride, float *column,
                                  int64_t column_pixels, float *out, const g3n_gemm_epilogue *epilogue)
{
    int out_h = g3n_vision_same_output(height, kernel_size, stride);
    int out_w = g3n_vision_same_output(width, kernel_size, stride);
    int64_t depth = (int64_t)kernel_size * kernel_size * in_channels;
    int64_t out_channels = kernel->rows;
    int64_t pixels = (int64_t)out_h * out_w;
    for (int64_t first = 0; first < pixels; first += column_pixels) {
        int64_t count = pixels - first < column_pixels ? pixels - first : column_pixels;
        im2col(in, height, width, in_channels, kernel_size, stride, first, count, column);
        shifted_epilogue shifted = {epilogue, first};
        g3n_gemm_epilogue chunk = {shifted_apply, &shifted};
        g3n_gemm_packed(column, count, (size_t)depth, kernel, out + first * out_channels, (size_t)out_channels,
                        epilogue && epilogue->apply ? &chunk : NULL);
    }
}

void g3n_vision_norm_epilogue_apply(void *user, float *y, int64_t first_row, int64_t rows, size_t y_stride)
{
    const g3n_vision_norm_epilogue *e = user;
    (void)y_stride; /* == channels */
    if (e->bias)
        for (int64_t r = 0; r < rows; r++)
            for (int c = 0; c < e->channels; c++)
                y[r * e->channels + c] += e->bias[c];
    g3n_vision_rms_norm_rows(y, rows, e->channels, e->weight, e->eps, e->gelu, e->gamma,
                             e->residual ? e->residual + first_row * e->channels : NULL,
                             e->out + first_row * e->channels);
}

void g3n_vision_softmax_epilogue_apply(void *user, float *y, int64_t first_row, int64_t rows, size_t y_stride)
{
    (void)user;
    (void)first_row;
    g3n_vision_softmax_rows(y, rows, (int64_t)y_stride);
}

void g3n_vision_gelu(float *x, int64_t count)
{
    const vision_kernels *vector = active_kernels();
    if (vector->gelu)
        vector->gelu(x, count);
    else
        g3n_gelu_tanh(x, x, count);
}

void g3n_vision_softmax_rows(float *x, int64_t rows, int64_t n)
{
    void (*const softmax_row)(float *, int64_t) = active_kernels()->softmax_row;
    if (softmax_row) {
#pragma omp parallel for schedule(static)
        for (int64_t r = 0; r < rows; r++)
            softmax_row(x + r * n, n);
        return;
    }
#pragma omp parallel for schedule(static)
    for (int64_t r = 0; r < rows; r++) {
        float *row = x + r * n;
        float max = row[0];
        for (int64_t i = 1; i < n; i++)
            max = row[i] > max ? row[i] : max;
        double sum = 0.0;
        for (int64_t i = 0; i < n; i++) {
            row[i] = expf(row[i] - max);
            sum += row[i];
        }
        float inverse = (float)(1.0 / sum);
        for (int64_t i = 0; i < n; i++)
            row[i] *= inverse;
    }
}

void g3n_vision_rms_norm_rows(const float *x, int64_t rows, int channels, const float *weight, float eps, int gelu,
                              const float *gamma, const float *residual, float *out)
{
    const vision_kernels *vector = active_kernels();
    if (vector->rms_norm_rows) {
        vector->rms_norm_rows(x, rows, channels, weight, eps, gelu, gamma, residual, out);
        return;
    }
#pragma omp parallel for schedule(static)
    for (int64_t r = 0; r < rows; r++) {
        const float *in = x + r * channels;
        float *dst = out + r * channels;
        double sum = 0.0;
        for (int c = 0; c < channels; c++)
            sum += (double)in[c] * (double)in[c];
        float scale = 1.0f / sqrtf((float)(sum / channels) + eps);
        if (!gelu) { /* one pass: each residual element is read before dst (which may alias it) is written */
            const float *res = residual ? residual + r * channels : NULL;
            for (int c = 0; c < channels; c++) {
                float y = (in[c] * scale) * weight[c];
                if (gamma)
                    y *= gamma[c];
                dst[c] = res ? y + res[c] : y;
            }
            continue;
        }
        for (int c = 0; c < channels; c++)
            dst[c] = (in[c] * scale) * weight[c];
        g3n_vision_gelu(dst, channels);
        if (gamma)
            for (int c = 0; c < channels; c++)
                dst[c] *= gamma[c];
        if (residual) {
            const float *res = residual + r * channels;
            for (int c = 0; c < channels; c++)
                dst[c] += res[c];
        }
    }
}

/* F.interpolate(mode='nearest') source index: floor(dst * (float)in/out), clamped. */
static int nearest_source(int dst, int in, int out)
{
    if (in == out)
        return dst;
    if (out == 2 * in)
        return dst >> 1;
    int src = (int)floorf((float)dst * ((float)in / (float)out));
    return src < in - 1 ? src : in - 1;
}

void g3n_vision_resize_nearest(const float *in, int height, int width, int channels, int out_height, int out_width,
                               float *out, int64_t out_stride)
{
#pragma omp parallel for schedule(static)
    for (int oy = 0; oy < out_height; oy++) {
        int iy = nearest_source(oy, height, out_height);
        for (int ox = 0; ox < out_width; ox++) {
            int ix = nearest_source(ox, width, out_width);
            memcpy(out + ((int64_t)oy * out_width + ox) * out_stride, in + ((int64_t)iy * width + ix) * channels,
                   sizeof(float) * (size_t)channels);
        }
    }
}

/* align_corners=False: src = max(scale*(dst+0.5) - 0.5, 0), scale = in/out. */
static void bilinear_source(int dst, int in, int out, int *i0, int *i1, float *l0, float *l1)
{
    float scale = (float)in / (float)out;
    float src = scale * ((float)dst + 0.5f) - 0.5f;
    if (src < 0.0f)
        src = 0.0f;
    *i0 = (int)src;
    if (*i0 > in - 1)
        *i0 = in - 1;
    *i1 = *i0 + (*i0 < in - 1 ? 1 : 0);
    *l1 = src - (float)*i0;
    *l0 = 1.0f - *l1;
}

void g3n_vision_resize_bilinear(const float *in, int height, int width, int channels, int out_height, int out_width,
                                float *out)
{
#pragma omp parallel for schedule(static)
    for (int oy = 0; oy < out_height; oy++) {
        int y0, y1;
        float hy0, hy1;
        bilinear_source(oy, height, out_height, &y0, &y1, &hy0, &hy1);
        for (int ox = 0; ox < out_width; ox++) {
            int x0, x1;
            float wx0, wx1;
            bilinear_source(ox, width, out_width, &x0, &x1, &wx0, &wx1);
            const float *p00 = in + ((int64_t)y0 * width + x0) * channels;
            const float *p01 = in + ((int64_t)y0 * width + x1) * channels;
            const float *p10 = in + ((int64_t)y1 * width + x0) * channels;
            const float *p11 = in + ((int64_t)y1 * width + x1) * channels;
            float *dst = out + ((int64_t)oy * out_width + ox) * channels;
            for (int c = 0; c < channels; c++)
                dst[c] = hy0 * (wx0 * p00[c] + wx1 * p01[c]) + hy1 * (wx0 * p10[c] + wx1 * p11[c]);
        }
    }
}

void g3n_vision_avg_pool(const float *in, int height, int width, int channels, int stride_h, int stride_w, float *out)
{
    int out_h = height / stride_h, out_w = width / stride_w;
    float count = (float)(stride_h * stride_w);
#pragma omp parallel for schedule(static)
    for (int oy = 0; oy < out_h; oy++) {
        for (int ox = 0; ox < out_w; ox++) {
            float *dst = out + ((int64_t)oy * out_w + ox) * channels;
            memset(dst, 0, sizeof(float) * (size_t)channels);
            for (int i = 0; i < stride_h; i++)
                for (int j = 0; j < stride_w; j++) {
                    const float *src = in + ((int64_t)(oy * stride_h + i) * width + ox * stride_w + j) * channels;
                    for (int c = 0; c < channels; c++)
                        dst[c] += src[c];
                }
            for (int c = 0; c < channels; c++)
                dst[c] /= count;
        }
    }
}
