/* Q8/Q4 block formats (common/kernels/quant.h): every ISA's kernel against a plain
 * double loop over the dequantised weights and activations, the quantisation
 * error against the f32 product (the stated budgets), the gather/combine
 * helpers of the sparse MLP, the transpose, and the cache file (build, map,
 * rebuild on a changed key). */
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
#include "quant.h"
#include "test_util.h"

typedef struct shape {
    int64_t m, k, n;
} shape;

static const shape shapes[] = {{1, 64, 1},    {1, 64, 17},    {2, 128, 33},   {3, 192, 5},    {4, 256, 40},
                               {5, 64, 70},   {7, 512, 19},   {13, 320, 9},   {64, 128, 64},  {1, 2048, 100},
                               {3, 1088, 37}, {9, 1536, 20},  {16, 640, 33},  {11, 1024, 17}, {8, 2112, 5},
                               /* K > 4096 with 8-row slices: the AVX-512 kernel's K blocks (a short last
                                * group, slices of 8 and of 4 rows, an output block of 32 rows and a tail) */
                               {8, 4608, 3},  {9, 5184, 35},  {20, 8192, 40}};

/* Activation value kk of row i (the group layout of quant.h), dequantised. */
static double activation(const g3n_quant_activations *a, int64_t i, int64_t kk)
{
    const int64_t group = kk / 512, within = kk % 512, block = within / 32, index = within % 32;
    const int64_t at = group * a->rows + i; /* group-major */
    const int8_t q = a->values[at * 512 + (index / 4) * 64 + 4 * block + index % 4];
    return (double)q * a->block_scales[at * 16 + block];
}

/* Weights with a spread of magnitudes per block (so the scales matter). */
static float *make_weights(int64_t n, int64_t k, uint64_t seed)
{
    float *w = malloc(sizeof(float) * (size_t)(n * k));
    g3n_test_random_floats(w, n * k, seed);
    for (int64_t i = 0; i < n * k; i++)
        w[i] *= 0.05f * (float)(1 + (i / 32) % 7);
    return w;
}

static g3n_matrix quantize(const float *w, int64_t n, int64_t k, g3n_dtype dtype, void **storage)
{
    g3n_matrix src = {G3N_DTYPE_F32, n, k, (size_t)k * sizeof(float), w};
    *storage = g3n_aligned_alloc(g3n_quant_row_bytes(dtype, k) * (size_t)n);
    return g3n_quantize_matrix(&src, dtype, *storage);
}

static void check_kernel(g3n_dtype dtype, shape s)
{
    float *w = make_weights(s.n, s.k, 11 + (uint64_t)s.n);
    float *x = malloc(sizeof(float) * (size_t)(s.m * s.k));
    float *y = malloc(sizeof(float) * (size_t)(s.m * s.n));
    float *row = malloc(sizeof(float) * (size_t)s.k);
    g3n_test_random_floats(x, s.m * s.k, 3 + (uint64_t)s.k);
    void *storage;
    g3n_matrix q = quantize(w, s.n, s.k, dtype, &storage);
    g3n_matmul(x, s.m, (size_t)s.k, &q, y, (size_t)s.n);
    /* the reference: the activations quantised the same way, dequantised */
    g3n_quant_activations a;
    memset(&a, 0, sizeof(a));
    assert_int_equal(g3n_quant_activations_prepare(&a, x, s.m, (size_t)s.k, s.k, dtype), G3N_OK);
    for (int64_t j = 0; j < s.n; j++) {
        g3n_matrix_row_to_f32(&q, j, row);
        for (int64_t i = 0; i < s.m; i++) {
            double reference = 0.0, magnitude = 0.0;
            for (int64_t kk = 0; kk < s.k; kk++) {
                double xv = activation(&a, i, kk);
                reference += xv * row[kk];
                magnitude += fabs(xv * row[kk]);
            }
            double got = y[i * s.n + j];
            if (fabs(got - reference) > 2e-6 * magnitude + 1e-30)
                fail_msg("isa %s %s m=%lld k=%lld n=%lld: y[%lld][%lld] = %.9g, reference %.9g",
                         g3n_isa_name(g3n_isa_active()), g3n_matrix_dtype_name(dtype), (long long)s.m,
                         (long long)s.k, (long long)s.n, (long long)i, (long long)j, got, reference);
        }
    }
    g3n_quant_activations_free(&a);
    g3n_aligned_free(storage);
    free(w);
    free(x);
    free(y);
    free(row);
}

static void run_kernels(g3n_isa isa)
{
    if (g3n_isa_set(isa) != isa) {
        printf("  (this CPU lacks %s; skipped)\n", g3n_isa_name(isa));
        skip();
    }
    for (size_t i = 0; i < sizeof(shapes) / sizeof(shapes[0]); i++) {
        check_kernel(G3N_DTYPE_Q8, shapes[i]);
        check_kernel(G3N_DTYPE_Q4, shapes[i]);
    }
}

static void test_portable(void **state)
{
    (void)state;
    run_kernels(G3N_ISA_PORTABLE);
}

static void test_avx2(void **state)
{
    (void)state;
    run_kernels(G3N_ISA_AVX2);
}

static void test_avx512(void **state)
{
    (void)state;
    run_kernels(G3N_ISA_AVX512);
}

/* The error budgets of the formats against the exact f32 product: rel-L2 of
 * y over a 64 x 1024 x 256 product of random data. */
static void test_error_budget(void **state)
{
    (void)state;
    g3n_isa_set(g3n_isa_detect());
    const int64_t m = 64, k = 1024, n = 256;
    float *w = make_weights(n, k, 5);
    float *x = malloc(sizeof(float) * (size_t)(m * k));
    float *exact = malloc(sizeof(float) * (size_t)(m * n));
    float *y = malloc(sizeof(float) * (size_t)(m * n));
    g3n_test_random_floats(x, m * k, 9);
    g3n_matrix f = {G3N_DTYPE_F32, n, k, (size_t)k * sizeof(float), w};
    g3n_matmul(x, m, (size_t)k, &f, exact, (size_t)n);
    const g3n_dtype dtypes[2] = {G3N_DTYPE_Q8, G3N_DTYPE_Q4};
    const double budgets[2] = {1e-2, 1.2e-1};
    for (int d = 0; d < 2; d++) {
        void *storage;
        g3n_matrix q = quantize(w, n, k, dtypes[d], &storage);
        g3n_matmul(x, m, (size_t)k, &q, y, (size_t)n);
        double diff = 0.0, norm = 0.0;
        for (int64_t i = 0; i < m * n; i++) {
            diff += ((double)y[i] - exact[i]) * ((double)y[i] - exact[i]);
            norm += (double)exact[i] * exact[i];
        }
        double rel = sqrt(diff / norm);
        printf("  %s: rel-L2 %.3g vs f32 (budget %.3g)\n", g3n_matrix_dtype_name(dtypes[d]), rel, budgets[d]);
        assert_true(rel <= budgets[d]);
        assert_true(rel > 0.0); /* really quantised */
        g3n_aligned_free(storage);
    }
    free(w);
    free(x);
    free(exact);
    free(y);
}

/* Dequantised values sit within half a step of the input for Q8 (step
 * amax/127); Q4 maps the largest magnitude to -8 exactly, so the other sign's
 * extreme may clamp at +7: within one step (amax/8). The layout is quant.h's. */
static void test_roundtrip(void **state)
{
    (void)state;
    const int64_t n = 3, k = 128;
    float *w = make_weights(n, k, 21);
    float row[128];
    for (int d = 0; d < 2; d++) {
        const g3n_dtype dtype = d ? G3N_DTYPE_Q4 : G3N_DTYPE_Q8;
        void *storage;
        g3n_matrix q = quantize(w, n, k, dtype, &storage);
        /* 4 blocks: a short group, so 64 spare bytes at the end */
        assert_int_equal(q.row_stride, dtype == G3N_DTYPE_Q8 ? 64 + 128 + 64 : 64 + 64 + 64);
        assert_int_equal(q.row_stride % 64, 0);
        for (int64_t j = 0; j < n; j++) {
            g3n_matrix_row_to_f32(&q, j, row);
            for (int64_t b = 0; b < k / 32; b++) {
                float amax = 0.0f;
                for (int i = 0; i < 32; i++)
                    amax = fmaxf(amax, fabsf(w[j * k + b * 32 + i]));
                const float step = dtype == G3N_DTYPE_Q8 ? amax / 127.0f : amax / 8.0f;
                for (int i = 0; i < 32; i++)
                    assert_true(fabsf(row[b * 32 + i] - w[j * k + b * 32 + i]) <=
                                (dtype == G3N_DTYPE_Q8 ? 0.5f : 1.0f) * step * 1.01f + 1e-7f);
            }
        }
        g3n_aligned_free(storage);
    }
    assert_int_equal(g3n_quant_row_bytes(G3N_DTYPE_Q8, 1024), 64 + 1024);
    assert_int_equal(g3n_quant_row_bytes(G3N_DTYPE_Q4, 1024), 64 + 512);
    assert_false(g3n_quant_supported(G3N_DTYPE_Q8, 96));
    assert_true(g3n_quant_supported(G3N_DTYPE_Q4, 2048));
    free(w);
}

/* gather = selected outputs of the full product; combine = x·W with a sparse x
 * through the transposed matrix. For bf16 and both quantised formats. */
static void test_gather_combine(void **state)
{
    (void)state;
    const int64_t n = 96, k = 640; /* a full group and a short one of 4 blocks */
    float *w = make_weights(n, k, 31);
    float x[640], full[96], picked[5], sparse[96], combined[640], reference[640];
    const int32_t rows[5] = {0, 7, 8, 50, 95};
    const float coefs[5] = {0.5f, -1.0f, 2.0f, 0.25f, 1.5f};
    g3n_test_random_floats(x, k, 41);
    uint16_t *bf = malloc(sizeof(uint16_t) * (size_t)(n * k));
    for (int64_t i = 0; i < n * k; i++)
        bf[i] = g3n_f32_to_bf16(w[i]);
    g3n_matrix matrices[3];
    void *storage[3] = {NULL, NULL, NULL};
    matrices[0] = (g3n_matrix){G3N_DTYPE_BF16, n, k, (size_t)k * 2, bf};
    matrices[1] = quantize(w, n, k, G3N_DTYPE_Q8, &storage[1]);
    matrices[2] = quantize(w, n, k, G3N_DTYPE_Q4, &storage[2]);
    for (int level = 0; level < 3 * 3; level++) {
        const int t = level % 3;
        g3n_isa_set((g3n_isa)(level / 3));
        g3n_matmul(x, 1, (size_t)k, &matrices[t], full, (size_t)n);
        g3n_matmul_gather(x, &matrices[t], rows, 5, picked);
        for (int i = 0; i < 5; i++)
            assert_true(fabsf(picked[i] - full[rows[i]]) <= 1e-5f * (1.0f + fabsf(full[rows[i]])));
        /* combine: Σ coefs[i] W[rows[i]] = sparse vector · W */
        memset(sparse, 0, sizeof(sparse));
        for (int i = 0; i < 5; i++)
            sparse[rows[i]] = coefs[i];
        g3n_matrix_combine_rows(&matrices[t], rows, coefs, 5, combined);
        float row[640];
        memset(reference, 0, sizeof(reference));
        for (int64_t j = 0; j < n; j++) {
            g3n_matrix_row_to_f32(&matrices[t], j, row);
            for (int64_t c = 0; c < k; c++)
                reference[c] += sparse[j] * row[c];
        }
        for (int64_t c = 0; c < k; c++)
            assert_true(fabsf(combined[c] - reference[c]) <= 1e-5f * (1.0f + fabsf(reference[c])));
    }
    g3n_isa_set(g3n_isa_detect());
    for (int t = 0; t < 3; t++)
        g3n_aligned_free(storage[t]);
    /* transpose: row c of Wᵀ is column c of W */
    uint16_t *bt = malloc(sizeof(uint16_t) * (size_t)(n * k));
    g3n_matrix t = g3n_transpose_matrix(&matrices[0], bt);
    assert_int_equal(t.rows, k);
    assert_int_equal(t.cols, n);
    for (int64_t r = 0; r < n; r++)
        for (int64_t c = 0; c < k; c++)
            assert_int_equal(bt[c * n + r], bf[r * k + c]);
    free(bt);
    free(bf);
    free(w);
}

static void test_cache_file(void **state)
{
    (void)state;
    char dir[512], path[1024];
    g3n_test_temp_dir(dir, sizeof(dir));
    snprintf(path, sizeof(path), "%s/cache.bin", dir);
    const int64_t n = 40, k = 128;
    float *w = make_weights(n, k, 77);
    g3n_matrix src = {G3N_DTYPE_F32, n, k, (size_t)k * sizeof(float), w};
    g3n_quant_request requests[3] = {
        {"a", src, G3N_DTYPE_Q8, 0, {0}}, {"b", src, G3N_DTYPE_Q4, 0, {0}}, {"a.T", src, G3N_DTYPE_F32, 1, {0}}};
    g3n_quant_cache *cache = NULL;
    g3n_quant_cache_info info;
    g3n_error err;
    assert_int_equal(g3n_quant_cache_open(&cache, path, "key 1", requests, 3, &info, &err), G3N_OK);
    assert_int_equal(info.built, 1);
    assert_int_equal(info.persisted, 1);
    float first[128], second[128];
    g3n_matrix_row_to_f32(&requests[1].result, 7, first);
    assert_int_equal(requests[2].result.rows, k);
    assert_true(((const float *)requests[2].result.data)[5 * n + 3] == w[3 * k + 5]);
    g3n_quant_cache_close(cache);
    /* same key: mapped, not rebuilt; same values */
    assert_int_equal(g3n_quant_cache_open(&cache, path, "key 1", requests, 3, &info, &err), G3N_OK);
    assert_int_equal(info.built, 0);
    g3n_matrix_row_to_f32(&requests[1].result, 7, second);
    assert_memory_equal(first, second, sizeof(first));
    g3n_quant_cache_close(cache);
    /* another key: rebuilt */
    assert_int_equal(g3n_quant_cache_open(&cache, path, "key 2", requests, 3, &info, &err), G3N_OK);
    assert_int_equal(info.built, 1);
    g3n_quant_cache_close(cache);
    /* memory only */
    assert_int_equal(g3n_quant_cache_open(&cache, NULL, "key", requests, 3, &info, &err), G3N_OK);
    assert_int_equal(info.persisted, 0);
    g3n_matrix_row_to_f32(&requests[1].result, 7, second);
    assert_memory_equal(first, second, sizeof(first));
    g3n_quant_cache_close(cache);
    /* a matrix that cannot be quantised is an error naming it */
    g3n_matrix odd = {G3N_DTYPE_F32, 2, 96, 96 * sizeof(float), w};
    g3n_quant_request bad = {"odd.weight", odd, G3N_DTYPE_Q8, 0, {0}};
    assert_int_equal(g3n_quant_cache_open(&cache, NULL, "key", &bad, 1, &info, &err), G3N_ERR);
    assert_non_null(strstr(err.message, "odd.weight"));
    g3n_weight_format format;
    assert_int_equal(g3n_weight_format_parse("q4", &format, &err), G3N_OK);
    assert_int_equal(format, G3N_WEIGHTS_Q4);
    assert_int_equal(g3n_weight_format_parse("int3", &format, &err), G3N_ERR);
    g3n_test_remove_tree(dir);
    free(w);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_portable),      cmocka_unit_test(test_avx2),
        cmocka_unit_test(test_avx512),        cmocka_unit_test(test_error_budget),
        cmocka_unit_test(test_roundtrip),     cmocka_unit_test(test_gather_combine),
        cmocka_unit_test(test_cache_file),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
