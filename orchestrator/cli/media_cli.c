/* media_cli.c - shared parts of `g3n video` and `g3n live` (see media_cli.h). */
#include "media_cli.h"

#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "matmul.h"
#include "ops.h"

void g3n_media_cli_defaults(g3n_media_cli_options *o)
{
    memset(o, 0, sizeof(*o));
    o->max_new_tokens = 64;
    o->top_p = 1.0;
}

int g3n_media_cli_parse(g3n_media_cli_options *o, int argc, char **argv, int *i, const char *command)
{
    const char *a = argv[*i];
    if (strcmp(a, "--demo") == 0) {
        o->demo = 1;
        return 1;
    }
    if (strcmp(a, "--quiet") == 0) {
        o->quiet = 1;
        return 1;
    }
    static const char *const valued[] = {"--model", "--synth",  "--tokenizer", "--system", "--max-new-tokens",
                                         "--temperature", "--top-k", "--top-p", "--seed", "--threads", "--context"};
    int known = 0;
    for (size_t k = 0; k < sizeof valued / sizeof valued[0]; k++)
        known |= strcmp(a, valued[k]) == 0;
    if (!known)
        return 0;
    if (*i + 1 >= argc) {
        fprintf(stderr, "g3n %s: error: %s needs a value\n", command, a);
        return -1;
    }
    const char *v = argv[++*i];
    if (strcmp(a, "--model") == 0)
        o->model_dir = v;
    else if (strcmp(a, "--synth") == 0)
        o->synth_spec = v;
    else if (strcmp(a, "--tokenizer") == 0)
        o->tokenizer_path = v;
    else if (strcmp(a, "--system") == 0)
        o->system = v;
    else if (strcmp(a, "--max-new-tokens") == 0)
        o->max_new_tokens = strtoll(v, NULL, 10);
    else if (strcmp(a, "--temperature") == 0)
        o->temperature = strtod(v, NULL);
    else if (strcmp(a, "--top-k") == 0)
        o->top_k = atoi(v);
    else if (strcmp(a, "--top-p") == 0)
        o->top_p = strtod(v, NULL);
    else if (strcmp(a, "--seed") == 0)
        o->seed = strtoull(v, NULL, 10);
    else if (strcmp(a, "--threads") == 0)
        o->threads = atoi(v);
    else if (strcmp(a, "--context") == 0)
        o->context = strtoll(v, NULL, 10);
    return 1;
}

void g3n_media_cli_help(FILE *out)
{
    fprintf(out,
            "  --model DIR           checkpoint folder (config.json, safetensors, tokenizer.json)\n"
            "  --synth CONFIG:SEED   synthetic weights for a config.json (needs --tokenizer)\n"
            "  --demo                the tiny synthetic demo model (real vocabulary and tokenizer; its\n"
            "                        words are random, because its weights are)\n"
            "  --tokenizer FILE      tokenizer.json (default: DIR/tokenizer.json)\n"
            "  --system TEXT         a system prompt\n"
            "  --context N           KV cache positions (default: the model's maximum); when media fill\n"
            "                        it, the oldest are dropped and the rest prefilled again\n"
            "  --max-new-tokens N    answer length limit (default 64)\n"
            "  --temperature T       sample with temperature T (default: greedy)\n"
            "  --top-k K, --top-p P  sampling filters (with --temperature)\n"
            "  --seed N              sampling seed\n"
            "  --threads N           OpenMP threads (default: all)\n"
            "  --quiet               no progress lines\n");
}

int g3n_media_cli_load(g3n_media_cli *c, const g3n_media_cli_options *o, int want_vision, int want_audio,
                       g3n_error *err)
{
    memset(c, 0, sizeof(*c));
    g3n_model_source *source = &c->source;
    source->model_dir = o->model_dir;
    source->synth_spec = o->synth_spec;
    source->tokenizer_path = o->tokenizer_path;
    source->demo = o->demo;
    if (g3n_model_source_check(source, err) != G3N_OK)
        return G3N_ERR;
    if (o->threads > 0)
        g3n_set_threads(o->threads);
    if (g3n_model_source_find_demo(source, err) != G3N_OK || g3n_model_source_locate_config(source, err) != G3N_OK ||
        g3n_model_source_default_tokenizer(source, err) != G3N_OK ||
        g3n_local_pipeline_load(&c->local, source, err) != G3N_OK)
        return G3N_ERR;
    const g3n_model_config *config = &c->local.config;
    if (want_vision && !config->vision_json)
        return g3n_error_set(err, "the model has no vision tower");
    if (want_audio && !config->audio_json)
        return g3n_error_set(err, "the model has no audio tower");
    if (o->model_dir) {
        snprintf(c->preprocessor, sizeof c->preprocessor, "%s/preprocessor_config.json", o->model_dir);
        if (access(c->preprocessor, R_OK) != 0)
            c->preprocessor[0] = '\0';
    }
    g3n_transport_options transport = g3n_transport_default_options();
    unsigned mask = (1u << G3N_ROLE_EMBEDDER) | (1u << G3N_ROLE_DECODER);
    if (want_vision)
        mask |= 1u << G3N_ROLE_VISION_ENCODER;
    if (want_audio)
        mask |= 1u << G3N_ROLE_AUDIO_ENCODER;
    /* the stored weights as they are (the in-process engine this replaces computed with them) */
    g3n_role_options ro = {.threads = o->threads};
    if (g3n_local_pipeline_start_broker(&c->local, "inproc://g3n-media-workers", NULL, &transport, err) != G3N_OK ||
        g3n_local_pipeline_start_roles(&c->local, source, ro, mask, err) != G3N_OK ||
        g3n_local_pipeline_wait(&c->local, mask, 10000, err) != G3N_OK ||
        g3n_client_open(&c->client, c->local.broker, err) != G3N_OK)
        return G3N_ERR;
    return G3N_OK;
}

void g3n_media_cli_free(g3n_media_cli *c)
{
    g3n_client_close(c->client);
    c->client = NULL;
    g3n_local_pipeline_stop(&c->local);
}

g3n_pipeline_generate_params g3n_media_cli_generate_params(const g3n_media_cli *c, const g3n_media_cli_options *o)
{
    g3n_pipeline_generate_params p = g3n_pipeline_default_params(&c->local.config);
    p.max_new_tokens = o->max_new_tokens;
    if (o->temperature > 0.0) {
        p.sampling.do_sample = 1;
        p.sampling.temperature = (float)o->temperature;
        p.sampling.top_k = o->top_k;
        p.sampling.top_p = (float)o->top_p;
    }
    p.sampling.seed = o->seed;
    return p;
}

g3n_live_pipeline_params g3n_media_cli_live_params(const g3n_media_cli *c, const g3n_media_cli_options *o)
{
    g3n_live_pipeline_params p = g3n_live_pipeline_default_params(&c->local.config);
    if (o->context > 0)
        p.max_positions = o->context;
    p.system = o->system;
    p.preprocessor_config = c->preprocessor[0] ? c->preprocessor : NULL;
    return p;
}

typedef struct printer {
    FILE *out;
    double start, first;
    int64_t tokens;
    int eos;
} printer;

static int print_text(void *user, const char *text, size_t length)
{
    printer *p = user;
    if (length > 0) {
        fwrite(text, 1, length, p->out);
        fflush(p->out);
    }
    return 0;
}

static int count_token(void *user, int64_t step, int32_t token, const float *logits, int64_t vocab)
{
    (void)token;
    (void)logits;
    (void)vocab;
    printer *p = user;
    if (step == 0)
        p->first = g3n_now_seconds() - p->start;
    p->tokens = step + 1;
    return 0;
}

int g3n_media_cli_ask(g3n_media_cli *c, g3n_client *client, g3n_live_pipeline *session,
                      const g3n_media_cli_options *o, const char *question, FILE *out, double *first_token_seconds,
                      double *total_seconds, int64_t *tokens, g3n_error *err)
{
    printer p;
    memset(&p, 0, sizeof(p));
    p.out = out;
    p.start = g3n_now_seconds();
    g3n_pipeline_generate_params params = g3n_media_cli_generate_params(c, o);
    params.on_token = count_token;
    params.user = &p;
    g3n_pipeline_stats stats;
    memset(&stats, 0, sizeof(stats));
    int rc = g3n_live_pipeline_ask(session, client, question, &params, print_text, &p, &stats, err);
    fputc('\n', out);
    fflush(out);
    const int64_t produced = stats.generated_tokens - (stats.stopped_on_eos ? 1 : 0);
    if (first_token_seconds)
        *first_token_seconds = produced > 0 ? p.first : g3n_now_seconds() - p.start;
    if (total_seconds)
        *total_seconds = g3n_now_seconds() - p.start;
    if (tokens)
        *tokens = produced;
    return rc;
}
