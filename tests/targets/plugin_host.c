/* plugin_host LIB K [THREADS] [WAIT]: dlopen()s LIB, calls its plugin_entry() K times from each
 * of THREADS threads started after the load (0: from main, the default), dlclose()s it (and
 * checks that it is really gone), then does it all a second time. A probe on plugin_entry
 * counts 2 * (max(THREADS,1) * K + 1): the library's constructor calls it once per load.
 * WAIT before the first dlopen: "stdin" reads one line (deterministic tests), a number sleeps
 * that many ms (default 0); "loaded" dlopen()s first, then reads one line before calling in
 * (a library mapped before dprobe attaches).
 * With PLUGIN_HOST_TIMES set, prints per load how long dlopen and dlclose took, in ns.
 * With PLUGIN_HOST_FORK set, a fork()ed child first does both loads (without waiting), and the
 * parent prints its exit status before doing its own: a child that inherited a breakpoint on
 * the loader that nobody handles dies of SIGTRAP in its dlopen. */
#include <dlfcn.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

typedef int (*entry_fn)(int);

struct job {
  entry_fn entry;
  int calls;
  long long sum;
};

static long long now_ns(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (long long)ts.tv_sec * 1000000000ll + ts.tv_nsec;
}

static void *call_entry(void *arg) {
  struct job *job = arg;
  for (int i = 0; i < job->calls; ++i) job->sum += job->entry(i);
  return NULL;
}

static long long expected_sum(int k) { return (long long)k * k; } /* sum of 2i+1, i < k */

int main(int argc, char **argv) {
  if (argc < 3) {
    fprintf(stderr, "usage: plugin_host LIB K [THREADS] [WAIT]\n");
    return 64;
  }
  const char *lib = argv[1];
  int k = atoi(argv[2]);
  int threads = argc > 3 ? atoi(argv[3]) : 0;
  const char *wait = argc > 4 ? argv[4] : "0";
  int times = getenv("PLUGIN_HOST_TIMES") != NULL;
  int is_child = 0;
  if (getenv("PLUGIN_HOST_FORK") != NULL) {
    fflush(stdout);
    pid_t child = fork();
    if (child < 0) return 6;
    if (child == 0) {
      is_child = 1;
      wait = "0";
    } else {
      int status = 0;
      if (waitpid(child, &status, 0) != child) return 7;
      if (WIFEXITED(status))
        printf("plugin_host: child exit %d\n", WEXITSTATUS(status));
      else
        printf("plugin_host: child killed by signal %d\n", WTERMSIG(status));
      fflush(stdout);
    }
  }
  if (strcmp(wait, "stdin") == 0) {
    char line[64];
    if (!fgets(line, sizeof line, stdin)) return 65;
  } else if (atoi(wait) > 0) {
    struct timespec ts = {atoi(wait) / 1000, (atoi(wait) % 1000) * 1000000l};
    nanosleep(&ts, NULL);
  }
  int ok = 1;
  for (int round = 1; round <= 2; ++round) {
    long long t0 = now_ns();
    void *handle = dlopen(lib, RTLD_NOW | RTLD_LOCAL);
    long long t1 = now_ns();
    if (!handle) {
      fprintf(stderr, "plugin_host: %s\n", dlerror());
      return 2;
    }
    if (round == 1 && strcmp(wait, "loaded") == 0) {
      printf("plugin_host: loaded\n");
      fflush(stdout);
      char line[64];
      if (!fgets(line, sizeof line, stdin)) return 65;
    }
    entry_fn entry = (entry_fn)dlsym(handle, "plugin_entry");
    if (!entry) return 3;
    int n = threads > 0 ? threads : 1;
    struct job jobs[64];
    pthread_t ids[64];
    if (n > 64) n = 64;
    for (int t = 0; t < n; ++t) jobs[t] = (struct job){entry, k, 0};
    if (threads > 0) {
      for (int t = 0; t < n; ++t) pthread_create(&ids[t], NULL, call_entry, &jobs[t]);
      for (int t = 0; t < n; ++t) pthread_join(ids[t], NULL);
    } else {
      call_entry(&jobs[0]);
    }
    long long sum = 0;
    for (int t = 0; t < n; ++t) sum += jobs[t].sum;
    long long t2 = now_ns();
    if (dlclose(handle) != 0) return 4;
    long long t3 = now_ns();
    void *still = dlopen(lib, RTLD_NOW | RTLD_NOLOAD);
    if (still) {
      fprintf(stderr, "plugin_host: %s still loaded after dlclose\n", lib);
      return 5;
    }
    if (sum != n * expected_sum(k)) ok = 0;
    printf("plugin_host: %sload %d: %d x %d calls, sum %s\n", is_child ? "child " : "", round, n, k,
           sum == n * expected_sum(k) ? "ok" : "wrong");
    if (times) printf("dlopen_ns %lld dlclose_ns %lld\n", t1 - t0, t3 - t2);
    fflush(stdout);
  }
  return ok ? 0 : 1;
}
