/* signals N: the main thread calls work(i) for i in [0, N) with a little busy work in between,
 * while a 1 ms SIGALRM timer runs a handler that also calls work(). Under a breakpoint tracer
 * the signals arrive while threads sit at probes and during single-steps. Prints
 * "signals: N main calls, H handler calls, sum S"; a probe on work() must count N + H. */
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/time.h>

#include "work.h"

static volatile sig_atomic_t handler_calls;
static volatile long long handler_sum;

static void on_alarm(int sig) {
  (void)sig;
  handler_sum += work(1000000 + handler_calls);
  handler_calls = handler_calls + 1;
}

static __attribute__((noinline)) void spin(int rounds) {
  for (volatile int i = 0; i < rounds; ++i) {
  }
}

int main(int argc, char **argv) {
  int n = argc > 1 ? atoi(argv[1]) : 1000;
  int rounds = argc > 2 ? atoi(argv[2]) : 20000;

  struct sigaction sa = {0};
  sa.sa_handler = on_alarm;
  sa.sa_flags = SA_RESTART;
  sigemptyset(&sa.sa_mask);
  sigaction(SIGALRM, &sa, NULL);
  struct itimerval timer = {{0, 1000}, {0, 1000}};
  setitimer(ITIMER_REAL, &timer, NULL);

  long long sum = 0;
  for (int i = 0; i < n; ++i) {
    sum += work(i);
    spin(rounds);
  }

  struct itimerval off = {{0, 0}, {0, 0}};
  setitimer(ITIMER_REAL, &off, NULL);
  /* Block SIGALRM so the count below cannot move while it is printed. */
  sigset_t set;
  sigemptyset(&set);
  sigaddset(&set, SIGALRM);
  sigprocmask(SIG_BLOCK, &set, NULL);

  int h = handler_calls;
  printf("signals: %d main calls, %d handler calls, sum %lld\n", n, h, sum);
  return sum == work_sum(n) ? 0 : 2;
}
