#include "work.h"

/* server_v2 is built with WORK_MULT=5: same source, different code, different build-id. */
#ifndef WORK_MULT
#define WORK_MULT 3
#endif

__attribute__((noinline, noipa, used)) int work(int i) {
  int r = i * WORK_MULT + 1;
  /* An empty asm that "changes" r: the body cannot be folded away. */
  __asm__ volatile("" : "+r"(r));
  return r;
}

long long work_sum(int n) {
  long long s = 0;
  for (long long i = 0; i < n; ++i) s += i * WORK_MULT + 1;
  return s;
}
