/* json_scanner.c - the focused JSON scanner of tokenizer.json (json_scanner.h). */
#include "json_scanner.h"

#include <stdio.h>
#include <string.h>

#include "utf8.h"

int g3n_json_scan_fail(g3n_json_scanner *s, const char *where, const char *what)
{
    if (s->p >= s->end)
        return g3n_error_set(s->err, "%s: %s: unexpected end of file (truncated?) at byte %zu", s->name, where,
                             (size_t)(s->end - s->begin));
    if (s->end - s->p < 12) /* cut inside a literal, number or escape */
        return g3n_error_set(s->err, "%s: %s: %s at byte %zu, just before the end of the file (truncated?)", s->name,
                             where, what, (size_t)(s->p - s->begin));
    return g3n_error_set(s->err, "%s: %s: %s at byte %zu", s->name, where, what, (size_t)(s->p - s->begin));
}

void g3n_json_scan_space(g3n_json_scanner *s)
{
    while (s->p < s->end && (*s->p == ' ' || *s->p == '\n' || *s->p == '\r' || *s->p == '\t'))
        s->p++;
}

int g3n_json_scan_char(g3n_json_scanner *s, char c, const char *where)
{
    g3n_json_scan_space(s);
    if (s->p >= s->end || *s->p != c) {
        char what[32];
        snprintf(what, sizeof(what), "expected '%c'", c);
        return g3n_json_scan_fail(s, where, what);
    }
    s->p++;
    return G3N_OK;
}

int g3n_json_hex4(const char *p, uint32_t *out)
{
    uint32_t v = 0;
    for (int i = 0; i < 4; i++) {
        char c = p[i];
        v <<= 4;
        if (c >= '0' && c <= '9')
            v |= (uint32_t)(c - '0');
        else if (c >= 'a' && c <= 'f')
            v |= (uint32_t)(c - 'a' + 10);
        else if (c >= 'A' && c <= 'F')
            v |= (uint32_t)(c - 'A' + 10);
        else
            return 0;
    }
    *out = v;
    return 1;
}

/* Reads a JSON string into s->string (decoded, NUL-terminated). */
int g3n_json_scan_string(g3n_json_scanner *s, const char *where)
{
    g3n_json_scan_space(s);
    if (s->p >= s->end || *s->p != '"')
        return g3n_json_scan_fail(s, where, "expected a string");
    s->p++;
    s->string.length = 0;
    for (;;) {
        const char *run = s->p;
        while (s->p < s->end && *s->p != '"' && *s->p != '\\' && (uint8_t)*s->p >= 0x20)
            s->p++;
        if (g3n_text_buffer_append(&s->string, run, (size_t)(s->p - run), s->err) != G3N_OK)
            return G3N_ERR;
        if (s->p >= s->end)
            return g3n_json_scan_fail(s, where, "unterminated string");
        char c = *s->p;
        if (c == '"') {
            s->p++;
            break;
        }
        if (c != '\\')
            return g3n_json_scan_fail(s, where, "control character inside a string");
        if (s->end - s->p < 2)
            return g3n_json_scan_fail(s, where, "unterminated escape");
        char e = s->p[1];
        char out[4];
        size_t n = 1;
        switch (e) {
        case '"': out[0] = '"'; break;
        case '\\': out[0] = '\\'; break;
        case '/': out[0] = '/'; break;
        case 'b': out[0] = '\b'; break;
        case 'f': out[0] = '\f'; break;
        case 'n': out[0] = '\n'; break;
        case 'r': out[0] = '\r'; break;
        case 't': out[0] = '\t'; break;
        case 'u': {
            uint32_t cp;
            if (s->end - s->p < 6 || !g3n_json_hex4(s->p + 2, &cp))
                return g3n_json_scan_fail(s, where, "bad \\u escape");
            if (cp >= 0xD800 && cp <= 0xDBFF) {
                uint32_t low;
                if (s->end - s->p < 12 || s->p[6] != '\\' || s->p[7] != 'u' || !g3n_json_hex4(s->p + 8, &low) ||
                    low < 0xDC00 || low > 0xDFFF)
                    return g3n_json_scan_fail(s, where, "unpaired UTF-16 surrogate in a \\u escape");
                cp = 0x10000 + ((cp - 0xD800) << 10) + (low - 0xDC00);
                s->p += 6;
            } else if (cp >= 0xDC00 && cp <= 0xDFFF) {
                return g3n_json_scan_fail(s, where, "unpaired UTF-16 surrogate in a \\u escape");
            }
            n = g3n_utf8_encode(cp, out);
            s->p += 4;
            break;
        }
        default:
            return g3n_json_scan_fail(s, where, "unknown escape");
        }
        s->p += 2;
        if (g3n_text_buffer_append(&s->string, out, n, s->err) != G3N_OK)
            return G3N_ERR;
    }
    if (!g3n_utf8_valid(s->string.data, s->string.length))
        return g3n_json_scan_fail(s, where, "string is not valid UTF-8");
    return G3N_OK;
}

int g3n_json_scan_int(g3n_json_scanner *s, const char *where, int64_t *out)
{
    g3n_json_scan_space(s);
    const char *start = s->p;
    int negative = 0;
    if (s->p < s->end && *s->p == '-') {
        negative = 1;
        s->p++;
    }
    int64_t v = 0;
    int digits = 0;
    while (s->p < s->end && *s->p >= '0' && *s->p <= '9') {
        if (v > (INT64_MAX - 9) / 10)
            return g3n_json_scan_fail(s, where, "integer out of range");
        v = v * 10 + (*s->p - '0');
        s->p++;
        digits++;
    }
    if (!digits || (s->p < s->end && (*s->p == '.' || *s->p == 'e' || *s->p == 'E'))) {
        s->p = start;
        return g3n_json_scan_fail(s, where, "expected an integer");
    }
    *out = negative ? -v : v;
    return G3N_OK;
}

/* Skips one value (validating its structure); depth-limited. */
int g3n_json_scan_skip_value(g3n_json_scanner *s, const char *where, int depth)
{
    if (depth > 64)
        return g3n_json_scan_fail(s, where, "nesting too deep");
    g3n_json_scan_space(s);
    if (s->p >= s->end)
        return g3n_json_scan_fail(s, where, "expected a value");
    char c = *s->p;
    if (c == '"')
        return g3n_json_scan_string(s, where);
    if (c == '{' || c == '[') {
        char close = c == '{' ? '}' : ']';
        s->p++;
        g3n_json_scan_space(s);
        if (s->p < s->end && *s->p == close) {
            s->p++;
            return G3N_OK;
        }
        for (;;) {
            if (c == '{') {
                if (g3n_json_scan_string(s, where) != G3N_OK || g3n_json_scan_char(s, ':', where) != G3N_OK)
                    return G3N_ERR;
            }
            if (g3n_json_scan_skip_value(s, where, depth + 1) != G3N_OK)
                return G3N_ERR;
            g3n_json_scan_space(s);
            if (s->p < s->end && *s->p == ',') {
                s->p++;
                continue;
            }
            if (s->p < s->end && *s->p == close) {
                s->p++;
                return G3N_OK;
            }
            return g3n_json_scan_fail(s, where, c == '{' ? "expected ',' or '}'" : "expected ',' or ']'");
        }
    }
    static const char *const literals[] = {"true", "false", "null"};
    for (int i = 0; i < 3; i++) {
        size_t n = strlen(literals[i]);
        if ((size_t)(s->end - s->p) >= n && memcmp(s->p, literals[i], n) == 0) {
            s->p += n;
            return G3N_OK;
        }
    }
    if (c == '-' || (c >= '0' && c <= '9')) {
        s->p++;
        while (s->p < s->end && ((*s->p >= '0' && *s->p <= '9') || *s->p == '.' || *s->p == 'e' || *s->p == 'E' ||
                                 *s->p == '+' || *s->p == '-'))
            s->p++;
        return G3N_OK;
    }
    return g3n_json_scan_fail(s, where, "expected a value");
}

/* Skips one value and parses it with cJSON (for the small sections). */
int g3n_json_scan_cjson_value(g3n_json_scanner *s, const char *where, cJSON **out)
{
    g3n_json_scan_space(s);
    const char *start = s->p;
    if (g3n_json_scan_skip_value(s, where, 0) != G3N_OK)
        return G3N_ERR;
    cJSON *value = cJSON_ParseWithLength(start, (size_t)(s->p - start));
    if (!value) {
        s->p = start;
        return g3n_json_scan_fail(s, where, "malformed JSON");
    }
    cJSON_Delete(*out);
    *out = value;
    return G3N_OK;
}

int g3n_json_scan_object(g3n_json_scanner *s, const char *where, void *target, g3n_json_member_reader on_member,
                         void *context)
{
    if (g3n_json_scan_char(s, '{', where) != G3N_OK)
        return G3N_ERR;
    g3n_json_scan_space(s);
    if (s->p < s->end && *s->p == '}') {
        s->p++;
        return G3N_OK;
    }
    for (;;) {
        if (g3n_json_scan_string(s, where) != G3N_OK || g3n_json_scan_char(s, ':', where) != G3N_OK)
            return G3N_ERR;
        if (on_member(s, target, context) != G3N_OK)
            return G3N_ERR;
        g3n_json_scan_space(s);
        if (s->p < s->end && *s->p == ',') {
            s->p++;
            continue;
        }
        if (s->p < s->end && *s->p == '}') {
            s->p++;
            return G3N_OK;
        }
        return g3n_json_scan_fail(s, where, "expected ',' or '}'");
    }
}
