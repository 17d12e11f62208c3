/* status.h - errors are values.
 *
 * Every fallible function returns int: G3N_OK (0) on success, G3N_ERR (-1) on
 * failure, and on failure writes a one-line, human-readable message into the
 * caller's g3n_error (which may be NULL when the caller does not care).
 * Messages name the thing that failed: the file, the tensor, the field.
 */
#ifndef G3N_STATUS_H
#define G3N_STATUS_H

#include <stddef.h>

#define G3N_OK 0
#define G3N_ERR (-1)

typedef struct g3n_error {
    char message[1024];
} g3n_error;

#if defined(__GNUC__)
#define G3N_PRINTF(fmt_index, args_index) __attribute__((format(printf, fmt_index, args_index)))
#else
#define G3N_PRINTF(fmt_index, args_index)
#endif

/* Writes a formatted message into err (if non-NULL); always returns G3N_ERR,
 * so callers can write `return g3n_error_set(err, "...", ...);`. */
int g3n_error_set(g3n_error *err, const char *format, ...) G3N_PRINTF(2, 3);

/* Prepends "context: " to the message already in err; returns G3N_ERR. */
int g3n_error_prefix(g3n_error *err, const char *format, ...) G3N_PRINTF(2, 3);

/* Makes the message one line: control bytes (newlines from a quoted piece of
 * a file, say) become escapes (\n, \t, \xHH), cut with "..." if they no
 * longer fit; returns G3N_ERR. */
int g3n_error_one_line(g3n_error *err);

#endif
