/* forker N: calls work() N times, forks a child that calls work() N times and exits 0, waits
 * for it, calls work() N more times. A child that inherits a breakpoint nobody handles dies of
 * SIGTRAP, which changes the "child status" printed here. A probe on work() following children
 * counts 3N. */
#include <stdio.h>
#include <stdlib.h>
#include <sys/wait.h>
#include <unistd.h>

#include "work.h"

static long long call_work(int n) {
  long long sum = 0;
  for (int i = 0; i < n; ++i) sum += work(i);
  return sum;
}

int main(int argc, char **argv) {
  int n = argc > 1 ? atoi(argv[1]) : 100;
  long long before = call_work(n);
  fflush(stdout);
  pid_t child = fork();
  if (child < 0) return 4;
  if (child == 0) {
    long long sum = call_work(n);
    printf("child: %d calls, sum %lld\n", n, sum);
    fflush(stdout);
    _exit(sum == work_sum(n) ? 0 : 2);
  }
  int status = 0;
  if (waitpid(child, &status, 0) != child) return 5;
  long long after = call_work(n);
  if (WIFEXITED(status))
    printf("parent: %d + %d calls, sum %lld, child exit %d\n", n, n, before + after,
           WEXITSTATUS(status));
  else
    printf("parent: %d + %d calls, sum %lld, child killed by signal %d\n", n, n, before + after,
           WTERMSIG(status));
  return status == 0 && before + after == 2 * work_sum(n) ? 0 : 2;
}
