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
};

enum ht_source { HT_SRC_NONE = 0, HT_SRC_SYSCALL = 1, HT_SRC_NEW_IMAGE = 2, HT_SRC_TRACEPOINT = 3 };

enum ht_syscall {
	HT_SYS_EXECVE = 0, HT_SYS_EXECVEAT = 1,
	HT_SYS_OPEN = 0, HT_SYS_OPENAT = 1, HT_SYS_OPENAT2 = 2, HT_SYS_CREAT = 3,
};

struct ht_hdr {
	__u64 ts;
	__u32 type;
	__u32 pid;
	__u32 tid;
	__u32 ppid;
	__u32 uid;
	__u32 flags;
	char comm[HT_COMM_LEN];
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
	__u8 pad;
	char comm[HT_COMM_LEN];
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
};
struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, 2);
	__type(key, __u32);
	__type(value, __u64);
} ht_lost SEC(".maps");

static __always_inline void ht_count_lost(__u32 slot)
{
	__u64 *n = bpf_map_lookup_elem(&ht_lost, &slot);

	if (n)
		__sync_fetch_and_add(n, 1);
}

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

/* The caller's parent tgid; false when nothing may read it. 0 is a real
 * ppid (init's), so the answer comes with a flag, never as 0 for unknown. */
static __always_inline bool ht_ppid(__u32 *ppid)
{
	struct task_struct *task = ht_task_btf();

	if (task) {
		*ppid = task->real_parent->tgid;
		return true;
	}
	if (!HT_TASK_LAYOUT || !ht_cfg.kernel_reads)
		return false;
	task = (struct task_struct *)bpf_get_current_task();
	return BPF_CORE_READ_INTO(ppid, task, real_parent, tgid) == 0;
}

/* Filters known at syscall entry: ourselves, pid, tid, uid, ppid. */
static __always_inline bool ht_wanted(void)
{
	__u64 id = bpf_get_current_pid_tgid();
	__u32 tgid = id >> 32, tid = (__u32)id;

	if (tgid == ht_cfg.self_tgid)
		return false;
	if (ht_cfg.has_pid && tgid != ht_cfg.pid)
		return false;
	if (ht_cfg.has_tid && tid != ht_cfg.tid)
		return false;
	if (ht_cfg.has_uid && (__u32)bpf_get_current_uid_gid() != ht_cfg.uid)
		return false;
	if (ht_cfg.has_ppid) {
		__u32 ppid;

		if (!ht_ppid(&ppid) || ppid != ht_cfg.ppid)
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

/* Fills every header field, flags included (HT_F_PPID_UNKNOWN or 0). */
static __always_inline void ht_fill_hdr(struct ht_hdr *h, __u32 type)
{
	__u64 id = bpf_get_current_pid_tgid();
	__u32 ppid = 0;

	h->ts = bpf_ktime_get_ns();
	h->type = type;
	h->pid = id >> 32;
	h->tid = (__u32)id;
	h->flags = ht_ppid(&ppid) ? 0 : HT_F_PPID_UNKNOWN;
	h->ppid = ppid;
	h->uid = (__u32)bpf_get_current_uid_gid();
	bpf_get_current_comm(h->comm, sizeof(h->comm));
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

/* struct open_how as the syscall ABI fixes it (include/uapi/linux/openat2.h):
 * user memory, so no relocation against the kernel's BTF. */
struct ht_open_how {
	__u64 flags;
	__u64 mode;
	__u64 resolve;
};

char LICENSE[] SEC("license") = "Dual BSD/GPL";

#endif
