/* chat_template.h - the Gemma 3n chat template, written out in C (no Jinja).
 *
 * It renders what the checkpoint's chat_template.jinja renders and then what
 * Gemma3nProcessor does to it (processing_gemma3n.py):
 *   <bos>
 *   an optional first "system" message: its text + "\n\n" is put in front of
 *     the first user turn (not trimmed, as the template does)
 *   turns alternate user / model, starting with user ("assistant" is written
 *     "model"; any other role, or a broken alternation, is an error)
 *   each turn: "<start_of_turn>" ROLE "\n" items "<end_of_turn>\n"
 *     text item  -> the text trimmed of white space (Python str.strip)
 *     image item -> "\n\n" boi + N x image_token + eoi "\n\n",
 *                   N = vision_soft_tokens_per_image
 *     audio item -> "\n\n" boa + N x audio_token + eoa "\n\n",
 *                   N = audio_soft_tokens_per_image
 *   add_generation_prompt -> "<start_of_turn>model\n"
 *
 * The result comes both as text (multimodal tokens written by name) and as
 * token ids: the text between multimodal tokens is encoded with the
 * tokenizer (no <bos> added by the post-processor; special tokens written in
 * the text match), and the multimodal tokens take their ids from the model
 * config, so a synthetic vocabulary works as well as the real one. Segment
 * by segment encoding equals encoding the whole text, because the multimodal
 * tokens are added tokens of the real vocabulary (always split there).
 */
#ifndef G3N_CHAT_TEMPLATE_H
#define G3N_CHAT_TEMPLATE_H

#include <stddef.h>
#include <stdint.h>

#include "config.h"
#include "status.h"
#include "tokenizer.h"

/* The ids the template needs from config.json (Gemma3nConfig). */
typedef struct g3n_chat_special_ids {
    int32_t bos_token_id;
    int32_t boi_token_id, eoi_token_id, image_token_id; /* begin/end of image, image soft token */
    int32_t boa_token_id, eoa_token_id, audio_token_id; /* begin/end of audio, audio soft token */
    int64_t vision_soft_tokens_per_image;               /* image placeholders per image (256) */
    int64_t audio_soft_tokens_per_image;                /* audio placeholders per clip (188) */
} g3n_chat_special_ids;

/* Fills ids from a loaded model config. */
void g3n_chat_special_ids_from_config(g3n_chat_special_ids *ids, const g3n_model_config *config);

typedef enum g3n_chat_item_type {
    G3N_CHAT_TEXT = 0,
    G3N_CHAT_IMAGE = 1,
    G3N_CHAT_AUDIO = 2,
} g3n_chat_item_type;

typedef struct g3n_chat_item {
    g3n_chat_item_type type;
    const char *text; /* G3N_CHAT_TEXT only: UTF-8, borrowed */
} g3n_chat_item;

typedef struct g3n_chat_message {
    const char *role;           /* "system" (first only), "user", "model" or "assistant" */
    const g3n_chat_item *items; /* borrowed */
    int item_count;
} g3n_chat_message;

/* The rendered prompt; owned, free with g3n_chat_prompt_free. */
typedef struct g3n_chat_prompt {
    char *text;          /* NUL-terminated UTF-8 */
    size_t text_length;  /* bytes */
    g3n_token_ids ids;   /* the prompt's token ids, <bos> first */
    int image_count;     /* image items, in order of appearance */
    int audio_count;     /* audio items */
} g3n_chat_prompt;

/* Renders messages[0..message_count). tokenizer may be NULL: then only the
 * text is produced (ids stays empty). Errors name the message and what is
 * wrong (role order, unknown role, empty conversation, bad item). */
int g3n_chat_template_apply(const g3n_tokenizer *tokenizer, const g3n_chat_special_ids *special,
                            const g3n_chat_message *messages, int message_count, int add_generation_prompt,
                            g3n_chat_prompt *out, g3n_error *err);
void g3n_chat_prompt_free(g3n_chat_prompt *prompt); /* accepts a zeroed struct */

#endif
