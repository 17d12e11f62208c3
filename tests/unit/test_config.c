/* config.json parsing: the released style, the transformers-5 style, per-layer
 * lists, defaults, and errors. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include <cmocka.h>

#include "config.h"
#include "test_util.h"

static void test_released_style_fixture(void **state)
{
    (void)state;
    char path[1024];
    g3n_model_config c;
    g3n_error err = {{0}};
    assert_int_equal(g3n_config_load(&c, g3n_test_fixture("mm-tiny/hf-checkpoint", path, sizeof(path)), &err),
                     G3N_OK);
    assert_int_equal(c.text.hidden_size, 64);
    assert_int_equal(c.text.num_hidden_layers, 30);
    for (int i = 0; i < 30; i++)
        assert_int_equal(c.text.intermediate_size[i], 128); /* a number expands to every layer */
    assert_true(c.text.rope_theta_full == 1e6 && c.text.rope_theta_sliding == 1e4);
    assert_int_equal(c.text.layer_types[4], G3N_LAYER_FULL);
    assert_int_equal(c.text.layer_types[5], G3N_LAYER_SLIDING);
    assert_int_equal(c.text.num_kv_shared_layers, 10);
    assert_int_equal(g3n_text_config_kv_source_layer(&c.text, 20), 18);
    assert_int_equal(g3n_text_config_kv_source_layer(&c.text, 24), 19);
    assert_int_equal(g3n_text_config_kv_source_layer(&c.text, 29), 19);
    assert_int_equal(g3n_text_config_kv_source_layer(&c.text, 19), 19);
    assert_int_equal(c.audio_soft_tokens_per_image, 48);
    assert_int_equal(c.image_token_id, 513);
    assert_int_equal(c.audio_vocab_offset, 576);
    assert_non_null(c.audio_json);
    assert_non_null(c.vision_json);
    g3n_config_free(&c);
}

static void test_per_layer_widths(void **state)
{
    (void)state;
    char path[1024];
    g3n_model_config c;
    g3n_error err = {{0}};
    assert_int_equal(g3n_config_load(&c, g3n_test_fixture("text-tiny/config.json", path, sizeof(path)), &err), G3N_OK);
    assert_int_equal(c.text.intermediate_size[0], 128);
    assert_int_equal(c.text.intermediate_size[14], 128);
    assert_int_equal(c.text.intermediate_size[15], 96);
    assert_true(c.text.activation_sparsity_pattern[9] == 0.95);
    assert_true(c.text.activation_sparsity_pattern[10] == 0.0);
    assert_int_equal(c.text.sliding_window, 16);
    g3n_config_free(&c);
}

static void test_transformers5_style_and_defaults(void **state)
{
    (void)state;
    const char *json = "{\"text_config\": {\"hidden_size\": 32, \"num_hidden_layers\": 35,"
                       " \"intermediate_size\": 64,"
                       " \"rope_parameters\": {\"full_attention\": {\"rope_type\": \"default\", \"rope_theta\": 5e5},"
                       " \"sliding_attention\": {\"rope_type\": \"default\", \"rope_theta\": 123.0}}},"
                       " \"eos_token_id\": [1, 106]}";
    g3n_model_config c;
    g3n_error err = {{0}};
    assert_int_equal(g3n_config_parse(&c, json, &err), G3N_OK);
    assert_true(c.text.rope_theta_full == 5e5);
    assert_true(c.text.rope_theta_sliding == 123.0);
    /* defaults (Gemma3nTextConfig) */
    assert_int_equal(c.text.vocab_size, 262400);
    assert_int_equal(c.text.head_dim, 256);
    assert_int_equal(c.text.num_kv_shared_layers, 15);
    assert_int_equal(c.text.num_eos_token_ids, 2); /* top-level list wins */
    assert_int_equal(c.text.eos_token_ids[1], 106);
    g3n_config_free(&c);
}

static void test_derived_layer_types_and_sparsity(void **state)
{
    (void)state;
    const char *json = "{\"text_config\": {\"num_hidden_layers\": 12, \"num_kv_shared_layers\": 2}}";
    g3n_model_config c;
    g3n_error err = {{0}};
    assert_int_equal(g3n_config_parse(&c, json, &err), G3N_OK);
    for (int i = 0; i < 12; i++) {
        assert_int_equal(c.text.layer_types[i], (i + 1) % 5 == 0 ? G3N_LAYER_FULL : G3N_LAYER_SLIDING);
        assert_true(c.text.activation_sparsity_pattern[i] == (i < 10 ? 0.95 : 0.0));
    }
    assert_int_equal(c.text.num_eos_token_ids, 1);
    assert_int_equal(c.text.eos_token_ids[0], 1);
    g3n_config_free(&c);
}

static void test_released_e2b(void **state)
{
    (void)state;
    const char *json = "{\"text_config\": {\"num_hidden_layers\": 30, \"intermediate_size\": [8192, 8192, 8192, 8192,"
                       " 8192, 8192, 8192, 8192, 8192, 8192, 8192, 8192, 8192, 8192, 8192, 8192, 8192, 8192, 8192,"
                       " 8192, 8192, 8192, 8192, 8192, 8192, 8192, 8192, 8192, 8192, 8192], \"num_kv_shared_layers\":"
                       " 10, \"rope_theta\": 1000000.0, \"rope_local_base_freq\": 10000.0, \"rope_scaling\": null}}";
    g3n_model_config c;
    g3n_error err = {{0}};
    assert_int_equal(g3n_config_parse(&c, json, &err), G3N_OK);
    assert_int_equal(c.text.intermediate_size[29], 8192);
    assert_int_equal(g3n_text_config_kv_source_layer(&c.text, 25), 18);
    g3n_config_free(&c);
}

static void expect_parse_error(const char *json, const char *fragment)
{
    g3n_model_config c;
    g3n_error err = {{0}};
    assert_int_equal(g3n_config_parse(&c, json, &err), G3N_ERR);
    if (!strstr(err.message, fragment))
        fail_msg("error '%s' does not mention '%s'", err.message, fragment);
}

static void test_errors(void **state)
{
    (void)state;
    expect_parse_error("{\"text_config\": {\"num_kv_shared_layers\": 0, \"num_hidden_layers\": 3, \"intermediate_size\": [1, 2]}}",
                       "intermediate_size");
    expect_parse_error("{\"text_config\": {\"num_kv_shared_layers\": 0, \"num_hidden_layers\": 2, \"layer_types\": [\"full_attention\", \"x\"]}}",
                       "layer_types");
    expect_parse_error("{\"text_config\": {\"num_kv_shared_layers\": 0, \"num_hidden_layers\": 3, \"activation_sparsity_pattern\": [0.1]}}",
                       "activation_sparsity_pattern");
    expect_parse_error("{\"text_config\": {\"hidden_size\": \"big\"}}", "hidden_size");
    expect_parse_error("{\"text_config\": {\"rope_scaling\": {\"rope_type\": \"yarn\"}}}", "yarn");
    expect_parse_error("{\"text_config\": ", "JSON");
    /* fields that loaded and failed later (or gave empty text): refused at load, the field named */
    expect_parse_error("{\"text_config\": {\"sliding_window\": 0}}", "sliding_window");
    expect_parse_error("{\"text_config\": {\"sliding_window\": -4}}", "sliding_window");
    expect_parse_error("{\"text_config\": {\"rms_norm_eps\": 0}}", "rms_norm_eps");
    expect_parse_error("{\"text_config\": {\"rms_norm_eps\": -1e-6}}", "rms_norm_eps");
    expect_parse_error("{\"text_config\": {\"max_position_embeddings\": 0}}", "max_position_embeddings");
    expect_parse_error("{\"text_config\": {\"max_position_embeddings\": -32}}", "max_position_embeddings");
    expect_parse_error("{\"vision_soft_tokens_per_image\": -1, \"text_config\": {}}", "vision_soft_tokens_per_image");
    expect_parse_error("{\"audio_soft_tokens_per_image\": -1, \"text_config\": {}}", "audio_soft_tokens_per_image");
    expect_parse_error("{\"vision_config\": {\"rms_norm_eps\": 0}, \"text_config\": {}}", "vision_config.rms_norm_eps");
    expect_parse_error("{\"audio_config\": {\"rms_norm_eps\": -1}, \"text_config\": {}}", "audio_config.rms_norm_eps");
    g3n_model_config c;
    g3n_error err = {{0}};
    assert_int_equal(g3n_config_load(&c, "/nonexistent/config.json", &err), G3N_ERR);
    assert_non_null(strstr(err.message, "/nonexistent/config.json"));
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_released_style_fixture),
        cmocka_unit_test(test_per_layer_widths),
        cmocka_unit_test(test_transformers5_style_and_defaults),
        cmocka_unit_test(test_derived_layer_types_and_sparsity),
        cmocka_unit_test(test_released_e2b),
        cmocka_unit_test(test_errors),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
