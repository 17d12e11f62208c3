/* role_daemon.c - the worker daemons' main (role_daemon.h). */
#include "role_daemon.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "config.h"
#include "health_file.h"
#include "matmul.h"
#include "openmp_waits.h"
#include "ops.h"
#include "role.h"
#include "transport.h"
#include "weights.h"
#include "wire.h"

static void print_help(FILE *out, const g3n_role_ops *ops, const char *program)
{
    const int sessions = (ops->daemon_options & G3N_ROLE_TAKES_SESSIONS) != 0;
    const int submodels = (ops->daemon_options & G3N_ROLE_TAKES_SUBMODELS) != 0;
    fprintf(out,
            "usage: %s (--model DIR | --synth CONFIG:SEED) [--connect ENDPOINT] [options]\n"
            "\n"
            "The %s role of g3n as a daemon: connects to the orchestrator's broker,\n"
            "announces itself (Hello: role, model, capacity), heartbeats, and serves requests\n"
            "until SIGTERM or SIGINT. Loads only the tensors this role needs.\n"
            "\n"
            "  --model DIR             checkpoint folder (config.json, safetensors shards)\n"
            "  --synth CONFIG:SEED     synthetic weights for a config.json\n"
            "  --connect ENDPOINT      the broker (default tcp://127.0.0.1:5555)\n"
            "  --name NAME             worker name (default ROLE-HOST-PID-N)\n"
            "  --threads N             OpenMP threads for the computation (default: all)\n"
            "  --capacity N            requests served at once (default 1%s)\n"
            "  --heartbeat-ms N        heartbeat interval (default 1000)\n"
            "  --heartbeat-timeout-ms N  broker silence before reconnecting (default 5000)\n"
            "  --max-message-mb N      largest message accepted (default 512)\n"
            "  --drain-timeout-s N     on SIGTERM: stop taking requests, finish those held (a decoder: its\n"
            "                          sessions) for at most N s, then exit (default 30; a second signal\n"
            "                          stops at once). Exit status 0 when everything finished\n"
            "  --health-file PATH      keep PATH rewritten every second with the state (starting, ready,\n"
            "                          not-ready, draining) for --probe; removed at exit\n"
            "  --probe live|ready      with --health-file: exit 0 if the daemon writing it is live\n"
            "                          (rewritten within %d s) or ready (live, weights loaded, registered\n"
            "                          with an orchestrator, not draining), else 1 (a cluster's exec probe)\n"
            "  --check-args            check the arguments and exit (0 if the daemon would accept them)\n"
            G3N_SECURITY_HELP_CONNECT
            "Set OMP_WAIT_POLICY=passive when several daemons share a host's cores (the launcher does).\n"
            "%s%s%s%s%s",
            program, g3n_role_name(ops->role), sessions ? "; the decoder:\n"
                                                          "                          --max-sessions, so that every session's step\n"
                                                          "                          can join the batched forward" : "",
            G3N_HEALTH_MAX_AGE_SECONDS,
            sessions ? "  --max-sessions N        KV-cache sessions held at once (default 16)\n"
                       "  --max-positions N       largest context per session (default: the model's)\n"
                       "  --session-idle-s N      a session unused this long is closed (default 600)\n"
                       "  --max-session-mb N      KV caches of all sessions together (default: half the\n"
                       "                          memory); a session beyond it is refused\n"
                     : "",
            ops->weights_help ? "  --weights f32|bf16|q8|q4  " : "", ops->weights_help ? ops->weights_help : "",
            ops->weights_help ? ".\n"
                                "                          Default q8 with --model (block-quantised once, ~0.5 % error\n"
                                "                          per product; printed at start), f32 with --synth; f32 is the\n"
                                "                          exact path (the stored weights, the reference's numbers)\n"
                              : "",
            submodels ? "  --weight-cache FILE     that q8/q4 cache file instead of DIR/g3n-cache\n"
                        "  --submodel SPEC         also serve this MatFormer sub-model (repeatable; a preset,\n"
                        "                          JSON or @FILE.json: g3n slice --help): views into the same\n"
                        "                          weights; a PrefillRequest's model names it\n"
                      : "");
}

#define MAX_SUBMODELS 16

int g3n_role_daemon_main(const g3n_role_ops *ops, const char *program, int argc, char **argv)
{
    const int role = ops->role;
    const unsigned takes = ops->daemon_options;
    g3n_openmp_default_waits(argv); /* a short spin, then sleep: openmp_waits.h */
    const char *model_dir = NULL, *synth_spec = NULL, *endpoint = "tcp://127.0.0.1:5555", *name = NULL;
    const char *weight_cache = NULL;
    const char *submodels[MAX_SUBMODELS];
    int submodel_count = 0;
    g3n_weight_format weight_format = G3N_WEIGHTS_EXACT;
    int weights_given = 0;
    g3n_error err = {{0}};
    int threads = 0, capacity = 1, capacity_given = 0, heartbeat_ms = 1000, heartbeat_timeout_ms = 5000,
        max_sessions = 16;
    long long max_message_mb = 512, max_positions = 0, drain_timeout_s = 30, max_session_mb = 0;
    double session_idle_s = 600.0;
    const char *health_file = NULL, *probe = NULL;
    int check_args = 0;
    g3n_security_flags security = {0};
    for (int i = 1; i < argc; i++) {
        if (strcmp(argv[i], "-h") == 0 || strcmp(argv[i], "--help") == 0) {
            print_help(stdout, ops, program);
            return 0;
        }
    }
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        if (strcmp(a, "--check-args") == 0) {
            check_args = 1;
            continue;
        }
        const char *v = i + 1 < argc ? argv[i + 1] : NULL;
        int uses_value, security_flag = g3n_security_flag(&security, a, v, &uses_value);
        if (security_flag < 0 || (security_flag == 1 && strcmp(a, "--keys") == 0)) {
            fprintf(stderr, "%s: error: %s %s (see --help)\n", program, a,
                    security_flag < 0 ? "needs a value" : "is for the orchestrator; a worker takes --key and --server-key");
            return 2;
        }
        if (security_flag == 1) {
            i += uses_value;
            continue;
        }
        if (!v || strncmp(a, "--", 2) != 0) {
            fprintf(stderr, "%s: error: unknown or incomplete argument '%s' (see --help)\n", program, a);
            return 2;
        }
        i++;
        if (strcmp(a, "--model") == 0)
            model_dir = v;
        else if (strcmp(a, "--synth") == 0)
            synth_spec = v;
        else if (strcmp(a, "--connect") == 0)
            endpoint = v;
        else if (strcmp(a, "--name") == 0)
            name = v;
        else if (strcmp(a, "--threads") == 0)
            threads = atoi(v);
        else if (strcmp(a, "--capacity") == 0) {
            capacity = atoi(v);
            capacity_given = 1;
        }
        else if (strcmp(a, "--heartbeat-ms") == 0)
            heartbeat_ms = atoi(v);
        else if (strcmp(a, "--heartbeat-timeout-ms") == 0)
            heartbeat_timeout_ms = atoi(v);
        else if (strcmp(a, "--max-message-mb") == 0)
            max_message_mb = atoll(v);
        else if (strcmp(a, "--drain-timeout-s") == 0)
            drain_timeout_s = atoll(v);
        else if (strcmp(a, "--health-file") == 0)
            health_file = v;
        else if (strcmp(a, "--probe") == 0)
            probe = v;
        else if (strcmp(a, "--max-sessions") == 0 && (takes & G3N_ROLE_TAKES_SESSIONS))
            max_sessions = atoi(v);
        else if (strcmp(a, "--max-positions") == 0 && (takes & G3N_ROLE_TAKES_SESSIONS))
            max_positions = atoll(v);
        else if (strcmp(a, "--session-idle-s") == 0 && (takes & G3N_ROLE_TAKES_SESSIONS))
            session_idle_s = atof(v);
        else if (strcmp(a, "--max-session-mb") == 0 && (takes & G3N_ROLE_TAKES_SESSIONS))
            max_session_mb = atoll(v);
        else if (strcmp(a, "--weights") == 0 && (takes & G3N_ROLE_TAKES_WEIGHTS)) {
            weights_given = 1;
            if (g3n_weight_format_parse(v, &weight_format, &err) != G3N_OK) {
                fprintf(stderr, "%s: error: %s\n", program, err.message);
                return 2;
            }
        } else if (strcmp(a, "--weight-cache") == 0 && (takes & G3N_ROLE_TAKES_SUBMODELS))
            weight_cache = v;
        else if (strcmp(a, "--submodel") == 0 && (takes & G3N_ROLE_TAKES_SUBMODELS)) {
            if (submodel_count >= MAX_SUBMODELS) {
                fprintf(stderr, "%s: error: at most %d --submodel\n", program, MAX_SUBMODELS);
                return 2;
            }
            submodels[submodel_count++] = v;
        }
        else {
            fprintf(stderr, "%s: error: unknown argument '%s' (see --help)\n", program, a);
            return 2;
        }
    }
    if (probe) {
        if (!health_file) {
            fprintf(stderr, "%s: error: --probe needs --health-file PATH (the file the daemon writes)\n", program);
            return 2;
        }
        char message[1024];
        int probe_rc = g3n_health_probe(health_file, probe, G3N_HEALTH_MAX_AGE_SECONDS, message, sizeof(message));
        fprintf(probe_rc == 0 ? stdout : stderr, "%s: %s\n", program, message);
        return probe_rc;
    }
    if ((model_dir == NULL) == (synth_spec == NULL)) {
        fprintf(stderr, "%s: error: give one of --model DIR or --synth CONFIG:SEED (see --help)\n", program);
        return 2;
    }
    if (capacity < 1 || capacity > 256 || heartbeat_ms < 10 || heartbeat_timeout_ms < 2 * heartbeat_ms ||
        max_message_mb < 1 || max_message_mb > 4096 || max_sessions < 1 || drain_timeout_s < 0 ||
        drain_timeout_s > 86400 || !(session_idle_s > 0.0) || max_session_mb < 0) {
        fprintf(stderr, "%s: error: a numeric option is out of range (see --help)\n", program);
        return 2;
    }
    g3n_curve_options curve;
    int insecure = 0;
    if (check_args ? g3n_security_check_flags(&security, endpoint, &err) != G3N_OK
                   : (g3n_security_apply(&security, program, &curve, &insecure, &err) != G3N_OK ||
                      g3n_curve_check_endpoint(endpoint, &curve, insecure, &err) != G3N_OK)) {
        fprintf(stderr, "%s: error: %s\n", program, err.message);
        return 2;
    }
    if (!weights_given) /* as g3n run/serve: a fast precision for a checkpoint, the exact path for synthetic weights */
        weight_format = model_dir ? G3N_WEIGHTS_Q8 : G3N_WEIGHTS_EXACT;
    char weights_said[160] = ""; /* what the role computes with, and why (said at start, as g3n run does) */
    if (takes & G3N_ROLE_TAKES_WEIGHTS)
        snprintf(weights_said, sizeof(weights_said), "weights %s (%s)", g3n_weight_format_name(weight_format),
                 weights_given                          ? "--weights"
                 : weight_format == G3N_WEIGHTS_EXACT ? "the exact path, the default for synthetic weights; "
                                                        "--weights q8|q4 for speed"
                                                      : "the default for a checkpoint; --weights f32 for the exact path");
    if (check_args) {
        printf("%s: arguments accepted (%s role, broker %s%s%s)\n", program, g3n_role_name(role), endpoint,
               weights_said[0] ? ", " : "", weights_said);
        return 0;
    }
    if (threads > 0)
        g3n_set_threads(threads);
    g3n_install_shutdown_handlers();
    if (weights_said[0])
        fprintf(stderr, "%s: %s\n", program, weights_said);

    g3n_model_config config;
    memset(&config, 0, sizeof(config));
    g3n_weights *weights = NULL;
    g3n_role *r = NULL;
    g3n_worker *worker = NULL;
    int rc = 1;
    double t0 = g3n_now_seconds();
    g3n_health_keeper *keeper = NULL; /* keeps the file fresh while the weights load */
    if (health_file && g3n_health_keeper_start(&keeper, health_file, "starting", "loading the weights", &err) != G3N_OK)
        goto done;
    char config_path[1024];
    uint64_t seed = 0;
    if (synth_spec) {
        if (g3n_parse_synth_spec(synth_spec, config_path, sizeof(config_path), &seed, &err) != G3N_OK ||
            g3n_config_load(&config, config_path, &err) != G3N_OK ||
            g3n_weights_open_synth(&weights, seed, G3N_DTYPE_BF16, &err) != G3N_OK)
            goto done;
    } else if (g3n_config_load(&config, model_dir, &err) != G3N_OK ||
               g3n_weights_open_checkpoint(&weights, model_dir, &err) != G3N_OK) {
        goto done;
    }
    g3n_role_options ro;
    memset(&ro, 0, sizeof(ro));
    ro.model_dir = model_dir;
    ro.max_sessions = max_sessions;
    ro.max_positions = max_positions;
    ro.session_idle_seconds = session_idle_s;
    if (max_session_mb == 0) /* half the memory */
        max_session_mb = (long long)((double)sysconf(_SC_PHYS_PAGES) * (double)sysconf(_SC_PAGESIZE) / 2.0 / 1048576.0);
    ro.max_session_bytes = (int64_t)max_session_mb << 20;
    ro.weight_format = weight_format;
    ro.threads = threads; /* omp_set_num_threads above reaches only this thread, not the handler threads */
    ro.weight_cache = weight_cache;
    ro.submodels = submodels;
    ro.submodel_count = submodel_count;
    if (g3n_role_open_ops(&r, ops, weights, &config, &ro, &err) != G3N_OK)
        goto done;
    g3n_worker_options wo;
    memset(&wo, 0, sizeof(wo));
    wo.role = role;
    wo.endpoint = endpoint;
    wo.name = name;
    wo.model_id = g3n_weights_describe(weights);
    /* the decoder's handler threads only queue steps for its engine thread and wait: one per session */
    wo.capacity = capacity_given || !(takes & G3N_ROLE_TAKES_SESSIONS) ? capacity : ops->capacity(&ro);
    wo.transport = g3n_transport_default_options();
    wo.transport.heartbeat_interval_ms = heartbeat_ms;
    wo.transport.heartbeat_timeout_ms = heartbeat_timeout_ms;
    wo.transport.max_message_bytes = (int64_t)max_message_mb << 20;
    wo.transport.curve = curve;
    wo.transport.insecure = insecure;
    if (g3n_worker_start(&worker, &wo, g3n_role_handle, r, &err) != G3N_OK)
        goto done;
    g3n_health_keeper_stop(keeper); /* the main loop writes it from here on */
    keeper = NULL;
    fprintf(stderr, "%s: %s serving %s for %s (loaded in %.2f s, %.1f MB generated/converted)\n", program,
            g3n_worker_name(worker), g3n_role_name(role), endpoint, g3n_now_seconds() - t0,
            (double)g3n_weights_allocated_bytes(weights) / 1e6);
    for (int tick = 0, last_connected = -1; !g3n_shutdown_requested(); tick++) {
        int connected = g3n_worker_connected(worker);
        if (health_file && (tick % 20 == 0 || connected != last_connected)) { /* each second, and at a change */
            last_connected = connected;
            char detail[640];
            snprintf(detail, sizeof(detail), "%s %s %s the broker at %s", g3n_role_name(role),
                     g3n_worker_name(worker), connected ? "registered with" : "not heard from", endpoint);
            if (g3n_health_file_write(health_file, connected ? "ready" : "not-ready", detail, &err) != G3N_OK)
                fprintf(stderr, "%s: warning: %s\n", program, err.message);
        }
        usleep(50000);
    }
    fprintf(stderr, "%s: draining: no new requests; finishing those held (at most %lld s)\n", program,
            drain_timeout_s);
    if (health_file)
        g3n_health_file_write(health_file, "draining", "finishing the requests held", NULL);
    rc = 0;
    if (g3n_worker_drain(worker, (int)(drain_timeout_s * 1000), ops->open_sessions ? g3n_role_open_sessions : NULL,
                         r, &err) != G3N_OK) {
        fprintf(stderr, "%s: %s\n", program, err.message);
        rc = 1;
    }
    fprintf(stderr, "%s: shutting down (%llu requests served, %llu messages rejected)\n", program,
            (unsigned long long)g3n_worker_requests_received(worker),
            (unsigned long long)g3n_worker_messages_rejected(worker));
    if (rc != 0)
        err.message[0] = '\0';
done:
    g3n_health_keeper_stop(keeper);
    if (rc != 0 && err.message[0])
        fprintf(stderr, "%s: error: %s\n", program, err.message);
    if (health_file)
        unlink(health_file);
    g3n_worker_stop(worker);
    g3n_role_close(r);
    g3n_weights_close(weights);
    g3n_config_free(&config);
    return rc;
}
