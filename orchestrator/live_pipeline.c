/* live_pipeline.c - a live session through the roles (see live_pipeline.h). */
#include "live_pipeline.h"

#include <stdlib.h>
#include <string.h>

#include "audio_config.h"
#include "chat_template.h"
#include "media_prompt.h"
#include "ops.h"
#include "session_record.h"
#include "wire.h"

typedef struct live_item {
    g3n_chat_item_type type;
    G3n__Envelope *reply;   /* the encoder's reply, owned until the record adopts it (then NULL) */
    int adopted;            /* its placeholders are in the decoder session (the record owns the reply) */
    int closed;             /* audio: no more tokens will join it (images: always) */
    float *tokens;          /* audio: tower tokens so far [count, audio_hidden] */
    int64_t count, capacity;
    int64_t samples;        /* audio: samples sent to its stream */
    int started;            /* audio: the stream was opened on `worker` */
    char stream_id[160];
    char worker[64];
} live_item;

typedef struct live_turn {
    live_item *items;
    int item_count, item_capacity;
    char *question;   /* set when asked */
    int32_t *answer;  /* generated ids, then the end-of-turn ids */
    int64_t answer_count, answer_capacity;
} live_turn;

/* The rendered conversation: ids and, per position, the medium whose placeholder it is (NULL: text). */
typedef struct rendering {
    int32_t *ids;
    live_item **items;
    int64_t count, capacity;
    int64_t stable; /* positions that can no longer change */
} rendering;

struct g3n_live_pipeline {
    const g3n_model_config *config;
    const g3n_tokenizer *tokenizer;
    g3n_live_pipeline_params params;
    char *system, *model;
    g3n_chat_special_ids special;
    int has_vision, has_audio;
    int64_t image_slots, audio_slots, audio_hidden;
    int64_t segment_samples;  /* audio samples per segment at most */
    int64_t minimum_samples;  /* a segment shorter than this is zero-padded (one feature frame) */
    g3n_session_record *record;
    g3n_media_timeline timeline;
    live_turn *turns;         /* the last one is open */
    int turn_count, turn_capacity;
    rendering render;
    float *audio_pending;     /* [audio_batch_samples] not yet sent to the stream */
    int64_t audio_pending_count;
    int stream_counter;
    int32_t end_of_turn[8];   /* ids of "<end_of_turn>\n" */
    int end_of_turn_count;
    g3n_live_pipeline_stats stats;
};

/* ---- the conversation --------------------------------------------------- */

static live_turn *open_turn(g3n_live_pipeline *s)
{
    return &s->turns[s->turn_count - 1];
}

static int new_turn(g3n_live_pipeline *s, g3n_error *err)
{
    if (s->turn_count == s->turn_capacity) {
        int capacity = s->turn_capacity ? 2 * s->turn_capacity : 8;
        live_turn *grown = realloc(s->turns, sizeof(live_turn) * (size_t)capacity);
        if (!grown)
            return g3n_error_set(err, "live session %s: out of memory", s->record->session_id);
        s->turns = grown;
        s->turn_capacity = capacity;
    }
    memset(&s->turns[s->turn_count++], 0, sizeof(live_turn));
    return G3N_OK;
}

static void free_item(live_item *item)
{
    g3n_wire_free(item->reply);
    free(item->tokens);
}

static void free_turn(live_turn *t)
{
    for (int i = 0; i < t->item_count; i++)
        free_item(&t->items[i]);
    free(t->items);
    free(t->question);
    free(t->answer);
}

static live_item *add_item(g3n_live_pipeline *s, g3n_chat_item_type type, g3n_error *err)
{
    live_turn *t = open_turn(s);
    if (t->item_count == t->item_capacity) {
        int capacity = t->item_capacity ? 2 * t->item_capacity : 8;
        live_item *grown = realloc(t->items, sizeof(live_item) * (size_t)capacity);
        if (!grown) {
            g3n_error_set(err, "live session %s: out of memory", s->record->session_id);
            return NULL;
        }
        t->items = grown;
        t->item_capacity = capacity;
    }
    live_item *item = &t->items[t->item_count++];
    memset(item, 0, sizeof(*item));
    item->type = type;
    return item;
}

static live_item *open_audio_item(g3n_live_pipeline *s)
{
    live_turn *t = open_turn(s);
    if (t->item_count > 0 && t->items[t->item_count - 1].type == G3N_CHAT_AUDIO && !t->items[t->item_count - 1].closed)
        return &t->items[t->item_count - 1];
    return NULL;
}

static int render_append(g3n_live_pipeline *s, rendering *r, const int32_t *ids, int64_t count, g3n_error *err)
{
    if (count <= 0)
        return G3N_OK;
    if (r->count + count > r->capacity) {
        int64_t capacity = 2 * (r->count + count) + 256;
        int32_t *grown_ids = realloc(r->ids, sizeof(int32_t) * (size_t)capacity);
        if (!grown_ids)
            return g3n_error_set(err, "live session %s: out of memory", s->record->session_id);
        r->ids = grown_ids;
        live_item **grown_items = realloc(r->items, sizeof(live_item *) * (size_t)capacity);
        if (!grown_items)
            return g3n_error_set(err, "live session %s: out of memory", s->record->session_id);
        r->items = grown_items;
        r->capacity = capacity;
    }
    if (count > 0) /* ids may be NULL when there are none */
        memcpy(r->ids + r->count, ids, sizeof(int32_t) * (size_t)count);
    for (int64_t i = 0; i < count; i++)
        r->items[r->count + i] = NULL;
    r->count += count;
    return G3N_OK;
}

/* Renders one user turn into r, maps its placeholder runs to the turn's items
 * (media_prompt renders them in order) and returns in *stable the end of the
 * prefix that can be appended now: a medium's placeholders go to the decoder
 * as a whole run (the embedder fills whole runs), so an audio segment still
 * open blocks at its first placeholder. */
static int render_turn(g3n_live_pipeline *s, int index, rendering *r, int64_t *stable, g3n_error *err)
{
    live_turn *t = &s->turns[index];
    const int64_t start = r->count;
    if (t->item_count == 0 && !t->question) {
        *stable = start;
        return G3N_OK;
    }
    g3n_chat_item_type *types = malloc(sizeof(g3n_chat_item_type) * (size_t)(t->item_count + 1));
    if (!types)
        return g3n_error_set(err, "live session %s: out of memory", s->record->session_id);
    for (int i = 0; i < t->item_count; i++)
        types[i] = t->items[i].type;
    g3n_chat_prompt prompt;
    int rc = g3n_media_prompt_render(s->tokenizer, &s->special, s->system, types, t->item_count, t->question,
                                     index == 0, t->question != NULL, &prompt, err);
    free(types);
    if (rc != G3N_OK)
        return G3N_ERR;
    rc = render_append(s, r, prompt.ids.ids, prompt.ids.count, err);
    g3n_chat_prompt_free(&prompt);
    if (rc != G3N_OK)
        return G3N_ERR;
    const g3n_chat_special_ids *sp = &s->special;
    int next_item = 0;
    live_item *item = NULL;
    int64_t row = 0, slots = 0;
    int64_t last_known = start;
    int blocked = 0;
    for (int64_t p = start; p < r->count; p++) {
        int32_t id = r->ids[p];
        int is_image = id == sp->image_token_id, is_audio = id == sp->audio_token_id;
        if (is_image || is_audio) {
            if (!item || r->ids[p - 1] != id || row == slots) { /* a new run: the next item of that kind */
                g3n_chat_item_type want = is_image ? G3N_CHAT_IMAGE : G3N_CHAT_AUDIO;
                while (next_item < t->item_count && t->items[next_item].type != want)
                    next_item++;
                if (next_item == t->item_count)
                    return g3n_error_set(err, "live session %s: more placeholder runs than media in turn %d",
                                         s->record->session_id, index);
                item = &t->items[next_item++];
                row = 0;
                slots = is_image ? s->image_slots : s->audio_slots;
            }
            r->items[p] = item;
            row++;
            if (!item->closed)
                blocked = 1;
            if (!blocked && row == slots)
                last_known = p + 1;
        } else if (!blocked && (id == sp->boi_token_id || id == sp->eoi_token_id || id == sp->boa_token_id ||
                                id == sp->eoa_token_id)) {
            last_known = p + 1;
        }
    }
    if (blocked && t->question)
        return g3n_error_set(err, "live session %s: a question over media still arriving", s->record->session_id);
    *stable = t->question ? r->count : last_known;
    return G3N_OK;
}

/* Renders the whole conversation; r->stable = the positions that can be appended now. */
static int render_all(g3n_live_pipeline *s, rendering *r, g3n_error *err)
{
    r->count = 0;
    r->stable = 0;
    for (int i = 0; i < s->turn_count; i++) {
        live_turn *t = &s->turns[i];
        int64_t stable = r->count;
        if (render_turn(s, i, r, &stable, err) != G3N_OK)
            return G3N_ERR;
        if (t->question) { /* asked: the answer (then the end of turn) follows */
            if (render_append(s, r, t->answer, t->answer_count, err) != G3N_OK)
                return G3N_ERR;
            stable = r->count;
        }
        r->stable = stable;
        if (stable < r->count && i < s->turn_count - 1)
            return g3n_error_set(err, "live session %s: turn %d is not complete", s->record->session_id, i);
    }
    return G3N_OK;
}

/* ---- appends ------------------------------------------------------------ */

/* The session's own requests: greedy, the session's sub-model, no logits. */
static g3n_pipeline_generate_params session_params(const g3n_live_pipeline *s)
{
    g3n_pipeline_generate_params p = g3n_pipeline_default_params(s->config);
    p.model = s->model;
    p.progress = s->params.progress;
    p.progress_user = s->params.progress_user;
    return p;
}

/* The media whose placeholder runs start in rendered positions [begin, end), in order. */
static int new_media(g3n_live_pipeline *s, const rendering *r, int64_t begin, int64_t end, live_item ***out,
                     int *count, g3n_error *err)
{
    *out = NULL;
    *count = 0;
    int n = 0; /* media the record holds already (prefilled again after a compaction) are skipped */
    for (int64_t p = begin; p < end; p++)
        n += r->items[p] && (p == 0 || r->items[p - 1] != r->items[p]) && !r->items[p]->adopted;
    if (n == 0)
        return G3N_OK;
    live_item **items = malloc(sizeof(*items) * (size_t)n);
    if (!items)
        return g3n_error_set(err, "live session %s: out of memory", s->record->session_id);
    int k = 0;
    for (int64_t p = begin; p < end; p++)
        if (r->items[p] && (p == 0 || r->items[p - 1] != r->items[p]) && !r->items[p]->adopted) {
            live_item *item = r->items[p];
            if (!item->reply) {
                free(items);
                return g3n_error_set(err, "live session %s: internal error: the medium at %lld is not encoded",
                                     s->record->session_id, (long long)p);
            }
            items[k++] = item;
        }
    *out = items;
    *count = n;
    return G3N_OK;
}

/* Every medium of the session in order: the record's, then `items`' replies. */
static int all_media(const g3n_live_pipeline *s, live_item *const *items, int count, g3n_pipeline_media *out,
                     g3n_error *err)
{
    memset(out, 0, sizeof(*out));
    out->count = s->record->media_count + count;
    if (out->count == 0)
        return G3N_OK;
    out->replies = malloc(sizeof(*out->replies) * (size_t)out->count);
    if (!out->replies)
        return g3n_error_set(err, "live session %s: out of memory", s->record->session_id);
    for (int i = 0; i < s->record->media_count; i++)
        out->replies[i] = s->record->media[i];
    for (int i = 0; i < count; i++)
        out->replies[s->record->media_count + i] = items[i]->reply;
    return G3N_OK;
}

/* The record takes the replies of media now in the decoder session. */
static int adopt(g3n_live_pipeline *s, live_item *const *items, int count, g3n_error *err)
{
    for (int i = 0; i < count; i++) {
        uint64_t key = 0;
        if (g3n_session_record_adopt_media(s->record, &items[i]->reply, &key, 1, err) != G3N_OK)
            return G3N_ERR;
        items[i]->adopted = 1;
    }
    return G3N_OK;
}

/* Errors of the roles name the session (a transport error alone does not). */
static int session_error(const g3n_live_pipeline *s, g3n_error *err)
{
    if (!strstr(err->message, s->record->session_id))
        g3n_error_prefix(err, "live session %s", s->record->session_id);
    return G3N_ERR;
}

static void count_rebuilds(g3n_live_pipeline *s, const g3n_pipeline_stats *ps)
{
    s->stats.rebuilds += ps->rebuilds;
    snprintf(s->stats.decoder, sizeof(s->stats.decoder), "%s", s->record->decoder);
}

static int append_range(g3n_live_pipeline *s, g3n_client *client, const rendering *r, int64_t end, g3n_error *err);

/* Appends every stable position the decoder session does not hold (when
 * force, or when at least min_prefill wait). */
static int sync_positions(g3n_live_pipeline *s, g3n_client *client, int force, g3n_error *err)
{
    rendering *r = &s->render;
    g3n_session_record *rec = s->record;
    if (render_all(s, r, err) != G3N_OK)
        return G3N_ERR;
    if (r->count < rec->count)
        return g3n_error_set(err, "live session %s: internal error: the conversation shrank under the cache",
                             rec->session_id);
    for (int64_t p = 0; p < rec->count; p++)
        if (r->ids[p] != rec->ids[p])
            return g3n_error_set(err, "live session %s: internal error: position %lld changed (%d -> %d)",
                                 rec->session_id, (long long)p, rec->ids[p], r->ids[p]);
    const int64_t stable = r->stable;
    s->stats.pending = r->count - rec->count;
    if (stable <= rec->count || (!force && stable - rec->count < s->params.min_prefill))
        return G3N_OK;
    if (stable > s->params.max_positions)
        return g3n_error_set(err, "live session %s: the conversation needs %lld positions, the context holds %lld",
                             rec->session_id, (long long)stable, (long long)s->params.max_positions);
    /* at most max_append_media media per append (the embedder takes 64 per request): after a compaction
     * the whole kept conversation is prefilled again */
    while (rec->count < stable) {
        int64_t end = stable, media = 0;
        for (int64_t p = rec->count; p < stable; p++)
            if (r->items[p] && (p == 0 || r->items[p - 1] != r->items[p]) && ++media > s->params.max_append_media) {
                end = p;
                break;
            }
        if (append_range(s, client, r, end, err) != G3N_OK)
            return G3N_ERR;
    }
    s->stats.pending = r->count - rec->count;
    return G3N_OK;
}

/* Appends rendered positions [record count, end) (whole media runs) to the decoder session. */
static int append_range(g3n_live_pipeline *s, g3n_client *client, const rendering *r, int64_t end, g3n_error *err)
{
    g3n_session_record *rec = s->record;
    const int64_t begin = rec->count;
    live_item **items = NULL;
    int item_count = 0;
    g3n_pipeline_media all;
    memset(&all, 0, sizeof(all));
    if (new_media(s, r, begin, end, &items, &item_count, err) != G3N_OK ||
        all_media(s, items, item_count, &all, err) != G3N_OK) {
        free(items);
        return G3N_ERR;
    }
    const double t0 = g3n_now_seconds();
    g3n_pipeline_generate_params gp = session_params(s);
    g3n_pipeline_stats ps;
    memset(&ps, 0, sizeof(ps));
    int rc = g3n_pipeline_session_append(client, &gp, rec, &all, rec->media_count, r->ids + begin, end - begin,
                                         s->params.max_positions, &ps, err);
    free(all.replies);
    count_rebuilds(s, &ps);
    if (rc == G3N_OK)
        rc = adopt(s, items, item_count, err);
    else
        session_error(s, err);
    free(items);
    if (rc != G3N_OK)
        return G3N_ERR;
    s->stats.prefilled_tokens += end - begin;
    s->stats.appends++;
    if (ps.rebuilds)
        s->stats.prefilled_tokens += begin; /* the rebuild prefilled the held positions again */
    s->stats.prefill_seconds += g3n_now_seconds() - t0;
    g3n_pipeline_progress(s->params.progress, s->params.progress_user,
                          "live session %s: appended %lld positions (%lld held) on %s", rec->session_id,
                          (long long)(end - begin), (long long)rec->count, rec->decoder);
    return G3N_OK;
}

/* Forgets the decoder session (ended there): the first `dropped` media of the
 * record are freed (their items are gone), the others go back to their items
 * (adopted ones, in order), to be appended again. */
static void restart_session(g3n_live_pipeline *s, g3n_client *client, int dropped)
{
    g3n_session_record *rec = s->record;
    g3n_session_record_end(rec, client);
    int k = 0;
    for (; k < dropped && k < rec->media_count; k++)
        g3n_wire_free(rec->media[k]);
    for (int t = 0; t < s->turn_count; t++)
        for (int i = 0; i < s->turns[t].item_count; i++) {
            live_item *item = &s->turns[t].items[i];
            if (!item->adopted)
                continue;
            item->adopted = 0;
            item->reply = k < rec->media_count ? rec->media[k++] : NULL;
            s->stats.reappended_media++;
        }
    for (; k < rec->media_count; k++) /* none should be left */
        g3n_wire_free(rec->media[k]);
    rec->media_count = 0;
    rec->count = 0;
}

/* The context policy (live_pipeline.h): drop the oldest media, then prefill the rest again. */
static int make_room(g3n_live_pipeline *s, g3n_client *client, int64_t needed, g3n_error *err)
{
    const int64_t limit = s->params.max_positions - s->params.reserve_positions;
    if (render_all(s, &s->render, err) != G3N_OK)
        return G3N_ERR;
    if (s->render.count + needed <= limit)
        return G3N_OK;
    const int64_t target = limit / 2;
    int dropped = 0, dropped_adopted = 0;
    while (s->render.count + needed > target) {
        live_turn *first = &s->turns[0];
        int first_is_open = s->turn_count == 1;
        live_item *open = open_audio_item(s);
        if (first->item_count > 0 && !(first_is_open && &first->items[0] == open)) {
            dropped_adopted += first->items[0].adopted;
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
    if (dropped > 0) {
        s->stats.dropped_items += dropped;
        s->stats.compactions++;
        restart_session(s, client, dropped_adopted);
    }
    if (s->render.count + needed > limit)
        return g3n_error_set(err,
                             "live session %s: a context of %lld positions (%lld reserved) cannot hold %lld more",
                             s->record->session_id, (long long)s->params.max_positions,
                             (long long)s->params.reserve_positions, (long long)needed);
    return G3N_OK;
}

/* ---- media -------------------------------------------------------------- */

typedef struct audio_gather {
    g3n_live_pipeline *live;
    live_item *item;
    g3n_error err;
    int failed;
} audio_gather;

/* Tower tokens a stream reply released join the open segment. */
static int gather_tokens(audio_gather *g, const G3n__Envelope *env, const char *worker)
{
    g3n_live_pipeline *s = g->live;
    live_item *item = g->item;
    if (!env || env->body_case != G3N__ENVELOPE__BODY_ENCODE_AUDIO_REPLY) {
        g3n_error_set(&g->err, "audio encoder %s answered %s", worker, env ? g3n_wire_body_name(env->body_case) : "nothing");
        return G3N_ERR;
    }
    const G3n__EncodeAudioReply *reply = env->encode_audio_reply;
    if (!reply->tokens)
        return G3N_OK;
    int64_t shape[2] = {-1, s->audio_hidden};
    g3n_tensor view;
    if (g3n_wire_tensor_view(reply->tokens, "encode_audio_reply.tokens", G3N_DTYPE_F32, 2, shape, 0, &view,
                             &g->err) != G3N_OK) {
        g3n_error_prefix(&g->err, "bad reply from the audio-encoder worker %s", worker);
        return G3N_ERR;
    }
    const int64_t n = view.shape[0];
    if (n == 0)
        return G3N_OK;
    if (reply->segment != 0 || reply->first_token != item->count || item->count + n > s->audio_slots) {
        g3n_error_set(&g->err,
                      "bad reply from the audio-encoder worker %s: tokens %lld..%lld of segment %d (expected from "
                      "%lld of segment 0, at most %lld)",
                      worker, (long long)reply->first_token, (long long)(reply->first_token + n), reply->segment,
                      (long long)item->count, (long long)s->audio_slots);
        return G3N_ERR;
    }
    const float *data = view.data;
    for (int64_t i = 0; i < n * s->audio_hidden; i++)
        if (!(data[i] == data[i]) || data[i] > 3.4e38f || data[i] < -3.4e38f) {
            g3n_error_set(&g->err, "bad reply from the audio-encoder worker %s: a non-finite token value", worker);
            return G3N_ERR;
        }
    if (item->count + n > item->capacity) {
        int64_t capacity = item->capacity ? item->capacity : 64;
        while (capacity < item->count + n)
            capacity *= 2;
        float *grown = realloc(item->tokens, sizeof(float) * (size_t)(capacity * s->audio_hidden));
        if (!grown) {
            g3n_error_set(&g->err, "out of memory");
            return G3N_ERR;
        }
        item->tokens = grown;
        item->capacity = capacity;
    }
    if (n > 0)
        memcpy(item->tokens + item->count * s->audio_hidden, data, sizeof(float) * (size_t)(n * s->audio_hidden));
    item->count += n;
    return G3N_OK;
}

static int on_audio_event(void *user, const G3n__Envelope *event)
{
    audio_gather *g = user;
    if (!g->failed && gather_tokens(g, event, g->item->worker[0] ? g->item->worker : "?") != G3N_OK)
        g->failed = 1;
    return g->failed;
}

/* One piece of the open segment's stream (start: the first; flush: the last). */
static int send_audio_piece(g3n_live_pipeline *s, g3n_client *client, live_item *item, const float *samples,
                            int64_t count, int flush, g3n_error *err)
{
    G3n__Envelope env;
    G3n__EncodeAudioRequest q;
    g3n__envelope__init(&env);
    g3n__encode_audio_request__init(&q);
    g3n_wire_tensor t;
    int64_t shape[1] = {count};
    static const float none[1] = {0.0f};
    g3n_wire_tensor_borrow(&t, G3N_DTYPE_F32, 1, shape, count > 0 ? samples : none);
    q.samples = count > 0 ? &t.message : NULL;
    q.stream_id = item->stream_id;
    q.start = !item->started;
    q.flush = flush;
    env.body_case = G3N__ENVELOPE__BODY_ENCODE_AUDIO;
    env.encode_audio = &q;
    g3n_request_options ro = {G3N_ROLE_AUDIO_ENCODER, 0, item->started ? item->worker : NULL};
    audio_gather g;
    memset(&g, 0, sizeof(g));
    g.live = s;
    g.item = item;
    g3n_reply reply;
    memset(&reply, 0, sizeof(reply));
    const double t0 = g3n_now_seconds();
    int rc = g3n_client_call(client, &ro, &env, on_audio_event, &g, &reply, err);
    s->stats.audio_seconds += g3n_now_seconds() - t0;
    if (rc == G3N_OK && !item->started)
        snprintf(item->worker, sizeof(item->worker), "%s", reply.worker);
    if (rc == G3N_OK && !g.failed && gather_tokens(&g, reply.envelope, reply.worker) != G3N_OK)
        g.failed = 1;
    g3n_reply_clear(&reply);
    if (rc != G3N_OK)
        return g3n_error_prefix(err, "live session %s: audio stream %s", s->record->session_id, item->stream_id),
               G3N_ERR;
    if (g.failed) {
        *err = g.err;
        return g3n_error_prefix(err, "live session %s: audio stream %s", s->record->session_id, item->stream_id),
               G3N_ERR;
    }
    item->started = 1;
    item->samples += count;
    return G3N_OK;
}

static int push_pending_audio(g3n_live_pipeline *s, g3n_client *client, g3n_error *err)
{
    live_item *item = open_audio_item(s);
    if (s->audio_pending_count == 0 || !item)
        return G3N_OK;
    int rc = send_audio_piece(s, client, item, s->audio_pending, s->audio_pending_count, 0, err);
    s->audio_pending_count = 0;
    return rc;
}

/* An encoder reply owned here: the segment's tokens as an EncodeAudioReply envelope. */
static int audio_reply(g3n_live_pipeline *s, live_item *item, g3n_error *err)
{
    G3n__Envelope env;
    G3n__EncodeAudioReply reply;
    g3n__envelope__init(&env);
    g3n__encode_audio_reply__init(&reply);
    g3n_wire_tensor tokens;
    int64_t shape[2] = {item->count, s->audio_hidden};
    static const float none[1] = {0.0f};
    g3n_wire_tensor_borrow(&tokens, G3N_DTYPE_F32, 2, shape, item->count ? item->tokens : none);
    reply.tokens = &tokens.message;
    reply.final = 1;
    reply.audio_seconds = (double)item->samples / 16000.0;
    env.body_case = G3N__ENVELOPE__BODY_ENCODE_AUDIO_REPLY;
    env.encode_audio_reply = &reply;
    uint8_t *bytes = NULL;
    size_t size = 0;
    if (g3n_wire_pack(&env, &bytes, &size, err) != G3N_OK)
        return G3N_ERR;
    int code = 0;
    int rc = g3n_wire_unpack(bytes, size, (int64_t)size + 1, &item->reply, &code, err);
    free(bytes);
    if (rc != G3N_OK) {
        g3n_wire_free(item->reply);
        item->reply = NULL;
        return G3N_ERR;
    }
    free(item->tokens);
    item->tokens = NULL;
    item->capacity = 0;
    return G3N_OK;
}

/* Ends the open audio segment: the rest of its samples with flush (a segment
 * shorter than one frame zero-padded to one, as the offline encoding pads a
 * short last window). */
static int close_audio(g3n_live_pipeline *s, g3n_client *client, g3n_error *err)
{
    live_item *item = open_audio_item(s);
    if (!item)
        return G3N_OK;
    int64_t total = item->samples + s->audio_pending_count;
    if (total < s->minimum_samples) {
        for (int64_t k = s->audio_pending_count; k < s->audio_pending_count + s->minimum_samples - total; k++)
            s->audio_pending[k] = 0.0f; /* audio_pending holds at least minimum_samples */
        s->audio_pending_count += s->minimum_samples - total;
    }
    int rc = send_audio_piece(s, client, item, s->audio_pending, s->audio_pending_count, 1, err);
    s->audio_pending_count = 0;
    g3n_media_timeline_close_audio(&s->timeline);
    if (rc != G3N_OK || audio_reply(s, item, err) != G3N_OK) {
        live_turn *t = open_turn(s); /* a segment that failed is not half-kept */
        free_item(&t->items[--t->item_count]);
        return G3N_ERR;
    }
    item->closed = 1;
    return G3N_OK;
}

int g3n_live_pipeline_add_audio(g3n_live_pipeline *s, g3n_client *client, const float *samples, int64_t count,
                                g3n_error *err)
{
    if (!s->has_audio)
        return g3n_error_set(err, "live session %s: this model has no audio encoder", s->record->session_id);
    if (count < 0 || (count > 0 && !samples))
        return g3n_error_set(err, "live session %s: no samples", s->record->session_id);
    while (count > 0) {
        live_item *item = open_audio_item(s);
        if (!item) {
            if (make_room(s, client, s->audio_slots + 8, err) != G3N_OK)
                return G3N_ERR;
            if (!(item = add_item(s, G3N_CHAT_AUDIO, err)))
                return G3N_ERR;
            snprintf(item->stream_id, sizeof(item->stream_id), "%s-audio-%d", s->record->session_id,
                     s->stream_counter++);
            s->stats.audio_segments++;
        }
        int64_t take = g3n_media_timeline_audio(&s->timeline, count, err);
        if (take < 0)
            return G3N_ERR;
        for (int64_t done = 0; done < take;) {
            int64_t n = s->params.audio_batch_samples - s->audio_pending_count;
            if (n > take - done)
                n = take - done;
            memcpy(s->audio_pending + s->audio_pending_count, samples + done, sizeof(float) * (size_t)n);
            s->audio_pending_count += n;
            done += n;
            if (s->audio_pending_count == s->params.audio_batch_samples && push_pending_audio(s, client, err) != G3N_OK)
                return G3N_ERR;
        }
        s->stats.audio_samples += take;
        samples += take;
        count -= take;
        if (!g3n_media_timeline_open_audio(&s->timeline) && close_audio(s, client, err) != G3N_OK)
            return G3N_ERR;
    }
    return sync_positions(s, client, 0, err);
}

int g3n_live_pipeline_end_audio(g3n_live_pipeline *s, g3n_client *client, g3n_error *err)
{
    if (close_audio(s, client, err) != G3N_OK)
        return G3N_ERR;
    return sync_positions(s, client, 1, err); /* nothing more to gather: append what waits */
}

/* A frame: its encoding request (image file bytes or rgb) to the vision pool. */
static int add_frame(g3n_live_pipeline *s, g3n_client *client, double seconds, G3n__Envelope *request, g3n_error *err)
{
    if (!s->has_vision)
        return g3n_error_set(err, "live session %s: this model has no vision encoder", s->record->session_id);
    if (close_audio(s, client, err) != G3N_OK || make_room(s, client, s->image_slots + 8, err) != G3N_OK)
        return G3N_ERR;
    const double t0 = g3n_now_seconds();
    g3n_pipeline_media media;
    char name[64];
    snprintf(name, sizeof(name), "frame %d", s->stats.frames);
    const char *names[1] = {name};
    if (g3n_pipeline_encode_requests(client, &request, names, 1, &media, s->params.progress, s->params.progress_user,
                                     err) != G3N_OK)
        return session_error(s, err);
    if (g3n_pipeline_check_media(&media, s->config, err) != G3N_OK) {
        g3n_pipeline_media_free(&media);
        return session_error(s, err);
    }
    s->stats.vision_seconds += g3n_now_seconds() - t0;
    live_item *item = add_item(s, G3N_CHAT_IMAGE, err);
    if (!item) {
        g3n_pipeline_media_free(&media);
        return G3N_ERR;
    }
    item->reply = media.replies[0];
    media.replies[0] = NULL;
    g3n_pipeline_media_free(&media);
    item->closed = 1;
    s->stats.frames++;
    if (g3n_media_timeline_frame(&s->timeline, seconds, err) != G3N_OK)
        return G3N_ERR;
    return sync_positions(s, client, 0, err);
}

int g3n_live_pipeline_add_image(g3n_live_pipeline *s, g3n_client *client, double seconds, const void *bytes,
                                size_t size, g3n_error *err)
{
    if (!bytes || size == 0)
        return g3n_error_set(err, "live session %s: an empty image", s->record->session_id);
    G3n__Envelope env;
    G3n__EncodeImageRequest q;
    g3n__envelope__init(&env);
    g3n__encode_image_request__init(&q);
    q.image.data = (uint8_t *)bytes;
    q.image.len = size;
    q.video_frame = 1;
    q.frame_index = (uint64_t)s->stats.frames;
    env.body_case = G3N__ENVELOPE__BODY_ENCODE_IMAGE;
    env.encode_image = &q;
    return add_frame(s, client, seconds, &env, err);
}

int g3n_live_pipeline_add_frame_rgb(g3n_live_pipeline *s, g3n_client *client, double seconds, const uint8_t *rgb,
                                    int width, int height, int stride, g3n_error *err)
{
    if (!rgb || width < 1 || height < 1 || stride < 3 * width)
        return g3n_error_set(err, "live session %s: a frame of %d x %d pixels (stride %d)", s->record->session_id,
                             width, height, stride);
    const uint8_t *packed = rgb;
    uint8_t *copy = NULL;
    if (stride != 3 * width) { /* the wire takes packed rows */
        copy = malloc((size_t)width * 3 * (size_t)height);
        if (!copy)
            return g3n_error_set(err, "live session %s: out of memory", s->record->session_id);
        for (int y = 0; y < height; y++)
            memcpy(copy + (size_t)y * 3 * (size_t)width, rgb + (size_t)y * (size_t)stride, (size_t)width * 3);
        packed = copy;
    }
    G3n__Envelope env;
    G3n__EncodeImageRequest q;
    g3n__envelope__init(&env);
    g3n__encode_image_request__init(&q);
    g3n_wire_tensor t;
    int64_t shape[3] = {height, width, 3};
    g3n_wire_tensor_borrow(&t, G3N_DTYPE_U8, 3, shape, packed);
    q.rgb = &t.message;
    q.video_frame = 1;
    q.frame_index = (uint64_t)s->stats.frames;
    env.body_case = G3N__ENVELOPE__BODY_ENCODE_IMAGE;
    env.encode_image = &q;
    int rc = add_frame(s, client, seconds, &env, err);
    free(copy);
    return rc;
}

/* ---- questions ---------------------------------------------------------- */

static int answer_append(g3n_live_pipeline *s, live_turn *t, int32_t id, g3n_error *err)
{
    if (t->answer_count == t->answer_capacity) {
        int64_t capacity = t->answer_capacity ? 2 * t->answer_capacity : 64;
        int32_t *grown = realloc(t->answer, sizeof(int32_t) * (size_t)capacity);
        if (!grown)
            return g3n_error_set(err, "live session %s: out of memory", s->record->session_id);
        t->answer = grown;
        t->answer_capacity = capacity;
    }
    t->answer[t->answer_count++] = id;
    return G3N_OK;
}

typedef struct answer_collect {
    g3n_live_pipeline *live;
    live_turn *turn;
    const g3n_pipeline_generate_params *outer;
    int failed;
    g3n_error err;
} answer_collect;

static int collect_token(void *user, int64_t step, int32_t token, const float *logits, int64_t vocab)
{
    answer_collect *c = user;
    int eos = 0;
    for (int k = 0; k < c->outer->num_eos_ids; k++)
        eos |= token == c->outer->eos_ids[k];
    if (!eos && !c->failed && answer_append(c->live, c->turn, token, &c->err) != G3N_OK)
        c->failed = 1;
    int stop = c->outer->on_token ? c->outer->on_token(c->outer->user, step, token, logits, vocab) : 0;
    return stop || c->failed;
}

int g3n_live_pipeline_ask(g3n_live_pipeline *s, g3n_client *client, const char *question,
                          const g3n_pipeline_generate_params *params, g3n_text_callback on_text, void *text_user,
                          g3n_pipeline_stats *answer_stats, g3n_error *err)
{
    g3n_session_record *rec = s->record;
    if (!question || !*question)
        return g3n_error_set(err, "live session %s: an empty question", rec->session_id);
    if (close_audio(s, client, err) != G3N_OK)
        return G3N_ERR;
    /* the question's own length: render it alone (no media) */
    g3n_chat_prompt alone;
    if (g3n_media_prompt_render(s->tokenizer, &s->special, NULL, NULL, 0, question, 0, 1, &alone, err) != G3N_OK)
        return G3N_ERR;
    const int64_t needed = alone.ids.count;
    g3n_chat_prompt_free(&alone);
    /* what waits first (after a compaction: the whole kept conversation, in appends the embedder takes) */
    if (make_room(s, client, needed, err) != G3N_OK || sync_positions(s, client, 1, err) != G3N_OK)
        return G3N_ERR;
    live_turn *t = open_turn(s);
    if (!(t->question = strdup(question)))
        return g3n_error_set(err, "live session %s: out of memory", rec->session_id);
    rendering *r = &s->render;
    live_item **items = NULL;
    int item_count = 0;
    g3n_pipeline_media media;
    memset(&media, 0, sizeof(media));
    int rc = render_all(s, r, err);
    const int64_t begin = rec->count;
    if (rc == G3N_OK && (r->count < begin ||
                         (begin > 0 && memcmp(r->ids, rec->ids, sizeof(int32_t) * (size_t)begin) != 0)))
        rc = g3n_error_set(err, "live session %s: internal error: the cache is not a prefix of the conversation",
                           rec->session_id);
    if (rc == G3N_OK)
        rc = new_media(s, r, begin, r->count, &items, &item_count, err);
    if (rc == G3N_OK && item_count > 0) {
        media.count = item_count;
        media.replies = malloc(sizeof(*media.replies) * (size_t)item_count);
        if (!media.replies)
            rc = g3n_error_set(err, "live session %s: out of memory", rec->session_id);
        for (int i = 0; rc == G3N_OK && i < item_count; i++)
            media.replies[i] = items[i]->reply;
    }
    /* room for the answer and the end of the turn */
    const int64_t room = s->params.max_positions - r->count - s->end_of_turn_count - 1;
    if (rc == G3N_OK && room < 1)
        rc = g3n_error_set(err, "live session %s: no room left for an answer in a context of %lld positions",
                           rec->session_id, (long long)s->params.max_positions);
    g3n_pipeline_stats ps;
    memset(&ps, 0, sizeof(ps));
    answer_collect collect;
    memset(&collect, 0, sizeof(collect));
    const int64_t question_positions = r->count - begin;
    if (rc == G3N_OK) {
        g3n_pipeline_generate_params gp = *params;
        if (gp.max_new_tokens > room)
            gp.max_new_tokens = room;
        gp.record = rec;
        gp.session_positions = s->params.max_positions;
        gp.model = s->model;
        gp.want_prompt_logits = 0;
        if (!gp.progress) {
            gp.progress = s->params.progress;
            gp.progress_user = s->params.progress_user;
        }
        collect.live = s;
        collect.turn = t;
        collect.outer = params;
        gp.on_token = collect_token;
        gp.user = &collect;
        rc = g3n_pipeline_generate_text(client, s->tokenizer, r->ids + begin, question_positions, &media, &gp, on_text,
                                        text_user, &ps, err);
        if (rc == G3N_OK && collect.failed)
            rc = g3n_error_set(err, "%s", collect.err.message);
        count_rebuilds(s, &ps);
    }
    free(media.replies);
    if (rc == G3N_OK)
        rc = adopt(s, items, item_count, err);
    free(items);
    if (rc != G3N_OK) {
        /* the question is taken back; what the decoder session holds is unknown now: prefilled again */
        free(t->question);
        t->question = NULL;
        t->answer_count = 0;
        if (rec->count > 0 || rec->decoder[0])
            restart_session(s, client, 0);
        return session_error(s, err);
    }
    s->stats.questions++;
    s->stats.question_positions = question_positions;
    s->stats.question_seconds = ps.embed_seconds + ps.prefill_seconds;
    s->stats.prefilled_tokens += question_positions + (ps.generated_tokens > 1 ? ps.generated_tokens - 1 : 0);
    if (answer_stats)
        *answer_stats = ps;
    /* close the turn: the answer's last token (when not fed back) and "<end_of_turn>\n" join the cache */
    for (int k = 0; k < s->end_of_turn_count; k++)
        if (answer_append(s, t, s->end_of_turn[k], err) != G3N_OK)
            return G3N_ERR;
    if (new_turn(s, err) != G3N_OK)
        return G3N_ERR;
    return sync_positions(s, client, 1, err);
}

/* ---- session ------------------------------------------------------------ */

g3n_live_pipeline_params g3n_live_pipeline_default_params(const g3n_model_config *config)
{
    g3n_live_pipeline_params p;
    memset(&p, 0, sizeof(p));
    p.max_positions = config->text.max_position_embeddings;
    p.reserve_positions = -1;
    p.min_prefill = 16;
    p.audio_batch_samples = 16000;
    return p;
}

int g3n_live_pipeline_create(g3n_live_pipeline **out, const g3n_model_config *config,
                             const g3n_tokenizer *tokenizer, const g3n_live_pipeline_params *params,
                             g3n_error *err)
{
    *out = NULL;
    if (!tokenizer)
        return g3n_error_set(err, "live session: a tokenizer is needed (the chat template's text)");
    g3n_live_pipeline *s = calloc(1, sizeof(*s));
    if (!s || !(s->record = g3n_session_record_new())) {
        free(s);
        return g3n_error_set(err, "live session: out of memory");
    }
    char number[G3N_SESSION_ID_BYTES];
    snprintf(number, sizeof(number), "%s", s->record->session_id + strlen("conversation-"));
    snprintf(s->record->session_id, sizeof(s->record->session_id), "live-%s", number);
    s->config = config;
    s->tokenizer = tokenizer;
    s->params = params ? *params : g3n_live_pipeline_default_params(config);
    g3n_chat_special_ids_from_config(&s->special, config);
    s->image_slots = config->vision_soft_tokens_per_image;
    s->audio_slots = config->audio_soft_tokens_per_image;
    s->audio_hidden = config->audio_hidden_size;
    s->has_vision = config->vision_json != NULL;
    s->has_audio = config->audio_json != NULL;
    if (s->params.min_prefill < 1)
        s->params.min_prefill = 1;
    if (s->params.audio_batch_samples < 1)
        s->params.audio_batch_samples = 1;
    if (s->params.max_append_media < 1 || s->params.max_append_media > 32)
        s->params.max_append_media = 32;
    if (s->params.max_positions < 1 || s->params.max_positions > config->text.max_position_embeddings)
        s->params.max_positions = config->text.max_position_embeddings;
    if (s->params.reserve_positions < 0) /* the default: 512, at most a quarter of the context */
        s->params.reserve_positions = s->params.max_positions / 4 < 512 ? s->params.max_positions / 4 : 512;
    if (s->params.reserve_positions >= s->params.max_positions / 2 || s->params.max_positions < 4) {
        g3n_error_set(err, "live session: reserve of %lld positions in a context of %lld",
                      (long long)s->params.reserve_positions, (long long)s->params.max_positions);
        g3n_live_pipeline_free(s, NULL);
        return G3N_ERR;
    }
    if ((params && params->system && !(s->system = strdup(params->system))) ||
        (params && params->model && params->model[0] && !(s->model = strdup(params->model))) ||
        new_turn(s, err) != G3N_OK) {
        g3n_live_pipeline_free(s, NULL);
        return g3n_error_set(err, "live session: out of memory");
    }
    s->params.system = s->system;
    s->params.model = s->model;
    int sample_rate = 16000;
    if (s->has_audio) {
        g3n_audio_feature_config features;
        g3n_audio_config audio;
        g3n_audio_feature_config_default(&features);
        int rc = G3N_OK;
        if (params && params->preprocessor_config)
            rc = g3n_audio_feature_config_load(&features, params->preprocessor_config, err);
        if (rc == G3N_OK)
            rc = g3n_audio_config_parse(&audio, config, err);
        if (rc == G3N_OK) {
            s->segment_samples = g3n_media_audio_segment_samples(&features, &audio, s->audio_slots);
            s->minimum_samples = features.frame_length + 1;
            sample_rate = features.sampling_rate;
            if (s->segment_samples <= features.frame_length)
                rc = g3n_error_set(err, "live session: %lld audio placeholders hold no audio frame",
                                   (long long)s->audio_slots);
        }
        g3n_audio_feature_config_free(&features);
        const int64_t pending = s->params.audio_batch_samples > s->minimum_samples ? s->params.audio_batch_samples
                                                                                  : s->minimum_samples;
        if (rc == G3N_OK && !(s->audio_pending = malloc(sizeof(float) * (size_t)pending)))
            rc = g3n_error_set(err, "live session: out of memory");
        if (rc != G3N_OK) {
            g3n_live_pipeline_free(s, NULL);
            return G3N_ERR;
        }
    }
    g3n_media_timeline_init(&s->timeline, sample_rate, s->segment_samples);
    g3n_token_ids eot = {0};
    if (g3n_tokenizer_encode(tokenizer, "<end_of_turn>\n", strlen("<end_of_turn>\n"), 0, &eot, err) != G3N_OK) {
        g3n_live_pipeline_free(s, NULL);
        return G3N_ERR;
    }
    if (eot.count < 1 || eot.count > 8) {
        g3n_token_ids_free(&eot);
        g3n_live_pipeline_free(s, NULL);
        return g3n_error_set(err, "live session: \"<end_of_turn>\\n\" encodes to %lld tokens", (long long)eot.count);
    }
    memcpy(s->end_of_turn, eot.ids, sizeof(int32_t) * (size_t)eot.count);
    s->end_of_turn_count = (int)eot.count;
    g3n_token_ids_free(&eot);
    *out = s;
    return G3N_OK;
}

void g3n_live_pipeline_free(g3n_live_pipeline *s, g3n_client *client)
{
    if (!s)
        return;
    if (client) {
        live_item *item = s->turn_count ? open_audio_item(s) : NULL;
        if (item && item->started) { /* ends the stream on its worker (errors ignored) */
            g3n_error ignored;
            s->audio_pending_count = 0;
            send_audio_piece(s, client, item, NULL, 0, 1, &ignored);
        }
        g3n_session_record_end(s->record, client);
    }
    for (int i = 0; i < s->turn_count; i++)
        free_turn(&s->turns[i]);
    free(s->turns);
    g3n_media_timeline_free(&s->timeline);
    g3n_session_record_free(s->record);
    free(s->render.ids);
    free(s->render.items);
    free(s->audio_pending);
    free(s->system);
    free(s->model);
    free(s);
}

const int32_t *g3n_live_pipeline_ids(const g3n_live_pipeline *s, int64_t *count)
{
    *count = s->record->count;
    return s->record->ids;
}

g3n_live_pipeline_stats g3n_live_pipeline_get_stats(const g3n_live_pipeline *s)
{
    g3n_live_pipeline_stats stats = s->stats;
    stats.positions = s->record->count;
    stats.max_positions = s->params.max_positions;
    snprintf(stats.decoder, sizeof(stats.decoder), "%s", s->record->decoder);
    return stats;
}

const char *g3n_live_pipeline_session_id(const g3n_live_pipeline *s)
{
    return s->record->session_id;
}
