/* g3n run - the whole pipeline in one process: every role as threads over
 * inproc:// (or, with --remote, the daemons that connect to --bind), the chat
 * template and tokenizer, media to the encoders in parallel, the embedder's
 * merge, prefill and decode on a decoder; the answer streams to stdout and a
 * progress line per stage goes to stderr. */
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "commands.h"
#include "front_door.h"
#include "live_connect.h"
#include "config.h"
#include "local_pipeline.h"
#include "matmul.h"
#include "model_source.h"
#include "option_groups.h"
#include "ops.h"
#include "pipeline.h"
#include "submodel.h"
#include "pipeline_video.h"
#include "tokenizer.h"
#include "transport.h"
#include "weights.h"

#define MAX_MEDIA 32

static int read_file(const char *path, void **data, size_t *size)
{
    FILE *f = fopen(path, "rb");
    if (!f)
        return -1;
    if (fseek(f, 0, SEEK_END) != 0) {
        fclose(f);
        return -1;
    }
    long n = ftell(f);
    if (n < 0 || fseek(f, 0, SEEK_SET) != 0) {
        fclose(f);
        return -1;
    }
    *data = malloc((size_t)n + 1);
    if (!*data || fread(*data, 1, (size_t)n, f) != (size_t)n) {
        free(*data);
        *data = NULL;
        fclose(f);
        return -1;
    }
    fclose(f);
    *size = (size_t)n;
    return 0;
}

static void print_progress(void *user, const char *line)
{
    if (!*(const int *)user)
        fprintf(stderr, "g3n run: %s\n", line);
}

static int print_text(void *user, const char *text, size_t length)
{
    (void)user;
    fwrite(text, 1, length, stdout);
    fflush(stdout);
    return 0;
}

/* user: an int that gets the final event's finish reason */
static int print_event(void *user, const G3n__TokenEvent *event)
{
    if (event->finish != G3N__FINISH_REASON__FINISH_NONE)
        *(int *)user = (int)event->finish;
    if (event->text && event->text[0]) {
        fputs(event->text, stdout);
        fflush(stdout);
    }
    if (event->finish != G3N__FINISH_REASON__FINISH_NONE && event->timings) {
        const G3n__Timings *t = event->timings;
        fprintf(stdout, "\n");
        fprintf(stderr,
                "g3n run: %lld prompt tokens, %lld generated (%s); encode %.3f s, prefill %.1f tok/s, decode %.1f "
                "tok/s (on the orchestrator's workers)\n",
                (long long)t->prompt_tokens, (long long)t->generated_tokens,
                event->finish == G3N__FINISH_REASON__FINISH_STOP ? "end of turn" : "length limit", t->encode_seconds,
                (double)t->prompt_tokens / (t->embed_seconds + t->prefill_seconds + 1e-12),
                t->generated_tokens > 1 ? (double)(t->generated_tokens - 1) / (t->decode_seconds + 1e-12) : 0.0);
    }
    return 0;
}

/* --connect: a ChatRequest to g3n-orchestrator, token events to stdout. */
static int run_connected(const char *endpoint, const char *system, const char *prompt, const char **image_paths,
                         int images, const char **audio_paths, int audios, int64_t max_new, double temperature,
                         int top_k, double top_p, uint64_t seed, const g3n_transport_options *transport)
{
    if (!prompt) {
        fprintf(stderr, "g3n run: error: no PROMPT (see --help)\n");
        return 2;
    }
    G3n__ChatRequest request;
    G3n__ChatMessage system_message, user_message;
    G3n__ChatMessage *messages[2];
    G3n__SamplingParams sampling;
    ProtobufCBinaryData image_data[MAX_MEDIA], audio_data[MAX_MEDIA];
    g3n__chat_request__init(&request);
    g3n__chat_message__init(&system_message);
    g3n__chat_message__init(&user_message);
    g3n__sampling_params__init(&sampling);
    size_t n = 0;
    if (system) {
        system_message.role = "system";
        system_message.text = (char *)system;
        messages[n++] = &system_message;
    }
    user_message.role = "user";
    user_message.text = (char *)prompt;
    messages[n++] = &user_message;
    int rc = 1, loaded_images = 0, loaded_audios = 0;
    for (; loaded_images < images; loaded_images++) {
        void *data;
        size_t size;
        if (read_file(image_paths[loaded_images], &data, &size) != 0) {
            fprintf(stderr, "g3n run: error: cannot read %s\n", image_paths[loaded_images]);
            goto done;
        }
        image_data[loaded_images] = (ProtobufCBinaryData){size, data};
    }
    for (; loaded_audios < audios; loaded_audios++) {
        void *data;
        size_t size;
        if (read_file(audio_paths[loaded_audios], &data, &size) != 0) {
            fprintf(stderr, "g3n run: error: cannot read %s\n", audio_paths[loaded_audios]);
            goto done;
        }
        audio_data[loaded_audios] = (ProtobufCBinaryData){size, data};
    }
    user_message.n_images = (size_t)images;
    user_message.images = image_data;
    user_message.n_audios = (size_t)audios;
    user_message.audios = audio_data;
    request.n_messages = n;
    request.messages = messages;
    request.max_new_tokens = (uint32_t)max_new;
    if (temperature > 0.0) {
        sampling.do_sample = 1;
        sampling.temperature = (float)temperature;
        sampling.top_k = top_k;
        sampling.top_p = (float)top_p;
    }
    sampling.seed = seed;
    request.sampling = &sampling;
    g3n_error err = {{0}};
    int finish = G3N__FINISH_REASON__FINISH_NONE;
    if (g3n_front_door_chat_secure(endpoint, transport, &request, 600000, print_event, &finish, &err) != G3N_OK) {
        /* a cancelled chat's text was printed: the error on a line of its own */
        fprintf(stderr, "%sg3n run: error: %s\n", finish == G3N__FINISH_REASON__FINISH_CANCELLED ? "\n" : "",
                err.message);
        goto done;
    }
    rc = 0;
done:
    for (int i = 0; i < loaded_images; i++)
        free(image_data[i].data);
    for (int i = 0; i < loaded_audios; i++)
        free(audio_data[i].data);
    return rc;
}

/* The command line of g3n run, parsed. */
typedef struct run_args {
    g3n_model_source source;
    const char *system, *prompt, *bind, *connect, *video_url, *submodel_spec;
    g3n_video_options video_options;
    const char *image_paths[MAX_MEDIA], *audio_paths[MAX_MEDIA];
    g3n_option_list images, audios;
    int remote, quiet, threads, heartbeat_ms, heartbeat_timeout_ms, ignore_eos, no_video_audio;
    int64_t max_new;
    double temperature, top_p, wait_seconds;
    int top_k;
    uint64_t seed;
    g3n_weight_format weight_format;
    int weights_given;
    g3n_security_flags security;
} run_args;

static const g3n_command_spec run_spec = {
    .name = "g3n run",
    .usage = "g3n run (--model DIR | --synth CONFIG:SEED | --demo) [options] PROMPT\n"
             "       g3n run (--model DIR | --synth CONFIG:SEED | --demo) --video FILE|URL [--fps N]\n"
             "               [--max-frames N] [options] PROMPT",
    .about = "Answers PROMPT (with images and audio) with Gemma 3n: the vision encoder, audio encoder,\n"
             "embedder and decoder run as threads of this process over inproc:// (the same code the\n"
             "daemons run), the answer streams to stdout, one progress line per stage to stderr.\n"
             "\n"
             "With --video, FFmpeg decodes FILE|URL (a file, - for stdin, pipe:N, tcp://, http://, ...):\n"
             "frames sampled at --fps go through the image preprocessing here and to the vision-encoder\n"
             "role as pixel_values, the audio track (16 kHz) after each frame up to the next one goes to\n"
             "the audio-encoder role as one segment (cut at 30 s), each as soon as it is complete, while\n"
             "the video is still being decoded; the prompt holds them in timestamp order (a frame, then\n"
             "the audio of the following interval, with the image/audio begin and end tokens), then\n"
             "PROMPT; the embedder merges and the decoder prefills and answers. One progress line per\n"
             "frame and audio segment. (To ask while a stream plays, see g3n live.)\n",
    .help_column = 24,
};

/* The checks across options: -1 to go on, else the exit code. */
static int check_args(const run_args *a)
{
    if (a->submodel_spec && a->connect)
        return g3n_options_usage_error(&run_spec, "--submodel is not sent over --connect (start "
                                                  "g3n-orchestrator's decoders with it instead)");
    if (a->video_url && (a->images.count || a->audios.count))
        return g3n_options_usage_error(&run_spec, "--video goes alone: not with --image or --audio");
    if ((a->security.keys_dir && a->connect) ||
        ((a->security.key_file || a->security.server_key_file) && !a->connect))
        return g3n_options_usage_error(&run_spec, "--keys goes with --bind, --key and --server-key with --connect");
    if (a->remote && !a->connect && !a->bind)
        return g3n_options_usage_error(&run_spec, "--remote needs --bind (where the daemons connect)");
    if (!a->connect && (a->source.model_dir != NULL) + (a->source.synth_spec != NULL) + (a->source.demo != 0) != 1)
        return g3n_options_usage_error(&run_spec, "give one of --model, --synth, --demo (or --connect)");
    if (!a->prompt && !a->source.demo && !(a->connect && a->video_url))
        return g3n_options_usage_error(&run_spec, "no PROMPT");
    return -1;
}

/* -1 to go on, else the exit code. */
static int parse_args(run_args *a, int argc, char **argv)
{
    memset(a, 0, sizeof(*a));
    a->video_options = g3n_video_default_options();
    a->images = (g3n_option_list){a->image_paths, MAX_MEDIA, 0};
    a->audios = (g3n_option_list){a->audio_paths, MAX_MEDIA, 0};
    a->max_new = 64;
    a->top_p = 1.0;
    a->wait_seconds = 60.0;
    a->weight_format = G3N_WEIGHTS_EXACT;
    g3n_option_list prompt = {&a->prompt, 1, 0};
    const g3n_option options[] = {
        G3N_OPTION_MODEL(&a->source.model_dir, "checkpoint folder (config.json, safetensors, tokenizer.json)"),
        G3N_STRING("synth", &a->source.synth_spec, "CONFIG:SEED",
                   "synthetic weights for a config.json (needs --tokenizer)"),
        G3N_FLAG("demo", &a->source.demo, "a tiny synthetic model with the real vocabulary and tokenizer,\n"
                                          "and the image and audio clip in assets/ (its words are random,\n"
                                          "because its weights are)"),
        G3N_OPTION_TOKENIZER(&a->source.tokenizer_path, "tokenizer.json (default: DIR/tokenizer.json)"),
        G3N_LIST("image", &a->images, "FILE", "an image (JPEG, PNG, ...); repeatable"),
        G3N_LIST("audio", &a->audios, "FILE", "an audio clip (any format FFmpeg reads); repeatable"),
        G3N_STRING("video", &a->video_url, "FILE|URL", "a video file or stream (instead of --image/--audio)"),
        G3N_DOUBLE("fps", &a->video_options.fps, 1e-6, 1000, "N",
                   "with --video: frames sampled per second of video (default 1)"),
        G3N_INT("max-frames", &a->video_options.max_frames, 1, 1 << 20, "N",
                "with --video: at most N frames (default 32; at most 64 frames\n"
                "and audio segments in all)"),
        G3N_FLAG("no-video-audio", &a->no_video_audio, "with --video: ignore its audio track"),
        G3N_STRING("system", &a->system, "TEXT", "a system prompt"),
        G3N_INT64("max-new-tokens", &a->max_new, 1, UINT32_MAX, "N", "answer length limit (default 64)"),
        G3N_DOUBLE("temperature", &a->temperature, 0, 1e6, "T", "sample with temperature T (default: greedy)"),
        G3N_INT("top-k", &a->top_k, 0, INT_MAX, "K", "keep the K most likely tokens (with --temperature)"),
        G3N_DOUBLE("top-p", &a->top_p, 0, 1, "P", "nucleus filter (with --temperature; default 1)"),
        G3N_UINT64("seed", &a->seed, 0, 0, "N", "sampling seed"),
        G3N_OPTION_THREADS_FOR(&a->threads, "OpenMP threads (default: all)"),
        G3N_OPTION_WEIGHTS(&a->weight_format, &a->weights_given,
                           "what the decoder computes with: q8 (default with --model: block-\n"
                           "quantised once into DIR/g3n-cache, ~0.5 % error per product), q4\n"
                           "(faster, coarser), bf16, or f32 (the stored weights, f32 products,\n"
                           "the reference's numbers; the default with --synth and --demo)"),
        G3N_OPTION_SUBMODEL(&a->submodel_spec,
                            "answer with this MatFormer sub-model of the model: a preset (full,\n"
                            "e2b, e1.96b, e2.54b), a JSON object or @FILE.json (g3n slice --help);\n"
                            "views into the loaded weights (with --remote: the decoders' --submodel)"),
        G3N_FLAG("ignore-eos", &a->ignore_eos,
                 "generate --max-new-tokens tokens even past an end-of-turn (benchmarks)"),
        G3N_FLAG("quiet", &a->quiet, "no progress lines"),
        G3N_SECTION("Daemons and orchestrators (tcp:// needs keys or --insecure; README \"Security\"):"),
        G3N_STRING("bind", &a->bind, "ENDPOINT",
                   "also bind the broker here (e.g. tcp://0.0.0.0:5555) so daemons\n"
                   "(g3n-embedder, g3n-decoder, ...) can connect and share the work"),
        G3N_FLAG("remote", &a->remote, "start no local roles: use only daemons connected to --bind"),
        G3N_DOUBLE("wait", &a->wait_seconds, 0, 86400, "SECONDS",
                   "with --remote: how long to wait for the daemons (default 60)"),
        G3N_INT("heartbeat-ms", &a->heartbeat_ms, 10, 3600000, "N",
                "broker heartbeat interval (default 1000; match the daemons')"),
        G3N_INT("heartbeat-timeout-ms", &a->heartbeat_timeout_ms, 20, 86400000, "N",
                "a worker silent this long is lost (default 5000)"),
        G3N_STRING("keys", &a->security.keys_dir, "DIR",
                   "with --bind: DIR/server.key_secret is this side's key, DIR/ROLE/*.key\n"
                   "and DIR/clients/*.key the peers allowed in (g3n keygen)"),
        G3N_STRING("connect", &a->connect, "ENDPOINT",
                   "send the chat to a g3n-orchestrator (its --listen endpoint) and\n"
                   "stream its answer; nothing is loaded here (with --video: the video\n"
                   "is decoded here and streamed to a live session there)"),
        G3N_OPTIONS_SECURITY_CONNECT(&a->security),
    };
    const g3n_command_spec spec = {.name = run_spec.name, .usage = run_spec.usage, .about = run_spec.about,
                                   .positionals = &prompt, .help_column = run_spec.help_column};
    int rc = g3n_options_main(&spec, options, G3N_OPTION_COUNT(options), argc, argv);
    if (rc >= 0)
        return rc;
    if (a->no_video_audio)
        a->video_options.want_audio = 0;
    return check_args(a);
}

/* --connect --video: a live session on the orchestrator, the video ingested here. */
static int run_video_connected(const run_args *a, const g3n_transport_options *transport)
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
    return g3n_run_video_connected(a->connect, transport, a->system,
                                   a->prompt ? a->prompt : "Describe what happens in this video.", a->video_url,
                                   &a->video_options, a->max_new, &sampling, a->quiet);
}

/* The model source completed (the demo's media and prompt, the tokenizer):
 * -1 to go on, else the exit code. */
static int prepare_local(run_args *a, char *demo_image, char *demo_audio, size_t size)
{
    g3n_error err = {{0}};
    if (a->source.demo) {
        if (g3n_model_source_find_demo(&a->source, &err) != G3N_OK) {
            fprintf(stderr, "g3n run: error: %s\n", err.message);
            return 1;
        }
        snprintf(demo_image, size, "%s/assets/demo-image.jpg", a->source.home);
        snprintf(demo_audio, size, "%s/assets/demo-speech.wav", a->source.home);
        if (a->images.count == 0 && a->audios.count == 0 && !a->video_url) {
            a->image_paths[a->images.count++] = demo_image;
            a->audio_paths[a->audios.count++] = demo_audio;
        }
        if (!a->prompt)
            a->prompt = a->video_url ? "Describe what happens in this video."
                                     : "Describe the image, then transcribe the audio.";
        fprintf(stderr, "g3n run --demo: a tiny Gemma 3n with SYNTHETIC (random) weights and the real vocabulary and "
                        "tokenizer; its words are random because its weights are.\n");
    }
    if (g3n_model_source_default_tokenizer(&a->source, &err) != G3N_OK) {
        fprintf(stderr, "g3n run: error: %s\n", err.message);
        return 2;
    }
    if (a->threads > 0)
        g3n_set_threads(a->threads);
    if (!a->weights_given)
        a->weight_format = g3n_default_weight_format(a->source.model_dir != NULL);
    if (!a->remote && !a->quiet)
        g3n_report_weight_format("run", a->weight_format, a->weights_given);
    return -1;
}

/* What the local pipeline holds; run_close releases it. */
typedef struct run_state {
    g3n_local_pipeline local;
    g3n_client *client;
    g3n_media_file media[2 * MAX_MEDIA];
    void *media_data[2 * MAX_MEDIA];
    int media_count;
    char submodel_name[64];
} run_state;

/* Loads the model and the media, starts the broker and the roles (or waits for
 * the remote daemons) and opens this thread's client. */
static int start_local(run_state *s, run_args *a, g3n_transport_options *transport, g3n_error *err)
{
    double t_load = g3n_now_seconds();
    if (g3n_local_pipeline_load(&s->local, &a->source, err) != G3N_OK)
        return G3N_ERR;
    const int images = a->images.count, audios = a->audios.count;
    for (int i = 0; i < images + audios; i++) {
        g3n_media_kind kind = i >= images ? G3N_MEDIA_AUDIO : G3N_MEDIA_IMAGE;
        const char *path = kind == G3N_MEDIA_AUDIO ? a->audio_paths[i - images] : a->image_paths[i];
        size_t size;
        if (read_file(path, &s->media_data[s->media_count], &size) != 0)
            return g3n_error_set(err, "cannot read %s", path);
        s->media[s->media_count] = (g3n_media_file){kind, s->media_data[s->media_count], size, path};
        s->media_count++;
    }
    transport->verbose = !a->quiet && a->bind != NULL;
    transport->no_worker_wait_ms = (int)(a->wait_seconds * 1000);
    if (a->heartbeat_ms > 0)
        transport->heartbeat_interval_ms = a->heartbeat_ms;
    if (a->heartbeat_timeout_ms > 0)
        transport->heartbeat_timeout_ms = a->heartbeat_timeout_ms;
    if (g3n_local_pipeline_start_broker(&s->local, "inproc://g3n-run-workers", a->bind, transport, err) != G3N_OK)
        return G3N_ERR;
    unsigned mask = (1u << G3N_ROLE_EMBEDDER) | (1u << G3N_ROLE_DECODER);
    if (images || a->video_url)
        mask |= 1u << G3N_ROLE_VISION_ENCODER;
    if (audios || (a->video_url && a->video_options.want_audio))
        mask |= 1u << G3N_ROLE_AUDIO_ENCODER;
    /* threads: each role thread's own OpenMP team size */
    g3n_role_options ro = {.weight_format = a->weight_format, .threads = a->threads, .submodels = &a->submodel_spec,
                           .submodel_count = a->submodel_spec ? 1 : 0};
    if (a->submodel_spec) { /* its name is what the prefill asks the decoder for */
        g3n_submodel spec;
        if (g3n_submodel_parse(&spec, a->submodel_spec, &s->local.config.text, err) != G3N_OK)
            return G3N_ERR;
        snprintf(s->submodel_name, sizeof(s->submodel_name), "%s", spec.name);
        g3n_submodel_free(&spec);
    }
    if ((!a->remote && g3n_local_pipeline_start_roles(&s->local, &a->source, ro, mask, err) != G3N_OK) ||
        g3n_local_pipeline_wait(&s->local, mask, a->remote ? (int)(a->wait_seconds * 1000) : 10000, err) != G3N_OK)
        return G3N_ERR;
    if (!a->quiet)
        fprintf(stderr, "g3n run: ready in %.2f s (%s%s)\n", g3n_now_seconds() - t_load,
                a->remote ? "remote workers at " : "every role in this process", a->remote ? a->bind : "");
    return g3n_client_open(&s->client, s->local.broker, err);
}

/* The chat (or the video) through the roles, the answer streamed to stdout. */
static int answer(run_state *s, const run_args *a, g3n_error *err)
{
    g3n_pipeline_generate_params params = g3n_pipeline_default_params(&s->local.config);
    params.max_new_tokens = a->max_new;
    params.model = s->submodel_name;
    if (a->ignore_eos)
        params.num_eos_ids = 0;
    if (a->temperature > 0.0) {
        params.sampling.do_sample = 1;
        params.sampling.temperature = (float)a->temperature;
        params.sampling.top_k = a->top_k;
        params.sampling.top_p = (float)a->top_p;
    }
    params.sampling.seed = a->seed;
    params.progress = print_progress;
    params.progress_user = (void *)&a->quiet;
    g3n_pipeline_stats stats;
    if (a->video_url) {
        char preprocessor[PATH_MAX + 64];
        g3n_video_chat_input vin = {a->system, a->prompt, a->video_url, a->video_options, NULL};
        if (a->source.model_dir) {
            snprintf(preprocessor, sizeof(preprocessor), "%s/preprocessor_config.json", a->source.model_dir);
            if (access(preprocessor, R_OK) == 0)
                vin.preprocessor_config = preprocessor;
        }
        g3n_video_chat_stats vstats;
        if (g3n_pipeline_video_chat(s->client, &s->local.config, s->local.tokenizer, &vin, &params, print_text, NULL,
                                    &vstats, err) != G3N_OK) {
            fputc('\n', stdout);
            return G3N_ERR;
        }
        stats = vstats.pipeline;
        if (!a->quiet)
            fprintf(stderr, "g3n run: video: %d frames, %d audio segments (%.2f s of audio), encoded by %.2f s\n",
                    vstats.frames, vstats.audio_segments, (double)vstats.audio_samples / 16000.0,
                    vstats.ingest_seconds);
    } else {
        g3n_chat_input input = {a->system, a->prompt, s->media, s->media_count};
        if (g3n_pipeline_chat(s->client, &s->local.config, s->local.tokenizer, &input, &params, print_text, NULL,
                              &stats, err) != G3N_OK) {
            fputc('\n', stdout);
            return G3N_ERR;
        }
    }
    fputc('\n', stdout);
    fflush(stdout);
    if (!a->quiet)
        fprintf(stderr,
                "g3n run: %lld prompt tokens, %lld generated (%s); encode %.3f s, prefill %.1f tok/s, decode %.1f "
                "tok/s\n",
                (long long)stats.prompt_tokens, (long long)stats.generated_tokens,
                stats.stopped_on_eos ? "end of turn" : "length limit", stats.encode_seconds,
                (double)stats.prompt_tokens / (stats.embed_seconds + stats.prefill_seconds + 1e-12),
                stats.generated_tokens > 1 ? (double)(stats.generated_tokens - 1) / (stats.decode_seconds + 1e-12)
                                           : 0.0);
    return G3N_OK;
}

int g3n_command_run(int argc, char **argv)
{
    static run_args args; /* MAX_MEDIA paths and lists: kept off the stack */
    int rc = parse_args(&args, argc, argv);
    if (rc >= 0)
        return rc;
    g3n_error err = {{0}};
    g3n_transport_options transport = g3n_transport_default_options();
    if (g3n_security_apply(&args.security, "g3n run", &transport.curve, &transport.insecure, &err) != G3N_OK ||
        g3n_curve_check_endpoint(args.connect ? args.connect : args.bind ? args.bind : "inproc://", &transport.curve,
                                 transport.insecure, &err) != G3N_OK) {
        fprintf(stderr, "g3n run: error: %s\n", err.message);
        return 2;
    }
    if (args.connect && args.video_url)
        return run_video_connected(&args, &transport);
    if (args.connect)
        return run_connected(args.connect, args.system, args.prompt, args.image_paths, args.images.count,
                             args.audio_paths, args.audios.count, args.max_new, args.temperature, args.top_k,
                             args.top_p, args.seed, &transport);
    char demo_image[PATH_MAX + 64], demo_audio[PATH_MAX + 64];
    rc = prepare_local(&args, demo_image, demo_audio, sizeof(demo_image));
    if (rc >= 0)
        return rc;
    static run_state s;
    memset(&s, 0, sizeof(s));
    rc = start_local(&s, &args, &transport, &err) == G3N_OK && answer(&s, &args, &err) == G3N_OK ? 0 : 1;
    if (rc != 0)
        fprintf(stderr, "g3n run: error: %s\n", err.message);
    g3n_client_close(s.client);
    g3n_local_pipeline_stop(&s.local);
    for (int i = 0; i < s.media_count; i++)
        free(s.media_data[i]);
    return rc;
}
