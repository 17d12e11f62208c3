/* fuzz_wire_replies.c - the other direction: what workers answer, as the
 * orchestrator's pipeline (orchestrator/pipeline.c) reads it. Four rogue
 * workers (one per role) answer each request with the next piece of the input
 * (pieces separated by "\n--g3n--\n"): a piece that unpacks as an envelope is
 * sent as it is (partial ones first, while they say partial), any other piece
 * becomes an Error reply; when the input is used up every request gets an
 * Error. The client side runs a whole chat (g3n_pipeline_chat: one image and
 * one clip, then embed, prefill and decode steps) with the demo model's
 * config and the real tokenizer. It must end, with text or a clear error,
 * and never read a tensor outside its data. */
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "fuzz_util.h"
#include "pipeline.h"
#include "tokenizer.h"
#include "transport.h"
#include "wire.h"

static g3n_model_config config;
static g3n_tokenizer *tokenizer;
static g3n_broker *broker;
static g3n_worker *workers[G3N_ROLE_COUNT];
static g3n_client *client;

static pthread_mutex_t lock = PTHREAD_MUTEX_INITIALIZER;
static const uint8_t *input;
static size_t input_size;
static int next_piece;

static void fail(const char *what, const g3n_error *err)
{
    fprintf(stderr, "fuzz_wire_replies: %s: %s\n", what, err->message);
    abort();
}

/* The next piece, unpacked (NULL when it does not unpack or the input is used up: *more = 0 then). */
static G3n__Envelope *take_piece(int *more)
{
    pthread_mutex_lock(&lock);
    const uint8_t *piece = NULL;
    size_t piece_size = 0;
    *more = input && g3n_fuzz_piece(input, input_size, next_piece, &piece, &piece_size);
    if (*more)
        next_piece++;
    G3n__Envelope *env = NULL;
    if (*more) {
        int code;
        g3n_error err;
        if (g3n_wire_unpack(piece, piece_size, 0, &env, &code, &err) != G3N_OK) {
            g3n_wire_free(env);
            env = NULL;
        }
        /* Packed again (protobuf-c keeps unknown fields, even a field number 0) it must still unpack:
         * a reply the broker cannot read is dropped, and the broker has no deadline per request
         * (issue 18, defect 3), so its client would wait for ever
         * (regressions/wire_replies/unreadable-reply-never-answered). Sent as an Error instead. */
        uint8_t *packed = NULL;
        size_t packed_size = 0;
        G3n__Envelope *again = NULL;
        if (env && (g3n_wire_pack(env, &packed, &packed_size, &err) != G3N_OK ||
                    g3n_wire_unpack(packed, packed_size, 0, &again, &code, &err) != G3N_OK)) {
            g3n_wire_free(env);
            env = NULL;
        }
        g3n_wire_free(again);
        free(packed);
        /* The broker's own control bodies are taken as such (a Hello re-registers the worker), not as
         * the reply: the request would wait for ever, defect 3 again
         * (regressions/wire_replies/control-body-as-reply). */
        if (env && (env->body_case == G3N__ENVELOPE__BODY_HELLO || env->body_case == G3N__ENVELOPE__BODY_HEARTBEAT ||
                    env->body_case == G3N__ENVELOPE__BODY_GOODBYE || env->body_case == G3N__ENVELOPE__BODY_CANCEL)) {
            g3n_wire_free(env);
            env = NULL;
        }
    }
    pthread_mutex_unlock(&lock);
    return env;
}

static int rogue(void *user, g3n_worker_call *call, const G3n__Envelope *request, g3n_error *err)
{
    (void)user;
    (void)request;
    for (int sent = 0; sent < 64; sent++) {
        int more;
        G3n__Envelope *env = take_piece(&more);
        if (!env)
            return g3n_error_set(err, more ? "rogue worker: a piece that is no envelope" : "rogue worker: input used up");
        int partial = env->partial && sent < 63;
        int rc = g3n_worker_call_send(call, env, partial, err);
        g3n_wire_free(env);
        if (rc != G3N_OK || !partial)
            return rc;
    }
    return G3N_OK;
}

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
    (void)argc;
    (void)argv;
    g3n_error err;
    if (g3n_config_load(&config, G3N_FUZZ_FIXTURES "/../../scripts/demo-config.json", &err) != G3N_OK ||
        g3n_tokenizer_load(&tokenizer, G3N_FUZZ_FIXTURES "/tokenizer/tokenizer.json", &err) != G3N_OK)
        fail("model", &err);
    g3n_transport_options transport = g3n_transport_default_options();
    transport.no_worker_wait_ms = 2000;
    transport.max_message_bytes = 8 << 20;
    const char *endpoints[1] = {"inproc://fuzz-wire-replies"};
    if (g3n_broker_start(&broker, endpoints, 1, &transport, &err) != G3N_OK)
        fail("broker", &err);
    for (int role = G3N_ROLE_VISION_ENCODER; role <= G3N_ROLE_DECODER; role++) {
        g3n_worker_options wo;
        memset(&wo, 0, sizeof(wo));
        wo.role = role;
        wo.endpoint = endpoints[0];
        wo.model_id = "rogue";
        wo.capacity = 1;
        wo.zmq_context = g3n_broker_context(broker);
        wo.transport = transport;
        if (g3n_worker_start(&workers[role], &wo, rogue, NULL, &err) != G3N_OK ||
            g3n_broker_wait_workers(broker, role, 1, 10000, &err) != G3N_OK)
            fail("worker", &err);
    }
    if (g3n_client_open(&client, broker, &err) != G3N_OK)
        fail("client", &err);
    return 0;
}

static int on_text(void *user, const char *text, size_t length)
{
    (void)user;
    if (!g3n_utf8_valid(text, length))
        abort();
    return 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    pthread_mutex_lock(&lock);
    input = data;
    input_size = size;
    next_piece = 0;
    pthread_mutex_unlock(&lock);
    static const uint8_t image[] = {0x89, 'P', 'N', 'G'}, audio[] = {'R', 'I', 'F', 'F'};
    g3n_media_file media[2] = {{0, image, sizeof(image), "image"}, {1, audio, sizeof(audio), "clip"}};
    g3n_chat_input chat = {NULL, "Describe both.", media, (int)(size % 3)};
    g3n_pipeline_generate_params params = g3n_pipeline_default_params(&config);
    params.max_new_tokens = 4;
    g3n_pipeline_stats stats;
    memset(&stats, 0, sizeof(stats));
    g3n_error err;
    if (g3n_pipeline_chat(client, &config, tokenizer, &chat, &params, on_text, NULL, &stats, &err) != G3N_OK &&
        !err.message[0])
        abort(); /* an error that says nothing */
    pthread_mutex_lock(&lock);
    input = NULL; /* the input is only valid during this call */
    pthread_mutex_unlock(&lock);
    return 0;
}
