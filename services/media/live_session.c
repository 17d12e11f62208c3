/* live_session.c - incremental prefill of streamed media (see live_session.h). */
#include "live_session.h"

#include <stdlib.h>
#include <string.h>

#include "audio_stream.h"
#include "image_preprocess_rgb.h"
#include "ops.h"

/* ---- the model ---------------------------------------------------------- */

int g3n_live_model_load(g3n_live_model *m, const g3n_model_config *config, g3n_weights *weights, int want_vision,
                        int want_audio, const char *preprocessor_config, g3n_error *err)
{
    memset(m, 0, sizeof(*m));
    m->config = config;
    m->weights = weights;
    g3n_chat_special_ids_from_config(&m->special, config);
    if (want_vision && config->vision_json &&
        g3n_vision_encoder_load(&m->vision, config, weights, err) != G3N_OK)
        return G3N_ERR;
    if (want_audio && config->audio_json) {
        g3n_audio_feature_config_default(&m->feature_config);
        if ((preprocessor_config &&
             g3n_audio_feature_config_load(&m->feature_config, preprocessor_config, err) != G3N_OK) ||
            g3n_audio_config_parse(&m->audio_config, config, err) != G3N_OK ||
            g3n_audio_features_create(&m->features, &m->feature_config, err) != G3N_OK ||
            g3n_audio_encoder_load(&m->audio, &m->audio_config, weights, err) != G3N_OK)
            return G3N_ERR;
        m->has_audio = 1;
    }
    if (g3n_embedder_load(&m->embedder, weights, config, err) != G3N_OK ||
        g3n_text_model_load(&m->text, weights, config, err) != G3N_OK)
        return G3N_ERR;
    return G3N_OK;
}

void g3n_live_model_free(g3n_live_model *m)
{
    g3n_text_model_free(&m->text);
    g3n_audio_encoder_free(&m->audio);
    g3n_audio_features_free(m->features);
    g3n_audio_feature_config_free(&m->feature_config);
    g3n_vision_encoder_free(m->vision);
    memset(m, 0, sizeof(*m));
}

/* ---- the conversation --------------------------------------------------- */

typedef struct live_item {
    g3n_chat_item_type type;
    float *rows;     /* [slots, D] embedded soft tokens, owned */
    int64_t count;   /* rows filled */
    int closed;
} live_item;

typedef struct live_turn {
    live_item *items;
    int item_count, item_capacity;
    char *question;  /* set when asked */
    int32_t *answer; /* generated ids, then the end-of-turn ids */
    int64_t answer_count, answer_capacity;
    int answered;
} live_turn;

/* Rendered conversation: ids and, per position, the soft row it takes (NULL: embed the id). */
typedef struct rendering {
    int32_t *ids;
    const float **rows;
    int64_t count, capacity;
    int64_t stable; /* positions that can no longer change */
} rendering;

struct g3n_live_session {
    g3n_live_model *model;
    const g3n_tokenizer *tokenizer;
    g3n_live_params params;
    char *system;
    int64_t hidden, vocab, per_layer_width, image_slots, audio_slots;
    g3n_text_session *text;
    g3n_audio_stream *stream;
    int64_t segment_samples; /* audio samples per segment at most */
    int64_t open_audio_samples;
    float *audio_pending;    /* [audio_batch_samples] not yet pushed to the stream */
    int64_t audio_pending_count;
    g3n_media_timeline timeline;
    live_turn *turns;        /* the last one is open */
    int turn_count, turn_capacity;
    int32_t *cache_ids;      /* ids in the KV cache */
    int64_t cache_count, cache_capacity;
    rendering render;
    int32_t end_of_turn[8];  /* ids of "<end_of_turn>\n" */
    int end_of_turn_count;
    float *embeds, *per_layer, *scratch; /* [chunk, D], [chunk, L*P] x 2 */
    float *pad_row;          /* [D]: embed_audio of the audio pad id */
    float *pixels, *tower;   /* [3, S, S], [image_slots, vision hidden] */
    float *logits;           /* [vocab] of the last forwarded position */
    int asked;               /* a question waits for its answer */
    g3n_live_stats stats;
};

static live_turn *open_turn(g3n_live_session *s)
{
    return &s->turns[s->turn_count - 1];
}

static int new_turn(g3n_live_session *s, g3n_error *err)
{
    if (s->turn_count == s->turn_capacity) {
        int capacity = s->turn_capacity ? 2 * s->turn_capacity : 8;
        live_turn *grown = realloc(s->turns, sizeof(live_turn) * (size_t)capacity);
        if (!grown)
            return g3n_error_set(err, "live session: out of memory");
        s->turns = grown;
        s->turn_capacity = capacity;
    }
    memset(&s->turns[s->turn_count++], 0, sizeof(live_turn));
    return G3N_OK;
}

static void free_item(live_item *item)
{
    free(item->rows);
}

static void free_turn(live_turn *t)
{
    for (int i = 0; i < t->item_count; i++)
        free_item(&t->items[i]);
    free(t->items);
    free(t->question);
    free(t->answer);
}

static live_item *add_item(g3n_live_session *s, g3n_chat_item_type type, g3n_error *err)
{
    live_turn *t = open_turn(s);
    if (t->item_count == t->item_capacity) {
        int capacity = t->item_capacity ? 2 * t->item_capacity : 8;
        live_item *grown = realloc(t->items, sizeof(live_item) * (size_t)capacity);
        if (!grown) {
            g3n_error_set(err, "live session: out of memory");
            return NULL;
        }
        t->items = grown;
        t->item_capacity = capacity;
    }
    int64_t slots = type == G3N_CHAT_IMAGE ? s->image_slots : s->audio_slots;
    live_item *item = &t->items[t->item_count];
    memset(item, 0, sizeof(*item));
    item->type = type;
    item->rows = malloc(sizeof(float) * (size_t)(slots * s->hidden));
    if (!item->rows) {
        g3n_error_set(err, "live session: out of memory");
        return NULL;
    }
    s->stats.media_bytes += sizeof(float) * (uint64_t)(slots * s->hidden);
    t->item_count++;
    return item;
}

static live_item *open_audio_item(g3n_live_session *s)
{
    live_turn *t = open_turn(s);
    if (t->item_count > 0 && t->items[t->item_count - 1].type == G3N_CHAT_AUDIO &&
        !t->items[t->item_count - 1].closed)
        return &t->items[t->item_count - 1];
    return NULL;
}

/* Appends ids (and their soft rows) to the rendering. */
static int render_append(rendering *r, const int32_t *ids, int64_t count, g3n_error *err)
{
    if (count <= 0)
        return G3N_OK;
    if (r->count + count > r->capacity) {
        int64_t capacity = 2 * (r->count + count) + 256;
        int32_t *grown_ids = realloc(r->ids, sizeof(int32_t) * (size_t)capacity);
        if (!grown_ids)
            return g3n_error_set(err, "live session: out of memory");
        r->ids = grown_ids;
        const float **grown_rows = realloc(r->rows, sizeof(float *) * (size_t)capacity);
        if (!grown_rows)
            return g3n_error_set(err, "live session: out of memory");
        r->rows = grown_rows;
        r->capacity = capacity;
    }
    memcpy(r->ids + r->count, ids, sizeof(int32_t) * (size_t)count);
    for (int64_t i = 0; i < count; i++)
        r->rows[r->count + i] = NULL;
    r->count += count;
    return G3N_OK;
}

/* Renders one user turn (template) into r from position `start`, maps its
 * placeholders to the items' rows and returns in *stable the end of the
 * prefix that can no longer change (for an open turn). */
static int render_turn(g3n_live_session *s, int index, rendering *r, int64_t *stable, g3n_error *err)
{
    live_turn *t = &s->turns[index];
    const int64_t start = r->count;
    if (t->item_count == 0 && !t->question) {
        *stable = start;
        return G3N_OK;
    }
    g3n_chat_item_type *types = malloc(sizeof(g3n_chat_item_type) * (size_t)(t->item_count + 1));
    if (!types)
        return g3n_error_set(err, "live session: out of memory");
    for (int i = 0; i < t->item_count; i++)
        types[i] = t->items[i].type;
    g3n_chat_prompt prompt;
    int rc = g3n_media_prompt_render(s->tokenizer, &s->model->special, s->system, types, t->item_count, t->question,
                                     index == 0, t->question != NULL, &prompt, err);
    free(types);
    if (rc != G3N_OK)
        return G3N_ERR;
    rc = render_append(r, prompt.ids.ids, prompt.ids.count, err);
    g3n_chat_prompt_free(&prompt);
    if (rc != G3N_OK)
        return G3N_ERR;
    /* placeholders -> rows, in item order per kind */
    const g3n_chat_special_ids *sp = &s->model->special;
    int next_image = 0, next_audio = 0;
    live_item *item = NULL;
    int64_t row = 0;
    int64_t last_known = start; /* end of the stable prefix */
    int blocked = 0;
    for (int64_t p = start; p < r->count; p++) {
        int32_t id = r->ids[p];
        int is_image = id == sp->image_token_id, is_audio = id == sp->audio_token_id;
        if (is_image || is_audio) {
            int64_t slots = is_image ? s->image_slots : s->audio_slots;
            if (p == start || r->ids[p - 1] != id || row == slots) { /* a new run */
                g3n_chat_item_type want = is_image ? G3N_CHAT_IMAGE : G3N_CHAT_AUDIO;
                int *next = is_image ? &next_image : &next_audio;
                int k = 0, found = -1;
                for (int i = 0; i < t->item_count && found < 0; i++)
                    if (t->items[i].type == want && k++ == *next)
                        found = i;
                if (found < 0)
                    return g3n_error_set(err, "live session: more placeholder runs than media in turn %d", index);
                (*next)++;
                item = &t->items[found];
                row = 0;
            }
            if (row < item->count)
                r->rows[p] = item->rows + row * s->hidden;
            else if (item->closed && is_audio)
                r->rows[p] = s->pad_row;
            else
                blocked = 1; /* content not here yet */
            row++;
            if (!blocked)
                last_known = p + 1;
        } else if (!blocked && (id == sp->boi_token_id || id == sp->eoi_token_id || id == sp->boa_token_id ||
                                id == sp->eoa_token_id)) {
            last_known = p + 1;
        }
    }
    *stable = t->question ? r->count : last_known;
    if (blocked && t->question)
        return g3n_error_set(err, "live session: a question over media still arriving");
    return G3N_OK;
}

/* Renders the whole conversation (every turn again: the text between media is
 * short, so this costs little next to the model); r->stable = the positions
 * that can be prefilled now. */
static int render_all(g3n_live_session *s, rendering *r, g3n_error *err)
{
    r->count = 0;
    r->stable = 0;
    for (int i = 0; i < s->turn_count; i++) {
        live_turn *t = &s->turns[i];
        int64_t stable = r->count;
        if (render_turn(s, i, r, &stable, err) != G3N_OK)
            return G3N_ERR;
        if (t->question) { /* asked: the answer so far (then the end of turn) follows */
            if (render_append(r, t->answer, t->answer_count, err) != G3N_OK)
                return G3N_ERR;
            stable = r->count;
        }
        r->stable = stable;
        if (stable < r->count && i < s->turn_count - 1)
            return g3n_error_set(err, "live session: turn %d is not complete", i);
    }
    return G3N_OK;
}

/* ---- prefill ------------------------------------------------------------ */

/* inputs_embeds and per-layer inputs of rendered positions [begin, end): a
 * soft row where the rendering has one, else the id's embedding (text table,
 * or embed_vision / embed_audio for the hard multimodal ids), as
 * g3n_embedder_build does. */
static int embed_positions(g3n_live_session *s, const rendering *r, int64_t begin, int64_t end, g3n_error *err)
{
    const g3n_embedder *e = &s->model->embedder;
    const int64_t d = s->hidden, n = end - begin;
    for (int64_t t = 0; t < n; t++) {
        const int64_t p = begin + t;
        float *out = s->embeds + t * d;
        int32_t id = r->ids[p];
        if (r->rows[p]) {
            memcpy(out, r->rows[p], sizeof(float) * (size_t)d);
            continue;
        }
        if (id < 0 || id >= e->vocab_size)
            return g3n_error_set(err, "live session: token id %d outside the vocabulary of %lld", id,
                                 (long long)e->vocab_size);
        if (id == e->image_token_id || id == e->audio_token_id)
            return g3n_error_set(err, "live session: internal error: a placeholder without content at %lld",
                                 (long long)p);
        const g3n_multimodal_embedder *hard = NULL;
        if (e->has_vision && id >= e->vision.vocab_offset && id < e->vision.vocab_offset + e->vision.vocab_size)
            hard = &e->vision;
        else if (e->has_audio && id >= e->audio.vocab_offset && id < e->audio.vocab_offset + e->audio.vocab_size)
            hard = &e->audio;
        if (hard ? g3n_multimodal_embedder_hard(hard, &id, 1, out, err)
                 : g3n_text_embedder_embed_tokens(&e->text, &id, 1, out, err))
            return G3N_ERR;
    }
    g3n_text_embedder_per_layer_tokens(&e->text, r->ids + begin, n, s->scratch);
    g3n_text_embedder_project_per_layer(&e->text, s->embeds, s->scratch, n, s->per_layer);
    return G3N_OK;
}

static int cache_append(g3n_live_session *s, const int32_t *ids, int64_t count, g3n_error *err)
{
    if (s->cache_count + count > s->cache_capacity) {
        int64_t capacity = 2 * (s->cache_count + count) + 256;
        int32_t *grown = realloc(s->cache_ids, sizeof(int32_t) * (size_t)capacity);
        if (!grown)
            return g3n_error_set(err, "live session: out of memory");
        s->cache_ids = grown;
        s->cache_capacity = capacity;
    }
    memcpy(s->cache_ids + s->cache_count, ids, sizeof(int32_t) * (size_t)count);
    s->cache_count += count;
    return G3N_OK;
}

/* Prefills every stable position not yet in the cache (when want_logits or
 * force, or when at least min_prefill positions wait); logits of the last
 * one into s->logits when want_logits. */
static int sync_positions(g3n_live_session *s, int want_logits, int force, g3n_error *err)
{
    rendering *r = &s->render;
    if (render_all(s, r, err) != G3N_OK)
        return G3N_ERR;
    if (r->count < s->cache_count)
        return g3n_error_set(err, "live session: internal error: the conversation shrank under the cache");
    for (int64_t p = 0; p < s->cache_count; p++)
        if (r->ids[p] != s->cache_ids[p])
            return g3n_error_set(err, "live session: internal error: position %lld changed (%d -> %d)", (long long)p,
                                 s->cache_ids[p], r->ids[p]);
    const int64_t end = r->stable;
    s->stats.pending = r->count - s->cache_count;
    if (!want_logits && !force && end - s->cache_count < s->params.min_prefill)
        return G3N_OK; /* gather a batch first */
    if (end > s->params.max_positions)
        return g3n_error_set(err, "live session: the conversation needs %lld positions, the context holds %lld",
                             (long long)end, (long long)s->params.max_positions);
    double t0 = g3n_now_seconds();
    for (int64_t begin = s->cache_count; begin < end;) {
        int64_t stop = begin + s->params.chunk_tokens < end ? begin + s->params.chunk_tokens : end;
        float *logits = want_logits && stop == end ? s->logits : NULL;
        if (embed_positions(s, r, begin, stop, err) != G3N_OK ||
            g3n_text_session_forward(s->text, s->embeds, s->per_layer, stop - begin, logits, 0, err) != G3N_OK ||
            cache_append(s, r->ids + begin, stop - begin, err) != G3N_OK)
            return G3N_ERR;
        s->stats.prefilled_tokens += stop - begin;
        begin = stop;
    }
    s->stats.prefill_seconds += g3n_now_seconds() - t0;
    s->stats.pending = r->count - s->cache_count;
    return G3N_OK;
}

static int sync(g3n_live_session *s, int want_logits, g3n_error *err)
{
    return sync_positions(s, want_logits, 0, err);
}

/* The context policy (live_session.h): drop the oldest media, then re-prefill. */
static int make_room(g3n_live_session *s, int64_t needed, g3n_error *err)
{
    const int64_t limit = s->params.max_positions - s->params.reserve_positions;
    if (render_all(s, &s->render, err) != G3N_OK)
        return G3N_ERR;
    if (s->render.count + needed <= limit)
        return G3N_OK;
    const int64_t target = limit / 2;
    int dropped = 0;
    while (s->render.count + needed > target) {
        live_turn *first = &s->turns[0];
        int first_is_open = s->turn_count == 1;
        live_item *open = open_audio_item(s);
        if (first->item_count > 0 && !(first_is_open && &first->items[0] == open)) {
            free_item(&first->items[0]);
            first->item_count--;
            memmove(first->items, first->items + 1, sizeof(live_item) * (size_t)first->item_count);
        } else if (!first_is_open && first->item_count == 0) {
            free_turn(first);
            s->turn_count--;
            memmove(s->turns, s->turns + 1, sizeof(live_turn) * (size_t)s->turn_count);
        } else {
            break;
        }
        dropped++;
        if (render_all(s, &s->render, err) != G3N_OK)
            return G3N_ERR;
    }
    if (s->render.count + needed > limit)
        return g3n_error_set(err, "live session: a context of %lld positions (%lld reserved) cannot hold %lld more",
                             (long long)s->params.max_positions, (long long)s->params.reserve_positions,
                             (long long)needed);
    if (dropped > 0) {
        s->stats.dropped_items += dropped;
        s->stats.compactions++;
        g3n_text_session_reset(s->text);
        s->cache_count = 0;
        uint64_t bytes = 0;
        for (int i = 0; i < s->turn_count; i++)
            for (int k = 0; k < s->turns[i].item_count; k++)
                bytes += sizeof(float) * (uint64_t)((s->turns[i].items[k].type == G3N_CHAT_IMAGE ? s->image_slots
                                                                                                 : s->audio_slots) *
                                                     s->hidden);
        s->stats.media_bytes = bytes;
    }
    return G3N_OK;
}

/* ---- media -------------------------------------------------------------- */

/* Audio tokens (embedded) of the open segment, as the stream finalises them. */
static int on_audio_tokens(void *user, int segment, int64_t first_token, const float *tokens, int64_t count,
                           int64_t width, g3n_error *err)
{
    g3n_live_session *s = user;
    (void)segment;
    (void)first_token;
    live_item *item = open_audio_item(s);
    if (!item)
        return g3n_error_set(err, "live session: internal error: audio tokens without an open segment");
    if (width != s->hidden)
        return g3n_error_set(err, "live session: audio tokens of width %lld, expected %lld", (long long)width,
                             (long long)s->hidden);
    if (item->count + count > s->audio_slots)
        return g3n_error_set(err, "live session: an audio segment gives more than %lld tokens",
                             (long long)s->audio_slots);
    memcpy(item->rows + item->count * s->hidden, tokens, sizeof(float) * (size_t)(count * s->hidden));
    item->count += count;
    return G3N_OK;
}

/* Pushes the gathered samples through the audio stream (tokens reach the open item). */
static int push_pending_audio(g3n_live_session *s, g3n_error *err)
{
    if (s->audio_pending_count == 0)
        return G3N_OK;
    double t0 = g3n_now_seconds();
    int rc = g3n_audio_stream_push(s->stream, s->audio_pending, s->audio_pending_count, err);
    s->stats.audio_seconds += g3n_now_seconds() - t0;
    s->audio_pending_count = 0;
    return rc;
}

/* Ends the open audio segment: a segment shorter than one frame is
 * zero-padded to one (as the stream pads a short last window). */
static int close_audio(g3n_live_session *s, g3n_error *err)
{
    live_item *item = open_audio_item(s);
    if (!item)
        return G3N_OK;
    if (push_pending_audio(s, err) != G3N_OK)
        return G3N_ERR;
    double t0 = g3n_now_seconds();
    const int64_t minimum = s->model->feature_config.frame_length + 1;
    if (s->open_audio_samples < minimum) {
        float zeros[1024] = {0};
        for (int64_t left = minimum - s->open_audio_samples; left > 0;) {
            int64_t n = left < 1024 ? left : 1024;
            if (g3n_audio_stream_push(s->stream, zeros, n, err) != G3N_OK)
                return G3N_ERR;
            left -= n;
        }
    }
    if (g3n_audio_stream_flush(s->stream, err) != G3N_OK)
        return G3N_ERR;
    s->stats.audio_seconds += g3n_now_seconds() - t0;
    item->closed = 1;
    s->open_audio_samples = 0;
    g3n_media_timeline_close_audio(&s->timeline);
    return G3N_OK;
}

int g3n_live_add_audio(g3n_live_session *s, const float *samples, int64_t count, g3n_error *err)
{
    if (!s->stream)
        return g3n_error_set(err, "live session: this model was loaded without audio");
    if (s->asked)
        return g3n_error_set(err, "live session: a question waits for its answer");
    while (count > 0) {
        live_item *item = open_audio_item(s);
        if (!item) {
            if (make_room(s, s->audio_slots + 8, err) != G3N_OK || !add_item(s, G3N_CHAT_AUDIO, err))
                return G3N_ERR;
            s->stats.audio_segments++;
        }
        int64_t take = g3n_media_timeline_audio(&s->timeline, count, err);
        if (take < 0)
            return G3N_ERR;
        /* the item and the timeline segment open and close together */
        for (int64_t done = 0; done < take;) {
            int64_t n = s->params.audio_batch_samples - s->audio_pending_count;
            if (n > take - done)
                n = take - done;
            memcpy(s->audio_pending + s->audio_pending_count, samples + done, sizeof(float) * (size_t)n);
            s->audio_pending_count += n;
            done += n;
            if (s->audio_pending_count == s->params.audio_batch_samples && push_pending_audio(s, err) != G3N_OK)
                return G3N_ERR;
        }
        s->open_audio_samples += take;
        s->stats.audio_samples += take;
        samples += take;
        count -= take;
        if (!g3n_media_timeline_open_audio(&s->timeline) && close_audio(s, err) != G3N_OK)
            return G3N_ERR;
    }
    return sync(s, 0, err);
}

int g3n_live_end_audio(g3n_live_session *s, g3n_error *err)
{
    if (close_audio(s, err) != G3N_OK)
        return G3N_ERR;
    return sync_positions(s, 0, 1, err); /* nothing more to gather: prefill what waits */
}

/* Appends an image item from tower tokens (time: vision_seconds gets the rest). */
static int add_image_tokens(g3n_live_session *s, double seconds, const float *tower_tokens, g3n_error *err)
{
    double t0 = g3n_now_seconds();
    live_item *item = add_item(s, G3N_CHAT_IMAGE, err);
    if (!item)
        return G3N_ERR;
    if (g3n_embedder_image_tokens(&s->model->embedder, tower_tokens, s->image_slots, item->rows, err) != G3N_OK) {
        live_turn *t = open_turn(s);
        free_item(&t->items[--t->item_count]);
        return G3N_ERR;
    }
    item->count = s->image_slots;
    item->closed = 1;
    s->stats.vision_seconds += g3n_now_seconds() - t0;
    s->stats.frames++;
    if (g3n_media_timeline_frame(&s->timeline, seconds, err) != G3N_OK)
        return G3N_ERR;
    return sync(s, 0, err);
}

int g3n_live_add_frame_tokens(g3n_live_session *s, double seconds, const float *tower_tokens, g3n_error *err)
{
    if (!s->model->embedder.has_vision)
        return g3n_error_set(err, "live session: this model has no vision embedder");
    if (s->asked)
        return g3n_error_set(err, "live session: a question waits for its answer");
    if (close_audio(s, err) != G3N_OK || make_room(s, s->image_slots + 8, err) != G3N_OK)
        return G3N_ERR;
    return add_image_tokens(s, seconds, tower_tokens, err);
}

int g3n_live_add_frame_pixels(g3n_live_session *s, double seconds, const float *pixel_values, g3n_error *err)
{
    if (!s->model->vision)
        return g3n_error_set(err, "live session: this model was loaded without vision");
    if (s->asked)
        return g3n_error_set(err, "live session: a question waits for its answer");
    if (close_audio(s, err) != G3N_OK || make_room(s, s->image_slots + 8, err) != G3N_OK)
        return G3N_ERR;
    double t0 = g3n_now_seconds();
    const int size = s->params.image.size;
    if (g3n_vision_encoder_tower(s->model->vision, pixel_values, 1, size, size, s->tower, err) != G3N_OK)
        return G3N_ERR;
    s->stats.vision_seconds += g3n_now_seconds() - t0;
    return add_image_tokens(s, seconds, s->tower, err);
}

int g3n_live_add_frame_rgb(g3n_live_session *s, double seconds, const uint8_t *rgb, int width, int height, int stride,
                           g3n_error *err)
{
    if (!s->model->vision)
        return g3n_error_set(err, "live session: this model was loaded without vision");
    double t0 = g3n_now_seconds();
    if (g3n_image_preprocess_rgb(rgb, width, height, stride, &s->params.image, s->pixels, err) != G3N_OK)
        return G3N_ERR;
    s->stats.vision_seconds += g3n_now_seconds() - t0;
    return g3n_live_add_frame_pixels(s, seconds, s->pixels, err);
}

/* ---- questions ---------------------------------------------------------- */

int g3n_live_question(g3n_live_session *s, const char *question, float *logits, g3n_error *err)
{
    if (s->asked)
        return g3n_error_set(err, "live session: the previous question has no answer yet");
    if (!question || !*question)
        return g3n_error_set(err, "live session: an empty question");
    if (close_audio(s, err) != G3N_OK)
        return G3N_ERR;
    /* the question's own length: render it alone (no media) */
    g3n_chat_prompt alone;
    if (g3n_media_prompt_render(s->tokenizer, &s->model->special, NULL, NULL, 0, question, 0, 1, &alone, err) !=
        G3N_OK)
        return G3N_ERR;
    int64_t needed = alone.ids.count;
    g3n_chat_prompt_free(&alone);
    if (make_room(s, needed, err) != G3N_OK)
        return G3N_ERR;
    live_turn *t = open_turn(s);
    t->question = strdup(question);
    if (!t->question)
        return g3n_error_set(err, "live session: out of memory");
    s->asked = 1;
    const int64_t before = s->cache_count;
    const double t0 = g3n_now_seconds();
    if (sync(s, 1, err) != G3N_OK)
        return G3N_ERR;
    s->stats.question_positions = s->cache_count - before;
    s->stats.question_seconds = g3n_now_seconds() - t0;
    s->stats.questions++;
    if (logits)
        memcpy(logits, s->logits, sizeof(float) * (size_t)s->vocab);
    return G3N_OK;
}

static int answer_append(live_turn *t, int32_t id, g3n_error *err)
{
    if (t->answer_count == t->answer_capacity) {
        int64_t capacity = t->answer_capacity ? 2 * t->answer_capacity : 64;
        int32_t *grown = realloc(t->answer, sizeof(int32_t) * (size_t)capacity);
        if (!grown)
            return g3n_error_set(err, "live session: out of memory");
        t->answer = grown;
        t->answer_capacity = capacity;
    }
    t->answer[t->answer_count++] = id;
    return G3N_OK;
}

int g3n_live_answer(g3n_live_session *s, const g3n_generate_params *params, int32_t *out_tokens, int64_t *num_out,
                    g3n_generate_stats *stats, g3n_error *err)
{
    if (!s->asked)
        return g3n_error_set(err, "live session: no question to answer");
    g3n_generate_stats local;
    memset(&local, 0, sizeof(local));
    g3n_sampler *sampler = NULL;
    if (g3n_sampler_create(&sampler, &params->sampling, s->vocab, err) != G3N_OK)
        return G3N_ERR;
    live_turn *t = open_turn(s);
    int64_t produced = 0;
    int rc = G3N_OK;
    double t0 = g3n_now_seconds();
    for (int64_t step = 0; step < params->max_new_tokens; step++) {
        int32_t token = g3n_sampler_sample(sampler, s->logits, params->allowed_vocab);
        int eos = 0;
        for (int k = 0; k < params->num_eos_ids; k++)
            eos |= token == params->eos_ids[k];
        if (eos) {
            local.stopped_on_eos = 1;
            break;
        }
        if (out_tokens)
            out_tokens[produced] = token;
        produced++;
        if ((rc = answer_append(t, token, err)) != G3N_OK)
            break;
        int stop = params->on_token ? params->on_token(params->user, step, token) : 0;
        /* room for this token, a next one and the end of the turn */
        if (stop || step + 1 == params->max_new_tokens ||
            g3n_text_session_position(s->text) + 2 + s->end_of_turn_count > s->params.max_positions)
            break;
        if ((rc = sync(s, 1, err)) != G3N_OK) /* forwards the token: the next step's logits */
            break;
        local.decode_forwards++;
        if (params->on_logits)
            params->on_logits(params->user, step + 1, s->logits, s->vocab);
    }
    g3n_sampler_free(sampler);
    local.decode_seconds = g3n_now_seconds() - t0;
    local.generated_tokens = produced;
    if (rc != G3N_OK)
        return G3N_ERR;
    /* close the turn: "<end_of_turn>\n" (forwarded with the last token) */
    for (int k = 0; k < s->end_of_turn_count; k++)
        if (answer_append(t, s->end_of_turn[k], err) != G3N_OK)
            return G3N_ERR;
    t->answered = 1;
    s->asked = 0;
    if (sync(s, 1, err) != G3N_OK || new_turn(s, err) != G3N_OK)
        return G3N_ERR;
    if (num_out)
        *num_out = produced;
    if (stats)
        *stats = local;
    return G3N_OK;
}

/* ---- session ------------------------------------------------------------ */

g3n_live_params g3n_live_default_params(const g3n_live_model *model)
{
    g3n_live_params p;
    memset(&p, 0, sizeof(p));
    p.max_positions = model->config->text.max_position_embeddings;
    p.reserve_positions = -1; /* scales to max_positions (g3n_live_session_create) */
    p.chunk_tokens = 64;
    p.min_prefill = 16;
    p.audio_batch_samples = 16000;
    p.image = g3n_image_default_options();
    if (model->vision)
        p.image.size = (int)g3n_vision_encoder_config(model->vision)->image_size;
    return p;
}

int g3n_live_session_create(g3n_live_session **out, g3n_live_model *model, const g3n_tokenizer *tokenizer,
                            const g3n_live_params *params, g3n_error *err)
{
    *out = NULL;
    if (!tokenizer)
        return g3n_error_set(err, "live session: a tokenizer is needed (the chat template's text)");
    g3n_live_session *s = calloc(1, sizeof(*s));
    if (!s)
        return g3n_error_set(err, "live session: out of memory");
    s->model = model;
    s->tokenizer = tokenizer;
    s->params = params ? *params : g3n_live_default_params(model);
    const g3n_model_config *config = model->config;
    s->hidden = config->text.hidden_size;
    s->vocab = config->text.vocab_size;
    s->per_layer_width = model->embedder.per_layer_width;
    s->image_slots = config->vision_soft_tokens_per_image;
    s->audio_slots = config->audio_soft_tokens_per_image;
    if (s->params.chunk_tokens < 1)
        s->params.chunk_tokens = 64;
    if (s->params.min_prefill < 1)
        s->params.min_prefill = 1;
    if (s->params.audio_batch_samples < 1)
        s->params.audio_batch_samples = 1;
    if (s->params.max_positions < 1 || s->params.max_positions > config->text.max_position_embeddings)
        s->params.max_positions = config->text.max_position_embeddings;
    if (s->params.reserve_positions < 0) /* the default: 512, at most a quarter of the context */
        s->params.reserve_positions = s->params.max_positions / 4 < 512 ? s->params.max_positions / 4 : 512;
    if (s->params.reserve_positions >= s->params.max_positions / 2 || s->params.max_positions < 4) {
        long long reserve = (long long)s->params.reserve_positions, positions = (long long)s->params.max_positions;
        free(s);
        return g3n_error_set(err, "live session: reserve of %lld positions in a context of %lld", reserve, positions);
    }
    if (params && params->system && !(s->system = strdup(params->system))) {
        free(s);
        return g3n_error_set(err, "live session: out of memory");
    }
    s->params.system = s->system;
    const int64_t chunk = s->params.chunk_tokens;
    g3n_text_session_params tp = g3n_text_session_default_params(&model->text);
    tp.max_positions = s->params.max_positions;
    tp.chunk_tokens = chunk;
    s->embeds = malloc(sizeof(float) * (size_t)(chunk * s->hidden));
    s->per_layer = malloc(sizeof(float) * (size_t)(chunk * s->per_layer_width));
    s->scratch = malloc(sizeof(float) * (size_t)(chunk * s->per_layer_width));
    s->logits = malloc(sizeof(float) * (size_t)s->vocab);
    s->pad_row = malloc(sizeof(float) * (size_t)s->hidden);
    if (!s->embeds || !s->per_layer || !s->scratch || !s->logits || !s->pad_row) {
        g3n_live_session_free(s);
        return g3n_error_set(err, "live session: out of memory");
    }
    if (g3n_text_session_create(&s->text, &model->text, &tp, err) != G3N_OK || new_turn(s, err) != G3N_OK) {
        g3n_live_session_free(s);
        return G3N_ERR;
    }
    if (model->vision) {
        const g3n_vision_config *vc = g3n_vision_encoder_config(model->vision);
        int64_t size = s->params.image.size;
        s->pixels = malloc(sizeof(float) * (size_t)(3 * size * size));
        s->tower = malloc(sizeof(float) * (size_t)(s->image_slots * vc->hidden_size));
        if (!s->pixels || !s->tower) {
            g3n_live_session_free(s);
            return g3n_error_set(err, "live session: out of memory");
        }
    }
    if (model->has_audio) {
        int32_t pad = model->embedder.audio_pad_id;
        s->audio_pending = malloc(sizeof(float) * (size_t)s->params.audio_batch_samples);
        if (!s->audio_pending) {
            g3n_live_session_free(s);
            return g3n_error_set(err, "live session: out of memory");
        }
        if (g3n_multimodal_embedder_hard(&model->embedder.audio, &pad, 1, s->pad_row, err) != G3N_OK ||
            g3n_audio_stream_create(&s->stream, model->features, &model->audio, &model->embedder.audio,
                                    on_audio_tokens, s, err) != G3N_OK) {
            g3n_live_session_free(s);
            return G3N_ERR;
        }
        s->segment_samples =
            g3n_media_audio_segment_samples(&model->feature_config, &model->audio_config, s->audio_slots);
        if (s->segment_samples <= model->feature_config.frame_length) {
            g3n_live_session_free(s);
            return g3n_error_set(err, "live session: %lld audio placeholders hold no audio frame",
                                 (long long)s->audio_slots);
        }
    }
    g3n_media_timeline_init(&s->timeline, model->has_audio ? model->feature_config.sampling_rate : 16000,
                            s->segment_samples);
    g3n_token_ids eot = {0};
    if (g3n_tokenizer_encode(tokenizer, "<end_of_turn>\n", strlen("<end_of_turn>\n"), 0, &eot, err) != G3N_OK) {
        g3n_live_session_free(s);
        return G3N_ERR;
    }
    if (eot.count < 1 || eot.count > 8) {
        g3n_token_ids_free(&eot);
        g3n_live_session_free(s);
        return g3n_error_set(err, "live session: \"<end_of_turn>\\n\" encodes to %lld tokens", (long long)eot.count);
    }
    memcpy(s->end_of_turn, eot.ids, sizeof(int32_t) * (size_t)eot.count);
    s->end_of_turn_count = (int)eot.count;
    g3n_token_ids_free(&eot);
    *out = s;
    return G3N_OK;
}

void g3n_live_session_free(g3n_live_session *s)
{
    if (!s)
        return;
    for (int i = 0; i < s->turn_count; i++)
        free_turn(&s->turns[i]);
    free(s->turns);
    g3n_audio_stream_free(s->stream);
    g3n_text_session_free(s->text);
    g3n_media_timeline_free(&s->timeline);
    free(s->render.ids);
    free(s->render.rows);
    free(s->cache_ids);
    free(s->system);
    free(s->embeds);
    free(s->per_layer);
    free(s->scratch);
    free(s->pad_row);
    free(s->audio_pending);
    free(s->pixels);
    free(s->tower);
    free(s->logits);
    free(s);
}

const int32_t *g3n_live_ids(const g3n_live_session *s, int64_t *count)
{
    *count = s->cache_count;
    return s->cache_ids;
}

const g3n_media_timeline *g3n_live_timeline(const g3n_live_session *s)
{
    return &s->timeline;
}

g3n_live_stats g3n_live_session_stats(const g3n_live_session *s)
{
    g3n_live_stats stats = s->stats;
    stats.positions = g3n_text_session_position(s->text);
    stats.kv_cache_bytes = g3n_text_session_memory_usage(s->text).kv_cache_bytes;
    return stats;
}

g3n_text_session *g3n_live_text_session(g3n_live_session *s)
{
    return s->text;
}
