/* pipeline.c - the orchestrator's request flow over the transport (pipeline.h). */
#include "pipeline.h"

#include <stdarg.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "audio_config.h"
#include "audio_decode.h"
#include "chat_template.h"
#include "ops.h"
#include "prefix_cache.h"
#include "session_record.h"

void g3n_pipeline_progress(g3n_progress_callback cb, void *user, const char *format, ...)
{
    if (!cb)
        return;
    char line[512];
    va_list args;
    va_start(args, format);
    vsnprintf(line, sizeof(line), format, args);
    va_end(args);
    cb(user, line);
}

void g3n_pipeline_media_free(g3n_pipeline_media *media)
{
    for (int i = 0; i < media->count && media->replies; i++)
        g3n_wire_free(media->replies[i]);
    free(media->replies);
    free(media->workers);
    memset(media, 0, sizeof(*media));
}

int g3n_pipeline_check_encode_reply(const G3n__Envelope *reply, g3n_media_kind kind, const char *name,
                                    g3n_error *err)
{
    const g3n_media_traits *traits = g3n_media_traits_of(kind);
    if (reply->body_case == G3N__ENVELOPE__BODY_ERROR)
        return g3n_error_set(err, "encoding %s %s: %s: %s", traits->name, name,
                             g3n_wire_error_code_name(reply->error->code),
                             reply->error->message ? reply->error->message : "");
    if ((int)reply->body_case != traits->reply_body)
        return g3n_error_set(err, "encoding %s: the worker answered %s", name, g3n_wire_body_name(reply->body_case));
    return G3N_OK;
}

/* A tensor from a worker: f32 (or u8 masks) of rank ndim, every value finite
 * (allow_negative_infinity: logits may hold -inf for masked entries). */
static int check_worker_tensor(const G3n__Tensor *m, const char *name, g3n_dtype dtype, int ndim,
                               const int64_t *shape, int allow_negative_infinity, g3n_tensor *view, g3n_error *err)
{
    if (g3n_wire_tensor_view(m, name, dtype, ndim, shape, 0, view, err) != G3N_OK)
        return G3N_ERR;
    if (dtype != G3N_DTYPE_F32)
        return G3N_OK;
    const float *v = view->data;
    const int64_t n = g3n_tensor_numel(view);
    for (int64_t i = 0; i < n; i++) {
        const float x = v[i];
        if (x - x != 0.0f && !(allow_negative_infinity && x < 0.0f)) /* NaN or +-inf */
            return g3n_error_set(err, "%s: value %lld is %s (not a finite number)", name, (long long)i,
                                 x != x ? "NaN" : x > 0 ? "+inf" : "-inf");
    }
    return G3N_OK;
}

/* An encoder's tokens (and audio padding): f32 [n, width], finite; u8 [n]. */
static int check_encode_tensors(const G3n__Envelope *env, g3n_media_kind kind, const char *name, const char *worker,
                                g3n_error *err)
{
    const g3n_media_traits *traits = g3n_media_traits_of(kind);
    g3n_tensor tokens, padding;
    g3n_error why = {{0}};
    int64_t shape[2] = {-1, -1};
    char field[64];
    snprintf(field, sizeof(field), "encode_%s_reply.tokens", traits->name);
    int rc = check_worker_tensor(g3n_media_reply_tokens(env, kind), field, G3N_DTYPE_F32, 2, shape, 0, &tokens, &why);
    if (rc == G3N_OK && kind == G3N_MEDIA_AUDIO && env->encode_audio_reply->padding) {
        int64_t pshape[1] = {tokens.shape[0]};
        rc = check_worker_tensor(env->encode_audio_reply->padding, "encode_audio_reply.padding", G3N_DTYPE_U8, 1,
                                 pshape, 0, &padding, &why);
    }
    if (rc != G3N_OK)
        return g3n_error_set(err, "bad reply from the %s worker %s for %s %s: %s", g3n_role_name(traits->role),
                             worker, traits->name, name, why.message);
    return G3N_OK;
}

int g3n_pipeline_check_media(const g3n_pipeline_media *media, const g3n_model_config *config, g3n_error *err)
{
    for (int i = 0; media && i < media->count; i++) {
        const G3n__Envelope *env = media->replies[i];
        g3n_media_kind kind = G3N_MEDIA_IMAGE;
        if (g3n_media_kind_of_body(env->body_case, &kind) != G3N_OK)
            return g3n_error_set(err, "pipeline: media %d is a %s, not an encoder's reply", i,
                                 g3n_wire_body_name(env->body_case));
        const g3n_media_traits *traits = g3n_media_traits_of(kind);
        const G3n__Tensor *t = g3n_media_reply_tokens(env, kind);
        const int64_t rows = t && t->n_shape == 2 ? t->shape[0] : -1, width = t && t->n_shape == 2 ? t->shape[1] : -1;
        int64_t max_rows, want_width;
        g3n_media_token_shape(kind, config, &max_rows, &want_width);
        const int ok = (traits->exact_rows ? rows == max_rows : rows >= 0 && rows <= max_rows) && width == want_width;
        if (!ok)
            return g3n_error_set(err,
                                 "bad reply from the %s worker %s: %s tokens of shape [%lld, %lld]; the model takes "
                                 "%s%lld x %lld",
                                 g3n_role_name(traits->role), media->workers ? media->workers[i] : "?", traits->name,
                                 (long long)rows, (long long)width, traits->exact_rows ? "" : "at most ",
                                 (long long)max_rows, (long long)want_width);
    }
    return G3N_OK;
}

int g3n_pipeline_error_code(const char *message)
{
    if (strstr(message, "bad reply from the "))
        return G3N__ERROR_CODE__ERROR_INTERNAL; /* a worker's fault, never the client's */
    if ((strncmp(message, "encoding image", 14) == 0 || strncmp(message, "encoding audio", 14) == 0) &&
        strstr(message, "ERROR_BAD_REQUEST"))
        return G3N__ERROR_CODE__ERROR_BAD_REQUEST;
    if (strstr(message, "ERROR_NO_WORKER"))
        return G3N__ERROR_CODE__ERROR_NO_WORKER;
    if (strstr(message, "ERROR_WORKER_LOST"))
        return G3N__ERROR_CODE__ERROR_WORKER_LOST;
    if (strstr(message, "ERROR_TOO_LARGE"))
        return G3N__ERROR_CODE__ERROR_TOO_LARGE;
    if (strncmp(message, "chat:", 5) == 0 || strncmp(message, "chat template", 13) == 0)
        return G3N__ERROR_CODE__ERROR_BAD_REQUEST;
    return G3N__ERROR_CODE__ERROR_INTERNAL;
}

int g3n_pipeline_encode_requests(g3n_client *client, G3n__Envelope *const *requests, const char *const *names,
                                 int count, g3n_pipeline_media *out, g3n_progress_callback cb, void *user,
                                 g3n_error *err)
{
    memset(out, 0, sizeof(*out));
    if (count <= 0)
        return G3N_OK;
    out->replies = calloc((size_t)count, sizeof(*out->replies));
    out->workers = calloc((size_t)count, sizeof(*out->workers));
    uint64_t *ids = calloc((size_t)count, sizeof(uint64_t));
    if (!out->replies || !out->workers || !ids) {
        free(ids);
        free(out->replies);
        free(out->workers);
        out->replies = NULL;
        out->workers = NULL;
        return g3n_error_set(err, "pipeline: out of memory");
    }
    out->count = count;
    double t0 = g3n_now_seconds();
    int rc = G3N_OK;
    int submitted = 0;
    for (int i = 0; i < count && rc == G3N_OK; i++) {
        g3n_media_kind kind = G3N_MEDIA_IMAGE;
        if (g3n_media_kind_of_body(requests[i]->body_case, &kind) != G3N_OK) {
            rc = g3n_error_set(err, "pipeline: request %d is a %s, not an encode request", i,
                               g3n_wire_body_name(requests[i]->body_case));
            break;
        }
        g3n_request_options ro = {g3n_media_traits_of(kind)->role, 1, NULL};
        rc = g3n_client_submit(client, &ro, requests[i], &ids[i], err);
        if (rc == G3N_OK)
            submitted++;
    }
    /* collect every reply of what was submitted (also after an error, so none is left behind) */
    int received = 0;
    while (received < submitted) {
        g3n_reply reply;
        g3n_error receive_err;
        if (g3n_client_receive(client, -1, &reply, &receive_err) != G3N_OK) {
            if (rc == G3N_OK)
                rc = g3n_error_set(err, "%s", receive_err.message);
            break;
        }
        int index = -1;
        for (int i = 0; i < count; i++)
            if (ids[i] == reply.request_id)
                index = i;
        if (index < 0 || !reply.final) {
            g3n_reply_clear(&reply);
            continue;
        }
        received++;
        const G3n__Envelope *env = reply.envelope;
        g3n_media_kind kind = G3N_MEDIA_IMAGE;
        (void)g3n_media_kind_of_body(requests[index]->body_case, &kind); /* checked when submitted */
        const char *name = names && names[index] ? names[index] : "";
        g3n_error reply_err;
        if (g3n_pipeline_check_encode_reply(env, kind, name, &reply_err) != G3N_OK ||
            check_encode_tensors(env, kind, name, reply.worker, &reply_err) != G3N_OK) {
            if (rc == G3N_OK)
                rc = g3n_error_set(err, "%s", reply_err.message); /* the first error is the one told */
            g3n_reply_clear(&reply);
            continue;
        }
        if (kind == G3N_MEDIA_AUDIO)
            g3n_pipeline_progress(cb, user, "encoded audio %s: %.2f s of audio in %.3f s on %s", name,
                                  env->encode_audio_reply->audio_seconds, env->encode_audio_reply->seconds,
                                  reply.worker);
        else
            g3n_pipeline_progress(cb, user, "encoded image %s: %.3f s on %s", name, env->encode_image_reply->seconds,
                                  reply.worker);
        out->replies[index] = reply.envelope;
        snprintf(out->workers[index], sizeof(out->workers[index]), "%s", reply.worker);
        reply.envelope = NULL;
        g3n_reply_clear(&reply);
    }
    out->seconds = g3n_now_seconds() - t0;
    free(ids);
    if (rc != G3N_OK)
        g3n_pipeline_media_free(out);
    return rc;
}

int g3n_pipeline_encode_media(g3n_client *client, const g3n_media_file *files, int count, g3n_pipeline_media *out,
                              g3n_progress_callback cb, void *user, g3n_error *err)
{
    memset(out, 0, sizeof(*out));
    if (count <= 0)
        return G3N_OK;
    if (count > 64)
        return g3n_error_set(err, "pipeline: %d media files (at most 64)", count);
    G3n__Envelope envelopes[64], *pointers[64];
    G3n__EncodeImageRequest images[64];
    G3n__EncodeAudioRequest audios[64];
    g3n_wire_tensor sample_tensors[64];
    const char *names[64];
    for (int i = 0; i < count; i++) {
        g3n__envelope__init(&envelopes[i]);
        if (files[i].kind == G3N_MEDIA_AUDIO && files[i].samples) {
            g3n__encode_audio_request__init(&audios[i]);
            int64_t shape[1] = {files[i].sample_count};
            g3n_wire_tensor_borrow(&sample_tensors[i], G3N_DTYPE_F32, 1, shape, files[i].samples);
            audios[i].samples = &sample_tensors[i].message;
            envelopes[i].body_case = G3N__ENVELOPE__BODY_ENCODE_AUDIO;
            envelopes[i].encode_audio = &audios[i];
        } else if (files[i].kind == G3N_MEDIA_AUDIO) {
            g3n__encode_audio_request__init(&audios[i]);
            audios[i].audio.data = (uint8_t *)files[i].bytes;
            audios[i].audio.len = files[i].size;
            envelopes[i].body_case = G3N__ENVELOPE__BODY_ENCODE_AUDIO;
            envelopes[i].encode_audio = &audios[i];
        } else {
            g3n__encode_image_request__init(&images[i]);
            images[i].image.data = (uint8_t *)files[i].bytes;
            images[i].image.len = files[i].size;
            envelopes[i].body_case = G3N__ENVELOPE__BODY_ENCODE_IMAGE;
            envelopes[i].encode_image = &images[i];
        }
        pointers[i] = &envelopes[i];
        names[i] = files[i].name;
    }
    return g3n_pipeline_encode_requests(client, pointers, names, count, out, cb, user, err);
}

typedef struct window_sink {
    float *samples;
    int64_t count, capacity, limit;
} window_sink;

static int window_collect(void *user, const float *samples, int64_t count, g3n_error *err)
{
    window_sink *w = user;
    if (w->count + count > w->limit)
        return g3n_error_set(err, "longer than %lld windows of 30 s (%lld minutes) in one request",
                             (long long)G3N_PIPELINE_MAX_SEGMENTS, (long long)G3N_PIPELINE_MAX_SEGMENTS / 2);
    if (w->count + count > w->capacity) {
        int64_t capacity = w->capacity ? w->capacity : 1 << 16;
        while (capacity < w->count + count)
            capacity *= 2;
        float *grown = realloc(w->samples, sizeof(float) * (size_t)capacity);
        if (!grown)
            return g3n_error_set(err, "out of memory for %lld samples", (long long)capacity);
        w->samples = grown;
        w->capacity = capacity;
    }
    memcpy(w->samples + w->count, samples, sizeof(float) * (size_t)count);
    w->count += count;
    return G3N_OK;
}

void g3n_pipeline_windows_free(g3n_pipeline_windows *w)
{
    for (int i = 0; i < w->input_count && w->buffers; i++)
        free(w->buffers[i]);
    free(w->buffers);
    free(w->files);
    free(w->segments);
    free(w->names);
    memset(w, 0, sizeof(*w));
}

int g3n_pipeline_window_media(const g3n_media_file *files, int count, g3n_pipeline_windows *out, g3n_error *err)
{
    memset(out, 0, sizeof(*out));
    g3n_audio_feature_config fc; /* the released preprocessor's window (16 kHz, 480000 samples, 512-sample frames) */
    g3n_audio_feature_config_default(&fc);
    const int64_t window = fc.max_samples, shortest = fc.frame_length + 1;
    out->input_count = count;
    out->segments = calloc((size_t)(count ? count : 1), sizeof(int));
    out->buffers = calloc((size_t)(count ? count : 1), sizeof(float *));
    out->files = calloc(G3N_PIPELINE_MAX_SEGMENTS, sizeof(g3n_media_file));
    out->names = calloc(G3N_PIPELINE_MAX_SEGMENTS, sizeof(*out->names));
    if (!out->segments || !out->buffers || !out->files || !out->names) {
        g3n_pipeline_windows_free(out);
        return g3n_error_set(err, "pipeline: out of memory");
    }
    for (int i = 0; i < count; i++) {
        const g3n_media_file *f = &files[i];
        const char *name = f->name ? f->name : "";
        const int room = G3N_PIPELINE_MAX_SEGMENTS - out->count;
        if (room < 1) {
            g3n_pipeline_windows_free(out);
            return g3n_error_set(err,
                                 "encoding %s %s: ERROR_BAD_REQUEST: more than %d media segments in one request "
                                 "(images and 30 s audio windows)",
                                 g3n_media_traits_of(f->kind)->name, name, G3N_PIPELINE_MAX_SEGMENTS);
        }
        if (f->kind != G3N_MEDIA_AUDIO || f->samples) {
            if (f->kind == G3N_MEDIA_IMAGE && f->size == 0) {
                g3n_pipeline_windows_free(out);
                return g3n_error_set(err, "encoding image %s: ERROR_BAD_REQUEST: the image is empty (0 bytes)", name);
            }
            out->files[out->count] = *f;
            snprintf(out->names[out->count], sizeof(out->names[0]), "%s", name);
            out->files[out->count].name = out->names[out->count];
            out->count++;
            out->segments[i] = 1;
            continue;
        }
        if (f->size == 0) {
            g3n_pipeline_windows_free(out);
            return g3n_error_set(err, "encoding audio %s: ERROR_BAD_REQUEST: the clip is empty (0 bytes)", name);
        }
        window_sink sink = {NULL, 0, 0, (int64_t)room * window};
        g3n_error decode_err = {{0}};
        if (g3n_audio_decode_memory_pieces(f->bytes, f->size, name, fc.sampling_rate, window_collect, &sink,
                                           &decode_err) != G3N_OK) {
            free(sink.samples);
            g3n_pipeline_windows_free(out);
            return g3n_error_set(err, "encoding audio %s: ERROR_BAD_REQUEST: %s", name, decode_err.message);
        }
        if (sink.count < shortest) {
            free(sink.samples);
            g3n_pipeline_windows_free(out);
            return g3n_error_set(err,
                                 "encoding audio %s: ERROR_BAD_REQUEST: %lld samples at %d Hz: too short, at least "
                                 "%lld are needed",
                                 name, (long long)sink.count, fc.sampling_rate, (long long)shortest);
        }
        /* room for the last window's padding to one frame */
        int64_t last = sink.count % window;
        if (last > 0 && last < shortest) {
            float *grown = realloc(sink.samples, sizeof(float) * (size_t)(sink.count - last + shortest));
            if (!grown) {
                free(sink.samples);
                g3n_pipeline_windows_free(out);
                return g3n_error_set(err, "pipeline: out of memory");
            }
            sink.samples = grown;
            memset(sink.samples + sink.count, 0, sizeof(float) * (size_t)(shortest - last));
        }
        out->buffers[i] = sink.samples;
        const int windows = (int)((sink.count + window - 1) / window);
        for (int k = 0; k < windows; k++) {
            const int64_t first = (int64_t)k * window;
            int64_t length = sink.count - first < window ? sink.count - first : window;
            if (length < shortest)
                length = shortest; /* a short last window becomes one frame (zeros after the clip) */
            g3n_media_file *w = &out->files[out->count];
            w->kind = G3N_MEDIA_AUDIO;
            w->samples = sink.samples + first;
            w->sample_count = length;
            if (windows > 1)
                snprintf(out->names[out->count], sizeof(out->names[0]), "%.60s [%d-%d s]", name,
                         (int)(first / fc.sampling_rate), (int)((first + length) / fc.sampling_rate));
            else
                snprintf(out->names[out->count], sizeof(out->names[0]), "%s", name);
            w->name = out->names[out->count];
            out->count++;
        }
        out->segments[i] = windows;
    }
    return G3N_OK;
}

int g3n_pipeline_expand_messages(const g3n_chat_message *messages, int count, const int *segments, int input_count,
                                 g3n_chat_message **messages_out, g3n_chat_item **items_out, g3n_error *err)
{
    *messages_out = NULL;
    *items_out = NULL;
    int total = 0, media = 0;
    for (int m = 0; m < count; m++)
        for (int i = 0; i < messages[m].item_count; i++) {
            const g3n_chat_item_type type = messages[m].items[i].type;
            if (type == G3N_CHAT_IMAGE || type == G3N_CHAT_AUDIO) {
                if (media >= input_count)
                    return g3n_error_set(err, "pipeline: the messages hold more media items than %d inputs",
                                         input_count);
                total += segments[media++];
            } else {
                total++;
            }
        }
    if (count < 0 || total < 0)
        return g3n_error_set(err, "pipeline: bad message count");
    g3n_chat_message *out_messages = malloc(sizeof(*out_messages) * (size_t)(count > 0 ? count : 1));
    g3n_chat_item *out_items = malloc(sizeof(*out_items) * (size_t)(total > 0 ? total : 1));
    if (!out_messages || !out_items) {
        free(out_messages);
        free(out_items);
        return g3n_error_set(err, "pipeline: out of memory");
    }
    int n = 0;
    media = 0;
    for (int m = 0; m < count; m++) {
        out_messages[m] = messages[m];
        out_messages[m].items = out_items + n;
        for (int i = 0; i < messages[m].item_count; i++) {
            const g3n_chat_item *item = &messages[m].items[i];
            const int copies = item->type == G3N_CHAT_IMAGE || item->type == G3N_CHAT_AUDIO ? segments[media++] : 1;
            for (int k = 0; k < copies; k++)
                out_items[n++] = *item;
        }
        out_messages[m].item_count = (int)(out_items + n - out_messages[m].items);
    }
    *messages_out = out_messages;
    *items_out = out_items;
    return G3N_OK;
}

g3n_pipeline_generate_params g3n_pipeline_default_params(const g3n_model_config *config)
{
    g3n_pipeline_generate_params p;
    memset(&p, 0, sizeof(p));
    p.max_new_tokens = 32;
    p.sampling = g3n_sampling_default_params();
    p.sampling.do_sample = 0;
    p.num_eos_ids = config->text.num_eos_token_ids < G3N_MAX_EOS_IDS ? config->text.num_eos_token_ids
                                                                      : G3N_MAX_EOS_IDS;
    for (int i = 0; i < p.num_eos_ids; i++)
        p.eos_ids[i] = config->text.eos_token_ids[i];
    p.allowed_vocab = config->text.vocab_size_per_layer_input;
    return p;
}

/* Embed ids (+ media) on the embedder; *reply owns the result. */
static int embed(g3n_client *client, const int32_t *ids, int64_t count, const g3n_pipeline_media *media,
                 g3n_reply *reply, g3n_error *err)
{
    G3n__Envelope env;
    G3n__EmbedRequest q;
    g3n__envelope__init(&env);
    g3n__embed_request__init(&q);
    g3n_wire_tensor t_ids;
    int64_t shape[1] = {count};
    g3n_wire_tensor_borrow(&t_ids, G3N_DTYPE_I32, 1, shape, ids);
    q.ids = &t_ids.message;
    G3n__MediaSegment segments[64];
    G3n__MediaSegment *pointers[64];
    int n = media ? media->count : 0;
    if (n > 64)
        return g3n_error_set(err, "pipeline: %d media in one prompt (at most 64)", n);
    for (int i = 0; i < n; i++) {
        g3n__media_segment__init(&segments[i]);
        const G3n__Envelope *m = media->replies[i];
        if (m->body_case == G3N__ENVELOPE__BODY_ENCODE_AUDIO_REPLY) {
            segments[i].kind = G3N__MEDIA_KIND__MEDIA_AUDIO;
            segments[i].tokens = m->encode_audio_reply->tokens;
            segments[i].padding = m->encode_audio_reply->padding;
        } else {
            segments[i].kind = G3N__MEDIA_KIND__MEDIA_IMAGE;
            segments[i].tokens = m->encode_image_reply->tokens;
        }
        pointers[i] = &segments[i];
    }
    q.n_segments = (size_t)n;
    q.segments = pointers;
    env.body_case = G3N__ENVELOPE__BODY_EMBED;
    env.embed = &q;
    g3n_request_options ro = {G3N_ROLE_EMBEDDER, 1, NULL};
    if (g3n_client_call(client, &ro, &env, NULL, NULL, reply, err) != G3N_OK)
        return G3N_ERR;
    if (reply->envelope->body_case != G3N__ENVELOPE__BODY_EMBED_REPLY)
        return g3n_error_set(err, "embedder answered %s", g3n_wire_body_name(reply->envelope->body_case));
    g3n_tensor e, p;
    g3n_error why = {{0}};
    int64_t eshape[2] = {count, -1}, pshape[3] = {count, -1, -1};
    if (check_worker_tensor(reply->envelope->embed_reply->inputs_embeds, "embed_reply.inputs_embeds", G3N_DTYPE_F32,
                            2, eshape, 0, &e, &why) != G3N_OK ||
        check_worker_tensor(reply->envelope->embed_reply->per_layer_inputs, "embed_reply.per_layer_inputs",
                            G3N_DTYPE_F32, 3, pshape, 0, &p, &why) != G3N_OK)
        return g3n_error_set(err, "bad reply from the embedder worker %s: %s", reply->worker, why.message);
    return G3N_OK;
}

/* The step's token logits: [vocab], or the last row of [rows, vocab] after an all-logits prefill. */
static int check_step(const g3n_reply *reply, int want_logits, int64_t rows, const float **logits, int64_t *vocab,
                      g3n_error *err)
{
    if (reply->envelope->body_case != G3N__ENVELOPE__BODY_STEP_REPLY)
        return g3n_error_set(err, "decoder answered %s", g3n_wire_body_name(reply->envelope->body_case));
    if (reply->envelope->step_reply->token < 0)
        return g3n_error_set(err, "bad reply from the decoder worker %s: token %d", reply->worker,
                             reply->envelope->step_reply->token);
    if (reply->envelope->step_reply->logits) { /* NaN or +inf logits: a broken worker (-inf: masked entries) */
        g3n_tensor any;
        g3n_error why = {{0}};
        const G3n__Tensor *t = reply->envelope->step_reply->logits;
        if (check_worker_tensor(t, "step_reply.logits", G3N_DTYPE_F32, (int)t->n_shape, NULL, 1, &any, &why) !=
            G3N_OK)
            return g3n_error_set(err, "bad reply from the decoder worker %s: %s", reply->worker, why.message);
    }
    *vocab = 0;
    *logits = NULL;
    if (want_logits || rows > 0) {
        g3n_tensor view;
        if (rows > 0) {
            int64_t shape[2] = {rows, -1};
            if (g3n_wire_tensor_view(reply->envelope->step_reply->logits, "step_reply.logits", G3N_DTYPE_F32, 2, shape,
                                     0, &view, err) != G3N_OK)
                return G3N_ERR;
            *vocab = view.shape[1];
            *logits = (const float *)view.data + (rows - 1) * view.shape[1];
        } else {
            if (g3n_wire_tensor_view(reply->envelope->step_reply->logits, "step_reply.logits", G3N_DTYPE_F32, 1, NULL,
                                     0, &view, err) != G3N_OK)
                return G3N_ERR;
            *vocab = view.shape[0];
            *logits = view.data;
        }
    }
    return G3N_OK;
}

static atomic_uint_fast64_t session_counter = 0;

static int reply_error_code(const g3n_reply *reply)
{
    if (!reply->envelope || reply->envelope->body_case != G3N__ENVELOPE__BODY_ERROR)
        return 0;
    return (int)reply->envelope->error->code;
}

/* A session request failed because the session is gone: its decoder was lost, or the decoder no longer
 * has it (restarted, idle timeout, memory bound). Then it is rebuilt elsewhere. */
static int session_lost(int code)
{
    return code == G3N__ERROR_CODE__ERROR_WORKER_LOST || code == G3N__ERROR_CODE__ERROR_NOT_FOUND;
}

/* One PrefillRequest of embedded positions (append: continue the session where it lives). */
static int prefill_call(g3n_client *client, const g3n_pipeline_generate_params *params, g3n_session_record *rec,
                        const g3n_reply *embedded, int append, int all_logits, int64_t max_positions, g3n_reply *step,
                        g3n_error *err)
{
    G3n__Envelope env;
    G3n__PrefillRequest q;
    G3n__SamplingParams sampling;
    g3n__envelope__init(&env);
    g3n__prefill_request__init(&q);
    g3n__sampling_params__init(&sampling);
    sampling.do_sample = params->sampling.do_sample;
    sampling.temperature = params->sampling.temperature;
    sampling.top_k = params->sampling.top_k;
    sampling.top_p = params->sampling.top_p;
    sampling.min_p = params->sampling.min_p;
    sampling.seed = params->sampling.seed;
    q.session_id = rec->session_id;
    q.reset = !append;
    q.append = append;
    q.expect_position = append ? rec->count : 0;
    q.inputs_embeds = embedded->envelope->embed_reply->inputs_embeds;
    q.per_layer_inputs = embedded->envelope->embed_reply->per_layer_inputs;
    q.sampling = &sampling;
    q.allowed_vocab = params->allowed_vocab;
    q.want_logits = params->want_logits;
    q.all_logits = all_logits;
    q.max_positions = max_positions;
    q.model = (char *)(params->model ? params->model : "");
    env.body_case = G3N__ENVELOPE__BODY_PREFILL;
    env.prefill = &q;
    g3n_request_options ro = {G3N_ROLE_DECODER, !append, append ? rec->decoder : NULL};
    return g3n_client_call(client, &ro, &env, NULL, NULL, step, err);
}

/* Prefills ids[0..count) (their media: media->replies[media_from..]) into the session of rec: appended on
 * the decoder that holds it when it holds positions; else opened on any decoder with everything (rec->ids,
 * then ids; media->replies[0..] in order). A session found lost (or lost_why given) is rebuilt that way and
 * told in progress and stats. On success rec->ids holds the new positions, rec->decoder the worker and
 * *step the decoder's StepReply. */
static int session_prefill(g3n_client *client, const g3n_pipeline_generate_params *params, g3n_session_record *rec,
                           const g3n_pipeline_media *media, int media_from, const int32_t *ids, int64_t count,
                           int all_logits, int64_t max_positions, const char *lost_why, g3n_reply *step,
                           g3n_pipeline_stats *stats, g3n_error *err)
{
    g3n_reply embedded;
    memset(&embedded, 0, sizeof(embedded));
    char lost[640] = "";
    if (lost_why)
        snprintf(lost, sizeof(lost), "%s", lost_why);
    double t0 = g3n_now_seconds();
    if (!lost[0] && rec->count > 0 && rec->decoder[0]) {
        g3n_pipeline_media suffix = {media && media->replies ? media->replies + media_from : NULL,
                                     media && media->replies ? media->count - media_from : 0,
                                     0.0};
        if (embed(client, ids, count, &suffix, &embedded, err) != G3N_OK) {
            g3n_reply_clear(&embedded);
            return G3N_ERR;
        }
        stats->embed_seconds += g3n_now_seconds() - t0;
        g3n_error call_err;
        int rc = prefill_call(client, params, rec, &embedded, 1, 0, 0, step, &call_err);
        g3n_reply_clear(&embedded);
        if (rc == G3N_OK) {
            stats->reused_tokens += rec->count;
            return g3n_session_record_append_ids(rec, ids, count, err);
        }
        if (!session_lost(reply_error_code(step))) {
            *err = call_err;
            return G3N_ERR;
        }
        snprintf(lost, sizeof(lost), "%s", call_err.message);
        g3n_reply_clear(step);
    }
    /* open (or rebuild) the session with every position it should hold */
    const int rebuild = lost[0] != '\0';
    if (rebuild)
        g3n_pipeline_progress(params->progress, params->progress_user,
                              "session %s lost (%s); rebuilding it on another decoder: %lld positions to prefill again",
                              rec->session_id, lost, (long long)(rec->count + count));
    int32_t *whole = malloc(sizeof(int32_t) * (size_t)(rec->count + count));
    if (!whole)
        return g3n_error_set(err, "session %s: out of memory", rec->session_id);
    if (rec->count)
        memcpy(whole, rec->ids, sizeof(int32_t) * (size_t)rec->count);
    memcpy(whole + rec->count, ids, sizeof(int32_t) * (size_t)count);
    const int64_t total = rec->count + count;
    t0 = g3n_now_seconds();
    int rc = embed(client, whole, total, media, &embedded, err);
    stats->embed_seconds += g3n_now_seconds() - t0;
    for (int attempt = 0; rc == G3N_OK; attempt++) {
        if (max_positions < total + 1)
            max_positions = total + 1;
        g3n_error call_err;
        rc = prefill_call(client, params, rec, &embedded, 0, all_logits, max_positions, step, &call_err);
        if (rc == G3N_OK)
            break;
        /* the decoders are full: a session kept for prefix reuse makes room */
        if (reply_error_code(step) == G3N__ERROR_CODE__ERROR_TOO_LARGE && attempt < 8 &&
            g3n_prefix_cache_evict_one(params->prefix_cache, client)) {
            g3n_reply_clear(step);
            rc = G3N_OK;
            continue;
        }
        if (rebuild)
            g3n_error_set(err, "session %s was lost (%s) and could not be rebuilt on another decoder: %s",
                          rec->session_id, lost, call_err.message);
        else
            *err = call_err;
    }
    g3n_reply_clear(&embedded);
    if (rc == G3N_OK) {
        snprintf(rec->decoder, sizeof(rec->decoder), "%s", step->worker);
        rec->max_positions = max_positions;
        rc = g3n_session_record_set_ids(rec, whole, total, err);
        if (rebuild) {
            stats->rebuilds++;
            g3n_pipeline_progress(params->progress, params->progress_user,
                                  "session %s rebuilt on %s: %lld positions prefilled again", rec->session_id,
                                  rec->decoder, (long long)total);
        }
    } else {
        rec->decoder[0] = '\0';
    }
    free(whole);
    return rc;
}

int g3n_pipeline_session_append(g3n_client *client, const g3n_pipeline_generate_params *params,
                                g3n_session_record *record, const g3n_pipeline_media *media, int media_from,
                                const int32_t *ids, int64_t count, int64_t max_positions, g3n_pipeline_stats *stats,
                                g3n_error *err)
{
    if (count < 1)
        return G3N_OK;
    g3n_reply step;
    memset(&step, 0, sizeof(step));
    int rc = session_prefill(client, params, record, media, media_from, ids, count, 0, max_positions, NULL, &step,
                             stats, err);
    g3n_reply_clear(&step);
    return rc;
}

int g3n_pipeline_generate(g3n_client *client, const int32_t *ids, int64_t count, const g3n_pipeline_media *media,
                          const g3n_pipeline_generate_params *params, g3n_pipeline_stats *stats, g3n_error *err)
{
    memset(stats, 0, sizeof(*stats));
    stats->prompt_tokens = count;
    if (count < 1)
        return g3n_error_set(err, "pipeline: an empty prompt");
    g3n_session_record *rec = params->record;
    if (rec && params->want_prompt_logits)
        return g3n_error_set(err, "pipeline: prompt logits are not given when a session is continued");
    if (!rec) {
        rec = g3n_session_record_new();
        if (!rec)
            return g3n_error_set(err, "pipeline: out of memory");
        if (params->session_id)
            snprintf(rec->session_id, sizeof(rec->session_id), "%s", params->session_id);
        else
            snprintf(rec->session_id, sizeof(rec->session_id), "session-%d-%llu", (int)getpid(),
                     (unsigned long long)atomic_fetch_add(&session_counter, 1));
    }
    /* every medium of the session, in order: the record's, then this call's */
    const int call_media = media ? media->count : 0;
    g3n_pipeline_media all = {NULL, rec->media_count + call_media, 0.0};
    if (all.count > 0) {
        all.replies = malloc(sizeof(*all.replies) * (size_t)all.count);
        if (!all.replies) {
            if (rec != params->record)
                g3n_session_record_free(rec);
            return g3n_error_set(err, "pipeline: out of memory");
        }
        for (int i = 0; i < rec->media_count; i++)
            all.replies[i] = rec->media[i];
        for (int i = 0; i < call_media; i++)
            all.replies[rec->media_count + i] = media->replies[i];
    }
    g3n_reply embedded, step;
    memset(&embedded, 0, sizeof(embedded));
    memset(&step, 0, sizeof(step));
    int rc = G3N_ERR;

    /* prefill: the embedder's merge, then the decoder (a new session may go to any decoder) */
    double t1 = g3n_now_seconds();
    int64_t max_positions = rec->count + count + params->max_new_tokens + 1;
    if (params->record && params->session_positions > max_positions)
        max_positions = params->session_positions;
    if (session_prefill(client, params, rec, &all, rec->media_count, ids, count, params->want_prompt_logits,
                        max_positions, NULL, &step, stats, err) != G3N_OK)
        goto done;
    if (params->want_prompt_logits && step.envelope->body_case == G3N__ENVELOPE__BODY_STEP_REPLY) {
        g3n_tensor view;
        int64_t shape[2] = {count, -1};
        if (g3n_wire_tensor_view(step.envelope->step_reply->logits, "prefill logits", G3N_DTYPE_F32, 2, shape, 0,
                                 &view, err) != G3N_OK)
            goto done;
        if (params->on_prompt_logits)
            params->on_prompt_logits(params->user, view.data, count, view.shape[1]);
    }
    snprintf(stats->decoder, sizeof(stats->decoder), "%s", rec->decoder);
    stats->prefill_seconds = g3n_now_seconds() - t1 - stats->embed_seconds;
    g3n_pipeline_progress(params->progress, params->progress_user,
                          "prefill: %lld tokens in %.3f s (%.1f tok/s; embed %.3f s) on %s%s", (long long)count,
                          stats->prefill_seconds + stats->embed_seconds,
                          (double)count / (stats->prefill_seconds + stats->embed_seconds + 1e-12),
                          stats->embed_seconds, stats->decoder,
                          stats->reused_tokens ? " (continuing its session)" : "");

    /* decode: the picked token -> embedder -> the session's decoder */
    double t2 = g3n_now_seconds();
    for (int64_t s = 0; s < params->max_new_tokens; s++) {
        int64_t vocab = 0;
        const float *logits = NULL;
        if (check_step(&step, params->want_logits, s == 0 && params->want_prompt_logits ? count : 0, &logits, &vocab,
                       err) != G3N_OK)
            goto done;
        if (!params->want_logits)
            logits = NULL;
        int32_t token = step.envelope->step_reply->token;
        if (s > 0)
            stats->decoder_step_seconds += step.envelope->step_reply->seconds;
        stats->generated_tokens++;
        int stop = params->on_token ? params->on_token(params->user, s, token, logits, vocab) : 0;
        for (int e = 0; e < params->num_eos_ids; e++)
            if (token == params->eos_ids[e]) {
                stats->stopped_on_eos = 1;
                stop = 1;
            }
        g3n_reply_clear(&step);
        if (stop || s + 1 == params->max_new_tokens)
            break;
        const double embed_start = g3n_now_seconds();
        if (embed(client, &token, 1, NULL, &embedded, err) != G3N_OK)
            goto done;
        stats->decode_embed_seconds += g3n_now_seconds() - embed_start;
        G3n__Envelope env;
        G3n__DecodeStepRequest q;
        g3n__envelope__init(&env);
        g3n__decode_step_request__init(&q);
        q.session_id = rec->session_id;
        q.inputs_embeds = embedded.envelope->embed_reply->inputs_embeds;
        q.per_layer_inputs = embedded.envelope->embed_reply->per_layer_inputs;
        q.want_logits = params->want_logits;
        env.body_case = G3N__ENVELOPE__BODY_DECODE_STEP;
        env.decode_step = &q;
        g3n_request_options ro = {G3N_ROLE_DECODER, 0, rec->decoder}; /* sticky: the KV cache is there */
        g3n_error step_err;
        int call_rc = g3n_client_call(client, &ro, &env, NULL, NULL, &step, &step_err);
        g3n_reply_clear(&embedded);
        if (call_rc == G3N_OK) {
            if (g3n_session_record_append_ids(rec, &token, 1, err) != G3N_OK)
                goto done;
            continue;
        }
        if (!session_lost(reply_error_code(&step))) {
            *err = step_err;
            goto done;
        }
        /* its decoder is gone: the same positions and this token on another one */
        g3n_reply_clear(&step);
        rec->decoder[0] = '\0';
        if (session_prefill(client, params, rec, &all, all.count, &token, 1, 0,
                            rec->max_positions > 0 ? rec->max_positions : max_positions, step_err.message, &step,
                            stats, err) != G3N_OK)
            goto done;
        snprintf(stats->decoder, sizeof(stats->decoder), "%s", rec->decoder);
    }
    stats->decode_seconds = g3n_now_seconds() - t2;
    if (stats->generated_tokens > 1)
        g3n_pipeline_progress(params->progress, params->progress_user, "decode: %lld tokens in %.3f s (%.1f tok/s)",
                              (long long)stats->generated_tokens, stats->decode_seconds,
                              (double)(stats->generated_tokens - 1) / (stats->decode_seconds + 1e-12));
    rc = G3N_OK;
done:
    g3n_reply_clear(&embedded);
    g3n_reply_clear(&step);
    free(all.replies);
    if (rec != params->record) { /* a session of its own: ended */
        g3n_session_record_end(rec, client);
        g3n_session_record_free(rec);
    }
    return rc;
}

typedef struct text_stream {
    g3n_detokenizer detokenizer;
    g3n_text_callback on_text;
    void *user;
    const g3n_pipeline_generate_params *outer;
    int failed;
    g3n_error err;
} text_stream;

static int text_on_token(void *user, int64_t step, int32_t token, const float *logits, int64_t vocab)
{
    text_stream *s = user;
    const char *text;
    size_t length;
    if (g3n_detokenizer_push(&s->detokenizer, token, &text, &length, &s->err) != G3N_OK) {
        s->failed = 1;
        return 1;
    }
    int stop = 0;
    if (length && s->on_text)
        stop = s->on_text(s->user, text, length);
    if (s->outer->on_token)
        stop |= s->outer->on_token(s->outer->user, step, token, logits, vocab);
    return stop;
}

int g3n_pipeline_generate_text(g3n_client *client, const g3n_tokenizer *tokenizer, const int32_t *ids, int64_t count,
                               const g3n_pipeline_media *media, const g3n_pipeline_generate_params *params,
                               g3n_text_callback on_text, void *text_user, g3n_pipeline_stats *stats,
                               g3n_error *err)
{
    text_stream stream;
    memset(&stream, 0, sizeof(stream));
    g3n_detokenizer_init(&stream.detokenizer, tokenizer, 1);
    stream.on_text = on_text;
    stream.user = text_user;
    stream.outer = params;
    g3n_pipeline_generate_params p = *params;
    p.on_token = text_on_token;
    p.user = &stream;
    int rc = g3n_pipeline_generate(client, ids, count, media, &p, stats, err);
    if (rc == G3N_OK && stream.failed)
        rc = g3n_error_set(err, "%s", stream.err.message);
    if (rc == G3N_OK) {
        const char *text;
        size_t length;
        if (g3n_detokenizer_flush(&stream.detokenizer, &text, &length, err) != G3N_OK)
            rc = G3N_ERR;
        else if (length && on_text)
            on_text(text_user, text, length);
    }
    g3n_detokenizer_free(&stream.detokenizer);
    return rc;
}

int g3n_pipeline_chat(g3n_client *client, const g3n_model_config *config, const g3n_tokenizer *tokenizer,
                      const g3n_chat_input *input, const g3n_pipeline_generate_params *params,
                      g3n_text_callback on_text, void *text_user, g3n_pipeline_stats *stats, g3n_error *err)
{
    memset(stats, 0, sizeof(*stats));
    if (input->media_count > 62)
        return g3n_error_set(err, "chat: %d media items (at most 62)", input->media_count);
    /* audio over 30 s: one segment per window, each its own placeholder block */
    g3n_pipeline_windows windows;
    if (g3n_pipeline_window_media(input->media, input->media_count, &windows, err) != G3N_OK)
        return G3N_ERR;
    if (windows.count > 62) {
        g3n_pipeline_windows_free(&windows);
        return g3n_error_set(err, "chat: %d media segments (images and 30 s audio windows; at most 62)",
                             windows.count);
    }
    g3n_chat_item items[64];
    int n = 0;
    for (int i = 0; i < windows.count; i++) {
        items[n].type = g3n_media_traits_of(windows.files[i].kind)->item;
        items[n].text = NULL;
        n++;
    }
    items[n].type = G3N_CHAT_TEXT;
    items[n].text = input->prompt ? input->prompt : "";
    n++;
    g3n_chat_item system_item = {G3N_CHAT_TEXT, input->system};
    g3n_chat_message messages[2];
    int m = 0;
    if (input->system && input->system[0])
        messages[m++] = (g3n_chat_message){"system", &system_item, 1};
    messages[m++] = (g3n_chat_message){"user", items, n};
    g3n_chat_special_ids special;
    g3n_chat_special_ids_from_config(&special, config);
    g3n_chat_prompt prompt;
    memset(&prompt, 0, sizeof(prompt));
    if (g3n_chat_template_apply(tokenizer, &special, messages, m, 1, &prompt, err) != G3N_OK) {
        g3n_pipeline_windows_free(&windows);
        return G3N_ERR;
    }

    g3n_pipeline_media media;
    memset(&media, 0, sizeof(media));
    int rc = G3N_ERR;
    if (windows.count > 0) {
        int audio_count = 0;
        for (int i = 0; i < windows.count; i++)
            audio_count += windows.files[i].kind == G3N_MEDIA_AUDIO;
        g3n_pipeline_progress(params->progress, params->progress_user,
                              "encoding %d image%s and %d audio segment%s in parallel", windows.count - audio_count,
                              windows.count - audio_count == 1 ? "" : "s", audio_count, audio_count == 1 ? "" : "s");
        if (g3n_pipeline_encode_media(client, windows.files, windows.count, &media, params->progress,
                                      params->progress_user, err) != G3N_OK ||
            g3n_pipeline_check_media(&media, config, err) != G3N_OK)
            goto done;
    }
    rc = g3n_pipeline_generate_text(client, tokenizer, prompt.ids.ids, prompt.ids.count, &media, params, on_text,
                                    text_user, stats, err);
    stats->encode_seconds = media.seconds;
done:
    g3n_pipeline_media_free(&media);
    g3n_chat_prompt_free(&prompt);
    g3n_pipeline_windows_free(&windows);
    return rc;
}

int g3n_local_role_capacity(int role, const g3n_role_options *options)
{
    const g3n_role_ops *ops = g3n_role_ops_for(role);
    return ops ? ops->capacity(options) : 1;
}

int g3n_local_roles_start(g3n_local_roles *local, g3n_broker *broker, const char *endpoint, g3n_weights *weights,
                          const g3n_model_config *config, const g3n_role_options *options, unsigned role_mask,
                          const g3n_transport_options *transport, g3n_error *err)
{
    memset(local, 0, sizeof(*local));
    for (int role = 1; role < G3N_ROLE_COUNT; role++) {
        if (!(role_mask & (1u << role)) || role == G3N_ROLE_ORCHESTRATOR)
            continue;
        if (g3n_role_open(&local->roles[role], role, weights, config, options, err) != G3N_OK) {
            g3n_local_roles_stop(local);
            return G3N_ERR;
        }
        g3n_worker_options wo;
        memset(&wo, 0, sizeof(wo));
        wo.role = role;
        wo.endpoint = endpoint;
        wo.model_id = g3n_weights_describe(weights);
        wo.capacity = g3n_local_role_capacity(role, options);
        wo.zmq_context = g3n_broker_context(broker);
        if (transport)
            wo.transport = *transport;
        if (g3n_worker_start(&local->workers[role], &wo, g3n_role_handle, local->roles[role], err) != G3N_OK) {
            g3n_local_roles_stop(local);
            return G3N_ERR;
        }
    }
    return G3N_OK;
}

void g3n_local_roles_stop(g3n_local_roles *local)
{
    for (int role = 0; role < G3N_ROLE_COUNT; role++) {
        g3n_worker_stop(local->workers[role]);
        g3n_role_close(local->roles[role]);
    }
    memset(local, 0, sizeof(*local));
}
