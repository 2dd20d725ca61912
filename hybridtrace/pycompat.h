/*
 * What hybridtrace's optional C modules (setup.py) include first: Python's API
 * with Py_ssize_t lengths, Py_NewRef and Py_XNewRef where Python is older than 3.10 and
 * PyObject_Vectorcall where it is older than 3.9.
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

#endif
