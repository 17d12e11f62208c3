/* g3n-orchestrator - the front door: binds the broker the worker daemons
 * connect to, and a client endpoint where chat requests come in; streams the
 * answers back as token events. Needs only config.json and tokenizer.json. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "config.h"
#include "front_door.h"
#include "generate.h"
#include "health_file.h"
#include "http_auth.h"
#include "http_live.h"
#include "http_server.h"
#include "openmp_waits.h"
#include "option_groups.h"
#include "submodel.h"
#include "prefix_cache.h"
#include "tokenizer.h"
#include "transport.h"

#define MAX_BINDS 8

typedef struct orchestrator_args {
    const char *model_dir, *config_path, *tokenizer_path, *listen, *health_file, *probe;
    const char *bind_items[MAX_BINDS], *submodel_items[G3N_HTTP_MAX_SUBMODELS];
    g3n_option_list binds, submodels;
    int quiet, max_chats, http_port, check_args, no_prefix_cache, max_message_mb;
    int live_sessions, live_idle_seconds, live_max_media_mb, live_max_tokens;
    g3n_http_live_options live;
    g3n_prefix_cache_options cache_options;
    g3n_http_options http;
    g3n_transport_options transport;
    g3n_security_flags security;
    g3n_http_security_flags http_security;
    char tokenizer_default[1200];
} orchestrator_args;

static const g3n_command_spec orchestrator_spec = {
    .name = "g3n-orchestrator",
    .usage = "g3n-orchestrator (--model DIR | --config FILE --tokenizer FILE) [options]",
    .about = "Binds the broker that the worker daemons (g3n-vision-encoder, g3n-audio-encoder,\n"
             "g3n-embedder, g3n-decoder) connect to, and a client endpoint for chat requests\n"
             "(`g3n run --connect ENDPOINT`): chat template and tokenizer, media to the encoder pools\n"
             "in parallel, the embedder's merge, prefill and decoding on a decoder, token events\n"
             "streamed back. Several chats at once. Stops cleanly on SIGTERM/SIGINT.\n",
    .help_column = 28,
};

/* --key / --server-key: a connecting side's flags, refused with the reason. */
static int refuse_connect_key(const char *value, void *field, g3n_error *err)
{
    (void)value;
    return g3n_error_set(err, "%s is for workers and clients; the orchestrator takes --keys DIR", (const char *)field);
}

/* -1 to go on, else the exit code. */
static int parse_args(orchestrator_args *a, int argc, char **argv)
{
    memset(a, 0, sizeof(*a));
    a->listen = "tcp://0.0.0.0:5556";
    a->binds = (g3n_option_list){a->bind_items, MAX_BINDS, 0};
    a->submodels = (g3n_option_list){a->submodel_items, G3N_HTTP_MAX_SUBMODELS, 0};
    a->max_chats = 16;
    a->http_port = -1;
    a->cache_options = g3n_prefix_cache_default_options();
    a->http = g3n_http_default_options();
    a->transport = g3n_transport_default_options();
    a->max_message_mb = (int)(a->transport.max_message_bytes >> 20);
    a->live = g3n_http_live_default_options();
    a->live_sessions = a->live.max_sessions;
    a->live_idle_seconds = (int)a->live.idle_seconds;
    a->live_max_media_mb = (int)(a->live.max_media_bytes >> 20);
    a->live_max_tokens = (int)a->live.max_tokens;
    const g3n_option options[] = {
        G3N_OPTION_MODEL(&a->model_dir, "folder with config.json and tokenizer.json (weights are not read)"),
        G3N_STRING("config", &a->config_path, "FILE", "config.json (instead of --model)"),
        G3N_OPTION_TOKENIZER(&a->tokenizer_path, "tokenizer.json (default DIR/tokenizer.json)"),
        G3N_LIST("bind", &a->binds, "ENDPOINT", "for the workers (default tcp://0.0.0.0:5555); repeatable"),
        G3N_STRING("listen", &a->listen, "ENDPOINT", "for the clients (default tcp://0.0.0.0:5556)"),
        G3N_INT("max-chats", &a->max_chats, 1, 65536, "N", "chats at once (default 16)"),
        G3N_INT("heartbeat-ms", &a->transport.heartbeat_interval_ms, 1, 3600000, "N",
                "heartbeat interval (default 1000; match the workers')"),
        G3N_INT("heartbeat-timeout-ms", &a->transport.heartbeat_timeout_ms, 1, 86400000, "N",
                "a worker silent this long is lost (default 5000)"),
        G3N_INT("no-worker-wait-ms", &a->transport.no_worker_wait_ms, 0, 86400000, "N",
                "a request for a role with no worker fails after this (default 10000)"),
        G3N_INT("max-message-mb", &a->max_message_mb, 1, 1 << 20, "N", "largest message (default 512)"),
        G3N_FLAG("quiet", &a->quiet, "do not log workers joining and leaving"),
        G3N_INT("http", &a->http_port, 0, 65535, "PORT",
                "also serve the OpenAI-compatible HTTP API on PORT (docs/http-api.md)"),
        G3N_STRING("http-host", &a->http.host, "ADDR", "its address (default 127.0.0.1)"),
        G3N_INT("http-max-sessions", &a->http.max_sessions, 1, 65536, "N", "HTTP generations at once (default 4)"),
        G3N_INT("http-queue", &a->http.queue, 0, 1 << 20, "N", "HTTP requests waiting beyond those (default 16)"),
        G3N_INT("live-sessions", &a->live_sessions, 0, 1024, "N",
                "live sessions at once (default 4; 0: none), on the HTTP API (/v1/live/*)\n"
                "and on the client endpoint each (g3n live --connect, g3n run --video\n"
                "--connect): frames, audio and questions go to the workers as in g3n serve"),
        G3N_INT("live-idle-seconds", &a->live_idle_seconds, 1, 86400 * 365, "N",
                "a live session untouched this long is freed (default 600)"),
        G3N_INT("live-max-media-mb", &a->live_max_media_mb, 1, 4096, "N",
                "one frame or audio piece pushed to a live session (default 16)"),
        G3N_INT("live-max-tokens", &a->live_max_tokens, 1, 1 << 20, "N",
                "a live answer's length: default and cap (default 256)"),
        G3N_STRING("allow-dir", &a->http.allow_dir, "DIR", "HTTP image_url/audio_url may name local files under DIR"),
        G3N_STRING("model-name", &a->http.model_name, "NAME",
                   "the model id HTTP clients name (default: the folder's name)"),
        G3N_LIST("submodel", &a->submodels, "SPEC",
                 "a MatFormer sub-model the decoders serve (their --submodel; repeatable):\n"
                 "HTTP lists it as NAME:<its name> and runs requests naming it there"),
        G3N_STRING("health-file", &a->health_file, "PATH",
                   "keep PATH rewritten every second with the state for --probe\n"
                   "(ready once the broker, client endpoint and HTTP API are up)"),
        G3N_STRING("probe", &a->probe, "live|ready",
                   "with --health-file: exit 0 if the orchestrator writing it is\n"
                   "live / ready, else 1 (a cluster's exec probe)"),
        G3N_FLAG("check-args", &a->check_args, "check the arguments and exit (0 if they would be accepted)"),
        G3N_FLAG("no-prefix-cache", &a->no_prefix_cache,
                 "no decoder sessions kept between chats: every chat prefills its whole\n"
                 "prompt (default: a chat that extends a kept session's tokens, e.g. the\n"
                 "next turn, prefills only the new suffix; proto/README.md)"),
        G3N_INT("prefix-cache-sessions", &a->cache_options.max_entries, 1, 1 << 20, "N",
                "sessions kept (default 8), least recently used evicted first"),
        G3N_INT64("prefix-cache-positions", &a->cache_options.max_positions, 1, INT64_MAX, "N",
                  "positions they hold together (default 65536)"),
        G3N_SECTION("Security (tcp:// needs one of these; README \"Security\"):"),
        G3N_OPTIONS_SECURITY_BIND(&a->security),
        {.name = "key", .kind = G3N_OPTION_CUSTOM, .value = "--key", .parse = refuse_connect_key, .hidden = 1},
        {.name = "server-key", .kind = G3N_OPTION_CUSTOM, .value = "--server-key", .parse = refuse_connect_key,
         .hidden = 1},
        G3N_SECTION("HTTP API security (docs/http-api.md):"), G3N_OPTIONS_HTTP_SECURITY(&a->http_security),
    };
    int rc = g3n_options_main(&orchestrator_spec, options, G3N_OPTION_COUNT(options), argc, argv);
    if (rc >= 0)
        return rc;
    a->transport.max_message_bytes = (int64_t)a->max_message_mb << 20;
    a->live.max_sessions = a->live_sessions;
    a->live.idle_seconds = a->live_idle_seconds;
    a->live.max_media_bytes = (int64_t)a->live_max_media_mb << 20;
    a->live.max_tokens = a->live_max_tokens;
    if (a->probe)
        return -1; /* checked by run_probe */
    if (!a->model_dir && !a->config_path)
        return g3n_options_usage_error(&orchestrator_spec, "give --model DIR or --config FILE");
    if (!a->tokenizer_path) {
        if (!a->model_dir) {
            fprintf(stderr, "g3n-orchestrator: error: --config needs --tokenizer\n");
            return 2;
        }
        snprintf(a->tokenizer_default, sizeof(a->tokenizer_default), "%s/tokenizer.json", a->model_dir);
        a->tokenizer_path = a->tokenizer_default;
    }
    if (a->binds.count == 0)
        a->bind_items[a->binds.count++] = "tcp://0.0.0.0:5555";
    return -1;
}

/* --probe live|ready: the exit code. */
static int run_probe(const orchestrator_args *a)
{
    if (!a->health_file) {
        fprintf(stderr, "g3n-orchestrator: error: --probe needs --health-file PATH\n");
        return 2;
    }
    char message[1024];
    int probe_rc = g3n_health_probe(a->health_file, a->probe, G3N_HEALTH_MAX_AGE_SECONDS, message, sizeof(message));
    fprintf(probe_rc == 0 ? stdout : stderr, "g3n-orchestrator: %s\n", message);
    return probe_rc;
}

/* CurveZMQ or --insecure for every bind and the client endpoint (with
 * --check-args: the flags only, no key file read). -1 to go on, else the exit code. */
static int check_security(orchestrator_args *a)
{
    g3n_error err = {{0}};
    int ok = a->check_args || g3n_security_apply(&a->security, "g3n-orchestrator", &a->transport.curve,
                                                 &a->transport.insecure, &err) == G3N_OK;
    for (int i = 0; i <= a->binds.count && ok; i++) { /* every bind, then the client endpoint */
        const char *endpoint = i < a->binds.count ? a->bind_items[i] : a->listen;
        ok = a->check_args ? g3n_security_check_flags(&a->security, endpoint, &err) == G3N_OK
                           : g3n_curve_check_endpoint(endpoint, &a->transport.curve, a->transport.insecure, &err) ==
                                 G3N_OK;
    }
    if (!ok) {
        fprintf(stderr, "g3n-orchestrator: error: %s\n", err.message);
        return 2;
    }
    if (a->check_args) {
        printf("g3n-orchestrator: arguments accepted (workers on %s, clients on %s%s)\n", a->bind_items[0], a->listen,
               a->http_port >= 0 ? ", HTTP API" : "");
        return 0;
    }
    return -1;
}

/* What the orchestrator runs and stops. */
typedef struct orchestrator_state {
    g3n_model_config config;
    g3n_tokenizer *tokenizer;
    g3n_broker *broker;
    g3n_front_door *door;
    g3n_http_server *http_server;
    g3n_http_live *live;
    g3n_http_auth *auth;
    char *tls_cert, *tls_key;
    g3n_prefix_cache *cache;
    char model_name[256];
    char preprocessor[1300];
    char submodel_names[G3N_HTTP_MAX_SUBMODELS][64];
    const char *submodel_name_list[G3N_HTTP_MAX_SUBMODELS];
} orchestrator_state;

/* The HTTP API in front of the same broker (http_server.h). */
static int start_http(orchestrator_args *a, orchestrator_state *st, g3n_error *err)
{
    g3n_http_options *http = &a->http;
    if (!http->model_name && a->model_dir) {
        snprintf(st->model_name, sizeof(st->model_name), "%s", a->model_dir);
        size_t n = strlen(st->model_name);
        while (n > 1 && st->model_name[n - 1] == '/')
            st->model_name[--n] = '\0';
        http->model_name = strrchr(st->model_name, '/') ? strrchr(st->model_name, '/') + 1 : st->model_name;
    }
    http->port = a->http_port;
    http->prefix_cache = st->cache;
    http->quiet = a->quiet;
    for (int i = 0; i < a->submodels.count; i++) { /* checked here; the decoders serve them by these names */
        g3n_submodel spec;
        if (g3n_submodel_parse(&spec, a->submodel_items[i], &st->config.text, err) != G3N_OK)
            return G3N_ERR;
        snprintf(st->submodel_names[i], sizeof(st->submodel_names[i]), "%s", spec.name);
        st->submodel_name_list[i] = st->submodel_names[i];
        g3n_submodel_free(&spec);
    }
    http->submodels = st->submodel_name_list;
    http->submodel_count = a->submodels.count;
    int eos[G3N_MAX_EOS_IDS], eos_count = 0, found = 0;
    if (a->model_dir && g3n_generation_config_load(a->model_dir, &http->sampling, eos, &eos_count, &found, err) !=
                            G3N_OK)
        return G3N_ERR;
    if (a->live.max_sessions > 0) { /* /v1/live/...: the same sessions as g3n serve's, on these workers */
        g3n_http_live_options lo = a->live;
        lo.sampling = http->sampling;
        lo.model_name = http->model_name;
        if (a->model_dir) {
            snprintf(st->preprocessor, sizeof(st->preprocessor), "%s/preprocessor_config.json", a->model_dir);
            if (access(st->preprocessor, R_OK) == 0)
                lo.preprocessor_config = st->preprocessor;
        }
        if (g3n_http_live_create(&st->live, st->broker, &st->config, st->tokenizer, &lo, err) != G3N_OK)
            return G3N_ERR;
        http->live = st->live;
    }
    if (g3n_http_server_start(&st->http_server, st->broker, &st->config, st->tokenizer, http, err) != G3N_OK)
        return G3N_ERR;
    fprintf(stderr, "g3n-orchestrator: HTTP API on %s://%s:%d%s\n", st->tls_cert ? "https" : "http", http->host,
            g3n_http_server_port(st->http_server), st->auth ? " (API keys required)" : "");
    return G3N_OK;
}

/* Starts the broker, the front door and the HTTP API; serves until SIGTERM/SIGINT. */
static int serve(orchestrator_args *a, orchestrator_state *st, g3n_error *err)
{
    if (g3n_config_load(&st->config, a->config_path ? a->config_path : a->model_dir, err) != G3N_OK ||
        g3n_tokenizer_load(&st->tokenizer, a->tokenizer_path, err) != G3N_OK ||
        g3n_broker_start(&st->broker, a->bind_items, a->binds.count, &a->transport, err) != G3N_OK ||
        (!a->no_prefix_cache && g3n_prefix_cache_create(&st->cache, &a->cache_options, err) != G3N_OK))
        return G3N_ERR;
    g3n_front_door_options fo;
    memset(&fo, 0, sizeof(fo));
    fo.endpoint = a->listen;
    fo.max_chats = a->max_chats;
    fo.max_message_bytes = a->transport.max_message_bytes;
    fo.prefix_cache = st->cache;
    /* live sessions on the client endpoint too (g3n live --connect), bounded as the HTTP API's */
    fo.max_live_sessions = a->live.max_sessions > 0 ? a->live.max_sessions : -1;
    fo.live_idle_seconds = a->live.idle_seconds;
    fo.live_max_media_bytes = a->live.max_media_bytes;
    fo.live_max_tokens = (uint32_t)a->live.max_tokens;
    if (a->model_dir) {
        snprintf(st->preprocessor, sizeof(st->preprocessor), "%s/preprocessor_config.json", a->model_dir);
        if (access(st->preprocessor, R_OK) == 0)
            fo.preprocessor_config = st->preprocessor;
    }
    if (g3n_front_door_start(&st->door, st->broker, &st->config, st->tokenizer, &fo, err) != G3N_OK)
        return G3N_ERR;
    fprintf(stderr, "g3n-orchestrator: workers connect to %s, clients to %s\n", a->bind_items[0], a->listen);
    if (a->http_port >= 0 && start_http(a, st, err) != G3N_OK)
        return G3N_ERR;
    for (int tick = 0; !g3n_shutdown_requested(); tick++) {
        if (a->health_file && tick % 20 == 0) {
            g3n_broker_stats stats;
            g3n_broker_get_stats(st->broker, &stats);
            char detail[256];
            snprintf(detail, sizeof(detail), "workers: %d vision, %d audio, %d embedder, %d decoder",
                     stats.live_workers[G3N_ROLE_VISION_ENCODER], stats.live_workers[G3N_ROLE_AUDIO_ENCODER],
                     stats.live_workers[G3N_ROLE_EMBEDDER], stats.live_workers[G3N_ROLE_DECODER]);
            if (g3n_health_file_write(a->health_file, "ready", detail, err) != G3N_OK)
                fprintf(stderr, "g3n-orchestrator: warning: %s\n", err->message);
        }
        usleep(50000);
    }
    fprintf(stderr, "g3n-orchestrator: shutting down\n");
    return G3N_OK;
}

static void stop(const orchestrator_args *a, orchestrator_state *st)
{
    g3n_http_server_stop(st->http_server);
    g3n_http_live_free(st->live);
    g3n_front_door_stop(st->door);
    if (st->cache) { /* the kept sessions end on their decoders */
        g3n_client *client = NULL;
        g3n_error ignored;
        if (g3n_client_open(&client, st->broker, &ignored) != G3N_OK)
            client = NULL;
        g3n_prefix_cache_free(st->cache, client);
        g3n_client_close(client);
    }
    g3n_broker_stop(st->broker);
    g3n_tokenizer_free(st->tokenizer);
    g3n_config_free(&st->config);
    if (a->health_file)
        unlink(a->health_file);
    g3n_http_auth_free(st->auth);
    free(st->tls_cert);
    if (st->tls_key)
        memset(st->tls_key, 0, strlen(st->tls_key));
    free(st->tls_key);
}

int main(int argc, char **argv)
{
    g3n_openmp_default_waits(argv); /* a short spin, then sleep: openmp_waits.h */
    static orchestrator_args args; /* large: off the stack */
    int rc = parse_args(&args, argc, argv);
    if (rc < 0 && args.probe)
        rc = run_probe(&args);
    if (rc < 0)
        rc = check_security(&args);
    if (rc >= 0)
        return rc;
    args.transport.verbose = !args.quiet;
    g3n_install_shutdown_handlers();
    g3n_curve_install_reload_handler();
    static orchestrator_state st;
    g3n_error err = {{0}};
    if (args.http_port >= 0 &&
        g3n_http_security_load(&args.http_security, &st.auth, &st.tls_cert, &st.tls_key, &err) != G3N_OK) {
        fprintf(stderr, "g3n-orchestrator: error: %s\n", err.message);
        return 2;
    }
    args.http.auth = st.auth;
    args.http.tls_cert_pem = st.tls_cert;
    args.http.tls_key_pem = st.tls_key;
    rc = serve(&args, &st, &err) == G3N_OK ? 0 : 1;
    if (rc != 0)
        fprintf(stderr, "g3n-orchestrator: error: %s\n", err.message);
    stop(&args, &st);
    return rc;
}
