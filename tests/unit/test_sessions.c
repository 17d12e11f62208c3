/* Decoder sessions that outlive a request (issue 16, item 1) and the
 * orchestrator's prefix cache (item 3), with the roles as threads over
 * inproc:// on text-tiny's synthetic weights:
 *   - the decoder's wire checks: an append to a session it does not hold is
 *     ERROR_NOT_FOUND, an append that expects another position count is
 *     ERROR_BAD_REQUEST, a session over the memory bound ERROR_TOO_LARGE, a
 *     session idle past the timeout is gone;
 *   - a session continued with a record prefills only the suffix and gives
 *     the greedy tokens of the whole prompt prefilled at once;
 *   - its decoder killed, the next continuation is rebuilt on another decoder
 *     with the same tokens; with no decoder left the error names the session;
 *   - the prefix cache's matching (ids and media keys, longest prefix) and
 *     bounds (least recently used evicted first);
 *   - an audio stream pushed in pieces to an audio-encoder worker (its state
 *     kept there) gives the offline encoding's tokens;
 *   - a conversation with an image in its first turn: the next turn continues
 *     the kept session (the image neither encoded nor prefilled again) with
 *     the tokens of the same conversation asked without reuse. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cmocka.h>

#include "check.h"
#include "conversation.h"
#include "json_util.h"
#include "pipeline.h"
#include "prefix_cache.h"
#include "roles.h"
#include "session_record.h"
#include "test_util.h"
#include "transport.h"

#define STEPS 8

typedef struct fixture {
    g3n_check_case c;
    g3n_weights *weights;
    g3n_broker *broker;
    g3n_role *embedder, *decoder[2];
    g3n_worker *embedder_worker, *decoder_worker[2];
    g3n_client *client;
    const int32_t *ids;
    int64_t id_count;
} fixture;

static void start_worker(fixture *f, int role, g3n_role **out_role, g3n_worker **out_worker,
                         const g3n_role_options *ro, const char *name)
{
    g3n_error err = {{0}};
    if (g3n_role_open(out_role, role, f->weights, &f->c.config, ro, &err) != G3N_OK)
        fail_msg("%s", err.message);
    g3n_worker_options wo;
    memset(&wo, 0, sizeof(wo));
    wo.role = role;
    wo.endpoint = "inproc://g3n-test-sessions";
    wo.name = name;
    wo.model_id = g3n_weights_describe(f->weights);
    wo.capacity = 2;
    wo.zmq_context = g3n_broker_context(f->broker);
    wo.transport = g3n_transport_default_options();
    wo.transport.heartbeat_interval_ms = 50;
    wo.transport.heartbeat_timeout_ms = 400;
    if (g3n_worker_start(out_worker, &wo, g3n_role_handle, *out_role, &err) != G3N_OK)
        fail_msg("%s", err.message);
}

static void fixture_open(fixture *f, const g3n_role_options *decoder_options)
{
    memset(f, 0, sizeof(*f));
    uint64_t seed;
    g3n_test_case_open(&f->c, "text-tiny", &seed);
    g3n_error err = {{0}};
    g3n_tensor input;
    assert_int_equal(g3n_check_golden(&f->c, "input_ids", &input, &err), G3N_OK);
    assert_true(input.dtype == G3N_DTYPE_I32 && input.shape[0] >= 30);
    f->ids = input.data;
    f->id_count = input.shape[0];
    assert_int_equal(g3n_weights_open_synth(&f->weights, seed, G3N_DTYPE_BF16, &err), G3N_OK);
    g3n_transport_options transport = g3n_transport_default_options();
    transport.heartbeat_interval_ms = 50;
    transport.heartbeat_timeout_ms = 400;
    transport.no_worker_wait_ms = 500;
    const char *endpoint = "inproc://g3n-test-sessions";
    assert_int_equal(g3n_broker_start(&f->broker, &endpoint, 1, &transport, &err), G3N_OK);
    g3n_role_options ro;
    memset(&ro, 0, sizeof(ro));
    ro.threads = 1;
    start_worker(f, G3N_ROLE_EMBEDDER, &f->embedder, &f->embedder_worker, &ro, "embedder-1");
    start_worker(f, G3N_ROLE_DECODER, &f->decoder[0], &f->decoder_worker[0], decoder_options, "decoder-1");
    assert_int_equal(g3n_broker_wait_workers(f->broker, G3N_ROLE_EMBEDDER, 1, 10000, &err), G3N_OK);
    assert_int_equal(g3n_broker_wait_workers(f->broker, G3N_ROLE_DECODER, 1, 10000, &err), G3N_OK);
    assert_int_equal(g3n_client_open(&f->client, f->broker, &err), G3N_OK);
}

static void fixture_close(fixture *f)
{
    g3n_client_close(f->client);
    for (int i = 0; i < 2; i++) {
        g3n_worker_stop(f->decoder_worker[i]);
        g3n_role_close(f->decoder[i]);
    }
    g3n_worker_stop(f->embedder_worker);
    g3n_role_close(f->embedder);
    g3n_broker_stop(f->broker);
    g3n_weights_close(f->weights);
    g3n_check_case_close(&f->c);
}

typedef struct tokens {
    int32_t ids[STEPS];
    int64_t count;
} tokens;

static int keep_token(void *user, int64_t step, int32_t token, const float *logits, int64_t vocab)
{
    tokens *t = user;
    (void)logits;
    (void)vocab;
    if (step < STEPS)
        t->ids[step] = token;
    t->count = step + 1;
    return 0;
}

/* Greedy tokens of ids[0..count) (continuing record when not NULL). */
static int generate(fixture *f, const int32_t *ids, int64_t count, g3n_session_record *record, int64_t steps,
                    tokens *out, g3n_pipeline_stats *stats, g3n_error *err)
{
    memset(out, 0, sizeof(*out));
    g3n_pipeline_generate_params p = g3n_pipeline_default_params(&f->c.config);
    p.max_new_tokens = steps;
    p.num_eos_ids = 0;
    p.on_token = keep_token;
    p.user = out;
    p.record = record;
    p.session_positions = 128;
    return g3n_pipeline_generate(f->client, ids, count, NULL, &p, stats, err);
}

/* A raw PrefillRequest of `count` positions (zeros) to the decoder (append 1: append, 2: append and reset);
 * returns the reply's error code (0: ok). */
static int raw_prefill(fixture *f, const char *session, int append, int64_t expect, int64_t count, char *message,
                       size_t size)
{
    const g3n_text_config *t = &f->c.config.text;
    const int64_t D = t->hidden_size, LP = (int64_t)t->num_hidden_layers * t->hidden_size_per_layer_input;
    float *embeds = calloc((size_t)(count * D), sizeof(float));
    float *per_layer = calloc((size_t)(count * LP), sizeof(float));
    assert_non_null(embeds);
    assert_non_null(per_layer);
    g3n_wire_tensor te, tp;
    int64_t eshape[2] = {count, D}, pshape[3] = {count, t->num_hidden_layers, t->hidden_size_per_layer_input};
    g3n_wire_tensor_borrow(&te, G3N_DTYPE_F32, 2, eshape, embeds);
    g3n_wire_tensor_borrow(&tp, G3N_DTYPE_F32, 3, pshape, per_layer);
    G3n__Envelope env;
    G3n__PrefillRequest q;
    g3n__envelope__init(&env);
    g3n__prefill_request__init(&q);
    q.session_id = (char *)session;
    q.append = append != 0;
    q.reset = append == 2;
    q.expect_position = expect;
    q.inputs_embeds = &te.message;
    q.per_layer_inputs = &tp.message;
    q.max_positions = 64;
    env.body_case = G3N__ENVELOPE__BODY_PREFILL;
    env.prefill = &q;
    g3n_request_options ro = {G3N_ROLE_DECODER, 0, NULL};
    g3n_reply reply;
    memset(&reply, 0, sizeof(reply));
    g3n_error err = {{0}};
    int rc = g3n_client_call(f->client, &ro, &env, NULL, NULL, &reply, &err);
    int code = 0;
    if (rc != G3N_OK) {
        code = reply.envelope && reply.envelope->body_case == G3N__ENVELOPE__BODY_ERROR
                   ? (int)reply.envelope->error->code
                   : -1;
        snprintf(message, size, "%s", err.message);
    }
    g3n_reply_clear(&reply);
    free(embeds);
    free(per_layer);
    return code;
}

static void test_decoder_session_checks_and_bounds(void **state)
{
    (void)state;
    fixture f;
    g3n_role_options ro;
    memset(&ro, 0, sizeof(ro));
    ro.threads = 1;
    ro.session_idle_seconds = 0.3;
    fixture_open(&f, &ro);
    char message[1024];
    /* an append to a session the decoder does not hold: never a silent fresh start */
    assert_int_equal(raw_prefill(&f, "s-absent", 1, 5, 2, message, sizeof(message)),
                     G3N__ERROR_CODE__ERROR_NOT_FOUND);
    assert_non_null(strstr(message, "s-absent"));
    /* open with 3 positions, then an append expecting 4 */
    assert_int_equal(raw_prefill(&f, "s-open", 0, 0, 3, message, sizeof(message)), 0);
    assert_int_equal(raw_prefill(&f, "s-open", 1, 4, 1, message, sizeof(message)),
                     G3N__ERROR_CODE__ERROR_BAD_REQUEST);
    assert_non_null(strstr(message, "holds 3 positions, not 4"));
    assert_int_equal(raw_prefill(&f, "s-open", 1, 3, 2, message, sizeof(message)), 0);
    assert_int_equal(raw_prefill(&f, "s-open", 2, 5, 1, message, sizeof(message)),
                     G3N__ERROR_CODE__ERROR_BAD_REQUEST); /* 2: append and reset at once */
    assert_non_null(strstr(message, "exclude each other"));
    /* idle past the timeout: closed */
    usleep(500000);
    assert_int_equal(raw_prefill(&f, "s-open", 1, 5, 1, message, sizeof(message)),
                     G3N__ERROR_CODE__ERROR_NOT_FOUND);
    assert_non_null(strstr(message, "idle for over"));
    fixture_close(&f);

    /* the memory bound: a session that does not fit is refused, naming the limit */
    ro.session_idle_seconds = 0;
    ro.max_session_bytes = 1024;
    fixture_open(&f, &ro);
    assert_int_equal(raw_prefill(&f, "s-big", 0, 0, 2, message, sizeof(message)), G3N__ERROR_CODE__ERROR_TOO_LARGE);
    assert_non_null(strstr(message, "session memory limit"));
    fixture_close(&f);
}

static void test_continued_session_equals_whole_prompt_and_survives_its_decoder(void **state)
{
    (void)state;
    fixture f;
    g3n_role_options ro;
    memset(&ro, 0, sizeof(ro));
    ro.threads = 1;
    fixture_open(&f, &ro);
    g3n_error err = {{0}};
    g3n_pipeline_stats stats;
    tokens whole, part, continued;
    /* reference: 24 prompt ids at once */
    if (generate(&f, f.ids, 24, NULL, STEPS, &whole, &stats, &err) != G3N_OK)
        fail_msg("%s", err.message);
    /* the same as 10 ids kept in a session, then 14 more appended */
    g3n_session_record *rec = g3n_session_record_new();
    assert_non_null(rec);
    if (generate(&f, f.ids, 10, rec, 1, &part, &stats, &err) != G3N_OK)
        fail_msg("%s", err.message);
    assert_int_equal(rec->count, 10); /* the one generated token was never fed back */
    assert_string_equal(rec->decoder, "decoder-1");
    if (generate(&f, f.ids + 10, 14, rec, STEPS, &continued, &stats, &err) != G3N_OK)
        fail_msg("%s", err.message);
    assert_int_equal(stats.reused_tokens, 10);
    assert_int_equal(stats.rebuilds, 0);
    assert_int_equal(continued.count, whole.count);
    assert_memory_equal(continued.ids, whole.ids, sizeof(int32_t) * STEPS);
    assert_int_equal(rec->count, 24 + STEPS - 1);

    /* a second decoder joins, the first dies: the continuation is rebuilt there, the same tokens as the whole
     * prompt at once */
    start_worker(&f, G3N_ROLE_DECODER, &f.decoder[1], &f.decoder_worker[1], &ro, "decoder-2");
    assert_int_equal(g3n_broker_wait_workers(f.broker, G3N_ROLE_DECODER, 2, 10000, &err), G3N_OK);
    int32_t prompt[64];
    const int64_t held = rec->count;
    memcpy(prompt, rec->ids, sizeof(int32_t) * (size_t)held);
    memcpy(prompt + held, f.ids + 24, sizeof(int32_t) * 4);
    tokens reference, rebuilt;
    if (generate(&f, prompt, held + 4, NULL, STEPS, &reference, &stats, &err) != G3N_OK)
        fail_msg("%s", err.message);
    g3n_worker_kill(f.decoder_worker[0]);
    if (generate(&f, f.ids + 24, 4, rec, STEPS, &rebuilt, &stats, &err) != G3N_OK)
        fail_msg("%s", err.message);
    assert_int_equal(stats.rebuilds, 1);
    assert_int_equal(stats.reused_tokens, 0);
    assert_string_equal(rec->decoder, "decoder-2");
    assert_memory_equal(rebuilt.ids, reference.ids, sizeof(int32_t) * STEPS);

    /* no decoder left: a clear error naming the session */
    g3n_worker_kill(f.decoder_worker[1]);
    assert_int_equal(generate(&f, f.ids, 2, rec, 2, &rebuilt, &stats, &err), G3N_ERR);
    assert_non_null(strstr(err.message, rec->session_id));
    assert_non_null(strstr(err.message, "could not be rebuilt"));
    g3n_session_record_free(rec);
    fixture_close(&f);
}

static g3n_session_record *record_of(const int32_t *ids, int64_t count, const uint64_t *keys, int key_count)
{
    g3n_session_record *r = g3n_session_record_new();
    assert_non_null(r);
    g3n_error err;
    assert_int_equal(g3n_session_record_append_ids(r, ids, count, &err), G3N_OK);
    G3n__Envelope *media[4] = {NULL, NULL, NULL, NULL};
    for (int i = 0; i < key_count; i++) {
        media[i] = calloc(1, sizeof(G3n__Envelope)); /* an empty envelope stands for the encoder's reply */
        g3n__envelope__init(media[i]);
    }
    assert_int_equal(g3n_session_record_adopt_media(r, media, keys, key_count, &err), G3N_OK);
    snprintf(r->decoder, sizeof(r->decoder), "decoder-x");
    return r;
}

static void test_prefix_cache_matches_and_bounds(void **state)
{
    (void)state;
    g3n_prefix_cache_options o = g3n_prefix_cache_default_options();
    o.max_entries = 2;
    g3n_prefix_cache *cache;
    g3n_error err;
    assert_int_equal(g3n_prefix_cache_create(&cache, &o, &err), G3N_OK);
    const int32_t ids[8] = {2, 10, 11, 12, 13, 14, 15, 16};
    const uint64_t keys[2] = {0x1111, 0x2222};
    g3n_prefix_cache_put(cache, NULL, record_of(ids, 3, NULL, 0));
    g3n_prefix_cache_put(cache, NULL, record_of(ids, 5, keys, 1));
    /* the longest held prefix with the same media wins, and is taken out */
    g3n_session_record *r = g3n_prefix_cache_take(cache, NULL, ids, 8, keys, 2);
    assert_non_null(r);
    assert_int_equal(r->count, 5);
    g3n_prefix_cache_put(cache, NULL, r);
    /* another medium in its place: only the text-only prefix matches */
    const uint64_t other[2] = {0x9999, 0x2222};
    r = g3n_prefix_cache_take(cache, NULL, ids, 8, other, 2);
    assert_non_null(r);
    assert_int_equal(r->count, 3);
    g3n_prefix_cache_put(cache, NULL, r);
    /* a prompt equal to what a session holds is no proper extension: nothing to prefill, no match */
    assert_null(g3n_prefix_cache_take(cache, NULL, ids, 3, NULL, 0));
    /* a third entry: the least recently used (the 5-id one, put back first) is evicted */
    g3n_prefix_cache_put(cache, NULL, record_of(ids, 7, NULL, 0));
    g3n_prefix_cache_stats st;
    g3n_prefix_cache_get_stats(cache, &st);
    assert_int_equal(st.entries, 2);
    assert_int_equal(st.evictions, 1);
    r = g3n_prefix_cache_take(cache, NULL, ids, 8, keys, 2);
    assert_non_null(r);
    assert_int_equal(r->count, 7);
    g3n_session_record_free(r);
    r = g3n_prefix_cache_take(cache, NULL, ids, 8, keys, 2);
    assert_non_null(r);
    assert_int_equal(r->count, 3);
    g3n_session_record_free(r);
    assert_null(g3n_prefix_cache_take(cache, NULL, ids, 8, keys, 2));
    /* a session bound to a MatFormer sub-model continues only for that model */
    r = record_of(ids, 4, NULL, 0);
    snprintf(r->model, sizeof(r->model), "small");
    g3n_prefix_cache_put(cache, NULL, r);
    assert_null(g3n_prefix_cache_take(cache, NULL, ids, 8, NULL, 0));
    assert_null(g3n_prefix_cache_take(cache, "other", ids, 8, NULL, 0));
    r = g3n_prefix_cache_take(cache, "small", ids, 8, NULL, 0);
    assert_non_null(r);
    assert_int_equal(r->count, 4);
    g3n_session_record_free(r);
    g3n_prefix_cache_free(cache, NULL);
}

/* EncodeAudioRequest for the audio-encoder worker; returns the final reply (owned) and each partial one to
 * `collect` (tokens appended). */
typedef struct gathered {
    float *tokens;
    int64_t rows, width;
    int replies;
} gathered;

static void gather(gathered *g, const G3n__Envelope *env)
{
    assert_int_equal(env->body_case, G3N__ENVELOPE__BODY_ENCODE_AUDIO_REPLY);
    const G3n__EncodeAudioReply *r = env->encode_audio_reply;
    assert_int_equal(r->segment, 0);
    assert_int_equal(r->first_token, r->tokens->shape[0] ? g->rows : r->first_token);
    g3n_tensor view;
    g3n_error err;
    int64_t shape[2] = {-1, -1};
    assert_int_equal(g3n_wire_tensor_view(r->tokens, "tokens", G3N_DTYPE_F32, 2, shape, 0, &view, &err), G3N_OK);
    g->width = view.shape[1];
    g->tokens = realloc(g->tokens, sizeof(float) * (size_t)((g->rows + view.shape[0]) * g->width + 1));
    assert_non_null(g->tokens);
    memcpy(g->tokens + g->rows * g->width, view.data, sizeof(float) * (size_t)(view.shape[0] * g->width));
    g->rows += view.shape[0];
    g->replies++;
}

static int on_partial(void *user, const G3n__Envelope *event)
{
    gather(user, event);
    return 0;
}

static int audio_call(g3n_client *client, const char *stream, int start, int flush, const float *samples,
                      int64_t count, const char *pin, gathered *g, char *worker, g3n_error *err)
{
    G3n__Envelope env;
    G3n__EncodeAudioRequest q;
    g3n__envelope__init(&env);
    g3n__encode_audio_request__init(&q);
    g3n_wire_tensor t;
    int64_t shape[1] = {count};
    g3n_wire_tensor_borrow(&t, G3N_DTYPE_F32, 1, shape, samples);
    q.samples = count > 0 || !flush ? &t.message : NULL;
    q.stream_id = (char *)stream;
    q.start = start;
    q.flush = flush;
    env.body_case = G3N__ENVELOPE__BODY_ENCODE_AUDIO;
    env.encode_audio = &q;
    g3n_request_options ro = {G3N_ROLE_AUDIO_ENCODER, 0, pin};
    g3n_reply reply;
    memset(&reply, 0, sizeof(reply));
    int rc = g3n_client_call(client, &ro, &env, on_partial, g, &reply, err);
    if (rc == G3N_OK) {
        gather(g, reply.envelope);
        if (worker)
            snprintf(worker, 64, "%s", reply.worker);
    }
    g3n_reply_clear(&reply);
    return rc;
}

static void test_audio_stream_on_the_encoder_equals_offline(void **state)
{
    (void)state;
    g3n_check_case c;
    uint64_t seed;
    g3n_test_case_open(&c, "mm-tiny", &seed);
    g3n_error err = {{0}};
    g3n_weights *weights;
    assert_int_equal(g3n_weights_open_synth(&weights, seed, G3N_DTYPE_BF16, &err), G3N_OK);
    g3n_transport_options transport = g3n_transport_default_options();
    const char *endpoint = "inproc://g3n-test-audio-streams";
    g3n_broker *broker;
    assert_int_equal(g3n_broker_start(&broker, &endpoint, 1, &transport, &err), G3N_OK);
    g3n_role_options ro;
    memset(&ro, 0, sizeof(ro));
    ro.threads = 1;
    g3n_role *role;
    if (g3n_role_open(&role, G3N_ROLE_AUDIO_ENCODER, weights, &c.config, &ro, &err) != G3N_OK)
        fail_msg("%s", err.message);
    g3n_worker_options wo;
    memset(&wo, 0, sizeof(wo));
    wo.role = G3N_ROLE_AUDIO_ENCODER;
    wo.endpoint = endpoint;
    wo.capacity = 1;
    wo.zmq_context = g3n_broker_context(broker);
    wo.transport = transport;
    g3n_worker *worker;
    assert_int_equal(g3n_worker_start(&worker, &wo, g3n_role_handle, role, &err), G3N_OK);
    assert_int_equal(g3n_broker_wait_workers(broker, G3N_ROLE_AUDIO_ENCODER, 1, 10000, &err), G3N_OK);
    g3n_client *client;
    assert_int_equal(g3n_client_open(&client, broker, &err), G3N_OK);

    const int64_t count = 28000; /* 1.75 s */
    float *samples = malloc(sizeof(float) * (size_t)count);
    assert_non_null(samples);
    g3n_test_random_floats(samples, count, 7);
    for (int64_t i = 0; i < count; i++)
        samples[i] *= 0.3f;
    /* offline: the whole clip */
    gathered offline = {0};
    if (audio_call(client, "", 0, 0, samples, count, NULL, &offline, NULL, &err) != G3N_OK)
        fail_msg("%s", err.message);
    /* streamed: pieces of 3001 samples, the last with flush, pinned to the worker of the first */
    gathered streamed = {0};
    char pin[64] = "";
    const int64_t piece = 3001;
    for (int64_t at = 0; at < count; at += piece) {
        const int64_t n = count - at < piece ? count - at : piece;
        if (audio_call(client, "mic-1", at == 0, at + n == count, samples + at, n, at ? pin : NULL, &streamed,
                       at ? NULL : pin, &err) != G3N_OK)
            fail_msg("piece at %lld: %s", (long long)at, err.message);
    }
    assert_true(streamed.replies >= (int)((count + piece - 1) / piece));
    assert_true(streamed.rows > 0);
    assert_int_equal(streamed.rows, offline.rows); /* this clip's tokens are all valid (no padded frames) */
    assert_int_equal(streamed.width, offline.width);
    double diff = 0.0, norm = 0.0;
    for (int64_t i = 0; i < streamed.rows * streamed.width; i++) {
        const double d = (double)streamed.tokens[i] - offline.tokens[i];
        diff += d * d;
        norm += (double)offline.tokens[i] * offline.tokens[i];
    }
    assert_true(norm > 0.0);
    if (!(diff <= 1e-10 * norm))
        fail_msg("streamed tokens differ from the offline ones: rel-L2^2 %g", diff / norm);
    /* the stream is done after its flush: a further piece without start is refused */
    gathered more = {0};
    assert_int_equal(audio_call(client, "mic-1", 0, 0, samples, 100, pin, &more, NULL, &err), G3N_ERR);
    assert_non_null(strstr(err.message, "no audio stream 'mic-1'"));
    free(more.tokens);
    free(offline.tokens);
    free(streamed.tokens);
    free(samples);
    g3n_client_close(client);
    g3n_worker_stop(worker);
    g3n_role_close(role);
    g3n_broker_stop(broker);
    g3n_weights_close(weights);
    g3n_check_case_close(&c);
}

/* One ChatRequest through the front door's conversation code (conversation.h), greedy, STEPS tokens. */
static void ask_model(g3n_client *client, g3n_prefix_cache *cache, const g3n_model_config *config,
                      const g3n_tokenizer *tokenizer, const char *model, G3n__ChatRequest *request, tokens *out,
                      g3n_pipeline_stats *stats)
{
    g3n_chat_prompt prompt;
    g3n_pipeline_windows files;
    g3n_error err = {{0}};
    if (g3n_conversation_render(request, config, tokenizer, 64, &prompt, &files, &err) != G3N_OK)
        fail_msg("%s", err.message);
    g3n_pipeline_generate_params p = g3n_pipeline_default_params(config);
    p.max_new_tokens = STEPS;
    p.num_eos_ids = 0;
    p.on_token = keep_token;
    p.user = out;
    p.model = model;
    memset(out, 0, sizeof(*out));
    g3n_conversation_options co = {cache, NULL, NULL};
    if (g3n_pipeline_conversation(client, &co, NULL, prompt.ids.ids, prompt.ids.count, files.files, files.count, &p,
                                  NULL, NULL, stats, &err) != G3N_OK)
        fail_msg("%s", err.message);
    g3n_chat_prompt_free(&prompt);
    g3n_pipeline_windows_free(&files);
}

/* The same with the full model. */
static void ask_conversation(g3n_client *client, g3n_prefix_cache *cache, const g3n_model_config *config,
                             const g3n_tokenizer *tokenizer, G3n__ChatRequest *request, tokens *out,
                             g3n_pipeline_stats *stats)
{
    ask_model(client, cache, config, tokenizer, NULL, request, out, stats);
}

/* A conversation of a first user turn, then (second_turn) the answer's token ids and another question. */
typedef struct conversation {
    G3n__ChatMessage m[3], *pointers[3];
    G3n__ChatRequest request;
} conversation;

static void conversation_init(conversation *c, const char *text)
{
    for (int i = 0; i < 3; i++) {
        g3n__chat_message__init(&c->m[i]);
        c->pointers[i] = &c->m[i];
    }
    c->m[0].role = "user";
    c->m[0].text = (char *)text;
    g3n__chat_request__init(&c->request);
    c->request.messages = c->pointers;
    c->request.n_messages = 1;
}

static void conversation_second_turn(conversation *c, tokens *answer, const char *text)
{
    c->m[1].role = "assistant";
    c->m[1].text = "(its token ids stand for it)";
    c->m[1].token_ids = answer->ids;
    c->m[1].n_token_ids = (size_t)answer->count;
    c->m[2].role = "user";
    c->m[2].text = (char *)text;
    c->request.n_messages = 3;
}

static void test_multimodal_conversation_reuses_its_image(void **state)
{
    (void)state;
    g3n_test_stack stack;
    g3n_test_stack_open(&stack, "inproc://g3n-test-sessions-mm", NULL,
                        (1u << G3N_ROLE_VISION_ENCODER) | (1u << G3N_ROLE_EMBEDDER) | (1u << G3N_ROLE_DECODER), 1);
    const g3n_model_config *config = &stack.config;
    const g3n_tokenizer *tokenizer = stack.tokenizer;
    g3n_worker *vision = stack.local.workers[G3N_ROLE_VISION_ENCODER];
    g3n_error err = {{0}};
    char *image = NULL;
    size_t image_size = 0;
    assert_int_equal(g3n_read_file("assets/demo-image.jpg", &image, &image_size, &err), G3N_OK);
    g3n_client *client;
    assert_int_equal(g3n_client_open(&client, stack.broker, &err), G3N_OK);
    g3n_prefix_cache *cache;
    assert_int_equal(g3n_prefix_cache_create(&cache, NULL, &err), G3N_OK);

    /* turn 1: an image and a question; turn 2: the answer (its ids) and another question */
    conversation chat;
    conversation_init(&chat, "What is in the picture?");
    ProtobufCBinaryData picture = {image_size, (uint8_t *)image};
    chat.m[0].images = &picture;
    chat.m[0].n_images = 1;
    G3n__ChatRequest *request = &chat.request;
    tokens first, reused, fresh;
    g3n_pipeline_stats stats;
    ask_conversation(client, cache, config, tokenizer, request, &first, &stats);
    assert_int_equal(stats.reused_tokens, 0);
    const uint64_t encodes = g3n_worker_requests_received(vision);
    conversation_second_turn(&chat, &first, "And the colours?");
    ask_conversation(client, cache, config, tokenizer, request, &reused, &stats);
    assert_true(stats.reused_tokens > config->vision_soft_tokens_per_image); /* the image's positions too */
    assert_int_equal(g3n_worker_requests_received(vision), encodes); /* not again */
    ask_conversation(client, NULL, config, tokenizer, request, &fresh, &stats); /* no reuse */
    assert_int_equal(stats.reused_tokens, 0);
    assert_int_equal(g3n_worker_requests_received(vision), encodes + 1);
    assert_int_equal(reused.count, fresh.count);
    assert_memory_equal(reused.ids, fresh.ids, sizeof(int32_t) * STEPS);
    g3n_prefix_cache_stats st;
    g3n_prefix_cache_get_stats(cache, &st);
    assert_int_equal(st.hits, 1);
    assert_int_equal(st.entries, 1);

    g3n_prefix_cache_free(cache, client);
    g3n_client_close(client);
    free(image);
    g3n_test_stack_close(&stack);
}

/* Audio goes to the encoders as windows of samples (g3n_pipeline_window_media), whose file bytes are not
 * kept: the prefix cache's key of a clip is of its samples. (Keyed by the absent bytes, every clip had the
 * same key, and a conversation whose first turn held another clip of the same length continued the
 * session that had encoded the first one.) */
static void test_audio_conversation_tells_clips_apart(void **state)
{
    (void)state;
    g3n_test_stack stack;
    g3n_test_stack_open(&stack, "inproc://g3n-test-sessions-audio", NULL,
                        (1u << G3N_ROLE_AUDIO_ENCODER) | (1u << G3N_ROLE_EMBEDDER) | (1u << G3N_ROLE_DECODER), 1);
    g3n_error err = {{0}};
    g3n_client *client;
    assert_int_equal(g3n_client_open(&client, stack.broker, &err), G3N_OK);
    g3n_prefix_cache *cache;
    assert_int_equal(g3n_prefix_cache_create(&cache, NULL, &err), G3N_OK);
    size_t size_a, size_b;
    uint8_t *clip_a = g3n_test_make_wav(2 * 16000, 1, &size_a);
    uint8_t *clip_b = g3n_test_make_wav(2 * 16000, 2, &size_b); /* as long, other samples */
    conversation chat;
    conversation_init(&chat, "What is said?");
    ProtobufCBinaryData a = {size_a, clip_a}, b = {size_b, clip_b};
    chat.m[0].audios = &a;
    chat.m[0].n_audios = 1;
    tokens first, second;
    g3n_pipeline_stats stats;
    ask_conversation(client, cache, &stack.config, stack.tokenizer, &chat.request, &first, &stats);
    conversation_second_turn(&chat, &first, "And then?");
    chat.m[0].audios = &b; /* the same ids, another clip: nothing to reuse */
    ask_conversation(client, cache, &stack.config, stack.tokenizer, &chat.request, &second, &stats);
    assert_int_equal(stats.reused_tokens, 0);
    chat.m[0].audios = &a; /* the first clip: its session continues */
    ask_conversation(client, cache, &stack.config, stack.tokenizer, &chat.request, &second, &stats);
    assert_true(stats.reused_tokens > 0);
    free(clip_a);
    free(clip_b);
    g3n_prefix_cache_free(cache, client);
    g3n_client_close(client);
    g3n_test_stack_close(&stack);
}

/* A MatFormer sub-model's conversation reuses its prefix too (it neither reused nor kept a session): turn 2
 * continues the session turn 1 left, with the greedy tokens of the same turn asked without reuse; the full
 * model's request of the same prompt does not continue the sub-model's session (a session is bound to its
 * model). */
static void test_submodel_conversation_reuses_its_prefix(void **state)
{
    (void)state;
    g3n_test_stack stack;
    const char *specs[1] = {"{\"name\": \"small\", \"intermediate_size\": 64}"};
    g3n_role_options ro;
    memset(&ro, 0, sizeof(ro));
    ro.threads = 1;
    ro.submodels = specs;
    ro.submodel_count = 1;
    g3n_test_stack_open_with(&stack, "inproc://g3n-test-sessions-submodel", NULL, &ro,
                             (1u << G3N_ROLE_EMBEDDER) | (1u << G3N_ROLE_DECODER), 1);
    g3n_error err = {{0}};
    g3n_client *client;
    assert_int_equal(g3n_client_open(&client, stack.broker, &err), G3N_OK);
    g3n_prefix_cache *cache;
    assert_int_equal(g3n_prefix_cache_create(&cache, NULL, &err), G3N_OK);
    conversation chat;
    conversation_init(&chat, "Tell me about the sea.");
    G3n__ChatRequest *request = &chat.request;
    tokens first, reused, fresh, full;
    g3n_pipeline_stats stats;
    ask_model(client, cache, &stack.config, stack.tokenizer, "small", request, &first, &stats);
    assert_int_equal(stats.reused_tokens, 0);
    conversation_second_turn(&chat, &first, "And the mountains?");
    ask_model(client, cache, &stack.config, stack.tokenizer, "", request, &full, &stats);
    assert_int_equal(stats.reused_tokens, 0); /* the full model: not the sub-model's session */
    ask_model(client, cache, &stack.config, stack.tokenizer, "small", request, &reused, &stats);
    print_message("turn 2 on the sub-model: %lld of %lld prompt positions reused\n", (long long)stats.reused_tokens,
                  (long long)stats.prompt_tokens);
    assert_true(stats.reused_tokens > 0);
    ask_model(client, NULL, &stack.config, stack.tokenizer, "small", request, &fresh, &stats); /* no reuse */
    assert_int_equal(stats.reused_tokens, 0);
    assert_int_equal(reused.count, fresh.count);
    assert_memory_equal(reused.ids, fresh.ids, sizeof(int32_t) * STEPS);
    g3n_prefix_cache_free(cache, client);
    g3n_client_close(client);
    g3n_test_stack_close(&stack);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_prefix_cache_matches_and_bounds),
        cmocka_unit_test(test_decoder_session_checks_and_bounds),
        cmocka_unit_test(test_continued_session_equals_whole_prompt_and_survives_its_decoder),
        cmocka_unit_test(test_audio_stream_on_the_encoder_equals_offline),
        cmocka_unit_test(test_multimodal_conversation_reuses_its_image),
        cmocka_unit_test(test_audio_conversation_tells_clips_apart),
        cmocka_unit_test(test_submodel_conversation_reuses_its_prefix),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
