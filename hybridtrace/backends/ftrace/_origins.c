/*
 * Open events' origin fields filled from their threads' /proc readings, in C:
 * the ftrace session's second hot loop (origin_proof.py: OriginFiller.fill).
 *
 * Optional, like the other C modules: OriginFiller is the definition. This
 * takes the common case of an event: an OpenEvent of a known thread whose
 * reading is cached and still proven (else the filler reads it), judged with
 * no gap, no blurred thread and no change noted for that thread in the change
 * ledger; it does there what fill, release and _apply do. Every other event
 * (an exec, a loss, a thread with changes noted) and every case it does not
 * take go to the filler's own methods, in order, so a wrong guess costs time,
 * never a field; tests/unit/test_ftrace_origins.py holds both ways equal.
 */
#include "../../pycompat.h"

static PyTypeObject *open_class, *reading_class;
enum { E_TS, E_PID, E_TID, E_PIDNS, E_NS_PID, E_NS_TID, E_MNTNS, E_CGROUP, E_CGROUP_ID,
       E_CONTAINER_ID, E_FIELDS };
static Py_ssize_t event_slot[E_FIELDS];
enum { R_START, R_READ_NS, R_PIDNS, R_MNTNS, R_CGROUP, R_NSTGID, R_NSPID, R_FIELDS };
static Py_ssize_t reading_slot[R_FIELDS];
static long long tick_ns;
static PyObject *a_awaiting, *a_boot, *a_cache, *a_ledger, *a_ledger_ok, *a_ids, *a_reading,
    *a_queued, *a_apply, *a_cgroup_ids, *a_lost_before, *a_gaps, *a_blurred, *a_times,
    *a_changed, *a_migrations, *a_append, *a_read_ns, *a_timestamp, *a_popleft;

/* configure(OpenEvent, its fields (E_*), TaskReading, its fields (R_*), TICK_NS) */
static PyObject *configure(PyObject *module, PyObject *args)
{
    PyObject *ocls, *onames, *rcls, *rnames;
    long long tick;
    (void)module;
    if (!PyArg_ParseTuple(args, "OOOOL", &ocls, &onames, &rcls, &rnames, &tick))
        return NULL;
    if (slot_offsets(ocls, onames, event_slot, E_FIELDS) < 0
        || slot_offsets(rcls, rnames, reading_slot, R_FIELDS) < 0)
        return NULL;
    Py_XSETREF(open_class, (PyTypeObject *)Py_NewRef(ocls));
    Py_XSETREF(reading_class, (PyTypeObject *)Py_NewRef(rcls));
    tick_ns = tick;
    Py_RETURN_NONE;
}

/* A C long long of an exact int: 0, 1 (not one: the methods decide), -1 error. */
static int ll_of(PyObject *v, long long *out)
{
    int overflow;
    if (v == NULL || !PyLong_CheckExact(v))
        return 1;
    *out = PyLong_AsLongLongAndOverflow(v, &overflow);
    if (*out == -1 && PyErr_Occurred())
        return -1;
    return overflow ? 1 : 0;
}

/* Per call of fill: the filler's parts, read once (nothing in a call rebinds them). */
typedef struct {
    PyObject *filler, *cache, *ledger, *ids, *gaps, *blurred, *times, *lost_before;
    long long boot;
    int ledger_ok, migrations;
} State;

static void state_clear(State *st)
{
    Py_CLEAR(st->cache);
    Py_CLEAR(st->ledger);
    Py_CLEAR(st->ids);
    Py_CLEAR(st->gaps);
    Py_CLEAR(st->blurred);
    Py_CLEAR(st->times);
    Py_CLEAR(st->lost_before);
}

static int flag(PyObject *obj, PyObject *name)
{
    PyObject *v = PyObject_GetAttr(obj, name);
    int yes;
    if (v == NULL)
        return -1;
    yes = PyObject_IsTrue(v);
    Py_DECREF(v);
    return yes;
}

/* 0; -1 error; 1: not what this module knows (the filler's own fill). */
static int state_load(State *st, PyObject *filler)
{
    PyObject *boot;
    int rc;
    st->filler = filler;
    if ((boot = PyObject_GetAttr(filler, a_boot)) == NULL)
        return -1;
    rc = ll_of(boot, &st->boot);
    Py_DECREF(boot);
    if (rc != 0)
        return rc;
    if ((st->cache = PyObject_GetAttr(filler, a_cache)) == NULL
        || (st->ledger = PyObject_GetAttr(filler, a_ledger)) == NULL
        || (st->ids = PyObject_GetAttr(filler, a_ids)) == NULL
        || (st->gaps = PyObject_GetAttr(st->ledger, a_gaps)) == NULL
        || (st->blurred = PyObject_GetAttr(st->ledger, a_blurred)) == NULL
        || (st->times = PyObject_GetAttr(st->ledger, a_times)) == NULL
        || (st->lost_before = PyObject_GetAttr(st->ledger, a_lost_before)) == NULL
        || (st->ledger_ok = flag(filler, a_ledger_ok)) < 0
        || (st->migrations = flag(st->ledger, a_migrations)) < 0)
        return -1;
    if (!PyDict_CheckExact(st->cache) || !PyDict_CheckExact(st->ids)
        || !PyList_CheckExact(st->gaps) || !PyDict_Check(st->blurred)
        || !PyDict_Check(st->times))
        return 1;
    return 0;
}

/* ChangeLedger.changed(tid, lo, hi): 0/1, -1 error; the method where the thread has
 * anything noted (or a gap is open), this where only a loss bound can say. */
static int changed(State *st, PyObject *tid, long long lo, long long hi)
{
    PyObject *v, *args[4];
    long long bound;
    int rc, noted;
    if (st->lost_before != Py_None) {
        if ((rc = ll_of(st->lost_before, &bound)) < 0)
            return -1;
        if (rc == 0 && lo <= bound)
            return 1;
    } else {
        rc = 0;
    }
    noted = rc != 0 || PyList_GET_SIZE(st->gaps) != 0;
    if (!noted && (noted = PyDict_Contains(st->blurred, tid)) == 0)
        noted = PyDict_Contains(st->times, tid);
    if (noted < 0)
        return -1;
    if (!noted)
        return 0;
    args[0] = st->ledger;
    args[1] = tid;
    if ((args[2] = PyLong_FromLongLong(lo)) == NULL)
        return -1;
    if ((args[3] = PyLong_FromLongLong(hi)) == NULL) {
        Py_DECREF(args[2]);
        return -1;
    }
    v = PyObject_VectorcallMethod(a_changed, args, 4 | PY_VECTORCALL_ARGUMENTS_OFFSET, NULL);
    Py_DECREF(args[2]);
    Py_DECREF(args[3]);
    if (v == NULL)
        return -1;
    rc = PyObject_IsTrue(v);
    Py_DECREF(v);
    return rc;
}

/* OriginFiller._wrote: the task read started (by a whole tick) before ``ts``. */
static int wrote(State *st, PyObject *reading, long long ts)
{
    long long start;
    int rc = ll_of(SLOT(reading, reading_slot[R_START]), &start);
    if (rc != 0)
        return rc < 0 ? -1 : 2;
    if (start < 0 || start > (LLONG_MAX / tick_ns) - 1 || ts > LLONG_MAX - st->boot)
        return 2;
    return (start + 1) * tick_ns <= ts + st->boot;
}

/* OriginFiller._reading for a thread: new reference, None, or NULL with an error. */
static PyObject *reading_for(State *st, PyObject *tid, PyObject *ts_obj, long long ts)
{
    PyObject *cached = PyDict_GetItemWithError(st->cache, tid);
    long long read_ns;
    if (cached == NULL && PyErr_Occurred())
        return NULL;
    if (cached != NULL && Py_TYPE(cached) == reading_class
        && ll_of(SLOT(cached, reading_slot[R_READ_NS]), &read_ns) == 0) {
        int w = wrote(st, cached, ts), c;
        if (w < 0)
            return NULL;
        if (w == 1) {  /* a reading after the record needs no ledger (see _reading) */
            c = ts <= read_ns ? 0 : changed(st, tid, read_ns, ts);
            if (c < 0)
                return NULL;
            if (c == 0)
                return Py_NewRef(cached);
        }
    }
    if (PyErr_Occurred())
        return NULL;
    return PyObject_CallMethodObjArgs(st->filler, a_reading, tid, ts_obj, NULL);
}

static PyObject *last_or_none(PyObject *ids, int cond)
{
    return cond ? PyTuple_GET_ITEM(ids, PyTuple_GET_SIZE(ids) - 1) : Py_None;
}

/* OriginFiller._apply for an OpenEvent whose reading is a TaskReading: 0, or -1. */
static int apply_open(State *st, PyObject *event, PyObject *own, PyObject *complete)
{
    PyObject *tid = SLOT(event, event_slot[E_TID]), *pid = SLOT(event, event_slot[E_PID]);
    PyObject *nspid = SLOT(own, reading_slot[R_NSPID]), *nstgid = SLOT(own, reading_slot[R_NSTGID]);
    PyObject *mntns = Py_None, *cgroup = Py_None, *cgroup_id = Py_None, *container = Py_None;
    PyObject *ns_pid, *ns_tid, *found = NULL, *values[7];
    long long ts, read_ns, lo, hi;
    int i, rc;
    if (ll_of(SLOT(event, event_slot[E_TS]), &ts) != 0
        || ll_of(SLOT(own, reading_slot[R_READ_NS]), &read_ns) != 0
        || nspid == NULL || nstgid == NULL || !PyTuple_Check(nspid) || !PyTuple_Check(nstgid)) {
        if (!PyErr_Occurred())
            PyErr_SetString(PyExc_TypeError, "an event or reading of an unexpected shape");
        return -1;
    }
    lo = ts <= read_ns ? ts : read_ns;
    hi = ts <= read_ns ? read_ns : ts;
    /* What a task can change: only with no change nor loss recorded in between. */
    if (st->ledger_ok && complete != Py_None && tid != Py_None) {
        PyObject *later = ts <= read_ns ? SLOT(own, reading_slot[R_READ_NS])
                                        : SLOT(event, event_slot[E_TS]);
        rc = PyObject_RichCompareBool(complete, later, Py_GE);
        if (rc < 0)
            return -1;
        if (rc) {
            rc = changed(st, tid, lo, hi);
            if (rc < 0)
                return -1;
            if (rc == 0) {
                PyObject *path = SLOT(own, reading_slot[R_CGROUP]);
                mntns = SLOT(own, reading_slot[R_MNTNS]);
                if (st->migrations && path != NULL && path != Py_None) {
                    found = PyDict_GetItemWithError(st->ids, path);
                    if (found != NULL && PyTuple_CheckExact(found) && PyTuple_GET_SIZE(found) == 2)
                        Py_INCREF(found);
                    else if (PyErr_Occurred() || (found = PyObject_CallMethodObjArgs(
                                 st->filler, a_cgroup_ids, path, NULL)) == NULL)
                        return -1;
                    if (!PyTuple_Check(found) || PyTuple_GET_SIZE(found) != 2) {
                        Py_DECREF(found);
                        PyErr_SetString(PyExc_TypeError, "cgroup ids are not a pair");
                        return -1;
                    }
                    cgroup = path;
                    cgroup_id = PyTuple_GET_ITEM(found, 0);
                    container = PyTuple_GET_ITEM(found, 1);
                }
            }
        }
    }
    if (mntns == NULL)
        mntns = Py_None;
    ns_pid = Py_None;
    if (PyTuple_GET_SIZE(nstgid) != 0) {
        int same = pid == Py_None;
        if (!same && (same = PyObject_RichCompareBool(PyTuple_GET_ITEM(nstgid, 0), pid, Py_EQ)) < 0) {
            Py_XDECREF(found);
            return -1;
        }
        ns_pid = last_or_none(nstgid, same);
    }
    ns_tid = Py_None;
    if (PyTuple_GET_SIZE(nspid) != 0) {
        int same = PyObject_RichCompareBool(PyTuple_GET_ITEM(nspid, 0), tid, Py_EQ);
        if (same < 0) {
            Py_XDECREF(found);
            return -1;
        }
        ns_tid = last_or_none(nspid, same);
    }
    values[0] = SLOT(own, reading_slot[R_PIDNS]);
    values[1] = ns_pid;
    values[2] = ns_tid;
    values[3] = mntns;
    values[4] = cgroup;
    values[5] = cgroup_id;
    values[6] = container;
    if (values[0] == NULL)
        values[0] = Py_None;
    for (i = 0; i < 7; i++)  /* fill_origin: nobody has seen this event yet */
        Py_XSETREF(SLOT(event, event_slot[E_PIDNS + i]), Py_NewRef(values[i]));
    Py_XDECREF(found);
    return 0;
}

/* release's test: every record up to the later of the event and its reading was read
 * (1), or not yet (0); -1 error. */
static int due(PyObject *own, PyObject *ts, PyObject *complete)
{
    PyObject *read_ns, *later;
    int ts_later, early;
    if (own == Py_None || complete == Py_None)
        return 1;
    if ((read_ns = PyObject_GetAttr(own, a_read_ns)) == NULL)
        return -1;
    ts_later = PyObject_RichCompareBool(ts, read_ns, Py_GT);
    later = ts_later ? ts : read_ns;
    early = ts_later < 0 ? -1 : PyObject_RichCompareBool(complete, later, Py_LT);
    Py_DECREF(read_ns);
    return early < 0 ? -1 : !early;
}

/* OriginFiller._apply, here for an OpenEvent of a known thread with a TaskReading (or
 * none), by the method for the rest: the event to hand out (new reference). */
static PyObject *apply(State *st, PyObject *filler, PyObject *item, PyObject *complete)
{
    PyObject *event = PyTuple_GET_ITEM(item, 0), *own = PyTuple_GET_ITEM(item, 1);
    PyObject *tid = Py_TYPE(event) == open_class ? SLOT(event, event_slot[E_TID]) : NULL;
    if (tid != NULL && PyLong_CheckExact(tid)
        && (own == Py_None || Py_TYPE(own) == reading_class)) {
        if (own != Py_None && apply_open(st, event, own, complete) < 0)
            return NULL;
        return Py_NewRef(event);
    }
    return PyObject_CallMethodObjArgs(filler, a_apply, event, own, PyTuple_GET_ITEM(item, 2),
                                      complete, NULL);
}

/* fill(filler, events, complete) -> events: what OriginFiller.fill gives (every event
 * queued with its readings, then released in order while due), the common cases here. */
static PyObject *fill(PyObject *module, PyObject *const *argv, Py_ssize_t argc)
{
    State st = {0};
    PyObject *filler, *seq, *complete, *awaiting = NULL, *out = NULL;
    Py_ssize_t n, i;
    int loaded;
    (void)module;
    if (argc != 3) {
        PyErr_SetString(PyExc_TypeError, "fill(filler, events, complete)");
        return NULL;
    }
    if (open_class == NULL) {
        PyErr_SetString(PyExc_RuntimeError, "_origins is not configured");
        return NULL;
    }
    filler = argv[0];
    complete = argv[2];
    if ((seq = PySequence_Fast(argv[1], "events must be iterable")) == NULL)
        return NULL;
    loaded = state_load(&st, filler);
    if (loaded < 0 || (awaiting = PyObject_GetAttr(filler, a_awaiting)) == NULL
        || (out = PyList_New(0)) == NULL)
        goto fail;
    n = PySequence_Fast_GET_SIZE(seq);
    for (i = 0; i < n; i++) {  /* queued, each with its readings */
        PyObject *event = PySequence_Fast_GET_ITEM(seq, i), *item, *own, *ts, *tid, *r;
        long long ts_ns;
        int fast = 0;
        if (loaded == 0 && Py_TYPE(event) == open_class) {
            tid = SLOT(event, event_slot[E_TID]);
            ts = SLOT(event, event_slot[E_TS]);
            fast = tid != NULL && PyLong_CheckExact(tid) && ll_of(ts, &ts_ns) == 0;
            if (PyErr_Occurred())
                goto fail;
        }
        if (fast) {  /* its reading, here where the cache proves it */
            if ((own = reading_for(&st, tid, ts, ts_ns)) == NULL)
                goto fail;
            item = PyTuple_Pack(3, event, own, Py_None);
            Py_DECREF(own);
        } else {
            item = PyObject_CallMethodObjArgs(filler, a_queued, event, NULL);
        }
        if (item == NULL)
            goto fail;
        r = PyObject_CallMethodObjArgs(awaiting, a_append, item, NULL);
        Py_DECREF(item);
        if (r == NULL)
            goto fail;
        Py_DECREF(r);
    }
    while (PyObject_Length(awaiting) > 0) {  /* release: in order, while due */
        PyObject *item = PySequence_GetItem(awaiting, 0), *ts, *event, *r;
        int ready;
        if (item == NULL)
            goto fail;
        if (!PyTuple_Check(item) || PyTuple_GET_SIZE(item) != 3) {
            Py_DECREF(item);
            PyErr_SetString(PyExc_TypeError, "a waiting event is not a triple");
            goto fail;
        }
        event = PyTuple_GET_ITEM(item, 0);
        ts = Py_TYPE(event) == open_class ? Py_XNewRef(SLOT(event, event_slot[E_TS]))
                                          : PyObject_GetAttr(event, a_timestamp);
        ready = ts == NULL ? -1 : due(PyTuple_GET_ITEM(item, 1), ts, complete);
        Py_XDECREF(ts);
        if (ready <= 0) {
            Py_DECREF(item);
            if (ready < 0)
                goto fail;
            break;
        }
        r = PyObject_CallMethodObjArgs(awaiting, a_popleft, NULL);
        Py_XDECREF(r);
        if (r == NULL) {
            Py_DECREF(item);
            goto fail;
        }
        r = apply(&st, filler, item, complete);
        Py_DECREF(item);
        if (r == NULL || PyList_Append(out, r) < 0) {
            Py_XDECREF(r);
            goto fail;
        }
        Py_DECREF(r);
    }
    if (PyErr_Occurred())
        goto fail;
    Py_DECREF(seq);
    Py_DECREF(awaiting);
    state_clear(&st);
    return out;
fail:
    Py_DECREF(seq);
    Py_XDECREF(awaiting);
    Py_XDECREF(out);
    state_clear(&st);
    return NULL;
}

static PyMethodDef methods[] = {
    {"configure", (PyCFunction)configure, METH_VARARGS,
     "configure(OpenEvent, its fields, TaskReading, its fields, TICK_NS)"},
    {"fill", (PyCFunction)(void (*)(void))fill, METH_FASTCALL,
     "fill(filler, events, complete) -> events, as filler.fill gives them"},
    {NULL, NULL, 0, NULL},
};

static struct PyModuleDef origins_module = {
    PyModuleDef_HEAD_INIT, "_origins",
    "C version of the ftrace session's origin fields (optional; see origin_proof.py).",
    -1, methods, NULL, NULL, NULL, NULL,
};

PyMODINIT_FUNC PyInit__origins(void)
{
#define NAME(var, text) if ((var = PyUnicode_InternFromString(text)) == NULL) return NULL
    NAME(a_awaiting, "awaiting"); NAME(a_boot, "_boot"); NAME(a_cache, "_cache");
    NAME(a_ledger, "ledger"); NAME(a_ledger_ok, "_ledger_ok"); NAME(a_ids, "_ids");
    NAME(a_reading, "_reading"); NAME(a_queued, "_queued"); NAME(a_apply, "_apply");
    NAME(a_cgroup_ids, "_cgroup_ids"); NAME(a_lost_before, "_lost_before");
    NAME(a_gaps, "_gaps"); NAME(a_blurred, "_blurred"); NAME(a_times, "_times");
    NAME(a_changed, "changed"); NAME(a_migrations, "migrations_seen"); NAME(a_append, "append");
    NAME(a_read_ns, "read_ns"); NAME(a_timestamp, "timestamp_ns"); NAME(a_popleft, "popleft");
#undef NAME
    return PyModule_Create(&origins_module);
}
