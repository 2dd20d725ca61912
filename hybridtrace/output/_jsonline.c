/*
 * The JSON Lines record of an exec or open event, in C (jsonl.py's fast path).
 *
 * Optional: jsonl.event_to_json_slow (json.dumps of event_to_dict) is the
 * definition, and this module must give exactly its text or None, which sends
 * the event to that definition: for any field of a type other than the schema's
 * (tests/unit/test_output_fast.py compares them on hostile events). Strings go
 * through the same C escaper json.dumps uses (_json.encode_basestring_ascii)
 * unless every character is printable ASCII other than '"' and '\', which that
 * escaper copies as they are; bytes that are not UTF-8 become {"base64": ...}
 * through binascii, as base64.b64encode does.
 */
#include "../pycompat.h"

/* Set by configure(): the schema's JSON text, the Source enum and each member's JSON. */
static PyObject *schema_json, *source_type, *source_json;
static PyObject *escape_ascii, *b2a_base64;
/* The event classes whose slots configure() found: read directly, as their member
 * descriptors would (the classes are attrs slotted classes; any other object is read
 * by getattr). */
static PyTypeObject *open_class, *exec_class;

/* A growing output buffer; a record is mostly well under its first 1 KiB. */
typedef struct {
    char *data;
    Py_ssize_t len, cap;
    char first[1024];
} Buf;

static int put(Buf *b, const char *s, Py_ssize_t n)
{
    if (b->len + n > b->cap) {
        Py_ssize_t cap = b->cap;
        while (b->len + n > cap)
            cap *= 2;
        char *grown = b->data == b->first ? PyMem_Malloc(cap) : PyMem_Realloc(b->data, cap);
        if (grown == NULL) {
            PyErr_NoMemory();
            return -1;
        }
        if (b->data == b->first)
            memcpy(grown, b->first, b->len);
        b->data = grown;
        b->cap = cap;
    }
    memcpy(b->data + b->len, s, n);
    b->len += n;
    return 0;
}

#define PUT(b, literal) put((b), (literal), (Py_ssize_t)(sizeof(literal) - 1))

/* Each writer returns 0 when written, -1 on a Python error, 1 for "not the schema's
 * type": the caller then returns None and the definition writes the event. */
enum { OK = 0, ERROR = -1, OTHER = 1 };

static int put_ascii(Buf *b, PyObject *text)
{
    Py_ssize_t n;
    const char *s = PyUnicode_AsUTF8AndSize(text, &n);
    return s == NULL ? ERROR : put(b, s, n);
}

/* int or None, exactly (bool and int subclasses are OTHER), as str(int) writes it. */
static int put_int(Buf *b, PyObject *v, int nullable)
{
    if (v == Py_None)
        return nullable ? PUT(b, "null") : OTHER;
    if (!PyLong_CheckExact(v))
        return OTHER;
    int overflow;
    long long x = PyLong_AsLongLongAndOverflow(v, &overflow);
    if (overflow) {
        PyObject *text = PyObject_Str(v);
        if (text == NULL)
            return ERROR;
        int rc = put_ascii(b, text);
        Py_DECREF(text);
        return rc;
    }
    if (x == -1 && PyErr_Occurred())
        return ERROR;
    /* By hand: snprintf was most of this module's time per record. */
    char digits[24];
    char *end = digits + sizeof digits, *p = end;
    unsigned long long u = x < 0 ? 0ULL - (unsigned long long)x : (unsigned long long)x;
    do {
        *--p = (char)('0' + u % 10);
        u /= 10;
    } while (u);
    if (x < 0)
        *--p = '-';
    return put(b, p, end - p);
}

static int plain(const unsigned char *s, Py_ssize_t n)
{
    for (Py_ssize_t i = 0; i < n; i++)
        if (s[i] < 0x20 || s[i] > 0x7e || s[i] == '"' || s[i] == '\\')
            return 0;
    return 1;
}

static int put_escaped(Buf *b, PyObject *text)
{
    PyObject *json = PyObject_CallFunctionObjArgs(escape_ascii, text, NULL);
    if (json == NULL)
        return ERROR;
    int rc = put_ascii(b, json);
    Py_DECREF(json);
    return rc;
}

/* A str (or None when nullable) as a JSON string. */
static int put_str(Buf *b, PyObject *v, int nullable)
{
    if (v == Py_None)
        return nullable ? PUT(b, "null") : OTHER;
    if (!PyUnicode_CheckExact(v))
        return OTHER;
    if (PyUnicode_IS_ASCII(v)) {
        Py_ssize_t n = PyUnicode_GET_LENGTH(v);
        const unsigned char *s = PyUnicode_1BYTE_DATA(v);
        if (plain(s, n))
            return PUT(b, "\"") || put(b, (const char *)s, n) || PUT(b, "\"") ? ERROR : OK;
    }
    return put_escaped(b, v);
}

/* bytes or None: a JSON string when UTF-8, else {"base64": "..."} (jsonl.encode_bytes). */
static int put_bytes(Buf *b, PyObject *v)
{
    if (v == Py_None)
        return PUT(b, "null");
    if (!PyBytes_CheckExact(v))
        return OTHER;
    const char *s = PyBytes_AS_STRING(v);
    Py_ssize_t n = PyBytes_GET_SIZE(v);
    if (plain((const unsigned char *)s, n))
        return PUT(b, "\"") || put(b, s, n) || PUT(b, "\"") ? ERROR : OK;
    PyObject *text = PyUnicode_DecodeUTF8(s, n, "strict");
    if (text != NULL) {
        int rc = put_escaped(b, text);
        Py_DECREF(text);
        return rc;
    }
    if (!PyErr_ExceptionMatches(PyExc_UnicodeDecodeError))
        return ERROR;
    PyErr_Clear();
    PyObject *args = Py_BuildValue("(O)", v), *kwargs = Py_BuildValue("{s:O}", "newline", Py_False);
    PyObject *coded = args && kwargs ? PyObject_Call(b2a_base64, args, kwargs) : NULL;
    Py_XDECREF(args);
    Py_XDECREF(kwargs);
    if (coded == NULL)
        return ERROR;
    int rc = PUT(b, "{\"base64\":\"") || put(b, PyBytes_AS_STRING(coded), PyBytes_GET_SIZE(coded))
             || PUT(b, "\"}") ? ERROR : OK;
    Py_DECREF(coded);
    return rc;
}

/* A Source or None, by the member's JSON configure() was given. */
static int put_source(Buf *b, PyObject *v)
{
    if (v == Py_None)
        return PUT(b, "null");
    if ((PyObject *)Py_TYPE(v) != source_type)
        return OTHER;
    PyObject *json = PyDict_GetItemWithError(source_json, v);
    if (json == NULL)
        return PyErr_Occurred() ? ERROR : OTHER;
    return put_ascii(b, json);
}

static int put_bool(Buf *b, PyObject *v)
{
    if (v == Py_True)
        return PUT(b, "true");
    if (v == Py_False)
        return PUT(b, "false");
    return OTHER;
}

static int put_argv(Buf *b, PyObject *v)
{
    if (v == Py_None)
        return PUT(b, "null");
    if (!PyTuple_CheckExact(v))
        return OTHER;
    if (PUT(b, "["))
        return ERROR;
    for (Py_ssize_t i = 0; i < PyTuple_GET_SIZE(v); i++) {
        if (i && PUT(b, ","))
            return ERROR;
        int rc = put_bytes(b, PyTuple_GET_ITEM(v, i));
        if (rc)
            return rc;
    }
    return PUT(b, "]");
}

/* One field: its key text (with the comma before it), then its value. */
enum kind { INT, INT_OR_NULL, STR, STR_OR_NULL, BYTES, SOURCE, BOOL, ARGV };
typedef struct {
    const char *attr;
    const char *key;
    enum kind kind;
    PyObject *name;
    Py_ssize_t slot; /* where the event class keeps it (configure()), or -1: by getattr */
    Py_ssize_t key_len; /* strlen(key), measured once at import */
} Field;

/* A field whose key is its name: the key text with the comma before it. */
#define F(name, kind) {name, ",\"" name "\":", kind, NULL, -1, 0}

#define ORIGIN_FIELDS                                       \
    F("cgroup_id", INT_OR_NULL),                            \
    F("cgroup", BYTES),                                     \
    F("container_id", STR_OR_NULL),                         \
    F("mntns", INT_OR_NULL),                                \
    F("pidns", INT_OR_NULL),                                \
    F("ns_pid", INT_OR_NULL),                               \
    F("ns_tid", INT_OR_NULL)

/* Both records' first keys after "schema" and "type". */
#define HEAD_FIELDS                                         \
    F("timestamp_ns", INT),                                 \
    F("pid", INT_OR_NULL),                                  \
    F("tid", INT_OR_NULL)

/* The order of event_to_dict's keys, after "schema" and "type". */
static Field open_fields[] = {
    HEAD_FIELDS,
    F("uid", INT_OR_NULL),
    F("comm", BYTES),
    F("syscall", STR_OR_NULL),
    F("dfd", INT_OR_NULL),
    F("path", BYTES),
    F("path_source", SOURCE),
    F("path_truncated", BOOL),
    F("flags", INT_OR_NULL),
    F("mode", INT_OR_NULL),
    F("fd", INT_OR_NULL),
    F("errno", INT_OR_NULL),
    F("via", STR),
    ORIGIN_FIELDS,
    {NULL, NULL, INT, NULL, -1, 0},
};

static Field exec_fields[] = {
    HEAD_FIELDS,
    F("ppid", INT_OR_NULL),
    F("uid", INT_OR_NULL),
    F("comm", BYTES),
    F("syscall", STR),
    F("filename", BYTES),
    F("filename_source", SOURCE),
    F("argv", ARGV),
    F("argv_source", SOURCE),
    F("argv_truncated", BOOL),
    F("retval", INT_OR_NULL),
    ORIGIN_FIELDS,
    F("ns_ppid", INT_OR_NULL),
    {NULL, NULL, INT, NULL, -1, 0},
};

static int put_field(Buf *b, const Field *f, PyObject *v)
{
    switch (f->kind) {
    case INT: return put_int(b, v, 0);
    case INT_OR_NULL: return put_int(b, v, 1);
    case STR: return put_str(b, v, 0);
    case STR_OR_NULL: return put_str(b, v, 1);
    case BYTES: return put_bytes(b, v);
    case SOURCE: return put_source(b, v);
    case BOOL: return put_bool(b, v);
    case ARGV: return put_argv(b, v);
    }
    return OTHER;
}

/* The field's value (a new reference), from its slot when the event is of the class
 * configure() measured, else by getattr. */
static PyObject *value(PyObject *event, const Field *f, PyTypeObject *cls)
{
    if (f->slot >= 0 && Py_TYPE(event) == cls) {
        PyObject *v = *(PyObject **)((char *)event + f->slot);
        if (v != NULL)
            return Py_NewRef(v);
    }
    return PyObject_GetAttr(event, f->name);
}

static PyObject *record(PyObject *event, const char *type_key, Py_ssize_t type_len,
                        const Field *fields, PyTypeObject *cls)
{
    if (schema_json == NULL) {
        PyErr_SetString(PyExc_RuntimeError, "_jsonline.configure() was not called");
        return NULL;
    }
    Buf b = {.data = NULL, .len = 0, .cap = sizeof b.first};
    b.data = b.first;
    int rc = PUT(&b, "{\"schema\":") || put_ascii(&b, schema_json) || put(&b, type_key, type_len)
             ? ERROR : OK;
    for (const Field *f = fields; rc == OK && f->attr != NULL; f++) {
        PyObject *v = value(event, f, cls);
        if (v == NULL) {
            rc = ERROR;
            break;
        }
        rc = put(&b, f->key, f->key_len);
        if (rc == OK)
            rc = put_field(&b, f, v);
        Py_DECREF(v);
    }
    if (rc == OK)
        rc = PUT(&b, "}");
    PyObject *out = rc == OK ? PyUnicode_DecodeASCII(b.data, b.len, "strict")
                    : rc == OTHER ? Py_NewRef(Py_None) : NULL;
    if (b.data != b.first)
        PyMem_Free(b.data);
    return out;
}

#define TYPE_KEY(text) text, (Py_ssize_t)(sizeof(text) - 1)

static PyObject *open_json(PyObject *module, PyObject *event)
{
    (void)module;
    return record(event, TYPE_KEY(",\"type\":\"open\""), open_fields, open_class);
}

static PyObject *exec_json(PyObject *module, PyObject *event)
{
    (void)module;
    return record(event, TYPE_KEY(",\"type\":\"exec\""), exec_fields, exec_class);
}

/* Each field's slot offset in ``cls``, where it is a plain object slot; -1 elsewhere. */
static int find_slots(Field *fields, PyTypeObject *cls)
{
    for (Field *f = fields; f->attr != NULL; f++) {
        f->slot = -1;
        PyObject *descr = PyObject_GetAttr((PyObject *)cls, f->name);
        if (descr == NULL)
            return -1;
        if (Py_TYPE(descr) == &PyMemberDescr_Type) {
            PyMemberDef *m = ((PyMemberDescrObject *)descr)->d_member;
            if (m->type == T_OBJECT_EX && m->offset > 0)
                f->slot = m->offset;
        }
        Py_DECREF(descr);
    }
    return 0;
}

static PyObject *configure(PyObject *module, PyObject *args)
{
    PyObject *schema, *type, *members;
    PyTypeObject *open_cls, *exec_cls;
    (void)module;
    if (!PyArg_ParseTuple(args, "UO!O!O!O!", &schema, &PyType_Type, &type, &PyDict_Type,
                          &members, &PyType_Type, &open_cls, &PyType_Type, &exec_cls))
        return NULL;
    if (find_slots(open_fields, open_cls) || find_slots(exec_fields, exec_cls))
        return NULL;
    Py_XSETREF(schema_json, Py_NewRef(schema));
    Py_XSETREF(source_type, Py_NewRef(type));
    Py_XSETREF(source_json, Py_NewRef(members));
    Py_XSETREF(open_class, (PyTypeObject *)Py_NewRef((PyObject *)open_cls));
    Py_XSETREF(exec_class, (PyTypeObject *)Py_NewRef((PyObject *)exec_cls));
    Py_RETURN_NONE;
}

/* Each field's attribute name, interned, and its key's length. */
static int intern_names(Field *fields)
{
    for (Field *f = fields; f->attr != NULL; f++) {
        f->key_len = (Py_ssize_t)strlen(f->key);
        if (f->name == NULL && (f->name = PyUnicode_InternFromString(f->attr)) == NULL)
            return -1;
    }
    return 0;
}

static PyMethodDef methods[] = {
    {"configure", configure, METH_VARARGS,
     "configure(schema_json, Source, {member: json}, OpenEvent, ExecEvent):"
     " what the records are written with"},
    {"open_json", open_json, METH_O, "An OpenEvent's JSON line, or None: use the definition"},
    {"exec_json", exec_json, METH_O, "An ExecEvent's JSON line, or None: use the definition"},
    {NULL, NULL, 0, NULL},
};

static struct PyModuleDef jsonline_module = {
    PyModuleDef_HEAD_INIT, "_jsonline",
    "JSON Lines records of events (see hybridtrace/output/jsonl.py).", -1, methods,
    NULL, NULL, NULL, NULL,
};

static PyObject *attr_of(const char *module, const char *name)
{
    PyObject *m = PyImport_ImportModule(module);
    if (m == NULL)
        return NULL;
    PyObject *attr = PyObject_GetAttrString(m, name);
    Py_DECREF(m);
    return attr;
}

PyMODINIT_FUNC PyInit__jsonline(void)
{
    if (intern_names(open_fields) || intern_names(exec_fields))
        return NULL;
    if (escape_ascii == NULL && (escape_ascii = attr_of("_json", "encode_basestring_ascii")) == NULL)
        return NULL;
    if (b2a_base64 == NULL && (b2a_base64 = attr_of("binascii", "b2a_base64")) == NULL)
        return NULL;
    return PyModule_Create(&jsonline_module);
}
