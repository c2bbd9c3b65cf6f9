/* branch_in N: calls spin_into(i % 5 + 1) for i in [0, N) (spin_into: see branch_in.S) and
 * prints the number of loop rounds; a probe that breaks the loop's target changes the sum. */
#include <stdio.h>
#include <stdlib.h>

int spin_into(int n);

int main(int argc, char **argv) {
  int n = argc > 1 ? atoi(argv[1]) : 10;
  long long sum = 0, expect = 0;
  for (int i = 0; i < n; ++i) {
    sum += spin_into(i % 5 + 1);
    expect += i % 5 + 1;
  }
  printf("branch_in: %d calls, %lld rounds\n", n, sum);
  return sum == expect ? 0 : 2;
}
