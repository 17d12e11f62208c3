/* g3n live - a live session in the terminal: media stream in on one thread
 * (an audio stream, or a video with its audio, through FFmpeg) and are
 * appended as they arrive (live_pipeline.h, the roles as threads); questions typed
 * on stdin (one per line) are answered at any moment against everything
 * streamed so far. The session is shared under a mutex: while an answer is
 * generated, the ingest waits. */
#include <limits.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "commands.h"
#include "live_connect.h"
#include "media_cli.h"
#include "ops.h"
#include "video_ingest.h"

typedef struct live_run {
    pthread_mutex_t lock;
    pthread_cond_t changed;
    g3n_live_pipeline *session;
    g3n_broker *broker;  /* the ingest thread opens its own client of it */
    g3n_client *client;  /* the ingest thread's */
    const char *url;
    g3n_video_options video;
    int with_frames, realtime, quiet;
    double start;        /* wall clock at the start of the ingest */
    double media_seconds;
    int finished;        /* ingest ended */
    volatile int stop;   /* asked to stop (also interrupts blocking reads) */
    int status;
    g3n_error err;
} live_run;

static void pace(live_run *r, double media_seconds)
{
    if (!r->realtime)
        return;
    double wait = media_seconds - (g3n_now_seconds() - r->start);
    if (wait > 0) {
        struct timespec ts = {(time_t)wait, (long)((wait - (double)(time_t)wait) * 1e9)};
        nanosleep(&ts, NULL);
    }
}

static int on_frame(void *user, int index, double seconds, const uint8_t *rgb, int width, int height, g3n_error *err)
{
    live_run *r = user;
    (void)index;
    pace(r, seconds);
    pthread_mutex_lock(&r->lock);
    int rc = r->stop ? g3n_error_set(err, "stopped")
                     : g3n_live_pipeline_add_frame_rgb(r->session, r->client, seconds, rgb, width, height,
                                                       width * 3, err);
    if (rc == G3N_OK && seconds > r->media_seconds)
        r->media_seconds = seconds;
    pthread_cond_broadcast(&r->changed);
    pthread_mutex_unlock(&r->lock);
    return rc;
}

static int on_audio(void *user, double seconds, const float *samples, int64_t count, g3n_error *err)
{
    live_run *r = user;
    double end = seconds + (double)count / 16000.0;
    pace(r, end);
    pthread_mutex_lock(&r->lock);
    int rc = r->stop ? g3n_error_set(err, "stopped")
                     : g3n_live_pipeline_add_audio(r->session, r->client, samples, count, err);
    if (rc == G3N_OK && end > r->media_seconds)
        r->media_seconds = end;
    pthread_cond_broadcast(&r->changed);
    pthread_mutex_unlock(&r->lock);
    return rc;
}

static void *ingest_thread(void *user)
{
    live_run *r = user;
    g3n_error err = {{0}};
    g3n_video_info info;
    memset(&info, 0, sizeof(info));
    int rc = g3n_client_open(&r->client, r->broker, &err);
    if (rc == G3N_OK)
        rc = g3n_video_ingest(r->url, &r->video, r->with_frames ? on_frame : NULL, on_audio, r, &info, &err);
    pthread_mutex_lock(&r->lock);
    if (rc == G3N_OK && info.has_audio)
        rc = g3n_live_pipeline_end_audio(r->session, r->client, &err);
    g3n_client_close(r->client);
    r->client = NULL;
    if (rc != G3N_OK && !r->stop) {
        r->status = G3N_ERR;
        r->err = err;
    }
    r->finished = 1;
    pthread_cond_broadcast(&r->changed);
    pthread_mutex_unlock(&r->lock);
    if (!r->quiet && rc == G3N_OK)
        fprintf(stderr, "g3n live: the stream ended after %.1f s of media\n", r->media_seconds);
    return NULL;
}

/* Asks under the lock and reports. */
static int ask(live_run *r, g3n_media_cli *cli, const g3n_media_cli_options *o, const char *question, g3n_error *err)
{
    pthread_mutex_lock(&r->lock);
    g3n_live_pipeline_stats before = g3n_live_pipeline_get_stats(r->session);
    double media = r->media_seconds;
    double first, total;
    int64_t tokens;
    int rc = g3n_media_cli_ask(cli, cli->client, r->session, o, question, stdout, &first, &total, &tokens, err);
    g3n_live_pipeline_stats after = g3n_live_pipeline_get_stats(r->session);
    pthread_mutex_unlock(&r->lock);
    if (rc == G3N_OK && !o->quiet)
        fprintf(stderr,
                "g3n live: after %.1f s of media (%d frames, %d audio segments, %lld positions in the cache): "
                "first token %.3f s (question prefill: %lld positions in %.3f s), %lld tokens in %.2f s; ingest so far: "
                "audio %.1f s, vision %.1f s, prefill %.1f s of compute\n",
                media, before.frames, before.audio_segments, (long long)before.positions, first,
                (long long)after.question_positions, after.question_seconds, (long long)tokens, total,
                before.audio_seconds, before.vision_seconds, before.prefill_seconds);
    return rc;
}

/* The command line of g3n live (without --connect: live_connect.h), parsed. */
typedef struct live_args {
    g3n_media_cli_options media;
    const char *audio_url, *video_url, *questions_path, *ask_text, *connect;
    double after;
    double fps;
    int max_frames, realtime;
} live_args;

/* -1 to go on, else the exit code. */
static int parse_args(live_args *a, int argc, char **argv)
{
    memset(a, 0, sizeof(*a));
    g3n_media_cli_defaults(&a->media);
    a->fps = g3n_video_default_options().fps;
    const g3n_option options[] = {
        G3N_STRING("audio-stream", &a->audio_url, "URL|-", "an audio stream (any format FFmpeg reads)"),
        G3N_STRING("video", &a->video_url, "URL", "a video stream: frames and its audio track"),
        G3N_DOUBLE("fps", &a->fps, 1e-6, 1000, "N", "video frames sampled per second (default 1)"),
        G3N_INT("max-frames", &a->max_frames, 1, INT_MAX, "N", "at most N frames (default: no limit)"),
        G3N_FLAG("realtime", &a->realtime, "read a file no faster than it plays (as a live source would arrive)"),
        G3N_STRING("questions", &a->questions_path, "FILE",
                   "read the questions from FILE (default stdin; /dev/tty when the\n"
                   "media come on stdin)"),
        G3N_STRING("ask", &a->ask_text, "TEXT",
                   "instead of reading questions: ask TEXT once, after --after seconds of\n"
                   "media (or at the end of the stream), print the timings and stop"),
        G3N_DOUBLE("after", &a->after, 0, 1e9, "SECONDS", "with --ask (default 0: at the end of the stream)"),
        G3N_STRING("connect", &a->connect, "ENDPOINT",
                   "the session on a g3n-orchestrator instead (g3n live --connect --help)"),
        G3N_MEDIA_CLI_OPTIONS(&a->media),
    };
    const g3n_command_spec spec = {
        .name = "g3n live",
        .usage = "g3n live (--model DIR | --synth CONFIG:SEED | --demo) (--audio-stream URL|- | --video URL)\n"
                 "                [options]",
        .about = "Streams media into a live session and answers questions typed on stdin (one per line) while\n"
                 "it streams: each frame and each piece of audio is encoded and prefilled into the KV cache as it\n"
                 "arrives, so a question only prefills the question. URL: anything FFmpeg opens (a file, - for\n"
                 "stdin, tcp://HOST:PORT, udp://, http://, rtp://...).\n",
        .help_column = 24,
    };
    int rc = g3n_options_main(&spec, options, G3N_OPTION_COUNT(options), argc, argv);
    if (rc < 0 && (a->audio_url != NULL) + (a->video_url != NULL) != 1)
        return g3n_options_usage_error(&spec, "give one of --audio-stream, --video");
    return rc;
}

/* Waits for --after seconds of media (or the end), then asks once. */
static int ask_once(live_run *r, g3n_media_cli *cli, const g3n_media_cli_options *o, const live_args *a,
                    g3n_error *err)
{
    pthread_mutex_lock(&r->lock);
    while (!r->finished && (a->after <= 0 || r->media_seconds < a->after))
        pthread_cond_wait(&r->changed, &r->lock);
    int failed = r->status != G3N_OK;
    if (failed)
        *err = r->err;
    pthread_mutex_unlock(&r->lock);
    return failed ? G3N_ERR : ask(r, cli, o, a->ask_text, err);
}

/* Answers each line of questions until its end (or the ingest fails). */
static int ask_each_line(live_run *r, g3n_media_cli *cli, const g3n_media_cli_options *o, FILE *questions,
                         g3n_error *err)
{
    char line[4096];
    while (fgets(line, sizeof line, questions)) {
        size_t n = strlen(line);
        while (n > 0 && (line[n - 1] == '\n' || line[n - 1] == '\r'))
            line[--n] = '\0';
        if (n == 0)
            continue;
        pthread_mutex_lock(&r->lock);
        int failed = r->status != G3N_OK;
        if (failed)
            *err = r->err;
        pthread_mutex_unlock(&r->lock);
        if (failed || ask(r, cli, o, line, err) != G3N_OK)
            return G3N_ERR;
    }
    return G3N_OK;
}

/* Loads the roles, streams the media on a thread and answers: the exit code. */
static int run_live(live_args *a, live_run *r)
{
    const g3n_media_cli_options *o = &a->media;
    r->video = g3n_video_default_options();
    r->video.fps = a->fps;
    r->video.max_frames = a->max_frames;
    r->realtime = a->realtime;
    r->url = a->audio_url ? a->audio_url : a->video_url;
    r->video.cancel = &r->stop;
    r->with_frames = a->video_url != NULL;
    r->quiet = o->quiet;
    const char *questions_path = a->questions_path;
    if (!questions_path && !a->ask_text && (strcmp(r->url, "-") == 0 || strcmp(r->url, "pipe:0") == 0))
        questions_path = "/dev/tty"; /* the media come on stdin */
    g3n_error err = {{0}};
    g3n_media_cli cli;
    int rc = 1, started = 0;
    pthread_t thread;
    FILE *questions = NULL;
    pthread_mutex_init(&r->lock, NULL);
    pthread_cond_init(&r->changed, NULL);
    double t0 = g3n_now_seconds();
    if (g3n_media_cli_load(&cli, o, r->with_frames, 1, &err) != G3N_OK)
        goto done;
    g3n_live_pipeline_params lp = g3n_media_cli_live_params(&cli, o);
    if (g3n_live_pipeline_create(&r->session, &cli.local.config, cli.local.tokenizer, &lp, &err) != G3N_OK)
        goto done;
    r->broker = cli.local.broker;
    if (!a->ask_text && !(questions = questions_path ? fopen(questions_path, "r") : stdin)) {
        g3n_error_set(&err, "cannot open %s for the questions", questions_path);
        goto done;
    }
    if (!o->quiet)
        fprintf(stderr, "g3n live: model ready in %.2f s (%s); streaming %s%s\n", g3n_now_seconds() - t0,
                g3n_weights_describe(cli.local.weights), r->url,
                a->ask_text ? "" : "; type a question and Enter at any time (Ctrl-D ends)");
    r->start = g3n_now_seconds();
    if (pthread_create(&thread, NULL, ingest_thread, r) != 0) {
        g3n_error_set(&err, "cannot start the ingest thread");
        goto done;
    }
    started = 1;
    if ((a->ask_text ? ask_once(r, &cli, o, a, &err) : ask_each_line(r, &cli, o, questions, &err)) != G3N_OK)
        goto done;
    pthread_mutex_lock(&r->lock);
    rc = r->status == G3N_OK ? 0 : 1;
    if (rc != 0)
        err = r->err;
    pthread_mutex_unlock(&r->lock);
done:
    if (started) {
        pthread_mutex_lock(&r->lock);
        r->stop = 1;
        pthread_mutex_unlock(&r->lock);
        pthread_join(thread, NULL);
    }
    if (rc != 0)
        fprintf(stderr, "g3n live: error: %s\n", err.message);
    if (questions && questions != stdin)
        fclose(questions);
    g3n_live_pipeline_free(r->session, cli.client);
    g3n_media_cli_free(&cli);
    pthread_mutex_destroy(&r->lock);
    pthread_cond_destroy(&r->changed);
    return rc;
}

int g3n_command_live(int argc, char **argv)
{
    if (g3n_live_connect_wanted(argc, argv)) /* the session on a g3n-orchestrator: live_connect.h */
        return g3n_command_live_connect(argc, argv);
    live_args args;
    int rc = parse_args(&args, argc, argv);
    if (rc >= 0)
        return rc;
    static live_run r; /* the ingest thread's callbacks reach it */
    memset(&r, 0, sizeof(r));
    return run_live(&args, &r);
}
