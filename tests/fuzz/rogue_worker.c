/* rogue_worker.c - workers that answer with the fuzz input (rogue_worker.h). */
#include "rogue_worker.h"

#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "fuzz_util.h"
#include "wire.h"

static pthread_mutex_t lock = PTHREAD_MUTEX_INITIALIZER;
static const uint8_t *input;
static size_t input_size;
static int next_piece;

void g3n_rogue_input_set(const uint8_t *data, size_t size, int first_piece)
{
    pthread_mutex_lock(&lock);
    input = data;
    input_size = size;
    next_piece = first_piece;
    pthread_mutex_unlock(&lock);
}

void g3n_rogue_input_clear(void)
{
    g3n_rogue_input_set(NULL, 0, 0);
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

void g3n_rogue_pipeline_start(g3n_rogue_pipeline *p, const char *endpoint, const char *harness)
{
    memset(p, 0, sizeof(*p));
    g3n_error err = {{0}};
    const char *what = "model";
    int rc = g3n_config_load(&p->config, G3N_FUZZ_FIXTURES "/../../scripts/demo-config.json", &err);
    if (rc == G3N_OK)
        rc = g3n_tokenizer_load(&p->tokenizer, G3N_FUZZ_FIXTURES "/tokenizer/tokenizer.json", &err);
    p->transport = g3n_transport_default_options();
    p->transport.no_worker_wait_ms = 2000;
    p->transport.max_message_bytes = 8 << 20;
    if (rc == G3N_OK && (rc = g3n_broker_start(&p->broker, &endpoint, 1, &p->transport, &err)) != G3N_OK)
        what = "broker";
    for (int role = G3N_ROLE_VISION_ENCODER; role <= G3N_ROLE_DECODER && rc == G3N_OK; role++) {
        g3n_worker_options wo;
        memset(&wo, 0, sizeof(wo));
        wo.role = role;
        wo.endpoint = endpoint;
        wo.model_id = "rogue";
        wo.capacity = 1;
        wo.zmq_context = g3n_broker_context(p->broker);
        wo.transport = p->transport;
        what = "worker";
        rc = g3n_worker_start(&p->workers[role], &wo, rogue, NULL, &err);
        if (rc == G3N_OK)
            rc = g3n_broker_wait_workers(p->broker, role, 1, 10000, &err);
    }
    if (rc != G3N_OK) {
        fprintf(stderr, "%s: %s: %s\n", harness, what, err.message);
        abort();
    }
}
