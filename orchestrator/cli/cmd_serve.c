/* g3n serve - the OpenAI-compatible HTTP API (orchestrator/http_server.h) with
 * every role in this process: the broker on inproc://, the vision encoder,
 * audio encoder, embedder and decoder as threads (the daemons' code), and the
 * HTTP server in front. --bind also lets daemons on other hosts join. */
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "commands.h"
#include "http_auth.h"
#include "config.h"
#include "generate.h"
#include "http_live.h"
#include "http_server.h"
#include "local_pipeline.h"
#include "matmul.h"
#include "model_source.h"
#include "ops.h"
#include "option_groups.h"
#include "pipeline.h"
#include "prefix_cache.h"
#include "submodel.h"
#include "tokenizer.h"
#include "transport.h"
#include "weights.h"

/* The command line of g3n serve, parsed. */
typedef struct serve_args {
    g3n_model_source source;
    g3n_http_options http;
    g3n_http_live_options live;
    const char *bind, *port_file, *model_name;
    int threads, weights_given, no_prefix_cache;
    g3n_weight_format weight_format;
    int max_body_mb, live_sessions, live_idle_seconds, live_max_media_mb;
    const char *submodel_items[G3N_HTTP_MAX_SUBMODELS];
    g3n_option_list submodels;
    g3n_security_flags security;
    g3n_http_security_flags http_security;
} serve_args;

static const g3n_command_spec serve_spec = {
    .name = "g3n serve",
    .usage = "g3n serve (--model DIR | --synth CONFIG:SEED | --demo) [options]",
    .about = "Serves the OpenAI chat API over HTTP with every role in this process (threads over\n"
             "inproc://): POST /v1/chat/completions (stream true/false; text, image_url data: URLs,\n"
             "input_audio), POST /v1/audio/transcriptions (multipart), GET /v1/models, /health, /metrics.\n"
             "Live sessions (issue 10): POST /v1/live/sessions, then .../frames, .../audio as media\n"
             "arrive (prefilled into the session's KV cache at once), .../ask at any moment, GET, DELETE.\n"
             "Stops on SIGINT/SIGTERM. See docs/http-api.md.\n",
    .help_column = 25,
};

/* -1 to go on, else the exit code. */
static int parse_args(serve_args *a, int argc, char **argv)
{
    memset(a, 0, sizeof(*a));
    a->http = g3n_http_default_options();
    a->live = g3n_http_live_default_options();
    a->weight_format = G3N_WEIGHTS_EXACT;
    a->max_body_mb = (int)(a->http.max_body_bytes >> 20);
    a->live_sessions = a->live.max_sessions;
    a->live_idle_seconds = (int)a->live.idle_seconds;
    a->live_max_media_mb = (int)(a->live.max_media_bytes >> 20);
    a->submodels = (g3n_option_list){a->submodel_items, G3N_HTTP_MAX_SUBMODELS, 0};
    const g3n_option options[] = {
        G3N_OPTION_MODEL(&a->source.model_dir, "checkpoint folder (config.json, safetensors, tokenizer.json,\n"
                                               "generation_config.json for the default sampling)"),
        G3N_STRING("synth", &a->source.synth_spec, "CONFIG:SEED",
                   "synthetic weights for a config.json (needs --tokenizer)"),
        G3N_FLAG("demo", &a->source.demo, "the tiny synthetic demo model (random words; real tokenizer)"),
        G3N_OPTION_TOKENIZER(&a->source.tokenizer_path, "tokenizer.json (default DIR/tokenizer.json)"),
        G3N_STRING("host", &a->http.host, "ADDR", "address to listen on (default 127.0.0.1)"),
        G3N_INT("port", &a->http.port, 0, 65535, "N", "port (default 8080; 0: any free port, printed and --port-file)"),
        G3N_STRING("port-file", &a->port_file, "FILE", "write the port here once listening (for scripts)"),
        G3N_STRING("model-name", &a->model_name, "NAME",
                   "the model id clients name (default: the folder's name, or\ngemma-3n-demo with --demo)"),
        G3N_STRING("allow-dir", &a->http.allow_dir, "DIR", "image_url/audio_url may name local files under DIR"),
        G3N_INT("max-sessions", &a->http.max_sessions, 1, 4096, "N",
                "generations at once, each with its own KV cache (default 4)"),
        G3N_INT("queue", &a->http.queue, 0, 1000000, "N", "requests waiting beyond them (default 16); more get 429"),
        G3N_INT64("max-tokens", &a->http.max_tokens, 1, INT64_MAX, "N",
                  "completion length: default and cap (default 1024)"),
        G3N_INT64("context", &a->http.max_context, 2, INT64_MAX, "N",
                  "prompt + completion tokens (default: max_position_embeddings)"),
        G3N_INT("max-body-mb", &a->max_body_mb, 1, 1 << 20, "N", "request body limit (default 64); more gets 413"),
        G3N_INT("max-connections", &a->http.max_connections, 1, 100000, "N", "open connections (default 256)"),
        G3N_INT("retry-after", &a->http.retry_after_seconds, 1, 86400, "N",
                "seconds in Retry-After on 429/503 (default 1)"),
        G3N_OPTION_THREADS_FOR(&a->threads, "OpenMP threads (default: all)"),
        G3N_OPTION_WEIGHTS(&a->weight_format, &a->weights_given,
                           "the decoder's weights: q8 (default with --model: block-quantised\n"
                           "once into DIR/g3n-cache, ~0.5 % error per product), q4 (faster,\n"
                           "coarser), bf16, or f32 (the reference's numbers; the default\n"
                           "with --synth and --demo)"),
        G3N_LIST("submodel", &a->submodels, "SPEC",
                 "also serve this MatFormer sub-model of the model (repeatable): a preset\n"
                 "(full, e2b, e1.96b, e2.54b), a JSON object or @FILE.json (g3n slice\n"
                 "--help); listed as the model id NAME:<sub-model name>, chosen per\n"
                 "request by \"model\"; views into the same weights, no second copy"),
        G3N_FLAG("quiet", &a->http.quiet, "no log line per request"),
        G3N_FLAG("no-prefix-cache", &a->no_prefix_cache,
                 "no decoder sessions kept between chats: every chat prefills its whole\n"
                 "history (by default a chat whose prompt extends a kept session's\n"
                 "tokens, e.g. the next turn, prefills only the new suffix)"),
        G3N_SECTION("Live sessions:"),
        G3N_INT("live-sessions", &a->live_sessions, 0, 1024, "N",
                "live sessions at once (default 4; 0: no live endpoints); each\n"
                "holds a decoder session of the roles"),
        G3N_INT64("live-context", &a->live.context, 1024, INT64_MAX, "N",
                  "KV cache positions per live session: default and cap (default:\n"
                  "--context or max_position_embeddings); when media fill it, the\n"
                  "oldest are dropped and the rest prefilled again"),
        G3N_INT("live-idle-seconds", &a->live_idle_seconds, 1, 86400 * 365, "N",
                "a live session untouched this long is freed (default 600)"),
        G3N_INT("live-max-media-mb", &a->live_max_media_mb, 1, 4096, "N",
                "one frame or audio piece pushed to a session (default 16)"),
        G3N_SECTION("Daemons on other hosts (tcp:// needs --keys or --insecure; README \"Security\"):"),
        G3N_STRING("bind", &a->bind, "ENDPOINT",
                   "also bind the broker here (e.g. tcp://0.0.0.0:5555) so daemons\n"
                   "can connect and share the work"),
        G3N_OPTIONS_SECURITY_BIND(&a->security),
        G3N_SECTION("HTTP API security (docs/http-api.md): with keys, /v1/... needs Authorization: Bearer KEY"),
        G3N_OPTIONS_HTTP_SECURITY(&a->http_security),
    };
    int rc = g3n_options_main(&serve_spec, options, G3N_OPTION_COUNT(options), argc, argv);
    if (rc >= 0)
        return rc;
    g3n_error err = {{0}};
    if (g3n_model_source_check(&a->source, &err) != G3N_OK)
        return g3n_options_usage_error(&serve_spec, "give one of --model, --synth, --demo");
    a->http.max_body_bytes = (int64_t)a->max_body_mb << 20;
    a->live.max_sessions = a->live_sessions;
    a->live.idle_seconds = a->live_idle_seconds;
    a->live.max_media_bytes = (int64_t)a->live_max_media_mb << 20;
    if (!a->weights_given)
        a->weight_format = g3n_default_weight_format(a->source.model_dir != NULL);
    return -1;
}

/* The id clients name: --model-name, else gemma-3n-demo with --demo, else
 * the checkpoint folder's name, else gemma-3n. */
static void choose_model_name(const serve_args *a, char *out, size_t size)
{
    if (a->model_name) {
        snprintf(out, size, "%s", a->model_name);
    } else if (a->source.demo) {
        snprintf(out, size, "gemma-3n-demo");
    } else if (a->source.model_dir) {
        char copy[PATH_MAX];
        snprintf(copy, sizeof(copy), "%s", a->source.model_dir);
        size_t n = strlen(copy);
        while (n > 1 && copy[n - 1] == '/')
            copy[--n] = '\0';
        const char *base = strrchr(copy, '/');
        snprintf(out, size, "%s", base ? base + 1 : copy);
    } else {
        snprintf(out, size, "gemma-3n");
    }
}

/* What a running server holds; serve_close releases it all. */
typedef struct serve_state {
    g3n_local_pipeline local;
    g3n_http_server *server;
    g3n_http_live *live;
    g3n_prefix_cache *cache; /* decoder sessions kept for prefix reuse, as g3n-orchestrator --http */
    g3n_prefix_cache_options cache_options;
    g3n_http_auth *auth;
    char *tls_cert, *tls_key;
    char model_name[256];
    char submodel_names[G3N_HTTP_MAX_SUBMODELS][64];
    const char *submodel_name_list[G3N_HTTP_MAX_SUBMODELS];
    char preprocessor[PATH_MAX + 64];
} serve_state;

/* The model, the broker and every role as threads of this process. */
static int start_roles(serve_state *s, serve_args *a, const g3n_transport_options *transport, g3n_error *err)
{
    if (g3n_local_pipeline_load(&s->local, &a->source, err) != G3N_OK)
        return G3N_ERR;
    if (a->source.model_dir) { /* the checkpoint's own sampling defaults, where a request gives none */
        int eos[G3N_MAX_EOS_IDS], eos_count = 0, found = 0;
        if (g3n_generation_config_load(a->source.model_dir, &a->http.sampling, eos, &eos_count, &found, err) !=
            G3N_OK)
            return G3N_ERR;
    }
    g3n_curve_install_reload_handler();
    if (g3n_local_pipeline_start_broker(&s->local, "inproc://g3n-serve-workers", a->bind, transport, err) != G3N_OK)
        return G3N_ERR;
    /* threads: each role thread's own OpenMP team size; max_sessions: headroom over the HTTP limit (the
     * decoder evicts its least recently used idle session when full, and a session whose EndSession is
     * still on its way must not push out a live one), plus one per live session and kept session */
    g3n_role_options ro = {.weight_format = a->weight_format, .threads = a->threads,
                           .max_sessions = 2 * a->http.max_sessions + 2 + a->live.max_sessions +
                                           (a->no_prefix_cache ? 0 : s->cache_options.max_entries),
                           .submodels = a->submodel_items, .submodel_count = a->submodels.count};
    for (int i = 0; i < a->submodels.count; i++) { /* checked here for a clear error; their names are the ids */
        g3n_submodel spec;
        if (g3n_submodel_parse(&spec, a->submodel_items[i], &s->local.config.text, err) != G3N_OK)
            return G3N_ERR;
        snprintf(s->submodel_names[i], sizeof(s->submodel_names[i]), "%s", spec.name);
        s->submodel_name_list[i] = s->submodel_names[i];
        g3n_submodel_free(&spec);
    }
    a->http.submodels = s->submodel_name_list;
    a->http.submodel_count = a->submodels.count;
    unsigned mask = (1u << G3N_ROLE_VISION_ENCODER) | (1u << G3N_ROLE_AUDIO_ENCODER) | (1u << G3N_ROLE_EMBEDDER) |
                    (1u << G3N_ROLE_DECODER);
    if (g3n_local_pipeline_start_roles(&s->local, &a->source, ro, mask, err) != G3N_OK ||
        g3n_local_pipeline_wait(&s->local, mask, 10000, err) != G3N_OK)
        return G3N_ERR;
    return G3N_OK;
}

/* The live endpoints (their sessions run on the roles), the prefix cache, then the HTTP server. */
static int start_http(serve_state *s, serve_args *a, g3n_error *err)
{
    if (a->live.max_sessions > 0) {
        g3n_http_live_options *lo = &a->live;
        if (lo->context <= 0 && a->http.max_context > 0)
            lo->context = a->http.max_context;
        lo->max_tokens = a->http.max_tokens;
        lo->sampling = a->http.sampling;
        lo->model_name = s->model_name;
        if (a->source.model_dir) {
            snprintf(s->preprocessor, sizeof(s->preprocessor), "%s/preprocessor_config.json", a->source.model_dir);
            if (access(s->preprocessor, R_OK) == 0)
                lo->preprocessor_config = s->preprocessor;
        }
        if (g3n_http_live_create(&s->live, s->local.broker, &s->local.config, s->local.tokenizer, lo, err) != G3N_OK)
            return G3N_ERR;
        a->http.live = s->live;
    }
    if (a->http.max_context > 0) /* a kept session never holds more than a request may */
        s->cache_options.session_positions = a->http.max_context;
    if (!a->no_prefix_cache && g3n_prefix_cache_create(&s->cache, &s->cache_options, err) != G3N_OK)
        return G3N_ERR;
    a->http.prefix_cache = s->cache;
    return g3n_http_server_start(&s->server, s->local.broker, &s->local.config, s->local.tokenizer, &a->http, err);
}

static int write_port_file(const char *port_file, int port, g3n_error *err)
{
    char temporary[PATH_MAX + 8];
    snprintf(temporary, sizeof(temporary), "%s.tmp", port_file);
    FILE *f = fopen(temporary, "w");
    if (!f || fprintf(f, "%d\n", port) < 0 || fclose(f) != 0 || rename(temporary, port_file) != 0)
        return g3n_error_set(err, "cannot write --port-file %s", port_file);
    return G3N_OK;
}

static void serve_close(serve_state *s)
{
    g3n_http_server_stop(s->server);
    g3n_http_live_free(s->live);
    if (s->cache) { /* the kept sessions end on their decoders */
        g3n_client *client = NULL;
        g3n_error ignored;
        if (g3n_client_open(&client, s->local.broker, &ignored) != G3N_OK)
            client = NULL;
        g3n_prefix_cache_free(s->cache, client);
        g3n_client_close(client);
    }
    g3n_local_pipeline_stop(&s->local);
    g3n_http_auth_free(s->auth);
    free(s->tls_cert);
    if (s->tls_key)
        memset(s->tls_key, 0, strlen(s->tls_key));
    free(s->tls_key);
}

/* Starts everything and serves until SIGINT/SIGTERM: the exit code. */
static int serve(serve_state *s, serve_args *a, const g3n_transport_options *transport)
{
    g3n_error err = {{0}};
    double t_load = g3n_now_seconds();
    if (start_roles(s, a, transport, &err) != G3N_OK || start_http(s, a, &err) != G3N_OK) {
        fprintf(stderr, "g3n serve: error: %s\n", err.message);
        return 1;
    }
    int port = g3n_http_server_port(s->server);
    fprintf(stderr, "g3n serve: listening on %s://%s:%d (model '%s', ready in %.2f s; every role in this process%s)\n",
            s->tls_cert ? "https" : "http", a->http.host, port, s->model_name, g3n_now_seconds() - t_load,
            s->auth ? "; API keys required" : "");
    if (a->source.demo)
        fprintf(stderr, "g3n serve --demo: a tiny Gemma 3n with SYNTHETIC (random) weights and the real tokenizer; "
                        "its words are random because its weights are.\n");
    if (a->port_file && write_port_file(a->port_file, port, &err) != G3N_OK) {
        fprintf(stderr, "g3n serve: error: %s\n", err.message);
        return 1;
    }
    while (!g3n_shutdown_requested())
        usleep(50000);
    fprintf(stderr, "g3n serve: shutting down\n");
    return 0;
}

int g3n_command_serve(int argc, char **argv)
{
    serve_args args;
    int rc = parse_args(&args, argc, argv);
    if (rc >= 0)
        return rc;
    serve_state s;
    memset(&s, 0, sizeof(s));
    s.cache_options = g3n_prefix_cache_default_options();
    g3n_error err = {{0}};
    g3n_transport_options transport = g3n_transport_default_options();
    if (g3n_security_apply(&args.security, "g3n serve", &transport.curve, &transport.insecure, &err) != G3N_OK ||
        (args.bind && g3n_curve_check_endpoint(args.bind, &transport.curve, transport.insecure, &err) != G3N_OK)) {
        fprintf(stderr, "g3n serve: error: %s\n", err.message);
        return 2;
    }
    if (args.source.demo && g3n_model_source_find_demo(&args.source, &err) != G3N_OK) {
        fprintf(stderr, "g3n serve: error: %s\n", err.message);
        return 1;
    }
    if (g3n_model_source_default_tokenizer(&args.source, &err) != G3N_OK ||
        g3n_http_security_load(&args.http_security, &s.auth, &s.tls_cert, &s.tls_key, &err) != G3N_OK) {
        fprintf(stderr, "g3n serve: error: %s\n", err.message);
        return 2;
    }
    choose_model_name(&args, s.model_name, sizeof(s.model_name));
    args.http.model_name = s.model_name;
    args.http.auth = s.auth;
    args.http.tls_cert_pem = s.tls_cert;
    args.http.tls_key_pem = s.tls_key;
    if (args.threads > 0)
        g3n_set_threads(args.threads);
    g3n_report_weight_format("serve", args.weight_format, args.weights_given);
    transport.verbose = args.bind != NULL && !args.http.quiet;
    g3n_install_shutdown_handlers();
    rc = serve(&s, &args, &transport);
    serve_close(&s);
    return rc;
}
