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
