#include "ops.h"

#include <math.h>
#include <stdio.h>
#include <string.h>
#include <sys/resource.h>
#include <time.h>

void g3n_rms_norm(const float *x, const float *weight, float *out, int64_t n, double eps)
{
    /* the sum of squares in double, in 8 running sums (one chain of 2048 dependent
     * adds is latency-bound, and a decode layer has nine of these norms) */
    double lanes[8] = {0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0};
    int64_t i = 0;
    for (; i + 8 <= n; i += 8)
        for (int l = 0; l < 8; l++)
            lanes[l] += (double)x[i + l] * (double)x[i + l];
    double sum = ((lanes[0] + lanes[1]) + (lanes[2] + lanes[3])) + ((lanes[4] + lanes[5]) + (lanes[6] + lanes[7]));
    for (; i < n; i++)
        sum += (double)x[i] * (double)x[i];
    /* PyTorch: mean in f32, + eps in f32, pow(-0.5) in f32 */
    float mean_square = (float)(sum / (double)n);
    float inverse = 1.0f / sqrtf(mean_square + (float)eps);
    if (weight) {
        for (i = 0; i < n; i++)
            out[i] = (x[i] * inverse) * weight[i];
    } else {
        for (i = 0; i < n; i++)
            out[i] = x[i] * inverse;
    }
}

void g3n_rms_norm_rows(const float *x, int64_t x_stride, const float *weight, float *out, int64_t out_stride,
                       int64_t rows, int64_t n, double eps)
{
#pragma omp parallel for schedule(static) if (rows * n > 65536)
    for (int64_t r = 0; r < rows; r++)
        g3n_rms_norm(x + r * x_stride, weight, out + r * out_stride, n, eps);
}

float g3n_gelu_tanh_scalar(float x)
{
    const float k = 0.7978845608028654f; /* sqrt(2/pi) */
    return 0.5f * x * (1.0f + tanhf(k * (x + 0.044715f * x * x * x)));
}

void g3n_gelu_tanh(const float *x, float *out, int64_t n)
{
    for (int64_t i = 0; i < n; i++)
        out[i] = g3n_gelu_tanh_scalar(x[i]);
}

void g3n_softmax(float *x, int64_t n)
{
    if (n <= 0)
        return;
    float max = -INFINITY;
    for (int64_t i = 0; i < n; i++)
        if (x[i] > max)
            max = x[i];
    if (max == -INFINITY) { /* everything masked: reference gives NaN-free zeros here */
        memset(x, 0, sizeof(float) * (size_t)n);
        return;
    }
    double sum = 0.0;
    for (int64_t i = 0; i < n; i++) {
        x[i] = expf(x[i] - max);
        sum += x[i];
    }
    float inverse = (float)(1.0 / sum);
    for (int64_t i = 0; i < n; i++)
        x[i] *= inverse;
}

void g3n_add(const float *a, const float *b, float *out, int64_t n)
{
    for (int64_t i = 0; i < n; i++)
        out[i] = a[i] + b[i];
}

void g3n_mul(const float *a, const float *b, float *out, int64_t n)
{
    for (int64_t i = 0; i < n; i++)
        out[i] = a[i] * b[i];
}

void g3n_scale(const float *x, float s, float *out, int64_t n)
{
    for (int64_t i = 0; i < n; i++)
        out[i] = x[i] * s;
}

void g3n_axpy(const float *a, float s, const float *b, float *out, int64_t n)
{
    for (int64_t i = 0; i < n; i++)
        out[i] = a[i] + s * b[i];
}

float g3n_dot(const float *a, const float *b, int64_t n)
{
    float sum = 0.0f;
    for (int64_t i = 0; i < n; i++)
        sum += a[i] * b[i];
    return sum;
}

double g3n_now_seconds(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9;
}

uint64_t g3n_peak_rss_bytes(void)
{
    struct rusage usage;
    if (getrusage(RUSAGE_SELF, &usage) != 0)
        return 0;
    return (uint64_t)usage.ru_maxrss * 1024u; /* Linux reports KiB */
}
