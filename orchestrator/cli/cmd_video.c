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

/* The command line of g3n video, parsed. */
typedef struct video_args {
    g3n_media_cli_options media;
    g3n_video_options video;
    const char *url, *prompt;
    int no_audio, no_frames;
} video_args;

/* -1 to go on, else the exit code. */
static int parse_args(video_args *a, int argc, char **argv)
{
    memset(a, 0, sizeof(*a));
    g3n_media_cli_defaults(&a->media);
    a->video = g3n_video_default_options();
    g3n_option_list prompt = {&a->prompt, 1, 0};
    const g3n_option options[] = {
        G3N_STRING("video", &a->url, "FILE|URL", "the video (required)"),
        G3N_DOUBLE("fps", &a->video.fps, 1e-6, 1000, "N", "frames sampled per second of video (default 1)"),
        G3N_INT("max-frames", &a->video.max_frames, 1, 1 << 20, "N", "at most N frames (default 32)"),
        G3N_FLAG("no-audio", &a->no_audio, "ignore the audio track"),
        G3N_FLAG("no-frames", &a->no_frames, "ignore the pictures (audio only)"),
        G3N_MEDIA_CLI_OPTIONS(&a->media),
    };
    const g3n_command_spec spec = {
        .name = "g3n video",
        .usage = "g3n video (--model DIR | --synth CONFIG:SEED | --demo) --video FILE|URL [options] PROMPT",
        .about = "Answers PROMPT about a video: frames sampled at --fps (then the image preprocessing and the\n"
                 "vision tower), the audio track at 16 kHz through the audio encoder, both placed in the prompt\n"
                 "in timestamp order (a frame, then the audio up to the next frame), and prefilled while the\n"
                 "video is being decoded. FILE|URL: anything FFmpeg opens (a file, - for stdin, tcp://, http://).\n"
                 "PROMPT (one argument; quote it) defaults to \"Describe what happens in this video.\"\n",
        .positionals = &prompt,
        .help_column = 24,
    };
    int rc = g3n_options_main(&spec, options, G3N_OPTION_COUNT(options), argc, argv);
    if (rc >= 0)
        return rc;
    if (!a->url)
        return g3n_options_usage_error(&spec, "no --video");
    if (a->no_audio && a->no_frames)
        return g3n_options_usage_error(&spec, "--no-audio and --no-frames leave nothing to answer about");
    if (!a->prompt)
        a->prompt = "Describe what happens in this video.";
    return -1;
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

/* Streams the video into a live session on the roles, then asks: the exit code. */
static int run_video(const video_args *a)
{
    const g3n_media_cli_options *o = &a->media;
    g3n_error err = {{0}};
    g3n_media_cli cli;
    g3n_live_pipeline *session = NULL;
    int rc = 1;
    double t0 = g3n_now_seconds();
    if (g3n_media_cli_load(&cli, o, !a->no_frames, !a->no_audio, &err) != G3N_OK)
        goto done;
    g3n_live_pipeline_params lp = g3n_media_cli_live_params(&cli, o);
    if (g3n_live_pipeline_create(&session, &cli.local.config, cli.local.tokenizer, &lp, &err) != G3N_OK)
        goto done;
    if (!o->quiet)
        fprintf(stderr, "g3n video: model ready in %.2f s (%s)\n", g3n_now_seconds() - t0,
                g3n_weights_describe(cli.local.weights));
    video_run run = {session, cli.client, o->quiet, g3n_now_seconds()};
    g3n_video_info info;
    if (g3n_video_ingest(a->url, &a->video, a->no_frames ? NULL : on_frame, a->no_audio ? NULL : on_audio, &run, &info,
                         &err) != G3N_OK ||
        (!a->no_audio && info.has_audio && g3n_live_pipeline_end_audio(session, cli.client, &err) != G3N_OK))
        goto done;
    g3n_live_pipeline_stats s = g3n_live_pipeline_get_stats(session);
    if (!o->quiet)
        fprintf(stderr,
                "g3n video: %d frames, %d audio segments (%.1f s of audio), %lld positions prefilled in %.1f s "
                "(vision %.1f s, audio %.1f s, prefill %.1f s)\n",
                s.frames, s.audio_segments, (double)s.audio_samples / 16000.0, (long long)s.positions,
                g3n_now_seconds() - run.start, s.vision_seconds, s.audio_seconds, s.prefill_seconds);
    double first, total;
    int64_t tokens;
    if (g3n_media_cli_ask(&cli, cli.client, session, o, a->prompt, stdout, &first, &total, &tokens, &err) != G3N_OK)
        goto done;
    if (!o->quiet)
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

int g3n_command_video(int argc, char **argv)
{
    video_args args;
    int rc = parse_args(&args, argc, argv);
    return rc >= 0 ? rc : run_video(&args);
}
