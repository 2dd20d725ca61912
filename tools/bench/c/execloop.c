/* Exec loop: fork() + execv(CHILD, [CHILD, TOKEN, seq, PAD]) at RATE per second
 * (0 = flat out) for DURATION seconds; print how many children exec'd.
 *
 * Each argv (pointer array and strings) is written by the parent into a fresh
 * MAP_SHARED anonymous mapping just before fork(). fork() does not copy page
 * table entries of shared mappings, so in the child those pages are not
 * present until touched, and the child never touches them before execv():
 * a tracer that reads argv at syscall entry without faulting sees nothing.
 * The pid of each child is logged (binary int32 per seq) to PIDLOG. */
#include <errno.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#define PAD "--hybridtrace-bench-padding-arg"
#define MAX_INFLIGHT 8

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

static uint64_t ok_children, failed_children;
static int inflight;

static void reap(int block)
{
	int status;
	pid_t pid;
	while (inflight > 0 && (pid = waitpid(-1, &status, block ? 0 : WNOHANG)) > 0) {
		inflight--;
		if (WIFEXITED(status) && WEXITSTATUS(status) == 0)
			ok_children++;
		else
			failed_children++;
		block = 0;
	}
}

int main(int argc, char **argv)
{
	if (argc != 6) {
		fprintf(stderr, "usage: execloop CHILD TOKEN RATE SECONDS PIDLOG\n");
		return 2;
	}
	const char *child = argv[1], *token = argv[2];
	double rate = atof(argv[3]);
	uint64_t span = (uint64_t)(atof(argv[4]) * 1e9);
	FILE *log = fopen(argv[5], "wb");
	if (!log)
		return 2;
	size_t clen = strlen(child), tlen = strlen(token);
	if (clen + tlen + 64 > 4096 - 5 * sizeof(char *))
		return 2;
	uint64_t forks = 0, start = now_ns(), end = start + span, t = start;
	while (t < end) {
		uint64_t due = rate > 0 ? (uint64_t)((double)(t - start) * rate / 1e9) + 1 : forks + 1;
		while (forks < due) {
			char *mem = mmap(NULL, 4096, PROT_READ | PROT_WRITE,
					 MAP_SHARED | MAP_ANONYMOUS, -1, 0);
			if (mem == MAP_FAILED)
				return 1;
			char **vec = (char **)mem;
			char *s = mem + 5 * sizeof(char *);
			vec[0] = s;
			memcpy(s, child, clen + 1);
			s += clen + 1;
			vec[1] = s;
			memcpy(s, token, tlen + 1);
			s += tlen + 1;
			vec[2] = s;
			s += sprintf(s, "%llu", (unsigned long long)forks) + 1;
			vec[3] = s;
			memcpy(s, PAD, sizeof(PAD));
			vec[4] = NULL;
			if (inflight >= MAX_INFLIGHT)
				reap(1);
			pid_t pid = fork();
			if (pid == 0) {
				execv(child, vec);
				_exit(127);
			}
			munmap(mem, 4096);
			if (pid < 0) {
				if (errno == EAGAIN) {
					reap(1);
					continue;
				}
				return 1;
			}
			int32_t logged = (int32_t)pid;
			fwrite(&logged, sizeof(logged), 1, log);
			inflight++;
			forks++;
			reap(0);
		}
		if (rate > 0)
			sleep_until(start + (uint64_t)((double)forks * 1e9 / rate));
		t = now_ns();
	}
	while (inflight > 0)
		reap(1);
	fclose(log);
	printf("produced %llu elapsed_ns %llu pid %d failed %llu\n",
	       (unsigned long long)ok_children, (unsigned long long)(now_ns() - start),
	       (int)getpid(), (unsigned long long)failed_children);
	return 0;
}
