/* media_cli.h - what `g3n video` and `g3n live` share: a model
 * (--model DIR | --synth CONFIG:SEED | --demo) served by its roles as threads
 * of this process over inproc:// (local_pipeline.h, as `g3n run`), a live
 * session through them (live_pipeline.h), the generation options, and
 * printing an answer as it streams. */
#ifndef G3N_MEDIA_CLI_H
#define G3N_MEDIA_CLI_H

#include <limits.h>
#include <stdint.h>
#include <stdio.h>

#include "config.h"
#include "live_pipeline.h"
#include "local_pipeline.h"
#include "model_source.h"
#include "option_groups.h"
#include "tokenizer.h"

typedef struct g3n_media_cli_options {
    const char *model_dir, *synth_spec, *tokenizer_path, *system;
    int demo, quiet, threads;
    int64_t max_new_tokens, context;
    double temperature, top_p;
    int top_k;
    uint64_t seed;
} g3n_media_cli_options;

typedef struct g3n_media_cli {
    g3n_local_pipeline local;  /* config, tokenizer, broker, the roles as threads */
    g3n_client *client;        /* the loading thread's client */
    g3n_model_source source;
    char preprocessor[1200];   /* DIR/preprocessor_config.json, or "" */
} g3n_media_cli;

void g3n_media_cli_defaults(g3n_media_cli_options *options);
/* The shared options as option-table entries (options.h) into *options
 * (a g3n_media_cli_options *; set its defaults first). */
#define G3N_MEDIA_CLI_OPTIONS(options)                                                                          \
    G3N_OPTION_MODEL(&(options)->model_dir, "checkpoint folder (config.json, safetensors, tokenizer.json)"),    \
        G3N_STRING("synth", &(options)->synth_spec, "CONFIG:SEED",                                            \
                   "synthetic weights for a config.json (needs --tokenizer)"),                                 \
        G3N_FLAG("demo", &(options)->demo,                                                                     \
                 "the tiny synthetic demo model (real vocabulary and tokenizer; its\n"                          \
                 "words are random, because its weights are)"),                                                \
        G3N_OPTION_TOKENIZER(&(options)->tokenizer_path, "tokenizer.json (default: DIR/tokenizer.json)"),     \
        G3N_STRING("system", &(options)->system, "TEXT", "a system prompt"),                                   \
        G3N_INT64("context", &(options)->context, 1, INT64_MAX, "N",                                           \
                  "KV cache positions (default: the model's maximum); when media fill\n"                       \
                  "it, the oldest are dropped and the rest prefilled again"),                                  \
        G3N_INT64("max-new-tokens", &(options)->max_new_tokens, 1, INT64_MAX, "N",                             \
                  "answer length limit (default 64)"),                                                         \
        G3N_DOUBLE("temperature", &(options)->temperature, 0, 1e6, "T",                                        \
                   "sample with temperature T (default: greedy)"),                                             \
        G3N_INT("top-k", &(options)->top_k, 0, INT_MAX, "K", "keep the K most likely tokens (with --temperature)"), \
        G3N_DOUBLE("top-p", &(options)->top_p, 0, 1, "P", "nucleus filter (with --temperature; default 1)"),   \
        G3N_UINT64("seed", &(options)->seed, 0, 0, "N", "sampling seed"),                                      \
        G3N_OPTION_THREADS_FOR(&(options)->threads, "OpenMP threads (default: all)"),                          \
        G3N_FLAG("quiet", &(options)->quiet, "no progress lines")
/* Loads config and tokenizer and starts the roles (the towers asked for, the
 * embedder, the decoder) over inproc://; cli->client is this thread's. */
int g3n_media_cli_load(g3n_media_cli *cli, const g3n_media_cli_options *options, int want_vision, int want_audio,
                       g3n_error *err);
void g3n_media_cli_free(g3n_media_cli *cli);
g3n_pipeline_generate_params g3n_media_cli_generate_params(const g3n_media_cli *cli,
                                                           const g3n_media_cli_options *options);
g3n_live_pipeline_params g3n_media_cli_live_params(const g3n_media_cli *cli, const g3n_media_cli_options *options);

/* Asks the question (through client: the calling thread's) and streams the
 * answer to out; *first_token_seconds is the time from the call to the first
 * answer token (the question's prefill and one sample), *total_seconds to the
 * end of the answer. */
int g3n_media_cli_ask(g3n_media_cli *cli, g3n_client *client, g3n_live_pipeline *session,
                      const g3n_media_cli_options *options,
                      const char *question, FILE *out, double *first_token_seconds, double *total_seconds,
                      int64_t *tokens, g3n_error *err);

#endif
