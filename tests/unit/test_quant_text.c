/* Accuracy budgets of the fast weight formats (issue 8) on the text goldens.
 *
 * What the goldens allow: these synthetic random-weight networks amplify any
 * perturbation chaotically along the layers (the fixture README: f32 rounding
 * of 1e-7 grows to rel-L2 5e-4 in the logits). Measured here, int8 weights in
 * q_proj alone (weight-only, f32 activations) already move text-tiny's logits
 * by rel-L2 0.64 after 30 layers; so the local error of one layer is the
 * meaningful budget and the end-to-end numbers are regression guards:
 *   bf16 (stored weights, x rounded to bf16 in products of 16 or more rows:
 *        AVX512-BF16 prefill, as llama.cpp's BF16; the sparse MLP in decode):
 *        text-tiny after layer 0 rel-L2 <= 1e-2 (measured 4.6e-3); text-wide
 *        logits rel-L2 <= 0.25 (measured 0.11); with the products and the KV
 *        cache kept in f32 the exact tolerances (logits and decode-step logits rel-L2 <= 3e-3)
 *        and the same 24 greedy tokens on text-tiny: the sparse MLP is exact;
 *   q8:  text-tiny after decoder layer 0 rel-L2 <= 2e-2 (measured 1.4e-2 at
 *        width 64, two blocks per row); text-wide logits rel-L2 <= 0.25
 *        (measured 0.18 over 10 layers at the real widths);
 *   q4:  text-tiny after layer 0 rel-L2 <= 0.25 (measured 0.18); text-wide
 *        logits rel-L2 <= 1.0 (measured 0.74).
 * The formats run with their default half KV cache (G3N_KV_F16); measured with
 * it: bf16 4.6e-3 (layer 0); q8 1.6e-2 (layer 0), text-wide 0.21 (logits) and
 * 0.24 (decode steps); q4 0.18 (layer 0), text-wide 0.74.
 * Teacher-forced logits go through the prefill (GEMM) path, the greedy decode
 * through the one-token path with the sparse MLP. */
#include <math.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "check.h"
#include "generate.h"
#include "matmul.h"
#include "quant.h"
#include "test_util.h"
#include "text_model.h"

typedef struct run_result {
    double layer0_rel;  /* text-tiny: the streams after decoder layer 0 (prefill_hidden.1), -1 if absent */
    double logits_rel, steps_rel;
    int64_t tokens_same, tokens_total;
} run_result;

typedef struct steps_capture {
    float *logits;
    int64_t vocab, capacity;
} steps_capture;

static void capture(void *user, int64_t step, const float *logits, int64_t vocab)
{
    steps_capture *c = user;
    if (step < c->capacity)
        memcpy(c->logits + step * vocab, logits, sizeof(float) * (size_t)vocab);
}

static int32_t *ids_of(const g3n_tensor *t, int64_t *count)
{
    *count = t->shape[0];
    int32_t *ids = malloc(sizeof(int32_t) * (size_t)*count);
    for (int64_t i = 0; i < *count; i++)
        ids[i] = t->dtype == G3N_DTYPE_I64 ? (int32_t)((const int64_t *)t->data)[i] : ((const int32_t *)t->data)[i];
    return ids;
}

static void run_case(const char *case_name, g3n_weight_format format, int f32_products, run_result *out)
{
    g3n_check_case c;
    uint64_t seed;
    g3n_test_case_open(&c, case_name, &seed);
    g3n_error err;
    g3n_tensor golden_input, golden_prompt, golden_logits, golden_steps;
    assert_int_equal(g3n_check_golden(&c, "input_ids", &golden_input, &err), G3N_OK);
    assert_int_equal(g3n_check_golden(&c, "prompt_ids", &golden_prompt, &err), G3N_OK);
    assert_int_equal(g3n_check_golden(&c, "logits", &golden_logits, &err), G3N_OK);
    assert_int_equal(g3n_check_golden(&c, "decode_step_logits", &golden_steps, &err), G3N_OK);
    int64_t total, prompt_len;
    int32_t *input_ids = ids_of(&golden_input, &total);
    int32_t *prompt = ids_of(&golden_prompt, &prompt_len);

    g3n_weights *weights = NULL;
    g3n_text_model model;
    assert_int_equal(g3n_weights_open_synth(&weights, seed, G3N_DTYPE_BF16, &err), G3N_OK);
    if (g3n_text_model_load(&model, weights, &c.config, &err) != G3N_OK ||
        g3n_text_model_select_weights(&model, format, NULL, NULL, &err) != G3N_OK)
        fail_msg("%s", err.message);
    if (f32_products)
        g3n_text_model_set_bf16_products(&model, 0);
    const int64_t V = model.vocab_size;
    g3n_text_session_params params = g3n_text_session_default_params(&model);
    params.max_positions = total + 1;
    /* the fast formats' default is a half KV cache (its own budget: test_text_batch.c); the
     * sparse-MLP exactness check keeps everything else exact, the cache included */
    if (f32_products)
        params.kv_type = G3N_KV_F32;
    g3n_text_session *session = NULL;
    assert_int_equal(g3n_text_session_create(&session, &model, &params, &err), G3N_OK);
    float *logits = malloc(sizeof(float) * (size_t)(total * V));
    assert_int_equal(g3n_text_session_forward_ids(session, input_ids, total, logits, 1, &err), G3N_OK);
    double max_abs, mean_abs;
    g3n_tensor golden_f32;
    assert_int_equal(g3n_tensor_to_f32(&golden_logits, &golden_f32, &err), G3N_OK);
    g3n_compare_stats(logits, golden_f32.data, total * V, &out->logits_rel, &max_abs, &mean_abs);
    g3n_tensor_free(&golden_f32);

    g3n_text_session_reset(session);
    g3n_tensor golden_layer0;
    g3n_test_layer_capture layer0 = {NULL, prompt_len};
    out->layer0_rel = -1.0;
    if (g3n_check_golden(&c, "prefill_hidden.1", &golden_layer0, &err) == G3N_OK) {
        layer0.data = calloc((size_t)(golden_layer0.shape[0] * prompt_len * model.hidden_size), sizeof(float));
        g3n_text_session_set_layer_hook(session, g3n_test_capture_layer0, &layer0);
    }
    const int64_t steps = total - prompt_len;
    steps_capture cap = {malloc(sizeof(float) * (size_t)(steps * V)), V, steps};
    int32_t *generated = malloc(sizeof(int32_t) * (size_t)steps);
    g3n_generate_params gen = g3n_generate_default_params(&model);
    gen.max_new_tokens = steps;
    gen.num_eos_ids = 0;
    gen.allowed_vocab = model.config->vocab_size_per_layer_input;
    gen.on_logits = capture;
    gen.user = &cap;
    int64_t produced = 0;
    g3n_generate_stats stats;
    assert_int_equal(g3n_text_generate(session, prompt, prompt_len, &gen, generated, &produced, &stats, &err), G3N_OK);
    assert_int_equal(produced, steps);
    if (layer0.data) {
        assert_int_equal(g3n_tensor_to_f32(&golden_layer0, &golden_f32, &err), G3N_OK);
        g3n_compare_stats(layer0.data, golden_f32.data, g3n_tensor_numel(&golden_f32), &out->layer0_rel, &max_abs,
                          &mean_abs);
        g3n_tensor_free(&golden_f32);
        free(layer0.data);
    }
    /* the decode-step goldens follow the golden tokens: compare only while ours agree */
    int64_t same = 0;
    while (same < steps && generated[same] == input_ids[prompt_len + same])
        same++;
    const int64_t compared = same < steps ? same + 1 : steps;
    assert_int_equal(g3n_tensor_to_f32(&golden_steps, &golden_f32, &err), G3N_OK);
    g3n_compare_stats(cap.logits, golden_f32.data, compared * V, &out->steps_rel, &max_abs, &mean_abs);
    g3n_tensor_free(&golden_f32);
    out->tokens_same = same;
    out->tokens_total = steps;
    printf("  %s --weights %s: layer 0 rel-L2 %.3g, logits rel-L2 %.3g, decode steps rel-L2 %.3g (%lld steps), greedy tokens %lld/%lld "
           "identical\n",
           case_name, g3n_weight_format_name(format), out->layer0_rel, out->logits_rel, out->steps_rel, (long long)compared,
           (long long)same, (long long)steps);

    free(cap.logits);
    free(generated);
    free(logits);
    g3n_text_session_free(session);
    g3n_text_model_free(&model);
    g3n_weights_close(weights);
    free(input_ids);
    free(prompt);
    g3n_check_case_close(&c);
}

static void test_tiny_bf16(void **state)
{
    (void)state;
    run_result r;
    run_case("text-tiny", G3N_WEIGHTS_BF16, 0, &r);
    assert_true(r.layer0_rel >= 0.0 && r.layer0_rel <= 1e-2);
}

static void test_wide_bf16(void **state)
{
    (void)state;
    run_result r;
    run_case("text-wide", G3N_WEIGHTS_BF16, 0, &r);
    assert_true(r.logits_rel <= 0.25);
    assert_true(r.steps_rel <= 0.25);
}

static void test_tiny_bf16_sparse_is_exact(void **state)
{
    (void)state;
    run_result r;
    run_case("text-tiny", G3N_WEIGHTS_BF16, 1, &r);
    assert_true(r.logits_rel <= 3e-3);
    assert_true(r.steps_rel <= 3e-3);
    assert_true(r.layer0_rel >= 0.0 && r.layer0_rel <= 3e-3);
    assert_int_equal(r.tokens_same, r.tokens_total);
}

static void test_tiny_q8(void **state)
{
    (void)state;
    run_result r;
    run_case("text-tiny", G3N_WEIGHTS_Q8, 0, &r);
    assert_true(r.layer0_rel >= 0.0 && r.layer0_rel <= 2e-2);
}

static void test_tiny_q4(void **state)
{
    (void)state;
    run_result r;
    run_case("text-tiny", G3N_WEIGHTS_Q4, 0, &r);
    assert_true(r.layer0_rel >= 0.0 && r.layer0_rel <= 0.25);
}

static void test_wide_q8(void **state)
{
    (void)state;
    run_result r;
    run_case("text-wide", G3N_WEIGHTS_Q8, 0, &r);
    assert_true(r.logits_rel <= 0.25);
    assert_true(r.steps_rel <= 0.25);
}

static void test_wide_q4(void **state)
{
    (void)state;
    run_result r;
    run_case("text-wide", G3N_WEIGHTS_Q4, 0, &r);
    assert_true(r.logits_rel <= 1.0);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_tiny_bf16_sparse_is_exact), cmocka_unit_test(test_tiny_bf16),
        cmocka_unit_test(test_wide_bf16),                 cmocka_unit_test(test_tiny_q8),
        cmocka_unit_test(test_tiny_q4),                   cmocka_unit_test(test_wide_q8),
        cmocka_unit_test(test_wide_q4),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
