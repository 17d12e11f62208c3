/* audio_ops_avx2.c - the conformer's row kernels (audio_ops.h) with AVX2 +
 * FMA: the AVX-512 versions (audio_ops_avx512.c) at 8 lanes, called only when
 * g3n_isa_active() >= G3N_ISA_AVX2 (audio_encoder.c). exp by the degree-6
 * polynomial of simd_exp_avx2.h, tanh(x) as 1 - 2 / (exp(2x) + 1). */
#include <immintrin.h>
#include <stdint.h>

#include "audio_ops.h"
#include "simd_exp_avx2.h"

/* Loads / stores of the 8 lanes at i (fewer than 8 left: masked). */
static inline __m256 load8(const float *p, int64_t left)
{
    return left >= 8 ? _mm256_loadu_ps(p) : _mm256_maskload_ps(p, g3n_lanes_avx2(left));
}
static inline void store8(float *p, __m256 v, int64_t left)
{
    if (left >= 8)
        _mm256_storeu_ps(p, v);
    else
        _mm256_maskstore_ps(p, g3n_lanes_avx2(left), v);
}

void g3n_audio_gate_avx2(const float *a, const float *b, float *out, int64_t count)
{
    for (int64_t i = 0; i < count; i += 8) {
        const __m256 sigmoid = g3n_sigmoid_avx2(load8(b + i, count - i));
        store8(out + i, _mm256_mul_ps(load8(a + i, count - i), sigmoid), count - i);
    }
}

static inline __m256 clamp_vector(__m256 v, __m256 clip)
{
    return _mm256_max_ps(_mm256_min_ps(v, clip), _mm256_sub_ps(_mm256_setzero_ps(), clip));
}

static float clamp_norm_inverse(const float *x, int64_t n, float clip, float eps)
{
    const __m256 vclip = _mm256_set1_ps(clip);
    __m256 s0 = _mm256_setzero_ps(), s1 = _mm256_setzero_ps();
    int64_t i = 0;
    for (; i + 16 <= n; i += 16) {
        const __m256 a = clamp_vector(_mm256_loadu_ps(x + i), vclip);
        const __m256 b = clamp_vector(_mm256_loadu_ps(x + i + 8), vclip);
        s0 = _mm256_fmadd_ps(a, a, s0);
        s1 = _mm256_fmadd_ps(b, b, s1);
    }
    for (; i < n; i += 8) {
        const __m256 a = clamp_vector(load8(x + i, n - i), vclip); /* (masked lanes are 0) */
        s0 = _mm256_fmadd_ps(a, a, s0);
    }
    const float sum = g3n_sum_avx2(_mm256_add_ps(s0, s1));
    return 1.0f / __builtin_sqrtf(sum / (float)n + eps);
}

void g3n_audio_clamp_norm_avx2(const float *x, const float *weight, float *out, int64_t n, float clip, float eps)
{
    const __m256 inverse = _mm256_set1_ps(clamp_norm_inverse(x, n, clip, eps)), vclip = _mm256_set1_ps(clip);
    for (int64_t i = 0; i < n; i += 8) {
        const __m256 c = clamp_vector(load8(x + i, n - i), vclip);
        store8(out + i, _mm256_mul_ps(_mm256_mul_ps(c, inverse), load8(weight + i, n - i)), n - i);
    }
}

void g3n_audio_clamp_norm_add_avx2(const float *x, const float *weight, float *h, int64_t n, float clip, float eps,
                                   float scale)
{
    const __m256 inverse = _mm256_set1_ps(clamp_norm_inverse(x, n, clip, eps)), vclip = _mm256_set1_ps(clip);
    const __m256 vscale = _mm256_set1_ps(scale);
    for (int64_t i = 0; i < n; i += 8) {
        const __m256 c = clamp_vector(load8(x + i, n - i), vclip);
        const __m256 y = _mm256_mul_ps(_mm256_mul_ps(c, inverse), load8(weight + i, n - i));
        store8(h + i, _mm256_fmadd_ps(y, vscale, load8(h + i, n - i)), n - i);
    }
}

/* Query rows up to this width use the vector kernel (the conformer's head_dim is 192). */
#define ATTEND_MAX_DH 1024

void g3n_audio_attend_avx2(const g3n_audio_attention_row *a, float *out)
{
    const int64_t dh = a->dh, keys = a->keys;
    if (dh > ATTEND_MAX_DH || keys > 16 || keys < 1) {
        g3n_audio_attend(a, out);
        return;
    }
    float query[ATTEND_MAX_DH] __attribute__((aligned(32)));
    const __m256 q_scale = _mm256_set1_ps(a->q_scale);
    for (int64_t e = 0; e < dh; e += 8) { /* zero beyond dh */
        const __m256 q = _mm256_mul_ps(load8(a->q + e, dh - e), q_scale);
        _mm256_store_ps(query + e, _mm256_mul_ps(q, load8(a->per_dim + e, dh - e)));
    }
    float logits[16] __attribute__((aligned(32))) = {0};
    unsigned valid = 0;
    for (int64_t t = 0; t < keys; t++) {
        const float *k = a->key0 - (ptrdiff_t)((size_t)t * a->kv_stride);
        const float *rel = a->relative + (size_t)t * a->rel_stride;
        __m256 c0 = _mm256_setzero_ps(), c1 = _mm256_setzero_ps();
        for (int64_t e = 0; e < dh; e += 8) {
            const __m256 q = _mm256_load_ps(query + e);
            c0 = _mm256_fmadd_ps(q, load8(k + e, dh - e), c0);
            c1 = _mm256_fmadd_ps(q, load8(rel + e, dh - e), c1);
        }
        logits[t] = g3n_sum_avx2(_mm256_add_ps(c0, c1));
        if (a->valid0[-t])
            valid |= 1u << t;
    }
    if (!valid) {
        for (int64_t e = 0; e < dh; e += 8)
            store8(out + e, _mm256_setzero_ps(), dh - e);
        return;
    }
    /* cap * tanh(logit / cap), tanh(x) = 1 - 2 / (exp(2x) + 1); the 16 keys as two vectors */
    const __m256 cap = _mm256_set1_ps(a->cap), one = _mm256_set1_ps(1.0f);
    float p[16] __attribute__((aligned(32)));
    float max = -__FLT_MAX__;
    for (int h = 0; h < 2; h++) {
        const __m256 x = _mm256_div_ps(_mm256_load_ps(logits + 8 * h), cap);
        const __m256 th = _mm256_sub_ps(
            one, _mm256_div_ps(_mm256_set1_ps(2.0f), _mm256_add_ps(g3n_exp_avx2(_mm256_add_ps(x, x)), one)));
        _mm256_store_ps(p + 8 * h, _mm256_mul_ps(th, cap));
    }
    for (int t = 0; t < keys; t++)
        if ((valid >> t) & 1u)
            max = p[t] > max ? p[t] : max;
    float total = 0.0f;
    for (int h = 0; h < 2; h++) {
        const __m256i bits = _mm256_setr_epi32(1, 2, 4, 8, 16, 32, 64, 128);
        const __m256i lane_valid =
            _mm256_cmpeq_epi32(_mm256_and_si256(_mm256_set1_epi32((int)(valid >> (8 * h))), bits), bits);
        const __m256 w = _mm256_and_ps(g3n_exp_avx2(_mm256_sub_ps(_mm256_load_ps(p + 8 * h), _mm256_set1_ps(max))),
                                       _mm256_castsi256_ps(lane_valid));
        _mm256_store_ps(p + 8 * h, w);
        total += g3n_sum_avx2(w);
    }
    const __m256 vtotal = _mm256_set1_ps(total);
    for (int h = 0; h < 2; h++)
        _mm256_store_ps(p + 8 * h, _mm256_div_ps(_mm256_load_ps(p + 8 * h), vtotal));
    for (int64_t e = 0; e < dh; e += 8) {
        __m256 acc = _mm256_setzero_ps();
        for (int64_t t = 0; t < keys; t++)
            if ((valid >> t) & 1u)
                acc = _mm256_fmadd_ps(_mm256_set1_ps(p[t]),
                                      load8(a->value0 - (ptrdiff_t)((size_t)t * a->kv_stride) + e, dh - e), acc);
        store8(out + e, acc, dh - e);
    }
}
