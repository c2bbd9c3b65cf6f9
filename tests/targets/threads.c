/* threads T N [--tids] [--wait]: T threads each call work(i) for i in [0, N).
 * --tids  prints "tid X" for every worker after they are joined (in thread order).
 * --wait  prints "threads: waiting" and reads one line from stdin before starting the workers,
 *         so a test can attach a tracer to a process whose hits have not begun yet. */
#define _GNU_SOURCE
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/syscall.h>
#include <unistd.h>

#include "work.h"

enum { kMaxThreads = 64 };

struct worker {
  pthread_t thread;
  int calls;
  pid_t tid;
  long long sum;
};

static void *run_worker(void *arg) {
  struct worker *w = arg;
  w->tid = (pid_t)syscall(SYS_gettid);
  for (int i = 0; i < w->calls; ++i) w->sum += work(i);
  return NULL;
}

int main(int argc, char **argv) {
  if (argc < 3) {
    fprintf(stderr, "usage: threads T N [--tids] [--wait]\n");
    return 2;
  }
  int t = atoi(argv[1]);
  int n = atoi(argv[2]);
  int print_tids = 0, wait_stdin = 0;
  for (int i = 3; i < argc; ++i) {
    if (strcmp(argv[i], "--tids") == 0) print_tids = 1;
    if (strcmp(argv[i], "--wait") == 0) wait_stdin = 1;
  }
  if (t < 1 || t > kMaxThreads) {
    fprintf(stderr, "threads: T must be 1..%d\n", kMaxThreads);
    return 2;
  }
  if (wait_stdin) {
    printf("threads: waiting\n");
    fflush(stdout);
    char line[64];
    if (!fgets(line, sizeof line, stdin)) return 3;
  }
  struct worker workers[kMaxThreads];
  memset(workers, 0, sizeof workers);
  for (int i = 0; i < t; ++i) {
    workers[i].calls = n;
    if (pthread_create(&workers[i].thread, NULL, run_worker, &workers[i]) != 0) return 4;
  }
  long long sum = 0;
  for (int i = 0; i < t; ++i) {
    pthread_join(workers[i].thread, NULL);
    sum += workers[i].sum;
  }
  if (print_tids)
    for (int i = 0; i < t; ++i) printf("tid %d\n", (int)workers[i].tid);
  printf("threads: %d x %d calls, sum %lld\n", t, n, sum);
  return sum == t * work_sum(n) ? 0 : 2;
}
