// Prints "tick I" COUNT times, one every INTERVAL_MS milliseconds, then exits with EXIT_CODE.
// A sleep cut short (EINTR) is reported: a traced target must never notice the tracer.
//   ticker COUNT INTERVAL_MS EXIT_CODE
#define _GNU_SOURCE
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <time.h>
#include <unistd.h>

int main(int argc, char** argv) {
  setvbuf(stdout, NULL, _IOLBF, 0);
  if (argc < 4) return 2;
  int count = atoi(argv[1]);
  long interval_ms = atol(argv[2]);
  printf("ready\n");
  for (int i = 0; i < count; ++i) {
    struct timespec ts = {interval_ms / 1000, (interval_ms % 1000) * 1000000L};
    if (nanosleep(&ts, NULL) != 0) printf("nanosleep: %s\n", errno == EINTR ? "EINTR" : "error");
    printf("tick %d\n", i);
  }
  return atoi(argv[3]);
}
