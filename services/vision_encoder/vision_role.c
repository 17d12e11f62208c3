/* vision_role.c - the vision-encoder role (vision_role.h). */
#include "vision_role.h"

#include <pthread.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "image_preprocess.h"
#include "image_preprocess_rgb.h"
#include "ops.h"
#include "vision_encoder.h"
#include "wire.h"

typedef struct vision_role {
    g3n_weights *weights;
    const g3n_model_config *config;
    pthread_mutex_t lock;
    g3n_vision_encoder *vision;
    float *pixels, *tower;
} vision_role;

static int vision_open(vision_role *r, g3n_error *err)
{
    if (g3n_vision_encoder_load(&r->vision, r->config, r->weights, err) != G3N_OK)
        return G3N_ERR;
    const g3n_vision_config *vc = g3n_vision_encoder_config(r->vision);
    r->pixels = malloc(sizeof(float) * 3 * (size_t)(vc->image_size * vc->image_size));
    r->tower = malloc(sizeof(float) * (size_t)(vc->soft_tokens * vc->hidden_size));
    if (!r->pixels || !r->tower)
        return g3n_error_set(err, "vision-encoder: out of memory");
    return g3n_image_init(err);
}

/* EncodeImageRequest -> EncodeImageReply (the tower's tokens). */
static int vision_encode_image(vision_role *r, g3n_worker_call *call, const G3n__EncodeImageRequest *q, g3n_error *err)
{
    const g3n_vision_config *vc = g3n_vision_encoder_config(r->vision);
    const int64_t side = vc->image_size;
    double t0 = g3n_now_seconds();
    pthread_mutex_lock(&r->lock);
    int rc = G3N_OK;
    if ((q->image.len > 0) + (q->pixel_values != NULL) + (q->rgb != NULL) > 1) {
        rc = g3n_error_set(err, "encode_image: give one of image bytes, pixel_values or rgb");
        g3n_role_bad_request(call, err);
    } else if (q->rgb) { /* a decoded video frame: preprocessed here, as an image file's pixels */
        int64_t shape[3] = {-1, -1, 3};
        g3n_tensor view;
        g3n_image_options options = g3n_image_default_options();
        options.size = (int)side;
        if (g3n_wire_tensor_view(q->rgb, "encode_image.rgb", G3N_DTYPE_U8, 3, shape, 0, &view, err) != G3N_OK) {
            rc = g3n_role_bad_request(call, err);
        } else if (view.shape[0] < 1 || view.shape[1] < 1 || view.shape[1] > INT32_MAX / 3 ||
                   view.shape[0] > INT32_MAX) {
            rc = g3n_error_set(err, "encode_image.rgb: a frame of %lld x %lld pixels", (long long)view.shape[1],
                               (long long)view.shape[0]);
            g3n_role_bad_request(call, err);
        } else if (g3n_image_preprocess_rgb(view.data, (int)view.shape[1], (int)view.shape[0],
                                            (int)view.shape[1] * 3, &options, r->pixels, err) != G3N_OK) {
            g3n_error_prefix(err, "encode_image.rgb");
            rc = g3n_role_bad_request(call, err);
        }
    } else if (q->image.len > 0) {
        g3n_image_options options = g3n_image_default_options();
        options.size = (int)side;
        if (g3n_image_preprocess_buffer(q->image.data, q->image.len, &options, r->pixels, err) != G3N_OK) {
            g3n_error_prefix(err, "encode_image.image");
            rc = g3n_role_bad_request(call, err);
        }
    } else if (!q->pixel_values) { /* an empty image file, or nothing at all */
        rc = g3n_error_set(err, "encode_image: the image is empty (0 bytes) and no pixel_values were given");
        g3n_role_bad_request(call, err);
    } else {
        int64_t shape[3] = {3, side, side};
        g3n_tensor view;
        if (g3n_wire_tensor_view(q->pixel_values, "encode_image.pixel_values", G3N_DTYPE_F32, 3, shape, 0, &view,
                                 err) != G3N_OK)
            rc = g3n_role_bad_request(call, err);
        else
            memcpy(r->pixels, view.data, sizeof(float) * (size_t)(3 * side * side));
    }
    if (rc == G3N_OK)
        rc = g3n_vision_encoder_tower(r->vision, r->pixels, 1, (int)side, (int)side, r->tower, err);
    if (rc == G3N_OK) {
        G3n__Envelope env;
        G3n__EncodeImageReply reply;
        g3n__envelope__init(&env);
        g3n__encode_image_reply__init(&reply);
        g3n_wire_tensor tokens;
        int64_t shape[2] = {vc->soft_tokens, vc->hidden_size};
        g3n_wire_tensor_borrow(&tokens, G3N_DTYPE_F32, 2, shape, r->tower);
        reply.tokens = &tokens.message;
        reply.seconds = g3n_now_seconds() - t0;
        env.body_case = G3N__ENVELOPE__BODY_ENCODE_IMAGE_REPLY;
        env.encode_image_reply = &reply;
        rc = g3n_worker_call_send(call, &env, 0, err);
    }
    pthread_mutex_unlock(&r->lock);
    return rc;
}

static void vision_close(void *state)
{
    vision_role *r = state;
    if (!r)
        return;
    g3n_vision_encoder_free(r->vision);
    free(r->pixels);
    free(r->tower);
    pthread_mutex_destroy(&r->lock);
    free(r);
}

static int vision_role_open(void **state, g3n_weights *weights, const g3n_model_config *config,
                            const g3n_role_options *options, g3n_error *err)
{
    (void)options;
    vision_role *r = calloc(1, sizeof(*r));
    if (!(*state = r))
        return g3n_error_set(err, "vision-encoder: out of memory");
    r->weights = weights;
    r->config = config;
    pthread_mutex_init(&r->lock, NULL);
    return vision_open(r, err);
}

static int vision_handle(void *state, g3n_worker_call *call, const G3n__Envelope *q, g3n_error *err)
{
    if (q->body_case == G3N__ENVELOPE__BODY_ENCODE_IMAGE)
        return vision_encode_image(state, call, q->encode_image, err);
    return g3n_role_unsupported(G3N_ROLE_VISION_ENCODER, call, q, err);
}

static int vision_capacity(const g3n_role_options *options)
{
    (void)options;
    return 1; /* one tower: requests take turns (its OpenMP pool is the parallelism) */
}

const g3n_role_ops g3n_vision_role_ops = {
    .role = G3N_ROLE_VISION_ENCODER,
    .open = vision_role_open,
    .close = vision_close,
    .handle = vision_handle,
    .capacity = vision_capacity,
};
