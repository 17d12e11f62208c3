/* fuzz_http_chat.c - a POST /v1/chat/completions body (orchestrator/http_request.c):
 * the JSON, its messages and content parts (text, image_url and audio data:
 * URLs, input_audio, local paths under --allow-dir), the sampling parameters
 * and stops; a body it accepts is then rendered by the chat template (text
 * only), as the server does next. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "chat_template.h"
#include "fuzz_util.h"
#include "http_request.h"

static g3n_http_limits limits;
static g3n_chat_special_ids special;
static volatile uint64_t sink;

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
    (void)argc;
    (void)argv;
    static char allow_dir[512];
    snprintf(allow_dir, sizeof(allow_dir), "%s", g3n_fuzz_scratch_dir());
    char path[600];
    snprintf(path, sizeof(path), "%s/clip.wav", allow_dir);
    if (g3n_fuzz_write_file(path, (const uint8_t *)"RIFF....WAVE", 12) != 0)
        abort();
    limits.allow_dir = allow_dir;
    limits.max_media_bytes = 1 << 20;
    limits.max_media = 4;
    limits.max_messages = 16;
    memset(&special, 0, sizeof(special));
    special.bos_token_id = 2;
    special.boi_token_id = 255999;
    special.eoi_token_id = 256000;
    special.image_token_id = 262145;
    special.boa_token_id = 256001;
    special.eoa_token_id = 262272;
    special.audio_token_id = 262273;
    special.vision_soft_tokens_per_image = 4;
    special.audio_soft_tokens_per_image = 3;
    return 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    g3n_http_chat_request request;
    memset(&request, 0, sizeof(request));
    g3n_http_error e;
    memset(&e, 0, sizeof(e));
    if (g3n_http_parse_chat((const char *)data, size, &limits, &request, &e) == G3N_OK) {
        for (int i = 0; i < request.media_count; i++)
            sink += g3n_fuzz_touch(request.media[i].bytes, request.media[i].size);
        for (int i = 0; i < request.stop_count; i++)
            sink += g3n_fuzz_touch(request.stops[i], strlen(request.stops[i]));
        g3n_chat_prompt prompt;
        memset(&prompt, 0, sizeof(prompt));
        g3n_error err;
        if (g3n_chat_template_apply(NULL, &special, request.messages, request.message_count, 1, &prompt, &err) ==
            G3N_OK)
            sink += g3n_fuzz_touch(prompt.text, prompt.text_length);
        g3n_chat_prompt_free(&prompt);
    } else if (e.status < 400 || e.status > 599 || !e.message[0] || !e.type) {
        fprintf(stderr, "an error without a status, type or message: %d %s\n", e.status, e.message);
        abort();
    }
    g3n_http_chat_request_free(&request);
    return 0;
}
