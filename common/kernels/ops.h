/* ops.h - small elementwise and row operations on f32, shared by every model.
 * All sizes are element counts; in-place use (out == x) is allowed everywhere. */
#ifndef G3N_OPS_H
#define G3N_OPS_H

#include <stdint.h>

/* out[i] = x[i] / sqrt(mean(x^2) + eps) * (weight ? weight[i] : 1), per row of n.
 * Computed like PyTorch's f32 RMSNorm: mean of squares in f32 pairwise-ish
 * (accumulated in double here, rounded to f32), then multiplied. */
void g3n_rms_norm(const float *x, const float *weight, float *out, int64_t n, double eps);
/* The same over rows: x and out are rows × n with row strides. */
void g3n_rms_norm_rows(const float *x, int64_t x_stride, const float *weight, float *out, int64_t out_stride,
                       int64_t rows, int64_t n, double eps);
/* gelu with the tanh approximation (PyTorch gelu(approximate="tanh")). */
void g3n_gelu_tanh(const float *x, float *out, int64_t n);
float g3n_gelu_tanh_scalar(float x);
/* Softmax in place over n values (max-subtracted; -inf entries give 0). */
void g3n_softmax(float *x, int64_t n);
void g3n_add(const float *a, const float *b, float *out, int64_t n);
void g3n_mul(const float *a, const float *b, float *out, int64_t n);
void g3n_scale(const float *x, float s, float *out, int64_t n);
/* out = a + s * b */
void g3n_axpy(const float *a, float s, const float *b, float *out, int64_t n);
float g3n_dot(const float *a, const float *b, int64_t n);

/* Monotonic seconds. */
double g3n_now_seconds(void);
/* Peak resident set size of this process in bytes (0 if unknown). */
uint64_t g3n_peak_rss_bytes(void);

#endif
