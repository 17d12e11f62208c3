/* test_matformer.c - MatFormer sub-models (issue 21): the spec and its
 * validation, g3n slice's checkpoint, and a sub-model served from the full
 * model's weights computing bit for bit what the sliced checkpoint computes
 * (exact path, bf16 with its transposed down_proj, q8 and q4, whose down_proj
 * prefixes are re-quantised or viewed). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <cjson/cJSON.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "config.h"
#include "json_util.h"
#include "model_slice.h"
#include "quant.h"
#include "submodel.h"
#include "test_util.h"
#include "text_model.h"
#include "weights.h"

#define ASSERT_OK(call, err)                                                                                        \
    do {                                                                                                            \
        if ((call) != G3N_OK)                                                                                       \
            fail_msg("%s: %s", #call, (err).message);                                                              \
    } while (0)

/* text-tiny: 30 layers (full attention at 4, 9, ..., 29), the last 10 KV-shared (sources 18 and 19),
 * widths 128 (layers 0-14) and 96 (15-29). */
static void load_tiny(g3n_model_config *config)
{
    char path[1024];
    g3n_error err = {{0}};
    ASSERT_OK(g3n_config_load(config, g3n_test_fixture("text-tiny/config.json", path, sizeof(path)), &err), err);
}

static void expect_error(const g3n_text_config *t, const char *spec, const char *needle)
{
    g3n_submodel s;
    g3n_error err = {{0}};
    if (g3n_submodel_parse(&s, spec, t, &err) == G3N_OK) {
        g3n_submodel_free(&s);
        fail_msg("spec %s was accepted", spec);
    }
    if (!strstr(err.message, needle))
        fail_msg("spec %s: error '%s' does not mention '%s'", spec, err.message, needle);
}

static void test_presets_and_validation(void **state)
{
    (void)state;
    g3n_model_config config;
    load_tiny(&config);
    const g3n_text_config *t = &config.text;
    g3n_error err = {{0}};
    g3n_submodel s;

    ASSERT_OK(g3n_submodel_parse(&s, "full", t, &err), err);
    assert_true(g3n_submodel_is_full(&s, t));
    g3n_submodel_free(&s);

    /* e2b: the first 5 KV-shared layers (20-24) skipped, every width halved */
    ASSERT_OK(g3n_submodel_parse(&s, "e2b", t, &err), err);
    assert_int_equal(s.num_layers, 25);
    assert_int_equal(s.layers[19], 19);
    assert_int_equal(s.layers[20], 25);
    assert_int_equal(s.intermediate_size[0], 64);
    assert_int_equal(s.intermediate_size[4], 64);
    assert_int_equal(s.intermediate_size[24], 48);
    g3n_text_config sub;
    ASSERT_OK(g3n_submodel_text_config(&s, t, &sub, &err), err);
    assert_int_equal(sub.num_hidden_layers, 25);
    assert_int_equal(sub.num_kv_shared_layers, 5);
    assert_int_equal(sub.layer_types[24], G3N_LAYER_FULL);
    assert_int_equal(g3n_text_config_kv_source_layer(&sub, 24), 19);
    assert_int_equal(g3n_text_config_kv_source_layer(&sub, 23), 18);
    g3n_text_config_free_arrays(&sub);
    g3n_submodel_free(&s);

    ASSERT_OK(g3n_submodel_parse(&s, "e1.96b", t, &err), err);
    assert_int_equal(s.intermediate_size[4], 128); /* the first full-attention layer at full width */
    assert_int_equal(s.intermediate_size[3], 64);
    g3n_submodel_free(&s);
    ASSERT_OK(g3n_submodel_parse(&s, "e2.54b", t, &err), err);
    assert_int_equal(s.num_layers, 30);
    assert_int_equal(s.intermediate_size[20], 96);
    assert_int_equal(s.intermediate_size[25], 48);
    g3n_submodel_free(&s);

    /* JSON: widths per kept layer or per model layer; the sparsity pattern follows the kept layers */
    ASSERT_OK(g3n_submodel_parse(&s, "{\"name\": \"mix\", \"layers_to_skip\": [2], \"intermediate_size\": 64}", t,
                                 &err),
              err);
    assert_string_equal(s.name, "mix");
    assert_int_equal(s.num_layers, 29);
    assert_int_equal(s.layers[2], 3);
    ASSERT_OK(g3n_submodel_text_config(&s, t, &sub, &err), err);
    assert_true(sub.activation_sparsity_pattern[8] > 0.9);  /* source layer 9 */
    assert_true(sub.activation_sparsity_pattern[9] == 0.0); /* source layer 10 */
    g3n_text_config_free_arrays(&sub);
    g3n_submodel_free(&s);

    expect_error(t, "e9b", "unknown sub-model 'e9b'");
    expect_error(t, "{\"intermediate_size\": 129}", "above the layer's 128");
    expect_error(t, "{\"intermediate_size\": 0}", "must be positive");
    expect_error(t, "{\"layers_to_skip\": [19]}", "layer 19 holds the KV cache that the KV-shared layers 24, 29");
    expect_error(t, "{\"layers_to_skip\": [18]}", "breaks KV sharing");
    expect_error(t, "{\"layers_to_skip\": [30]}", "layer 30 does not exist");
    expect_error(t, "{\"layers_to_skip\": [-1]}", "does not exist");
    expect_error(t, "{\"layers_to_skip\": [3, 3]}", "twice");
    expect_error(t, "{\"layers_to_skip\": [1.5]}", "integers");
    expect_error(t, "{\"skip\": [1]}", "unknown key 'skip'");
    expect_error(t, "{\"intermediate_size\": [64, 64]}", "one per kept layer (30)");
    expect_error(t, "{\"name\": \"a b\"}", "'name'");
    expect_error(t, "{\"layers_to_skip\": [", "invalid JSON");
    expect_error(t, "@/nonexistent/spec.json", "sub-model");
    /* skipping the source layers together with every layer that reads them is fine */
    ASSERT_OK(g3n_submodel_parse(&s, "{\"layers_to_skip\": [18, 19, 20, 21, 22, 23, 24, 25, 26, 27, 28, 29]}", t,
                                 &err),
              err);
    assert_int_equal(s.num_layers, 18);
    ASSERT_OK(g3n_submodel_text_config(&s, t, &sub, &err), err);
    assert_int_equal(sub.num_kv_shared_layers, 0);
    g3n_text_config_free_arrays(&sub);
    g3n_submodel_free(&s);
    g3n_config_free(&config);
}

/* A Q8 matrix of 1024 columns viewed as its first 512 (stored_cols) gives the
 * products of the same 512 columns quantised as a matrix of their own. */
static void test_quant_column_prefix_view(void **state)
{
    (void)state;
    const int64_t n = 24, k = 1024, m = 3;
    float *w = malloc(sizeof(float) * (size_t)(n * k)), *x = malloc(sizeof(float) * (size_t)(m * k));
    float *y_view = malloc(sizeof(float) * (size_t)(m * n)), *y_own = malloc(sizeof(float) * (size_t)(m * n));
    g3n_test_random_floats(w, n * k, 5);
    g3n_test_random_floats(x, m * k, 6);
    for (int d = 0; d < 2; d++) {
        const g3n_dtype dtype = d ? G3N_DTYPE_Q4 : G3N_DTYPE_Q8;
        g3n_matrix full = {G3N_DTYPE_F32, n, k, sizeof(float) * (size_t)k, w};
        g3n_matrix half = full;
        half.cols = k / 2;
        void *qfull = g3n_aligned_alloc(g3n_quant_row_bytes(dtype, k) * (size_t)n);
        void *qhalf = g3n_aligned_alloc(g3n_quant_row_bytes(dtype, k / 2) * (size_t)n);
        g3n_matrix view = g3n_quantize_matrix(&full, dtype, qfull);
        g3n_matrix own = g3n_quantize_matrix(&half, dtype, qhalf);
        view.stored_cols = k;
        view.cols = k / 2;
        g3n_matmul(x, m, (size_t)k, &view, y_view, (size_t)n);
        g3n_matmul(x, m, (size_t)k, &own, y_own, (size_t)n);
        assert_memory_equal(y_view, y_own, sizeof(float) * (size_t)(m * n));
        float row_view[512], row_own[512];
        g3n_matrix_row_to_f32(&view, 7, row_view);
        g3n_matrix_row_to_f32(&own, 7, row_own);
        assert_memory_equal(row_view, row_own, sizeof(row_own));
        g3n_aligned_free(qfull);
        g3n_aligned_free(qhalf);
    }
    free(w);
    free(x);
    free(y_view);
    free(y_own);
}

#define MIXED "{\"name\": \"mixed\", \"layers_to_skip\": [7, 20, 21, 22, 23, 24], \"intermediate_size\": " \
              "[96, 64, 64, 64, 128, 64, 64, 64, 64, 64, 128, 64, 64, 64, 64, 64, 64, 64, 64, 64, 64, 64, 64, 32]}"

/* Teacher-forced logits of a prompt and 4 decode steps' logits, into out [(T + 4) * V]. */
static void run_model(const g3n_text_model *m, float *out)
{
    g3n_error err = {{0}};
    const int64_t T = 21, V = m->vocab_size;
    int32_t ids[21];
    for (int i = 0; i < T; i++)
        ids[i] = (int32_t)(2 + (i * 37) % 500);
    g3n_text_session_params p = g3n_text_session_default_params(m);
    p.max_positions = 64;
    g3n_text_session *s = NULL;
    ASSERT_OK(g3n_text_session_create(&s, m, &p, &err), err);
    ASSERT_OK(g3n_text_session_forward_ids(s, ids, T, out, 1, &err), err);
    for (int step = 0; step < 4; step++) {
        int32_t id = (int32_t)(100 + 7 * step);
        ASSERT_OK(g3n_text_session_forward_ids(s, &id, 1, out + (T + step) * V, 0, &err), err);
    }
    g3n_text_session_free(s);
}

/* The sub-model as views into the full model vs the checkpoint sliced to it, in each weight format:
 * the same logits, bit for bit. */
static void compare_view_and_slice(const g3n_model_config *config, g3n_weights *synth, const g3n_submodel *s,
                                   const g3n_model_config *sliced_config, g3n_weights *sliced,
                                   const g3n_weight_format *formats, int format_count)
{
    g3n_error err = {{0}};
    const int64_t V = config->text.vocab_size, rows = 21 + 4;
    float *a = malloc(sizeof(float) * (size_t)(rows * V)), *b = malloc(sizeof(float) * (size_t)(rows * V));
    for (int format = 0; format < format_count; format++) {
        const g3n_weight_format f = formats[format];
        g3n_text_model full, sub, own;
        ASSERT_OK(g3n_text_model_load(&full, synth, config, &err), err);
        ASSERT_OK(g3n_text_model_select_weights(&full, f, NULL, NULL, &err), err);
        ASSERT_OK(g3n_text_model_derive(&sub, &full, s, &err), err);
        assert_int_equal(g3n_text_model_select_weights(&sub, f, NULL, NULL, &err), G3N_ERR);
        ASSERT_OK(g3n_text_model_load(&own, sliced, sliced_config, &err), err);
        ASSERT_OK(g3n_text_model_select_weights(&own, f, NULL, NULL, &err), err);
        assert_int_equal(sub.num_layers, own.num_layers);
        assert_int_equal(g3n_text_model_per_layer_width(&sub), (int64_t)config->text.num_hidden_layers * 16);
        assert_int_equal(g3n_text_model_per_layer_width(&own), (int64_t)s->num_layers * 16);
        run_model(&sub, a);
        run_model(&own, b);
        assert_memory_equal(a, b, sizeof(float) * (size_t)(rows * V));
        g3n_text_model_free(&sub);
        g3n_text_model_free(&own);
        g3n_text_model_free(&full);
    }
    free(a);
    free(b);
}

static void test_view_equals_sliced_checkpoint(void **state)
{
    (void)state;
    g3n_model_config config, sliced_config;
    load_tiny(&config);
    g3n_error err = {{0}};
    g3n_submodel s;
    ASSERT_OK(g3n_submodel_parse(&s, MIXED, &config.text, &err), err);
    char temp[1024], dir[1100];
    g3n_test_temp_dir(temp, sizeof(temp));
    snprintf(dir, sizeof(dir), "%s/sliced", temp);

    g3n_weights *synth = NULL;
    ASSERT_OK(g3n_weights_open_synth(&synth, 11, G3N_DTYPE_BF16, &err), err);
    g3n_slice_stats stats;
    ASSERT_OK(g3n_slice_checkpoint(synth, &config, &s, NULL, dir, 200000, &stats, &err), err);
    assert_true(stats.shards > 1); /* 200 kB shards: the index must be right */

    /* the sliced config as transformers would build it */
    ASSERT_OK(g3n_config_load(&sliced_config, dir, &err), err);
    const g3n_text_config *st = &sliced_config.text;
    assert_int_equal(st->num_hidden_layers, 24);
    assert_int_equal(st->num_kv_shared_layers, 5);
    assert_int_equal(st->intermediate_size[0], 96);
    assert_int_equal(st->intermediate_size[23], 32);
    assert_int_equal(st->layer_types[18], G3N_LAYER_FULL); /* source layer 19 */
    assert_true(st->activation_sparsity_pattern[8] > 0.9); /* source layer 9 */
    assert_true(st->activation_sparsity_pattern[9] == 0.0);
    g3n_weights *sliced = NULL;
    ASSERT_OK(g3n_weights_open_checkpoint(&sliced, dir, &err), err);
    g3n_tensor t;
    int64_t down_shape[2] = {64, 32}, ple_shape[2] = {512, 24 * 16};
    ASSERT_OK(g3n_weights_get(sliced, "model.language_model.layers.23.mlp.down_proj.weight", 2, down_shape, &t, &err),
              err);
    ASSERT_OK(g3n_weights_get(sliced, "model.language_model.embed_tokens_per_layer.weight", 2, ple_shape, &t, &err),
              err);

    const g3n_weight_format formats[4] = {G3N_WEIGHTS_EXACT, G3N_WEIGHTS_BF16, G3N_WEIGHTS_Q8, G3N_WEIGHTS_Q4};
    compare_view_and_slice(&config, synth, &s, &sliced_config, sliced, formats, 4);
    g3n_weights_close(sliced);
    g3n_weights_close(synth);
    g3n_config_free(&sliced_config);
    g3n_submodel_free(&s);
    g3n_config_free(&config);
    g3n_test_remove_tree(temp);
}

/* text-tiny's layers at width 1024, cut to 512 and 256: the q8/q4 down_proj is viewed across its stored
 * width (g3n_matrix.stored_cols) at 512 and re-quantised at 256; both as the sliced checkpoint. */
static void test_group_prefix_views(void **state)
{
    (void)state;
    char path[1024], *text = NULL;
    size_t size = 0;
    g3n_error err = {{0}};
    ASSERT_OK(g3n_read_file(g3n_test_fixture("text-tiny/config.json", path, sizeof(path)), &text, &size, &err), err);
    cJSON *root = cJSON_Parse(text);
    free(text);
    assert_non_null(root);
    cJSON *t = cJSON_GetObjectItemCaseSensitive(root, "text_config");
    cJSON_ReplaceItemInObjectCaseSensitive(t, "intermediate_size", cJSON_CreateNumber(1024));
    text = cJSON_PrintUnformatted(root);
    cJSON_Delete(root);
    g3n_model_config config, sliced_config;
    ASSERT_OK(g3n_config_parse(&config, text, &err), err);
    free(text);
    g3n_submodel s;
    ASSERT_OK(g3n_submodel_parse(&s, "{\"layers_to_skip\": [20, 21], \"intermediate_size\": [512, 256, 1024, 512, "
                                     "512, 512, 512, 512, 512, 512, 512, 512, 512, 512, 512, 512, 512, 512, 512, 512, "
                                     "512, 512, 512, 512, 512, 512, 512, 512]}",
                                 &config.text, &err),
              err);
    char temp[1024], dir[1100];
    g3n_test_temp_dir(temp, sizeof(temp));
    snprintf(dir, sizeof(dir), "%s/sliced", temp);
    g3n_weights *synth = NULL, *sliced = NULL;
    ASSERT_OK(g3n_weights_open_synth(&synth, 3, G3N_DTYPE_BF16, &err), err);
    ASSERT_OK(g3n_slice_checkpoint(synth, &config, &s, NULL, dir, 2000000000ull, NULL, &err), err);
    ASSERT_OK(g3n_config_load(&sliced_config, dir, &err), err);
    ASSERT_OK(g3n_weights_open_checkpoint(&sliced, dir, &err), err);
    const g3n_weight_format formats[2] = {G3N_WEIGHTS_Q8, G3N_WEIGHTS_Q4};
    compare_view_and_slice(&config, synth, &s, &sliced_config, sliced, formats, 2);
    /* the 512-wide down_proj is a view of the model's cache, not a copy */
    g3n_text_model full, sub;
    ASSERT_OK(g3n_text_model_load(&full, synth, &config, &err), err);
    ASSERT_OK(g3n_text_model_select_weights(&full, G3N_WEIGHTS_Q4, NULL, NULL, &err), err);
    ASSERT_OK(g3n_text_model_derive(&sub, &full, &s, &err), err);
    assert_ptr_equal(sub.layers[0].down_proj.data, full.layers[0].down_proj.data);
    assert_int_equal(sub.layers[0].down_proj.stored_cols, 1024);
    assert_ptr_not_equal(sub.layers[1].down_proj.data, full.layers[1].down_proj.data); /* 256: re-quantised */
    assert_int_equal(sub.owned_block_count, 1);
    g3n_text_model_free(&sub);
    g3n_text_model_free(&full);
    g3n_weights_close(sliced);
    g3n_weights_close(synth);
    g3n_config_free(&sliced_config);
    g3n_submodel_free(&s);
    g3n_config_free(&config);
    g3n_test_remove_tree(temp);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_presets_and_validation),
        cmocka_unit_test(test_quant_column_prefix_view),
        cmocka_unit_test(test_view_equals_sliced_checkpoint),
        cmocka_unit_test(test_group_prefix_views),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
