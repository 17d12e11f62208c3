/* role.c - the roles' common interface (role.h). */
#include "role.h"

#include <stdlib.h>

#include "matmul.h"
#include "wire.h"

struct g3n_role {
    const g3n_role_ops *ops;
    g3n_role_options options;
    void *state;
};

int g3n_role_open_ops(g3n_role **out, const g3n_role_ops *ops, g3n_weights *weights, const g3n_model_config *config,
                      const g3n_role_options *options, g3n_error *err)
{
    *out = NULL;
    g3n_role *r = calloc(1, sizeof(*r));
    if (!r)
        return g3n_error_set(err, "role: out of memory");
    r->ops = ops;
    if (options)
        r->options = *options;
    if (r->options.max_sessions <= 0)
        r->options.max_sessions = 16;
    if (r->options.max_positions <= 0 || r->options.max_positions > config->text.max_position_embeddings)
        r->options.max_positions = config->text.max_position_embeddings;
    if (r->options.max_tokens <= 0)
        r->options.max_tokens = config->text.max_position_embeddings;
    if (r->options.session_idle_seconds <= 0)
        r->options.session_idle_seconds = 600.0;
    if (r->options.max_session_bytes <= 0)
        r->options.max_session_bytes = INT64_MAX;
    if (ops->open(&r->state, weights, config, &r->options, err) != G3N_OK) {
        g3n_error_prefix(err, "%s", g3n_role_name(ops->role));
        g3n_role_close(r);
        return G3N_ERR;
    }
    *out = r;
    return G3N_OK;
}

void g3n_role_close(g3n_role *r)
{
    if (!r)
        return;
    r->ops->close(r->state);
    free(r);
}

const g3n_role_ops *g3n_role_ops_of(const g3n_role *r)
{
    return r ? r->ops : NULL;
}

void *g3n_role_state(const g3n_role *r, const g3n_role_ops *ops)
{
    return r && r->ops == ops ? r->state : NULL;
}

int g3n_role_handle(void *user, g3n_worker_call *call, const G3n__Envelope *q, g3n_error *err)
{
    g3n_role *r = user;
    if (r->options.threads > 0)
        g3n_set_threads(r->options.threads); /* this handler thread's OpenMP teams */
    return r->ops->handle(r->state, call, q, err);
}

int g3n_role_open_sessions(void *user)
{
    g3n_role *r = user;
    return r->ops->open_sessions ? r->ops->open_sessions(r->state) : 0;
}

int g3n_role_bad_request(g3n_worker_call *call, g3n_error *err)
{
    g3n_worker_call_set_code(call, G3N__ERROR_CODE__ERROR_BAD_REQUEST);
    (void)err;
    return G3N_ERR;
}

int g3n_role_unsupported(int role, g3n_worker_call *call, const G3n__Envelope *q, g3n_error *err)
{
    g3n_worker_call_set_code(call, G3N__ERROR_CODE__ERROR_UNSUPPORTED);
    return g3n_error_set(err, "a %s worker does not serve %s requests", g3n_role_name(role),
                         g3n_wire_body_name(q->body_case));
}
