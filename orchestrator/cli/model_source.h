/* model_source.h - the model a `g3n` command loads, given as exactly one of
 * --model DIR (a checkpoint folder), --synth CONFIG:SEED (synthetic weights
 * for a config.json, needs --tokenizer) or --demo (the tiny synthetic demo
 * model of the repository or install folder), and where its config, tokenizer
 * and weights come from: what `g3n run`, `g3n serve`, `g3n video` and
 * `g3n live` share. The steps are separate functions so that each command
 * keeps its own order of checks. Errors go to err (G3N_ERR). */
#ifndef G3N_MODEL_SOURCE_H
#define G3N_MODEL_SOURCE_H

#include <limits.h>
#include <stdint.h>

#include "status.h"
#include "weights.h"

typedef struct g3n_model_source {
    /* the options as given; NULL or 0 where not given */
    const char *model_dir, *synth_spec, *tokenizer_path;
    int demo;
    /* filled in by the functions below */
    char home[PATH_MAX];                   /* --demo: the folder holding scripts/demo-config.json */
    char config_path[PATH_MAX + 64];       /* the config.json (or checkpoint folder) to load */
    char default_tokenizer[PATH_MAX + 64]; /* tokenizer_path points here when --tokenizer was not given */
    uint64_t synth_seed;                   /* the synthetic weights' seed: --synth's SEED, 1 for --demo */
} g3n_model_source;

/* G3N_OK if exactly one of --model, --synth, --demo is given. */
int g3n_model_source_check(const g3n_model_source *source, g3n_error *err);

/* With --demo (else nothing to do): finds the home folder ($G3N_HOME, the
 * working folder, or up from the executable) and takes the demo config and,
 * without --tokenizer, the demo tokenizer from it. */
int g3n_model_source_find_demo(g3n_model_source *source, g3n_error *err);

/* Without a tokenizer yet: DIR/tokenizer.json for --model DIR; an error for
 * --synth (it needs --tokenizer). */
int g3n_model_source_default_tokenizer(g3n_model_source *source, g3n_error *err);

/* Sets config_path (--model's DIR or --synth's CONFIG; --demo's is set by
 * find_demo) and synth_seed; an error for a --synth that is not CONFIG:SEED. */
int g3n_model_source_locate_config(g3n_model_source *source, g3n_error *err);

/* Opens the weights (after locate_config): the checkpoint of --model DIR,
 * else synthetic bf16 weights of synth_seed. */
int g3n_model_source_open_weights(const g3n_model_source *source, g3n_weights **weights, g3n_error *err);

#endif
