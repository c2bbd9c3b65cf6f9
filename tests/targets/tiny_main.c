/* tiny N: calls tiny_fn(i) and tiny_next(i) for i in [0, N). */
#include <stdio.h>
#include <stdlib.h>

int tiny_fn(int x);
int tiny_next(int x);

int main(int argc, char **argv) {
  int n = argc > 1 ? atoi(argv[1]) : 10;
  long long sum = 0;
  for (int i = 0; i < n; ++i) sum += tiny_fn(i) * 3LL + tiny_next(i);
  printf("tiny: %d calls, sum %lld\n", n, sum);
  long long expect = 0;
  for (long long i = 0; i < n; ++i) expect += (i + 1) * 3 + (i + 2);
  return sum == expect ? 0 : 2;
}
