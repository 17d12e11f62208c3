/* local_pipeline.c - the model, broker and role threads of `g3n run` and
 * `g3n serve` (local_pipeline.h). */
#include "local_pipeline.h"

int g3n_local_pipeline_load(g3n_local_pipeline *p, g3n_model_source *source, g3n_error *err)
{
    if (g3n_model_source_locate_config(source, err) != G3N_OK ||
        g3n_config_load(&p->config, source->config_path, err) != G3N_OK ||
        g3n_tokenizer_load(&p->tokenizer, source->tokenizer_path, err) != G3N_OK)
        return G3N_ERR;
    return G3N_OK;
}

int g3n_local_pipeline_start_broker(g3n_local_pipeline *p, const char *inproc, const char *bind,
                                    const g3n_transport_options *transport, g3n_error *err)
{
    const char *endpoints[2] = {inproc, bind};
    p->inproc = inproc;
    p->transport = *transport;
    return g3n_broker_start(&p->broker, endpoints, bind ? 2 : 1, transport, err);
}

int g3n_local_pipeline_start_roles(g3n_local_pipeline *p, const g3n_model_source *source, g3n_role_options options,
                                   unsigned role_mask, g3n_error *err)
{
    if (g3n_model_source_open_weights(source, &p->weights, err) != G3N_OK)
        return G3N_ERR;
    options.model_dir = source->model_dir;
    return g3n_local_roles_start(&p->roles, p->broker, p->inproc, p->weights, &p->config, &options, role_mask,
                                 &p->transport, err);
}

int g3n_local_pipeline_wait(g3n_local_pipeline *p, unsigned role_mask, int timeout_ms, g3n_error *err)
{
    for (int role = 1; role < G3N_ROLE_COUNT; role++)
        if ((role_mask & (1u << role)) && g3n_broker_wait_workers(p->broker, role, 1, timeout_ms, err) != G3N_OK)
            return G3N_ERR;
    return G3N_OK;
}

void g3n_local_pipeline_stop(g3n_local_pipeline *p)
{
    g3n_local_roles_stop(&p->roles);
    g3n_broker_stop(p->broker);
    g3n_weights_close(p->weights);
    g3n_tokenizer_free(p->tokenizer);
    g3n_config_free(&p->config);
    p->broker = NULL;
    p->weights = NULL;
    p->tokenizer = NULL;
}
