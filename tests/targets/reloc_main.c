/* reloc N: calls reloc_kinds(x) N times with x = (i * 7) % 23 (so every branch in it is taken
 * for some calls and not for others) and prints one line per call plus a total. Any
 * mis-executed instruction in reloc_kinds changes these lines. */
#include <stdio.h>
#include <stdlib.h>

long reloc_kinds(long x);

int main(int argc, char **argv) {
  int n = argc > 1 ? atoi(argv[1]) : 23;
  unsigned long total = 0;
  for (int i = 0; i < n; ++i) {
    long x = (i * 7L) % 23;
    long r = reloc_kinds(x);
    total = total * 31 + (unsigned long)r;
    printf("reloc %d x=%ld r=%ld\n", i, x, r);
  }
  printf("reloc: %d calls, checksum %lu\n", n, total);
  return 0;
}
