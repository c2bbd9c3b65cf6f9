/* args N: exercises argument and string access.
 * six(a..f) is called with six distinct values derived from i, so arg0..arg5 are all visible.
 * greet(name, i) is called with a name whose frequency is skewed (alice 5, bob 4, carol 3,
 * dave 2, eve 1 out of every 15 calls) so that per-name counts never tie when N % 15 == 0. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

__attribute__((noinline, noipa, used)) long six(long a, long b, long c, long d, long e, long f) {
  long r = a + 2 * b + 3 * c + 4 * d + 5 * e + 6 * f;
  __asm__ volatile("" : "+r"(r));
  return r;
}

__attribute__((noinline, noipa, used)) int greet(const char *name, int n) {
  int r = (int)strlen(name) + n;
  __asm__ volatile("" : "+r"(r));
  return r;
}

static const char *name_for(int i) {
  int k = i % 15;
  if (k < 5) return "alice";
  if (k < 9) return "bob";
  if (k < 12) return "carol";
  if (k < 14) return "dave";
  return "eve";
}

int main(int argc, char **argv) {
  int n = argc > 1 ? atoi(argv[1]) : 15;
  /* Touch the names first: a kernel-side reader (bpftrace's str()) cannot fault in a page the
   * program has not used yet and would read "" on the first call. */
  long long sum = 0;
  for (int i = 0; i < 15; ++i) sum += *(const volatile char *)name_for(i) - 'a';
  for (int i = 0; i < n; ++i) {
    sum += six(i, 10 + i, 100 + i, 1000 + i, 10000 + i, 100000 + i);
    sum += greet(name_for(i), i);
  }
  printf("args: %d calls, sum %lld\n", n, sum);
  return 0;
}
