/* Open loop: open() unique, nonexistent paths PREFIX<seq> at RATE per second
 * (0 = flat out) for DURATION seconds, then print exactly how many it made.
 * Linked dynamically like most programs: its only other opens are ld.so's. */
#include <fcntl.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

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
	if (argc != 4) {
		fprintf(stderr, "usage: openloop PREFIX RATE SECONDS\n");
		return 2;
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
			int fd = open(path, O_RDONLY);
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
