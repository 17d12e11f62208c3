/* g3n_gemm_packed against a double-precision reference loop: every panel
 * format (f32 panels, bf16 panels widened, bf16 dot products, int8), odd
 * sizes (row, column and K tails, odd K), strided rows, the row-block-parallel
 * and panel-split paths, the fused epilogue and SiLU, re-packing into the same
 * storage, and the portable fallback. The exact formats must agree with the
 * reference to f32 rounding; bf16 and int8 within their stated budgets.
 * Every check runs on every kernel set this CPU has: portable (g3n_matmul),
 * AVX2 (plain, and with AVX-VNNI where present) and AVX-512; the int8 results
 * must be bit for bit the same on all the packed kernel sets. */
#include <math.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "gemm_packed.h"
#include "gemm_packed_internal.h"
#include "test_util.h"

typedef struct kernel_set {
    g3n_isa isa;
    int vnni; /* AVX2: with AVX-VNNI */
    const char *name;
} kernel_set;

static const kernel_set kernel_sets[] = {
    {G3N_ISA_PORTABLE, 0, "portable"},
    {G3N_ISA_AVX2, 0, "avx2"},
    {G3N_ISA_AVX2, 1, "avx2+avx-vnni"},
    {G3N_ISA_AVX512, 1, "avx512"},
};
#define KERNEL_SETS ((int)(sizeof kernel_sets / sizeof kernel_sets[0]))

/* Selects kernel set i; 0 (and a note) when this CPU lacks it. */
static int use_kernel_set(int i)
{
    const kernel_set *k = &kernel_sets[i];
    if (g3n_isa_set(k->isa) != k->isa || (k->isa == G3N_ISA_AVX2 && g3n_gemm_avx_vnni_set(k->vnni) != k->vnni)) {
        printf("  (this CPU lacks %s: skipped)\n", k->name);
        return 0;
    }
    return 1;
}

static void restore_kernel_set(void)
{
    g3n_isa_set(g3n_isa_detect());
    g3n_gemm_avx_vnni_set(1);
}

static const char *kernel_set_name(void)
{
    const g3n_isa isa = g3n_isa_active();
    return isa == G3N_ISA_AVX2 ? (g3n_gemm_avx_vnni() ? "avx2+avx-vnni" : "avx2") : g3n_isa_name(isa);
}

typedef struct shape {
    int64_t m, k, n;
} shape;

static const shape shapes[] = {
    {1, 1, 1},     {1, 7, 3},     {3, 255, 17},   {8, 64, 32},    {9, 33, 65},     {13, 257, 33},
    {37, 513, 97}, {96, 31, 15},  {97, 128, 64},  {200, 1025, 40}, {500, 96, 576}, {1000, 64, 33},
    {20, 700, 600},
};

/* bf16 compute: x (and f32 weights) are rounded to bf16, relative error <= 2^-9
 * per element, so a dot product of random signs is off by about 2^-9 / sqrt(3)
 * (1.1e-3) per rounded operand: the stated budget per GEMM is rel-L2 <= 1e-2
 * (it covers the few-output shapes whose statistics are noisy). */
#define BF16_GEMM_BUDGET 1e-2
/* int8 compute: x per row and W per output quantised to 127 steps of their
 * max-abs; for these uniform values that is ~0.4% per operand: budget 2e-2. */
#define INT8_GEMM_BUDGET 2e-2

static void make_weights(g3n_dtype dtype, int64_t n, int64_t k, uint64_t seed, void **stored, float **exact)
{
    float *values = malloc(sizeof(float) * (size_t)(n * k));
    g3n_test_random_floats(values, n * k, seed);
    if (dtype == G3N_DTYPE_F32) {
        *stored = values;
        *exact = malloc(sizeof(float) * (size_t)(n * k));
        for (int64_t i = 0; i < n * k; i++)
            (*exact)[i] = values[i];
        return;
    }
    uint16_t *half = malloc(sizeof(uint16_t) * (size_t)(n * k));
    for (int64_t i = 0; i < n * k; i++) {
        half[i] = g3n_f32_to_bf16(values[i]);
        values[i] = g3n_bf16_to_f32(half[i]);
    }
    *stored = half;
    *exact = values;
}

typedef struct epilogue_check {
    int64_t rows_seen;
    size_t stride;
} epilogue_check;

/* Test epilogue: y = 2y + row index (marks that each row was visited exactly once). */
static void mark_rows(void *user, float *y, int64_t first_row, int64_t rows, size_t y_stride)
{
    epilogue_check *c = user;
    assert_int_equal(y_stride, c->stride);
    for (int64_t r = 0; r < rows; r++)
        for (size_t j = 0; j < y_stride; j++)
            y[(size_t)r * y_stride + j] = 2.0f * y[(size_t)r * y_stride + j] + (float)(first_row + r);
#pragma omp atomic
    c->rows_seen += rows;
}

static void check_one(g3n_dtype dtype, g3n_precision precision, shape s, size_t x_pad, int with_epilogue)
{
    const size_t x_stride = (size_t)s.k + x_pad, y_stride = (size_t)s.n;
    float *x = malloc(sizeof(float) * x_stride * (size_t)s.m);
    float *y = malloc(sizeof(float) * y_stride * (size_t)s.m);
    g3n_test_random_floats(x, (int64_t)(x_stride * (size_t)s.m), 11 + (uint64_t)s.k);
    void *stored;
    float *exact;
    make_weights(dtype, s.n, s.k, 5 + (uint64_t)s.n, &stored, &exact);
    g3n_matrix w = {dtype, s.n, s.k, (size_t)s.k * g3n_dtype_size(dtype), stored};
    g3n_packed_matrix packed = {0};
    g3n_error err = {{0}};
    assert_int_equal(g3n_packed_matrix_pack(&packed, &w, precision, &err), G3N_OK);
    epilogue_check check = {0, y_stride};
    g3n_gemm_epilogue epilogue = {mark_rows, &check};
    g3n_gemm_packed(x, s.m, x_stride, &packed, y, y_stride, with_epilogue ? &epilogue : NULL);
    if (with_epilogue)
        assert_int_equal(check.rows_seen, s.m);
    double diff = 0.0, norm = 0.0, worst = 0.0;
    for (int64_t i = 0; i < s.m; i++) {
        for (int64_t j = 0; j < s.n; j++) {
            double want = 0.0, magnitude = 0.0;
            for (int64_t kk = 0; kk < s.k; kk++) {
                double p = (double)x[(size_t)i * x_stride + (size_t)kk] * exact[j * s.k + kk];
                want += p;
                magnitude += fabs(p);
            }
            double got = y[(size_t)i * y_stride + (size_t)j];
            if (with_epilogue)
                got = (got - (double)i) / 2.0;
            diff += (got - want) * (got - want);
            norm += want * want;
            double bound = 1e-5 * (magnitude + 1.0);
            double excess = fabs(got - want) / bound;
            if (excess > worst)
                worst = excess;
        }
    }
    double rel = sqrt(diff / (norm > 0.0 ? norm : 1.0));
    if (precision == G3N_PRECISION_F32) {
        if (worst > 1.0)
            fail_msg("[%s] %s f32 %lldx%lldx%lld: error %.3g x the f32 bound", kernel_set_name(),
                     g3n_matrix_dtype_name(dtype), (long long)s.m, (long long)s.k, (long long)s.n, worst);
    } else {
        const double budget = precision == G3N_PRECISION_INT8 ? INT8_GEMM_BUDGET : BF16_GEMM_BUDGET;
        if (rel > budget)
            fail_msg("[%s] %s %s %lldx%lldx%lld: rel-L2 %.3g > %.3g", kernel_set_name(), g3n_matrix_dtype_name(dtype),
                     g3n_precision_name(precision), (long long)s.m, (long long)s.k, (long long)s.n, rel, budget);
    }
    g3n_packed_matrix_free(&packed);
    free(x);
    free(y);
    free(stored);
    free(exact);
}

static void test_exact_formats(void **state)
{
    (void)state;
    for (int set = 0; set < KERNEL_SETS; set++) {
        if (!use_kernel_set(set))
            continue;
        for (size_t i = 0; i < sizeof shapes / sizeof shapes[0]; i++) {
            check_one(G3N_DTYPE_F32, G3N_PRECISION_F32, shapes[i], 0, 0);
            check_one(G3N_DTYPE_BF16, G3N_PRECISION_F32, shapes[i], 3, 0);
            check_one(G3N_DTYPE_F32, G3N_PRECISION_F32, shapes[i], 5, 1);
        }
    }
    restore_kernel_set();
}

static void test_bf16_budget(void **state)
{
    (void)state;
    for (int set = 0; set < KERNEL_SETS; set++) {
        if (!use_kernel_set(set))
            continue;
        for (size_t i = 0; i < sizeof shapes / sizeof shapes[0]; i++) {
            check_one(G3N_DTYPE_BF16, G3N_PRECISION_BF16, shapes[i], 0, 0);
            check_one(G3N_DTYPE_F32, G3N_PRECISION_BF16, shapes[i], 1, 1);
        }
    }
    restore_kernel_set();
}

static void test_int8_budget(void **state)
{
    (void)state;
    for (int set = 0; set < KERNEL_SETS; set++) {
        if (!use_kernel_set(set))
            continue;
        for (size_t i = 0; i < sizeof shapes / sizeof shapes[0]; i++) {
            check_one(G3N_DTYPE_BF16, G3N_PRECISION_INT8, shapes[i], 0, 0);
            check_one(G3N_DTYPE_F32, G3N_PRECISION_INT8, shapes[i], 2, 1);
        }
    }
    restore_kernel_set();
}

/* int8 sums are exact integers on every packed kernel set, and the quantiser
 * and the scaling are the same operations: the outputs (through both the
 * row-block and the few-rows paths) must agree bit for bit with the first
 * packed set's (the fused SiLU's sigmoids differ in the last bits: checked
 * against exp() in test_silu_epilogue). Values up to 4 so that with |x|, |w| quantised
 * to 127 many pairs reach the int16 range that vpmaddubsw on x + 128 would
 * saturate. */
static void test_int8_same_on_every_kernel_set(void **state)
{
    (void)state;
    const shape cases[] = {{300, 1031, 70}, {37, 600, 300}, {8, 64, 32}, {1, 5, 3}};
    for (size_t c = 0; c < sizeof cases / sizeof cases[0]; c++) {
        const shape s = cases[c];
        float *x = malloc(sizeof(float) * (size_t)(s.m * s.k)), *w = malloc(sizeof(float) * (size_t)(s.n * s.k));
        float *first = malloc(sizeof(float) * (size_t)(s.m * s.n)), *y = malloc(sizeof(float) * (size_t)(s.m * s.n));
        g3n_test_random_floats(x, s.m * s.k, 51 + (uint64_t)c);
        g3n_test_random_floats(w, s.n * s.k, 52 + (uint64_t)c);
        for (int64_t i = 0; i < s.m * s.k; i++)
            x[i] = x[i] > 0.0f ? 4.0f * x[i] * x[i] : -4.0f * x[i] * x[i]; /* more values near the row's max */
        g3n_matrix matrix = {G3N_DTYPE_F32, s.n, s.k, sizeof(float) * (size_t)s.k, w};
        int compared = 0, have_first = 0;
        for (int set = 1; set < KERNEL_SETS; set++) { /* (portable computes in f32) */
            if (!use_kernel_set(set))
                continue;
            g3n_packed_matrix packed = {0};
            g3n_error err = {{0}};
            assert_int_equal(g3n_packed_matrix_pack(&packed, &matrix, G3N_PRECISION_INT8, &err), G3N_OK);
            assert_int_equal(packed.format, G3N_PANELS_I8);
            g3n_gemm_packed(x, s.m, (size_t)s.k, &packed, have_first ? y : first, (size_t)s.n, NULL);
            if (have_first) {
                for (int64_t i = 0; i < s.m * s.n; i++)
                    if (memcmp(&y[i], &first[i], sizeof(float)) != 0)
                        fail_msg("[%s] int8 %lldx%lldx%lld: y[%lld] = %.9g, first set %.9g", kernel_set_name(),
                                 (long long)s.m, (long long)s.k, (long long)s.n, (long long)i, y[i], first[i]);
                compared++;
            }
            have_first = 1;
            g3n_packed_matrix_free(&packed);
        }
        if (!compared)
            printf("  (one packed kernel set on this CPU: nothing to compare)\n");
        free(x);
        free(w);
        free(first);
        free(y);
    }
    restore_kernel_set();
}

/* The bf16 path really computes in bf16 where the CPU has it: its result
 * differs from the exact one (else the fast path would not be in use). */
static void test_bf16_is_used(void **state)
{
    (void)state;
    if (g3n_isa_active() < G3N_ISA_AVX512)
        skip();
    const int64_t m = 64, k = 256, n = 64;
    float *x = malloc(sizeof(float) * (size_t)(m * k)), *w = malloc(sizeof(float) * (size_t)(n * k));
    float *y_exact = malloc(sizeof(float) * (size_t)(m * n)), *y_fast = malloc(sizeof(float) * (size_t)(m * n));
    g3n_test_random_floats(x, m * k, 1);
    g3n_test_random_floats(w, n * k, 2);
    g3n_matrix matrix = {G3N_DTYPE_F32, n, k, sizeof(float) * (size_t)k, w};
    g3n_packed_matrix exact = {0}, fast = {0};
    g3n_error err = {{0}};
    assert_int_equal(g3n_packed_matrix_pack(&exact, &matrix, G3N_PRECISION_F32, &err), G3N_OK);
    assert_int_equal(g3n_packed_matrix_pack(&fast, &matrix, G3N_PRECISION_BF16, &err), G3N_OK);
    assert_int_equal(exact.format, G3N_PANELS_F32);
    assert_int_equal(fast.format, G3N_PANELS_BF16);
    assert_true(g3n_packed_matrix_bytes(&fast) * 2 == g3n_packed_matrix_bytes(&exact));
    g3n_gemm_packed(x, m, (size_t)k, &exact, y_exact, (size_t)n, NULL);
    g3n_gemm_packed(x, m, (size_t)k, &fast, y_fast, (size_t)n, NULL);
    int differ = 0;
    for (int64_t i = 0; i < m * n; i++)
        differ += y_exact[i] != y_fast[i];
    assert_true(differ > m * n / 2);
    g3n_packed_matrix_free(&exact);
    g3n_packed_matrix_free(&fast);
    free(x);
    free(w);
    free(y_exact);
    free(y_fast);
}

/* int8 quantises (bf16 rounds) x per row and sums K in the same blocks on
 * both paths, so a row's result does not depend on the other rows: the
 * few-rows path (x converted once, tiles of panels over all rows) must give
 * bit for bit what the row-block path gives on a larger call, and
 * g3n_gemm_packed_many what one call per matrix gives; f32 panels through
 * g3n_gemm_packed_many are one g3n_gemm_packed each. */
static void check_paths_agree(void)
{
    const int64_t big = 1100, k = 1200, ns[3] = {200, 130, 257}; /* k: several bf16 K blocks; n: >= 4 panels */
    const int64_t few[4] = {1, 9, 96, 300};
    float *x = malloc(sizeof(float) * (size_t)(big * (k + 3)));
    g3n_test_random_floats(x, big * (k + 3), 21);
    const g3n_precision precisions[3] = {G3N_PRECISION_INT8, G3N_PRECISION_BF16, G3N_PRECISION_F32};
    for (int pi = 0; pi < 3; pi++) {
        g3n_packed_matrix packed[3];
        memset(packed, 0, sizeof packed);
        float *stored[3], *whole[3], *alone[3], *many[3];
        size_t strides[3];
        g3n_error err = {{0}};
        for (int j = 0; j < 3; j++) {
            stored[j] = malloc(sizeof(float) * (size_t)(ns[j] * k));
            g3n_test_random_floats(stored[j], ns[j] * k, 30 + (uint64_t)j);
            g3n_matrix w = {G3N_DTYPE_F32, ns[j], k, sizeof(float) * (size_t)k, stored[j]};
            assert_int_equal(g3n_packed_matrix_pack(&packed[j], &w, precisions[pi], &err), G3N_OK);
            strides[j] = (size_t)ns[j] + 1;
            whole[j] = malloc(sizeof(float) * (size_t)big * strides[j]);
            alone[j] = malloc(sizeof(float) * (size_t)big * strides[j]);
            many[j] = malloc(sizeof(float) * (size_t)big * strides[j]);
            g3n_gemm_packed(x, big, (size_t)k + 3, &packed[j], whole[j], strides[j], NULL);
        }
        const g3n_packed_matrix *ws[3] = {&packed[0], &packed[1], &packed[2]};
        for (int f = 0; f < 4; f++) {
            const int64_t m = few[f];
            g3n_gemm_packed_many(x, m, (size_t)k + 3, ws, many, strides, 3);
            for (int j = 0; j < 3; j++) {
                g3n_gemm_packed(x, m, (size_t)k + 3, &packed[j], alone[j], strides[j], NULL);
                for (int64_t i = 0; i < m; i++)
                    for (int64_t c = 0; c < ns[j]; c++) {
                        const size_t at = (size_t)i * strides[j] + (size_t)c;
                        assert_true(alone[j][at] == many[j][at]);
                        if (precisions[pi] != G3N_PRECISION_F32) /* f32: the same path, checked by check_one */
                            assert_true(alone[j][at] == whole[j][at]);
                    }
            }
        }
        for (int j = 0; j < 3; j++) {
            g3n_packed_matrix_free(&packed[j]);
            free(stored[j]);
            free(whole[j]);
            free(alone[j]);
            free(many[j]);
        }
    }
    free(x);
}

static void test_int8_paths_agree(void **state)
{
    (void)state;
    for (int set = 1; set < KERNEL_SETS; set++)
        if (use_kernel_set(set))
            check_paths_agree();
    restore_kernel_set();
}

/* Re-packing into the same struct: a smaller matrix reuses the storage, a larger one grows it. */
static void test_repack(void **state)
{
    (void)state;
    const int64_t k = 64;
    float *w = malloc(sizeof(float) * 128 * (size_t)k), *x = malloc(sizeof(float) * 16 * (size_t)k);
    float *y = malloc(sizeof(float) * 16 * 128);
    g3n_test_random_floats(w, 128 * k, 3);
    g3n_test_random_floats(x, 16 * k, 4);
    g3n_packed_matrix packed = {0};
    g3n_error err = {{0}};
    g3n_matrix big = {G3N_DTYPE_F32, 128, k, sizeof(float) * (size_t)k, w};
    g3n_matrix small = {G3N_DTYPE_F32, 40, k, sizeof(float) * (size_t)k, w + 64 * k};
    assert_int_equal(g3n_packed_matrix_pack(&packed, &big, G3N_PRECISION_F32, &err), G3N_OK);
    void *storage = packed.panels;
    assert_int_equal(g3n_packed_matrix_pack(&packed, &small, G3N_PRECISION_F32, &err), G3N_OK);
    if (packed.format != G3N_PANELS_NONE)
        assert_ptr_equal(packed.panels, storage);
    g3n_gemm_packed(x, 16, (size_t)k, &packed, y, 40, NULL);
    for (int64_t i = 0; i < 16; i++)
        for (int64_t j = 0; j < 40; j++) {
            double want = 0.0;
            for (int64_t kk = 0; kk < k; kk++)
                want += (double)x[i * k + kk] * w[(64 + j) * k + kk];
            assert_true(fabs(y[i * 40 + j] - want) < 1e-4);
        }
    g3n_packed_matrix_free(&packed);
    free(w);
    free(x);
    free(y);
}

/* Without AVX2 nothing is packed and the call goes through g3n_matmul. */
static void test_fallback(void **state)
{
    (void)state;
    g3n_isa saved = g3n_isa_active();
    g3n_isa_set(G3N_ISA_PORTABLE);
    for (size_t i = 0; i < 6; i++) {
        check_one(G3N_DTYPE_BF16, G3N_PRECISION_F32, shapes[i * 2], 0, 1);
        check_one(G3N_DTYPE_BF16, G3N_PRECISION_BF16, shapes[i * 2], 0, 0);
    }
    g3n_packed_matrix packed = {0};
    float w[4] = {1, 2, 3, 4};
    g3n_matrix matrix = {G3N_DTYPE_F32, 2, 2, 2 * sizeof(float), w};
    g3n_error err = {{0}};
    assert_int_equal(g3n_packed_matrix_pack(&packed, &matrix, G3N_PRECISION_BF16, &err), G3N_OK);
    assert_int_equal(packed.format, G3N_PANELS_NONE);
    g3n_packed_matrix_free(&packed);
    g3n_isa_set(saved);
}

/* The fused SiLU: every output of every path (few-rows tiles, row blocks,
 * with an `apply` after it, the portable fallback) equals silu() of the plain
 * product, to the sigmoid's rounding (vrcp14 + Newton step: ~1e-7 relative). */
static void check_silu(g3n_precision precision, int64_t m, int64_t k, int64_t n, int with_apply)
{
    float *x = malloc(sizeof(float) * (size_t)(m * k)), *w = malloc(sizeof(float) * (size_t)(n * k));
    float *plain = malloc(sizeof(float) * (size_t)(m * n)), *fused = malloc(sizeof(float) * (size_t)(m * n));
    g3n_test_random_floats(x, m * k, 41 + (uint64_t)m);
    g3n_test_random_floats(w, n * k, 43 + (uint64_t)n);
    for (int64_t i = 0; i < m * k; i++)
        x[i] *= 4.0f; /* outputs well into both tails of the sigmoid */
    g3n_matrix matrix = {G3N_DTYPE_F32, n, k, sizeof(float) * (size_t)k, w};
    g3n_packed_matrix packed = {0};
    g3n_error err = {{0}};
    assert_int_equal(g3n_packed_matrix_pack(&packed, &matrix, precision, &err), G3N_OK);
    g3n_gemm_packed(x, m, (size_t)k, &packed, plain, (size_t)n, NULL);
    epilogue_check check = {0, (size_t)n};
    const g3n_gemm_epilogue silu = {with_apply ? mark_rows : NULL, &check, 1};
    g3n_gemm_packed(x, m, (size_t)k, &packed, fused, (size_t)n, &silu);
    if (with_apply)
        assert_int_equal(check.rows_seen, m);
    double worst = 0.0;
    for (int64_t i = 0; i < m; i++)
        for (int64_t j = 0; j < n; j++) {
            const double v = plain[i * n + j], want = v / (1.0 + exp(-v));
            double got = fused[i * n + j];
            if (with_apply)
                got = (got - (double)i) / 2.0;
            /* (with the apply, 2y + i in f32 keeps y only to ~1e-7 * i absolutely) */
            const double slack = with_apply ? 2.4e-7 * (double)(i + 1) : 0.0;
            const double error = (fabs(got - want) - slack) / (fabs(want) + 1e-30);
            if (error > worst)
                worst = error;
        }
    if (worst > 2e-6)
        fail_msg("%s %lldx%lldx%lld silu%s: relative error %.3g", g3n_precision_name(precision), (long long)m,
                 (long long)k, (long long)n, with_apply ? "+apply" : "", worst);
    g3n_packed_matrix_free(&packed);
    free(x);
    free(w);
    free(plain);
    free(fused);
}

static void test_silu_epilogue(void **state)
{
    (void)state;
    const g3n_precision precisions[3] = {G3N_PRECISION_F32, G3N_PRECISION_BF16, G3N_PRECISION_INT8};
    for (int p = 0; p < 3; p++) {
        check_silu(precisions[p], 37, 600, 300, 0);   /* few rows: panel tiles over all rows */
        check_silu(precisions[p], 1000, 130, 70, 0);  /* row blocks */
        check_silu(precisions[p], 200, 130, 70, 1);   /* row-block path, SiLU before the apply */
        check_silu(precisions[p], 5, 33, 7, 0);       /* one short panel */
    }
    for (int set = 0; set < KERNEL_SETS - 1; set++) { /* the others: the portable pass after g3n_matmul, AVX2 */
        if (!use_kernel_set(set))
            continue;
        for (int p = 0; p < 3; p++) {
            check_silu(precisions[p], 37, 600, 300, 0);
            check_silu(precisions[p], 200, 130, 70, 1);
            check_silu(precisions[p], 5, 33, 7, 0);
        }
    }
    restore_kernel_set();
}

static void test_precision_names(void **state)
{
    (void)state;
    g3n_precision p;
    g3n_error err = {{0}};
    assert_int_equal(g3n_precision_parse("bf16", &p, &err), G3N_OK);
    assert_int_equal(p, G3N_PRECISION_BF16);
    assert_int_equal(g3n_precision_parse("f32", &p, &err), G3N_OK);
    assert_int_equal(p, G3N_PRECISION_F32);
    assert_int_equal(g3n_precision_parse("int8", &p, &err), G3N_OK);
    assert_int_equal(p, G3N_PRECISION_INT8);
    assert_int_equal(g3n_precision_parse("fp8", &p, &err), G3N_ERR);
    assert_non_null(strstr(err.message, "fp8"));
    assert_string_equal(g3n_precision_name(G3N_PRECISION_BF16), "bf16");
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_exact_formats), cmocka_unit_test(test_bf16_budget),
        cmocka_unit_test(test_int8_budget),   cmocka_unit_test(test_bf16_is_used),
        cmocka_unit_test(test_repack),        cmocka_unit_test(test_int8_paths_agree),
        cmocka_unit_test(test_fallback),      cmocka_unit_test(test_precision_names),
        cmocka_unit_test(test_silu_epilogue), cmocka_unit_test(test_int8_same_on_every_kernel_set),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
