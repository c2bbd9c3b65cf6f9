/* forkloop N: N times fork() a child that calls work() once and _exit()s, and wait for it;
 * the parent calls work() once per round too. Prints the wall time per fork+wait round, for
 * the fork-cost benchmark (bench/dlopen_arm.sh), and the CPU time (user + system, of the
 * process and its children) per round, which a busy machine disturbs less than wall time. */
#include <stdio.h>
#include <stdlib.h>
#include <sys/resource.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "work.h"

int main(int argc, char **argv) {
  int n = argc > 1 ? atoi(argv[1]) : 1000;
  struct timespec a, b;
  long long sum = 0;
  clock_gettime(CLOCK_MONOTONIC, &a);
  for (int i = 0; i < n; ++i) {
    sum += work(i);
    pid_t child = fork();
    if (child < 0) return 2;
    if (child == 0) _exit(work(i) == 3 * i + 1 ? 0 : 1);
    int status = 0;
    if (waitpid(child, &status, 0) != child || status != 0) return 3;
  }
  clock_gettime(CLOCK_MONOTONIC, &b);
  double ns = (b.tv_sec - a.tv_sec) * 1e9 + (b.tv_nsec - a.tv_nsec);
  struct rusage self, children;
  getrusage(RUSAGE_SELF, &self);
  getrusage(RUSAGE_CHILDREN, &children);
  double cpu = 0;
  for (const struct rusage *u = &self; u; u = u == &self ? &children : NULL) {
    cpu += (u->ru_utime.tv_sec + u->ru_stime.tv_sec) * 1e9 +
           (u->ru_utime.tv_usec + u->ru_stime.tv_usec) * 1e3;
  }
  printf("forkloop: %d rounds, sum %s\nns_per_fork %.0f\ncpu_ns_per_fork %.0f\n", n,
         sum == work_sum(n) ? "ok" : "wrong", ns / n, cpu / n);
  return 0;
}
