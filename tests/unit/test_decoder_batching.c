/* Continuous batching in the decoder role (issue 8, item 5): several chats
 * running at the same time through the pipeline (roles as threads over
 * inproc://, with g3n serve's handler threads: one per decoder session) have their decode steps
 * computed together - one batched forward for the steps pending at once - and
 * each chat's greedy tokens equal those of the same chat run alone. */
#include <pthread.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "check.h"
#include "pipeline.h"
#include "roles.h"
#include "test_util.h"
#include "transport.h"

#define CHATS 3
#define STEPS 16

typedef struct chat {
    g3n_broker *broker;
    const g3n_model_config *config;
    const int32_t *prompt;
    int64_t prompt_len;
    int32_t tokens[STEPS];
    int64_t produced;
    int rc;
    char message[512];
} chat;

static int on_token(void *user, int64_t step, int32_t token, const float *logits, int64_t vocab)
{
    chat *c = user;
    (void)logits;
    (void)vocab;
    if (step < STEPS)
        c->tokens[step] = token;
    c->produced = step + 1;
    return 0;
}

static void *run_chat(void *user)
{
    chat *c = user;
    g3n_error err = {{0}};
    g3n_client *client = NULL;
    c->rc = g3n_client_open(&client, c->broker, &err);
    if (c->rc == G3N_OK) {
        g3n_pipeline_generate_params params = g3n_pipeline_default_params(c->config);
        params.max_new_tokens = STEPS;
        params.num_eos_ids = 0;
        params.on_token = on_token;
        params.user = c;
        g3n_pipeline_stats stats;
        c->rc = g3n_pipeline_generate(client, c->prompt, c->prompt_len, NULL, &params, &stats, &err);
    }
    if (c->rc != G3N_OK)
        snprintf(c->message, sizeof(c->message), "%s", err.message);
    g3n_client_close(client);
    return NULL;
}

static void test_concurrent_chats_batch_and_match_solo(void **state)
{
    (void)state;
    g3n_check_case c;
    uint64_t seed;
    g3n_test_case_open(&c, "text-tiny", &seed);
    g3n_error err = {{0}};
    g3n_tensor input;
    assert_int_equal(g3n_check_golden(&c, "input_ids", &input, &err), G3N_OK);
    assert_true(input.dtype == G3N_DTYPE_I32 && input.shape[0] >= 40);
    const int32_t *ids = input.data;

    g3n_weights *weights;
    assert_int_equal(g3n_weights_open_synth(&weights, seed, G3N_DTYPE_BF16, &err), G3N_OK);
    g3n_transport_options transport = g3n_transport_default_options();
    const char *endpoint = "inproc://g3n-test-decoder-batching";
    g3n_broker *broker;
    assert_int_equal(g3n_broker_start(&broker, &endpoint, 1, &transport, &err), G3N_OK);
    const int roles[2] = {G3N_ROLE_EMBEDDER, G3N_ROLE_DECODER};
    g3n_role *role[2];
    g3n_worker *worker[2];
    for (int i = 0; i < 2; i++) {
        g3n_role_options ro;
        memset(&ro, 0, sizeof(ro));
        ro.threads = 1;
        ro.max_sessions = 4;
        if (g3n_role_open(&role[i], roles[i], weights, &c.config, &ro, &err) != G3N_OK)
            fail_msg("%s", err.message);
        g3n_worker_options wo;
        memset(&wo, 0, sizeof(wo));
        wo.role = roles[i];
        wo.endpoint = endpoint;
        wo.model_id = g3n_weights_describe(weights);
        /* as g3n serve's in-process roles: the decoder takes one request per session it may hold
         * (with 2, a third concurrent chat's step waited in the broker's queue) */
        wo.capacity = g3n_local_role_capacity(roles[i], &ro);
        if (roles[i] == G3N_ROLE_DECODER)
            assert_true(wo.capacity >= ro.max_sessions && wo.capacity >= CHATS);
        wo.zmq_context = g3n_broker_context(broker);
        wo.transport = transport;
        if (g3n_worker_start(&worker[i], &wo, g3n_role_handle, role[i], &err) != G3N_OK)
            fail_msg("%s", err.message);
    }
    for (int i = 0; i < 2; i++)
        assert_int_equal(g3n_broker_wait_workers(broker, roles[i], 1, 10000, &err), G3N_OK);

    /* different prompts (lengths 6, 13, 20 from different offsets): different positions every step */
    chat solo[CHATS], together[CHATS];
    for (int k = 0; k < CHATS; k++) {
        memset(&solo[k], 0, sizeof(solo[k]));
        solo[k].broker = broker;
        solo[k].config = &c.config;
        solo[k].prompt = ids + 5 * k;
        solo[k].prompt_len = 6 + 7 * k;
        together[k] = solo[k];
    }
    for (int k = 0; k < CHATS; k++) {
        run_chat(&solo[k]);
        if (solo[k].rc != G3N_OK)
            fail_msg("solo chat %d: %s", k, solo[k].message);
    }
    const g3n_role_decoder_stats before = g3n_role_decoder_stats_get(role[1]);
    assert_int_equal(before.batched_steps, 0); /* one chat at a time: nothing to batch */
    pthread_t threads[CHATS];
    for (int k = 0; k < CHATS; k++)
        assert_int_equal(pthread_create(&threads[k], NULL, run_chat, &together[k]), 0);
    for (int k = 0; k < CHATS; k++)
        pthread_join(threads[k], NULL);
    const g3n_role_decoder_stats after = g3n_role_decoder_stats_get(role[1]);
    for (int k = 0; k < CHATS; k++) {
        if (together[k].rc != G3N_OK)
            fail_msg("concurrent chat %d: %s", k, together[k].message);
        assert_int_equal(together[k].produced, STEPS);
        assert_memory_equal(together[k].tokens, solo[k].tokens, sizeof(solo[k].tokens));
    }
    const uint64_t steps = after.decode_steps - before.decode_steps;
    const uint64_t forwards = after.decode_batches - before.decode_batches;
    print_message("%d concurrent chats: %llu decode steps in %llu forwards (%llu shared one, largest batch %llu)\n",
                  CHATS, (unsigned long long)steps, (unsigned long long)forwards,
                  (unsigned long long)(after.batched_steps - before.batched_steps),
                  (unsigned long long)after.largest_batch);
    /* prefill answers the first token: STEPS - 1 decode steps per chat */
    assert_int_equal(steps, (uint64_t)CHATS * (STEPS - 1));
    assert_true(after.batched_steps > before.batched_steps && after.largest_batch >= 2);
    assert_true(forwards < steps);

    for (int i = 0; i < 2; i++)
        g3n_worker_stop(worker[i]);
    for (int i = 0; i < 2; i++)
        g3n_role_close(role[i]);
    g3n_broker_stop(broker);
    g3n_weights_close(weights);
    g3n_check_case_close(&c);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_concurrent_chats_batch_and_match_solo),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
