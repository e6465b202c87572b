/*
 * heron.metrics._rwdecode: Prometheus remote write 1.0 (`prometheus.WriteRequest`, already
 * snappy-decompressed) walked once in C into the columns `remote_write.DecodedWrite` needs.
 *
 * Why hand-written C: no library decodes protobuf into columnar arrays without a Python object
 * per message (upb, protobuf's C runtime, still builds a wrapper per Label and Sample when read
 * from Python), and the numpy walk this replaces (remote_write_wire.py, remote_write_labels.py)
 * spends most of a request in per-step array overhead while holding the GIL. Ingest throughput
 * on a busy server is set by the CPU a request spends under the GIL, so this is the lever.
 *
 * What it does, in three phases:
 *   A (GIL released when asked): every TimeSeries' label byte range, its samples (value bits
 *     and timestamp) into flat buffers, exemplar and metadata byte ranges, the histogram count;
 *   B (GIL held): the label-cache lookup (`LabelsCache.entries`: label bytes -> (labels, id));
 *   C (GIL released when asked): for the series not in the cache, their Label messages are
 *     parsed, UTF-8 checked, sorted by (name, value), checked for duplicate names and
 *     `__name__`, hashed (series id: BLAKE2b-64 over `name\xffvalue\xff...`, exactly
 *     heron.metrics.model.series_id) and laid out as flat Arrow-ready string buffers;
 *   then (GIL held) their label tuples `(("__name__", v), ...)`, with equal strings and pairs
 *     shared within the request.
 *
 * It accepts a strict subset of the input the pure-Python decoder accepts: the layouts that
 * decoder takes on its fast path (labels first, then samples as `09 <f64> 10 <varint>` or
 * `10 <varint>`, then exemplars/histograms; metadata at the top level) with every varint and
 * length well formed (labels out of order are sorted here, as the Python path sorts them).
 * Anything else (other fields or orders, truncation, invalid UTF-8, duplicate names, a missing
 * __name__, varints over 10 bytes) returns None and the caller decodes with the Python path,
 * which also words every error message. Every read is bounds-checked against the buffer.
 *
 * BLAKE2b (_rwdecode_blake2b.h) is written from RFC 7693; the tests check it against hashlib.
 * The wire readers and buffers are in _rwdecode_wire.h.
 */
#define PY_SSIZE_T_CLEAN
#include <Python.h>
#include <stdint.h>
#include <string.h>

#define ABI_VERSION 1
#define FALLBACK 1
#define NOMEM 2

#include "_rwdecode_blake2b.h"
#include "_rwdecode_wire.h"

/* ------------------------------------------------------------------ phase A: walk --- */

typedef struct {
    const uint8_t *base;
    size_t size;
    vec ranges;  /* per series: uint32 label start, label end */
    vec counts;  /* per series: int64 samples */
    vec ts;      /* per sample: int64 */
    vec vals;    /* per sample: uint64 bits of the float64 */
    vec ex;      /* per exemplar: uint32 series, start, end */
    vec meta;    /* per metadata: uint32 start, end */
    int64_t hist;
    uint32_t nseries;
} walk_t;

/* One Sample as the Python fast path takes it: `09 <8 bytes> 10 <varint>` or `10 <varint>`,
   the varint ending exactly at the end of the message. */
static inline int rd_sample(const uint8_t *p, const uint8_t *end, uint64_t *bits, int64_t *ts) {
    *bits = 0;
    if (p < end && *p == 0x09) {
        if (end - p < 10) return FALLBACK;
        *bits = load64(p + 1);
        p += 9;
    }
    if (p >= end || *p != 0x10) return FALLBACK;
    p++;
    uint64_t v;
    if (rd_varint(&p, end, &v) || p != end) return FALLBACK;
    *ts = (int64_t)v;
    return 0;
}

static int walk_series(walk_t *w, const uint8_t *p, const uint8_t *end) {
    const uint8_t *base = w->base;
    uint32_t lab_start = (uint32_t)(p - base), lab_end = lab_start;
    int state = 0; /* 0 labels, 1 samples, 2 exemplars and histograms (the fast path's order) */
    int64_t count = 0;
    while (p < end) {
        uint8_t tag = *p++;
        size_t len;
        if (rd_len(&p, end, &len)) return FALLBACK;
        const uint8_t *body = p;
        p += len;
        if (tag == 0x0A) {
            if (state > 0) return FALLBACK;
            lab_end = (uint32_t)(p - base);
        } else if (tag == 0x12) {
            if (state > 1) return FALLBACK;
            state = 1;
            uint64_t bits;
            int64_t ts;
            if (rd_sample(body, p, &bits, &ts)) return FALLBACK;
            if (vec_put(&w->ts, &ts, 8) || vec_put(&w->vals, &bits, 8)) return NOMEM;
            count++;
        } else if (tag == 0x1A) {
            state = 2;
            uint32_t e[3] = {w->nseries, (uint32_t)(body - base), (uint32_t)(p - base)};
            if (vec_put(&w->ex, e, sizeof(e))) return NOMEM;
        } else if (tag == 0x22) {
            state = 2;
            w->hist++;
        } else {
            return FALLBACK;
        }
    }
    uint32_t r[2] = {lab_start, lab_end};
    if (vec_put(&w->ranges, r, sizeof(r)) || vec_put(&w->counts, &count, 8)) return NOMEM;
    w->nseries++;
    return 0;
}

static int walk(walk_t *w) {
    const uint8_t *p = w->base, *end = w->base + w->size;
    while (p < end) {
        uint8_t tag = *p++;
        size_t len;
        if (rd_len(&p, end, &len)) return FALLBACK;
        const uint8_t *body = p;
        p += len;
        int rc;
        if (tag == 0x0A) {
            if ((rc = walk_series(w, body, p))) return rc;
        } else if (tag == 0x1A) {
            uint32_t m[2] = {(uint32_t)(body - w->base), (uint32_t)(p - w->base)};
            if (vec_put(&w->meta, m, sizeof(m))) return NOMEM;
        } else {
            return FALLBACK;
        }
    }
    return 0;
}

/* ------------------------------------------------- phase C: labels of new series --- */

typedef struct {
    uint32_t no, nl, vo, vl; /* name and value: offset into the request, length */
} span;

typedef struct {
    const uint8_t *base;
    vec spans;   /* kept labels of every new series, sorted per series */
    vec sets;    /* int32 offsets into spans per new series (+1) */
    vec ids;     /* uint64 per new series */
    vec ndata, noffs, vdata, voffs, mdata, moffs; /* flat Arrow string buffers (int32 offsets) */
} labels_t;

static int parse_label(const uint8_t *base, const uint8_t *p, const uint8_t *end, span *out) {
    const uint8_t *name = p, *value = p;
    size_t nl = 0, vl = 0;
    while (p < end) {
        uint8_t tag = *p++;
        size_t len;
        if (rd_len(&p, end, &len)) return FALLBACK;
        if (tag == 0x0A) {
            name = p;
            nl = len;
        } else if (tag == 0x12) {
            value = p;
            vl = len;
        } else {
            return FALLBACK;
        }
        p += len;
    }
    if (!utf8_ok(name, nl) || !utf8_ok(value, vl)) return FALLBACK;
    out->no = (uint32_t)(name - base);
    out->nl = (uint32_t)nl;
    out->vo = (uint32_t)(value - base);
    out->vl = (uint32_t)vl;
    return 0;
}

static inline int span_cmp(const uint8_t *base, const span *a, const span *b) {
    int c = bytes_cmp(base + a->no, a->nl, base + b->no, b->nl);
    return c ? c : bytes_cmp(base + a->vo, a->vl, base + b->vo, b->vl);
}

static int put_off(vec *offs, vec *data) {
    int32_t o = (int32_t)data->n;
    return vec_put(offs, &o, 4);
}

/* The label set of one new series, whose Label messages span [p, end). */
static int new_series(labels_t *L, const uint8_t *p, const uint8_t *end) {
    const uint8_t *base = L->base;
    size_t first = L->spans.n / sizeof(span);
    while (p < end) {
        if (*p++ != 0x0A) return FALLBACK; /* as the walk checked: only labels in this range */
        size_t len;
        if (rd_len(&p, end, &len)) return FALLBACK;
        span s;
        if (parse_label(base, p, p + len, &s)) return FALLBACK;
        p += len;
        if (s.vl && vec_put(&L->spans, &s, sizeof(s))) return NOMEM;
    }
    span *sp = (span *)L->spans.p + first;
    size_t k = L->spans.n / sizeof(span) - first;
    for (size_t i = 1; i < k; i++) { /* insertion sort: senders send them sorted */
        if (span_cmp(base, &sp[i - 1], &sp[i]) <= 0) continue;
        span x = sp[i];
        size_t j = i;
        while (j > 0 && span_cmp(base, &sp[j - 1], &x) > 0) {
            sp[j] = sp[j - 1];
            j--;
        }
        sp[j] = x;
    }
    int has_name = 0;
    b2b_state h;
    b2b_init8(&h);
    static const uint8_t sep = 0xFF;
    for (size_t i = 0; i < k; i++) {
        if (i && bytes_cmp(base + sp[i - 1].no, sp[i - 1].nl, base + sp[i].no, sp[i].nl) == 0)
            return FALLBACK; /* duplicate name: the Python path words the error */
        if (sp[i].nl == 8 && memcmp(base + sp[i].no, "__name__", 8) == 0) {
            has_name = 1;
            if (vec_put(&L->mdata, base + sp[i].vo, sp[i].vl) || put_off(&L->moffs, &L->mdata)) return NOMEM;
        }
        b2b_update(&h, base + sp[i].no, sp[i].nl);
        b2b_update(&h, &sep, 1);
        b2b_update(&h, base + sp[i].vo, sp[i].vl);
        b2b_update(&h, &sep, 1);
        if (vec_put(&L->ndata, base + sp[i].no, sp[i].nl) || put_off(&L->noffs, &L->ndata) ||
            vec_put(&L->vdata, base + sp[i].vo, sp[i].vl) || put_off(&L->voffs, &L->vdata))
            return NOMEM;
    }
    if (!has_name) return FALLBACK; /* missing __name__: the Python path words the error */
    if (L->ndata.n > INT32_MAX || L->vdata.n > INT32_MAX || L->spans.n / sizeof(span) > INT32_MAX)
        return FALLBACK;
    uint64_t id = b2b_final(&h);
    int32_t set_end = (int32_t)(L->spans.n / sizeof(span));
    if (vec_put(&L->ids, &id, 8) || vec_put(&L->sets, &set_end, 4)) return NOMEM;
    return 0;
}

static int decode_new(labels_t *L, const uint32_t *ranges, const uint32_t *miss, size_t nmiss) {
    int32_t zero = 0;
    if (vec_put(&L->sets, &zero, 4) || vec_put(&L->noffs, &zero, 4) || vec_put(&L->voffs, &zero, 4) ||
        vec_put(&L->moffs, &zero, 4))
        return NOMEM;
    for (size_t j = 0; j < nmiss; j++) {
        uint32_t i = miss[j];
        int rc = new_series(L, L->base + ranges[2 * i], L->base + ranges[2 * i + 1]);
        if (rc) return rc;
    }
    return 0;
}

/* ------------------------------------- shared strings and pairs of one request --- */

typedef struct {
    const uint8_t *a, *b; /* b == NULL: a string; else a (name, value) pair */
    uint32_t an, bn;
    uint64_t h;
    PyObject *obj;
} slot;

typedef struct {
    slot *slots;
    size_t mask, used;
} table;

/* A hash of a short byte string, 8 bytes per step (only for this table: not stable, not
   exposed). */
static inline uint64_t hash_bytes(const uint8_t *p, size_t n, uint64_t h) {
    h ^= n * 0x9E3779B97F4A7C15ULL;
    while (n >= 8) {
        h = (h ^ load64(p)) * 0xBF58476D1CE4E5B9ULL;
        h ^= h >> 31;
        p += 8;
        n -= 8;
    }
    uint64_t t = 0;
    for (size_t i = 0; i < n; i++) t |= (uint64_t)p[i] << (8 * i);
    h = (h ^ t) * 0x94D049BB133111EBULL;
    return h ^ (h >> 29);
}

static int table_init(table *t) {
    t->mask = 255;
    t->used = 0;
    t->slots = PyMem_Calloc(t->mask + 1, sizeof(slot));
    return t->slots ? 0 : NOMEM;
}

static void table_free(table *t) {
    if (!t->slots) return;
    for (size_t i = 0; i <= t->mask; i++) Py_XDECREF(t->slots[i].obj);
    PyMem_Free(t->slots);
    t->slots = NULL;
}

static inline int slot_is(const slot *s, uint64_t h, const uint8_t *a, uint32_t an, const uint8_t *b, uint32_t bn) {
    return s->h == h && s->an == an && s->bn == bn && (s->b == NULL) == (b == NULL) &&
           memcmp(s->a, a, an) == 0 && (!b || memcmp(s->b, b, bn) == 0);
}

/* Keep the table at most half full (doubling it). */
static int table_grow(table *t) {
    if (2 * (t->used + 1) <= t->mask + 1) return 0;
    size_t cap = 2 * (t->mask + 1);
    slot *fresh = PyMem_Calloc(cap, sizeof(slot));
    if (!fresh) return NOMEM;
    for (size_t i = 0; i <= t->mask; i++) {
        if (!t->slots[i].obj) continue;
        size_t j = (size_t)t->slots[i].h & (cap - 1);
        while (fresh[j].obj) j = (j + 1) & (cap - 1);
        fresh[j] = t->slots[i];
    }
    PyMem_Free(t->slots);
    t->slots = fresh;
    t->mask = cap - 1;
    return 0;
}

/* The object stored for (a, b), borrowed, or NULL. */
static PyObject *table_get(table *t, uint64_t h, const uint8_t *a, uint32_t an, const uint8_t *b, uint32_t bn) {
    for (size_t i = (size_t)h & t->mask;; i = (i + 1) & t->mask) {
        slot *s = &t->slots[i];
        if (!s->obj) return NULL;
        if (slot_is(s, h, a, an, b, bn)) return s->obj;
    }
}

/* Store `obj` (a new reference, stolen) for (a, b), known absent. */
static int table_put(table *t, uint64_t h, const uint8_t *a, uint32_t an, const uint8_t *b, uint32_t bn,
                     PyObject *obj) {
    if (table_grow(t)) {
        Py_DECREF(obj);
        return NOMEM;
    }
    size_t i = (size_t)h & t->mask;
    while (t->slots[i].obj) i = (i + 1) & t->mask;
    slot *s = &t->slots[i];
    s->a = a, s->an = an, s->b = b, s->bn = bn, s->h = h, s->obj = obj;
    t->used++;
    return 0;
}

static PyObject *shared_str(table *t, const uint8_t *p, uint32_t n) {
    uint64_t h = hash_bytes(p, n, 0);
    PyObject *o = table_get(t, h, p, n, NULL, 0);
    if (o) return Py_NewRef(o);
    o = PyUnicode_DecodeUTF8((const char *)p, n, "strict");
    if (!o || table_put(t, h, p, n, NULL, 0, Py_NewRef(o))) {
        Py_XDECREF(o);
        return NULL;
    }
    return o;
}

/* The (name, value) tuple of a label, one per distinct pair in the request (a position with few
   values, such as job or instance, shares its pairs); untracked by the GC, as the collector
   itself would untrack a tuple of strings at its first pass. */
static PyObject *shared_pair(table *t, const uint8_t *base, const span *sp) {
    const uint8_t *name = base + sp->no, *value = base + sp->vo;
    uint64_t h = hash_bytes(value, sp->vl, hash_bytes(name, sp->nl, 1));
    PyObject *pair = table_get(t, h, name, sp->nl, value, sp->vl);
    if (pair) return Py_NewRef(pair);
    PyObject *k = shared_str(t, name, sp->nl);
    if (!k) return NULL;
    PyObject *v = PyUnicode_DecodeUTF8((const char *)value, sp->vl, "strict");
    if (!v) {
        Py_DECREF(k);
        return NULL;
    }
    pair = PyTuple_Pack(2, k, v);
    Py_DECREF(k);
    Py_DECREF(v);
    if (!pair) return NULL;
    PyObject_GC_UnTrack(pair);
    if (table_put(t, h, name, sp->nl, value, sp->vl, Py_NewRef(pair))) {
        Py_DECREF(pair);
        return NULL;
    }
    return pair;
}

/* ----------------------------------------------------------------- entry point --- */

static PyObject *bytes_of(const vec *b) {
    return PyByteArray_FromStringAndSize(b->n ? (const char *)b->p : "", (Py_ssize_t)b->n);
}

PyDoc_STRVAR(decode_v1_doc,
"decode_v1(buf, entries, release_gil) -> tuple | None\n\n"
"Walk a decompressed WriteRequest; look series up in `entries` (label bytes -> (labels, id)).\n"
"None: a layout or content left to the Python decoder (which also words errors). Else\n"
"(series, ids, counts, ts, values, histograms, exemplars [(i, start, end)], metadata\n"
"[(start, end)], miss_rows, miss_keys, new_series, new_ids, names, name_offsets, values,\n"
"value_offsets, metrics, metric_offsets, set_offsets): arrays as bytearrays (native order).");

static PyObject *decode_v1(PyObject *self, PyObject *args) {
    Py_buffer view;
    PyObject *entries;
    int release;
    if (!PyArg_ParseTuple(args, "y*O!p", &view, &PyDict_Type, &entries, &release)) return NULL;
    PyObject *result = NULL, *series = NULL, *keys = NULL, *new_list = NULL, *ex = NULL, *meta = NULL;
    PyObject *ids = NULL, *rows = NULL;
    walk_t w;
    memset(&w, 0, sizeof(w));
    labels_t L;
    memset(&L, 0, sizeof(L));
    vec miss = {0};
    table shared = {0};
    int rc = 0;
    if ((size_t)view.len > (size_t)INT32_MAX) {
        rc = FALLBACK;
        goto done;
    }
    w.base = L.base = view.buf;
    w.size = (size_t)view.len;
    if (release) {
        Py_BEGIN_ALLOW_THREADS rc = walk(&w);
        Py_END_ALLOW_THREADS
    } else {
        rc = walk(&w);
    }
    if (rc) goto done;
    /* phase B: the label cache */
    uint32_t n = w.nseries;
    const uint32_t *ranges = (const uint32_t *)w.ranges.p;
    if (!(series = PyList_New(n)) || !(keys = PyList_New(0))) goto error;
    if (!(ids = PyByteArray_FromStringAndSize(NULL, (Py_ssize_t)n * 8))) goto error;
    uint64_t *id_out = (uint64_t *)PyByteArray_AS_STRING(ids);
    for (uint32_t i = 0; i < n; i++) {
        PyObject *key = PyBytes_FromStringAndSize((const char *)w.base + ranges[2 * i],
                                                  ranges[2 * i + 1] - ranges[2 * i]);
        if (!key) goto error;
        PyObject *hit = PyDict_GetItemWithError(entries, key);
        if (hit && PyTuple_CheckExact(hit) && PyTuple_GET_SIZE(hit) == 2 &&
            PyLong_CheckExact(PyTuple_GET_ITEM(hit, 1))) {
            Py_INCREF(hit);
            uint64_t sid = PyLong_AsUnsignedLongLong(PyTuple_GET_ITEM(hit, 1));
            if (sid == (uint64_t)-1 && PyErr_Occurred()) {
                Py_DECREF(hit);
                Py_DECREF(key);
                goto error;
            }
            id_out[i] = sid;
            PyList_SET_ITEM(series, i, Py_NewRef(PyTuple_GET_ITEM(hit, 0)));
            Py_DECREF(hit);
            Py_DECREF(key);
            continue;
        }
        if (!hit && PyErr_Occurred()) {
            Py_DECREF(key);
            goto error;
        }
        PyList_SET_ITEM(series, i, Py_NewRef(Py_None));
        int bad = PyList_Append(keys, key);
        Py_DECREF(key);
        if (bad || vec_put(&miss, &i, 4)) goto error;
    }
    /* phase C: new series */
    size_t nmiss = miss.n / 4;
    if (nmiss) {
        if (release) {
            Py_BEGIN_ALLOW_THREADS rc = decode_new(&L, ranges, (const uint32_t *)miss.p, nmiss);
            Py_END_ALLOW_THREADS
        } else {
            rc = decode_new(&L, ranges, (const uint32_t *)miss.p, nmiss);
        }
        if (rc) goto done;
        if (table_init(&shared) || !(new_list = PyList_New(nmiss))) goto error;
        const span *sp = (const span *)L.spans.p;
        const int32_t *sets = (const int32_t *)L.sets.p;
        const uint64_t *new_ids = (const uint64_t *)L.ids.p;
        for (size_t j = 0; j < nmiss; j++) {
            int32_t a = sets[j], z = sets[j + 1];
            PyObject *tup = PyTuple_New(z - a);
            if (!tup) goto error;
            PyList_SET_ITEM(new_list, j, tup);
            for (int32_t l = a; l < z; l++) {
                PyObject *pair = shared_pair(&shared, L.base, &sp[l]);
                if (!pair) goto error;
                PyTuple_SET_ITEM(tup, l - a, pair);
            }
            PyObject_GC_UnTrack(tup); /* holds only untracked pairs */
            uint32_t i = ((const uint32_t *)miss.p)[j];
            id_out[i] = new_ids[j];
            if (PyList_SetItem(series, i, Py_NewRef(tup))) goto error;
        }
        if (!(rows = PyByteArray_FromStringAndSize(NULL, (Py_ssize_t)nmiss * 8))) goto error;
        int64_t *r = (int64_t *)PyByteArray_AS_STRING(rows);
        for (size_t j = 0; j < nmiss; j++) r[j] = ((const uint32_t *)miss.p)[j];
    } else {
        rows = Py_NewRef(Py_None);
        new_list = PyList_New(0);
        if (!new_list) goto error;
    }
    /* exemplar and metadata ranges (decoded by the caller) */
    size_t nex = w.ex.n / 12, nmeta = w.meta.n / 8;
    if (!(ex = PyList_New(nex)) || !(meta = PyList_New(nmeta))) goto error;
    for (size_t j = 0; j < nex; j++) {
        const uint32_t *e = (const uint32_t *)w.ex.p + 3 * j;
        PyObject *t = Py_BuildValue("(III)", e[0], e[1], e[2]);
        if (!t) goto error;
        PyList_SET_ITEM(ex, j, t);
    }
    for (size_t j = 0; j < nmeta; j++) {
        const uint32_t *m = (const uint32_t *)w.meta.p + 2 * j;
        PyObject *t = Py_BuildValue("(II)", m[0], m[1]);
        if (!t) goto error;
        PyList_SET_ITEM(meta, j, t);
    }
    result = Py_BuildValue("(OONNNLOOOOONNNNNNNN)", series, ids, bytes_of(&w.counts), bytes_of(&w.ts),
                           bytes_of(&w.vals), (long long)w.hist, ex, meta, rows, keys, new_list,
                           bytes_of(&L.ids), bytes_of(&L.ndata), bytes_of(&L.noffs), bytes_of(&L.vdata),
                           bytes_of(&L.voffs), bytes_of(&L.mdata), bytes_of(&L.moffs), bytes_of(&L.sets));
    goto done;
error:
    rc = -1;
done:
    if (rc == NOMEM && !PyErr_Occurred()) PyErr_NoMemory();
    if (rc == FALLBACK) {
        Py_CLEAR(result);
        result = Py_NewRef(Py_None);
    }
    Py_XDECREF(series);
    Py_XDECREF(keys);
    Py_XDECREF(new_list);
    Py_XDECREF(ex);
    Py_XDECREF(meta);
    Py_XDECREF(ids);
    Py_XDECREF(rows);
    table_free(&shared);
    vec_free(&miss);
    vec_free(&w.ranges), vec_free(&w.counts), vec_free(&w.ts), vec_free(&w.vals), vec_free(&w.ex),
        vec_free(&w.meta);
    vec_free(&L.spans), vec_free(&L.sets), vec_free(&L.ids), vec_free(&L.ndata), vec_free(&L.noffs),
        vec_free(&L.vdata), vec_free(&L.voffs), vec_free(&L.mdata), vec_free(&L.moffs);
    PyBuffer_Release(&view);
    return result;
}

PyDoc_STRVAR(blake2b64_doc, "blake2b64(data) -> int: BLAKE2b with an 8-byte digest, read little-endian.");

static PyObject *blake2b64(PyObject *self, PyObject *args) {
    Py_buffer view;
    if (!PyArg_ParseTuple(args, "y*", &view)) return NULL;
    b2b_state h;
    b2b_init8(&h);
    b2b_update(&h, view.buf, (size_t)view.len);
    uint64_t d = b2b_final(&h);
    PyBuffer_Release(&view);
    return PyLong_FromUnsignedLongLong(d);
}

static PyMethodDef methods[] = {
    {"decode_v1", decode_v1, METH_VARARGS, decode_v1_doc},
    {"blake2b64", blake2b64, METH_VARARGS, blake2b64_doc},
    {NULL, NULL, 0, NULL}};

static struct PyModuleDef module = {PyModuleDef_HEAD_INIT, "_rwdecode",
                                    "Remote write 1.0 decoding in C (see the source's header).", -1, methods,
                                    NULL, NULL, NULL, NULL};

PyMODINIT_FUNC PyInit__rwdecode(void) {
    PyObject *m = PyModule_Create(&module);
#ifndef SOURCE_DIGEST
#define SOURCE_DIGEST "" /* built by hand: not checked against the source */
#endif
    if (m && (PyModule_AddIntConstant(m, "ABI_VERSION", ABI_VERSION) < 0 ||
              PyModule_AddStringConstant(m, "SOURCE_DIGEST", SOURCE_DIGEST) < 0))
        Py_CLEAR(m);
    return m;
}
