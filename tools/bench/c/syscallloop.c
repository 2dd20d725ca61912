/* Syscall loop: getppid() flat out for DURATION seconds, a syscall no tracer of
 * ours traces; print how many calls were made and in how long. A tracer whose
 * programs sit on the raw sys_enter/sys_exit tracepoints runs on each of them. */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>

static uint64_t now_ns(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
}

int main(int argc, char **argv)
{
	if (argc != 2) {
		fprintf(stderr, "usage: %s DURATION\n", argv[0]);
		return 2;
	}
	uint64_t start = now_ns(), end = start + (uint64_t)(atof(argv[1]) * 1e9), t = start;
	unsigned long calls = 0;

	while (t < end) {
		for (int i = 0; i < 1000; i++)
			syscall(SYS_getppid); /* not libc's getppid: nothing may cache it */
		calls += 1000;
		t = now_ns();
	}
	printf("produced %lu elapsed_ns %llu\n", calls, (unsigned long long)(t - start));
	return 0;
}
