/* decoder_check.c - `g3n check` kind "text": the language model against the
 * reference (tests/fixtures/README.md, "Reading the text and multimodal cases").
 *   logits              one teacher-forced forward over input_ids (no cache)
 *   decode_step_logits  the cached greedy decode from prompt_ids (step k predicts
 *                       input_ids[prompt_len + k]); greedy = argmax over ids
 *                       below vocab_size_per_layer_input
 *   tokens              the greedy continuation, exactly input_ids[prompt_len:]
 *   prefill_hidden.N    (when present) the 4 AltUp streams entering layer 0
 *                       (N = 0) and leaving layer N-1, over the prompt
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cjson/cJSON.h>

#include "decoder_check.h"
#include "generate.h"
#include "submodel.h"
#include "text_model.h"

typedef struct hidden_capture {
    float *data;      /* [(L + 1)][streams][prompt_len][D] */
    int num_layers, num_streams;
    int64_t prompt_len, hidden;
} hidden_capture;

static void capture_hidden(void *user, int layer, const float *streams, int num_streams, int64_t stream_stride,
                           int64_t first_position, int64_t count, int64_t hidden)
{
    hidden_capture *h = user;
    const int64_t per_stream = h->prompt_len * h->hidden;
    float *slot = h->data + (int64_t)(layer + 1) * num_streams * per_stream;
    for (int i = 0; i < num_streams; i++)
        for (int64_t t = 0; t < count; t++) {
            int64_t pos = first_position + t;
            if (pos >= h->prompt_len)
                continue;
            memcpy(slot + i * per_stream + pos * hidden, streams + i * stream_stride + t * hidden,
                   (size_t)hidden * sizeof(float));
        }
}

typedef struct decode_capture {
    float *step_logits; /* [steps][vocab] */
    int64_t steps;
} decode_capture;

static void capture_logits(void *user, int64_t step, const float *logits, int64_t vocab)
{
    decode_capture *d = user;
    if (step < d->steps)
        memcpy(d->step_logits + step * vocab, logits, (size_t)vocab * sizeof(float));
}

static int ids_from_golden(const g3n_tensor *t, int32_t **out, int64_t *count, g3n_error *err)
{
    int64_t n = g3n_tensor_numel(t);
    float *tmp = malloc((size_t)(n > 0 ? n : 1) * sizeof(float));
    int32_t *ids = malloc((size_t)(n > 0 ? n : 1) * sizeof(int32_t));
    if (!tmp || !ids) {
        free(tmp);
        free(ids);
        return g3n_error_set(err, "out of memory");
    }
    if (t->dtype == G3N_DTYPE_I32) {
        memcpy(ids, t->data, (size_t)n * sizeof(int32_t));
    } else {
        g3n_convert_to_f32(t->dtype, t->data, tmp, n);
        for (int64_t i = 0; i < n; i++)
            ids[i] = (int32_t)tmp[i];
    }
    free(tmp);
    *out = ids;
    *count = n;
    return G3N_OK;
}

int g3n_check_kind_text(g3n_check_case *c, g3n_error *err)
{
    if (!c->has_config)
        return g3n_error_set(err, "text case %s has no config.json", c->case_dir);
    uint64_t seed = 0;
    if (g3n_check_seed(c, &seed, err) != G3N_OK)
        return G3N_ERR;

    g3n_weights *weights = NULL;
    g3n_text_model model, sub;
    memset(&model, 0, sizeof(model));
    memset(&sub, 0, sizeof(sub));
    g3n_submodel submodel;
    memset(&submodel, 0, sizeof(submodel));
    g3n_model_config own_config;
    memset(&own_config, 0, sizeof(own_config));
    g3n_text_session *session = NULL;
    int32_t *input_ids = NULL, *prompt_ids = NULL, *generated = NULL;
    float *logits = NULL, *step_logits = NULL;
    hidden_capture hidden = {0};
    int status = G3N_ERR;

    g3n_tensor golden_input, golden_prompt, golden_logits, golden_steps;
    int64_t total = 0, prompt_len = 0;
    if (g3n_check_golden(c, "input_ids", &golden_input, err) != G3N_OK ||
        g3n_check_golden(c, "prompt_ids", &golden_prompt, err) != G3N_OK ||
        g3n_check_golden(c, "logits", &golden_logits, err) != G3N_OK ||
        g3n_check_golden(c, "decode_step_logits", &golden_steps, err) != G3N_OK)
        goto done;
    if (ids_from_golden(&golden_input, &input_ids, &total, err) != G3N_OK ||
        ids_from_golden(&golden_prompt, &prompt_ids, &prompt_len, err) != G3N_OK)
        goto done;
    const int64_t steps = golden_steps.ndim == 2 ? golden_steps.shape[0] : 0;
    if (prompt_len <= 0 || total < prompt_len || steps <= 0 || total - prompt_len > steps) {
        g3n_error_set(err, "text case: inconsistent golden sizes (input_ids %lld, prompt_ids %lld, steps %lld)",
                      (long long)total, (long long)prompt_len, (long long)steps);
        goto done;
    }

    const g3n_model_config *config = &c->config;
    if (c->model_dir) { /* a checkpoint folder: its config and weights (g3n slice's output, say) */
        if (g3n_config_load(&own_config, c->model_dir, err) != G3N_OK)
            goto done;
        config = &own_config;
        if (g3n_weights_open_checkpoint(&weights, c->model_dir, err) != G3N_OK)
            goto done;
    } else if (g3n_weights_open_synth(&weights, seed, G3N_DTYPE_BF16, err) != G3N_OK) {
        goto done;
    }
    if (g3n_text_model_load(&model, weights, config, err) != G3N_OK)
        goto done;
    const g3n_text_model *m = &model;
    /* MatFormer: --submodel, else the case's own "submodel" (goldens of a sub-model of the synthetic model) */
    const cJSON *case_submodel = c->model_dir ? NULL : cJSON_GetObjectItemCaseSensitive(c->case_json, "submodel");
    if (c->submodel_spec || case_submodel) {
        if ((c->submodel_spec ? g3n_submodel_parse(&submodel, c->submodel_spec, &config->text, err)
                              : g3n_submodel_from_json(&submodel, case_submodel, &config->text, err)) != G3N_OK ||
            g3n_text_model_derive(&sub, &model, &submodel, err) != G3N_OK)
            goto done;
        char line[512];
        g3n_submodel_describe(&submodel, &config->text, line, sizeof(line));
        fprintf(c->out, "# sub-model %s\n", line);
        m = &sub;
    }
    const int64_t V = m->vocab_size;
    const double logits_rel = g3n_check_tolerance(c, "logits_rel_l2", 3e-3);
    const double logits_abs = g3n_check_tolerance(c, "logits_max_abs", 3e-2);
    const double steps_rel = g3n_check_tolerance(c, "decode_step_logits_rel_l2", 3e-3);
    const double steps_abs = g3n_check_tolerance(c, "decode_step_logits_max_abs", 3e-2);
    const double hidden_rel = g3n_check_tolerance(c, "prefill_hidden_rel_l2", 3e-3);
    const double hidden_abs = g3n_check_tolerance(c, "prefill_hidden_max_abs", -1.0);

    /* 1. teacher-forced logits over input_ids */
    g3n_text_session_params params = g3n_text_session_default_params(m);
    params.max_positions = total + 1;
    logits = malloc((size_t)(total * V) * sizeof(float));
    if (!logits) {
        g3n_error_set(err, "out of memory for logits [%lld, %lld]", (long long)total, (long long)V);
        goto done;
    }
    if (g3n_text_session_create(&session, m, &params, err) != G3N_OK ||
        g3n_text_session_forward_ids(session, input_ids, total, logits, 1, err) != G3N_OK)
        goto done;
    g3n_check_compare_f32(c, "logits", logits, total * V, &golden_logits, logits_rel, logits_abs);

    /* 2. cached greedy decode from the prompt, with the layer outputs of the prefill */
    g3n_text_session_reset(session);
    char name[64];
    snprintf(name, sizeof(name), "prefill_hidden.%d", 0);
    int has_hidden = g3n_safetensors_find(c->golden, name) != NULL;
    if (has_hidden) {
        hidden.num_layers = m->num_layers;
        hidden.num_streams = m->altup_inputs;
        hidden.prompt_len = prompt_len;
        hidden.hidden = m->hidden_size;
        hidden.data = calloc((size_t)((m->num_layers + 1) * m->altup_inputs * prompt_len * m->hidden_size),
                             sizeof(float));
        if (!hidden.data) {
            g3n_error_set(err, "out of memory for the layer outputs");
            goto done;
        }
        g3n_text_session_set_layer_hook(session, capture_hidden, &hidden);
    }
    step_logits = malloc((size_t)(steps * V) * sizeof(float));
    generated = malloc((size_t)steps * sizeof(int32_t));
    if (!step_logits || !generated) {
        g3n_error_set(err, "out of memory for the decode steps");
        goto done;
    }
    decode_capture capture = {step_logits, steps};
    g3n_generate_params gen = g3n_generate_default_params(m);
    gen.max_new_tokens = steps;
    gen.num_eos_ids = 0; /* the reference generated with eos_token_id=None */
    gen.allowed_vocab = m->config->vocab_size_per_layer_input;
    gen.on_logits = capture_logits;
    gen.user = &capture;
    int64_t produced = 0;
    g3n_generate_stats stats;
    if (g3n_text_generate(session, prompt_ids, prompt_len, &gen, generated, &produced, &stats, err) != G3N_OK)
        goto done;
    g3n_text_session_set_layer_hook(session, NULL, NULL);
    g3n_check_compare_f32(c, "decode_step_logits", step_logits, produced * V, &golden_steps, steps_rel, steps_abs);

    int64_t expected_count = total - prompt_len;
    int tokens_ok = produced == expected_count;
    int64_t first_mismatch = -1;
    for (int64_t i = 0; tokens_ok && i < expected_count; i++)
        if (generated[i] != input_ids[prompt_len + i]) {
            tokens_ok = 0;
            first_mismatch = i;
        }
    if (first_mismatch >= 0)
        g3n_check_record(c, "tokens", 0, "%lld greedy tokens, first mismatch at step %lld: %d vs %d",
                         (long long)produced, (long long)first_mismatch, generated[first_mismatch],
                         input_ids[prompt_len + first_mismatch]);
    else
        g3n_check_record(c, "tokens", tokens_ok, "%lld of %lld greedy tokens identical", (long long)produced,
                         (long long)expected_count);

    if (has_hidden) {
        const int64_t per_layer = (int64_t)m->altup_inputs * prompt_len * m->hidden_size;
        for (int l = 0; l <= m->num_layers; l++) {
            g3n_tensor golden_hidden;
            snprintf(name, sizeof(name), "prefill_hidden.%d", l);
            if (g3n_check_golden(c, name, &golden_hidden, err) != G3N_OK)
                goto done;
            g3n_check_compare_f32(c, name, hidden.data + l * per_layer, per_layer, &golden_hidden, hidden_rel,
                                  hidden_abs);
        }
    }
    g3n_text_session_memory mem = g3n_text_session_memory_usage(session);
    fprintf(c->out, "# session: kv cache %.1f KiB, scratch %.1f KiB; prefill %lld tokens %.3f s, decode %lld "
                    "forwards %.3f s\n",
            mem.kv_cache_bytes / 1024.0, mem.scratch_bytes / 1024.0, (long long)stats.prompt_tokens,
            stats.prefill_seconds, (long long)stats.decode_forwards, stats.decode_seconds);
    status = G3N_OK;

done:
    g3n_text_session_free(session);
    g3n_text_model_free(&sub);
    g3n_text_model_free(&model);
    g3n_submodel_free(&submodel);
    g3n_config_free(&own_config);
    g3n_weights_close(weights);
    free(input_ids);
    free(prompt_ids);
    free(generated);
    free(logits);
    free(step_logits);
    free(hidden.data);
    return status;
}
