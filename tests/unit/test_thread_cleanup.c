/* g3n_thread_cleanup_arm: the release function runs once in each thread that
 * armed it, when that thread ends (not in threads that did not arm it); and
 * the kernels' per-thread buffers go with their threads: threads that ran
 * quantised and bf16-product matmuls and packed GEMMs exit, and the sanitizer
 * build's LeakSanitizer finds nothing left (it runs this test). */
#include <pthread.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>

#include <cmocka.h>

#include "gemm_packed.h"
#include "matmul.h"
#include "quant.h"
#include "tensor.h"
#include "test_util.h"
#include "thread_cleanup.h"

static atomic_int releases;
static _Thread_local int armed_here;

static void count_release(void)
{
    if (armed_here)
        atomic_fetch_add(&releases, 1);
}

static void *arming_thread(void *arg)
{
    const int arm = *(const int *)arg;
    if (arm) {
        armed_here = 1;
        g3n_thread_cleanup_arm(count_release);
        g3n_thread_cleanup_arm(count_release); /* twice: still one release */
    }
    return NULL;
}

static void test_release_runs_in_armed_threads(void **state)
{
    (void)state;
    atomic_store(&releases, 0);
    pthread_t threads[5];
    int arm[5] = {1, 0, 1, 1, 0};
    for (int i = 0; i < 5; i++)
        assert_int_equal(pthread_create(&threads[i], NULL, arming_thread, &arm[i]), 0);
    for (int i = 0; i < 5; i++)
        assert_int_equal(pthread_join(threads[i], NULL), 0);
    assert_int_equal(atomic_load(&releases), 3);
}

typedef struct product_job {
    const g3n_matrix *q8, *bf16;
    const g3n_packed_matrix *packed;
    const float *x;
    float *y;
    int64_t m, k, n;
} product_job;

static void *product_thread(void *arg)
{
    product_job *job = arg;
    g3n_matmul(job->x, job->m, (size_t)job->k, job->q8, job->y, (size_t)job->n);
    g3n_matmul(job->x, job->m, (size_t)job->k, job->bf16, job->y, (size_t)job->n);
    g3n_gemm_packed(job->x, job->m, (size_t)job->k, job->packed, job->y, (size_t)job->n, NULL);
    g3n_gemm_packed(job->x, 2, (size_t)job->k, job->packed, job->y, (size_t)job->n, NULL); /* few rows */
    return NULL;
}

static void test_kernel_buffers_leave_with_their_thread(void **state)
{
    (void)state;
    const int64_t m = 24, k = 128, n = 64;
    float *x = malloc(sizeof(float) * (size_t)(m * k)), *w = malloc(sizeof(float) * (size_t)(n * k));
    float *y = malloc(sizeof(float) * (size_t)(m * n));
    uint16_t *w_bf16 = malloc(sizeof(uint16_t) * (size_t)(n * k));
    g3n_test_random_floats(x, m * k, 1);
    g3n_test_random_floats(w, n * k, 2);
    for (int64_t i = 0; i < n * k; i++)
        w_bf16[i] = g3n_f32_to_bf16(w[i]);
    g3n_matrix f32 = {G3N_DTYPE_F32, n, k, (size_t)k * sizeof(float), w};
    g3n_matrix bf16 = {G3N_DTYPE_BF16, n, k, (size_t)k * sizeof(uint16_t), w_bf16};
    bf16.bf16_products = 1;
    void *q8_storage = g3n_aligned_alloc(g3n_quant_row_bytes(G3N_DTYPE_Q8, k) * (size_t)n);
    g3n_matrix q8 = g3n_quantize_matrix(&f32, G3N_DTYPE_Q8, q8_storage);
    g3n_packed_matrix packed = {0};
    g3n_error err;
    assert_int_equal(g3n_packed_matrix_pack(&packed, &f32, G3N_PRECISION_INT8, &err), G3N_OK);
    product_job job = {&q8, &bf16, &packed, x, y, m, k, n};
    for (int round = 0; round < 3; round++) {
        pthread_t thread;
        assert_int_equal(pthread_create(&thread, NULL, product_thread, &job), 0);
        assert_int_equal(pthread_join(thread, NULL), 0);
    }
    for (int64_t i = 0; i < m * n; i++)
        assert_true(y[i] == y[i]); /* computed (no NaN) */
    g3n_packed_matrix_free(&packed);
    g3n_aligned_free(q8_storage);
    free(x);
    free(w);
    free(y);
    free(w_bf16);
}

int main(void)
{
    const struct CMUnitTest tests[] = {cmocka_unit_test(test_release_runs_in_armed_threads),
                                       cmocka_unit_test(test_kernel_buffers_leave_with_their_thread)};
    return cmocka_run_group_tests(tests, NULL, NULL);
}
