/* kv_half.c - half-precision KV storage: portable conversions and dispatch (kv_half.h). */
#include "kv_half.h"

#include <string.h>

#include "isa.h"

uint16_t g3n_kv_half_from_float(float x)
{
    uint32_t bits;
    memcpy(&bits, &x, sizeof(bits));
    const uint16_t sign = (uint16_t)((bits >> 16) & 0x8000u);
    uint32_t magnitude = bits & 0x7fffffffu;
    if (magnitude >= 0x7f800000u) /* inf, NaN (quiet) */
        return (uint16_t)(sign | 0x7c00u | (magnitude > 0x7f800000u ? 0x200u : 0u));
    if (magnitude >= 0x477ff000u) /* >= 65520 rounds to inf */
        return (uint16_t)(sign | 0x7c00u);
    if (magnitude < 0x38800000u) {
        /* below 2^-14: a half subnormal (or zero); adding 0.5 puts the value's
         * 2^-24 units in the float's low mantissa bits, rounded to nearest even */
        float a, r;
        memcpy(&a, &magnitude, sizeof(a));
        r = a + 0.5f;
        uint32_t rbits;
        memcpy(&rbits, &r, sizeof(rbits));
        return (uint16_t)(sign | (uint16_t)(rbits - 0x3f000000u));
    }
    /* normal: rebias the exponent (127 -> 15) and round the 13 dropped bits to nearest even */
    const uint32_t odd = (magnitude >> 13) & 1u;
    magnitude += 0xc8000fffu + odd;
    return (uint16_t)(sign | (uint16_t)(magnitude >> 13));
}

float g3n_kv_half_to_float(uint16_t h)
{
    const uint32_t sign = (uint32_t)(h & 0x8000u) << 16;
    const uint32_t exponent = (h >> 10) & 0x1fu, mantissa = h & 0x3ffu;
    uint32_t bits;
    if (exponent == 0) {
        float f = (float)mantissa * 0x1p-24f; /* exact */
        memcpy(&bits, &f, sizeof(bits));
        bits |= sign;
    } else if (exponent == 31) {
        bits = sign | 0x7f800000u | (mantissa << 13);
    } else {
        bits = sign | ((exponent + 112u) << 23) | (mantissa << 13);
    }
    float out;
    memcpy(&out, &bits, sizeof(out));
    return out;
}

/* Bodies of one level: whole vectors of `width` values; the tail is scalar.
 * The group forms (AVX-512 only) need n a multiple of 16. */
typedef struct kv_half_kernels {
    int64_t width; /* 0: none (portable: all scalar) */
    void (*from_f32)(const float *x, uint16_t *out, int64_t n);
    void (*to_f32)(const uint16_t *h, float *out, int64_t n);
    float (*dot)(const float *x, const uint16_t *h, int64_t n);
    void (*axpy)(float *acc, float s, const uint16_t *h, int64_t n);
    void (*dot_group)(const float *q, int64_t q_stride, int heads, const uint16_t *k, int64_t n, float *out);
    void (*axpy_group)(float *o, int64_t o_stride, int heads, const float *coefs, const uint16_t *v, int64_t n);
} kv_half_kernels;

static const kv_half_kernels kernels_by_isa[G3N_ISA_COUNT] = {
    [G3N_ISA_PORTABLE] = {0},
    [G3N_ISA_AVX2] = {8, g3n_kv_half_from_f32_avx2, g3n_kv_half_to_f32_avx2, g3n_kv_half_dot_avx2,
                      g3n_kv_half_axpy_avx2, NULL, NULL},
    [G3N_ISA_AVX512] = {16, g3n_kv_half_from_f32_avx512, g3n_kv_half_to_f32_avx512, g3n_kv_half_dot_avx512,
                        g3n_kv_half_axpy_avx512, g3n_kv_half_dot_group_avx512, g3n_kv_half_axpy_group_avx512},
};

static inline const kv_half_kernels *active_kernels(void)
{
    return &kernels_by_isa[g3n_isa_active()];
}

/* Values handled by whole vectors of k (0 without vector bodies). */
static inline int64_t whole_vectors(const kv_half_kernels *k, int64_t n)
{
    return k->width ? n / k->width * k->width : 0;
}

void g3n_kv_half_from_f32(const float *x, uint16_t *out, int64_t n)
{
    const kv_half_kernels *k = active_kernels();
    const int64_t done = whole_vectors(k, n);
    if (done)
        k->from_f32(x, out, done);
    for (int64_t i = done; i < n; i++)
        out[i] = g3n_kv_half_from_float(x[i]);
}

void g3n_kv_half_to_f32(const uint16_t *h, float *out, int64_t n)
{
    const kv_half_kernels *k = active_kernels();
    const int64_t done = whole_vectors(k, n);
    if (done)
        k->to_f32(h, out, done);
    for (int64_t i = done; i < n; i++)
        out[i] = g3n_kv_half_to_float(h[i]);
}

float g3n_kv_half_dot(const float *x, const uint16_t *h, int64_t n)
{
    const kv_half_kernels *k = active_kernels();
    int64_t done = 0;
    float sum = 0.0f;
    if (k->dot) {
        done = n / k->width * k->width;
        sum = k->dot(x, h, done);
    }
    for (int64_t i = done; i < n; i++)
        sum += x[i] * g3n_kv_half_to_float(h[i]);
    return sum;
}

void g3n_kv_half_axpy(float *acc, float s, const uint16_t *h, int64_t n)
{
    const kv_half_kernels *k = active_kernels();
    const int64_t done = whole_vectors(k, n);
    if (done)
        k->axpy(acc, s, h, done);
    for (int64_t i = done; i < n; i++)
        acc[i] += s * g3n_kv_half_to_float(h[i]);
}

void g3n_kv_half_dot_group(const float *q, int64_t q_stride, int heads, const uint16_t *k, int64_t n, float *out)
{
    const kv_half_kernels *kernels = active_kernels();
    if (kernels->dot_group && n % 16 == 0 && heads <= G3N_KV_HALF_MAX_HEADS) {
        kernels->dot_group(q, q_stride, heads, k, n, out);
        return;
    }
    for (int h = 0; h < heads; h++)
        out[h] = g3n_kv_half_dot(q + h * q_stride, k, n);
}

void g3n_kv_half_axpy_group(float *o, int64_t o_stride, int heads, const float *coefs, const uint16_t *v, int64_t n)
{
    const kv_half_kernels *kernels = active_kernels();
    if (kernels->axpy_group && n % 16 == 0 && heads <= G3N_KV_HALF_MAX_HEADS) {
        kernels->axpy_group(o, o_stride, heads, coefs, v, n);
        return;
    }
    for (int h = 0; h < heads; h++)
        g3n_kv_half_axpy(o + h * o_stride, coefs[h], v, n);
}
