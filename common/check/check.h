/* check.h - `g3n check`: run a fixture case through the project's own code and
 * compare with the reference's golden tensors.
 *
 * A case folder holds case.json (kind, seed, tolerance, tensors), an optional
 * config.json and golden.safetensors. Each kind has a runner
 * (g3n_check_kind_<kind>, see check_kinds.h) that computes its outputs and calls
 * the comparison helpers below; each helper prints one line
 *   `name rel_l2=… max_abs=… PASS|FAIL`
 * and counts it. `g3n check` ends with `N passed, M failed`.
 */
#ifndef G3N_CHECK_H
#define G3N_CHECK_H

#include <stdint.h>
#include <stdio.h>

#include "config.h"
#include "safetensors.h"
#include "status.h"
#include "tensor.h"

struct cJSON;

typedef struct g3n_check_case {
    char case_dir[1024];
    char fixtures_dir[1024];       /* resolves "other-case/golden.safetensors: name" */
    const char *tokenizer_path;    /* --tokenizer, or NULL */
    const char *submodel_spec;     /* --submodel (text cases: run that MatFormer sub-model), or NULL */
    const char *model_dir;         /* --model (text cases: weights and config from this checkpoint, not synth) */
    int threads;
    struct cJSON *case_json;       /* owned */
    const char *kind;              /* borrowed from case_json */
    g3n_safetensors_file *golden;  /* NULL if the case has no golden.safetensors */
    g3n_model_config config;       /* loaded when the case has a non-empty config.json */
    int has_config;
    int passed;
    int failed;
    FILE *out;                     /* where lines go (stdout) */
} g3n_check_case;

int g3n_check_case_open(g3n_check_case *c, const char *case_dir, const char *fixtures_dir, g3n_error *err);
void g3n_check_case_close(g3n_check_case *c);

/* Path of a file inside the case folder (into buffer). */
const char *g3n_check_case_file(const g3n_check_case *c, const char *file_name, char *buffer, size_t size);
/* The case's seed (case.json "seed"); error if absent. */
int g3n_check_seed(const g3n_check_case *c, uint64_t *seed, g3n_error *err);
/* case.json "tolerance"[key] as a number; fallback when absent. */
double g3n_check_tolerance(const g3n_check_case *c, const char *key, double fallback);
/* A borrowed view of a golden tensor; error naming it if absent. */
int g3n_check_golden(const g3n_check_case *c, const char *name, g3n_tensor *view, g3n_error *err);
/* Resolves a reference "case/file.safetensors: tensor" (relative to fixtures_dir)
 * into an owned contiguous f32 tensor. */
int g3n_check_resolve_reference(const g3n_check_case *c, const char *reference, g3n_tensor *out, g3n_error *err);

/* Compares count f32 values with golden (converted to f32). Passes when
 * rel_l2 <= rel_l2_limit (skipped if < 0) and max_abs <= max_abs_limit
 * (skipped if < 0), and the element counts match. Prints one line, counts it. */
int g3n_check_compare_f32(g3n_check_case *c, const char *name, const float *actual, int64_t count,
                          const g3n_tensor *golden, double rel_l2_limit, double max_abs_limit);
/* Like compare_f32 but reports mean_abs and max_abs (image tolerances). */
int g3n_check_compare_mean_abs(g3n_check_case *c, const char *name, const float *actual, int64_t count,
                               const g3n_tensor *golden, double mean_abs_limit, double max_abs_limit);
/* Exact comparison of integers (golden may be I32, I64 or U8). */
int g3n_check_compare_exact(g3n_check_case *c, const char *name, const int64_t *actual, int64_t count,
                            const g3n_tensor *golden);
/* Records a named result computed elsewhere (detail goes on the line). */
void g3n_check_record(g3n_check_case *c, const char *name, int pass, const char *detail_format, ...)
    G3N_PRINTF(4, 5);

/* rel_l2 = ||a - b|| / ||b||, max_abs, mean_abs over count values (double accumulation). */
void g3n_compare_stats(const float *actual, const float *expected, int64_t count, double *rel_l2, double *max_abs,
                       double *mean_abs);

#endif
