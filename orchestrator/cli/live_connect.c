/* live_connect.c - live sessions on a g3n-orchestrator from the terminal
 * (live_connect.h). */
#include "live_connect.h"

#include <limits.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "commands.h"
#include "curve_keys.h"
#include "json_util.h"
#include "live_client.h"
#include "option_groups.h"
#include "ops.h"

int g3n_live_connect_wanted(int argc, char **argv)
{
    for (int i = 1; i < argc; i++)
        if (strcmp(argv[i], "--connect") == 0 || strncmp(argv[i], "--connect=", 10) == 0)
            return 1;
    return 0;
}

/* Prints an answer's events; user: an answer_print. */
typedef struct answer_print {
    int finish;
    int64_t tokens;
    double first_token_seconds, started;
    int print_ids;
    char ids[8192];
    size_t ids_size;
    G3n__Timings timings;
    char decoder[64];
} answer_print;

static int print_event(void *user, const G3n__TokenEvent *event)
{
    answer_print *a = user;
    if (event->finish == G3N__FINISH_REASON__FINISH_NONE) {
        if (a->tokens == 0)
            a->first_token_seconds = g3n_now_seconds() - a->started;
        a->tokens++;
        if (a->ids_size + 16 < sizeof(a->ids))
            a->ids_size += (size_t)snprintf(a->ids + a->ids_size, sizeof(a->ids) - a->ids_size, "%s%d",
                                            a->ids_size ? " " : "", event->id);
    } else {
        a->finish = (int)event->finish;
        if (event->timings) {
            a->timings = *event->timings;
            snprintf(a->decoder, sizeof(a->decoder), "%s", event->timings->decoder ? event->timings->decoder : "");
        }
    }
    if (event->text && event->text[0]) {
        fputs(event->text, stdout);
        fflush(stdout);
    }
    return 0;
}

/* Asks and prints; a cancelled answer is an error. */
static int ask_and_print(g3n_live_client *client, const char *command, const char *question,
                         const G3n__SamplingParams *sampling, uint32_t max_new, int print_ids, int quiet,
                         g3n_error *err)
{
    answer_print a;
    memset(&a, 0, sizeof(a));
    a.print_ids = print_ids;
    a.started = g3n_now_seconds();
    if (g3n_live_client_ask(client, question, sampling, max_new, print_event, &a, err) != G3N_OK) {
        fputc('\n', stdout);
        return G3N_ERR;
    }
    fputc('\n', stdout);
    fflush(stdout);
    if (a.finish == G3N__FINISH_REASON__FINISH_CANCELLED)
        return g3n_error_set(err, "the orchestrator cancelled the answer before it ended (it is stopping); the text "
                                  "above is incomplete");
    if (print_ids)
        fprintf(stderr, "%s: token ids: %s\n", command, a.ids);
    if (!quiet) {
        g3n_live_client_state st = g3n_live_client_get_state(client);
        fprintf(stderr,
                "%s: session %s: first token %.3f s, %lld tokens in %.2f s (%s) on %s; question prefill %lld "
                "positions; %u rebuilds; before it: %d frames, %d audio segments, %lld positions\n",
                command, g3n_live_client_session_id(client), a.first_token_seconds, (long long)a.tokens,
                g3n_now_seconds() - a.started,
                a.finish == G3N__FINISH_REASON__FINISH_STOP ? "end of turn" : "length limit", a.decoder,
                (long long)a.timings.prompt_tokens, a.timings.rebuilds, st.frames, st.audio_segments,
                (long long)st.positions);
    }
    return G3N_OK;
}

/* ---- the ingest: frames and audio to the session, in timestamp order ---- */
typedef struct ingest_run {
    pthread_mutex_t lock;
    pthread_cond_t changed;
    g3n_live_client *client;
    const char *url;
    g3n_video_options video;
    int with_frames, with_audio, realtime, quiet;
    const char *command;
    double start, media_seconds;
    int finished;
    volatile int stop;
    int status;
    g3n_error err;
} ingest_run;

static void pace(ingest_run *r, double media_seconds)
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
    ingest_run *r = user;
    pace(r, seconds);
    pthread_mutex_lock(&r->lock);
    int rc = r->stop ? g3n_error_set(err, "stopped")
                     : g3n_live_client_frame_rgb(r->client, seconds, rgb, width, height, width * 3, err);
    if (rc == G3N_OK && seconds > r->media_seconds)
        r->media_seconds = seconds;
    pthread_cond_broadcast(&r->changed);
    pthread_mutex_unlock(&r->lock);
    if (rc == G3N_OK && !r->quiet)
        fprintf(stderr, "%s: frame %d at %.2f s (%dx%d) sent\n", r->command, index, seconds, width, height);
    return rc;
}

static int on_audio(void *user, double seconds, const float *samples, int64_t count, g3n_error *err)
{
    ingest_run *r = user;
    double end = seconds + (double)count / 16000.0;
    pace(r, end);
    pthread_mutex_lock(&r->lock);
    int rc = r->stop ? g3n_error_set(err, "stopped") : g3n_live_client_audio(r->client, samples, count, err);
    if (rc == G3N_OK && end > r->media_seconds)
        r->media_seconds = end;
    pthread_cond_broadcast(&r->changed);
    pthread_mutex_unlock(&r->lock);
    return rc;
}

/* The whole ingest; the audio segment is ended at the end of the stream. */
static int ingest(ingest_run *r, g3n_error *err)
{
    g3n_video_info info;
    r->video.want_video = r->with_frames;
    r->video.want_audio = r->with_audio;
    int rc = g3n_video_ingest(r->url, &r->video, r->with_frames ? on_frame : NULL, r->with_audio ? on_audio : NULL, r,
                              &info, err);
    if (rc == G3N_OK && r->with_audio && info.has_audio) {
        pthread_mutex_lock(&r->lock);
        rc = g3n_live_client_end_audio(r->client, err);
        pthread_mutex_unlock(&r->lock);
    }
    return rc;
}

static void *ingest_thread(void *user)
{
    ingest_run *r = user;
    g3n_error err = {{0}};
    int rc = ingest(r, &err);
    pthread_mutex_lock(&r->lock);
    if (rc != G3N_OK && !r->stop) {
        r->status = G3N_ERR;
        r->err = err;
    }
    r->finished = 1;
    pthread_cond_broadcast(&r->changed);
    pthread_mutex_unlock(&r->lock);
    if (!r->quiet && rc == G3N_OK)
        fprintf(stderr, "%s: the stream ended after %.1f s of media\n", r->command, r->media_seconds);
    return NULL;
}

int g3n_run_video_connected(const char *endpoint, const g3n_transport_options *transport, const char *system,
                            const char *prompt, const char *url, const g3n_video_options *video,
                            int64_t max_new_tokens, const G3n__SamplingParams *sampling, int quiet)
{
    g3n_error err = {{0}};
    g3n_live_client_options lo = g3n_live_client_default_options();
    lo.system = system;
    ingest_run r;
    memset(&r, 0, sizeof(r));
    r.url = url;
    r.video = *video;
    r.with_frames = video->want_video;
    r.with_audio = video->want_audio;
    r.quiet = quiet;
    r.command = "g3n run";
    pthread_mutex_init(&r.lock, NULL);
    pthread_cond_init(&r.changed, NULL);
    int rc = 1;
    const double started = g3n_now_seconds();
    if (g3n_live_client_open(&r.client, endpoint, transport, &lo, &err) != G3N_OK)
        goto done;
    if (!quiet)
        fprintf(stderr, "g3n run: live session %s on the orchestrator at %s; streaming %s\n",
                g3n_live_client_session_id(r.client), endpoint, url);
    r.start = g3n_now_seconds();
    if (ingest(&r, &err) != G3N_OK || g3n_live_client_refresh(r.client, &err) != G3N_OK)
        goto done;
    if (!quiet) {
        g3n_live_client_state st = g3n_live_client_get_state(r.client);
        fprintf(stderr,
                "g3n run: video: %d frames, %d audio segments (%.2f s of audio), %lld positions in the session after "
                "%.2f s\n",
                st.frames, st.audio_segments, (double)st.audio_samples / 16000.0, (long long)st.positions,
                g3n_now_seconds() - started);
    }
    if (ask_and_print(r.client, "g3n run", prompt, sampling, (uint32_t)max_new_tokens, 0, quiet, &err) != G3N_OK)
        goto done;
    rc = 0;
done:
    if (rc != 0)
        fprintf(stderr, "g3n run: error: %s\n", err.message);
    g3n_live_client_close(r.client);
    pthread_mutex_destroy(&r.lock);
    pthread_cond_destroy(&r.changed);
    return rc;
}

#define MAX_ASKS 16

/* The command line of g3n live --connect, parsed. */
typedef struct live_connect_args {
    const char *endpoint, *audio_url, *video_url, *questions_path, *system, *attach;
    const char *ask_items[MAX_ASKS], *image_items[MAX_ASKS];
    g3n_option_list asks, images;
    int keep, print_ids, no_audio, realtime, quiet, max_frames, top_k;
    double fps, after, temperature, top_p;
    int64_t max_new, context;
    uint64_t seed;
    g3n_security_flags security;
} live_connect_args;

static const g3n_command_spec live_connect_spec = {
    .name = "g3n live",
    .usage = "g3n live --connect ENDPOINT (--audio-stream URL|- | --video URL | --session ID) [options]",
    .about = "A live session on a g3n-orchestrator (its --listen endpoint): the media are decoded here\n"
             "(FFmpeg) and streamed to it as they arrive - video frames as RGB, audio as 16 kHz pieces -\n"
             "where its daemons encode them and prefill their soft tokens into the session's decoder\n"
             "session; questions typed on stdin (one per line) are answered at any moment against\n"
             "everything streamed so far. Nothing is loaded here. URL: anything FFmpeg opens.\n",
    .help_column = 24,
};

/* -1 to go on, else the exit code. */
static int parse_args(live_connect_args *a, int argc, char **argv)
{
    memset(a, 0, sizeof(*a));
    a->asks = (g3n_option_list){a->ask_items, MAX_ASKS, 0};
    a->images = (g3n_option_list){a->image_items, MAX_ASKS, 0};
    a->fps = g3n_video_default_options().fps;
    a->top_p = 1.0;
    a->max_new = 64;
    const g3n_option options[] = {
        G3N_STRING("connect", &a->endpoint, "ENDPOINT", "the orchestrator's client endpoint (tcp://HOST:5556)"),
        G3N_STRING("audio-stream", &a->audio_url, "URL|-", "an audio stream (any format FFmpeg reads)"),
        G3N_STRING("video", &a->video_url, "URL", "a video stream: frames and its audio track"),
        G3N_LIST("image", &a->images, "FILE", "an image file sent as a frame (at 0 s) before the stream; repeatable"),
        G3N_FLAG("no-audio", &a->no_audio, "with --video: ignore its audio track"),
        G3N_DOUBLE("fps", &a->fps, 1e-6, 1000, "N", "video frames sampled per second (default 1)"),
        G3N_INT("max-frames", &a->max_frames, 1, INT_MAX, "N", "at most N frames (default: no limit)"),
        G3N_FLAG("realtime", &a->realtime, "read a file no faster than it plays (as a live source would arrive)"),
        G3N_STRING("questions", &a->questions_path, "FILE",
                   "read the questions from FILE (default stdin; /dev/tty when the\nmedia come on stdin)"),
        G3N_LIST("ask", &a->asks, "TEXT",
                 "instead of reading questions: ask TEXT after --after seconds of\n"
                 "media (or at the end of the stream); repeatable, asked in order"),
        G3N_DOUBLE("after", &a->after, 0, 1e9, "SECONDS", "with --ask (default 0: at the end of the stream)"),
        G3N_STRING("session", &a->attach, "ID",
                   "continue the live session ID (opened with this client key, e.g. by\n"
                   "another g3n live --keep): stream more media into it, or only ask"),
        G3N_FLAG("keep", &a->keep, "leave the session open at the end (its id goes to stderr; it is\n"
                                   "closed when idle for the orchestrator's limit)"),
        G3N_STRING("system", &a->system, "TEXT", "a system prompt"),
        G3N_INT64("context", &a->context, 1, INT64_MAX, "N",
                  "the session's KV cache positions (default: the model's maximum)"),
        G3N_INT64("max-new-tokens", &a->max_new, 1, UINT32_MAX, "N", "answer length limit (default 64)"),
        G3N_DOUBLE("temperature", &a->temperature, 0, 1e6, "T", "sample with temperature T (default: greedy)"),
        G3N_INT("top-k", &a->top_k, 0, INT_MAX, "K", "keep the K most likely tokens (with --temperature)"),
        G3N_DOUBLE("top-p", &a->top_p, 0, 1, "P", "nucleus filter (with --temperature; default 1)"),
        G3N_UINT64("seed", &a->seed, 0, 0, "N", "sampling seed"),
        G3N_FLAG("token-ids", &a->print_ids, "print each answer's token ids to stderr"),
        G3N_FLAG("quiet", &a->quiet, "no progress lines"),
        G3N_SECTION("Security of tcp:// (README \"Security\"):"),
        G3N_OPTIONS_SECURITY_CONNECT(&a->security),
    };
    int rc = g3n_options_main(&live_connect_spec, options, G3N_OPTION_COUNT(options), argc, argv);
    if (rc >= 0)
        return rc;
    if (!a->endpoint || (a->audio_url != NULL) + (a->video_url != NULL) > 1 ||
        (!a->attach && !a->audio_url && !a->video_url) || (a->attach && (a->system || a->context)))
        return g3n_options_usage_error(&live_connect_spec, "--connect ENDPOINT and one of --audio-stream, --video (or "
                                                           "--session ID to continue a session; then no --system or "
                                                           "--context)");
    if (a->no_audio && a->audio_url)
        return g3n_options_usage_error(&live_connect_spec, "--no-audio goes with --video");
    return -1;
}

/* The --image files, each sent as a frame at 0 s. */
static int send_images(ingest_run *r, const live_connect_args *a, g3n_error *err)
{
    for (int k = 0; k < a->images.count; k++) {
        char *bytes = NULL;
        size_t size = 0;
        if (g3n_read_file(a->image_items[k], &bytes, &size, err) != G3N_OK)
            return G3N_ERR;
        int sent = g3n_live_client_image(r->client, 0.0, bytes, size, err);
        free(bytes);
        if (sent != G3N_OK)
            return G3N_ERR;
        if (!r->quiet)
            fprintf(stderr, "g3n live: image %s sent as a frame\n", a->image_items[k]);
    }
    return G3N_OK;
}

/* Asks each --ask (after --after seconds of media) or each line of
 * questions, while the ingest goes on. */
static int ask_all(ingest_run *r, const live_connect_args *a, FILE *questions, const G3n__SamplingParams *sampling,
                   g3n_error *err)
{
    char line[4096];
    for (int k = 0;; k++) {
        const char *question = NULL;
        if (a->asks.count) {
            if (k == a->asks.count)
                break;
            question = a->ask_items[k];
            pthread_mutex_lock(&r->lock);
            while (!r->finished && (a->after <= 0 || r->media_seconds < a->after) && r->status == G3N_OK)
                pthread_cond_wait(&r->changed, &r->lock);
            pthread_mutex_unlock(&r->lock);
        } else {
            if (!fgets(line, sizeof line, questions))
                break;
            size_t n = strlen(line);
            while (n > 0 && (line[n - 1] == '\n' || line[n - 1] == '\r'))
                line[--n] = '\0';
            if (n == 0)
                continue;
            question = line;
        }
        pthread_mutex_lock(&r->lock);
        int failed = r->status != G3N_OK;
        if (failed)
            *err = r->err;
        else
            failed = ask_and_print(r->client, "g3n live", question, sampling, (uint32_t)a->max_new, a->print_ids,
                                   r->quiet, err) != G3N_OK;
        pthread_mutex_unlock(&r->lock);
        if (failed)
            return G3N_ERR;
    }
    return G3N_OK;
}

/* Opens (or continues) the session, streams the media on a thread and
 * asks: the exit code. */
static int run_live_connected(ingest_run *r, const live_connect_args *a, const g3n_transport_options *transport)
{
    G3n__SamplingParams sampling;
    g3n__sampling_params__init(&sampling);
    if (a->temperature > 0.0) {
        sampling.do_sample = 1;
        sampling.temperature = (float)a->temperature;
        sampling.top_k = a->top_k;
        sampling.top_p = (float)a->top_p;
    }
    sampling.seed = a->seed;
    r->video = g3n_video_default_options();
    r->video.fps = a->fps;
    r->video.max_frames = a->max_frames;
    r->command = "g3n live";
    r->realtime = a->realtime;
    r->quiet = a->quiet;
    r->url = a->audio_url ? a->audio_url : a->video_url;
    r->video.cancel = &r->stop;
    r->with_frames = a->video_url != NULL;
    r->with_audio = !a->no_audio;
    const char *questions_path = a->questions_path;
    if (!questions_path && !a->asks.count && r->url && (strcmp(r->url, "-") == 0 || strcmp(r->url, "pipe:0") == 0))
        questions_path = "/dev/tty"; /* the media come on stdin */
    g3n_error err = {{0}};
    int rc = 1, started = 0;
    pthread_t thread;
    FILE *questions = NULL;
    pthread_mutex_init(&r->lock, NULL);
    pthread_cond_init(&r->changed, NULL);
    g3n_live_client_options lo = g3n_live_client_default_options();
    lo.system = a->system;
    lo.max_positions = a->context;
    lo.attach = a->attach;
    lo.keep = a->keep;
    if (g3n_live_client_open(&r->client, a->endpoint, transport, &lo, &err) != G3N_OK)
        goto done;
    if (!a->asks.count && !(questions = questions_path ? fopen(questions_path, "r") : stdin)) {
        g3n_error_set(&err, "cannot open %s for the questions", questions_path);
        goto done;
    }
    if (!r->quiet)
        fprintf(stderr, "g3n live: live session %s on the orchestrator at %s; streaming %s%s\n",
                g3n_live_client_session_id(r->client), a->endpoint, r->url ? r->url : "nothing",
                a->asks.count ? "" : "; type a question and Enter at any time (Ctrl-D ends)");
    else if (a->keep)
        fprintf(stderr, "g3n live: live session %s\n", g3n_live_client_session_id(r->client));
    if (send_images(r, a, &err) != G3N_OK) /* the images first, as frames at 0 s */
        goto done;
    r->start = g3n_now_seconds();
    if (!r->url)
        r->finished = 1; /* nothing to stream: questions only */
    else if (pthread_create(&thread, NULL, ingest_thread, r) != 0) {
        g3n_error_set(&err, "cannot start the ingest thread");
        goto done;
    } else
        started = 1;
    if (ask_all(r, a, questions, &sampling, &err) != G3N_OK)
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
    g3n_live_client_close(r->client);
    pthread_mutex_destroy(&r->lock);
    pthread_cond_destroy(&r->changed);
    return rc;
}

int g3n_command_live_connect(int argc, char **argv)
{
    static live_connect_args args;
    int rc = parse_args(&args, argc, argv);
    if (rc >= 0)
        return rc;
    g3n_error err = {{0}};
    g3n_transport_options transport = g3n_transport_default_options();
    if (g3n_security_apply(&args.security, "g3n live", &transport.curve, &transport.insecure, &err) != G3N_OK ||
        g3n_curve_check_endpoint(args.endpoint, &transport.curve, transport.insecure, &err) != G3N_OK) {
        fprintf(stderr, "g3n live: error: %s\n", err.message);
        return 2;
    }
    static ingest_run r; /* the ingest thread's callbacks reach it */
    memset(&r, 0, sizeof(r));
    return run_live_connected(&r, &args, &transport);
}
