/* execself N EXECS [THREADS]: calls work(i) for i in [0, N) (from THREADS threads at once when
 * given, each N times), prints one line, then, while EXECS > 0, replaces itself with
 * `execself N EXECS-1 [THREADS]` -- from a worker thread when THREADS is given, so the exec
 * also ends the other threads. A probe on work() that follows exec counts N*(EXECS+1) (times
 * THREADS). With EXECSELF_OTHER=PATH in the environment, the exec runs PATH (no arguments)
 * instead. */
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <unistd.h>

#include "work.h"

static int n, execs, threads;
static char *self;

static void exec_next(void) {
  char n_text[16], execs_text[16], threads_text[16];
  snprintf(n_text, sizeof n_text, "%d", n);
  snprintf(execs_text, sizeof execs_text, "%d", execs - 1);
  snprintf(threads_text, sizeof threads_text, "%d", threads);
  char *args[] = {self, n_text, execs_text, threads > 0 ? threads_text : NULL, NULL};
  const char *other = getenv("EXECSELF_OTHER");
  if (other != NULL) {
    char *other_args[] = {(char *)other, NULL};
    execv(other, other_args);
  }
  execv("/proc/self/exe", args);
  perror("execv");
  exit(3);
}

static long long call_work(void) {
  long long sum = 0;
  for (int i = 0; i < n; ++i) sum += work(i);
  return sum;
}

static pthread_barrier_t done;

static void *run_worker(void *arg) {
  long long sum = call_work();
  int last = arg != NULL;
  pthread_barrier_wait(&done);
  if (sum != work_sum(n)) exit(2);
  if (last) {
    printf("execself: %d threads x %d calls, %d execs to go\n", threads, n, execs);
    fflush(stdout);
    if (execs > 0) exec_next(); /* from this worker: the kernel ends the others */
    exit(0);
  }
  for (;;) pause();
}

int main(int argc, char **argv) {
  if (argc < 3) {
    fprintf(stderr, "usage: execself N EXECS [THREADS]\n");
    return 64;
  }
  self = argv[0];
  n = atoi(argv[1]);
  execs = atoi(argv[2]);
  threads = argc > 3 ? atoi(argv[3]) : 0;
  if (threads <= 0) {
    long long sum = call_work();
    printf("execself: %d calls, %d execs to go\n", n, execs);
    fflush(stdout);
    if (sum != work_sum(n)) return 2;
    if (execs > 0) exec_next();
    return 0;
  }
  pthread_barrier_init(&done, NULL, (unsigned)threads);
  pthread_t tid;
  for (int t = 0; t < threads; ++t)
    pthread_create(&tid, NULL, run_worker, t == threads - 1 ? (void *)1 : NULL);
  for (;;) pause();
}
