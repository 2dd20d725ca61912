/* Open tracing in BCC's dialect: one record per open/openat/openat2/creat call.
 *
 * sys_enter saves the arguments per thread; sys_exit reads the path from the
 * caller's memory (the kernel has just read it, so its pages are present) and
 * emits the record with the result. Needs common.c first.
 */
#define HT_PATH_SLOT (HT_PATH_SIZE + 1)

#define HT_F_PATH_TRUNCATED (1u << 1)
#define HT_F_PATH_READ_FAILED (1u << 2)
#define HT_F_HOW_READ_FAILED (1u << 3)

struct open_rec {
    u64 ts;
    u32 pid;
    u32 tid;
    u32 uid;
    s32 ret;
    s32 dfd;
    u32 oflags;
    u32 mode;
    u32 syscall; /* HT_SYS_*: defined by bcc_program.py from vocabulary.py */
    u32 path_len; /* bytes read including the NUL; 0 = not read */
    u32 flags;
    u64 path_ptr;
    char comm[16];
    struct ht_origin origin;
    char path[HT_PATH_SLOT];
};

BPF_F_TABLE("hash", u32, struct open_rec, ht_opens, 10240, BPF_F_NO_PREALLOC);
BPF_ARRAY(ht_open_zero, struct open_rec, 1); /* never written: a zeroed template */

/* The pending record of this thread's open call; flags and mode are the caller's
 * (openat2 reads them from its struct open_how afterwards: pass 0). */
static __always_inline struct open_rec *ht_open_enter(u64 path, s32 dfd, u32 syscall,
                                                      u32 oflags, u32 mode)
{
    if (ht_skip_task())
        return 0;
    u32 tid = (u32)bpf_get_current_pid_tgid();
    int zero = 0;
    struct open_rec *tmpl = ht_open_zero.lookup(&zero);
    if (!tmpl)
        return 0;
    ht_opens.update(&tid, tmpl);
    struct open_rec *rec = ht_opens.lookup(&tid);
    if (!rec)
        return 0;
    rec->oflags = oflags;
    rec->mode = mode;
    rec->ts = bpf_ktime_get_ns();
    rec->path_ptr = path;
    rec->dfd = dfd;
    rec->syscall = syscall;
    return rec;
}

/* The path at ``ptr``, in the caller's memory (``user``: the kernel has read it, so
 * its page is present) or the kernel's; 0 when it could not be read (flagged). */
static __always_inline int ht_read_path(struct open_rec *rec, u64 ptr, int user)
{
    long n = user ? bpf_probe_read_user_str(rec->path, HT_PATH_SLOT, (void *)ptr)
                  : bpf_probe_read_kernel_str(rec->path, HT_PATH_SLOT, (void *)ptr);
    if (n <= 0) {
        rec->flags |= HT_F_PATH_READ_FAILED;
        return 0;
    }
    rec->path_len = n;
    if (n == HT_PATH_SLOT) {
        char next = 0;
        if (user)
            bpf_probe_read_user(&next, 1, (void *)(ptr + HT_PATH_SIZE));
        else
            bpf_probe_read_kernel(&next, 1, (void *)(ptr + HT_PATH_SIZE));
        if (next)
            rec->flags |= HT_F_PATH_TRUNCATED;
    }
    return 1;
}

/* Sends the record up to the used part of its path. */
static __always_inline void ht_open_output(void *ctx, struct open_rec *rec)
{
    ht_output_tail(ctx, rec, offsetof(struct open_rec, path), rec->path_len, HT_PATH_SLOT);
}

static __always_inline int ht_open_exit(void *ctx, long ret)
{
    u64 id = bpf_get_current_pid_tgid();
    u32 tid = (u32)id;
    struct open_rec *rec = ht_opens.lookup(&tid);
    if (!rec)
        return 0;
    rec->ret = ret;
    rec->pid = id >> 32;
    rec->tid = tid;
    rec->uid = (u32)bpf_get_current_uid_gid();
    bpf_get_current_comm(rec->comm, sizeof(rec->comm));
    if (ht_skip_emit(rec->comm, rec->uid, ret < 0))
        goto done;
    ht_fill_origin(&rec->origin, &rec->flags);
    ht_read_path(rec, rec->path_ptr, 1);
    ht_open_output(ctx, rec);
done:
    ht_opens.delete(&tid);
    return 0;
}

#ifdef HT_FOLLOW
TRACEPOINT_PROBE(sched, sched_process_exec)
{
    ht_follow_exec(args->old_pid);
    return 0;
}
#endif

#ifdef HT_HAVE_OPEN
TRACEPOINT_PROBE(syscalls, sys_enter_open)
{
    ht_open_enter((u64)args->filename, -100, HT_SYS_OPEN, args->flags, args->mode);
    return 0;
}

TRACEPOINT_PROBE(syscalls, sys_exit_open)
{
    return ht_open_exit(args, args->ret);
}
#endif

TRACEPOINT_PROBE(syscalls, sys_enter_openat)
{
    ht_open_enter((u64)args->filename, args->dfd, HT_SYS_OPENAT, args->flags, args->mode);
    return 0;
}

TRACEPOINT_PROBE(syscalls, sys_exit_openat)
{
    return ht_open_exit(args, args->ret);
}

#ifdef HT_HAVE_OPENAT2
TRACEPOINT_PROBE(syscalls, sys_enter_openat2)
{
    struct open_rec *rec = ht_open_enter((u64)args->filename, args->dfd, HT_SYS_OPENAT2, 0, 0);
    if (rec) {
        u64 how[2] = {}; /* struct open_how starts with u64 flags, u64 mode */
        if (bpf_probe_read_user(how, sizeof(how), (void *)args->how) == 0) {
            rec->oflags = how[0];
            rec->mode = how[1];
        } else {
            rec->flags |= HT_F_HOW_READ_FAILED;
        }
    }
    return 0;
}

TRACEPOINT_PROBE(syscalls, sys_exit_openat2)
{
    return ht_open_exit(args, args->ret);
}
#endif

#ifdef HT_HAVE_CREAT
TRACEPOINT_PROBE(syscalls, sys_enter_creat)
{
    ht_open_enter((u64)args->pathname, -100, HT_SYS_CREAT,
                  01 | 0100 | 01000 /* O_WRONLY | O_CREAT | O_TRUNC */, args->mode);
    return 0;
}

TRACEPOINT_PROBE(syscalls, sys_exit_creat)
{
    return ht_open_exit(args, args->ret);
}
#endif

#ifdef HT_URING
/* Opens through io_uring (IORING_OP_OPENAT/OPENAT2), which make no open syscall,
 * from io_uring's tracepoints (their tracefs fields: these do not change with the
 * kernel's prototypes). The submit tracepoint runs in the submitting task (or the
 * ring's SQPOLL thread) after the request was prepared: the kernel's copy of the
 * path and the dfd are in the request (offsets of struct io_kiocb, io_open and
 * filename from the kernel's BTF: io_open is in no header). The record waits by
 * request address for io_uring_complete (or the overflow record of a completion
 * that found the ring full) to give the result; io_uring_req_failed reports
 * requests whose preparation failed, from their SQE. Flags and mode of a submitted
 * request are the kernel's adjusted copy, not the caller's: left unknown. */
#define HT_F_IO_URING (1u << 4)
#define HT_F_NO_THREAD (1u << 5)  /* the SQPOLL thread submitted it: tid, uid, comm unknown */
#define HT_F_FIXED_SLOT (1u << 6) /* opened into a fixed file slot: no fd */
#define HT_F_NO_RESULT (1u << 7)  /* IOSQE_CQE_SKIP_SUCCESS: no completion if it succeeds */
#define HT_F_KERNEL_COPY (1u << 8)
#define HT_F_NO_DFD (1u << 9)
#define HT_IORING_OP_OPENAT 18 /* include/uapi/linux/io_uring.h */
#define HT_IORING_OP_OPENAT2 28
#define HT_REQ_F_CQE_SKIP (1u << 6) /* REQ_F_CQE_SKIP_BIT = IOSQE_CQE_SKIP_SUCCESS_BIT */

struct uring_pending {
    u64 ring;
    u64 user_data;
    struct open_rec rec;
};

struct uring_ud {
    u64 ring;
    u64 user_data;
};

BPF_F_TABLE("hash", u64, struct uring_pending, ht_uring, 10240, BPF_F_NO_PREALLOC);
/* (ring, user_data) -> request address, 0 when two pending opens share them. */
BPF_F_TABLE("hash", struct uring_ud, u64, ht_uring_ud, 10240, BPF_F_NO_PREALLOC);
BPF_ARRAY(ht_uring_zero, struct uring_pending, 1); /* never written: a zeroed template */

static __always_inline struct uring_pending *ht_uring_new(u64 key, int sqpoll)
{
    u64 id = bpf_get_current_pid_tgid();
    if (ht_skip_task()) /* ourselves, or -p/-t: an SQPOLL thread has another tid */
        return 0;
#if defined(HT_UID) || defined(HT_COMM0) || defined(HT_WHERE)
    /* A filter on what no thread of ours did cannot accept it; nor one on where the
     * task lives: the submitting process's origin is unknown there. */
    if (sqpoll)
        return 0;
#endif
    int zero = 0;
    struct uring_pending *tmpl = ht_uring_zero.lookup(&zero);
    if (!tmpl)
        return 0;
    ht_uring.update(&key, tmpl);
    struct uring_pending *p = ht_uring.lookup(&key);
    if (!p)
        return 0;
    p->rec.ts = bpf_ktime_get_ns();
    p->rec.pid = id >> 32;
    p->rec.flags = HT_F_IO_URING;
    if (sqpoll) {
        p->rec.flags |= HT_F_NO_THREAD | HT_F_ORIGIN;
        return p;
    }
    ht_fill_origin(&p->rec.origin, &p->rec.flags);
    p->rec.tid = (u32)id;
    p->rec.uid = (u32)bpf_get_current_uid_gid();
    bpf_get_current_comm(p->rec.comm, sizeof(p->rec.comm));
    if (ht_skip_emit(p->rec.comm, p->rec.uid, 1)) {
        ht_uring.delete(&key);
        return 0;
    }
    return p;
}

static __always_inline void ht_uring_emit(void *ctx, struct open_rec *rec, s32 res)
{
#ifdef HT_FAILED_ONLY
    if (res >= 0)
        return;
#endif
    rec->ret = res;
    rec->ts = bpf_ktime_get_ns();
    ht_open_output(ctx, rec);
}

/* The kernel's copy of the path, and the dfd, from the prepared request. */
static __always_inline void ht_uring_read(struct open_rec *rec, u64 req)
{
    u64 open = req + HT_OFF_REQ_CMD, name = 0, text = 0;
    u32 slot = 0;
    if (bpf_probe_read_kernel(&rec->dfd, sizeof(rec->dfd), (void *)(open + HT_OFF_OPEN_DFD)))
        rec->flags |= HT_F_NO_DFD;
    if (bpf_probe_read_kernel(&slot, sizeof(slot), (void *)(open + HT_OFF_OPEN_SLOT)) == 0 && slot)
        rec->flags |= HT_F_FIXED_SLOT;
    if (ht_read_u64(open + HT_OFF_OPEN_FILENAME, &name) || !name ||
        ht_read_u64(name + HT_OFF_FILENAME_NAME, &text) || !text) {
        rec->flags |= HT_F_PATH_READ_FAILED;
        return;
    }
    if (ht_read_path(rec, text, 0))
        rec->flags |= HT_F_KERNEL_COPY;
}

static __always_inline int ht_uring_submitted(void *ctx, u64 ring, u64 req, u64 user_data,
                                              u32 opcode, u32 rflags, int sqpoll)
{
    /* Every request: a freed one at this address must leave nothing behind. */
    ht_uring.delete(&req);
    if (opcode != HT_IORING_OP_OPENAT && opcode != HT_IORING_OP_OPENAT2)
        return 0;
    struct uring_pending *p = ht_uring_new(req, sqpoll);
    if (!p)
        return 0;
    p->ring = ring;
    p->user_data = user_data;
    p->rec.syscall = opcode == HT_IORING_OP_OPENAT2 ? HT_SYS_OPENAT2 : HT_SYS_OPENAT;
    p->rec.flags |= HT_F_HOW_READ_FAILED;
    ht_uring_read(&p->rec, req);
    if (rflags & HT_REQ_F_CQE_SKIP) { /* no completion if it succeeds: report it now */
#ifndef HT_FAILED_ONLY
        p->rec.flags |= HT_F_NO_RESULT;
        ht_uring_emit(ctx, &p->rec, 0);
#endif
        ht_uring.delete(&req);
        return 0;
    }
    struct uring_ud ud = {.ring = ring, .user_data = user_data};
    u64 *other = ht_uring_ud.lookup(&ud);
    u64 owner = req;
    if (other && *other && *other != req) {
        struct uring_pending *q = ht_uring.lookup(other);
        if (q && q->ring == ring && q->user_data == user_data)
            owner = 0; /* two pending opens an overflow record could not tell apart */
    }
    ht_uring_ud.update(&ud, &owner);
    return 0;
}

#if defined(HT_URING_SUBMIT_REQ)
TRACEPOINT_PROBE(io_uring, io_uring_submit_req)
{
    return ht_uring_submitted(args, (u64)args->ctx, (u64)args->req, args->user_data,
                              args->opcode, args->flags, args->sq_thread);
}
#elif defined(HT_URING_SUBMIT_SQE)
TRACEPOINT_PROBE(io_uring, io_uring_submit_sqe)
{
    return ht_uring_submitted(args, (u64)args->ctx, (u64)args->req, args->user_data,
                              args->opcode, args->flags, args->sq_thread);
}
#endif

static __always_inline void ht_uring_done(void *ctx, u64 req, u64 ring, u64 user_data, s32 res)
{
    struct uring_pending *p = ht_uring.lookup(&req);
    if (!p)
        return;
    if (p->ring == ring && p->user_data == user_data)
        ht_uring_emit(ctx, &p->rec, res);
    ht_uring.delete(&req);
    struct uring_ud ud = {.ring = ring, .user_data = user_data};
    u64 *owner = ht_uring_ud.lookup(&ud);
    if (owner && *owner == req)
        ht_uring_ud.delete(&ud);
}

TRACEPOINT_PROBE(io_uring, io_uring_complete)
{
    ht_uring_done(args, (u64)args->req, (u64)args->ctx, args->user_data, args->res);
    return 0;
}

#ifdef HT_URING_OVERFLOW
/* A completion that found the ring full carries no request: the one pending open
 * of that ring with that user_data, if there is exactly one. */
TRACEPOINT_PROBE(io_uring, io_uring_cqe_overflow)
{
    struct uring_ud ud = {.ring = (u64)args->ctx, .user_data = args->user_data};
    u64 *owner = ht_uring_ud.lookup(&ud);
    if (!owner)
        return 0;
    u64 req = *owner;
    ht_uring_ud.delete(&ud);
    struct uring_pending *p = req ? ht_uring.lookup(&req) : 0;
    if (p && p->ring == ud.ring && p->user_data == ud.user_data) {
        ht_uring_done(args, req, ud.ring, ud.user_data, args->res);
    } else if (!req) { /* which of them completed is unknown: its event is lost */
        int zero = 0;
        ht_count(ht_lost.lookup(&zero));
    }
    return 0;
}
#endif

#ifdef HT_URING_FAILED
/* A request whose preparation failed: the caller's arguments from its SQE, and
 * the error that is its result; its dfd is not among the tracepoint's fields. */
TRACEPOINT_PROBE(io_uring, io_uring_req_failed)
{
    u64 req = (u64)args->req;
    ht_uring.delete(&req);
    u32 opcode = args->opcode;
    if (opcode != HT_IORING_OP_OPENAT && opcode != HT_IORING_OP_OPENAT2)
        return 0;
    int sqpoll = 0;
    u32 pflags = 0;
    u64 task = (u64)bpf_get_current_task();
    if (bpf_probe_read_kernel(&pflags, sizeof(pflags), (void *)(task + HT_OFF_TASK_FLAGS)))
        return 0;
    sqpoll = (pflags & 0x00000010) != 0; /* PF_IO_WORKER: the SQPOLL thread */
    struct uring_pending *p = ht_uring_new(req, sqpoll);
    if (!p)
        return 0;
    p->rec.syscall = opcode == HT_IORING_OP_OPENAT2 ? HT_SYS_OPENAT2 : HT_SYS_OPENAT;
    p->rec.flags |= HT_F_NO_DFD;
    if (args->file_index)
        p->rec.flags |= HT_F_FIXED_SLOT;
    if (opcode == HT_IORING_OP_OPENAT2) {
        u64 how[2] = {}; /* struct open_how: u64 flags, u64 mode; at sqe->addr2 (= off) */
        if (args->len < sizeof(how) || bpf_probe_read_user(how, sizeof(how), (void *)args->off))
            p->rec.flags |= HT_F_HOW_READ_FAILED;
        p->rec.oflags = how[0];
        p->rec.mode = how[1];
    } else {
        p->rec.oflags = args->op_flags;
        p->rec.mode = args->len;
    }
    ht_read_path(&p->rec, args->addr, 1);
    ht_uring_emit(args, &p->rec, args->error);
    ht_uring.delete(&req);
    return 0;
}
#endif
#endif
