/*
 * The native command executor's buffers, JSON and RecordIO: a small, careful JSON parser (values as
 * spans of the record's text, strings decoded on demand with every escape, surrogate pairs included,
 * to UTF-8; bounded nesting; what Python's json refuses is refused) and JSON string escaping.
 * Built into the executor (executor.c) and into a plain shared library (lib/codec*.so) whose
 * mesostw_json_reencode and mesostw_records the tests call through ctypes.
 */
#define _GNU_SOURCE
#include <math.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "codec.h"

/* Deeper nesting than Python's json accepts ends the stream as malformed input does. */
#define MAX_DEPTH 512
#define MAX_HEADER 64

/* ------------------------------------------------------------------ buffers */


int buf_reserve(buf_t *b, size_t more) {
    if (b->len + more + 1 <= b->cap && b->data != NULL)
        return 0;
    size_t cap = b->cap ? b->cap : 256;
    while (cap < b->len + more + 1) {
        if (cap > SIZE_MAX / 2) {
            b->failed = 1;
            return -1;
        }
        cap *= 2;
    }
    char *data = realloc(b->data, cap);
    if (data == NULL) {
        b->failed = 1;
        return -1;
    }
    b->data = data;
    b->cap = cap;
    return 0;
}

void buf_add(buf_t *b, const char *s, size_t n) {
    if (buf_reserve(b, n))
        return;
    memcpy(b->data + b->len, s, n);
    b->len += n;
    b->data[b->len] = 0;
}

void buf_str(buf_t *b, const char *s) { buf_add(b, s, strlen(s)); }

void buf_printf(buf_t *b, const char *format, ...) {
    va_list args;
    char small[256];
    va_start(args, format);
    int n = vsnprintf(small, sizeof small, format, args);
    va_end(args);
    if (n < 0)
        return;
    if ((size_t)n < sizeof small) {
        buf_add(b, small, (size_t)n);
        return;
    }
    if (buf_reserve(b, (size_t)n))
        return;
    va_start(args, format);
    vsnprintf(b->data + b->len, (size_t)n + 1, format, args);
    va_end(args);
    b->len += (size_t)n;
}

void buf_clear(buf_t *b) {
    b->len = 0;
    if (b->data)
        b->data[0] = 0;
}

void buf_free(buf_t *b) {
    free(b->data);
    b->data = NULL;
    b->len = b->cap = 0;
}

void buf_consume(buf_t *b, size_t n) {
    if (n >= b->len) {
        buf_clear(b);
        return;
    }
    memmove(b->data, b->data + n, b->len - n);
    b->len -= n;
    b->data[b->len] = 0;
}

/* ------------------------------------------------------------------ JSON */




void jdoc_free(jdoc *d) {
    free(d->nodes);
    d->nodes = NULL;
    d->count = d->cap = 0;
}

static size_t skip_ws(const char *s, size_t i, size_t n) {
    while (i < n && (s[i] == ' ' || s[i] == '\t' || s[i] == '\n' || s[i] == '\r'))
        i++;
    return i;
}

static int hexval(char c) {
    if (c >= '0' && c <= '9')
        return c - '0';
    if (c >= 'a' && c <= 'f')
        return c - 'a' + 10;
    if (c >= 'A' && c <= 'F')
        return c - 'A' + 10;
    return -1;
}

/* The length of the valid UTF-8 sequence at s[i] (surrogates allowed, as Python's bytes decoding
 * with surrogatepass), or 0. */
static size_t utf8_length(const unsigned char *s, size_t i, size_t n) {
    unsigned char c = s[i];
    size_t need;
    uint32_t cp;
    if (c < 0x80)
        return 1;
    if (c >= 0xc2 && c <= 0xdf) {
        need = 1;
        cp = c & 0x1f;
    } else if (c >= 0xe0 && c <= 0xef) {
        need = 2;
        cp = c & 0x0f;
    } else if (c >= 0xf0 && c <= 0xf4) {
        need = 3;
        cp = c & 0x07;
    } else {
        return 0;
    }
    if (i + need >= n)
        return 0;
    for (size_t k = 1; k <= need; k++) {
        if ((s[i + k] & 0xc0) != 0x80)
            return 0;
        cp = (cp << 6) | (s[i + k] & 0x3f);
    }
    if ((need == 2 && cp < 0x800) || (need == 3 && (cp < 0x10000 || cp > 0x10ffff)))
        return 0;
    return need + 1;
}

/* Checks the string token at s[*i] (a '"'); leaves *i after its closing quote. */
static int scan_string(const char *s, size_t n, size_t *i) {
    size_t k = *i + 1;
    while (k < n) {
        unsigned char c = (unsigned char)s[k];
        if (c == '"') {
            *i = k + 1;
            return 0;
        }
        if (c < 0x20)
            return -1;
        if (c == '\\') {
            if (k + 1 >= n)
                return -1;
            char e = s[k + 1];
            if (e == 'u') {
                if (k + 5 >= n)
                    return -1;
                for (int h = 2; h < 6; h++)
                    if (hexval(s[k + h]) < 0)
                        return -1;
                k += 6;
            } else if (strchr("\"\\/bfnrt", e) != NULL && e != 0) {
                k += 2;
            } else {
                return -1;
            }
            continue;
        }
        size_t len = utf8_length((const unsigned char *)s, k, n);
        if (len == 0)
            return -1;
        k += len;
    }
    return -1;
}

static int scan_number(const char *s, size_t n, size_t *i) {
    size_t k = *i;
    if (k < n && s[k] == '-')
        k++;
    if (k >= n)
        return -1;
    if (s[k] == '0') {
        k++;
    } else if (s[k] >= '1' && s[k] <= '9') {
        while (k < n && s[k] >= '0' && s[k] <= '9')
            k++;
    } else {
        return -1;
    }
    if (k < n && s[k] == '.') {
        size_t digits = ++k;
        while (k < n && s[k] >= '0' && s[k] <= '9')
            k++;
        if (k == digits)
            return -1;
    }
    if (k < n && (s[k] == 'e' || s[k] == 'E')) {
        k++;
        if (k < n && (s[k] == '+' || s[k] == '-'))
            k++;
        size_t digits = k;
        while (k < n && s[k] >= '0' && s[k] <= '9')
            k++;
        if (k == digits)
            return -1;
    }
    *i = k;
    return 0;
}

static int literal(const char *s, size_t n, size_t i, const char *word) {
    size_t len = strlen(word);
    return i + len <= n && memcmp(s + i, word, len) == 0;
}

static int32_t new_node(jdoc *d, unsigned char type, size_t start) {
    if (d->count == d->cap) {
        size_t cap = d->cap ? d->cap * 2 : 64;
        jnode *nodes = realloc(d->nodes, cap * sizeof(jnode));
        if (nodes == NULL)
            return -1;
        d->nodes = nodes;
        d->cap = cap;
    }
    jnode *node = &d->nodes[d->count];
    node->type = type;
    node->start = node->end = (uint32_t)start;
    node->kstart = node->kend = 0;
    node->first = node->next = -1;
    return (int32_t)d->count++;
}

static int32_t parse_value(jdoc *d, size_t *i, int depth);

static int32_t parse_container(jdoc *d, size_t *i, int depth, int object) {
    const char *s = d->s;
    size_t n = d->n;
    int32_t self = new_node(d, object ? J_OBJECT : J_ARRAY, *i);
    if (self < 0)
        return -1;
    int32_t last = -1;
    size_t k = skip_ws(s, *i + 1, n);
    char close = object ? '}' : ']';
    if (k < n && s[k] == close) {
        d->nodes[self].end = (uint32_t)(k + 1);
        *i = k + 1;
        return self;
    }
    for (;;) {
        size_t kstart = 0, kend = 0;
        if (object) {
            if (k >= n || s[k] != '"')
                return -1;
            kstart = k;
            if (scan_string(s, n, &k))
                return -1;
            kend = k;
            k = skip_ws(s, k, n);
            if (k >= n || s[k] != ':')
                return -1;
            k = skip_ws(s, k + 1, n);
        }
        int32_t child = parse_value(d, &k, depth + 1);
        if (child < 0)
            return -1;
        d->nodes[child].kstart = (uint32_t)kstart;
        d->nodes[child].kend = (uint32_t)kend;
        if (last < 0)
            d->nodes[self].first = child;
        else
            d->nodes[last].next = child;
        last = child;
        k = skip_ws(s, k, n);
        if (k < n && s[k] == ',') {
            k = skip_ws(s, k + 1, n);
            continue;
        }
        if (k < n && s[k] == close) {
            d->nodes[self].end = (uint32_t)(k + 1);
            *i = k + 1;
            return self;
        }
        return -1;
    }
}

static int32_t parse_value(jdoc *d, size_t *i, int depth) {
    const char *s = d->s;
    size_t n = d->n, k = *i;
    int32_t node;
    if (depth > MAX_DEPTH || k >= n)
        return -1;
    switch (s[k]) {
    case '{':
    case '[':
        return parse_container(d, i, depth, s[k] == '{');
    case '"':
        node = new_node(d, J_STRING, k);
        if (node < 0 || scan_string(s, n, &k))
            return -1;
        break;
    case 't':
    case 'f':
    case 'n':
        if (literal(s, n, k, "true")) {
            node = new_node(d, J_TRUE, k);
            k += 4;
        } else if (literal(s, n, k, "false")) {
            node = new_node(d, J_FALSE, k);
            k += 5;
        } else if (literal(s, n, k, "null")) {
            node = new_node(d, J_NULL, k);
            k += 4;
        } else {
            return -1;
        }
        break;
    default:
        /* Python's json also reads NaN, Infinity and -Infinity. */
        node = new_node(d, J_NUMBER, k);
        if (literal(s, n, k, "NaN"))
            k += 3;
        else if (literal(s, n, k, "Infinity"))
            k += 8;
        else if (literal(s, n, k, "-Infinity"))
            k += 9;
        else if (scan_number(s, n, &k))
            return -1;
        break;
    }
    if (node < 0)
        return -1;
    d->nodes[node].end = (uint32_t)k;
    *i = k;
    return node;
}

/* Parses one JSON text (a RecordIO record's body): the root node's index is 0. */
int json_parse(jdoc *d, const char *s, size_t n) {
    d->s = s;
    d->n = n;
    d->count = 0;
    if (n >= MAX_RECORD)
        return -1;
    size_t i = 0;
    if (n >= 3 && memcmp(s, "\xef\xbb\xbf", 3) == 0)
        i = 3; /* json.loads(bytes) decodes with utf-8-sig */
    i = skip_ws(s, i, n);
    if (parse_value(d, &i, 0) != 0)
        return -1;
    return skip_ws(s, i, n) == n ? 0 : -1;
}

static void put_utf8(buf_t *out, uint32_t cp) {
    char b[4];
    size_t len;
    if (cp < 0x80) {
        b[0] = (char)cp;
        len = 1;
    } else if (cp < 0x800) {
        b[0] = (char)(0xc0 | (cp >> 6));
        b[1] = (char)(0x80 | (cp & 0x3f));
        len = 2;
    } else if (cp < 0x10000) {
        b[0] = (char)(0xe0 | (cp >> 12));
        b[1] = (char)(0x80 | ((cp >> 6) & 0x3f));
        b[2] = (char)(0x80 | (cp & 0x3f));
        len = 3;
    } else {
        b[0] = (char)(0xf0 | (cp >> 18));
        b[1] = (char)(0x80 | ((cp >> 12) & 0x3f));
        b[2] = (char)(0x80 | ((cp >> 6) & 0x3f));
        b[3] = (char)(0x80 | (cp & 0x3f));
        len = 4;
    }
    buf_add(out, b, len);
}

static uint32_t hex4(const char *s) {
    return (uint32_t)(hexval(s[0]) << 12 | hexval(s[1]) << 8 | hexval(s[2]) << 4 | hexval(s[3]));
}

/* Appends the decoded text of the (checked) string token s[start:end] to ``out``; a lone surrogate
 * becomes U+FFFD (it has no UTF-8 form). */
static void unescape(const char *s, size_t start, size_t end, buf_t *out) {
    size_t k = start + 1, stop = end - 1;
    while (k < stop) {
        size_t run = k;
        while (run < stop && s[run] != '\\')
            run++;
        buf_add(out, s + k, run - k);
        k = run;
        if (k >= stop)
            break;
        char e = s[k + 1];
        k += 2;
        switch (e) {
        case 'b': buf_add(out, "\b", 1); break;
        case 'f': buf_add(out, "\f", 1); break;
        case 'n': buf_add(out, "\n", 1); break;
        case 'r': buf_add(out, "\r", 1); break;
        case 't': buf_add(out, "\t", 1); break;
        case 'u': {
            uint32_t cp = hex4(s + k);
            k += 4;
            if (cp >= 0xd800 && cp <= 0xdbff && k + 6 <= stop && s[k] == '\\' && s[k + 1] == 'u') {
                uint32_t low = hex4(s + k + 2);
                if (low >= 0xdc00 && low <= 0xdfff) {
                    cp = 0x10000 + ((cp - 0xd800) << 10) + (low - 0xdc00);
                    k += 6;
                }
            }
            if (cp >= 0xd800 && cp <= 0xdfff)
                cp = 0xfffd;
            put_utf8(out, cp);
            break;
        }
        default: buf_add(out, &e, 1); break; /* " \ / */
        }
    }
}

void json_escape(buf_t *out, const char *s, size_t n) {
    static const char hex[] = "0123456789abcdef";
    buf_add(out, "\"", 1);
    size_t run = 0;
    for (size_t k = 0; k < n; k++) {
        unsigned char c = (unsigned char)s[k];
        if (c >= 0x20 && c != '"' && c != '\\')
            continue;
        buf_add(out, s + run, k - run);
        run = k + 1;
        switch (c) {
        case '"': buf_add(out, "\\\"", 2); break;
        case '\\': buf_add(out, "\\\\", 2); break;
        case '\n': buf_add(out, "\\n", 2); break;
        case '\r': buf_add(out, "\\r", 2); break;
        case '\t': buf_add(out, "\\t", 2); break;
        case '\b': buf_add(out, "\\b", 2); break;
        case '\f': buf_add(out, "\\f", 2); break;
        default: {
            char u[6] = {'\\', 'u', '0', '0', hex[c >> 4], hex[c & 15]};
            buf_add(out, u, 6);
        }
        }
    }
    buf_add(out, s + run, n - run);
    buf_add(out, "\"", 1);
}

void json_cstr(buf_t *out, const char *s) { json_escape(out, s, strlen(s)); }

static int key_is(const jdoc *d, const jnode *node, const char *key) {
    size_t len = strlen(key), klen = node->kend - node->kstart - 2;
    const char *k = d->s + node->kstart + 1;
    if (memchr(k, '\\', klen) == NULL)
        return klen == len && memcmp(k, key, len) == 0;
    buf_t decoded = {0};
    unescape(d->s, node->kstart, node->kend, &decoded);
    int same = !decoded.failed && decoded.len == len && memcmp(decoded.data ? decoded.data : "", key, len) == 0;
    buf_free(&decoded);
    return same;
}

/* An object's member (the last of that name, as a Python dict keeps it), or -1. */
int32_t jget(const jdoc *d, int32_t object, const char *key) {
    if (object < 0 || d->nodes[object].type != J_OBJECT)
        return -1;
    int32_t found = -1;
    for (int32_t c = d->nodes[object].first; c >= 0; c = d->nodes[c].next)
        if (key_is(d, &d->nodes[c], key))
            found = c;
    return found;
}

int32_t jpath(const jdoc *d, int32_t node, const char *const *keys) {
    for (; *keys != NULL && node >= 0; keys++)
        node = jget(d, node, *keys);
    return node;
}

/* The decoded string of a string node into ``out`` (cleared first); -1 if it is no string. */
int jstring(const jdoc *d, int32_t node, buf_t *out) {
    buf_clear(out);
    if (node < 0 || d->nodes[node].type != J_STRING)
        return -1;
    unescape(d->s, d->nodes[node].start, d->nodes[node].end, out);
    buf_add(out, "", 0);
    return out->failed ? -1 : 0;
}

/* A number, or a string holding one (protobuf's JSON for 64-bit integers); NAN if neither. */
double jnumber(const jdoc *d, int32_t node) {
    if (node < 0)
        return NAN;
    const jnode *v = &d->nodes[node];
    char text[64];
    size_t start = v->start, end = v->end;
    if (v->type == J_STRING) {
        start++;
        end--;
    } else if (v->type != J_NUMBER) {
        return NAN;
    }
    if (end - start >= sizeof text || end <= start)
        return NAN;
    memcpy(text, d->s + start, end - start);
    text[end - start] = 0;
    char *stop;
    double value = strtod(text, &stop);
    return *stop == 0 ? value : NAN;
}

/* Python's truth value of the JSON value. */
int jtruthy(const jdoc *d, int32_t node) {
    const jnode *v = &d->nodes[node];
    switch (v->type) {
    case J_NULL:
    case J_FALSE: return 0;
    case J_TRUE: return 1;
    case J_STRING: return v->end - v->start > 2;
    case J_NUMBER: return jnumber(d, node) != 0.0;
    default: return v->first >= 0;
    }
}

static void reencode(const jdoc *d, int32_t node, buf_t *out, buf_t *scratch) {
    const jnode *v = &d->nodes[node];
    switch (v->type) {
    case J_STRING:
        jstring(d, node, scratch);
        json_escape(out, scratch->data ? scratch->data : "", scratch->len);
        return;
    case J_ARRAY:
    case J_OBJECT:
        buf_add(out, v->type == J_ARRAY ? "[" : "{", 1);
        for (int32_t c = v->first; c >= 0; c = d->nodes[c].next) {
            if (c != v->first)
                buf_add(out, ",", 1);
            if (v->type == J_OBJECT) {
                buf_clear(scratch);
                unescape(d->s, d->nodes[c].kstart, d->nodes[c].kend, scratch);
                json_escape(out, scratch->data ? scratch->data : "", scratch->len);
                buf_add(out, ":", 1);
            }
            reencode(d, c, out, scratch);
        }
        buf_add(out, v->type == J_ARRAY ? "]" : "}", 1);
        return;
    default:
        buf_add(out, d->s + v->start, v->end - v->start);
    }
}

static long copy_out(const buf_t *b, char *out, size_t cap) {
    if (b->failed)
        return -3;
    if (b->len > cap)
        return -2;
    if (b->len)
        memcpy(out, b->data, b->len);
    return (long)b->len;
}

/* For tests: the JSON text ``in`` parsed and written again (strings decoded and escaped again);
 * its length, -1 when it is malformed, -2 when ``out`` is too small. */
EXPORT long mesostw_json_reencode(const char *in, size_t len, char *out, size_t cap) {
    jdoc d = {0};
    buf_t text = {0}, scratch = {0};
    long result = -1;
    if (json_parse(&d, in, len) == 0) {
        reencode(&d, 0, &text, &scratch);
        result = copy_out(&text, out, cap);
    }
    jdoc_free(&d);
    buf_free(&text);
    buf_free(&scratch);
    return result;
}

/* ------------------------------------------------------------------ RecordIO */

/* The complete records at the start of ``b``: each one's body as [*start, *start + *length);
 * returns 1 for a record, 0 for none yet, -1 for a malformed header. */
int next_record(const buf_t *b, size_t offset, size_t *start, size_t *length) {
    const char *s = b->data + offset;
    size_t n = b->len - offset;
    const char *newline = n ? memchr(s, '\n', n < MAX_HEADER ? n : MAX_HEADER) : NULL;
    if (newline == NULL)
        return n >= MAX_HEADER ? -1 : 0;
    /* As Python's int(): blanks around, an optional plus sign, digits (single underscores between). */
    size_t k = 0, end = (size_t)(newline - s);
    while (k < end && (s[k] == ' ' || s[k] == '\t' || s[k] == '\r' || s[k] == '\v' || s[k] == '\f'))
        k++;
    if (k < end && s[k] == '+')
        k++;
    size_t digits = k;
    uint64_t value = 0;
    while (k < end && s[k] >= '0' && s[k] <= '9') {
        value = value * 10 + (uint64_t)(s[k] - '0');
        if (value >= MAX_RECORD)
            return -1;
        k++;
        if (k + 1 < end && s[k] == '_' && s[k + 1] >= '0' && s[k + 1] <= '9')
            k++;
    }
    if (k == digits)
        return -1;
    while (k < end && (s[k] == ' ' || s[k] == '\t' || s[k] == '\r' || s[k] == '\v' || s[k] == '\f'))
        k++;
    if (k != end)
        return -1;
    if (n - end - 1 < value)
        return 0;
    *start = offset + end + 1;
    *length = (size_t)value;
    return 1;
}

/* Every complete record in ``b`` is JSON: the number of them, or -1 if any is malformed (then the
 * stream ends and none of them counts, as a ValueError in Python's RecordReader.feed loses them all). */
long check_records(const buf_t *b, jdoc *d) {
    size_t offset = 0, start, length;
    long count = 0;
    int found;
    while ((found = next_record(b, offset, &start, &length)) == 1) {
        if (json_parse(d, b->data + start, length))
            return -1;
        offset = start + length;
        count++;
    }
    return found < 0 ? -1 : count;
}

/* For tests: the records of the RecordIO stream ``in`` re-encoded, each followed by a newline, in
 * ``out``; returns how many, -1 when the stream is malformed, -2 when ``out`` is too small.
 * ``*rest`` is set to how many bytes wait for the rest of a record. */
EXPORT long mesostw_records(const char *in, size_t len, char *out, size_t cap, size_t *rest) {
    buf_t stream = {0}, text = {0}, scratch = {0};
    jdoc d = {0};
    buf_add(&stream, in, len);
    long count = check_records(&stream, &d);
    if (count > 0) {
        size_t offset = 0, start, length;
        while (next_record(&stream, offset, &start, &length) == 1) {
            json_parse(&d, stream.data + start, length);
            reencode(&d, 0, &text, &scratch);
            buf_add(&text, "\n", 1);
            offset = start + length;
        }
        *rest = stream.len - offset;
        long copied = copy_out(&text, out, cap);
        if (copied < 0)
            count = copied;
    } else if (count == 0) {
        *rest = stream.len;
    }
    jdoc_free(&d);
    buf_free(&stream);
    buf_free(&text);
    buf_free(&scratch);
    return count;
}

/* What this library is, for the loader's check that it has the right one. */
EXPORT const char *mesostw_native_version(void) { return "mesostw-native-1"; }
