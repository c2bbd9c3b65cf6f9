/* forkmany THREADS CHILDREN K [LINGER_MS]: THREADS threads each call work() K times and fork
 * CHILDREN/THREADS children (all at once, from every thread, while the others call work()); each
 * child calls work() K times and exits 0 (2 on a wrong sum). Without LINGER_MS the process waits
 * for every child and prints one line; with it, it exits at once and the children sleep
 * LINGER_MS before calling work(), outliving their parent, and each prints one line. A probe on work() that follows
 * children counts THREADS*K + CHILDREN*K. With FORKMANY_GRANDCHILD set in the environment, each
 * child first forks a grandchild that does what a child does (waited for by the child without
 * LINGER_MS; outliving it with); a probe that follows them too counts THREADS*K + 2*CHILDREN*K. */
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "work.h"

static int children_per_thread, calls, linger_ms, grandchild;

static long long call_work(int n) {
  long long sum = 0;
  for (int i = 0; i < n; ++i) sum += work(i);
  return sum;
}

/* A child's (or grandchild's) life: sleep LINGER_MS, call work() K times, wait for `own` (its
 * grandchild, when it has one and nobody lingers), exit 0 when all went well. */
static void child_body(pid_t own, int fork_failed) {
  if (linger_ms > 0) {
    struct timespec ts = {linger_ms / 1000, (long)(linger_ms % 1000) * 1000000L};
    nanosleep(&ts, NULL);
  }
  int ok = call_work(calls) == work_sum(calls) && !fork_failed;
  if (own > 0 && linger_ms == 0) {
    int status = 0;
    ok = ok && waitpid(own, &status, 0) == own && WIFEXITED(status) && WEXITSTATUS(status) == 0;
  }
  if (linger_ms > 0) {
    /* Nobody waits for an orphan: it reports itself (a child killed by a probe prints nothing). */
    printf("child: %d calls, %s\n", calls, ok ? "sum ok" : "wrong sum");
    fflush(stdout);
  }
  _exit(ok ? 0 : 2);
}

static void child_main(void) {
  pid_t own = 0;
  if (grandchild) {
    own = fork();
    if (own == 0) child_body(0, 0);
  }
  child_body(own, own < 0);
}

static void *run_thread(void *arg) {
  long failures = 0;
  pid_t *pids = arg;
  for (int c = 0; c < children_per_thread; ++c) {
    if (call_work(calls / children_per_thread) != work_sum(calls / children_per_thread)) ++failures;
    pid_t pid = fork();
    if (pid == 0) child_main();
    pids[c] = pid;
    if (pid < 0) ++failures;
  }
  int rest = calls - (calls / children_per_thread) * children_per_thread;
  if (call_work(rest) != work_sum(rest)) ++failures;
  return (void *)failures;
}

int main(int argc, char **argv) {
  if (argc < 4) {
    fprintf(stderr, "usage: forkmany THREADS CHILDREN K [LINGER_MS]\n");
    return 64;
  }
  int threads = atoi(argv[1]), children = atoi(argv[2]);
  calls = atoi(argv[3]);
  linger_ms = argc > 4 ? atoi(argv[4]) : 0;
  grandchild = getenv("FORKMANY_GRANDCHILD") != NULL;
  if (threads < 1 || children < threads || children % threads != 0 || calls < 1) return 64;
  children_per_thread = children / threads;
  pthread_t tids[64];
  pid_t *pids = calloc((size_t)children, sizeof *pids);
  if (threads > 64 || pids == NULL) return 64;
  for (int t = 0; t < threads; ++t)
    pthread_create(&tids[t], NULL, run_thread, pids + t * children_per_thread);
  long failures = 0;
  for (int t = 0; t < threads; ++t) {
    void *r;
    pthread_join(tids[t], &r);
    failures += (long)r;
  }
  if (linger_ms > 0) return failures == 0 ? 0 : 2;
  int clean = 0;
  for (int c = 0; c < children; ++c) {
    int status = 0;
    if (pids[c] > 0 && waitpid(pids[c], &status, 0) == pids[c] && WIFEXITED(status) &&
        WEXITSTATUS(status) == 0)
      ++clean;
  }
  printf("forkmany: %d threads x %d calls, %d of %d children exited 0\n", threads, calls, clean,
         children);
  return failures == 0 && clean == children ? 0 : 2;
}
