/* execve/execveat tracing.
 *
 * sys_enter stores filename and argv read from the caller's memory per thread;
 * sys_exit emits failed execs from that; sched_process_exec emits successful
 * ones, re-reading argv from the new image (mm->arg_start..arg_end, just
 * written by the kernel) when the caller's pages could not be read, which is
 * the fork()+execv() case other tools print empty.
 *
 * Built three ways: classic tracepoints (syscalls/sys_enter_execve, ...: only
 * the traced syscalls run a program, but tracefs gives their ids); with
 * HT_TP_BTF the raw tracepoints by BTF name (no tracefs at all); with HT_RAW_TP
 * the same raw tracepoints on kernels without BTF (no task_struct reads). */
#include "common.h"

/* Per-thread pending execs; entries are large, so allocated on demand. Before 6.1 a
 * tracing program using such a map makes the kernel warn (and taint itself), so
 * there user space preallocates a smaller table instead (core_stream.py). */
struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, 2048);
	__uint(map_flags, BPF_F_NO_PREALLOC);
	__type(key, __u32);
	__type(value, struct ht_exec);
} ht_execs SEC(".maps");

#define HT_EXEC_FIXED __builtin_offsetof(struct ht_exec, data)

/* The pending exec whose caller's argv was not kept (a fork()+execv() child, whose
 * argv pages are not there yet, or no arguments): struct ht_exec up to the end of the
 * filename's room, so keeping it copies ~1 KiB instead of a whole one's ~34 KiB. Sized
 * and allocated as ht_execs is (core_stream.py). */
#define HT_EXEC_SMALL (HT_EXEC_FIXED + HT_NAME_ROOM)
struct ht_exec_small {
	__u64 words[HT_EXEC_SMALL / 8];
};
_Static_assert(HT_EXEC_SMALL % 16 == 0, "copied as two halves of 8-byte words");

struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, 2048);
	__uint(map_flags, BPF_F_NO_PREALLOC);
	__type(key, __u32);
	__type(value, struct ht_exec_small);
} ht_execs_small SEC(".maps");

/* Scratch space, one slot per CPU (sized by user space before load): a record
 * is too big for the BPF stack and for a per-CPU map's 32 KiB value limit. */
struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, struct ht_exec);
} ht_exec_buf SEC(".maps");


/* A bound on the filename length that survives clang: the empty asm hides what
 * clang knows, so the mask stays and even old verifiers see base < HT_NAME_ROOM. */
static __always_inline void ht_bound_name(__u32 *base)
{
	__u32 b = *base;

	asm volatile("" : "+r"(b));
	*base = b & (HT_NAME_ROOM - 1);
}

static __always_inline void read_caller_argv(struct ht_exec *e, const char *const *argv)
{
	__u32 base = e->name_len, off = 0;
	const char *p;
	long n;
	int i;

	ht_bound_name(&base);
	/* One pass more than HT_MAX_ARGS: an argument past max_args (at most HT_MAX_ARGS)
	 * must be seen to say argv was cut. */
	for (i = 0; i <= HT_MAX_ARGS; i++) {
		if (bpf_probe_read_user(&p, sizeof(p), &argv[i])) {
			e->h.flags |= HT_F_ARGV_FAULT;
			break;
		}
		if (!p)
			break;
		if (i >= ht_cfg.max_args || off > HT_ARGS_AREA - HT_ARG_READ) {
			e->h.flags |= HT_F_ARGV_TRUNC;
			break;
		}
		n = bpf_probe_read_user_str(&e->data[base + off], HT_ARG_READ, p);
		if (n < 0) {
			e->h.flags |= HT_F_ARGV_FAULT;
			break;
		}
		off += n ? n : 1; /* before 5.11 an empty string counts 0, its NUL unsaid */
	}
	e->args_len = off;
	e->argv_source = HT_SRC_SYSCALL;
}

static __always_inline int on_enter(const char *filename, const char *const *argv, __u16 sys)
{
	__u32 cpu = bpf_get_smp_processor_id(), tid;
	struct ht_view view;
	struct ht_exec *e;
	long n, err;

	ht_view_get(&view);
	if (!ht_wanted(&view))
		return 0;
	e = bpf_map_lookup_elem(&ht_exec_buf, &cpu);
	if (!e)
		return 0;
	ht_fill_hdr(&e->h, HT_REC_EXEC, &view);
	e->retval = 0;
	e->syscall = sys;
	e->args_len = 0;
	e->argv_source = HT_SRC_NONE;
	n = bpf_probe_read_user_str(e->data, HT_PATH_READ, filename);
	if (n > 0) {
		e->name_len = n;
		e->name_source = HT_SRC_SYSCALL;
	} else {
		e->name_len = 0;
		e->name_source = HT_SRC_NONE;
		e->h.flags |= HT_F_NAME_FAULT;
	}
	read_caller_argv(e, argv);
	tid = e->h.tid;
	/* Kept in the table of its size; the other one's entry for this thread (an exec
	 * that never came back) must not be taken for this exec. Full (a preallocated
	 * table, before 6.1): a success is still reported from the new image, a failure
	 * would not be, so it is counted as a possible loss. */
	if (e->args_len == 0) {
		bpf_map_delete_elem(&ht_execs, &tid);
		err = bpf_map_update_elem(&ht_execs_small, &tid, e, BPF_ANY);
	} else {
		bpf_map_delete_elem(&ht_execs_small, &tid);
		err = bpf_map_update_elem(&ht_execs, &tid, e, BPF_ANY);
	}
	if (err)
		ht_count_lost(HT_LOST_PENDING);
	return 0;
}

/* A small pending exec into the scratch, where argv can be added to it. Two
 * halves: clang inlines a copy of at most 128 stores. */
static __always_inline void ht_unpack_small(struct ht_exec *e, const struct ht_exec_small *s)
{
	__u64 *d = (__u64 *)e;

	__builtin_memcpy(d, s->words, HT_EXEC_SMALL / 2);
	__builtin_memcpy(d + HT_EXEC_SMALL / 16, &s->words[HT_EXEC_SMALL / 16], HT_EXEC_SMALL / 2);
}

/* The record's used bytes, at most ``room`` (the size of what holds it). */
static __always_inline __u64 exec_size(struct ht_exec *e, __u64 room)
{
	__u64 size = HT_EXEC_FIXED + e->name_len + e->args_len;

	if (size > room)
		size = room;
	return size;
}

/* A failed exec, from its pending entry of ``room`` bytes. */
static __always_inline void emit_failed(void *ctx, struct ht_exec *e, long ret, __u64 room)
{
	e->retval = ret;
	e->h.ts = bpf_ktime_get_ns();
	if (ht_comm_ok(e->h.comm))
		ht_emit(ctx, e, exec_size(e, room));
}

static __always_inline int on_exit(void *ctx, long ret)
{
	__u32 tid = (__u32)bpf_get_current_pid_tgid();
	struct ht_exec *e = bpf_map_lookup_elem(&ht_execs, &tid);

	if (e) {
		if (ret < 0)
			emit_failed(ctx, e, ret, sizeof(*e));
		bpf_map_delete_elem(&ht_execs, &tid);
		return 0;
	}
	e = bpf_map_lookup_elem(&ht_execs_small, &tid);
	if (!e)
		return 0;
	if (ret < 0)
		emit_failed(ctx, e, ret, HT_EXEC_SMALL);
	bpf_map_delete_elem(&ht_execs_small, &tid);
	return 0;
}

/* Where a long argument is read whole, only to find where the next one starts;
 * one slot per CPU (sized by user space), MAX_ARG_STRLEN bytes each. */
#define HT_MAX_ARG_STRLEN (32 * 4096)
struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, char[HT_MAX_ARG_STRLEN]);
} ht_skip_buf SEC(".maps");

/* Read argv back from the new image (mm->arg_start..arg_end, NUL-separated
 * strings the kernel has just written), one argument at a time like the
 * caller's, so a long argument is cut without losing the ones after it. */
static __always_inline void read_new_argv(struct ht_exec *e, unsigned long p,
					  unsigned long end)
{
	__u32 base = e->name_len, off = 0, cpu = bpf_get_smp_processor_id();
	char *skip = bpf_map_lookup_elem(&ht_skip_buf, &cpu);
	long n;
	int i;

	e->h.flags &= ~(HT_F_ARGV_FAULT | HT_F_ARGV_TRUNC);
	e->args_len = 0;
	e->argv_source = HT_SRC_NEW_IMAGE;
	if (!skip)
		return;
	ht_bound_name(&base);
	/* One pass more than HT_MAX_ARGS: an argument past max_args (at most HT_MAX_ARGS)
	 * must be seen to say argv was cut. */
	for (i = 0; i <= HT_MAX_ARGS; i++) {
		if (p >= end)
			break;
		if (i >= ht_cfg.max_args || off > HT_ARGS_AREA - HT_ARG_READ) {
			e->h.flags |= HT_F_ARGV_TRUNC;
			break;
		}
		n = bpf_probe_read_user_str(&e->data[base + off], HT_ARG_READ, (const void *)p);
		if (n < 0) {
			e->h.flags |= HT_F_ARGV_FAULT;
			break;
		}
		if (n == 0) /* before 5.11 an empty string counts 0, its NUL unsaid */
			n = 1;
		off += n;
		if (n == HT_ARG_READ) /* cut here: its full length says where the next starts */
			n = bpf_probe_read_user_str(skip, HT_MAX_ARG_STRLEN, (const void *)p);
		if (n <= 0) {
			e->h.flags |= HT_F_ARGV_FAULT;
			break;
		}
		p += n;
	}
	e->args_len = off;
}

/* Where the new image's argv lies: [*start, *end). False when nothing may read
 * the mm (kernel reads refused and no BTF task to walk). */
static __always_inline bool new_argv_area(struct task_struct *btf_task, unsigned long *start,
					  unsigned long *end)
{
	struct task_struct *task;

	if (btf_task) {
		*start = btf_task->mm->arg_start;
		*end = btf_task->mm->arg_end;
		return true;
	}
	if (!HT_TASK_LAYOUT || !ht_cfg.kernel_reads)
		return false;
	task = (struct task_struct *)bpf_get_current_task();
	return !BPF_CORE_READ_INTO(start, task, mm, arg_start) &&
	       !BPF_CORE_READ_INTO(end, task, mm, arg_end);
}

/* sched_process_exec: ``kname`` is the kernel's copy of the filename, read only
 * where kernel reads are allowed; ``uname`` the copy the kernel has just put on the
 * new image's stack (AT_EXECFN: the same bytes, and user memory, so readable where
 * kernel reads are refused) or NULL; ``task`` the new image's task as a BTF
 * pointer (tp_btf) or NULL. */
static __always_inline int exec_done(void *ctx, __u32 old_tid, const char *kname,
				     const char *uname, struct task_struct *task)
{
	__u8 source = HT_SRC_TRACEPOINT;
	__u32 cpu = bpf_get_smp_processor_id(), flags = 0;
	struct ht_exec *e = bpf_map_lookup_elem(&ht_execs, &old_tid);
	struct ht_exec_small *small = e ? NULL : bpf_map_lookup_elem(&ht_execs_small, &old_tid);
	bool pending = e != NULL, reread = true;
	unsigned long start, end;
	struct ht_view view;
	__u16 sys = HT_SYS_EXECVE;
	long n = -1;

	ht_follow_exec(old_tid);
	ht_view_get(&view);
	if (small) {
		e = bpf_map_lookup_elem(&ht_exec_buf, &cpu);
		if (!e)
			goto out;
		ht_unpack_small(e, small);
	}
	if (e && !(e->h.flags & HT_F_NAME_FAULT)) {
		/* Caller's filename is good; keep it, fix argv if the caller's was bad. */
		flags = e->h.flags & ~HT_F_HDR;
		ht_fill_hdr(&e->h, HT_REC_EXEC, &view);
		e->h.flags |= flags;
		reread = flags & HT_F_ARGV_FAULT;
	} else {
		if (e)
			sys = e->syscall;
		else if (!ht_wanted(&view))
			return 0;
		e = bpf_map_lookup_elem(&ht_exec_buf, &cpu);
		if (!e)
			goto out;
		ht_fill_hdr(&e->h, HT_REC_EXEC, &view);
		e->syscall = sys;
		if (kname && ht_cfg.kernel_reads) {
			n = bpf_probe_read_kernel_str(e->data, HT_PATH_READ, kname);
		} else if (uname) {
			n = bpf_probe_read_user_str(e->data, HT_PATH_READ, uname);
			source = HT_SRC_NEW_IMAGE;
		}
		e->name_len = n > 0 ? n : 0;
		e->name_source = n > 0 ? source : HT_SRC_NONE;
		if (n <= 0)
			e->h.flags |= HT_F_NAME_FAULT;
	}
	/* One call site: the loop is verified once, which older verifiers need. */
	if (reread) {
		if (new_argv_area(task ? task : ht_task_btf(), &start, &end)) {
			read_new_argv(e, start, end);
		} else {
			e->h.flags |= HT_F_ARGV_FAULT;
			e->h.flags &= ~HT_F_ARGV_TRUNC;
			e->args_len = 0;
			e->argv_source = HT_SRC_NONE;
		}
	}
	e->retval = 0;
	if (!ht_cfg.failed_only && ht_comm_ok(e->h.comm))
		ht_emit(ctx, e, exec_size(e, sizeof(*e)));
out:
	if (pending)
		bpf_map_delete_elem(&ht_execs, &old_tid);
	if (small)
		bpf_map_delete_elem(&ht_execs_small, &old_tid);
	return 0;
}

#ifndef HT_RAW_SYSCALLS
SEC("tracepoint/syscalls/sys_enter_execve")
int ht_exec_enter(struct trace_event_raw_sys_enter *ctx)
{
	return on_enter((const char *)ctx->args[0], (const char *const *)ctx->args[1],
			HT_SYS_EXECVE);
}

SEC("tracepoint/syscalls/sys_enter_execveat")
int ht_execat_enter(struct trace_event_raw_sys_enter *ctx)
{
	return on_enter((const char *)ctx->args[1], (const char *const *)ctx->args[2],
			HT_SYS_EXECVEAT);
}

SEC("tracepoint/syscalls/sys_exit_execve")
int ht_exec_exit(struct trace_event_raw_sys_exit *ctx)
{
	return on_exit(ctx, ctx->ret);
}

SEC("tracepoint/syscalls/sys_exit_execveat")
int ht_execat_exit(struct trace_event_raw_sys_exit *ctx)
{
	return on_exit(ctx, ctx->ret);
}

SEC("tracepoint/sched/sched_process_exec")
int ht_exec_done(struct trace_event_raw_sched_process_exec *ctx)
{
	return exec_done(ctx, ctx->old_pid, (void *)ctx + (ctx->__data_loc_filename & 0xFFFF),
			 NULL, NULL);
}
#else
HT_SYS_ENTER(ht_exec_enter)
{
	if (id == HT_NR_EXECVE && !ht_compat_syscall(regs))
		return on_enter((const char *)HT_SC_ARG0(regs),
				(const char *const *)HT_SC_ARG1(regs), HT_SYS_EXECVE);
	if (id == HT_NR_EXECVEAT && !ht_compat_syscall(regs))
		return on_enter((const char *)HT_SC_ARG1(regs),
				(const char *const *)HT_SC_ARG2(regs), HT_SYS_EXECVEAT);
	return 0;
}

HT_SYS_EXIT(ht_exec_exit)
{
	long id = HT_SC_NR(regs);

	/* A pending entry exists only for a call on_enter kept, so no compat check. */
	if (id == HT_NR_EXECVE || id == HT_NR_EXECVEAT)
		return on_exit(ctx, ret);
	return 0;
}

HT_EXEC_DONE(ht_exec_done)
{
#ifdef HT_TP_BTF
	return exec_done(ctx, old_pid, bprm->filename, (const char *)bprm->exec, p);
#else
	/* Without BTF neither linux_binprm nor task_struct has a known layout. */
	return exec_done(ctx, old_pid, NULL, NULL, NULL);
#endif
}
#endif
