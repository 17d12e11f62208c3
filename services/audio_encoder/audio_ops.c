/* audio_ops.c - portable versions of the conformer's row kernels (audio_ops.h). */
#include "audio_ops.h"

#include "isa.h"

#include <float.h>
#include <math.h>

void g3n_audio_gate(const float *a, const float *b, float *out, int64_t count)
{
    for (int64_t i = 0; i < count; i++)
        out[i] = a[i] * (1.0f / (1.0f + expf(-b[i])));
}

static float clamp_norm_inverse(const float *x, int64_t n, float clip, float eps)
{
    float sum = 0.0f;
    for (int64_t i = 0; i < n; i++) {
        const float c = x[i] > clip ? clip : x[i] < -clip ? -clip : x[i];
        sum += c * c;
    }
    return 1.0f / sqrtf(sum / (float)n + eps);
}

void g3n_audio_clamp_norm(const float *x, const float *weight, float *out, int64_t n, float clip, float eps)
{
    const float inverse = clamp_norm_inverse(x, n, clip, eps);
    for (int64_t i = 0; i < n; i++) {
        const float c = x[i] > clip ? clip : x[i] < -clip ? -clip : x[i];
        out[i] = (c * inverse) * weight[i];
    }
}

void g3n_audio_clamp_norm_add(const float *x, const float *weight, float *h, int64_t n, float clip, float eps,
                              float scale)
{
    const float inverse = clamp_norm_inverse(x, n, clip, eps);
    for (int64_t i = 0; i < n; i++) {
        const float c = x[i] > clip ? clip : x[i] < -clip ? -clip : x[i];
        h[i] += ((c * inverse) * weight[i]) * scale;
    }
}

void g3n_audio_attend(const g3n_audio_attention_row *a, float *out)
{
    float logits[16];
    float max_logit = -FLT_MAX;
    int any = 0;
    for (int64_t t = 0; t < a->keys; t++) {
        const float *k = a->key0 - (ptrdiff_t)((size_t)t * a->kv_stride);
        const float *rel = a->relative + (size_t)t * a->rel_stride;
        float content = 0.0f, position = 0.0f;
        for (int64_t e = 0; e < a->dh; e++) {
            const float q = (a->q[e] * a->q_scale) * a->per_dim[e];
            content += q * k[e];
            position += q * rel[e];
        }
        logits[t] = tanhf((content + position) / a->cap) * a->cap;
        if (a->valid0[-t]) {
            any = 1;
            max_logit = logits[t] > max_logit ? logits[t] : max_logit;
        }
    }
    for (int64_t e = 0; e < a->dh; e++)
        out[e] = 0.0f;
    if (!any)
        return;
    float total = 0.0f;
    for (int64_t t = 0; t < a->keys; t++) {
        logits[t] = a->valid0[-t] ? expf(logits[t] - max_logit) : 0.0f;
        total += logits[t];
    }
    for (int64_t t = 0; t < a->keys; t++) {
        if (logits[t] == 0.0f)
            continue;
        const float p = logits[t] / total;
        const float *v = a->value0 - (ptrdiff_t)((size_t)t * a->kv_stride);
        for (int64_t e = 0; e < a->dh; e++)
            out[e] += p * v[e];
    }
}

static const g3n_audio_kernels kernels_by_isa[G3N_ISA_COUNT] = {
    [G3N_ISA_PORTABLE] = {g3n_audio_gate, g3n_audio_clamp_norm, g3n_audio_clamp_norm_add, g3n_audio_attend},
    [G3N_ISA_AVX2] = {g3n_audio_gate_avx2, g3n_audio_clamp_norm_avx2, g3n_audio_clamp_norm_add_avx2,
                      g3n_audio_attend_avx2},
    [G3N_ISA_AVX512] = {g3n_audio_gate_avx512, g3n_audio_clamp_norm_avx512, g3n_audio_clamp_norm_add_avx512,
                        g3n_audio_attend_avx512},
};

const g3n_audio_kernels *g3n_audio_ops(void)
{
    return &kernels_by_isa[g3n_isa_active()];
}
