/* Exec tracing in BCC's dialect: one record per execve/execveat.
 *
 * sys_enter saves filename and argv from the caller's memory per thread;
 * sched_process_exec emits successful execs (the new comm, pid after de_thread)
 * and re-reads argv from the new image (mm->arg_start..arg_end, just written
 * by the kernel) when the caller's pages could not be read;
 * sys_exit emits failed execs with the caller's read. Needs common.c first.
 */
/* An argument is read up to one byte more than is kept, so user space can tell
 * "exactly HT_ARG_SIZE" from "longer" without a branch on the length here
 * (one made the verifier's state count explode with the number of args). */
#define HT_SLOT (HT_ARG_SIZE + 2)
#define HT_BLOB (HT_MAX_ARGS * HT_SLOT)
#define HT_PATH_SLOT (HT_PATH_SIZE + 1)

#define HT_F_ARGV_TRUNCATED (1u << 1)
#define HT_F_ARGV_READ_FAILED (1u << 2)
#define HT_F_ARGV_FROM_IMAGE (1u << 3)
#define HT_F_FILENAME_FROM_TP (1u << 4)
#define HT_F_NO_ENTRY (1u << 5)
#define HT_F_FILENAME_TRUNCATED (1u << 6)
#define HT_F_IMAGE_READ_FAILED (1u << 7)

struct exec_rec {
    u64 ts;
    u32 pid;
    u32 tid;
    u32 ppid;
    u32 uid;
    s32 retval;
    u32 flags;
    u32 argv_len;     /* bytes of argv[] used: NUL-terminated strings */
    u32 filename_len; /* bytes read including the NUL; 0 = not read */
    u32 syscall;      /* HT_SYS_*: defined by bcc_program.py from vocabulary.py */
    u32 pad;
    char comm[16];
    struct ht_origin origin;
    char filename[HT_PATH_SLOT];
    char argv[HT_BLOB];
};

/* Not preallocated: an entry is large and only execs in flight need one. */
BPF_F_TABLE("hash", u32, struct exec_rec, ht_execs, 10240, BPF_F_NO_PREALLOC);
BPF_ARRAY(ht_exec_zero, struct exec_rec, 1); /* never written: a zeroed template */

static __always_inline struct exec_rec *ht_exec_new(u32 tid)
{
    int zero = 0;
    struct exec_rec *tmpl = ht_exec_zero.lookup(&zero);
    if (!tmpl)
        return 0;
    ht_execs.update(&tid, tmpl);
    return ht_execs.lookup(&tid);
}

static __always_inline void ht_read_argv(struct exec_rec *rec, u64 argv)
{
    u32 off = 0;
    int i;
    if (!argv) {
        rec->flags |= HT_F_ARGV_READ_FAILED;
        return;
    }
    HT_UNROLL
    for (i = 0; i < HT_MAX_ARGS; i++) {
        u64 p = 0;
        if (bpf_probe_read_user(&p, sizeof(p), (void *)(argv + i * 8)) != 0) {
            rec->flags |= HT_F_ARGV_READ_FAILED;
            goto out;
        }
        if (!p)
            goto out;
        if (off > HT_BLOB - HT_SLOT)
            goto out;
        long n = bpf_probe_read_user_str(&rec->argv[off], HT_SLOT, (void *)p);
        if (n <= 0) {
            rec->flags |= HT_F_ARGV_READ_FAILED;
            goto out;
        }
        off += n;
    }
    {
        u64 p = 0;
        if (bpf_probe_read_user(&p, sizeof(p), (void *)(argv + HT_MAX_ARGS * 8)) == 0 && p)
            rec->flags |= HT_F_ARGV_TRUNCATED;
    }
out:
    rec->argv_len = off;
}

static __always_inline void ht_read_filename(struct exec_rec *rec, u64 filename)
{
    long n = bpf_probe_read_user_str(rec->filename, HT_PATH_SLOT, (void *)filename);
    if (n <= 0)
        return;
    rec->filename_len = n;
    if (n == HT_PATH_SLOT) {
        char next = 0;
        /* a byte past the slot that cannot be read may be the string's: cut too */
        if (bpf_probe_read_user(&next, 1, (void *)(filename + HT_PATH_SIZE)) || next)
            rec->flags |= HT_F_FILENAME_TRUNCATED;
    }
}

static __always_inline int ht_exec_enter(u64 filename, u64 argv, u32 syscall)
{
    if (ht_skip_task())
        return 0;
    struct exec_rec *rec = ht_exec_new((u32)bpf_get_current_pid_tgid());
    if (!rec)
        return 0;
    rec->ts = bpf_ktime_get_ns();
    rec->syscall = syscall;
    ht_read_filename(rec, filename);
    ht_read_argv(rec, argv);
    return 0;
}

/* argv as the kernel laid it out in the new image: NUL-separated strings. */
static __always_inline void ht_read_image_argv(struct exec_rec *rec)
{
#ifdef HT_OFF_MM
    u64 task = (u64)bpf_get_current_task();
    u64 mm = 0, start = 0, end = 0;
    if (ht_read_u64(task + HT_OFF_MM, &mm) != 0 || !mm ||
        ht_read_u64(mm + HT_OFF_ARG_START, &start) != 0 ||
        ht_read_u64(mm + HT_OFF_ARG_END, &end) != 0 || end <= start) {
        rec->flags |= HT_F_IMAGE_READ_FAILED;
        return;
    }
    u64 len = end - start;
    u32 flags = rec->flags & ~(HT_F_ARGV_TRUNCATED | HT_F_ARGV_READ_FAILED);
    if (len > HT_BLOB) {
        len = HT_BLOB;
        flags |= HT_F_ARGV_TRUNCATED;
    }
    if (bpf_probe_read_user(rec->argv, len, (void *)start) != 0) {
        rec->flags |= HT_F_IMAGE_READ_FAILED;
        return;
    }
    rec->argv_len = len;
    rec->flags = flags | HT_F_ARGV_FROM_IMAGE;
#else
    rec->flags |= HT_F_IMAGE_READ_FAILED;
#endif
}

static __always_inline void ht_exec_emit(void *ctx, struct exec_rec *rec)
{
    u64 id = bpf_get_current_pid_tgid();
    rec->pid = id >> 32;
    rec->tid = (u32)id;
    rec->uid = (u32)bpf_get_current_uid_gid();
    bpf_get_current_comm(rec->comm, sizeof(rec->comm));
    rec->ppid = ht_ppid(&rec->flags);
    if (ht_skip_emit(rec->comm, rec->uid, rec->retval < 0))
        return;
#ifdef HT_PPID
    if (rec->ppid != HT_PPID)
        return;
#endif
    ht_fill_origin(&rec->origin, &rec->flags);
    ht_output_tail(ctx, rec, offsetof(struct exec_rec, argv), rec->argv_len, HT_BLOB);
}

TRACEPOINT_PROBE(syscalls, sys_enter_execve)
{
    return ht_exec_enter((u64)args->filename, (u64)args->argv, HT_SYS_EXECVE);
}

#ifdef HT_HAVE_EXECVEAT
TRACEPOINT_PROBE(syscalls, sys_enter_execveat)
{
    return ht_exec_enter((u64)args->filename, (u64)args->argv, HT_SYS_EXECVEAT);
}
#endif

TRACEPOINT_PROBE(sched, sched_process_exec)
{
    u32 old = args->old_pid;
#ifdef HT_FOLLOW
    ht_follow_exec(old);
#endif
    struct exec_rec *rec = ht_execs.lookup(&old);
    if (!rec) {
        /* The exec began before we attached: report it from the new image. */
        if (ht_skip_task())
            return 0;
        rec = ht_exec_new(old);
        if (!rec)
            return 0;
        rec->ts = bpf_ktime_get_ns();
        rec->flags |= HT_F_NO_ENTRY;
    }
    rec->retval = 0;
    if (rec->filename_len == 0) {
        u32 loc = args->data_loc_filename;
        long n = bpf_probe_read_kernel_str(rec->filename, HT_PATH_SLOT,
                                           (void *)args + (loc & 0xffff));
        if (n > 0) {
            rec->filename_len = n;
            rec->flags |= HT_F_FILENAME_FROM_TP;
        }
    }
    /* Only a failed read is retried: an argv cut at entry (an argument over
     * HT_ARG_SIZE, more than HT_MAX_ARGS) is already the best per-argument view. */
    if (rec->flags & (HT_F_ARGV_READ_FAILED | HT_F_NO_ENTRY))
        ht_read_image_argv(rec);
    ht_exec_emit(args, rec);
    ht_execs.delete(&old);
    return 0;
}

static __always_inline int ht_exec_exit(void *ctx, long ret)
{
    u32 tid = (u32)bpf_get_current_pid_tgid();
    struct exec_rec *rec = ht_execs.lookup(&tid);
    if (!rec)
        return 0;
    if (ret < 0) {
        rec->retval = ret;
        ht_exec_emit(ctx, rec);
    }
    ht_execs.delete(&tid);
    return 0;
}

TRACEPOINT_PROBE(syscalls, sys_exit_execve)
{
    return ht_exec_exit(args, args->ret);
}

#ifdef HT_HAVE_EXECVEAT
TRACEPOINT_PROBE(syscalls, sys_exit_execveat)
{
    return ht_exec_exit(args, args->ret);
}
#endif
