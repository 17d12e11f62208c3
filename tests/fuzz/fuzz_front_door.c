/* fuzz_front_door.c - what a client sends to g3n-orchestrator's front door
 * (orchestrator/front_door.c, its --listen endpoint, `g3n run --connect`):
 * piece 0 of the input (pieces separated by "\n--g3n--\n") is the raw
 * message; the chat it starts (template, tokenizer, encoders, embedder,
 * decoder through the in-process broker) meets rogue workers, one per role,
 * that answer each request with the next piece (rogue_worker.h, as in
 * fuzz_wire_replies). The client must get a final answer (an Error, or the
 * last TokenEvent) within 30 s, every event well formed. A LiveRequest (live
 * sessions, live_door.h) other than open goes to a session the harness opened
 * for it (its session_id replaced, so that frames, audio and questions reach
 * the session's thread and the rogue workers); a LiveReply is a final answer
 * too; the sessions are closed after. Demo model config, real tokenizer. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <zmq.h>

#include "front_door.h"
#include "fuzz_util.h"
#include "rogue_worker.h"
#include "tokenizer.h"
#include "transport.h"
#include "wire.h"

#define ANSWER_TIMEOUT_MS 30000

static g3n_rogue_pipeline pipeline;
static g3n_front_door *door;
static void *dealer;

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
    (void)argc;
    (void)argv;
    g3n_rogue_pipeline_start(&pipeline, "inproc://fuzz-front-door-workers", "fuzz_front_door");
    g3n_front_door_options options;
    memset(&options, 0, sizeof(options));
    options.endpoint = "inproc://fuzz-front-door";
    options.max_chats = 4;
    options.max_new_tokens = 4;
    options.max_message_bytes = 8 << 20;
    g3n_error err;
    if (g3n_front_door_start(&door, pipeline.broker, &pipeline.config, pipeline.tokenizer, &options, &err) !=
        G3N_OK) {
        fprintf(stderr, "fuzz_front_door: front door: %s\n", err.message);
        abort();
    }
    dealer = zmq_socket(g3n_broker_context(pipeline.broker), ZMQ_DEALER);
    if (!dealer || zmq_connect(dealer, options.endpoint) != 0)
        abort();
    return 0;
}

/* Sends message and reads the events until the final one (an Error, a
 * LiveReply, or a TokenEvent that is not partial); aborts on anything else.
 * session_id gets a LiveReply's session id when not NULL. */
static void exchange(const uint8_t *message, size_t message_size, char *session_id, size_t session_id_size)
{
    if (zmq_send(dealer, message, message_size, 0) < 0)
        abort();
    for (;;) {
        zmq_pollitem_t item = {dealer, 0, ZMQ_POLLIN, 0};
        int n = zmq_poll(&item, 1, ANSWER_TIMEOUT_MS);
        if (n < 0 && zmq_errno() == EINTR)
            continue;
        if (n <= 0) {
            fprintf(stderr, "fuzz_front_door: no final answer within %d ms\n", ANSWER_TIMEOUT_MS);
            abort();
        }
        zmq_msg_t msg;
        zmq_msg_init(&msg);
        if (zmq_msg_recv(&msg, dealer, 0) < 0)
            abort();
        G3n__Envelope *env = NULL;
        int code;
        g3n_error err;
        if (g3n_wire_unpack(zmq_msg_data(&msg), zmq_msg_size(&msg), 0, &env, &code, &err) != G3N_OK) {
            fprintf(stderr, "fuzz_front_door: the front door sent what does not read back: %s\n", err.message);
            abort();
        }
        zmq_msg_close(&msg);
        int final = !env->partial;
        if (env->body_case == G3N__ENVELOPE__BODY_TOKEN) {
            const char *text = env->token->text ? env->token->text : "";
            if (!g3n_utf8_valid(text, strlen(text)))
                abort(); /* events carry complete UTF-8 */
        } else if (env->body_case == G3N__ENVELOPE__BODY_LIVE_REPLY && final) {
            if (session_id)
                snprintf(session_id, session_id_size, "%s", env->live_reply->session_id ? env->live_reply->session_id : "");
        } else if (env->body_case != G3N__ENVELOPE__BODY_ERROR || !final || !env->error->message ||
                   !env->error->message[0]) {
            fprintf(stderr, "fuzz_front_door: an answer that is neither a token event nor an error: %s\n",
                    g3n_wire_body_name(env->body_case));
            abort();
        }
        g3n_wire_free(env);
        if (final)
            break;
    }
}

/* A LiveRequest envelope for the session (op open when session_id is NULL), packed. */
static void live_message(int op, const char *session_id, uint8_t **data, size_t *size)
{
    G3n__Envelope env;
    G3n__LiveRequest q;
    g3n__envelope__init(&env);
    g3n__live_request__init(&q);
    q.op = op;
    q.session_id = (char *)(session_id ? session_id : "");
    env.body_case = G3N__ENVELOPE__BODY_LIVE;
    env.live = &q;
    g3n_error err;
    if (g3n_wire_pack(&env, data, size, &err) != G3N_OK) {
        fprintf(stderr, "fuzz_front_door: pack: %s\n", err.message);
        abort();
    }
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    const uint8_t *message;
    size_t message_size;
    if (!g3n_fuzz_piece(data, size, 0, &message, &message_size) || message_size > (4 << 20))
        return 0;
    g3n_rogue_input_set(data, size, 1);
    G3n__Envelope *env = NULL;
    int code;
    g3n_error err;
    char session[64] = "";
    uint8_t *packed = NULL;
    size_t packed_size = 0;
    if (g3n_wire_unpack(message, message_size, 0, &env, &code, &err) == G3N_OK &&
        env->body_case == G3N__ENVELOPE__BODY_LIVE && env->live->op != G3N__LIVE_OP__LIVE_OPEN) {
        /* into a session of its own (the live door may still be closing earlier ones, each ending its decoder
         * session and audio stream with the rogue workers: retry for as long as an answer may take) */
        uint8_t *open;
        size_t open_size;
        live_message(G3N__LIVE_OP__LIVE_OPEN, NULL, &open, &open_size);
        for (int attempt = 0; attempt < ANSWER_TIMEOUT_MS / 20 && !session[0]; attempt++) {
            exchange(open, open_size, session, sizeof(session));
            if (!session[0])
                usleep(20000);
        }
        free(open);
        if (!session[0]) {
            fprintf(stderr, "fuzz_front_door: no live session could be opened within %d ms\n", ANSWER_TIMEOUT_MS);
            abort();
        }
        char *own = env->live->session_id;
        env->live->session_id = session; /* borrowed until packed */
        if (g3n_wire_pack(env, &packed, &packed_size, &err) != G3N_OK) {
            fprintf(stderr, "fuzz_front_door: pack: %s\n", err.message);
            abort();
        }
        env->live->session_id = own;
        message = packed;
        message_size = packed_size;
    }
    g3n_wire_free(env);
    char opened[64] = ""; /* a session the input opened itself (LIVE_OPEN): closed too */
    exchange(message, message_size, opened, sizeof(opened));
    free(packed);
    for (int k = 0; k < 2; k++) { /* the sessions' end: a LiveReply, or not-found when the input closed it */
        const char *id = k == 0 ? session : opened;
        if (!id[0] || (k == 1 && strcmp(opened, session) == 0))
            continue;
        uint8_t *close;
        size_t close_size;
        live_message(G3N__LIVE_OP__LIVE_CLOSE, id, &close, &close_size);
        exchange(close, close_size, NULL, 0);
        free(close);
    }
    g3n_rogue_input_clear();
    return 0;
}
