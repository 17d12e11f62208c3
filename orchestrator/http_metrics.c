/* http_metrics.c - counters, histograms, Prometheus text (http_metrics.h). */
#include "http_metrics.h"

#include <pthread.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

static const double bucket_bounds[] = {0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25,
                                       0.5,   1.0,    2.5,   5.0,  10.0,  30.0, 60.0, 120.0};
#define BUCKETS ((int)(sizeof(bucket_bounds) / sizeof(bucket_bounds[0])))
#define MAX_CODES 24
#define WINDOW_SECONDS 10

typedef struct histogram {
    uint64_t counts[BUCKETS + 1]; /* last: +Inf */
    uint64_t count;
    double sum;
} histogram;

static const char *const endpoint_names[G3N_ENDPOINT_COUNT] = {"/v1/chat/completions", "/v1/audio/transcriptions",
                                                               "/v1/models", "/health", "/metrics",
                                                               "/v1/live/sessions", "other"};
static const char *const stage_roles[G3N_STAGE_COUNT] = {"vision-encoder", "audio-encoder", "embedder", "decoder",
                                                         "decoder"};
static const char *const stage_names[G3N_STAGE_COUNT] = {"encode", "encode", "embed", "prefill", "decode_step"};

struct g3n_http_metrics {
    pthread_mutex_t lock;
    struct {
        int endpoint, status;
        uint64_t count;
    } codes[MAX_CODES];
    int code_count;
    uint64_t rejected_full, rejected_shutdown;
    uint64_t prompt_tokens, generated_tokens;
    int64_t window_second[WINDOW_SECONDS]; /* which second each slot counts */
    uint64_t window_tokens[WINDOW_SECONDS];
    histogram first_token, duration, stages[G3N_STAGE_COUNT];
};

static int64_t now_second(void)
{
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return (int64_t)t.tv_sec;
}

int g3n_http_metrics_create(g3n_http_metrics **out, g3n_error *err)
{
    *out = calloc(1, sizeof(**out));
    if (!*out)
        return g3n_error_set(err, "metrics: out of memory");
    pthread_mutex_init(&(*out)->lock, NULL);
    return G3N_OK;
}

void g3n_http_metrics_free(g3n_http_metrics *m)
{
    if (!m)
        return;
    pthread_mutex_destroy(&m->lock);
    free(m);
}

static void observe(histogram *h, double seconds)
{
    int b = 0;
    while (b < BUCKETS && seconds > bucket_bounds[b])
        b++;
    h->counts[b]++;
    h->count++;
    h->sum += seconds;
}

void g3n_http_metrics_request(g3n_http_metrics *m, g3n_http_endpoint endpoint, int status)
{
    pthread_mutex_lock(&m->lock);
    int i = 0;
    while (i < m->code_count && !(m->codes[i].endpoint == (int)endpoint && m->codes[i].status == status))
        i++;
    if (i == m->code_count && m->code_count < MAX_CODES) {
        m->codes[i].endpoint = (int)endpoint;
        m->codes[i].status = status;
        m->codes[i].count = 0;
        m->code_count++;
    }
    if (i < m->code_count)
        m->codes[i].count++;
    pthread_mutex_unlock(&m->lock);
}

void g3n_http_metrics_rejected(g3n_http_metrics *m, int shutting_down)
{
    pthread_mutex_lock(&m->lock);
    if (shutting_down)
        m->rejected_shutdown++;
    else
        m->rejected_full++;
    pthread_mutex_unlock(&m->lock);
}

void g3n_http_metrics_tokens(g3n_http_metrics *m, int64_t count)
{
    int64_t second = now_second();
    int slot = (int)(second % WINDOW_SECONDS);
    pthread_mutex_lock(&m->lock);
    m->generated_tokens += (uint64_t)count;
    if (m->window_second[slot] != second) {
        m->window_second[slot] = second;
        m->window_tokens[slot] = 0;
    }
    m->window_tokens[slot] += (uint64_t)count;
    pthread_mutex_unlock(&m->lock);
}

void g3n_http_metrics_prompt(g3n_http_metrics *m, int64_t prompt_tokens)
{
    pthread_mutex_lock(&m->lock);
    m->prompt_tokens += (uint64_t)prompt_tokens;
    pthread_mutex_unlock(&m->lock);
}

void g3n_http_metrics_first_token(g3n_http_metrics *m, double seconds)
{
    pthread_mutex_lock(&m->lock);
    observe(&m->first_token, seconds);
    pthread_mutex_unlock(&m->lock);
}

void g3n_http_metrics_duration(g3n_http_metrics *m, double seconds)
{
    pthread_mutex_lock(&m->lock);
    observe(&m->duration, seconds);
    pthread_mutex_unlock(&m->lock);
}

void g3n_http_metrics_stage(g3n_http_metrics *m, g3n_role_stage stage, double seconds)
{
    if ((int)stage < 0 || stage >= G3N_STAGE_COUNT)
        return;
    pthread_mutex_lock(&m->lock);
    observe(&m->stages[stage], seconds);
    pthread_mutex_unlock(&m->lock);
}

static double tokens_per_second_locked(g3n_http_metrics *m)
{
    int64_t second = now_second();
    uint64_t total = 0;
    for (int i = 0; i < WINDOW_SECONDS; i++)
        if (m->window_second[i] > second - WINDOW_SECONDS && m->window_second[i] <= second)
            total += m->window_tokens[i];
    return (double)total / WINDOW_SECONDS;
}

double g3n_http_metrics_tokens_per_second(g3n_http_metrics *m)
{
    pthread_mutex_lock(&m->lock);
    double r = tokens_per_second_locked(m);
    pthread_mutex_unlock(&m->lock);
    return r;
}

typedef struct text_buffer {
    char *data;
    size_t length, capacity;
    int failed;
} text_buffer;

static void append(text_buffer *b, const char *format, ...) G3N_PRINTF(2, 3);
static void append(text_buffer *b, const char *format, ...)
{
    if (b->failed)
        return;
    for (;;) {
        va_list args;
        va_start(args, format);
        int n = vsnprintf(b->data + b->length, b->capacity - b->length, format, args);
        va_end(args);
        if (n < 0) {
            b->failed = 1;
            return;
        }
        if ((size_t)n < b->capacity - b->length) {
            b->length += (size_t)n;
            return;
        }
        size_t c = b->capacity * 2 + (size_t)n;
        char *d = realloc(b->data, c);
        if (!d) {
            b->failed = 1;
            return;
        }
        b->data = d;
        b->capacity = c;
    }
}

static void write_histogram(text_buffer *b, const char *name, const char *labels, const histogram *h)
{
    uint64_t cumulative = 0;
    for (int i = 0; i <= BUCKETS; i++) {
        cumulative += h->counts[i];
        if (i < BUCKETS)
            append(b, "%s_bucket{%s%sle=\"%g\"} %llu\n", name, labels, labels[0] ? "," : "", bucket_bounds[i],
                   (unsigned long long)cumulative);
        else
            append(b, "%s_bucket{%s%sle=\"+Inf\"} %llu\n", name, labels, labels[0] ? "," : "",
                   (unsigned long long)cumulative);
    }
    append(b, "%s_sum%s%s%s %.6f\n", name, labels[0] ? "{" : "", labels, labels[0] ? "}" : "", h->sum);
    append(b, "%s_count%s%s%s %llu\n", name, labels[0] ? "{" : "", labels, labels[0] ? "}" : "",
           (unsigned long long)h->count);
}

int g3n_http_metrics_render(g3n_http_metrics *m, const g3n_http_gauges *gauges, char **text, size_t *size,
                            g3n_error *err)
{
    text_buffer b = {malloc(8192), 0, 8192, 0};
    if (!b.data)
        return g3n_error_set(err, "metrics: out of memory");
    b.data[0] = '\0';
    pthread_mutex_lock(&m->lock);
    append(&b, "# HELP g3n_http_requests_total HTTP requests answered, by endpoint and status code.\n"
               "# TYPE g3n_http_requests_total counter\n");
    for (int i = 0; i < m->code_count; i++)
        append(&b, "g3n_http_requests_total{endpoint=\"%s\",code=\"%d\"} %llu\n", endpoint_names[m->codes[i].endpoint],
               m->codes[i].status, (unsigned long long)m->codes[i].count);
    append(&b,
           "# HELP g3n_http_rejected_total Requests turned away before running (429 queue full, 503 shutting "
           "down).\n# TYPE g3n_http_rejected_total counter\n"
           "g3n_http_rejected_total{reason=\"queue_full\"} %llu\ng3n_http_rejected_total{reason=\"shutting_down\"} "
           "%llu\n",
           (unsigned long long)m->rejected_full, (unsigned long long)m->rejected_shutdown);
    append(&b,
           "# HELP g3n_prompt_tokens_total Prompt tokens prefilled.\n# TYPE g3n_prompt_tokens_total counter\n"
           "g3n_prompt_tokens_total %llu\n"
           "# HELP g3n_generated_tokens_total Tokens generated.\n# TYPE g3n_generated_tokens_total counter\n"
           "g3n_generated_tokens_total %llu\n"
           "# HELP g3n_generated_tokens_per_second Tokens generated per second over the last 10 s.\n"
           "# TYPE g3n_generated_tokens_per_second gauge\ng3n_generated_tokens_per_second %.3f\n",
           (unsigned long long)m->prompt_tokens, (unsigned long long)m->generated_tokens,
           tokens_per_second_locked(m));
    append(&b, "# HELP g3n_time_to_first_token_seconds From the request's arrival to its first generated token.\n"
               "# TYPE g3n_time_to_first_token_seconds histogram\n");
    write_histogram(&b, "g3n_time_to_first_token_seconds", "", &m->first_token);
    append(&b, "# HELP g3n_request_duration_seconds Generations from arrival to the last token.\n"
               "# TYPE g3n_request_duration_seconds histogram\n");
    write_histogram(&b, "g3n_request_duration_seconds", "", &m->duration);
    append(&b, "# HELP g3n_role_latency_seconds Time a role's work took, as the orchestrator saw it.\n"
               "# TYPE g3n_role_latency_seconds histogram\n");
    for (int s = 0; s < G3N_STAGE_COUNT; s++) {
        char labels[96];
        snprintf(labels, sizeof(labels), "role=\"%s\",stage=\"%s\"", stage_roles[s], stage_names[s]);
        write_histogram(&b, "g3n_role_latency_seconds", labels, &m->stages[s]);
    }
    pthread_mutex_unlock(&m->lock);
    if (gauges) {
        append(&b,
               "# HELP g3n_generations_active Generations running now.\n# TYPE g3n_generations_active gauge\n"
               "g3n_generations_active %d\n"
               "# HELP g3n_queue_depth Requests waiting for a generation slot.\n# TYPE g3n_queue_depth gauge\n"
               "g3n_queue_depth %d\n"
               "# HELP g3n_workers Live workers per role.\n# TYPE g3n_workers gauge\n",
               gauges->active, gauges->queued);
        for (int role = 1; role < G3N_ROLE_COUNT; role++)
            if (role != G3N_ROLE_ORCHESTRATOR)
                append(&b, "g3n_workers{role=\"%s\"} %d\n", g3n_role_name(role), gauges->live_workers[role]);
    }
    if (b.failed) {
        free(b.data);
        return g3n_error_set(err, "metrics: out of memory");
    }
    *text = b.data;
    *size = b.length;
    return G3N_OK;
}
