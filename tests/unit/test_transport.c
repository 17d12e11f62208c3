/* The transport with small fake workers (Ping handlers and an echo role):
 * tensor round trips, load sharing over two replicas, a worker killed
 * mid-request (retry, or a clear error within the heartbeat timeout),
 * malformed / wrong-version / oversized messages rejected while the worker
 * keeps serving, no worker at all, sticky pinning, streamed events, cancel. */
#include <setjmp.h>
#include <signal.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/time.h>
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

/* Test timings: 50 ms heartbeats, 400 ms timeout. */
static g3n_transport_options fast_options(void)
{
    g3n_transport_options o = g3n_transport_default_options();
    o.heartbeat_interval_ms = 50;
    o.heartbeat_timeout_ms = 400;
    o.no_worker_wait_ms = 300;
    o.max_retries = 1;
    o.max_message_bytes = 1 << 20;
    o.insecure = 1; /* plain tcp:// here: these tests are about routing (CURVE: test_curve.c) */
    return o;
}

static g3n_worker *start_worker(g3n_broker *broker, const char *endpoint, int role, const char *name,
                                g3n_worker_handler handler, void *user, int capacity)
{
    g3n_worker_options wo;
    memset(&wo, 0, sizeof(wo));
    wo.role = role;
    wo.endpoint = endpoint;
    wo.name = name;
    wo.model_id = "test";
    wo.capacity = capacity;
    wo.zmq_context = broker ? g3n_broker_context(broker) : NULL;
    wo.transport = fast_options();
    g3n_worker *w = NULL;
    g3n_error err = {{0}};
    if (g3n_worker_start(&w, &wo, handler, user, &err) != G3N_OK)
        fail_msg("%s", err.message);
    return w;
}

static void ping_envelope(G3n__Envelope *env, G3n__Ping *ping, uint32_t delay_ms)
{
    g3n__envelope__init(env);
    g3n__ping__init(ping);
    ping->delay_ms = delay_ms;
    env->body_case = G3N__ENVELOPE__BODY_PING;
    env->ping = ping;
}

/* ---- tensors and envelopes on the wire ---- */

static void test_tensor_round_trip(void **state)
{
    (void)state;
    float values[2 * 3 * 4];
    g3n_test_random_floats(values, 24, 7);
    int64_t shape[3] = {2, 3, 4};
    G3n__Envelope env;
    G3n__EmbedReply body;
    g3n__envelope__init(&env);
    g3n__embed_reply__init(&body);
    g3n_wire_tensor t;
    g3n_wire_tensor_borrow(&t, G3N_DTYPE_F32, 3, shape, values);
    body.inputs_embeds = &t.message;
    env.body_case = G3N__ENVELOPE__BODY_EMBED_REPLY;
    env.embed_reply = &body;
    env.request_id = 99;
    uint8_t *data;
    size_t size;
    g3n_error err = {{0}};
    assert_int_equal(g3n_wire_pack(&env, &data, &size, &err), G3N_OK);
    G3n__Envelope *back = NULL;
    int code;
    assert_int_equal(g3n_wire_unpack(data, size, 0, &back, &code, &err), G3N_OK);
    assert_int_equal(back->request_id, 99);
    g3n_tensor view;
    int64_t expect[3] = {2, -1, 4};
    assert_int_equal(g3n_wire_tensor_view(back->embed_reply->inputs_embeds, "x", G3N_DTYPE_F32, 3, expect, 0, &view,
                                          &err),
                     G3N_OK);
    assert_int_equal(view.shape[1], 3);
    assert_memory_equal(view.data, values, sizeof(values));
    /* wrong expectations are errors that name the field */
    assert_int_equal(g3n_wire_tensor_view(back->embed_reply->inputs_embeds, "embed.x", G3N_DTYPE_BF16, 3, NULL, 0,
                                          &view, &err),
                     G3N_ERR);
    assert_non_null(strstr(err.message, "embed.x"));
    int64_t wrong[3] = {2, 3, 5};
    assert_int_equal(g3n_wire_tensor_view(back->embed_reply->inputs_embeds, "x", G3N_DTYPE_F32, 3, wrong, 0, &view,
                                          &err),
                     G3N_ERR);
    assert_int_equal(g3n_wire_tensor_view(back->embed_reply->inputs_embeds, "x", G3N_DTYPE_F32, 3, NULL, 10, &view,
                                          &err),
                     G3N_ERR);
    assert_non_null(strstr(err.message, "limit"));
    assert_int_equal(g3n_wire_tensor_view(NULL, "absent", G3N_DTYPE_F32, 3, NULL, 0, &view, &err), G3N_ERR);
    /* data length that disagrees with the shape */
    back->embed_reply->inputs_embeds->data.len -= 4;
    assert_int_equal(g3n_wire_tensor_view(back->embed_reply->inputs_embeds, "x", G3N_DTYPE_F32, 3, NULL, 0, &view,
                                          &err),
                     G3N_ERR);
    assert_non_null(strstr(err.message, "data bytes"));
    back->embed_reply->inputs_embeds->data.len += 4;
    back->embed_reply->inputs_embeds->dtype = (G3n__DType)42;
    assert_int_equal(g3n_wire_tensor_view(back->embed_reply->inputs_embeds, "x", G3N_DTYPE_F32, 3, NULL, 0, &view,
                                          &err),
                     G3N_ERR);
    assert_non_null(strstr(err.message, "dtype"));
    g3n_wire_free(back);

    /* every dtype survives */
    for (int d = 0; d < G3N_DTYPE_COUNT; d++) {
        uint8_t bytes[6 * 8];
        for (size_t i = 0; i < sizeof(bytes); i++)
            bytes[i] = (uint8_t)(i * 37 + (size_t)d);
        int64_t s2[2] = {2, 3};
        g3n_wire_tensor_borrow(&t, (g3n_dtype)d, 2, s2, bytes);
        body.inputs_embeds = &t.message;
        free(data);
        assert_int_equal(g3n_wire_pack(&env, &data, &size, &err), G3N_OK);
        assert_int_equal(g3n_wire_unpack(data, size, 0, &back, &code, &err), G3N_OK);
        assert_int_equal(g3n_wire_tensor_view(back->embed_reply->inputs_embeds, "x", (g3n_dtype)d, 2, s2, 0, &view,
                                              &err),
                         G3N_OK);
        assert_memory_equal(view.data, bytes, 6 * g3n_dtype_size((g3n_dtype)d));
        g3n_wire_free(back);
    }

    /* size limit, garbage, another version */
    assert_int_equal(g3n_wire_unpack(data, size, 8, &back, &code, &err), G3N_ERR);
    assert_int_equal(code, G3N__ERROR_CODE__ERROR_TOO_LARGE);
    g3n_wire_free(back);
    const uint8_t garbage[] = {0xff, 0xff, 0xff, 0xff, 0x0f, 0x12};
    assert_int_equal(g3n_wire_unpack(garbage, sizeof(garbage), 0, &back, &code, &err), G3N_ERR);
    assert_int_equal(code, G3N__ERROR_CODE__ERROR_BAD_REQUEST);
    g3n_wire_free(back);
    free(data);
    g3n_wire_tensor_borrow(&t, G3N_DTYPE_F32, 3, shape, values); /* the loop's bytes are out of scope */
    body.inputs_embeds = &t.message;
    env.protocol_version = 7;
    size = g3n__envelope__get_packed_size(&env);
    data = malloc(size);
    g3n__envelope__pack(&env, data);
    assert_int_equal(g3n_wire_unpack(data, size, 0, &back, &code, &err), G3N_ERR);
    assert_int_equal(code, G3N__ERROR_CODE__ERROR_VERSION_MISMATCH);
    assert_non_null(back);
    assert_int_equal(back->request_id, 99);
    assert_non_null(strstr(err.message, "version 7"));
    g3n_wire_free(back);
    free(data);
}

/* ---- broker + workers ---- */

static void test_two_replicas_share_load(void **state)
{
    (void)state;
    const char *endpoint = "inproc://test-share";
    g3n_transport_options o = fast_options();
    g3n_broker *broker;
    g3n_error err = {{0}};
    assert_int_equal(g3n_broker_start(&broker, &endpoint, 1, &o, &err), G3N_OK);
    g3n_worker *a = start_worker(broker, endpoint, G3N_ROLE_VISION_ENCODER, "vision-a", NULL, NULL, 1);
    g3n_worker *b = start_worker(broker, endpoint, G3N_ROLE_VISION_ENCODER, "vision-b", NULL, NULL, 1);
    assert_int_equal(g3n_broker_wait_workers(broker, G3N_ROLE_VISION_ENCODER, 2, 2000, &err), G3N_OK);
    g3n_client *client;
    assert_int_equal(g3n_client_open(&client, broker, &err), G3N_OK);
    /* 8 requests of 60 ms at once: two replicas of capacity 1 take ~4 each */
    enum { N = 8 };
    uint64_t ids[N];
    double t0 = now_s();
    for (int i = 0; i < N; i++) {
        G3n__Envelope env;
        G3n__Ping ping;
        ping_envelope(&env, &ping, 60);
        g3n_request_options ro = {G3N_ROLE_VISION_ENCODER, 1, NULL};
        assert_int_equal(g3n_client_submit(client, &ro, &env, &ids[i], &err), G3N_OK);
    }
    int served_a = 0, served_b = 0;
    for (int i = 0; i < N; i++) {
        g3n_reply r;
        assert_int_equal(g3n_client_receive(client, 5000, &r, &err), G3N_OK);
        assert_int_equal(r.envelope->body_case, G3N__ENVELOPE__BODY_PONG);
        assert_string_equal(r.worker, r.envelope->pong->worker);
        served_a += strcmp(r.worker, "vision-a") == 0;
        served_b += strcmp(r.worker, "vision-b") == 0;
        g3n_reply_clear(&r);
    }
    double elapsed = now_s() - t0;
    assert_int_equal(served_a + served_b, N);
    assert_true(served_a >= 3 && served_b >= 3);
    assert_true(elapsed < 0.9 * N * 0.060); /* in parallel, not one after the other */
    assert_int_equal(g3n_worker_requests_received(a) + g3n_worker_requests_received(b), N);
    g3n_client_close(client);
    g3n_worker_stop(a);
    g3n_worker_stop(b);
    g3n_broker_stop(broker);
}

static void test_killed_worker_retry_or_error(void **state)
{
    (void)state;
    const char *endpoint = "inproc://test-kill";
    g3n_transport_options o = fast_options();
    g3n_broker *broker;
    g3n_error err = {{0}};
    assert_int_equal(g3n_broker_start(&broker, &endpoint, 1, &o, &err), G3N_OK);
    g3n_worker *a = start_worker(broker, endpoint, G3N_ROLE_AUDIO_ENCODER, "audio-a", NULL, NULL, 1);
    assert_int_equal(g3n_broker_wait_workers(broker, G3N_ROLE_AUDIO_ENCODER, 1, 2000, &err), G3N_OK);
    g3n_client *client;
    assert_int_equal(g3n_client_open(&client, broker, &err), G3N_OK);

    /* 1. not retryable: a clear error within the heartbeat timeout */
    G3n__Envelope env;
    G3n__Ping ping;
    ping_envelope(&env, &ping, 3000);
    g3n_request_options ro = {G3N_ROLE_AUDIO_ENCODER, 0, NULL};
    uint64_t id;
    assert_int_equal(g3n_client_submit(client, &ro, &env, &id, &err), G3N_OK);
    usleep(100000);
    assert_int_equal(g3n_worker_requests_received(a), 1);
    double t0 = now_s();
    g3n_worker_kill(a);
    g3n_reply r;
    assert_int_equal(g3n_client_receive(client, 3000, &r, &err), G3N_OK);
    double waited = now_s() - t0;
    assert_int_equal(r.request_id, id);
    assert_int_equal(r.envelope->body_case, G3N__ENVELOPE__BODY_ERROR);
    assert_int_equal(r.envelope->error->code, G3N__ERROR_CODE__ERROR_WORKER_LOST);
    assert_non_null(strstr(r.envelope->error->message, "audio-a"));
    assert_true(waited < (o.heartbeat_timeout_ms + 3 * o.heartbeat_interval_ms) / 1000.0);
    g3n_reply_clear(&r);

    /* 2. retryable with a second replica: the request is re-sent and succeeds */
    g3n_worker *b = start_worker(broker, endpoint, G3N_ROLE_AUDIO_ENCODER, "audio-b", NULL, NULL, 1);
    g3n_worker *c = start_worker(broker, endpoint, G3N_ROLE_AUDIO_ENCODER, "audio-c", NULL, NULL, 1);
    assert_int_equal(g3n_broker_wait_workers(broker, G3N_ROLE_AUDIO_ENCODER, 2, 2000, &err), G3N_OK);
    ping_envelope(&env, &ping, 300);
    ro.retryable = 1;
    assert_int_equal(g3n_client_submit(client, &ro, &env, &id, &err), G3N_OK);
    usleep(80000);
    g3n_worker *victim = g3n_worker_requests_received(b) ? b : c;
    g3n_worker *survivor = victim == b ? c : b;
    assert_int_equal(g3n_worker_requests_received(victim), 1);
    g3n_worker_kill(victim);
    t0 = now_s();
    assert_int_equal(g3n_client_receive(client, 3000, &r, &err), G3N_OK);
    assert_int_equal(r.envelope->body_case, G3N__ENVELOPE__BODY_PONG);
    assert_string_equal(r.worker, g3n_worker_name(survivor));
    assert_true(now_s() - t0 < (o.heartbeat_timeout_ms + 300 + 3 * o.heartbeat_interval_ms) / 1000.0);
    g3n_reply_clear(&r);
    g3n_broker_stats stats;
    g3n_broker_get_stats(broker, &stats);
    assert_true(stats.requests_retried >= 1);
    assert_true(stats.workers_lost >= 2);
    assert_int_equal(stats.live_workers[G3N_ROLE_AUDIO_ENCODER], 1);

    /* 3. a request pinned to the dead worker fails at once, clearly */
    ping_envelope(&env, &ping, 0);
    g3n_request_options pinned = {G3N_ROLE_AUDIO_ENCODER, 1, g3n_worker_name(victim)};
    assert_int_equal(g3n_client_call(client, &pinned, &env, NULL, NULL, &r, &err), G3N_ERR);
    assert_non_null(strstr(err.message, "pinned"));
    g3n_reply_clear(&r);

    g3n_client_close(client);
    g3n_worker_stop(a);
    g3n_worker_stop(b);
    g3n_worker_stop(c);
    g3n_broker_stop(broker);
}

static void test_no_worker_fails_in_time(void **state)
{
    (void)state;
    const char *endpoint = "inproc://test-none";
    g3n_transport_options o = fast_options();
    g3n_broker *broker;
    g3n_error err = {{0}};
    assert_int_equal(g3n_broker_start(&broker, &endpoint, 1, &o, &err), G3N_OK);
    g3n_client *client;
    assert_int_equal(g3n_client_open(&client, broker, &err), G3N_OK);
    G3n__Envelope env;
    G3n__Ping ping;
    ping_envelope(&env, &ping, 0);
    g3n_request_options ro = {G3N_ROLE_EMBEDDER, 1, NULL};
    g3n_reply r;
    double t0 = now_s();
    assert_int_equal(g3n_client_call(client, &ro, &env, NULL, NULL, &r, &err), G3N_ERR);
    assert_true(now_s() - t0 < 2.0);
    assert_int_equal(r.envelope->error->code, G3N__ERROR_CODE__ERROR_NO_WORKER);
    assert_non_null(strstr(err.message, "no embedder worker"));
    g3n_reply_clear(&r);
    g3n_client_close(client);
    g3n_broker_stop(broker);
}

/* An echo role: checks an EmbedRequest's ids tensor and streams 3 events. */
static int echo_handler(void *user, g3n_worker_call *call, const G3n__Envelope *request, g3n_error *err)
{
    (void)user;
    if (request->body_case != G3N__ENVELOPE__BODY_EMBED) {
        g3n_worker_call_set_code(call, G3N__ERROR_CODE__ERROR_UNSUPPORTED);
        return g3n_error_set(err, "echo serves embed only");
    }
    g3n_tensor ids;
    if (g3n_wire_tensor_view(request->embed->ids, "embed.ids", G3N_DTYPE_I32, 1, NULL, 1000, &ids, err) != G3N_OK) {
        g3n_worker_call_set_code(call, G3N__ERROR_CODE__ERROR_BAD_REQUEST);
        return G3N_ERR;
    }
    const int32_t *v = ids.data;
    for (int64_t i = 0; i < ids.shape[0]; i++) {
        G3n__Envelope env;
        G3n__TokenEvent event;
        g3n__envelope__init(&env);
        g3n__token_event__init(&event);
        event.id = v[i] * 2;
        env.body_case = G3N__ENVELOPE__BODY_TOKEN;
        env.token = &event;
        if (g3n_worker_call_send(call, &env, i + 1 < ids.shape[0], err) != G3N_OK)
            return G3N_ERR;
    }
    return G3N_OK;
}

typedef struct events_seen {
    int count;
    int32_t ids[8];
} events_seen;

static int on_event(void *user, const G3n__Envelope *event)
{
    events_seen *seen = user;
    if (event->body_case == G3N__ENVELOPE__BODY_TOKEN && seen->count < 8)
        seen->ids[seen->count++] = event->token->id;
    return 0;
}

static void test_malformed_and_version_rejected_worker_keeps_serving(void **state)
{
    (void)state;
    const char *endpoint = "inproc://test-malformed";
    g3n_transport_options o = fast_options();
    g3n_broker *broker;
    g3n_error err = {{0}};
    assert_int_equal(g3n_broker_start(&broker, &endpoint, 1, &o, &err), G3N_OK);
    g3n_worker *w = start_worker(broker, endpoint, G3N_ROLE_EMBEDDER, "echo", echo_handler, NULL, 1);
    assert_int_equal(g3n_broker_wait_workers(broker, G3N_ROLE_EMBEDDER, 1, 2000, &err), G3N_OK);
    g3n_client *client;
    assert_int_equal(g3n_client_open(&client, broker, &err), G3N_OK);
    g3n_request_options ro = {G3N_ROLE_EMBEDDER, 0, NULL};
    g3n_reply r;
    uint64_t id;

    /* garbage bytes: answered with ERROR_BAD_REQUEST */
    const char garbage[] = "\xff\xff\xff\xff\xff\xff\xff\xff\xff\xff not a protobuf";
    assert_int_equal(g3n_client_submit_bytes(client, &ro, garbage, sizeof(garbage), &id, &err), G3N_OK);
    assert_int_equal(g3n_client_receive(client, 2000, &r, &err), G3N_OK);
    assert_int_equal(r.request_id, id);
    assert_int_equal(r.envelope->error->code, G3N__ERROR_CODE__ERROR_BAD_REQUEST);
    assert_non_null(strstr(r.envelope->error->message, "malformed"));
    g3n_reply_clear(&r);

    /* an envelope without a body whose request_id is not the broker's: answered all the same (under the
     * routing id), not lost */
    const uint8_t no_body[] = {0x08, G3N_PROTOCOL_VERSION, 0x10, 0xb9, 0x60}; /* this protocol_version, request_id 12345 */
    assert_int_equal(g3n_client_submit_bytes(client, &ro, no_body, sizeof(no_body), &id, &err), G3N_OK);
    assert_int_equal(g3n_client_receive(client, 2000, &r, &err), G3N_OK);
    assert_int_equal(r.request_id, id);
    assert_int_equal(r.envelope->error->code, G3N__ERROR_CODE__ERROR_BAD_REQUEST);
    assert_non_null(strstr(r.envelope->error->message, "no body"));
    g3n_reply_clear(&r);

    /* another protocol version: ERROR_VERSION_MISMATCH naming both versions */
    G3n__Envelope env;
    G3n__EmbedRequest embed;
    g3n__envelope__init(&env);
    g3n__embed_request__init(&embed);
    int32_t values[3] = {1, 2, 3};
    int64_t shape[1] = {3};
    g3n_wire_tensor ids;
    g3n_wire_tensor_borrow(&ids, G3N_DTYPE_I32, 1, shape, values);
    embed.ids = &ids.message;
    env.body_case = G3N__ENVELOPE__BODY_EMBED;
    env.embed = &embed;
    env.protocol_version = G3N_PROTOCOL_VERSION + 1;
    env.request_id = 0;
    size_t size = g3n__envelope__get_packed_size(&env);
    uint8_t *bytes = malloc(size);
    g3n__envelope__pack(&env, bytes);
    assert_int_equal(g3n_client_submit_bytes(client, &ro, bytes, size, &id, &err), G3N_OK);
    free(bytes);
    assert_int_equal(g3n_client_receive(client, 2000, &r, &err), G3N_OK);
    assert_int_equal(r.envelope->error->code, G3N__ERROR_CODE__ERROR_VERSION_MISMATCH);
    assert_non_null(strstr(r.envelope->error->message, "version 2"));
    g3n_reply_clear(&r);

    /* a tensor whose bytes disagree with its shape: rejected by the handler, naming the field */
    ids.message.data.len = 7;
    assert_int_equal(g3n_client_call(client, &ro, &env, NULL, NULL, &r, &err), G3N_ERR);
    assert_int_equal(r.envelope->error->code, G3N__ERROR_CODE__ERROR_BAD_REQUEST);
    assert_non_null(strstr(err.message, "embed.ids"));
    g3n_reply_clear(&r);
    ids.message.data.len = sizeof(values);

    /* an oversized message never reaches the worker */
    size_t big_size = (size_t)o.max_message_bytes + 100;
    uint8_t *big = calloc(1, big_size);
    assert_int_equal(g3n_client_submit_bytes(client, &ro, big, big_size, &id, &err), G3N_OK);
    free(big);
    assert_int_equal(g3n_client_receive(client, 3000, &r, &err), G3N_OK);
    assert_int_equal(r.request_id, id);
    assert_int_equal(r.envelope->body_case, G3N__ENVELOPE__BODY_ERROR);
    g3n_reply_clear(&r);

    /* and the worker still serves: a streamed answer of three events */
    events_seen seen = {0};
    assert_int_equal(g3n_client_call(client, &ro, &env, on_event, &seen, &r, &err), G3N_OK);
    assert_int_equal(seen.count, 2);
    assert_int_equal(seen.ids[0], 2);
    assert_int_equal(seen.ids[1], 4);
    assert_int_equal(r.envelope->token->id, 6);
    g3n_reply_clear(&r);
    assert_true(g3n_worker_messages_rejected(w) >= 2);

    g3n_client_close(client);
    g3n_worker_stop(w);
    g3n_broker_stop(broker);
}

static volatile sig_atomic_t alarms;
static void on_alarm(int sig)
{
    (void)sig;
    alarms++;
}

/* A process's signals (a timer here) interrupt the client's wait: it waits out its time all the same. */
static void test_receive_survives_signals(void **state)
{
    (void)state;
    const char *endpoint = "inproc://test-signals";
    g3n_transport_options o = fast_options();
    g3n_broker *broker;
    g3n_error err = {{0}};
    assert_int_equal(g3n_broker_start(&broker, &endpoint, 1, &o, &err), G3N_OK);
    g3n_worker *w = start_worker(broker, endpoint, G3N_ROLE_EMBEDDER, "echo", echo_handler, NULL, 1);
    assert_int_equal(g3n_broker_wait_workers(broker, G3N_ROLE_EMBEDDER, 1, 2000, &err), G3N_OK);
    g3n_client *client;
    assert_int_equal(g3n_client_open(&client, broker, &err), G3N_OK);
    struct sigaction action, previous;
    memset(&action, 0, sizeof(action));
    action.sa_handler = on_alarm;
    assert_int_equal(sigaction(SIGALRM, &action, &previous), 0);
    struct itimerval every_5ms = {{0, 5000}, {0, 5000}}, off = {{0, 0}, {0, 0}};
    assert_int_equal(setitimer(ITIMER_REAL, &every_5ms, NULL), 0);
    G3n__Envelope env;
    G3n__Ping ping;
    ping_envelope(&env, &ping, 200);
    g3n_request_options ro = {G3N_ROLE_EMBEDDER, 0, NULL};
    uint64_t id;
    assert_int_equal(g3n_client_submit(client, &ro, &env, &id, &err), G3N_OK);
    g3n_reply r;
    int rc = g3n_client_receive(client, 3000, &r, &err);
    setitimer(ITIMER_REAL, &off, NULL);
    sigaction(SIGALRM, &previous, NULL);
    if (rc != G3N_OK)
        fail_msg("%s", err.message);
    assert_true(alarms > 0);
    assert_int_equal(r.request_id, id);
    assert_int_equal(r.envelope->body_case, G3N__ENVELOPE__BODY_PONG);
    g3n_reply_clear(&r);
    g3n_client_close(client);
    g3n_worker_stop(w);
    g3n_broker_stop(broker);
}

static void test_tcp_pinning_and_cancel(void **state)
{
    (void)state;
    /* over TCP on the loopback, with the worker in its own ZeroMQ context as a daemon would be */
    const char *endpoint = "tcp://127.0.0.1:*";
    (void)endpoint;
    const char *bind = "tcp://127.0.0.1:45873";
    g3n_transport_options o = fast_options();
    g3n_broker *broker;
    g3n_error err = {{0}};
    if (g3n_broker_start(&broker, &bind, 1, &o, &err) != G3N_OK) {
        print_message("skipped: %s\n", err.message);
        skip();
    }
    g3n_worker *a = start_worker(NULL, bind, G3N_ROLE_DECODER, "decoder-a", NULL, NULL, 2);
    g3n_worker *b = start_worker(NULL, bind, G3N_ROLE_DECODER, "decoder-b", NULL, NULL, 2);
    assert_int_equal(g3n_broker_wait_workers(broker, G3N_ROLE_DECODER, 2, 3000, &err), G3N_OK);
    g3n_client *client;
    assert_int_equal(g3n_client_open(&client, broker, &err), G3N_OK);
    G3n__Envelope env;
    G3n__Ping ping;
    uint8_t payload[100000];
    for (size_t i = 0; i < sizeof(payload); i++)
        payload[i] = (uint8_t)(i * 7);
    for (int i = 0; i < 6; i++) {
        ping_envelope(&env, &ping, 0);
        ping.payload.data = payload;
        ping.payload.len = sizeof(payload);
        g3n_request_options ro = {G3N_ROLE_DECODER, 0, "decoder-b"};
        g3n_reply r;
        assert_int_equal(g3n_client_call(client, &ro, &env, NULL, NULL, &r, &err), G3N_OK);
        assert_string_equal(r.worker, "decoder-b");
        assert_int_equal(r.envelope->pong->payload.len, sizeof(payload));
        assert_memory_equal(r.envelope->pong->payload.data, payload, sizeof(payload));
        g3n_reply_clear(&r);
    }
    /* cancel a long request: it ends early with ERROR_CANCELLED */
    ping_envelope(&env, &ping, 5000);
    g3n_request_options ro = {G3N_ROLE_DECODER, 0, NULL};
    uint64_t id;
    double t0 = now_s();
    assert_int_equal(g3n_client_submit(client, &ro, &env, &id, &err), G3N_OK);
    usleep(100000);
    assert_int_equal(g3n_client_cancel(client, id, &err), G3N_OK);
    g3n_reply r;
    assert_int_equal(g3n_client_receive(client, 3000, &r, &err), G3N_OK);
    assert_int_equal(r.envelope->error->code, G3N__ERROR_CODE__ERROR_CANCELLED);
    assert_true(now_s() - t0 < 1.5);
    g3n_reply_clear(&r);
    g3n_client_close(client);
    g3n_worker_stop(a);
    /* a worker that stops says Goodbye: the broker knows at once */
    g3n_broker_stats stats;
    for (int i = 0; i < 100; i++) {
        g3n_broker_get_stats(broker, &stats);
        if (stats.live_workers[G3N_ROLE_DECODER] == 1)
            break;
        usleep(5000);
    }
    assert_int_equal(stats.live_workers[G3N_ROLE_DECODER], 1);
    g3n_worker_stop(b);
    g3n_broker_stop(broker);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_tensor_round_trip),
        cmocka_unit_test(test_two_replicas_share_load),
        cmocka_unit_test(test_killed_worker_retry_or_error),
        cmocka_unit_test(test_no_worker_fails_in_time),
        cmocka_unit_test(test_malformed_and_version_rejected_worker_keeps_serving),
        cmocka_unit_test(test_tcp_pinning_and_cancel),
        cmocka_unit_test(test_receive_survives_signals),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
