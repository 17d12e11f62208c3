/* role_daemon.c - the worker daemons' main (role_daemon.h). */
#include "role_daemon.h"

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "config.h"
#include "health_file.h"
#include "matmul.h"
#include "openmp_waits.h"
#include "option_groups.h"
#include "ops.h"
#include "role.h"
#include "transport.h"
#include "weights.h"
#include "wire.h"

#define MAX_SUBMODELS 16
#define MAX_DAEMON_OPTIONS 40 /* every daemon option with every role flag: 26 */
#define STRINGIFY(x) #x
#define STRINGIFY_VALUE(x) STRINGIFY(x)

/* The command line of a daemon, parsed. */
typedef struct daemon_args {
    const char *model_dir, *synth_spec, *endpoint, *name, *weight_cache, *health_file;
    int probe; /* -1, or an index into probe_kinds */
    const char *submodel_items[MAX_SUBMODELS];
    g3n_option_list submodels;
    g3n_weight_format weight_format;
    int weights_given;
    int threads, capacity, heartbeat_ms, heartbeat_timeout_ms, max_sessions, max_message_mb, drain_timeout_s;
    int64_t max_positions, max_session_mb;
    double session_idle_s;
    int check_args;
    g3n_security_flags security;
} daemon_args;

static const char *const probe_kinds[] = {"live", "ready", NULL};

static int refuse_keys(const char *value, void *field, g3n_error *err)
{
    (void)value;
    (void)field;
    return g3n_error_set(err, "--keys is for the orchestrator; a worker takes --key and --server-key");
}

static size_t add_options(g3n_option *table, size_t count, const g3n_option *more, size_t more_count)
{
    memcpy(table + count, more, more_count * sizeof(*more));
    return count + more_count;
}

/* Fills table with the options every daemon takes, then those its role's
 * flags (ops->daemon_options) add; weights_help is the buffer --weights's help
 * is written into. Returns the count. */
static size_t daemon_options(g3n_option *table, daemon_args *a, const g3n_role_ops *ops, char *weights_help,
                             size_t weights_help_size)
{
    const unsigned takes = ops->daemon_options;
    const g3n_option common[] = {
        G3N_OPTION_MODEL_DEFAULT(&a->model_dir),
        G3N_STRING("synth", &a->synth_spec, "CONFIG:SEED", "synthetic weights for a config.json"),
        G3N_STRING("connect", &a->endpoint, "ENDPOINT", "the broker (default tcp://127.0.0.1:5555)"),
        G3N_STRING("name", &a->name, "NAME", "worker name (default ROLE-HOST-PID-N)"),
        G3N_OPTION_THREADS_FOR(&a->threads, "OpenMP threads for the computation (default: all)"),
        G3N_INT("capacity", &a->capacity, 1, 256, "N",
                takes & G3N_ROLE_TAKES_SESSIONS ? "requests served at once (default 1; the decoder:\n"
                                                  "--max-sessions, so that every session's step\n"
                                                  "can join the batched forward)"
                                                : "requests served at once (default 1)"),
        G3N_INT("heartbeat-ms", &a->heartbeat_ms, 10, 3600000, "N", "heartbeat interval (default 1000)"),
        G3N_INT("heartbeat-timeout-ms", &a->heartbeat_timeout_ms, 20, 86400000, "N",
                "broker silence before reconnecting (default 5000;\nat least twice --heartbeat-ms)"),
        G3N_INT("max-message-mb", &a->max_message_mb, 1, 4096, "N", "largest message accepted (default 512)"),
        G3N_INT("drain-timeout-s", &a->drain_timeout_s, 0, 86400, "N",
                "on SIGTERM: stop taking requests, finish those held (a decoder: its\n"
                "sessions) for at most N s, then exit (default 30; a second signal\n"
                "stops at once). Exit status 0 when everything finished"),
        G3N_STRING("health-file", &a->health_file, "PATH",
                   "keep PATH rewritten every second with the state (starting, ready,\n"
                   "not-ready, draining) for --probe; removed at exit"),
        G3N_ENUM("probe", &a->probe, probe_kinds,
                 "with --health-file: exit 0 if the daemon writing it is live\n"
                 "(rewritten within " STRINGIFY_VALUE(G3N_HEALTH_MAX_AGE_SECONDS) " s) or ready (live, weights "
                 "loaded, registered\n"
                 "with an orchestrator, not draining), else 1 (a cluster's exec probe)"),
        G3N_FLAG("check-args", &a->check_args, "check the arguments and exit (0 if the daemon would accept them)"),
    };
    size_t count = add_options(table, 0, common, G3N_OPTION_COUNT(common));
    if (takes) {
        const g3n_option heading[] = {G3N_SECTION("This role's own:")};
        count = add_options(table, count, heading, 1);
    }
    if (takes & G3N_ROLE_TAKES_SESSIONS) {
        const g3n_option sessions[] = {
            G3N_INT("max-sessions", &a->max_sessions, 1, 1 << 20, "N", "KV-cache sessions held at once (default 16)"),
            G3N_INT64("max-positions", &a->max_positions, 0, INT64_MAX, "N",
                      "largest context per session (default: the model's)"),
            G3N_DOUBLE("session-idle-s", &a->session_idle_s, 0.001, 1e9, "N",
                       "a session unused this long is closed (default 600)"),
            G3N_INT64("max-session-mb", &a->max_session_mb, 0, INT64_MAX >> 20, "N",
                      "KV caches of all sessions together (default: half the\n"
                      "memory); a session beyond it is refused"),
        };
        count = add_options(table, count, sessions, G3N_OPTION_COUNT(sessions));
    }
    if ((takes & G3N_ROLE_TAKES_WEIGHTS) && ops->weights_help) {
        snprintf(weights_help, weights_help_size,
                 "f32|bf16|q8|q4: %s.\n"
                 "Default q8 with --model (block-quantised once, ~0.5 %% error\n"
                 "per product; printed at start), f32 with --synth; f32 is the\n"
                 "exact path (the stored weights, the reference's numbers)",
                 ops->weights_help);
        const g3n_option weights[] = {G3N_OPTION_WEIGHTS(&a->weight_format, &a->weights_given, weights_help)};
        count = add_options(table, count, weights, G3N_OPTION_COUNT(weights));
    }
    if (takes & G3N_ROLE_TAKES_SUBMODELS) {
        const g3n_option submodels[] = {
            G3N_STRING("weight-cache", &a->weight_cache, "FILE", "that q8/q4 cache file instead of DIR/g3n-cache"),
            G3N_LIST("submodel", &a->submodels, "SPEC",
                     "also serve this MatFormer sub-model (repeatable; a preset,\n"
                     "JSON or @FILE.json: g3n slice --help): views into the same\n"
                     "weights; a PrefillRequest's model names it"),
        };
        count = add_options(table, count, submodels, G3N_OPTION_COUNT(submodels));
    }
    const g3n_option security[] = {
        G3N_SECTION("Security (tcp:// needs one of these; README \"Security\"):"),
        G3N_OPTIONS_SECURITY_CONNECT(&a->security),
        {.name = "keys", .kind = G3N_OPTION_CUSTOM, .parse = refuse_keys, .hidden = 1},
    };
    return add_options(table, count, security, G3N_OPTION_COUNT(security));
}

/* -1 to go on, else the exit code (0 after --help, 2 after a usage error). */
static int parse_args(daemon_args *a, const g3n_role_ops *ops, const char *program, int argc, char **argv)
{
    memset(a, 0, sizeof(*a));
    a->endpoint = "tcp://127.0.0.1:5555";
    a->probe = -1;
    a->submodels = (g3n_option_list){a->submodel_items, MAX_SUBMODELS, 0};
    a->weight_format = G3N_WEIGHTS_EXACT;
    a->heartbeat_ms = 1000;
    a->heartbeat_timeout_ms = 5000;
    a->max_message_mb = 512;
    a->drain_timeout_s = 30;
    a->max_sessions = 16;
    a->session_idle_s = 600.0;
    g3n_option options[MAX_DAEMON_OPTIONS];
    char weights_help[1024], usage[256], about[512];
    size_t count = daemon_options(options, a, ops, weights_help, sizeof(weights_help));
    snprintf(usage, sizeof(usage), "%s (--model DIR | --synth CONFIG:SEED) [--connect ENDPOINT] [options]", program);
    snprintf(about, sizeof(about),
             "The %s role of g3n as a daemon: connects to the orchestrator's broker,\n"
             "announces itself (Hello: role, model, capacity), heartbeats, and serves requests\n"
             "until SIGTERM or SIGINT. Loads only the tensors this role needs.\n",
             g3n_role_name(ops->role));
    const g3n_command_spec spec = {
        .name = program,
        .usage = usage,
        .about = about,
        .footer = "Set OMP_WAIT_POLICY=passive when several daemons share a host's cores (the launcher does).\n",
    };
    int rc = g3n_options_main(&spec, options, count, argc, argv);
    if (rc >= 0)
        return rc;
    if (a->probe >= 0 && !a->health_file)
        return g3n_options_usage_error(&spec, "--probe needs --health-file PATH (the file the daemon writes)");
    if (a->probe >= 0) /* a probe reads the health file only */
        return -1;
    if ((a->model_dir == NULL) == (a->synth_spec == NULL))
        return g3n_options_usage_error(&spec, "give one of --model DIR or --synth CONFIG:SEED");
    if (a->heartbeat_timeout_ms < 2 * a->heartbeat_ms)
        return g3n_options_usage_error(&spec, "--heartbeat-timeout-ms %d is less than twice --heartbeat-ms %d",
                                       a->heartbeat_timeout_ms, a->heartbeat_ms);
    /* as g3n run/serve: a fast precision for a checkpoint, the exact path for synthetic weights */
    if (!a->weights_given)
        a->weight_format = a->model_dir ? G3N_WEIGHTS_Q8 : G3N_WEIGHTS_EXACT;
    return -1;
}

/* --probe live|ready: the exit code. */
static int run_probe(const daemon_args *a, const char *program)
{
    char message[1024];
    int rc = g3n_health_probe(a->health_file, probe_kinds[a->probe], G3N_HEALTH_MAX_AGE_SECONDS, message,
                              sizeof(message));
    fprintf(rc == 0 ? stdout : stderr, "%s: %s\n", program, message);
    return rc;
}

/* CurveZMQ or --insecure for the broker's endpoint (with --check-args: the
 * flags only, no key file read), then what the role computes with; prints it
 * (--check-args: and stops). -1 to go on, else the exit code. */
static int check_and_say(const daemon_args *a, const g3n_role_ops *ops, const char *program, g3n_curve_options *curve,
                         int *insecure)
{
    g3n_error err = {{0}};
    if (a->check_args ? g3n_security_check_flags(&a->security, a->endpoint, &err) != G3N_OK
                      : (g3n_security_apply(&a->security, program, curve, insecure, &err) != G3N_OK ||
                         g3n_curve_check_endpoint(a->endpoint, curve, *insecure, &err) != G3N_OK)) {
        fprintf(stderr, "%s: error: %s\n", program, err.message);
        return 2;
    }
    char weights_said[160] = ""; /* what the role computes with, and why (said at start, as g3n run does) */
    if (ops->daemon_options & G3N_ROLE_TAKES_WEIGHTS)
        snprintf(weights_said, sizeof(weights_said), "weights %s (%s)", g3n_weight_format_name(a->weight_format),
                 a->weights_given                          ? "--weights"
                 : a->weight_format == G3N_WEIGHTS_EXACT ? "the exact path, the default for synthetic weights; "
                                                           "--weights q8|q4 for speed"
                                                         : "the default for a checkpoint; --weights f32 for the "
                                                           "exact path");
    if (a->check_args) {
        printf("%s: arguments accepted (%s role, broker %s%s%s)\n", program, g3n_role_name(ops->role), a->endpoint,
               weights_said[0] ? ", " : "", weights_said);
        return 0;
    }
    if (weights_said[0])
        fprintf(stderr, "%s: %s\n", program, weights_said);
    return -1;
}

/* What a running daemon holds; daemon_close releases it all. */
typedef struct daemon_state {
    g3n_model_config config;
    g3n_weights *weights;
    g3n_role *role;
    g3n_worker *worker;
    g3n_health_keeper *keeper; /* keeps the health file fresh while the weights load */
} daemon_state;

/* Loads the weights and the role, and connects to the broker. */
static int daemon_open(daemon_state *d, const daemon_args *a, const g3n_role_ops *ops, const g3n_curve_options *curve,
                       int insecure, g3n_error *err)
{
    if (a->health_file &&
        g3n_health_keeper_start(&d->keeper, a->health_file, "starting", "loading the weights", err) != G3N_OK)
        return G3N_ERR;
    char config_path[1024];
    uint64_t seed = 0;
    if (a->synth_spec) {
        if (g3n_parse_synth_spec(a->synth_spec, config_path, sizeof(config_path), &seed, err) != G3N_OK ||
            g3n_config_load(&d->config, config_path, err) != G3N_OK ||
            g3n_weights_open_synth(&d->weights, seed, G3N_DTYPE_BF16, err) != G3N_OK)
            return G3N_ERR;
    } else if (g3n_config_load(&d->config, a->model_dir, err) != G3N_OK ||
               g3n_weights_open_checkpoint(&d->weights, a->model_dir, err) != G3N_OK) {
        return G3N_ERR;
    }
    g3n_role_options ro;
    memset(&ro, 0, sizeof(ro));
    ro.model_dir = a->model_dir;
    ro.max_sessions = a->max_sessions;
    ro.max_positions = a->max_positions;
    ro.session_idle_seconds = a->session_idle_s;
    int64_t max_session_mb = a->max_session_mb;
    if (max_session_mb == 0) /* half the memory */
        max_session_mb = (int64_t)((double)sysconf(_SC_PHYS_PAGES) * (double)sysconf(_SC_PAGESIZE) / 2.0 / 1048576.0);
    ro.max_session_bytes = max_session_mb << 20;
    ro.weight_format = a->weight_format;
    ro.threads = a->threads; /* omp_set_num_threads reaches only this thread, not the handler threads */
    ro.weight_cache = a->weight_cache;
    ro.submodels = a->submodel_items;
    ro.submodel_count = a->submodels.count;
    if (g3n_role_open_ops(&d->role, ops, d->weights, &d->config, &ro, err) != G3N_OK)
        return G3N_ERR;
    g3n_worker_options wo;
    memset(&wo, 0, sizeof(wo));
    wo.role = ops->role;
    wo.endpoint = a->endpoint;
    wo.name = a->name;
    wo.model_id = g3n_weights_describe(d->weights);
    /* the decoder's handler threads only queue steps for its engine thread and wait: one per session */
    wo.capacity = a->capacity > 0                                    ? a->capacity
                  : (ops->daemon_options & G3N_ROLE_TAKES_SESSIONS) ? ops->capacity(&ro)
                                                                    : 1;
    wo.transport = g3n_transport_default_options();
    wo.transport.heartbeat_interval_ms = a->heartbeat_ms;
    wo.transport.heartbeat_timeout_ms = a->heartbeat_timeout_ms;
    wo.transport.max_message_bytes = (int64_t)a->max_message_mb << 20;
    wo.transport.curve = *curve;
    wo.transport.insecure = insecure;
    if (g3n_worker_start(&d->worker, &wo, g3n_role_handle, d->role, err) != G3N_OK)
        return G3N_ERR;
    g3n_health_keeper_stop(d->keeper); /* the main loop writes it from here on */
    d->keeper = NULL;
    return G3N_OK;
}

/* Serves until SIGTERM/SIGINT, keeping the health file rewritten each second
 * and at a change of the broker's connection. */
static void daemon_serve(const daemon_state *d, const daemon_args *a, const g3n_role_ops *ops, const char *program)
{
    g3n_error err = {{0}};
    for (int tick = 0, last_connected = -1; !g3n_shutdown_requested(); tick++) {
        int connected = g3n_worker_connected(d->worker);
        if (a->health_file && (tick % 20 == 0 || connected != last_connected)) {
            last_connected = connected;
            char detail[640];
            snprintf(detail, sizeof(detail), "%s %s %s the broker at %s", g3n_role_name(ops->role),
                     g3n_worker_name(d->worker), connected ? "registered with" : "not heard from", a->endpoint);
            if (g3n_health_file_write(a->health_file, connected ? "ready" : "not-ready", detail, &err) != G3N_OK)
                fprintf(stderr, "%s: warning: %s\n", program, err.message);
        }
        usleep(50000);
    }
}

/* Stops taking requests and finishes those held, for at most
 * --drain-timeout-s: 0 when everything finished, else 1. */
static int daemon_drain(const daemon_state *d, const daemon_args *a, const g3n_role_ops *ops, const char *program)
{
    fprintf(stderr, "%s: draining: no new requests; finishing those held (at most %d s)\n", program,
            a->drain_timeout_s);
    if (a->health_file)
        g3n_health_file_write(a->health_file, "draining", "finishing the requests held", NULL);
    int rc = 0;
    g3n_error err = {{0}};
    if (g3n_worker_drain(d->worker, a->drain_timeout_s * 1000, ops->open_sessions ? g3n_role_open_sessions : NULL,
                         d->role, &err) != G3N_OK) {
        fprintf(stderr, "%s: %s\n", program, err.message);
        rc = 1;
    }
    fprintf(stderr, "%s: shutting down (%llu requests served, %llu messages rejected)\n", program,
            (unsigned long long)g3n_worker_requests_received(d->worker),
            (unsigned long long)g3n_worker_messages_rejected(d->worker));
    return rc;
}

static void daemon_close(daemon_state *d, const daemon_args *a)
{
    g3n_health_keeper_stop(d->keeper);
    if (a->health_file)
        unlink(a->health_file);
    g3n_worker_stop(d->worker);
    g3n_role_close(d->role);
    g3n_weights_close(d->weights);
    g3n_config_free(&d->config);
}

int g3n_role_daemon_main(const g3n_role_ops *ops, const char *program, int argc, char **argv)
{
    g3n_openmp_default_waits(argv); /* a short spin, then sleep: openmp_waits.h */
    daemon_args args;
    int rc = parse_args(&args, ops, program, argc, argv);
    if (rc >= 0)
        return rc;
    if (args.probe >= 0)
        return run_probe(&args, program);
    g3n_curve_options curve;
    memset(&curve, 0, sizeof(curve));
    int insecure = 0;
    rc = check_and_say(&args, ops, program, &curve, &insecure);
    if (rc >= 0)
        return rc;
    if (args.threads > 0)
        g3n_set_threads(args.threads);
    g3n_install_shutdown_handlers();
    daemon_state d;
    memset(&d, 0, sizeof(d));
    g3n_error err = {{0}};
    double t0 = g3n_now_seconds();
    if (daemon_open(&d, &args, ops, &curve, insecure, &err) != G3N_OK) {
        fprintf(stderr, "%s: error: %s\n", program, err.message);
        rc = 1;
    } else {
        fprintf(stderr, "%s: %s serving %s for %s (loaded in %.2f s, %.1f MB generated/converted)\n", program,
                g3n_worker_name(d.worker), g3n_role_name(ops->role), args.endpoint, g3n_now_seconds() - t0,
                (double)g3n_weights_allocated_bytes(d.weights) / 1e6);
        daemon_serve(&d, &args, ops, program);
        rc = daemon_drain(&d, &args, ops, program);
    }
    daemon_close(&d, &args);
    return rc;
}
