/* Audio over 30 s through the pipeline (issue 18, item 1): not cut at the
 * audio encoder's max_samples but split into 30 s windows, each its own audio
 * segment in the prompt, as README promises and as g3n's offline encoding
 * does (audio_stream.h). g3n_pipeline_window_media's windows, the messages
 * expanded to one item per window, and `g3n run --demo --audio` of 20 s, 35 s
 * and 65 s clips: every further window adds the same number of prompt tokens
 * (before: all three gave the same count, everything after 30 s dropped). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "pipeline.h"
#include "test_util.h"

/* A 16 kHz mono int16 WAV of `samples` samples (a tone with some noise), malloc'd. */
static uint8_t *make_wav(int64_t samples, size_t *size)
{
    const uint32_t data_bytes = (uint32_t)(samples * 2);
    uint8_t *wav = malloc(44 + (size_t)data_bytes);
    assert_non_null(wav);
    memcpy(wav, "RIFF", 4);
    const uint32_t riff = 36 + data_bytes, fmt_size = 16, rate = 16000, byte_rate = 32000;
    const uint16_t pcm = 1, channels = 1, align = 2, bits = 16;
    memcpy(wav + 4, &riff, 4);
    memcpy(wav + 8, "WAVEfmt ", 8);
    memcpy(wav + 16, &fmt_size, 4);
    memcpy(wav + 20, &pcm, 2);
    memcpy(wav + 22, &channels, 2);
    memcpy(wav + 24, &rate, 4);
    memcpy(wav + 28, &byte_rate, 4);
    memcpy(wav + 32, &align, 2);
    memcpy(wav + 34, &bits, 2);
    memcpy(wav + 36, "data", 4);
    memcpy(wav + 40, &data_bytes, 4);
    uint64_t state = 12345;
    for (int64_t i = 0; i < samples; i++) {
        state = state * 6364136223846793005ull + 1442695040888963407ull;
        int16_t v = (int16_t)((i * 37 % 2000) - 1000 + (int)((state >> 33) % 400) - 200);
        memcpy(wav + 44 + 2 * i, &v, 2);
    }
    *size = 44 + (size_t)data_bytes;
    return wav;
}

static void test_windows(void **state)
{
    (void)state;
    const int64_t window = 480000; /* 30 s at 16 kHz, the released preprocessor's max_samples */
    size_t long_size, short_size, edge_size;
    uint8_t *long_clip = make_wav(65 * 16000, &long_size);
    uint8_t *short_clip = make_wav(20 * 16000, &short_size);
    uint8_t *edge_clip = make_wav(window + 100, &edge_size); /* a last window shorter than one frame */
    const uint8_t jpeg[4] = {0xff, 0xd8, 0xff, 0xe0};
    g3n_media_file files[4] = {
        {0, jpeg, sizeof(jpeg), "photo", NULL, 0},
        {1, long_clip, long_size, "long", NULL, 0},
        {1, short_clip, short_size, "short", NULL, 0},
        {1, edge_clip, edge_size, "edge", NULL, 0},
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
    assert_int_equal(w.files[0].is_audio, 0);
    assert_ptr_equal(w.files[0].bytes, jpeg);
    const int64_t expected[6] = {window, window, 5 * 16000, 20 * 16000, window, 513};
    for (int i = 0; i < 6; i++) {
        assert_int_equal(w.files[1 + i].is_audio, 1);
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
    g3n_media_file bad[3] = {{1, short_clip, 0, "nothing", NULL, 0},
                             {1, jpeg, sizeof(jpeg), "notaudio", NULL, 0},
                             {0, jpeg, 0, "noimage", NULL, 0}};
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
        uint8_t *wav = make_wav((int64_t)seconds[i] * 16000, &size);
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

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_windows),
        cmocka_unit_test(test_run_demo_long_audio),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
