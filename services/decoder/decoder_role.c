/* decoder_role.c - the decoder role (decoder_role.h): its session table and
 * its continuous-batching engine. */
#include "decoder_role.h"

#include <math.h>
#include <pthread.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "generate.h"
#include "ops.h"
#include "submodel.h"
#include "text_model.h"
#include "wire.h"

#define MAX_SESSION_ID 128

typedef struct decoder_session {
    char id[MAX_SESSION_ID + 1];
    g3n_text_session *session;
    g3n_sampler *sampler;
    int64_t allowed_vocab;
    float *logits; /* [vocab], reused every step */
    int busy;
    uint64_t last_used;
    double idle_since; /* g3n_now_seconds() when its last request ended */
    uint64_t bytes;    /* its KV cache and scratch (g3n_text_session_memory_usage) */
} decoder_session;

/* A decoder session nobody has used for this long is taken to be idle (a
 * session the orchestrator keeps for prefix reuse, or a client that never sent
 * EndSession) and may be evicted to make room (count or memory), least
 * recently used first. A session between two of its steps (milliseconds) is
 * not: a new session waits for a slot instead (bounded), then fails with a
 * clear error. An evicted session is answered ERROR_NOT_FOUND, and the
 * orchestrator rebuilds it from its record (pipeline.h). */
#define DECODER_STALE_SESSION_SECONDS 2.0
#define DECODER_SLOT_WAIT_SECONDS 10.0

/* The decoder's compute runs on one engine thread (one OpenMP pool however
 * many handler threads the worker has); handler threads queue jobs and wait.
 * The engine takes a prefill alone, and every decode step pending at that
 * moment (of different sessions) as ONE batched forward (continuous batching:
 * g3n_text_batch_forward, rows = sessions); a lone step runs as
 * g3n_text_session_forward. Handler threads then sample and reply. */
typedef struct decoder_job {
    g3n_text_session *session;
    const float *embeds, *per_layer; /* [count][D], [count][L*P] (the request's, borrowed) */
    int64_t count;
    float *logits;                   /* [count][V] when all_logits, else [V] */
    int all_logits, is_decode, done, rc;
    g3n_error err;
    struct decoder_job *next;
} decoder_job;

/* Batches of at most this many decode steps (and the max_sessions) */
#define DECODER_MAX_BATCH 64

typedef struct decoder_role {
    g3n_weights *weights;
    const g3n_model_config *config;
    g3n_role_options options;
    pthread_mutex_t lock;
    pthread_cond_t session_free; /* a session stopped being busy */
    g3n_text_model model;
    int model_loaded;
    g3n_text_model *subs;          /* [sub_count] MatFormer sub-models of model (views), each with its batch */
    g3n_text_batch **sub_batches;
    int sub_count;
    decoder_session *sessions;
    uint64_t use_counter;
    /* the engine (decoder_job) */
    pthread_t engine;
    int engine_started, engine_stop;
    pthread_cond_t engine_work, engine_done;
    decoder_job *queue_head, *queue_tail;
    g3n_text_batch *batch;
    g3n_text_session **batch_rows;
    decoder_job **batch_jobs;
    float *batch_embeds, *batch_per_layer, *batch_logits;
    g3n_role_decoder_stats stats;
} decoder_role;

static decoder_session *session_find(decoder_role *r, const char *id)
{
    for (int i = 0; i < r->options.max_sessions; i++)
        if (r->sessions[i].session && strcmp(r->sessions[i].id, id) == 0)
            return &r->sessions[i];
    return NULL;
}

static void session_release(decoder_session *s)
{
    g3n_text_session_free(s->session);
    g3n_sampler_free(s->sampler);
    free(s->logits);
    memset(s, 0, sizeof(*s));
}

/* A decoder request's session_id; a bad one answers BAD_REQUEST, the message prefixed with `what`. */
static int check_session_id(g3n_worker_call *call, const char *id, const char *what, g3n_error *err)
{
    if (!id || !id[0])
        g3n_error_set(err, "session_id is empty");
    else if (strlen(id) > MAX_SESSION_ID)
        g3n_error_set(err, "session_id is longer than %d bytes", MAX_SESSION_ID);
    else
        return G3N_OK;
    g3n_error_prefix(err, "%s", what);
    return g3n_role_bad_request(call, err);
}

/* Checks inputs_embeds [T, D] and per_layer_inputs [T, L, P]. */
static int check_inputs(const g3n_text_model *m, const G3n__Tensor *embeds, const G3n__Tensor *per_layer,
                        const char *what, int64_t max_count, g3n_tensor *e, g3n_tensor *p, g3n_error *err)
{
    char name[64];
    snprintf(name, sizeof(name), "%s.inputs_embeds", what);
    int64_t eshape[2] = {-1, m->hidden_size};
    if (g3n_wire_tensor_view(embeds, name, G3N_DTYPE_F32, 2, eshape, max_count * m->hidden_size, e, err) != G3N_OK)
        return G3N_ERR;
    snprintf(name, sizeof(name), "%s.per_layer_inputs", what);
    int64_t pshape[3] = {e->shape[0], m->per_layer_input_layers, m->per_layer_dim};
    if (g3n_wire_tensor_view(per_layer, name, G3N_DTYPE_F32, 3, pshape, 0, p, err) != G3N_OK)
        return G3N_ERR;
    if (e->shape[0] < 1)
        return g3n_error_set(err, "%s: no positions", what);
    return G3N_OK;
}

/* A prefill's or decode step's session_id and inputs (`what` names the request); bad ones answer BAD_REQUEST. */
static int check_step_request(decoder_role *r, g3n_worker_call *call, const char *what, const char *session_id,
                              const G3n__Tensor *embeds, const G3n__Tensor *per_layer, g3n_tensor *e, g3n_tensor *p,
                              g3n_error *err)
{
    if (check_session_id(call, session_id, what, err) != G3N_OK)
        return G3N_ERR;
    if (check_inputs(&r->model, embeds, per_layer, what, r->options.max_positions, e, p, err) != G3N_OK)
        return g3n_role_bad_request(call, err);
    return G3N_OK;
}

/* Waits (r->lock held) until a session is freed or `milliseconds` (under 1000) pass. */
static void wait_session_free(decoder_role *r, long milliseconds)
{
    struct timespec until;
    clock_gettime(CLOCK_REALTIME, &until);
    until.tv_nsec += milliseconds * 1000000L;
    if (until.tv_nsec >= 1000000000L) {
        until.tv_sec++;
        until.tv_nsec -= 1000000000L;
    }
    pthread_cond_timedwait(&r->session_free, &r->lock, &until);
}

/* The session `id` (r->lock held), once the request running on it is done: its previous step may still
 * be sending its reply. Waits at most 30 s; NULL when there is no such session, busy still when it did
 * not end in time. */
static decoder_session *session_wait_idle(decoder_role *r, const char *id)
{
    decoder_session *s = session_find(r, id);
    double deadline = g3n_now_seconds() + 30.0;
    while (s && s->busy && g3n_now_seconds() < deadline) {
        wait_session_free(r, 10);
        s = session_find(r, id);
    }
    return s;
}

static g3n_sampling_params sampling_from_wire(const G3n__SamplingParams *q)
{
    g3n_sampling_params sampling = g3n_sampling_default_params();
    if (q) {
        sampling.do_sample = q->do_sample && q->temperature > 0.0f;
        sampling.temperature = q->temperature > 0.0f ? q->temperature : 1.0f;
        sampling.top_k = q->top_k > 0 ? q->top_k : 0;
        sampling.top_p = q->top_p > 0.0f && q->top_p <= 1.0f ? q->top_p : 1.0f;
        sampling.min_p = q->min_p > 0.0f && q->min_p < 1.0f ? q->min_p : 0.0f;
        sampling.seed = q->seed;
    }
    return sampling;
}

/* Closes (r->lock held) every session idle for longer than the idle timeout. */
static void session_expire_idle(decoder_role *r)
{
    const double now = g3n_now_seconds();
    for (int i = 0; i < r->options.max_sessions; i++) {
        decoder_session *c = &r->sessions[i];
        if (c->session && !c->busy && now - c->idle_since > r->options.session_idle_seconds)
            session_release(c);
    }
}

/* Makes room (r->lock held) for `bytes` more session memory: evicts abandoned (stale) sessions, least
 * recently used first, except `keep`. G3N_ERR when the sessions still in use leave no room. */
static int session_memory_room(decoder_role *r, const decoder_session *keep, uint64_t bytes)
{
    for (;;) {
        uint64_t used = 0;
        decoder_session *oldest_stale = NULL;
        const double now = g3n_now_seconds();
        for (int i = 0; i < r->options.max_sessions; i++) {
            decoder_session *c = &r->sessions[i];
            if (!c->session || c == keep)
                continue;
            used += c->bytes;
            if (!c->busy && now - c->idle_since >= DECODER_STALE_SESSION_SECONDS &&
                (!oldest_stale || c->last_used < oldest_stale->last_used))
                oldest_stale = c;
        }
        if (used + bytes <= (uint64_t)r->options.max_session_bytes)
            return G3N_OK;
        if (!oldest_stale)
            return G3N_ERR;
        session_release(oldest_stale);
    }
}

static void session_done(decoder_role *r, decoder_session *s);

/* Takes the session (creating it for a prefill); marks it busy. */
/* MatFormer: the model a PrefillRequest's `model` names ("" or NULL: the full one), or NULL. */
static const g3n_text_model *decoder_model_named(decoder_role *r, const char *name)
{
    if (!name || !name[0])
        return &r->model;
    for (int i = 0; i < r->sub_count; i++)
        if (strcmp(r->subs[i].submodel_name, name) == 0)
            return &r->subs[i];
    return NULL;
}

static int decoder_unknown_model(decoder_role *r, const char *name, g3n_error *err)
{
    char served[512] = "";
    size_t used = 0;
    for (int i = 0; i < r->sub_count && used < sizeof(served) - 80; i++)
        used += (size_t)snprintf(served + used, sizeof(served) - used, ", '%s'", r->subs[i].submodel_name);
    return g3n_error_set(err, "prefill.model: this decoder serves no sub-model '%.64s' (it serves the full model%s)",
                         name, served);
}

/* The sub-models of options.submodels, as views into the loaded model (after its weights are selected). */
static int decoder_submodels_open(decoder_role *r, g3n_error *err)
{
    if (r->options.submodel_count <= 0)
        return G3N_OK;
    r->subs = calloc((size_t)r->options.submodel_count, sizeof(*r->subs));
    r->sub_batches = calloc((size_t)r->options.submodel_count, sizeof(*r->sub_batches));
    if (!r->subs || !r->sub_batches)
        return g3n_error_set(err, "decoder: out of memory");
    for (int i = 0; i < r->options.submodel_count; i++) {
        g3n_submodel spec;
        if (g3n_submodel_parse(&spec, r->options.submodels[i], &r->config->text, err) != G3N_OK)
            return G3N_ERR;
        int clash = 0;
        for (int j = 0; j < r->sub_count; j++)
            clash |= strcmp(r->subs[j].submodel_name, spec.name) == 0;
        int rc = clash ? g3n_error_set(err, "two sub-models are named '%s'", spec.name)
                       : g3n_text_model_derive(&r->subs[r->sub_count], &r->model, &spec, err);
        g3n_submodel_free(&spec);
        if (rc != G3N_OK)
            return G3N_ERR;
        r->sub_count++;
    }
    return G3N_OK;
}

static int session_acquire(decoder_role *r, const char *id, int create, const G3n__PrefillRequest *prefill,
                           decoder_session **out, g3n_worker_call *call, g3n_error *err)
{
    *out = NULL;
    const g3n_text_model *model = create ? decoder_model_named(r, prefill->model) : NULL;
    if (create && !model)
        return decoder_unknown_model(r, prefill->model, err), g3n_role_bad_request(call, err);
    pthread_mutex_lock(&r->lock);
    session_expire_idle(r);
    decoder_session *s = session_wait_idle(r, id);
    if (s && s->busy) {
        pthread_mutex_unlock(&r->lock);
        return g3n_error_set(err, "session '%s' is busy with another request", id), g3n_role_bad_request(call, err);
    }
    if (s && create && prefill->reset) {
        session_release(s);
        s = NULL;
    }
    if (s && create && g3n_text_session_model(s->session) != model) {
        pthread_mutex_unlock(&r->lock);
        return g3n_error_set(err, "session '%s' runs another sub-model than '%s' (a session stays bound to its "
                                  "model; reset it to change)",
                             id, prefill->model),
               g3n_role_bad_request(call, err);
    }
    if (!s && (!create || prefill->append)) {
        pthread_mutex_unlock(&r->lock);
        g3n_worker_call_set_code(call, G3N__ERROR_CODE__ERROR_NOT_FOUND);
        return g3n_error_set(err,
                             "no session '%s' on this decoder (never opened, closed, evicted for room, or idle for "
                             "over %.0f s)",
                             id, r->options.session_idle_seconds);
    }
    if (s && create && prefill->append && g3n_text_session_position(s->session) != prefill->expect_position) {
        pthread_mutex_unlock(&r->lock);
        return g3n_error_set(err, "prefill.expect_position: session '%s' holds %lld positions, not %lld", id,
                             (long long)g3n_text_session_position(s->session), (long long)prefill->expect_position),
               g3n_role_bad_request(call, err);
    }
    if (!s) {
        decoder_session *free_slot = NULL;
        const double slot_deadline = g3n_now_seconds() + DECODER_SLOT_WAIT_SECONDS;
        for (;;) {
            decoder_session *oldest_stale = NULL;
            const double now = g3n_now_seconds();
            for (int i = 0; i < r->options.max_sessions; i++) {
                decoder_session *c = &r->sessions[i];
                if (!c->session && !c->busy && !free_slot)
                    free_slot = c;
                if (c->session && !c->busy && now - c->idle_since >= DECODER_STALE_SESSION_SECONDS &&
                    (!oldest_stale || c->last_used < oldest_stale->last_used))
                    oldest_stale = c;
            }
            if (!free_slot && oldest_stale) { /* an abandoned session makes room */
                session_release(oldest_stale);
                free_slot = oldest_stale;
            }
            if (free_slot || now >= slot_deadline)
                break;
            /* every slot holds a live session: wait for one to end (EndSession frees it) */
            wait_session_free(r, 20);
        }
        if (!free_slot) {
            pthread_mutex_unlock(&r->lock);
            g3n_worker_call_set_code(call, G3N__ERROR_CODE__ERROR_TOO_LARGE);
            return g3n_error_set(err, "decoder holds %d live sessions (its limit) and none ended within %.0f s",
                                 r->options.max_sessions, DECODER_SLOT_WAIT_SECONDS);
        }
        s = free_slot;
        snprintf(s->id, sizeof(s->id), "%s", id);
        s->busy = 1; /* reserved while created outside the lock */
        pthread_mutex_unlock(&r->lock);
        g3n_text_session_params sp = g3n_text_session_default_params(model);
        int64_t want = prefill->max_positions > 0 ? prefill->max_positions : r->options.max_positions;
        if (want > r->options.max_positions)
            want = r->options.max_positions;
        sp.max_positions = want;
        g3n_sampling_params sampling = sampling_from_wire(prefill->sampling);
        s->allowed_vocab = prefill->allowed_vocab;
        s->logits = malloc(sizeof(float) * (size_t)r->model.vocab_size);
        if (!s->logits || g3n_text_session_create(&s->session, model, &sp, err) != G3N_OK ||
            g3n_sampler_create(&s->sampler, &sampling, r->model.vocab_size, err) != G3N_OK) {
            if (!s->logits)
                g3n_error_set(err, "decoder: out of memory");
            pthread_mutex_lock(&r->lock);
            session_release(s);
            pthread_mutex_unlock(&r->lock);
            return G3N_ERR;
        }
        g3n_text_session_memory usage = g3n_text_session_memory_usage(s->session);
        const uint64_t bytes = usage.kv_cache_bytes + usage.scratch_bytes;
        pthread_mutex_lock(&r->lock);
        if (session_memory_room(r, s, bytes) != G3N_OK) {
            session_release(s);
            pthread_cond_broadcast(&r->session_free);
            pthread_mutex_unlock(&r->lock);
            g3n_worker_call_set_code(call, G3N__ERROR_CODE__ERROR_TOO_LARGE);
            return g3n_error_set(err,
                                 "session '%s' needs %.1f MiB (%lld positions), but the decoder's other sessions "
                                 "hold the rest of its session memory limit (%.1f MiB)",
                                 id, (double)bytes / 1048576.0, (long long)want,
                                 (double)r->options.max_session_bytes / 1048576.0);
        }
        s->bytes = bytes;
        pthread_mutex_unlock(&r->lock);
        *out = s;
        return G3N_OK;
    }
    s->busy = 1;
    pthread_mutex_unlock(&r->lock);
    if (create && prefill->append && prefill->sampling) { /* the continuing request's own sampling */
        g3n_sampling_params sampling = sampling_from_wire(prefill->sampling);
        g3n_sampler *sampler = NULL;
        if (g3n_sampler_create(&sampler, &sampling, r->model.vocab_size, err) != G3N_OK) {
            session_done(r, s);
            return G3N_ERR;
        }
        g3n_sampler_free(s->sampler);
        s->sampler = sampler;
        s->allowed_vocab = prefill->allowed_vocab;
    }
    *out = s;
    return G3N_OK;
}

static void session_done(decoder_role *r, decoder_session *s)
{
    pthread_mutex_lock(&r->lock);
    s->busy = 0;
    s->last_used = ++r->use_counter;
    s->idle_since = g3n_now_seconds();
    pthread_cond_broadcast(&r->session_free);
    pthread_mutex_unlock(&r->lock);
}

/* One job on the engine thread, alone. */
static void engine_run_one(decoder_job *j)
{
    j->rc = g3n_text_session_forward(j->session, j->embeds, j->per_layer, j->count, j->logits, j->all_logits, &j->err);
}

/* Decode steps of different sessions as one batched forward; if the batch is
 * refused (a session's context is full), each runs alone for its own answer. */
static void engine_run_batch(decoder_role *r, decoder_job **jobs, int count)
{
    const int64_t D = r->model.hidden_size, LP = g3n_text_model_per_layer_width(&r->model);
    const int64_t V = r->model.vocab_size;
    for (int i = 0; i < count; i++) {
        r->batch_rows[i] = jobs[i]->session;
        memcpy(r->batch_embeds + i * D, jobs[i]->embeds, sizeof(float) * (size_t)D);
        memcpy(r->batch_per_layer + i * LP, jobs[i]->per_layer, sizeof(float) * (size_t)LP);
    }
    g3n_error err;
    g3n_text_batch *batch = r->batch; /* the batch of the jobs' model (they share one: engine_main) */
    for (int i = 0; i < r->sub_count; i++)
        if (g3n_text_session_model(jobs[0]->session) == &r->subs[i])
            batch = r->sub_batches[i];
    if (g3n_text_batch_forward(batch, r->batch_rows, count, r->batch_embeds, r->batch_per_layer, r->batch_logits,
                               &err) != G3N_OK) {
        for (int i = 0; i < count; i++)
            engine_run_one(jobs[i]);
        return;
    }
    for (int i = 0; i < count; i++) {
        memcpy(jobs[i]->logits, r->batch_logits + i * V, sizeof(float) * (size_t)V);
        jobs[i]->rc = G3N_OK;
    }
}

static void *engine_main(void *user)
{
    decoder_role *r = user;
    if (r->options.threads > 0)
        g3n_set_threads(r->options.threads);
    const int capacity = g3n_text_batch_capacity(r->batch);
    pthread_mutex_lock(&r->lock);
    for (;;) {
        while (!r->queue_head && !r->engine_stop)
            pthread_cond_wait(&r->engine_work, &r->lock);
        if (!r->queue_head && r->engine_stop)
            break;
        /* a prefill at the head runs alone; else every queued decode step (in order) joins the batch */
        int count = 0;
        if (!r->queue_head->is_decode) {
            r->batch_jobs[count++] = r->queue_head;
            r->queue_head = r->queue_head->next;
        } else {
            decoder_job **link = &r->queue_head;
            const g3n_text_model *batch_model = g3n_text_session_model(r->queue_head->session);
            while (*link && count < capacity) {
                decoder_job *j = *link;
                if (j->is_decode && g3n_text_session_model(j->session) == batch_model) { /* one model per forward */
                    r->batch_jobs[count++] = j;
                    *link = j->next;
                } else {
                    link = &j->next;
                }
            }
        }
        r->queue_tail = NULL;
        for (decoder_job *j = r->queue_head; j; j = j->next)
            r->queue_tail = j;
        pthread_mutex_unlock(&r->lock);
        if (count == 1)
            engine_run_one(r->batch_jobs[0]);
        else
            engine_run_batch(r, r->batch_jobs, count);
        pthread_mutex_lock(&r->lock);
        if (r->batch_jobs[0]->is_decode) {
            r->stats.decode_steps += (uint64_t)count;
            r->stats.decode_batches += 1;
            if (count > 1)
                r->stats.batched_steps += (uint64_t)count;
            if ((uint64_t)count > r->stats.largest_batch)
                r->stats.largest_batch = (uint64_t)count;
        }
        for (int i = 0; i < count; i++)
            r->batch_jobs[i]->done = 1;
        pthread_cond_broadcast(&r->engine_done);
    }
    pthread_mutex_unlock(&r->lock);
    return NULL;
}

/* Queues count positions of a session for the engine and waits for them. */
static int decoder_run(decoder_role *r, g3n_text_session *session, const float *embeds, const float *per_layer,
                       int64_t count, float *logits, int all_logits, int is_decode, g3n_error *err)
{
    decoder_job job;
    memset(&job, 0, sizeof(job));
    job.session = session;
    job.embeds = embeds;
    job.per_layer = per_layer;
    job.count = count;
    job.logits = logits;
    job.all_logits = all_logits;
    job.is_decode = is_decode && count == 1 && !all_logits;
    pthread_mutex_lock(&r->lock);
    if (r->queue_tail)
        r->queue_tail->next = &job;
    else
        r->queue_head = &job;
    r->queue_tail = &job;
    pthread_cond_signal(&r->engine_work);
    while (!job.done)
        pthread_cond_wait(&r->engine_done, &r->lock);
    pthread_mutex_unlock(&r->lock);
    if (job.rc != G3N_OK)
        *err = job.err;
    return job.rc;
}

static int decoder_open_sessions(void *state)
{
    decoder_role *r = state;
    if (!r->sessions)
        return 0;
    int open = 0;
    double now = g3n_now_seconds();
    pthread_mutex_lock(&r->lock);
    for (int i = 0; i < r->options.max_sessions; i++) {
        const decoder_session *s = &r->sessions[i];
        if (s->session && (s->busy || now - s->idle_since < DECODER_STALE_SESSION_SECONDS))
            open++;
    }
    pthread_mutex_unlock(&r->lock);
    return open;
}

g3n_role_decoder_stats g3n_role_decoder_stats_get(g3n_role *role)
{
    decoder_role *r = g3n_role_state(role, &g3n_decoder_role_ops);
    g3n_role_decoder_stats stats;
    memset(&stats, 0, sizeof(stats));
    if (!r)
        return stats;
    pthread_mutex_lock(&r->lock);
    stats = r->stats;
    pthread_mutex_unlock(&r->lock);
    return stats;
}

/* Runs positions through the session, picks the next token, answers StepReply. */
static int decoder_step(decoder_role *r, g3n_worker_call *call, decoder_session *s, const g3n_tensor *embeds,
                        const g3n_tensor *per_layer, int want_logits, int all_logits, int is_decode, g3n_error *err)
{
    double t0 = g3n_now_seconds();
    const int64_t T = embeds->shape[0];
    const int64_t V = r->model.vocab_size;
    float *every = NULL;
    if (all_logits) {
        every = malloc(sizeof(float) * (size_t)(T * V));
        if (!every)
            return g3n_error_set(err, "decoder: out of memory for %lld x %lld logits", (long long)T, (long long)V);
    }
    if (decoder_run(r, s->session, embeds->data, per_layer->data, T, every ? every : s->logits, every != NULL,
                    is_decode, err) != G3N_OK) {
        free(every);
        return g3n_role_bad_request(call, err);
    }
    if (every)
        memcpy(s->logits, every + (T - 1) * V, sizeof(float) * (size_t)V);
    int32_t token = g3n_sampler_sample(s->sampler, s->logits, s->allowed_vocab);
    G3n__Envelope env;
    G3n__StepReply reply;
    g3n__envelope__init(&env);
    g3n__step_reply__init(&reply);
    g3n_wire_tensor logits;
    if (every) {
        int64_t shape[2] = {T, V};
        g3n_wire_tensor_borrow(&logits, G3N_DTYPE_F32, 2, shape, every);
        reply.logits = &logits.message;
    } else if (want_logits) {
        int64_t shape[1] = {V};
        g3n_wire_tensor_borrow(&logits, G3N_DTYPE_F32, 1, shape, s->logits);
        reply.logits = &logits.message;
    }
    reply.token = token;
    reply.position = g3n_text_session_position(s->session);
    reply.seconds = g3n_now_seconds() - t0;
    env.body_case = G3N__ENVELOPE__BODY_STEP_REPLY;
    env.step_reply = &reply;
    int rc = g3n_worker_call_send(call, &env, 0, err);
    free(every);
    return rc;
}

static int decoder_prefill(decoder_role *r, g3n_worker_call *call, const G3n__PrefillRequest *q, g3n_error *err)
{
    g3n_tensor e, p;
    if (check_step_request(r, call, "prefill", q->session_id, q->inputs_embeds, q->per_layer_inputs, &e, &p, err) !=
        G3N_OK)
        return G3N_ERR;
    if (q->allowed_vocab > r->model.vocab_size)
        return g3n_error_set(err, "prefill.allowed_vocab %lld is over the vocabulary %lld", (long long)q->allowed_vocab,
                             (long long)r->model.vocab_size),
               g3n_role_bad_request(call, err);
    if (q->append && q->reset)
        return g3n_error_set(err, "prefill: append and reset exclude each other"), g3n_role_bad_request(call, err);
    decoder_session *s;
    if (session_acquire(r, q->session_id, 1, q, &s, call, err) != G3N_OK)
        return G3N_ERR;
    int rc = decoder_step(r, call, s, &e, &p, q->want_logits, q->all_logits, 0, err);
    session_done(r, s);
    return rc;
}

static int decoder_decode_step(decoder_role *r, g3n_worker_call *call, const G3n__DecodeStepRequest *q, g3n_error *err)
{
    g3n_tensor e, p;
    if (check_step_request(r, call, "decode_step", q->session_id, q->inputs_embeds, q->per_layer_inputs, &e, &p,
                           err) != G3N_OK)
        return G3N_ERR;
    decoder_session *s;
    if (session_acquire(r, q->session_id, 0, NULL, &s, call, err) != G3N_OK)
        return G3N_ERR;
    int rc = decoder_step(r, call, s, &e, &p, q->want_logits, 0, e.shape[0] == 1, err);
    session_done(r, s);
    return rc;
}

static int decoder_end_session(decoder_role *r, g3n_worker_call *call, const G3n__EndSession *q, g3n_error *err)
{
    if (check_session_id(call, q->session_id, "end_session", err) != G3N_OK)
        return G3N_ERR;
    pthread_mutex_lock(&r->lock);
    /* the session's last step may still be sending its reply (the client already has it): wait for
     * that, else the session would stay behind holding its KV cache until LRU eviction, which may
     * then evict a live session between two of its steps */
    decoder_session *s = session_wait_idle(r, q->session_id);
    if (s && !s->busy) {
        session_release(s);
        pthread_cond_broadcast(&r->session_free); /* a new session may be waiting for the slot */
    }
    pthread_mutex_unlock(&r->lock);
    G3n__Envelope env;
    G3n__Ack ack;
    g3n__envelope__init(&env);
    g3n__ack__init(&ack);
    env.body_case = G3N__ENVELOPE__BODY_ACK;
    env.ack = &ack;
    return g3n_worker_call_send(call, &env, 0, err);
}

/* The batch scratch (one row per session it may hold, at most DECODER_MAX_BATCH) and the engine thread. */
static int decoder_engine_start(decoder_role *r, g3n_error *err)
{
    const int rows = r->options.max_sessions < DECODER_MAX_BATCH ? r->options.max_sessions : DECODER_MAX_BATCH;
    const int64_t D = r->model.hidden_size, LP = g3n_text_model_per_layer_width(&r->model);
    if (g3n_text_batch_create(&r->batch, &r->model, rows, err) != G3N_OK)
        return G3N_ERR;
    for (int i = 0; i < r->sub_count; i++)
        if (g3n_text_batch_create(&r->sub_batches[i], &r->subs[i], rows, err) != G3N_OK)
            return G3N_ERR;
    r->batch_rows = calloc((size_t)rows, sizeof(*r->batch_rows));
    r->batch_jobs = calloc((size_t)rows, sizeof(*r->batch_jobs));
    r->batch_embeds = malloc(sizeof(float) * (size_t)(rows * D));
    r->batch_per_layer = malloc(sizeof(float) * (size_t)(rows * LP));
    r->batch_logits = malloc(sizeof(float) * (size_t)rows * (size_t)r->model.vocab_size);
    if (!r->batch_rows || !r->batch_jobs || !r->batch_embeds || !r->batch_per_layer || !r->batch_logits)
        return g3n_error_set(err, "decoder: out of memory for a batch of %d", rows);
    if (pthread_create(&r->engine, NULL, engine_main, r) != 0)
        return g3n_error_set(err, "decoder: cannot start the engine thread");
    r->engine_started = 1;
    return G3N_OK;
}


static void decoder_close(void *state)
{
    decoder_role *r = state;
    if (!r)
        return;
    if (r->engine_started) {
        pthread_mutex_lock(&r->lock);
        r->engine_stop = 1;
        pthread_cond_broadcast(&r->engine_work);
        pthread_mutex_unlock(&r->lock);
        pthread_join(r->engine, NULL);
    }
    g3n_text_batch_free(r->batch);
    free(r->batch_rows);
    free(r->batch_jobs);
    free(r->batch_embeds);
    free(r->batch_per_layer);
    free(r->batch_logits);
    if (r->sessions)
        for (int i = 0; i < r->options.max_sessions; i++)
            session_release(&r->sessions[i]);
    free(r->sessions);
    for (int i = 0; i < r->sub_count; i++) {
        g3n_text_batch_free(r->sub_batches ? r->sub_batches[i] : NULL);
        g3n_text_model_free(&r->subs[i]);
    }
    free(r->subs);
    free(r->sub_batches);
    if (r->model_loaded)
        g3n_text_model_free(&r->model);
    pthread_mutex_destroy(&r->lock);
    pthread_cond_destroy(&r->session_free);
    pthread_cond_destroy(&r->engine_work);
    pthread_cond_destroy(&r->engine_done);
    free(r);
}

static int decoder_open(void **state, g3n_weights *weights, const g3n_model_config *config,
                        const g3n_role_options *options, g3n_error *err)
{
    decoder_role *r = calloc(1, sizeof(*r));
    if (!(*state = r))
        return g3n_error_set(err, "decoder: out of memory");
    r->weights = weights;
    r->config = config;
    r->options = *options;
    pthread_mutex_init(&r->lock, NULL);
    pthread_cond_init(&r->session_free, NULL);
    pthread_cond_init(&r->engine_work, NULL);
    pthread_cond_init(&r->engine_done, NULL);
    int rc = g3n_text_model_load_layers_only(&r->model, weights, config, err); /* no per-layer table */
    if (rc == G3N_OK) {
        r->model_loaded = 1;
        rc = g3n_text_model_select_weights(&r->model, r->options.weight_format, r->options.weight_cache, NULL, err);
    }
    if (rc == G3N_OK)
        rc = decoder_submodels_open(r, err);
    if (rc == G3N_OK) {
        r->sessions = calloc((size_t)r->options.max_sessions, sizeof(*r->sessions));
        if (!r->sessions)
            rc = g3n_error_set(err, "decoder: out of memory");
    }
    if (rc == G3N_OK)
        rc = decoder_engine_start(r, err);
    return rc;
}

static int decoder_handle(void *state, g3n_worker_call *call, const G3n__Envelope *q, g3n_error *err)
{
    decoder_role *r = state;
    int body = q->body_case;
    if (body == G3N__ENVELOPE__BODY_PREFILL)
        return decoder_prefill(r, call, q->prefill, err);
    if (body == G3N__ENVELOPE__BODY_DECODE_STEP)
        return decoder_decode_step(r, call, q->decode_step, err);
    if (body == G3N__ENVELOPE__BODY_END_SESSION)
        return decoder_end_session(r, call, q->end_session, err);
    return g3n_role_unsupported(G3N_ROLE_DECODER, call, q, err);
}

/* The handler threads only queue positions for the one engine thread and wait, so one per session it may hold
 * (options->max_sessions; 16 without options; at most 64), and every concurrent chat's step can join the
 * engine's batch (with 2, a third and fourth chat's steps waited in the broker's queue: four clients of g3n
 * serve got no more tokens/s than one). */
static int decoder_capacity(const g3n_role_options *options)
{
    const int sessions = options && options->max_sessions > 0 ? options->max_sessions : 16;
    return sessions < 2 ? 2 : sessions > 64 ? 64 : sessions;
}

const g3n_role_ops g3n_decoder_role_ops = {
    .role = G3N_ROLE_DECODER,
    .open = decoder_open,
    .close = decoder_close,
    .handle = decoder_handle,
    .capacity = decoder_capacity,
    .open_sessions = decoder_open_sessions,
    .daemon_options = G3N_ROLE_TAKES_SESSIONS | G3N_ROLE_TAKES_WEIGHTS | G3N_ROLE_TAKES_SUBMODELS,
    .weights_help = "what the layers compute with (q8/q4 are cached\n"
                    "in DIR/g3n-cache, as g3n generate does)",
};
