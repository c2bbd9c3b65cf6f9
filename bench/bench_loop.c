/* bench_loop N: calls bench_fn(i) N times and prints the time per call of that loop alone
 * (process start-up, attaching and printing are outside the timed region):
 *   ns_per_call X
 * Probing bench_fn turns X into "time per call + time per probe hit". */
#include <stdio.h>
#include <stdlib.h>
#include <time.h>

__attribute__((noinline, noipa, used)) long bench_fn(long x) {
  long r = x + 1;
  __asm__ volatile("" : "+r"(r));
  return r;
}

static double now_ns(void) {
  struct timespec t;
  clock_gettime(CLOCK_MONOTONIC, &t);
  return (double)t.tv_sec * 1e9 + (double)t.tv_nsec;
}

int main(int argc, char **argv) {
  long n = argc > 1 ? atol(argv[1]) : 10000000L;
  if (n <= 0) {
    fprintf(stderr, "usage: bench_loop N (N > 0)\n");
    return 2;
  }
  long sum = 0;
  double start = now_ns();
  for (long i = 0; i < n; ++i) sum += bench_fn(i);
  double elapsed = now_ns() - start;
  printf("ns_per_call %.2f\n", elapsed / (double)n);
  /* Keeps the loop's result live; a wrong sum means a probe changed what bench_fn computes. */
  return sum == n * (n + 1) / 2 ? 0 : 3;
}
