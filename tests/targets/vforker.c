/* vforker N: N times, calls work(i), then vfork()s a child that execs /bin/true, and waits for
 * it. Then forks a child that calls work() in a loop until a SIGUSR1 handler, which also calls
 * work(), ends it with _exit(7); the parent sends the signal once the child has started. Prints
 * one line with what it saw; exit 0 when everything behaved. */
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/wait.h>
#include <unistd.h>

#include "work.h"

static volatile sig_atomic_t started;

static void on_usr1(int sig) {
  (void)sig;
  work(1);
  _exit(7);
}

int main(int argc, char **argv) {
  int n = argc > 1 ? atoi(argv[1]) : 10;
  /* volatile: vfork returns twice in this frame (the child only execs or _exits). */
  volatile int clean = 0;
  for (volatile int i = 0; i < n; ++i) {
    work(i);
    pid_t child = vfork();
    if (child == 0) {
      execl("/bin/true", "true", (char *)NULL);
      _exit(127);
    }
    int status = 0;
    if (child > 0 && waitpid(child, &status, 0) == child && WIFEXITED(status) &&
        WEXITSTATUS(status) == 0)
      ++clean;
  }
  int ready[2];
  if (pipe(ready) != 0) return 3;
  pid_t looper = fork();
  if (looper == 0) {
    signal(SIGUSR1, on_usr1);
    if (write(ready[1], "x", 1) != 1) _exit(4);
    for (int i = 0;; ++i) work(i);
  }
  char byte;
  if (read(ready[0], &byte, 1) != 1) return 5;
  usleep(20000);
  kill(looper, SIGUSR1);
  int status = 0;
  waitpid(looper, &status, 0);
  int looper_code = WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
  printf("vforker: %d of %d vfork children exited 0, signalled child exited %d\n", clean, n,
         looper_code);
  return clean == n && looper_code == 7 ? 0 : 2;
}
