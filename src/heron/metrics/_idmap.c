/* The probing loops of heron.metrics.id_map.IdMap, over its numpy arrays.
 *
 * Why C: a write looks its ids up in three tables (limiter, series index, head index) and
 * inserts the new ones in each. In numpy every probe step of a batch is a handful of array
 * operations on the ids still walking their chains, ~5-15 us each, so a lookup of 2000 ids cost
 * 0.1-0.3 ms and an insert (with its growth) several times that: in process, 60% of the write
 * path's CPU for a request of new series. Here a batch is one pass over the ids (~10 ns an id).
 *
 * The layout and the hash are the numpy implementation's, so either can read a table the other
 * wrote: `keys` (uint64, 0 = empty) and `vals` (int64), 2^bits slots plus padding (chains do not
 * wrap around), home slot (id * mult) >> (64 - bits), linear probing. Ids given here are nonzero
 * (IdMap keeps id 0 aside). The GIL is held: a batch takes microseconds, less than a hand-off.
 */
#define PY_SSIZE_T_CLEAN
#include <Python.h>
#include <stdint.h>

#define ABI_VERSION 1

#ifndef SOURCE_DIGEST
#define SOURCE_DIGEST ""
#endif

/* The buffers of one call: keys and vals of the table, the ids (and their values or the output). */
static int get_buffers(Py_buffer *b, PyObject **objs, const int *writable, int n, const Py_ssize_t *itemsize) {
    for (int i = 0; i < n; i++) {
        if (PyObject_GetBuffer(objs[i], &b[i], (writable[i] ? PyBUF_WRITABLE : 0) | PyBUF_C_CONTIGUOUS) < 0) {
            while (i--) PyBuffer_Release(&b[i]);
            return -1;
        }
        if (b[i].len % itemsize[i]) {
            PyErr_SetString(PyExc_ValueError, "buffer length is not a multiple of 8");
            for (int j = 0; j <= i; j++) PyBuffer_Release(&b[j]);
            return -1;
        }
    }
    return 0;
}

static void release(Py_buffer *b, int n) {
    for (int i = 0; i < n; i++) PyBuffer_Release(&b[i]);
}

static inline Py_ssize_t home(uint64_t id, uint64_t mult, int bits) {
    return (Py_ssize_t)((id * mult) >> (64 - bits));
}

PyDoc_STRVAR(find_doc,
             "find(keys, mult, bits, ids, out) -> None\n\n"
             "out[i] = the slot holding ids[i], else -1 - the empty slot that ends its chain\n"
             "(-1 - len(keys) when the chain runs past the padding).");

static PyObject *find(PyObject *self, PyObject *args) {
    PyObject *objs[3];
    unsigned long long mult;
    int bits;
    if (!PyArg_ParseTuple(args, "OKiOO", &objs[0], &mult, &bits, &objs[1], &objs[2])) return NULL;
    if (bits < 1 || bits > 62) return PyErr_Format(PyExc_ValueError, "bits out of range: %d", bits);
    Py_buffer b[3];
    static const int writable[3] = {0, 0, 1};
    static const Py_ssize_t size[3] = {8, 8, 8};
    if (get_buffers(b, objs, writable, 3, size)) return NULL;
    const uint64_t *keys = b[0].buf, *ids = b[1].buf;
    int64_t *out = b[2].buf;
    Py_ssize_t nkeys = b[0].len / 8, n = b[1].len / 8;
    if (b[2].len / 8 != n || nkeys < ((Py_ssize_t)1 << bits)) {
        release(b, 3);
        PyErr_SetString(PyExc_ValueError, "find: sizes do not match");
        return NULL;
    }
    for (Py_ssize_t i = 0; i < n; i++) {
        uint64_t id = ids[i];
        Py_ssize_t at = home(id, (uint64_t)mult, bits);
        while (at < nkeys && keys[at] != id && keys[at] != 0) at++;
        out[i] = (at < nkeys && keys[at] == id) ? (int64_t)at : (int64_t)(-1 - at);
    }
    release(b, 3);
    Py_RETURN_NONE;
}

PyDoc_STRVAR(insert_doc,
             "insert(keys, vals, mult, bits, ids, values) -> (inserted, done)\n\n"
             "Set ids[i] -> values[i] in order (an id present, or given twice, keeps the last value;\n"
             "id 0, the empty-slot marker, is skipped: a table's own arrays can be given to rehash);\n"
             "`done` is the count of ids handled: less than len(ids) when a chain ran past the\n"
             "padding (the caller grows the table and gives the rest again).");

static PyObject *insert(PyObject *self, PyObject *args) {
    PyObject *objs[4];
    unsigned long long mult;
    int bits;
    if (!PyArg_ParseTuple(args, "OOKiOO", &objs[0], &objs[1], &mult, &bits, &objs[2], &objs[3])) return NULL;
    if (bits < 1 || bits > 62) return PyErr_Format(PyExc_ValueError, "bits out of range: %d", bits);
    Py_buffer b[4];
    static const int writable[4] = {1, 1, 0, 0};
    static const Py_ssize_t size[4] = {8, 8, 8, 8};
    if (get_buffers(b, objs, writable, 4, size)) return NULL;
    uint64_t *keys = b[0].buf;
    int64_t *vals = b[1].buf;
    const uint64_t *ids = b[2].buf;
    const int64_t *values = b[3].buf;
    Py_ssize_t nkeys = b[0].len / 8, n = b[2].len / 8;
    if (b[1].len != b[0].len || b[3].len / 8 != n || nkeys < ((Py_ssize_t)1 << bits)) {
        release(b, 4);
        PyErr_SetString(PyExc_ValueError, "insert: sizes do not match");
        return NULL;
    }
    Py_ssize_t inserted = 0, i = 0;
    for (; i < n; i++) {
        uint64_t id = ids[i];
        if (!id) continue;
        Py_ssize_t at = home(id, (uint64_t)mult, bits);
        while (at < nkeys && keys[at] != id && keys[at] != 0) at++;
        if (at >= nkeys) break;
        if (keys[at] == 0) {
            keys[at] = id;
            inserted++;
        }
        vals[at] = values[i];
    }
    release(b, 4);
    return Py_BuildValue("(nn)", inserted, i);
}

static PyMethodDef methods[] = {
    {"find", find, METH_VARARGS, find_doc},
    {"insert", insert, METH_VARARGS, insert_doc},
    {NULL, NULL, 0, NULL},
};

static struct PyModuleDef module = {PyModuleDef_HEAD_INIT, "_idmap",
                                    "IdMap's probing loops (heron.metrics.id_map).", -1, methods,
                                    NULL, NULL, NULL, NULL};

PyMODINIT_FUNC PyInit__idmap(void) {
    PyObject *m = PyModule_Create(&module);
    if (!m) return NULL;
    if (PyModule_AddIntConstant(m, "ABI_VERSION", ABI_VERSION) || PyModule_AddStringConstant(m, "SOURCE_DIGEST", SOURCE_DIGEST)) {
        Py_DECREF(m);
        return NULL;
    }
    return m;
}
