/* Shared by the BPF programs and (by hand, in records.py) the Python decoder:
 * ring-buffer record layouts, read-only config, and the filters every program
 * applies before doing any work. Keep records.py in step with this file. */
#ifndef HT_COMMON_H
#define HT_COMMON_H

#include "vmlinux.h"
#include <bpf/bpf_helpers.h>
#include <bpf/bpf_core_read.h>
#include <bpf/bpf_tracing.h>

#define HT_ARG_SIZE 256   /* request.ARG_SIZE: bytes kept per argv element */
#define HT_PATH_SIZE 512  /* request.PATH_SIZE: bytes kept per path */
/* One byte more than kept, plus the NUL: a string that fills it was cut. */
#define HT_ARG_READ (HT_ARG_SIZE + 2)
#define HT_PATH_READ (HT_PATH_SIZE + 2)
#define HT_MAX_ARGS 128
#define HT_ARGS_AREA (HT_MAX_ARGS * HT_ARG_READ) /* packed NUL-terminated argv per exec */
#define HT_COMM_LEN 16
/* Room for the filename in ht_exec.data, a power of two >= HT_PATH_READ so that
 * masking its length gives every verifier a bound it cannot lose. */
#define HT_NAME_ROOM 1024

enum ht_rec_type { HT_REC_EXEC = 1, HT_REC_OPEN = 2 };

enum ht_flags {
	HT_F_ARGV_TRUNC = 1,   /* more args than max_args, or the area filled */
	HT_F_ARGV_FAULT = 2,   /* the caller's argv could not be read */
	HT_F_NAME_FAULT = 4,   /* the filename/path could not be read */
	HT_F_PPID_UNKNOWN = 8, /* the parent could not be read (kernel reads refused) */
	HT_F_MNTNS_UNKNOWN = 16,   /* the mount namespace was not read */
	HT_F_PIDNS_UNKNOWN = 32,   /* the pid namespace was not read */
	HT_F_NSPID_UNKNOWN = 64,   /* ns_pid and ns_tid were not read */
	HT_F_NSPPID_UNKNOWN = 128, /* ns_ppid was not read */
	HT_F_CGROUP_UNKNOWN = 256, /* no cgroup id (a kernel without the helper) */
	/* Opens through io_uring (open.bpf.c): */
	HT_F_IO_URING = 512,      /* an io_uring request, no open syscall */
	HT_F_NO_THREAD = 1024,   /* no thread of the process submitted it (SQPOLL): tid, uid, comm unknown */
	HT_F_NO_PROCESS = 2048,  /* the submitter is a kernel thread: the process is unknown too */
	HT_F_FIXED_SLOT = 4096, /* opened into a fixed file slot: the result is no fd */
	HT_F_ARGS_FAULT = 8192, /* flags and mode unknown (unreadable, or changed since the kernel read them) */
	HT_F_NO_RESULT = 16384,  /* the result is unknown (no completion is posted for a success) */
	HT_F_KERNEL_COPY = 32768, /* the path is the kernel's copy, not read from the caller */
	/* A tracer in a pid namespace of its own (ht_cfg.view_pidns): pid, tid, ppid are
	 * that namespace's, and these say one has none there (outside it) or is unknown. */
	HT_F_VIEW_TID_NONE = 65536,
	HT_F_VIEW_PID_NONE = 131072,
	HT_F_VIEW_PPID_NONE = 262144,
};
/* What ht_fill_hdr decides afresh each time it fills a header. */
#define HT_F_VIEW (HT_F_VIEW_TID_NONE | HT_F_VIEW_PID_NONE | HT_F_VIEW_PPID_NONE)
#define HT_F_HDR (HT_F_PPID_UNKNOWN | HT_F_MNTNS_UNKNOWN | HT_F_PIDNS_UNKNOWN | \
		  HT_F_NSPID_UNKNOWN | HT_F_NSPPID_UNKNOWN | HT_F_CGROUP_UNKNOWN | HT_F_VIEW)

enum ht_source { HT_SRC_NONE = 0, HT_SRC_SYSCALL = 1, HT_SRC_NEW_IMAGE = 2, HT_SRC_TRACEPOINT = 3 };

enum ht_syscall {
	HT_SYS_EXECVE = 0, HT_SYS_EXECVEAT = 1,
	HT_SYS_OPEN = 0, HT_SYS_OPENAT = 1, HT_SYS_OPENAT2 = 2, HT_SYS_CREAT = 3,
};

/* pid, tid and ppid are the tracer's pid namespace's ids: the kernel's (the initial
 * namespace's) unless ht_cfg.view_pidns names another; ns_pid, ns_tid, ns_ppid: the
 * same in the task's own pid namespace. */
struct ht_hdr {
	__u64 ts;
	__u32 type;
	__u32 pid;
	__u32 tid;
	__u32 ppid;
	__u32 uid;
	__u32 flags;
	char comm[HT_COMM_LEN];
	__u64 cgroup_id;
	__u32 mntns;
	__u32 pidns;
	__u32 ns_pid;
	__u32 ns_tid;
	__u32 ns_ppid;
	__u32 hdr_pad;
};

/* Variable length: only the used part of data[] (filename, NUL, then the
 * packed argv strings) goes into the ring buffer. */
struct ht_exec {
	struct ht_hdr h;
	__s32 retval;
	__u16 syscall;
	__u16 name_len; /* bytes of filename in data[], NUL included; 0 = none */
	__u32 args_len; /* bytes of argv after the filename */
	__u8 name_source;
	__u8 argv_source;
	__u8 pad[2];
	char data[HT_NAME_ROOM + HT_ARGS_AREA + HT_ARG_READ];
};

struct ht_open {
	struct ht_hdr h;
	__s32 ret;
	__s32 dfd;
	__u64 flags;
	__u32 mode;
	__u16 syscall;
	__u16 path_len; /* bytes of path, NUL included; 0 = none */
	char path[HT_PATH_READ];
};

/* Set by user space before load; the verifier sees them as constants. */
struct ht_config {
	__u32 self_tgid;
	__u32 pid;
	__u32 tid;
	__u32 uid;
	__u32 ppid;
	__u32 max_args;
	__u8 has_pid;
	__u8 has_tid;
	__u8 has_uid;
	__u8 has_ppid;
	__u8 has_comm;
	__u8 failed_only;
	/* 0 where bpf_probe_read_kernel is refused (lockdown=confidentiality):
	 * the verifier then never sees the branches that call it. */
	__u8 kernel_reads;
	__u8 has_mntns;
	char comm[HT_COMM_LEN];
	__u32 mntns;       /* --mntns */
	__u8 cgroup_slots; /* bit i: ht_cgroups[i] holds a cgroup the task must be under */
	__u8 follow;       /* --descendants-of: only tasks in ht_follow */
	__u8 has_cgroupmap; /* --cgroupmap: only cgroup ids in ht_cgroupmap */
	__u8 has_mntnsmap;  /* --mntnsmap: only mount namespaces in ht_mntnsmap */
	/* The tracer's pid namespace inode when it is not the initial one: then pid, tid,
	 * ppid and self_tgid are that namespace's numbers (pidns.py). 0: the host's. */
	__u32 view_pidns;
};

const volatile struct ht_config ht_cfg = {};

#ifdef HT_PERF_BUFFER
/* Kernels before 5.8 have no ring buffer: per-CPU perf buffers. Their own loss
 * records arrive only with the next sample that fits, so failures are counted
 * here instead, as for the ring buffer (output returns an error since 5.4). */
struct {
	__uint(type, BPF_MAP_TYPE_PERF_EVENT_ARRAY);
	__uint(key_size, sizeof(__u32));
	__uint(value_size, sizeof(__u32));
} ht_events SEC(".maps");
#else
struct {
	__uint(type, BPF_MAP_TYPE_RINGBUF);
	__uint(max_entries, 1 << 22); /* resized by user space before load */
} ht_events SEC(".maps");
#endif

/* Losses, so that every one is reported at once; records.LOST_* name the slots. */
enum ht_lost_slot {
	HT_LOST_EVENT = 0,   /* an event that could not be output or kept: exactly one */
	HT_LOST_PENDING = 1, /* an exec with no room to wait for its result: at most one */
	HT_LOST_FOLLOW = 2,  /* a child of a followed task with no room in ht_follow */
};
struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, 3);
	__type(key, __u32);
	__type(value, __u64);
} ht_lost SEC(".maps");

static __always_inline void ht_count_lost(__u32 slot)
{
	__u64 *n = bpf_map_lookup_elem(&ht_lost, &slot);

	if (n)
		__sync_fetch_and_add(n, 1);
}

/* --cgroup and --container: a cgroup (by fd, set by user space) the task must be in,
 * at any depth, as libbpf-tools' -c tests it. */
struct {
	__uint(type, BPF_MAP_TYPE_CGROUP_ARRAY);
	__uint(max_entries, 2);
	__type(key, __u32);
	__type(value, __u32);
} ht_cgroups SEC(".maps");

/* --descendants-of: the tasks (kernel tids) followed. User space puts the tree as it
 * is at the start in; each fork by a followed task adds the child, each exit removes
 * the task. */
struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, 1); /* sized by user space when following */
	__type(key, __u32);
	__type(value, __u8);
} ht_follow SEC(".maps");

/* BCC's --cgroupmap and --mntnsmap: a hash map someone else pinned and fills, whose
 * keys are the cgroup ids or mount namespace inodes to trace (pinned_maps.py). User
 * space hands the pinned map over in place of these before load; looked up for every
 * event, so what is traced follows the map's contents. */
struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, 1);
	__type(key, __u64);
	__type(value, __u64);
} ht_cgroupmap SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, 1);
	__type(key, __u64);
	__type(value, __u32);
} ht_mntnsmap SEC(".maps");


static __always_inline void ht_emit(void *ctx, void *rec, __u64 size)
{
#ifdef HT_PERF_BUFFER
	long err = bpf_perf_event_output(ctx, &ht_events, BPF_F_CURRENT_CPU, rec, size);
#else
	long err = bpf_ringbuf_output(&ht_events, rec, size, 0);
#endif
	if (err)
		ht_count_lost(HT_LOST_EVENT);
}

/* HT_RAW_TP builds for kernels without BTF: no struct layout is known there, so
 * nothing may touch task_struct (and libbpf then needs no kernel BTF at all). */
#ifdef HT_RAW_TP
#define HT_TASK_LAYOUT 0
#else
#define HT_TASK_LAYOUT 1
#endif

/* The calling task as a BTF pointer (5.11+), which tp_btf programs walk with
 * plain loads where bpf_probe_read_kernel may be refused; NULL where the helper
 * is missing (the branch is dead code once libbpf has relocated the check). */
static __always_inline struct task_struct *ht_task_btf(void)
{
#ifdef HT_TP_BTF
	if (bpf_core_enum_value_exists(enum bpf_func_id, BPF_FUNC_get_current_task_btf))
		return bpf_get_current_task_btf();
#endif
	return NULL;
}

/* -- who the task is: ids in the tracer's and in the task's own pid namespace --- */

#define HT_PIDNS_LEVELS 8 /* vocabulary.PIDNS_LEVELS: deeper namespaces are unknown */

/* What a struct pid says at one pid namespace level. */
enum ht_upid_res { HT_UPID_UNKNOWN = -1, HT_UPID_ABSENT = 0, HT_UPID_OK = 1 };

/* Which task's struct pid: the thread, its process (group leader), its parent process. */
enum ht_which { HT_THREAD = 0, HT_LEADER = 1, HT_PARENT = 2 };

#if HT_TASK_LAYOUT
/* BTF walk (tp_btf): plain loads at constant offsets, allowed where kernel reads are
 * not. Past level 0 it needs a kernel whose struct pid ends in a flexible array
 * (6.5+, and the verifier lets a walk go past the struct's end only then); before,
 * numbers[1] holds level 0 only, those loads would not relocate and are dead code. */
#define HT_UPID_AT(i)                                       \
	case i:                                             \
		*nr = pid->numbers[i].nr;                   \
		*inum = pid->numbers[i].ns->ns.inum;        \
		return *inum ? HT_UPID_OK : HT_UPID_UNKNOWN;

static __always_inline int ht_upid_btf(struct pid *pid, __u32 lvl, __u32 *nr, __u32 *inum)
{
	if (!pid)
		return HT_UPID_UNKNOWN;
	if (pid->level < lvl)
		return HT_UPID_ABSENT;
	if (lvl > 0 && bpf_core_field_size(struct pid, numbers) != 0)
		return HT_UPID_UNKNOWN;
	switch (lvl) {
	HT_UPID_AT(0)
	HT_UPID_AT(1)
	HT_UPID_AT(2)
	HT_UPID_AT(3)
	HT_UPID_AT(4)
	HT_UPID_AT(5)
	HT_UPID_AT(6)
	HT_UPID_AT(7)
	}
	return HT_UPID_UNKNOWN;
}

/* Kernel reads: any level, any kernel with BTF, where bpf_probe_read_kernel is allowed. */
static __always_inline int ht_upid_read(struct pid *pid, __u32 lvl, __u32 *nr, __u32 *inum)
{
	struct pid_namespace *ns = NULL;
	unsigned long at;
	__u32 top = 0;

	if (!pid || BPF_CORE_READ_INTO(&top, pid, level))
		return HT_UPID_UNKNOWN;
	if (top < lvl)
		return HT_UPID_ABSENT;
	if (lvl >= HT_PIDNS_LEVELS)
		return HT_UPID_UNKNOWN;
	at = (unsigned long)pid + bpf_core_field_offset(struct pid, numbers) +
	     lvl * bpf_core_type_size(struct upid);
	if (bpf_probe_read_kernel(nr, sizeof(*nr),
				  (void *)(at + bpf_core_field_offset(struct upid, nr))) ||
	    bpf_probe_read_kernel(&ns, sizeof(ns),
				  (void *)(at + bpf_core_field_offset(struct upid, ns))) ||
	    !ns || BPF_CORE_READ_INTO(inum, ns, ns.inum) || !*inum)
		return HT_UPID_UNKNOWN;
	return HT_UPID_OK;
}
#endif

#if HT_TASK_LAYOUT
/* The struct pid of ``which``: a BTF pointer from the task, or read from the current task. */
static __always_inline struct pid *ht_pid_btf(struct task_struct *task, enum ht_which which)
{
	if (which == HT_THREAD)
		return task->thread_pid;
	if (which == HT_LEADER)
		return task->group_leader->thread_pid;
	return task->real_parent->group_leader->thread_pid;
}

static __always_inline struct pid *ht_pid_read(enum ht_which which)
{
	struct task_struct *task = (struct task_struct *)bpf_get_current_task();

	if (which == HT_THREAD)
		return BPF_CORE_READ(task, thread_pid);
	if (which == HT_LEADER)
		return BPF_CORE_READ(task, group_leader, thread_pid);
	return BPF_CORE_READ(task, real_parent, group_leader, thread_pid);
}

#endif

/* The number ``which`` has at pid namespace level ``lvl``, and that level's inode. */
static __always_inline int ht_upid_of(enum ht_which which, __u32 lvl, __u32 *nr, __u32 *inum)
{
#if HT_TASK_LAYOUT
	struct task_struct *task = ht_task_btf();
	int res;

	if (task) {
		res = ht_upid_btf(ht_pid_btf(task, which), lvl, nr, inum);
		if (res != HT_UPID_UNKNOWN || !ht_cfg.kernel_reads)
			return res;
	}
	if (!ht_cfg.kernel_reads)
		return HT_UPID_UNKNOWN;
	return ht_upid_read(ht_pid_read(which), lvl, nr, inum);
#else
	return HT_UPID_UNKNOWN;
#endif
}

/* The number ``which`` has in the tracer's pid namespace (ht_cfg.view_pidns), and
 * that namespace's level (*lvl): found by the namespace's inode, level by level from
 * the host's down, as the tracer's own level is nowhere user space can read it.
 * ABSENT: the task lives outside that namespace (its own is not it nor below it), so
 * it has no number there. */
static __noinline int ht_view_find(enum ht_which which, __u32 *lvl, __u32 *nr)
{
	__u32 inum = 0;
	int res;

	for (__u32 l = 0; l < HT_PIDNS_LEVELS; l++) {
		res = ht_upid_of(which, l, nr, &inum);
		if (res != HT_UPID_OK)
			return res;
		if (inum == ht_cfg.view_pidns) {
			*lvl = l;
			return HT_UPID_OK;
		}
	}
	return HT_UPID_UNKNOWN;
}

/* The number ``which`` has in the tracer's pid namespace, whose level ``lvl`` is known:
 * a namespace has one level, so a number there in another namespace means none in it. */
static __always_inline int ht_view_at(enum ht_which which, __u32 lvl, __u32 *nr)
{
	__u32 inum = 0;
	int res = ht_upid_of(which, lvl, nr, &inum);

	return res == HT_UPID_OK && inum != ht_cfg.view_pidns ? HT_UPID_ABSENT : res;
}

/* The current task's pid, tid and ppid in the tracer's pid namespace, found once per
 * event for the filters and the header; ``none`` holds HT_F_VIEW_* for each it has
 * none of there (0 in its place). */
struct ht_view {
	__u32 pid;
	__u32 tid;
	__u32 ppid;
	__u32 none;
};

/* ``which``'s number in the tracer's pid namespace: read at its level ``*lvl`` when that
 * is ``known``, else searched for (which sets ``*lvl``). */
static __always_inline int ht_view_nr(enum ht_which which, bool known, __u32 *lvl, __u32 *nr)
{
	return known ? ht_view_at(which, *lvl, nr) : ht_view_find(which, lvl, nr);
}

/* ``nr`` where ``res`` found it, else 0 with ``flag`` added to ``*none``. */
static __always_inline __u32 ht_view_keep(int res, __u32 nr, __u32 flag, __u32 *none)
{
	if (res == HT_UPID_OK)
		return nr;
	*none |= flag;
	return 0;
}

/* Fills ``v``: one level search, the thread's (the current task's, always readable);
 * its process and parent are then read at that level. The threads of a process share
 * one pid namespace, so a thread outside the tracer's has a process outside it too;
 * its parent may still be inside, and is searched for then. */
static __noinline void ht_view_of(struct ht_view *v)
{
	__u32 lvl = 0, tid = 0, pid = 0, ppid = 0;
	int tid_res, pid_res, ppid_res;
	bool known;

	tid_res = ht_view_find(HT_THREAD, &lvl, &tid);
	known = tid_res == HT_UPID_OK;
	pid_res = tid_res == HT_UPID_ABSENT ? HT_UPID_ABSENT :
		  ht_view_nr(HT_LEADER, known, &lvl, &pid);
	ppid_res = ht_view_nr(HT_PARENT, known, &lvl, &ppid);
	v->none = 0;
	v->tid = ht_view_keep(tid_res, tid, HT_F_VIEW_TID_NONE, &v->none);
	v->pid = ht_view_keep(pid_res, pid, HT_F_VIEW_PID_NONE, &v->none);
	v->ppid = ht_view_keep(ppid_res, ppid, HT_F_VIEW_PPID_NONE, &v->none);
}

/* What the filters and the header of this event need of the tracer's pid namespace:
 * nothing where that is the host's (nothing then reads ``v``). */
static __always_inline void ht_view_get(struct ht_view *v)
{
	if (ht_cfg.view_pidns)
		ht_view_of(v);
}

/* pid, tid, ppid in the tracer's pid namespace, in place of the host's, with a flag
 * for each the task has none of there. */
static __always_inline void ht_fill_view(struct ht_hdr *h, const struct ht_view *v)
{
	h->tid = v->tid;
	h->pid = v->pid;
	h->ppid = v->ppid;
	h->flags |= v->none;
}

/* Whether the current task is the tracer itself: self_tgid is the tracer's pid in its
 * own namespace, which names another process on the host when that is not the host's. */
static __always_inline bool ht_is_self(__u32 tgid, const struct ht_view *v)
{
	if (!ht_cfg.view_pidns)
		return tgid == ht_cfg.self_tgid;
	return !(v->none & HT_F_VIEW_PID_NONE) && v->pid == ht_cfg.self_tgid;
}

/* -p, -t, --ppid from inside a pid namespace: they name that namespace's pids. */
static __always_inline bool ht_view_ids_wanted(const struct ht_view *v)
{
	if (ht_cfg.has_pid && ((v->none & HT_F_VIEW_PID_NONE) || v->pid != ht_cfg.pid))
		return false;
	if (ht_cfg.has_tid && ((v->none & HT_F_VIEW_TID_NONE) || v->tid != ht_cfg.tid))
		return false;
	return !ht_cfg.has_ppid || (!(v->none & HT_F_VIEW_PPID_NONE) && v->ppid == ht_cfg.ppid);
}

/* How deep the task's own pid namespace is (0: the host's). */
static __always_inline bool ht_pidns_level(__u32 *lvl)
{
#if HT_TASK_LAYOUT
	struct task_struct *task = ht_task_btf();

	if (task) {
		*lvl = task->thread_pid->level;
		return true;
	}
	if (!ht_cfg.kernel_reads)
		return false;
	task = (struct task_struct *)bpf_get_current_task();
	return BPF_CORE_READ_INTO(lvl, task, thread_pid, level) == 0;
#else
	return false;
#endif
}

/* The mount namespace's inode; false when nothing may read it. */
static __always_inline bool ht_mntns(__u32 *inum)
{
	*inum = 0;
#if HT_TASK_LAYOUT
	struct task_struct *task = ht_task_btf();

	if (task) {
		*inum = task->nsproxy->mnt_ns->ns.inum;
		return *inum != 0;
	}
	if (!ht_cfg.kernel_reads)
		return false;
	task = (struct task_struct *)bpf_get_current_task();
	return !BPF_CORE_READ_INTO(inum, task, nsproxy, mnt_ns, ns.inum) && *inum != 0;
#else
	return false;
#endif
}

/* The caller's parent tgid; false when nothing may read it. 0 is a real
 * ppid (init's), so the
 * answer comes with a flag, never as 0 for unknown. */
static __always_inline bool ht_ppid(__u32 *ppid)
{
	struct task_struct *task = ht_task_btf();

	if (task) {
		__u32 tgid = task->real_parent->tgid;

		/* The value, not its address, leaves this branch: otherwise clang loads
		 * it after the join through one register that holds either this BTF
		 * pointer or the stack slot the helper below fills, and 6.1's verifier
		 * refuses that ("same insn cannot be used with different pointers"). */
		barrier_var(tgid);
		*ppid = tgid;
		return true;
	}
	if (!HT_TASK_LAYOUT || !ht_cfg.kernel_reads)
		return false;
	task = (struct task_struct *)bpf_get_current_task();
	return BPF_CORE_READ_INTO(ppid, task, real_parent, tgid) == 0;
}

static __always_inline __u64 ht_cgroup_id(bool *known)
{
#if HT_TASK_LAYOUT
	*known = bpf_core_enum_value_exists(enum bpf_func_id, BPF_FUNC_get_current_cgroup_id);
	if (!*known)
		return 0;
#else
	*known = true; /* no BTF to ask: the helper is older than BTF itself (4.18) */
#endif
	return bpf_get_current_cgroup_id();
}

/* --descendants-of: is the calling task followed? */
static __always_inline bool ht_followed(void)
{
	__u32 tid = (__u32)bpf_get_current_pid_tgid();

	return bpf_map_lookup_elem(&ht_follow, &tid) != NULL;
}

/* sched_process_fork: a followed task's child is followed from its first instruction. */
static __always_inline int ht_follow_fork(__u32 child)
{
	__u8 one = 1;

	if (!ht_cfg.follow || !ht_followed())
		return 0;
	if (bpf_map_update_elem(&ht_follow, &child, &one, BPF_ANY))
		ht_count_lost(HT_LOST_FOLLOW);
	return 0;
}

/* sched_process_exit: the task's id may be reused by a task not in the tree. */
static __always_inline int ht_follow_exit(void)
{
	__u32 tid = (__u32)bpf_get_current_pid_tgid();

	if (ht_cfg.follow)
		bpf_map_delete_elem(&ht_follow, &tid);
	return 0;
}

/* sched_process_exec: a thread other than the leader that execs takes the leader's id
 * (de_thread), after the leader's own exit removed that id. */
static __always_inline void ht_follow_exec(__u32 old_tid)
{
	__u32 tid = (__u32)bpf_get_current_pid_tgid();
	__u8 one = 1;

	if (!ht_cfg.follow || old_tid == tid || !bpf_map_lookup_elem(&ht_follow, &old_tid))
		return;
	if (bpf_map_update_elem(&ht_follow, &tid, &one, BPF_ANY))
		ht_count_lost(HT_LOST_FOLLOW);
	bpf_map_delete_elem(&ht_follow, &old_tid);
}

/* Filters known at syscall entry: ourselves, pid, tid, uid, ppid, and where the task
 * lives (cgroup, container, mount namespace, process tree). ``v``: ht_view_get's. */
static __always_inline bool ht_wanted(const struct ht_view *v)
{
	__u64 id = bpf_get_current_pid_tgid();
	__u32 tgid = id >> 32, tid = (__u32)id, mntns;

	if (ht_is_self(tgid, v))
		return false;
	if (ht_cfg.view_pidns) {
		if (!ht_view_ids_wanted(v))
			return false;
	} else {
		if (ht_cfg.has_pid && tgid != ht_cfg.pid)
			return false;
		if (ht_cfg.has_tid && tid != ht_cfg.tid)
			return false;
		if (ht_cfg.has_ppid) {
			__u32 ppid;

			if (!ht_ppid(&ppid) || ppid != ht_cfg.ppid)
				return false;
		}
	}
	if (ht_cfg.has_uid && (__u32)bpf_get_current_uid_gid() != ht_cfg.uid)
		return false;
	if ((ht_cfg.cgroup_slots & 1) && bpf_current_task_under_cgroup(&ht_cgroups, 0) != 1)
		return false;
	if ((ht_cfg.cgroup_slots & 2) && bpf_current_task_under_cgroup(&ht_cgroups, 1) != 1)
		return false;
	if (ht_cfg.has_mntns && (!ht_mntns(&mntns) || mntns != ht_cfg.mntns))
		return false;
	if (ht_cfg.follow && !ht_followed())
		return false;
	if (ht_cfg.has_cgroupmap) {
		__u64 cgid = bpf_get_current_cgroup_id();

		if (!bpf_map_lookup_elem(&ht_cgroupmap, &cgid))
			return false;
	}
	if (ht_cfg.has_mntnsmap) {
		__u64 key;

		if (!ht_mntns(&mntns))
			return false;
		key = mntns;
		if (!bpf_map_lookup_elem(&ht_mntnsmap, &key))
			return false;
	}
	return true;
}

static __always_inline bool ht_comm_ok(const char *comm)
{
	if (!ht_cfg.has_comm)
		return true;
	for (int i = 0; i < HT_COMM_LEN; i++) {
		if (comm[i] != ht_cfg.comm[i])
			return false;
		if (comm[i] == 0)
			break;
	}
	return true;
}

/* Where the task lives: cgroup, namespaces, and its ids in its own pid namespace. */
static __noinline void ht_fill_origin(struct ht_hdr *h)
{
	__u32 lvl = 0, inum = 0;
	bool known;
	int res;

	h->cgroup_id = ht_cgroup_id(&known);
	if (!known)
		h->flags |= HT_F_CGROUP_UNKNOWN;
	if (!ht_mntns(&h->mntns))
		h->flags |= HT_F_MNTNS_UNKNOWN;
	h->pidns = h->ns_pid = h->ns_tid = h->ns_ppid = 0;
	if (!ht_pidns_level(&lvl) ||
	    ht_upid_of(HT_THREAD, lvl, &h->ns_tid, &h->pidns) != HT_UPID_OK) {
		h->flags |= HT_F_PIDNS_UNKNOWN | HT_F_NSPID_UNKNOWN | HT_F_NSPPID_UNKNOWN;
		return;
	}
	if (ht_upid_of(HT_LEADER, lvl, &h->ns_pid, &inum) != HT_UPID_OK || inum != h->pidns)
		h->flags |= HT_F_NSPID_UNKNOWN;
	res = ht_upid_of(HT_PARENT, lvl, &h->ns_ppid, &inum);
	if (res == HT_UPID_UNKNOWN)
		h->flags |= HT_F_NSPPID_UNKNOWN;
	else if (res == HT_UPID_ABSENT || inum != h->pidns)
		h->ns_ppid = 0; /* the parent is outside the task's namespace: getppid() says 0 */
}

/* Fills every header field, flags included (the HT_F_HDR ones or 0). ``v``:
 * ht_view_get's. */
static __always_inline void ht_fill_hdr(struct ht_hdr *h, __u32 type, const struct ht_view *v)
{
	__u64 id = bpf_get_current_pid_tgid();
	__u32 ppid = 0;

	h->ts = bpf_ktime_get_ns();
	h->type = type;
	h->pid = id >> 32;
	h->tid = (__u32)id;
	h->flags = 0;
	if (!ht_ppid(&ppid))
		h->flags |= HT_F_PPID_UNKNOWN;
	h->ppid = ppid;
	h->uid = (__u32)bpf_get_current_uid_gid();
	bpf_get_current_comm(h->comm, sizeof(h->comm));
	ht_fill_origin(h);
	if (ht_cfg.view_pidns)
		ht_fill_view(h, v);
	h->hdr_pad = 0;
}

#if defined(HT_TP_BTF) || defined(HT_RAW_TP)
/* Raw syscall tracepoints (sys_enter, sys_exit): attached by name, so no tracefs;
 * they fire on every syscall and the number says which. tp_btf programs read the
 * BTF-typed pt_regs with plain loads; raw_tp ones (no BTF) read it at the
 * architecture's fixed offsets, those of the ptrace register ABI. */
#define HT_RAW_SYSCALLS
#if defined(__TARGET_ARCH_x86)
#define HT_NR_OPEN 2
#define HT_NR_CREAT 85
#define HT_NR_EXECVE 59
#define HT_NR_OPENAT 257
#define HT_NR_EXECVEAT 322
#define HT_NR_OPENAT2 437
#define HT_TS_COMPAT 0x0002 /* arch/x86/include/asm/thread_info.h */
#define HT_USER32_CS 0x23   /* arch/x86/include/asm/segment.h: 32-bit user code */
#elif defined(__TARGET_ARCH_arm64)
/* include/uapi/asm-generic/unistd.h: no open(2) or creat(2) on arm64. */
#define HT_NR_EXECVE 221
#define HT_NR_OPENAT 56
#define HT_NR_EXECVEAT 281
#define HT_NR_OPENAT2 437
#define HT_PSR_MODE32_BIT 0x10 /* arch/arm64/include/uapi/asm/ptrace.h: AArch32 caller */
#else
#error "raw syscall numbers and argument registers are defined for x86 and arm64 only"
#endif

#ifdef HT_TP_BTF
#define HT_REG(regs, field, off) ((regs)->field)
#else
static __always_inline unsigned long ht_reg_at(const void *regs, __u32 off)
{
	unsigned long v = 0;

	bpf_probe_read(&v, sizeof(v), (const char *)regs + off);
	return v;
}
#define HT_REG(regs, field, off) ht_reg_at(regs, off)
#endif

#if defined(__TARGET_ARCH_x86)
#define HT_SC_NR(regs) ((long)HT_REG(regs, orig_ax, 120))
#define HT_SC_ARG0(regs) HT_REG(regs, di, 112)
#define HT_SC_ARG1(regs) HT_REG(regs, si, 104)
#define HT_SC_ARG2(regs) HT_REG(regs, dx, 96)
#define HT_SC_ARG3(regs) HT_REG(regs, r10, 56)
#define HT_SC_CS(regs) (HT_REG(regs, cs, 136) & 0xffff)

/* A 32-bit (ia32) syscall: its numbers mean other calls (11 is execve there,
 * munmap here). Classic syscall tracepoints skip them on x86; so do we: by the
 * caller's code segment (32-bit programs), and where the task can be read by
 * TS_COMPAT (int 0x80 from 64-bit code too). */
static __always_inline bool ht_compat_syscall(struct pt_regs *regs)
{
	struct task_struct *task = ht_task_btf();
	__u32 status = 0;

	if (HT_SC_CS(regs) == HT_USER32_CS)
		return true;
	if (task)
		return task->thread_info.status & HT_TS_COMPAT;
	if (!HT_TASK_LAYOUT || !ht_cfg.kernel_reads)
		return false;
	task = (struct task_struct *)bpf_get_current_task();
	if (BPF_CORE_READ_INTO(&status, task, thread_info.status))
		return false;
	return status & HT_TS_COMPAT;
}
#else /* arm64: struct pt_regs starts with regs[31], sp, pc, pstate; then orig_x0, syscallno.
       * At sys_enter x0 still holds the first argument; at sys_exit it is the result. */
#define HT_SC_NR(regs) ((long)(int)HT_REG(regs, syscallno, 280))
#define HT_SC_ARG0(regs) HT_REG(regs, regs[0], 0)
#define HT_SC_ARG1(regs) HT_REG(regs, regs[1], 8)
#define HT_SC_ARG2(regs) HT_REG(regs, regs[2], 16)
#define HT_SC_ARG3(regs) HT_REG(regs, regs[3], 24)

/* An AArch32 task's syscall numbers mean other calls: its saved PSTATE says it
 * runs in 32-bit mode (compat_user_mode()). No task read needed. */
static __always_inline bool ht_compat_syscall(struct pt_regs *regs)
{
	return HT_REG(regs, pstate, 264) & HT_PSR_MODE32_BIT;
}
#endif

#ifdef HT_TP_BTF
#define HT_SYS_ENTER(name) SEC("tp_btf/sys_enter") int BPF_PROG(name, struct pt_regs *regs, long id)
#define HT_SYS_EXIT(name) SEC("tp_btf/sys_exit") int BPF_PROG(name, struct pt_regs *regs, long ret)
#define HT_EXEC_DONE(name) SEC("tp_btf/sched_process_exec") \
	int BPF_PROG(name, struct task_struct *p, pid_t old_pid, struct linux_binprm *bprm)
#else
#define HT_SYS_ENTER(name) SEC("raw_tp/sys_enter") int BPF_PROG(name, struct pt_regs *regs, long id)
#define HT_SYS_EXIT(name) SEC("raw_tp/sys_exit") int BPF_PROG(name, struct pt_regs *regs, long ret)
#define HT_EXEC_DONE(name) SEC("raw_tp/sched_process_exec") \
	int BPF_PROG(name, struct task_struct *p, pid_t old_pid, struct linux_binprm *bprm)
#endif
#endif

/* --descendants-of keeps ht_follow up to date with these; user space loads them only
 * when following (raw_tp builds have none: no task layout to read a child's id). */
#if defined(HT_TP_BTF)
SEC("tp_btf/sched_process_fork")
int BPF_PROG(ht_fork, struct task_struct *parent, struct task_struct *child)
{
	return ht_follow_fork(child->pid);
}

SEC("tp_btf/sched_process_exit")
int BPF_PROG(ht_exit, struct task_struct *p)
{
	return ht_follow_exit();
}
#elif !defined(HT_RAW_TP)
SEC("tracepoint/sched/sched_process_fork")
int ht_fork(struct trace_event_raw_sched_process_fork *ctx)
{
	return ht_follow_fork(ctx->child_pid);
}

SEC("tracepoint/sched/sched_process_exit")
int ht_exit(void *ctx)
{
	return ht_follow_exit();
}
#endif

/* struct open_how as the syscall ABI fixes it (include/uapi/linux/openat2.h):
 * user memory, so no relocation against the kernel's BTF. */
struct ht_open_how {
	__u64 flags;
	__u64 mode;
	__u64 resolve;
};

char LICENSE[] SEC("license") = "Dual BSD/GPL";

#endif
