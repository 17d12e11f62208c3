/* options.c - see options.h. */
#include "options.h"

#include <errno.h>
#include <limits.h>
#include <math.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>

static int is_help(const char *arg)
{
    return strcmp(arg, "-h") == 0 || strcmp(arg, "--help") == 0;
}

/* The option called name (name_length bytes), or NULL. */
static const g3n_option *find_option(const g3n_option *options, size_t count, const char *name, size_t name_length)
{
    for (size_t i = 0; i < count; i++)
        if (options[i].kind != G3N_OPTION_SECTION && options[i].name && strlen(options[i].name) == name_length &&
            strncmp(options[i].name, name, name_length) == 0)
            return &options[i];
    return NULL;
}

/* Edit distance (insertions, deletions, substitutions, swaps of neighbours),
 * capped at 9: enough to tell a typo from another word. */
static int edit_distance(const char *a, const char *b)
{
    size_t n = strlen(a), m = strlen(b);
    if (n > 40 || m > 40)
        return 9;
    int d[41][41];
    for (size_t i = 0; i <= n; i++)
        d[i][0] = (int)i;
    for (size_t j = 0; j <= m; j++)
        d[0][j] = (int)j;
    for (size_t i = 1; i <= n; i++)
        for (size_t j = 1; j <= m; j++) {
            int best = d[i - 1][j - 1] + (a[i - 1] != b[j - 1]);
            if (d[i - 1][j] + 1 < best)
                best = d[i - 1][j] + 1;
            if (d[i][j - 1] + 1 < best)
                best = d[i][j - 1] + 1;
            if (i > 1 && j > 1 && a[i - 1] == b[j - 2] && a[i - 2] == b[j - 1] && d[i - 2][j - 2] + 1 < best)
                best = d[i - 2][j - 2] + 1;
            d[i][j] = best;
        }
    return d[n][m] < 9 ? d[n][m] : 9;
}

/* The known option closest to the unknown word (a typo or a prefix), or NULL. */
static const char *closest_option(const g3n_option *options, size_t count, const char *word)
{
    const char *best = NULL;
    int best_distance = 3;
    size_t word_length = strlen(word);
    for (size_t i = 0; i < count; i++) {
        const char *name = options[i].name;
        if (options[i].kind == G3N_OPTION_SECTION || !name)
            continue;
        int distance = edit_distance(word, name);
        if (word_length >= 3 && strncmp(name, word, word_length) == 0)
            distance = 1; /* an abbreviation */
        if (distance < best_distance || (distance == best_distance && best && strlen(name) < strlen(best))) {
            best = name;
            best_distance = distance;
        }
    }
    return best_distance <= (word_length <= 4 ? 1 : 2) ? best : NULL;
}

static int unknown_option(const g3n_option *options, size_t count, const char *arg, g3n_error *err)
{
    char word[64];
    const char *start = arg + strspn(arg, "-");
    snprintf(word, sizeof(word), "%.*s", (int)strcspn(start, "="), start);
    const char *suggestion = closest_option(options, count, word);
    if (suggestion)
        return g3n_error_set(err, "unknown option '%s' (did you mean --%s?)", arg, suggestion);
    return g3n_error_set(err, "unknown option '%s'", arg);
}

static int parse_signed(const g3n_option *o, const char *text, long long low, long long high, long long *out,
                        g3n_error *err)
{
    char *end;
    errno = 0;
    long long v = strtoll(text, &end, 10);
    if (end == text || *end || errno == ERANGE || v < low || v > high) {
        if (low == LLONG_MIN && high == LLONG_MAX)
            return g3n_error_set(err, "--%s: expected an integer, got '%s'", o->name, text);
        if (high == LLONG_MAX || high == INT_MAX)
            return g3n_error_set(err, "--%s: expected an integer of at least %lld, got '%s'", o->name, low, text);
        return g3n_error_set(err, "--%s: expected an integer from %lld to %lld, got '%s'", o->name, low, high, text);
    }
    *out = v;
    return G3N_OK;
}

static int parse_unsigned(const g3n_option *o, const char *text, uint64_t *out, g3n_error *err)
{
    unsigned long long low = o->min > 0 ? (unsigned long long)o->min : 0;
    unsigned long long high = o->min == 0 && o->max == 0 ? ULLONG_MAX : (unsigned long long)o->max;
    char *end;
    errno = 0;
    unsigned long long v = strtoull(text, &end, 10);
    const char *digits = text + strspn(text, " \t");
    if (end == text || *end || errno == ERANGE || *digits == '-' || *digits == '+' || v < low || v > high) {
        if (high == ULLONG_MAX && low == 0)
            return g3n_error_set(err, "--%s: expected a non-negative integer, got '%s'", o->name, text);
        if (high == ULLONG_MAX || high == (unsigned long long)LLONG_MAX)
            return g3n_error_set(err, "--%s: expected an integer of at least %llu, got '%s'", o->name, low, text);
        return g3n_error_set(err, "--%s: expected an integer from %llu to %llu, got '%s'", o->name, low, high, text);
    }
    *out = (uint64_t)v;
    return G3N_OK;
}

static int parse_double(const g3n_option *o, const char *text, double *out, g3n_error *err)
{
    char *end;
    errno = 0;
    double v = strtod(text, &end);
    int ranged = o->real_min != 0 || o->real_max != 0;
    if (end == text || *end || errno == ERANGE || !isfinite(v) || (ranged && (v < o->real_min || v > o->real_max))) {
        if (ranged)
            return g3n_error_set(err, "--%s: expected a number from %g to %g, got '%s'", o->name, o->real_min,
                                 o->real_max, text);
        return g3n_error_set(err, "--%s: expected a number, got '%s'", o->name, text);
    }
    *out = v;
    return G3N_OK;
}

static int parse_enum(const g3n_option *o, const char *text, int *out, g3n_error *err)
{
    char allowed[512] = "";
    for (int i = 0; o->choices[i]; i++) {
        if (strcmp(o->choices[i], text) == 0) {
            *out = i;
            return G3N_OK;
        }
        size_t used = strlen(allowed);
        snprintf(allowed + used, sizeof(allowed) - used, "%s%s", i ? ", " : "", o->choices[i]);
    }
    return g3n_error_set(err, "--%s: expected one of %s, got '%s'", o->name, allowed, text);
}

/* Stores one value of option o. */
static int store_value(const g3n_option *o, const char *text, g3n_error *err)
{
    long long v;
    if (!text[0] && o->kind != G3N_OPTION_CUSTOM)
        return g3n_error_set(err, "--%s: the value is empty", o->name);
    switch (o->kind) {
    case G3N_OPTION_INT: {
        int bounded = o->min != 0 || o->max != 0;
        if (parse_signed(o, text, bounded ? o->min : INT_MIN, bounded ? o->max : INT_MAX, &v, err) != G3N_OK)
            return G3N_ERR;
        *(int *)o->value = (int)v;
        return G3N_OK;
    }
    case G3N_OPTION_INT64: {
        int bounded = o->min != 0 || o->max != 0;
        if (parse_signed(o, text, bounded ? o->min : LLONG_MIN, bounded ? o->max : LLONG_MAX, &v, err) != G3N_OK)
            return G3N_ERR;
        *(int64_t *)o->value = (int64_t)v;
        return G3N_OK;
    }
    case G3N_OPTION_UINT64:
        return parse_unsigned(o, text, (uint64_t *)o->value, err);
    case G3N_OPTION_DOUBLE:
        return parse_double(o, text, (double *)o->value, err);
    case G3N_OPTION_STRING:
        *(const char **)o->value = text;
        return G3N_OK;
    case G3N_OPTION_ENUM:
        return parse_enum(o, text, (int *)o->value, err);
    case G3N_OPTION_LIST: {
        g3n_option_list *list = o->value;
        if (list->count >= list->capacity)
            return g3n_error_set(err, "--%s: at most %d may be given", o->name, list->capacity);
        list->items[list->count++] = text;
        return G3N_OK;
    }
    case G3N_OPTION_CUSTOM:
        return o->parse(text, o->value, err);
    default:
        return g3n_error_set(err, "--%s: not an option with a value", o->name);
    }
}

static int add_positional(const g3n_command_spec *spec, const char *arg, g3n_error *err)
{
    g3n_option_list *list = spec->positionals;
    if (!list)
        return g3n_error_set(err, "unexpected argument '%s'", arg);
    if (list->count >= list->capacity)
        return g3n_error_set(err, "unexpected argument '%s' (at most %d argument%s)", arg, list->capacity,
                             list->capacity == 1 ? "" : "s");
    list->items[list->count++] = arg;
    return G3N_OK;
}

/* A G3N_OPTION_PAIR's two values: argv[*index + 1] and [*index + 2] (or --name=FIRST SECOND). */
static int store_pair(const g3n_option *o, int argc, char **argv, int *index, const char *equals, g3n_error *err)
{
    int needed = equals ? 1 : 2;
    if (*index + needed >= argc)
        return g3n_error_set(err, "--%s needs two values (%s)", o->name, o->value_name ? o->value_name : "A B");
    const char *first = equals ? equals + 1 : argv[*index + 1], *second = argv[*index + needed];
    *index += needed;
    g3n_option_list *list = o->value;
    if (!first[0] || !second[0])
        return g3n_error_set(err, "--%s: a value is empty", o->name);
    if (list->count + 2 > list->capacity)
        return g3n_error_set(err, "--%s: at most %d may be given", o->name, list->capacity / 2);
    list->items[list->count++] = first;
    list->items[list->count++] = second;
    return G3N_OK;
}

/* Handles argv[*index], an option; moves *index past its value. seen[k] counts option k. */
static int parse_one(const g3n_option *options, size_t count, int argc, char **argv, int *index, int *seen,
                     g3n_error *err)
{
    const char *arg = argv[*index];
    const char *name = arg + 2, *equals = strchr(name, '=');
    size_t name_length = equals ? (size_t)(equals - name) : strlen(name);
    const g3n_option *o = find_option(options, count, name, name_length);
    if (!o)
        return unknown_option(options, count, arg, err);
    int k = (int)(o - options);
    if (seen[k]++ && o->kind != G3N_OPTION_LIST && o->kind != G3N_OPTION_PAIR)
        return g3n_error_set(err, "--%s is given twice", o->name);
    if (o->given)
        *o->given = 1;
    if (o->kind == G3N_OPTION_FLAG) {
        if (equals)
            return g3n_error_set(err, "--%s takes no value (got '%s')", o->name, equals + 1);
        *(int *)o->value = 1;
        return G3N_OK;
    }
    if (o->kind == G3N_OPTION_PAIR)
        return store_pair(o, argc, argv, index, equals, err);
    const char *value = equals ? equals + 1 : NULL;
    if (!value) {
        if (*index + 1 >= argc)
            return g3n_error_set(err, "--%s needs a value", o->name);
        value = argv[++*index];
        const char *next = value + 2;
        if (strncmp(value, "--", 2) == 0 &&
            (is_help(value) || find_option(options, count, next, strcspn(next, "="))))
            return g3n_error_set(err, "--%s needs a value (got the option '%s')", o->name, value);
    }
    return store_value(o, value, err);
}

static int check_required(const g3n_option *options, size_t count, const int *seen, g3n_error *err)
{
    for (size_t k = 0; k < count; k++)
        if (options[k].required && !seen[k])
            return g3n_error_set(err, "--%s is required", options[k].name);
    return G3N_OK;
}

g3n_options_result g3n_options_parse(const g3n_command_spec *spec, const g3n_option *options, size_t count, int argc,
                                     char **argv, g3n_error *err)
{
    for (int i = 1; i < argc && strcmp(argv[i], "--") != 0; i++)
        if (is_help(argv[i]))
            return G3N_OPTIONS_HELP;
    int *seen = calloc(count + 1, sizeof(int));
    if (!seen) {
        g3n_error_set(err, "out of memory");
        return G3N_OPTIONS_ERROR;
    }
    int status = G3N_OK, only_positionals = 0;
    for (int i = 1; i < argc && status == G3N_OK; i++) {
        const char *arg = argv[i];
        if (!only_positionals && strcmp(arg, "--") == 0)
            only_positionals = 1;
        else if (!only_positionals && strncmp(arg, "--", 2) == 0)
            status = parse_one(options, count, argc, argv, &i, seen, err);
        else if (!only_positionals && arg[0] == '-' && arg[1] && !spec->positionals)
            status = unknown_option(options, count, arg, err);
        else
            status = add_positional(spec, arg, err);
    }
    if (status == G3N_OK)
        status = check_required(options, count, seen, err);
    free(seen);
    return status == G3N_OK ? G3N_OPTIONS_OK : G3N_OPTIONS_ERROR;
}

/* Writes text, continuing each '\n' at column. */
static void print_indented(FILE *out, const char *text, int column)
{
    for (const char *p = text; *p; p++) {
        fputc(*p, out);
        if (*p == '\n' && p[1])
            fprintf(out, "%*s", column, "");
    }
    fputc('\n', out);
}

/* "--name VALUE" (an enum: "--name a|b|c") into buffer. */
static void option_label(const g3n_option *o, char *buffer, size_t size)
{
    int used = snprintf(buffer, size, "--%s", o->name);
    if (o->kind == G3N_OPTION_FLAG || used < 0 || (size_t)used >= size)
        return;
    if (o->value_name || o->kind != G3N_OPTION_ENUM) {
        snprintf(buffer + used, size - (size_t)used, " %s", o->value_name ? o->value_name : "VALUE");
        return;
    }
    for (int i = 0; o->choices[i] && (size_t)used < size; i++)
        used += snprintf(buffer + used, size - (size_t)used, "%s%s", i ? "|" : " ", o->choices[i]);
}

void g3n_options_print_help(FILE *out, const g3n_command_spec *spec, const g3n_option *options, size_t count)
{
    int column = spec->help_column > 0 ? spec->help_column : 26;
    fprintf(out, "usage: %s\n", spec->usage);
    if (spec->about)
        fprintf(out, "\n%s", spec->about);
    fputc('\n', out);
    for (size_t i = 0; i < count; i++) {
        const g3n_option *o = &options[i];
        if (o->kind == G3N_OPTION_SECTION) {
            fprintf(out, "%s\n", o->help);
            continue;
        }
        if (o->hidden)
            continue;
        char label[256];
        option_label(o, label, sizeof(label));
        int width = 2 + (int)strlen(label);
        fprintf(out, "  %s", label);
        if (width + 1 > column)
            fprintf(out, "\n%*s", column, "");
        else
            fprintf(out, "%*s", column - width, "");
        print_indented(out, o->help ? o->help : "", column);
    }
    if (spec->footer)
        fputs(spec->footer, out);
}

int g3n_options_usage_error(const g3n_command_spec *spec, const char *format, ...)
{
    char message[1024];
    va_list args;
    va_start(args, format);
    vsnprintf(message, sizeof(message), format, args);
    va_end(args);
    fprintf(stderr, "%s: error: %s (see --help)\n", spec->name, message);
    return 2;
}

int g3n_options_main(const g3n_command_spec *spec, const g3n_option *options, size_t count, int argc, char **argv)
{
    g3n_error err = {{0}};
    switch (g3n_options_parse(spec, options, count, argc, argv, &err)) {
    case G3N_OPTIONS_HELP:
        g3n_options_print_help(stdout, spec, options, count);
        return 0;
    case G3N_OPTIONS_ERROR:
        return g3n_options_usage_error(spec, "%s", err.message);
    default:
        return -1;
    }
}
