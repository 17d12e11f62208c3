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

static g3n_rogue_pipeline pipeline;
static g3n_client *client;

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
    (void)argc;
    (void)argv;
    g3n_rogue_pipeline_start(&pipeline, "inproc://fuzz-wire-replies", "fuzz_wire_replies");
    g3n_error err;
    if (g3n_client_open(&client, pipeline.broker, &err) != G3N_OK) {
        fprintf(stderr, "fuzz_wire_replies: client: %s\n", err.message);
        abort();
    }
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
    g3n_media_file media[2] = {{G3N_MEDIA_IMAGE, image, sizeof(image), "image"},
                               {G3N_MEDIA_AUDIO, audio, sizeof(audio), "clip"}};
    g3n_chat_input chat = {NULL, "Describe both.", media, (int)(size % 3)};
    g3n_pipeline_generate_params params = g3n_pipeline_default_params(&pipeline.config);
    params.max_new_tokens = 4;
    g3n_pipeline_stats stats;
    memset(&stats, 0, sizeof(stats));
    g3n_error err;
    if (g3n_pipeline_chat(client, &pipeline.config, pipeline.tokenizer, &chat, &params, on_text, NULL, &stats, &err) != G3N_OK &&
        !err.message[0])
        abort(); /* an error that says nothing */
    g3n_rogue_input_clear(); /* the input is only valid during this call */
    return 0;
}
