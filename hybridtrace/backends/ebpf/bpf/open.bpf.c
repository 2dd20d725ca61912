/* open/openat/openat2/creat tracing: arguments are kept per thread at
 * sys_enter, the path is read at sys_exit (the kernel has copied it by then, so
 * its page is present) and one record per call goes to the ring buffer.
 * Classic syscall tracepoints, or with HT_TP_BTF / HT_RAW_TP the raw ones (see
 * exec.bpf.c). With BTF (not HT_RAW_TP), opens made through io_uring too, which
 * make no open syscall: see the end of this file. */
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
	struct ht_view view;
	__u32 tid;

	ht_view_get(&view);
	if (!ht_wanted(&view))
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
	struct ht_view view;
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
	ht_view_get(&view);
	ht_fill_hdr(&e->h, HT_REC_OPEN, &view);
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

/* Every open syscall ends the same way: one exit program per syscall tracepoint. */
#define HT_OPEN_EXIT(prog, call)                            \
	SEC("tracepoint/syscalls/sys_exit_" #call)          \
	int prog(struct trace_event_raw_sys_exit *ctx)      \
	{                                                   \
		return on_exit(ctx, ctx->ret);              \
	}

HT_OPEN_EXIT(ht_open_exit, open)
HT_OPEN_EXIT(ht_openat_exit, openat)
HT_OPEN_EXIT(ht_openat2_exit, openat2)
HT_OPEN_EXIT(ht_creat_exit, creat)
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


#ifndef HT_RAW_TP
/* Opens through io_uring (IORING_OP_OPENAT, IORING_OP_OPENAT2), from io_uring's
 * own tracepoints by BTF name (tp_btf; the attach modes differ only in how the
 * syscall programs above attach). fentry/fexit on io_uring's open handlers would
 * see fewer events, but trampoline programs are refused where tp_btf ones load
 * (measured: EPERM on 6.18 with lockdown=integrity).
 *
 * io_uring_submit_req (io_uring_submit_sqe before 6.4) fires once per request, in
 * the task that submitted it (io_uring_enter) or in the ring's SQPOLL thread,
 * after the request was prepared: the kernel's copy of the path (struct filename)
 * and arguments are in the request. The submitter and the arguments are kept per
 * request; the result arrives with io_uring_complete (or io_uring_cqe_overflow
 * when the completion ring is full), in whatever task completes it, often an
 * io-wq worker ("iou-wrk-N"), which is not the submitter. A request whose
 * preparation failed never reaches io_uring_submit_req: io_uring_req_failed has
 * its SQE and its error, which is its result. A request with IOSQE_CQE_SKIP_SUCCESS
 * posts no completion when it succeeds: it is reported at submission, result
 * unknown. Every request's submission clears what a freed request at the same
 * address may have left, so a result is never given to another request. */
#define HT_PF_IO_WORKER 0x00000010 /* include/linux/sched.h: io-wq and SQPOLL threads */
#define HT_PF_KTHREAD 0x00200000
#define HT_IORING_OP_OPENAT 18 /* include/uapi/linux/io_uring.h */
#define HT_IORING_OP_OPENAT2 28
#define HT_IORING_SETUP_SQE128 (1U << 10)
#define HT_IORING_SETUP_NO_SQARRAY (1U << 16)
#define HT_REQ_F_CQE_SKIP (1ULL << 6) /* REQ_F_CQE_SKIP_BIT = IOSQE_CQE_SKIP_SUCCESS_BIT */
#define HT_O_PATH 010000000
#define HT_O_LARGEFILE 0100000 /* added by the kernel on 64-bit unless O_PATH */
#define HT_O_CREAT_OR_TMPFILE (O_CREAT | 020000000)

/* A pending io_uring open: the record but for its result, and what ties the
 * result to it (the ring and user_data, for an overflowed completion). */
struct ht_uring_pending {
	__u64 ctx;
	__u64 user_data;
	struct ht_open e;
};

struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, 10240);
	__uint(map_flags, BPF_F_NO_PREALLOC); /* preallocated (and smaller) before 6.1 */
	__type(key, __u64); /* struct io_kiocb * */
	__type(value, struct ht_uring_pending);
} ht_uring SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, struct ht_uring_pending);
} ht_uring_buf SEC(".maps");

/* Who submitted the request; false when the filters reject it. The SQPOLL thread
 * (an io thread of the ring owner's process since 5.12, a kernel thread before)
 * submits what anyone wrote into the ring: no thread of ours, so tid, uid and
 * comm stay unknown and a filter on them cannot accept it. */
static __always_inline bool ht_uring_submitter(struct ht_hdr *h)
{
	struct task_struct *task = bpf_get_current_task_btf();
	__u64 id = bpf_get_current_pid_tgid();
	__u32 tgid = id >> 32, pflags = task->flags;
	struct ht_view view;

	ht_view_get(&view);
	if (ht_is_self(tgid, &view))
		return false;
	h->ts = bpf_ktime_get_ns();
	h->type = HT_REC_OPEN;
	h->ppid = 0;
	h->hdr_pad = 0;
	if (pflags & (HT_PF_IO_WORKER | HT_PF_KTHREAD)) {
		/* Nor is its origin proven the submitter's: a filter on it cannot accept. */
		if (ht_cfg.has_tid || ht_cfg.has_uid || ht_cfg.has_comm || ht_cfg.has_ppid
		    || ht_cfg.cgroup_slots || ht_cfg.has_mntns || ht_cfg.follow
		    || ht_cfg.has_cgroupmap || ht_cfg.has_mntnsmap)
			return false;
		h->flags = HT_F_IO_URING | HT_F_NO_THREAD | (HT_F_HDR & ~HT_F_VIEW);
		h->cgroup_id = 0;
		h->mntns = 0;
		h->pidns = 0;
		h->ns_pid = 0;
		h->ns_tid = 0;
		h->ns_ppid = 0;
		h->tid = 0;
		h->uid = 0;
		__builtin_memset(h->comm, 0, sizeof(h->comm));
		if (pflags & HT_PF_KTHREAD) {
			if (ht_cfg.has_pid)
				return false;
			h->flags |= HT_F_NO_PROCESS;
			h->pid = 0;
			return true;
		}
		h->pid = tgid;
		if (!ht_cfg.view_pidns)
			return !ht_cfg.has_pid || tgid == ht_cfg.pid;
		ht_fill_view(h, &view); /* the io thread's process is the ring owner's */
		return !ht_cfg.has_pid || (!(h->flags & HT_F_VIEW_PID_NONE) && h->pid == ht_cfg.pid);
	}
	if (!ht_wanted(&view))
		return false;
	h->flags = HT_F_IO_URING;
	h->pid = tgid;
	h->tid = (__u32)id;
	h->uid = (__u32)bpf_get_current_uid_gid();
	bpf_get_current_comm(h->comm, sizeof(h->comm));
	ht_fill_origin(h);  /* the submitting thread's own */
	if (ht_cfg.view_pidns)
		ht_fill_view(h, &view);
	return ht_comm_ok(h->comm);
}

static __always_inline __u64 ht_open_size(struct ht_open *e)
{
	__u64 size = __builtin_offsetof(struct ht_open, path) + e->path_len;

	return size > sizeof(*e) ? sizeof(*e) : size;
}

static __always_inline void ht_uring_emit(void *ctx, struct ht_open *e, __s32 res)
{
	if (ht_cfg.failed_only && res >= 0)
		return;
	e->ret = res;
	e->h.ts = bpf_ktime_get_ns();
	ht_emit(ctx, e, ht_open_size(e));
}

static __always_inline void ht_path_fault(struct ht_open *e)
{
	e->path_len = 0;
	e->h.flags |= HT_F_NAME_FAULT;
}

/* Flags and mode as the caller gave them: from the request's SQE, which the
 * kernel has read but the caller could have rewritten since, so only where they
 * agree with the kernel's own copy (struct open_how after its adjustments). */
static __always_inline void ht_uring_args(struct ht_open *e, struct io_kiocb *req,
					   struct io_open *open, bool two)
{
	struct io_ring_ctx *ring = req->ctx;
	struct io_uring_sqe sqe;
	__u64 kflags = open->how.flags, kmode = open->how.mode, want;
	__u32 head, mask, rflags;
	__u32 *array;

	e->h.flags |= HT_F_ARGS_FAULT;
	if (!ht_cfg.kernel_reads)
		return;
	/* io_get_sqe(): the SQE this submission just consumed */
	mask = ring->sq_entries - 1;
	rflags = ring->flags;
	head = (ring->cached_sq_head - 1) & mask;
	array = ring->sq_array;
	if (!(rflags & HT_IORING_SETUP_NO_SQARRAY) &&
	    bpf_probe_read_kernel(&head, sizeof(head), &array[head]))
		return;
	if (rflags & HT_IORING_SETUP_SQE128)
		head <<= 1;
	if (bpf_probe_read_kernel(&sqe, sizeof(sqe), &ring->sq_sqes[head]))
		return;
	if (sqe.opcode != req->opcode || sqe.fd != open->dfd)
		return;
	if (two) {
		struct ht_open_how how = {};

		if (sqe.len < sizeof(how) ||
		    bpf_probe_read_user(&how, sizeof(how), (const void *)sqe.addr2))
			return;
		want = how.flags | (how.flags & HT_O_PATH ? 0 : HT_O_LARGEFILE);
		if (want != kflags || how.mode != kmode)
			return;
		e->flags = how.flags;
		e->mode = how.mode;
	} else {
		if (((__u64)sqe.open_flags | HT_O_LARGEFILE) != (kflags | HT_O_LARGEFILE))
			return;
		want = sqe.open_flags & HT_O_CREAT_OR_TMPFILE ? sqe.len & 07777 : 0;
		if (want != kmode)
			return;
		e->flags = sqe.open_flags;
		e->mode = sqe.len;
	}
	e->h.flags &= ~HT_F_ARGS_FAULT;
}

/* The kernel's copy of the path: what the open really uses. */
static __always_inline void ht_uring_path(struct ht_open *e, struct io_open *open)
{
	struct filename *name = open->filename;
	const char *text;
	long n;

	if (!ht_cfg.kernel_reads || !name ||
	    bpf_probe_read_kernel(&text, sizeof(text), &name->name)) {
		ht_path_fault(e);
		return;
	}
	n = bpf_probe_read_kernel_str(e->path, HT_PATH_READ, text);
	if (n > 0) {
		e->path_len = n;
		e->h.flags |= HT_F_KERNEL_COPY;
	} else {
		ht_path_fault(e);
	}
}

/* The record for request ``key`` of opcode ``op``, its header filled: NULL when the
 * request is no open, or one the filters reject. Every request, open or not, first
 * forgets what was pending at its address: a freed one must leave nothing behind. */
static __always_inline struct ht_uring_pending *ht_uring_start(__u64 key, __u8 op)
{
	struct ht_uring_pending *p;
	__u32 zero = 0;

	bpf_map_delete_elem(&ht_uring, &key);
	if (op != HT_IORING_OP_OPENAT && op != HT_IORING_OP_OPENAT2)
		return NULL;
	p = bpf_map_lookup_elem(&ht_uring_buf, &zero);
	if (!p || !ht_uring_submitter(&p->e.h))
		return NULL;
	p->e.syscall = op == HT_IORING_OP_OPENAT2 ? HT_SYS_OPENAT2 : HT_SYS_OPENAT;
	return p;
}

static __always_inline int ht_uring_submitted(void *ctx, struct io_kiocb *req)
{
	__u64 key = (__u64)req;
	__u8 op = req->opcode;
	struct io_open *open;
	struct ht_uring_pending *p = ht_uring_start(key, op);

	if (!p)
		return 0;
	open = (struct io_open *)&req->cmd;
	p->ctx = (__u64)req->ctx;
	p->user_data = req->cqe.user_data;
	p->e.dfd = open->dfd;
	p->e.flags = 0;
	p->e.mode = 0;
	if (open->file_slot)
		p->e.h.flags |= HT_F_FIXED_SLOT;
	ht_uring_args(&p->e, req, open, op == HT_IORING_OP_OPENAT2);
	ht_uring_path(&p->e, open);
	if (req->flags & HT_REQ_F_CQE_SKIP) {
		/* No completion if it succeeds: report it now, result unknown. */
		if (!ht_cfg.failed_only) {
			p->e.ret = 0;
			p->e.h.flags |= HT_F_NO_RESULT;
			ht_emit(ctx, &p->e, ht_open_size(&p->e));
		}
		return 0;
	}
	if (bpf_map_update_elem(&ht_uring, &key, p, BPF_ANY))
		ht_count_lost(HT_LOST_EVENT); /* its result would find nothing to report */
	return 0;
}

SEC("tp_btf/io_uring_submit_req")
int BPF_PROG(ht_uring_submit_req, struct io_kiocb *req)
{
	return ht_uring_submitted(ctx, req);
}

/* The same tracepoint before 6.4 (where its first argument is the request) */
SEC("tp_btf/io_uring_submit_sqe")
int BPF_PROG(ht_uring_submit_sqe, struct io_kiocb *req)
{
	return ht_uring_submitted(ctx, req);
}

/* A completion: the result of the pending open at that request's address, if the
 * ring and user_data are that request's. */
static __always_inline void ht_uring_completed(void *ctx, void *ring, void *req,
					       __u64 user_data, __s32 res)
{
	__u64 key = (__u64)req;
	struct ht_uring_pending *p = bpf_map_lookup_elem(&ht_uring, &key);

	if (!p)
		return;
	if (p->user_data == user_data && p->ctx == (__u64)ring)
		ht_uring_emit(ctx, &p->e, res);
	bpf_map_delete_elem(&ht_uring, &key);
}

/* 6.13+: the tracepoint is given the CQE it filled in. */
SEC("tp_btf/io_uring_complete")
int BPF_PROG(ht_uring_complete, struct io_ring_ctx *ring, void *req, struct io_uring_cqe *cqe)
{
	ht_uring_completed(ctx, ring, req, cqe->user_data, cqe->res);
	return 0;
}

/* Before 6.13 it is given the CQE's fields (user_data, res, cflags, extra1, extra2):
 * the verifier refuses the program above there (a field read through a u64), and
 * the stream loads this one instead (core_stream.io_uring_programs). */
SEC("tp_btf/io_uring_complete")
int BPF_PROG(ht_uring_complete_fields, void *ring, void *req, __u64 user_data, int res)
{
	ht_uring_completed(ctx, ring, req, user_data, res);
	return 0;
}

/* A completion that found the completion ring full carries no request: the
 * pending open of that ring with that user_data, if there is exactly one. */
struct ht_overflow_match {
	__u64 ctx;
	__u64 user_data;
	__u64 key;
	__u32 matches;
};

static long ht_overflow_find(void *map, __u64 *key, struct ht_uring_pending *p,
			     struct ht_overflow_match *m)
{
	if (p->ctx != m->ctx || p->user_data != m->user_data)
		return 0;
	if (m->matches) { /* a second one: no need to look further */
		m->matches = 2;
		return 1;
	}
	m->matches = 1;
	m->key = *key;
	return 0;
}

SEC("tp_btf/io_uring_cqe_overflow")
int BPF_PROG(ht_uring_overflow, void *ring, unsigned long long user_data, __s32 res,
	     __u32 cflags, void *ocqe)
{
	struct ht_overflow_match m = {.ctx = (__u64)ring, .user_data = user_data};
	struct ht_uring_pending *p;

	bpf_for_each_map_elem(&ht_uring, ht_overflow_find, &m, 0);
	if (m.matches == 0)
		return 0;
	if (m.matches > 1) { /* one of them completed, which is unknown: its event is lost */
		ht_count_lost(HT_LOST_EVENT);
		return 0;
	}
	p = bpf_map_lookup_elem(&ht_uring, &m.key);
	if (!p)
		return 0;
	ht_uring_emit(ctx, &p->e, res);
	bpf_map_delete_elem(&ht_uring, &m.key);
	return 0;
}

/* A request that failed before it was submitted (bad flags, a path the kernel
 * could not copy): its SQE, and the error that is its result. */
SEC("tp_btf/io_uring_req_failed")
int BPF_PROG(ht_uring_failed, const struct io_uring_sqe *sqe, struct io_kiocb *req, int error)
{
	__u8 op = sqe->opcode;
	struct ht_uring_pending *p = ht_uring_start((__u64)req, op);
	long n;

	if (!p)
		return 0;
	p->e.dfd = sqe->fd;
	if (sqe->file_index)
		p->e.h.flags |= HT_F_FIXED_SLOT;
	if (op == HT_IORING_OP_OPENAT2) {
		struct ht_open_how how = {};

		if (sqe->len < sizeof(how) ||
		    bpf_probe_read_user(&how, sizeof(how), (const void *)sqe->addr2))
			p->e.h.flags |= HT_F_ARGS_FAULT;
		p->e.flags = how.flags;
		p->e.mode = how.mode;
	} else {
		p->e.flags = sqe->open_flags;
		p->e.mode = sqe->len;
	}
	n = bpf_probe_read_user_str(p->e.path, HT_PATH_READ, (const char *)sqe->addr);
	if (n > 0)
		p->e.path_len = n;
	else
		ht_path_fault(&p->e);
	ht_uring_emit(ctx, &p->e, error);
	return 0;
}
#endif
