/* g3n_model_list_tensors names exactly the tensors of a real checkpoint
 * layout (mm-tiny/hf-checkpoint, a save_pretrained() output) with the same
 * shapes, and `g3n synth` writes a sharded folder that the reader opens and
 * that equals that checkpoint tensor for tensor. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "config.h"
#include "model_tensors.h"
#include "safetensors.h"
#include "test_util.h"

/* Tensors the released checkpoints carry but a transformers-5 save_pretrained()
 * (mm-tiny) leaves out: the K/V projections and k_norm of KV-shared layers. */
static int is_kv_shared_extra(const char *name, const g3n_model_config *config)
{
    int layer;
    char field[64];
    if (sscanf(name, "model.language_model.layers.%d.self_attn.%63[a-z_]", &layer, field) != 2)
        return 0;
    int first_shared = config->text.num_hidden_layers - config->text.num_kv_shared_layers;
    return layer >= first_shared &&
           (strcmp(field, "k_proj") == 0 || strcmp(field, "v_proj") == 0 || strcmp(field, "k_norm") == 0);
}

/* Every tensor of expected is in actual with the same shape (and bytes). */
static void assert_same_tensors(const g3n_checkpoint *expected, const g3n_checkpoint *actual, int compare_data)
{
    for (int i = 0; i < g3n_checkpoint_count(expected); i++) {
        const g3n_safetensors_entry *e = g3n_checkpoint_entry_at(expected, i);
        const g3n_safetensors_entry *a = g3n_checkpoint_find(actual, e->name);
        if (!a)
            fail_msg("tensor %s missing", e->name);
        assert_int_equal(a->ndim, e->ndim);
        for (int d = 0; d < e->ndim; d++)
            assert_int_equal(a->shape[d], e->shape[d]);
        if (compare_data) {
            g3n_tensor te, ta;
            assert_int_equal(g3n_checkpoint_get(expected, e->name, &te, NULL), G3N_OK);
            assert_int_equal(g3n_checkpoint_get(actual, e->name, &ta, NULL), G3N_OK);
            assert_int_equal(te.dtype, ta.dtype);
            if (memcmp(te.data, ta.data, (size_t)(e->end - e->begin)) != 0)
                fail_msg("tensor %s differs", e->name);
        }
    }
}

static void test_list_matches_real_layout(void **state)
{
    (void)state;
    char path[1024];
    g3n_model_config config;
    g3n_error err = {{0}};
    assert_int_equal(g3n_config_load(&config, g3n_test_fixture("mm-tiny/hf-checkpoint", path, sizeof(path)), &err),
                     G3N_OK);
    g3n_tensor_list list = {0};
    assert_int_equal(g3n_model_list_tensors(&config, &list, &err), G3N_OK);
    g3n_checkpoint *checkpoint;
    assert_int_equal(g3n_checkpoint_open(&checkpoint, path, &err), G3N_OK);
    int extras = 0;
    for (int i = 0; i < list.count; i++) {
        const g3n_safetensors_entry *e = g3n_checkpoint_find(checkpoint, list.items[i].name);
        if (!e && is_kv_shared_extra(list.items[i].name, &config)) {
            extras++;
            continue;
        }
        if (!e)
            fail_msg("listed tensor %s is not in the checkpoint", list.items[i].name);
        assert_int_equal(e->ndim, list.items[i].ndim);
        for (int d = 0; d < e->ndim; d++)
            assert_int_equal(e->shape[d], list.items[i].shape[d]);
    }
    /* nothing of the checkpoint is left out of the list */
    assert_int_equal(list.count - extras, g3n_checkpoint_count(checkpoint));
    assert_int_equal(extras, 3 * config.text.num_kv_shared_layers);
    g3n_checkpoint_close(checkpoint);
    g3n_tensor_list_free(&list);
    g3n_config_free(&config);
}

static void test_synth_command_writes_the_checkpoint(void **state)
{
    (void)state;
    char dir[512], out[600], config_path[1024], command[4096];
    g3n_test_temp_dir(dir, sizeof(dir));
    assert_true(dir[0] != '\0');
    snprintf(out, sizeof(out), "%s/mm-tiny", dir);
    g3n_test_fixture("mm-tiny/hf-checkpoint/config.json", config_path, sizeof(config_path));
    /* small shards so the folder is really sharded */
    snprintf(command, sizeof(command), "%s synth --config %s --seed 41 --out %s --shard-size 3000000 2>/dev/null",
             g3n_test_binary(), config_path, out);
    assert_int_equal(system(command), 0);
    g3n_checkpoint *written, *reference;
    g3n_error err = {{0}};
    assert_int_equal(g3n_checkpoint_open(&written, out, &err), G3N_OK);
    char reference_path[1024];
    assert_int_equal(g3n_checkpoint_open(&reference,
                                         g3n_test_fixture("mm-tiny/hf-checkpoint", reference_path,
                                                          sizeof(reference_path)),
                                         &err),
                     G3N_OK);
    assert_same_tensors(reference, written, 1);
    g3n_checkpoint_close(written);
    g3n_checkpoint_close(reference);
    /* the folder carries its config */
    g3n_model_config config;
    assert_int_equal(g3n_config_load(&config, out, &err), G3N_OK);
    g3n_config_free(&config);
    /* a bad config is refused with a message and no crash */
    snprintf(command, sizeof(command), "%s synth --config %s/nonexistent.json --seed 1 --out %s/x 2>/dev/null",
             g3n_test_binary(), dir, dir);
    assert_int_not_equal(system(command), 0);
    g3n_test_remove_tree(dir);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_list_matches_real_layout),
        cmocka_unit_test(test_synth_command_writes_the_checkpoint),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
