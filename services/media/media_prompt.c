/* media_prompt.c - timeline segmentation and the user-turn rendering (see media_prompt.h). */
#include "media_prompt.h"

#include <stdlib.h>
#include <string.h>

#include "audio_encoder.h"
#include "audio_features.h"

int64_t g3n_media_audio_segment_samples(const g3n_audio_feature_config *features, const g3n_audio_config *audio,
                                        int64_t slots)
{
    const int64_t step = features->pad_to_multiple_of > 0 ? features->pad_to_multiple_of : 1;
    int64_t lo = 0, hi = features->max_samples / step; /* in steps; tokens(hi) may exceed slots */
    if (hi < 1)
        return 0;
    while (lo < hi) { /* largest k in [0, hi] with tokens(k * step) <= slots */
        int64_t mid = (lo + hi + 1) / 2;
        int64_t frames = g3n_audio_frame_count(features, g3n_audio_padded_samples(features, mid * step));
        int64_t tokens = frames > 0 ? g3n_audio_encoder_token_count(audio, frames) : 0;
        if (tokens <= slots)
            lo = mid;
        else
            hi = mid - 1;
    }
    return lo * step;
}

void g3n_media_timeline_init(g3n_media_timeline *t, int sample_rate, int64_t max_segment_samples)
{
    memset(t, 0, sizeof(*t));
    t->sample_rate = sample_rate;
    t->max_segment_samples = max_segment_samples;
}

void g3n_media_timeline_free(g3n_media_timeline *t)
{
    free(t->segments);
    memset(t, 0, sizeof(*t));
}

static g3n_media_segment *append(g3n_media_timeline *t, g3n_error *err)
{
    if (t->count == t->capacity) {
        int capacity = t->capacity ? 2 * t->capacity : 16;
        g3n_media_segment *grown = realloc(t->segments, sizeof(*grown) * (size_t)capacity);
        if (!grown) {
            g3n_error_set(err, "media timeline: out of memory");
            return NULL;
        }
        t->segments = grown;
        t->capacity = capacity;
    }
    g3n_media_segment *s = &t->segments[t->count++];
    memset(s, 0, sizeof(*s));
    s->frame_index = -1;
    return s;
}

g3n_media_segment *g3n_media_timeline_open_audio(g3n_media_timeline *t)
{
    if (t->count > 0 && t->segments[t->count - 1].type == G3N_CHAT_AUDIO && !t->segments[t->count - 1].closed)
        return &t->segments[t->count - 1];
    return NULL;
}

void g3n_media_timeline_close_audio(g3n_media_timeline *t)
{
    g3n_media_segment *open = g3n_media_timeline_open_audio(t);
    if (open)
        open->closed = 1;
}

int g3n_media_timeline_frame(g3n_media_timeline *t, double seconds, g3n_error *err)
{
    g3n_media_timeline_close_audio(t);
    g3n_media_segment *s = append(t, err);
    if (!s)
        return G3N_ERR;
    s->type = G3N_CHAT_IMAGE;
    s->seconds = seconds;
    s->frame_index = t->frames++;
    s->closed = 1;
    return G3N_OK;
}

int64_t g3n_media_timeline_audio(g3n_media_timeline *t, int64_t count, g3n_error *err)
{
    if (count <= 0)
        return 0;
    g3n_media_segment *open = g3n_media_timeline_open_audio(t);
    if (!open) {
        open = append(t, err);
        if (!open)
            return -1;
        open->type = G3N_CHAT_AUDIO;
        open->first_sample = t->total_samples;
        open->seconds = (double)t->total_samples / t->sample_rate;
    }
    int64_t room = t->max_segment_samples > 0 ? t->max_segment_samples - open->samples : count;
    int64_t take = count < room ? count : room;
    open->samples += take;
    t->total_samples += take;
    if (t->max_segment_samples > 0 && open->samples >= t->max_segment_samples)
        open->closed = 1;
    return take;
}

int g3n_media_prompt_render(const g3n_tokenizer *tokenizer, const g3n_chat_special_ids *special,
                            const char *system, const g3n_chat_item_type *types, int count, const char *question,
                            int with_bos, int add_generation_prompt, g3n_chat_prompt *out, g3n_error *err)
{
    memset(out, 0, sizeof(*out));
    int has_question = question && *question;
    g3n_chat_item *items = malloc(sizeof(g3n_chat_item) * (size_t)(count + 1));
    if (!items)
        return g3n_error_set(err, "prompt: out of memory");
    int n = 0;
    for (int i = 0; i < count; i++)
        items[n++] = (g3n_chat_item){types[i], NULL};
    if (has_question)
        items[n++] = (g3n_chat_item){G3N_CHAT_TEXT, question};
    if (n == 0) {
        free(items);
        return g3n_error_set(err, "prompt: an empty turn (no media, no question)");
    }
    g3n_chat_message messages[2];
    int m = 0;
    if (with_bos && system && *system) {
        g3n_chat_item *system_item = malloc(sizeof(g3n_chat_item));
        if (!system_item) {
            free(items);
            return g3n_error_set(err, "prompt: out of memory");
        }
        *system_item = (g3n_chat_item){G3N_CHAT_TEXT, system};
        messages[m++] = (g3n_chat_message){"system", system_item, 1};
    }
    messages[m++] = (g3n_chat_message){"user", items, n};
    int rc = g3n_chat_template_apply(tokenizer, special, messages, m, add_generation_prompt, out, err);
    if (m == 2)
        free((void *)messages[0].items);
    free(items);
    if (rc != G3N_OK)
        return G3N_ERR;
    if (!with_bos) { /* a later turn: drop the leading <bos> */
        if (out->ids.count < 1 || out->ids.ids[0] != special->bos_token_id) {
            g3n_chat_prompt_free(out);
            return g3n_error_set(err, "prompt: the template did not start with <bos>");
        }
        memmove(out->ids.ids, out->ids.ids + 1, sizeof(int32_t) * (size_t)(out->ids.count - 1));
        out->ids.count--;
    }
    return G3N_OK;
}
