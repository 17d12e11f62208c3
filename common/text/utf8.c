/* utf8.c - UTF-8 decoding, encoding and validation (utf8.h). */
#include "utf8.h"

/* Length of the UTF-8 sequence at s (n bytes available) and its code point;
 * 0 if invalid. */
size_t g3n_utf8_decode(const uint8_t *s, size_t n, uint32_t *code_point)
{
    uint8_t c = s[0];
    if (c < 0x80) {
        *code_point = c;
        return 1;
    }
    size_t length;
    uint32_t cp, min;
    if ((c & 0xE0) == 0xC0) {
        length = 2, cp = c & 0x1F, min = 0x80;
    } else if ((c & 0xF0) == 0xE0) {
        length = 3, cp = c & 0x0F, min = 0x800;
    } else if ((c & 0xF8) == 0xF0) {
        length = 4, cp = c & 0x07, min = 0x10000;
    } else {
        return 0;
    }
    if (n < length)
        return 0;
    for (size_t i = 1; i < length; i++) {
        if ((s[i] & 0xC0) != 0x80)
            return 0;
        cp = (cp << 6) | (s[i] & 0x3F);
    }
    if (cp < min || cp > 0x10FFFF || (cp >= 0xD800 && cp <= 0xDFFF))
        return 0;
    *code_point = cp;
    return length;
}

size_t g3n_utf8_encode(uint32_t cp, char *out)
{
    if (cp < 0x80) {
        out[0] = (char)cp;
        return 1;
    }
    if (cp < 0x800) {
        out[0] = (char)(0xC0 | (cp >> 6));
        out[1] = (char)(0x80 | (cp & 0x3F));
        return 2;
    }
    if (cp < 0x10000) {
        out[0] = (char)(0xE0 | (cp >> 12));
        out[1] = (char)(0x80 | ((cp >> 6) & 0x3F));
        out[2] = (char)(0x80 | (cp & 0x3F));
        return 3;
    }
    out[0] = (char)(0xF0 | (cp >> 18));
    out[1] = (char)(0x80 | ((cp >> 12) & 0x3F));
    out[2] = (char)(0x80 | ((cp >> 6) & 0x3F));
    out[3] = (char)(0x80 | (cp & 0x3F));
    return 4;
}

/* Byte offset of the first invalid sequence, or length if all valid. */
size_t g3n_utf8_valid_prefix(const char *bytes, size_t length)
{
    const uint8_t *s = (const uint8_t *)bytes;
    size_t i = 0;
    uint32_t cp;
    while (i < length) {
        if (s[i] < 0x80) {
            i++;
            continue;
        }
        size_t n = g3n_utf8_decode(s + i, length - i, &cp);
        if (!n)
            return i;
        i += n;
    }
    return length;
}

int g3n_utf8_valid(const char *bytes, size_t length)
{
    return g3n_utf8_valid_prefix(bytes, length) == length;
}
