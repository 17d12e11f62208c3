/* The worker roles against hostile or empty inputs (issue 18): the roles of
 * the mm-tiny config (synthetic weights) as threads behind a broker over
 * inproc://. Each request below is answered with a clear error (never a
 * crash: the sanitizer build aborts on memcpy from NULL), and the role keeps
 * serving. */
#include <math.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "config.h"
#include "image_preprocess.h"
#include "pipeline.h"
#include "roles.h"
#include "test_util.h"
#include "transport.h"
#include "weights.h"
#include "wire.h"

typedef struct fixture {
    g3n_model_config config;
    g3n_weights *weights;
    g3n_broker *broker;
    g3n_local_roles local;
    g3n_client *client;
} fixture;

static int setup(void **state)
{
    fixture *f = calloc(1, sizeof(*f));
    char path[1024];
    g3n_error err = {{0}};
    if (g3n_config_load(&f->config, g3n_test_fixture("mm-tiny/config.json", path, sizeof(path)), &err) != G3N_OK ||
        g3n_weights_open_synth(&f->weights, 41, G3N_DTYPE_BF16, &err) != G3N_OK) {
        fprintf(stderr, "%s\n", err.message);
        return -1;
    }
    g3n_transport_options transport = g3n_transport_default_options();
    transport.no_worker_wait_ms = 2000;
    const char *endpoint = "inproc://g3n-test-role-inputs";
    if (g3n_broker_start(&f->broker, &endpoint, 1, &transport, &err) != G3N_OK)
        return -1;
    g3n_role_options ro;
    memset(&ro, 0, sizeof(ro));
    ro.threads = 1;
    const unsigned mask = (1u << G3N_ROLE_AUDIO_ENCODER) | (1u << G3N_ROLE_VISION_ENCODER);
    if (g3n_local_roles_start(&f->local, f->broker, endpoint, f->weights, &f->config, &ro, mask, &transport, &err) !=
            G3N_OK ||
        g3n_broker_wait_workers(f->broker, G3N_ROLE_AUDIO_ENCODER, 1, 10000, &err) != G3N_OK ||
        g3n_broker_wait_workers(f->broker, G3N_ROLE_VISION_ENCODER, 1, 10000, &err) != G3N_OK ||
        g3n_client_open(&f->client, f->broker, &err) != G3N_OK) {
        fprintf(stderr, "%s\n", err.message);
        return -1;
    }
    *state = f;
    return 0;
}

static int teardown(void **state)
{
    fixture *f = *state;
    g3n_client_close(f->client);
    g3n_local_roles_stop(&f->local);
    g3n_broker_stop(f->broker);
    g3n_weights_close(f->weights);
    g3n_config_free(&f->config);
    free(f);
    return 0;
}

/* Calls the role; expects an Error of `code` whose message holds `fragment`. */
static void expect_error(fixture *f, int role, G3n__Envelope *env, int code, const char *fragment)
{
    g3n_request_options ro = {role, 0, NULL};
    g3n_reply r;
    g3n_error err = {{0}};
    assert_int_equal(g3n_client_call(f->client, &ro, env, NULL, NULL, &r, &err), G3N_ERR);
    assert_non_null(r.envelope);
    assert_int_equal(r.envelope->body_case, G3N__ENVELOPE__BODY_ERROR);
    if ((int)r.envelope->error->code != code || !strstr(r.envelope->error->message, fragment))
        fail_msg("expected %s with '%s', got %s: %s", g3n_wire_error_code_name(code), fragment,
                 g3n_wire_error_code_name(r.envelope->error->code), r.envelope->error->message);
    g3n_reply_clear(&r);
}

/* An EncodeAudioRequest whose samples tensor has shape [0] and no data: a
 * clear error (it reached memcpy(dst, NULL, 0): UBSan abort, no answer). */
static void test_audio_empty_samples(void **state)
{
    fixture *f = *state;
    G3n__Envelope env;
    G3n__EncodeAudioRequest q;
    g3n__envelope__init(&env);
    g3n__encode_audio_request__init(&q);
    g3n_wire_tensor samples;
    int64_t shape[1] = {0};
    g3n_wire_tensor_borrow(&samples, G3N_DTYPE_F32, 1, shape, NULL);
    q.samples = &samples.message;
    env.body_case = G3N__ENVELOPE__BODY_ENCODE_AUDIO;
    env.encode_audio = &q;
    expect_error(f, G3N_ROLE_AUDIO_ENCODER, &env, G3N__ERROR_CODE__ERROR_BAD_REQUEST, "encode_audio.samples: empty");
    /* features of shape [0, 128] likewise */
    g3n_wire_tensor features;
    int64_t fshape[2] = {0, 128};
    g3n_wire_tensor_borrow(&features, G3N_DTYPE_F32, 2, fshape, NULL);
    q.samples = NULL;
    q.features = &features.message;
    expect_error(f, G3N_ROLE_AUDIO_ENCODER, &env, G3N__ERROR_CODE__ERROR_BAD_REQUEST, "encode_audio.features");
    /* still serving: one second of silence-free noise encodes */
    float *noise = malloc(sizeof(float) * 16000);
    g3n_test_random_floats(noise, 16000, 3);
    shape[0] = 16000;
    g3n_wire_tensor_borrow(&samples, G3N_DTYPE_F32, 1, shape, noise);
    q.features = NULL;
    q.samples = &samples.message;
    g3n_request_options ro = {G3N_ROLE_AUDIO_ENCODER, 0, NULL};
    g3n_reply r;
    g3n_error err = {{0}};
    if (g3n_client_call(f->client, &ro, &env, NULL, NULL, &r, &err) != G3N_OK)
        fail_msg("%s", err.message);
    assert_int_equal(r.envelope->body_case, G3N__ENVELOPE__BODY_ENCODE_AUDIO_REPLY);
    g3n_reply_clear(&r);
    free(noise);
}

/* No image bytes and no pixel_values (a 0-byte image file): "the image is
 * empty", not "pixel_values: tensor is missing". */
static void test_vision_empty_image(void **state)
{
    fixture *f = *state;
    G3n__Envelope env;
    G3n__EncodeImageRequest q;
    g3n__envelope__init(&env);
    g3n__encode_image_request__init(&q);
    env.body_case = G3N__ENVELOPE__BODY_ENCODE_IMAGE;
    env.encode_image = &q;
    expect_error(f, G3N_ROLE_VISION_ENCODER, &env, G3N__ERROR_CODE__ERROR_BAD_REQUEST, "the image is empty");
}

/* Calls the vision encoder; the reply's tokens, malloc'd (*count floats). */
static float *encode_image_tokens(fixture *f, G3n__Envelope *env, int64_t *count)
{
    g3n_request_options ro = {G3N_ROLE_VISION_ENCODER, 0, NULL};
    g3n_reply r;
    g3n_error err = {{0}};
    if (g3n_client_call(f->client, &ro, env, NULL, NULL, &r, &err) != G3N_OK)
        fail_msg("%s", err.message);
    assert_int_equal(r.envelope->body_case, G3N__ENVELOPE__BODY_ENCODE_IMAGE_REPLY);
    g3n_tensor tokens;
    int64_t shape[2] = {-1, -1};
    assert_int_equal(g3n_wire_tensor_view(r.envelope->encode_image_reply->tokens, "tokens", G3N_DTYPE_F32, 2, shape, 0,
                                          &tokens, &err),
                     G3N_OK);
    *count = tokens.shape[0] * tokens.shape[1];
    assert_true(*count > 0);
    float *copy = malloc(sizeof(float) * (size_t)*count);
    memcpy(copy, tokens.data, sizeof(float) * (size_t)*count);
    g3n_reply_clear(&r);
    return copy;
}

/* EncodeImageRequest.rgb (a decoded video frame, preprocessed in the vision
 * role): the same picture sent as its file's bytes and as its decoded RGB gives
 * the same tower tokens, bit for bit; malformed frames are refused with
 * ERROR_BAD_REQUEST naming the field. */
static void test_vision_rgb(void **state)
{
    fixture *f = *state;
    char path[1024];
    g3n_error err = {{0}};
    g3n_test_fixture("image-preprocess/image.jpg", path, sizeof(path));
    FILE *file = fopen(path, "rb");
    assert_non_null(file);
    uint8_t *bytes = malloc(1 << 22);
    size_t size = fread(bytes, 1, 1 << 22, file);
    fclose(file);
    assert_true(size > 0 && size < (1 << 22));
    uint8_t *rgb = NULL;
    int width = 0, height = 0;
    g3n_image_options options = g3n_image_default_options();
    if (g3n_image_decode_file(path, &options, &rgb, &width, &height, &err) != G3N_OK)
        fail_msg("%s", err.message);

    G3n__Envelope env;
    G3n__EncodeImageRequest q;
    g3n__envelope__init(&env);
    g3n__encode_image_request__init(&q);
    env.body_case = G3N__ENVELOPE__BODY_ENCODE_IMAGE;
    env.encode_image = &q;
    q.image.data = bytes;
    q.image.len = size;
    int64_t from_file_count = 0, from_rgb_count = 0;
    float *from_file = encode_image_tokens(f, &env, &from_file_count);
    q.image.data = NULL;
    q.image.len = 0;
    g3n_wire_tensor frame;
    int64_t shape[3] = {height, width, 3};
    g3n_wire_tensor_borrow(&frame, G3N_DTYPE_U8, 3, shape, rgb);
    q.rgb = &frame.message;
    float *from_rgb = encode_image_tokens(f, &env, &from_rgb_count);
    assert_int_equal(from_rgb_count, from_file_count);
    assert_memory_equal(from_rgb, from_file, sizeof(float) * (size_t)from_file_count);

    /* both the file and the frame */
    q.image.data = bytes;
    q.image.len = size;
    expect_error(f, G3N_ROLE_VISION_ENCODER, &env, G3N__ERROR_CODE__ERROR_BAD_REQUEST, "give one of");
    q.image.data = NULL;
    q.image.len = 0;
    /* the frame as f32 */
    g3n_wire_tensor_borrow(&frame, G3N_DTYPE_F32, 3, (int64_t[]){1, 1, 3}, (float[]){0.5f, 0.5f, 0.5f});
    expect_error(f, G3N_ROLE_VISION_ENCODER, &env, G3N__ERROR_CODE__ERROR_BAD_REQUEST, "encode_image.rgb");
    /* two dimensions: [H, W * 3] */
    g3n_wire_tensor_borrow(&frame, G3N_DTYPE_U8, 2, (int64_t[]){height, (int64_t)width * 3}, rgb);
    expect_error(f, G3N_ROLE_VISION_ENCODER, &env, G3N__ERROR_CODE__ERROR_BAD_REQUEST, "encode_image.rgb");
    /* zero width */
    g3n_wire_tensor_borrow(&frame, G3N_DTYPE_U8, 3, (int64_t[]){height, 0, 3}, NULL);
    expect_error(f, G3N_ROLE_VISION_ENCODER, &env, G3N__ERROR_CODE__ERROR_BAD_REQUEST, "encode_image.rgb");
    /* four channels */
    g3n_wire_tensor_borrow(&frame, G3N_DTYPE_U8, 3, (int64_t[]){1, 2, 4}, (uint8_t[8]){0});
    expect_error(f, G3N_ROLE_VISION_ENCODER, &env, G3N__ERROR_CODE__ERROR_BAD_REQUEST, "encode_image.rgb");

    free(from_rgb);
    free(from_file);
    free(rgb);
    free(bytes);
}

/* ---- rogue workers: well-formed replies with bad numbers ---- */

typedef struct rogue {
    int mode; /* 0: NaN values, 1: +inf, 2: a wrong rank */
} rogue;

static int rogue_handle(void *user, g3n_worker_call *call, const G3n__Envelope *request, g3n_error *err)
{
    rogue *r = user;
    float values[4 * 8];
    for (int i = 0; i < 4 * 8; i++)
        values[i] = 0.5f;
    values[5] = r->mode == 1 ? INFINITY : NAN;
    G3n__Envelope env;
    g3n__envelope__init(&env);
    g3n_wire_tensor a, b;
    int64_t shape[3] = {4, 8, 1};
    g3n_wire_tensor_borrow(&a, G3N_DTYPE_F32, r->mode == 2 ? 1 : 2, r->mode == 2 ? (int64_t[]){32} : shape, values);
    G3n__EncodeImageReply image;
    G3n__EmbedReply embed;
    if (request->body_case == G3N__ENVELOPE__BODY_ENCODE_IMAGE) {
        g3n__encode_image_reply__init(&image);
        image.tokens = &a.message;
        env.body_case = G3N__ENVELOPE__BODY_ENCODE_IMAGE_REPLY;
        env.encode_image_reply = &image;
    } else {
        int64_t rows = request->embed->ids->shape[0];
        shape[0] = rows;
        shape[1] = 4;
        shape[2] = 2;
        g3n_wire_tensor_borrow(&a, G3N_DTYPE_F32, 2, (int64_t[]){rows, 8}, values);
        g3n_wire_tensor_borrow(&b, G3N_DTYPE_F32, 3, shape, values);
        g3n__embed_reply__init(&embed);
        embed.inputs_embeds = &a.message;
        embed.per_layer_inputs = &b.message;
        env.body_case = G3N__ENVELOPE__BODY_EMBED_REPLY;
        env.embed_reply = &embed;
    }
    return g3n_worker_call_send(call, &env, 0, err);
}

/* NaN / inf / wrong-rank tensors from a worker are refused, with the worker's
 * role named, and counted as the server's fault (not the client's). */
static void test_rogue_workers(void **state)
{
    (void)state;
    g3n_transport_options transport = g3n_transport_default_options();
    transport.no_worker_wait_ms = 500;
    const char *endpoint = "inproc://g3n-test-rogue";
    g3n_broker *broker;
    g3n_error err = {{0}};
    assert_int_equal(g3n_broker_start(&broker, &endpoint, 1, &transport, &err), G3N_OK);
    rogue r = {0};
    g3n_worker *workers[2];
    const int roles[2] = {G3N_ROLE_VISION_ENCODER, G3N_ROLE_EMBEDDER};
    for (int i = 0; i < 2; i++) {
        g3n_worker_options wo;
        memset(&wo, 0, sizeof(wo));
        wo.role = roles[i];
        wo.endpoint = endpoint;
        wo.model_id = "rogue";
        wo.capacity = 1;
        wo.zmq_context = g3n_broker_context(broker);
        wo.transport = transport;
        assert_int_equal(g3n_worker_start(&workers[i], &wo, rogue_handle, &r, &err), G3N_OK);
        assert_int_equal(g3n_broker_wait_workers(broker, roles[i], 1, 5000, &err), G3N_OK);
    }
    g3n_client *client;
    assert_int_equal(g3n_client_open(&client, broker, &err), G3N_OK);
    const uint8_t bytes[3] = {1, 2, 3};
    g3n_media_file image = {G3N_MEDIA_IMAGE, bytes, sizeof(bytes), "photo.jpg", NULL, 0};
    const char *expected[3] = {"NaN", "+inf", "encode_image_reply.tokens"};
    for (int mode = 0; mode < 3; mode++) {
        r.mode = mode;
        g3n_pipeline_media media;
        assert_int_equal(g3n_pipeline_encode_media(client, &image, 1, &media, NULL, NULL, &err), G3N_ERR);
        if (!strstr(err.message, "bad reply from the vision-encoder worker") || !strstr(err.message, expected[mode]) ||
            !strstr(err.message, "photo.jpg"))
            fail_msg("mode %d: %s", mode, err.message);
        assert_int_equal(g3n_pipeline_error_code(err.message), G3N__ERROR_CODE__ERROR_INTERNAL);
    }
    /* the embedder's NaN embeddings stop the generation before any decoder is asked */
    r.mode = 0;
    g3n_model_config config;
    char path[1024];
    assert_int_equal(g3n_config_load(&config, g3n_test_fixture("text-tiny/config.json", path, sizeof(path)), &err),
                     G3N_OK);
    g3n_pipeline_generate_params params = g3n_pipeline_default_params(&config);
    params.max_new_tokens = 2;
    const int32_t ids[3] = {2, 5, 7};
    g3n_pipeline_stats stats;
    assert_int_equal(g3n_pipeline_generate(client, ids, 3, NULL, &params, &stats, &err), G3N_ERR);
    if (!strstr(err.message, "bad reply from the embedder worker") || !strstr(err.message, "NaN"))
        fail_msg("%s", err.message);
    g3n_config_free(&config);
    g3n_client_close(client);
    for (int i = 0; i < 2; i++)
        g3n_worker_stop(workers[i]);
    g3n_broker_stop(broker);
}

/* Who is at fault: the client's media is BAD_REQUEST on the ZeroMQ port (it
 * was ERROR_INTERNAL), a worker's bad reply INTERNAL. */
static void test_error_codes(void **state)
{
    (void)state;
    assert_int_equal(g3n_pipeline_error_code("encoding image a.png: ERROR_BAD_REQUEST: encode_image.image: not an image"),
                     G3N__ERROR_CODE__ERROR_BAD_REQUEST);
    assert_int_equal(g3n_pipeline_error_code("encoding audio clip: ERROR_BAD_REQUEST: the clip is empty (0 bytes)"),
                     G3N__ERROR_CODE__ERROR_BAD_REQUEST);
    assert_int_equal(g3n_pipeline_error_code("encoding image a.png: ERROR_INTERNAL: out of memory"),
                     G3N__ERROR_CODE__ERROR_INTERNAL);
    assert_int_equal(g3n_pipeline_error_code("bad reply from the embedder worker e: ERROR_BAD_REQUEST"),
                     G3N__ERROR_CODE__ERROR_INTERNAL);
    assert_int_equal(g3n_pipeline_error_code("no live worker: ERROR_NO_WORKER"), G3N__ERROR_CODE__ERROR_NO_WORKER);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_audio_empty_samples),
        cmocka_unit_test(test_vision_empty_image),
        cmocka_unit_test(test_vision_rgb),
        cmocka_unit_test(test_rogue_workers),
        cmocka_unit_test(test_error_codes),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
