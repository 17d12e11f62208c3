/* conversation.c - whole conversations with prefix reuse (conversation.h). */
#include "conversation.h"

#include <stdlib.h>
#include <string.h>

#include "ops.h"

typedef struct first_token {
    g3n_pipeline_token_callback outer;
    void *outer_user;
    double start, seconds;
} first_token;

static int on_first_token(void *user, int64_t step, int32_t token, const float *logits, int64_t vocab)
{
    first_token *f = user;
    if (step == 0)
        f->seconds = g3n_now_seconds() - f->start;
    return f->outer ? f->outer(f->outer_user, step, token, logits, vocab) : 0;
}

int g3n_pipeline_conversation(g3n_client *client, const g3n_conversation_options *options,
                              const g3n_tokenizer *tokenizer, const int32_t *ids, int64_t count,
                              const g3n_media_file *files, int file_count, const g3n_pipeline_generate_params *params,
                              g3n_text_callback on_text, void *text_user, g3n_pipeline_stats *stats, g3n_error *err)
{
    memset(stats, 0, sizeof(*stats));
    g3n_prefix_cache *cache = options ? options->cache : NULL;
    const char *model = params->model ? params->model : "";
    first_token first = {params->on_token, params->user, g3n_now_seconds(), 0.0};
    if (params->record)
        return g3n_error_set(err, "conversation: params->record is its own");
    if (file_count < 0 || file_count > 64)
        return g3n_error_set(err, "conversation: %d media files (at most 64)", file_count);
    if (strlen(model) >= sizeof(((g3n_session_record *)0)->model))
        return g3n_error_set(err, "conversation: the model name '%.64s...' is too long", model);
    uint64_t keys[64];
    for (int i = 0; i < file_count; i++) /* a window's key is of its samples (its file's bytes are not kept) */
        keys[i] = files[i].samples ? g3n_media_key(files[i].samples, sizeof(float) * (size_t)files[i].sample_count)
                                   : g3n_media_key(files[i].bytes, files[i].size);
    g3n_session_record *rec = g3n_prefix_cache_take(cache, model, ids, count, keys, file_count);
    if (rec && rec->max_positions > 0 && count + params->max_new_tokens + 1 >
                                             rec->max_positions) { /* its context cannot take this turn */
        g3n_session_record_end(rec, client);
        g3n_session_record_free(rec);
        rec = NULL;
    }
    const int hit = rec != NULL;
    if (!rec && cache && !(rec = g3n_session_record_new()))
        return g3n_error_set(err, "conversation: out of memory");
    if (rec && !hit) /* bound to the model it is opened with: only that model's requests continue it */
        snprintf(rec->model, sizeof(rec->model), "%s", model);
    const int64_t held = hit ? rec->count : 0;
    const int skip = hit ? rec->media_count : 0;
    if (hit)
        g3n_pipeline_progress(params->progress, params->progress_user,
                              "continuing session %s on %s: %lld of the %lld prompt positions are held",
                              rec->session_id, rec->decoder, (long long)held, (long long)count);
    g3n_pipeline_media media;
    memset(&media, 0, sizeof(media));
    int rc = G3N_OK;
    if (file_count - skip > 0) {
        int audio_count = 0;
        for (int i = skip; i < file_count; i++)
            audio_count += files[i].kind == G3N_MEDIA_AUDIO;
        g3n_pipeline_progress(params->progress, params->progress_user,
                              "encoding %d image%s and %d audio segment%s in parallel", file_count - skip - audio_count,
                              file_count - skip - audio_count == 1 ? "" : "s", audio_count,
                              audio_count == 1 ? "" : "s");
        rc = g3n_pipeline_encode_media(client, files + skip, file_count - skip, &media, params->progress,
                                       params->progress_user, err);
        if (rc == G3N_OK && options && options->config) /* workers' numbers are checked, not trusted */
            rc = g3n_pipeline_check_media(&media, options->config, err);
        if (rc == G3N_OK && options && options->on_encoded)
            for (int i = 0; i < media.count; i++)
                options->on_encoded(options->encoded_user, media.replies[i]);
    }
    if (rc == G3N_OK) {
        g3n_pipeline_generate_params p = *params;
        p.record = rec;
        p.prefix_cache = cache;
        p.session_positions = cache ? g3n_prefix_cache_options_get(cache)->session_positions : 0;
        p.on_token = on_first_token;
        p.user = &first;
        if (tokenizer)
            rc = g3n_pipeline_generate_text(client, tokenizer, ids + held, count - held, &media, &p, on_text,
                                            text_user, stats, err);
        else
            rc = g3n_pipeline_generate(client, ids + held, count - held, &media, &p, stats, err);
        stats->prompt_tokens = count;
    }
    stats->encode_seconds = media.seconds;
    stats->first_token_seconds = first.seconds;
    if (rec && rc == G3N_OK && g3n_session_record_adopt_media(rec, media.replies, keys + skip, media.count, err) ==
                                   G3N_OK) {
        media.count = 0; /* the record owns them now */
        g3n_prefix_cache_put(cache, client, rec);
    } else if (rec) {
        g3n_session_record_end(rec, client);
        g3n_session_record_free(rec);
    }
    if (cache)
        g3n_prefix_cache_count(cache, hit, stats->reused_tokens, stats->rebuilds);
    g3n_pipeline_media_free(&media);
    return rc;
}

/* Puts each assistant turn's token_ids in front of that turn's <end_of_turn> (the template rendered the
 * turn empty): turn t (a leading system message joins the first user turn) is the t-th <start_of_turn>. */
static int splice_token_ids(const G3n__ChatRequest *q, const g3n_chat_message *messages,
                            const g3n_tokenizer *tokenizer, g3n_chat_prompt *prompt, g3n_error *err)
{
    const int32_t start = g3n_tokenizer_piece_to_id(tokenizer, "<start_of_turn>", 15);
    const int32_t end = g3n_tokenizer_piece_to_id(tokenizer, "<end_of_turn>", 13);
    if (start < 0 || end < 0)
        return g3n_error_set(err, "chat: token_ids need <start_of_turn> and <end_of_turn> in the vocabulary");
    const int system = q->n_messages > 0 && strcmp(messages[0].role, "system") == 0;
    size_t extra = 0;
    for (size_t i = 0; i < q->n_messages; i++)
        extra += q->messages[i]->n_token_ids;
    g3n_token_ids out;
    memset(&out, 0, sizeof(out));
    int64_t turn = -1, starts = 0;
    int rc = G3N_OK;
    for (int64_t k = 0; k < prompt->ids.count && rc == G3N_OK; k++) {
        const int32_t id = prompt->ids.ids[k];
        if (id == start) {
            turn++;
            starts++;
        }
        if (id == end && turn >= 0) {
            const size_t message = (size_t)turn + (size_t)system;
            if (message < q->n_messages)
                for (size_t t = 0; t < q->messages[message]->n_token_ids && rc == G3N_OK; t++)
                    rc = g3n_token_ids_append(&out, q->messages[message]->token_ids[t], err);
        }
        if (rc == G3N_OK)
            rc = g3n_token_ids_append(&out, id, err);
    }
    /* one <start_of_turn> per turn plus the generation prompt's: else a text wrote turn markers */
    if (rc == G3N_OK && starts != (int64_t)(q->n_messages - (size_t)system) + 1)
        rc = g3n_error_set(err, "chat.messages: a text holds turn markers (<start_of_turn>), so token_ids cannot be "
                                "placed; send such turns as text");
    if (rc == G3N_OK && out.count != prompt->ids.count + (int64_t)extra)
        rc = g3n_error_set(err, "chat: the token_ids of %zu ids could not all be placed", extra);
    if (rc != G3N_OK) {
        g3n_token_ids_free(&out);
        return G3N_ERR;
    }
    g3n_token_ids_free(&prompt->ids);
    prompt->ids = out;
    return G3N_OK;
}

int g3n_conversation_render(const G3n__ChatRequest *q, const g3n_model_config *config,
                            const g3n_tokenizer *tokenizer, int max_media, g3n_chat_prompt *prompt,
                            g3n_pipeline_windows *windows, g3n_error *err)
{
    memset(windows, 0, sizeof(*windows));
    memset(prompt, 0, sizeof(*prompt));
    if (q->n_messages == 0)
        return g3n_error_set(err, "chat.messages: empty");
    if (q->n_messages > 4096)
        return g3n_error_set(err, "chat.messages: %zu messages (at most 4096)", q->n_messages);
    size_t media_total = 0, item_total = 0;
    for (size_t i = 0; i < q->n_messages; i++) {
        media_total += q->messages[i]->n_images + q->messages[i]->n_audios;
        item_total += q->messages[i]->n_images + q->messages[i]->n_audios + 1;
    }
    if (media_total > (size_t)max_media)
        return g3n_error_set(err, "chat.messages: %zu images and clips (at most %d)", media_total, max_media);
    g3n_chat_message *messages = calloc(q->n_messages, sizeof(*messages));
    g3n_chat_item *items = calloc(item_total, sizeof(*items));
    g3n_media_file *files = calloc(media_total ? media_total : 1, sizeof(*files));
    if (!messages || !items || !files) {
        free(messages);
        free(items);
        free(files);
        return g3n_error_set(err, "chat: out of memory");
    }
    size_t n_items = 0;
    int n_files = 0;
    int rc = G3N_OK;
    for (size_t i = 0; i < q->n_messages && rc == G3N_OK; i++) {
        const G3n__ChatMessage *m = q->messages[i];
        const char *role = m->role ? m->role : "";
        if ((m->n_images || m->n_audios) && strcmp(role, "user") != 0)
            rc = g3n_error_set(err, "chat.messages[%zu]: images and audio go in user messages, not '%s'", i, role);
        messages[i].role = role;
        messages[i].items = items + n_items;
        for (size_t k = 0; k < m->n_images; k++) {
            items[n_items++] = (g3n_chat_item){G3N_CHAT_IMAGE, NULL};
            files[n_files++] = (g3n_media_file){G3N_MEDIA_IMAGE, m->images[k].data, m->images[k].len, "image"};
        }
        for (size_t k = 0; k < m->n_audios; k++) {
            items[n_items++] = (g3n_chat_item){G3N_CHAT_AUDIO, NULL};
            files[n_files++] = (g3n_media_file){G3N_MEDIA_AUDIO, m->audios[k].data, m->audios[k].len, "audio"};
        }
        /* an assistant turn's token_ids stand for its text (spliced in after the template) */
        items[n_items++] = (g3n_chat_item){G3N_CHAT_TEXT, m->n_token_ids ? "" : m->text ? m->text : ""};
        messages[i].item_count = (int)(items + n_items - messages[i].items);
    }
    g3n_chat_special_ids special;
    g3n_chat_special_ids_from_config(&special, config);
    int with_ids = 0;
    for (size_t i = 0; i < q->n_messages && rc == G3N_OK; i++) {
        const G3n__ChatMessage *m = q->messages[i];
        if (m->n_token_ids == 0)
            continue;
        if (strcmp(messages[i].role, "assistant") != 0 && strcmp(messages[i].role, "model") != 0)
            rc = g3n_error_set(err, "chat.messages[%zu].token_ids: only assistant turns carry token ids", i);
        for (size_t k = 0; k < m->n_token_ids && rc == G3N_OK; k++) {
            const int32_t id = m->token_ids[k];
            if (id < 0 || id >= config->text.vocab_size || id == special.image_token_id ||
                id == special.audio_token_id || id == special.boi_token_id || id == special.eoi_token_id ||
                id == special.boa_token_id || id == special.eoa_token_id)
                rc = g3n_error_set(err, "chat.messages[%zu].token_ids[%zu] = %d is not a text token of the model", i,
                                   k, id);
        }
        with_ids = 1;
    }
    /* audio over 30 s: one segment per window, each its own placeholder block (as g3n_pipeline_chat) */
    g3n_chat_message *windowed = NULL;
    g3n_chat_item *windowed_items = NULL;
    if (rc == G3N_OK)
        rc = g3n_pipeline_window_media(files, n_files, windows, err);
    if (rc == G3N_OK)
        rc = g3n_pipeline_expand_messages(messages, (int)q->n_messages, windows->segments, windows->input_count,
                                          &windowed, &windowed_items, err);
    if (rc == G3N_OK)
        rc = g3n_chat_template_apply(tokenizer, &special, windowed, (int)q->n_messages, 1, prompt, err);
    if (rc == G3N_OK && with_ids)
        rc = splice_token_ids(q, messages, tokenizer, prompt, err);
    free(windowed);
    free(windowed_items);
    free(messages);
    free(items);
    free(files); /* windows borrow the bytes from the request, not this list */
    if (rc != G3N_OK) {
        g3n_pipeline_windows_free(windows);
        g3n_chat_prompt_free(prompt);
        return G3N_ERR;
    }
    return G3N_OK;
}
