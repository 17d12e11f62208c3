/* g3n encode-audio: an audio file (any container/codec FFmpeg knows) ->
 * 16 kHz mono -> log-mel -> USM conformer -> embed_audio soft tokens; prints
 * the number of tokens and the real-time factor. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "audio_config.h"
#include "audio_decode.h"
#include "audio_encoder.h"
#include "audio_features.h"
#include "audio_stream.h"
#include "commands.h"
#include "config.h"
#include "matmul.h"
#include "multimodal_embedder.h"
#include "ops.h"
#include "safetensors.h"
#include "weights.h"

static void usage(FILE *out)
{
    fprintf(out,
            "usage: g3n encode-audio (--model DIR | --synth CONFIG:SEED) [options] FILE\n"
            "\n"
            "Decodes FILE with FFmpeg (WAV, FLAC, MP3, Ogg/Opus, M4A/AAC, the audio track of a video; \"pipe:0\"\n"
            "reads stdin), resamples it to 16 kHz mono (channels averaged), computes the log-mel features, runs\n"
            "the USM conformer audio encoder and embed_audio, and prints the number of soft tokens and the\n"
            "encoder's real-time factor (features + encoder + embed_audio seconds / audio seconds).\n"
            "\n"
            "Clip length: the reference cuts audio at 30 s. g3n does not drop audio: longer input is split into\n"
            "30 s windows encoded one after another, each becoming its own audio segment in the prompt (at most\n"
            "188 tokens each with the released config).\n"
            "\n"
            "  --model DIR        a checkpoint folder (config.json, safetensors; preprocessor_config.json if any)\n"
            "  --synth CONFIG:SEED  synthetic weights synth(name, shape, SEED) for CONFIG (a config.json)\n"
            "  --threads N        OpenMP threads (default: all cores)\n"
            "  --precision P      f32 (default: exact), bf16 (AVX512-BF16 products, ~2x faster; encoder output\n"
            "                     within rel-L2 1e-2 of the goldens, tested) or int8 (AVX512-VNNI, faster still,\n"
            "                     within 5e-2: see audio_check.h); the default follows env G3N_TOWER_PRECISION.\n"
            "                     Without AVX-512: bf16 = bf16 weights, f32 FMAs; int8 = AVX-VNNI or AVX2, same results\n"
            "  --stream           decode and encode as a stream: pieces of --piece-ms go into the streaming\n"
            "                     encoder as they are decoded; tokens come out as soon as they are final\n"
            "  --piece-ms MS      piece size for --stream (default 100)\n"
            "  --no-embed         output the encoder's tokens (audio hidden size) instead of embed_audio's\n"
            "  --out FILE         write the tokens to FILE.safetensors (tensor \"audio_tokens\" [count, width],\n"
            "                     \"segment_starts\" [segments] i64)\n");
}

typedef struct stream_run {
    g3n_audio_stream *stream;
    float *piece;
    int64_t piece_size, piece_count;
    int64_t samples;
    double start, first_token_at, first_token_audio;
    int64_t tokens;
    float *collected;
    int64_t collected_capacity, width;
    int64_t segment_starts[1024];
    int segments;
} stream_run;

static int stream_tokens(void *user, int segment, int64_t first_token, const float *tokens, int64_t count,
                         int64_t width, g3n_error *err)
{
    stream_run *r = user;
    (void)first_token;
    if (r->tokens == 0) {
        r->first_token_at = g3n_now_seconds() - r->start;
        r->first_token_audio = (double)r->samples / 16000.0;
    }
    while (segment >= r->segments && r->segments < 1024)
        r->segment_starts[r->segments++] = r->tokens;
    if (r->tokens + count > r->collected_capacity) {
        int64_t capacity = r->collected_capacity ? 2 * r->collected_capacity : 256;
        while (capacity < r->tokens + count)
            capacity *= 2;
        float *grown = realloc(r->collected, sizeof(float) * (size_t)(capacity * width));
        if (grown == NULL)
            return g3n_error_set(err, "out of memory");
        r->collected = grown;
        r->collected_capacity = capacity;
    }
    memcpy(r->collected + r->tokens * width, tokens, sizeof(float) * (size_t)(count * width));
    r->width = width;
    r->tokens += count;
    return G3N_OK;
}

/* Decoded samples -> pieces of piece_size -> the stream. */
static int stream_samples(void *user, const float *samples, int64_t count, g3n_error *err)
{
    stream_run *r = user;
    while (count > 0) {
        int64_t n = r->piece_size - r->piece_count;
        if (n > count)
            n = count;
        memcpy(r->piece + r->piece_count, samples, sizeof(float) * (size_t)n);
        r->piece_count += n;
        samples += n;
        count -= n;
        if (r->piece_count == r->piece_size) {
            r->samples += r->piece_count;
            if (g3n_audio_stream_push(r->stream, r->piece, r->piece_count, err) != G3N_OK)
                return G3N_ERR;
            r->piece_count = 0;
        }
    }
    return G3N_OK;
}

static int write_tokens(const char *path, const float *tokens, int64_t count, int64_t width,
                        const int64_t *segment_starts, int segments, g3n_error *err)
{
    g3n_safetensors_writer *w;
    int64_t shape[2] = {count, width}, starts_shape[1] = {segments};
    if (g3n_safetensors_writer_open(&w, path, err) != G3N_OK)
        return G3N_ERR;
    if (g3n_safetensors_writer_declare(w, "audio_tokens", G3N_DTYPE_F32, 2, shape, err) != G3N_OK ||
        g3n_safetensors_writer_declare(w, "segment_starts", G3N_DTYPE_I64, 1, starts_shape, err) != G3N_OK ||
        g3n_safetensors_writer_write(w, tokens, sizeof(float) * (size_t)(count * width), err) != G3N_OK ||
        g3n_safetensors_writer_write(w, segment_starts, sizeof(int64_t) * (size_t)segments, err) != G3N_OK) {
        g3n_safetensors_writer_finish(w, NULL);
        return G3N_ERR;
    }
    return g3n_safetensors_writer_finish(w, err);
}

int g3n_command_encode_audio(int argc, char **argv)
{
    if (g3n_wants_help(argc, argv)) {
        usage(stdout);
        return 0;
    }
    const char *model_dir = NULL, *synth = NULL, *file = NULL, *out_path = NULL;
    int threads = 0, streaming = 0, embed = 1;
    double piece_ms = 100.0;
    g3n_precision precision = g3n_tower_precision_default();
    for (int i = 1; i < argc; i++) {
        if (strcmp(argv[i], "--model") == 0 && i + 1 < argc)
            model_dir = argv[++i];
        else if (strcmp(argv[i], "--synth") == 0 && i + 1 < argc)
            synth = argv[++i];
        else if (strcmp(argv[i], "--threads") == 0 && i + 1 < argc)
            threads = atoi(argv[++i]);
        else if (strcmp(argv[i], "--precision") == 0 && i + 1 < argc) {
            g3n_error perr = {{0}};
            if (g3n_precision_parse(argv[++i], &precision, &perr) != G3N_OK) {
                fprintf(stderr, "g3n encode-audio: error: --precision: %s\n", perr.message);
                return 2;
            }
        } else if (strcmp(argv[i], "--piece-ms") == 0 && i + 1 < argc)
            piece_ms = atof(argv[++i]);
        else if (strcmp(argv[i], "--out") == 0 && i + 1 < argc)
            out_path = argv[++i];
        else if (strcmp(argv[i], "--stream") == 0)
            streaming = 1;
        else if (strcmp(argv[i], "--no-embed") == 0)
            embed = 0;
        else if (argv[i][0] == '-' && argv[i][1] != '\0') {
            fprintf(stderr, "g3n encode-audio: error: unknown option '%s'\n", argv[i]);
            usage(stderr);
            return 2;
        } else if (file == NULL)
            file = argv[i];
        else {
            fprintf(stderr, "g3n encode-audio: error: one FILE only ('%s')\n", argv[i]);
            return 2;
        }
    }
    if (file == NULL || (model_dir == NULL) == (synth == NULL) || piece_ms <= 0.0) {
        usage(stderr);
        return 2;
    }
    g3n_set_threads(threads);

    g3n_error err = {{0}};
    g3n_model_config config;
    memset(&config, 0, sizeof(config));
    g3n_audio_config audio;
    g3n_audio_feature_config fc;
    g3n_audio_feature_config_default(&fc);
    g3n_weights *weights = NULL;
    g3n_audio_features *features = NULL;
    g3n_audio_encoder encoder;
    memset(&encoder, 0, sizeof(encoder));
    g3n_multimodal_embedder embedder;
    float *samples = NULL, *tokens = NULL;
    int64_t *starts = NULL;
    g3n_audio_stream *stream = NULL;
    stream_run run;
    memset(&run, 0, sizeof(run));
    int status = 1;

    double t0 = g3n_now_seconds();
    if (model_dir) {
        char path[2048];
        snprintf(path, sizeof(path), "%s/preprocessor_config.json", model_dir);
        if (g3n_config_load(&config, model_dir, &err) != G3N_OK ||
            g3n_weights_open_checkpoint(&weights, model_dir, &err) != G3N_OK ||
            g3n_audio_feature_config_load(&fc, path, &err) != G3N_OK)
            goto done;
    } else {
        char config_path[1024];
        uint64_t seed;
        if (g3n_parse_synth_spec(synth, config_path, sizeof(config_path), &seed, &err) != G3N_OK ||
            g3n_config_load(&config, config_path, &err) != G3N_OK ||
            g3n_weights_open_synth(&weights, seed, G3N_DTYPE_BF16, &err) != G3N_OK)
            goto done;
    }
    if (g3n_audio_config_parse(&audio, &config, &err) != G3N_OK ||
        g3n_audio_features_create(&features, &fc, &err) != G3N_OK ||
        g3n_audio_encoder_load_precision(&encoder, &audio, weights, precision, &err) != G3N_OK)
        goto done;
    if (embed && g3n_multimodal_embedder_load(&embedder, weights, "model.embed_audio", audio.hidden_size,
                                              config.text.hidden_size, audio.vocab_size, audio.vocab_offset,
                                              audio.rms_norm_eps, &err) != G3N_OK)
        goto done;
    const g3n_multimodal_embedder *embed_with = embed ? &embedder : NULL;
    double load_seconds = g3n_now_seconds() - t0;

    int64_t count = 0, width = embed ? config.text.hidden_size : audio.hidden_size, sample_count = 0;
    int segments = 0;
    double decode_seconds = 0.0, encode_seconds = 0.0;
    if (!streaming) {
        double t = g3n_now_seconds();
        if (g3n_audio_decode_file(file, fc.sampling_rate, &samples, &sample_count, &err) != G3N_OK)
            goto done;
        decode_seconds = g3n_now_seconds() - t;
        t = g3n_now_seconds();
        if (g3n_audio_encode_clip(features, &encoder, embed_with, samples, sample_count, &tokens, &count, &starts,
                                  &segments, &err) != G3N_OK)
            goto done;
        encode_seconds = g3n_now_seconds() - t;
    } else {
        run.piece_size = (int64_t)(piece_ms * fc.sampling_rate / 1000.0);
        if (run.piece_size < 1)
            run.piece_size = 1;
        run.piece = malloc(sizeof(float) * (size_t)run.piece_size);
        if (run.piece == NULL ||
            g3n_audio_stream_create(&stream, features, &encoder, embed_with, stream_tokens, &run, &err) != G3N_OK)
            goto done;
        run.stream = stream;
        run.start = g3n_now_seconds();
        if (g3n_audio_decode_file_pieces(file, fc.sampling_rate, stream_samples, &run, &err) != G3N_OK)
            goto done;
        if (run.piece_count > 0) {
            run.samples += run.piece_count;
            if (g3n_audio_stream_push(stream, run.piece, run.piece_count, &err) != G3N_OK)
                goto done;
        }
        double before_flush = g3n_now_seconds();
        if (g3n_audio_stream_flush(stream, &err) != G3N_OK)
            goto done;
        encode_seconds = g3n_now_seconds() - run.start; /* decoding included: they interleave */
        sample_count = run.samples;
        count = run.tokens;
        segments = run.segments;
        tokens = run.collected;
        run.collected = NULL;
        starts = malloc(sizeof(int64_t) * (size_t)(segments > 0 ? segments : 1));
        if (starts == NULL)
            goto done;
        memcpy(starts, run.segment_starts, sizeof(int64_t) * (size_t)segments);
        printf("stream: pieces of %.0f ms; first token after %.3f s of compute, at %.3f s of audio; flush %.3f s\n",
               piece_ms, run.first_token_at, run.first_token_audio, g3n_now_seconds() - before_flush);
    }
    double audio_seconds = (double)sample_count / fc.sampling_rate;
    printf("%s: %.3f s of audio (%lld samples at %d Hz), %d segment%s\n", file, audio_seconds,
           (long long)sample_count, fc.sampling_rate, segments, segments == 1 ? "" : "s");
    for (int s = 0; s < segments; s++) {
        int64_t end = s + 1 < segments ? starts[s + 1] : count;
        printf("  segment %d: %lld soft tokens\n", s, (long long)(end - starts[s]));
    }
    printf("soft tokens: %lld x %lld (%s)\n", (long long)count, (long long)width,
           embed ? "embed_audio, text width" : "encoder output");
    printf("weights: %s; audio tower %d layers, hidden %lld; %d threads, %s kernels\n", g3n_weights_describe(weights),
           audio.num_layers, (long long)audio.hidden_size, g3n_get_threads(), g3n_isa_name(g3n_isa_active()));
    printf("precision: %s\n", g3n_precision_name(precision));
    printf("time: load %.3f s, decode %.3f s, %s %.3f s\n", load_seconds, decode_seconds,
           streaming ? "decode+features+encoder+embed" : "features+encoder+embed", encode_seconds);
    printf("real-time factor: %.4f (%.1fx faster than real time)\n", encode_seconds / audio_seconds,
           audio_seconds / encode_seconds);
    if (out_path && write_tokens(out_path, tokens, count, width, starts, segments, &err) != G3N_OK)
        goto done;
    status = 0;
done:
    if (status != 0)
        fprintf(stderr, "g3n encode-audio: error: %s\n", err.message[0] ? err.message : "out of memory");
    g3n_audio_stream_free(stream);
    free(run.piece);
    free(run.collected);
    free(samples);
    free(tokens);
    free(starts);
    g3n_audio_encoder_free(&encoder);
    g3n_audio_features_free(features);
    g3n_audio_feature_config_free(&fc);
    g3n_weights_close(weights);
    g3n_config_free(&config);
    return status;
}
