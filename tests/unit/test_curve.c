/* CurveZMQ on the broker's and the front door's tcp:// endpoints (issue 17):
 * key files (secret mode 0600, a readable one refused), plain tcp:// refused
 * without --insecure, and, against a CURVE broker with a keys folder: a
 * worker with no key, an unlisted key, a key listed for another role, or a
 * valid key of the same role reusing a live worker's name cannot register
 * and receives nothing while the real worker keeps serving; a key revoked
 * (file removed + SIGHUP) drops its worker and is refused from then on; at
 * the front door a client with no key, an unlisted key or a worker's key is
 * refused at once, a listed client is served. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <signal.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include <cmocka.h>

#include "config.h"
#include "curve_keys.h"
#include "front_door.h"
#include "test_util.h"
#include "tokenizer.h"
#include "transport.h"
#include "wire.h"

static char dir[512];

static double now_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

static void path_of(char *out, size_t size, const char *relative)
{
    snprintf(out, size, "%s/%s", dir, relative);
}

/* A pair DIR/secrets/NAME.key{,_secret}; listed as ROLE when role is non-NULL. */
static void make_key(const char *name, const char *role)
{
    char prefix[700], from[800], to[800];
    g3n_error err = {{0}};
    snprintf(prefix, sizeof(prefix), "%s/secrets/%s", dir, name);
    assert_int_equal(g3n_curve_keygen(prefix, &err), G3N_OK);
    if (!role)
        return;
    snprintf(from, sizeof(from), "%s.key", prefix);
    snprintf(to, sizeof(to), "%s/%s/%s.key", dir, role, name);
    assert_int_equal(link(from, to), 0);
}

static int setup(void **state)
{
    (void)state;
    g3n_test_temp_dir(dir, sizeof(dir));
    char path[800];
    const char *folders[] = {"secrets", "vision-encoder", "audio-encoder", "embedder", "decoder", "clients"};
    for (int i = 0; i < 6; i++) {
        path_of(path, sizeof(path), folders[i]);
        if (mkdir(path, 0700) != 0)
            return -1;
    }
    g3n_error err = {{0}};
    path_of(path, sizeof(path), "server");
    if (g3n_curve_keygen(path, &err) != G3N_OK)
        return -1;
    return 0;
}

static int teardown(void **state)
{
    (void)state;
    g3n_test_remove_tree(dir);
    return 0;
}

static g3n_transport_options fast_options(void)
{
    g3n_transport_options o = g3n_transport_default_options();
    o.heartbeat_interval_ms = 50;
    o.heartbeat_timeout_ms = 400;
    o.no_worker_wait_ms = 300;
    o.max_message_bytes = 1 << 20;
    return o;
}

static g3n_curve_options client_curve(const char *name)
{
    char secret[800], server[800];
    snprintf(secret, sizeof(secret), "%s/secrets/%s.key_secret", dir, name);
    path_of(server, sizeof(server), "server.key");
    g3n_curve_options c;
    g3n_error err = {{0}};
    if (g3n_curve_load_client(&c, secret, server, &err) != G3N_OK)
        fail_msg("%s", err.message);
    return c;
}

/* A worker in its own ZeroMQ context (as a daemon); key NULL: plain tcp:// (--insecure). */
static g3n_worker *start_worker(const char *endpoint, int role, const char *name, const char *key)
{
    g3n_worker_options wo;
    memset(&wo, 0, sizeof(wo));
    wo.role = role;
    wo.endpoint = endpoint;
    wo.name = name;
    wo.model_id = "test";
    wo.capacity = 1;
    wo.transport = fast_options();
    if (key)
        wo.transport.curve = client_curve(key);
    else
        wo.transport.insecure = 1;
    g3n_worker *w = NULL;
    g3n_error err = {{0}};
    if (g3n_worker_start(&w, &wo, NULL, NULL, &err) != G3N_OK)
        fail_msg("%s", err.message);
    return w;
}

static int ping(g3n_client *client, char *worker, size_t size)
{
    G3n__Envelope env;
    G3n__Ping p;
    g3n__envelope__init(&env);
    g3n__ping__init(&p);
    env.body_case = G3N__ENVELOPE__BODY_PING;
    env.ping = &p;
    g3n_request_options ro = {G3N_ROLE_DECODER, 0, NULL};
    g3n_reply r;
    g3n_error err = {{0}};
    int rc = g3n_client_call(client, &ro, &env, NULL, NULL, &r, &err);
    if (worker)
        snprintf(worker, size, "%s", r.worker);
    g3n_reply_clear(&r);
    return rc;
}

static int live(g3n_broker *broker, int role)
{
    g3n_broker_stats stats;
    g3n_broker_get_stats(broker, &stats);
    return stats.live_workers[role];
}

static void test_key_files(void **state)
{
    (void)state;
    char prefix[700], secret[800], public_path[800];
    g3n_error err = {{0}};
    path_of(prefix, sizeof(prefix), "secrets/k1");
    assert_int_equal(g3n_curve_keygen(prefix, &err), G3N_OK);
    snprintf(secret, sizeof(secret), "%s.key_secret", prefix);
    snprintf(public_path, sizeof(public_path), "%s.key", prefix);
    struct stat st;
    assert_int_equal(stat(secret, &st), 0);
    assert_int_equal(st.st_mode & 0777, 0600);
    char pub[G3N_CURVE_KEY_TEXT], pub2[G3N_CURVE_KEY_TEXT], sec[G3N_CURVE_KEY_TEXT];
    assert_int_equal(g3n_curve_read_public(public_path, pub, &err), G3N_OK);
    assert_int_equal(g3n_curve_read_secret(secret, pub2, sec, &err), G3N_OK);
    assert_string_equal(pub, pub2);
    assert_int_equal(strlen(sec), 40);
    /* the public file is not a secret file */
    assert_int_equal(g3n_curve_read_secret(public_path, pub2, sec, &err), G3N_ERR);
    /* never overwritten */
    assert_int_equal(g3n_curve_keygen(prefix, &err), G3N_ERR);
    assert_non_null(strstr(err.message, "exists"));
    /* a secret key readable by others is refused, with the fix in the message */
    assert_int_equal(chmod(secret, 0644), 0);
    assert_int_equal(g3n_curve_read_secret(secret, pub2, sec, &err), G3N_ERR);
    assert_non_null(strstr(err.message, "readable by group or others"));
    assert_non_null(strstr(err.message, "chmod 600"));
    /* a corrupt public key is refused */
    FILE *f = fopen(public_path, "w");
    fputs("public-key = \"not-a-key\"\n", f);
    fclose(f);
    assert_int_equal(g3n_curve_read_public(public_path, pub, &err), G3N_ERR);
}

static void test_plain_tcp_refused_without_insecure(void **state)
{
    (void)state;
    const char *bind = "tcp://127.0.0.1:45941";
    g3n_transport_options o = fast_options();
    g3n_broker *broker = NULL;
    g3n_error err = {{0}};
    assert_int_equal(g3n_broker_start(&broker, &bind, 1, &o, &err), G3N_ERR);
    assert_null(broker);
    assert_non_null(strstr(err.message, "--insecure"));
    g3n_worker_options wo;
    memset(&wo, 0, sizeof(wo));
    wo.role = G3N_ROLE_DECODER;
    wo.endpoint = bind;
    wo.transport = o;
    g3n_worker *w = NULL;
    assert_int_equal(g3n_worker_start(&w, &wo, NULL, NULL, &err), G3N_ERR);
    assert_null(w);
    /* inproc:// needs nothing */
    const char *inproc = "inproc://g3n-curve-test";
    assert_int_equal(g3n_broker_start(&broker, &inproc, 1, &o, &err), G3N_OK);
    g3n_broker_stop(broker);
}

static void test_workers_need_their_role_key(void **state)
{
    (void)state;
    make_key("decoder-a", "decoder");
    make_key("decoder-b", "decoder");
    make_key("embedder-a", "embedder");
    make_key("stranger", NULL);
    g3n_curve_install_reload_handler();
    const char *bind = "tcp://127.0.0.1:45943";
    g3n_transport_options o = fast_options();
    g3n_error err = {{0}};
    assert_int_equal(g3n_curve_load_server(&o.curve, dir, &err), G3N_OK);
    g3n_broker *broker;
    assert_int_equal(g3n_broker_start(&broker, &bind, 1, &o, &err), G3N_OK);
    g3n_worker *real = start_worker(bind, G3N_ROLE_DECODER, "decoder-real", "decoder-a");
    assert_int_equal(g3n_broker_wait_workers(broker, G3N_ROLE_DECODER, 1, 5000, &err), G3N_OK);
    g3n_client *client;
    assert_int_equal(g3n_client_open(&client, broker, &err), G3N_OK);

    g3n_worker *rogues[4] = {
        start_worker(bind, G3N_ROLE_DECODER, "rogue-plain", NULL),           /* no key */
        start_worker(bind, G3N_ROLE_DECODER, "rogue-stranger", "stranger"),  /* a key not listed */
        start_worker(bind, G3N_ROLE_DECODER, "rogue-role", "embedder-a"),    /* an embedder's key */
        start_worker(bind, G3N_ROLE_DECODER, "decoder-real", "decoder-b"),   /* a decoder key, another's name */
    };
    /* the real worker keeps serving all along */
    double t0 = now_s();
    int pings = 0;
    while (now_s() - t0 < 1.5) {
        char worker[64];
        assert_int_equal(ping(client, worker, sizeof(worker)), G3N_OK);
        assert_string_equal(worker, "decoder-real");
        pings++;
        usleep(20000);
    }
    assert_int_equal(live(broker, G3N_ROLE_DECODER), 1);
    assert_int_equal(g3n_worker_requests_received(real), (uint64_t)pings);
    for (int i = 0; i < 4; i++)
        assert_int_equal(g3n_worker_requests_received(rogues[i]), 0);
    assert_true(g3n_zap_refused(g3n_broker_zap(broker)) >= 1); /* the stranger */
    g3n_broker_stats stats;
    g3n_broker_get_stats(broker, &stats);
    assert_true(stats.messages_unauthorised >= 1); /* the embedder's key saying decoder */
    for (int i = 0; i < 4; i++)
        g3n_worker_stop(rogues[i]);

    /* revoked: its file removed, SIGHUP; the worker is dropped and stays out */
    char key_path[800];
    path_of(key_path, sizeof(key_path), "decoder/decoder-a.key");
    assert_int_equal(unlink(key_path), 0);
    uint64_t served = g3n_worker_requests_received(real);
    assert_int_equal(raise(SIGHUP), 0);
    for (int i = 0; i < 200 && live(broker, G3N_ROLE_DECODER) != 0; i++)
        usleep(10000);
    assert_int_equal(live(broker, G3N_ROLE_DECODER), 0);
    usleep(1000000); /* heartbeat timeouts: the worker tries to connect again */
    assert_int_equal(live(broker, G3N_ROLE_DECODER), 0);
    assert_int_equal(ping(client, NULL, 0), G3N_ERR);
    assert_int_equal(g3n_worker_requests_received(real), served);

    /* another decoder key still works, under the name the revoked one had */
    g3n_worker *other = start_worker(bind, G3N_ROLE_DECODER, "decoder-real-2", "decoder-b");
    assert_int_equal(g3n_broker_wait_workers(broker, G3N_ROLE_DECODER, 1, 5000, &err), G3N_OK);
    assert_int_equal(ping(client, NULL, 0), G3N_OK);
    g3n_client_close(client);
    g3n_worker_stop(other);
    g3n_worker_stop(real);
    g3n_broker_stop(broker);
}

static void test_front_door_needs_a_client_key(void **state)
{
    (void)state;
    make_key("client-a", "clients");
    make_key("stranger-client", NULL);
    make_key("decoder-c", "decoder");
    char config_path[1024], tokenizer_path[1024];
    g3n_test_fixture("text-tiny/config.json", config_path, sizeof(config_path));
    g3n_test_fixture("tokenizer/tokenizer.json", tokenizer_path, sizeof(tokenizer_path));
    g3n_model_config config;
    g3n_tokenizer *tokenizer;
    g3n_error err = {{0}};
    assert_int_equal(g3n_config_load(&config, config_path, &err), G3N_OK);
    assert_int_equal(g3n_tokenizer_load(&tokenizer, tokenizer_path, &err), G3N_OK);
    const char *bind = "tcp://127.0.0.1:45945";
    g3n_transport_options o = fast_options();
    assert_int_equal(g3n_curve_load_server(&o.curve, dir, &err), G3N_OK);
    g3n_broker *broker;
    assert_int_equal(g3n_broker_start(&broker, &bind, 1, &o, &err), G3N_OK);
    g3n_front_door_options fo = {.endpoint = "tcp://127.0.0.1:45946", .max_chats = 2};
    g3n_front_door *door;
    assert_int_equal(g3n_front_door_start(&door, broker, &config, tokenizer, &fo, &err), G3N_OK);

    G3n__ChatRequest request;
    G3n__ChatMessage message;
    G3n__ChatMessage *messages[1] = {&message};
    g3n__chat_request__init(&request);
    g3n__chat_message__init(&message);
    message.role = "user";
    message.text = "hello";
    request.n_messages = 1;
    request.messages = messages;
    request.max_new_tokens = 2;
    /* refused at the handshake, at once (not after the timeout) */
    const char *refused[3] = {NULL, "stranger-client", "decoder-c"};
    for (int i = 0; i < 3; i++) {
        g3n_transport_options c = fast_options();
        if (refused[i])
            c.curve = client_curve(refused[i]);
        else
            c.insecure = 1;
        double t0 = now_s();
        assert_int_equal(g3n_front_door_chat_secure(fo.endpoint, &c, &request, 20000, NULL, NULL, &err), G3N_ERR);
        assert_true(now_s() - t0 < 10.0);
        assert_non_null(strstr(err.message, "refused the connection"));
    }
    /* a listed client is served: here the pipeline has no worker, and says so */
    g3n_transport_options c = fast_options();
    c.curve = client_curve("client-a");
    assert_int_equal(g3n_front_door_chat_secure(fo.endpoint, &c, &request, 20000, NULL, NULL, &err), G3N_ERR);
    assert_null(strstr(err.message, "refused the connection"));
    assert_non_null(strstr(err.message, "worker"));

    g3n_front_door_stop(door);
    g3n_broker_stop(broker);
    g3n_tokenizer_free(tokenizer);
    g3n_config_free(&config);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_key_files),
        cmocka_unit_test(test_plain_tcp_refused_without_insecure),
        cmocka_unit_test(test_workers_need_their_role_key),
        cmocka_unit_test(test_front_door_needs_a_client_key),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
