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
#include "pipeline.h"
#include "prefix_cache.h"
#include "submodel.h"
#include "tokenizer.h"
#include "transport.h"
#include "weights.h"

static void print_help(FILE *out)
{
    g3n_http_options d = g3n_http_default_options();
    g3n_http_live_options ld = g3n_http_live_default_options();
    fprintf(out,
            "usage: g3n serve (--model DIR | --synth CONFIG:SEED | --demo) [options]\n"
            "\n"
            "Serves the OpenAI chat API over HTTP with every role in this process (threads over\n"
            "inproc://): POST /v1/chat/completions (stream true/false; text, image_url data: URLs,\n"
            "input_audio), POST /v1/audio/transcriptions (multipart), GET /v1/models, /health, /metrics.\n"
            "Live sessions (issue 10): POST /v1/live/sessions, then .../frames, .../audio as media\n"
            "arrive (prefilled into the session's KV cache at once), .../ask at any moment, GET, DELETE.\n"
            "Stops on SIGINT/SIGTERM. See docs/http-api.md.\n"
            "\n"
            "  --model DIR            checkpoint folder (config.json, safetensors, tokenizer.json,\n"
            "                         generation_config.json for the default sampling)\n"
            "  --synth CONFIG:SEED    synthetic weights for a config.json (needs --tokenizer)\n"
            "  --demo                 the tiny synthetic demo model (random words; real tokenizer)\n"
            "  --tokenizer FILE       tokenizer.json (default DIR/tokenizer.json)\n"
            "  --host ADDR            address to listen on (default %s)\n"
            "  --port N               port (default %d; 0: any free port, printed and --port-file)\n"
            "  --port-file FILE       write the port here once listening (for scripts)\n"
            "  --model-name NAME      the model id clients name (default: the folder's name, or\n"
            "                         gemma-3n-demo with --demo)\n"
            "  --allow-dir DIR        image_url/audio_url may name local files under DIR\n"
            "  --max-sessions N       generations at once, each with its own KV cache (default %d)\n"
            "  --queue N              requests waiting beyond them (default %d); more get 429\n"
            "  --max-tokens N         completion length: default and cap (default %lld)\n"
            "  --context N            prompt + completion tokens (default: max_position_embeddings)\n"
            "  --max-body-mb N        request body limit (default %lld); more gets 413\n"
            "  --max-connections N    open connections (default %d)\n"
            "  --retry-after N        seconds in Retry-After on 429/503 (default %d)\n"
            "  --threads N            OpenMP threads (default: all)\n"
            "  --weights F            the decoder's weights: q8 (default with --model: block-quantised\n"
            "                         once into DIR/g3n-cache, ~0.5 %% error per product), q4 (faster,\n"
            "                         coarser), bf16, or f32 (the reference's numbers; the default\n"
            "                         with --synth and --demo)\n"
            "  --submodel SPEC        also serve this MatFormer sub-model of the model (repeatable): a preset\n"
            "                         (full, e2b, e1.96b, e2.54b), a JSON object or @FILE.json (g3n slice\n"
            "                         --help); listed as the model id NAME:<sub-model name>, chosen per\n"
            "                         request by \"model\"; views into the same weights, no second copy\n"
            "  --bind ENDPOINT        also bind the broker here (e.g. tcp://0.0.0.0:5555) so daemons\n"
            "                         can connect and share the work; tcp:// needs:\n"
            G3N_SECURITY_HELP_BIND
            "  --quiet                no log line per request\n"
            "  --no-prefix-cache      no decoder sessions kept between chats: every chat prefills its whole\n"
            "                         history (by default a chat whose prompt extends a kept session's\n"
            "                         tokens, e.g. the next turn, prefills only the new suffix)\n"
            "  --live-sessions N      live sessions at once (default %d; 0: no live endpoints); each\n"
            "                         holds a decoder session of the roles\n"
            "  --live-context N       KV cache positions per live session: default and cap (default:\n"
            "                         --context or max_position_embeddings); when media fill it, the\n"
            "                         oldest are dropped and the rest prefilled again\n"
            "  --live-idle-seconds N  a live session untouched this long is freed (default %.0f)\n"
            "  --live-max-media-mb N  one frame or audio piece pushed to a session (default %lld)\n"
            "Security (docs/http-api.md): with keys, /v1/... needs Authorization: Bearer KEY\n"
            G3N_HTTP_SECURITY_HELP,
            d.host, d.port, d.max_sessions, d.queue, (long long)d.max_tokens, (long long)(d.max_body_bytes >> 20),
            d.max_connections, d.retry_after_seconds, ld.max_sessions, ld.idle_seconds,
            (long long)(ld.max_media_bytes >> 20));
}

static int positive(const char *flag, const char *value, long long *out)
{
    char *end;
    long long v = strtoll(value, &end, 10);
    if (*end || v < 0) {
        fprintf(stderr, "g3n serve: error: %s needs a whole number >= 0 (got '%s')\n", flag, value);
        return -1;
    }
    *out = v;
    return 0;
}

int g3n_command_serve(int argc, char **argv)
{
    if (g3n_wants_help(argc, argv)) {
        print_help(stdout);
        return 0;
    }
    g3n_http_options http = g3n_http_default_options();
    g3n_http_live_options live_options = g3n_http_live_default_options();
    long long live_sessions = live_options.max_sessions;
    g3n_model_source source;
    memset(&source, 0, sizeof(source));
    const char *bind = NULL, *port_file = NULL;
    int threads = 0;
    g3n_weight_format weight_format = G3N_WEIGHTS_EXACT;
    const char *submodel_specs[G3N_HTTP_MAX_SUBMODELS];
    char submodel_names[G3N_HTTP_MAX_SUBMODELS][64];
    const char *submodel_name_list[G3N_HTTP_MAX_SUBMODELS];
    int submodel_count = 0;
    int weights_given = 0, prefix_cache_on = 1;
    char model_name[256] = "";
    g3n_security_flags security = {0};
    g3n_http_security_flags http_security;
    memset(&http_security, 0, sizeof(http_security));
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        int http_uses_value, http_flag =
            g3n_http_security_flag(&http_security, a, i + 1 < argc ? argv[i + 1] : NULL, &http_uses_value);
        if (http_flag < 0) {
            fprintf(stderr, "g3n serve: error: %s needs a value (a number >= 1 for the limits; see --help)\n", a);
            return 2;
        }
        if (http_flag == 1) {
            i += http_uses_value;
            continue;
        }
        if (strcmp(a, "--insecure") == 0 || strcmp(a, "--keys") == 0) {
            int uses_value;
            if (g3n_security_flag(&security, a, i + 1 < argc ? argv[i + 1] : NULL, &uses_value) < 0) {
                fprintf(stderr, "g3n serve: error: %s needs a value (see --help)\n", a);
                return 2;
            }
            i += uses_value;
            continue;
        }
        if (strcmp(a, "--demo") == 0) {
            source.demo = 1;
            continue;
        }
        if (strcmp(a, "--quiet") == 0) {
            http.quiet = 1;
            continue;
        }
        if (strcmp(a, "--no-prefix-cache") == 0) {
            prefix_cache_on = 0;
            continue;
        }
        const char *v = i + 1 < argc ? argv[i + 1] : NULL;
        if (a[0] != '-' || a[1] != '-') {
            fprintf(stderr, "g3n serve: error: unexpected argument '%s' (see --help)\n", a);
            return 2;
        }
        if (!v) {
            fprintf(stderr, "g3n serve: error: %s needs a value (see --help)\n", a);
            return 2;
        }
        i++;
        long long n = 0;
        int numeric = strcmp(a, "--port") == 0 || strcmp(a, "--max-sessions") == 0 || strcmp(a, "--queue") == 0 ||
                      strcmp(a, "--max-tokens") == 0 || strcmp(a, "--context") == 0 ||
                      strcmp(a, "--max-body-mb") == 0 || strcmp(a, "--max-connections") == 0 ||
                      strcmp(a, "--retry-after") == 0 || strcmp(a, "--threads") == 0 ||
                      strcmp(a, "--live-sessions") == 0 || strcmp(a, "--live-context") == 0 ||
                      strcmp(a, "--live-idle-seconds") == 0 || strcmp(a, "--live-max-media-mb") == 0;
        if (numeric && positive(a, v, &n) != 0)
            return 2;
        if (strcmp(a, "--model") == 0)
            source.model_dir = v;
        else if (strcmp(a, "--synth") == 0)
            source.synth_spec = v;
        else if (strcmp(a, "--tokenizer") == 0)
            source.tokenizer_path = v;
        else if (strcmp(a, "--host") == 0)
            http.host = v;
        else if (strcmp(a, "--port") == 0 && n <= 65535)
            http.port = (int)n;
        else if (strcmp(a, "--port-file") == 0)
            port_file = v;
        else if (strcmp(a, "--model-name") == 0)
            snprintf(model_name, sizeof(model_name), "%s", v);
        else if (strcmp(a, "--allow-dir") == 0)
            http.allow_dir = v;
        else if (strcmp(a, "--max-sessions") == 0 && n >= 1 && n <= 4096)
            http.max_sessions = (int)n;
        else if (strcmp(a, "--queue") == 0 && n <= 1000000)
            http.queue = (int)n;
        else if (strcmp(a, "--max-tokens") == 0 && n >= 1)
            http.max_tokens = n;
        else if (strcmp(a, "--context") == 0 && n >= 2)
            http.max_context = n;
        else if (strcmp(a, "--max-body-mb") == 0 && n >= 1 && n <= 1 << 20)
            http.max_body_bytes = n << 20;
        else if (strcmp(a, "--max-connections") == 0 && n >= 1 && n <= 100000)
            http.max_connections = (int)n;
        else if (strcmp(a, "--retry-after") == 0 && n >= 1)
            http.retry_after_seconds = (int)n;
        else if (strcmp(a, "--threads") == 0)
            threads = (int)n;
        else if (strcmp(a, "--weights") == 0) {
            if (g3n_parse_weights_option("serve", v, &weight_format) != 0)
                return 2;
            weights_given = 1;
        } else if (strcmp(a, "--submodel") == 0) {
            if (submodel_count >= G3N_HTTP_MAX_SUBMODELS) {
                fprintf(stderr, "g3n serve: error: at most %d --submodel\n", G3N_HTTP_MAX_SUBMODELS);
                return 2;
            }
            submodel_specs[submodel_count++] = v;
        } else if (strcmp(a, "--bind") == 0)
            bind = v;
        else if (strcmp(a, "--live-sessions") == 0 && n <= 1024)
            live_sessions = n;
        else if (strcmp(a, "--live-context") == 0 && n >= 1024)
            live_options.context = n;
        else if (strcmp(a, "--live-idle-seconds") == 0 && n >= 1)
            live_options.idle_seconds = (double)n;
        else if (strcmp(a, "--live-max-media-mb") == 0 && n >= 1 && n <= 4096)
            live_options.max_media_bytes = n << 20;
        else {
            fprintf(stderr, "g3n serve: error: unknown argument or value out of range: %s %s (see --help)\n", a, v);
            return 2;
        }
    }
    g3n_error err = {{0}};
    g3n_transport_options transport = g3n_transport_default_options();
    if (g3n_model_source_check(&source, &err) != G3N_OK ||
        g3n_security_apply(&security, "g3n serve", &transport.curve, &transport.insecure, &err) != G3N_OK ||
        (bind && g3n_curve_check_endpoint(bind, &transport.curve, transport.insecure, &err) != G3N_OK)) {
        fprintf(stderr, "g3n serve: error: %s\n", err.message);
        return 2;
    }
    if (source.demo) {
        if (g3n_model_source_find_demo(&source, &err) != G3N_OK) {
            fprintf(stderr, "g3n serve: error: %s\n", err.message);
            return 1;
        }
        if (!model_name[0])
            snprintf(model_name, sizeof(model_name), "gemma-3n-demo");
    }
    if (g3n_model_source_default_tokenizer(&source, &err) != G3N_OK) {
        fprintf(stderr, "g3n serve: error: %s\n", err.message);
        return 2;
    }
    if (!model_name[0] && source.model_dir) {
        char copy[PATH_MAX];
        snprintf(copy, sizeof(copy), "%s", source.model_dir);
        size_t n = strlen(copy);
        while (n > 1 && copy[n - 1] == '/')
            copy[--n] = '\0';
        const char *base = strrchr(copy, '/');
        snprintf(model_name, sizeof(model_name), "%s", base ? base + 1 : copy);
    }
    if (!model_name[0])
        snprintf(model_name, sizeof(model_name), "gemma-3n");
    http.model_name = model_name;
    if (threads > 0)
        g3n_set_threads(threads);
    if (!weights_given)
        weight_format = g3n_default_weight_format(source.model_dir != NULL);
    g3n_report_weight_format("serve", weight_format, weights_given);

    g3n_http_auth *auth = NULL;
    char *tls_cert = NULL, *tls_key = NULL;
    if (g3n_http_security_load(&http_security, &auth, &tls_cert, &tls_key, &err) != G3N_OK) {
        fprintf(stderr, "g3n serve: error: %s\n", err.message);
        return 2;
    }
    http.auth = auth;
    http.tls_cert_pem = tls_cert;
    http.tls_key_pem = tls_key;
    g3n_install_shutdown_handlers();
    int rc = 1;
    g3n_local_pipeline local;
    memset(&local, 0, sizeof(local));
    g3n_http_server *server = NULL;
    g3n_http_live *live = NULL;
    g3n_prefix_cache *cache = NULL; /* decoder sessions kept for prefix reuse, as g3n-orchestrator --http */
    g3n_prefix_cache_options cache_options = g3n_prefix_cache_default_options();
    double t_load = g3n_now_seconds();
    if (g3n_local_pipeline_load(&local, &source, &err) != G3N_OK)
        goto done;
    if (source.model_dir) { /* the checkpoint's own sampling defaults, where a request gives none */
        int eos[G3N_MAX_EOS_IDS], eos_count = 0, found = 0;
        if (g3n_generation_config_load(source.model_dir, &http.sampling, eos, &eos_count, &found, &err) != G3N_OK)
            goto done;
    }
    g3n_curve_install_reload_handler();
    transport.verbose = bind != NULL && !http.quiet;
    if (g3n_local_pipeline_start_broker(&local, "inproc://g3n-serve-workers", bind, &transport, &err) != G3N_OK)
        goto done;
    /* threads: each role thread's own OpenMP team size; max_sessions: headroom over the HTTP limit (the
     * decoder evicts its least recently used idle session when full, and a session whose EndSession is
     * still on its way must not push out a live one), plus one per live session and kept session */
    g3n_role_options ro = {.weight_format = weight_format, .threads = threads,
                           .max_sessions = 2 * http.max_sessions + 2 + (int)live_sessions +
                                           (prefix_cache_on ? cache_options.max_entries : 0),
                           .submodels = submodel_specs, .submodel_count = submodel_count};
    for (int i = 0; i < submodel_count; i++) { /* checked here for a clear error; their names are the ids */
        g3n_submodel spec;
        if (g3n_submodel_parse(&spec, submodel_specs[i], &local.config.text, &err) != G3N_OK)
            goto done;
        snprintf(submodel_names[i], sizeof(submodel_names[i]), "%s", spec.name);
        submodel_name_list[i] = submodel_names[i];
        g3n_submodel_free(&spec);
    }
    http.submodels = submodel_name_list;
    http.submodel_count = submodel_count;
    unsigned mask = (1u << G3N_ROLE_VISION_ENCODER) | (1u << G3N_ROLE_AUDIO_ENCODER) | (1u << G3N_ROLE_EMBEDDER) |
                    (1u << G3N_ROLE_DECODER);
    if (g3n_local_pipeline_start_roles(&local, &source, ro, mask, &err) != G3N_OK ||
        g3n_local_pipeline_wait(&local, mask, 10000, &err) != G3N_OK)
        goto done;
    if (live_sessions > 0) { /* the live endpoints: their sessions run on the roles */
        char preprocessor[PATH_MAX + 64];
        live_options.max_sessions = (int)live_sessions;
        if (live_options.context <= 0 && http.max_context > 0)
            live_options.context = http.max_context;
        live_options.max_tokens = http.max_tokens;
        live_options.sampling = http.sampling;
        live_options.model_name = model_name;
        if (source.model_dir) {
            snprintf(preprocessor, sizeof(preprocessor), "%s/preprocessor_config.json", source.model_dir);
            if (access(preprocessor, R_OK) == 0)
                live_options.preprocessor_config = preprocessor;
        }
        if (g3n_http_live_create(&live, local.broker, &local.config, local.tokenizer, &live_options, &err) != G3N_OK)
            goto done;
        http.live = live;
    }
    if (http.max_context > 0) /* a kept session never holds more than a request may */
        cache_options.session_positions = http.max_context;
    if (prefix_cache_on && g3n_prefix_cache_create(&cache, &cache_options, &err) != G3N_OK)
        goto done;
    http.prefix_cache = cache;
    if (g3n_http_server_start(&server, local.broker, &local.config, local.tokenizer, &http, &err) != G3N_OK)
        goto done;
    int port = g3n_http_server_port(server);
    fprintf(stderr, "g3n serve: listening on %s://%s:%d (model '%s', ready in %.2f s; every role in this process%s)\n",
            tls_cert ? "https" : "http", http.host, port, model_name, g3n_now_seconds() - t_load,
            auth ? "; API keys required" : "");
    if (source.demo)
        fprintf(stderr, "g3n serve --demo: a tiny Gemma 3n with SYNTHETIC (random) weights and the real tokenizer; "
                        "its words are random because its weights are.\n");
    if (port_file) {
        char temporary[PATH_MAX + 8];
        snprintf(temporary, sizeof(temporary), "%s.tmp", port_file);
        FILE *f = fopen(temporary, "w");
        if (!f || fprintf(f, "%d\n", port) < 0 || fclose(f) != 0 || rename(temporary, port_file) != 0) {
            g3n_error_set(&err, "cannot write --port-file %s", port_file);
            goto done;
        }
    }
    while (!g3n_shutdown_requested())
        usleep(50000);
    fprintf(stderr, "g3n serve: shutting down\n");
    rc = 0;
done:
    if (rc != 0)
        fprintf(stderr, "g3n serve: error: %s\n", err.message);
    g3n_http_server_stop(server);
    g3n_http_live_free(live);
    if (cache) { /* the kept sessions end on their decoders */
        g3n_client *client = NULL;
        g3n_error ignored;
        if (g3n_client_open(&client, local.broker, &ignored) != G3N_OK)
            client = NULL;
        g3n_prefix_cache_free(cache, client);
        g3n_client_close(client);
    }
    g3n_local_pipeline_stop(&local);
    g3n_http_auth_free(auth);
    free(tls_cert);
    if (tls_key)
        memset(tls_key, 0, strlen(tls_key));
    free(tls_key);
    return rc;
}
