/* tiny N [--block-signals|--wait]: calls tiny_fn(i) and tiny_next(i) for i in [0, N), with
 * every signal blocked when asked (as thread pools often do), SIGTRAP included; --wait prints
 * "tiny: waiting" and reads one line from stdin first. */
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

int tiny_fn(int x);
int tiny_next(int x);

int main(int argc, char **argv) {
  int n = argc > 1 ? atoi(argv[1]) : 10;
  if (argc > 2 && strcmp(argv[2], "--block-signals") == 0) {
    sigset_t all;
    sigfillset(&all);
    sigprocmask(SIG_BLOCK, &all, NULL);
  }
  if (argc > 2 && strcmp(argv[2], "--wait") == 0) {
    char line[16];
    printf("tiny: waiting\n");
    fflush(stdout);
    if (fgets(line, sizeof line, stdin) == NULL) return 3;
  }
  long long sum = 0;
  for (int i = 0; i < n; ++i) sum += tiny_fn(i) * 3LL + tiny_next(i);
  printf("tiny: %d calls, sum %lld\n", n, sum);
  long long expect = 0;
  for (long long i = 0; i < n; ++i) expect += (i + 1) * 3 + (i + 2);
  return sum == expect ? 0 : 2;
}
