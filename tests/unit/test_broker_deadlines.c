/* Deadlines in the broker (issue 18, item 3): a worker that heartbeats but
 * never answers no longer holds its request for ever (the client gets an
 * error at request_timeout_ms and the worker a Cancel), and the requests of a
 * client that closed are neither kept nor re-run on another worker when
 * theirs dies. Workers: the transport's built-in Ping handler (delay_ms). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <cmocka.h>

#include "test_util.h"
#include "transport.h"
#include "wire.h"

static double now_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

static g3n_transport_options options(void)
{
    g3n_transport_options o = g3n_transport_default_options();
    o.heartbeat_interval_ms = 50;
    o.heartbeat_timeout_ms = 400;
    o.no_worker_wait_ms = 300;
    o.request_timeout_ms = 500;
    return o;
}

static g3n_worker *start_worker(g3n_broker *broker, const char *endpoint, const char *name)
{
    g3n_worker_options wo;
    memset(&wo, 0, sizeof(wo));
    wo.role = G3N_ROLE_AUDIO_ENCODER;
    wo.endpoint = endpoint;
    wo.name = name;
    wo.model_id = "test";
    wo.capacity = 1;
    wo.zmq_context = g3n_broker_context(broker);
    wo.transport = options();
    g3n_worker *w = NULL;
    g3n_error err = {{0}};
    if (g3n_worker_start(&w, &wo, NULL, NULL, &err) != G3N_OK)
        fail_msg("%s", err.message);
    return w;
}

static void ping(G3n__Envelope *env, G3n__Ping *p, uint32_t delay_ms)
{
    g3n__envelope__init(env);
    g3n__ping__init(p);
    p->delay_ms = delay_ms;
    env->body_case = G3N__ENVELOPE__BODY_PING;
    env->ping = p;
}

static void test_stuck_worker_hits_the_deadline(void **state)
{
    (void)state;
    const char *endpoint = "inproc://test-deadline";
    g3n_transport_options o = options();
    g3n_broker *broker;
    g3n_error err = {{0}};
    assert_int_equal(g3n_broker_start(&broker, &endpoint, 1, &o, &err), G3N_OK);
    g3n_worker *w = start_worker(broker, endpoint, "audio-stuck");
    assert_int_equal(g3n_broker_wait_workers(broker, G3N_ROLE_AUDIO_ENCODER, 1, 2000, &err), G3N_OK);
    g3n_client *client;
    assert_int_equal(g3n_client_open(&client, broker, &err), G3N_OK);
    G3n__Envelope env;
    G3n__Ping p;
    ping(&env, &p, 4000); /* heartbeats all along, answers after 4 s */
    g3n_request_options ro = {G3N_ROLE_AUDIO_ENCODER, 1, NULL};
    uint64_t id;
    double t0 = now_s();
    assert_int_equal(g3n_client_submit(client, &ro, &env, &id, &err), G3N_OK);
    g3n_reply r;
    assert_int_equal(g3n_client_receive(client, 3000, &r, &err), G3N_OK);
    double waited = now_s() - t0;
    print_message("answered after %.2f s: %s\n", waited,
                  r.envelope->body_case == G3N__ENVELOPE__BODY_ERROR ? r.envelope->error->message : "(a reply)");
    assert_int_equal(r.request_id, id);
    assert_int_equal(r.envelope->body_case, G3N__ENVELOPE__BODY_ERROR);
    assert_non_null(strstr(r.envelope->error->message, "audio-stuck"));
    assert_true(waited < 1.5);
    g3n_reply_clear(&r);
    g3n_client_close(client);
    g3n_worker_stop(w);
    g3n_broker_stop(broker);
}

static void test_gone_client_not_rerun(void **state)
{
    (void)state;
    const char *endpoint = "inproc://test-gone-client";
    g3n_transport_options o = options();
    o.request_timeout_ms = 60000;
    g3n_broker *broker;
    g3n_error err = {{0}};
    assert_int_equal(g3n_broker_start(&broker, &endpoint, 1, &o, &err), G3N_OK);
    g3n_worker *a = start_worker(broker, endpoint, "audio-a");
    assert_int_equal(g3n_broker_wait_workers(broker, G3N_ROLE_AUDIO_ENCODER, 1, 2000, &err), G3N_OK);
    g3n_client *client;
    assert_int_equal(g3n_client_open(&client, broker, &err), G3N_OK);
    G3n__Envelope env;
    G3n__Ping p;
    ping(&env, &p, 3000);
    g3n_request_options ro = {G3N_ROLE_AUDIO_ENCODER, 1, NULL}; /* retryable */
    assert_int_equal(g3n_client_submit(client, &ro, &env, NULL, &err), G3N_OK); /* runs on a */
    assert_int_equal(g3n_client_submit(client, &ro, &env, NULL, &err), G3N_OK); /* queued behind it */
    usleep(150000);
    assert_int_equal(g3n_worker_requests_received(a), 1);
    g3n_client_close(client); /* the client gives up */
    usleep(150000);
    g3n_worker_kill(a);
    g3n_worker *b = start_worker(broker, endpoint, "audio-b");
    usleep(1500000); /* a is found dead (400 ms), b joined: nothing of the gone client reaches b */
    print_message("requests that reached the new worker: %llu\n",
                  (unsigned long long)g3n_worker_requests_received(b));
    assert_int_equal(g3n_worker_requests_received(b), 0);
    g3n_worker_stop(a);
    g3n_worker_stop(b);
    g3n_broker_stop(broker);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_stuck_worker_hits_the_deadline),
        cmocka_unit_test(test_gone_client_not_rerun),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
