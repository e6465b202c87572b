/* heron.metrics._rwdecode: reading protobuf wire format and growing buffers.
 *
 * Every read is bounds-checked; buffers use the raw allocator, so they work without the GIL.
 * Included once, by _rwdecode.c (one translation unit: everything stays static).
 */
#ifndef HERON_RWDECODE_WIRE_H
#define HERON_RWDECODE_WIRE_H

/* ------------------------------------------------------------------------ helpers --- */

/* A growable byte buffer (raw allocator: usable without the GIL). */
typedef struct {
    uint8_t *p;
    size_t n, cap;
} vec;

static int vec_reserve(vec *b, size_t extra) {
    if (b->n + extra <= b->cap) return 0;
    size_t c = b->cap ? b->cap : 1024;
    while (c < b->n + extra) c *= 2;
    uint8_t *q = PyMem_RawRealloc(b->p, c);
    if (!q) return NOMEM;
    b->p = q;
    b->cap = c;
    return 0;
}

static inline int vec_put(vec *b, const void *src, size_t k) {
    if (!k) return 0; /* (memcpy from or to NULL is undefined even for 0 bytes) */
    if (b->n + k > b->cap && vec_reserve(b, k)) return NOMEM;
    memcpy(b->p + b->n, src, k);
    b->n += k;
    return 0;
}

static void vec_free(vec *b) {
    PyMem_RawFree(b->p);
    b->p = NULL;
    b->n = b->cap = 0;
}

/* A protobuf varint of at most 10 bytes that fits 64 bits; 0 on success. */
static inline int rd_varint(const uint8_t **pp, const uint8_t *end, uint64_t *out) {
    const uint8_t *p = *pp;
    uint64_t r = 0;
    for (int shift = 0; shift < 64; shift += 7) {
        if (p >= end) return FALLBACK;
        uint8_t b = *p++;
        if (shift == 63 && b > 1) return FALLBACK;
        r |= (uint64_t)(b & 0x7F) << shift;
        if (b < 0x80) {
            *pp = p;
            *out = r;
            return 0;
        }
    }
    return FALLBACK;
}

/* A length prefix that fits the rest of the buffer. */
static inline int rd_len(const uint8_t **pp, const uint8_t *end, size_t *out) {
    uint64_t v;
    if (rd_varint(pp, end, &v) || v > (uint64_t)(end - *pp)) return FALLBACK;
    *out = (size_t)v;
    return 0;
}

/* Strict UTF-8 (RFC 3629: no overlongs, no surrogates, nothing above U+10FFFF), as protobuf
   checks string fields and as Python's decoder does. */
static int utf8_ok(const uint8_t *s, size_t n) {
    size_t i = 0;
    while (i < n) {
        if (i + 8 <= n) {
            uint64_t w;
            memcpy(&w, s + i, 8);
            if (!(w & 0x8080808080808080ULL)) {
                i += 8;
                continue;
            }
        }
        uint8_t c = s[i];
        if (c < 0x80) {
            i++;
        } else if (c >= 0xC2 && c <= 0xDF) {
            if (i + 1 >= n || (s[i + 1] & 0xC0) != 0x80) return 0;
            i += 2;
        } else if (c >= 0xE0 && c <= 0xEF) {
            if (i + 2 >= n || (s[i + 1] & 0xC0) != 0x80 || (s[i + 2] & 0xC0) != 0x80) return 0;
            if (c == 0xE0 && s[i + 1] < 0xA0) return 0;  /* overlong */
            if (c == 0xED && s[i + 1] >= 0xA0) return 0; /* surrogate */
            i += 3;
        } else if (c >= 0xF0 && c <= 0xF4) {
            if (i + 3 >= n || (s[i + 1] & 0xC0) != 0x80 || (s[i + 2] & 0xC0) != 0x80 ||
                (s[i + 3] & 0xC0) != 0x80)
                return 0;
            if (c == 0xF0 && s[i + 1] < 0x90) return 0;  /* overlong */
            if (c == 0xF4 && s[i + 1] >= 0x90) return 0; /* above U+10FFFF */
            i += 4;
        } else {
            return 0;
        }
    }
    return 1;
}

static inline int bytes_cmp(const uint8_t *a, uint32_t an, const uint8_t *b, uint32_t bn) {
    int c = memcmp(a, b, an < bn ? an : bn);
    if (c) return c;
    return (an > bn) - (an < bn);
}

#endif /* HERON_RWDECODE_WIRE_H */
