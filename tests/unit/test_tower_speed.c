/* The towers' fast paths (issue 8) against the goldens, with their stated
 * budgets: bf16 compute - vision tower and embeddings rel-L2 <=
 * G3N_VISION_BF16_REL_L2 (1e-2) on vision-tiny and vision-full, audio encoder
 * output and embeddings rel-L2 <= G3N_AUDIO_BF16_REL_L2 (1e-2) on audio-tiny
 * and audio-wide; int8 compute - audio within 5e-2, vision within 1e-1 (a
 * coarse path: per-row activation scales over 640..3840 channels). The
 * lines the checks print (rel_l2=...) are the measured errors. Also: the
 * exact path is what a default load gives, the fast path really differs from
 * it (so it is in use), and both precisions give the same tokens' shapes.
 * vision-full (294M parameters) is slow: skipped in sanitizer builds, as the
 * full fixture cases are. ctest runs this program twice on an AVX-512 host,
 * the second time under G3N_ISA=avx2 (test_tower_speed_avx2). */
#include <math.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "audio_check.h"
#include "check.h"
#include "gemm_packed.h"
#include "test_util.h"
#include "vision_check.h"
#include "vision_encoder.h"

#if defined(__SANITIZE_ADDRESS__)
#define SANITIZED 1
#else
#define SANITIZED 0
#endif

typedef int (*check_fn)(g3n_check_case *c, g3n_precision precision, g3n_error *err);

static void run_case(const char *name, check_fn check, g3n_precision precision, int expected_lines)
{
    g3n_check_case c;
    g3n_test_case_open(&c, name, NULL);
    g3n_error err = {{0}};
    int rc = check(&c, precision, &err);
    if (rc != G3N_OK)
        fail_msg("%s (%s): %s", name, g3n_precision_name(precision), err.message);
    printf("-- %s, %s compute: %d passed, %d failed\n", name, g3n_precision_name(precision), c.passed, c.failed);
    assert_int_equal(c.failed, 0);
    assert_true(c.passed >= expected_lines);
    g3n_check_case_close(&c);
}

static void test_vision_tiny_bf16(void **state)
{
    (void)state;
    run_case("vision-tiny", g3n_vision_check_case, G3N_PRECISION_BF16, 2);
}

static void test_audio_tiny_bf16(void **state)
{
    (void)state;
    run_case("audio-tiny", g3n_audio_check_case, G3N_PRECISION_BF16, 6);
}

static void test_audio_wide_bf16(void **state)
{
    (void)state;
    run_case("audio-wide", g3n_audio_check_case, G3N_PRECISION_BF16, 6);
}

static void test_vision_tiny_int8(void **state)
{
    (void)state;
    run_case("vision-tiny", g3n_vision_check_case, G3N_PRECISION_INT8, 2);
}

static void test_audio_tiny_int8(void **state)
{
    (void)state;
    run_case("audio-tiny", g3n_audio_check_case, G3N_PRECISION_INT8, 6);
}

static void test_audio_wide_int8(void **state)
{
    (void)state;
    run_case("audio-wide", g3n_audio_check_case, G3N_PRECISION_INT8, 6);
}

static void test_vision_full_bf16(void **state)
{
    (void)state;
    /* (without AVX-512 bf16 compute is the f32 FMA kernel on bf16 panels, the exact path's kernel, ~4x
     * AVX512-BF16's time on this 294M-parameter case: vision-tiny covers it there) */
    if (SANITIZED || g3n_isa_active() < G3N_ISA_AVX512)
        skip();
    run_case("vision-full", g3n_vision_check_case, G3N_PRECISION_BF16, 2);
}

/* A default load is exact; G3N_TOWER_PRECISION picks the fast path (the
 * daemons' switch); the fast tower differs from the exact one where the CPU
 * has AVX512-BF16, by less than the budget. */
static void test_precision_switch(void **state)
{
    (void)state;
    g3n_check_case c;
    g3n_test_case_open(&c, "vision-tiny", NULL);
    g3n_error err = {{0}};
    g3n_weights *weights = NULL;
    assert_int_equal(g3n_weights_open_synth(&weights, 5, G3N_DTYPE_BF16, &err), G3N_OK);
    unsetenv("G3N_TOWER_PRECISION");
    assert_int_equal(g3n_tower_precision_default(), G3N_PRECISION_F32);
    setenv("G3N_TOWER_PRECISION", "bf16", 1);
    assert_int_equal(g3n_tower_precision_default(), G3N_PRECISION_BF16);
    g3n_vision_encoder *fast = NULL, *exact = NULL;
    assert_int_equal(g3n_vision_encoder_load(&fast, &c.config, weights, &err), G3N_OK);
    unsetenv("G3N_TOWER_PRECISION");
    assert_int_equal(g3n_vision_encoder_load(&exact, &c.config, weights, &err), G3N_OK);
    assert_int_equal(g3n_vision_encoder_precision(fast), G3N_PRECISION_BF16);
    assert_int_equal(g3n_vision_encoder_precision(exact), G3N_PRECISION_F32);
    const g3n_vision_config *vc = g3n_vision_encoder_config(exact);
    int side = 256; /* any size >= 32 works; small keeps the test quick */
    int64_t count = vc->soft_tokens * vc->hidden_size;
    float *pixels = malloc(sizeof(float) * 3 * (size_t)side * (size_t)side);
    float *a = malloc(sizeof(float) * (size_t)count), *b = malloc(sizeof(float) * (size_t)count);
    g3n_test_random_floats(pixels, 3 * (int64_t)side * side, 9);
    for (int64_t i = 0; i < 3 * (int64_t)side * side; i++)
        pixels[i] = 0.5f + 0.5f * pixels[i];
    assert_int_equal(g3n_vision_encoder_tower(exact, pixels, 1, side, side, a, &err), G3N_OK);
    assert_int_equal(g3n_vision_encoder_tower(fast, pixels, 1, side, side, b, &err), G3N_OK);
    double diff = 0.0, norm = 0.0;
    for (int64_t i = 0; i < count; i++) {
        diff += ((double)a[i] - b[i]) * ((double)a[i] - b[i]);
        norm += (double)a[i] * a[i];
    }
    double rel = sqrt(diff / norm);
    printf("-- vision-tiny weights at %dx%d, noise pixels: bf16 tower vs f32 tower rel-L2 %.3e\n", side, side, rel);
    assert_true(rel < 5e-2); /* (the budget is stated on the goldens' images, above; noise input is harder) */
    if (g3n_isa_active() >= G3N_ISA_AVX512)
        assert_true(rel > 1e-6);
    free(pixels);
    free(a);
    free(b);
    g3n_vision_encoder_free(fast);
    g3n_vision_encoder_free(exact);
    g3n_weights_close(weights);
    g3n_check_case_close(&c);
}

static void test_vision_full_int8(void **state)
{
    (void)state;
    if (SANITIZED)
        skip();
    run_case("vision-full", g3n_vision_check_case, G3N_PRECISION_INT8, 2);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_precision_switch), cmocka_unit_test(test_vision_tiny_bf16),
        cmocka_unit_test(test_audio_tiny_bf16),  cmocka_unit_test(test_audio_wide_bf16),
        cmocka_unit_test(test_vision_tiny_int8), cmocka_unit_test(test_audio_tiny_int8),
        cmocka_unit_test(test_audio_wide_int8),  cmocka_unit_test(test_vision_full_bf16),
        cmocka_unit_test(test_vision_full_int8),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
