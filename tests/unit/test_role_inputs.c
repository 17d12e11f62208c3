/* The worker roles against hostile or empty inputs (issue 18): the roles of
 * the mm-tiny config (synthetic weights) as threads behind a broker over
 * inproc://. Each request below is answered with a clear error (never a
 * crash: the sanitizer build aborts on memcpy from NULL), and the role keeps
 * serving. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "config.h"
#include "pipeline.h"
#include "roles.h"
#include "test_util.h"
#include "transport.h"
#include "weights.h"
#include "wire.h"

typedef struct fixture {
    g3n_model_config config;
    g3n_weights *weights;
    g3n_broker *broker;
    g3n_local_roles local;
    g3n_client *client;
} fixture;

static int setup(void **state)
{
    fixture *f = calloc(1, sizeof(*f));
    char path[1024];
    g3n_error err = {{0}};
    if (g3n_config_load(&f->config, g3n_test_fixture("mm-tiny/config.json", path, sizeof(path)), &err) != G3N_OK ||
        g3n_weights_open_synth(&f->weights, 41, G3N_DTYPE_BF16, &err) != G3N_OK) {
        fprintf(stderr, "%s\n", err.message);
        return -1;
    }
    g3n_transport_options transport = g3n_transport_default_options();
    transport.no_worker_wait_ms = 2000;
    const char *endpoint = "inproc://g3n-test-role-inputs";
    if (g3n_broker_start(&f->broker, &endpoint, 1, &transport, &err) != G3N_OK)
        return -1;
    g3n_role_options ro;
    memset(&ro, 0, sizeof(ro));
    ro.threads = 1;
    const unsigned mask = (1u << G3N_ROLE_AUDIO_ENCODER) | (1u << G3N_ROLE_VISION_ENCODER);
    if (g3n_local_roles_start(&f->local, f->broker, endpoint, f->weights, &f->config, &ro, mask, &transport, &err) !=
            G3N_OK ||
        g3n_broker_wait_workers(f->broker, G3N_ROLE_AUDIO_ENCODER, 1, 10000, &err) != G3N_OK ||
        g3n_broker_wait_workers(f->broker, G3N_ROLE_VISION_ENCODER, 1, 10000, &err) != G3N_OK ||
        g3n_client_open(&f->client, f->broker, &err) != G3N_OK) {
        fprintf(stderr, "%s\n", err.message);
        return -1;
    }
    *state = f;
    return 0;
}

static int teardown(void **state)
{
    fixture *f = *state;
    g3n_client_close(f->client);
    g3n_local_roles_stop(&f->local);
    g3n_broker_stop(f->broker);
    g3n_weights_close(f->weights);
    g3n_config_free(&f->config);
    free(f);
    return 0;
}

/* Calls the role; expects an Error of `code` whose message holds `fragment`. */
static void expect_error(fixture *f, int role, G3n__Envelope *env, int code, const char *fragment)
{
    g3n_request_options ro = {role, 0, NULL};
    g3n_reply r;
    g3n_error err = {{0}};
    assert_int_equal(g3n_client_call(f->client, &ro, env, NULL, NULL, &r, &err), G3N_ERR);
    assert_non_null(r.envelope);
    assert_int_equal(r.envelope->body_case, G3N__ENVELOPE__BODY_ERROR);
    if ((int)r.envelope->error->code != code || !strstr(r.envelope->error->message, fragment))
        fail_msg("expected %s with '%s', got %s: %s", g3n_wire_error_code_name(code), fragment,
                 g3n_wire_error_code_name(r.envelope->error->code), r.envelope->error->message);
    g3n_reply_clear(&r);
}

/* An EncodeAudioRequest whose samples tensor has shape [0] and no data: a
 * clear error (it reached memcpy(dst, NULL, 0): UBSan abort, no answer). */
static void test_audio_empty_samples(void **state)
{
    fixture *f = *state;
    G3n__Envelope env;
    G3n__EncodeAudioRequest q;
    g3n__envelope__init(&env);
    g3n__encode_audio_request__init(&q);
    g3n_wire_tensor samples;
    int64_t shape[1] = {0};
    g3n_wire_tensor_borrow(&samples, G3N_DTYPE_F32, 1, shape, NULL);
    q.samples = &samples.message;
    env.body_case = G3N__ENVELOPE__BODY_ENCODE_AUDIO;
    env.encode_audio = &q;
    expect_error(f, G3N_ROLE_AUDIO_ENCODER, &env, G3N__ERROR_CODE__ERROR_BAD_REQUEST, "encode_audio.samples: empty");
    /* features of shape [0, 128] likewise */
    g3n_wire_tensor features;
    int64_t fshape[2] = {0, 128};
    g3n_wire_tensor_borrow(&features, G3N_DTYPE_F32, 2, fshape, NULL);
    q.samples = NULL;
    q.features = &features.message;
    expect_error(f, G3N_ROLE_AUDIO_ENCODER, &env, G3N__ERROR_CODE__ERROR_BAD_REQUEST, "encode_audio.features");
    /* still serving: one second of silence-free noise encodes */
    float *noise = malloc(sizeof(float) * 16000);
    g3n_test_random_floats(noise, 16000, 3);
    shape[0] = 16000;
    g3n_wire_tensor_borrow(&samples, G3N_DTYPE_F32, 1, shape, noise);
    q.features = NULL;
    q.samples = &samples.message;
    g3n_request_options ro = {G3N_ROLE_AUDIO_ENCODER, 0, NULL};
    g3n_reply r;
    g3n_error err = {{0}};
    if (g3n_client_call(f->client, &ro, &env, NULL, NULL, &r, &err) != G3N_OK)
        fail_msg("%s", err.message);
    assert_int_equal(r.envelope->body_case, G3N__ENVELOPE__BODY_ENCODE_AUDIO_REPLY);
    g3n_reply_clear(&r);
    free(noise);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_audio_empty_samples),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
