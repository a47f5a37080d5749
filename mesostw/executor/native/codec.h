/* The native command executor's buffers, JSON and RecordIO (codec.c), shared by the executor
 * (executor.c) and the library the tests load with ctypes. */
#ifndef MESOSTW_CODEC_H
#define MESOSTW_CODEC_H

#include <stddef.h>
#include <stdint.h>

#define EXPORT __attribute__((visibility("default")))
/* A record longer than this ends the stream (the agent sends a few kilobytes). */
#define MAX_RECORD (64u << 20)

typedef struct {
    char *data;
    size_t len, cap;
    int failed;
} buf_t;

enum { J_NULL, J_FALSE, J_TRUE, J_NUMBER, J_STRING, J_ARRAY, J_OBJECT };

typedef struct {
    unsigned char type;
    uint32_t start, end;   /* the value's text (strings with their quotes) */
    uint32_t kstart, kend; /* an object member's key, with its quotes */
    int32_t first, next;   /* first child, next sibling */
} jnode;

typedef struct {
    const char *s;
    size_t n;
    jnode *nodes;
    size_t count, cap;
} jdoc;

int buf_reserve(buf_t *b, size_t more);
void buf_add(buf_t *b, const char *s, size_t n);
void buf_str(buf_t *b, const char *s);
void buf_printf(buf_t *b, const char *format, ...);
void buf_clear(buf_t *b);
void buf_free(buf_t *b);
void buf_consume(buf_t *b, size_t n);
void jdoc_free(jdoc *d);
int json_parse(jdoc *d, const char *s, size_t n);
void json_escape(buf_t *out, const char *s, size_t n);
void json_cstr(buf_t *out, const char *s);
int32_t jget(const jdoc *d, int32_t object, const char *key);
int32_t jpath(const jdoc *d, int32_t node, const char *const *keys);
int jstring(const jdoc *d, int32_t node, buf_t *out);
double jnumber(const jdoc *d, int32_t node);
int jtruthy(const jdoc *d, int32_t node);
int next_record(const buf_t *b, size_t offset, size_t *start, size_t *length);
long check_records(const buf_t *b, jdoc *d);

#endif
