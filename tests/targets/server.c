/* server [SECONDS]: a long-running process to attach to with -p.
 * Four workers call work() about every millisecond; the main thread prints "tick K" every
 * 100 ms. It exits 0 after SECONDS (default 10, so nothing runs forever) or on SIGTERM/SIGINT,
 * printing "server: exiting" either way. Prints "server: ready" once the workers run. */
#define _GNU_SOURCE
#include <errno.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <time.h>
#include <unistd.h>

#include "work.h"

enum { kWorkers = 4 };

static atomic_int stop_requested;
static volatile sig_atomic_t got_signal;

static void on_signal(int sig) {
  (void)sig;
  got_signal = 1;
}

static void *run_worker(void *arg) {
  long long *calls = arg;
  struct timespec pause = {0, 1000 * 1000};
  int i = 0;
  while (!atomic_load(&stop_requested)) {
    work(i++);
    ++*calls;
    nanosleep(&pause, NULL);
  }
  return NULL;
}

static void add_ns(struct timespec *t, long ns) {
  t->tv_nsec += ns;
  while (t->tv_nsec >= 1000000000L) {
    t->tv_nsec -= 1000000000L;
    t->tv_sec += 1;
  }
}

int main(int argc, char **argv) {
  double seconds = argc > 1 ? atof(argv[1]) : 10.0;
  long ticks_limit = (long)(seconds * 10.0 + 0.5);

  /* Workers start with the stop signals blocked so the handler runs on the main thread and
   * interrupts its sleep. */
  sigset_t stop_set, old_set;
  sigemptyset(&stop_set);
  sigaddset(&stop_set, SIGTERM);
  sigaddset(&stop_set, SIGINT);
  pthread_sigmask(SIG_BLOCK, &stop_set, &old_set);
  pthread_t workers[kWorkers];
  long long calls[kWorkers] = {0};
  for (int i = 0; i < kWorkers; ++i)
    if (pthread_create(&workers[i], NULL, run_worker, &calls[i]) != 0) return 4;

  struct sigaction sa = {0};
  sa.sa_handler = on_signal;
  sigemptyset(&sa.sa_mask);
  sigaction(SIGTERM, &sa, NULL);
  sigaction(SIGINT, &sa, NULL);
  pthread_sigmask(SIG_SETMASK, &old_set, NULL);

  printf("server: ready\n");
  fflush(stdout);

  struct timespec next;
  clock_gettime(CLOCK_MONOTONIC, &next);
  for (long k = 1; k <= ticks_limit && !got_signal; ++k) {
    add_ns(&next, 100L * 1000 * 1000);
    while (!got_signal && clock_nanosleep(CLOCK_MONOTONIC, TIMER_ABSTIME, &next, NULL) == EINTR) {
    }
    if (got_signal) break;
    printf("tick %ld\n", k);
    fflush(stdout);
  }

  atomic_store(&stop_requested, 1);
  for (int i = 0; i < kWorkers; ++i) pthread_join(workers[i], NULL);
  printf("server: exiting\n");
  fflush(stdout);
  return 0;
}
