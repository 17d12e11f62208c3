/* The decoder role loads the layer stack without the per-layer embedding table
 * and its projection (the embedder holds those): it never asks the weight
 * source for them, computes the same logits from the embedder's inputs as the
 * full model, and refuses the ids-only shortcut with a clear message. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "check.h"
#include "config.h"
#include "embedder.h"
#include "test_util.h"
#include "text_model.h"
#include "weights.h"

/* text-tiny's config (the caller frees it with g3n_config_free) */
static void load_text_tiny_config(g3n_model_config *config)
{
    char path[1024];
    g3n_error err = {{0}};
    assert_int_equal(g3n_config_load(config, g3n_test_fixture("text-tiny/config.json", path, sizeof(path)), &err),
                     G3N_OK);
}

/* the prompt both tests embed (ids of text-tiny's vocabulary) */
static const int32_t prompt_ids[10] = {2, 17, 99, 4, 250, 3, 77, 1, 0, 42};

/* The layers-only decoder on the embedder's inputs and the full model on the
 * ids give the same logits, bit for bit. Returns the decoder's session (the
 * caller frees it), positioned after the prompt. */
static g3n_text_session *assert_same_logits(g3n_text_model *layers_only, g3n_text_model *full, const float *embeds,
                                            const float *per_layer, const int32_t *ids, int64_t count, int64_t vocab)
{
    g3n_error err = {{0}};
    float *a = malloc(sizeof(float) * (size_t)(count * vocab));
    float *b = malloc(sizeof(float) * (size_t)(count * vocab));
    g3n_text_session *decoder_session, *full_session;
    assert_int_equal(g3n_text_session_create(&decoder_session, layers_only, NULL, &err), G3N_OK);
    assert_int_equal(g3n_text_session_create(&full_session, full, NULL, &err), G3N_OK);
    assert_int_equal(g3n_text_session_forward(decoder_session, embeds, per_layer, count, a, 1, &err), G3N_OK);
    assert_int_equal(g3n_text_session_forward_ids(full_session, ids, count, b, 1, &err), G3N_OK);
    assert_memory_equal(a, b, sizeof(float) * (size_t)(count * vocab));
    g3n_text_session_free(full_session);
    free(a);
    free(b);
    return decoder_session;
}

static void test_layers_only_matches_full_model(void **state)
{
    (void)state;
    g3n_model_config config;
    g3n_error err = {{0}};
    load_text_tiny_config(&config);
    g3n_weights *decoder_weights, *embedder_weights;
    assert_int_equal(g3n_weights_open_synth(&decoder_weights, 11, G3N_DTYPE_BF16, &err), G3N_OK);
    assert_int_equal(g3n_weights_open_synth(&embedder_weights, 11, G3N_DTYPE_BF16, &err), G3N_OK);

    g3n_text_model layers_only, full;
    assert_int_equal(g3n_text_model_load_layers_only(&layers_only, decoder_weights, &config, &err), G3N_OK);
    /* synth generates only what is asked for: the per-layer table never was */
    const g3n_text_config *t = &config.text;
    const uint64_t table_bytes =
        (uint64_t)t->vocab_size_per_layer_input * (uint64_t)t->num_hidden_layers * (uint64_t)t->hidden_size_per_layer_input * 2;
    const uint64_t decoder_bytes = g3n_weights_allocated_bytes(decoder_weights);
    assert_int_equal(g3n_text_model_load(&full, embedder_weights, &config, &err), G3N_OK);
    assert_true(g3n_weights_allocated_bytes(embedder_weights) >= decoder_bytes + table_bytes);

    g3n_embedder embedder;
    assert_int_equal(g3n_embedder_load(&embedder, embedder_weights, &config, &err), G3N_OK);
    const int64_t T = 10, D = t->hidden_size, V = t->vocab_size, LP = embedder.per_layer_width;
    const int32_t *ids = prompt_ids;
    float *embeds = malloc(sizeof(float) * (size_t)(T * D));
    float *per_layer = malloc(sizeof(float) * (size_t)(T * LP));
    float *a = malloc(sizeof(float) * (size_t)(T * V));
    assert_int_equal(g3n_embedder_build(&embedder, ids, T, NULL, 0, 0, T, embeds, per_layer, &err), G3N_OK);

    g3n_text_session *decoder_session = assert_same_logits(&layers_only, &full, embeds, per_layer, ids, T, V);
    g3n_text_session_reset(decoder_session);
    assert_int_equal(g3n_text_session_forward_ids(decoder_session, ids, T, a, 1, &err), G3N_ERR);
    assert_non_null(strstr(err.message, "per-layer tables"));
    assert_int_equal(g3n_text_session_position(decoder_session), 0);

    g3n_text_session_free(decoder_session);
    free(embeds);
    free(per_layer);
    free(a);
    g3n_text_model_free(&layers_only);
    g3n_text_model_free(&full);
    g3n_weights_close(decoder_weights);
    g3n_weights_close(embedder_weights);
    g3n_config_free(&config);
}

/* With --weights q8/q4 the embedder role quantises its per_layer_model_projection
 * as the decoder's weight cache does: embedder + layers-only decoder (the
 * pipeline) compute bit for bit the logits of the full model at that format
 * (g3n generate), and the quantised projection really replaced the stored one. */
static void test_quantised_pipeline_matches_full_model(void **state)
{
    (void)state;
    g3n_model_config config;
    g3n_error err = {{0}};
    load_text_tiny_config(&config);
    const g3n_weight_format formats[3] = {G3N_WEIGHTS_Q8, G3N_WEIGHTS_Q4, G3N_WEIGHTS_BF16};
    for (int f = 0; f < 3; f++) {
        g3n_weights *weights;
        assert_int_equal(g3n_weights_open_synth(&weights, 11, G3N_DTYPE_BF16, &err), G3N_OK);
        g3n_text_model layers_only, full;
        g3n_embedder embedder, stored;
        assert_int_equal(g3n_text_model_load_layers_only(&layers_only, weights, &config, &err), G3N_OK);
        assert_int_equal(g3n_text_model_load(&full, weights, &config, &err), G3N_OK);
        assert_int_equal(g3n_embedder_load(&embedder, weights, &config, &err), G3N_OK);
        assert_int_equal(g3n_embedder_load(&stored, weights, &config, &err), G3N_OK);
        assert_int_equal(g3n_text_model_select_weights(&layers_only, formats[f], NULL, NULL, &err), G3N_OK);
        assert_int_equal(g3n_text_model_select_weights(&full, formats[f], NULL, NULL, &err), G3N_OK);
        assert_int_equal(g3n_embedder_select_weights(&embedder, formats[f], &err), G3N_OK);
        const int quantised = formats[f] != G3N_WEIGHTS_BF16;
        assert_int_equal(embedder.text.per_layer_model_projection.dtype,
                         quantised ? (g3n_dtype)g3n_weight_format_dtype(formats[f])
                                   : stored.text.per_layer_model_projection.dtype);

        const g3n_text_config *t = &config.text;
        const int64_t T = 10, D = t->hidden_size, V = t->vocab_size, LP = embedder.per_layer_width;
        const int32_t *ids = prompt_ids;
        float *embeds = malloc(sizeof(float) * (size_t)(T * D));
        float *per_layer = malloc(sizeof(float) * (size_t)(T * LP));
        float *per_layer_stored = malloc(sizeof(float) * (size_t)(T * LP));
        assert_int_equal(g3n_embedder_build(&stored, ids, T, NULL, 0, 0, T, embeds, per_layer_stored, &err), G3N_OK);
        assert_int_equal(g3n_embedder_build(&embedder, ids, T, NULL, 0, 0, T, embeds, per_layer, &err), G3N_OK);
        double rel, max_abs, mean_abs;
        g3n_compare_stats(per_layer, per_layer_stored, T * LP, &rel, &max_abs, &mean_abs);
        if (quantised) /* changed, within the format's error (q8 ~1e-2, q4 ~1e-1 relative) */
            assert_true(rel > 0.0 && rel < (formats[f] == G3N_WEIGHTS_Q8 ? 2e-2 : 0.2));
        else
            assert_true(rel == 0.0);

        g3n_text_session_free(assert_same_logits(&layers_only, &full, embeds, per_layer, ids, T, V));
        free(embeds);
        free(per_layer);
        free(per_layer_stored);
        g3n_embedder_free(&embedder);
        g3n_embedder_free(&stored);
        g3n_text_model_free(&layers_only);
        g3n_text_model_free(&full);
        g3n_weights_close(weights);
    }
    g3n_config_free(&config);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_layers_only_matches_full_model),
        cmocka_unit_test(test_quantised_pipeline_matches_full_model),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
