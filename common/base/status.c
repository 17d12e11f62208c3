#include "status.h"

#include <stdarg.h>
#include <stdio.h>
#include <string.h>

int g3n_error_set(g3n_error *err, const char *format, ...)
{
    if (err) {
        va_list args;
        va_start(args, format);
        vsnprintf(err->message, sizeof(err->message), format, args);
        va_end(args);
    }
    return G3N_ERR;
}

int g3n_error_prefix(g3n_error *err, const char *format, ...)
{
    if (err) {
        char prefix[512];
        char old[sizeof(err->message)];
        va_list args;
        va_start(args, format);
        vsnprintf(prefix, sizeof(prefix), format, args);
        va_end(args);
        memcpy(old, err->message, sizeof(old));
        old[sizeof(old) - 1] = '\0';
        snprintf(err->message, sizeof(err->message), "%s: %s", prefix, old);
    }
    return G3N_ERR;
}

int g3n_error_one_line(g3n_error *err)
{
    if (!err)
        return G3N_ERR;
    char old[sizeof(err->message)];
    memcpy(old, err->message, sizeof(old));
    old[sizeof(old) - 1] = '\0';
    const size_t room = sizeof(err->message) - 4; /* keeps space for "..." and the NUL */
    size_t out = 0;
    for (const unsigned char *p = (const unsigned char *)old; *p; p++) {
        char piece[5];
        if (*p == '\n')
            snprintf(piece, sizeof(piece), "\\n");
        else if (*p == '\r')
            snprintf(piece, sizeof(piece), "\\r");
        else if (*p == '\t')
            snprintf(piece, sizeof(piece), "\\t");
        else if (*p < 0x20 || *p == 0x7f)
            snprintf(piece, sizeof(piece), "\\x%02x", *p);
        else
            piece[0] = (char)*p, piece[1] = '\0';
        size_t length = strlen(piece);
        if (out + length > room) {
            memcpy(err->message + out, "...", 4);
            return G3N_ERR;
        }
        memcpy(err->message + out, piece, length);
        out += length;
    }
    err->message[out] = '\0';
    return G3N_ERR;
}
