/* g3n_matmul against a plain double-precision reference loop, for every ISA
 * this CPU has, every weight dtype, odd sizes, both the dot (small m) and the
 * tiled GEMM (large m) paths, and strided rows. */
#include <math.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "matmul.h"
#include "test_util.h"

typedef struct shape {
    int64_t m, k, n;
} shape;

static const shape shapes[] = {
    {1, 1, 1}, {1, 7, 3}, {1, 33, 65}, {2, 17, 31}, {3, 255, 17}, {4, 64, 100}, {5, 300, 70},
    {11, 19, 45}, {12, 16, 32}, {13, 257, 33}, {37, 513, 97}, {64, 128, 64}, {100, 31, 15}, {7, 1000, 3},
};

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
        half[i] = dtype == G3N_DTYPE_BF16 ? g3n_f32_to_bf16(values[i]) : g3n_f32_to_f16(values[i]);
        values[i] = dtype == G3N_DTYPE_BF16 ? g3n_bf16_to_f32(half[i]) : g3n_f16_to_f32(half[i]);
    }
    *stored = half;
    *exact = values;
}

static void check_one(g3n_dtype dtype, shape s, size_t x_pad, size_t y_pad)
{
    const size_t x_stride = (size_t)s.k + x_pad, y_stride = (size_t)s.n + y_pad;
    float *x = malloc(sizeof(float) * x_stride * (size_t)s.m);
    float *y = malloc(sizeof(float) * y_stride * (size_t)s.m);
    g3n_test_random_floats(x, (int64_t)(x_stride * (size_t)s.m), 7 + (uint64_t)s.k);
    for (size_t i = 0; i < y_stride * (size_t)s.m; i++)
        y[i] = 12345.0f; /* sentinel for the padding */
    void *stored;
    float *exact;
    make_weights(dtype, s.n, s.k, 3 + (uint64_t)s.n, &stored, &exact);
    g3n_matrix w = {dtype, s.n, s.k, (size_t)s.k * g3n_dtype_size(dtype), stored};
    g3n_matmul(x, s.m, x_stride, &w, y, y_stride);
    for (int64_t i = 0; i < s.m; i++) {
        for (int64_t j = 0; j < s.n; j++) {
            double reference = 0.0, magnitude = 0.0;
            for (int64_t kk = 0; kk < s.k; kk++) {
                reference += (double)x[(size_t)i * x_stride + (size_t)kk] * exact[j * s.k + kk];
                magnitude += fabs((double)x[(size_t)i * x_stride + (size_t)kk] * exact[j * s.k + kk]);
            }
            double got = y[(size_t)i * y_stride + (size_t)j];
            double limit = 1e-6 * magnitude + 1e-30;
            if (fabs(got - reference) > limit)
                fail_msg("isa %s dtype %s m=%lld k=%lld n=%lld: y[%lld][%lld] = %.9g, reference %.9g",
                         g3n_isa_name(g3n_isa_active()), g3n_dtype_name(dtype), (long long)s.m, (long long)s.k,
                         (long long)s.n, (long long)i, (long long)j, got, reference);
        }
        for (size_t j = (size_t)s.n; j < y_stride; j++)
            assert_true(y[(size_t)i * y_stride + j] == 12345.0f); /* nothing written past n */
    }
    free(x);
    free(y);
    free(stored);
    free(exact);
}

static void run_all_shapes(g3n_isa isa)
{
    if (g3n_isa_set(isa) != isa) {
        printf("  (this CPU lacks %s; skipped)\n", g3n_isa_name(isa));
        skip();
    }
    const g3n_dtype dtypes[3] = {G3N_DTYPE_F32, G3N_DTYPE_BF16, G3N_DTYPE_F16};
    for (int d = 0; d < 3; d++)
        for (size_t i = 0; i < sizeof(shapes) / sizeof(shapes[0]); i++) {
            check_one(dtypes[d], shapes[i], 0, 0);
            check_one(dtypes[d], shapes[i], 5, 3);
        }
}

static void test_portable(void **state)
{
    (void)state;
    run_all_shapes(G3N_ISA_PORTABLE);
}

static void test_avx2(void **state)
{
    (void)state;
    run_all_shapes(G3N_ISA_AVX2);
}

static void test_avx512(void **state)
{
    (void)state;
    run_all_shapes(G3N_ISA_AVX512);
}

/* bf16_products: on AVX-512, m >= 16 rounds x to bf16 (nearest even) and the
 * sum is f32 (vdpbf16ps): within 1e-5 of a double loop over the rounded x and
 * the stored weights; below 16 rows, and on the other ISAs, x stays f32 (the
 * exact tolerance of check_one holds). Odd k, row tails, columns past a panel,
 * several 512-input chunks, strided x and y. */
static void check_bf16_products(shape s, size_t x_pad, size_t y_pad, int rounded)
{
    const size_t x_stride = (size_t)s.k + x_pad, y_stride = (size_t)s.n + y_pad;
    float *x = malloc(sizeof(float) * x_stride * (size_t)s.m);
    float *y = malloc(sizeof(float) * y_stride * (size_t)s.m);
    g3n_test_random_floats(x, (int64_t)(x_stride * (size_t)s.m), 11 + (uint64_t)s.k);
    for (size_t i = 0; i < y_stride * (size_t)s.m; i++)
        y[i] = 12345.0f;
    void *stored;
    float *exact;
    make_weights(G3N_DTYPE_BF16, s.n, s.k, 5 + (uint64_t)s.n, &stored, &exact);
    g3n_matrix w = {G3N_DTYPE_BF16, s.n, s.k, (size_t)s.k * sizeof(uint16_t), stored};
    w.bf16_products = 1;
    g3n_matmul(x, s.m, x_stride, &w, y, y_stride);
    for (int64_t i = 0; i < s.m; i++) {
        for (int64_t j = 0; j < s.n; j++) {
            double reference = 0.0, magnitude = 0.0;
            for (int64_t kk = 0; kk < s.k; kk++) {
                float xv = x[(size_t)i * x_stride + (size_t)kk];
                if (rounded)
                    xv = g3n_bf16_to_f32(g3n_f32_to_bf16(xv));
                reference += (double)xv * exact[j * s.k + kk];
                magnitude += fabs((double)xv * exact[j * s.k + kk]);
            }
            const double got = y[(size_t)i * y_stride + (size_t)j];
            if (fabs(got - reference) > (rounded ? 1e-5 : 1e-6) * magnitude + 1e-30)
                fail_msg("bf16 products m=%lld k=%lld n=%lld: y[%lld][%lld] = %.9g, reference %.9g", (long long)s.m,
                         (long long)s.k, (long long)s.n, (long long)i, (long long)j, got, reference);
        }
        for (size_t j = (size_t)s.n; j < y_stride; j++)
            assert_true(y[(size_t)i * y_stride + j] == 12345.0f);
    }
    free(x);
    free(y);
    free(stored);
    free(exact);
}

static void test_bf16_products(void **state)
{
    (void)state;
    const shape large[] = {{16, 64, 32}, {17, 33, 31}, {37, 1029, 97}, {64, 2048, 70}, {23, 1, 5}};
    const int have_avx512 = g3n_isa_set(G3N_ISA_AVX512) == G3N_ISA_AVX512;
    for (size_t i = 0; i < sizeof(large) / sizeof(large[0]); i++) {
        check_bf16_products(large[i], 0, 0, have_avx512);
        check_bf16_products(large[i], 3, 7, have_avx512);
    }
    check_bf16_products((shape){15, 300, 40}, 1, 1, 0); /* few rows: x stays f32 */
    if (g3n_isa_set(G3N_ISA_AVX2) == G3N_ISA_AVX2)
        check_bf16_products((shape){37, 513, 97}, 0, 0, 0); /* no AVX512-BF16: x stays f32 */
    g3n_isa_set(G3N_ISA_AVX512);
}

static void test_row_helpers(void **state)
{
    (void)state;
    g3n_isa_set(g3n_isa_detect());
    const int64_t n = 5, k = 37;
    void *stored;
    float *exact;
    make_weights(G3N_DTYPE_BF16, n, k, 99, &stored, &exact);
    g3n_matrix w = {G3N_DTYPE_BF16, n, k, (size_t)k * 2, stored};
    float x[37], row[37];
    g3n_test_random_floats(x, k, 5);
    g3n_matrix_row_to_f32(&w, 3, row);
    double reference = 0.0;
    for (int64_t i = 0; i < k; i++) {
        assert_true(row[i] == exact[3 * k + i]);
        reference += (double)x[i] * row[i];
    }
    assert_true(fabs(g3n_matrix_row_dot(&w, 3, x) - reference) < 1e-5);
    g3n_matrix tail = g3n_matrix_rows(&w, 2, 3);
    assert_int_equal(tail.rows, 3);
    g3n_matrix_row_to_f32(&tail, 1, row);
    assert_true(row[0] == exact[3 * k]);
    free(stored);
    free(exact);
}

/* The format table: every matrix dtype has a row that a product can run on at
 * every level (stored formats: the portable loop needs only to_f32; quantised
 * ones need a quant kernel at each level), tensor-only dtypes have none, and
 * a quantised dtype cannot be viewed from a tensor. */
static void test_format_table(void **state)
{
    (void)state;
    const g3n_dtype matrix_dtypes[] = {G3N_DTYPE_F32, G3N_DTYPE_BF16, G3N_DTYPE_F16, G3N_DTYPE_Q8, G3N_DTYPE_Q4};
    const char *names[] = {"F32", "BF16", "F16", "Q8", "Q4"};
    for (int d = 0; d < 5; d++) {
        const g3n_matrix_format *f = g3n_matrix_format_of(matrix_dtypes[d]);
        assert_non_null(f);
        assert_string_equal(f->name, names[d]);
        assert_string_equal(g3n_matrix_dtype_name(matrix_dtypes[d]), names[d]);
        assert_non_null(f->to_f32);
        assert_true(f->block >= 1 && f->block_bytes >= 1);
        for (int isa = 0; isa < G3N_ISA_COUNT; isa++) {
            if (f->quantised)
                assert_non_null(f->kernels[isa].quant_dot);
            else
                assert_true(!f->kernels[isa].gemm || f->kernels[isa].gemm_panel > 0);
        }
    }
    assert_null(g3n_matrix_format_of(G3N_DTYPE_I32));
    assert_null(g3n_matrix_format_of(G3N_DTYPE_U8));
    assert_null(g3n_matrix_format_of((g3n_dtype)G3N_DTYPE_COUNT));
    assert_null(g3n_matrix_format_of((g3n_dtype)-1));
    assert_null(g3n_matrix_format_of(G3N_MATRIX_DTYPE_END));
    /* the numbers weight cache files store */
    assert_int_equal((int)G3N_DTYPE_Q8, G3N_DTYPE_COUNT + 1);
    assert_int_equal((int)G3N_DTYPE_Q4, G3N_DTYPE_COUNT + 2);
    int32_t values[4] = {0};
    g3n_tensor t;
    g3n_matrix m;
    g3n_error err = {0};
    g3n_tensor_view(&t, G3N_DTYPE_I32, 1, (const int64_t[]){4}, values);
    assert_int_not_equal(g3n_matrix_from_tensor(&m, &t, &err), G3N_OK);
    assert_non_null(strstr(err.message, "I32"));
}

static void test_half_conversions(void **state)
{
    (void)state;
    /* round to nearest even, and exact values survive */
    assert_true(g3n_bf16_to_f32(g3n_f32_to_bf16(1.0f)) == 1.0f);
    assert_int_equal(g3n_f32_to_bf16(1.00390625f), 0x3f80); /* halfway: to even */
    assert_int_equal(g3n_f32_to_bf16(1.01171875f), 0x3f82); /* halfway: to even (up) */
    assert_true(g3n_f16_to_f32(g3n_f32_to_f16(-2.5f)) == -2.5f);
    assert_true(g3n_f16_to_f32(0x0001) == 5.9604644775390625e-08f);
    assert_int_equal(g3n_f32_to_f16(65520.0f), 0x7c00);
    assert_int_equal(g3n_f32_to_f16(1e-8f), 0x0000);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_portable),      cmocka_unit_test(test_avx2),
        cmocka_unit_test(test_avx512),        cmocka_unit_test(test_row_helpers),
        cmocka_unit_test(test_half_conversions), cmocka_unit_test(test_bf16_products),
        cmocka_unit_test(test_format_table),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
