/* The live session on the demo model (scripts/demo-config.json: tiny widths,
 * the real vocabulary and tokenizer, vision at multiplier 0.125, audio),
 * synthetic weights seed 41:
 *  - frames and audio fed in random pieces, then a question: the cache holds
 *    exactly the ids of the chat template over the same content, and the
 *    question's logits equal one prompt built at once (the vision tower, the
 *    offline audio encoder per segment, g3n_embedder_build, one prefill)
 *    within the text tolerances; the question only prefills the question; the
 *    greedy answer equals the batch's greedy continuation;
 *  - a second round (more audio, a second question) works on top;
 *  - a small context: the oldest media are dropped, the rest re-prefilled,
 *    and the cache again equals the rendered conversation. */
#include <math.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "audio_stream.h"
#include "check.h"
#include "embedder.h"
#include "generate.h"
#include "image_preprocess_rgb.h"
#include "live_session.h"
#include "media_prompt.h"
#include "test_util.h"
#include "tokenizer.h"
#include "weights.h"

typedef struct fixture {
    g3n_model_config config;
    g3n_weights *weights;
    g3n_tokenizer *tokenizer;
    g3n_live_model model;
} fixture;

static int setup(void **state)
{
    fixture *f = calloc(1, sizeof(*f));
    g3n_error err = {{0}};
    char path[1024];
    if (g3n_config_load(&f->config, "scripts/demo-config.json", &err) ||
        g3n_weights_open_synth(&f->weights, 41, G3N_DTYPE_BF16, &err) ||
        g3n_tokenizer_load(&f->tokenizer, g3n_test_fixture("tokenizer/tokenizer.json", path, sizeof path), &err) ||
        g3n_live_model_load(&f->model, &f->config, f->weights, 1, 1, NULL, &err)) {
        fprintf(stderr, "setup: %s\n", err.message);
        return -1;
    }
    *state = f;
    return 0;
}

static int teardown(void **state)
{
    fixture *f = *state;
    g3n_live_model_free(&f->model);
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

static void feed_audio(g3n_live_session *s, const float *samples, int64_t n)
{
    g3n_error err = {{0}};
    for (int64_t at = 0; at < n;) {
        int64_t piece = 1 + random_below(4000);
        if (piece > n - at)
            piece = n - at;
        if (g3n_live_add_audio(s, samples + at, piece, &err) != G3N_OK)
            fail_msg("add_audio: %s", err.message);
        at += piece;
    }
}

typedef struct batch_media {
    g3n_media_tokens items[8];
    float *buffers[8];
    g3n_chat_item_type types[8];
    int count;
} batch_media;

static void batch_add_frame(fixture *f, batch_media *b, const uint8_t *rgb, int w, int h)
{
    g3n_error err = {{0}};
    const g3n_vision_config *vc = g3n_vision_encoder_config(f->model.vision);
    g3n_image_options options = g3n_image_default_options();
    options.size = (int)vc->image_size;
    float *pixels = malloc(sizeof(float) * 3 * (size_t)options.size * (size_t)options.size);
    float *tower = malloc(sizeof(float) * (size_t)(vc->soft_tokens * vc->hidden_size));
    assert_int_equal(g3n_image_preprocess_rgb(rgb, w, h, w * 3, &options, pixels, &err), G3N_OK);
    assert_int_equal(g3n_vision_encoder_tower(f->model.vision, pixels, 1, options.size, options.size, tower, &err),
                     G3N_OK);
    free(pixels);
    b->items[b->count] = (g3n_media_tokens){G3N_MEDIA_IMAGE, tower, vc->soft_tokens, vc->hidden_size, NULL};
    b->buffers[b->count] = tower;
    b->types[b->count++] = G3N_CHAT_IMAGE;
}

/* One audio segment encoded offline (encoder outputs; the embedder applies embed_audio). */
static void batch_add_audio(fixture *f, batch_media *b, const float *samples, int64_t n)
{
    g3n_error err = {{0}};
    float *tokens = NULL;
    int64_t count = 0, *starts = NULL;
    int segments = 0;
    assert_int_equal(g3n_audio_encode_clip(f->model.features, &f->model.audio, NULL, samples, n, &tokens, &count,
                                           &starts, &segments, &err),
                     G3N_OK);
    assert_int_equal(segments, 1);
    free(starts);
    b->items[b->count] =
        (g3n_media_tokens){G3N_MEDIA_AUDIO, tokens, count, f->model.audio_config.hidden_size, NULL};
    b->buffers[b->count] = tokens;
    b->types[b->count++] = G3N_CHAT_AUDIO;
}

/* The whole prompt at once: the chat template, the embedder's merge, one
 * chunked prefill; logits of the last position into last_logits; the session
 * is returned for decoding. */
static g3n_text_session *batch_prefill(fixture *f, const batch_media *b, const char *question, g3n_chat_prompt *prompt,
                                       float *last_logits)
{
    g3n_error err = {{0}};
    g3n_embedder embedder;
    assert_int_equal(g3n_embedder_load(&embedder, f->weights, &f->config, &err), G3N_OK);
    g3n_chat_special_ids sp;
    g3n_chat_special_ids_from_config(&sp, &f->config);
    assert_int_equal(
        g3n_media_prompt_render(f->tokenizer, &sp, NULL, b->types, b->count, question, 1, 1, prompt, &err), G3N_OK);
    g3n_text_session *session = NULL;
    g3n_text_session_params params = g3n_text_session_default_params(&f->model.text);
    params.max_positions = 4096;
    assert_int_equal(g3n_text_session_create(&session, &f->model.text, &params, &err), G3N_OK);
    const int64_t count = prompt->ids.count, chunk = 97; /* another chunking than the live session's */
    float *embeds = malloc(sizeof(float) * (size_t)(chunk * embedder.hidden_size));
    float *per_layer = malloc(sizeof(float) * (size_t)(chunk * embedder.per_layer_width));
    for (int64_t begin = 0; begin < count; begin += chunk) {
        int64_t end = begin + chunk < count ? begin + chunk : count;
        if (g3n_embedder_build(&embedder, prompt->ids.ids, count, b->items, b->count, begin, end, embeds, per_layer,
                               &err) != G3N_OK)
            fail_msg("embedder: %s", err.message);
        assert_int_equal(g3n_text_session_forward(session, embeds, per_layer, end - begin,
                                                  end == count ? last_logits : NULL, 0, &err),
                         G3N_OK);
    }
    free(embeds);
    free(per_layer);
    return session;
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

static void test_pieces_equal_one_prompt(void **state)
{
    fixture *f = *state;
    g3n_error err = {{0}};
    const int w = 40, h = 30;
    uint8_t frame_a[40 * 30 * 3], frame_b[40 * 30 * 3];
    make_frame(frame_a, w, h, 1);
    make_frame(frame_b, w, h, 2);
    const int64_t n1 = 21000, n2 = 13700; /* 1.31 s and 0.86 s */
    float *audio1 = malloc(sizeof(float) * n1), *audio2 = malloc(sizeof(float) * n2);
    make_audio(audio1, n1, 1);
    make_audio(audio2, n2, 2);
    const char *question = "What did you see and hear?";
    const int64_t vocab = f->config.text.vocab_size;

    /* batch media first: frame B's tower tokens are shared with the live side
     * (the tower is not what is tested here, and it is the slow part) */
    batch_media b;
    memset(&b, 0, sizeof(b));
    batch_add_frame(f, &b, frame_a, w, h);
    batch_add_audio(f, &b, audio1, n1);
    batch_add_frame(f, &b, frame_b, w, h);
    batch_add_audio(f, &b, audio2, n2);

    /* live: frame (the whole RGB path), audio in pieces, frame (tower tokens), audio in pieces, question */
    g3n_live_params params = g3n_live_default_params(&f->model);
    params.max_positions = 4096;
    params.min_prefill = 1;          /* every token as soon as it is final: the most pieces */
    params.audio_batch_samples = 777; /* pushes across frame and token boundaries */
    g3n_live_session *live = NULL;
    assert_int_equal(g3n_live_session_create(&live, &f->model, f->tokenizer, &params, &err), G3N_OK);
    assert_int_equal(g3n_live_add_frame_rgb(live, 0.0, frame_a, w, h, w * 3, &err), G3N_OK);
    int64_t after_frame = g3n_live_session_stats(live).positions;
    assert_true(after_frame > f->config.vision_soft_tokens_per_image); /* prefilled on arrival */
    feed_audio(live, audio1, n1);
    g3n_live_stats mid = g3n_live_session_stats(live);
    assert_true(mid.positions > after_frame + 1); /* audio tokens prefilled while the segment is open */
    assert_int_equal(g3n_live_add_frame_tokens(live, 1.31, b.items[2].tokens, &err), G3N_OK);
    feed_audio(live, audio2, n2);
    int64_t before_question = g3n_live_session_stats(live).positions;
    float *live_logits = malloc(sizeof(float) * (size_t)vocab);
    assert_int_equal(g3n_live_question(live, question, live_logits, &err), G3N_OK);
    g3n_live_stats stats = g3n_live_session_stats(live);
    int64_t live_count;
    const int32_t *live_ids = g3n_live_ids(live, &live_count);

    /* batch: the same content at once */
    g3n_chat_prompt prompt;
    float *batch_logits = malloc(sizeof(float) * (size_t)vocab);
    g3n_text_session *batch = batch_prefill(f, &b, question, &prompt, batch_logits);

    assert_int_equal(live_count, prompt.ids.count);
    assert_memory_equal(live_ids, prompt.ids.ids, sizeof(int32_t) * (size_t)live_count);
    assert_int_equal(stats.positions, prompt.ids.count);
    assert_int_equal(stats.frames, 2);
    assert_int_equal(stats.audio_segments, 2);
    /* the question prefilled only what follows the last audio token: the
     * segment's padding, eoa and the question's turn text */
    int64_t audio2_tokens = b.items[3].count;
    int64_t question_positions = stats.positions - before_question;
    printf("live: %lld positions, %lld prefilled at the question (pads %lld + question turn), audio tokens %lld + "
           "%lld\n",
           (long long)stats.positions, (long long)question_positions,
           (long long)(f->config.audio_soft_tokens_per_image - audio2_tokens), (long long)b.items[1].count,
           (long long)audio2_tokens);
    assert_true(question_positions < f->config.audio_soft_tokens_per_image - audio2_tokens + 32);
    double max_abs;
    double rel = rel_l2(live_logits, batch_logits, vocab, &max_abs);
    printf("question logits: live vs one prompt rel_l2=%.3g max_abs=%.3g\n", rel, max_abs);
    assert_true(rel <= 3e-3);
    assert_true(max_abs <= 3e-2);

    /* greedy answer == the batch's greedy continuation */
    g3n_generate_params gp = g3n_generate_default_params(&f->model.text);
    gp.max_new_tokens = 5;
    gp.num_eos_ids = 0; /* random weights: run the full length */
    int32_t answer[8];
    int64_t answered = 0;
    assert_int_equal(g3n_live_answer(live, &gp, answer, &answered, NULL, &err), G3N_OK);
    assert_int_equal(answered, 5);
    for (int k = 0; k < 5; k++) {
        int32_t expected = g3n_argmax(batch_logits, f->config.text.vocab_size_per_layer_input);
        assert_int_equal(answer[k], expected);
        assert_int_equal(g3n_text_session_forward_ids(batch, &expected, 1, batch_logits, 0, &err), G3N_OK);
    }
    /* the cache: prompt + answer + "<end_of_turn>\n" */
    live_ids = g3n_live_ids(live, &live_count);
    assert_int_equal(live_count, prompt.ids.count + 5 + 2);
    assert_memory_equal(live_ids + prompt.ids.count, answer, sizeof(int32_t) * 5);

    /* a second round on top: audio, then another question */
    feed_audio(live, audio2, n2);
    assert_int_equal(g3n_live_question(live, "And now?", live_logits, &err), G3N_OK);
    assert_int_equal(g3n_live_answer(live, &gp, answer, &answered, NULL, &err), G3N_OK);
    stats = g3n_live_session_stats(live);
    assert_int_equal(stats.questions, 2);
    assert_int_equal(stats.audio_segments, 3);
    live_ids = g3n_live_ids(live, &live_count);
    assert_int_equal(stats.positions, live_count);
    for (int64_t i = 0; i < vocab; i++)
        assert_true(isfinite(live_logits[i]));

    g3n_text_session_free(batch);
    g3n_chat_prompt_free(&prompt);
    for (int i = 0; i < b.count; i++)
        free(b.buffers[i]);
    free(batch_logits);
    free(live_logits);
    free(audio1);
    free(audio2);
    g3n_live_session_free(live);
}

/* A context of 1000 positions (reserve 100): audio segments of ~196
 * positions each; the oldest are dropped and the rest re-prefilled. */
static void test_context_policy(void **state)
{
    fixture *f = *state;
    g3n_error err = {{0}};
    g3n_live_params params = g3n_live_default_params(&f->model);
    params.max_positions = 1000;
    params.reserve_positions = 100;
    g3n_live_session *live = NULL;
    assert_int_equal(g3n_live_session_create(&live, &f->model, f->tokenizer, &params, &err), G3N_OK);
    const int64_t n = 9000;
    float *audio = malloc(sizeof(float) * n);
    for (int k = 0; k < 8; k++) {
        make_audio(audio, n, k + 3);
        feed_audio(live, audio, n);
        assert_int_equal(g3n_live_end_audio(live, &err), G3N_OK);
        assert_true(g3n_live_session_stats(live).positions <= params.max_positions - params.reserve_positions);
    }
    g3n_live_stats stats = g3n_live_session_stats(live);
    printf("context policy: %d segments, %d dropped, %d re-prefills, %lld positions, %lld prefilled in all\n",
           stats.audio_segments, stats.dropped_items, stats.compactions, (long long)stats.positions,
           (long long)stats.prefilled_tokens);
    assert_int_equal(stats.audio_segments, 8);
    assert_true(stats.dropped_items >= 4);
    assert_true(stats.compactions >= 1);
    assert_true(stats.prefilled_tokens > stats.positions);
    float *logits = malloc(sizeof(float) * (size_t)f->config.text.vocab_size);
    if (g3n_live_question(live, "What was said?", logits, &err) != G3N_OK)
        fail_msg("question: %s", err.message);
    /* the cache equals the rendering of what is kept */
    int64_t count;
    const int32_t *ids = g3n_live_ids(live, &count);
    g3n_chat_special_ids sp;
    g3n_chat_special_ids_from_config(&sp, &f->config);
    int kept = 0;
    for (int64_t p = 1; p < count; p++)
        kept += ids[p] == sp.boa_token_id;
    g3n_chat_item_type types[16];
    for (int i = 0; i < kept; i++)
        types[i] = G3N_CHAT_AUDIO;
    g3n_chat_prompt prompt;
    assert_int_equal(
        g3n_media_prompt_render(f->tokenizer, &sp, NULL, types, kept, "What was said?", 1, 1, &prompt, &err), G3N_OK);
    assert_int_equal(prompt.ids.count, count);
    assert_memory_equal(prompt.ids.ids, ids, sizeof(int32_t) * (size_t)count);
    assert_int_equal(kept, stats.audio_segments - stats.dropped_items);
    g3n_chat_prompt_free(&prompt);
    /* the default reserve scales to the context: `g3n serve --context 1024` made every live session fail
     * ("reserve of 512 positions in a context of 1024") */
    const int64_t contexts[3] = {1024, 600, 4096};
    const int64_t reserves[3] = {256, 150, 512};
    for (int i = 0; i < 3; i++) {
        g3n_live_params defaults = g3n_live_default_params(&f->model);
        defaults.max_positions = contexts[i];
        g3n_live_session *scaled = NULL;
        if (g3n_live_session_create(&scaled, &f->model, f->tokenizer, &defaults, &err) != G3N_OK)
            fail_msg("context %lld: %s", (long long)contexts[i], err.message);
        assert_int_equal(g3n_live_add_audio(scaled, audio, n, &err), G3N_OK);
        assert_int_equal(g3n_live_end_audio(scaled, &err), G3N_OK);
        assert_true(g3n_live_session_stats(scaled).positions <= contexts[i] - reserves[i]);
        g3n_live_session_free(scaled);
    }
    /* a context too small for one segment is an error, not a crash */
    g3n_live_session *small = NULL;
    params.max_positions = 250;
    params.reserve_positions = 100;
    if (g3n_live_session_create(&small, &f->model, f->tokenizer, &params, &err) != G3N_OK)
        fail_msg("create: %s", err.message);
    assert_int_equal(g3n_live_add_audio(small, audio, n, &err), G3N_ERR);
    assert_non_null(strstr(err.message, "cannot hold"));
    g3n_live_session_free(small);
    free(logits);
    free(audio);
    g3n_live_session_free(live);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_pieces_equal_one_prompt),
        cmocka_unit_test(test_context_policy),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
