/*
 * What hybridtrace's optional C modules (setup.py) include first: Python's API
 * with Py_ssize_t lengths, Py_NewRef and Py_XNewRef where Python is older than 3.10 and
 * PyObject_Vectorcall where it is older than 3.9; and how they all read the
 * slots of attrs' classes.
 * Build-time only: the wheel carries the built modules, not this header.
 */
#ifndef HYBRIDTRACE_PYCOMPAT_H
#define HYBRIDTRACE_PYCOMPAT_H

#define PY_SSIZE_T_CLEAN
#include <Python.h>
#include <structmember.h>
#include <stdint.h>
#include <string.h>

#if PY_VERSION_HEX < 0x030A0000
static inline PyObject *Py_NewRef(PyObject *o)
{
    Py_INCREF(o);
    return o;
}

static inline PyObject *Py_XNewRef(PyObject *o)
{
    Py_XINCREF(o);
    return o;
}
#endif

#if PY_VERSION_HEX < 0x03090000
#define PyObject_Vectorcall _PyObject_Vectorcall
#endif

/* A slotted class's field, read or written where its member descriptor would. */
#define SLOT(obj, offset) (*(PyObject **)((char *)(obj) + (offset)))

/*
 * ``names``' slot offsets in ``cls`` (the modules read attrs' slotted classes
 * directly, as their member descriptors would): each a plain, writable object
 * slot of that very class, else -1 with ValueError.
 */
static inline int slot_offsets(PyObject *cls, PyObject *names, Py_ssize_t *out,
                               Py_ssize_t count)
{
    Py_ssize_t i;
    if (!PyType_Check(cls) || ((PyTypeObject *)cls)->tp_dictoffset != 0
        || !PyTuple_Check(names) || PyTuple_GET_SIZE(names) != count) {
        PyErr_SetString(PyExc_ValueError, "expected a slots class and its field names");
        return -1;
    }
    for (i = 0; i < count; i++) {
        PyObject *descr = PyObject_GetAttr(cls, PyTuple_GET_ITEM(names, i));
        PyMemberDef *m;
        if (descr == NULL)
            return -1;
        if (Py_TYPE(descr) != &PyMemberDescr_Type
            || ((PyDescrObject *)descr)->d_type != (PyTypeObject *)cls) {
            Py_DECREF(descr);
            PyErr_SetString(PyExc_ValueError, "a field is not a slot of this class");
            return -1;
        }
        m = ((PyMemberDescrObject *)descr)->d_member;
        out[i] = m->offset;
        Py_DECREF(descr);
        if (m->type != T_OBJECT_EX || (m->flags & READONLY) || m->offset <= 0
            || m->offset + (Py_ssize_t)sizeof(PyObject *) > ((PyTypeObject *)cls)->tp_basicsize) {
            PyErr_SetString(PyExc_ValueError, "a slot of an unexpected kind");
            return -1;
        }
    }
    return 0;
}

#endif
