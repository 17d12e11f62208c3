/* Graceful drain and health files (issue 22): a draining worker gets no new
 * requests (they go to the other replica) but still the ones pinned to it and
 * the ones it holds, which finish; g3n_worker_drain returns once it holds
 * nothing and its busy callback says 0, or fails after its timeout naming
 * what was left. The health file's probes: live while rewritten, ready only
 * in state "ready", stale or missing files fail. */
#include <pthread.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/time.h>
#include <time.h>
#include <unistd.h>

#include <cmocka.h>

#include "health_file.h"
#include "test_util.h"
#include "transport.h"
#include "wire.h"

static g3n_transport_options fast_options(void)
{
    g3n_transport_options o = g3n_transport_default_options();
    o.heartbeat_interval_ms = 50;
    o.heartbeat_timeout_ms = 400;
    o.no_worker_wait_ms = 300;
    o.max_message_bytes = 1 << 20;
    return o;
}

static g3n_worker *start_worker(g3n_broker *broker, const char *endpoint, const char *name)
{
    g3n_worker_options wo;
    memset(&wo, 0, sizeof(wo));
    wo.role = G3N_ROLE_VISION_ENCODER;
    wo.endpoint = endpoint;
    wo.name = name;
    wo.model_id = "test";
    wo.capacity = 2;
    wo.zmq_context = g3n_broker_context(broker);
    wo.transport = fast_options();
    g3n_worker *w = NULL;
    g3n_error err = {{0}};
    if (g3n_worker_start(&w, &wo, NULL, NULL, &err) != G3N_OK) /* no handler: Ping only */
        fail_msg("%s", err.message);
    return w;
}

/* Submits a Ping of delay_ms (optionally pinned to a worker). */
static uint64_t submit_ping(g3n_client *client, uint32_t delay_ms, const char *pin)
{
    G3n__Envelope env;
    G3n__Ping ping;
    g3n__envelope__init(&env);
    g3n__ping__init(&ping);
    ping.delay_ms = delay_ms;
    env.body_case = G3N__ENVELOPE__BODY_PING;
    env.ping = &ping;
    g3n_request_options ro = {G3N_ROLE_VISION_ENCODER, 1, pin};
    uint64_t id = 0;
    g3n_error err = {{0}};
    if (g3n_client_submit(client, &ro, &env, &id, &err) != G3N_OK)
        fail_msg("%s", err.message);
    return id;
}

/* Receives `count` final replies; each must be a Pong; returns how many came from `worker`. */
static int receive_pongs(g3n_client *client, int count, const char *worker)
{
    int from_worker = 0;
    for (int i = 0; i < count; i++) {
        g3n_reply reply;
        memset(&reply, 0, sizeof(reply));
        g3n_error err = {{0}};
        if (g3n_client_receive(client, 5000, &reply, &err) != G3N_OK)
            fail_msg("reply %d: %s", i, err.message);
        assert_int_equal(reply.final, 1);
        assert_int_equal(reply.envelope->body_case, G3N__ENVELOPE__BODY_PONG);
        from_worker += strcmp(reply.worker, worker) == 0;
        g3n_reply_clear(&reply);
    }
    return from_worker;
}

typedef struct drain_args {
    g3n_worker *worker;
    int timeout_ms;
    int busy;
    int rc;
    g3n_error err;
} drain_args;

static int busy_count(void *user)
{
    return ((drain_args *)user)->busy;
}

static void *drain_thread(void *arg)
{
    drain_args *a = arg;
    a->rc = g3n_worker_drain(a->worker, a->timeout_ms, busy_count, a, &a->err);
    return NULL;
}

static void test_draining_worker_finishes_and_gets_no_new_requests(void **state)
{
    (void)state;
    const char *endpoint = "inproc://test-drain";
    g3n_transport_options o = fast_options();
    g3n_broker *broker = NULL;
    g3n_error err = {{0}};
    assert_int_equal(g3n_broker_start(&broker, &endpoint, 1, &o, &err), G3N_OK);
    g3n_worker *old = start_worker(broker, endpoint, "old");
    assert_int_equal(g3n_broker_wait_workers(broker, G3N_ROLE_VISION_ENCODER, 1, 3000, &err), G3N_OK);
    g3n_client *client = NULL;
    assert_int_equal(g3n_client_open(&client, broker, &err), G3N_OK);
    /* two slow requests running on the old worker when the drain starts */
    submit_ping(client, 300, NULL);
    submit_ping(client, 300, NULL);
    usleep(100000);
    g3n_worker *fresh = start_worker(broker, endpoint, "fresh");
    assert_int_equal(g3n_broker_wait_workers(broker, G3N_ROLE_VISION_ENCODER, 2, 3000, &err), G3N_OK);

    drain_args a;
    memset(&a, 0, sizeof(a));
    a.worker = old;
    a.timeout_ms = 5000;
    a.busy = 1; /* e.g. a decoder session still open */
    pthread_t thread;
    assert_int_equal(pthread_create(&thread, NULL, drain_thread, &a), 0);
    for (int i = 0; i < 200; i++) { /* the broker marks it draining */
        g3n_broker_stats stats;
        g3n_broker_get_stats(broker, &stats);
        if (stats.draining_workers[G3N_ROLE_VISION_ENCODER] == 1)
            break;
        usleep(10000);
    }
    g3n_broker_stats stats;
    g3n_broker_get_stats(broker, &stats);
    assert_int_equal(stats.draining_workers[G3N_ROLE_VISION_ENCODER], 1);
    assert_int_equal(g3n_worker_draining(old), 1);
    /* the running two finish on the old worker; then, with both idle, new requests all go to the fresh one
     * (without the drain the old one, first in the broker's list, would get its share) */
    assert_int_equal(receive_pongs(client, 2, "old"), 2);
    for (int i = 0; i < 6; i++)
        submit_ping(client, 20, NULL);
    assert_int_equal(receive_pongs(client, 6, "old"), 0);
    /* a request pinned to the draining worker (its session) still reaches it */
    submit_ping(client, 0, "old");
    assert_int_equal(receive_pongs(client, 1, "old"), 1);
    /* the drain waits for the busy callback, then returns */
    usleep(100000);
    a.busy = 0;
    pthread_join(thread, NULL);
    assert_int_equal(a.rc, G3N_OK);
    g3n_worker_stop(old);
    submit_ping(client, 0, NULL);
    assert_int_equal(receive_pongs(client, 1, "fresh"), 1);
    g3n_client_close(client);
    g3n_worker_stop(fresh);
    g3n_broker_stop(broker);
}

static void test_drain_times_out_naming_what_is_left(void **state)
{
    (void)state;
    const char *endpoint = "inproc://test-drain-timeout";
    g3n_transport_options o = fast_options();
    g3n_broker *broker = NULL;
    g3n_error err = {{0}};
    assert_int_equal(g3n_broker_start(&broker, &endpoint, 1, &o, &err), G3N_OK);
    g3n_worker *w = start_worker(broker, endpoint, "slow");
    assert_int_equal(g3n_broker_wait_workers(broker, G3N_ROLE_VISION_ENCODER, 1, 3000, &err), G3N_OK);
    g3n_client *client = NULL;
    assert_int_equal(g3n_client_open(&client, broker, &err), G3N_OK);
    submit_ping(client, 1500, NULL);
    usleep(100000);
    drain_args a;
    memset(&a, 0, sizeof(a));
    a.worker = w;
    a.timeout_ms = 300;
    drain_thread(&a);
    assert_int_equal(a.rc, G3N_ERR);
    assert_non_null(strstr(a.err.message, "timed out"));
    assert_non_null(strstr(a.err.message, "1 request(s)"));
    /* the request still completes: a drain never cancels */
    assert_int_equal(receive_pongs(client, 1, "slow"), 1);
    g3n_client_close(client);
    g3n_worker_stop(w);
    g3n_broker_stop(broker);
}

static void test_health_probes(void **state)
{
    (void)state;
    char path[] = "/tmp/g3n-health-XXXXXX";
    int fd = mkstemp(path);
    assert_true(fd >= 0);
    close(fd);
    unlink(path);
    char message[1024];
    assert_int_equal(g3n_health_probe(path, "live", 10, message, sizeof(message)), 1); /* no file */
    assert_non_null(strstr(message, "no health file"));
    g3n_error err = {{0}};
    assert_int_equal(g3n_health_file_write(path, "starting", "loading the weights", &err), G3N_OK);
    assert_int_equal(g3n_health_probe(path, "live", 10, message, sizeof(message)), 0);
    assert_int_equal(g3n_health_probe(path, "ready", 10, message, sizeof(message)), 1);
    assert_non_null(strstr(message, "starting: loading the weights"));
    assert_int_equal(g3n_health_file_write(path, "ready", "registered", &err), G3N_OK);
    assert_int_equal(g3n_health_probe(path, "ready", 10, message, sizeof(message)), 0);
    assert_int_equal(g3n_health_probe(path, "alive", 10, message, sizeof(message)), 2);
    /* a file nobody rewrites any more: neither live nor ready */
    struct timeval old[2] = {{time(NULL) - 60, 0}, {time(NULL) - 60, 0}};
    assert_int_equal(utimes(path, old), 0);
    assert_int_equal(g3n_health_probe(path, "live", 10, message, sizeof(message)), 1);
    assert_non_null(strstr(message, "last written"));
    assert_int_equal(g3n_health_probe(path, "ready", 10, message, sizeof(message)), 1);
    unlink(path);
    assert_int_equal(g3n_health_file_write("/nonexistent-dir/health", "ready", "", &err), G3N_ERR);
    assert_non_null(strstr(err.message, "/nonexistent-dir/health"));
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_draining_worker_finishes_and_gets_no_new_requests),
        cmocka_unit_test(test_drain_times_out_naming_what_is_left),
        cmocka_unit_test(test_health_probes),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
