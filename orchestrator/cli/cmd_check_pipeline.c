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
#include "pipeline.h"
#include "pipeline_check.h"
#include "transport.h"
#include "weights.h"

static void usage(FILE *out)
{
    fprintf(out,
            "usage: g3n check-pipeline CASE_DIR... [--bind ENDPOINT [--remote]] [--wait SECONDS] [--threads N]\n"
            "\n"
            "Runs text and multimodal fixture cases (e.g. tests/fixtures/mm-tiny) through the broker and\n"
            "the worker roles, exchanging tensors as protobuf over ZeroMQ, and compares the prompt logits,\n"
            "the decode-step logits and the greedy tokens with the goldens.\n"
            "\n"
            "  --bind ENDPOINT   also bind the broker here (e.g. tcp://127.0.0.1:5555)\n"
            "  --remote          start no roles here: the daemons (g3n-vision-encoder, g3n-audio-encoder,\n"
            "                    g3n-embedder, g3n-decoder started with --synth CASE/config.json:SEED) connect\n"
            "                    to --bind and do the work\n"
            "  --wait SECONDS    with --remote: how long to wait for the daemons (default 60)\n"
            "  --fixtures DIR    folder holding the cases (default: the case's parent)\n"
            "  --threads N       OpenMP threads for the local roles\n"
            "  --keys DIR        CurveZMQ on --bind tcp:// (the orchestrator's keys folder, see g3n keygen)\n"
            "  --insecure        allow --bind tcp:// without keys (trusted networks only; warned)\n");
}

int g3n_command_check_pipeline(int argc, char **argv)
{
    if (g3n_wants_help(argc, argv)) {
        usage(stdout);
        return 0;
    }
    const char *bind = NULL, *fixtures = NULL;
    int remote = 0, threads = 0;
    g3n_security_flags security = {0};
    double wait_seconds = 60;
    const char **cases = calloc((size_t)argc, sizeof(char *));
    int case_count = 0;
    if (!cases)
        return 1;
    for (int i = 1; i < argc; i++) {
        if (strcmp(argv[i], "--bind") == 0 && i + 1 < argc)
            bind = argv[++i];
        else if (strcmp(argv[i], "--fixtures") == 0 && i + 1 < argc)
            fixtures = argv[++i];
        else if (strcmp(argv[i], "--wait") == 0 && i + 1 < argc)
            wait_seconds = strtod(argv[++i], NULL);
        else if (strcmp(argv[i], "--threads") == 0 && i + 1 < argc)
            threads = atoi(argv[++i]);
        else if (strcmp(argv[i], "--remote") == 0)
            remote = 1;
        else if ((strcmp(argv[i], "--keys") == 0 && i + 1 < argc) || strcmp(argv[i], "--insecure") == 0) {
            int uses_value;
            g3n_security_flag(&security, argv[i], i + 1 < argc ? argv[i + 1] : NULL, &uses_value);
            i += uses_value;
        }
        else if (argv[i][0] == '-') {
            fprintf(stderr, "g3n check-pipeline: error: unknown option '%s'\n", argv[i]);
            usage(stderr);
            free(cases);
            return 2;
        } else
            cases[case_count++] = argv[i];
    }
    if (case_count == 0 || (remote && !bind)) {
        usage(stderr);
        free(cases);
        return 2;
    }
    if (threads > 0)
        g3n_set_threads(threads);
    const char *inproc = "inproc://g3n-check-pipeline";
    const char *endpoints[2] = {inproc, bind};
    g3n_transport_options transport = g3n_transport_default_options();
    transport.no_worker_wait_ms = (int)(wait_seconds * 1000);
    g3n_broker *broker = NULL;
    g3n_error err = {{0}};
    if (g3n_security_apply(&security, "g3n check-pipeline", &transport.curve, &transport.insecure, &err) != G3N_OK) {
        fprintf(stderr, "g3n check-pipeline: error: %s\n", err.message);
        free(cases);
        return 2;
    }
    g3n_curve_install_reload_handler();
    if (g3n_broker_start(&broker, endpoints, bind ? 2 : 1, &transport, &err) != G3N_OK) {
        fprintf(stderr, "g3n check-pipeline: error: %s\n", err.message);
        free(cases);
        return 1;
    }
    int passed = 0, failed = 0;
    for (int i = 0; i < case_count; i++) {
        g3n_check_case c;
        double start = g3n_now_seconds();
        if (g3n_check_case_open(&c, cases[i], fixtures, &err) != G3N_OK) {
            fprintf(stderr, "g3n check-pipeline: error: %s\n", err.message);
            failed++;
            continue;
        }
        printf("== %s (kind %s, through the pipeline%s%s)\n", cases[i], c.kind, remote ? ": daemons at " : "",
               remote ? bind : ": roles as threads over inproc://");
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
        if (ok && !remote)
            ok = g3n_weights_open_synth(&weights, seed, G3N_DTYPE_BF16, &err) == G3N_OK &&
                 g3n_local_roles_start(&local, broker, inproc, weights, &c.config, NULL, mask, &transport, &err) ==
                     G3N_OK;
        for (int role = 1; ok && role < G3N_ROLE_COUNT; role++)
            if (mask & (1u << role))
                ok = g3n_broker_wait_workers(broker, role, 1, remote ? (int)(wait_seconds * 1000) : 10000, &err) ==
                     G3N_OK;
        ok = ok && g3n_client_open(&client, broker, &err) == G3N_OK;
        if (!ok || g3n_pipeline_check_case(&c, client, &err) != G3N_OK) {
            fprintf(stderr, "g3n check-pipeline: error: %s: %s\n", cases[i], err.message);
            c.failed++;
        }
        printf("-- %s: %d passed, %d failed (%.2f s)\n", cases[i], c.passed, c.failed, g3n_now_seconds() - start);
        passed += c.passed;
        failed += c.failed;
        g3n_client_close(client);
        g3n_local_roles_stop(&local);
        g3n_weights_close(weights);
        g3n_check_case_close(&c);
    }
    g3n_broker_stop(broker);
    free(cases);
    printf("%d passed, %d failed\n", passed, failed);
    return failed == 0 ? 0 : 1;
}
