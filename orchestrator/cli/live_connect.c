/* live_connect.c - live sessions on a g3n-orchestrator from the terminal
 * (live_connect.h). */
#include "live_connect.h"

#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "commands.h"
#include "curve_keys.h"
#include "json_util.h"
#include "live_client.h"
#include "ops.h"

int g3n_live_connect_wanted(int argc, char **argv)
{
    for (int i = 1; i < argc; i++)
        if (strcmp(argv[i], "--connect") == 0)
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

static void print_help(FILE *out)
{
    fprintf(out,
            "usage: g3n live --connect ENDPOINT (--audio-stream URL|- | --video URL | --session ID) [options]\n"
            "\n"
            "A live session on a g3n-orchestrator (its --listen endpoint): the media are decoded here\n"
            "(FFmpeg) and streamed to it as they arrive - video frames as RGB, audio as 16 kHz pieces -\n"
            "where its daemons encode them and prefill their soft tokens into the session's decoder\n"
            "session; questions typed on stdin (one per line) are answered at any moment against\n"
            "everything streamed so far. Nothing is loaded here. URL: anything FFmpeg opens.\n"
            "\n"
            "  --connect ENDPOINT    the orchestrator's client endpoint (tcp://HOST:5556)\n"
            "  --audio-stream URL|-  an audio stream (any format FFmpeg reads)\n"
            "  --video URL           a video stream: frames and its audio track\n"
            "  --image FILE          an image file sent as a frame (at 0 s) before the stream; repeatable\n"
            "  --no-audio            with --video: ignore its audio track\n"
            "  --fps N               video frames sampled per second (default 1)\n"
            "  --max-frames N        at most N frames (default: no limit)\n"
            "  --realtime            read a file no faster than it plays (as a live source would arrive)\n"
            "  --questions FILE      read the questions from FILE (default stdin; /dev/tty when the\n"
            "                        media come on stdin)\n"
            "  --ask TEXT            instead of reading questions: ask TEXT after --after seconds of\n"
            "                        media (or at the end of the stream); repeatable, asked in order\n"
            "  --after SECONDS       with --ask (default 0: at the end of the stream)\n"
            "  --session ID          continue the live session ID (opened with this client key, e.g. by\n"
            "                        another g3n live --keep): stream more media into it, or only ask\n"
            "  --keep                leave the session open at the end (its id goes to stderr; it is\n"
            "                        closed when idle for the orchestrator's limit)\n"
            "  --system TEXT         a system prompt\n"
            "  --context N           the session's KV cache positions (default: the model's maximum)\n"
            "  --max-new-tokens N    answer length limit (default 64)\n"
            "  --temperature T       sample with temperature T (default: greedy)\n"
            "  --top-k K, --top-p P  sampling filters (with --temperature)\n"
            "  --seed N              sampling seed\n"
            "  --token-ids           print each answer's token ids to stderr\n"
            "  --quiet               no progress lines\n"
            "Security of tcp:// (README \"Security\"):\n" G3N_SECURITY_HELP_CONNECT);
}

#define MAX_ASKS 16

int g3n_command_live_connect(int argc, char **argv)
{
    if (g3n_wants_help(argc, argv)) {
        print_help(stdout);
        return 0;
    }
    static ingest_run r;
    memset(&r, 0, sizeof(r));
    r.video = g3n_video_default_options();
    r.video.max_frames = 0;
    r.command = "g3n live";
    const char *attach = NULL;
    int keep = 0;
    const char *endpoint = NULL, *audio_url = NULL, *video_url = NULL, *questions_path = NULL, *system = NULL;
    const char *asks[MAX_ASKS], *images[MAX_ASKS];
    int ask_count = 0, image_count = 0, print_ids = 0, no_audio = 0;
    double after = 0.0, temperature = 0.0, top_p = 1.0;
    int64_t max_new = 64, context = 0;
    int top_k = 0;
    unsigned long long seed = 0;
    g3n_security_flags security = {0};
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        const char *v = i + 1 < argc ? argv[i + 1] : NULL;
        int uses_value, security_flag = g3n_security_flag(&security, a, v, &uses_value);
        if (security_flag < 0) {
            fprintf(stderr, "g3n live: error: %s needs a value\n", a);
            return 2;
        }
        if (security_flag == 1) {
            i += uses_value;
            continue;
        }
        static const char *const valued[] = {"--connect", "--audio-stream", "--video", "--image", "--fps", "--max-frames",
                                             "--questions", "--ask", "--after", "--system", "--context", "--session",
                                             "--max-new-tokens", "--temperature", "--top-k", "--top-p", "--seed"};
        int takes = 0;
        for (size_t k = 0; k < sizeof valued / sizeof valued[0]; k++)
            takes |= strcmp(a, valued[k]) == 0;
        if (takes && !v) {
            fprintf(stderr, "g3n live: error: %s needs a value\n", a);
            return 2;
        }
        if (takes)
            i++;
        if (strcmp(a, "--connect") == 0)
            endpoint = v;
        else if (strcmp(a, "--audio-stream") == 0)
            audio_url = v;
        else if (strcmp(a, "--video") == 0)
            video_url = v;
        else if (strcmp(a, "--fps") == 0)
            r.video.fps = strtod(v, NULL);
        else if (strcmp(a, "--max-frames") == 0)
            r.video.max_frames = atoi(v);
        else if (strcmp(a, "--questions") == 0)
            questions_path = v;
        else if (strcmp(a, "--image") == 0) {
            if (image_count == MAX_ASKS) {
                fprintf(stderr, "g3n live: error: at most %d --image\n", MAX_ASKS);
                return 2;
            }
            images[image_count++] = v;
        } else if (strcmp(a, "--ask") == 0) {
            if (ask_count == MAX_ASKS) {
                fprintf(stderr, "g3n live: error: at most %d --ask\n", MAX_ASKS);
                return 2;
            }
            asks[ask_count++] = v;
        } else if (strcmp(a, "--after") == 0)
            after = strtod(v, NULL);
        else if (strcmp(a, "--system") == 0)
            system = v;
        else if (strcmp(a, "--session") == 0)
            attach = v;
        else if (strcmp(a, "--keep") == 0)
            keep = 1;
        else if (strcmp(a, "--context") == 0)
            context = strtoll(v, NULL, 10);
        else if (strcmp(a, "--max-new-tokens") == 0)
            max_new = strtoll(v, NULL, 10);
        else if (strcmp(a, "--temperature") == 0)
            temperature = strtod(v, NULL);
        else if (strcmp(a, "--top-k") == 0)
            top_k = atoi(v);
        else if (strcmp(a, "--top-p") == 0)
            top_p = strtod(v, NULL);
        else if (strcmp(a, "--seed") == 0)
            seed = strtoull(v, NULL, 10);
        else if (strcmp(a, "--realtime") == 0)
            r.realtime = 1;
        else if (strcmp(a, "--no-audio") == 0)
            no_audio = 1;
        else if (strcmp(a, "--token-ids") == 0)
            print_ids = 1;
        else if (strcmp(a, "--quiet") == 0)
            r.quiet = 1;
        else {
            fprintf(stderr, "g3n live: error: unknown argument '%s' with --connect (see g3n live --connect --help)\n",
                    a);
            return 2;
        }
    }
    if (!endpoint || (audio_url != NULL) + (video_url != NULL) > 1 || (!attach && !audio_url && !video_url) ||
        (attach && (system || context))) {
        fprintf(stderr, "g3n live: error: --connect ENDPOINT and one of --audio-stream, --video (or --session ID to "
                        "continue a session; then no --system or --context) (see --help)\n");
        return 2;
    }
    if (!(r.video.fps > 0) || max_new < 1 || max_new > UINT32_MAX || context < 0 || (no_audio && audio_url)) {
        fprintf(stderr, "g3n live: error: --fps must be > 0, --max-new-tokens >= 1, --context >= 0, and --no-audio "
                        "goes with --video\n");
        return 2;
    }
    g3n_error err = {{0}};
    g3n_transport_options transport = g3n_transport_default_options();
    if (security.keys_dir) {
        fprintf(stderr, "g3n live: error: --keys is the orchestrator's; a client takes --key and --server-key\n");
        return 2;
    }
    if (g3n_security_apply(&security, "g3n live", &transport.curve, &transport.insecure, &err) != G3N_OK ||
        g3n_curve_check_endpoint(endpoint, &transport.curve, transport.insecure, &err) != G3N_OK) {
        fprintf(stderr, "g3n live: error: %s\n", err.message);
        return 2;
    }
    G3n__SamplingParams sampling;
    g3n__sampling_params__init(&sampling);
    if (temperature > 0.0) {
        sampling.do_sample = 1;
        sampling.temperature = (float)temperature;
        sampling.top_k = top_k;
        sampling.top_p = (float)top_p;
    }
    sampling.seed = seed;
    r.url = audio_url ? audio_url : video_url;
    r.video.cancel = &r.stop;
    r.with_frames = video_url != NULL;
    r.with_audio = !no_audio;
    int media_on_stdin = r.url && (strcmp(r.url, "-") == 0 || strcmp(r.url, "pipe:0") == 0);
    if (!questions_path && !ask_count && media_on_stdin)
        questions_path = "/dev/tty";

    int rc = 1, started = 0;
    pthread_t thread;
    FILE *questions = NULL;
    pthread_mutex_init(&r.lock, NULL);
    pthread_cond_init(&r.changed, NULL);
    g3n_live_client_options lo = g3n_live_client_default_options();
    lo.system = system;
    lo.max_positions = context;
    lo.attach = attach;
    lo.keep = keep;
    if (g3n_live_client_open(&r.client, endpoint, &transport, &lo, &err) != G3N_OK)
        goto done;
    if (!ask_count) {
        questions = questions_path ? fopen(questions_path, "r") : stdin;
        if (!questions) {
            g3n_error_set(&err, "cannot open %s for the questions", questions_path);
            goto done;
        }
    }
    if (!r.quiet)
        fprintf(stderr, "g3n live: live session %s on the orchestrator at %s; streaming %s%s\n",
                g3n_live_client_session_id(r.client), endpoint, r.url ? r.url : "nothing",
                ask_count ? "" : "; type a question and Enter at any time (Ctrl-D ends)");
    else if (keep)
        fprintf(stderr, "g3n live: live session %s\n", g3n_live_client_session_id(r.client));
    for (int k = 0; k < image_count; k++) { /* the images first, as frames at 0 s */
        char *bytes = NULL;
        size_t size = 0;
        if (g3n_read_file(images[k], &bytes, &size, &err) != G3N_OK)
            goto done;
        int sent = g3n_live_client_image(r.client, 0.0, bytes, size, &err);
        free(bytes);
        if (sent != G3N_OK)
            goto done;
        if (!r.quiet)
            fprintf(stderr, "g3n live: image %s sent as a frame\n", images[k]);
    }
    r.start = g3n_now_seconds();
    if (!r.url)
        r.finished = 1; /* nothing to stream: questions only */
    else if (pthread_create(&thread, NULL, ingest_thread, &r) != 0) {
        g3n_error_set(&err, "cannot start the ingest thread");
        goto done;
    } else
        started = 1;
    char line[4096];
    for (int k = 0;; k++) {
        const char *question = NULL;
        if (ask_count) {
            if (k == ask_count)
                break;
            question = asks[k];
            pthread_mutex_lock(&r.lock);
            while (!r.finished && (after <= 0 || r.media_seconds < after) && r.status == G3N_OK)
                pthread_cond_wait(&r.changed, &r.lock);
            pthread_mutex_unlock(&r.lock);
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
        pthread_mutex_lock(&r.lock);
        int failed = r.status != G3N_OK;
        if (failed)
            err = r.err;
        else
            failed = ask_and_print(r.client, "g3n live", question, &sampling, (uint32_t)max_new, print_ids, r.quiet,
                                   &err) != G3N_OK;
        pthread_mutex_unlock(&r.lock);
        if (failed)
            goto done;
    }
    pthread_mutex_lock(&r.lock);
    rc = r.status == G3N_OK ? 0 : 1;
    if (rc != 0)
        err = r.err;
    pthread_mutex_unlock(&r.lock);
done:
    if (started) {
        pthread_mutex_lock(&r.lock);
        r.stop = 1;
        pthread_mutex_unlock(&r.lock);
        pthread_join(thread, NULL);
    }
    if (rc != 0)
        fprintf(stderr, "g3n live: error: %s\n", err.message);
    if (questions && questions != stdin)
        fclose(questions);
    g3n_live_client_close(r.client);
    pthread_mutex_destroy(&r.lock);
    pthread_cond_destroy(&r.changed);
    return rc;
}
