/* kv_half.h - IEEE half-precision (binary16) storage for the KV cache:
 * conversions and the two products attention reads the cache with. The
 * cache stores keys and values as half (convert on write, round to nearest
 * even); attention reads them widened to f32 and accumulates in f32.
 *
 * Dispatch: AVX-512 (vcvtph2ps / vcvtps2ph, 16 lanes), AVX2 with F16C (8
 * lanes), portable bit manipulation (same results: the conversions are
 * exact or correctly rounded in every variant; the products' sums may differ
 * in the last bits from one variant to another since the lanes sum in another order). */
#ifndef G3N_KV_HALF_H
#define G3N_KV_HALF_H

#include <stdint.h>

/* out[i] = half(x[i]), round to nearest even; overflow gives ±inf, NaN stays NaN. */
void g3n_kv_half_from_f32(const float *x, uint16_t *out, int64_t n);
/* out[i] = (float)h[i] (exact). */
void g3n_kv_half_to_f32(const uint16_t *h, float *out, int64_t n);
/* Σ x[i]·(float)h[i] */
float g3n_kv_half_dot(const float *x, const uint16_t *h, int64_t n);
/* acc[i] += s·(float)h[i] */
void g3n_kv_half_axpy(float *acc, float s, const uint16_t *h, int64_t n);

/* Decode attention of a group of query heads sharing one KV head (each cache
 * row widened once for all of them; heads <= G3N_KV_HALF_MAX_HEADS):
 *   dot_group:  out[h] = Σ_i q[h·q_stride + i]·(float)k[i]
 *   axpy_group: o[h·o_stride + i] += coefs[h]·(float)v[i] */
#define G3N_KV_HALF_MAX_HEADS 8
void g3n_kv_half_dot_group(const float *q, int64_t q_stride, int heads, const uint16_t *k, int64_t n, float *out);
void g3n_kv_half_axpy_group(float *o, int64_t o_stride, int heads, const float *coefs, const uint16_t *v, int64_t n);

/* Single values, portable (also the reference the tests compare against). */
uint16_t g3n_kv_half_from_float(float x);
float g3n_kv_half_to_float(uint16_t h);

/* Vector bodies: whole vectors only (n a multiple of 16 / 8); call after g3n_isa_active(). */
void g3n_kv_half_from_f32_avx512(const float *x, uint16_t *out, int64_t n);
void g3n_kv_half_to_f32_avx512(const uint16_t *h, float *out, int64_t n);
float g3n_kv_half_dot_avx512(const float *x, const uint16_t *h, int64_t n);
void g3n_kv_half_axpy_avx512(float *acc, float s, const uint16_t *h, int64_t n);
void g3n_kv_half_dot_group_avx512(const float *q, int64_t q_stride, int heads, const uint16_t *k, int64_t n,
                                   float *out);
void g3n_kv_half_axpy_group_avx512(float *o, int64_t o_stride, int heads, const float *coefs, const uint16_t *v,
                                   int64_t n);
void g3n_kv_half_from_f32_avx2(const float *x, uint16_t *out, int64_t n);
void g3n_kv_half_to_f32_avx2(const uint16_t *h, float *out, int64_t n);
float g3n_kv_half_dot_avx2(const float *x, const uint16_t *h, int64_t n);
void g3n_kv_half_axpy_avx2(float *acc, float s, const uint16_t *h, int64_t n);

#endif
