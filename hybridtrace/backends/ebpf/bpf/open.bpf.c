/* open/openat/openat2/creat tracing: arguments are kept per thread at
 * sys_enter, the path is read at sys_exit (the kernel has copied it by then, so
 * its page is present) and one record per call goes to the ring buffer.
 * Classic syscall tracepoints, or with HT_TP_BTF / HT_RAW_TP the raw ones (see
 * exec.bpf.c). */
#include "common.h"

#define O_WRONLY 01
#define O_CREAT 0100
#define O_TRUNC 01000
#define AT_FDCWD -100

struct ht_open_args {
	const char *path;
	__u64 flags;
	__u32 mode;
	__s32 dfd;
	__u16 syscall;
};

struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, 10240);
	__type(key, __u32);
	__type(value, struct ht_open_args);
} ht_opens SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, struct ht_open);
} ht_open_buf SEC(".maps");

static __always_inline int on_enter(const char *path, __u64 flags, __u32 mode, __s32 dfd,
				    __u16 sys)
{
	struct ht_open_args a = {};
	__u32 tid;

	if (!ht_wanted())
		return 0;
	if (ht_cfg.has_comm) {
		char comm[HT_COMM_LEN];

		bpf_get_current_comm(comm, sizeof(comm));
		if (!ht_comm_ok(comm))
			return 0;
	}
	a.path = path;
	a.flags = flags;
	a.mode = mode;
	a.dfd = dfd;
	a.syscall = sys;
	tid = (__u32)bpf_get_current_pid_tgid();
	if (bpf_map_update_elem(&ht_opens, &tid, &a, BPF_ANY))
		ht_count_lost(HT_LOST_EVENT); /* its result would find nothing to report */
	return 0;
}

static __always_inline int on_enter_openat2(__s32 dfd, const char *path, const void *uhow)
{
	struct ht_open_how how = {};

	bpf_probe_read_user(&how, sizeof(how), uhow);
	return on_enter(path, how.flags, how.mode, dfd, HT_SYS_OPENAT2);
}

static __always_inline int on_exit(void *ctx, long ret)
{
	__u32 zero = 0, tid = (__u32)bpf_get_current_pid_tgid();
	struct ht_open_args *a = bpf_map_lookup_elem(&ht_opens, &tid);
	struct ht_open *e;
	__u64 size;
	long n;

	if (!a)
		return 0;
	if (ht_cfg.failed_only && ret >= 0)
		goto out;
	e = bpf_map_lookup_elem(&ht_open_buf, &zero);
	if (!e)
		goto out;
	ht_fill_hdr(&e->h, HT_REC_OPEN);
	e->ret = ret;
	e->dfd = a->dfd;
	e->flags = a->flags;
	e->mode = a->mode;
	e->syscall = a->syscall;
	n = bpf_probe_read_user_str(e->path, HT_PATH_READ, a->path);
	if (n > 0) {
		e->path_len = n;
	} else {
		e->path_len = 0;
		e->h.flags |= HT_F_NAME_FAULT;
	}
	size = __builtin_offsetof(struct ht_open, path) + e->path_len;
	if (size > sizeof(*e))
		size = sizeof(*e);
	ht_emit(ctx, e, size);
out:
	bpf_map_delete_elem(&ht_opens, &tid);
	return 0;
}

/* --descendants-of: an exec by a thread other than the leader (the exec object does
 * this in its own sched_process_exec program). */
#if defined(HT_TP_BTF)
SEC("tp_btf/sched_process_exec")
int BPF_PROG(ht_exec_follow, struct task_struct *p, pid_t old_pid, struct linux_binprm *bprm)
{
	ht_follow_exec(old_pid);
	return 0;
}
#elif !defined(HT_RAW_TP)
SEC("tracepoint/sched/sched_process_exec")
int ht_exec_follow(struct trace_event_raw_sched_process_exec *ctx)
{
	ht_follow_exec(ctx->old_pid);
	return 0;
}
#endif

#ifndef HT_RAW_SYSCALLS
SEC("tracepoint/syscalls/sys_enter_open")
int ht_open_enter(struct trace_event_raw_sys_enter *ctx)
{
	return on_enter((const char *)ctx->args[0], ctx->args[1], ctx->args[2], AT_FDCWD,
			HT_SYS_OPEN);
}

SEC("tracepoint/syscalls/sys_enter_openat")
int ht_openat_enter(struct trace_event_raw_sys_enter *ctx)
{
	return on_enter((const char *)ctx->args[1], ctx->args[2], ctx->args[3], ctx->args[0],
			HT_SYS_OPENAT);
}

SEC("tracepoint/syscalls/sys_enter_openat2")
int ht_opnat2_enter(struct trace_event_raw_sys_enter *ctx)
{
	return on_enter_openat2(ctx->args[0], (const char *)ctx->args[1],
				(const void *)ctx->args[2]);
}

SEC("tracepoint/syscalls/sys_enter_creat")
int ht_creat_enter(struct trace_event_raw_sys_enter *ctx)
{
	return on_enter((const char *)ctx->args[0], O_CREAT | O_WRONLY | O_TRUNC, ctx->args[1],
			AT_FDCWD, HT_SYS_CREAT);
}

SEC("tracepoint/syscalls/sys_exit_open")
int ht_open_exit(struct trace_event_raw_sys_exit *ctx)
{
	return on_exit(ctx, ctx->ret);
}

SEC("tracepoint/syscalls/sys_exit_openat")
int ht_openat_exit(struct trace_event_raw_sys_exit *ctx)
{
	return on_exit(ctx, ctx->ret);
}

SEC("tracepoint/syscalls/sys_exit_openat2")
int ht_openat2_exit(struct trace_event_raw_sys_exit *ctx)
{
	return on_exit(ctx, ctx->ret);
}

SEC("tracepoint/syscalls/sys_exit_creat")
int ht_creat_exit(struct trace_event_raw_sys_exit *ctx)
{
	return on_exit(ctx, ctx->ret);
}
#else
HT_SYS_ENTER(ht_open_enter)
{
	if (id != HT_NR_OPENAT && id != HT_NR_OPENAT2
#ifdef HT_NR_OPEN
	    && id != HT_NR_OPEN && id != HT_NR_CREAT
#endif
	)
		return 0;
	if (ht_compat_syscall(regs))
		return 0;
	if (id == HT_NR_OPENAT)
		return on_enter((const char *)HT_SC_ARG1(regs), HT_SC_ARG2(regs), HT_SC_ARG3(regs),
				HT_SC_ARG0(regs), HT_SYS_OPENAT);
	if (id == HT_NR_OPENAT2)
		return on_enter_openat2(HT_SC_ARG0(regs), (const char *)HT_SC_ARG1(regs),
					(const void *)HT_SC_ARG2(regs));
#ifdef HT_NR_OPEN
	if (id == HT_NR_OPEN)
		return on_enter((const char *)HT_SC_ARG0(regs), HT_SC_ARG1(regs), HT_SC_ARG2(regs),
				AT_FDCWD, HT_SYS_OPEN);
	return on_enter((const char *)HT_SC_ARG0(regs), O_CREAT | O_WRONLY | O_TRUNC,
			HT_SC_ARG1(regs), AT_FDCWD, HT_SYS_CREAT);
#else
	return 0;
#endif
}

HT_SYS_EXIT(ht_open_exit)
{
	long id = HT_SC_NR(regs);

	/* A pending entry exists only for a call on_enter kept, so no compat check. */
	if (id == HT_NR_OPENAT || id == HT_NR_OPENAT2
#ifdef HT_NR_OPEN
	    || id == HT_NR_OPEN || id == HT_NR_CREAT
#endif
	)
		return on_exit(ctx, ret);
	return 0;
}
#endif
