/* hammer [SECONDS]: four threads call work() back to back from the start (no waiting), so a
 * tracer arms its probes while the probed function is being hammered.
 * SIGUSR1: from then on every call a thread starts after seeing the signal is a "post" call.
 * SIGUSR2 (or SECONDS, default 30, passing): the threads stop; the process prints
 *   hammer: C post-signal calls, T calls, W wrong results
 * (C <= T; a probe armed before SIGUSR1 was sent must count at least C and at most T), then
 * reads a line from stdin (EOF is fine) and exits 0 when W is 0. */
#define _GNU_SOURCE
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <time.h>

#include "work.h"

enum { kWorkers = 4 };

struct worker {
  pthread_t thread;
  long long total;
  long long post;
  long long wrong;
};

static atomic_int post_phase;
static atomic_int stop_requested;

static void on_usr1(int sig) {
  (void)sig;
  atomic_store(&post_phase, 1);
}

static void on_usr2(int sig) {
  (void)sig;
  atomic_store(&stop_requested, 1);
}

static void *run_worker(void *arg) {
  struct worker *w = arg;
  int i = 0;
  while (!atomic_load_explicit(&stop_requested, memory_order_relaxed)) {
    /* Read before the call: a call counted as "post" began after SIGUSR1 was handled. */
    int post = atomic_load_explicit(&post_phase, memory_order_acquire);
    if (work(i) != i * 3 + 1) ++w->wrong;
    ++w->total;
    if (post) ++w->post;
    i = i == 100000000 ? 0 : i + 1;
  }
  return NULL;
}

int main(int argc, char **argv) {
  double seconds = argc > 1 ? atof(argv[1]) : 30.0;
  struct sigaction sa = {0};
  sigemptyset(&sa.sa_mask);
  sa.sa_handler = on_usr1;
  sigaction(SIGUSR1, &sa, NULL);
  sa.sa_handler = on_usr2;
  sigaction(SIGUSR2, &sa, NULL);

  struct worker workers[kWorkers] = {0};
  for (int i = 0; i < kWorkers; ++i)
    if (pthread_create(&workers[i].thread, NULL, run_worker, &workers[i]) != 0) return 4;
  printf("hammer: ready\n");
  fflush(stdout);

  struct timespec tick = {0, 10 * 1000 * 1000};
  for (long waited = 0; !atomic_load(&stop_requested) && waited < (long)(seconds * 100); ++waited)
    nanosleep(&tick, NULL);
  atomic_store(&stop_requested, 1);

  long long total = 0, post = 0, wrong = 0;
  for (int i = 0; i < kWorkers; ++i) {
    pthread_join(workers[i].thread, NULL);
    total += workers[i].total;
    post += workers[i].post;
    wrong += workers[i].wrong;
  }
  printf("hammer: %lld post-signal calls, %lld calls, %lld wrong results\n", post, total, wrong);
  fflush(stdout);
  char line[64];
  (void)fgets(line, sizeof line, stdin);
  return wrong == 0 ? 0 : 2;
}
