/* http_metrics.h - the HTTP server's counters and histograms, written out in
 * Prometheus' text format (version 0.0.4) for GET /metrics:
 *
 *   g3n_http_requests_total{endpoint,code}        counter
 *   g3n_http_rejected_total{reason}               counter (queue full, shutting down)
 *   g3n_prompt_tokens_total, g3n_generated_tokens_total   counters
 *   g3n_generated_tokens_per_second               gauge (tokens over the last 10 s / 10)
 *   g3n_time_to_first_token_seconds               histogram
 *   g3n_request_duration_seconds                  histogram (generations)
 *   g3n_role_latency_seconds{role,stage}          histogram: vision-encoder/encode,
 *        audio-encoder/encode, embedder/embed, decoder/prefill, decoder/decode_step
 *   g3n_generations_active, g3n_queue_depth, g3n_workers{role}  gauges (from the caller)
 *
 * Thread-safe (one mutex); no allocation when recording. */
#ifndef G3N_HTTP_METRICS_H
#define G3N_HTTP_METRICS_H

#include <stddef.h>
#include <stdint.h>

#include "status.h"
#include "wire.h"

typedef struct g3n_http_metrics g3n_http_metrics;

typedef enum g3n_http_endpoint {
    G3N_ENDPOINT_CHAT = 0,
    G3N_ENDPOINT_TRANSCRIPTIONS,
    G3N_ENDPOINT_MODELS,
    G3N_ENDPOINT_HEALTH,
    G3N_ENDPOINT_METRICS,
    G3N_ENDPOINT_LIVE, /* /v1/live/sessions... (http_live.h) */
    G3N_ENDPOINT_OTHER,
    G3N_ENDPOINT_COUNT
} g3n_http_endpoint;

typedef enum g3n_role_stage {
    G3N_STAGE_VISION_ENCODE = 0,
    G3N_STAGE_AUDIO_ENCODE,
    G3N_STAGE_EMBED,
    G3N_STAGE_PREFILL,
    G3N_STAGE_DECODE_STEP,
    G3N_STAGE_COUNT
} g3n_role_stage;

int g3n_http_metrics_create(g3n_http_metrics **out, g3n_error *err);
void g3n_http_metrics_free(g3n_http_metrics *metrics); /* accepts NULL */

void g3n_http_metrics_request(g3n_http_metrics *metrics, g3n_http_endpoint endpoint, int status);
void g3n_http_metrics_rejected(g3n_http_metrics *metrics, int shutting_down);
/* count tokens just produced (for the tokens/s gauge and the counter) */
void g3n_http_metrics_tokens(g3n_http_metrics *metrics, int64_t count);
void g3n_http_metrics_prompt(g3n_http_metrics *metrics, int64_t prompt_tokens);
void g3n_http_metrics_first_token(g3n_http_metrics *metrics, double seconds);
void g3n_http_metrics_duration(g3n_http_metrics *metrics, double seconds);
void g3n_http_metrics_stage(g3n_http_metrics *metrics, g3n_role_stage stage, double seconds);

typedef struct g3n_http_gauges {
    int active, queued;
    int live_workers[G3N_ROLE_COUNT];
} g3n_http_gauges;

/* *text: malloc'd, NUL-terminated (caller frees). */
int g3n_http_metrics_render(g3n_http_metrics *metrics, const g3n_http_gauges *gauges, char **text, size_t *size,
                            g3n_error *err);

/* The current tokens/s (last 10 s). */
double g3n_http_metrics_tokens_per_second(g3n_http_metrics *metrics);

#endif
