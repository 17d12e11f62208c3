/* A real daemon process (g3n-embedder on the text-tiny config, synthetic
 * weights) behind a broker on TCP 127.0.0.1: a malformed protobuf, another
 * protocol version and a field out of range are each answered with a clear
 * Error while the daemon keeps serving; a valid request gives exactly what the
 * embedder computes in this process; SIGTERM stops it cleanly (exit 0). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>
#include <signal.h>
#include <spawn.h>
#include <sys/wait.h>
#include <unistd.h>

#include "config.h"
#include "embedder.h"
#include "test_util.h"
#include "transport.h"
#include "weights.h"
#include "wire.h"

extern char **environ;

static void test_embedder_daemon_rejects_and_keeps_serving(void **state)
{
    (void)state;
    char binary[1200], config_path[1024], synth[1100];
    const char *g3n = g3n_test_binary();
    snprintf(binary, sizeof(binary), "%s", g3n);
    char *slash = strrchr(binary, '/');
    if (slash)
        *slash = '\0';
    slash = strrchr(binary, '/');
    if (slash)
        *slash = '\0';
    else
        snprintf(binary, sizeof(binary), ".");
    strncat(binary, "/g3n-embedder", sizeof(binary) - strlen(binary) - 1);
    if (access(binary, X_OK) != 0) {
        print_message("skipped: no daemon binary at %s\n", binary);
        skip();
    }
    g3n_test_fixture("text-tiny/config.json", config_path, sizeof(config_path));
    snprintf(synth, sizeof(synth), "%s:11", config_path);

    g3n_transport_options o = g3n_transport_default_options();
    o.heartbeat_interval_ms = 100;
    o.heartbeat_timeout_ms = 1000;
    o.no_worker_wait_ms = 2000;
    o.insecure = 1; /* about message checks; the CURVE daemons: tests/pipeline/daemons_tcp.sh, test_curve.c */
    const char *bind = "tcp://127.0.0.1:45891";
    g3n_broker *broker;
    g3n_error err = {{0}};
    if (g3n_broker_start(&broker, &bind, 1, &o, &err) != G3N_OK) {
        print_message("skipped: %s\n", err.message);
        skip();
    }
    char *args[] = {binary,         "--synth", synth, "--connect", (char *)bind, "--threads", "1", "--heartbeat-ms",
                    "100", "--heartbeat-timeout-ms", "1000", "--insecure", NULL};
    pid_t pid;
    assert_int_equal(posix_spawn(&pid, binary, NULL, NULL, args, environ), 0);
    if (g3n_broker_wait_workers(broker, G3N_ROLE_EMBEDDER, 1, 20000, &err) != G3N_OK) {
        kill(pid, SIGKILL);
        waitpid(pid, NULL, 0);
        fail_msg("%s", err.message);
    }
    g3n_client *client;
    assert_int_equal(g3n_client_open(&client, broker, &err), G3N_OK);
    g3n_request_options ro = {G3N_ROLE_EMBEDDER, 0, NULL};
    g3n_reply r;
    uint64_t id;

    /* 1. a malformed protobuf */
    const uint8_t garbage[] = {0x0a, 0xff, 0xff, 0xff, 0xff, 0x0f, 0x01, 0x02};
    assert_int_equal(g3n_client_submit_bytes(client, &ro, garbage, sizeof(garbage), &id, &err), G3N_OK);
    assert_int_equal(g3n_client_receive(client, 5000, &r, &err), G3N_OK);
    assert_int_equal(r.request_id, id);
    assert_int_equal(r.envelope->body_case, G3N__ENVELOPE__BODY_ERROR);
    assert_int_equal(r.envelope->error->code, G3N__ERROR_CODE__ERROR_BAD_REQUEST);
    g3n_reply_clear(&r);

    /* 2. another protocol version */
    int32_t ids[5] = {2, 17, 300, 511, 4};
    int64_t shape[1] = {5};
    G3n__Envelope env;
    G3n__EmbedRequest embed;
    g3n__envelope__init(&env);
    g3n__embed_request__init(&embed);
    g3n_wire_tensor t_ids;
    g3n_wire_tensor_borrow(&t_ids, G3N_DTYPE_I32, 1, shape, ids);
    embed.ids = &t_ids.message;
    env.body_case = G3N__ENVELOPE__BODY_EMBED;
    env.embed = &embed;
    env.protocol_version = 99;
    size_t size = g3n__envelope__get_packed_size(&env);
    uint8_t *bytes = malloc(size);
    g3n__envelope__pack(&env, bytes);
    assert_int_equal(g3n_client_submit_bytes(client, &ro, bytes, size, &id, &err), G3N_OK);
    free(bytes);
    assert_int_equal(g3n_client_receive(client, 5000, &r, &err), G3N_OK);
    assert_int_equal(r.envelope->error->code, G3N__ERROR_CODE__ERROR_VERSION_MISMATCH);
    assert_non_null(strstr(r.envelope->error->message, "version 99"));
    g3n_reply_clear(&r);

    /* 3. an id outside the vocabulary (text-tiny: 640) */
    ids[2] = 640;
    assert_int_equal(g3n_client_call(client, &ro, &env, NULL, NULL, &r, &err), G3N_ERR);
    assert_int_equal(r.envelope->error->code, G3N__ERROR_CODE__ERROR_BAD_REQUEST);
    assert_non_null(strstr(err.message, "embed.ids[2]"));
    g3n_reply_clear(&r);
    ids[2] = 300;

    /* 4. still serving: the reply equals the embedder run here */
    assert_int_equal(g3n_client_call(client, &ro, &env, NULL, NULL, &r, &err), G3N_OK);
    g3n_model_config config;
    g3n_weights *weights;
    g3n_embedder embedder;
    assert_int_equal(g3n_config_load(&config, config_path, &err), G3N_OK);
    assert_int_equal(g3n_weights_open_synth(&weights, 11, G3N_DTYPE_BF16, &err), G3N_OK);
    assert_int_equal(g3n_embedder_load(&embedder, weights, &config, &err), G3N_OK);
    float *embeds = malloc(sizeof(float) * 5 * (size_t)embedder.hidden_size);
    float *per_layer = malloc(sizeof(float) * 5 * (size_t)embedder.per_layer_width);
    assert_int_equal(g3n_embedder_build(&embedder, ids, 5, NULL, 0, 0, 5, embeds, per_layer, &err), G3N_OK);
    g3n_tensor e, p;
    int64_t eshape[2] = {5, embedder.hidden_size};
    int64_t pshape[3] = {5, config.text.num_hidden_layers, config.text.hidden_size_per_layer_input};
    assert_int_equal(g3n_wire_tensor_view(r.envelope->embed_reply->inputs_embeds, "inputs_embeds", G3N_DTYPE_F32, 2,
                                          eshape, 0, &e, &err),
                     G3N_OK);
    assert_int_equal(g3n_wire_tensor_view(r.envelope->embed_reply->per_layer_inputs, "per_layer_inputs", G3N_DTYPE_F32,
                                          3, pshape, 0, &p, &err),
                     G3N_OK);
    assert_memory_equal(e.data, embeds, sizeof(float) * 5 * (size_t)embedder.hidden_size);
    assert_memory_equal(p.data, per_layer, sizeof(float) * 5 * (size_t)embedder.per_layer_width);
    g3n_reply_clear(&r);
    free(embeds);
    free(per_layer);
    g3n_weights_close(weights);
    g3n_config_free(&config);

    /* 5. SIGTERM: a clean exit, and the broker learns at once (Goodbye) */
    kill(pid, SIGTERM);
    int status = 0;
    for (int i = 0; i < 100; i++) {
        if (waitpid(pid, &status, WNOHANG) == pid)
            break;
        usleep(50000);
        if (i == 99) {
            kill(pid, SIGKILL);
            waitpid(pid, &status, 0);
            fail_msg("the daemon did not stop within 5 s of SIGTERM");
        }
    }
    assert_true(WIFEXITED(status));
    assert_int_equal(WEXITSTATUS(status), 0);
    g3n_broker_stats stats;
    for (int i = 0; i < 40; i++) {
        g3n_broker_get_stats(broker, &stats);
        if (stats.live_workers[G3N_ROLE_EMBEDDER] == 0)
            break;
        usleep(10000);
    }
    assert_int_equal(stats.live_workers[G3N_ROLE_EMBEDDER], 0);
    g3n_client_close(client);
    g3n_broker_stop(broker);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_embedder_daemon_rejects_and_keeps_serving),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
