/* embedder_role.c - the embedder role (embedder_role.h). */
#include "embedder_role.h"

#include <pthread.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "embedder.h"
#include "wire.h"

/* Reusable output buffers, one per concurrent call (no allocation per token). */
typedef struct scratch_slot {
    float *a, *b;
    size_t a_size, b_size;
    int busy;
} scratch_slot;
#define SCRATCH_SLOTS 16

typedef struct embedder_role {
    g3n_role_options options;
    pthread_mutex_t lock;
    g3n_embedder embedder;
    scratch_slot scratch[SCRATCH_SLOTS];
} embedder_role;

static scratch_slot *scratch_take(embedder_role *r, size_t a_floats, size_t b_floats, g3n_error *err)
{
    pthread_mutex_lock(&r->lock);
    scratch_slot *slot = NULL;
    for (int i = 0; i < SCRATCH_SLOTS && !slot; i++)
        if (!r->scratch[i].busy)
            slot = &r->scratch[i];
    if (slot)
        slot->busy = 1;
    pthread_mutex_unlock(&r->lock);
    if (!slot) {
        g3n_error_set(err, "embedder: more than %d calls at once", SCRATCH_SLOTS);
        return NULL;
    }
    if (slot->a_size < a_floats) {
        free(slot->a);
        slot->a = malloc(sizeof(float) * a_floats);
        slot->a_size = slot->a ? a_floats : 0;
    }
    if (slot->b_size < b_floats) {
        free(slot->b);
        slot->b = malloc(sizeof(float) * b_floats);
        slot->b_size = slot->b ? b_floats : 0;
    }
    if (!slot->a || !slot->b) {
        g3n_error_set(err, "embedder: out of memory for %zu + %zu floats", a_floats, b_floats);
        pthread_mutex_lock(&r->lock);
        slot->busy = 0;
        pthread_mutex_unlock(&r->lock);
        return NULL;
    }
    return slot;
}

static void scratch_give(embedder_role *r, scratch_slot *slot)
{
    pthread_mutex_lock(&r->lock);
    slot->busy = 0;
    pthread_mutex_unlock(&r->lock);
}

#define MAX_MEDIA 64

/* EmbedRequest -> EmbedReply: Gemma3nModel.forward's merge (embedder.h). */
static int embedder_embed(embedder_role *r, g3n_worker_call *call, const G3n__EmbedRequest *q, g3n_error *err)
{
    const g3n_embedder *e = &r->embedder;
    g3n_tensor ids;
    if (g3n_wire_tensor_view(q->ids, "embed.ids", G3N_DTYPE_I32, 1, NULL, r->options.max_tokens, &ids, err) != G3N_OK)
        return g3n_role_bad_request(call, err);
    const int64_t T = ids.shape[0];
    if (T < 1)
        return g3n_error_set(err, "embed.ids: empty"), g3n_role_bad_request(call, err);
    const int32_t *id = ids.data;
    for (int64_t t = 0; t < T; t++)
        if (id[t] < 0 || id[t] >= e->vocab_size)
            return g3n_error_set(err, "embed.ids[%lld] = %d is outside the vocabulary [0, %lld)", (long long)t, id[t],
                                 (long long)e->vocab_size),
                   g3n_role_bad_request(call, err);
    if (q->n_segments > MAX_MEDIA)
        return g3n_error_set(err, "embed.segments: %zu media, at most %d", q->n_segments, MAX_MEDIA),
               g3n_role_bad_request(call, err);
    g3n_media_tokens media[MAX_MEDIA];
    for (size_t i = 0; i < q->n_segments; i++) {
        const G3n__MediaSegment *s = q->segments[i];
        char name[64];
        snprintf(name, sizeof(name), "embed.segments[%zu].tokens", i);
        g3n_tensor tokens;
        memset(&media[i], 0, sizeof(media[i]));
        if (s->kind == G3N__MEDIA_KIND__MEDIA_IMAGE) {
            if (!e->has_vision)
                return g3n_error_set(err, "embed.segments[%zu]: an image, but the model has no vision embedder", i),
                       g3n_role_bad_request(call, err);
            int64_t shape[2] = {e->vision_soft_tokens_per_image, e->vision.multimodal_hidden};
            if (g3n_wire_tensor_view(s->tokens, name, G3N_DTYPE_F32, 2, shape, 0, &tokens, err) != G3N_OK)
                return g3n_role_bad_request(call, err);
            media[i].kind = G3N_MEDIA_IMAGE;
        } else if (s->kind == G3N__MEDIA_KIND__MEDIA_AUDIO) {
            if (!e->has_audio)
                return g3n_error_set(err, "embed.segments[%zu]: audio, but the model has no audio embedder", i),
                       g3n_role_bad_request(call, err);
            int64_t shape[2] = {-1, e->audio.multimodal_hidden};
            if (g3n_wire_tensor_view(s->tokens, name, G3N_DTYPE_F32, 2, shape,
                                     e->audio_soft_tokens_per_image * e->audio.multimodal_hidden, &tokens,
                                     err) != G3N_OK)
                return g3n_role_bad_request(call, err);
            media[i].kind = G3N_MEDIA_AUDIO;
            if (s->padding) {
                g3n_tensor padding;
                snprintf(name, sizeof(name), "embed.segments[%zu].padding", i);
                int64_t pshape[1] = {tokens.shape[0]};
                if (g3n_wire_tensor_view(s->padding, name, G3N_DTYPE_U8, 1, pshape, 0, &padding, err) != G3N_OK)
                    return g3n_role_bad_request(call, err);
                media[i].padding_mask = padding.data;
            }
        } else {
            return g3n_error_set(err, "embed.segments[%zu]: unknown media kind %d", i, (int)s->kind),
                   g3n_role_bad_request(call, err);
        }
        media[i].tokens = tokens.data;
        media[i].count = tokens.shape[0];
        media[i].width = tokens.shape[1];
    }
    scratch_slot *slot = scratch_take(r, (size_t)(T * e->hidden_size), (size_t)(T * e->per_layer_width), err);
    if (!slot)
        return G3N_ERR;
    int rc = g3n_embedder_build(e, id, T, media, (int)q->n_segments, 0, T, slot->a, slot->b, err);
    if (rc != G3N_OK) {
        g3n_role_bad_request(call, err); /* mismatched placeholders and media */
    } else {
        G3n__Envelope env;
        G3n__EmbedReply reply;
        g3n__envelope__init(&env);
        g3n__embed_reply__init(&reply);
        g3n_wire_tensor embeds, per_layer;
        int64_t eshape[2] = {T, e->hidden_size};
        int64_t pshape[3] = {T, e->text.num_layers, e->text.per_layer_dim};
        g3n_wire_tensor_borrow(&embeds, G3N_DTYPE_F32, 2, eshape, slot->a);
        g3n_wire_tensor_borrow(&per_layer, G3N_DTYPE_F32, 3, pshape, slot->b);
        reply.inputs_embeds = &embeds.message;
        reply.per_layer_inputs = &per_layer.message;
        env.body_case = G3N__ENVELOPE__BODY_EMBED_REPLY;
        env.embed_reply = &reply;
        rc = g3n_worker_call_send(call, &env, 0, err);
    }
    scratch_give(r, slot);
    return rc;
}

static void embedder_close(void *state)
{
    embedder_role *r = state;
    if (!r)
        return;
    for (int i = 0; i < SCRATCH_SLOTS; i++) {
        free(r->scratch[i].a);
        free(r->scratch[i].b);
    }
    g3n_embedder_free(&r->embedder);
    pthread_mutex_destroy(&r->lock);
    free(r);
}

static int embedder_open(void **state, g3n_weights *weights, const g3n_model_config *config,
                         const g3n_role_options *options, g3n_error *err)
{
    embedder_role *r = calloc(1, sizeof(*r));
    if (!(*state = r))
        return g3n_error_set(err, "embedder: out of memory");
    r->options = *options;
    pthread_mutex_init(&r->lock, NULL);
    int rc = g3n_embedder_load(&r->embedder, weights, config, err);
    if (rc == G3N_OK) /* q8/q4: its projection quantised as the decoder's cache does */
        rc = g3n_embedder_select_weights(&r->embedder, r->options.weight_format, err);
    return rc;
}

static int embedder_handle(void *state, g3n_worker_call *call, const G3n__Envelope *q, g3n_error *err)
{
    if (q->body_case == G3N__ENVELOPE__BODY_EMBED)
        return embedder_embed(state, call, q->embed, err);
    return g3n_role_unsupported(G3N_ROLE_EMBEDDER, call, q, err);
}

static int embedder_capacity(const g3n_role_options *options)
{
    (void)options;
    return 2; /* each handler thread computes on its own OpenMP pool */
}

const g3n_role_ops g3n_embedder_role_ops = {
    .role = G3N_ROLE_EMBEDDER,
    .open = embedder_open,
    .close = embedder_close,
    .handle = embedder_handle,
    .capacity = embedder_capacity,
    .daemon_options = G3N_ROLE_TAKES_WEIGHTS,
    .weights_help = "the per-token projection (per_layer_model_projection):\n"
                    "q8/q4 quantise it at start as the decoder's cache does\n"
                    "(give the decoder's --weights)",
};
