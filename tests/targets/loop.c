/* loop N: calls work(i) for i in [0, N) and prints one line. */
#include <stdio.h>
#include <stdlib.h>

#include "work.h"

int main(int argc, char **argv) {
  int n = argc > 1 ? atoi(argv[1]) : 10;
  long long sum = 0;
  for (int i = 0; i < n; ++i) sum += work(i);
  printf("loop: %d calls, sum %lld\n", n, sum);
  return sum == work_sum(n) ? 0 : 2;
}
