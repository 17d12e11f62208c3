/* kv_half.c - half-precision KV storage: portable conversions and dispatch (kv_half.h). */
#include "kv_half.h"

#include <string.h>

#include "matmul.h"

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

void g3n_kv_half_from_f32(const float *x, uint16_t *out, int64_t n)
{
    int64_t done = 0;
    const g3n_isa isa = g3n_isa_active();
    if (isa == G3N_ISA_AVX512) {
        done = n / 16 * 16;
        g3n_kv_half_from_f32_avx512(x, out, done);
    } else if (isa == G3N_ISA_AVX2) {
        done = n / 8 * 8;
        g3n_kv_half_from_f32_avx2(x, out, done);
    }
    for (int64_t i = done; i < n; i++)
        out[i] = g3n_kv_half_from_float(x[i]);
}

void g3n_kv_half_to_f32(const uint16_t *h, float *out, int64_t n)
{
    int64_t done = 0;
    const g3n_isa isa = g3n_isa_active();
    if (isa == G3N_ISA_AVX512) {
        done = n / 16 * 16;
        g3n_kv_half_to_f32_avx512(h, out, done);
    } else if (isa == G3N_ISA_AVX2) {
        done = n / 8 * 8;
        g3n_kv_half_to_f32_avx2(h, out, done);
    }
    for (int64_t i = done; i < n; i++)
        out[i] = g3n_kv_half_to_float(h[i]);
}

float g3n_kv_half_dot(const float *x, const uint16_t *h, int64_t n)
{
    int64_t done = 0;
    float sum = 0.0f;
    const g3n_isa isa = g3n_isa_active();
    if (isa == G3N_ISA_AVX512) {
        done = n / 16 * 16;
        sum = g3n_kv_half_dot_avx512(x, h, done);
    } else if (isa == G3N_ISA_AVX2) {
        done = n / 8 * 8;
        sum = g3n_kv_half_dot_avx2(x, h, done);
    }
    for (int64_t i = done; i < n; i++)
        sum += x[i] * g3n_kv_half_to_float(h[i]);
    return sum;
}

void g3n_kv_half_axpy(float *acc, float s, const uint16_t *h, int64_t n)
{
    int64_t done = 0;
    const g3n_isa isa = g3n_isa_active();
    if (isa == G3N_ISA_AVX512) {
        done = n / 16 * 16;
        g3n_kv_half_axpy_avx512(acc, s, h, done);
    } else if (isa == G3N_ISA_AVX2) {
        done = n / 8 * 8;
        g3n_kv_half_axpy_avx2(acc, s, h, done);
    }
    for (int64_t i = done; i < n; i++)
        acc[i] += s * g3n_kv_half_to_float(h[i]);
}

void g3n_kv_half_dot_group(const float *q, int64_t q_stride, int heads, const uint16_t *k, int64_t n, float *out)
{
    if (g3n_isa_active() == G3N_ISA_AVX512 && n % 16 == 0 && heads <= G3N_KV_HALF_MAX_HEADS) {
        g3n_kv_half_dot_group_avx512(q, q_stride, heads, k, n, out);
        return;
    }
    for (int h = 0; h < heads; h++)
        out[h] = g3n_kv_half_dot(q + h * q_stride, k, n);
}

void g3n_kv_half_axpy_group(float *o, int64_t o_stride, int heads, const float *coefs, const uint16_t *v, int64_t n)
{
    if (g3n_isa_active() == G3N_ISA_AVX512 && n % 16 == 0 && heads <= G3N_KV_HALF_MAX_HEADS) {
        g3n_kv_half_axpy_group_avx512(o, o_stride, heads, coefs, v, n);
        return;
    }
    for (int h = 0; h < heads; h++)
        g3n_kv_half_axpy(o + h * o_stride, coefs[h], v, n);
}
