/* The front door's client (`g3n run --connect`) fails fast (issue 18, item
 * 2): nothing listening at the endpoint, an orchestrator that dies or
 * restarts mid-answer, and a request the orchestrator's ZeroMQ drops as over
 * its message limit each end in a clear error naming the endpoint within
 * seconds, where it waited for its whole timeout (600 s in g3n run) or for
 * ever. Fake orchestrators: ROUTER sockets in this process. */
#include <pthread.h>
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
#include <zmq.h>

#include "config.h"
#include "front_door.h"
#include "pipeline.h"
#include "roles.h"
#include "test_util.h"
#include "tokenizer.h"
#include "weights.h"
#include "wire.h"

#ifndef G3N_FRONT_DOOR_CONNECT_MS
#define G3N_FRONT_DOOR_CONNECT_MS 5000
#endif

static double now_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

typedef struct fake {
    char endpoint[64];
    int64_t max_message_bytes; /* 0: none */
    int mode;                  /* 0: one token event, then the process "dies" (socket closed); 1: read nothing;
                                  2: one token event, then the final one with FINISH_CANCELLED (it is stopping) */
    int ready;
} fake;

static void *fake_main(void *user)
{
    fake *f = user;
    void *context = zmq_ctx_new();
    void *router = zmq_socket(context, ZMQ_ROUTER);
    int linger = 0;
    zmq_setsockopt(router, ZMQ_LINGER, &linger, sizeof(linger));
    if (f->max_message_bytes)
        zmq_setsockopt(router, ZMQ_MAXMSGSIZE, &f->max_message_bytes, sizeof(f->max_message_bytes));
    assert_int_equal(zmq_bind(router, f->endpoint), 0);
    __atomic_store_n(&f->ready, 1, __ATOMIC_SEQ_CST);
    if (f->mode == 0 || f->mode == 2) {
        zmq_msg_t identity, payload;
        zmq_msg_init(&identity);
        zmq_msg_init(&payload);
        zmq_msg_recv(&identity, router, 0);
        zmq_msg_recv(&payload, router, 0);
        G3n__Envelope env;
        G3n__TokenEvent event;
        g3n__envelope__init(&env);
        g3n__token_event__init(&event);
        event.id = 7;
        event.text = "hi";
        env.body_case = G3N__ENVELOPE__BODY_TOKEN;
        env.token = &event;
        env.partial = 1;
        env.request_id = 1;
        uint8_t *data;
        size_t size;
        assert_int_equal(g3n_wire_pack(&env, &data, &size, NULL), G3N_OK);
        zmq_msg_t again;
        zmq_msg_init(&again);
        zmq_msg_copy(&again, &identity);
        zmq_msg_send(&identity, router, ZMQ_SNDMORE);
        zmq_send(router, data, size, 0);
        free(data);
        if (f->mode == 2) { /* the final event of a chat the orchestrator cancelled as it stopped */
            event.id = -1;
            event.text = "";
            event.finish = G3N__FINISH_REASON__FINISH_CANCELLED;
            env.partial = 0;
            assert_int_equal(g3n_wire_pack(&env, &data, &size, NULL), G3N_OK);
            zmq_msg_send(&again, router, ZMQ_SNDMORE);
            zmq_send(router, data, size, 0);
            free(data);
        }
        zmq_msg_close(&again);
        zmq_msg_close(&payload);
        usleep(300000); /* the event reaches the client, then the orchestrator is gone */
    } else {
        usleep(2000000); /* whatever arrives is dropped by ZMQ_MAXMSGSIZE */
    }
    zmq_close(router);
    zmq_ctx_term(context);
    return NULL;
}

static int events;
static int count_event(void *user, const G3n__TokenEvent *event)
{
    (void)user;
    (void)event;
    events++;
    return 0;
}

static void chat(const char *endpoint, const char *text, int timeout_ms, g3n_error *err, double *seconds, int *rc)
{
    G3n__ChatRequest request;
    G3n__ChatMessage message, *messages[1] = {&message};
    g3n__chat_request__init(&request);
    g3n__chat_message__init(&message);
    message.role = "user";
    message.text = (char *)text;
    request.n_messages = 1;
    request.messages = messages;
    double t0 = now_s();
    *rc = g3n_front_door_chat(endpoint, &request, timeout_ms, count_event, NULL, err);
    *seconds = now_s() - t0;
}

/* A chat with the fake orchestrator f (on a free loopback port) that ends with the fake's thread. */
static void chat_with_fake(fake *f, const char *text, g3n_error *err, double *seconds, int *rc)
{
    snprintf(f->endpoint, sizeof(f->endpoint), "tcp://127.0.0.1:%d", g3n_test_free_port());
    pthread_t thread;
    assert_int_equal(pthread_create(&thread, NULL, fake_main, f), 0);
    while (!__atomic_load_n(&f->ready, __ATOMIC_SEQ_CST))
        usleep(1000);
    events = 0;
    chat(f->endpoint, text, 60000, err, seconds, rc);
    pthread_join(thread, NULL);
    print_message("%.1f s: %s\n", *seconds, err->message);
}

static void test_nothing_listens(void **state)
{
    (void)state;
    char endpoint[64];
    snprintf(endpoint, sizeof(endpoint), "tcp://127.0.0.1:%d", g3n_test_free_port());
    g3n_error err = {{0}};
    double seconds;
    int rc;
    chat(endpoint, "hello", 60000, &err, &seconds, &rc);
    print_message("%.1f s: %s\n", seconds, err.message);
    assert_int_equal(rc, G3N_ERR);
    assert_true(seconds < G3N_FRONT_DOOR_CONNECT_MS / 1000.0 + 3.0);
    assert_non_null(strstr(err.message, "cannot reach"));
    assert_non_null(strstr(err.message, endpoint));
}

static void test_orchestrator_dies_mid_answer(void **state)
{
    (void)state;
    fake f = {{0}, 0, 0, 0};
    g3n_error err = {{0}};
    double seconds;
    int rc;
    chat_with_fake(&f, "hello", &err, &seconds, &rc);
    assert_int_equal(rc, G3N_ERR);
    assert_int_equal(events, 1); /* the answer had begun */
    assert_true(seconds < 10.0);
    assert_non_null(strstr(err.message, "lost"));
    assert_non_null(strstr(err.message, f.endpoint));
}

/* A final event with FINISH_CANCELLED (the orchestrator stopped mid-chat) is an error naming the
 * orchestrator for every client of the front door (g3n run --connect, g3n bench chat --connect), not a
 * success with a partial answer. */
static void test_cancelled_chat_is_an_error(void **state)
{
    (void)state;
    fake f = {{0}, 0, 2, 0};
    g3n_error err = {{0}};
    double seconds;
    int rc;
    chat_with_fake(&f, "hello", &err, &seconds, &rc);
    assert_int_equal(rc, G3N_ERR);
    assert_int_equal(events, 2); /* the partial answer and the final event reached the caller */
    assert_non_null(strstr(err.message, "cancelled"));
    assert_non_null(strstr(err.message, f.endpoint));
}

static void test_message_over_the_limit(void **state)
{
    (void)state;
    fake f = {{0}, 1024, 1, 0};
    char *text = malloc(8192);
    memset(text, 'a', 8191);
    text[8191] = '\0';
    g3n_error err = {{0}};
    double seconds;
    int rc;
    chat_with_fake(&f, text, &err, &seconds, &rc);
    assert_int_equal(rc, G3N_ERR);
    assert_true(seconds < 7.0);
    assert_non_null(strstr(err.message, "max-message-mb"));
    free(text);
}

/* A chat whose ZeroMQ client disconnects is cancelled (issue 18, item 3):
 * abandoned chats kept the decoder busy for all their tokens (16 of them made
 * the next client wait ~20 s). The door's ROUTER is mandatory-routing: the
 * next event for a client that is gone fails, and that chat stops. */
static void test_abandoned_chat_cancelled(void **state)
{
    (void)state;
    g3n_error err = {{0}};
    g3n_test_stack stack; /* the door's tcp:// endpoint without keys (the client speaks plain ZeroMQ) */
    g3n_test_stack_open(&stack, "inproc://g3n-test-door-cancel", NULL,
                        (1u << G3N_ROLE_EMBEDDER) | (1u << G3N_ROLE_DECODER), 5);
    char endpoint[64];
    g3n_front_door *door = g3n_test_front_door_start(&stack, endpoint, sizeof(endpoint));

    /* a client asks for 200 tokens, reads the first event, and goes away */
    void *context = zmq_ctx_new();
    void *dealer = zmq_socket(context, ZMQ_DEALER);
    int linger = 0;
    zmq_setsockopt(dealer, ZMQ_LINGER, &linger, sizeof(linger));
    assert_int_equal(zmq_connect(dealer, endpoint), 0);
    G3n__Envelope env;
    G3n__ChatRequest request;
    G3n__ChatMessage message, *messages[1] = {&message};
    g3n__envelope__init(&env);
    g3n__chat_request__init(&request);
    g3n__chat_message__init(&message);
    message.role = "user";
    message.text = "Tell me a long story.";
    request.n_messages = 1;
    request.messages = messages;
    request.max_new_tokens = 200;
    env.body_case = G3N__ENVELOPE__BODY_CHAT;
    env.chat = &request;
    env.request_id = 1;
    uint8_t *data;
    size_t size;
    assert_int_equal(g3n_wire_pack(&env, &data, &size, NULL), G3N_OK);
    assert_int_equal(zmq_send(dealer, data, size, 0), (int)size);
    free(data);
    zmq_pollitem_t item = {dealer, 0, ZMQ_POLLIN, 0};
    assert_int_equal(zmq_poll(&item, 1, 30000), 1);
    zmq_close(dealer);
    zmq_ctx_term(context);

    /* the decoder stops soon after: far fewer than 200 steps */
    uint64_t steps = 0, last = (uint64_t)-1;
    for (int i = 0; i < 150 && steps != last; i++) {
        last = steps;
        usleep(300000);
        steps = g3n_role_decoder_stats_get(stack.local.roles[G3N_ROLE_DECODER]).decode_steps;
    }
    print_message("decode steps after the client left: %llu\n", (unsigned long long)steps);
    assert_true(steps < 100);
    /* the client's own bad media is ERROR_BAD_REQUEST on this port (it came back as ERROR_INTERNAL) */
    ProtobufCBinaryData empty_image = {0, NULL};
    message.n_images = 1;
    message.images = &empty_image;
    request.max_new_tokens = 2;
    assert_int_equal(g3n_front_door_chat(endpoint, &request, 30000, NULL, NULL, &err), G3N_ERR);
    print_message("a 0-byte image: %s\n", err.message);
    assert_non_null(strstr(err.message, "ERROR_BAD_REQUEST"));
    assert_non_null(strstr(err.message, "empty"));
    g3n_front_door_stop(door);
    g3n_test_stack_close(&stack);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_nothing_listens),
        cmocka_unit_test(test_orchestrator_dies_mid_answer),
        cmocka_unit_test(test_cancelled_chat_is_an_error),
        cmocka_unit_test(test_message_over_the_limit),
        cmocka_unit_test(test_abandoned_chat_cancelled),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
