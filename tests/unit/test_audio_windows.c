/* Audio over 30 s through the pipeline (issue 18, item 1): not cut at the
 * audio encoder's max_samples but split into 30 s windows, each its own audio
 * segment in the prompt, as README promises and as g3n's offline encoding
 * does (audio_stream.h). g3n_pipeline_window_media's windows, the messages
 * expanded to one item per window, and `g3n run --demo --audio` of 20 s, 35 s
 * and 65 s clips: every further window adds the same number of prompt tokens
 * (before: all three gave the same count, everything after 30 s dropped).
 * The conversation path (the front door, `g3n run --connect --audio`) windows
 * a clip over 30 s as the in-process chat does (it was refused by the audio
 * encoder). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "front_door.h"
#include "pipeline.h"
#include "test_util.h"

static void test_windows(void **state)
{
    (void)state;
    const int64_t window = 480000; /* 30 s at 16 kHz, the released preprocessor's max_samples */
    size_t long_size, short_size, edge_size;
    uint8_t *long_clip = g3n_test_make_wav(65 * 16000, 12345, &long_size);
    uint8_t *short_clip = g3n_test_make_wav(20 * 16000, 12345, &short_size);
    /* a last window shorter than one frame */
    uint8_t *edge_clip = g3n_test_make_wav(window + 100, 12345, &edge_size);
    const uint8_t jpeg[4] = {0xff, 0xd8, 0xff, 0xe0};
    g3n_media_file files[4] = {
        {G3N_MEDIA_IMAGE, jpeg, sizeof(jpeg), "photo", NULL, 0},
        {G3N_MEDIA_AUDIO, long_clip, long_size, "long", NULL, 0},
        {G3N_MEDIA_AUDIO, short_clip, short_size, "short", NULL, 0},
        {G3N_MEDIA_AUDIO, edge_clip, edge_size, "edge", NULL, 0},
    };
    g3n_pipeline_windows w;
    g3n_error err = {{0}};
    if (g3n_pipeline_window_media(files, 4, &w, &err) != G3N_OK)
        fail_msg("%s", err.message);
    assert_int_equal(w.input_count, 4);
    assert_int_equal(w.segments[0], 1);
    assert_int_equal(w.segments[1], 3);
    assert_int_equal(w.segments[2], 1);
    assert_int_equal(w.segments[3], 2);
    assert_int_equal(w.count, 7);
    assert_int_equal(w.files[0].kind, G3N_MEDIA_IMAGE);
    assert_ptr_equal(w.files[0].bytes, jpeg);
    const int64_t expected[6] = {window, window, 5 * 16000, 20 * 16000, window, 513};
    for (int i = 0; i < 6; i++) {
        assert_int_equal(w.files[1 + i].kind, G3N_MEDIA_AUDIO);
        assert_non_null(w.files[1 + i].samples);
        assert_int_equal(w.files[1 + i].sample_count, expected[i]);
    }
    /* windows are consecutive pieces of the same decoded clip; the short last one is zero-padded */
    assert_ptr_equal(w.files[2].samples, w.files[1].samples + window);
    for (int64_t i = 100; i < 513; i++)
        assert_true(w.files[6].samples[i] == 0.0f);
    assert_true(w.files[6].samples[0] != 0.0f || w.files[6].samples[1] != 0.0f);
    assert_non_null(strstr(w.files[2].name, "long [30-60 s]"));

    /* the messages: one item per window, the text kept */
    const g3n_chat_item items[5] = {{G3N_CHAT_IMAGE, NULL},
                                    {G3N_CHAT_AUDIO, NULL},
                                    {G3N_CHAT_TEXT, "between"},
                                    {G3N_CHAT_AUDIO, NULL},
                                    {G3N_CHAT_AUDIO, NULL}};
    const g3n_chat_item system_item = {G3N_CHAT_TEXT, "be brief"};
    const g3n_chat_message messages[2] = {{"system", &system_item, 1}, {"user", items, 5}};
    g3n_chat_message *expanded;
    g3n_chat_item *expanded_items;
    assert_int_equal(g3n_pipeline_expand_messages(messages, 2, w.segments, w.input_count, &expanded, &expanded_items,
                                                  &err),
                     G3N_OK);
    assert_int_equal(expanded[0].item_count, 1);
    assert_int_equal(expanded[1].item_count, 8);
    const g3n_chat_item_type types[8] = {G3N_CHAT_IMAGE, G3N_CHAT_AUDIO, G3N_CHAT_AUDIO, G3N_CHAT_AUDIO,
                                         G3N_CHAT_TEXT,  G3N_CHAT_AUDIO, G3N_CHAT_AUDIO, G3N_CHAT_AUDIO};
    for (int i = 0; i < 8; i++)
        assert_int_equal(expanded[1].items[i].type, types[i]);
    assert_string_equal(expanded[1].items[4].text, "between");
    free(expanded);
    free(expanded_items);
    g3n_pipeline_windows_free(&w);

    /* an empty clip, an undecodable one, a too short one: the client's error, named */
    g3n_media_file bad[3] = {{G3N_MEDIA_AUDIO, short_clip, 0, "nothing", NULL, 0},
                             {G3N_MEDIA_AUDIO, jpeg, sizeof(jpeg), "notaudio", NULL, 0},
                             {G3N_MEDIA_IMAGE, jpeg, 0, "noimage", NULL, 0}};
    for (int i = 0; i < 3; i++) {
        assert_int_equal(g3n_pipeline_window_media(&bad[i], 1, &w, &err), G3N_ERR);
        assert_non_null(strstr(err.message, "ERROR_BAD_REQUEST"));
        assert_non_null(strstr(err.message, bad[i].name));
    }
    assert_non_null(strstr(err.message, "encoding image noimage: ERROR_BAD_REQUEST: the image is empty"));
    free(long_clip);
    free(short_clip);
    free(edge_clip);
}

/* `g3n run --demo --audio CLIP`: the prompt tokens it reports (-1 if none). */
static long prompt_tokens(const char *clip)
{
    char command[4096];
    snprintf(command, sizeof(command), "'%s' run --demo --audio '%s' --max-new-tokens 1 'Transcribe.' 2>&1",
             g3n_test_binary(), clip);
    FILE *p = popen(command, "r");
    assert_non_null(p);
    char line[1024];
    long tokens = -1;
    while (fgets(line, sizeof(line), p)) {
        const char *at = strstr(line, "prefill: ");
        if (at)
            tokens = strtol(at + 9, NULL, 10);
        if (strstr(line, "rror"))
            fprintf(stderr, "%s", line);
    }
    assert_int_equal(pclose(p), 0);
    return tokens;
}

static void test_run_demo_long_audio(void **state)
{
    (void)state;
    char dir[1024], path[3][1100];
    g3n_test_temp_dir(dir, sizeof(dir));
    const int seconds[3] = {20, 35, 65};
    long tokens[3];
    for (int i = 0; i < 3; i++) {
        size_t size;
        uint8_t *wav = g3n_test_make_wav((int64_t)seconds[i] * 16000, 12345, &size);
        snprintf(path[i], sizeof(path[i]), "%s/clip%d.wav", dir, seconds[i]);
        FILE *f = fopen(path[i], "wb");
        assert_non_null(f);
        assert_int_equal(fwrite(wav, 1, size, f), size);
        fclose(f);
        free(wav);
        tokens[i] = prompt_tokens(path[i]);
        print_message("%d s of audio: %ld prompt tokens\n", seconds[i], tokens[i]);
        assert_true(tokens[i] > 0);
    }
    g3n_test_remove_tree(dir);
    /* the demo config: 188 audio placeholders per segment, plus its begin/end markers */
    const long per_window = tokens[1] - tokens[0];
    assert_true(per_window >= 188);
    assert_int_equal(tokens[2] - tokens[1], per_window); /* 65 s: one window more than 35 s */
}

static int final_timings(void *user, const G3n__TokenEvent *event)
{
    if (event->timings)
        *(G3n__Timings *)user = *event->timings;
    return 0;
}

static void test_front_door_windows_long_audio(void **state)
{
    (void)state;
    g3n_test_stack stack;
    const char *inproc = "inproc://g3n-test-door-windows";
    g3n_test_stack_open(&stack, inproc, NULL,
                        (1u << G3N_ROLE_AUDIO_ENCODER) | (1u << G3N_ROLE_EMBEDDER) | (1u << G3N_ROLE_DECODER), 3);
    char endpoint[64];
    g3n_front_door *door = g3n_test_front_door_start(&stack, endpoint, sizeof(endpoint));
    g3n_error err = {{0}};
    size_t size;
    uint8_t *wav = g3n_test_make_wav(35 * 16000, 12345, &size); /* two windows: 30 s and 5 s */
    g3n_worker *audio = stack.local.workers[G3N_ROLE_AUDIO_ENCODER];

    /* in this process (g3n run --audio) */
    g3n_client *client;
    assert_int_equal(g3n_client_open(&client, stack.broker, &err), G3N_OK);
    g3n_media_file clip = {G3N_MEDIA_AUDIO, wav, size, "long.wav", NULL, 0};
    g3n_chat_input input = {NULL, "Transcribe.", &clip, 1};
    g3n_pipeline_generate_params params = g3n_pipeline_default_params(&stack.config);
    params.max_new_tokens = 1;
    g3n_pipeline_stats stats;
    uint64_t encodes = g3n_worker_requests_received(audio);
    if (g3n_pipeline_chat(client, &stack.config, stack.tokenizer, &input, &params, NULL, NULL, &stats, &err) !=
        G3N_OK)
        fail_msg("%s", err.message);
    const uint64_t local_encodes = g3n_worker_requests_received(audio) - encodes;
    g3n_client_close(client);

    /* through the front door (g3n run --connect --audio) */
    G3n__ChatRequest request;
    G3n__ChatMessage message, *messages[1] = {&message};
    g3n__chat_request__init(&request);
    g3n__chat_message__init(&message);
    ProtobufCBinaryData data = {size, wav};
    message.role = "user";
    message.text = "Transcribe.";
    message.audios = &data;
    message.n_audios = 1;
    request.messages = messages;
    request.n_messages = 1;
    request.max_new_tokens = 1;
    G3n__Timings timings;
    g3n__timings__init(&timings);
    encodes = g3n_worker_requests_received(audio);
    if (g3n_front_door_chat(endpoint, &request, 120000, final_timings, &timings, &err) != G3N_OK)
        fail_msg("%s", err.message);
    const uint64_t door_encodes = g3n_worker_requests_received(audio) - encodes;
    print_message("35 s clip: %lld prompt tokens, %llu segments in process; %lld, %llu through the front door\n",
                  (long long)stats.prompt_tokens, (unsigned long long)local_encodes, (long long)timings.prompt_tokens,
                  (unsigned long long)door_encodes);
    assert_int_equal(local_encodes, 2);
    assert_int_equal(door_encodes, 2);
    assert_int_equal(timings.prompt_tokens, stats.prompt_tokens);
    free(wav);
    g3n_front_door_stop(door);
    g3n_test_stack_close(&stack);
}

/* The media kinds' table (media_traits.h): every kind has its own encoder role,
 * request and reply bodies and placeholder, and a body maps back to its kind. */
static void test_media_kind_table(void **state)
{
    (void)state;
    for (int k = 0; k < G3N_MEDIA_KIND_COUNT; k++) {
        const g3n_media_traits *t = g3n_media_traits_of((g3n_media_kind)k);
        assert_non_null(t);
        assert_non_null(t->name);
        g3n_media_kind back = G3N_MEDIA_KIND_COUNT;
        assert_int_equal(g3n_media_kind_of_body(t->request_body, &back), G3N_OK);
        assert_int_equal(back, k);
        back = G3N_MEDIA_KIND_COUNT;
        assert_int_equal(g3n_media_kind_of_body(t->reply_body, &back), G3N_OK);
        assert_int_equal(back, k);
        for (int j = 0; j < k; j++) {
            const g3n_media_traits *u = g3n_media_traits_of((g3n_media_kind)j);
            assert_int_not_equal(t->role, u->role);
            assert_int_not_equal(t->item, u->item);
            assert_int_not_equal(t->request_body, u->request_body);
        }
    }
    assert_string_equal(g3n_media_traits_of(G3N_MEDIA_IMAGE)->name, "image");
    assert_int_equal(g3n_media_traits_of(G3N_MEDIA_AUDIO)->role, G3N_ROLE_AUDIO_ENCODER);
    assert_null(g3n_media_traits_of(G3N_MEDIA_KIND_COUNT));
    assert_null(g3n_media_traits_of((g3n_media_kind)-1));
    g3n_media_kind kind;
    assert_int_equal(g3n_media_kind_of_body(G3N__ENVELOPE__BODY_EMBED, &kind), G3N_ERR);
    /* a reply of the other kind has no tokens of this one */
    G3n__Envelope env;
    G3n__EncodeAudioReply reply;
    g3n__envelope__init(&env);
    g3n__encode_audio_reply__init(&reply);
    env.body_case = G3N__ENVELOPE__BODY_ENCODE_AUDIO_REPLY;
    env.encode_audio_reply = &reply;
    assert_null(g3n_media_reply_tokens(&env, G3N_MEDIA_IMAGE));
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_media_kind_table),
        cmocka_unit_test(test_windows),
        cmocka_unit_test(test_run_demo_long_audio),
        cmocka_unit_test(test_front_door_windows_long_audio),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
