/* `g3n run --video` end to end on the demo model (issue 10's interface): a
 * short video is made in the test with the FFmpeg libraries we link (FFV1
 * frames of one colour per second, a 440 Hz tone, Matroska), then answered
 * through the roles (vision encoder, audio encoder, embedder, decoder as
 * threads over inproc://). Checked: the progress lines name every sampled
 * frame (timestamps 0, 1, 2 s) and audio segment (0-1, 1-2, 2-3.5 s) in
 * timestamp order; the prompt length equals media_prompt.h's rendering of
 * frame, audio, frame, audio, frame, audio + the question; the answer streams;
 * and its greedy text equals `g3n video` and `g3n live --ask` (a live session
 * through the roles that appends while it ingests) on the same video, so both paths build the same
 * prompt and soft tokens. Also: the segment cap and argument errors. */
#include <math.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>

#include <cmocka.h>

#include "chat_template.h"
#include "config.h"
#include "media_prompt.h"
#include "test_media_util.h"
#include "test_util.h"
#include "tokenizer.h"

/* the shared test video (dir, video = dir/colours.mkv), made once for the group */
typedef g3n_test_video_fixture fixture;

static char *slurp(const char *path)
{
    FILE *in = fopen(path, "r");
    if (!in)
        return calloc(1, 1);
    fseek(in, 0, SEEK_END);
    long n = ftell(in);
    fseek(in, 0, SEEK_SET);
    char *text = calloc(1, (size_t)n + 1);
    if (fread(text, 1, (size_t)n, in) != (size_t)n)
        text[0] = '\0';
    fclose(in);
    return text;
}

/* Runs `g3n ARGS` with stdout and stderr into files; returns the exit status. */
static int run_g3n(fixture *f, const char *name, const char *args, char **out, char **log)
{
    char command[4096], out_path[700], log_path[700];
    snprintf(out_path, sizeof out_path, "%s/%s.out", f->dir, name);
    snprintf(log_path, sizeof log_path, "%s/%s.log", f->dir, name);
    snprintf(command, sizeof command, "%s %s > %s 2> %s", g3n_test_binary(), args, out_path, log_path);
    int status = system(command);
    *out = slurp(out_path);
    *log = slurp(log_path);
    printf("--- g3n %s\n%s[stdout] %s\n", args, *log, *out);
    return WIFEXITED(status) ? WEXITSTATUS(status) : -1;
}

#define QUESTION "Which colours did you see, and what did you hear?"

static void test_run_video_through_roles(void **state)
{
    fixture *f = *state;
    char args[2048], *out, *log;
    snprintf(args, sizeof args, "run --demo --threads 2 --video %s --max-frames 3 --max-new-tokens 6 '%s'", f->video,
             QUESTION);
    assert_int_equal(run_g3n(f, "run", args, &out, &log), 0);

    /* every frame and audio segment, in timestamp order */
    const char *expected[] = {
        "frame 0 at 0.00 s (64x48) -> vision encoder (segment 0",
        "audio segment 1: 0.00-1.00 s (16000 samples) -> audio encoder",
        "frame 1 at 1.00 s (64x48) -> vision encoder (segment 2",
        "audio segment 3: 1.00-2.00 s (16000 samples) -> audio encoder",
        "frame 2 at 2.00 s (64x48) -> vision encoder (segment 4",
        "audio segment 5: 2.00-3.50 s (24000 samples) -> audio encoder",
        "ingest done: 3 frames, 56000 audio samples (3.50 s)",
        "prompt: 3 frames and 3 audio segments in timestamp order + the question = ",
    };
    const char *at = log;
    for (size_t i = 0; i < sizeof expected / sizeof expected[0]; i++) {
        const char *hit = strstr(at, expected[i]);
        if (!hit)
            fail_msg("missing (in order): %s", expected[i]);
        at = hit;
    }
    /* every segment came back from its encoder */
    for (int k = 0; k < 3; k++) {
        char line[64];
        snprintf(line, sizeof line, "encoded frame %d at %d.00 s", k, k);
        assert_non_null(strstr(log, line));
    }
    assert_non_null(strstr(log, "encoded audio 0.00-1.00 s: 1.00 s of audio"));
    assert_non_null(strstr(log, "encoded audio 2.00-3.50 s: 1.50 s of audio"));

    /* the prompt length is media_prompt.h's layout of those six segments + the question */
    g3n_model_config config;
    g3n_tokenizer *tokenizer = NULL;
    g3n_error err = {{0}};
    char path[1024];
    assert_int_equal(g3n_config_load(&config, "scripts/demo-config.json", &err), G3N_OK);
    assert_int_equal(
        g3n_tokenizer_load(&tokenizer, g3n_test_fixture("tokenizer/tokenizer.json", path, sizeof path), &err), G3N_OK);
    g3n_chat_special_ids special;
    g3n_chat_special_ids_from_config(&special, &config);
    g3n_chat_item_type types[6] = {G3N_CHAT_IMAGE, G3N_CHAT_AUDIO, G3N_CHAT_IMAGE,
                                   G3N_CHAT_AUDIO, G3N_CHAT_IMAGE, G3N_CHAT_AUDIO};
    g3n_chat_prompt prompt;
    assert_int_equal(g3n_media_prompt_render(tokenizer, &special, NULL, types, 6, QUESTION, 1, 1, &prompt, &err),
                     G3N_OK);
    assert_int_equal(prompt.image_count, 3);
    assert_int_equal(prompt.audio_count, 3);
    assert_true(prompt.ids.count > 3 * config.vision_soft_tokens_per_image + 3 * config.audio_soft_tokens_per_image);
    char line[160];
    snprintf(line, sizeof line, "+ the question = %lld tokens", (long long)prompt.ids.count);
    assert_non_null(strstr(log, line));
    snprintf(line, sizeof line, "g3n run: %lld prompt tokens", (long long)prompt.ids.count);
    assert_non_null(strstr(log, line));
    g3n_chat_prompt_free(&prompt);
    g3n_tokenizer_free(tokenizer);
    g3n_config_free(&config);

    /* the answer streamed */
    assert_true(strlen(out) > 1);

    /* the same video through a live session (g3n video: appended while it is decoded): the same greedy answer */
    char *live_out, *live_log;
    snprintf(args, sizeof args, "video --demo --threads 2 --video %s --max-frames 3 --max-new-tokens 6 '%s'", f->video,
             QUESTION);
    assert_int_equal(run_g3n(f, "video", args, &live_out, &live_log), 0);
    assert_non_null(strstr(live_log, "3 frames, 3 audio segments (3.5 s of audio)"));
    assert_string_equal(out, live_out);
    free(live_out);
    free(live_log);
    /* and g3n live asked once the stream ended: the same again */
    snprintf(args, sizeof args,
             "live --demo --threads 2 --video %s --max-frames 3 --max-new-tokens 6 --ask '%s'", f->video, QUESTION);
    assert_int_equal(run_g3n(f, "live", args, &live_out, &live_log), 0);
    assert_non_null(strstr(live_log, "(3 frames, 3 audio segments"));
    assert_string_equal(out, live_out);
    free(live_out);
    free(live_log);
    free(out);
    free(log);
}

static void test_run_video_errors(void **state)
{
    fixture *f = *state;
    char args[2048], *out, *log;
    /* too many segments for one prompt: named, with what to change */
    snprintf(args, sizeof args, "run --demo --threads 2 --video %s --fps 10 --max-frames 40 --max-new-tokens 2 hi",
             f->video);
    assert_int_equal(run_g3n(f, "cap", args, &out, &log), 1);
    assert_non_null(strstr(log, "more than 64 frames and audio segments in one prompt (lower --max-frames or --fps)"));
    free(out);
    free(log);
    /* no such input: the url is named */
    snprintf(args, sizeof args, "run --demo --video %s/missing.mkv hi", f->dir);
    assert_int_equal(run_g3n(f, "missing", args, &out, &log), 1);
    assert_non_null(strstr(log, "missing.mkv"));
    free(out);
    free(log);
    /* --video goes alone */
    snprintf(args, sizeof args, "run --demo --video %s --image assets/demo-image.jpg hi", f->video);
    assert_int_equal(run_g3n(f, "alone", args, &out, &log), 2);
    assert_non_null(strstr(log, "--video goes alone"));
    free(out);
    free(log);
    assert_int_equal(run_g3n(f, "help", "run --help", &out, &log), 0);
    assert_non_null(strstr(out, "--video FILE|URL"));
    assert_non_null(strstr(out, "--max-frames N"));
    free(out);
    free(log);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_run_video_through_roles),
        cmocka_unit_test(test_run_video_errors),
    };
    return cmocka_run_group_tests(tests, g3n_test_video_setup, g3n_test_video_teardown);
}
