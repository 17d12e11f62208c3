/* generate.c - sampling (transformers' Temperature/TopK/TopP/MinP warpers) and
 * the prefill + decode loop. */
#include "generate.h"

#include <cjson/cJSON.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "json_util.h"
#include "ops.h"

g3n_sampling_params g3n_sampling_default_params(void)
{
    g3n_sampling_params p;
    p.do_sample = 0;
    p.temperature = 1.0f;
    p.top_k = 50;
    p.top_p = 1.0f;
    p.min_p = 0.0f;
    p.seed = 0;
    return p;
}

int g3n_generation_config_load(const char *path, g3n_sampling_params *params, int *eos_ids, int *num_eos_ids,
                               int *found, g3n_error *err)
{
    char file[1200];
    struct stat st;
    *found = 0;
    if (stat(path, &st) == 0 && S_ISDIR(st.st_mode))
        snprintf(file, sizeof(file), "%s/generation_config.json", path);
    else
        snprintf(file, sizeof(file), "%s", path);
    if (stat(file, &st) != 0)
        return G3N_OK;
    cJSON *root = NULL;
    if (g3n_json_load_file(file, &root, err) != G3N_OK)
        return G3N_ERR;
    int ok = 1;
    int64_t top_k = params->top_k;
    double temperature = params->temperature, top_p = params->top_p, min_p = params->min_p;
    int do_sample = params->do_sample;
    ok = ok && g3n_json_get_bool(root, "do_sample", do_sample, &do_sample, err) == G3N_OK;
    ok = ok && g3n_json_get_double(root, "temperature", temperature, &temperature, err) == G3N_OK;
    ok = ok && g3n_json_get_int(root, "top_k", top_k, &top_k, err) == G3N_OK;
    ok = ok && g3n_json_get_double(root, "top_p", top_p, &top_p, err) == G3N_OK;
    ok = ok && g3n_json_get_double(root, "min_p", min_p, &min_p, err) == G3N_OK;
    if (ok) {
        const cJSON *eos = cJSON_GetObjectItemCaseSensitive(root, "eos_token_id");
        if (cJSON_IsNumber(eos)) {
            eos_ids[0] = eos->valueint;
            *num_eos_ids = 1;
        } else if (cJSON_IsArray(eos)) {
            int n = 0;
            const cJSON *item;
            cJSON_ArrayForEach(item, eos)
            {
                if (!cJSON_IsNumber(item) || n >= G3N_MAX_EOS_IDS) {
                    ok = 0;
                    g3n_error_set(err, "eos_token_id: expected at most %d numbers", G3N_MAX_EOS_IDS);
                    break;
                }
                eos_ids[n++] = item->valueint;
            }
            if (ok)
                *num_eos_ids = n;
        }
    }
    cJSON_Delete(root);
    if (!ok)
        return g3n_error_prefix(err, "%s", file);
    params->do_sample = do_sample;
    params->temperature = (float)temperature;
    params->top_k = (int)top_k;
    params->top_p = (float)top_p;
    params->min_p = (float)min_p;
    *found = 1;
    return G3N_OK;
}

/* ------------------------------------------------------------------ sampler */

typedef struct candidate {
    float logit;
    int32_t id;
} candidate;

struct g3n_sampler {
    g3n_sampling_params params;
    int64_t vocab_size;
    uint64_t rng;
    candidate *candidates; /* [vocab_size] */
};

int g3n_sampler_create(g3n_sampler **out, const g3n_sampling_params *params, int64_t vocab_size, g3n_error *err)
{
    *out = NULL;
    if (params->do_sample && !(params->temperature >= 0.0f))
        return g3n_error_set(err, "sampling: temperature must be >= 0 (got %g)", params->temperature);
    if (params->top_p <= 0.0f || params->top_p > 1.0f || params->min_p < 0.0f || params->min_p > 1.0f ||
        params->top_k < 0)
        return g3n_error_set(err, "sampling: need top_k >= 0, 0 < top_p <= 1, 0 <= min_p <= 1 (got %d, %g, %g)",
                             params->top_k, params->top_p, params->min_p);
    g3n_sampler *s = calloc(1, sizeof(*s));
    if (!s)
        return g3n_error_set(err, "sampler: out of memory");
    s->params = *params;
    s->vocab_size = vocab_size;
    s->rng = params->seed ^ 0x9E3779B97F4A7C15ull;
    s->candidates = malloc((size_t)vocab_size * sizeof(candidate));
    if (!s->candidates) {
        free(s);
        return g3n_error_set(err, "sampler: out of memory for %lld candidates", (long long)vocab_size);
    }
    *out = s;
    return G3N_OK;
}

void g3n_sampler_free(g3n_sampler *s)
{
    if (!s)
        return;
    free(s->candidates);
    free(s);
}

static double next_uniform(g3n_sampler *s)
{
    /* splitmix64 */
    uint64_t z = (s->rng += 0x9E3779B97F4A7C15ull);
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
    z ^= z >> 31;
    return (double)(z >> 11) * (1.0 / 9007199254740992.0);
}

int32_t g3n_argmax(const float *logits, int64_t count)
{
    int64_t best = 0;
    for (int64_t i = 1; i < count; i++)
        if (logits[i] > logits[best])
            best = i;
    return (int32_t)best;
}

static int candidate_descending(const void *a, const void *b)
{
    const candidate *x = a, *y = b;
    if (x->logit > y->logit)
        return -1;
    if (x->logit < y->logit)
        return 1;
    return x->id < y->id ? -1 : x->id > y->id;
}

/* Keeps the k largest in c[0..k) (a min-heap), then sorts them descending. */
static int64_t select_top_k(candidate *c, int64_t n, int64_t k)
{
    if (k >= n) {
        qsort(c, (size_t)n, sizeof(*c), candidate_descending);
        return n;
    }
    /* min-heap of size k on logit */
    for (int64_t i = k / 2 - 1; i >= 0; i--) {
        int64_t j = i;
        for (;;) {
            int64_t l = 2 * j + 1, r = l + 1, m = j;
            if (l < k && candidate_descending(&c[l], &c[m]) > 0)
                m = l;
            if (r < k && candidate_descending(&c[r], &c[m]) > 0)
                m = r;
            if (m == j)
                break;
            candidate t = c[j];
            c[j] = c[m];
            c[m] = t;
            j = m;
        }
    }
    for (int64_t i = k; i < n; i++) {
        if (candidate_descending(&c[i], &c[0]) < 0) { /* better than the heap's worst */
            c[0] = c[i];
            int64_t j = 0;
            for (;;) {
                int64_t l = 2 * j + 1, r = l + 1, m = j;
                if (l < k && candidate_descending(&c[l], &c[m]) > 0)
                    m = l;
                if (r < k && candidate_descending(&c[r], &c[m]) > 0)
                    m = r;
                if (m == j)
                    break;
                candidate t = c[j];
                c[j] = c[m];
                c[m] = t;
                j = m;
            }
        }
    }
    qsort(c, (size_t)k, sizeof(*c), candidate_descending);
    return k;
}

int32_t g3n_sampler_sample(g3n_sampler *s, const float *logits, int64_t allowed_vocab)
{
    int64_t n = allowed_vocab > 0 && allowed_vocab < s->vocab_size ? allowed_vocab : s->vocab_size;
    const g3n_sampling_params *p = &s->params;
    if (!p->do_sample || p->temperature == 0.0f)
        return g3n_argmax(logits, n);
    candidate *c = s->candidates;
    for (int64_t i = 0; i < n; i++) {
        c[i].logit = logits[i] / p->temperature; /* TemperatureLogitsWarper */
        c[i].id = (int32_t)i;
    }
    /* TopKLogitsWarper (ties at the k-th value are kept by transformers; rare, ignored) */
    int64_t kept = select_top_k(c, n, p->top_k > 0 ? p->top_k : n);
    /* probabilities of the kept, sorted descending */
    double total = 0.0;
    const float top = c[0].logit;
    for (int64_t i = 0; i < kept; i++)
        total += exp((double)c[i].logit - top);
    /* TopPLogitsWarper: drop the tail whose cumulative probability (ascending) <= 1 - top_p */
    if (p->top_p < 1.0f) {
        double cumulative = 0.0, tail_limit = 1.0 - p->top_p;
        int64_t keep = kept;
        for (int64_t i = kept - 1; i >= 1; i--) {
            cumulative += exp((double)c[i].logit - top) / total;
            if (cumulative <= tail_limit)
                keep = i;
            else
                break;
        }
        kept = keep;
        total = 0.0;
        for (int64_t i = 0; i < kept; i++)
            total += exp((double)c[i].logit - top);
    }
    /* MinPLogitsWarper: drop tokens with probability < min_p * top probability */
    if (p->min_p > 0.0f) {
        double threshold = (double)p->min_p; /* relative to the top: exp(l - top) >= min_p */
        int64_t keep = 1;
        while (keep < kept && exp((double)c[keep].logit - top) >= threshold)
            keep++;
        kept = keep;
        total = 0.0;
        for (int64_t i = 0; i < kept; i++)
            total += exp((double)c[i].logit - top);
    }
    double u = next_uniform(s) * total, acc = 0.0;
    for (int64_t i = 0; i < kept; i++) {
        acc += exp((double)c[i].logit - top);
        if (u < acc)
            return c[i].id;
    }
    return c[kept - 1].id;
}

/* ------------------------------------------------------------------ generation */

g3n_generate_params g3n_generate_default_params(const g3n_text_model *model)
{
    g3n_generate_params p;
    memset(&p, 0, sizeof(p));
    p.max_new_tokens = 32;
    p.sampling = g3n_sampling_default_params();
    const g3n_text_config *c = model->config;
    for (int i = 0; i < c->num_eos_token_ids && i < G3N_MAX_EOS_IDS; i++)
        p.eos_ids[p.num_eos_ids++] = c->eos_token_ids[i];
    p.allowed_vocab = c->vocab_size_per_layer_input;
    return p;
}

static int is_eos(const g3n_generate_params *p, int32_t token)
{
    for (int i = 0; i < p->num_eos_ids; i++)
        if (p->eos_ids[i] == token)
            return 1;
    return 0;
}

int g3n_text_generate(g3n_text_session *session, const int32_t *prompt, int64_t prompt_count,
                      const g3n_generate_params *params, int32_t *out_tokens, int64_t *num_out,
                      g3n_generate_stats *stats, g3n_error *err)
{
    g3n_generate_stats local;
    if (!stats)
        stats = &local;
    memset(stats, 0, sizeof(*stats));
    if (num_out)
        *num_out = 0;
    if (prompt_count <= 0)
        return g3n_error_set(err, "generate: empty prompt");
    const g3n_text_model *model = g3n_text_session_model(session);
    const int64_t V = model->vocab_size;
    float *logits = g3n_aligned_alloc((size_t)V * sizeof(float));
    g3n_sampler *sampler = NULL;
    if (!logits)
        return g3n_error_set(err, "generate: out of memory for logits");
    if (g3n_sampler_create(&sampler, &params->sampling, V, err) != G3N_OK) {
        g3n_aligned_free(logits);
        return G3N_ERR;
    }
    int status = G3N_OK;
    double t0 = g3n_now_seconds();
    if (g3n_text_session_forward_ids(session, prompt, prompt_count, logits, 0, err) != G3N_OK) {
        status = G3N_ERR;
        goto done;
    }
    stats->prompt_tokens = prompt_count;
    stats->prefill_seconds = g3n_now_seconds() - t0;
    double decode_start = g3n_now_seconds();
    for (int64_t step = 0; step < params->max_new_tokens; step++) {
        if (params->on_logits)
            params->on_logits(params->user, step, logits, V);
        int32_t token = g3n_sampler_sample(sampler, logits, params->allowed_vocab);
        if (out_tokens)
            out_tokens[step] = token;
        stats->generated_tokens = step + 1;
        if (num_out)
            *num_out = step + 1;
        int stop = params->on_token ? params->on_token(params->user, step, token) : 0;
        if (is_eos(params, token)) {
            stats->stopped_on_eos = 1;
            break;
        }
        if (stop || step + 1 == params->max_new_tokens)
            break;
        if (g3n_text_session_forward_ids(session, &token, 1, logits, 0, err) != G3N_OK) {
            status = G3N_ERR;
            break;
        }
        stats->decode_forwards++;
    }
    stats->decode_seconds = g3n_now_seconds() - decode_start;
done:
    g3n_sampler_free(sampler);
    g3n_aligned_free(logits);
    return status;
}
