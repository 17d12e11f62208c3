/* audio_ops.h - the conformer's row kernels outside the GEMMs: the gates
 * (SiLU, GLU) on every path, and for the fast precisions (bf16, int8) fused
 * clamp + RMS norm (+ residual) passes and the 13-key local attention of one
 * (frame, head). Each has a portable C version (the reference its vector
 * twins are tested against, tests/unit/test_audio_ops.c), an `_avx512`
 * version to call only when g3n_isa_active() >= G3N_ISA_AVX512 and an `_avx2`
 * one for g3n_isa_active() >= G3N_ISA_AVX2; g3n_audio_ops() hands out those
 * of the active level.
 *
 * The exact (f32) encoder path does not use the fused norms or the attention
 * kernel: they sum squares and dot products in f32 vectors (the exact path
 * sums squares in double like PyTorch's reduction, and keeps its loop order),
 * a difference of ~1e-7 relative, far inside the fast paths' budgets. */
#ifndef G3N_AUDIO_OPS_H
#define G3N_AUDIO_OPS_H

#include <stddef.h>
#include <stdint.h>

/* out[i] = a[i] * sigmoid(b[i]) (SiLU when a == b; out may alias a or b). */
void g3n_audio_gate(const float *a, const float *b, float *out, int64_t count);
void g3n_audio_gate_avx512(const float *a, const float *b, float *out, int64_t count);
void g3n_audio_gate_avx2(const float *a, const float *b, float *out, int64_t count);

/* out = (c * (1 / sqrt(mean(c²) + eps))) * weight with c = clamp(x, ±clip) (out may be x). */
void g3n_audio_clamp_norm(const float *x, const float *weight, float *out, int64_t n, float clip, float eps);
void g3n_audio_clamp_norm_avx512(const float *x, const float *weight, float *out, int64_t n, float clip, float eps);
void g3n_audio_clamp_norm_avx2(const float *x, const float *weight, float *out, int64_t n, float clip, float eps);

/* h += g3n_audio_clamp_norm(x) * scale (x is not modified). */
void g3n_audio_clamp_norm_add(const float *x, const float *weight, float *h, int64_t n, float clip, float eps,
                              float scale);
void g3n_audio_clamp_norm_add_avx512(const float *x, const float *weight, float *h, int64_t n, float clip, float eps,
                                     float scale);
void g3n_audio_clamp_norm_add_avx2(const float *x, const float *weight, float *h, int64_t n, float clip, float eps,
                                   float scale);

/* Local causal attention of one frame and head over `keys` keys at distances
 * 0 .. keys-1 (keys <= 16): key/value of distance t at key0/value0 - t *
 * kv_stride, valid0[-t] != 0 when that key is not padding, relative[t *
 * rel_stride] the relative-position embedding of distance t. Query
 * q[e] * q_scale * per_dim[e]; logit = cap * tanh((q·k + q·rel) / cap);
 * softmax over the valid keys; out[0..dh) = Σ p v (zeros when no key is valid). */
typedef struct g3n_audio_attention_row {
    const float *q, *per_dim, *key0, *value0, *relative;
    const uint8_t *valid0;
    size_t kv_stride, rel_stride;
    int64_t keys, dh;
    float q_scale, cap;
} g3n_audio_attention_row;
void g3n_audio_attend(const g3n_audio_attention_row *a, float *out);
void g3n_audio_attend_avx512(const g3n_audio_attention_row *a, float *out);
void g3n_audio_attend_avx2(const g3n_audio_attention_row *a, float *out);

/* The kernels above of one instruction-set level (every field set). */
typedef struct g3n_audio_kernels {
    void (*gate)(const float *a, const float *b, float *out, int64_t count);
    void (*clamp_norm)(const float *x, const float *weight, float *out, int64_t n, float clip, float eps);
    void (*clamp_norm_add)(const float *x, const float *weight, float *h, int64_t n, float clip, float eps,
                           float scale);
    void (*attend)(const g3n_audio_attention_row *a, float *out);
} g3n_audio_kernels;
/* Those of the active level (isa.h). */
const g3n_audio_kernels *g3n_audio_ops(void);

#endif
