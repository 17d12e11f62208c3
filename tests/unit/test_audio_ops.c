/* audio_ops.h: each row kernel of the conformer on every instruction set
 * this CPU has (portable C, AVX2, AVX-512) against plain double-precision
 * formulas: gates (SiLU/GLU), fused clamp + RMS norm (+ residual), and the
 * local attention of one frame and head (valid and padded keys, head widths
 * with a tail, all keys padded). */
#include <float.h>
#include <math.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "audio_ops.h"
#include "matmul.h"
#include "test_util.h"

static int have(g3n_isa isa)
{
    return g3n_isa_detect() >= isa;
}

/* The kernels of one instruction set. */
typedef struct audio_kernels {
    g3n_isa isa;
    const char *name;
    void (*gate)(const float *, const float *, float *, int64_t);
    void (*clamp_norm)(const float *, const float *, float *, int64_t, float, float);
    void (*clamp_norm_add)(const float *, const float *, float *, int64_t, float, float, float);
    void (*attend)(const g3n_audio_attention_row *, float *);
} audio_kernels;

static const audio_kernels kernel_sets[] = {
    {G3N_ISA_PORTABLE, "portable", g3n_audio_gate, g3n_audio_clamp_norm, g3n_audio_clamp_norm_add, g3n_audio_attend},
    {G3N_ISA_AVX2, "avx2", g3n_audio_gate_avx2, g3n_audio_clamp_norm_avx2, g3n_audio_clamp_norm_add_avx2,
     g3n_audio_attend_avx2},
    {G3N_ISA_AVX512, "avx512", g3n_audio_gate_avx512, g3n_audio_clamp_norm_avx512, g3n_audio_clamp_norm_add_avx512,
     g3n_audio_attend_avx512},
};
#define KERNEL_SETS ((int)(sizeof kernel_sets / sizeof kernel_sets[0]))

static void assert_close(const float *got, const double *want, int64_t n, double tolerance, const char *what)
{
    for (int64_t i = 0; i < n; i++)
        if (fabs(got[i] - want[i]) > tolerance * (1.0 + fabs(want[i])))
            fail_msg("%s[%lld]: %.9g, want %.9g", what, (long long)i, got[i], want[i]);
}

static void test_gate(void **state)
{
    (void)state;
    const int64_t n = 1000 + 7;
    float *a = malloc(sizeof(float) * n), *b = malloc(sizeof(float) * n), *out = malloc(sizeof(float) * n);
    double *want = malloc(sizeof(double) * n);
    g3n_test_random_floats(a, n, 1);
    g3n_test_random_floats(b, n, 2);
    for (int64_t i = 0; i < n; i++) {
        b[i] *= 40.0f; /* both tails of the sigmoid */
        want[i] = a[i] / (1.0 + exp(-(double)b[i]));
    }
    for (int set = 0; set < KERNEL_SETS; set++) {
        if (!have(kernel_sets[set].isa))
            continue;
        char what[64];
        snprintf(what, sizeof what, "gate [%s]", kernel_sets[set].name);
        for (int64_t i = 0; i < n; i++)
            out[i] = NAN;
        kernel_sets[set].gate(a, b, out, n);
        assert_close(out, want, n, 1e-6, what);
    }
    free(a);
    free(b);
    free(out);
    free(want);
}

static void test_clamp_norm(void **state)
{
    (void)state;
    const int64_t widths[] = {1, 15, 16, 33, 1536};
    for (size_t wi = 0; wi < sizeof widths / sizeof widths[0]; wi++) {
        const int64_t n = widths[wi];
        float *x = malloc(sizeof(float) * n), *weight = malloc(sizeof(float) * n), *out = malloc(sizeof(float) * n);
        float *h = malloc(sizeof(float) * n), *h0 = malloc(sizeof(float) * n);
        double *want = malloc(sizeof(double) * n), *want_h = malloc(sizeof(double) * n);
        g3n_test_random_floats(x, n, 3 + (uint64_t)n);
        g3n_test_random_floats(weight, n, 4);
        g3n_test_random_floats(h0, n, 5);
        const float clip = 0.6f, eps = 1e-6f, scale = 0.5f;
        for (int64_t i = 0; i < n; i++)
            x[i] *= 2.0f; /* some beyond the clip */
        double sum = 0.0;
        for (int64_t i = 0; i < n; i++) {
            const double c = fmax(-clip, fmin(clip, x[i]));
            sum += c * c;
        }
        const double inverse = 1.0 / sqrt(sum / (double)n + eps);
        for (int64_t i = 0; i < n; i++) {
            want[i] = fmax(-clip, fmin(clip, x[i])) * inverse * weight[i];
            want_h[i] = h0[i] + want[i] * scale;
        }
        for (int set = 0; set < KERNEL_SETS; set++) {
            const audio_kernels *k = &kernel_sets[set];
            if (!have(k->isa))
                continue;
            char what[64];
            snprintf(what, sizeof what, "clamp_norm [%s]", k->name);
            k->clamp_norm(x, weight, out, n, clip, eps);
            assert_close(out, want, n, 1e-5, what);
            memcpy(h, h0, sizeof(float) * n);
            k->clamp_norm_add(x, weight, h, n, clip, eps, scale);
            snprintf(what, sizeof what, "clamp_norm_add [%s]", k->name);
            assert_close(h, want_h, n, 1e-5, what);
            /* in place */
            float *copy = malloc(sizeof(float) * n);
            memcpy(copy, x, sizeof(float) * n);
            k->clamp_norm(copy, weight, copy, n, clip, eps);
            snprintf(what, sizeof what, "clamp_norm in place [%s]", k->name);
            assert_close(copy, want, n, 1e-5, what);
            free(copy);
        }
        free(x);
        free(weight);
        free(out);
        free(h);
        free(h0);
        free(want);
        free(want_h);
    }
}

/* Plain double-precision local attention of one frame and head. */
static void attend_reference(const g3n_audio_attention_row *a, double *out)
{
    double logits[16], max = -DBL_MAX;
    int any = 0;
    for (int64_t t = 0; t < a->keys; t++) {
        const float *k = a->key0 - (ptrdiff_t)((size_t)t * a->kv_stride);
        const float *rel = a->relative + (size_t)t * a->rel_stride;
        double dot = 0.0;
        for (int64_t e = 0; e < a->dh; e++)
            dot += (double)a->q[e] * a->q_scale * a->per_dim[e] * ((double)k[e] + rel[e]);
        logits[t] = tanh(dot / a->cap) * a->cap;
        if (a->valid0[-t]) {
            any = 1;
            max = fmax(max, logits[t]);
        }
    }
    for (int64_t e = 0; e < a->dh; e++)
        out[e] = 0.0;
    if (!any)
        return;
    double total = 0.0;
    for (int64_t t = 0; t < a->keys; t++) {
        logits[t] = a->valid0[-t] ? exp(logits[t] - max) : 0.0;
        total += logits[t];
    }
    for (int64_t t = 0; t < a->keys; t++)
        for (int64_t e = 0; e < a->dh; e++)
            out[e] += logits[t] / total * a->value0[(ptrdiff_t)e - (ptrdiff_t)((size_t)t * a->kv_stride)];
}

static void test_attend(void **state)
{
    (void)state;
    const int64_t dhs[] = {192, 20, 1};
    const int64_t keys = 13, d = 200 + 3; /* stride > dh */
    for (size_t di = 0; di < sizeof dhs / sizeof dhs[0]; di++) {
        const int64_t dh = dhs[di];
        float *q = malloc(sizeof(float) * dh), *per_dim = malloc(sizeof(float) * dh);
        float *kv = malloc(sizeof(float) * 2 * keys * d), *rel = malloc(sizeof(float) * keys * d);
        float *out = malloc(sizeof(float) * dh);
        double *want = malloc(sizeof(double) * dh);
        g3n_test_random_floats(q, dh, 7);
        g3n_test_random_floats(per_dim, dh, 8);
        g3n_test_random_floats(kv, 2 * keys * d, 9);
        g3n_test_random_floats(rel, keys * d, 10);
        for (int64_t e = 0; e < dh; e++)
            q[e] *= 8.0f; /* logits of several units, some near the cap */
        uint8_t valid[13];
        for (int pattern = 0; pattern < 3; pattern++) {
            for (int t = 0; t < 13; t++) /* valid[12 - t] is the key at distance t */
                valid[t] = pattern == 0 ? 1 : pattern == 1 ? (t % 3 != 0) : 0;
            g3n_audio_attention_row row = {
                .q = q,
                .per_dim = per_dim,
                .key0 = kv + (keys - 1) * d,
                .value0 = kv + keys * d + (keys - 1) * d,
                .relative = rel,
                .valid0 = valid + 12,
                .kv_stride = (size_t)d,
                .rel_stride = (size_t)d,
                .keys = keys,
                .dh = dh,
                .q_scale = 0.0721f,
                .cap = 5.0f,
            };
            attend_reference(&row, want);
            for (int set = 0; set < KERNEL_SETS; set++) {
                if (!have(kernel_sets[set].isa))
                    continue;
                for (int64_t e = 0; e < dh; e++)
                    out[e] = NAN;
                kernel_sets[set].attend(&row, out);
                char what[64];
                snprintf(what, sizeof what, "attend [%s] dh %lld pattern %d", kernel_sets[set].name, (long long)dh,
                         pattern);
                assert_close(out, want, dh, 1e-5, what);
            }
        }
        free(q);
        free(per_dim);
        free(kv);
        free(rel);
        free(out);
        free(want);
    }
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_gate),
        cmocka_unit_test(test_clamp_norm),
        cmocka_unit_test(test_attend),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
