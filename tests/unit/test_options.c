/* options.h: a table of options parsed into fields, with clear errors for
 * hostile input, and --help generated from the same table. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>

#include <cmocka.h>

#include "option_groups.h"
#include "options.h"
#include "test_util.h"

static const char *const dtypes[] = {"bf16", "f32", NULL};

/* The fields of a made-up command and its table. */
typedef struct fields {
    const char *model, *out;
    int threads, verbose, dtype, temperature_given;
    int64_t context;
    uint64_t seed;
    double temperature;
    g3n_weight_format weights;
    const char *images[2];
    g3n_option_list image_list;
    const char *execs[4];
    g3n_option_list exec_list;
    const char *files[3];
    g3n_option_list file_list;
    g3n_security_flags security;
} fields;


static g3n_options_result parse(fields *f, int argc, char **argv, g3n_error *err)
{
    memset(f, 0, sizeof(*f));
    f->image_list = (g3n_option_list){f->images, 2, 0};
    f->file_list = (g3n_option_list){f->files, 3, 0};
    f->exec_list = (g3n_option_list){f->execs, 4, 0};
    g3n_option options[] = {
        G3N_OPTION_MODEL_DEFAULT(&f->model),
        G3N_OPTION_THREADS(&f->threads),
        G3N_FLAG("verbose", &f->verbose, "say more"),
        G3N_ENUM("dtype", &f->dtype, dtypes, "stored dtype"),
        G3N_INT64("context", &f->context, 1, 1 << 20, "N", "positions"),
        G3N_UINT64("seed", &f->seed, 0, 0, "N", "seed"),
        G3N_DOUBLE("temperature", &f->temperature, 0, 100, "T", "sampling temperature\nsecond line"),
        G3N_OPTION_WEIGHTS(&f->weights, NULL, "weight format"),
        G3N_LIST("image", &f->image_list, "FILE", "an image (repeatable)"),
        G3N_PAIR("exec-after", &f->exec_list, "N CMD", "run CMD after step N (twice at most)"),
        G3N_SECTION("Security:"),
        G3N_OPTIONS_SECURITY_BIND(&f->security),
    };
    options[6].given = &f->temperature_given;
    g3n_command_spec spec = {.name = "g3n test", .usage = "g3n test [options] FILE...", .positionals = &f->file_list};
    return g3n_options_parse(&spec, options, G3N_OPTION_COUNT(options), argc, argv, err);
}

/* Parses the words of line (split at spaces; "''" is an empty argument). */
static g3n_options_result parse_line(fields *f, const char *line, g3n_error *err)
{
    static char buffer[512];
    char *argv[32];
    int argc = 0;
    snprintf(buffer, sizeof(buffer), "test %s", line);
    for (char *word = strtok(buffer, " "); word && argc < 31; word = strtok(NULL, " "))
        argv[argc++] = strcmp(word, "''") == 0 ? word + 2 : word;
    argv[argc] = NULL;
    memset(err, 0, sizeof(*err));
    return parse(f, argc, argv, err);
}

static void expect_error(const char *line, const char *message)
{
    fields f;
    g3n_error err;
    assert_int_equal(parse_line(&f, line, &err), G3N_OPTIONS_ERROR);
    if (strcmp(err.message, message) != 0)
        fail_msg("'%s': got '%s', want '%s'", line, err.message, message);
}

static void test_values_reach_their_fields(void **state)
{
    (void)state;
    fields f;
    g3n_error err;
    assert_int_equal(parse_line(&f, "--model m a --threads 4 --verbose --dtype=f32 --context 4096 b --seed "
                                    "18446744073709551615 --temperature -0 --weights q4 --image x --image=y --insecure",
                                &err),
                     G3N_OPTIONS_OK);
    assert_string_equal(f.model, "m");
    assert_int_equal(f.threads, 4);
    assert_int_equal(f.verbose, 1);
    assert_int_equal(f.dtype, 1);
    assert_int_equal(f.context, 4096);
    assert_true(f.seed == UINT64_MAX);
    assert_true(f.temperature == 0.0 && f.temperature_given);
    assert_int_equal(f.weights, G3N_WEIGHTS_Q4);
    assert_int_equal(f.image_list.count, 2);
    assert_string_equal(f.images[1], "y");
    assert_int_equal(f.security.insecure, 1);
    assert_int_equal(f.file_list.count, 2);
    assert_string_equal(f.files[0], "a");
    assert_string_equal(f.files[1], "b");
    assert_int_equal(parse_line(&f, "-5 -", &err), G3N_OPTIONS_OK); /* a command taking words takes these too */
    assert_string_equal(f.files[0], "-5");
    assert_string_equal(f.files[1], "-");
    /* defaults stay where nothing was given; "--" ends the options */
    assert_int_equal(parse_line(&f, "-- --threads -", &err), G3N_OPTIONS_OK);
    assert_int_equal(f.threads, 0);
    assert_int_equal(f.temperature_given, 0);
    assert_int_equal(f.file_list.count, 2);
    assert_string_equal(f.files[0], "--threads");
    assert_string_equal(f.files[1], "-");
    /* a pair option takes two values each time */
    assert_int_equal(parse_line(&f, "--exec-after 2 a --exec-after=3 b", &err), G3N_OPTIONS_OK);
    assert_int_equal(f.exec_list.count, 4);
    assert_string_equal(f.execs[0], "2");
    assert_string_equal(f.execs[1], "a");
    assert_string_equal(f.execs[2], "3");
    assert_string_equal(f.execs[3], "b");
}

static void test_help_wins_anywhere_before_the_end_of_options(void **state)
{
    (void)state;
    fields f;
    g3n_error err;
    assert_int_equal(parse_line(&f, "--threads x --help", &err), G3N_OPTIONS_HELP);
    assert_int_equal(parse_line(&f, "-h", &err), G3N_OPTIONS_HELP);
    assert_int_equal(parse_line(&f, "-- -h", &err), G3N_OPTIONS_OK);
}

static void test_bad_numbers_say_what_was_expected(void **state)
{
    (void)state;
    expect_error("--threads x", "--threads: expected an integer from 0 to 1024, got 'x'");
    expect_error("--threads 1025", "--threads: expected an integer from 0 to 1024, got '1025'");
    expect_error("--threads -1", "--threads: expected an integer from 0 to 1024, got '-1'");
    expect_error("--threads 4x", "--threads: expected an integer from 0 to 1024, got '4x'");
    expect_error("--threads 99999999999999999999999", "--threads: expected an integer from 0 to 1024, got "
                                                      "'99999999999999999999999'");
    expect_error("--context 0", "--context: expected an integer from 1 to 1048576, got '0'");
    expect_error("--seed -1", "--seed: expected a non-negative integer, got '-1'");
    expect_error("--seed 18446744073709551616", "--seed: expected a non-negative integer, got '18446744073709551616'");
    expect_error("--temperature nan", "--temperature: expected a number from 0 to 100, got 'nan'");
    expect_error("--temperature 1e999", "--temperature: expected a number from 0 to 100, got '1e999'");
    expect_error("--temperature 101", "--temperature: expected a number from 0 to 100, got '101'");
    expect_error("--dtype f16", "--dtype: expected one of bf16, f32, got 'f16'");
    expect_error("--weights q2", "--weights: unknown format 'q2' (want f32, bf16, q8 or q4)");
}

static void test_hostile_shapes_of_the_command_line(void **state)
{
    (void)state;
    expect_error("--threads ''", "--threads: the value is empty");
    expect_error("--model=", "--model: the value is empty");
    expect_error("--model ''", "--model: the value is empty");
    expect_error("--threads", "--threads needs a value");
    expect_error("a --model", "--model needs a value");
    expect_error("--model --threads 4", "--model needs a value (got the option '--threads')");
    expect_error("--threads 2 --threads 3", "--threads is given twice");
    expect_error("--verbose --verbose", "--verbose is given twice");
    expect_error("--verbose=1", "--verbose takes no value (got '1')");
    expect_error("--image a --image b --image c", "--image: at most 2 may be given");
    expect_error("--exec-after 2", "--exec-after needs two values (N CMD)");
    expect_error("--exec-after 1 a --exec-after 2 b --exec-after 3 c", "--exec-after: at most 2 may be given");
    expect_error("--exec-after '' a", "--exec-after: a value is empty");
    expect_error("a b c d", "unexpected argument 'd' (at most 3 arguments)");
}

static void test_unknown_options_suggest_the_closest(void **state)
{
    (void)state;
    expect_error("--treads 4", "unknown option '--treads' (did you mean --threads?)");
    expect_error("--thread=4", "unknown option '--thread=4' (did you mean --threads?)");
    expect_error("--tempreature 1", "unknown option '--tempreature' (did you mean --temperature?)");
    expect_error("--temp 1", "unknown option '--temp' (did you mean --temperature?)");
    expect_error("--insecur", "unknown option '--insecur' (did you mean --insecure?)");
    expect_error("--frobnicate", "unknown option '--frobnicate'");
    expect_error("--x", "unknown option '--x'");
}

static void test_required_options_and_no_positionals(void **state)
{
    (void)state;
    const char *out = NULL;
    g3n_option options[] = {G3N_STRING("out", &out, "DIR", "where")};
    options[0].required = 1;
    g3n_command_spec spec = {.name = "g3n t", .usage = "g3n t --out DIR"};
    g3n_error err = {{0}};
    char *missing[] = {"t", NULL};
    assert_int_equal(g3n_options_parse(&spec, options, 1, 1, missing, &err), G3N_OPTIONS_ERROR);
    assert_string_equal(err.message, "--out is required");
    char *stray[] = {"t", "--out", "d", "file", NULL};
    assert_int_equal(g3n_options_parse(&spec, options, 1, 4, stray, &err), G3N_OPTIONS_ERROR);
    assert_string_equal(err.message, "unexpected argument 'file'");
    assert_int_equal(g3n_options_parse(&spec, options, 1, 3, stray, &err), G3N_OPTIONS_OK);
    assert_string_equal(out, "d");
    char *dash[] = {"t", "-thread", NULL};
    assert_int_equal(g3n_options_parse(&spec, options, 1, 2, dash, &err), G3N_OPTIONS_ERROR);
    assert_string_equal(err.message, "unknown option '-thread'");
    char *bare[] = {"t", "-", NULL};
    assert_int_equal(g3n_options_parse(&spec, options, 1, 2, bare, &err), G3N_OPTIONS_ERROR);
    assert_string_equal(err.message, "unexpected argument '-'");
}

static void test_help_comes_from_the_table(void **state)
{
    (void)state;
    const char *model = NULL;
    int threads = 0, dtype = 0, quiet = 0;
    g3n_option options[] = {
        G3N_OPTION_MODEL(&model, "the checkpoint"),
        G3N_OPTION_THREADS(&threads),
        G3N_ENUM("dtype", &dtype, dtypes, "stored dtype\n(default bf16)"),
        G3N_SECTION("More:"),
        G3N_FLAG("a-very-long-option-name", &quiet, "wraps"),
    };
    g3n_command_spec spec = {.name = "g3n t", .usage = "g3n t [options]", .about = "Does t.\n", .footer = "end\n",
                             .help_column = 20};
    char *text = NULL;
    size_t size = 0;
    FILE *out = open_memstream(&text, &size);
    assert_non_null(out);
    g3n_options_print_help(out, &spec, options, G3N_OPTION_COUNT(options));
    fclose(out);
    assert_string_equal(text, "usage: g3n t [options]\n"
                              "\n"
                              "Does t.\n"
                              "\n"
                              "  --model DIR       the checkpoint\n"
                              "  --threads N       OpenMP threads (default: all cores)\n"
                              "  --dtype bf16|f32  stored dtype\n"
                              "                    (default bf16)\n"
                              "More:\n"
                              "  --a-very-long-option-name\n"
                              "                    wraps\n"
                              "end\n");
    free(text);
}

/* Runs `PROGRAM ARGS` with stdout and stderr into one buffer (the caller frees
 * it); returns the exit code. */
static int run_program(const char *program, const char *args, char **output)
{
    char command[4096];
    snprintf(command, sizeof command, "%s %s 2>&1", program, args);
    FILE *pipe = popen(command, "r");
    assert_non_null(pipe);
    size_t size = 0, capacity = 1 << 16;
    char *text = malloc(capacity);
    assert_non_null(text);
    size_t got;
    while ((got = fread(text + size, 1, capacity - 1 - size, pipe)) > 0)
        size += got;
    text[size] = '\0';
    int status = pclose(pipe);
    *output = text;
    return WIFEXITED(status) ? WEXITSTATUS(status) : -1;
}

static void expect_g3n(const char *args, int exit_code, const char *text)
{
    char *output = NULL;
    int rc = run_program(g3n_test_binary(), args, &output);
    if (rc != exit_code || !strstr(output, text))
        fail_msg("g3n %s: exit %d (want %d), output:\n%s\n(want it to hold: %s)", args, rc, exit_code, output, text);
    free(output);
}

/* Runs the daemon binary DAEMON (built beside orchestrator/g3n's folder) with
 * ARGS: its exit code must be exit_code, its output must hold text and, when
 * not NULL, must not hold absent. */
static void expect_daemon(const char *daemon, const char *args, int exit_code, const char *text, const char *absent)
{
    char binary[1200];
    snprintf(binary, sizeof binary, "%s", g3n_test_binary());
    for (int up = 0; up < 2; up++) {
        char *slash = strrchr(binary, '/');
        if (slash)
            *slash = '\0';
        else
            snprintf(binary, sizeof binary, ".");
    }
    char program[1400];
    snprintf(program, sizeof program, "%s/%s", binary, daemon);
    char *output = NULL;
    int rc = run_program(program, args, &output);
    if (rc != exit_code || !strstr(output, text) || (absent && strstr(output, absent)))
        fail_msg("%s %s: exit %d (want %d), output:\n%s\n(want it to hold: %s; not: %s)", daemon, args, rc, exit_code,
                 output, text, absent ? absent : "-");
    free(output);
}

/* Every command moved onto the table: --help from it, and values that the
 * hand-written loops read with atoi/strtoull as 0 (synth --seed x wrote seed
 * 0; generate --max-new-tokens x generated nothing) refused with the option. */
static void test_commands_parse_with_the_table(void **state)
{
    (void)state;
    const char *commands[] = {"check",  "check-pipeline", "synth",        "slice",        "generate",
                              "tokenize", "detokenize",   "encode-audio", "encode-image", "keygen",
                              "bench matmul", "bench text", "bench vision", "bench pipeline", "bench chat",
                              "serve", "video", "live", "run"};
    for (size_t i = 0; i < sizeof commands / sizeof commands[0]; i++) {
        char args[128], usage[128];
        snprintf(args, sizeof args, "%s --help", commands[i]);
        snprintf(usage, sizeof usage, "usage: g3n %s", commands[i]);
        expect_g3n(args, 0, usage);
    }
    expect_g3n("synth --config c.json --seed x --out /nonexistent/x", 2,
               "g3n synth: error: --seed: expected a non-negative integer, got 'x'");
    expect_g3n("generate --synth c.json:1 --prompt-ids 1 --max-new-tokens x", 2,
               "g3n generate: error: --max-new-tokens: expected an integer of at least 0, got 'x'");
    expect_g3n("generate --synth c.json:1 --prompt-ids 1 --top-p 2", 2, "--top-p: expected a number from 0 to 1");
    expect_g3n("check --treads 2 x", 2, "g3n check: error: unknown option '--treads' (did you mean --threads?)");
    expect_g3n("encode-image --synth c.json:1 --max-pixels 0 a.png", 2,
               "--max-pixels: expected an integer of at least 1, got '0'");
    expect_g3n("bench matmul --dtype q3", 2, "--dtype: expected one of bf16, f16, f32, q8, q4, got 'q3'");
    expect_g3n("bench chat --demo --turns 1", 2, "--turns: expected an integer from 2 to 64, got '1'");
    expect_g3n("keygen --role nobody --keys d p", 2, "--role: expected one of vision-encoder, audio-encoder");
    expect_g3n("slice --model m --submodel e2b --out o --shard-size", 2, "--shard-size needs a value");
    expect_g3n("tokenize --tokenizer t.json --no-bos --no-bos hi", 2, "--no-bos is given twice");
    expect_g3n("serve --demo --port 70000", 2, "g3n serve: error: --port: expected an integer from 0 to 65535");
    expect_g3n("serve --demo --rate-limit 0", 2, "--rate-limit: expected an integer from 1 to 1000000, got '0'");
    expect_g3n("serve --demo --synth c.json:1", 2, "give one of --model, --synth, --demo");
    expect_g3n("video --demo --video v.mp4 --fps 0", 2, "--fps: expected a number from 1e-06 to 1000, got '0'");
    expect_g3n("video --demo --video v.mp4 --max-new-tokens x", 2, "--max-new-tokens: expected an integer");
    expect_g3n("video --demo --video v.mp4 --top-p 2", 2, "--top-p: expected a number from 0 to 1");
    expect_g3n("video --demo --video v.mp4 one two", 2, "unexpected argument 'two'");
    expect_g3n("live --demo --video v.mp4 --after x", 2, "--after: expected a number");
    expect_g3n("live --demo --video v.mp4 --audio-stream a.wav", 2, "give one of --audio-stream, --video");
    expect_g3n("run --demo --threads x hi", 2, "g3n run: error: --threads: expected an integer from 0 to 1024");
    expect_g3n("run --demo --heartbeat-ms x hi", 2, "--heartbeat-ms: expected an integer");
    expect_g3n("run --demo --wait x hi", 2, "--wait: expected a number");
    expect_g3n("run --demo --max-new-tokens 0 hi", 2, "--max-new-tokens: expected an integer from 1 to 4294967295");
    expect_g3n("run --demo --key k hi", 2, "--keys goes with --bind, --key and --server-key with --connect");
    expect_g3n("live --connect --help", 0, "usage: g3n live --connect ENDPOINT");
    expect_g3n("live --connect tcp://127.0.0.1:9 --video v.mp4 --max-new-tokens x", 2,
               "--max-new-tokens: expected an integer from 1 to 4294967295, got 'x'");
    expect_g3n("live --connect=tcp://127.0.0.1:9 --video v.mp4 --fps 0", 2, "--fps: expected a number from 1e-06");
}

/* The four role daemons share one main whose table is built from the role's
 * flags (role.h): each --help lists its own options only, and values the
 * hand-written loop read with atoi (--capacity x: 0, refused only as "a numeric
 * option is out of range") are refused naming the option. */
static void test_daemons_parse_with_their_role_table(void **state)
{
    (void)state;
    expect_daemon("g3n-decoder", "--help", 0, "usage: g3n-decoder (--model DIR", NULL);
    expect_daemon("g3n-decoder", "--help", 0, "--max-sessions N", NULL);
    expect_daemon("g3n-decoder", "--help", 0, "--submodel SPEC", NULL);
    expect_daemon("g3n-embedder", "--help", 0, "--weights F", "--max-sessions");
    expect_daemon("g3n-embedder", "--help", 0, "Default q8 with --model", "--submodel");
    expect_daemon("g3n-vision-encoder", "--help", 0, "--server-key FILE", "--weights");
    expect_daemon("g3n-audio-encoder", "--help", 0, "usage: g3n-audio-encoder", "--max-session-mb");
    expect_daemon("g3n-decoder", "--synth c.json:1 --capacity x", 2,
                  "g3n-decoder: error: --capacity: expected an integer from 1 to 256, got 'x'", NULL);
    expect_daemon("g3n-embedder", "--synth c.json:1 --max-sessions 4", 2, "unknown option '--max-sessions'", NULL);
    expect_daemon("g3n-vision-encoder", "--synth c.json:1 --keys k", 2,
                  "--keys is for the orchestrator; a worker takes --key and --server-key", NULL);
    expect_daemon("g3n-audio-encoder", "--synth c.json:1 --heartbeat-ms 1000 --heartbeat-timeout-ms 1500", 2,
                  "--heartbeat-timeout-ms 1500 is less than twice --heartbeat-ms 1000", NULL);
    expect_daemon("g3n-decoder", "--probe alive --health-file h", 2, "--probe: expected one of live, ready", NULL);
    expect_daemon("g3n-decoder", "--probe ready", 2, "--probe needs --health-file PATH", NULL);
    expect_daemon("g3n-embedder", "--insecure", 2, "give one of --model DIR or --synth CONFIG:SEED", NULL);
    expect_daemon("g3n-decoder", "--synth c.json:1 --session-idle-s 0", 2, "--session-idle-s: expected a number", NULL);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_values_reach_their_fields),
        cmocka_unit_test(test_help_wins_anywhere_before_the_end_of_options),
        cmocka_unit_test(test_bad_numbers_say_what_was_expected),
        cmocka_unit_test(test_hostile_shapes_of_the_command_line),
        cmocka_unit_test(test_unknown_options_suggest_the_closest),
        cmocka_unit_test(test_required_options_and_no_positionals),
        cmocka_unit_test(test_help_comes_from_the_table),
        cmocka_unit_test(test_commands_parse_with_the_table),
        cmocka_unit_test(test_daemons_parse_with_their_role_table),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
