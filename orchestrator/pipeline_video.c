/* pipeline_video.c - a video through the roles (pipeline_video.h). */
#include "pipeline_video.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "audio_config.h"
#include "chat_template.h"
#include "media_prompt.h"
#include "ops.h"

/* One segment of the prompt: its request on an encoder pool and the reply. */
typedef struct video_segment {
    g3n_media_kind kind;
    uint64_t request_id;
    int answered;         /* its final reply came (an error or the tokens) */
    G3n__Envelope *reply; /* owned once received */
    char name[64];        /* "frame 3 at 3.00 s", "audio 3.00-4.00 s" */
} video_segment;

typedef struct video_run {
    g3n_client *client;
    const g3n_pipeline_generate_params *params;
    g3n_media_timeline timeline;
    video_segment segments[G3N_VIDEO_MAX_SEGMENTS];
    int count;         /* submitted */
    int received;
    float *audio;      /* the open audio segment's samples */
    int64_t audio_count, audio_capacity;
    int sample_rate;
    double start;
} video_run;

static int find_segment(video_run *r, uint64_t request_id)
{
    for (int i = 0; i < r->count; i++)
        if (r->segments[i].request_id == request_id)
            return i;
    return -1;
}

/* Takes one reply (waiting up to timeout_ms; 0: only what is there). *got = 1 if one came. */
static int receive_one(video_run *r, int timeout_ms, int *got, g3n_error *err)
{
    *got = 0;
    g3n_reply reply;
    g3n_error receive_err;
    if (g3n_client_receive(r->client, timeout_ms, &reply, &receive_err) != G3N_OK) {
        if (timeout_ms < 0)
            return g3n_error_set(err, "%s", receive_err.message);
        return G3N_OK; /* nothing yet */
    }
    int index = find_segment(r, reply.request_id);
    if (index < 0 || !reply.final || r->segments[index].answered) {
        g3n_reply_clear(&reply);
        return G3N_OK;
    }
    *got = 1;
    video_segment *s = &r->segments[index];
    s->answered = 1;
    r->received++;
    const G3n__Envelope *env = reply.envelope;
    if (g3n_pipeline_check_encode_reply(env, s->kind, s->name, err) != G3N_OK) {
        g3n_reply_clear(&reply);
        return G3N_ERR;
    }
    if (s->kind == G3N_MEDIA_AUDIO)
        g3n_pipeline_progress(r->params->progress, r->params->progress_user,
                              "encoded %s: %.2f s of audio in %.3f s on %s", s->name,
                              env->encode_audio_reply->audio_seconds, env->encode_audio_reply->seconds, reply.worker);
    else
        g3n_pipeline_progress(r->params->progress, r->params->progress_user, "encoded %s: %.3f s on %s", s->name,
                              env->encode_image_reply->seconds, reply.worker);
    s->reply = reply.envelope;
    reply.envelope = NULL;
    g3n_reply_clear(&reply);
    return G3N_OK;
}

/* Collects the replies that are already there (the encoders run meanwhile). */
static int drain(video_run *r, g3n_error *err)
{
    int got = 1;
    while (got && r->received < r->count)
        if (receive_one(r, 0, &got, err) != G3N_OK)
            return G3N_ERR;
    return G3N_OK;
}

static int room_for_segment(video_run *r, g3n_error *err)
{
    if (r->count >= G3N_VIDEO_MAX_SEGMENTS)
        return g3n_error_set(err,
                             "video: more than %d frames and audio segments in one prompt (lower --max-frames or "
                             "--fps)",
                             G3N_VIDEO_MAX_SEGMENTS);
    return G3N_OK;
}

static int submit(video_run *r, G3n__Envelope *env, g3n_media_kind kind, g3n_error *err)
{
    video_segment *s = &r->segments[r->count];
    g3n_request_options ro = {g3n_media_traits_of(kind)->role, 1, NULL};
    if (g3n_client_submit(r->client, &ro, env, &s->request_id, err) != G3N_OK)
        return G3N_ERR;
    s->kind = kind;
    s->answered = 0;
    s->reply = NULL;
    r->count++;
    return G3N_OK;
}

/* The open audio segment (its samples gathered so far) -> the audio-encoder pool. */
static int submit_audio(video_run *r, g3n_error *err)
{
    if (r->audio_count == 0)
        return G3N_OK;
    if (room_for_segment(r, err) != G3N_OK)
        return G3N_ERR;
    /* the timeline's newest audio segment is the one these samples belong to */
    const g3n_media_segment *seg = NULL;
    for (int i = r->timeline.count - 1; i >= 0 && !seg; i--)
        if (r->timeline.segments[i].type == G3N_CHAT_AUDIO)
            seg = &r->timeline.segments[i];
    double from = seg ? seg->seconds : 0.0;
    double to = from + (double)r->audio_count / r->sample_rate;
    G3n__Envelope env;
    G3n__EncodeAudioRequest q;
    g3n__envelope__init(&env);
    g3n__encode_audio_request__init(&q);
    g3n_wire_tensor samples;
    int64_t shape[1] = {r->audio_count};
    g3n_wire_tensor_borrow(&samples, G3N_DTYPE_F32, 1, shape, r->audio);
    q.samples = &samples.message;
    q.flush = 1;
    env.body_case = G3N__ENVELOPE__BODY_ENCODE_AUDIO;
    env.encode_audio = &q;
    snprintf(r->segments[r->count].name, sizeof(r->segments[0].name), "audio %.2f-%.2f s", from, to);
    if (submit(r, &env, G3N_MEDIA_AUDIO, err) != G3N_OK)
        return G3N_ERR;
    g3n_pipeline_progress(r->params->progress, r->params->progress_user,
                          "audio segment %d: %.2f-%.2f s (%lld samples) -> audio encoder", r->count - 1, from, to,
                          (long long)r->audio_count);
    r->audio_count = 0;
    return drain(r, err);
}

/* video_ingest callback: a frame ends the audio segment before it, then goes
 * to the vision-encoder pool as rgb (preprocessed there). */
static int on_frame(void *user, int index, double seconds, const uint8_t *rgb, int width, int height, g3n_error *err)
{
    video_run *r = user;
    if (submit_audio(r, err) != G3N_OK || room_for_segment(r, err) != G3N_OK ||
        g3n_media_timeline_frame(&r->timeline, seconds, err) != G3N_OK)
        return G3N_ERR;
    G3n__Envelope env;
    G3n__EncodeImageRequest q;
    g3n__envelope__init(&env);
    g3n__encode_image_request__init(&q);
    g3n_wire_tensor frame;
    int64_t shape[3] = {height, width, 3};
    g3n_wire_tensor_borrow(&frame, G3N_DTYPE_U8, 3, shape, rgb);
    q.rgb = &frame.message;
    q.video_frame = 1;
    q.frame_index = (uint64_t)index;
    env.body_case = G3N__ENVELOPE__BODY_ENCODE_IMAGE;
    env.encode_image = &q;
    snprintf(r->segments[r->count].name, sizeof(r->segments[0].name), "frame %d at %.2f s", index, seconds);
    if (submit(r, &env, G3N_MEDIA_IMAGE, err) != G3N_OK)
        return G3N_ERR;
    g3n_pipeline_progress(r->params->progress, r->params->progress_user,
                          "frame %d at %.2f s (%dx%d) -> vision encoder (segment %d, %.2f s into the ingest)", index,
                          seconds, width, height, r->count - 1, g3n_now_seconds() - r->start);
    return drain(r, err);
}

/* video_ingest callback: samples join the open audio segment; a segment that
 * fills the model's audio placeholders is sent and a new one opens. */
static int on_audio(void *user, double seconds, const float *samples, int64_t count, g3n_error *err)
{
    (void)seconds;
    video_run *r = user;
    while (count > 0) {
        int64_t take = g3n_media_timeline_audio(&r->timeline, count, err);
        if (take < 0)
            return G3N_ERR;
        if (r->audio_count + take > r->audio_capacity) {
            int64_t capacity = r->audio_capacity ? r->audio_capacity : 16000;
            while (capacity < r->audio_count + take)
                capacity *= 2;
            float *grown = realloc(r->audio, sizeof(float) * (size_t)capacity);
            if (!grown)
                return g3n_error_set(err, "video: out of memory for audio");
            r->audio = grown;
            r->audio_capacity = capacity;
        }
        memcpy(r->audio + r->audio_count, samples, sizeof(float) * (size_t)take);
        r->audio_count += take;
        samples += take;
        count -= take;
        if (!g3n_media_timeline_open_audio(&r->timeline) && submit_audio(r, err) != G3N_OK)
            return G3N_ERR; /* the segment reached the placeholders' length */
    }
    return G3N_OK;
}

int g3n_pipeline_video_chat(g3n_client *client, const g3n_model_config *config, const g3n_tokenizer *tokenizer,
                            const g3n_video_chat_input *input, const g3n_pipeline_generate_params *params,
                            g3n_text_callback on_text, void *text_user, g3n_video_chat_stats *stats, g3n_error *err)
{
    memset(stats, 0, sizeof(*stats));
    video_run *r = calloc(1, sizeof(*r));
    if (!r)
        return g3n_error_set(err, "video: out of memory");
    r->client = client;
    r->params = params;
    r->start = g3n_now_seconds();
    g3n_audio_feature_config features;
    memset(&features, 0, sizeof(features));
    g3n_chat_prompt prompt;
    memset(&prompt, 0, sizeof(prompt));
    g3n_video_options video = input->video;
    int rc = G3N_ERR;

    /* what the audio encoder expects: the audio segment length (frames go as rgb, preprocessed there) */
    g3n_audio_feature_config_default(&features);
    if (input->preprocessor_config &&
        g3n_audio_feature_config_load(&features, input->preprocessor_config, err) != G3N_OK)
        goto done;
    r->sample_rate = features.sampling_rate;
    video.sample_rate = features.sampling_rate;
    int64_t segment_samples = 0;
    if (video.want_audio) {
        g3n_audio_config ac;
        if (g3n_audio_config_parse(&ac, config, err) != G3N_OK)
            goto done;
        segment_samples = g3n_media_audio_segment_samples(&features, &ac, config->audio_soft_tokens_per_image);
        if (segment_samples <= features.frame_length) {
            g3n_error_set(err, "video: %lld audio placeholders hold no audio segment",
                          (long long)config->audio_soft_tokens_per_image);
            goto done;
        }
    }
    g3n_media_timeline_init(&r->timeline, r->sample_rate, segment_samples);

    /* ingest: every segment goes to its encoder as soon as it is complete */
    g3n_video_info info;
    g3n_pipeline_progress(params->progress, params->progress_user, "ingesting %s (%.3g frames/s, at most %d frames%s)",
                          input->url, video.fps, video.max_frames,
                          video.want_audio ? ", audio at 16 kHz" : ", no audio");
    if (g3n_video_ingest(input->url, &video, video.want_video ? on_frame : NULL, video.want_audio ? on_audio : NULL,
                         r, &info, err) != G3N_OK)
        goto done;
    g3n_media_timeline_close_audio(&r->timeline);
    if (submit_audio(r, err) != G3N_OK)
        goto done;
    if (r->count == 0) {
        g3n_error_set(err, "video: %s gave no frames and no audio", input->url);
        goto done;
    }
    g3n_pipeline_progress(params->progress, params->progress_user,
                          "ingest done: %d frames, %lld audio samples (%.2f s) in %.2f s; waiting for %d of %d "
                          "encodings",
                          info.frames, (long long)info.audio_samples, (double)info.audio_samples / r->sample_rate,
                          g3n_now_seconds() - r->start, r->count - r->received, r->count);
    while (r->received < r->count) {
        int got;
        if (receive_one(r, -1, &got, err) != G3N_OK)
            goto done;
    }
    stats->ingest_seconds = g3n_now_seconds() - r->start;

    /* the prompt: the segments in timestamp order, then the question */
    g3n_chat_item_type types[G3N_VIDEO_MAX_SEGMENTS];
    for (int i = 0; i < r->count; i++) {
        types[i] = g3n_media_traits_of(r->segments[i].kind)->item;
        if (r->segments[i].kind == G3N_MEDIA_AUDIO)
            stats->audio_segments++;
        else
            stats->frames++;
    }
    stats->audio_samples = info.audio_samples;
    g3n_chat_special_ids special;
    g3n_chat_special_ids_from_config(&special, config);
    if (g3n_media_prompt_render(tokenizer, &special, input->system, types, r->count, input->prompt, 1, 1, &prompt,
                                err) != G3N_OK)
        goto done;
    g3n_pipeline_progress(params->progress, params->progress_user,
                          "prompt: %d frames and %d audio segments in timestamp order + the question = %lld tokens",
                          stats->frames, stats->audio_segments, (long long)prompt.ids.count);

    G3n__Envelope *replies[G3N_VIDEO_MAX_SEGMENTS];
    for (int i = 0; i < r->count; i++)
        replies[i] = r->segments[i].reply;
    g3n_pipeline_media media = {replies, r->count, stats->ingest_seconds};
    rc = g3n_pipeline_generate_text(client, tokenizer, prompt.ids.ids, prompt.ids.count, &media, params, on_text,
                                    text_user, &stats->pipeline, err);
    stats->pipeline.encode_seconds = stats->ingest_seconds;
done:
    /* every submitted request answered before the client is reused; after an
     * error, those still waiting in the broker's queue are cancelled */
    if (rc != G3N_OK)
        for (int i = 0; i < r->count; i++)
            if (!r->segments[i].answered) {
                g3n_error ignored;
                g3n_client_cancel(client, r->segments[i].request_id, &ignored);
            }
    while (r->received < r->count) {
        int got;
        g3n_error ignored;
        if (receive_one(r, -1, &got, &ignored) != G3N_OK && !got)
            break; /* the transport failed: nothing more will come */
    }
    for (int i = 0; i < r->count; i++)
        g3n_wire_free(r->segments[i].reply);
    g3n_chat_prompt_free(&prompt);
    g3n_audio_feature_config_free(&features);
    g3n_media_timeline_free(&r->timeline);
    free(r->audio);
    free(r);
    return rc;
}
