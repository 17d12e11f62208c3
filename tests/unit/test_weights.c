/* Synthetic weights and weight sources: synth matches the fixture generator
 * bit for bit, the mm-tiny Hugging Face checkpoint (bf16 shards + index)
 * reads back equal to synth(seed 41) for every tensor, and the checkpoint and
 * synth sources answer the same way, errors included. */
#include <math.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "safetensors.h"
#include "synth.h"
#include "test_util.h"
#include "weights.h"

static void test_synth_selftest_golden(void **state)
{
    (void)state;
    char path[1024];
    g3n_safetensors_file *golden;
    g3n_error err = {{0}};
    assert_int_equal(
        g3n_safetensors_open(&golden, g3n_test_fixture("synth-selftest/golden.safetensors", path, sizeof(path)), &err),
        G3N_OK);
    assert_int_equal(g3n_safetensors_count(golden), 4);
    for (int i = 0; i < g3n_safetensors_count(golden); i++) {
        const g3n_safetensors_entry *e = g3n_safetensors_entry_at(golden, i);
        g3n_tensor t;
        assert_int_equal(g3n_safetensors_get(golden, e->name, &t, &err), G3N_OK);
        int64_t n = g3n_tensor_numel(&t);
        float *values = malloc(sizeof(float) * (size_t)n);
        uint16_t *half = malloc(sizeof(uint16_t) * (size_t)n);
        g3n_synth_fill_f32(e->name, e->ndim, e->shape, 1234, 0, n, values);
        g3n_synth_fill_bf16(e->name, e->ndim, e->shape, 1234, 0, n, half);
        assert_memory_equal(values, t.data, sizeof(float) * (size_t)n);
        for (int64_t j = 0; j < n; j++)
            assert_true(g3n_bf16_to_f32(half[j]) == values[j]); /* exact in bf16 */
        /* a window of the stream equals the same slice of the whole */
        if (n > 2) {
            float window[2];
            g3n_synth_fill_f32(e->name, e->ndim, e->shape, 1234, 1, 2, window);
            assert_memory_equal(window, values + 1, sizeof(window));
        }
        free(values);
        free(half);
    }
    g3n_safetensors_close(golden);
}

static void test_mm_tiny_checkpoint_equals_synth(void **state)
{
    (void)state;
    char path[1024];
    g3n_checkpoint *checkpoint;
    g3n_error err = {{0}};
    assert_int_equal(
        g3n_checkpoint_open(&checkpoint, g3n_test_fixture("mm-tiny/hf-checkpoint", path, sizeof(path)), &err),
        G3N_OK);
    const int count = g3n_checkpoint_count(checkpoint);
    assert_true(count > 1000);
    int64_t checked = 0;
    for (int i = 0; i < count; i++) {
        const g3n_safetensors_entry *e = g3n_checkpoint_entry_at(checkpoint, i);
        g3n_tensor t;
        assert_int_equal(g3n_checkpoint_get(checkpoint, e->name, &t, &err), G3N_OK);
        assert_int_equal(t.dtype, G3N_DTYPE_BF16);
        int64_t n = g3n_tensor_numel(&t);
        uint16_t *expected = malloc(sizeof(uint16_t) * (size_t)(n ? n : 1));
        g3n_synth_fill_bf16(e->name, e->ndim, e->shape, 41, 0, n, expected);
        if (memcmp(expected, t.data, sizeof(uint16_t) * (size_t)n) != 0)
            fail_msg("tensor %s differs from synth(seed 41)", e->name);
        free(expected);
        checked += n;
    }
    printf("  %d tensors, %lld values equal to synth(41)\n", count, (long long)checked);
    g3n_checkpoint_close(checkpoint);
}

static void test_sources_agree(void **state)
{
    (void)state;
    char path[1024];
    g3n_weights *from_checkpoint, *from_synth;
    g3n_error err = {{0}};
    assert_int_equal(g3n_weights_open_checkpoint(&from_checkpoint,
                                                 g3n_test_fixture("mm-tiny/hf-checkpoint", path, sizeof(path)), &err),
                     G3N_OK);
    assert_int_equal(g3n_weights_open_synth(&from_synth, 41, G3N_DTYPE_BF16, &err), G3N_OK);
    const char *name = "model.language_model.layers.3.mlp.gate_proj.weight";
    const int64_t shape[2] = {128, 64};
    g3n_tensor a, b;
    assert_int_equal(g3n_weights_get(from_checkpoint, name, 2, shape, &a, &err), G3N_OK);
    assert_int_equal(g3n_weights_get(from_synth, name, 2, shape, &b, &err), G3N_OK);
    assert_int_equal(a.dtype, b.dtype);
    assert_memory_equal(a.data, b.data, 128 * 64 * 2);
    /* the second request returns the same cached data */
    g3n_tensor again;
    assert_int_equal(g3n_weights_get(from_synth, name, 2, shape, &again, &err), G3N_OK);
    assert_ptr_equal(again.data, b.data);

    const char *norm = "model.language_model.layers.3.input_layernorm.weight";
    const int64_t norm_shape[1] = {64};
    const float *fa, *fb;
    assert_int_equal(g3n_weights_get_f32(from_checkpoint, norm, 1, norm_shape, &fa, &err), G3N_OK);
    assert_int_equal(g3n_weights_get_f32(from_synth, norm, 1, norm_shape, &fb, &err), G3N_OK);
    assert_memory_equal(fa, fb, sizeof(float) * 64);
    assert_true(fabsf(fa[0] - 1.0f) <= 0.125f);

    /* errors name the tensor */
    const int64_t wrong[2] = {64, 128};
    assert_int_equal(g3n_weights_get(from_checkpoint, name, 2, wrong, &a, &err), G3N_ERR);
    assert_non_null(strstr(err.message, name));
    assert_non_null(strstr(err.message, "[128, 64]"));
    assert_int_equal(g3n_weights_get(from_checkpoint, "model.no_such.weight", 1, norm_shape, &a, &err), G3N_ERR);
    assert_non_null(strstr(err.message, "model.no_such.weight"));
    assert_false(g3n_weights_has(from_checkpoint, "model.no_such.weight"));
    assert_true(g3n_weights_has(from_checkpoint, name));
    assert_int_equal(g3n_weights_get(from_synth, name, 2, wrong, &a, &err), G3N_ERR);
    assert_non_null(strstr(err.message, name));
    g3n_weights_close(from_checkpoint);
    g3n_weights_close(from_synth);
}

static void test_synth_spec(void **state)
{
    (void)state;
    char config[256];
    uint64_t seed;
    g3n_error err = {{0}};
    assert_int_equal(g3n_parse_synth_spec("a/b:c/config.json:41", config, sizeof(config), &seed, &err), G3N_OK);
    assert_string_equal(config, "a/b:c/config.json");
    assert_int_equal(seed, 41);
    assert_int_equal(g3n_parse_synth_spec("config.json", config, sizeof(config), &seed, &err), G3N_ERR);
    assert_int_equal(g3n_parse_synth_spec("config.json:x", config, sizeof(config), &seed, &err), G3N_ERR);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_synth_selftest_golden),
        cmocka_unit_test(test_mm_tiny_checkpoint_equals_synth),
        cmocka_unit_test(test_sources_agree),
        cmocka_unit_test(test_synth_spec),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
