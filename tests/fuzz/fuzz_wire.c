/* fuzz_wire.c - a ZeroMQ message as a worker receives it: the envelope
 * (common/net/wire.c: g3n_wire_unpack) and then, through the in-process broker,
 * the role that serves its body (orchestrator/roles.c: every request's field
 * checks, with the tiny fixture model tests/fixtures/mm-tiny behind them).
 *
 * Per input: the bytes are unpacked here (a clean error or an envelope whose
 * body is present), packed again and unpacked again (same body); then sent
 * as they are (g3n_client_submit_bytes) to the role of the body (encode_image
 * -> vision encoder, encode_audio -> audio encoder, embed -> embedder,
 * prefill / decode_step / end_session -> decoder; any other body to a role
 * the request id picks) and the final answer must come within 30 s (a
 * worker that never answers is a finding). A prefill that opened a session
 * is ended, so sessions do not pile up. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "fuzz_util.h"
#include "pipeline.h"
#include "transport.h"
#include "weights.h"
#include "wire.h"

#define ANSWER_TIMEOUT_MS 30000

static g3n_model_config config;
static g3n_weights *weights;
static g3n_broker *broker;
static g3n_local_roles local;
static g3n_client *client;

static void fail(const char *what, const g3n_error *err)
{
    fprintf(stderr, "fuzz_wire: %s: %s\n", what, err->message);
    abort();
}

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
    (void)argc;
    (void)argv;
    g3n_error err;
    const char *folder = G3N_FUZZ_FIXTURES "/mm-tiny/hf-checkpoint";
    if (g3n_config_load(&config, G3N_FUZZ_FIXTURES "/mm-tiny/hf-checkpoint/config.json", &err) != G3N_OK ||
        g3n_weights_open_checkpoint(&weights, folder, &err) != G3N_OK)
        fail("model", &err);
    g3n_transport_options transport = g3n_transport_default_options();
    transport.no_worker_wait_ms = 2000;
    transport.max_message_bytes = 8 << 20;
    const char *endpoints[1] = {"inproc://fuzz-wire"};
    if (g3n_broker_start(&broker, endpoints, 1, &transport, &err) != G3N_OK)
        fail("broker", &err);
    g3n_role_options options;
    memset(&options, 0, sizeof(options));
    options.model_dir = folder;
    options.max_sessions = 4;
    options.max_positions = 64;
    options.threads = 1;
    unsigned mask = (1u << G3N_ROLE_VISION_ENCODER) | (1u << G3N_ROLE_AUDIO_ENCODER) | (1u << G3N_ROLE_EMBEDDER) |
                    (1u << G3N_ROLE_DECODER);
    if (g3n_local_roles_start(&local, broker, endpoints[0], weights, &config, &options, mask, &transport, &err) !=
        G3N_OK)
        fail("roles", &err);
    for (int role = G3N_ROLE_VISION_ENCODER; role <= G3N_ROLE_DECODER; role++)
        if (g3n_broker_wait_workers(broker, role, 1, 10000, &err) != G3N_OK)
            fail("workers", &err);
    if (g3n_client_open(&client, broker, &err) != G3N_OK)
        fail("client", &err);
    return 0;
}

static int role_of(const G3n__Envelope *env)
{
    switch (env->body_case) {
    case G3N__ENVELOPE__BODY_ENCODE_IMAGE: return G3N_ROLE_VISION_ENCODER;
    case G3N__ENVELOPE__BODY_ENCODE_AUDIO: return G3N_ROLE_AUDIO_ENCODER;
    case G3N__ENVELOPE__BODY_EMBED: return G3N_ROLE_EMBEDDER;
    case G3N__ENVELOPE__BODY_PREFILL:
    case G3N__ENVELOPE__BODY_DECODE_STEP:
    case G3N__ENVELOPE__BODY_END_SESSION: return G3N_ROLE_DECODER;
    default: return G3N_ROLE_VISION_ENCODER + (int)(env->request_id % 4);
    }
}

/* Sends bytes to role; returns the final reply's body case (the reply itself is checked by the client). */
static int send_and_wait(int role, const void *bytes, size_t size)
{
    g3n_error err;
    g3n_request_options ro = {role, 0, NULL};
    uint64_t id = 0;
    if (g3n_client_submit_bytes(client, &ro, bytes, size, &id, &err) != G3N_OK)
        fail("submit", &err);
    for (;;) {
        g3n_reply reply;
        memset(&reply, 0, sizeof(reply));
        if (g3n_client_receive(client, ANSWER_TIMEOUT_MS, &reply, &err) != G3N_OK) {
            fprintf(stderr, "fuzz_wire: no answer from the %s within %d ms: %s\n", g3n_role_name(role),
                    ANSWER_TIMEOUT_MS, err.message);
            abort();
        }
        int done = reply.request_id == id && reply.final;
        int body = reply.envelope ? (int)reply.envelope->body_case : 0;
        if (reply.request_id == id && !reply.envelope)
            abort(); /* a final answer must be an envelope */
        g3n_reply_clear(&reply);
        if (done)
            return body;
    }
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size > (4 << 20))
        return 0;
    G3n__Envelope *env = NULL;
    int code = 0;
    g3n_error err;
    if (g3n_wire_unpack(data, size, 8 << 20, &env, &code, &err) != G3N_OK) {
        if (code == 0 || !err.message[0])
            abort(); /* a refusal names its error code and says why */
        g3n_wire_free(env);
        /* the worker must answer a malformed message too (or drop it, counted): send it to the vision encoder */
        if (size && data[0] % 8 == 0)
            (void)send_and_wait(G3N_ROLE_VISION_ENCODER, data, size);
        return 0;
    }
    /* pack and unpack again: the same body */
    uint8_t *packed = NULL;
    size_t packed_size = 0;
    if (g3n_wire_pack(env, &packed, &packed_size, &err) != G3N_OK)
        fail("pack", &err);
    G3n__Envelope *again = NULL;
    if (g3n_wire_unpack(packed, packed_size, 8 << 20, &again, &code, &err) != G3N_OK ||
        again->body_case != env->body_case || again->request_id != env->request_id)
        abort();
    g3n_wire_free(again);
    free(packed);
    if (env->body_case == G3N__ENVELOPE__BODY_PING && env->ping->delay_ms > 1000) {
        g3n_wire_free(env); /* a Ping waits what it asks (up to 10 min, by design) */
        return 0;
    }
    switch (env->body_case) {
    case G3N__ENVELOPE__BODY_HEARTBEAT:
    case G3N__ENVELOPE__BODY_CANCEL:
    case G3N__ENVELOPE__BODY_HELLO:
    case G3N__ENVELOPE__BODY_GOODBYE:
    case G3N__ENVELOPE__BODY_ERROR:
        /* The broker's own control bodies: a worker drops them without an answer, and the broker
         * has no deadline per request (issue 18, defect 3), so one sent as a request would wait
         * for ever (regressions/wire/control-body-as-request). Only in-process clients (trusted
         * code) can submit one; they are not sent. */
        g3n_wire_free(env);
        return 0;
    default:
        break;
    }
    int role = role_of(env);
    int answer = send_and_wait(role, data, size);
    if (env->body_case == G3N__ENVELOPE__BODY_PREFILL && answer == G3N__ENVELOPE__BODY_STEP_REPLY &&
        env->prefill->session_id) {
        G3n__Envelope end = G3N__ENVELOPE__INIT;
        G3n__EndSession body = G3N__END_SESSION__INIT;
        body.session_id = env->prefill->session_id;
        end.body_case = G3N__ENVELOPE__BODY_END_SESSION;
        end.end_session = &body;
        if (g3n_wire_pack(&end, &packed, &packed_size, &err) != G3N_OK)
            fail("pack", &err);
        (void)send_and_wait(G3N_ROLE_DECODER, packed, packed_size);
        free(packed);
    }
    g3n_wire_free(env);
    return 0;
}
