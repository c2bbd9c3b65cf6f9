/* parked R: one thread calls park_syscall() R times in a row (each blocks in pause() until a
 * SIGUSR1 whose handler just returns), another runs spin(0, &limit) with an unreachable limit.
 * Prints "parked: ready" once the spinner runs, then reads a line from stdin; then it ends the
 * spin (limit = 0), releases the parked thread with SIGUSR1 until it made its R calls, and
 * prints "parked: R pauses interrupted, S spin rounds" (S: what spin returned). Exit 0 when
 * every park_syscall returned -EINTR and the spin's result makes sense. */
#define _GNU_SOURCE
#include <errno.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <time.h>

long park_syscall(void);
unsigned long spin(unsigned long start, volatile unsigned long *limit);

static atomic_int released;
static atomic_int spinner_started;
static volatile unsigned long limit = ~0UL;
static int rounds;
static long bad_results;
static unsigned long spin_result;

static void on_usr1(int sig) { (void)sig; }

static void *parker(void *arg) {
  (void)arg;
  for (int i = 0; i < rounds; ++i) {
    if (park_syscall() != -EINTR) ++bad_results;
    atomic_fetch_add(&released, 1);
  }
  return NULL;
}

static void *spinner(void *arg) {
  (void)arg;
  atomic_store(&spinner_started, 1);
  spin_result = spin(0, &limit);
  return NULL;
}

int main(int argc, char **argv) {
  rounds = argc > 1 ? atoi(argv[1]) : 5;
  if (rounds < 1) return 2;
  struct sigaction sa = {0};
  sa.sa_handler = on_usr1;
  sigemptyset(&sa.sa_mask);
  sigaction(SIGUSR1, &sa, NULL);

  pthread_t park_thread, spin_thread;
  if (pthread_create(&park_thread, NULL, parker, NULL) != 0) return 4;
  if (pthread_create(&spin_thread, NULL, spinner, NULL) != 0) return 4;
  while (!atomic_load(&spinner_started)) {
  }
  printf("parked: ready\n");
  fflush(stdout);

  char line[64];
  if (!fgets(line, sizeof line, stdin)) return 3;
  limit = 0;
  pthread_join(spin_thread, NULL);
  struct timespec ms = {0, 1000 * 1000};
  while (atomic_load(&released) < rounds) {
    pthread_kill(park_thread, SIGUSR1);
    nanosleep(&ms, NULL);
  }
  pthread_join(park_thread, NULL);
  printf("parked: %d pauses interrupted, %lu spin rounds\n", rounds, spin_result);
  return bad_results == 0 && spin_result >= 1 ? 0 : 2;
}
