/*
 * Open calls' entry and exit records paired into OpenEvents, in C: the ftrace
 * correlator's hot loop (correlate.py: Correlator.feed_all, for opens).
 *
 * Optional, like the other C modules: Correlator.feed is the definition. This
 * takes only the common case of a record, and does there exactly what feed
 * does; every other record, and every case it does not take, goes to the
 * correlator's own methods: a record of no open call (feed), an entry while
 * the thread has a call pending or the table is full (_enter), an exit with
 * no entry waiting, of another call, or after records may have been lost
 * (_exit), and values that are not ints (the text reader's: both). Which case
 * is common is all this decides, so a wrong guess costs time, never a field;
 * tests/unit/test_ftrace_opencalls.py holds both ways equal on recorded and on
 * generated sessions.
 */
#include "../../pycompat.h"

/* Set by configure(): the classes read and built, and each field's slot offset. */
static PyTypeObject *line_class, *pending_class, *open_class;
enum { L_PID, L_TS, L_EVENT, L_ARGS, L_STYLE, L_FAULTS, L_FIELDS };
static Py_ssize_t line_slot[L_FIELDS];
enum { P_SYSCALL, P_TS, P_TASK, P_KEY, P_DFD, P_FLAGS, P_MODE, P_ENTERED, P_FIELDS };
static Py_ssize_t pending_slot[P_FIELDS];
/* OpenEvent: every field's slot and default, and which of them a call's record sets. */
enum { O_TS, O_PID, O_TID, O_UID, O_COMM, O_PATH, O_FLAGS, O_MODE, O_FD, O_ERRNO, O_SOURCE,
       O_SYSCALL, O_DFD, O_SET };
#define MAX_OPEN_FIELDS 64
static Py_ssize_t open_fields, open_slot[MAX_OPEN_FIELDS], open_set[O_SET];
static PyObject *open_default[MAX_OPEN_FIELDS];
/* The record vocabulary (trace_record.py, correlate.py) and the limits. */
static PyObject *enter_style, *exit_style, *lost_style, *call_names, *dfd_calls, *creat_event,
    *openat2_event, *creat_flags, *path_role, *probe_data_class;
static long long slack_ns, unknown_uid;
static Py_ssize_t max_threads;
static PyObject *s_filename, *s_pathname, *s_flags, *s_mode, *s_dfd, *s_ret, *s_path, *s_k, *s_s,
    *s_seen, *s_what;
/* Attribute names read on the correlator and its parts. */
static PyObject *a_pending, *a_probes, *a_calls, *a_tasks, *a_threads, *a_ledger, *a_lost_until,
    *a_fd_proof, *a_opened, *a_sources, *a_probe_source, *a_records, *a_feed, *a_enter, *a_exit,
    *a_task_table, *a_known, *a_get, *a_lost_before, *a_gaps, *a_changed, *a_roles;

static PyObject *intern(const char *s)
{
    return PyUnicode_InternFromString(s);
}

/* configure(TraceLine, line_fields, Pending, pending_fields, OpenEvent, open_fields,
 *           open_defaults, set_fields, ENTER, EXIT, LOST, call_names, dfd_calls, "sys_creat",
 *           "sys_openat2", creat_flags, SLACK_NS, MAX_THREADS, unknown_uid, PATH, ProbeData) */
static PyObject *configure(PyObject *module, PyObject *args)
{
    PyObject *lcls, *lnames, *pcls, *pnames, *ocls, *onames, *odefaults, *oset;
    PyObject *enter, *exit_, *lost, *names, *dfds, *creat, *openat2, *cflags, *path, *probe_cls;
    long long slack, unknown;
    Py_ssize_t limit, i, j;
    Py_ssize_t set_slot[O_SET];
    (void)module;
    if (!PyArg_ParseTuple(args, "OOOOOO!O!O!UUUO!O!UUO!LnLUO!", &lcls, &lnames, &pcls, &pnames,
                          &ocls, &PyTuple_Type, &onames, &PyTuple_Type, &odefaults,
                          &PyTuple_Type, &oset, &enter, &exit_, &lost, &PyDict_Type, &names,
                          &PyFrozenSet_Type, &dfds, &creat, &openat2, &PyLong_Type, &cflags,
                          &slack, &limit, &unknown, &path, &PyType_Type, &probe_cls))
        return NULL;
    if (slot_offsets(lcls, lnames, line_slot, L_FIELDS) < 0
        || slot_offsets(pcls, pnames, pending_slot, P_FIELDS) < 0)
        return NULL;
    open_fields = PyTuple_GET_SIZE(onames);
    if (open_fields > MAX_OPEN_FIELDS || PyTuple_GET_SIZE(odefaults) != open_fields
        || PyTuple_GET_SIZE(oset) != O_SET) {
        PyErr_SetString(PyExc_ValueError, "OpenEvent's fields do not match");
        return NULL;
    }
    if (slot_offsets(ocls, onames, open_slot, open_fields) < 0 || slot_offsets(ocls, oset, set_slot, O_SET) < 0)
        return NULL;
    for (j = 0; j < O_SET; j++) {  /* each set field's place among all of them */
        open_set[j] = -1;
        for (i = 0; i < open_fields; i++)
            if (open_slot[i] == set_slot[j])
                open_set[j] = i;
        if (open_set[j] < 0) {
            PyErr_SetString(PyExc_ValueError, "a set field is not an OpenEvent field");
            return NULL;
        }
    }
    for (i = 0; i < open_fields; i++)
        Py_XSETREF(open_default[i], Py_NewRef(PyTuple_GET_ITEM(odefaults, i)));
    Py_XSETREF(line_class, (PyTypeObject *)Py_NewRef(lcls));
    Py_XSETREF(pending_class, (PyTypeObject *)Py_NewRef(pcls));
    Py_XSETREF(open_class, (PyTypeObject *)Py_NewRef(ocls));
    Py_XSETREF(enter_style, Py_NewRef(enter));
    Py_XSETREF(exit_style, Py_NewRef(exit_));
    Py_XSETREF(lost_style, Py_NewRef(lost));
    Py_XSETREF(path_role, Py_NewRef(path));
    Py_XSETREF(probe_data_class, Py_NewRef(probe_cls));
    Py_XSETREF(call_names, Py_NewRef(names));
    Py_XSETREF(dfd_calls, Py_NewRef(dfds));
    Py_XSETREF(creat_event, Py_NewRef(creat));
    Py_XSETREF(openat2_event, Py_NewRef(openat2));
    Py_XSETREF(creat_flags, Py_NewRef(cflags));
    slack_ns = slack;
    max_threads = limit;
    unknown_uid = unknown;
    Py_RETURN_NONE;
}

/* Per call of feed: the correlator's parts, read once (feed never rebinds them). */
typedef struct {
    PyObject *corr, *pending, *probes, *calls, *tasks, *threads, *ledger, *task_table, *known;
    PyObject *opened, *sources, *probe_source;
    PyObject *path_roles;  /* event name -> its Role, for the probes that read open paths */
    int fd_proof;
} State;

static void state_clear(State *st)
{
    Py_CLEAR(st->pending);
    Py_CLEAR(st->probes);
    Py_CLEAR(st->calls);
    Py_CLEAR(st->tasks);
    Py_CLEAR(st->threads);
    Py_CLEAR(st->ledger);
    Py_CLEAR(st->task_table);
    Py_CLEAR(st->known);
    Py_CLEAR(st->opened);
    Py_CLEAR(st->sources);
    Py_CLEAR(st->probe_source);
    Py_CLEAR(st->path_roles);
}

/* 0, or -1 with an error; 1: a part is not what this module knows (all by the methods). */
static int state_load(State *st, PyObject *corr)
{
    PyObject *flag;
    st->corr = corr;
    if ((st->pending = PyObject_GetAttr(corr, a_pending)) == NULL
        || (st->probes = PyObject_GetAttr(corr, a_probes)) == NULL
        || (st->calls = PyObject_GetAttr(corr, a_calls)) == NULL
        || (st->tasks = PyObject_GetAttr(corr, a_tasks)) == NULL
        || (st->threads = PyObject_GetAttr(corr, a_threads)) == NULL
        || (st->ledger = PyObject_GetAttr(corr, a_ledger)) == NULL
        || (st->task_table = PyObject_GetAttr(st->tasks, a_task_table)) == NULL
        || (st->known = PyObject_GetAttr(st->threads, a_known)) == NULL
        || (st->opened = PyObject_GetAttr(corr, a_opened)) == NULL
        || (st->sources = PyObject_GetAttr(corr, a_sources)) == NULL
        || (st->probe_source = PyObject_GetAttr(corr, a_probe_source)) == NULL
        || (flag = PyObject_GetAttr(corr, a_fd_proof)) == NULL)
        return -1;
    st->fd_proof = PyObject_IsTrue(flag);
    Py_DECREF(flag);
    if (st->fd_proof < 0)
        return -1;
    if ((st->path_roles = PyDict_New()) == NULL)
        return -1;
    {
        PyObject *roles = PyObject_GetAttr(corr, a_roles), *name, *role;
        Py_ssize_t pos = 0;
        if (roles == NULL)
            return -1;
        while (PyDict_Check(roles) && PyDict_Next(roles, &pos, &name, &role)) {
            PyObject *what = PyObject_GetAttr(role, s_what);
            int path = what == NULL ? -1 : PyObject_RichCompareBool(what, path_role, Py_EQ);
            Py_XDECREF(what);
            if (path < 0 || (path && PyDict_SetItem(st->path_roles, name, role) < 0)) {
                Py_DECREF(roles);
                return -1;
            }
        }
        Py_DECREF(roles);
    }
    if (!PyDict_CheckExact(st->pending) || !PyDict_CheckExact(st->probes)
        || !PyAnySet_Check(st->calls) || !PyDict_CheckExact(st->task_table)
        || !PyDict_CheckExact(st->known) || !PyDict_CheckExact(st->opened)
        || !PyDict_CheckExact(st->sources))
        return 1;
    return 0;
}

static int same_str(PyObject *a, PyObject *b)
{
    return a == b || (PyUnicode_Check(a) && PyUnicode_Compare(a, b) == 0);
}

/* signed(value, bits) of correlate.py for an int: its low ``bits`` as two's complement. */
static PyObject *signed_int(PyObject *value, int bits)
{
    unsigned long long v = PyLong_AsUnsignedLongLongMask(value);
    if (v == (unsigned long long)-1 && PyErr_Occurred())
        return NULL;
    if (bits < 64) {
        v &= (1ULL << bits) - 1;
        if (v >> (bits - 1))
            return PyLong_FromLongLong((long long)v - (long long)(1ULL << bits));
        return PyLong_FromLongLong((long long)v);
    }
    return PyLong_FromLongLong((long long)v);
}

/* An argument of the record: a borrowed int or None (absent); NULL: another type. */
static PyObject *int_arg(PyObject *args, PyObject *name)
{
    PyObject *v = PyDict_GetItemWithError(args, name);
    if (v == NULL)
        return PyErr_Occurred() ? NULL : Py_None;
    return PyLong_CheckExact(v) ? v : NULL;
}

/* An int (Python or C) compared with a time: -1 error, else 0/1. */
static int as_ll(PyObject *v, long long *out)
{
    int overflow;
    *out = PyLong_AsLongLongAndOverflow(v, &overflow);
    if (*out == -1 && PyErr_Occurred())
        return -1;
    return overflow ? 1 : 0;
}

/* Correlator._enter's common case: 0 taken, 1 not (the method decides), -1 error. */
static int fast_enter(State *st, PyObject *line, PyObject *event, PyObject *tid)
{
    PyObject *args = SLOT(line, line_slot[L_ARGS]), *ts = SLOT(line, line_slot[L_TS]);
    PyObject *raw, *key, *flags = NULL, *mode, *dfd = NULL, *task, *syscall, *pend;
    PyObject *items[7];
    int has, rc = -1;
    if (args == NULL || ts == NULL || !PyDict_CheckExact(args)
        || PyDict_GET_SIZE(st->pending) >= max_threads)
        return 1;
    has = PyDict_Contains(st->pending, tid);
    if (has != 0)
        return has < 0 ? -1 : 1;  /* its last call's exit was lost: _enter says so */
    key = int_arg(args, s_filename);
    if (key == Py_None)
        key = int_arg(args, s_pathname);
    mode = int_arg(args, s_mode);
    if (key == NULL || mode == NULL)
        return PyErr_Occurred() ? -1 : 1;
    if (same_str(event, creat_event)) {
        flags = Py_NewRef(creat_flags);
    } else if (same_str(event, openat2_event)) {
        flags = Py_NewRef(Py_None);  /* in struct open_how: not readable */
    } else {
        raw = int_arg(args, s_flags);
        if (raw == NULL)
            return PyErr_Occurred() ? -1 : 1;
        flags = raw == Py_None ? Py_NewRef(Py_None) : signed_int(raw, 32);
        if (flags == NULL)
            return -1;
    }
    has = PySet_Contains(dfd_calls, event);
    if (has < 0)
        goto done;
    if (has) {
        raw = int_arg(args, s_dfd);
        if (raw == NULL) {
            rc = PyErr_Occurred() ? -1 : 1;
            goto done;
        }
        dfd = raw == Py_None ? Py_NewRef(Py_None) : signed_int(raw, 32);
        if (dfd == NULL)
            goto done;
    } else {
        dfd = Py_NewRef(Py_None);
    }
    syscall = PyDict_GetItemWithError(call_names, event);
    if (syscall == NULL) {
        rc = PyErr_Occurred() ? -1 : 1;
        goto done;
    }
    /* TaskTracker.get's own first step; the method for the rest. */
    task = PyDict_GetItemWithError(st->task_table, tid);
    if (task != NULL && PyTuple_Check(task) && PyTuple_GET_SIZE(task) == 4) {
        PyObject *uid = PyTuple_GET_ITEM(task, 2);
        long long u;
        if (PyLong_CheckExact(uid) && as_ll(uid, &u) == 0 && u == unknown_uid)
            task = NULL;
        else
            Py_INCREF(task);
    } else {
        if (task == NULL && PyErr_Occurred())
            goto done;
        task = NULL;
    }
    if (PyErr_Occurred())
        goto done;
    if (task == NULL) {
        task = PyObject_CallMethodObjArgs(st->tasks, a_get, tid, ts, NULL);
        if (task == NULL)
            goto done;
    }
    items[0] = syscall;
    items[1] = ts;
    items[2] = task;
    items[3] = key;
    items[4] = dfd;
    items[5] = flags;
    items[6] = mode;
    pend = PyObject_Vectorcall((PyObject *)pending_class, items, 7, NULL);
    Py_DECREF(task);
    if (pend == NULL)
        goto done;
    rc = PyDict_SetItem(st->pending, tid, pend);
    Py_DECREF(pend);
done:
    Py_XDECREF(flags);
    Py_XDECREF(dfd);
    return rc;
}

/* Correlator._probe for a probe that reads an open's path: 0 taken, 1 not, -1 error. */
static int fast_probe(State *st, PyObject *line, PyObject *tid, PyObject *role)
{
    PyObject *args = SLOT(line, line_slot[L_ARGS]), *faults = SLOT(line, line_slot[L_FAULTS]);
    PyObject *key, *value, *per_tid, *data, *seen;
    int fault, fresh, rc;
    if (args == NULL || faults == NULL || !PyDict_CheckExact(args) || !PyAnySet_Check(faults))
        return 1;
    key = int_arg(args, s_k);
    if (key == NULL || key == Py_None)
        return PyErr_Occurred() ? -1 : 1;
    per_tid = PyDict_GetItemWithError(st->probes, tid);
    if (per_tid == NULL) {
        if (PyErr_Occurred())
            return -1;
        if (PyDict_GET_SIZE(st->probes) >= max_threads)
            return 1;  /* the oldest thread's strings go: _probe */
        if ((per_tid = PyDict_New()) == NULL)
            return -1;
        rc = PyDict_SetItem(st->probes, tid, per_tid);
        Py_DECREF(per_tid);  /* the table holds it */
        if (rc < 0)
            return -1;
    } else if (!PyDict_CheckExact(per_tid)) {
        PyErr_SetString(PyExc_TypeError, "a thread's probe strings are not a dict");
        return -1;
    }
    value = PyDict_GetItemWithError(args, s_s);
    if (value == NULL && PyErr_Occurred())
        return -1;
    if (value != NULL && !PyBytes_Check(value))
        value = NULL;
    fault = PySet_Contains(faults, s_s);
    if (fault < 0)
        return -1;
    fault = fault || value == NULL;
    data = PyDict_GetItemWithError(per_tid, key);
    if (data == NULL && PyErr_Occurred())
        return -1;
    fresh = data == NULL;
    seen = fresh ? NULL : PyObject_GetAttr(data, s_seen);
    if (!fresh) {  /* a second record of one role: a new call's, the last one's lost */
        if (seen == NULL || (fresh = PySet_Contains(seen, role)) < 0) {
            Py_XDECREF(seen);
            return -1;
        }
        if (fresh)
            Py_CLEAR(seen);
    }
    if (fresh) {
        data = PyObject_CallObject(probe_data_class, NULL);
        if (data == NULL)
            return -1;
        rc = PyDict_SetItem(per_tid, key, data);
        Py_DECREF(data);  /* per_tid holds it */
        if (rc < 0 || (seen = PyObject_GetAttr(data, s_seen)) == NULL)
            return -1;
    }
    rc = PySet_Add(seen, role);
    Py_DECREF(seen);
    if (rc < 0 || PyObject_SetAttr(data, s_path, fault ? Py_None : value) < 0)
        return -1;
    return 0;
}

/* Correlator._take_probe: the strings a probe read for this call, or None (new ref). */
static PyObject *take_probe(State *st, PyObject *tid, PyObject *key)
{
    PyObject *per_tid = PyDict_GetItemWithError(st->probes, tid), *probe;
    if (per_tid == NULL)
        return PyErr_Occurred() ? NULL : Py_NewRef(Py_None);
    Py_INCREF(per_tid);
    if (PyDict_DelItem(st->probes, tid) < 0) {
        Py_DECREF(per_tid);
        return NULL;
    }
    if (!PyDict_CheckExact(per_tid)) {
        Py_DECREF(per_tid);
        PyErr_SetString(PyExc_TypeError, "a thread's probe strings are not a dict");
        return NULL;
    }
    if (key != Py_None) {
        probe = PyDict_GetItemWithError(per_tid, key);
    } else {  /* the entry's pointer is not known: one probed call can only be it */
        Py_ssize_t pos = 0;
        PyObject *k;
        probe = NULL;
        if (PyDict_GET_SIZE(per_tid) == 1)
            PyDict_Next(per_tid, &pos, &k, &probe);
    }
    if (probe == NULL && PyErr_Occurred()) {
        Py_DECREF(per_tid);
        return NULL;
    }
    probe = Py_NewRef(probe == NULL ? Py_None : probe);
    Py_DECREF(per_tid);
    return probe;
}

/* An OpenEvent as make_open builds it: every field its default but those given. */
static PyObject *new_open(PyObject **set)
{
    PyObject *event = open_class->tp_alloc(open_class, 0);
    Py_ssize_t i;
    if (event == NULL)
        return NULL;
    for (i = 0; i < open_fields; i++)
        SLOT(event, open_slot[i]) = Py_NewRef(open_default[i]);
    for (i = 0; i < O_SET; i++)
        Py_SETREF(SLOT(event, open_slot[open_set[i]]), Py_NewRef(set[i]));
    return event;
}

/* Correlator._emit + _open_event for a call whose entry and exit were both seen. */
static int emit_open(State *st, PyObject *tid, PyObject *pend, long long ret, PyObject *ts,
                     PyObject *out)
{
    PyObject *task = SLOT(pend, pending_slot[P_TASK]), *probe, *thread, *path = Py_None;
    PyObject *source = Py_None, *fd = NULL, *err = NULL, *event = NULL, *id = NULL;
    PyObject *set[O_SET];
    int rc = -1;
    if (task == NULL || !PyTuple_Check(task) || PyTuple_GET_SIZE(task) != 4) {
        PyErr_SetString(PyExc_TypeError, "a pending call's task is not a Task");
        return -1;
    }
    probe = take_probe(st, tid, SLOT(pend, pending_slot[P_KEY]));
    if (probe == NULL)
        return -1;
    if (probe != Py_None) {
        path = PyObject_GetAttr(probe, s_path);
        if (path == NULL)
            goto done;
        Py_DECREF(path);  /* the probe holds it */
        if (path != Py_None)
            source = st->probe_source;
    }
    /* ThreadGroups.get's own first step; the method for the rest. */
    thread = PyDict_GetItemWithError(st->known, tid);
    if (thread != NULL)
        Py_INCREF(thread);
    else if (PyErr_Occurred() || (thread = PyObject_CallMethodObjArgs(
                 st->threads, a_get, tid, ts, NULL)) == NULL)
        goto done;
    if (!PyTuple_Check(thread) || PyTuple_GET_SIZE(thread) != 2) {
        Py_DECREF(thread);
        PyErr_SetString(PyExc_TypeError, "a thread is not (tgid, files)");
        goto done;
    }
    fd = ret >= 0 ? PyLong_FromLongLong(ret) : Py_NewRef(Py_None);
    err = ret < 0 ? PyLong_FromLongLong(-ret) : Py_NewRef(Py_None);
    if (fd == NULL || err == NULL) {
        Py_DECREF(thread);
        goto done;
    }
    set[O_TS] = ts;
    set[O_PID] = PyTuple_GET_ITEM(thread, 0);
    set[O_TID] = tid;
    set[O_UID] = PyTuple_GET_ITEM(task, 2);
    set[O_COMM] = PyTuple_GET_ITEM(task, 0);
    set[O_PATH] = path;
    set[O_FLAGS] = SLOT(pend, pending_slot[P_FLAGS]);
    set[O_MODE] = SLOT(pend, pending_slot[P_MODE]);
    set[O_FD] = fd;
    set[O_ERRNO] = err;
    set[O_SOURCE] = source;
    set[O_SYSCALL] = SLOT(pend, pending_slot[P_SYSCALL]);
    set[O_DFD] = SLOT(pend, pending_slot[P_DFD]);
    if (set[O_FLAGS] == NULL || set[O_MODE] == NULL || set[O_SYSCALL] == NULL
        || set[O_DFD] == NULL) {
        Py_DECREF(thread);
        PyErr_SetString(PyExc_AttributeError, "a pending call lacks a field");
        goto done;
    }
    event = new_open(set);
    if (event == NULL) {
        Py_DECREF(thread);
        goto done;
    }
    if (ret >= 0 && st->fd_proof) {  /* fd N was free before this open made it */
        PyObject *own, *start, *entered = SLOT(pend, pending_slot[P_ENTERED]), *opened;
        int yes = entered == NULL ? -1 : PyObject_IsTrue(entered);
        if (yes < 0) {
            Py_DECREF(thread);
            goto done;
        }
        own = PyObject_CallMethodObjArgs(st->ledger, a_changed, PyTuple_GET_ITEM(thread, 1),
                                         fd, fd, ts, ts, NULL);
        if (own == NULL) {
            Py_DECREF(thread);
            goto done;
        }
        start = yes ? SLOT(pend, pending_slot[P_TS]) : Py_None;
        opened = PyTuple_Pack(3, start, PyTuple_GET_ITEM(thread, 1), own);
        Py_DECREF(own);
        if (opened == NULL || (id = PyLong_FromVoidPtr(event)) == NULL
            || PyDict_SetItem(st->opened, id, opened) < 0) {
            Py_XDECREF(opened);
            Py_DECREF(thread);
            goto done;
        }
        Py_DECREF(opened);
    }
    Py_DECREF(thread);
    if (PyTuple_GET_ITEM(task, 1) != Py_None || PyTuple_GET_ITEM(task, 3) != Py_None) {
        PyObject *from = PyTuple_Pack(2, PyTuple_GET_ITEM(task, 1), PyTuple_GET_ITEM(task, 3));
        if (from == NULL || (id == NULL && (id = PyLong_FromVoidPtr(event)) == NULL)
            || PyDict_SetItem(st->sources, id, from) < 0) {
            Py_XDECREF(from);
            goto done;
        }
        Py_DECREF(from);
    }
    rc = PyList_Append(out, event);
done:
    Py_DECREF(probe);
    Py_XDECREF(fd);
    Py_XDECREF(err);
    Py_XDECREF(event);
    Py_XDECREF(id);
    return rc;
}

/* Correlator._exit's common case: 0 taken, 1 not (the method decides), -1 error. */
static int fast_exit(State *st, PyObject *line, PyObject *event, PyObject *tid, PyObject *out)
{
    PyObject *args = SLOT(line, line_slot[L_ARGS]), *ts = SLOT(line, line_slot[L_TS]);
    PyObject *raw, *pend, *pend_ts, *syscall, *name, *value;
    long long ret, start, bound;
    int rc;
    if (args == NULL || ts == NULL || !PyDict_CheckExact(args))
        return 1;
    raw = int_arg(args, s_ret);
    if (raw == NULL || raw == Py_None)
        return PyErr_Occurred() ? -1 : 1;
    value = signed_int(raw, 64);
    if (value == NULL)
        return -1;
    ret = PyLong_AsLongLong(value);
    Py_DECREF(value);
    if (ret == -1 && PyErr_Occurred())
        return -1;
    pend = PyDict_GetItemWithError(st->pending, tid);
    if (pend == NULL)
        return PyErr_Occurred() ? -1 : 1;  /* its entry was not seen */
    if (Py_TYPE(pend) != pending_class || (pend_ts = SLOT(pend, pending_slot[P_TS])) == NULL
        || (syscall = SLOT(pend, pending_slot[P_SYSCALL])) == NULL)
        return 1;
    /* _unproven: records between entry and exit may be missing (any loss, any gap). */
    if ((rc = as_ll(pend_ts, &start)) != 0)
        return rc;
    value = PyObject_GetAttr(st->corr, a_lost_until);
    if (value == NULL)
        return -1;
    rc = as_ll(value, &bound);
    Py_DECREF(value);
    if (rc != 0 || start <= bound + slack_ns)
        return rc < 0 ? -1 : 1;
    value = PyObject_GetAttr(st->ledger, a_gaps);
    if (value == NULL)
        return -1;
    rc = !PyList_CheckExact(value) || PyList_GET_SIZE(value) != 0;
    Py_DECREF(value);
    if (rc)
        return 1;
    value = PyObject_GetAttr(st->ledger, a_lost_before);
    if (value == NULL)
        return -1;
    if (value != Py_None) {
        rc = as_ll(value, &bound);
        Py_DECREF(value);
        if (rc != 0 || bound + slack_ns >= start)
            return rc < 0 ? -1 : 1;
    } else {
        Py_DECREF(value);
    }
    name = PyDict_GetItemWithError(call_names, event);
    if (name == NULL)
        return PyErr_Occurred() ? -1 : 1;
    rc = PyObject_RichCompareBool(syscall, name, Py_EQ);
    if (rc != 1)
        return rc < 0 ? -1 : 1;  /* another call's entry: its exit was lost */
    Py_INCREF(pend);
    if (PyDict_DelItem(st->pending, tid) < 0) {
        Py_DECREF(pend);
        return -1;
    }
    rc = emit_open(st, tid, pend, ret, ts, out);
    Py_DECREF(pend);
    return rc;
}

static int extend(PyObject *out, PyObject *events)
{
    int rc;
    if (events == NULL)
        return -1;
    rc = PyList_CheckExact(events)
        ? PyList_SetSlice(out, PY_SSIZE_T_MAX, PY_SSIZE_T_MAX, events) : -1;
    if (rc < 0 && !PyErr_Occurred())
        PyErr_SetString(PyExc_TypeError, "the correlator returned no list");
    Py_DECREF(events);
    return rc;
}

/* corr.records += n: the records feed counted itself (the rest count their own). */
static int add_records(PyObject *corr, Py_ssize_t n)
{
    PyObject *count, *more, *total;
    int rc;
    if (n == 0)
        return 0;
    if ((count = PyObject_GetAttr(corr, a_records)) == NULL)
        return -1;
    more = PyLong_FromSsize_t(n);
    total = more == NULL ? NULL : PyNumber_Add(count, more);
    Py_DECREF(count);
    Py_XDECREF(more);
    if (total == NULL)
        return -1;
    rc = PyObject_SetAttr(corr, a_records, total);
    Py_DECREF(total);
    return rc;
}

/* feed(correlator, lines) -> events: what ``for line in lines: out += corr.feed(line)``
 * gives, the common cases of open calls' records taken here. */
static PyObject *feed(PyObject *module, PyObject *const *argv, Py_ssize_t argc)
{
    State st = {0};
    PyObject *corr, *seq, *out = NULL;
    Py_ssize_t n, i, records = 0;
    int loaded, rc = 0;
    (void)module;
    if (argc != 2) {
        PyErr_SetString(PyExc_TypeError, "feed(correlator, lines)");
        return NULL;
    }
    if (line_class == NULL) {
        PyErr_SetString(PyExc_RuntimeError, "_opencalls is not configured");
        return NULL;
    }
    corr = argv[0];
    seq = PySequence_Fast(argv[1], "lines must be iterable");
    if (seq == NULL)
        return NULL;
    loaded = state_load(&st, corr);
    if (loaded < 0 || (out = PyList_New(0)) == NULL)
        rc = -1;
    n = PySequence_Fast_GET_SIZE(seq);
    for (i = 0; rc >= 0 && i < n; i++) {
        PyObject *line = PySequence_Fast_GET_ITEM(seq, i), *event = NULL, *style = NULL;
        PyObject *tid = NULL;
        int is_call = 0, readable = 0;
        if (loaded == 0 && Py_TYPE(line) == line_class) {
            event = SLOT(line, line_slot[L_EVENT]);
            style = SLOT(line, line_slot[L_STYLE]);
            tid = SLOT(line, line_slot[L_PID]);
            readable = event != NULL && style != NULL && tid != NULL && PyLong_CheckExact(tid);
            if (readable)
                is_call = PySet_Contains(st.calls, event);
        }
        if (is_call < 0) {
            rc = -1;
        } else if (!is_call) {  /* not an open call's record (or not ours to read) */
            PyObject *role = readable ? PyDict_GetItemWithError(st.path_roles, event) : NULL;
            rc = role == NULL ? (PyErr_Occurred() ? -1 : 1)
                : same_str(style, lost_style) ? 1 : fast_probe(&st, line, tid, role);
            if (rc == 0)
                records++;  /* as feed counts it */
            else if (rc == 1)
                rc = extend(out, PyObject_CallMethodObjArgs(corr, a_feed, line, NULL));
        } else {
            records++;  /* as feed counts them; a LOST or other style: nothing else */
            if (same_str(style, enter_style)) {
                rc = fast_enter(&st, line, event, tid);
                if (rc == 1)
                    rc = extend(out, PyObject_CallMethodObjArgs(corr, a_enter, line, NULL));
            } else if (same_str(style, exit_style)) {
                rc = fast_exit(&st, line, event, tid, out);
                if (rc == 1)
                    rc = extend(out, PyObject_CallMethodObjArgs(corr, a_exit, line, NULL));
            }
        }
    }
    Py_DECREF(seq);
    state_clear(&st);
    if (add_records(corr, records) < 0 || rc < 0) {
        Py_XDECREF(out);
        return NULL;
    }
    return out;
}

static PyMethodDef methods[] = {
    {"configure", (PyCFunction)configure, METH_VARARGS,
     "configure(TraceLine, its fields, Pending, its fields, OpenEvent, its fields, their"
     " defaults, the fields a call sets, ENTER, EXIT, LOST, call names, dfd calls, creat,"
     " openat2, creat's flags, SLACK_NS, MAX_THREADS, the unknown uid, PATH, ProbeData)"},
    {"feed", (PyCFunction)(void (*)(void))feed, METH_FASTCALL,
     "feed(correlator, lines) -> events, as correlator.feed(line) for each line gives"},
    {NULL, NULL, 0, NULL},
};

static struct PyModuleDef opencalls_module = {
    PyModuleDef_HEAD_INIT, "_opencalls",
    "C version of the ftrace correlator's open calls (optional; see correlate.py).",
    -1, methods, NULL, NULL, NULL, NULL,
};

PyMODINIT_FUNC PyInit__opencalls(void)
{
#define NAME(var, text) if ((var = intern(text)) == NULL) return NULL
    NAME(s_filename, "filename"); NAME(s_pathname, "pathname"); NAME(s_flags, "flags");
    NAME(s_mode, "mode"); NAME(s_dfd, "dfd"); NAME(s_ret, "ret"); NAME(s_path, "path");
    NAME(a_pending, "pending"); NAME(a_probes, "probes"); NAME(a_calls, "_calls");
    NAME(a_tasks, "tasks"); NAME(a_threads, "threads"); NAME(a_ledger, "ledger");
    NAME(a_lost_until, "_lost_until"); NAME(a_fd_proof, "fd_proof");
    NAME(a_opened, "_opened"); NAME(a_sources, "_sources");
    NAME(a_probe_source, "probe_source"); NAME(a_records, "records"); NAME(a_feed, "feed");
    NAME(a_enter, "_enter"); NAME(a_exit, "_exit"); NAME(a_task_table, "_tasks");
    NAME(a_known, "_known"); NAME(a_get, "get"); NAME(a_lost_before, "_lost_before");
    NAME(a_gaps, "_gaps"); NAME(a_changed, "changed"); NAME(a_roles, "roles");
    NAME(s_k, "k"); NAME(s_s, "s"); NAME(s_seen, "seen");
    NAME(s_what, "what");
#undef NAME
    return PyModule_Create(&opencalls_module);
}
