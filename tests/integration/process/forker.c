// Prints "ready probed=ADDR", waits for a line on stdin, then forks: the child prints
// "child probed(2)=V" and exits 5; the parent prints the child's exit status and exits 0.
#define _GNU_SOURCE
#include <stdio.h>
#include <sys/wait.h>
#include <unistd.h>

volatile int probed_sink;

__attribute__((noinline, aligned(16))) int probed(int x) {
  probed_sink = x;
  return 3 * x + 1;
}

int main(void) {
  setvbuf(stdout, NULL, _IOLBF, 0);
  printf("ready probed=%p\n", (void*)probed);
  char line[64];
  if (fgets(line, sizeof line, stdin) == NULL) return 2;
  pid_t child = fork();
  if (child == 0) {
    printf("child probed(2)=%d\n", probed(2));
    _exit(5);
  }
  int status = 0;
  waitpid(child, &status, 0);
  printf("parent: child exit %d, parent probed(2)=%d\n", WEXITSTATUS(status), probed(2));
  return 0;
}
