/* The audio tower's tensor list against the real save_pretrained() layout
 * (mm-tiny/hf-checkpoint) and the E4B shapes; the token count formula. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include <cmocka.h>

#include "audio_config.h"
#include "audio_encoder.h"
#include "config.h"
#include "safetensors.h"
#include "test_util.h"

static void test_list_matches_checkpoint(void **state)
{
    (void)state;
    char path[1024];
    g3n_error err = {{0}};
    g3n_model_config config;
    g3n_checkpoint *checkpoint;
    assert_int_equal(g3n_config_load(&config, g3n_test_fixture("mm-tiny/hf-checkpoint", path, sizeof(path)), &err),
                     G3N_OK);
    assert_int_equal(g3n_checkpoint_open(&checkpoint, path, &err), G3N_OK);
    g3n_tensor_list list = {0};
    assert_int_equal(g3n_audio_encoder_list_tensors(&config, &list, &err), G3N_OK);
    int in_checkpoint = 0;
    for (int i = 0; i < g3n_checkpoint_count(checkpoint); i++) {
        const g3n_safetensors_entry *e = g3n_checkpoint_entry_at(checkpoint, i);
        if (strncmp(e->name, "model.audio_tower.", 18) != 0)
            continue;
        in_checkpoint++;
        const g3n_tensor_spec *spec = g3n_tensor_list_find(&list, e->name);
        if (spec == NULL)
            fail_msg("%s is in the checkpoint but not in the list", e->name);
        assert_int_equal(spec->ndim, e->ndim);
        for (int d = 0; d < e->ndim; d++)
            assert_int_equal(spec->shape[d], e->shape[d]);
    }
    assert_int_equal(in_checkpoint, list.count); /* and nothing listed that the checkpoint lacks */
    assert_int_equal(list.count, 5 + 22 * 2);
    g3n_tensor_list_free(&list);
    g3n_checkpoint_close(checkpoint);
    g3n_config_free(&config);
}

static void test_e4b_shapes_and_token_counts(void **state)
{
    (void)state;
    g3n_error err = {{0}};
    g3n_model_config config;
    /* the released E4B config, kept in the tree (the test runs from the repository root) */
    if (g3n_config_load(&config, "scripts/e4b-config.json", &err) != G3N_OK)
        fail_msg("%s", err.message);
    g3n_audio_config a;
    assert_int_equal(g3n_audio_config_parse(&a, &config, &err), G3N_OK);
    assert_int_equal(a.hidden_size, 1536);
    assert_int_equal(a.num_layers, 12);
    assert_int_equal(a.head_dim, 192);
    assert_int_equal(a.sscp_flat, 1024); /* 32 channels x 32 frequency bins */
    g3n_tensor_list list = {0};
    assert_int_equal(g3n_audio_encoder_list_tensors(&config, &list, &err), G3N_OK);
    assert_int_equal(list.count, 5 + 22 * 12);
    const g3n_tensor_spec *s = g3n_tensor_list_find(&list, "model.audio_tower.conformer.11.lconv1d.depthwise_conv1d.weight");
    assert_non_null(s);
    assert_int_equal(s->shape[0], 1536);
    assert_int_equal(s->shape[2], 5);
    s = g3n_tensor_list_find(&list, "model.audio_tower.conformer.0.ffw_layer_start.ffw_layer_1.weight");
    assert_int_equal(s->shape[0], 6144);
    g3n_tensor_list_free(&list);
    /* spec §6.5: 1 s -> 97 frames, 7 tokens; 5 s -> 32; 10 s -> 63; 30 s -> 188 */
    assert_int_equal(g3n_audio_encoder_token_count(&a, 97), 7);
    assert_int_equal(g3n_audio_encoder_subsampled_frames(&a, 497), 125);
    assert_int_equal(g3n_audio_encoder_token_count(&a, 497), 32);
    assert_int_equal(g3n_audio_encoder_token_count(&a, 997), 63);
    assert_int_equal(g3n_audio_encoder_token_count(&a, 2997), 188);
    g3n_config_free(&config);
}

static void test_config_errors(void **state)
{
    (void)state;
    g3n_error err = {{0}};
    g3n_model_config config;
    g3n_audio_config a;
    assert_int_equal(g3n_config_parse(&config, "{\"text_config\": {}, \"audio_config\": {\"hidden_size\": 100, "
                                               "\"conf_num_attention_heads\": 8}}",
                                      &err),
                     G3N_OK);
    assert_int_equal(g3n_audio_config_parse(&a, &config, &err), G3N_ERR);
    assert_non_null(strstr(err.message, "hidden_size"));
    g3n_config_free(&config);
    assert_int_equal(g3n_config_parse(&config, "{\"text_config\": {}, \"audio_config\": "
                                               "{\"conf_attention_context_right\": 2}}",
                                      &err),
                     G3N_OK);
    assert_int_equal(g3n_audio_config_parse(&a, &config, &err), G3N_ERR);
    assert_non_null(strstr(err.message, "conf_attention_context_right"));
    g3n_config_free(&config);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_list_matches_checkpoint),
        cmocka_unit_test(test_e4b_shapes_and_token_counts),
        cmocka_unit_test(test_config_errors),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
