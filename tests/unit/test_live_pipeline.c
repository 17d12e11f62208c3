/* The live session through the roles (orchestrator/live_pipeline.h) on the
 * demo model (scripts/demo-config.json: tiny widths, the real vocabulary and
 * tokenizer, vision, audio), synthetic weights seed 41, the roles as threads
 * over inproc:// (two decoders):
 *  - frames (rgb, preprocessed by the vision role) and audio in random small
 *    pieces (a stream on one audio worker), then a question: the decoder
 *    session holds exactly the ids of the chat template over the same
 *    content, and the question's logits equal the same prompt prefilled at
 *    once through g3n_pipeline_generate (the media encoded offline) within
 *    the text tolerances, with the same greedy answer; a second round (more
 *    audio, a second question) equals the whole two-turn conversation at once;
 *  - the decoder holding the session is killed: the next question is answered
 *    after a rebuild on the other decoder, with the same greedy tokens as an
 *    undisturbed run; with no decoder left, an error naming the session;
 *  - a small context: the oldest media are dropped, the rest prefilled again,
 *    and the session again holds the rendered conversation. */
#include <math.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "chat_template.h"
#include "live_pipeline.h"
#include "media_prompt.h"
#include "pipeline.h"
#include "roles.h"
#include "test_util.h"
#include "tokenizer.h"
#include "weights.h"

#define ENDPOINT "inproc://g3n-test-live-pipeline"
#define STEPS 5

typedef struct fixture {
    g3n_model_config config;
    g3n_weights *weights;
    g3n_tokenizer *tokenizer;
    g3n_broker *broker;
    g3n_local_roles local;
    g3n_role *decoder2;
    g3n_worker *decoder2_worker;
    g3n_client *client;
    g3n_chat_special_ids special;
} fixture;

static int setup(void **state)
{
    fixture *f = calloc(1, sizeof(*f));
    g3n_error err = {{0}};
    char path[1024];
    if (g3n_config_load(&f->config, "scripts/demo-config.json", &err) ||
        g3n_weights_open_synth(&f->weights, 41, G3N_DTYPE_BF16, &err) ||
        g3n_tokenizer_load(&f->tokenizer, g3n_test_fixture("tokenizer/tokenizer.json", path, sizeof path), &err)) {
        fprintf(stderr, "setup: %s\n", err.message);
        return -1;
    }
    g3n_chat_special_ids_from_config(&f->special, &f->config);
    g3n_transport_options transport = g3n_transport_default_options();
    transport.heartbeat_interval_ms = 50;
    transport.heartbeat_timeout_ms = 400;
    transport.no_worker_wait_ms = 500;
    const char *endpoint = ENDPOINT;
    g3n_role_options ro;
    memset(&ro, 0, sizeof(ro));
    ro.threads = 1;
    if (g3n_broker_start(&f->broker, &endpoint, 1, &transport, &err) != G3N_OK ||
        g3n_local_roles_start(&f->local, f->broker, ENDPOINT, f->weights, &f->config, &ro, 0xffffffffu, &transport,
                              &err) != G3N_OK ||
        g3n_role_open(&f->decoder2, G3N_ROLE_DECODER, f->weights, &f->config, &ro, &err) != G3N_OK) {
        fprintf(stderr, "setup: %s\n", err.message);
        return -1;
    }
    g3n_worker_options wo;
    memset(&wo, 0, sizeof(wo));
    wo.role = G3N_ROLE_DECODER;
    wo.endpoint = ENDPOINT;
    wo.name = "decoder-second";
    wo.model_id = g3n_weights_describe(f->weights);
    wo.capacity = 4;
    wo.zmq_context = g3n_broker_context(f->broker);
    wo.transport = transport;
    if (g3n_worker_start(&f->decoder2_worker, &wo, g3n_role_handle, f->decoder2, &err) != G3N_OK ||
        g3n_broker_wait_workers(f->broker, G3N_ROLE_DECODER, 2, 10000, &err) != G3N_OK ||
        g3n_broker_wait_workers(f->broker, G3N_ROLE_AUDIO_ENCODER, 1, 10000, &err) != G3N_OK ||
        g3n_broker_wait_workers(f->broker, G3N_ROLE_VISION_ENCODER, 1, 10000, &err) != G3N_OK ||
        g3n_broker_wait_workers(f->broker, G3N_ROLE_EMBEDDER, 1, 10000, &err) != G3N_OK ||
        g3n_client_open(&f->client, f->broker, &err) != G3N_OK) {
        fprintf(stderr, "setup: %s\n", err.message);
        return -1;
    }
    *state = f;
    return 0;
}

static int teardown(void **state)
{
    fixture *f = *state;
    g3n_client_close(f->client);
    g3n_worker_stop(f->decoder2_worker);
    g3n_role_close(f->decoder2);
    g3n_local_roles_stop(&f->local);
    g3n_broker_stop(f->broker);
    g3n_tokenizer_free(f->tokenizer);
    g3n_weights_close(f->weights);
    g3n_config_free(&f->config);
    free(f);
    return 0;
}

static uint64_t rng_state = 12345;
static int64_t random_below(int64_t n)
{
    rng_state = rng_state * 6364136223846793005ULL + 1442695040888963407ULL;
    return (int64_t)((rng_state >> 33) % (uint64_t)n);
}

/* A frame: a colour gradient with a seed-dependent tint. */
static void make_frame(uint8_t *rgb, int w, int h, int seed)
{
    for (int y = 0; y < h; y++)
        for (int x = 0; x < w; x++) {
            rgb[(y * w + x) * 3 + 0] = (uint8_t)(x * 255 / (w - 1));
            rgb[(y * w + x) * 3 + 1] = (uint8_t)(y * 255 / (h - 1));
            rgb[(y * w + x) * 3 + 2] = (uint8_t)(seed * 97 % 256);
        }
}

/* Audio: a chirp plus noise. */
static void make_audio(float *out, int64_t n, int seed)
{
    g3n_test_random_floats(out, n, (uint64_t)seed);
    for (int64_t i = 0; i < n; i++) {
        double t = (double)i / 16000.0;
        out[i] = (float)(0.4 * sin(2.0 * M_PI * (200.0 + 300.0 * seed + 100.0 * t) * t) + 0.05 * out[i]);
    }
}

static void feed_audio(fixture *f, g3n_live_pipeline *live, const float *samples, int64_t n)
{
    g3n_error err = {{0}};
    for (int64_t at = 0; at < n;) {
        int64_t piece = 1 + random_below(4000);
        if (piece > n - at)
            piece = n - at;
        if (g3n_live_pipeline_add_audio(live, f->client, samples + at, piece, &err) != G3N_OK)
            fail_msg("add_audio: %s", err.message);
        at += piece;
    }
}

/* The reference: media encoded offline (frames as rgb, each audio segment as one clip). */
typedef struct batch_media {
    G3n__Envelope *requests[8];
    G3n__Envelope envelopes[8];
    G3n__EncodeImageRequest images[8];
    G3n__EncodeAudioRequest audios[8];
    g3n_wire_tensor tensors[8];
    g3n_chat_item_type types[8];
    int count;
} batch_media;

static void batch_add_frame(batch_media *b, const uint8_t *rgb, int w, int h)
{
    int i = b->count++;
    g3n__envelope__init(&b->envelopes[i]);
    g3n__encode_image_request__init(&b->images[i]);
    int64_t shape[3] = {h, w, 3};
    g3n_wire_tensor_borrow(&b->tensors[i], G3N_DTYPE_U8, 3, shape, rgb);
    b->images[i].rgb = &b->tensors[i].message;
    b->envelopes[i].body_case = G3N__ENVELOPE__BODY_ENCODE_IMAGE;
    b->envelopes[i].encode_image = &b->images[i];
    b->requests[i] = &b->envelopes[i];
    b->types[i] = G3N_CHAT_IMAGE;
}

static void batch_add_audio(batch_media *b, const float *samples, int64_t n)
{
    int i = b->count++;
    g3n__envelope__init(&b->envelopes[i]);
    g3n__encode_audio_request__init(&b->audios[i]);
    int64_t shape[1] = {n};
    g3n_wire_tensor_borrow(&b->tensors[i], G3N_DTYPE_F32, 1, shape, samples);
    b->audios[i].samples = &b->tensors[i].message;
    b->envelopes[i].body_case = G3N__ENVELOPE__BODY_ENCODE_AUDIO;
    b->envelopes[i].encode_audio = &b->audios[i];
    b->requests[i] = &b->envelopes[i];
    b->types[i] = G3N_CHAT_AUDIO;
}

typedef struct run {
    int32_t tokens[16];
    int count;
    float *first_logits; /* [vocab] of step 0 */
    int64_t vocab;
} run;

static int on_token(void *user, int64_t step, int32_t token, const float *logits, int64_t vocab)
{
    run *r = user;
    if (r->count < 16)
        r->tokens[r->count++] = token;
    if (step == 0 && logits) {
        r->first_logits = malloc(sizeof(float) * (size_t)vocab);
        memcpy(r->first_logits, logits, sizeof(float) * (size_t)vocab);
        r->vocab = vocab;
    }
    return 0;
}

static g3n_pipeline_generate_params greedy(fixture *f, run *r)
{
    g3n_pipeline_generate_params p = g3n_pipeline_default_params(&f->config);
    p.max_new_tokens = STEPS;
    p.num_eos_ids = 0; /* random weights: run the full length */
    p.want_logits = 1;
    p.on_token = on_token;
    p.user = r;
    return p;
}

/* The whole prompt at once through g3n_pipeline_generate (a session of its own). */
static void one_prompt(fixture *f, const int32_t *ids, int64_t count, const batch_media *b, run *out)
{
    g3n_error err = {{0}};
    g3n_pipeline_media media;
    if (g3n_pipeline_encode_requests(f->client, (G3n__Envelope *const *)b->requests, NULL, b->count, &media, NULL,
                                     NULL, &err) != G3N_OK)
        fail_msg("encode: %s", err.message);
    memset(out, 0, sizeof(*out));
    g3n_pipeline_generate_params p = greedy(f, out);
    g3n_pipeline_stats stats;
    if (g3n_pipeline_generate(f->client, ids, count, &media, &p, &stats, &err) != G3N_OK)
        fail_msg("generate: %s", err.message);
    g3n_pipeline_media_free(&media);
}

static double rel_l2(const float *a, const float *b, int64_t n, double *max_abs)
{
    double num = 0.0, den = 0.0;
    *max_abs = 0.0;
    for (int64_t i = 0; i < n; i++) {
        double d = (double)a[i] - b[i];
        num += d * d;
        den += (double)b[i] * b[i];
        if (fabs(d) > *max_abs)
            *max_abs = fabs(d);
    }
    return sqrt(num / (den > 0 ? den : 1e-30));
}

static void expect_same(const run *live, const run *batch, const char *what)
{
    double max_abs;
    assert_non_null(live->first_logits);
    assert_non_null(batch->first_logits);
    assert_int_equal(live->vocab, batch->vocab);
    double rel = rel_l2(live->first_logits, batch->first_logits, live->vocab, &max_abs);
    printf("%s: logits live vs one prompt rel_l2=%.3g max_abs=%.3g; tokens", what, rel, max_abs);
    for (int k = 0; k < live->count; k++)
        printf(" %d", live->tokens[k]);
    printf("\n");
    assert_true(rel <= 3e-3);
    assert_true(max_abs <= 3e-2);
    assert_int_equal(live->count, STEPS);
    assert_int_equal(batch->count, STEPS);
    assert_memory_equal(live->tokens, batch->tokens, sizeof(int32_t) * STEPS);
}

static void run_free(run *r)
{
    free(r->first_logits);
    r->first_logits = NULL;
}

/* Appends a rendered user turn (with_bos for the first) to ids. */
static int64_t render_turn(fixture *f, const g3n_chat_item_type *types, int count, const char *question, int first,
                           int32_t *ids, int64_t at)
{
    g3n_error err = {{0}};
    g3n_chat_prompt prompt;
    assert_int_equal(
        g3n_media_prompt_render(f->tokenizer, &f->special, NULL, types, count, question, first, 1, &prompt, &err),
        G3N_OK);
    memcpy(ids + at, prompt.ids.ids, sizeof(int32_t) * (size_t)prompt.ids.count);
    at += prompt.ids.count;
    g3n_chat_prompt_free(&prompt);
    return at;
}

static void test_pieces_equal_one_prompt(void **state)
{
    fixture *f = *state;
    g3n_error err = {{0}};
    enum { W = 40, H = 30 };
    static uint8_t frame_a[W * H * 3], frame_b[W * H * 3];
    make_frame(frame_a, W, H, 1);
    make_frame(frame_b, W, H, 2);
    const int64_t n1 = 21000, n2 = 13700; /* 1.31 s and 0.86 s */
    float *audio1 = malloc(sizeof(float) * n1), *audio2 = malloc(sizeof(float) * n2);
    make_audio(audio1, n1, 1);
    make_audio(audio2, n2, 2);
    const char *question = "What did you see and hear?";

    g3n_live_pipeline_params params = g3n_live_pipeline_default_params(&f->config);
    params.max_positions = 4096;
    params.min_prefill = 1;           /* append as soon as anything is final: the most pieces */
    params.audio_batch_samples = 777; /* stream pieces across frame and token boundaries */
    g3n_live_pipeline *live = NULL;
    assert_int_equal(g3n_live_pipeline_create(&live, &f->config, f->tokenizer, &params, &err), G3N_OK);
    assert_int_equal(g3n_live_pipeline_add_frame_rgb(live, f->client, 0.0, frame_a, W, H, W * 3, &err), G3N_OK);
    const int64_t after_frame = g3n_live_pipeline_get_stats(live).positions;
    assert_true(after_frame > f->config.vision_soft_tokens_per_image); /* appended on arrival */
    feed_audio(f, live, audio1, n1);
    /* a frame with padded rows (stride > 3 * width): sent packed */
    static uint8_t strided[H * (W * 3 + 7)];
    for (int y = 0; y < H; y++)
        memcpy(strided + y * (W * 3 + 7), frame_b + y * W * 3, W * 3);
    assert_int_equal(g3n_live_pipeline_add_frame_rgb(live, f->client, 1.31, strided, W, H, W * 3 + 7, &err), G3N_OK);
    /* the first audio segment (closed by the frame) and the frame are in the session */
    assert_true(g3n_live_pipeline_get_stats(live).positions >
                after_frame + f->config.audio_soft_tokens_per_image + f->config.vision_soft_tokens_per_image);
    feed_audio(f, live, audio2, n2);
    run live1;
    memset(&live1, 0, sizeof(live1));
    g3n_pipeline_generate_params gp = greedy(f, &live1);
    g3n_pipeline_stats answer;
    if (g3n_live_pipeline_ask(live, f->client, question, &gp, NULL, NULL, &answer, &err) != G3N_OK)
        fail_msg("ask: %s", err.message);
    g3n_live_pipeline_stats stats = g3n_live_pipeline_get_stats(live);

    /* the same content at once */
    batch_media b;
    memset(&b, 0, sizeof(b));
    batch_add_frame(&b, frame_a, W, H);
    batch_add_audio(&b, audio1, n1);
    batch_add_frame(&b, frame_b, W, H);
    batch_add_audio(&b, audio2, n2);
    static int32_t ids[8192];
    int64_t count = render_turn(f, b.types, 4, question, 1, ids, 0);
    run batch1;
    one_prompt(f, ids, count, &b, &batch1);
    expect_same(&live1, &batch1, "question 1");

    /* the session: the prompt, the answer and "<end_of_turn>\n" */
    int64_t live_count;
    const int32_t *live_ids = g3n_live_pipeline_ids(live, &live_count);
    assert_int_equal(live_count, count + STEPS + 2);
    assert_memory_equal(live_ids, ids, sizeof(int32_t) * (size_t)count);
    assert_memory_equal(live_ids + count, live1.tokens, sizeof(int32_t) * STEPS);
    assert_int_equal(stats.frames, 2);
    assert_int_equal(stats.audio_segments, 2);
    assert_int_equal(stats.questions, 1);
    assert_int_equal(stats.rebuilds, 0);
    assert_int_equal(stats.positions, live_count);
    /* the question appended the second audio segment (a medium goes to the decoder as a whole) and the
     * question's turn text, nothing before */
    printf("question 1 appended %lld positions (audio placeholders %lld)\n", (long long)stats.question_positions,
           (long long)f->config.audio_soft_tokens_per_image);
    assert_true(stats.question_positions < f->config.audio_soft_tokens_per_image + 40);

    /* a second round on top: audio, then another question == the whole conversation at once */
    memcpy(ids + count, live_ids + count, sizeof(int32_t) * (size_t)(live_count - count));
    count = live_count;
    feed_audio(f, live, audio2, n2);
    run live2;
    memset(&live2, 0, sizeof(live2));
    gp = greedy(f, &live2);
    if (g3n_live_pipeline_ask(live, f->client, "And now?", &gp, NULL, NULL, &answer, &err) != G3N_OK)
        fail_msg("ask: %s", err.message);
    const g3n_chat_item_type audio_only[1] = {G3N_CHAT_AUDIO};
    count = render_turn(f, audio_only, 1, "And now?", 0, ids, count);
    batch_add_audio(&b, audio2, n2);
    run batch2;
    one_prompt(f, ids, count, &b, &batch2);
    expect_same(&live2, &batch2, "question 2");
    stats = g3n_live_pipeline_get_stats(live);
    assert_int_equal(stats.questions, 2);
    assert_int_equal(stats.audio_segments, 3);
    live_ids = g3n_live_pipeline_ids(live, &live_count);
    assert_int_equal(live_count, count + STEPS + 2);
    assert_memory_equal(live_ids, ids, sizeof(int32_t) * (size_t)count);

    /* bad input: clear errors, the session goes on */
    assert_int_equal(g3n_live_pipeline_add_image(live, f->client, 2.0, "not an image", 12, &err), G3N_ERR);
    assert_non_null(strstr(err.message, g3n_live_pipeline_session_id(live)));
    assert_int_equal(g3n_live_pipeline_ask(live, f->client, "", &gp, NULL, NULL, &answer, &err), G3N_ERR);
    assert_int_equal(g3n_live_pipeline_get_stats(live).positions, live_count);

    run_free(&live1);
    run_free(&batch1);
    run_free(&live2);
    run_free(&batch2);
    free(audio1);
    free(audio2);
    g3n_live_pipeline_free(live, f->client);
}

/* Feeds a frame and an audio clip, then asks. */
static void feed_and_ask(fixture *f, g3n_live_pipeline *live, const uint8_t *frame, const float *audio, int64_t n,
                         const char *question, run *out)
{
    g3n_error err = {{0}};
    memset(out, 0, sizeof(*out));
    if (g3n_live_pipeline_add_frame_rgb(live, f->client, 0.0, frame, 40, 30, 120, &err) != G3N_OK)
        fail_msg("frame: %s", err.message);
    feed_audio(f, live, audio, n);
    g3n_pipeline_generate_params gp = greedy(f, out);
    g3n_pipeline_stats answer;
    if (g3n_live_pipeline_ask(live, f->client, question, &gp, NULL, NULL, &answer, &err) != G3N_OK)
        fail_msg("ask: %s", err.message);
}

/* A compaction keeps several media and prefills them again in appends of at
 * most max_append_media (the embedder takes 64 media per request): one medium
 * per append gives the same session and answer as the default. */
static void test_compaction_in_small_appends(void **state)
{
    fixture *f = *state;
    g3n_error err = {{0}};
    const int64_t n = 2000;
    float *audio = malloc(sizeof(float) * n);
    run answers[2];
    int64_t counts[2];
    int32_t *ids[2];
    for (int pass = 0; pass < 2; pass++) {
        g3n_live_pipeline_params params = g3n_live_pipeline_default_params(&f->config);
        params.max_positions = 2000;
        params.reserve_positions = 100;
        params.max_append_media = pass == 0 ? 1 : 32;
        g3n_live_pipeline *live = NULL;
        assert_int_equal(g3n_live_pipeline_create(&live, &f->config, f->tokenizer, &params, &err), G3N_OK);
        for (int k = 0; k < 11; k++) {
            make_audio(audio, n, k + 5);
            assert_int_equal(g3n_live_pipeline_add_audio(live, f->client, audio, n, &err), G3N_OK);
            assert_int_equal(g3n_live_pipeline_end_audio(live, f->client, &err), G3N_OK);
        }
        memset(&answers[pass], 0, sizeof(run));
        g3n_pipeline_generate_params gp = greedy(f, &answers[pass]);
        if (g3n_live_pipeline_ask(live, f->client, "What was said?", &gp, NULL, NULL, NULL, &err) != G3N_OK)
            fail_msg("ask: %s", err.message);
        g3n_live_pipeline_stats stats = g3n_live_pipeline_get_stats(live);
        printf("max_append_media %d: %d compaction(s), %d media appended again, %d appends\n",
               params.max_append_media, stats.compactions, stats.reappended_media, stats.appends);
        assert_true(stats.compactions >= 1);
        assert_true(stats.reappended_media >= 2);
        if (pass == 0) /* each segment once, each medium kept by a compaction once more, the question */
            assert_true(stats.appends >= stats.audio_segments + stats.reappended_media);
        const int32_t *held = g3n_live_pipeline_ids(live, &counts[pass]);
        ids[pass] = malloc(sizeof(int32_t) * (size_t)counts[pass]);
        memcpy(ids[pass], held, sizeof(int32_t) * (size_t)counts[pass]);
        g3n_live_pipeline_free(live, f->client);
    }
    assert_int_equal(counts[0], counts[1]);
    assert_memory_equal(ids[0], ids[1], sizeof(int32_t) * (size_t)counts[0]);
    expect_same(&answers[0], &answers[1], "one medium per append vs the default");
    for (int pass = 0; pass < 2; pass++) {
        free(ids[pass]);
        run_free(&answers[pass]);
    }
    free(audio);
}

/* Runs last: it kills the fixture's decoders. */
static void test_decoder_lost(void **state)
{
    fixture *f = *state;
    g3n_error err = {{0}};
    static uint8_t frame[40 * 30 * 3];
    make_frame(frame, 40, 30, 3);
    const int64_t n = 9000;
    float *audio = malloc(sizeof(float) * n);
    make_audio(audio, n, 4);
    g3n_live_pipeline_params params = g3n_live_pipeline_default_params(&f->config);
    params.max_positions = 4096;

    /* undisturbed: two rounds */
    g3n_live_pipeline *calm = NULL;
    assert_int_equal(g3n_live_pipeline_create(&calm, &f->config, f->tokenizer, &params, &err), G3N_OK);
    run calm1, calm2;
    feed_and_ask(f, calm, frame, audio, n, "What is it?", &calm1);
    feed_and_ask(f, calm, frame, audio, n, "And then?", &calm2);
    g3n_live_pipeline_free(calm, f->client);

    /* the same, the decoder holding the session killed between the rounds */
    g3n_live_pipeline *live = NULL;
    assert_int_equal(g3n_live_pipeline_create(&live, &f->config, f->tokenizer, &params, &err), G3N_OK);
    run live1, live2;
    feed_and_ask(f, live, frame, audio, n, "What is it?", &live1);
    assert_memory_equal(live1.tokens, calm1.tokens, sizeof(int32_t) * STEPS);
    g3n_live_pipeline_stats stats = g3n_live_pipeline_get_stats(live);
    const int first_is_local = strcmp(stats.decoder, "decoder-second") != 0;
    printf("session %s on %s: killing it\n", g3n_live_pipeline_session_id(live), stats.decoder);
    g3n_worker_kill(first_is_local ? f->local.workers[G3N_ROLE_DECODER] : f->decoder2_worker);
    feed_and_ask(f, live, frame, audio, n, "And then?", &live2);
    stats = g3n_live_pipeline_get_stats(live);
    printf("rebuilt on %s (%d rebuild(s))\n", stats.decoder, stats.rebuilds);
    assert_true(stats.rebuilds >= 1);
    assert_true(strcmp(stats.decoder, first_is_local ? "decoder-second" : stats.decoder) == 0);
    assert_memory_equal(live2.tokens, calm2.tokens, sizeof(int32_t) * STEPS);
    /* ids: the same conversation as the undisturbed one held */
    int64_t count;
    g3n_live_pipeline_ids(live, &count);
    assert_int_equal(count, stats.positions);

    /* no decoder left: an error naming the session */
    g3n_worker_kill(first_is_local ? f->decoder2_worker : f->local.workers[G3N_ROLE_DECODER]);
    run lost;
    memset(&lost, 0, sizeof(lost));
    g3n_pipeline_generate_params gp = greedy(f, &lost);
    g3n_pipeline_stats answer;
    assert_int_equal(g3n_live_pipeline_ask(live, f->client, "Anyone there?", &gp, NULL, NULL, &answer, &err), G3N_ERR);
    printf("no decoder: %s\n", err.message);
    assert_non_null(strstr(err.message, g3n_live_pipeline_session_id(live)));
    g3n_live_pipeline_free(live, f->client);
    run_free(&calm1);
    run_free(&calm2);
    run_free(&live1);
    run_free(&live2);
    run_free(&lost);
    free(audio);
}

/* A context of 1000 positions (reserve 100): audio segments of ~196
 * positions each; the oldest are dropped and the rest prefilled again. */
static void test_context_policy(void **state)
{
    fixture *f = *state;
    g3n_error err = {{0}};
    g3n_live_pipeline_params params = g3n_live_pipeline_default_params(&f->config);
    params.max_positions = 1000;
    params.reserve_positions = 100;
    g3n_live_pipeline *live = NULL;
    assert_int_equal(g3n_live_pipeline_create(&live, &f->config, f->tokenizer, &params, &err), G3N_OK);
    const int64_t n = 9000;
    float *audio = malloc(sizeof(float) * n);
    for (int k = 0; k < 8; k++) {
        make_audio(audio, n, k + 3);
        feed_audio(f, live, audio, n);
        assert_int_equal(g3n_live_pipeline_end_audio(live, f->client, &err), G3N_OK);
        assert_true(g3n_live_pipeline_get_stats(live).positions <= params.max_positions - params.reserve_positions);
    }
    g3n_live_pipeline_stats stats = g3n_live_pipeline_get_stats(live);
    printf("context policy: %d segments, %d dropped, %d re-prefills (%d media again), %lld positions, %lld "
           "prefilled in all, %d appends\n",
           stats.audio_segments, stats.dropped_items, stats.compactions, stats.reappended_media,
           (long long)stats.positions, (long long)stats.prefilled_tokens, stats.appends);
    assert_int_equal(stats.audio_segments, 8);
    assert_true(stats.dropped_items >= 4);
    assert_true(stats.compactions >= 1);
    assert_true(stats.prefilled_tokens > stats.positions);
    run r;
    memset(&r, 0, sizeof(r));
    g3n_pipeline_generate_params gp = greedy(f, &r);
    g3n_pipeline_stats answer;
    if (g3n_live_pipeline_ask(live, f->client, "What was said?", &gp, NULL, NULL, &answer, &err) != G3N_OK)
        fail_msg("ask: %s", err.message);
    /* the session holds the rendering of what is kept */
    int64_t count;
    const int32_t *ids = g3n_live_pipeline_ids(live, &count);
    int kept = 0;
    for (int64_t p = 1; p < count; p++)
        kept += ids[p] == f->special.boa_token_id;
    g3n_chat_item_type types[16];
    for (int i = 0; i < kept; i++)
        types[i] = G3N_CHAT_AUDIO;
    static int32_t expected[4096];
    int64_t expected_count = render_turn(f, types, kept, "What was said?", 1, expected, 0);
    assert_int_equal(count, expected_count + STEPS + 2);
    assert_memory_equal(expected, ids, sizeof(int32_t) * (size_t)expected_count);
    assert_int_equal(kept, stats.audio_segments - stats.dropped_items);
    /* the default reserve scales to the context */
    const int64_t contexts[3] = {1024, 600, 4096};
    const int64_t reserves[3] = {256, 150, 512};
    for (int i = 0; i < 3; i++) {
        g3n_live_pipeline_params defaults = g3n_live_pipeline_default_params(&f->config);
        defaults.max_positions = contexts[i];
        g3n_live_pipeline *scaled = NULL;
        if (g3n_live_pipeline_create(&scaled, &f->config, f->tokenizer, &defaults, &err) != G3N_OK)
            fail_msg("context %lld: %s", (long long)contexts[i], err.message);
        assert_int_equal(g3n_live_pipeline_add_audio(scaled, f->client, audio, n, &err), G3N_OK);
        assert_int_equal(g3n_live_pipeline_end_audio(scaled, f->client, &err), G3N_OK);
        assert_true(g3n_live_pipeline_get_stats(scaled).positions <= contexts[i] - reserves[i]);
        g3n_live_pipeline_free(scaled, f->client);
    }
    /* a context too small for one segment is an error, not a crash */
    g3n_live_pipeline *small = NULL;
    params.max_positions = 250;
    params.reserve_positions = 100;
    if (g3n_live_pipeline_create(&small, &f->config, f->tokenizer, &params, &err) != G3N_OK)
        fail_msg("create: %s", err.message);
    assert_int_equal(g3n_live_pipeline_add_audio(small, f->client, audio, n, &err), G3N_ERR);
    assert_non_null(strstr(err.message, "cannot hold"));
    g3n_live_pipeline_free(small, f->client);
    run_free(&r);
    free(audio);
    g3n_live_pipeline_free(live, f->client);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_pieces_equal_one_prompt),
        cmocka_unit_test(test_context_policy),
        cmocka_unit_test(test_compaction_in_small_appends),
        cmocka_unit_test(test_decoder_lost),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
