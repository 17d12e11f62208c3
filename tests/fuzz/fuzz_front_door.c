/* fuzz_front_door.c - what a client sends to g3n-orchestrator's front door
 * (orchestrator/front_door.c, its --listen endpoint, `g3n run --connect`):
 * piece 0 of the input (pieces separated by "\n--g3n--\n") is the raw
 * message; the chat it starts (template, tokenizer, encoders, embedder,
 * decoder through the in-process broker) meets rogue workers, one per role,
 * that answer each request with the next piece (rogue_worker.h, as in
 * fuzz_wire_replies). The client must get a final answer (an Error, or the
 * last TokenEvent) within 30 s, every event well formed. Demo model config,
 * real tokenizer. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
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

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    const uint8_t *message;
    size_t message_size;
    if (!g3n_fuzz_piece(data, size, 0, &message, &message_size) || message_size > (4 << 20))
        return 0;
    g3n_rogue_input_set(data, size, 1);
    if (zmq_send(dealer, message, message_size, 0) < 0)
        abort();
    /* events until the final one (an Error or a TokenEvent that is not partial) */
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
    g3n_rogue_input_clear();
    return 0;
}
