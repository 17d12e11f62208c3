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
#include "submodel.h"
#include "prefix_cache.h"
#include "tokenizer.h"
#include "transport.h"

static void print_help(FILE *out)
{
    fprintf(out,
            "usage: g3n-orchestrator (--model DIR | --config FILE --tokenizer FILE) [options]\n"
            "\n"
            "Binds the broker that the worker daemons (g3n-vision-encoder, g3n-audio-encoder,\n"
            "g3n-embedder, g3n-decoder) connect to, and a client endpoint for chat requests\n"
            "(`g3n run --connect ENDPOINT`): chat template and tokenizer, media to the encoder pools\n"
            "in parallel, the embedder's merge, prefill and decoding on a decoder, token events\n"
            "streamed back. Several chats at once. Stops cleanly on SIGTERM/SIGINT.\n"
            "\n"
            "  --model DIR               folder with config.json and tokenizer.json (weights are not read)\n"
            "  --config FILE             config.json (instead of --model)\n"
            "  --tokenizer FILE          tokenizer.json (default DIR/tokenizer.json)\n"
            "  --bind ENDPOINT           for the workers (default tcp://0.0.0.0:5555); repeatable\n"
            "  --listen ENDPOINT         for the clients (default tcp://0.0.0.0:5556)\n"
            "  --max-chats N             chats at once (default 16)\n"
            "  --heartbeat-ms N          heartbeat interval (default 1000; match the workers')\n"
            "  --heartbeat-timeout-ms N  a worker silent this long is lost (default 5000)\n"
            "  --no-worker-wait-ms N     a request for a role with no worker fails after this (default 10000)\n"
            "  --max-message-mb N        largest message (default 512)\n"
            "  --quiet                   do not log workers joining and leaving\n"
            "  --http PORT               also serve the OpenAI-compatible HTTP API on PORT (docs/http-api.md)\n"
            "  --http-host ADDR          its address (default 127.0.0.1)\n"
            "  --http-max-sessions N     HTTP generations at once (default 4); --http-queue N waiting (default 16)\n"
            "  --live-sessions N         HTTP live sessions at once (/v1/live/*, default 4; 0: none): frames,\n"
            "                            audio and questions go to the workers as in g3n serve\n"
            "  --live-idle-seconds N     a live session untouched this long is freed (default 600)\n"
            "  --live-max-media-mb N     one frame or audio piece pushed to a live session (default 16)\n"
            "  --live-max-tokens N       a live answer's length: default and cap (default 256)\n"
            "  --allow-dir DIR           HTTP image_url/audio_url may name local files under DIR\n"
            "  --model-name NAME         the model id HTTP clients name (default: the folder's name)\n"
            "  --submodel SPEC           a MatFormer sub-model the decoders serve (their --submodel; repeatable):\n"
            "                            HTTP lists it as NAME:<its name> and runs requests naming it there\n"
            "  --health-file PATH        keep PATH rewritten every second with the state for --probe\n"
            "                            (ready once the broker, client endpoint and HTTP API are up)\n"
            "  --probe live|ready        with --health-file: exit 0 if the orchestrator writing it is\n"
            "                            live / ready, else 1 (a cluster's exec probe)\n"
            "  --check-args              check the arguments and exit (0 if they would be accepted)\n"
            "  --no-prefix-cache         no decoder sessions kept between chats: every chat prefills its whole\n"
            "                            prompt (default: a chat that extends a kept session's tokens, e.g. the\n"
            "                            next turn, prefills only the new suffix; proto/README.md)\n"
            "  --prefix-cache-sessions N sessions kept (default 8), least recently used evicted first\n"
            "  --prefix-cache-positions N  positions they hold together (default 65536)\n"
            "Security (tcp:// needs one of these; README \"Security\"):\n" G3N_SECURITY_HELP_BIND
            "HTTP API security (docs/http-api.md):\n" G3N_HTTP_SECURITY_HELP);
}

int main(int argc, char **argv)
{
    g3n_openmp_default_waits(argv); /* a short spin, then sleep: openmp_waits.h */
    const char *model_dir = NULL, *config_path = NULL, *tokenizer_path = NULL, *listen = "tcp://0.0.0.0:5556";
    const char *binds[8];
    int bind_count = 0, quiet = 0, max_chats = 16, http_port = -1, check_args = 0, prefix_cache_on = 1;
    const char *health_file = NULL, *probe = NULL;
    const char *submodel_specs[G3N_HTTP_MAX_SUBMODELS];
    char submodel_names[G3N_HTTP_MAX_SUBMODELS][64];
    const char *submodel_name_list[G3N_HTTP_MAX_SUBMODELS];
    int submodel_count = 0;
    g3n_prefix_cache_options cache_options = g3n_prefix_cache_default_options();
    g3n_http_options http = g3n_http_default_options();
    g3n_http_live_options live_options = g3n_http_live_default_options();
    int live_sessions = live_options.max_sessions;
    g3n_transport_options transport = g3n_transport_default_options();
    g3n_security_flags security = {0};
    g3n_http_security_flags http_security;
    memset(&http_security, 0, sizeof(http_security));
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        const char *v = i + 1 < argc ? argv[i + 1] : NULL;
        if (strcmp(a, "-h") == 0 || strcmp(a, "--help") == 0) {
            print_help(stdout);
            return 0;
        }
        int http_uses_value, http_flag = g3n_http_security_flag(&http_security, a, v, &http_uses_value);
        if (http_flag < 0) {
            fprintf(stderr, "g3n-orchestrator: error: %s needs a value (a number >= 1 for the limits)\n", a);
            return 2;
        }
        if (http_flag == 1) {
            i += http_uses_value;
            continue;
        }
        int uses_value, security_flag = g3n_security_flag(&security, a, v, &uses_value);
        if (security_flag < 0 || (security_flag == 1 && (strcmp(a, "--key") == 0 || strcmp(a, "--server-key") == 0))) {
            fprintf(stderr, "g3n-orchestrator: error: %s %s (see --help)\n", a,
                    security_flag < 0 ? "needs a value" : "is for workers and clients; the orchestrator takes --keys DIR");
            return 2;
        }
        if (security_flag == 1) {
            i += uses_value;
            continue;
        }
        if (strcmp(a, "--quiet") == 0) {
            quiet = 1;
            continue;
        }
        if (strcmp(a, "--check-args") == 0) {
            check_args = 1;
            continue;
        }
        if (strcmp(a, "--no-prefix-cache") == 0) {
            prefix_cache_on = 0;
            continue;
        }
        if (!v) {
            fprintf(stderr, "g3n-orchestrator: error: %s needs a value (see --help)\n", a);
            return 2;
        }
        i++;
        if (strcmp(a, "--model") == 0)
            model_dir = v;
        else if (strcmp(a, "--config") == 0)
            config_path = v;
        else if (strcmp(a, "--tokenizer") == 0)
            tokenizer_path = v;
        else if (strcmp(a, "--bind") == 0 && bind_count < 8)
            binds[bind_count++] = v;
        else if (strcmp(a, "--listen") == 0)
            listen = v;
        else if (strcmp(a, "--max-chats") == 0)
            max_chats = atoi(v);
        else if (strcmp(a, "--heartbeat-ms") == 0)
            transport.heartbeat_interval_ms = atoi(v);
        else if (strcmp(a, "--heartbeat-timeout-ms") == 0)
            transport.heartbeat_timeout_ms = atoi(v);
        else if (strcmp(a, "--no-worker-wait-ms") == 0)
            transport.no_worker_wait_ms = atoi(v);
        else if (strcmp(a, "--http") == 0)
            http_port = atoi(v);
        else if (strcmp(a, "--http-host") == 0)
            http.host = v;
        else if (strcmp(a, "--http-max-sessions") == 0)
            http.max_sessions = atoi(v);
        else if (strcmp(a, "--http-queue") == 0)
            http.queue = atoi(v);
        else if (strcmp(a, "--allow-dir") == 0)
            http.allow_dir = v;
        else if (strcmp(a, "--live-sessions") == 0 && atoi(v) >= 0 && atoi(v) <= 1024)
            live_sessions = atoi(v);
        else if (strcmp(a, "--live-idle-seconds") == 0 && atoi(v) >= 1)
            live_options.idle_seconds = atoi(v);
        else if (strcmp(a, "--live-max-media-mb") == 0 && atoi(v) >= 1 && atoi(v) <= 4096)
            live_options.max_media_bytes = (int64_t)atoi(v) << 20;
        else if (strcmp(a, "--live-max-tokens") == 0 && atoi(v) >= 1)
            live_options.max_tokens = atoi(v);
        else if (strcmp(a, "--model-name") == 0)
            http.model_name = v;
        else if (strcmp(a, "--submodel") == 0 && submodel_count < G3N_HTTP_MAX_SUBMODELS)
            submodel_specs[submodel_count++] = v;
        else if (strcmp(a, "--prefix-cache-sessions") == 0 && atoi(v) > 0)
            cache_options.max_entries = atoi(v);
        else if (strcmp(a, "--prefix-cache-positions") == 0 && atoll(v) > 0)
            cache_options.max_positions = atoll(v);
        else if (strcmp(a, "--max-message-mb") == 0)
            transport.max_message_bytes = (int64_t)atoll(v) << 20;
        else if (strcmp(a, "--health-file") == 0)
            health_file = v;
        else if (strcmp(a, "--probe") == 0)
            probe = v;
        else {
            fprintf(stderr, "g3n-orchestrator: error: unknown argument '%s' (see --help)\n", a);
            return 2;
        }
    }
    if (probe) {
        if (!health_file) {
            fprintf(stderr, "g3n-orchestrator: error: --probe needs --health-file PATH\n");
            return 2;
        }
        char message[1024];
        int probe_rc = g3n_health_probe(health_file, probe, G3N_HEALTH_MAX_AGE_SECONDS, message, sizeof(message));
        fprintf(probe_rc == 0 ? stdout : stderr, "g3n-orchestrator: %s\n", message);
        return probe_rc;
    }
    if (!model_dir && !config_path) {
        fprintf(stderr, "g3n-orchestrator: error: give --model DIR or --config FILE (see --help)\n");
        return 2;
    }
    char tokenizer_default[1200];
    if (!tokenizer_path) {
        if (!model_dir) {
            fprintf(stderr, "g3n-orchestrator: error: --config needs --tokenizer\n");
            return 2;
        }
        snprintf(tokenizer_default, sizeof(tokenizer_default), "%s/tokenizer.json", model_dir);
        tokenizer_path = tokenizer_default;
    }
    if (bind_count == 0)
        binds[bind_count++] = "tcp://0.0.0.0:5555";
    if (max_chats < 1 || http_port > 65535 || transport.max_message_bytes < (1 << 20)) {
        fprintf(stderr, "g3n-orchestrator: error: a numeric option is out of range (see --help)\n");
        return 2;
    }
    g3n_error err = {{0}};
    int security_ok = check_args || g3n_security_apply(&security, "g3n-orchestrator", &transport.curve,
                                                       &transport.insecure, &err) == G3N_OK;
    for (int i = 0; i <= bind_count && security_ok; i++) { /* every bind, then the client endpoint */
        const char *endpoint = i < bind_count ? binds[i] : listen;
        security_ok = check_args ? g3n_security_check_flags(&security, endpoint, &err) == G3N_OK
                                 : g3n_curve_check_endpoint(endpoint, &transport.curve, transport.insecure, &err) ==
                                       G3N_OK;
    }
    if (!security_ok) {
        fprintf(stderr, "g3n-orchestrator: error: %s\n", err.message);
        return 2;
    }
    if (check_args) {
        printf("g3n-orchestrator: arguments accepted (workers on %s, clients on %s%s)\n", binds[0], listen,
               http_port >= 0 ? ", HTTP API" : "");
        return 0;
    }
    transport.verbose = !quiet;
    g3n_install_shutdown_handlers();
    g3n_curve_install_reload_handler();
    g3n_model_config config;
    memset(&config, 0, sizeof(config));
    g3n_tokenizer *tokenizer = NULL;
    g3n_broker *broker = NULL;
    g3n_front_door *door = NULL;
    g3n_http_server *http_server = NULL;
    g3n_http_live *live = NULL;
    g3n_http_auth *auth = NULL;
    char *tls_cert = NULL, *tls_key = NULL;
    if (http_port >= 0 && g3n_http_security_load(&http_security, &auth, &tls_cert, &tls_key, &err) != G3N_OK) {
        fprintf(stderr, "g3n-orchestrator: error: %s\n", err.message);
        return 2;
    }
    http.auth = auth;
    http.tls_cert_pem = tls_cert;
    http.tls_key_pem = tls_key;
    g3n_prefix_cache *cache = NULL;
    int rc = 1;
    if (g3n_config_load(&config, config_path ? config_path : model_dir, &err) != G3N_OK ||
        g3n_tokenizer_load(&tokenizer, tokenizer_path, &err) != G3N_OK ||
        g3n_broker_start(&broker, binds, bind_count, &transport, &err) != G3N_OK ||
        (prefix_cache_on && g3n_prefix_cache_create(&cache, &cache_options, &err) != G3N_OK))
        goto done;
    g3n_front_door_options fo;
    memset(&fo, 0, sizeof(fo));
    fo.endpoint = listen;
    fo.max_chats = max_chats;
    fo.max_message_bytes = transport.max_message_bytes;
    fo.prefix_cache = cache;
    if (g3n_front_door_start(&door, broker, &config, tokenizer, &fo, &err) != G3N_OK)
        goto done;
    fprintf(stderr, "g3n-orchestrator: workers connect to %s, clients to %s\n", binds[0], listen);
    if (http_port >= 0) { /* the HTTP API in front of the same broker (http_server.h) */
        char name[256];
        if (!http.model_name && model_dir) {
            snprintf(name, sizeof(name), "%s", model_dir);
            size_t n = strlen(name);
            while (n > 1 && name[n - 1] == '/')
                name[--n] = '\0';
            http.model_name = strrchr(name, '/') ? strrchr(name, '/') + 1 : name;
        }
        http.port = http_port;
        http.prefix_cache = cache;
        http.quiet = quiet;
        for (int i = 0; i < submodel_count; i++) { /* checked here; the decoders serve them by these names */
            g3n_submodel spec;
            if (g3n_submodel_parse(&spec, submodel_specs[i], &config.text, &err) != G3N_OK)
                goto done;
            snprintf(submodel_names[i], sizeof(submodel_names[i]), "%s", spec.name);
            submodel_name_list[i] = submodel_names[i];
            g3n_submodel_free(&spec);
        }
        http.submodels = submodel_name_list;
        http.submodel_count = submodel_count;
        int eos[G3N_MAX_EOS_IDS], eos_count = 0, found = 0;
        if (model_dir && g3n_generation_config_load(model_dir, &http.sampling, eos, &eos_count, &found, &err) !=
                             G3N_OK)
            goto done;
        if (live_sessions > 0) { /* /v1/live/...: the same sessions as g3n serve's, on these workers */
            g3n_http_live_options lo = live_options;
            char preprocessor[1300];
            lo.max_sessions = live_sessions;
            lo.sampling = http.sampling;
            lo.model_name = http.model_name;
            if (model_dir) {
                snprintf(preprocessor, sizeof(preprocessor), "%s/preprocessor_config.json", model_dir);
                if (access(preprocessor, R_OK) == 0)
                    lo.preprocessor_config = preprocessor;
            }
            if (g3n_http_live_create(&live, broker, &config, tokenizer, &lo, &err) != G3N_OK)
                goto done;
            http.live = live;
        }
        if (g3n_http_server_start(&http_server, broker, &config, tokenizer, &http, &err) != G3N_OK)
            goto done;
        fprintf(stderr, "g3n-orchestrator: HTTP API on %s://%s:%d%s\n", tls_cert ? "https" : "http", http.host,
                g3n_http_server_port(http_server), auth ? " (API keys required)" : "");
    }
    for (int tick = 0; !g3n_shutdown_requested(); tick++) {
        if (health_file && tick % 20 == 0) {
            g3n_broker_stats stats;
            g3n_broker_get_stats(broker, &stats);
            char detail[256];
            snprintf(detail, sizeof(detail), "workers: %d vision, %d audio, %d embedder, %d decoder",
                     stats.live_workers[G3N_ROLE_VISION_ENCODER], stats.live_workers[G3N_ROLE_AUDIO_ENCODER],
                     stats.live_workers[G3N_ROLE_EMBEDDER], stats.live_workers[G3N_ROLE_DECODER]);
            if (g3n_health_file_write(health_file, "ready", detail, &err) != G3N_OK)
                fprintf(stderr, "g3n-orchestrator: warning: %s\n", err.message);
        }
        usleep(50000);
    }
    fprintf(stderr, "g3n-orchestrator: shutting down\n");
    rc = 0;
done:
    if (rc != 0)
        fprintf(stderr, "g3n-orchestrator: error: %s\n", err.message);
    g3n_http_server_stop(http_server);
    g3n_http_live_free(live);
    g3n_front_door_stop(door);
    if (cache) { /* the kept sessions end on their decoders */
        g3n_client *client = NULL;
        g3n_error ignored;
        if (g3n_client_open(&client, broker, &ignored) != G3N_OK)
            client = NULL;
        g3n_prefix_cache_free(cache, client);
        g3n_client_close(client);
    }
    g3n_broker_stop(broker);
    g3n_tokenizer_free(tokenizer);
    g3n_config_free(&config);
    if (health_file)
        unlink(health_file);
    g3n_http_auth_free(auth);
    free(tls_cert);
    if (tls_key)
        memset(tls_key, 0, strlen(tls_key));
    free(tls_key);
    return rc;
}
