/* g3n check-pipeline - text / multimodal fixture cases through the pipeline's
 * transport: the roles as threads over inproc:// (default), or the separate
 * daemons connected to --bind (--remote). Same goldens and tolerances as
 * `g3n check`; ends with `N passed, M failed`. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "check.h"
#include "commands.h"
#include "matmul.h"
#include "ops.h"
#include "options.h"
#include "pipeline.h"
#include "pipeline_check.h"
#include "transport.h"
#include "weights.h"

typedef struct check_pipeline_args {
    const char *bind, *fixtures;
    int remote, threads;
    g3n_security_flags security;
    double wait_seconds;
    g3n_option_list cases; /* items: argc entries, owned */
} check_pipeline_args;

/* -1 to go on, else the exit code. */
static int parse_args(check_pipeline_args *a, int argc, char **argv)
{
    a->wait_seconds = 60;
    const g3n_option options[] = {
        G3N_STRING("bind", &a->bind, "ENDPOINT", "also bind the broker here (e.g. tcp://127.0.0.1:5555)"),
        G3N_FLAG("remote", &a->remote, "start no roles here: the daemons (g3n-vision-encoder, g3n-audio-encoder,\n"
                                       "g3n-embedder, g3n-decoder started with --synth CASE/config.json:SEED) connect\n"
                                       "to --bind and do the work"),
        G3N_DOUBLE("wait", &a->wait_seconds, 0, 86400, "SECONDS",
                   "with --remote: how long to wait for the daemons (default 60)"),
        G3N_STRING("fixtures", &a->fixtures, "DIR", "folder holding the cases (default: the case's parent)"),
        G3N_INT("threads", &a->threads, 0, 1024, "N", "OpenMP threads for the local roles"),
        G3N_STRING("keys", &a->security.keys_dir, "DIR",
                   "CurveZMQ on --bind tcp:// (the orchestrator's keys folder, see g3n keygen)"),
        G3N_FLAG("insecure", &a->security.insecure, "allow --bind tcp:// without keys (trusted networks only; warned)"),
    };
    const g3n_command_spec spec = {
        .name = "g3n check-pipeline",
        .usage = "g3n check-pipeline CASE_DIR... [--bind ENDPOINT [--remote]] [--wait SECONDS] [--threads N]",
        .about = "Runs text and multimodal fixture cases (e.g. tests/fixtures/mm-tiny) through the broker and\n"
                 "the worker roles, exchanging tensors as protobuf over ZeroMQ, and compares the prompt logits,\n"
                 "the decode-step logits and the greedy tokens with the goldens.\n",
        .positionals = &a->cases,
        .help_column = 20,
    };
    int rc = g3n_options_main(&spec, options, G3N_OPTION_COUNT(options), argc, argv);
    if (rc >= 0)
        return rc;
    if (a->cases.count == 0)
        return g3n_options_usage_error(&spec, "give at least one CASE_DIR");
    if (a->remote && !a->bind)
        return g3n_options_usage_error(&spec, "--remote needs --bind ENDPOINT");
    return -1;
}

#define INPROC_ENDPOINT "inproc://g3n-check-pipeline"

/* One case through broker: the local roles started (unless --remote), waited for, compared. */
static void check_one(const check_pipeline_args *a, const char *case_dir, g3n_broker *broker,
                      const g3n_transport_options *transport, int *passed, int *failed)
{
    g3n_check_case c;
    g3n_error err = {{0}};
    double start = g3n_now_seconds();
    if (g3n_check_case_open(&c, case_dir, a->fixtures, &err) != G3N_OK) {
        fprintf(stderr, "g3n check-pipeline: error: %s\n", err.message);
        (*failed)++;
        return;
    }
    printf("== %s (kind %s, through the pipeline%s%s)\n", case_dir, c.kind, a->remote ? ": daemons at " : "",
           a->remote ? a->bind : ": roles as threads over inproc://");
    fflush(stdout);
    g3n_weights *weights = NULL;
    g3n_local_roles local;
    memset(&local, 0, sizeof(local));
    g3n_client *client = NULL;
    uint64_t seed;
    int multimodal = strcmp(c.kind, "multimodal") == 0;
    unsigned mask = (1u << G3N_ROLE_EMBEDDER) | (1u << G3N_ROLE_DECODER);
    if (multimodal)
        mask |= (1u << G3N_ROLE_VISION_ENCODER) | (1u << G3N_ROLE_AUDIO_ENCODER);
    int ok = c.has_config && g3n_check_seed(&c, &seed, &err) == G3N_OK;
    if (ok && !a->remote)
        ok = g3n_weights_open_synth(&weights, seed, G3N_DTYPE_BF16, &err) == G3N_OK &&
             g3n_local_roles_start(&local, broker, INPROC_ENDPOINT, weights, &c.config, NULL, mask, transport, &err) ==
                 G3N_OK;
    for (int role = 1; ok && role < G3N_ROLE_COUNT; role++)
        if (mask & (1u << role))
            ok = g3n_broker_wait_workers(broker, role, 1, a->remote ? (int)(a->wait_seconds * 1000) : 10000, &err) ==
                 G3N_OK;
    ok = ok && g3n_client_open(&client, broker, &err) == G3N_OK;
    if (!ok || g3n_pipeline_check_case(&c, client, &err) != G3N_OK) {
        fprintf(stderr, "g3n check-pipeline: error: %s: %s\n", case_dir, err.message);
        c.failed++;
    }
    printf("-- %s: %d passed, %d failed (%.2f s)\n", case_dir, c.passed, c.failed, g3n_now_seconds() - start);
    *passed += c.passed;
    *failed += c.failed;
    g3n_client_close(client);
    g3n_local_roles_stop(&local);
    g3n_weights_close(weights);
    g3n_check_case_close(&c);
}

/* Starts the broker and runs every case: the exit code. */
static int run_cases(const check_pipeline_args *a)
{
    const char *endpoints[2] = {INPROC_ENDPOINT, a->bind};
    g3n_transport_options transport = g3n_transport_default_options();
    transport.no_worker_wait_ms = (int)(a->wait_seconds * 1000);
    g3n_broker *broker = NULL;
    g3n_error err = {{0}};
    if (g3n_security_apply(&a->security, "g3n check-pipeline", &transport.curve, &transport.insecure, &err) !=
        G3N_OK) {
        fprintf(stderr, "g3n check-pipeline: error: %s\n", err.message);
        return 2;
    }
    g3n_curve_install_reload_handler();
    if (g3n_broker_start(&broker, endpoints, a->bind ? 2 : 1, &transport, &err) != G3N_OK) {
        fprintf(stderr, "g3n check-pipeline: error: %s\n", err.message);
        return 1;
    }
    int passed = 0, failed = 0;
    for (int i = 0; i < a->cases.count; i++)
        check_one(a, a->cases.items[i], broker, &transport, &passed, &failed);
    g3n_broker_stop(broker);
    printf("%d passed, %d failed\n", passed, failed);
    return failed == 0 ? 0 : 1;
}

int g3n_command_check_pipeline(int argc, char **argv)
{
    check_pipeline_args args;
    memset(&args, 0, sizeof(args));
    args.cases.items = calloc((size_t)argc, sizeof(char *));
    args.cases.capacity = argc;
    if (!args.cases.items)
        return 1;
    int rc = parse_args(&args, argc, argv);
    if (rc < 0) {
        if (args.threads > 0)
            g3n_set_threads(args.threads);
        rc = run_cases(&args);
    }
    free(args.cases.items);
    return rc;
}
