/* bench_loop N [THREADS] [pair]: THREADS threads (default 1) each call bench_fn(i) for i in [0, N)
 * (bench_pair_fn(i) with `pair`: a function long enough for a jump at its entry and another one
 * on its exit, for entry + return probe pairs)
 * and the program prints the wall time of that phase divided by N (process start-up, thread
 * creation, attaching and printing are outside the timed region):
 *   ns_per_call X
 * With one thread X is the time per call; with several running at once it is the time per call
 * each thread sees. Probing bench_fn turns X into "time per call + time per probe hit". */
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <time.h>

enum { kMaxThreads = 64 };

__attribute__((noinline, noipa, used)) long bench_fn(long x) {
  long r = x + 1;
  __asm__ volatile("" : "+r"(r));
  return r;
}

/* lea; xor imm32 | add; ret: 10 bytes before the last instruction, 5 bytes ending with the ret. */
__attribute__((noinline, noipa, used)) long bench_pair_fn(long x) {
  long r = x + 1;
  __asm__ volatile("" : "+r"(r));
  r ^= 0x5a5a;
  __asm__ volatile("" : "+r"(r));
  return (r ^ 0x5a5a) + 7;
}

static int use_pair_fn;

struct worker {
  pthread_t thread;
  long n;
  long sum;
  double start_ns;
  double end_ns;
};

static pthread_barrier_t start_line;

static double now_ns(void) {
  struct timespec t;
  clock_gettime(CLOCK_MONOTONIC, &t);
  return (double)t.tv_sec * 1e9 + (double)t.tv_nsec;
}

static void *run_worker(void *arg) {
  struct worker *w = arg;
  pthread_barrier_wait(&start_line);
  w->start_ns = now_ns();
  long sum = 0;
  if (use_pair_fn) {
    for (long i = 0; i < w->n; ++i) sum += bench_pair_fn(i) - 7;
  } else {
    for (long i = 0; i < w->n; ++i) sum += bench_fn(i);
  }
  w->end_ns = now_ns();
  w->sum = sum;
  return NULL;
}

int main(int argc, char **argv) {
  long n = argc > 1 ? atol(argv[1]) : 10000000L;
  int threads = argc > 2 ? atoi(argv[2]) : 1;
  use_pair_fn = argc > 3 && argv[3][0] == 'p';
  if (n <= 0 || threads < 1 || threads > kMaxThreads) {
    fprintf(stderr, "usage: bench_loop N [THREADS] [pair] (N > 0, 1 <= THREADS <= %d)\n", kMaxThreads);
    return 2;
  }
  static struct worker workers[kMaxThreads];
  pthread_barrier_init(&start_line, NULL, (unsigned)threads + 1);
  for (int t = 0; t < threads; ++t) {
    workers[t].n = n;
    if (pthread_create(&workers[t].thread, NULL, run_worker, &workers[t]) != 0) return 4;
  }
  /* The workers time themselves: this thread may not run again until they are done. The
   * phase lasts from the first worker's start to the last one's end. */
  pthread_barrier_wait(&start_line);
  long sum = 0;
  double start = 0, end = 0;
  for (int t = 0; t < threads; ++t) {
    pthread_join(workers[t].thread, NULL);
    sum += workers[t].sum;
    if (t == 0 || workers[t].start_ns < start) start = workers[t].start_ns;
    if (t == 0 || workers[t].end_ns > end) end = workers[t].end_ns;
  }
  double elapsed = end - start;
  printf("ns_per_call %.2f\n", elapsed / (double)n);
  /* Keeps the loops' results live; a wrong sum means a probe changed what bench_fn computes. */
  return sum == (long)threads * (n * (n + 1) / 2) ? 0 : 3;
}
