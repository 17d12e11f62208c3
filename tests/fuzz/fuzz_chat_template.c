/* fuzz_chat_template.c - the chat template (common/text/chat_template.c) with the
 * real tokenizer and the demo model's special ids. Input: messages separated
 * by "\n--g3n--\n"; each one's first byte picks the role (system, user,
 * model, assistant or an unknown one), the rest is its text, where byte 0x01
 * is an image item and 0x02 an audio item. The prompt's ids must be the
 * tokenizer's ids of its text, with each media item's placeholders. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "chat_template.h"
#include "config.h"
#include "fuzz_util.h"
#include "tokenizer.h"

#define MAX_MESSAGES 8
#define MAX_ITEMS 16

static g3n_tokenizer *tokenizer;
static g3n_chat_special_ids special;

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
    (void)argc;
    (void)argv;
    g3n_error err;
    g3n_model_config config;
    memset(&config, 0, sizeof(config));
    if (g3n_tokenizer_load(&tokenizer, G3N_FUZZ_FIXTURES "/tokenizer/tokenizer.json", &err) != G3N_OK ||
        g3n_config_load(&config, G3N_FUZZ_FIXTURES "/../../scripts/demo-config.json", &err) != G3N_OK) {
        fprintf(stderr, "fuzz_chat_template: %s\n", err.message);
        abort();
    }
    g3n_chat_special_ids_from_config(&special, &config);
    special.vision_soft_tokens_per_image = 3; /* short prompts: the count is not what is fuzzed */
    special.audio_soft_tokens_per_image = 2;
    g3n_config_free(&config);
    return 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    static const char *const roles[] = {"system", "user", "model", "assistant", "tool"};
    g3n_chat_message messages[MAX_MESSAGES];
    g3n_chat_item items[MAX_MESSAGES][MAX_ITEMS];
    char *texts[MAX_MESSAGES];
    int count = 0, images = 0, audios = 0;
    const uint8_t *piece;
    size_t piece_size;
    while (count < MAX_MESSAGES && g3n_fuzz_piece(data, size, count, &piece, &piece_size)) {
        g3n_chat_message *m = &messages[count];
        m->role = roles[piece_size ? piece[0] % 5 : 1];
        char *text = texts[count] = g3n_fuzz_string(piece_size ? piece + 1 : piece, piece_size ? piece_size - 1 : 0);
        size_t length = piece_size ? piece_size - 1 : 0;
        int n = 0;
        size_t start = 0;
        for (size_t i = 0; i <= length && n < MAX_ITEMS; i++) {
            if (i < length && text[i] != 1 && text[i] != 2)
                continue;
            int marker = i < length ? text[i] : 0;
            if (i < length)
                text[i] = '\0';
            if (i > start && n < MAX_ITEMS)
                items[count][n++] = (g3n_chat_item){G3N_CHAT_TEXT, text + start};
            if (marker && n < MAX_ITEMS) {
                items[count][n++] = (g3n_chat_item){marker == 1 ? G3N_CHAT_IMAGE : G3N_CHAT_AUDIO, NULL};
                images += marker == 1;
                audios += marker == 2;
            }
            start = i + 1;
        }
        m->items = items[count];
        m->item_count = n;
        count++;
    }
    g3n_chat_prompt prompt;
    memset(&prompt, 0, sizeof(prompt));
    g3n_error err;
    if (g3n_chat_template_apply(tokenizer, &special, messages, count, size % 2, &prompt, &err) == G3N_OK) {
        int64_t image_tokens = 0, audio_tokens = 0;
        for (int64_t i = 0; i < prompt.ids.count; i++) {
            image_tokens += prompt.ids.ids[i] == special.image_token_id;
            audio_tokens += prompt.ids.ids[i] == special.audio_token_id;
        }
        if (prompt.ids.count < 1 || prompt.ids.ids[0] != special.bos_token_id || !g3n_utf8_valid(prompt.text, prompt.text_length))
            abort();
        /* the client's text may spell the soft tokens too: at least one per item */
        if (prompt.image_count > images || prompt.audio_count > audios ||
            image_tokens < prompt.image_count * special.vision_soft_tokens_per_image ||
            audio_tokens < prompt.audio_count * special.audio_soft_tokens_per_image)
            abort();
    }
    g3n_chat_prompt_free(&prompt);
    for (int i = 0; i < count; i++)
        free(texts[i]);
    return 0;
}
