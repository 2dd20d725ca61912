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
 *   HT_OFF_NSPROXY ... HT_SIZE_UPID origin reads' offsets from kernel BTF (btf_offsets.py)
 *   HT_CGROUP_HELPER               the kernel has bpf_get_current_cgroup_id (4.18+)
 *   HT_CGROUP_SLOT0, HT_CGROUP_SLOT1  --cgroup, --container: the task must be under
 *                                  the cgroup user space puts in ht_cgroups[slot]
 *   HT_MNTNS                       --mntns: the mount namespace inode
 *   HT_CGROUPMAP_PATH, HT_MNTNSMAP_PATH  BCC's --cgroupmap/--mntnsmap: pinned hash maps
 *   HT_WHERE                       any of the five above is set
 *   HT_FOLLOW, HT_FOLLOW_MAX       --descendants-of: only tasks in ht_follow (its size)
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

/* One more in a loss counter: ``count`` is its per-CPU slot (NULL: none to count in). */
static __always_inline void ht_count(u64 *count)
{
    if (count)
        __sync_fetch_and_add(count, 1);
}

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

/* ---- Where the task lives: cgroup, namespaces, its ids in its own pid namespace.
 * Same meaning as the ebpf-core engine's (bpf/common.h): every field is the kernel's
 * or flagged unknown, never 0 for unknown (0 is a real ns_ppid). */
#define HT_F_CGROUP_UNKNOWN (1u << 16)
#define HT_F_MNTNS_UNKNOWN (1u << 17)
#define HT_F_PIDNS_UNKNOWN (1u << 18)
#define HT_F_NSPID_UNKNOWN (1u << 19)  /* ns_pid and ns_tid */
#define HT_F_NSPPID_UNKNOWN (1u << 20)
#define HT_F_ORIGIN (HT_F_CGROUP_UNKNOWN | HT_F_MNTNS_UNKNOWN | HT_F_PIDNS_UNKNOWN | \
                     HT_F_NSPID_UNKNOWN | HT_F_NSPPID_UNKNOWN)
#define HT_PIDNS_LEVELS 8 /* vocabulary.PIDNS_LEVELS: deeper namespaces are unknown */

struct ht_origin {
    u64 cgroup_id;
    u32 mntns;
    u32 pidns;
    u32 ns_pid;
    u32 ns_tid;
    u32 ns_ppid;
    u32 pad;
};

/* Exact headers know every struct but mnt_namespace (fs/mount.h): BTF gives that one. */
#if defined(HT_EXACT_HEADERS) && LINUX_VERSION_CODE >= KERNEL_VERSION(4, 19, 0)
#include <linux/nsproxy.h>
#include <linux/pid.h>
#include <linux/pid_namespace.h>
/* Each one BTF did not give (bcc_scope.FROM_HEADERS): */
#ifndef HT_OFF_NSPROXY
#define HT_OFF_NSPROXY offsetof(struct task_struct, nsproxy)
#endif
#ifndef HT_OFF_NSP_MNT
#define HT_OFF_NSP_MNT offsetof(struct nsproxy, mnt_ns)
#endif
#ifndef HT_OFF_NS_INUM
#define HT_OFF_NS_INUM offsetof(struct ns_common, inum)
#endif
#ifndef HT_OFF_THREAD_PID
#define HT_OFF_THREAD_PID offsetof(struct task_struct, thread_pid)
#endif
#ifndef HT_OFF_GROUP_LEADER
#define HT_OFF_GROUP_LEADER offsetof(struct task_struct, group_leader)
#endif
#ifndef HT_OFF_PID_LEVEL
#define HT_OFF_PID_LEVEL offsetof(struct pid, level)
#endif
#ifndef HT_OFF_PID_NUMBERS
#define HT_OFF_PID_NUMBERS offsetof(struct pid, numbers)
#endif
#ifndef HT_OFF_UPID_NR
#define HT_OFF_UPID_NR offsetof(struct upid, nr)
#endif
#ifndef HT_OFF_UPID_NS
#define HT_OFF_UPID_NS offsetof(struct upid, ns)
#endif
#ifndef HT_OFF_PIDNS_NS
#define HT_OFF_PIDNS_NS offsetof(struct pid_namespace, ns)
#endif
#ifndef HT_SIZE_UPID
#define HT_SIZE_UPID sizeof(struct upid)
#endif
#endif
#if defined(HT_OFF_NSPROXY) && defined(HT_OFF_NSP_MNT) && defined(HT_OFF_MNT_NS_NS) && \
    defined(HT_OFF_NS_INUM)
#define HT_ORIGIN_MNTNS
#endif
#if defined(HT_OFF_THREAD_PID) && defined(HT_OFF_GROUP_LEADER) && defined(HT_OFF_PID_LEVEL) && \
    defined(HT_OFF_PID_NUMBERS) && defined(HT_OFF_UPID_NR) && defined(HT_OFF_UPID_NS) && \
    defined(HT_OFF_PIDNS_NS) && defined(HT_OFF_NS_INUM) && defined(HT_SIZE_UPID) && \
    defined(HT_OFF_REAL_PARENT)
#define HT_ORIGIN_PIDNS
#endif

/* The mount namespace's inode; 0 when it cannot be read. */
static __always_inline u32 ht_mntns(void)
{
    u32 inum = 0;
#ifdef HT_ORIGIN_MNTNS
    u64 task = (u64)bpf_get_current_task(), nsproxy = 0, mnt = 0;
    if (ht_read_u64(task + HT_OFF_NSPROXY, &nsproxy) || !nsproxy ||
        ht_read_u64(nsproxy + HT_OFF_NSP_MNT, &mnt) || !mnt ||
        bpf_probe_read_kernel(&inum, sizeof(inum),
                              (void *)(mnt + HT_OFF_MNT_NS_NS + HT_OFF_NS_INUM)))
        return 0;
#endif
    return inum;
}

#ifdef HT_ORIGIN_PIDNS
/* A struct pid at pid namespace level ``lvl``: 1 with the number and that level's
 * namespace inode, 0 when the pid has no such level, -1 when unreadable. */
static __always_inline int ht_upid(u64 pid, u32 lvl, u32 *nr, u32 *inum)
{
    u32 top = 0;
    u64 ns = 0;
    if (!pid || bpf_probe_read_kernel(&top, sizeof(top), (void *)(pid + HT_OFF_PID_LEVEL)))
        return -1;
    if (top < lvl)
        return 0;
    if (lvl >= HT_PIDNS_LEVELS)
        return -1;
    u64 at = pid + HT_OFF_PID_NUMBERS + lvl * HT_SIZE_UPID;
    if (bpf_probe_read_kernel(nr, sizeof(*nr), (void *)(at + HT_OFF_UPID_NR)) ||
        ht_read_u64(at + HT_OFF_UPID_NS, &ns) || !ns ||
        bpf_probe_read_kernel(inum, sizeof(*inum),
                              (void *)(ns + HT_OFF_PIDNS_NS + HT_OFF_NS_INUM)) || !*inum)
        return -1;
    return 1;
}

/* The struct pid of a task's group leader (0 when unreadable). */
static __always_inline u64 ht_leader_pid(u64 task)
{
    u64 leader = 0, pid = 0;
    if (!task || ht_read_u64(task + HT_OFF_GROUP_LEADER, &leader) || !leader ||
        ht_read_u64(leader + HT_OFF_THREAD_PID, &pid))
        return 0;
    return pid;
}
#endif

/* ns_pid, ns_tid, ns_ppid and the pid namespace, as ebpf-core's ht_fill_origin. */
static __always_inline void ht_pidns_ids(struct ht_origin *o, u32 *flags)
{
#ifdef HT_ORIGIN_PIDNS
    u64 task = (u64)bpf_get_current_task(), pid = 0, parent = 0;
    u32 lvl = 0, inum = 0;
    if (ht_read_u64(task + HT_OFF_THREAD_PID, &pid) || !pid ||
        bpf_probe_read_kernel(&lvl, sizeof(lvl), (void *)(pid + HT_OFF_PID_LEVEL)) ||
        ht_upid(pid, lvl, &o->ns_tid, &o->pidns) != 1) {
        o->pidns = o->ns_tid = 0;
        *flags |= HT_F_PIDNS_UNKNOWN | HT_F_NSPID_UNKNOWN | HT_F_NSPPID_UNKNOWN;
        return;
    }
    if (ht_upid(ht_leader_pid(task), lvl, &o->ns_pid, &inum) != 1 || inum != o->pidns)
        *flags |= HT_F_NSPID_UNKNOWN;
    inum = 0;
    ht_read_u64(task + HT_OFF_REAL_PARENT, &parent);
    int res = ht_upid(ht_leader_pid(parent), lvl, &o->ns_ppid, &inum);
    if (res < 0)
        *flags |= HT_F_NSPPID_UNKNOWN;
    else if (res == 0 || inum != o->pidns)
        o->ns_ppid = 0; /* the parent is outside the task's namespace: getppid() says 0 */
#else
    *flags |= HT_F_PIDNS_UNKNOWN | HT_F_NSPID_UNKNOWN | HT_F_NSPPID_UNKNOWN;
#endif
}

/* Fills every origin field of the current task; what is unknown is flagged. */
static __always_inline void ht_fill_origin(struct ht_origin *o, u32 *flags)
{
    __builtin_memset(o, 0, sizeof(*o));
    *flags &= ~HT_F_ORIGIN;
#ifdef HT_CGROUP_HELPER
    o->cgroup_id = bpf_get_current_cgroup_id();
#else
    *flags |= HT_F_CGROUP_UNKNOWN;
#endif
    o->mntns = ht_mntns();
    if (!o->mntns)
        *flags |= HT_F_MNTNS_UNKNOWN;
    ht_pidns_ids(o, flags);
}

/* --cgroup/--container (ht_cgroups, filled by user space), and BCC's pinned sets. */
#if defined(HT_CGROUP_SLOT0) || defined(HT_CGROUP_SLOT1)
BPF_CGROUP_ARRAY(ht_cgroups, 2);
#endif
#ifdef HT_CGROUPMAP_PATH
BPF_TABLE_PINNED("hash", u64, u64, ht_cgroupmap, 1, HT_CGROUPMAP_PATH);
#endif
#ifdef HT_MNTNSMAP_PATH
BPF_TABLE_PINNED("hash", u64, u32, ht_mntnsmap, 1, HT_MNTNSMAP_PATH);
#endif

#ifdef HT_FOLLOW
/* --descendants-of: the tasks (kernel tids) followed. User space puts the tree as it
 * is after attach in; each fork by a followed task adds the child, each exit removes
 * the task; a child with no room is counted in ht_follow_lost. */
BPF_HASH(ht_follow, u32, u8, HT_FOLLOW_MAX);
BPF_PERCPU_ARRAY(ht_follow_lost, u64, 1);

static __always_inline int ht_followed(void)
{
    u32 tid = (u32)bpf_get_current_pid_tgid();
    return ht_follow.lookup(&tid) != 0;
}

static __always_inline void ht_follow_add(u32 tid)
{
    u8 one = 1;
    if (ht_follow.update(&tid, &one) != 0) {
        int zero = 0;
        ht_count(ht_follow_lost.lookup(&zero));
    }
}

TRACEPOINT_PROBE(sched, sched_process_fork)
{
    if (ht_followed()) /* the parent forks: the current task */
        ht_follow_add(args->child_pid);
    return 0;
}

TRACEPOINT_PROBE(sched, sched_process_exit)
{
    u32 tid = (u32)bpf_get_current_pid_tgid(); /* its id may be reused outside the tree */
    ht_follow.delete(&tid);
    return 0;
}

/* sched_process_exec: a thread other than the leader that execs takes the leader's id
 * (de_thread), after the leader's own exit removed that id. */
static __always_inline void ht_follow_exec(u32 old_tid)
{
    u32 tid = (u32)bpf_get_current_pid_tgid();
    if (old_tid == tid || !ht_follow.lookup(&old_tid))
        return;
    ht_follow_add(tid);
    ht_follow.delete(&old_tid);
}
#endif

/* Where-filters: is the current task outside what was asked for? */
static __always_inline int ht_outside(void)
{
#ifdef HT_FOLLOW
    if (!ht_followed())
        return 1;
#endif
#ifdef HT_CGROUP_SLOT0
    if (ht_cgroups.check_current_task(0) != 1)
        return 1;
#endif
#ifdef HT_CGROUP_SLOT1
    if (ht_cgroups.check_current_task(1) != 1)
        return 1;
#endif
#ifdef HT_MNTNS
    if (ht_mntns() != HT_MNTNS)
        return 1;
#endif
#ifdef HT_CGROUPMAP_PATH
    {
        u64 cgid = bpf_get_current_cgroup_id();
        if (!ht_cgroupmap.lookup(&cgid))
            return 1;
    }
#endif
#ifdef HT_MNTNSMAP_PATH
    {
        u64 key = ht_mntns();
        if (!key || !ht_mntnsmap.lookup(&key))
            return 1;
    }
#endif
    return 0;
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
    return ht_outside();
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
        ht_count(ht_lost.lookup(&zero));
    }
#endif
}

/* Send a record of ``fixed`` bytes and ``used`` of its variable tail, which has room for
 * ``room``: what the kernel says it read is never trusted past the buffer. */
static __always_inline void ht_output_tail(void *ctx, void *rec, u32 fixed, u32 used, u32 room)
{
    if (used > room)
        used = room;
    ht_output(ctx, rec, fixed + used);
}
