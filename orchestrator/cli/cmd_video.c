/* g3n video - answers a prompt about a video file or stream, the roles as
 * threads of this process over inproc://: FFmpeg ingest (frames sampled at
 * --fps, capped at --max-frames, the audio track at 16 kHz), each frame and
 * audio segment appended to a live session as it arrives (live_pipeline.h:
 * frames to the vision role, audio as a stream), then the prompt; the answer
 * streams to stdout. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "commands.h"
#include "media_cli.h"
#include "ops.h"
#include "video_ingest.h"

static void print_help(FILE *out)
{
    fprintf(out,
            "usage: g3n video (--model DIR | --synth CONFIG:SEED | --demo) --video FILE|URL [options] PROMPT\n"
            "\n"
            "Answers PROMPT about a video: frames sampled at --fps (then the image preprocessing and the\n"
            "vision tower), the audio track at 16 kHz through the audio encoder, both placed in the prompt\n"
            "in timestamp order (a frame, then the audio up to the next frame), and prefilled while the\n"
            "video is being decoded. FILE|URL: anything FFmpeg opens (a file, - for stdin, tcp://, http://).\n"
            "\n"
            "  --video FILE|URL      the video (required)\n"
            "  --fps N               frames sampled per second of video (default 1)\n"
            "  --max-frames N        at most N frames (default 32)\n"
            "  --no-audio            ignore the audio track\n"
            "  --no-frames           ignore the pictures (audio only)\n");
    g3n_media_cli_help(out);
}

typedef struct video_run {
    g3n_live_pipeline *session;
    g3n_client *client;
    int quiet;
    double start;
} video_run;

static int on_frame(void *user, int index, double seconds, const uint8_t *rgb, int width, int height, g3n_error *err)
{
    video_run *r = user;
    if (g3n_live_pipeline_add_frame_rgb(r->session, r->client, seconds, rgb, width, height, width * 3, err) !=
        G3N_OK)
        return G3N_ERR;
    if (!r->quiet) {
        g3n_live_pipeline_stats s = g3n_live_pipeline_get_stats(r->session);
        fprintf(stderr, "g3n video: frame %d at %.2f s (%dx%d) -> %lld positions, %.1f s elapsed\n", index, seconds,
                width, height, (long long)s.positions, g3n_now_seconds() - r->start);
    }
    return G3N_OK;
}

static int on_audio(void *user, double seconds, const float *samples, int64_t count, g3n_error *err)
{
    video_run *r = user;
    (void)seconds;
    return g3n_live_pipeline_add_audio(r->session, r->client, samples, count, err);
}

int g3n_command_video(int argc, char **argv)
{
    if (g3n_wants_help(argc, argv)) {
        print_help(stdout);
        return 0;
    }
    g3n_media_cli_options o;
    g3n_media_cli_defaults(&o);
    g3n_video_options vo = g3n_video_default_options();
    const char *video = NULL, *prompt = NULL;
    int no_audio = 0, no_frames = 0;
    for (int i = 1; i < argc; i++) {
        int shared = g3n_media_cli_parse(&o, argc, argv, &i, "video");
        if (shared < 0)
            return 2;
        if (shared)
            continue;
        const char *a = argv[i];
        int takes = strcmp(a, "--video") == 0 || strcmp(a, "--fps") == 0 || strcmp(a, "--max-frames") == 0;
        if (takes && i + 1 >= argc) {
            fprintf(stderr, "g3n video: error: %s needs a value\n", a);
            return 2;
        }
        if (strcmp(a, "--video") == 0)
            video = argv[++i];
        else if (strcmp(a, "--fps") == 0)
            vo.fps = strtod(argv[++i], NULL);
        else if (strcmp(a, "--max-frames") == 0)
            vo.max_frames = atoi(argv[++i]);
        else if (strcmp(a, "--no-audio") == 0)
            no_audio = 1;
        else if (strcmp(a, "--no-frames") == 0)
            no_frames = 1;
        else if (a[0] == '-' && a[1] == '-') {
            fprintf(stderr, "g3n video: error: unknown argument '%s' (see --help)\n", a);
            return 2;
        } else if (!prompt)
            prompt = a;
        else {
            fprintf(stderr, "g3n video: error: one PROMPT only (quote it); extra '%s'\n", a);
            return 2;
        }
    }
    if (!video) {
        fprintf(stderr, "g3n video: error: no --video (see --help)\n");
        return 2;
    }
    if (!(vo.fps > 0) || o.max_new_tokens < 1 || (no_audio && no_frames)) {
        fprintf(stderr, "g3n video: error: --fps must be > 0, --max-new-tokens >= 1, and something kept\n");
        return 2;
    }
    if (!prompt)
        prompt = "Describe what happens in this video.";
    g3n_error err = {{0}};
    g3n_media_cli cli;
    g3n_live_pipeline *session = NULL;
    int rc = 1;
    double t0 = g3n_now_seconds();
    if (g3n_media_cli_load(&cli, &o, !no_frames, !no_audio, &err) != G3N_OK)
        goto done;
    g3n_live_pipeline_params lp = g3n_media_cli_live_params(&cli, &o);
    if (g3n_live_pipeline_create(&session, &cli.local.config, cli.local.tokenizer, &lp, &err) != G3N_OK)
        goto done;
    if (!o.quiet)
        fprintf(stderr, "g3n video: model ready in %.2f s (%s)\n", g3n_now_seconds() - t0,
                g3n_weights_describe(cli.local.weights));
    video_run run = {session, cli.client, o.quiet, g3n_now_seconds()};
    g3n_video_info info;
    if (g3n_video_ingest(video, &vo, no_frames ? NULL : on_frame, no_audio ? NULL : on_audio, &run, &info, &err) !=
            G3N_OK ||
        (!no_audio && info.has_audio && g3n_live_pipeline_end_audio(session, cli.client, &err) != G3N_OK))
        goto done;
    g3n_live_pipeline_stats s = g3n_live_pipeline_get_stats(session);
    if (!o.quiet)
        fprintf(stderr,
                "g3n video: %d frames, %d audio segments (%.1f s of audio), %lld positions prefilled in %.1f s "
                "(vision %.1f s, audio %.1f s, prefill %.1f s)\n",
                s.frames, s.audio_segments, (double)s.audio_samples / 16000.0, (long long)s.positions,
                g3n_now_seconds() - run.start, s.vision_seconds, s.audio_seconds, s.prefill_seconds);
    double first, total;
    int64_t tokens;
    if (g3n_media_cli_ask(&cli, cli.client, session, &o, prompt, stdout, &first, &total, &tokens, &err) != G3N_OK)
        goto done;
    if (!o.quiet)
        fprintf(stderr, "g3n video: answer: first token after %.3f s, %lld tokens in %.2f s\n", first,
                (long long)tokens, total);
    rc = 0;
done:
    if (rc != 0)
        fprintf(stderr, "g3n video: error: %s\n", err.message);
    g3n_live_pipeline_free(session, cli.client);
    g3n_media_cli_free(&cli);
    return rc;
}
