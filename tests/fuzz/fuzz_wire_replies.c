/* fuzz_wire_replies.c - the other direction: what workers answer, as the
 * orchestrator's pipeline (orchestrator/pipeline.c) reads it. Four rogue
 * workers (one per role) answer each request with the next piece of the input
 * (rogue_worker.h). The client side runs a whole chat (g3n_pipeline_chat: one image and
 * one clip, then embed, prefill and decode steps) with the demo model's
 * config and the real tokenizer. It must end, with text or a clear error,
 * and never read a tensor outside its data. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "fuzz_util.h"
#include "pipeline.h"
#include "rogue_worker.h"
#include "tokenizer.h"
#include "transport.h"
#include "wire.h"

static g3n_model_config config;
static g3n_tokenizer *tokenizer;
static g3n_broker *broker;
static g3n_worker *workers[G3N_ROLE_COUNT];
static g3n_client *client;

static void fail(const char *what, const g3n_error *err)
{
    fprintf(stderr, "fuzz_wire_replies: %s: %s\n", what, err->message);
    abort();
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
    if (g3n_rogue_workers_start(broker, endpoints[0], &transport, workers, &err) != G3N_OK)
        fail("worker", &err);
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
    g3n_rogue_input_set(data, size, 0);
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
    g3n_rogue_input_clear(); /* the input is only valid during this call */
    return 0;
}
