/* audio_ops_avx512.c - the conformer's row kernels (audio_ops.h) with
 * AVX-512F, called only when g3n_isa_active() >= G3N_ISA_AVX512
 * (audio_encoder.c). exp by a degree-6 polynomial after range reduction
 * (relative error ~2 ulp; the portable versions use expf), tanh(x) as
 * 1 - 2 / (exp(2x) + 1) (absolute error ~1e-7). */
#include <immintrin.h>
#include <stdint.h>

#include "audio_ops.h"
#include "simd_exp_avx512.h"

void g3n_audio_gate_avx512(const float *a, const float *b, float *out, int64_t count)
{
    for (int64_t i = 0; i < count; i += 16) {
        const int64_t left = count - i;
        const __mmask16 m = left >= 16 ? (__mmask16)0xffff : (__mmask16)((1u << left) - 1u);
        const __m512 sigmoid = g3n_sigmoid_avx512(_mm512_maskz_loadu_ps(m, b + i));
        _mm512_mask_storeu_ps(out + i, m, _mm512_mul_ps(_mm512_maskz_loadu_ps(m, a + i), sigmoid));
    }
}

static inline __mmask16 tail_mask(int64_t left)
{
    return left >= 16 ? (__mmask16)0xffff : (__mmask16)((1u << left) - 1u);
}

static inline __m512 clamp_vector(__m512 v, __m512 clip)
{
    return _mm512_max_ps(_mm512_min_ps(v, clip), _mm512_sub_ps(_mm512_setzero_ps(), clip));
}

static float clamp_norm_inverse(const float *x, int64_t n, float clip, float eps)
{
    const __m512 vclip = _mm512_set1_ps(clip);
    __m512 s0 = _mm512_setzero_ps(), s1 = _mm512_setzero_ps();
    int64_t i = 0;
    for (; i + 32 <= n; i += 32) {
        const __m512 a = clamp_vector(_mm512_loadu_ps(x + i), vclip);
        const __m512 b = clamp_vector(_mm512_loadu_ps(x + i + 16), vclip);
        s0 = _mm512_fmadd_ps(a, a, s0);
        s1 = _mm512_fmadd_ps(b, b, s1);
    }
    for (; i < n; i += 16) {
        const __m512 a = clamp_vector(_mm512_maskz_loadu_ps(tail_mask(n - i), x + i), vclip);
        s0 = _mm512_fmadd_ps(a, a, s0);
    }
    const float sum = _mm512_reduce_add_ps(_mm512_add_ps(s0, s1));
    return 1.0f / __builtin_sqrtf(sum / (float)n + eps);
}

void g3n_audio_clamp_norm_avx512(const float *x, const float *weight, float *out, int64_t n, float clip, float eps)
{
    const __m512 inverse = _mm512_set1_ps(clamp_norm_inverse(x, n, clip, eps)), vclip = _mm512_set1_ps(clip);
    for (int64_t i = 0; i < n; i += 16) {
        const __mmask16 m = tail_mask(n - i);
        const __m512 c = clamp_vector(_mm512_maskz_loadu_ps(m, x + i), vclip);
        const __m512 y = _mm512_mul_ps(_mm512_mul_ps(c, inverse), _mm512_maskz_loadu_ps(m, weight + i));
        _mm512_mask_storeu_ps(out + i, m, y);
    }
}

void g3n_audio_clamp_norm_add_avx512(const float *x, const float *weight, float *h, int64_t n, float clip, float eps,
                                     float scale)
{
    const __m512 inverse = _mm512_set1_ps(clamp_norm_inverse(x, n, clip, eps)), vclip = _mm512_set1_ps(clip);
    const __m512 vscale = _mm512_set1_ps(scale);
    for (int64_t i = 0; i < n; i += 16) {
        const __mmask16 m = tail_mask(n - i);
        const __m512 c = clamp_vector(_mm512_maskz_loadu_ps(m, x + i), vclip);
        const __m512 y = _mm512_mul_ps(_mm512_mul_ps(c, inverse), _mm512_maskz_loadu_ps(m, weight + i));
        _mm512_mask_storeu_ps(h + i, m, _mm512_fmadd_ps(y, vscale, _mm512_maskz_loadu_ps(m, h + i)));
    }
}

/* Query rows up to this width use the vector kernel (the conformer's head_dim is 192). */
#define ATTEND_MAX_DH 1024

void g3n_audio_attend_avx512(const g3n_audio_attention_row *a, float *out)
{
    const int64_t dh = a->dh, keys = a->keys;
    if (dh > ATTEND_MAX_DH || keys > 16 || keys < 1) {
        g3n_audio_attend(a, out);
        return;
    }
    float query[ATTEND_MAX_DH] __attribute__((aligned(64)));
    const __m512 q_scale = _mm512_set1_ps(a->q_scale);
    for (int64_t e = 0; e < dh; e += 16) {
        const __mmask16 m = tail_mask(dh - e);
        const __m512 q = _mm512_mul_ps(_mm512_maskz_loadu_ps(m, a->q + e), q_scale);
        _mm512_store_ps(query + e, _mm512_mul_ps(q, _mm512_maskz_loadu_ps(m, a->per_dim + e)));
    }
    float logits[16] __attribute__((aligned(64))) = {0};
    __mmask16 valid = 0;
    for (int64_t t = 0; t < keys; t++) {
        const float *k = a->key0 - (ptrdiff_t)((size_t)t * a->kv_stride);
        const float *rel = a->relative + (size_t)t * a->rel_stride;
        __m512 c0 = _mm512_setzero_ps(), c1 = _mm512_setzero_ps();
        for (int64_t e = 0; e < dh; e += 16) {
            const __mmask16 m = tail_mask(dh - e);
            const __m512 q = _mm512_load_ps(query + e); /* zero beyond dh */
            c0 = _mm512_fmadd_ps(q, _mm512_maskz_loadu_ps(m, k + e), c0);
            c1 = _mm512_fmadd_ps(q, _mm512_maskz_loadu_ps(m, rel + e), c1);
        }
        logits[t] = _mm512_reduce_add_ps(_mm512_add_ps(c0, c1));
        if (a->valid0[-t])
            valid |= (__mmask16)(1u << t);
    }
    if (!valid) {
        for (int64_t e = 0; e < dh; e += 16)
            _mm512_mask_storeu_ps(out + e, tail_mask(dh - e), _mm512_setzero_ps());
        return;
    }
    /* cap * tanh(logit / cap), tanh(x) = 1 - 2 / (exp(2x) + 1) */
    const __m512 cap = _mm512_set1_ps(a->cap), one = _mm512_set1_ps(1.0f);
    const __m512 x = _mm512_div_ps(_mm512_load_ps(logits), cap);
    const __m512 th = _mm512_sub_ps(one, _mm512_div_ps(_mm512_set1_ps(2.0f),
                                                       _mm512_add_ps(g3n_exp_avx512(_mm512_add_ps(x, x)), one)));
    const __m512 capped = _mm512_mul_ps(th, cap);
    const float max = _mm512_mask_reduce_max_ps(valid, capped);
    const __m512 weights = _mm512_maskz_mov_ps(valid, g3n_exp_avx512(_mm512_sub_ps(capped, _mm512_set1_ps(max))));
    const float total = _mm512_reduce_add_ps(weights);
    float p[16] __attribute__((aligned(64)));
    _mm512_store_ps(p, _mm512_div_ps(weights, _mm512_set1_ps(total)));
    for (int64_t e = 0; e < dh; e += 16) {
        const __mmask16 m = tail_mask(dh - e);
        __m512 acc = _mm512_setzero_ps();
        for (int64_t t = 0; t < keys; t++)
            if (valid & (1u << t))
                acc = _mm512_fmadd_ps(_mm512_set1_ps(p[t]),
                                      _mm512_maskz_loadu_ps(m, a->value0 - (ptrdiff_t)((size_t)t * a->kv_stride) + e),
                                      acc);
        _mm512_mask_storeu_ps(out + e, m, acc);
    }
}
