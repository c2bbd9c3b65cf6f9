/* worker N [DELAY_MS]: sleeps DELAY_MS (default 0), calls work(i) for i in [0, N), prints one
 * line and exits 0 (2 on a wrong sum). Many of them are started independently to test
 * machine-wide probes. */
#include <stdio.h>
#include <stdlib.h>
#include <time.h>

#include "work.h"

int main(int argc, char **argv) {
  int n = argc > 1 ? atoi(argv[1]) : 100;
  int delay_ms = argc > 2 ? atoi(argv[2]) : 0;
  if (delay_ms > 0) {
    struct timespec ts = {delay_ms / 1000, (long)(delay_ms % 1000) * 1000000L};
    nanosleep(&ts, NULL);
  }
  long long sum = 0;
  for (int i = 0; i < n; ++i) sum += work(i);
  printf("worker: %d calls, sum %lld\n", n, sum);
  return sum == work_sum(n) ? 0 : 2;
}
