/* generate.h - sampling and the generation loop over a g3n_text_session.
 *
 * Sampling follows transformers' generate(): logits -> suppress ids at or above
 * `allowed_vocab` -> temperature -> top-k -> top-p -> min-p -> draw. Greedy
 * (argmax) when do_sample is 0 or temperature is 0.
 * Generation stops on any of the eos ids, on max_new_tokens, or when the
 * per-token callback asks to.
 */
#ifndef G3N_GENERATE_H
#define G3N_GENERATE_H

#include <stdint.h>

#include "status.h"
#include "text_model.h"

#define G3N_MAX_EOS_IDS 8

typedef struct g3n_sampling_params {
    int do_sample;      /* 0: greedy */
    float temperature;  /* > 0 */
    int top_k;          /* 0: off */
    float top_p;        /* 1.0: off */
    float min_p;        /* 0: off */
    uint64_t seed;
} g3n_sampling_params;

/* transformers' GenerationConfig defaults: greedy, temperature 1, top_k 50, top_p 1, min_p off. */
g3n_sampling_params g3n_sampling_default_params(void);

/* Reads generation_config.json (a file or a folder holding one) over *params
 * and the eos ids: absent keys keep their values; a missing file is not an
 * error (returns G3N_OK with *found = 0). eos_ids holds G3N_MAX_EOS_IDS. */
int g3n_generation_config_load(const char *path, g3n_sampling_params *params, int *eos_ids, int *num_eos_ids,
                               int *found, g3n_error *err);

typedef struct g3n_sampler g3n_sampler;

int g3n_sampler_create(g3n_sampler **out, const g3n_sampling_params *params, int64_t vocab_size, g3n_error *err);
void g3n_sampler_free(g3n_sampler *sampler); /* accepts NULL */
/* Picks the next id from logits [vocab_size] among ids < allowed_vocab
 * (<= 0: all). Does not modify logits; no allocation. */
int32_t g3n_sampler_sample(g3n_sampler *sampler, const float *logits, int64_t allowed_vocab);

/* Argmax over ids < allowed_vocab (lowest id wins ties, as torch.argmax). */
int32_t g3n_argmax(const float *logits, int64_t count);

/* Per generated token; return nonzero to stop. step counts from 0. */
typedef int (*g3n_token_callback)(void *user, int64_t step, int32_t token);
/* Per step with the logits the token was drawn from ([vocab]); may be NULL. */
typedef void (*g3n_logits_callback)(void *user, int64_t step, const float *logits, int64_t vocab);

typedef struct g3n_generate_params {
    int64_t max_new_tokens;
    g3n_sampling_params sampling;
    int eos_ids[G3N_MAX_EOS_IDS];
    int num_eos_ids;
    int64_t allowed_vocab;        /* ids >= this are never produced (<= 0: all); default vocab_size_per_layer_input */
    g3n_token_callback on_token;
    g3n_logits_callback on_logits;
    void *user;
} g3n_generate_params;

/* Defaults from the model's config: eos ids, allowed_vocab, greedy, 32 tokens. */
g3n_generate_params g3n_generate_default_params(const g3n_text_model *model);

typedef struct g3n_generate_stats {
    int64_t prompt_tokens, generated_tokens;
    int64_t decode_forwards;                /* one-token forwards (generated_tokens - 1 unless stopped) */
    double prefill_seconds, decode_seconds; /* decode: from the first sample to the last */
    int stopped_on_eos;
} g3n_generate_stats;

/* Prefills the prompt (appending to whatever the session holds), then
 * generates. out_tokens receives up to max_new_tokens ids (may be NULL);
 * *num_out their count. */
int g3n_text_generate(g3n_text_session *session, const int32_t *prompt, int64_t prompt_count,
                      const g3n_generate_params *params, int32_t *out_tokens, int64_t *num_out,
                      g3n_generate_stats *stats, g3n_error *err);

#endif
