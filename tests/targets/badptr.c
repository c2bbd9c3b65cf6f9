/* badptr: calls show(p) with pointers a string read must survive, in this order:
 *   "hello", NULL, (char *)0x10, a page that was unmapped, "abc" ending exactly at the end of
 *   a page whose next page is unmapped (no terminating NUL is readable), "bye".
 * show() does not dereference its argument; only a probe reading str(arg0) does. Prints
 * "badptr: 6 calls, sum S". bpftrace's str() of an unreadable address is "". */
#include <stdio.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

__attribute__((noinline, noipa, used)) int show(const char *s) {
  int r = (int)((unsigned long)s & 0xff);
  __asm__ volatile("" : "+r"(r));
  return r;
}

int main(void) {
  long page = sysconf(_SC_PAGESIZE);
  char *gone = mmap(NULL, (size_t)page, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
  char *two = mmap(NULL, 2 * (size_t)page, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS,
                   -1, 0);
  if (gone == MAP_FAILED || two == MAP_FAILED) return 4;
  strcpy(gone, "never seen");
  if (munmap(gone, (size_t)page) != 0 || munmap(two + page, (size_t)page) != 0) return 4;
  char *edge = two + page - 3;
  memcpy(edge, "abc", 3);
  /* Touch the literals (see args.c: a kernel-side reader cannot fault pages in). */
  const char *hello = "hello", *bye = "bye";
  int sum = *(const volatile char *)hello + *(const volatile char *)bye;
  sum = 0;
  sum += show(hello);
  sum += show(NULL);
  sum += show((const char *)0x10);
  sum += show(gone);
  sum += show(edge);
  sum += show(bye);
  printf("badptr: 6 calls, sum %d\n", sum);
  return 0;
}
