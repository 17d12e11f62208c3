/* conversation.h - a whole conversation (any number of system, user and
 * assistant turns; images and clips in any user turn) through the pipeline,
 * continuing a kept decoder session when the prompt extends what one holds
 * (prefix_cache.h): only the new suffix is encoded (its media), embedded and
 * prefilled. Greedy tokens are the same with the cache as without it.
 *
 * Used by the front door (ChatRequest) and the HTTP API (chat completions). */
#ifndef G3N_CONVERSATION_H
#define G3N_CONVERSATION_H

#include "chat_template.h"
#include "pipeline.h"
#include "prefix_cache.h"

typedef struct g3n_conversation_options {
    g3n_prefix_cache *cache;     /* NULL: no reuse (a session of its own, ended at the end) */
    /* each encoder reply of the media it encoded (metrics), or NULL */
    void (*on_encoded)(void *user, const G3n__Envelope *reply);
    void *encoded_user;
    /* checks the encoders' replies against it (g3n_pipeline_check_media: shapes, finite numbers), or NULL */
    const g3n_model_config *config;
} g3n_conversation_options;

/* The prompt ids[0..count) (chat_template.h: placeholders for files[0..file_count) in order) -> generated
 * tokens, as g3n_pipeline_generate (tokenizer NULL) or g3n_pipeline_generate_text. files are the media as
 * g3n_pipeline_window_media gave them (images, 30 s audio windows; it refuses empty media), as
 * g3n_conversation_render does. stats also gets encode_seconds, reused_tokens, rebuilds and
 * first_token_seconds. params->record must be NULL. */
int g3n_pipeline_conversation(g3n_client *client, const g3n_conversation_options *options,
                              const g3n_tokenizer *tokenizer, const int32_t *ids, int64_t count,
                              const g3n_media_file *files, int file_count, const g3n_pipeline_generate_params *params,
                              g3n_text_callback on_text, void *text_user, g3n_pipeline_stats *stats, g3n_error *err);

/* A front-door ChatRequest's messages rendered with the chat template (add_generation_prompt): each message's
 * images, then clips, then text; roles "system" (first only), "user", "assistant"/"model". The media go
 * through g3n_pipeline_window_media as in g3n_pipeline_chat: a clip over 30 s becomes one audio segment per
 * window. windows->files[0..windows->count) lists them in prompt order (the caller frees windows with
 * g3n_pipeline_windows_free; image bytes stay borrowed from the request). Errors name the message or the
 * medium at fault. */
int g3n_conversation_render(const G3n__ChatRequest *request, const g3n_model_config *config,
                            const g3n_tokenizer *tokenizer, int max_media, g3n_chat_prompt *prompt,
                            g3n_pipeline_windows *windows, g3n_error *err);

#endif
