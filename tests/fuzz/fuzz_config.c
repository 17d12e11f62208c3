/* fuzz_config.c - config.json (common/model_io/config.c) and the towers' parts of it
 * (the vision and audio configs, the chat template's special ids). */
#include <stdlib.h>
#include <string.h>

#include "audio_config.h"
#include "chat_template.h"
#include "config.h"
#include "fuzz_util.h"
#include "vision_encoder.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    char *text = g3n_fuzz_string(data, size);
    g3n_model_config config;
    memset(&config, 0, sizeof(config));
    g3n_error err;
    if (g3n_config_parse(&config, text, &err) == G3N_OK) {
        for (int layer = 0; layer < config.text.num_hidden_layers; layer++)
            (void)g3n_text_config_kv_source_layer(&config.text, layer);
        g3n_chat_special_ids ids;
        g3n_chat_special_ids_from_config(&ids, &config);
        g3n_vision_config vision;
        (void)g3n_vision_config_parse(&config, &vision, &err);
        g3n_audio_config audio;
        memset(&audio, 0, sizeof(audio));
        (void)g3n_audio_config_parse(&audio, &config, &err);
    }
    g3n_config_free(&config);
    free(text);
    return 0;
}
