/* model_source.c - --model DIR | --synth CONFIG:SEED | --demo, and the
 * tokenizer, config and weights they name (model_source.h). */
#include "model_source.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

int g3n_model_source_check(const g3n_model_source *s, g3n_error *err)
{
    if ((s->model_dir != NULL) + (s->synth_spec != NULL) + (s->demo != 0) != 1)
        return g3n_error_set(err, "give one of --model, --synth, --demo (see --help)");
    return G3N_OK;
}

/* The repository (or install) folder holding scripts/demo-config.json. */
static int find_home(char *out, size_t size)
{
    const char *env = getenv("G3N_HOME");
    char exe[PATH_MAX];
    ssize_t n = readlink("/proc/self/exe", exe, sizeof(exe) - 1);
    exe[n > 0 ? n : 0] = '\0';
    char *slash = strrchr(exe, '/');
    if (slash)
        *slash = '\0';
    char candidates[5][PATH_MAX + 32];
    int k = 0;
    if (env)
        snprintf(candidates[k++], sizeof candidates[0], "%s", env);
    snprintf(candidates[k++], sizeof candidates[0], ".");
    snprintf(candidates[k++], sizeof candidates[0], "%s/../..", exe);
    snprintf(candidates[k++], sizeof candidates[0], "%s/../../..", exe);
    snprintf(candidates[k++], sizeof candidates[0], "%s/../share/g3n", exe);
    for (int i = 0; i < k; i++) {
        char probe[PATH_MAX + 96];
        snprintf(probe, sizeof(probe), "%s/scripts/demo-config.json", candidates[i]);
        if (access(probe, R_OK) == 0) {
            snprintf(out, size, "%s", candidates[i]);
            return 0;
        }
    }
    return -1;
}

int g3n_model_source_find_demo(g3n_model_source *s, g3n_error *err)
{
    if (!s->demo)
        return G3N_OK;
    if (find_home(s->home, sizeof s->home) != 0)
        return g3n_error_set(err, "--demo needs scripts/demo-config.json: run from the repository or set G3N_HOME");
    snprintf(s->config_path, sizeof s->config_path, "%s/scripts/demo-config.json", s->home);
    if (!s->tokenizer_path) {
        snprintf(s->default_tokenizer, sizeof s->default_tokenizer, "%s/tests/fixtures/tokenizer/tokenizer.json",
                 s->home);
        s->tokenizer_path = s->default_tokenizer;
    }
    return G3N_OK;
}

int g3n_model_source_default_tokenizer(g3n_model_source *s, g3n_error *err)
{
    if (s->tokenizer_path)
        return G3N_OK;
    if (!s->model_dir)
        return g3n_error_set(err, "--synth needs --tokenizer");
    snprintf(s->default_tokenizer, sizeof s->default_tokenizer, "%s/tokenizer.json", s->model_dir);
    s->tokenizer_path = s->default_tokenizer;
    return G3N_OK;
}

int g3n_model_source_locate_config(g3n_model_source *s, g3n_error *err)
{
    s->synth_seed = 1;
    if (s->synth_spec)
        return g3n_parse_synth_spec(s->synth_spec, s->config_path, sizeof s->config_path, &s->synth_seed, err);
    if (s->model_dir)
        snprintf(s->config_path, sizeof s->config_path, "%s", s->model_dir);
    return G3N_OK;
}

int g3n_model_source_open_weights(const g3n_model_source *s, g3n_weights **weights, g3n_error *err)
{
    if (s->model_dir)
        return g3n_weights_open_checkpoint(weights, s->model_dir, err);
    return g3n_weights_open_synth(weights, s->synth_seed, G3N_DTYPE_BF16, err);
}
