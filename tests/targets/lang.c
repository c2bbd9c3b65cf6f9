/* lang N: targets for the language tests (casts, dereference, stack arguments, strings, buf).
 * ten(a..j) has ten integer arguments, so arg6..arg9 are on the stack.
 * take(r) gets a pointer to a struct of fixed-width fields, so *(T*)(arg0 + off) reads each.
 * neg(x) is called with negative and positive ints, for sign extension and casts.
 * name(s, i) gets strings of several lengths, for str(p, n), buf(p, n) and string maps.
 * All pages the probes read are touched first: a kernel-side reader (bpftrace) cannot fault
 * them in. */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

struct rec {
  uint8_t u8;    /* +0 */
  int8_t s8;     /* +1 */
  uint16_t u16;  /* +2 */
  int32_t s32;   /* +4 */
  uint32_t u32;  /* +8 */
  int16_t s16;   /* +12 */
  int64_t s64;   /* +16 */
  char tag[8];   /* +24 */
};

__attribute__((noinline, noipa, used)) long ten(long a, long b, long c, long d, long e, long f,
                                                long g, long h, long i, long j) {
  long r = a + b + c + d + e + f + g + h + i + j;
  __asm__ volatile("" : "+r"(r));
  return r;
}

__attribute__((noinline, noipa, used)) int take(const struct rec *r) {
  int x = r->u8 + r->s8 + r->u16 + r->s32;
  __asm__ volatile("" : "+r"(x));
  return x;
}

__attribute__((noinline, noipa, used)) int neg(int x) {
  __asm__ volatile("" : "+r"(x));
  return x;
}

__attribute__((noinline, noipa, used)) int name(const char *s, int i) {
  int r = (int)strlen(s) + i;
  __asm__ volatile("" : "+r"(r));
  return r;
}

static const char *const kNames[] = {"x", "ab", "hello", "hello world", "tracing-is-fun"};

int main(int argc, char **argv) {
  int n = argc > 1 ? atoi(argv[1]) : 5;
  long long sum = 0;
  static struct rec recs[5];
  for (int i = 0; i < 5; ++i) {
    recs[i].u8 = (uint8_t)(250 + i);
    recs[i].s8 = (int8_t)(-3 * i - 1);
    recs[i].u16 = (uint16_t)(65530 + i);
    recs[i].s32 = -100000 * (i + 1);
    recs[i].u32 = 4000000000u + (uint32_t)i;
    recs[i].s16 = (int16_t)(-30000 + i);
    recs[i].s64 = -5000000000LL * (i + 1);
    snprintf(recs[i].tag, sizeof recs[i].tag, "tag%d", i);
    sum += *(const volatile char *)kNames[i];
  }
  for (int i = 0; i < n; ++i) {
    sum += ten(i, i + 1, i + 2, i + 3, i + 4, i + 5, 100 + i, 200 + i, -300 - i, 400 + i);
    sum += take(&recs[i % 5]);
    sum += neg(i % 2 ? -(i * 1000 + 7) : i * 1000 + 7);
    sum += name(kNames[i % 5], i);
  }
  printf("lang: %d rounds, sum %lld\n", n, sum);
  return 0;
}
