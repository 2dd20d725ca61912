/* Open loop: open() unique, nonexistent paths PREFIX<seq> at RATE per second
 * (0 = flat out) for DURATION seconds, then print exactly how many it made.
 * With a fourth argument "io_uring", each open is an IORING_OP_OPENAT request
 * instead (raw io_uring_setup/io_uring_enter, one request and its completion at
 * a time): no open syscall at all.
 * Linked dynamically like most programs: its only other opens are ld.so's. */
#include <fcntl.h>
#include <linux/io_uring.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>

struct ring {
	int fd;
	unsigned *sq_tail, *sq_mask, *sq_array, *cq_head, *cq_mask;
	struct io_uring_sqe *sqes;
	struct io_uring_cqe *cqes;
};

static void *map(int fd, size_t size, __u64 off)
{
	void *p = mmap(NULL, size, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_POPULATE, fd, off);
	return p == MAP_FAILED ? NULL : p;
}

static int ring_init(struct ring *r)
{
	struct io_uring_params p;
	memset(&p, 0, sizeof(p));
	r->fd = (int)syscall(__NR_io_uring_setup, 4, &p);
	if (r->fd < 0)
		return -1;
	char *sq = map(r->fd, p.sq_off.array + p.sq_entries * sizeof(unsigned), IORING_OFF_SQ_RING);
	char *cq = map(r->fd, p.cq_off.cqes + p.cq_entries * sizeof(struct io_uring_cqe),
		       IORING_OFF_CQ_RING);
	r->sqes = map(r->fd, p.sq_entries * sizeof(struct io_uring_sqe), IORING_OFF_SQES);
	if (!sq || !cq || !r->sqes)
		return -1;
	r->sq_tail = (unsigned *)(sq + p.sq_off.tail);
	r->sq_mask = (unsigned *)(sq + p.sq_off.ring_mask);
	r->sq_array = (unsigned *)(sq + p.sq_off.array);
	r->cq_head = (unsigned *)(cq + p.cq_off.head);
	r->cq_mask = (unsigned *)(cq + p.cq_off.ring_mask);
	r->cqes = (struct io_uring_cqe *)(cq + p.cq_off.cqes);
	return 0;
}

/* One IORING_OP_OPENAT of path, waited for: its result (an fd or -errno). */
static int ring_open(struct ring *r, const char *path)
{
	unsigned tail = *r->sq_tail, idx = tail & *r->sq_mask;
	struct io_uring_sqe *sqe = &r->sqes[idx];
	memset(sqe, 0, sizeof(*sqe));
	sqe->opcode = IORING_OP_OPENAT;
	sqe->fd = AT_FDCWD;
	sqe->addr = (uintptr_t)path;
	sqe->open_flags = O_RDONLY;
	r->sq_array[idx] = idx;
	__atomic_store_n(r->sq_tail, tail + 1, __ATOMIC_RELEASE);
	if (syscall(__NR_io_uring_enter, r->fd, 1, 1, IORING_ENTER_GETEVENTS, NULL, 0) < 0)
		return -1;
	unsigned head = *r->cq_head;
	int res = r->cqes[head & *r->cq_mask].res;
	__atomic_store_n(r->cq_head, head + 1, __ATOMIC_RELEASE);
	return res;
}

static uint64_t now_ns(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
}

static void sleep_until(uint64_t t)
{
	struct timespec ts = { (time_t)(t / 1000000000ull), (long)(t % 1000000000ull) };
	clock_nanosleep(CLOCK_MONOTONIC, TIMER_ABSTIME, &ts, NULL);
}

int main(int argc, char **argv)
{
	struct ring ring;
	int uring = argc == 5 && strcmp(argv[4], "io_uring") == 0;
	if (argc != 4 && !uring) {
		fprintf(stderr, "usage: openloop PREFIX RATE SECONDS [io_uring]\n");
		return 2;
	}
	if (uring && ring_init(&ring) < 0) {
		perror("openloop: io_uring_setup");
		return 1;
	}
	const char *prefix = argv[1];
	double rate = atof(argv[2]);
	uint64_t span = (uint64_t)(atof(argv[3]) * 1e9);
	char path[512];
	size_t plen = strlen(prefix);
	if (plen > sizeof(path) - 24)
		return 2;
	memcpy(path, prefix, plen);
	uint64_t made = 0, start = now_ns(), end = start + span, t = start;
	while (t < end) {
		uint64_t due = rate > 0 ? (uint64_t)((double)(t - start) * rate / 1e9) + 1 : made + 64;
		while (made < due) {
			snprintf(path + plen, sizeof(path) - plen, "%llu", (unsigned long long)made);
			int fd = uring ? ring_open(&ring, path) : open(path, O_RDONLY);
			if (fd >= 0)
				close(fd);
			made++;
		}
		if (rate > 0)
			sleep_until(start + (uint64_t)((double)made * 1e9 / rate));
		t = now_ns();
	}
	printf("produced %llu elapsed_ns %llu pid %d\n", (unsigned long long)made,
	       (unsigned long long)(now_ns() - start), (int)getpid());
	return 0;
}
