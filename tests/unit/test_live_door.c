/* Live sessions on the front door (live_door.h, proto LiveRequest): every
 * field of a request is checked before use and a bad one is answered with an
 * error naming it (and the session lives on); ids are "live-" + 128 random
 * bits; an unknown id is not found; the session count is bounded and idle
 * sessions expire. A g3n-orchestrator front door on loopback TCP in this
 * process, the demo config, no workers (opening a session and these checks
 * need none; media and questions through the daemons: tests/pipeline/
 * live_door.sh and live_netns.sh). */
#include <math.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cmocka.h>
#include <zmq.h>

#include "config.h"
#include "front_door.h"
#include "test_util.h"
#include "tokenizer.h"
#include "wire.h"

typedef struct door_fixture {
    g3n_model_config config;
    g3n_tokenizer *tokenizer;
    g3n_broker *broker;
    g3n_front_door *door;
    g3n_front_door_connection *connection;
    char endpoint[64];
} door_fixture;

static int free_port(void)
{
    void *context = zmq_ctx_new();
    void *s = zmq_socket(context, ZMQ_ROUTER);
    assert_int_equal(zmq_bind(s, "tcp://127.0.0.1:*"), 0);
    char endpoint[128];
    size_t size = sizeof(endpoint);
    zmq_getsockopt(s, ZMQ_LAST_ENDPOINT, endpoint, &size);
    zmq_close(s);
    zmq_ctx_term(context);
    return atoi(strrchr(endpoint, ':') + 1);
}

static void door_start(door_fixture *f, int max_sessions, double idle_seconds)
{
    g3n_error err = {{0}};
    char path[1024];
    memset(f, 0, sizeof(*f));
    assert_int_equal(g3n_config_load(&f->config, "scripts/demo-config.json", &err), G3N_OK);
    assert_int_equal(
        g3n_tokenizer_load(&f->tokenizer, g3n_test_fixture("tokenizer/tokenizer.json", path, sizeof(path)), &err),
        G3N_OK);
    g3n_transport_options transport = g3n_transport_default_options();
    transport.insecure = 1;
    transport.no_worker_wait_ms = 500;
    const char *inproc = "inproc://g3n-test-live-door";
    assert_int_equal(g3n_broker_start(&f->broker, &inproc, 1, &transport, &err), G3N_OK);
    g3n_front_door_options fo;
    memset(&fo, 0, sizeof(fo));
    snprintf(f->endpoint, sizeof(f->endpoint), "tcp://127.0.0.1:%d", free_port());
    fo.endpoint = f->endpoint;
    fo.max_live_sessions = max_sessions;
    fo.live_idle_seconds = idle_seconds;
    if (g3n_front_door_start(&f->door, f->broker, &f->config, f->tokenizer, &fo, &err) != G3N_OK)
        fail_msg("%s", err.message);
    g3n_transport_options client = g3n_transport_default_options();
    client.insecure = 1;
    assert_int_equal(g3n_front_door_connect(&f->connection, f->endpoint, &client, &err), G3N_OK);
}

static void door_stop(door_fixture *f)
{
    g3n_front_door_disconnect(f->connection);
    g3n_front_door_stop(f->door);
    g3n_broker_stop(f->broker);
    g3n_tokenizer_free(f->tokenizer);
    g3n_config_free(&f->config);
}

/* Sends q; returns G3N_OK with the LiveReply's session id (and positions) or G3N_ERR with err. */
static int live(door_fixture *f, G3n__LiveRequest *q, char *session_id, size_t session_id_size, g3n_error *err)
{
    G3n__Envelope env, *reply = NULL;
    g3n__envelope__init(&env);
    env.body_case = G3N__ENVELOPE__BODY_LIVE;
    env.live = q;
    if (g3n_front_door_exchange(f->connection, &env, 20000, NULL, NULL, &reply, err) != G3N_OK)
        return G3N_ERR;
    assert_int_equal(reply->body_case, G3N__ENVELOPE__BODY_LIVE_REPLY);
    if (session_id)
        snprintf(session_id, session_id_size, "%s", reply->live_reply->session_id);
    assert_int_equal(reply->live_reply->positions, 0);
    g3n_wire_free(reply);
    return G3N_OK;
}

static int open_session(door_fixture *f, char *id, size_t size, g3n_error *err)
{
    G3n__LiveRequest q;
    g3n__live_request__init(&q);
    q.op = G3N__LIVE_OP__LIVE_OPEN;
    q.system = "You watch a stream.";
    return live(f, &q, id, size, err);
}

/* q must fail with code and a message holding what. */
static void refused(door_fixture *f, G3n__LiveRequest *q, const char *code, const char *what)
{
    g3n_error err = {{0}};
    assert_int_equal(live(f, q, NULL, 0, &err), G3N_ERR);
    print_message("%s\n", err.message);
    if (!strstr(err.message, code) || !strstr(err.message, what))
        fail_msg("expected %s with '%s', got: %s", code, what, err.message);
}

static void test_requests_checked(void **state)
{
    (void)state;
    door_fixture f;
    door_start(&f, 4, 600);
    g3n_error err = {{0}};
    char id[64], other[64];
    assert_int_equal(open_session(&f, id, sizeof(id), &err), G3N_OK);
    assert_int_equal(open_session(&f, other, sizeof(other), &err), G3N_OK);
    print_message("session %s\n", id);
    assert_int_equal(strlen(id), 5 + 32);
    assert_memory_equal(id, "live-", 5);
    for (int i = 5; i < 37; i++)
        assert_non_null(strchr("0123456789abcdef", id[i]));
    assert_string_not_equal(id, other);

    G3n__LiveRequest q;
    g3n_wire_tensor tensor;
    uint8_t pixels[2 * 2 * 4] = {0};
    float samples[4] = {0.1f, 0.2f, 0.3f, 0.4f};
    /* unknown op */
    g3n__live_request__init(&q);
    q.op = 42;
    q.session_id = id;
    refused(&f, &q, "ERROR_BAD_REQUEST", "unknown op 42");
    /* frames: exactly one of image / rgb, rgb [H, W, 3] u8 with its bytes, a finite time */
    g3n__live_request__init(&q);
    q.op = G3N__LIVE_OP__LIVE_FRAME;
    q.session_id = id;
    refused(&f, &q, "ERROR_BAD_REQUEST", "exactly one of image");
    int64_t shape4[3] = {2, 2, 4};
    g3n_wire_tensor_borrow(&tensor, G3N_DTYPE_U8, 3, shape4, pixels);
    q.rgb = &tensor.message;
    refused(&f, &q, "ERROR_BAD_REQUEST", "live.rgb: dimension 2 is 4, expected 3");
    int64_t shape3[3] = {2, 2, 3};
    g3n_wire_tensor_borrow(&tensor, G3N_DTYPE_U8, 3, shape3, pixels);
    tensor.message.data.len = 5; /* fewer bytes than the shape says */
    refused(&f, &q, "ERROR_BAD_REQUEST", "data bytes");
    int64_t huge[3] = {60000, 60000, 3};
    g3n_wire_tensor_borrow(&tensor, G3N_DTYPE_U8, 3, huge, pixels);
    tensor.message.data.len = sizeof(pixels);
    refused(&f, &q, "ERROR_TOO_LARGE", "over the limit");
    g3n_wire_tensor_borrow(&tensor, G3N_DTYPE_U8, 3, shape3, pixels);
    q.image.data = pixels;
    q.image.len = 4;
    refused(&f, &q, "ERROR_BAD_REQUEST", "exactly one of image");
    q.image.len = 0;
    q.seconds = NAN;
    refused(&f, &q, "ERROR_BAD_REQUEST", "seconds");
    q.seconds = -1;
    refused(&f, &q, "ERROR_BAD_REQUEST", "seconds");
    /* audio: [N] f32 of finite samples, at most 30 s a piece */
    g3n__live_request__init(&q);
    q.op = G3N__LIVE_OP__LIVE_AUDIO;
    q.session_id = id;
    int64_t two_d[2] = {2, 2};
    g3n_wire_tensor_borrow(&tensor, G3N_DTYPE_F32, 2, two_d, samples);
    q.samples = &tensor.message;
    refused(&f, &q, "ERROR_BAD_REQUEST", "live.samples: 2 dimensions");
    int64_t four[1] = {4};
    samples[2] = NAN;
    g3n_wire_tensor_borrow(&tensor, G3N_DTYPE_F32, 1, four, samples);
    refused(&f, &q, "ERROR_BAD_REQUEST", "audio sample 2 is not a finite number");
    samples[2] = INFINITY;
    refused(&f, &q, "ERROR_BAD_REQUEST", "audio sample 2 is not a finite number");
    int64_t long_piece[1] = {31 * 16000};
    float *silence = calloc((size_t)long_piece[0], sizeof(float));
    g3n_wire_tensor_borrow(&tensor, G3N_DTYPE_F32, 1, long_piece, silence);
    refused(&f, &q, "ERROR_TOO_LARGE", "at most 480000 samples");
    free(silence);
    /* questions: some valid UTF-8 text of bounded length */
    g3n__live_request__init(&q);
    q.op = G3N__LIVE_OP__LIVE_ASK;
    q.session_id = id;
    refused(&f, &q, "ERROR_BAD_REQUEST", "needs a question");
    q.question = "caf\xc3";
    refused(&f, &q, "ERROR_BAD_REQUEST", "question is not valid UTF-8");
    char *long_question = malloc(70000);
    memset(long_question, 'a', 69999);
    long_question[69999] = '\0';
    q.question = long_question;
    refused(&f, &q, "ERROR_TOO_LARGE", "question is 69999 bytes");
    free(long_question);
    /* open: a system prompt of valid UTF-8, a context within the model's */
    g3n__live_request__init(&q);
    q.op = G3N__LIVE_OP__LIVE_OPEN;
    q.system = "\xff\xfe";
    refused(&f, &q, "ERROR_BAD_REQUEST", "system is not valid UTF-8");
    q.system = "";
    q.max_positions = -5;
    refused(&f, &q, "ERROR_BAD_REQUEST", "max_positions -5 is out of range");
    q.max_positions = f.config.text.max_position_embeddings + 1;
    refused(&f, &q, "ERROR_BAD_REQUEST", "is out of range");
    /* ids: unknown, or the right one with a byte off, are not found */
    g3n__live_request__init(&q);
    q.op = G3N__LIVE_OP__LIVE_STATE;
    q.session_id = "live-00000000000000000000000000000000";
    refused(&f, &q, "ERROR_NOT_FOUND", "no live session 'live-0000");
    char near[64];
    snprintf(near, sizeof(near), "%s", id);
    near[36] = near[36] == '0' ? '1' : '0';
    q.session_id = near;
    refused(&f, &q, "ERROR_NOT_FOUND", "no live session");
    q.session_id = NULL;
    refused(&f, &q, "ERROR_NOT_FOUND", "no live session ''");
    /* the session lived through all of it; closed, it is gone */
    q.session_id = id;
    assert_int_equal(live(&f, &q, NULL, 0, &err), G3N_OK);
    q.op = G3N__LIVE_OP__LIVE_CLOSE;
    assert_int_equal(live(&f, &q, NULL, 0, &err), G3N_OK);
    q.op = G3N__LIVE_OP__LIVE_STATE;
    refused(&f, &q, "ERROR_NOT_FOUND", "no live session");
    /* a chat-less, live-less body is still refused */
    G3n__Envelope env, *reply = NULL;
    G3n__Ack ack;
    g3n__envelope__init(&env);
    g3n__ack__init(&ack);
    env.body_case = G3N__ENVELOPE__BODY_ACK;
    env.ack = &ack;
    assert_int_equal(g3n_front_door_exchange(f.connection, &env, 20000, NULL, NULL, &reply, &err), G3N_ERR);
    assert_non_null(strstr(err.message, "serves chat and live requests"));
    door_stop(&f);
}

static void test_session_limit_and_expiry(void **state)
{
    (void)state;
    door_fixture f;
    door_start(&f, 2, 1.0);
    g3n_error err = {{0}};
    char a[64], b[64], c[64];
    assert_int_equal(open_session(&f, a, sizeof(a), &err), G3N_OK);
    assert_int_equal(open_session(&f, b, sizeof(b), &err), G3N_OK);
    assert_int_equal(open_session(&f, c, sizeof(c), &err), G3N_ERR);
    print_message("a third session: %s\n", err.message);
    assert_non_null(strstr(err.message, "ERROR_TOO_LARGE"));
    assert_non_null(strstr(err.message, "limit of 2 live sessions"));
    /* a closed one makes room (once its thread has ended it) */
    G3n__LiveRequest q;
    g3n__live_request__init(&q);
    q.op = G3N__LIVE_OP__LIVE_CLOSE;
    q.session_id = a;
    assert_int_equal(live(&f, &q, NULL, 0, &err), G3N_OK);
    int opened = G3N_ERR;
    for (int attempt = 0; attempt < 100 && opened != G3N_OK; attempt++) {
        opened = open_session(&f, c, sizeof(c), &err);
        if (opened != G3N_OK)
            usleep(20000);
    }
    assert_int_equal(opened, G3N_OK);
    /* untouched for more than a second: expired, and its slot free again */
    sleep(3);
    g3n__live_request__init(&q);
    q.op = G3N__LIVE_OP__LIVE_STATE;
    q.session_id = b;
    refused(&f, &q, "ERROR_NOT_FOUND", "expired after 1 s idle");
    q.session_id = c;
    refused(&f, &q, "ERROR_NOT_FOUND", "no live session");
    assert_int_equal(open_session(&f, a, sizeof(a), &err), G3N_OK);
    assert_int_equal(open_session(&f, b, sizeof(b), &err), G3N_OK);
    door_stop(&f);
}

static void test_live_sessions_off(void **state)
{
    (void)state;
    door_fixture f;
    door_start(&f, -1, 600); /* g3n-orchestrator --live-sessions 0 */
    g3n_error err = {{0}};
    char id[64];
    assert_int_equal(open_session(&f, id, sizeof(id), &err), G3N_ERR);
    print_message("%s\n", err.message);
    assert_non_null(strstr(err.message, "ERROR_UNSUPPORTED"));
    assert_non_null(strstr(err.message, "serves no live sessions"));
    door_stop(&f);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_requests_checked),
        cmocka_unit_test(test_session_limit_and_expiry),
        cmocka_unit_test(test_live_sessions_off),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
