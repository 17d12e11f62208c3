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
#include "option_groups.h"
#include "safetensors.h"
#include "weights.h"

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

typedef struct encode_audio_args {
    const char *model_dir, *synth, *file, *out_path;
    int threads, streaming, no_embed;
    double piece_ms;
    g3n_precision precision;
    const char *file_storage[1];
    g3n_option_list files;
} encode_audio_args;

/* -1 to go on, else the exit code. */
static int parse_args(encode_audio_args *a, int argc, char **argv)
{
    a->piece_ms = 100.0;
    a->precision = g3n_tower_precision_default();
    a->files = (g3n_option_list){a->file_storage, 1, 0};
    const g3n_option options[] = {
        G3N_OPTION_MODEL(&a->model_dir,
                         "a checkpoint folder (config.json, safetensors; preprocessor_config.json if any)"),
        G3N_STRING("synth", &a->synth, "CONFIG:SEED",
                   "synthetic weights synth(name, shape, SEED) for CONFIG (a config.json)"),
        G3N_OPTION_THREADS(&a->threads),
        G3N_OPTION_PRECISION(&a->precision,
                             "f32 (default: exact), bf16 (AVX512-BF16 products, ~2x faster; encoder output\n"
                             "within rel-L2 1e-2 of the goldens, tested) or int8 (AVX512-VNNI, faster still,\n"
                             "within 5e-2: see audio_check.h); the default follows env G3N_TOWER_PRECISION.\n"
                             "Without AVX-512: bf16 = bf16 weights, f32 FMAs; int8 = AVX-VNNI or AVX2, same results"),
        G3N_FLAG("stream", &a->streaming, "decode and encode as a stream: pieces of --piece-ms go into the streaming\n"
                                          "encoder as they are decoded; tokens come out as soon as they are final"),
        G3N_DOUBLE("piece-ms", &a->piece_ms, 0.001, 3.6e6, "MS", "piece size for --stream (default 100)"),
        G3N_FLAG("no-embed", &a->no_embed, "output the encoder's tokens (audio hidden size) instead of embed_audio's"),
        G3N_STRING("out", &a->out_path, "FILE",
                   "write the tokens to FILE.safetensors (tensor \"audio_tokens\" [count, width],\n"
                   "\"segment_starts\" [segments] i64)"),
    };
    const g3n_command_spec spec = {
        .name = "g3n encode-audio",
        .usage = "g3n encode-audio (--model DIR | --synth CONFIG:SEED) [options] FILE",
        .about = "Decodes FILE with FFmpeg (WAV, FLAC, MP3, Ogg/Opus, M4A/AAC, the audio track of a video; \"pipe:0\"\n"
                 "reads stdin), resamples it to 16 kHz mono (channels averaged), computes the log-mel features, runs\n"
                 "the USM conformer audio encoder and embed_audio, and prints the number of soft tokens and the\n"
                 "encoder's real-time factor (features + encoder + embed_audio seconds / audio seconds).\n"
                 "\n"
                 "Clip length: the reference cuts audio at 30 s. g3n does not drop audio: longer input is split into\n"
                 "30 s windows encoded one after another, each becoming its own audio segment in the prompt (at most\n"
                 "188 tokens each with the released config).\n",
        .positionals = &a->files,
        .help_column = 21,
    };
    int rc = g3n_options_main(&spec, options, G3N_OPTION_COUNT(options), argc, argv);
    if (rc >= 0)
        return rc;
    a->file = a->files.count ? a->file_storage[0] : NULL;
    if (a->file == NULL || (a->model_dir == NULL) == (a->synth == NULL))
        return g3n_options_usage_error(&spec, "give one of --model/--synth, and one FILE");
    return -1;
}

/* What encode-audio loads, makes and frees. */
typedef struct encode_audio_state {
    g3n_model_config config;
    g3n_audio_config audio;
    g3n_audio_feature_config features_config;
    g3n_weights *weights;
    g3n_audio_features *features;
    g3n_audio_encoder encoder;
    g3n_multimodal_embedder embedder;
    const g3n_multimodal_embedder *embed_with; /* &embedder, or NULL with --no-embed */
    g3n_audio_stream *stream;
    stream_run run;
    float *samples, *tokens;
    int64_t *starts;
    int64_t count, width, sample_count;
    int segments;
    double load_seconds, decode_seconds, encode_seconds;
} encode_audio_state;

static int load_audio_model(const encode_audio_args *a, encode_audio_state *st, g3n_error *err)
{
    double t0 = g3n_now_seconds();
    if (a->model_dir) {
        char path[2048];
        snprintf(path, sizeof(path), "%s/preprocessor_config.json", a->model_dir);
        if (g3n_config_load(&st->config, a->model_dir, err) != G3N_OK ||
            g3n_weights_open_checkpoint(&st->weights, a->model_dir, err) != G3N_OK ||
            g3n_audio_feature_config_load(&st->features_config, path, err) != G3N_OK)
            return G3N_ERR;
    } else {
        char config_path[1024];
        uint64_t seed;
        if (g3n_parse_synth_spec(a->synth, config_path, sizeof(config_path), &seed, err) != G3N_OK ||
            g3n_config_load(&st->config, config_path, err) != G3N_OK ||
            g3n_weights_open_synth(&st->weights, seed, G3N_DTYPE_BF16, err) != G3N_OK)
            return G3N_ERR;
    }
    g3n_audio_config *audio = &st->audio;
    if (g3n_audio_config_parse(audio, &st->config, err) != G3N_OK ||
        g3n_audio_features_create(&st->features, &st->features_config, err) != G3N_OK ||
        g3n_audio_encoder_load_precision(&st->encoder, audio, st->weights, a->precision, err) != G3N_OK)
        return G3N_ERR;
    if (!a->no_embed) {
        if (g3n_multimodal_embedder_load(&st->embedder, st->weights, "model.embed_audio", audio->hidden_size,
                                         st->config.text.hidden_size, audio->vocab_size, audio->vocab_offset,
                                         audio->rms_norm_eps, err) != G3N_OK)
            return G3N_ERR;
        st->embed_with = &st->embedder;
    }
    st->width = a->no_embed ? audio->hidden_size : st->config.text.hidden_size;
    st->load_seconds = g3n_now_seconds() - t0;
    return G3N_OK;
}

/* The whole file decoded, then encoded. */
static int encode_whole(const encode_audio_args *a, encode_audio_state *st, g3n_error *err)
{
    double t = g3n_now_seconds();
    if (g3n_audio_decode_file(a->file, st->features_config.sampling_rate, &st->samples, &st->sample_count, err) !=
        G3N_OK)
        return G3N_ERR;
    st->decode_seconds = g3n_now_seconds() - t;
    t = g3n_now_seconds();
    if (g3n_audio_encode_clip(st->features, &st->encoder, st->embed_with, st->samples, st->sample_count, &st->tokens,
                              &st->count, &st->starts, &st->segments, err) != G3N_OK)
        return G3N_ERR;
    st->encode_seconds = g3n_now_seconds() - t;
    return G3N_OK;
}

/* --stream: pieces of --piece-ms into the streaming encoder as they are decoded. */
static int encode_streaming(const encode_audio_args *a, encode_audio_state *st, g3n_error *err)
{
    stream_run *run = &st->run;
    run->piece_size = (int64_t)(a->piece_ms * st->features_config.sampling_rate / 1000.0);
    if (run->piece_size < 1)
        run->piece_size = 1;
    run->piece = malloc(sizeof(float) * (size_t)run->piece_size);
    if (run->piece == NULL)
        return g3n_error_set(err, "out of memory");
    if (g3n_audio_stream_create(&st->stream, st->features, &st->encoder, st->embed_with, stream_tokens, run, err) !=
        G3N_OK)
        return G3N_ERR;
    run->stream = st->stream;
    run->start = g3n_now_seconds();
    if (g3n_audio_decode_file_pieces(a->file, st->features_config.sampling_rate, stream_samples, run, err) != G3N_OK)
        return G3N_ERR;
    if (run->piece_count > 0) {
        run->samples += run->piece_count;
        if (g3n_audio_stream_push(st->stream, run->piece, run->piece_count, err) != G3N_OK)
            return G3N_ERR;
    }
    double before_flush = g3n_now_seconds();
    if (g3n_audio_stream_flush(st->stream, err) != G3N_OK)
        return G3N_ERR;
    st->encode_seconds = g3n_now_seconds() - run->start; /* decoding included: they interleave */
    st->sample_count = run->samples;
    st->count = run->tokens;
    st->segments = run->segments;
    st->tokens = run->collected;
    run->collected = NULL;
    st->starts = malloc(sizeof(int64_t) * (size_t)(st->segments > 0 ? st->segments : 1));
    if (st->starts == NULL)
        return g3n_error_set(err, "out of memory");
    memcpy(st->starts, run->segment_starts, sizeof(int64_t) * (size_t)st->segments);
    printf("stream: pieces of %.0f ms; first token after %.3f s of compute, at %.3f s of audio; flush %.3f s\n",
           a->piece_ms, run->first_token_at, run->first_token_audio, g3n_now_seconds() - before_flush);
    return G3N_OK;
}

static void report(const encode_audio_args *a, const encode_audio_state *st)
{
    int segments = st->segments;
    double audio_seconds = (double)st->sample_count / st->features_config.sampling_rate;
    printf("%s: %.3f s of audio (%lld samples at %d Hz), %d segment%s\n", a->file, audio_seconds,
           (long long)st->sample_count, st->features_config.sampling_rate, segments, segments == 1 ? "" : "s");
    for (int s = 0; s < segments; s++) {
        int64_t end = s + 1 < segments ? st->starts[s + 1] : st->count;
        printf("  segment %d: %lld soft tokens\n", s, (long long)(end - st->starts[s]));
    }
    printf("soft tokens: %lld x %lld (%s)\n", (long long)st->count, (long long)st->width,
           a->no_embed ? "encoder output" : "embed_audio, text width");
    printf("weights: %s; audio tower %d layers, hidden %lld; %d threads, %s kernels\n",
           g3n_weights_describe(st->weights), st->audio.num_layers, (long long)st->audio.hidden_size,
           g3n_get_threads(), g3n_isa_name(g3n_isa_active()));
    printf("precision: %s\n", g3n_precision_name(a->precision));
    printf("time: load %.3f s, decode %.3f s, %s %.3f s\n", st->load_seconds, st->decode_seconds,
           a->streaming ? "decode+features+encoder+embed" : "features+encoder+embed", st->encode_seconds);
    printf("real-time factor: %.4f (%.1fx faster than real time)\n", st->encode_seconds / audio_seconds,
           audio_seconds / st->encode_seconds);
}

static void free_state(encode_audio_state *st)
{
    g3n_audio_stream_free(st->stream);
    free(st->run.piece);
    free(st->run.collected);
    free(st->samples);
    free(st->tokens);
    free(st->starts);
    g3n_audio_encoder_free(&st->encoder);
    g3n_audio_features_free(st->features);
    g3n_audio_feature_config_free(&st->features_config);
    g3n_weights_close(st->weights);
    g3n_config_free(&st->config);
}

int g3n_command_encode_audio(int argc, char **argv)
{
    encode_audio_args args;
    memset(&args, 0, sizeof(args));
    int rc = parse_args(&args, argc, argv);
    if (rc >= 0)
        return rc;
    g3n_set_threads(args.threads);
    encode_audio_state *st = calloc(1, sizeof(*st));
    if (!st)
        return 1;
    g3n_audio_feature_config_default(&st->features_config);
    g3n_error err = {{0}};
    int status = load_audio_model(&args, st, &err);
    if (status == G3N_OK)
        status = args.streaming ? encode_streaming(&args, st, &err) : encode_whole(&args, st, &err);
    if (status == G3N_OK) {
        report(&args, st);
        if (args.out_path)
            status = write_tokens(args.out_path, st->tokens, st->count, st->width, st->starts, st->segments, &err);
    }
    if (status != G3N_OK)
        fprintf(stderr, "g3n encode-audio: error: %s\n", err.message[0] ? err.message : "out of memory");
    free_state(st);
    free(st);
    return status == G3N_OK ? 0 : 1;
}
