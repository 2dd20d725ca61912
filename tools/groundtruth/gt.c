/* Ground-truth workload: runs a plan of opens and execs and logs, per
 * operation, exactly what it did (tools/groundtruth/README.md).
 *
 * Built twice by tools/groundtruth/workload.py: dynamic (gt) and static
 * (gt-static). Two modes:
 *   runner  gt PLANFILE RATE LOGFILE WORKDIR GT_STATIC
 *                            [JOBS]: one scenario per line; each runs in a forked
 *                            child (a process that exits right after), JOBS at once;
 *                            RATE paces the operations (per second, 0: flat out)
 *   image   GT_SEQ=N gt ...  started by an exec op of the plan: logs what the
 *                            new image got (pid, tid, ppid, uid, comm, argv),
 *                            then runs the job in GT_JOB (hex) and exits
 *
 * A scenario/job: "<nthreads> <op> <op> ...". Ops run one after another in the
 * order given, each by its thread (a turn counter hands over), so an fd a
 * thread closes is the next thread's fd. Op syntax (fields split by ':'):
 *   O:t:seq:method:dirkind:pathhex:flags:mode     open, closed at once if it succeeded
 *   P:t:seq:method:dirkind:pathhex:flags:mode     the same, left open (until exit or exec)
 *   S:t:ms         sleep: the process lingers, so /proc can be read (and be stale)
 *   U:t            setuid(65534) through libc (every thread)
 *   R:t            raw setuid(65534) syscall: this thread only
 *   E:t:seq:method:pathhex:argv:jobhex            exec; argv: x<hex>,x<hex>,...
 *   K:t            fork a child that exits at once (a pid/ppid that comes and goes)
 * Open methods: libc_open libc_openat libc_creat sys_open sys_openat sys_openat2
 * sys_creat (sys_*: the syscall instruction, no libc), and through io_uring (no
 * open syscall at all; raw io_uring_setup/io_uring_enter, one ring per thread
 * and kind): uring_openat and uring_openat2 (IORING_OP_OPENAT/OPENAT2, run inline
 * or punted to an io-wq worker as the kernel decides), the same with suffix
 * _async (IOSQE_ASYNC: always on an io-wq worker thread "iou-wrk-N"), _sqpoll
 * (a ring with IORING_SETUP_SQPOLL: the kernel's "iou-sqp-N" thread submits
 * it, not ours) and uring_openat_direct (into fixed file slot 0: no fd at all).
 * dirkind c = AT_FDCWD,
 * d = the work directory's fd (GT_DIRFD). Exec methods: execve (libc),
 * sys_execve, sys_execveat (relative to GT_DIRFD), fexecve (libc, O_PATH fd),
 * sys_emptypath (execveat(fd, "", AT_EMPTY_PATH)), memfd (a copy of gt-static).
 *
 * Log lines are JSON, one write(2) each to GT_LOGFD (O_APPEND), byte strings
 * in hex; t0/t1 (CLOCK_MONOTONIC ns, the clock of every backend's timestamps)
 * bound the call: an open's t0..t1, an exec's t0 (just before the call) to its
 * image's or its failure's t1 (io_uring opens: from before the submission to
 * after the completion was reaped). Records: "open" (with "via":"io_uring" and
 * "direct" for io_uring ones), "exec" (before the call), "execfail" (after it),
 * "image" (first thing a new image does), "fork".
 *
 * Every record also says where its thread is, as the kernel tells it at that
 * moment (rec_origin): "pidns"/"mntns" (inodes of /proc/thread-self/ns/pid and
 * mnt), "cgroup" (the v2 path, the "0::" line of /proc/thread-self/cgroup; absent
 * without one), "cgid" (that cgroup's directory inode under the cgroup2 mount
 * GT_CGMOUNT, whose root in the hierarchy is GT_CGPREFIX; absent without a mount
 * or outside it), "nspid"/"nstid" (the last entries of NStgid/NSpid in
 * /proc/thread-self/status: the ids in the thread's own pid namespace). Nothing
 * here enters another namespace or cgroup (no unshare, setns or cgroup.procs
 * write), so each record's origin is its thread's for the whole call.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/prctl.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>
#include <linux/io_uring.h>

#define GT_LOGFD 1000
#define GT_DIRFD 1001
#define GT_STATICFD 1002
#define GT_CGFD 1003 /* the cgroup2 mount (GT_CGMOUNT), to stat a cgroup's directory */
#define GT_NOBODY 65534

struct gt_open_how {
	uint64_t flags, mode, resolve;
};

/* A syscall without libc: the kernel sees exactly these arguments. */
#if defined(__x86_64__)
static long rsys(long n, long a, long b, long c, long d, long e, long f)
{
	long ret;
	register long r10 __asm__("r10") = d;
	register long r8 __asm__("r8") = e;
	register long r9 __asm__("r9") = f;

	__asm__ volatile("syscall"
			 : "=a"(ret)
			 : "a"(n), "D"(a), "S"(b), "d"(c), "r"(r10), "r"(r8), "r"(r9)
			 : "rcx", "r11", "memory");
	return ret;
}
#elif defined(__aarch64__)
static long rsys(long n, long a, long b, long c, long d, long e, long f)
{
	register long x8 __asm__("x8") = n;
	register long x0 __asm__("x0") = a;
	register long x1 __asm__("x1") = b;
	register long x2 __asm__("x2") = c;
	register long x3 __asm__("x3") = d;
	register long x4 __asm__("x4") = e;
	register long x5 __asm__("x5") = f;

	__asm__ volatile("svc #0"
			 : "+r"(x0)
			 : "r"(x8), "r"(x1), "r"(x2), "r"(x3), "r"(x4), "r"(x5)
			 : "memory");
	return x0;
}
#else
#error "gt.c: rsys() is written for x86_64 and aarch64"
#endif

/* The syscall glibc's creat() makes: creat itself where the architecture has it
 * (x86_64), else openat(AT_FDCWD, path, O_CREAT|O_WRONLY|O_TRUNC, mode) (aarch64). */
#ifdef SYS_creat
#define GT_LIBC_CREAT_SYS "creat"
#else
#define GT_LIBC_CREAT_SYS "openat"
#endif

/* aarch64 has no open or creat syscall: asking for one fails as the kernel would
 * (plans made for aarch64 never ask: tools/groundtruth/workload.py). */
#ifndef SYS_open
#define SYS_open -1
#endif
#ifndef SYS_creat
#define SYS_creat -1
#endif

static void __attribute__((noreturn)) die(const char *what)
{
	char buf[256];
	int n = snprintf(buf, sizeof(buf), "gt: %s: %s\n", what, strerror(errno));
	if (write(2, buf, n) < 0) {
	}
	_exit(70);
}

/* ---- log records ---- */

struct rec {
	char *buf;
	size_t len, cap;
};

static void rec_put(struct rec *r, const char *s, size_t n)
{
	if (r->len + n + 1 > r->cap) {
		r->cap = (r->len + n + 1) * 2;
		r->buf = realloc(r->buf, r->cap);
		if (!r->buf)
			die("realloc");
	}
	memcpy(r->buf + r->len, s, n);
	r->len += n;
}

static void rec_str(struct rec *r, const char *s)
{
	rec_put(r, s, strlen(s));
}

static void rec_int(struct rec *r, const char *key, long v)
{
	char tmp[64];
	int n = snprintf(tmp, sizeof(tmp), ",\"%s\":%ld", key, v);
	rec_put(r, tmp, n);
}

static void rec_hexraw(struct rec *r, const unsigned char *s, size_t n)
{
	static const char digits[] = "0123456789abcdef";
	char pair[2];
	size_t i;

	rec_put(r, "\"", 1);
	for (i = 0; i < n; i++) {
		pair[0] = digits[s[i] >> 4];
		pair[1] = digits[s[i] & 15];
		rec_put(r, pair, 2);
	}
	rec_put(r, "\"", 1);
}

static void rec_hex(struct rec *r, const char *key, const char *s, size_t n)
{
	rec_str(r, ",\"");
	rec_str(r, key);
	rec_str(r, "\":");
	rec_hexraw(r, (const unsigned char *)s, n);
}

static void rec_argv(struct rec *r, char *const *argv)
{
	int i;

	rec_str(r, ",\"argv\":[");
	for (i = 0; argv[i]; i++) {
		if (i)
			rec_str(r, ",");
		rec_hexraw(r, (const unsigned char *)argv[i], strlen(argv[i]));
	}
	rec_str(r, "]");
}

static long now_ns(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return ts.tv_sec * 1000000000L + ts.tv_nsec;
}

static char *gt_cgprefix = ""; /* GT_CGPREFIX: the cgroup2 mount's root, "" for the top */

/* The whole of a small /proc file into buf (NUL-terminated); its length or -1. */
static ssize_t read_small(const char *path, char *buf, size_t cap)
{
	int fd = open(path, O_RDONLY | O_CLOEXEC);
	ssize_t n, got = 0;

	if (fd < 0)
		return -1;
	while ((n = read(fd, buf + got, cap - 1 - got)) > 0)
		got += n;
	close(fd);
	buf[got] = 0;
	return n < 0 ? -1 : got;
}

/* The last number on the status line starting with key ("NSpid:"); -1 without one. */
static long status_last(const char *status, const char *key)
{
	const char *line = strstr(status, key), *end, *p;

	if (!line)
		return -1;
	line++; /* past the newline key starts with */
	end = strchr(line, '\n');
	if (!end)
		end = line + strlen(line);
	for (p = end; p > line && (p[-1] < '0' || p[-1] > '9'); p--)
		;
	while (p > line && p[-1] >= '0' && p[-1] <= '9')
		p--;
	return atol(p);
}

/* Where this thread is, right now: pid and mount namespaces, cgroup, its own ids. */
static void rec_origin(struct rec *r)
{
	char buf[8192], *line, *end;
	struct stat st;
	size_t plen = strlen(gt_cgprefix);

	if (stat("/proc/thread-self/ns/pid", &st))
		die("stat ns/pid");
	rec_int(r, "pidns", (long)st.st_ino);
	if (stat("/proc/thread-self/ns/mnt", &st))
		die("stat ns/mnt");
	rec_int(r, "mntns", (long)st.st_ino);
	if (read_small("/proc/thread-self/cgroup", buf, sizeof(buf)) < 0)
		die("read cgroup");
	for (line = buf; line && *line; line = end ? end + 1 : NULL) {
		end = strchr(line, '\n');
		if (end)
			*end = 0;
		if (strncmp(line, "0::", 3))
			continue;
		line += 3;
		rec_hex(r, "cgroup", line, strlen(line));
		/* as hybridtrace.cgroups.CgroupTree.id_of: the path inside the mount */
		if (!strncmp(line, gt_cgprefix, plen) && (line[plen] == '/' || !line[plen])) {
			const char *rel = line + plen;

			while (*rel == '/')
				rel++;
			if (!fstatat(GT_CGFD, *rel ? rel : ".", &st, 0))
				rec_int(r, "cgid", (long)st.st_ino);
		}
		break;
	}
	if (read_small("/proc/thread-self/status", buf, sizeof(buf)) < 0)
		die("read status");
	rec_int(r, "nspid", status_last(buf, "\nNStgid:"));
	rec_int(r, "nstid", status_last(buf, "\nNSpid:"));
}

/* Who is doing this, right now: pid, tid, ppid, uid, euid, comm, origin. */
static void rec_begin(struct rec *r, const char *kind, long seq)
{
	char comm[17] = {0};

	r->len = 0;
	rec_str(r, "{\"k\":\"");
	rec_str(r, kind);
	rec_str(r, "\"");
	rec_int(r, "seq", seq);
	rec_int(r, "pid", getpid());
	rec_int(r, "tid", syscall(SYS_gettid));
	rec_int(r, "ppid", getppid());
	rec_int(r, "uid", (long)getuid());
	rec_int(r, "euid", (long)geteuid());
	prctl(PR_GET_NAME, comm, 0, 0, 0);
	rec_hex(r, "comm", comm, strlen(comm));
	rec_origin(r);
}

static void rec_end(struct rec *r)
{
	rec_str(r, "}\n");
	if (write(GT_LOGFD, r->buf, r->len) != (ssize_t)r->len)
		die("log write");
	free(r->buf);
	r->buf = NULL;
	r->len = r->cap = 0;
}

/* ---- parsing ---- */

static int unhex(const char *s, char *out)
{
	size_t n = strlen(s), i;

	for (i = 0; i + 1 < n; i += 2) {
		unsigned v;
		if (sscanf(s + i, "%2x", &v) != 1)
			return -1;
		out[i / 2] = (char)v;
	}
	out[n / 2] = 0;
	return (int)(n / 2);
}

static char *unhex_dup(const char *s)
{
	char *out = malloc(strlen(s) / 2 + 1);

	if (!out || unhex(s, out) < 0)
		die("bad hex");
	return out;
}

/* Split s at sep in place, up to max fields. */
static int split(char *s, char sep, char **fields, int max)
{
	int n = 0;

	fields[n++] = s;
	while (*s && n < max) {
		if (*s == sep) {
			*s = 0;
			fields[n++] = s + 1;
		}
		s++;
	}
	return n;
}

/* ---- io_uring: raw syscalls, one ring per thread and kind ---- */

enum { GT_RING_PLAIN, GT_RING_SQPOLL, GT_RING_DIRECT, GT_RING_KINDS };

struct gt_ring {
	int fd;
	unsigned *sq_tail, *sq_mask, *sq_flags, *sq_array;
	unsigned *cq_head, *cq_tail, *cq_mask;
	struct io_uring_sqe *sqes;
	struct io_uring_cqe *cqes;
};

static __thread struct gt_ring gt_rings[GT_RING_KINDS];

static void *ring_map(int fd, size_t len, unsigned long long off)
{
	void *p = mmap(NULL, len, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_POPULATE, fd,
		       (off_t)off);

	if (p == MAP_FAILED)
		die("io_uring mmap");
	return p;
}

static void ring_setup(struct gt_ring *r, int kind)
{
	struct io_uring_params p;
	char *sq, *cq;
	long fd;

	memset(&p, 0, sizeof(p));
	if (kind == GT_RING_SQPOLL) {
		p.flags = IORING_SETUP_SQPOLL;
		p.sq_thread_idle = 1; /* ms: the poller sleeps soon (0 would mean a second) */
	}
	fd = rsys(__NR_io_uring_setup, 4, (long)&p, 0, 0, 0, 0);
	if (fd < 0) {
		errno = (int)-fd;
		die("io_uring_setup");
	}
	sq = ring_map((int)fd, p.sq_off.array + p.sq_entries * sizeof(unsigned),
		      IORING_OFF_SQ_RING);
	cq = ring_map((int)fd, p.cq_off.cqes + p.cq_entries * sizeof(struct io_uring_cqe),
		      IORING_OFF_CQ_RING);
	r->sqes = ring_map((int)fd, p.sq_entries * sizeof(struct io_uring_sqe), IORING_OFF_SQES);
	r->sq_tail = (unsigned *)(sq + p.sq_off.tail);
	r->sq_mask = (unsigned *)(sq + p.sq_off.ring_mask);
	r->sq_flags = (unsigned *)(sq + p.sq_off.flags);
	r->sq_array = (unsigned *)(sq + p.sq_off.array);
	r->cq_head = (unsigned *)(cq + p.cq_off.head);
	r->cq_tail = (unsigned *)(cq + p.cq_off.tail);
	r->cq_mask = (unsigned *)(cq + p.cq_off.ring_mask);
	r->cqes = (struct io_uring_cqe *)(cq + p.cq_off.cqes);
	r->fd = (int)fd;
	if (kind == GT_RING_DIRECT) {
		struct io_uring_rsrc_register reg;
		long ret;

		memset(&reg, 0, sizeof(reg));
		reg.nr = 4;
		reg.flags = IORING_RSRC_REGISTER_SPARSE;
		ret = rsys(__NR_io_uring_register, fd, IORING_REGISTER_FILES2, (long)&reg,
			   sizeof(reg), 0, 0);
		if (ret < 0) {
			errno = (int)-ret;
			die("io_uring_register files");
		}
	}
}

static long ring_enter(int fd, unsigned submit, unsigned wait, unsigned flags)
{
	long ret;

	do
		ret = rsys(__NR_io_uring_enter, fd, submit, wait, flags, 0, 0);
	while (ret == -EINTR || ret == -EAGAIN);
	if (ret < 0) {
		errno = (int)-ret;
		die("io_uring_enter");
	}
	return ret;
}

/* One open through a ring of this thread; returns the completion's result. */
static long ring_open(int kind, int opcode, int async, int dfd, const char *path, long flags,
		      long mode, struct gt_open_how *how)
{
	struct gt_ring *r = &gt_rings[kind];
	struct io_uring_sqe *sqe;
	unsigned tail, idx, head;
	long res;

	if (!r->sqes)
		ring_setup(r, kind);
	tail = *r->sq_tail; /* only this thread writes it */
	idx = tail & *r->sq_mask;
	sqe = &r->sqes[idx];
	memset(sqe, 0, sizeof(*sqe));
	sqe->opcode = (unsigned char)opcode;
	sqe->fd = dfd;
	sqe->addr = (unsigned long)path;
	if (opcode == IORING_OP_OPENAT) {
		sqe->open_flags = (unsigned)flags;
		sqe->len = (unsigned)mode;
	} else {
		sqe->addr2 = (unsigned long)how;
		sqe->len = sizeof(*how);
	}
	if (async)
		sqe->flags |= IOSQE_ASYNC;
	if (kind == GT_RING_DIRECT)
		sqe->file_index = 1; /* slot 0, replacing what is there */
	sqe->user_data = 0x6774;
	r->sq_array[idx] = idx;
	__atomic_store_n(r->sq_tail, tail + 1, __ATOMIC_RELEASE);
	if (kind == GT_RING_SQPOLL) {
		__atomic_thread_fence(__ATOMIC_SEQ_CST);
		if (__atomic_load_n(r->sq_flags, __ATOMIC_RELAXED) & IORING_SQ_NEED_WAKEUP)
			ring_enter(r->fd, 0, 0, IORING_ENTER_SQ_WAKEUP);
		ring_enter(r->fd, 0, 1, IORING_ENTER_GETEVENTS);
	} else {
		ring_enter(r->fd, 1, 1, IORING_ENTER_GETEVENTS);
	}
	head = *r->cq_head;
	while (head == __atomic_load_n(r->cq_tail, __ATOMIC_ACQUIRE))
		ring_enter(r->fd, 0, 1, IORING_ENTER_GETEVENTS);
	res = r->cqes[head & *r->cq_mask].res;
	__atomic_store_n(r->cq_head, head + 1, __ATOMIC_RELEASE);
	return res;
}

/* ---- operations ---- */

static void do_open(char **f, int keep)
{
	long seq = atol(f[2]);
	const char *method = f[3];
	int dfd = f[4][0] == 'd' ? GT_DIRFD : AT_FDCWD;
	char *path = unhex_dup(f[5]);
	long flags = strtol(f[6], NULL, 0), mode = strtol(f[7], NULL, 0), ret;
	const char *sys = "openat"; /* NULL: no open syscall (io_uring) */
	int direct = 0;             /* a fixed file slot, no fd */
	struct gt_open_how how = {(uint64_t)flags, (uint64_t)mode, 0};
	struct rec r = {0};
	char link[64], resolved[8192];
	ssize_t rn = -1;
	long t0 = now_ns(), t1;

	if (!strcmp(method, "libc_open")) {
		dfd = AT_FDCWD;
		ret = (flags & O_CREAT) ? open(path, (int)flags, (mode_t)mode) : open(path, (int)flags);
		mode = (flags & (O_CREAT | __O_TMPFILE)) ? mode : 0; /* what glibc passes on */
	} else if (!strcmp(method, "libc_openat")) {
		ret = (flags & O_CREAT) ? openat(dfd, path, (int)flags, (mode_t)mode)
					: openat(dfd, path, (int)flags);
		mode = (flags & (O_CREAT | __O_TMPFILE)) ? mode : 0;
	} else if (!strcmp(method, "libc_creat")) {
		dfd = AT_FDCWD;
		sys = GT_LIBC_CREAT_SYS;
		flags = O_CREAT | O_WRONLY | O_TRUNC;
		ret = creat(path, (mode_t)mode);
	} else if (!strcmp(method, "sys_open")) {
		dfd = AT_FDCWD;
		sys = "open";
		ret = rsys(SYS_open, (long)path, flags, mode, 0, 0, 0);
	} else if (!strcmp(method, "sys_openat")) {
		ret = rsys(SYS_openat, dfd, (long)path, flags, mode, 0, 0);
	} else if (!strcmp(method, "sys_openat2")) {
		sys = "openat2";
		ret = rsys(437, dfd, (long)path, (long)&how, sizeof(how), 0, 0);
	} else if (!strcmp(method, "sys_creat")) {
		dfd = AT_FDCWD;
		sys = "creat";
		ret = rsys(SYS_creat, (long)path, mode, 0, 0, 0, 0);
		flags = O_CREAT | O_WRONLY | O_TRUNC;
	} else if (!strncmp(method, "uring_openat", 12)) {
		const char *how_sfx = method + 12; /* "", "2", then "_async", "_sqpoll", "_direct" */
		int two = *how_sfx == '2';
		const char *sfx = how_sfx + two;
		int kind = !strcmp(sfx, "_sqpoll")   ? GT_RING_SQPOLL
			   : !strcmp(sfx, "_direct") ? GT_RING_DIRECT
						     : GT_RING_PLAIN;

		if (*sfx && strcmp(sfx, "_async") && kind == GT_RING_PLAIN) {
			errno = EINVAL;
			die(method);
		}
		sys = NULL;
		direct = kind == GT_RING_DIRECT;
		ret = ring_open(kind, two ? IORING_OP_OPENAT2 : IORING_OP_OPENAT,
				!strcmp(sfx, "_async"), dfd, path, flags, mode, &how);
	} else {
		errno = EINVAL;
		die(method);
	}
	t1 = now_ns();
	if (ret < 0 && strncmp(method, "libc_", 5) == 0)
		ret = -errno;
	if (ret >= 0 && !direct) {
		snprintf(link, sizeof(link), "/proc/self/fd/%ld", ret);
		rn = readlink(link, resolved, sizeof(resolved));
	}
	rec_begin(&r, "open", seq);
	if (sys) {
		rec_str(&r, ",\"sys\":\"");
		rec_str(&r, sys);
		rec_str(&r, "\"");
	} else {
		rec_str(&r, ",\"via\":\"io_uring\"");
		rec_int(&r, "direct", direct);
	}
	rec_str(&r, ",\"method\":\"");
	rec_str(&r, method);
	rec_str(&r, "\"");
	rec_int(&r, "dfd", dfd);
	rec_hex(&r, "path", path, strlen(path));
	rec_int(&r, "flags", flags);
	rec_int(&r, "mode", mode);
	rec_int(&r, "ret", ret);
	rec_int(&r, "t0", t0);
	rec_int(&r, "t1", t1);
	if (rn >= 0)
		rec_hex(&r, "resolved", resolved, rn);
	rec_end(&r);
	if (ret >= 0 && !keep && !direct)
		close((int)ret);
	free(path);
}

static char **parse_argv(char *spec)
{
	int n = 1, i;
	char *p, **fields, **argv;

	for (p = spec; *p; p++)
		n += *p == ',';
	fields = calloc(n + 1, sizeof(char *));
	argv = calloc(n + 1, sizeof(char *));
	if (!fields || !argv)
		die("calloc");
	n = split(spec, ',', fields, n);
	for (i = 0; i < n; i++)
		argv[i] = unhex_dup(fields[i] + 1); /* each is x<hex>; "x" alone is "" */
	free(fields);
	return argv;
}

static void do_exec(char **f)
{
	long seq = atol(f[2]);
	const char *method = f[3];
	char *path = unhex_dup(f[4]);
	char **argv = parse_argv(f[5]);
	const char *sys = "execve", *call_path = path;
	char seqenv[64], *jobenv, *cgenv, *envp[4];
	int dfd = AT_FDCWD, atflags = 0, fd = -1;
	struct rec r = {0};
	long ret, t1;

	snprintf(seqenv, sizeof(seqenv), "GT_SEQ=%ld", seq);
	jobenv = malloc(strlen(f[6]) + 8);
	if (!jobenv)
		die("malloc");
	sprintf(jobenv, "GT_JOB=%s", f[6]);
	cgenv = malloc(strlen(gt_cgprefix) + 16);
	if (!cgenv)
		die("malloc");
	sprintf(cgenv, "GT_CGPREFIX=%s", gt_cgprefix);
	envp[0] = seqenv;
	envp[1] = jobenv;
	envp[2] = cgenv;
	envp[3] = NULL;

	if (!strcmp(method, "fexecve") || !strcmp(method, "sys_emptypath")) {
		fd = (int)rsys(SYS_openat, AT_FDCWD, (long)path, O_PATH, 0, 0, 0);
		if (fd < 0) {
			errno = (int)-fd;
			die("O_PATH open");
		}
	} else if (!strcmp(method, "memfd")) {
		char buf[65536];
		ssize_t n;
		off_t off = 0;
		fd = (int)rsys(SYS_memfd_create, (long)path, 0, 0, 0, 0, 0);
		if (fd < 0) {
			errno = (int)-fd;
			die("memfd_create");
		}
		while ((n = pread(GT_STATICFD, buf, sizeof(buf), off)) > 0) {
			if (write(fd, buf, n) != n)
				die("memfd write");
			off += n;
		}
	}
	if (fd >= 0) {
		sys = "execveat";
		dfd = fd;
		call_path = "";
		atflags = AT_EMPTY_PATH;
	} else if (!strcmp(method, "sys_execveat")) {
		sys = "execveat";
		dfd = GT_DIRFD;
	}
	rec_begin(&r, "exec", seq);
	rec_str(&r, ",\"sys\":\"");
	rec_str(&r, sys);
	rec_str(&r, "\",\"method\":\"");
	rec_str(&r, method);
	rec_str(&r, "\"");
	rec_int(&r, "dfd", dfd);
	rec_int(&r, "atflags", atflags);
	rec_hex(&r, "path", call_path, strlen(call_path));
	rec_argv(&r, argv);
	rec_int(&r, "t0", now_ns());
	rec_end(&r);

	if (!strcmp(method, "execve")) {
		execve(path, argv, envp);
		ret = -errno;
	} else if (!strcmp(method, "fexecve")) {
		fexecve(fd, argv, envp);
		ret = -errno;
	} else if (!strcmp(method, "sys_execve")) {
		ret = rsys(SYS_execve, (long)path, (long)argv, (long)envp, 0, 0, 0);
	} else {
		ret = rsys(SYS_execveat, dfd, (long)call_path, (long)argv, (long)envp, atflags, 0);
	}
	t1 = now_ns();
	rec_begin(&r, "execfail", seq);
	rec_int(&r, "ret", ret);
	rec_int(&r, "t1", t1);
	rec_end(&r);
	if (fd >= 0)
		close(fd);
}

/* ---- a job: threads taking turns ---- */

struct job {
	char **ops;
	int nops, nthreads, turn;
	pthread_mutex_t lock;
	pthread_cond_t cond;
};

struct worker {
	struct job *job;
	int index;
};

static pid_t fork_retry(void)
{
	int tries = 0;
	pid_t child;

	while ((child = fork()) < 0 && errno == EAGAIN && tries++ < 500)
		usleep(10000);
	return child;
}

static void do_fork(void)
{
	struct rec r = {0};
	pid_t child = fork_retry();

	if (child < 0)
		die("fork");
	if (child == 0)
		_exit(0);
	rec_begin(&r, "fork", -1);
	rec_int(&r, "child", child);
	rec_end(&r);
	waitpid(child, NULL, 0);
}

static void run_op(char *op)
{
	char *f[8];
	int n = split(op, ':', f, 8);

	switch (op[0]) {
	case 'O':
	case 'P':
		if (n != 8)
			die("bad open op");
		do_open(f, op[0] == 'P');
		break;
	case 'S': {
		struct timespec ts = {0, atol(f[2]) * 1000000L};
		nanosleep(&ts, NULL);
		break;
	}
	case 'E':
		if (n != 7)
			die("bad exec op");
		do_exec(f);
		break;
	case 'U':
		if (setuid(GT_NOBODY))
			die("setuid");
		break;
	case 'R': {
		long ret = rsys(SYS_setuid, GT_NOBODY, 0, 0, 0, 0, 0);
		if (ret) {
			errno = (int)-ret;
			die("raw setuid");
		}
		break;
	}
	case 'K':
		do_fork();
		break;
	default:
		errno = EINVAL;
		die(op);
	}
}

static int op_thread(const char *op)
{
	return atoi(op + 2);
}

static void *work(void *arg)
{
	struct worker *w = arg;
	struct job *j = w->job;
	int i;

	for (i = 0; i < j->nops; i++) {
		if (op_thread(j->ops[i]) != w->index)
			continue;
		pthread_mutex_lock(&j->lock);
		while (j->turn != i)
			pthread_cond_wait(&j->cond, &j->lock);
		pthread_mutex_unlock(&j->lock);
		run_op(j->ops[i]);
		pthread_mutex_lock(&j->lock);
		j->turn = i + 1;
		pthread_cond_broadcast(&j->cond);
		pthread_mutex_unlock(&j->lock);
	}
	return NULL;
}

static void run_job(char *text)
{
	struct job j;
	char *ops[1024];
	struct worker workers[64];
	pthread_t threads[64];
	int n = 0, t;
	char *save = NULL, *tok;

	memset(&j, 0, sizeof(j));
	tok = strtok_r(text, " \n", &save);
	if (!tok)
		return;
	j.nthreads = atoi(tok);
	if (j.nthreads < 1 || j.nthreads > 64)
		die("bad thread count");
	while ((tok = strtok_r(NULL, " \n", &save)) && n < 1024)
		ops[n++] = tok;
	j.ops = ops;
	j.nops = n;
	pthread_mutex_init(&j.lock, NULL);
	pthread_cond_init(&j.cond, NULL);
	for (t = 0; t < j.nthreads; t++) {
		workers[t].job = &j;
		workers[t].index = t;
	}
	for (t = 1; t < j.nthreads; t++) {
		int tries = 0, err;
		/* EAGAIN: the machine (or uid 65534's RLIMIT_NPROC) is briefly full */
		while ((err = pthread_create(&threads[t], NULL, work, &workers[t])) == EAGAIN &&
		       tries++ < 500)
			usleep(10000);
		if (err) {
			errno = err;
			die("pthread_create");
		}
	}
	work(&workers[0]);
	for (t = 1; t < j.nthreads; t++)
		pthread_join(threads[t], NULL);
}

static void pace(double rate, long ops, struct timespec *start)
{
	struct timespec now, ts;
	double due, elapsed;

	if (rate <= 0)
		return;
	clock_gettime(CLOCK_MONOTONIC, &now);
	elapsed = (now.tv_sec - start->tv_sec) + (now.tv_nsec - start->tv_nsec) / 1e9;
	due = ops / rate;
	if (due > elapsed) {
		ts.tv_sec = (time_t)(due - elapsed);
		ts.tv_nsec = (long)((due - elapsed - ts.tv_sec) * 1e9);
		nanosleep(&ts, NULL);
	}
}

int main(int argc, char **argv)
{
	const char *seq = getenv("GT_SEQ"), *cgmount = getenv("GT_CGMOUNT");

	if (getenv("GT_CGPREFIX"))
		gt_cgprefix = getenv("GT_CGPREFIX");
	if (seq) {
		struct rec r = {0};
		char *job = getenv("GT_JOB");
		long t1 = now_ns();

		rec_begin(&r, "image", atol(seq));
		rec_int(&r, "t1", t1);
		rec_argv(&r, argv);
		rec_end(&r);
		if (job && *job) {
			char *text = unhex_dup(job);
			run_job(text);
		}
		return 0;
	}
	if (argc != 6 && argc != 7) {
		fprintf(stderr, "usage: gt PLANFILE RATE LOGFILE WORKDIR GT_STATIC [JOBS]\n"
				"(rate: ops/s, 0 = flat out; jobs: scenarios at once, default 1)\n");
		return 2;
	}
	{
		int fds[3] = {open(argv[3], O_WRONLY | O_APPEND),
			      open(argv[4], O_PATH | O_DIRECTORY), open(argv[5], O_RDONLY)};
		int i;

		for (i = 0; i < 3; i++)
			if (fds[i] < 0 || dup2(fds[i], GT_LOGFD + i) < 0 || close(fds[i]))
				die(argv[3 + i]);
		if (cgmount && *cgmount) { /* images inherit it, as the others */
			int cg = open(cgmount, O_PATH | O_DIRECTORY);

			if (cg < 0 || dup2(cg, GT_CGFD) < 0 || close(cg))
				die(cgmount);
		}
	}
	{
		FILE *plan = fopen(argv[1], "r");
		double rate = atof(argv[2]);
		struct timespec start;
		char *line = NULL;
		size_t cap = 0;
		long done = 0, failed = 0, jobs = argc == 7 ? atol(argv[6]) : 1, running = 0;
		int status;

		if (!plan)
			die(argv[1]);
		clock_gettime(CLOCK_MONOTONIC, &start);
		while (getline(&line, &cap, plan) > 0) {
			/* first token: how many ops the line holds, for pacing */
			char *rest;
			long count = strtol(line, &rest, 10);
			pid_t child = fork_retry();

			if (child < 0)
				die("fork");
			if (child == 0) {
				run_job(rest);
				_exit(0);
			}
			running++;
			while (running >= (jobs < 1 ? 1 : jobs)) {
				if (wait(&status) < 0)
					die("wait");
				running--;
				if (!WIFEXITED(status) || WEXITSTATUS(status) != 0)
					failed++;
			}
			done += count;
			pace(rate, done, &start);
		}
		while (running > 0 && wait(&status) > 0) {
			running--;
			if (!WIFEXITED(status) || WEXITSTATUS(status) != 0)
				failed++;
		}
		fclose(plan);
		if (failed) {
			fprintf(stderr, "gt: %ld scenarios failed\n", failed);
			return 1;
		}
	}
	return 0;
}
