/* Building the q8/q4 weight cache from a checkpoint leaves the checkpoint's
 * shards out of the process's resident memory (quant.h: release_source): as
 * little of them is resident right after the build as on a later start that
 * maps the cache. Measured through common/base/memory_report on a checkpoint that
 * `g3n synth` writes for mm-tiny's config with a wider, shorter text model
 * (hidden 256, 5 layers: matrices of many pages, 9 MB of bf16 to quantise;
 * mm-tiny's own 64-wide tensors share pages with the norms the model reads).
 * And the default a user gets: g3n run on a checkpoint runs q8 and says so. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>
#include <cjson/cJSON.h>

#include "config.h"
#include "memory_report.h"
#include "quant.h"
#include "test_util.h"
#include "text_model.h"
#include "weights.h"

/* Writes DIR/model: mm-tiny's config with the text model widened and cut to
 * 5 layers, synthesised by the g3n binary. */
static void write_checkpoint(const char *dir, char *folder, size_t size)
{
    char source[1024], config_path[1024], command[4096];
    g3n_test_fixture("mm-tiny/config.json", source, sizeof(source));
    FILE *f = fopen(source, "rb");
    assert_non_null(f);
    static char text[1 << 16];
    const size_t n = fread(text, 1, sizeof(text) - 1, f);
    fclose(f);
    text[n] = '\0';
    cJSON *config = cJSON_Parse(text);
    assert_non_null(config);
    cJSON *t = cJSON_GetObjectItem(config, "text_config");
    assert_non_null(t);
    const struct {
        const char *name;
        double value;
    } sizes[] = {{"hidden_size", 256}, {"intermediate_size", 1024}, {"num_hidden_layers", 5},
                 {"head_dim", 64},     {"num_kv_shared_layers", 2}};
    for (size_t i = 0; i < sizeof(sizes) / sizeof(sizes[0]); i++)
        cJSON_ReplaceItemInObject(t, sizes[i].name, cJSON_CreateNumber(sizes[i].value));
    /* the last two layers read the KV of the latest earlier layer of their type */
    const char *types[5] = {"sliding_attention", "full_attention", "sliding_attention", "sliding_attention",
                            "full_attention"};
    const float sparsity[5] = {0.95f, 0.0f, 0.0f, 0.0f, 0.0f};
    cJSON_ReplaceItemInObject(t, "layer_types", cJSON_CreateStringArray(types, 5));
    cJSON_ReplaceItemInObject(t, "activation_sparsity_pattern", cJSON_CreateFloatArray(sparsity, 5));
    char *written = cJSON_Print(config);
    cJSON_Delete(config);
    snprintf(config_path, sizeof(config_path), "%s/config.json", dir);
    f = fopen(config_path, "wb");
    assert_non_null(f);
    fputs(written, f);
    fclose(f);
    cJSON_free(written);
    snprintf(folder, size, "%s/model", dir);
    snprintf(command, sizeof(command), "%s synth --config %s --seed 5 --out %s 2>/dev/null", g3n_test_binary(),
             config_path, folder);
    assert_int_equal(system(command), 0);
}

/* Resident and mapped bytes of the checkpoint's shard files. */
static void shard_memory(const char *folder, uint64_t *resident, uint64_t *mapped)
{
    static g3n_memory_mapping entries[256];
    const int count = g3n_memory_mappings(entries, 256, NULL);
    *resident = *mapped = 0;
    for (int i = 0; i < count; i++)
        if (strncmp(entries[i].path, folder, strlen(folder)) == 0 && strstr(entries[i].path, ".safetensors")) {
            *resident += entries[i].resident_bytes;
            *mapped += entries[i].mapped_bytes;
        }
}

static void open_model(const char *folder, g3n_weight_format format, const char *cache, g3n_model_config *config,
                       g3n_weights **weights, g3n_text_model *model, g3n_quant_cache_info *info)
{
    g3n_error err = {{0}};
    memset(model, 0, sizeof(*model));
    if (g3n_config_load(config, folder, &err) != G3N_OK || g3n_weights_open_checkpoint(weights, folder, &err) != G3N_OK ||
        g3n_text_model_load(model, *weights, config, &err) != G3N_OK ||
        g3n_text_model_select_weights(model, format, cache, info, &err) != G3N_OK)
        fail_msg("%s", err.message);
}

static void test_shards_released_after_building(void **state)
{
    (void)state;
    char folder[1024], dir[512], cache[1024];
    g3n_test_temp_dir(dir, sizeof(dir));
    write_checkpoint(dir, folder, sizeof(folder));
    snprintf(cache, sizeof(cache), "%s/text-q8.g3nq", dir);
    uint64_t shard_resident[2];
    for (int start = 0; start < 2; start++) {
        g3n_model_config config;
        g3n_weights *weights = NULL;
        g3n_text_model model;
        g3n_quant_cache_info info;
        open_model(folder, G3N_WEIGHTS_Q8, cache, &config, &weights, &model, &info);
        assert_int_equal(info.built, start == 0);
        assert_int_equal(info.persisted, 1);
        uint64_t resident, mapped;
        shard_memory(folder, &resident, &mapped);
        print_message("  %s: shards %.2f MiB resident of %.2f MiB mapped; cache %.2f MiB\n",
                      start == 0 ? "built" : "mapped", resident / 1048576.0, mapped / 1048576.0,
                      info.bytes / 1048576.0);
        assert_true(mapped > 0);
        shard_resident[start] = resident;
        g3n_text_model_free(&model);
        g3n_weights_close(weights);
        g3n_config_free(&config);
    }
    /* right after building, about as much of the shards is resident as on a
     * start that maps the cache (what the model reads from them itself: norms,
     * tables, matrices kept as stored; measured 1.4 vs 1.1 MiB); without the
     * release every quantised matrix's source stayed (10.6 MiB) */
    assert_true(shard_resident[0] <= shard_resident[1] + 1024 * 1024);
    g3n_test_remove_tree(dir);
}

static int file_contains(const char *path, const char *needle)
{
    static char text[1 << 16];
    FILE *f = fopen(path, "rb");
    if (!f)
        return 0;
    const size_t n = fread(text, 1, sizeof(text) - 1, f);
    fclose(f);
    text[n] = '\0';
    return strstr(text, needle) != NULL;
}

/* g3n run on a checkpoint folder: q8 unless told otherwise, said at start, the
 * cache built once with progress; --weights f32 is the exact path, said too.
 * (The demo config: the real vocabulary, so that the tokenizer's ids fit.) */
static void test_run_defaults_to_q8_for_a_checkpoint(void **state)
{
    (void)state;
    char dir[512], folder[600], tokenizer[1024], log[700], cache[700], command[4096];
    g3n_test_temp_dir(dir, sizeof(dir));
    snprintf(folder, sizeof(folder), "%s/demo", dir);
    snprintf(log, sizeof(log), "%s/stderr.txt", dir);
    g3n_test_fixture("tokenizer/tokenizer.json", tokenizer, sizeof(tokenizer));
    snprintf(command, sizeof(command), "%s synth --config scripts/demo-config.json --seed 3 --out %s 2>/dev/null",
             g3n_test_binary(), folder);
    assert_int_equal(system(command), 0);
    snprintf(command, sizeof(command), "%s run --model %s --tokenizer %s --max-new-tokens 1 Hi >/dev/null 2>%s",
             g3n_test_binary(), folder, tokenizer, log);
    assert_int_equal(system(command), 0);
    assert_true(file_contains(log, "weights q8 (the default for a checkpoint; --weights f32 for the exact path)"));
    assert_true(file_contains(log, "quantising the text weights to q8"));
    assert_true(file_contains(log, "q8 weight cache 100 %"));
    snprintf(cache, sizeof(cache), "%s/g3n-cache/text-q8.g3nq", folder);
    FILE *f = fopen(cache, "rb");
    assert_non_null(f);
    fclose(f);
    snprintf(command, sizeof(command),
             "%s run --model %s --tokenizer %s --weights f32 --max-new-tokens 1 Hi >/dev/null 2>%s",
             g3n_test_binary(), folder, tokenizer, log);
    assert_int_equal(system(command), 0);
    assert_true(file_contains(log, "weights f32 (--weights)"));
    assert_false(file_contains(log, "quantising"));
    g3n_test_remove_tree(dir);
}

int main(void)
{
    const struct CMUnitTest tests[] = {cmocka_unit_test(test_shards_released_after_building),
                                       cmocka_unit_test(test_run_defaults_to_q8_for_a_checkpoint)};
    return cmocka_run_group_tests(tests, NULL, NULL);
}
