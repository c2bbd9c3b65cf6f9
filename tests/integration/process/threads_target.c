// Target for the process integration tests.
//   threads_target work N ITER   N workers run ITER iterations each, then print their sums.
//   threads_target serve N       N workers spin; the main thread obeys stdin commands:
//                                 "spawn" (start one more worker), "call X" (print probed(X)),
//                                 "exit" (stop, print sums, exit 7), "leave" (the main
//                                 thread exits alone: the leader becomes a zombie).
//   threads_target zombie N      N workers spin forever; the main thread exits alone.
//   threads_target exec N PROG ARGS...  N workers spin; one more thread execs PROG ARGS.
//   threads_target churn N       N short-lived threads, two at a time; prints their total.
#define _GNU_SOURCE
#include <pthread.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

volatile int probed_sink;

__attribute__((noinline, aligned(16))) int probed(int x) {
  probed_sink = x;
  return 3 * x + 1;
}

__attribute__((noinline)) uint64_t compute(uint64_t acc, uint64_t i) {
  return acc * 6364136223846793005ull + i * 1442695040888963407ull + (acc >> 17);
}

enum { kMaxWorkers = 64 };
static pthread_t workers[kMaxWorkers];
static uint64_t sums[kMaxWorkers];
static int worker_count;
static long iterations; // 0: until told to stop
static atomic_int stop_flag;

static void* worker(void* arg) {
  long index = (long)arg;
  uint64_t acc = (uint64_t)index;
  for (long i = 0; iterations == 0 || i < iterations; ++i) {
    if (iterations == 0 && atomic_load(&stop_flag)) break;
    acc = compute(acc, (uint64_t)i);
    if (iterations != 0) {
      struct timespec ts = {0, 1000000};
      while (nanosleep(&ts, &ts) != 0) {
      }
    } else if ((i & 0xffff) == 0) {
      sched_yield();
    }
  }
  sums[index] = acc;
  return NULL;
}

static void start_worker(void) {
  long index = worker_count++;
  pthread_create(&workers[index], NULL, worker, (void*)index);
}

static void finish(void) {
  atomic_store(&stop_flag, 1);
  for (int i = 0; i < worker_count; ++i)
    pthread_join(workers[i], NULL);
  uint64_t total = 0;
  for (int i = 0; i < worker_count; ++i) {
    if (iterations != 0) printf("worker %d: %llu\n", i, (unsigned long long)sums[i]);
    total ^= sums[i];
  }
  if (iterations != 0) printf("total: %llu\n", (unsigned long long)total);
  printf("done\n");
}

static void* short_lived(void* arg) {
  uint64_t acc = (uint64_t)(uintptr_t)arg;
  for (uint64_t i = 0; i < 2000; ++i)
    acc = compute(acc, i);
  return (void*)(uintptr_t)acc;
}

static int churn(int n) {
  uint64_t total = 0;
  for (int i = 0; i < n; i += 2) {
    pthread_t a, b;
    void* ra;
    void* rb;
    pthread_create(&a, NULL, short_lived, (void*)(uintptr_t)i);
    pthread_create(&b, NULL, short_lived, (void*)(uintptr_t)(i + 1));
    pthread_join(a, &ra);
    pthread_join(b, &rb);
    total += (uint64_t)(uintptr_t)ra ^ (uint64_t)(uintptr_t)rb;
  }
  printf("churn total: %llu\n", (unsigned long long)total);
  return 0;
}

static char** exec_argv;

static void* execer(void* arg) {
  (void)arg;
  struct timespec ts = {0, 20 * 1000000};
  nanosleep(&ts, NULL);
  execv(exec_argv[0], exec_argv);
  perror("execv");
  exit(9);
}

int main(int argc, char** argv) {
  setvbuf(stdout, NULL, _IOLBF, 0);
  if (argc < 3) return 2;
  int n = atoi(argv[2]);
  if (strcmp(argv[1], "churn") == 0) return churn(n);
  if (strcmp(argv[1], "work") == 0) {
    iterations = argc > 3 ? atol(argv[3]) : 100;
    for (int i = 0; i < n; ++i)
      start_worker();
    finish();
    return 0;
  }
  for (int i = 0; i < n; ++i)
    start_worker();
  if (strcmp(argv[1], "exec") == 0 && argc > 3) {
    exec_argv = argv + 3;
    pthread_t t;
    pthread_create(&t, NULL, execer, NULL);
    for (;;)
      pause();
  }
  printf("ready probed=%p\n", (void*)probed);
  if (strcmp(argv[1], "zombie") == 0) pthread_exit(NULL);
  char line[128];
  while (fgets(line, sizeof line, stdin) != NULL) {
    if (strncmp(line, "spawn", 5) == 0) {
      start_worker();
      printf("spawned\n");
    } else if (strncmp(line, "call ", 5) == 0) {
      int x = atoi(line + 5);
      printf("probed(%d)=%d\n", x, probed(x));
    } else if (strncmp(line, "leave", 5) == 0) {
      printf("leaving\n");
      pthread_exit(NULL);
    } else if (strncmp(line, "exit", 4) == 0) {
      finish();
      return 7;
    }
  }
  return 3;
}
