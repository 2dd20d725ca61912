/* Shared part of the BCC programs: filters, output with loss accounting, task reads.
 *
 * Configured by -D flags from bcc_program.py (never by editing this text):
 *   HT_SELF_PID                    tracer's tgid, always excluded
 *   HT_PID, HT_TID, HT_UID         optional filters
 *   HT_PPID                        optional exec filter (only with task_struct reads)
 *   HT_COMM0, HT_COMM1             optional comm filter: the 16-byte comm as two u64
 *   HT_FAILED_ONLY                 emit failures only
 *   HT_PERFBUF                     perf buffer instead of the BPF ring buffer
 *   HT_RINGBUF_PAGES               ring buffer size in pages (power of two)
 *   HT_EXACT_HEADERS               headers match the running kernel: offsetof() is right
 *   HT_OFF_REAL_PARENT, HT_OFF_TGID, HT_OFF_MM, HT_OFF_ARG_START, HT_OFF_ARG_END
 *                                  offsets from kernel BTF when the headers are borrowed
 * Without exact headers or BTF offsets, task_struct is never read (ppid and the
 * argv re-read are then unavailable, and flagged so).
 */
#include <linux/sched.h>
#include <linux/mm_types.h>

#define HT_F_TASK_READS_OFF (1u << 0) /* ppid not read: no trustworthy offsets */

/* Kernels before 5.5 have only the combined probe-read helpers, and before 5.3
 * no bounded loops (judged by the headers, which BCC requires to match then). */
#if LINUX_VERSION_CODE < KERNEL_VERSION(5, 5, 0)
#define bpf_probe_read_user bpf_probe_read
#define bpf_probe_read_kernel bpf_probe_read
#define bpf_probe_read_user_str bpf_probe_read_str
#define bpf_probe_read_kernel_str bpf_probe_read_str
#endif
#if LINUX_VERSION_CODE < KERNEL_VERSION(5, 3, 0)
#define HT_UNROLL _Pragma("unroll")
#else
#define HT_UNROLL
#endif

#if defined(HT_EXACT_HEADERS) && !defined(HT_OFF_REAL_PARENT)
#define HT_OFF_REAL_PARENT offsetof(struct task_struct, real_parent)
#define HT_OFF_TGID offsetof(struct task_struct, tgid)
#define HT_OFF_MM offsetof(struct task_struct, mm)
#define HT_OFF_ARG_START offsetof(struct mm_struct, arg_start)
#define HT_OFF_ARG_END offsetof(struct mm_struct, arg_end)
#endif

#ifdef HT_PERFBUF
BPF_PERF_OUTPUT(ht_events);
#else
BPF_RINGBUF_OUTPUT(ht_events, HT_RINGBUF_PAGES);
#endif
/* Events lost in the kernel: a full ring buffer (a perf buffer counts its own), and
 * with either buffer an io_uring completion no pending open could be told apart. */
BPF_PERCPU_ARRAY(ht_lost, u64, 1);

/* Reads of task_struct go through explicit probe reads on integers, so BCC's
 * rewriter leaves them alone and the offsets are exactly the ones chosen above. */
static __always_inline int ht_read_u64(u64 addr, u64 *out)
{
    return bpf_probe_read_kernel(out, sizeof(*out), (void *)addr);
}

static __always_inline u32 ht_ppid(u32 *flags)
{
#ifdef HT_OFF_REAL_PARENT
    u64 task = (u64)bpf_get_current_task();
    u64 parent = 0;
    u32 tgid = 0;
    if (ht_read_u64(task + HT_OFF_REAL_PARENT, &parent) == 0 && parent)
        bpf_probe_read_kernel(&tgid, sizeof(tgid), (void *)(parent + HT_OFF_TGID));
    return tgid;
#else
    *flags |= HT_F_TASK_READS_OFF;
    return 0;
#endif
}

/* True when the current task is one we must not report at syscall entry. */
static __always_inline int ht_skip_task(void)
{
    u64 id = bpf_get_current_pid_tgid();
    u32 tgid = id >> 32;
    if (tgid == HT_SELF_PID)
        return 1;
#ifdef HT_PID
    if (tgid != HT_PID)
        return 1;
#endif
#ifdef HT_TID
    if ((u32)id != HT_TID)
        return 1;
#endif
    return 0;
}

/* Filters that can only be judged when the event is emitted (comm and uid may
 * change across exec; the result is known only at exit). */
static __always_inline int ht_skip_emit(const char *comm, u32 uid, int failed)
{
#ifdef HT_UID
    if (uid != HT_UID)
        return 1;
#endif
#ifdef HT_COMM0
    u64 words[2] = {};
    __builtin_memcpy(words, comm, sizeof(words));
    if (words[0] != HT_COMM0 || words[1] != HT_COMM1)
        return 1;
#endif
#ifdef HT_FAILED_ONLY
    if (!failed)
        return 1;
#endif
    return 0;
}

/* Send a record; a ring buffer that is full is counted here, in the kernel, so
 * user space can report the loss (a perf buffer reports its own losses). */
static __always_inline void ht_output(void *ctx, void *rec, u32 size)
{
#ifdef HT_PERFBUF
    ht_events.perf_submit(ctx, rec, size);
#else
    if (ht_events.ringbuf_output(rec, size, 0) != 0) {
        int zero = 0;
        u64 *count = ht_lost.lookup(&zero);
        if (count)
            __sync_fetch_and_add(count, 1);
    }
#endif
}
