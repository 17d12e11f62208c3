/* test_decoder.c - the language model: KV cache and sliding window, chunked
 * prefill, the embedder seam, the tensor list, checkpoint vs synth, sampling. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "config.h"
#include "generate.h"
#include "safetensors.h"
#include "test_util.h"
#include "text_embedder.h"
#include "text_model.h"
#include "weights.h"

#define ASSERT_OK(call, err)                                                                                        \
    do {                                                                                                            \
        if ((call) != G3N_OK)                                                                                       \
            fail_msg("%s: %s", #call, (err).message);                                                              \
    } while (0)

typedef struct loaded {
    g3n_model_config config;
    g3n_weights *weights;
    g3n_text_model model;
} loaded;

static void load_synth(loaded *l, const char *case_name, uint64_t seed)
{
    char path[1024], rel[256];
    g3n_error err = {{0}};
    memset(l, 0, sizeof(*l));
    snprintf(rel, sizeof(rel), "%s/config.json", case_name);
    ASSERT_OK(g3n_config_load(&l->config, g3n_test_fixture(rel, path, sizeof(path)), &err), err);
    ASSERT_OK(g3n_weights_open_synth(&l->weights, seed, G3N_DTYPE_BF16, &err), err);
    ASSERT_OK(g3n_text_model_load(&l->model, l->weights, &l->config, &err), err);
}

static void unload(loaded *l)
{
    g3n_text_model_free(&l->model);
    g3n_weights_close(l->weights);
    g3n_config_free(&l->config);
}

/* Loads the config of mm-tiny's real-layout checkpoint into *config (zeroed
 * first; the caller frees it with g3n_config_free) and leaves the checkpoint
 * folder's path in path (size bytes), for opening its weights. */
static void load_checkpoint_config(g3n_model_config *config, char *path, size_t size)
{
    g3n_error err = {{0}};
    memset(config, 0, sizeof(*config));
    ASSERT_OK(g3n_config_load(config, g3n_test_fixture("mm-tiny/hf-checkpoint", path, size), &err), err);
}

static double max_abs_diff(const float *a, const float *b, int64_t n)
{
    double m = 0.0;
    for (int64_t i = 0; i < n; i++) {
        double d = fabs((double)a[i] - (double)b[i]);
        if (d > m || d != d)
            m = d != d ? INFINITY : d;
    }
    return m;
}

static void make_ids(int32_t *ids, int64_t n, int64_t vocab, uint64_t seed)
{
    ids[0] = 2; /* bos */
    uint64_t z = seed * 0x9E3779B97F4A7C15ull + 1;
    for (int64_t i = 1; i < n; i++) {
        z ^= z << 13;
        z ^= z >> 7;
        z ^= z << 17;
        ids[i] = (int32_t)(3 + z % (uint64_t)(vocab - 3));
    }
}

/* A prompt of 5 sliding windows, prefilled in odd chunks and then decoded one
 * token at a time through the ring, matches one teacher-forced forward whose
 * single chunk never touches the ring; sliding layers never attend to more
 * than the window, hold exactly the window, and shared layers hold nothing. */
static void test_long_prompt_cache_matches_teacher_forced(void **state)
{
    (void)state;
    loaded l;
    load_synth(&l, "text-tiny", 11);
    const g3n_text_config *c = &l.config.text;
    const int64_t W = c->sliding_window, V = l.model.vocab_size;
    const int64_t total = 5 * W + 3, prompt = 2 * W + 5;
    assert_true(W > 0 && total > 4 * W);
    int32_t *ids = malloc((size_t)total * sizeof(int32_t));
    float *full = malloc((size_t)(total * V) * sizeof(float));
    float *step = malloc((size_t)(total * V) * sizeof(float));
    assert_non_null(ids);
    assert_non_null(full);
    assert_non_null(step);
    make_ids(ids, total, c->vocab_size_per_layer_input, 7);
    g3n_error err = {{0}};

    /* reference: one chunk holding everything */
    g3n_text_session_params p = g3n_text_session_default_params(&l.model);
    p.max_positions = total;
    p.chunk_tokens = total;
    g3n_text_session *one = NULL;
    ASSERT_OK(g3n_text_session_create(&one, &l.model, &p, &err), err);
    ASSERT_OK(g3n_text_session_forward_ids(one, ids, total, full, 1, &err), err);

    /* cached: prefill in chunks of 7 (not a divisor of the window), then one by one */
    p.chunk_tokens = 7;
    g3n_text_session *cached = NULL;
    ASSERT_OK(g3n_text_session_create(&cached, &l.model, &p, &err), err);
    ASSERT_OK(g3n_text_session_forward_ids(cached, ids, prompt, step, 1, &err), err);
    for (int64_t t = prompt; t < total; t++)
        ASSERT_OK(g3n_text_session_forward_ids(cached, ids + t, 1, step + t * V, 0, &err), err);
    assert_int_equal(g3n_text_session_position(cached), total);
    double diff = max_abs_diff(full, step, total * V);
    printf("# cached vs teacher-forced over %lld tokens (window %lld): max |dlogit| = %.3g\n", (long long)total,
           (long long)W, diff);
    assert_true(diff < 2e-3);

    for (int layer = 0; layer < l.model.num_layers; layer++) {
        const g3n_text_layer *ly = &l.model.layers[layer];
        int64_t keys = g3n_text_session_max_keys_attended(cached, layer);
        int64_t slots = g3n_text_session_cache_slots(cached, layer);
        if (ly->type == G3N_LAYER_SLIDING)
            assert_int_equal(keys, W); /* reached, never exceeded */
        else
            assert_int_equal(keys, total);
        if (ly->kv_shared)
            assert_int_equal(slots, 0);
        else if (ly->type == G3N_LAYER_SLIDING)
            assert_int_equal(slots, W);
        else
            assert_int_equal(slots, total);
    }
    /* the session refuses to run past its positions */
    assert_int_equal(g3n_text_session_forward_ids(cached, ids, 1, NULL, 0, &err), G3N_ERR);
    assert_non_null(strstr(err.message, "max_positions"));

    /* reset reuses the cache: the same prompt gives the same logits */
    g3n_text_session_reset(cached);
    ASSERT_OK(g3n_text_session_forward_ids(cached, ids, prompt, step, 1, &err), err);
    assert_true(max_abs_diff(full, step, prompt * V) < 2e-3);

    g3n_text_session_free(one);
    g3n_text_session_free(cached);
    free(ids);
    free(full);
    free(step);
    unload(&l);
}

/* The seam: embeddings and per-layer inputs computed outside (as the embedder
 * daemon will) give the same logits as the ids path. */
static void test_external_embeddings_match_ids(void **state)
{
    (void)state;
    loaded l;
    load_synth(&l, "text-tiny", 11);
    const int64_t T = 12, V = l.model.vocab_size, D = l.model.hidden_size;
    const int64_t LP = (int64_t)l.model.num_layers * l.model.per_layer_dim;
    int32_t ids[12];
    make_ids(ids, T, l.config.text.vocab_size_per_layer_input, 3);
    ids[5] = (int32_t)l.config.text.vocab_size_per_layer_input + 1; /* a hard multimodal id: PLE row 0 */
    float *embeds = malloc((size_t)(T * D) * sizeof(float));
    float *tokens = malloc((size_t)(T * LP) * sizeof(float));
    float *pli = malloc((size_t)(T * LP) * sizeof(float));
    float *a = malloc((size_t)(T * V) * sizeof(float));
    float *b = malloc((size_t)(T * V) * sizeof(float));
    g3n_error err = {{0}};
    ASSERT_OK(g3n_text_embedder_embed_tokens(&l.model.embedder, ids, T, embeds, &err), err);
    g3n_text_embedder_per_layer_tokens(&l.model.embedder, ids, T, tokens);
    /* row 0 of the per-layer table for the out-of-range id */
    int32_t zero = 0;
    float *row0 = malloc((size_t)LP * sizeof(float));
    g3n_text_embedder_per_layer_tokens(&l.model.embedder, &zero, 1, row0);
    assert_memory_equal(tokens + 5 * LP, row0, (size_t)LP * sizeof(float));
    g3n_text_embedder_project_per_layer(&l.model.embedder, embeds, tokens, T, pli);

    g3n_text_session *s = NULL;
    g3n_text_session_params p = g3n_text_session_default_params(&l.model);
    p.max_positions = T;
    ASSERT_OK(g3n_text_session_create(&s, &l.model, &p, &err), err);
    ASSERT_OK(g3n_text_session_forward(s, embeds, pli, T, a, 1, &err), err);
    g3n_text_session_reset(s);
    ASSERT_OK(g3n_text_session_forward_ids(s, ids, T, b, 1, &err), err);
    assert_true(max_abs_diff(a, b, T * V) == 0.0);
    /* ids outside the vocabulary are an error naming the position */
    g3n_text_session_reset(s);
    int32_t bad = (int32_t)V;
    assert_int_equal(g3n_text_session_forward_ids(s, &bad, 1, b, 0, &err), G3N_ERR);
    assert_non_null(strstr(err.message, "vocabulary"));

    g3n_text_session_free(s);
    free(embeds);
    free(tokens);
    free(pli);
    free(a);
    free(b);
    free(row0);
    unload(&l);
}

/* The tensor list matches the real-layout checkpoint: every language-model
 * tensor it holds, with the same shape; the only extras are the K/V weights of
 * KV-shared layers that the released checkpoints carry and transformers 5 drops. */
static void test_list_tensors_matches_checkpoint(void **state)
{
    (void)state;
    char path[1024];
    g3n_error err = {{0}};
    g3n_model_config config;
    load_checkpoint_config(&config, path, sizeof(path));
    g3n_checkpoint *checkpoint = NULL;
    ASSERT_OK(g3n_checkpoint_open(&checkpoint, path, &err), err);
    g3n_tensor_list list = {0};
    ASSERT_OK(g3n_text_model_list_tensors(&config, &list, &err), err);

    int in_checkpoint = 0;
    for (int i = 0; i < g3n_checkpoint_count(checkpoint); i++) {
        const g3n_safetensors_entry *e = g3n_checkpoint_entry_at(checkpoint, i);
        if (strncmp(e->name, "model.language_model.", 21) != 0)
            continue;
        in_checkpoint++;
        const g3n_tensor_spec *spec = g3n_tensor_list_find(&list, e->name);
        if (!spec)
            fail_msg("%s is in the checkpoint but not in the list", e->name);
        assert_int_equal(spec->ndim, e->ndim);
        for (int d = 0; d < e->ndim; d++)
            assert_int_equal(spec->shape[d], e->shape[d]);
    }
    int first_shared = config.text.num_hidden_layers - config.text.num_kv_shared_layers;
    int extras = 0;
    for (int i = 0; i < list.count; i++) {
        if (g3n_checkpoint_find(checkpoint, list.items[i].name))
            continue;
        int layer = -1;
        char what[64] = "";
        if (sscanf(list.items[i].name, "model.language_model.layers.%d.self_attn.%63s", &layer, what) != 2)
            fail_msg("%s is listed but not in the checkpoint", list.items[i].name);
        assert_true(layer >= first_shared);
        assert_true(strcmp(what, "k_proj.weight") == 0 || strcmp(what, "v_proj.weight") == 0 ||
                    strcmp(what, "k_norm.weight") == 0);
        extras++;
    }
    assert_int_equal(extras, 3 * config.text.num_kv_shared_layers);
    assert_int_equal(list.count, in_checkpoint + extras);

    g3n_tensor_list_free(&list);
    g3n_checkpoint_close(checkpoint);
    g3n_config_free(&config);
}

/* The bf16 shards of mm-tiny and synth seed 41 hold the same values: the same logits. */
static void test_checkpoint_matches_synth(void **state)
{
    (void)state;
    char path[1024];
    g3n_error err = {{0}};
    loaded from_synth, from_checkpoint;
    memset(&from_checkpoint, 0, sizeof(from_checkpoint));
    load_synth(&from_synth, "mm-tiny", 41);
    load_checkpoint_config(&from_checkpoint.config, path, sizeof(path));
    ASSERT_OK(g3n_weights_open_checkpoint(&from_checkpoint.weights, path, &err), err);
    ASSERT_OK(g3n_text_model_load(&from_checkpoint.model, from_checkpoint.weights, &from_checkpoint.config, &err),
              err);

    const int64_t T = 24, V = from_synth.model.vocab_size;
    int32_t ids[24];
    make_ids(ids, T, from_synth.config.text.vocab_size_per_layer_input, 5);
    float *a = malloc((size_t)(T * V) * sizeof(float));
    float *b = malloc((size_t)(T * V) * sizeof(float));
    g3n_text_session *sa = NULL, *sb = NULL;
    g3n_text_session_params p = g3n_text_session_default_params(&from_synth.model);
    p.max_positions = T;
    ASSERT_OK(g3n_text_session_create(&sa, &from_synth.model, &p, &err), err);
    ASSERT_OK(g3n_text_session_create(&sb, &from_checkpoint.model, &p, &err), err);
    ASSERT_OK(g3n_text_session_forward_ids(sa, ids, T, a, 1, &err), err);
    ASSERT_OK(g3n_text_session_forward_ids(sb, ids, T, b, 1, &err), err);
    double diff = max_abs_diff(a, b, T * V);
    printf("# mm-tiny checkpoint vs synth seed 41: max |dlogit| = %.3g\n", diff);
    assert_true(diff <= 1e-5);

    g3n_text_session_free(sa);
    g3n_text_session_free(sb);
    free(a);
    free(b);
    unload(&from_synth);
    unload(&from_checkpoint);
}

/* A missing tensor is an error that names it. */
static void test_missing_tensor_is_named(void **state)
{
    (void)state;
    char path[1024];
    g3n_error err = {{0}};
    g3n_model_config config;
    load_checkpoint_config(&config, path, sizeof(path));
    g3n_weights *weights = NULL;
    ASSERT_OK(g3n_weights_open_checkpoint(&weights, path, &err), err);
    config.text.hidden_size_per_layer_input *= 2; /* wrong shapes for the per-layer tables */
    g3n_text_model model;
    assert_int_equal(g3n_text_model_load(&model, weights, &config, &err), G3N_ERR);
    assert_non_null(strstr(err.message, "model.language_model."));
    g3n_weights_close(weights);
    g3n_config_free(&config);
}

/* A sampler made from params over vocab ids picks expected in each of draws
 * draws from logits; the sampler is created and freed here. */
static void assert_sampler_always_picks(const g3n_sampling_params *params, int64_t vocab, const float *logits,
                                        int draws, int32_t expected)
{
    g3n_error err = {{0}};
    g3n_sampler *sampler = NULL;
    ASSERT_OK(g3n_sampler_create(&sampler, params, vocab, &err), err);
    for (int i = 0; i < draws; i++)
        assert_int_equal(g3n_sampler_sample(sampler, logits, 0), expected);
    g3n_sampler_free(sampler);
}

static void test_sampling(void **state)
{
    (void)state;
    g3n_error err = {{0}};
    float logits[6] = {0.5f, 2.0f, -1.0f, 1.9f, 3.0f, 0.0f};
    assert_int_equal(g3n_argmax(logits, 6), 4);
    assert_int_equal(g3n_argmax(logits, 4), 1); /* ids >= 4 suppressed */

    g3n_sampling_params p = g3n_sampling_default_params();
    g3n_sampler *s = NULL;
    ASSERT_OK(g3n_sampler_create(&s, &p, 6, &err), err);
    assert_int_equal(g3n_sampler_sample(s, logits, 0), 4); /* greedy by default */
    assert_int_equal(g3n_sampler_sample(s, logits, 4), 1);
    g3n_sampler_free(s);

    /* top_k 1 is greedy; a tiny top_p keeps only the top id */
    p.do_sample = 1;
    p.top_k = 1;
    assert_sampler_always_picks(&p, 6, logits, 20, 4);
    p.top_k = 0;
    p.top_p = 0.01f;
    assert_sampler_always_picks(&p, 6, logits, 20, 4);

    /* two ids with p = 1/4, 3/4: frequencies follow, the seed repeats the draw */
    float two[2] = {0.0f, logf(3.0f)};
    p = g3n_sampling_default_params();
    p.do_sample = 1;
    p.seed = 42;
    int32_t first[64];
    ASSERT_OK(g3n_sampler_create(&s, &p, 2, &err), err);
    int ones = 0;
    const int draws = 8000;
    for (int i = 0; i < draws; i++) {
        int32_t id = g3n_sampler_sample(s, two, 0);
        if (i < 64)
            first[i] = id;
        ones += id == 1;
    }
    g3n_sampler_free(s);
    assert_true(fabs((double)ones / draws - 0.75) < 0.03);
    ASSERT_OK(g3n_sampler_create(&s, &p, 2, &err), err);
    for (int i = 0; i < 64; i++)
        assert_int_equal(g3n_sampler_sample(s, two, 0), first[i]);
    g3n_sampler_free(s);

    /* min_p 0.5 drops id 0 (probability 1/3 of the top's) */
    p.min_p = 0.5f;
    assert_sampler_always_picks(&p, 2, two, 200, 1);

    /* temperature 0.05 sharpens to the top id */
    p = g3n_sampling_default_params();
    p.do_sample = 1;
    p.temperature = 0.05f;
    assert_sampler_always_picks(&p, 6, logits, 200, 4);

    /* bad parameters are refused */
    p.top_p = 0.0f;
    assert_int_equal(g3n_sampler_create(&s, &p, 6, &err), G3N_ERR);
}

typedef struct stop_after {
    int64_t limit;
    int64_t seen;
} stop_after;

static int stop_callback(void *user, int64_t step, int32_t token)
{
    (void)token;
    stop_after *s = user;
    s->seen = step + 1;
    return step + 1 >= s->limit;
}

/* Generation stops on an eos id and on the callback's request; greedy
 * generation equals argmax of the teacher-forced logits. */
static void test_generate_stops_and_matches_teacher_forcing(void **state)
{
    (void)state;
    loaded l;
    load_synth(&l, "text-tiny", 11);
    g3n_error err = {{0}};
    const int64_t P = 10, N = 12, V = l.model.vocab_size;
    int32_t ids[10 + 12];
    make_ids(ids, P, l.config.text.vocab_size_per_layer_input, 9);
    g3n_text_session_params sp = g3n_text_session_default_params(&l.model);
    sp.max_positions = P + N;
    g3n_text_session *s = NULL;
    ASSERT_OK(g3n_text_session_create(&s, &l.model, &sp, &err), err);
    g3n_generate_params gp = g3n_generate_default_params(&l.model);
    gp.max_new_tokens = N;
    gp.num_eos_ids = 0;
    int64_t produced = 0;
    g3n_generate_stats stats;
    ASSERT_OK(g3n_text_generate(s, ids, P, &gp, ids + P, &produced, &stats, &err), err);
    assert_int_equal(produced, N);
    assert_int_equal(stats.decode_forwards, N - 1);

    float *logits = malloc((size_t)((P + N) * V) * sizeof(float));
    g3n_text_session_reset(s);
    ASSERT_OK(g3n_text_session_forward_ids(s, ids, P + N, logits, 1, &err), err);
    for (int64_t k = 0; k < N; k++) {
        int32_t expected = g3n_argmax(logits + (P - 1 + k) * V, l.config.text.vocab_size_per_layer_input);
        assert_int_equal(ids[P + k], expected);
    }

    /* eos: make the third generated token an eos id */
    g3n_text_session_reset(s);
    gp.eos_ids[0] = ids[P + 2];
    gp.num_eos_ids = 1;
    int32_t out[12];
    ASSERT_OK(g3n_text_generate(s, ids, P, &gp, out, &produced, &stats, &err), err);
    int64_t first_eos = 0;
    while (ids[P + first_eos] != gp.eos_ids[0])
        first_eos++;
    assert_int_equal(produced, first_eos + 1);
    assert_true(stats.stopped_on_eos);

    /* the callback stops it */
    g3n_text_session_reset(s);
    gp.num_eos_ids = 0;
    stop_after stop = {4, 0};
    gp.on_token = stop_callback;
    gp.user = &stop;
    ASSERT_OK(g3n_text_generate(s, ids, P, &gp, out, &produced, &stats, &err), err);
    assert_int_equal(produced, 4);
    assert_int_equal(stop.seen, 4);

    free(logits);
    g3n_text_session_free(s);
    unload(&l);
}

/* generation_config.json supplies sampling defaults and eos ids. */
static void test_generation_config(void **state)
{
    (void)state;
    char dir[1024], file[1200];
    g3n_error err = {{0}};
    g3n_test_temp_dir(dir, sizeof(dir));
    assert_true(dir[0] != '\0');
    snprintf(file, sizeof(file), "%s/generation_config.json", dir);
    FILE *f = fopen(file, "w");
    assert_non_null(f);
    fputs("{\"do_sample\": true, \"top_k\": 64, \"top_p\": 0.95, \"temperature\": 1.0, "
          "\"eos_token_id\": [1, 106], \"bos_token_id\": 2}\n",
          f);
    fclose(f);
    g3n_sampling_params p = g3n_sampling_default_params();
    int eos[G3N_MAX_EOS_IDS], n = 0, found = 0;
    ASSERT_OK(g3n_generation_config_load(dir, &p, eos, &n, &found, &err), err);
    assert_int_equal(found, 1);
    assert_int_equal(p.do_sample, 1);
    assert_int_equal(p.top_k, 64);
    assert_true(fabsf(p.top_p - 0.95f) < 1e-6f);
    assert_int_equal(n, 2);
    assert_int_equal(eos[0], 1);
    assert_int_equal(eos[1], 106);
    g3n_test_remove_tree(dir);
    /* absent: not an error */
    ASSERT_OK(g3n_generation_config_load(dir, &p, eos, &n, &found, &err), err);
    assert_int_equal(found, 0);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_long_prompt_cache_matches_teacher_forced),
        cmocka_unit_test(test_external_embeddings_match_ids),
        cmocka_unit_test(test_list_tensors_matches_checkpoint),
        cmocka_unit_test(test_checkpoint_matches_synth),
        cmocka_unit_test(test_missing_tensor_is_named),
        cmocka_unit_test(test_sampling),
        cmocka_unit_test(test_generate_stops_and_matches_teacher_forcing),
        cmocka_unit_test(test_generation_config),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
