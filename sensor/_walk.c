/* Record-chain walks for capture files: the one sequential step of reading a capture.
 *
 * Each record's length gives the next record's position, so this loop cannot be
 * vectorised with numpy. sensor/sources/pcap.py and pcapng.py hold the pure-Python
 * walks that define the behaviour (and are used when this module is not built);
 * tests/sensor/sources/test_walk.py checks both agree on random and hostile input.
 *
 * Safety: every read is bounds-checked against the caller's buffer and walk end,
 * at most `out` capacity positions are written, and every step advances by at least
 * 16 bytes (pcap) or one 4-byte word (pcapng), so the loop always ends.
 */
#define PY_SSIZE_T_CLEAN
#include <Python.h>
#include <stdint.h>
#include <string.h>

static inline uint32_t load_u32(const unsigned char *p, int swap) {
    uint32_t v;
    memcpy(&v, p, 4);
    return swap ? __builtin_bswap32(v) : v;
}

/* The arguments both walks take: (buf, start, walk_end, swap, out). 0, or -1 with an
 * exception set and nothing held. walk_end is clamped to the buffer. */
static int walk_args(PyObject *args, Py_buffer *src, Py_ssize_t *start, Py_ssize_t *walk_end,
                     int *swap, Py_buffer *out) {
    if (!PyArg_ParseTuple(args, "y*nnpw*", src, start, walk_end, swap, out))
        return -1;
    if (out->len % 8 != 0 || *start < 0) {
        PyBuffer_Release(src);
        PyBuffer_Release(out);
        PyErr_SetString(PyExc_ValueError, "out must hold int64 values and start be >= 0");
        return -1;
    }
    if (*walk_end > src->len)
        *walk_end = src->len;
    return 0;
}

/* pcap_walk(buf, start, walk_end, swap, out) -> n
 * Positions of caplen fields (record start + 8) written to `out` (int64): the
 * records whose caplen field lies in [0, walk_end), then the position of the first
 * record not walked. Same result as sensor.sources.pcap.walk_native/walk_struct. */
static PyObject *pcap_walk(PyObject *self, PyObject *args) {
    Py_buffer src, out;
    Py_ssize_t start, walk_end;
    int swap;
    if (walk_args(args, &src, &start, &walk_end, &swap, &out) < 0)
        return NULL;
    Py_ssize_t n = 0;
    const unsigned char *b = (const unsigned char *)src.buf;
    int64_t *pos = (int64_t *)out.buf;
    Py_ssize_t cap = out.len / 8;
    int64_t p = (int64_t)start + 8;
    Py_BEGIN_ALLOW_THREADS
    while (n < cap) {
        pos[n++] = p;
        if (p + 4 > (int64_t)walk_end)
            break;
        int64_t step = 16 + (int64_t)load_u32(b + p, swap);
        /* each load waits for the previous one: guess that the next records are as long
           as this one and fetch ahead (a hint only; it never faults) */
        if (p + 2 * step < (int64_t)walk_end && p + 2 * step > 0)
            __builtin_prefetch(b + p + 2 * step);
        p += step;
    }
    Py_END_ALLOW_THREADS
    PyBuffer_Release(&src);
    PyBuffer_Release(&out);
    return PyLong_FromSsize_t(n);
}

/* pcapng_walk(buf, start, walk_end, swap, out) -> n
 * Word positions (relative to start) of blocks whose 8-byte header lies inside
 * [start, start + (walk_end - start) // 4 * 4), then the first block not walked. A block
 * length below 4 advances one word. Same result as sensor.sources.pcapng.walk_native. */
static PyObject *pcapng_walk(PyObject *self, PyObject *args) {
    Py_buffer src, out;
    Py_ssize_t start, walk_end;
    int swap;
    if (walk_args(args, &src, &start, &walk_end, &swap, &out) < 0)
        return NULL;
    Py_ssize_t n = 0;
    const unsigned char *b = (const unsigned char *)src.buf;
    int64_t *pos = (int64_t *)out.buf;
    Py_ssize_t cap = out.len / 8;
    int64_t nwords = walk_end > start ? (int64_t)(walk_end - start) / 4 : 0;
    int64_t w = 0;
    Py_BEGIN_ALLOW_THREADS
    while (n < cap) {
        pos[n++] = w;
        if (w + 1 >= nwords)
            break;
        int64_t step = (int64_t)(load_u32(b + start + 4 * (w + 1), swap) >> 2);
        w += step ? step : 1;
    }
    Py_END_ALLOW_THREADS
    PyBuffer_Release(&src);
    PyBuffer_Release(&out);
    return PyLong_FromSsize_t(n);
}

static PyMethodDef methods[] = {
    {"pcap_walk", pcap_walk, METH_VARARGS, "Walk classic pcap record headers."},
    {"pcapng_walk", pcapng_walk, METH_VARARGS, "Walk pcapng block headers."},
    {NULL, NULL, 0, NULL},
};

static struct PyModuleDef module = {
    PyModuleDef_HEAD_INIT, "_walk", "Record-chain walks for capture files.", -1, methods,
};

PyMODINIT_FUNC PyInit__walk(void) { return PyModule_Create(&module); }
