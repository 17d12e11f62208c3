/* g3n check CASE_DIR... : run fixture cases through g3n and compare with the goldens. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "audio_check.h"
#include "check_kinds.h"
#include "commands.h"
#include "decoder_check.h"
#include "matmul.h"
#include "multimodal_check.h"
#include "ops.h"
#include "option_groups.h"
#include "vision_check.h"

typedef struct check_kind {
    const char *name;
    int (*run)(g3n_check_case *c, g3n_error *err);
} check_kind;

static const check_kind kinds[] = {
    {"synth", g3n_check_kind_synth},
    {"tokenizer", g3n_check_kind_tokenizer},
    {"text", g3n_check_kind_text},
    {"audio", g3n_check_kind_audio},
    {"image-preprocess", g3n_check_kind_image_preprocess},
    {"vision", g3n_check_kind_vision},
    {"multimodal", g3n_check_kind_multimodal},
};

typedef struct check_args {
    const char *fixtures, *tokenizer, *submodel, *model_dir;
    int threads;
    g3n_option_list cases;
} check_args;

/* Parses the command line into args (args->cases.items: argc entries, the
 * caller's); -1 to go on, else the exit code. */
static int parse_args(check_args *args, int argc, char **argv)
{
    const g3n_option options[] = {
        G3N_STRING("fixtures", &args->fixtures, "DIR",
                   "folder that holds the cases, for references like\n"
                   "'image-preprocess/golden.safetensors: pixel_values_png' (default: CASE_DIR/..)"),
        G3N_OPTION_TOKENIZER(&args->tokenizer, "tokenizer.json for cases that need one"),
        G3N_OPTION_THREADS(&args->threads),
        G3N_OPTION_SUBMODEL(&args->submodel,
                            "text cases: run this MatFormer sub-model of the case's model (a preset, JSON or\n"
                            "@FILE; see g3n slice --help); default: the case.json's \"submodel\", if any"),
        G3N_OPTION_MODEL(&args->model_dir,
                         "text cases: the weights and config of this checkpoint folder instead of the\n"
                         "case's synthetic ones (e.g. g3n slice's output; no case sub-model applied)"),
    };
    const g3n_command_spec spec = {
        .name = "g3n check",
        .usage = "g3n check CASE_DIR... [--fixtures DIR] [--tokenizer FILE] [--threads N] [--submodel SPEC]\n"
                 "                 [--model DIR]",
        .about = "Runs each fixture case (a folder with case.json, config.json, golden.safetensors) through g3n's own\n"
                 "code and compares with the reference goldens within the case's tolerances. Prints one line per\n"
                 "compared tensor and ends with 'N passed, M failed'; exits 0 only if all pass.\n",
        .footer = "kinds: synth tokenizer text audio image-preprocess vision multimodal\n",
        .positionals = &args->cases,
        .help_column = 20,
    };
    int rc = g3n_options_main(&spec, options, G3N_OPTION_COUNT(options), argc, argv);
    if (rc < 0 && args->cases.count == 0)
        return g3n_options_usage_error(&spec, "give at least one CASE_DIR");
    return rc;
}

/* Runs one case; adds its counts to *passed and *failed. */
static void check_one(const check_args *args, const char *case_dir, int *passed, int *failed)
{
    g3n_check_case c;
    g3n_error err = {{0}};
    double start = g3n_now_seconds();
    if (g3n_check_case_open(&c, case_dir, args->fixtures, &err) != G3N_OK) {
        fprintf(stderr, "g3n check: error: %s\n", err.message);
        (*failed)++;
        return;
    }
    c.tokenizer_path = args->tokenizer;
    c.submodel_spec = args->submodel;
    c.model_dir = args->model_dir;
    c.threads = args->threads;
    const check_kind *kind = NULL;
    for (size_t k = 0; k < sizeof(kinds) / sizeof(kinds[0]); k++)
        if (strcmp(kinds[k].name, c.kind) == 0)
            kind = &kinds[k];
    printf("== %s (kind %s)\n", case_dir, c.kind);
    fflush(stdout);
    if (!kind) {
        fprintf(stderr, "g3n check: error: %s: unknown kind '%s'\n", case_dir, c.kind);
        (*failed)++;
    } else if (kind->run(&c, &err) != G3N_OK) {
        fprintf(stderr, "g3n check: error: %s: %s\n", case_dir, err.message);
        c.failed++;
    } else if (c.passed + c.failed == 0) {
        fprintf(stderr, "g3n check: error: %s: nothing was compared\n", case_dir);
        c.failed++;
    }
    printf("-- %s: %d passed, %d failed (%.2f s)\n", case_dir, c.passed, c.failed, g3n_now_seconds() - start);
    *passed += c.passed;
    *failed += c.failed;
    g3n_check_case_close(&c);
}

int g3n_command_check(int argc, char **argv)
{
    check_args args = {0};
    args.cases.items = calloc((size_t)argc, sizeof(char *));
    args.cases.capacity = argc;
    if (!args.cases.items)
        return 1;
    int rc = parse_args(&args, argc, argv);
    if (rc >= 0) {
        free(args.cases.items);
        return rc;
    }
    g3n_set_threads(args.threads);
    int passed = 0, failed = 0;
    for (int i = 0; i < args.cases.count; i++)
        check_one(&args, args.cases.items[i], &passed, &failed);
    free(args.cases.items);
    printf("%d passed, %d failed\n", passed, failed);
    return failed == 0 ? 0 : 1;
}
