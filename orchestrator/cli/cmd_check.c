/* g3n check CASE_DIR... : run fixture cases through g3n and compare with the goldens. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "check_kinds.h"
#include "commands.h"
#include "matmul.h"
#include "ops.h"

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

static void usage(FILE *out)
{
    fprintf(out,
            "usage: g3n check CASE_DIR... [--fixtures DIR] [--tokenizer FILE] [--threads N] [--submodel SPEC]\n"
            "                 [--model DIR]\n"
            "\n"
            "Runs each fixture case (a folder with case.json, config.json, golden.safetensors) through g3n's own\n"
            "code and compares with the reference goldens within the case's tolerances. Prints one line per\n"
            "compared tensor and ends with 'N passed, M failed'; exits 0 only if all pass.\n"
            "\n"
            "  --fixtures DIR    folder that holds the cases, for references like\n"
            "                    'image-preprocess/golden.safetensors: pixel_values_png' (default: CASE_DIR/..)\n"
            "  --tokenizer FILE  tokenizer.json for cases that need one\n"
            "  --threads N       OpenMP threads (default: all cores)\n"
            "  --submodel SPEC   text cases: run this MatFormer sub-model of the case's model (a preset, JSON or\n"
            "                    @FILE; see g3n slice --help); default: the case.json's \"submodel\", if any\n"
            "  --model DIR       text cases: the weights and config of this checkpoint folder instead of the\n"
            "                    case's synthetic ones (e.g. g3n slice's output; no case sub-model applied)\n"
            "kinds: synth tokenizer text audio image-preprocess vision multimodal\n");
}

int g3n_command_check(int argc, char **argv)
{
    if (g3n_wants_help(argc, argv)) {
        usage(stdout);
        return 0;
    }
    const char *fixtures = NULL, *tokenizer = NULL, *submodel = NULL, *model_dir = NULL;
    int threads = 0;
    const char **cases = calloc((size_t)argc, sizeof(char *));
    int case_count = 0;
    if (!cases)
        return 1;
    for (int i = 1; i < argc; i++) {
        if (strcmp(argv[i], "--fixtures") == 0 && i + 1 < argc)
            fixtures = argv[++i];
        else if (strcmp(argv[i], "--tokenizer") == 0 && i + 1 < argc)
            tokenizer = argv[++i];
        else if (strcmp(argv[i], "--threads") == 0 && i + 1 < argc)
            threads = atoi(argv[++i]);
        else if (strcmp(argv[i], "--submodel") == 0 && i + 1 < argc)
            submodel = argv[++i];
        else if (strcmp(argv[i], "--model") == 0 && i + 1 < argc)
            model_dir = argv[++i];
        else if (argv[i][0] == '-') {
            fprintf(stderr, "g3n check: error: unknown option '%s'\n", argv[i]);
            usage(stderr);
            free(cases);
            return 2;
        } else
            cases[case_count++] = argv[i];
    }
    if (case_count == 0) {
        usage(stderr);
        free(cases);
        return 2;
    }
    g3n_set_threads(threads);
    int passed = 0, failed = 0;
    for (int i = 0; i < case_count; i++) {
        g3n_check_case c;
        g3n_error err = {{0}};
        double start = g3n_now_seconds();
        if (g3n_check_case_open(&c, cases[i], fixtures, &err) != G3N_OK) {
            fprintf(stderr, "g3n check: error: %s\n", err.message);
            failed++;
            continue;
        }
        c.tokenizer_path = tokenizer;
        c.submodel_spec = submodel;
        c.model_dir = model_dir;
        c.threads = threads;
        const check_kind *kind = NULL;
        for (size_t k = 0; k < sizeof(kinds) / sizeof(kinds[0]); k++)
            if (strcmp(kinds[k].name, c.kind) == 0)
                kind = &kinds[k];
        printf("== %s (kind %s)\n", cases[i], c.kind);
        fflush(stdout);
        if (!kind) {
            fprintf(stderr, "g3n check: error: %s: unknown kind '%s'\n", cases[i], c.kind);
            failed++;
        } else if (kind->run(&c, &err) != G3N_OK) {
            fprintf(stderr, "g3n check: error: %s: %s\n", cases[i], err.message);
            c.failed++;
        } else if (c.passed + c.failed == 0) {
            fprintf(stderr, "g3n check: error: %s: nothing was compared\n", cases[i]);
            c.failed++;
        }
        printf("-- %s: %d passed, %d failed (%.2f s)\n", cases[i], c.passed, c.failed, g3n_now_seconds() - start);
        passed += c.passed;
        failed += c.failed;
        g3n_check_case_close(&c);
    }
    free(cases);
    printf("%d passed, %d failed\n", passed, failed);
    return failed == 0 ? 0 : 1;
}
