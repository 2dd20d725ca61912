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
    char path[HT_PATH_SLOT];
};

BPF_F_TABLE("hash", u32, struct open_rec, ht_opens, 10240, BPF_F_NO_PREALLOC);
BPF_ARRAY(ht_open_zero, struct open_rec, 1); /* never written: a zeroed template */

static __always_inline struct open_rec *ht_open_enter(u64 path, s32 dfd, u32 syscall)
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
    rec->ts = bpf_ktime_get_ns();
    rec->path_ptr = path;
    rec->dfd = dfd;
    rec->syscall = syscall;
    return rec;
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
    long n = bpf_probe_read_user_str(rec->path, HT_PATH_SLOT, (void *)rec->path_ptr);
    if (n > 0) {
        rec->path_len = n;
        if (n == HT_PATH_SLOT) {
            char next = 0;
            bpf_probe_read_user(&next, 1, (void *)(rec->path_ptr + HT_PATH_SIZE));
            if (next)
                rec->flags |= HT_F_PATH_TRUNCATED;
        }
    } else {
        rec->flags |= HT_F_PATH_READ_FAILED;
    }
    u32 len = rec->path_len;
    if (len > HT_PATH_SLOT)
        len = HT_PATH_SLOT;
    ht_output(ctx, rec, offsetof(struct open_rec, path) + len);
done:
    ht_opens.delete(&tid);
    return 0;
}

#ifdef HT_HAVE_OPEN
TRACEPOINT_PROBE(syscalls, sys_enter_open)
{
    struct open_rec *rec = ht_open_enter((u64)args->filename, -100, HT_SYS_OPEN);
    if (rec) {
        rec->oflags = args->flags;
        rec->mode = args->mode;
    }
    return 0;
}

TRACEPOINT_PROBE(syscalls, sys_exit_open)
{
    return ht_open_exit(args, args->ret);
}
#endif

TRACEPOINT_PROBE(syscalls, sys_enter_openat)
{
    struct open_rec *rec = ht_open_enter((u64)args->filename, args->dfd, HT_SYS_OPENAT);
    if (rec) {
        rec->oflags = args->flags;
        rec->mode = args->mode;
    }
    return 0;
}

TRACEPOINT_PROBE(syscalls, sys_exit_openat)
{
    return ht_open_exit(args, args->ret);
}

#ifdef HT_HAVE_OPENAT2
TRACEPOINT_PROBE(syscalls, sys_enter_openat2)
{
    struct open_rec *rec = ht_open_enter((u64)args->filename, args->dfd, HT_SYS_OPENAT2);
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
    struct open_rec *rec = ht_open_enter((u64)args->pathname, -100, HT_SYS_CREAT);
    if (rec) {
        rec->oflags = 01 | 0100 | 01000; /* O_WRONLY | O_CREAT | O_TRUNC */
        rec->mode = args->mode;
    }
    return 0;
}

TRACEPOINT_PROBE(syscalls, sys_exit_creat)
{
    return ht_open_exit(args, args->ret);
}
#endif
