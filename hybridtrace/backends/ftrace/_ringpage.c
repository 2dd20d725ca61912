/*
 * The ftrace reader's hot loop in C: trace_pipe_raw pages into the records
 * raw_records.py builds, and due records into TraceLines (raw_reader.py).
 *
 * Optional: the pure-Python code (ring_page.page_records, RecordDecoder,
 * Timeline) is the definition; this module must return exactly what it does
 * (tests/unit/test_ringpage_c.py compares them on recorded and mutated pages).
 * Never reads outside the page: every read is checked against the data end,
 * which is itself clamped to the page's length.
 */
#include "../../pycompat.h"

/* The parts this module's two types share: static, no keyword arguments, one method
 * taking its arguments as an array. */
#define RINGPAGE_TYPE(name, object, dealloc, init, methods, doc)              \
    {                                                                        \
        PyVarObject_HEAD_INIT(NULL, 0)                                       \
        .tp_name = "hybridtrace.backends.ftrace._ringpage." name,            \
        .tp_basicsize = sizeof(object),                                      \
        .tp_dealloc = (destructor)(dealloc),                                 \
        .tp_flags = Py_TPFLAGS_DEFAULT,                                      \
        .tp_doc = doc,                                                       \
        .tp_methods = methods,                                               \
        .tp_init = (initproc)(init),                                         \
        .tp_new = PyType_GenericNew,                                         \
    }
#define FASTCALL_METHOD(name, function, doc)                                 \
    {                                                                        \
        {name, (PyCFunction)(void (*)(void))(function), METH_FASTCALL, doc}, \
        {NULL, NULL, 0, NULL},                                               \
    }

/* A type's __init__ takes positional arguments only: -1 with TypeError otherwise. */
static int positional_only(const char *type, PyObject *kwds)
{
    if (kwds != NULL && PyDict_GET_SIZE(kwds) != 0) {
        PyErr_Format(PyExc_TypeError, "%s takes no keyword arguments", type);
        return -1;
    }
    return 0;
}

#define PADDING 29
#define TIME_EXTEND 30
#define TIME_STAMP 31
#define MAX_DATA_TYPE_LEN 28
#define MISSED_FLAGS 0xC0000000u
#define TS_MSB (((uint64_t)0xF8) << 56)

enum { K_INT = 0, K_DYN = 1, K_REL = 2, K_CHARS = 3 };

typedef struct {
    PyObject *name;   /* key in args */
    char code;        /* struct code: bBhHiIqQ, or 's' for char[N] */
    Py_ssize_t offset;
    Py_ssize_t size;
} Field;

typedef struct {
    PyObject *name;
    int kind;         /* K_DYN, K_REL or K_CHARS */
    Py_ssize_t offset;  /* of the field in the record */
} StrFix;

typedef struct {
    long id;
    PyObject *event, *style;
    Py_ssize_t min_size;
    Py_ssize_t nfields, nstrings;
    Field *fields;
    StrFix *strings;
} Dec;

typedef struct {
    PyObject_HEAD
    int big;
    Py_ssize_t commit_offset, commit_size, data_offset;
    Py_ssize_t ndecs;
    Dec *decs;
    PyObject *no_faults;
} DecoderObject;

static inline uint64_t rd(const unsigned char *p, Py_ssize_t n, int big)
{
    uint64_t v = 0;
    Py_ssize_t i;
    if (big) {
        for (i = 0; i < n; i++)
            v = (v << 8) | p[i];
    } else {
        for (i = n - 1; i >= 0; i--)
            v = (v << 8) | p[i];
    }
    return v;
}

static void dec_clear(DecoderObject *self)
{
    Py_ssize_t i, j;
    if (self->decs != NULL) {
        for (i = 0; i < self->ndecs; i++) {
            Dec *d = &self->decs[i];
            Py_XDECREF(d->event);
            Py_XDECREF(d->style);
            for (j = 0; d->fields != NULL && j < d->nfields; j++)
                Py_XDECREF(d->fields[j].name);
            for (j = 0; d->strings != NULL && j < d->nstrings; j++)
                Py_XDECREF(d->strings[j].name);
            PyMem_Free(d->fields);
            PyMem_Free(d->strings);
        }
        PyMem_Free(self->decs);
        self->decs = NULL;
    }
    self->ndecs = 0;
    Py_CLEAR(self->no_faults);
}

static void dec_dealloc(DecoderObject *self)
{
    dec_clear(self);
    Py_TYPE(self)->tp_free((PyObject *)self);
}

/* dict[key] = value, for a value just made: its reference goes to the dict. A NULL
 * value (its maker failed, with the error set) gives -1, like a failed insert. */
static int set_new_item(PyObject *dict, PyObject *key, PyObject *value)
{
    int rc;
    if (value == NULL)
        return -1;
    rc = PyDict_SetItem(dict, key, value);
    Py_DECREF(value);
    return rc;
}

static int field_size(char code)
{
    switch (code) {
    case 'b': case 'B': return 1;
    case 'h': case 'H': return 2;
    case 'i': case 'I': return 4;
    case 'q': case 'Q': return 8;
    default: return 0;
    }
}

/* Decoder(big_endian, commit_offset, commit_size, data_offset, decoders, no_faults)
 * decoders: [(id, event, style, min_size, ((name, code, offset, size), ...),
 *             ((name, kind, offset), ...)), ...] */
static int dec_init(DecoderObject *self, PyObject *args, PyObject *kwds)
{
    int big;
    Py_ssize_t co, cs, dof, i, j;
    PyObject *list, *no_faults, *seq = NULL;
    if (positional_only("Decoder", kwds) < 0)
        return -1;
    if (!PyArg_ParseTuple(args, "pnnnOO", &big, &co, &cs, &dof, &list, &no_faults))
        return -1;
    if (co < 8 || (cs != 4 && cs != 8) || dof < co + cs) {
        PyErr_SetString(PyExc_ValueError, "unexpected page layout");
        return -1;
    }
    dec_clear(self);
    self->big = big;
    self->commit_offset = co;
    self->commit_size = cs;
    self->data_offset = dof;
    Py_INCREF(no_faults);
    self->no_faults = no_faults;
    seq = PySequence_Fast(list, "decoders must be a sequence");
    if (seq == NULL)
        return -1;
    self->ndecs = PySequence_Fast_GET_SIZE(seq);
    self->decs = PyMem_Calloc(self->ndecs ? self->ndecs : 1, sizeof(Dec));
    if (self->decs == NULL) {
        self->ndecs = 0;
        Py_DECREF(seq);
        PyErr_NoMemory();
        return -1;
    }
    for (i = 0; i < self->ndecs; i++) {
        Dec *d = &self->decs[i];
        PyObject *fields, *strings;
        if (!PyArg_ParseTuple(PySequence_Fast_GET_ITEM(seq, i), "lUUnO!O!", &d->id, &d->event,
                              &d->style, &d->min_size, &PyTuple_Type, &fields,
                              &PyTuple_Type, &strings))
            goto fail;
        Py_INCREF(d->event);
        Py_INCREF(d->style);
        d->fields = PyMem_Calloc(PyTuple_GET_SIZE(fields) + 1, sizeof(Field));
        d->strings = PyMem_Calloc(PyTuple_GET_SIZE(strings) + 1, sizeof(StrFix));
        if (d->fields == NULL || d->strings == NULL) {
            PyErr_NoMemory();
            goto fail;
        }
        for (j = 0; j < PyTuple_GET_SIZE(fields); j++) {
            Field *f = &d->fields[j];
            const char *code;
            if (!PyArg_ParseTuple(PyTuple_GET_ITEM(fields, j), "Usnn", &f->name, &code,
                                  &f->offset, &f->size))
                goto fail;
            Py_INCREF(f->name);
            d->nfields = j + 1;
            f->code = code[0];
            if (code[0] == '\0' || code[1] != '\0' || f->offset < 0 || f->size <= 0
                || (code[0] != 's' && field_size(code[0]) != f->size)
                || f->offset + f->size > d->min_size) {
                PyErr_SetString(PyExc_ValueError, "bad field");
                goto fail;
            }
        }
        for (j = 0; j < PyTuple_GET_SIZE(strings); j++) {
            StrFix *s = &d->strings[j];
            if (!PyArg_ParseTuple(PyTuple_GET_ITEM(strings, j), "Uin", &s->name, &s->kind,
                                  &s->offset))
                goto fail;
            Py_INCREF(s->name);
            d->nstrings = j + 1;
            if (s->kind < K_DYN || s->kind > K_CHARS) {
                PyErr_SetString(PyExc_ValueError, "bad string kind");
                goto fail;
            }
        }
        if (d->min_size < 8) {
            PyErr_SetString(PyExc_ValueError, "min_size below the common fields");
            goto fail;
        }
    }
    Py_DECREF(seq);
    return 0;
fail:
    Py_DECREF(seq);
    dec_clear(self);
    return -1;
}

/* One record's args dict and faults, as RecordDecoder.decode_page builds them. */
static int decode_record(DecoderObject *self, const Dec *d, const unsigned char *page,
                         Py_ssize_t page_len, Py_ssize_t start, Py_ssize_t end,
                         PyObject **args_out, PyObject **faults_out)
{
    Py_ssize_t j;
    PyObject *args = PyDict_New(), *faults = NULL;
    if (args == NULL)
        return -1;
    for (j = 0; j < d->nfields; j++) {
        const Field *f = &d->fields[j];
        const unsigned char *p = page + start + f->offset;  /* within min_size <= end - start */
        PyObject *v;
        uint64_t u;
        if (f->code == 's') {
            v = PyBytes_FromStringAndSize((const char *)p, f->size);
        } else {
            u = rd(p, f->size, self->big);
            switch (f->code) {
            case 'b': v = PyLong_FromLong((int8_t)u); break;
            case 'h': v = PyLong_FromLong((int16_t)u); break;
            case 'i': v = PyLong_FromLong((int32_t)u); break;
            case 'q': v = PyLong_FromLongLong((int64_t)u); break;
            case 'Q': v = PyLong_FromUnsignedLongLong(u); break;
            default: v = PyLong_FromUnsignedLong((unsigned long)u); break;
            }
        }
        if (set_new_item(args, f->name, v) < 0)
            goto fail;
    }
    for (j = 0; j < d->nstrings; j++) {
        const StrFix *s = &d->strings[j];
        PyObject *value = PyDict_GetItemWithError(args, s->name), *text;
        if (value == NULL) {
            if (!PyErr_Occurred())
                PyErr_SetObject(PyExc_KeyError, s->name);
            goto fail;
        }
        if (s->kind == K_CHARS ? !PyBytes_Check(value) : !PyLong_Check(value)) {
            PyErr_SetString(PyExc_TypeError, "a string field's value of the wrong type");
            goto fail;
        }
        if (s->kind == K_CHARS) {
            const char *buf = PyBytes_AS_STRING(value);
            const char *nul = memchr(buf, 0, PyBytes_GET_SIZE(value));
            if (nul != NULL) {
                text = PyBytes_FromStringAndSize(buf, nul - buf);
                if (set_new_item(args, s->name, text) < 0)
                    goto fail;
            }
            continue;
        } else {
            unsigned long loc = PyLong_AsUnsignedLong(value);
            Py_ssize_t length, first, last;
            if (loc == (unsigned long)-1 && PyErr_Occurred())
                goto fail;
            length = (Py_ssize_t)(loc >> 16);
            if (length == 0) {
                if (faults == NULL && (faults = PySet_New(NULL)) == NULL)
                    goto fail;
                if (PySet_Add(faults, s->name) < 0 || PyDict_DelItem(args, s->name) < 0)
                    goto fail;
                continue;
            }
            first = start + (Py_ssize_t)(loc & 0xFFFF) + (s->kind == K_REL ? s->offset + 4 : 0);
            last = first + length < end ? first + length : end;
            if (first > page_len)
                first = page_len;
            if (last > page_len)
                last = page_len;
            if (last < first)
                last = first;
            if (last > first && page[last - 1] == 0)
                last--;
            text = PyBytes_FromStringAndSize((const char *)page + first, last - first);
            if (set_new_item(args, s->name, text) < 0)
                goto fail;
        }
    }
    if (faults != NULL) {
        PyObject *frozen = PyFrozenSet_New(faults);
        Py_DECREF(faults);
        if (frozen == NULL) {
            Py_DECREF(args);
            return -1;
        }
        *faults_out = frozen;
    } else {
        Py_INCREF(self->no_faults);
        *faults_out = self->no_faults;
    }
    *args_out = args;
    return 0;
fail:
    Py_XDECREF(faults);
    Py_DECREF(args);
    return -1;
}

/* A timestamp that may pass 2**64 (Python's ints do not wrap): hi * 2**64 + lo. */
static PyObject *ts_object(uint64_t hi, uint64_t lo)
{
    PyObject *h, *shift, *l, *sum, *shifted;
    if (hi == 0)
        return PyLong_FromUnsignedLongLong(lo);
    h = PyLong_FromUnsignedLongLong(hi);
    shift = PyLong_FromLong(64);
    l = PyLong_FromUnsignedLongLong(lo);
    shifted = (h && shift) ? PyNumber_Lshift(h, shift) : NULL;
    sum = (shifted && l) ? PyNumber_Or(shifted, l) : NULL;
    Py_XDECREF(h);
    Py_XDECREF(shift);
    Py_XDECREF(l);
    Py_XDECREF(shifted);
    return sum;
}

static inline void ts_add(uint64_t *hi, uint64_t *lo, uint64_t x)
{
    *lo += x;
    if (*lo < x)
        (*hi)++;
}

/* decode_page(page, cpu, out) -> (missed, unknown, short): see RecordDecoder.decode_page. */
static PyObject *dec_decode_page(DecoderObject *self, PyObject *const *argv, Py_ssize_t argc)
{
    Py_buffer view;
    PyObject *cpu, *out, *result = NULL;
    const unsigned char *page;
    Py_ssize_t len, pos, end, start_data, unknown = 0, shorts = 0, cached = -1;
    uint64_t hi = 0, lo, commit;
    int big = self->big;

    if (argc != 3) {
        PyErr_SetString(PyExc_TypeError, "decode_page(page, cpu, out)");
        return NULL;
    }
    cpu = argv[1];
    out = argv[2];
    if (!PyList_Check(out)) {
        PyErr_SetString(PyExc_TypeError, "out must be a list");
        return NULL;
    }
    if (PyObject_GetBuffer(argv[0], &view, PyBUF_SIMPLE) < 0)
        return NULL;
    page = view.buf;
    len = view.len;
    if (len < self->commit_offset + self->commit_size) {
        PyErr_SetString(PyExc_ValueError, "page shorter than its header");
        goto done;
    }
    lo = rd(page, 8, big);
    commit = rd(page + self->commit_offset, self->commit_size, big);
    start_data = self->data_offset;
    end = start_data + (Py_ssize_t)(commit & ~(uint64_t)MISSED_FLAGS & 0xFFFFFFFFu);
    if (end > len)
        end = len;
    pos = start_data;
    while (pos + 4 <= end) {
        uint32_t word = (uint32_t)rd(page + pos, 4, big);
        uint32_t type_len = word & 0x1F, delta = word >> 5;
        Py_ssize_t rstart, rend;
        if (type_len >= 1 && type_len <= MAX_DATA_TYPE_LEN) {
            rend = pos + 4 + (Py_ssize_t)type_len * 4;
            if (rend > end)
                break;
            rstart = pos + 4;
        } else if (type_len == 0) {
            uint32_t size;
            if (pos + 8 > end)
                break;
            size = (uint32_t)rd(page + pos + 4, 4, big);
            rend = pos + 4 + (Py_ssize_t)size;
            if (rend <= pos + 8 || rend > end)
                break;
            rstart = pos + 8;
        } else if (type_len == TIME_EXTEND) {
            if (pos + 8 > end)
                break;
            ts_add(&hi, &lo, ((uint64_t)rd(page + pos + 4, 4, big) << 27) | delta);
            pos += 8;
            continue;
        } else if (type_len == TIME_STAMP) {
            if (pos + 8 > end)
                break;
            lo = (((uint64_t)rd(page + pos + 4, 4, big) << 27) | delta) | (lo & TS_MSB);
            hi = 0;
            pos += 8;
            continue;
        } else {  /* PADDING */
            if (delta == 0 || pos + 8 > end)
                break;
            pos += 4 + (Py_ssize_t)rd(page + pos + 4, 4, big);
            continue;
        }
        ts_add(&hi, &lo, delta);
        pos = rend;
        /* the record [rstart, rend) */
        if (rend - rstart < 8) {
            shorts++;
            continue;
        }
        {
            long id = (long)rd(page + rstart, 2, big);
            long tid = (long)(int32_t)rd(page + rstart + 4, 4, big);
            const Dec *d = NULL;
            PyObject *args, *faults, *rec, *ts, *tidobj;
            Py_ssize_t k;
            if (cached >= 0 && self->decs[cached].id == id) {
                d = &self->decs[cached];
            } else {
                for (k = 0; k < self->ndecs; k++) {
                    if (self->decs[k].id == id) {
                        d = &self->decs[k];
                        cached = k;
                        break;
                    }
                }
            }
            if (d == NULL) {
                unknown++;
                continue;
            }
            if (rend - rstart < d->min_size) {
                shorts++;
                continue;
            }
            if (decode_record(self, d, page, len, rstart, rend, &args, &faults) < 0)
                goto done;
            ts = ts_object(hi, lo);
            tidobj = PyLong_FromLong(tid);
            if (ts == NULL || tidobj == NULL) {
                Py_XDECREF(ts);
                Py_XDECREF(tidobj);
                Py_DECREF(args);
                Py_DECREF(faults);
                goto done;
            }
            rec = PyTuple_New(7);
            if (rec == NULL) {
                Py_DECREF(ts);
                Py_DECREF(tidobj);
                Py_DECREF(args);
                Py_DECREF(faults);
                goto done;
            }
            Py_INCREF(cpu);
            Py_INCREF(d->event);
            Py_INCREF(d->style);
            PyTuple_SET_ITEM(rec, 0, ts);
            PyTuple_SET_ITEM(rec, 1, cpu);
            PyTuple_SET_ITEM(rec, 2, tidobj);
            PyTuple_SET_ITEM(rec, 3, d->event);
            PyTuple_SET_ITEM(rec, 4, d->style);
            PyTuple_SET_ITEM(rec, 5, args);
            PyTuple_SET_ITEM(rec, 6, faults);
            if (PyList_Append(out, rec) < 0) {
                Py_DECREF(rec);
                goto done;
            }
            Py_DECREF(rec);
        }
    }
    result = Py_BuildValue("(Knn)", (unsigned long long)(commit & MISSED_FLAGS), unknown, shorts);
done:
    PyBuffer_Release(&view);
    return result;
}

static PyMethodDef dec_methods[] = FASTCALL_METHOD(
    "decode_page", dec_decode_page,
    "decode_page(page, cpu, out) -> (missed flags, unknown records, short records)");

static PyTypeObject DecoderType = RINGPAGE_TYPE(
    "Decoder", DecoderObject, dec_dealloc, dec_init, dec_methods,
    "One instance's event decoders (see raw_records.RecordDecoder).");

/* ---- records into TraceLines ---------------------------------------------- */

#define LINE_SLOTS 12
/* TraceLine's fields, in its order; the record tuple's items fill some of them. */
typedef struct {
    PyObject_HEAD
    PyTypeObject *cls;
    Py_ssize_t offsets[LINE_SLOTS];
    PyObject *defaults[LINE_SLOTS];  /* comm, raw: b""; flags, tgid: None; complete: True */
} LinerObject;

static void liner_dealloc(LinerObject *self)
{
    int i;
    Py_XDECREF(self->cls);
    for (i = 0; i < LINE_SLOTS; i++)
        Py_XDECREF(self->defaults[i]);
    Py_TYPE(self)->tp_free((PyObject *)self);
}

/* Liner(cls, names, defaults): names are cls's 12 slot fields in declaration order;
 * defaults the values of those not taken from a record (None where taken). */
static int liner_init(LinerObject *self, PyObject *args, PyObject *kwds)
{
    PyObject *cls, *names, *defaults;
    int i;
    if (positional_only("Liner", kwds) < 0)
        return -1;
    if (!PyArg_ParseTuple(args, "O!O!O!", &PyType_Type, &cls, &PyTuple_Type, &names,
                          &PyTuple_Type, &defaults))
        return -1;
    if (PyTuple_GET_SIZE(names) != LINE_SLOTS || PyTuple_GET_SIZE(defaults) != LINE_SLOTS) {
        PyErr_SetString(PyExc_ValueError, "expected 12 fields");
        return -1;
    }
    if (((PyTypeObject *)cls)->tp_dictoffset != 0 || ((PyTypeObject *)cls)->tp_new == NULL) {
        PyErr_SetString(PyExc_ValueError, "not a slots class");
        return -1;
    }
    if (slot_offsets(cls, names, self->offsets, LINE_SLOTS) < 0)
        return -1;
    for (i = 0; i < LINE_SLOTS; i++)
        Py_XSETREF(self->defaults[i], Py_NewRef(PyTuple_GET_ITEM(defaults, i)));
    Py_XSETREF(self->cls, (PyTypeObject *)Py_NewRef(cls));
    return 0;
}

/* Record items (ts, cpu, tid, event, style, args, faults) -> TraceLine field index. */
static const int RECORD_TO_FIELD[7] = {3, 2, 1, 4, 7, 5, 8};

/* lines(records) -> [TraceLine(b"", tid, cpu, ts, event, args, b"", style, faults), ...] */
static PyObject *liner_call(LinerObject *self, PyObject *const *argv, Py_ssize_t argc)
{
    PyObject *records, *out;
    Py_ssize_t n, i;
    if (argc != 1 || !PyList_Check(argv[0])) {
        PyErr_SetString(PyExc_TypeError, "lines(records: list)");
        return NULL;
    }
    if (self->cls == NULL) {
        PyErr_SetString(PyExc_ValueError, "Liner not initialised");
        return NULL;
    }
    records = argv[0];
    n = PyList_GET_SIZE(records);
    out = PyList_New(n);
    if (out == NULL)
        return NULL;
    for (i = 0; i < n; i++) {
        PyObject *rec = PyList_GET_ITEM(records, i), *line;
        PyObject *values[LINE_SLOTS];
        int k;
        if (!PyTuple_Check(rec) || PyTuple_GET_SIZE(rec) != 7) {
            PyErr_SetString(PyExc_TypeError, "a record is not a 7-tuple");
            Py_DECREF(out);
            return NULL;
        }
        for (k = 0; k < LINE_SLOTS; k++)
            values[k] = self->defaults[k];
        for (k = 0; k < 7; k++)
            values[RECORD_TO_FIELD[k]] = PyTuple_GET_ITEM(rec, k);
        line = self->cls->tp_alloc(self->cls, 0);
        if (line == NULL) {
            Py_DECREF(out);
            return NULL;
        }
        for (k = 0; k < LINE_SLOTS; k++)
            *(PyObject **)((char *)line + self->offsets[k]) = Py_NewRef(values[k]);
        PyList_SET_ITEM(out, i, line);
    }
    return out;
}

static PyMethodDef liner_methods[] = FASTCALL_METHOD(
    "lines", liner_call, "lines(records) -> TraceLines, as Timeline._lines builds them");

static PyTypeObject LinerType = RINGPAGE_TYPE(
    "Liner", LinerObject, liner_dealloc, liner_init, liner_methods,
    "Builds TraceLines from records without running their __init__.");

static struct PyModuleDef ringpage_module = {
    PyModuleDef_HEAD_INIT, "_ringpage",
    "C versions of the ftrace reader's page decoding (optional; see raw_records.py).",
    -1, NULL, NULL, NULL, NULL, NULL,
};

/* Puts ``type`` into the module as ``name`` (the module then holds a reference). */
static int add_type(PyObject *m, const char *name, PyTypeObject *type)
{
    Py_INCREF(type);
    if (PyModule_AddObject(m, name, (PyObject *)type) < 0) {
        Py_DECREF(type);
        return -1;
    }
    return 0;
}

PyMODINIT_FUNC PyInit__ringpage(void)
{
    PyObject *m;
    if (PyType_Ready(&DecoderType) < 0 || PyType_Ready(&LinerType) < 0)
        return NULL;
    m = PyModule_Create(&ringpage_module);
    if (m == NULL)
        return NULL;
    if (add_type(m, "Decoder", &DecoderType) < 0 || add_type(m, "Liner", &LinerType) < 0) {
        Py_DECREF(m);
        return NULL;
    }
    return m;
}
