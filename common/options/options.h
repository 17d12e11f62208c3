/* options.h - one way to parse a command's options: a table.
 *
 * A command lists its options once, as an array of g3n_option (long name,
 * value kind, limits, the field the value goes to, one line of help), and
 * g3n_options_parse fills the fields, checks each value (integers and numbers
 * in range, enums among their choices), collects the positional arguments
 * and writes a clear error ("--threads: expected an integer from 1 to 1024,
 * got 'x'", "unknown option '--treads' (did you mean --threads?)").
 * g3n_options_print_help writes --help from the same table. Options shared by
 * several commands are macros (G3N_OPTION_THREADS here, option_groups.h for
 * the model source and the transport), defined once.
 *
 * Syntax: --name VALUE or --name=VALUE; a flag takes no value; "--" ends the
 * options; -h and --help anywhere before "--" ask for help. Any other word
 * (also "-", "-5", "-x") is a positional argument where the command takes
 * them, else an error. An option given
 * twice is an error unless it is a G3N_OPTION_LIST or _PAIR (every value
 * kept, in order). A value may begin with '-' (a negative number) but is never one of
 * the command's own options (`--model --threads 4` is "--model needs a value").
 *
 * The table is usually an automatic array in the command's parse function,
 * its value pointers aimed at the command's own fields; strings point into
 * argv (no allocation anywhere).
 *
 * A command, in the shape the converted ones share (cmd_slice.c is short):
 *
 *     typedef struct slice_args { const char *model_dir, *out; uint64_t shard_size; } slice_args;
 *
 *     static int parse_args(slice_args *a, int argc, char **argv)  // -1: go on, else the exit code
 *     {
 *         a->shard_size = 2000000000ull;                           // defaults before the table
 *         const g3n_option options[] = {
 *             G3N_OPTION_MODEL(&a->model_dir, "the checkpoint folder"),  // shared: option_groups.h
 *             G3N_STRING("out", &a->out, "DIR", "the folder to write"),
 *             G3N_UINT64("shard-size", &a->shard_size, 1, LLONG_MAX, "B", "bytes per shard"),
 *         };
 *         const g3n_command_spec spec = {.name = "g3n slice", .usage = "g3n slice --model DIR --out DIR",
 *                                        .about = "Writes ...\n"};
 *         int rc = g3n_options_main(&spec, options, G3N_OPTION_COUNT(options), argc, argv);
 *         if (rc < 0 && !a->out)                                   // checks across options after it
 *             return g3n_options_usage_error(&spec, "give --out");
 *         return rc;
 *     }
 *
 *     int g3n_command_slice(int argc, char **argv)
 *     {
 *         slice_args args = {0};
 *         int rc = parse_args(&args, argc, argv);
 *         return rc >= 0 ? rc : run_slice(&args);                  // run: load, work, report
 *     }
 *
 * Converting a hand-written loop: one field per option in an args struct,
 * one table entry per strcmp branch (the old help line becomes its help;
 * continuation lines go after '\n'), the old usage's first lines become
 * .usage and its prose .about/.footer; "needs a value", ranges, unknown
 * options and -h/--help are the parser's, so those branches go. An option
 * the parser cannot express (a list syntax such as "128,512") is a STRING
 * checked after parsing, or a CUSTOM entry with its own parse function. */
#ifndef G3N_OPTIONS_H
#define G3N_OPTIONS_H

#include <stdint.h>
#include <stdio.h>

#include "status.h"

typedef enum g3n_option_kind {
    G3N_OPTION_FLAG,    /* int *: 1 when given (no value) */
    G3N_OPTION_INT,     /* int *: limits min..max (both 0: any int) */
    G3N_OPTION_INT64,   /* int64_t *: limits min..max (both 0: any int64) */
    G3N_OPTION_UINT64,  /* uint64_t *: limits min..max (both 0: any uint64) */
    G3N_OPTION_DOUBLE,  /* double *: finite, limits real_min..real_max (both 0: any) */
    G3N_OPTION_STRING,  /* const char **: the argument itself; never empty */
    G3N_OPTION_ENUM,    /* int *: the index of the value in choices */
    G3N_OPTION_LIST,    /* g3n_option_list *: every occurrence, in order */
    G3N_OPTION_PAIR,    /* g3n_option_list *: takes two values ("--exec-after-turn N CMD"), both kept, every occurrence */
    G3N_OPTION_CUSTOM,  /* value given to parse(value, field, err) */
    G3N_OPTION_SECTION, /* not an option: a heading line (help) in --help */
} g3n_option_kind;

/* Where a G3N_OPTION_LIST (or the positional arguments) go: items is the
 * caller's array of capacity entries; count is how many were given. */
typedef struct g3n_option_list {
    const char **items;
    int capacity;
    int count;
} g3n_option_list;

typedef struct g3n_option {
    const char *name;       /* without the leading "--" */
    g3n_option_kind kind;
    void *value;            /* the field; its type follows kind */
    const char *value_name; /* --help's placeholder: "N", "DIR"; NULL for a flag (an enum lists its choices) */
    const char *help;       /* --help text; '\n' starts a continuation line */
    long long min, max;     /* INT, INT64, UINT64: inclusive limits */
    double real_min, real_max;  /* DOUBLE: inclusive limits */
    const char *const *choices; /* ENUM: the allowed values, NULL-terminated */
    /* CUSTOM: stores value into field, or writes the whole message (naming the option) */
    int (*parse)(const char *value, void *field, g3n_error *err);
    int *given;             /* optional: set to 1 when the option was given */
    int required;           /* 1: an error when missing */
    int hidden;             /* 1: accepted but not listed in --help */
} g3n_option;

/* The command around its options: what --help prints and errors name. */
typedef struct g3n_command_spec {
    const char *name;        /* "g3n check", "g3n-orchestrator": the prefix of errors */
    const char *usage;       /* --help's first line after "usage: " (may hold more lines) */
    const char *about;       /* paragraph(s) after the usage line, or NULL */
    const char *footer;      /* text after the options, or NULL */
    g3n_option_list *positionals; /* NULL: no positional argument accepted */
    int help_column;         /* where option help starts (0: 26) */
} g3n_command_spec;

#define G3N_OPTION_COUNT(array) (sizeof(array) / sizeof((array)[0]))

/* Table entries. */
#define G3N_FLAG(long_name, field, help_text) \
    {.name = (long_name), .kind = G3N_OPTION_FLAG, .value = (field), .help = (help_text)}
#define G3N_INT(long_name, field, low, high, placeholder, help_text)                                  \
    {.name = (long_name), .kind = G3N_OPTION_INT, .value = (field), .min = (low), .max = (high),     \
     .value_name = (placeholder), .help = (help_text)}
#define G3N_INT64(long_name, field, low, high, placeholder, help_text)                                \
    {.name = (long_name), .kind = G3N_OPTION_INT64, .value = (field), .min = (low), .max = (high),   \
     .value_name = (placeholder), .help = (help_text)}
#define G3N_UINT64(long_name, field, low, high, placeholder, help_text)                               \
    {.name = (long_name), .kind = G3N_OPTION_UINT64, .value = (field), .min = (low), .max = (high),  \
     .value_name = (placeholder), .help = (help_text)}
#define G3N_DOUBLE(long_name, field, low, high, placeholder, help_text)                                         \
    {.name = (long_name), .kind = G3N_OPTION_DOUBLE, .value = (field), .real_min = (low), .real_max = (high), \
     .value_name = (placeholder), .help = (help_text)}
#define G3N_STRING(long_name, field, placeholder, help_text) \
    {.name = (long_name), .kind = G3N_OPTION_STRING, .value = (field), .value_name = (placeholder), .help = (help_text)}
#define G3N_ENUM(long_name, field, choice_list, help_text) \
    {.name = (long_name), .kind = G3N_OPTION_ENUM, .value = (field), .choices = (choice_list), .help = (help_text)}
#define G3N_LIST(long_name, list, placeholder, help_text) \
    {.name = (long_name), .kind = G3N_OPTION_LIST, .value = (list), .value_name = (placeholder), .help = (help_text)}
#define G3N_PAIR(long_name, list, placeholders, help_text) \
    {.name = (long_name), .kind = G3N_OPTION_PAIR, .value = (list), .value_name = (placeholders), .help = (help_text)}
#define G3N_CUSTOM(long_name, field, parser, placeholder, help_text)                                   \
    {.name = (long_name), .kind = G3N_OPTION_CUSTOM, .value = (field), .parse = (parser),             \
     .value_name = (placeholder), .help = (help_text)}
#define G3N_SECTION(heading) {.kind = G3N_OPTION_SECTION, .help = (heading)}

/* --threads N, the same everywhere: 0 (the default) is every core. */
#define G3N_OPTION_THREADS(field) G3N_OPTION_THREADS_FOR(field, "OpenMP threads (default: all cores)")
#define G3N_OPTION_THREADS_FOR(field, help_text) G3N_INT("threads", field, 0, 1024, "N", help_text)

/* What g3n_options_parse found. */
typedef enum g3n_options_result {
    G3N_OPTIONS_OK = 0,   /* the fields are filled: go on */
    G3N_OPTIONS_HELP = 1, /* -h or --help was given: nothing else was parsed */
    G3N_OPTIONS_ERROR = 2 /* err holds the message (without the command's name) */
} g3n_options_result;

/* Parses argv[1..argc-1] (argv[0] is the command) into the table's fields. */
g3n_options_result g3n_options_parse(const g3n_command_spec *spec, const g3n_option *options, size_t count, int argc,
                                     char **argv, g3n_error *err);

/* The --help text: "usage: ...", about, the options (each "  --name VALUE"
 * and its help, aligned), footer. */
void g3n_options_print_help(FILE *out, const g3n_command_spec *spec, const g3n_option *options, size_t count);

/* The usual front of a command: parses; on --help prints it to stdout and
 * returns 0; on an error prints "NAME: error: MESSAGE (see --help)" to stderr
 * and returns 2 (the usage exit code); else returns -1: go on. */
int g3n_options_main(const g3n_command_spec *spec, const g3n_option *options, size_t count, int argc, char **argv);

/* "NAME: error: MESSAGE (see --help)" on stderr; returns 2 (for checks
 * after parsing that are the user's mistake, e.g. a missing --model). */
int g3n_options_usage_error(const g3n_command_spec *spec, const char *format, ...) G3N_PRINTF(2, 3);

#endif
