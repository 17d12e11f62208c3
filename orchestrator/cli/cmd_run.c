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
#include "ops.h"
#include "pipeline.h"
#include "submodel.h"
#include "pipeline_video.h"
#include "tokenizer.h"
#include "transport.h"
#include "weights.h"

#define MAX_MEDIA 32

static void print_help(FILE *out)
{
    fprintf(out,
            "usage: g3n run (--model DIR | --synth CONFIG:SEED | --demo) [options] PROMPT\n"
            "       g3n run (--model DIR | --synth CONFIG:SEED | --demo) --video FILE|URL [--fps N]\n"
            "               [--max-frames N] [options] PROMPT\n"
            "\n"
            "Answers PROMPT (with images and audio) with Gemma 3n: the vision encoder, audio encoder,\n"
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
            "frame and audio segment. (To ask while a stream plays, see g3n live.)\n"
            "\n"
            "  --model DIR           checkpoint folder (config.json, safetensors, tokenizer.json)\n"
            "  --synth CONFIG:SEED   synthetic weights for a config.json (needs --tokenizer)\n"
            "  --demo                a tiny synthetic model with the real vocabulary and tokenizer,\n"
            "                        and the image and audio clip in assets/ (its words are random,\n"
            "                        because its weights are)\n"
            "  --tokenizer FILE      tokenizer.json (default: DIR/tokenizer.json)\n"
            "  --image FILE          an image (JPEG, PNG, ...); repeatable\n"
            "  --audio FILE          an audio clip (any format FFmpeg reads); repeatable\n"
            "  --video FILE|URL      a video file or stream (instead of --image/--audio)\n"
            "  --fps N               with --video: frames sampled per second of video (default 1)\n"
            "  --max-frames N        with --video: at most N frames (default 32; at most 64 frames\n"
            "                        and audio segments in all)\n"
            "  --no-video-audio      with --video: ignore its audio track\n"
            "  --system TEXT         a system prompt\n"
            "  --max-new-tokens N    answer length limit (default 64)\n"
            "  --temperature T       sample with temperature T (default: greedy)\n"
            "  --top-k K, --top-p P  sampling filters (with --temperature)\n"
            "  --seed N              sampling seed\n"
            "  --threads N           OpenMP threads (default: all)\n"
            "  --weights F           what the decoder computes with: q8 (default with --model: block-\n"
            "                        quantised once into DIR/g3n-cache, ~0.5 %% error per product), q4\n"
            "                        (faster, coarser), bf16, or f32 (the stored weights, f32 products,\n"
            "                        the reference's numbers; the default with --synth and --demo)\n"
            "  --submodel SPEC       answer with this MatFormer sub-model of the model: a preset (full,\n"
            "                        e2b, e1.96b, e2.54b), a JSON object or @FILE.json (g3n slice --help);\n"
            "                        views into the loaded weights (with --remote: the decoders' --submodel)\n"
            "  --bind ENDPOINT       also bind the broker here (e.g. tcp://0.0.0.0:5555) so daemons\n"
            "                        (g3n-embedder, g3n-decoder, ...) can connect and share the work\n"
            "  --remote              start no local roles: use only daemons connected to --bind\n"
            "  --connect ENDPOINT    send the chat to a g3n-orchestrator (its --listen endpoint) and\n"
            "                        stream its answer; nothing is loaded here (with --video: the video\n"
            "                        is decoded here and streamed to a live session there)\n"
            "  --wait SECONDS        with --remote: how long to wait for the daemons (default 60)\n"
            "  --heartbeat-ms N      broker heartbeat interval (default 1000; match the daemons')\n"
            "  --heartbeat-timeout-ms N  a worker silent this long is lost (default 5000)\n"
            "  --ignore-eos          generate --max-new-tokens tokens even past an end-of-turn (benchmarks)\n"
            "  --quiet               no progress lines\n"
            "Security of tcp:// (README \"Security\"): with --bind,\n" G3N_SECURITY_HELP_BIND
            "with --connect,\n" G3N_SECURITY_HELP_CONNECT);
}

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
                         int top_k, double top_p, unsigned long long seed, const g3n_transport_options *transport)
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

int g3n_command_run(int argc, char **argv)
{
    if (g3n_wants_help(argc, argv)) {
        print_help(stdout);
        return 0;
    }
    g3n_model_source source;
    memset(&source, 0, sizeof(source));
    const char *system = NULL, *prompt = NULL, *bind = NULL, *connect = NULL, *video_url = NULL;
    const char *submodel_spec = NULL;
    g3n_video_options video_options = g3n_video_default_options();
    const char *image_paths[MAX_MEDIA], *audio_paths[MAX_MEDIA];
    int images = 0, audios = 0, remote = 0, quiet = 0, threads = 0, heartbeat_ms = 0,
        heartbeat_timeout_ms = 0, ignore_eos = 0;
    int64_t max_new = 64;
    double temperature = 0.0, top_p = 1.0, wait_seconds = 60.0;
    int top_k = 0;
    unsigned long long seed = 0;
    g3n_weight_format weight_format = G3N_WEIGHTS_EXACT;
    int weights_given = 0;
    g3n_security_flags security = {0};
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        const char *v = i + 1 < argc ? argv[i + 1] : NULL;
        int uses_value, security_flag = g3n_security_flag(&security, a, v, &uses_value);
        if (security_flag < 0) {
            fprintf(stderr, "g3n run: error: %s needs a value\n", a);
            return 2;
        }
        if (security_flag == 1) {
            i += uses_value;
            continue;
        }
        int takes = strcmp(a, "--model") == 0 || strcmp(a, "--synth") == 0 || strcmp(a, "--tokenizer") == 0 ||
                    strcmp(a, "--image") == 0 || strcmp(a, "--audio") == 0 || strcmp(a, "--system") == 0 ||
                    strcmp(a, "--max-new-tokens") == 0 || strcmp(a, "--temperature") == 0 ||
                    strcmp(a, "--top-k") == 0 || strcmp(a, "--top-p") == 0 || strcmp(a, "--seed") == 0 ||
                    strcmp(a, "--threads") == 0 || strcmp(a, "--bind") == 0 || strcmp(a, "--wait") == 0 ||
                    strcmp(a, "--connect") == 0 || strcmp(a, "--video") == 0 || strcmp(a, "--fps") == 0 ||
                    strcmp(a, "--max-frames") == 0 || strcmp(a, "--weights") == 0 || strcmp(a, "--submodel") == 0 ||
                    strcmp(a, "--heartbeat-ms") == 0 || strcmp(a, "--heartbeat-timeout-ms") == 0;
        if (takes && !v) {
            fprintf(stderr, "g3n run: error: %s needs a value\n", a);
            return 2;
        }
        if (takes)
            i++;
        if (strcmp(a, "--model") == 0)
            source.model_dir = v;
        else if (strcmp(a, "--synth") == 0)
            source.synth_spec = v;
        else if (strcmp(a, "--tokenizer") == 0)
            source.tokenizer_path = v;
        else if (strcmp(a, "--image") == 0 || strcmp(a, "--audio") == 0) {
            int is_audio = a[2] == 'a';
            if ((is_audio ? audios : images) >= MAX_MEDIA) {
                fprintf(stderr, "g3n run: error: at most %d %s\n", MAX_MEDIA, is_audio ? "clips" : "images");
                return 2;
            }
            if (is_audio)
                audio_paths[audios++] = v;
            else
                image_paths[images++] = v;
        } else if (strcmp(a, "--system") == 0)
            system = v;
        else if (strcmp(a, "--video") == 0)
            video_url = v;
        else if (strcmp(a, "--fps") == 0)
            video_options.fps = strtod(v, NULL);
        else if (strcmp(a, "--max-frames") == 0)
            video_options.max_frames = atoi(v);
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
        else if (strcmp(a, "--threads") == 0)
            threads = atoi(v);
        else if (strcmp(a, "--weights") == 0) {
            if (g3n_parse_weights_option("run", v, &weight_format) != 0)
                return 2;
            weights_given = 1;
        } else if (strcmp(a, "--submodel") == 0)
            submodel_spec = v;
        else if (strcmp(a, "--bind") == 0)
            bind = v;
        else if (strcmp(a, "--connect") == 0)
            connect = v;
        else if (strcmp(a, "--wait") == 0)
            wait_seconds = strtod(v, NULL);
        else if (strcmp(a, "--heartbeat-ms") == 0)
            heartbeat_ms = atoi(v);
        else if (strcmp(a, "--heartbeat-timeout-ms") == 0)
            heartbeat_timeout_ms = atoi(v);
        else if (strcmp(a, "--demo") == 0)
            source.demo = 1;
        else if (strcmp(a, "--remote") == 0)
            remote = 1;
        else if (strcmp(a, "--quiet") == 0)
            quiet = 1;
        else if (strcmp(a, "--ignore-eos") == 0)
            ignore_eos = 1;
        else if (strcmp(a, "--no-video-audio") == 0)
            video_options.want_audio = 0;
        else if (a[0] == '-' && a[1] == '-') {
            fprintf(stderr, "g3n run: error: unknown argument '%s' (see --help)\n", a);
            return 2;
        } else if (!prompt)
            prompt = a;
        else {
            fprintf(stderr, "g3n run: error: one PROMPT only (quote it); extra '%s'\n", a);
            return 2;
        }
    }
    if (submodel_spec && connect) {
        fprintf(stderr, "g3n run: error: --submodel is not sent over --connect (start g3n-orchestrator's decoders "
                        "with it instead)\n");
        return 2;
    }
    if (video_url && (images || audios)) {
        fprintf(stderr, "g3n run: error: --video goes alone: not with --image or --audio\n");
        return 2;
    }
    if (video_url && (!(video_options.fps > 0) || video_options.max_frames < 1)) {
        fprintf(stderr, "g3n run: error: --fps must be > 0 and --max-frames >= 1\n");
        return 2;
    }
    g3n_error err = {{0}};
    g3n_transport_options transport = g3n_transport_default_options();
    if ((security.keys_dir && connect) || ((security.key_file || security.server_key_file) && !connect)) {
        fprintf(stderr, "g3n run: error: --keys goes with --bind, --key and --server-key with --connect\n");
        return 2;
    }
    if (g3n_security_apply(&security, "g3n run", &transport.curve, &transport.insecure, &err) != G3N_OK ||
        g3n_curve_check_endpoint(connect ? connect : bind ? bind : "inproc://", &transport.curve, transport.insecure,
                                 &err) != G3N_OK) {
        fprintf(stderr, "g3n run: error: %s\n", err.message);
        return 2;
    }
    if (connect && video_url) { /* a live session on the orchestrator, the video ingested here */
        if (!prompt)
            prompt = "Describe what happens in this video.";
        if (max_new < 1 || max_new > UINT32_MAX) {
            fprintf(stderr, "g3n run: error: --max-new-tokens must be >= 1\n");
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
        return g3n_run_video_connected(connect, &transport, system, prompt, video_url, &video_options, max_new,
                                       &sampling, quiet);
    }
    if (connect)
        return run_connected(connect, system, prompt, image_paths, images, audio_paths, audios, max_new, temperature,
                             top_k, top_p, seed, &transport);
    if (g3n_model_source_check(&source, &err) != G3N_OK) {
        fprintf(stderr, "g3n run: error: %s\n", err.message);
        return 2;
    }
    if (remote && !bind) {
        fprintf(stderr, "g3n run: error: --remote needs --bind (where the daemons connect)\n");
        return 2;
    }
    if (max_new < 1) {
        fprintf(stderr, "g3n run: error: --max-new-tokens must be >= 1\n");
        return 2;
    }
    char demo_image[PATH_MAX + 64], demo_audio[PATH_MAX + 64];
    if (source.demo) {
        if (g3n_model_source_find_demo(&source, &err) != G3N_OK) {
            fprintf(stderr, "g3n run: error: %s\n", err.message);
            return 1;
        }
        snprintf(demo_image, sizeof(demo_image), "%s/assets/demo-image.jpg", source.home);
        snprintf(demo_audio, sizeof(demo_audio), "%s/assets/demo-speech.wav", source.home);
        if (images == 0 && audios == 0 && !video_url) {
            image_paths[images++] = demo_image;
            audio_paths[audios++] = demo_audio;
        }
        if (!prompt)
            prompt = video_url ? "Describe what happens in this video."
                               : "Describe the image, then transcribe the audio.";
        fprintf(stderr, "g3n run --demo: a tiny Gemma 3n with SYNTHETIC (random) weights and the real vocabulary and "
                        "tokenizer; its words are random because its weights are.\n");
    }
    if (!prompt) {
        fprintf(stderr, "g3n run: error: no PROMPT (see --help)\n");
        return 2;
    }
    if (g3n_model_source_default_tokenizer(&source, &err) != G3N_OK) {
        fprintf(stderr, "g3n run: error: %s\n", err.message);
        return 2;
    }
    if (threads > 0)
        g3n_set_threads(threads);
    if (!weights_given)
        weight_format = g3n_default_weight_format(source.model_dir != NULL);
    if (!remote && !quiet)
        g3n_report_weight_format("run", weight_format, weights_given);

    int rc = 1;
    g3n_local_pipeline local;
    memset(&local, 0, sizeof(local));
    g3n_client *client = NULL;
    g3n_media_file media[2 * MAX_MEDIA];
    void *media_data[2 * MAX_MEDIA];
    int media_count = 0;
    double t_load = g3n_now_seconds();

    if (g3n_local_pipeline_load(&local, &source, &err) != G3N_OK)
        goto done;
    for (int i = 0; i < images + audios; i++) {
        int is_audio = i >= images;
        const char *path = is_audio ? audio_paths[i - images] : image_paths[i];
        size_t size;
        if (read_file(path, &media_data[media_count], &size) != 0) {
            g3n_error_set(&err, "cannot read %s", path);
            goto done;
        }
        media[media_count] = (g3n_media_file){is_audio, media_data[media_count], size, path};
        media_count++;
    }

    transport.verbose = !quiet && bind != NULL;
    transport.no_worker_wait_ms = (int)(wait_seconds * 1000);
    if (heartbeat_ms > 0)
        transport.heartbeat_interval_ms = heartbeat_ms;
    if (heartbeat_timeout_ms > 0)
        transport.heartbeat_timeout_ms = heartbeat_timeout_ms;
    if (g3n_local_pipeline_start_broker(&local, "inproc://g3n-run-workers", bind, &transport, &err) != G3N_OK)
        goto done;
    unsigned mask = (1u << G3N_ROLE_EMBEDDER) | (1u << G3N_ROLE_DECODER);
    if (images || video_url)
        mask |= 1u << G3N_ROLE_VISION_ENCODER;
    if (audios || (video_url && video_options.want_audio))
        mask |= 1u << G3N_ROLE_AUDIO_ENCODER;
    /* threads: each role thread's own OpenMP team size */
    g3n_role_options ro = {.weight_format = weight_format, .threads = threads, .submodels = &submodel_spec,
                           .submodel_count = submodel_spec ? 1 : 0};
    char submodel_name[64] = "";
    if (submodel_spec) { /* its name is what the prefill asks the decoder for */
        g3n_submodel spec;
        if (g3n_submodel_parse(&spec, submodel_spec, &local.config.text, &err) != G3N_OK)
            goto done;
        snprintf(submodel_name, sizeof(submodel_name), "%s", spec.name);
        g3n_submodel_free(&spec);
    }
    if ((!remote && g3n_local_pipeline_start_roles(&local, &source, ro, mask, &err) != G3N_OK) ||
        g3n_local_pipeline_wait(&local, mask, remote ? (int)(wait_seconds * 1000) : 10000, &err) != G3N_OK)
        goto done;
    if (!quiet)
        fprintf(stderr, "g3n run: ready in %.2f s (%s%s)\n", g3n_now_seconds() - t_load,
                remote ? "remote workers at " : "every role in this process",
                remote ? bind : "");
    if (g3n_client_open(&client, local.broker, &err) != G3N_OK)
        goto done;

    g3n_pipeline_generate_params params = g3n_pipeline_default_params(&local.config);
    params.max_new_tokens = max_new;
    params.model = submodel_name;
    if (ignore_eos)
        params.num_eos_ids = 0;
    if (temperature > 0.0) {
        params.sampling.do_sample = 1;
        params.sampling.temperature = (float)temperature;
        params.sampling.top_k = top_k;
        params.sampling.top_p = (float)top_p;
    }
    params.sampling.seed = seed;
    params.progress = print_progress;
    params.progress_user = &quiet;
    g3n_pipeline_stats stats;
    if (video_url) {
        char preprocessor[PATH_MAX + 64];
        g3n_video_chat_input vin = {system, prompt, video_url, video_options, NULL};
        if (source.model_dir) {
            snprintf(preprocessor, sizeof(preprocessor), "%s/preprocessor_config.json", source.model_dir);
            if (access(preprocessor, R_OK) == 0)
                vin.preprocessor_config = preprocessor;
        }
        g3n_video_chat_stats vstats;
        if (g3n_pipeline_video_chat(client, &local.config, local.tokenizer, &vin, &params, print_text, NULL, &vstats,
                                    &err) != G3N_OK) {
            fputc('\n', stdout);
            goto done;
        }
        stats = vstats.pipeline;
        if (!quiet)
            fprintf(stderr, "g3n run: video: %d frames, %d audio segments (%.2f s of audio), encoded by %.2f s\n",
                    vstats.frames, vstats.audio_segments, (double)vstats.audio_samples / 16000.0,
                    vstats.ingest_seconds);
    } else {
        g3n_chat_input input = {system, prompt, media, media_count};
        if (g3n_pipeline_chat(client, &local.config, local.tokenizer, &input, &params, print_text, NULL, &stats,
                              &err) != G3N_OK) {
            fputc('\n', stdout);
            goto done;
        }
    }
    fputc('\n', stdout);
    fflush(stdout);
    if (!quiet)
        fprintf(stderr,
                "g3n run: %lld prompt tokens, %lld generated (%s); encode %.3f s, prefill %.1f tok/s, decode %.1f "
                "tok/s\n",
                (long long)stats.prompt_tokens, (long long)stats.generated_tokens,
                stats.stopped_on_eos ? "end of turn" : "length limit", stats.encode_seconds,
                (double)stats.prompt_tokens / (stats.embed_seconds + stats.prefill_seconds + 1e-12),
                stats.generated_tokens > 1 ? (double)(stats.generated_tokens - 1) / (stats.decode_seconds + 1e-12)
                                           : 0.0);
    rc = 0;
done:
    if (rc != 0)
        fprintf(stderr, "g3n run: error: %s\n", err.message);
    g3n_client_close(client);
    g3n_local_pipeline_stop(&local);
    for (int i = 0; i < media_count; i++)
        free(media_data[i]);
    return rc;
}
