// ret MODE [N]: functions whose returns are probed (uretprobe) in every awkward way a function
// can be left. Each mode prints one deterministic line and exits 0 when all went as planned.
//   recurse N   rec(50), N times: 50 nested calls, each returning (value = depth)
//   throw N     outer -> middle -> thrower(i): odd i throw, caught in outer (2 levels up)
//   longjmp N   jumper(i): i % 3 == 0 leaves by longjmp to its caller's setjmp
//   tail N      tail_caller(i) ends in a jmp tail call to tail_callee (or a ret for i < 0)
//   exit N      N threads call exiter(t): odd t call pthread_exit inside it, even t return
//   sleep A B   napper(A) then napper(B): sleeps of A and B milliseconds (durations on stderr)
//   leaf N      leaf5(i, 1) N times: a 5-byte function whose entry and ret a jump would share
//   threads T N T threads each call value(i) for i in [0, N): returns i % 7
#include <pthread.h>
#include <setjmp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <stdexcept>

#define NOIPA __attribute__((noipa, noinline))

extern "C" {

NOIPA int rec(int depth) {
  if (depth <= 1) return 1;
  int below = rec(depth - 1);
  // Keeps the call a real call: no tail-recursion or accumulator rewrite by the compiler.
  asm volatile("" : "+r"(below));
  return below + 1;
}

NOIPA int thrower(int i) {
  if (i % 2 == 1) throw std::runtime_error("odd");
  return i;
}

NOIPA int middle(int i) {
  int r = thrower(i);
  asm volatile("" : "+r"(r));
  return r + 1;
}

NOIPA int outer(int i) {
  try {
    return middle(i);
  } catch (const std::runtime_error&) {
    return -1;
  }
}

static jmp_buf jump_back;

NOIPA int jumper(int i) {
  if (i % 3 == 0) longjmp(jump_back, 1);
  return i;
}

NOIPA int tail_callee(int x) {
  asm volatile("" : "+r"(x));
  return x * 3;
}

// -O2 makes the second return a `jmp tail_callee` (checked by the e2e tests with objdump).
NOIPA int tail_caller(int x) {
  if (x < 0) return -1;
  return tail_callee(x + 1);
}

NOIPA int exiter(int t) {
  if (t % 2 == 1) pthread_exit(nullptr);
  return t;
}

NOIPA int napper(int ms) {
  struct timespec ts = {ms / 1000, (ms % 1000) * 1000000L};
  while (nanosleep(&ts, &ts) != 0) {
  }
  return ms;
}

NOIPA int value(int i) { return i % 7; }

// 5 bytes, `lea eax, [rdi+rsi*2+1]; ret`: a jump at its entry would replace its ret too.
NOIPA int leaf5(int x, int y) { return x + 2 * y + 1; }

} // extern "C"

static void* run_exiter(void* arg) {
  exiter(static_cast<int>(reinterpret_cast<long>(arg)));
  return nullptr;
}

static int value_rounds;

static void* run_values(void*) {
  long sum = 0;
  for (int i = 0; i < value_rounds; ++i) sum += value(i);
  return reinterpret_cast<void*>(sum);
}

int main(int argc, char** argv) {
  if (argc < 2) {
    fprintf(stderr, "usage: ret recurse|throw|longjmp|tail|exit|sleep|threads ARGS\n");
    return 2;
  }
  const char* mode = argv[1];
  const int n = argc > 2 ? atoi(argv[2]) : 1;
  const int m = argc > 3 ? atoi(argv[3]) : 1;
  if (strcmp(mode, "recurse") == 0) {
    long sum = 0;
    for (int k = 0; k < n; ++k) sum += rec(50);
    printf("recurse: %d x depth 50, sum %ld\n", n, sum);
    return sum == 50L * n ? 0 : 1;
  }
  if (strcmp(mode, "throw") == 0) {
    int caught = 0, returned = 0;
    for (int i = 0; i < n; ++i) {
      if (outer(i) < 0)
        ++caught;
      else
        ++returned;
    }
    printf("throw: %d calls, %d caught, %d returned\n", n, caught, returned);
    return caught == n / 2 ? 0 : 1;
  }
  if (strcmp(mode, "longjmp") == 0) {
    // Statics: locals changed between setjmp and longjmp would be indeterminate after it.
    static int i, jumped, returned;
    for (i = 0; i < n; ++i) {
      if (setjmp(jump_back) == 0) {
        jumper(i);
        ++returned;
      } else {
        ++jumped;
      }
    }
    printf("longjmp: %d calls, %d jumped, %d returned\n", n, jumped, returned);
    return jumped == (n + 2) / 3 ? 0 : 1;
  }
  if (strcmp(mode, "tail") == 0) {
    long sum = 0;
    for (int i = 0; i < n; ++i) sum += tail_caller(i % 4 == 3 ? -i : i);
    printf("tail: %d calls, sum %ld\n", n, sum);
    return 0;
  }
  if (strcmp(mode, "exit") == 0) {
    for (int t = 0; t < n; ++t) {
      pthread_t th;
      if (pthread_create(&th, nullptr, run_exiter, reinterpret_cast<void*>(static_cast<long>(t))))
        return 1;
      pthread_join(th, nullptr);
    }
    printf("exit: %d threads, %d left by pthread_exit\n", n, n / 2);
    return 0;
  }
  if (strcmp(mode, "sleep") == 0) {
    // How long each call took, seen from outside it (stderr: it varies from run to run): a
    // probe's measurement lies between the requested sleep and this.
    int total = 0;
    for (int ms : {n, m}) {
      struct timespec t0, t1;
      clock_gettime(CLOCK_MONOTONIC, &t0);
      total += napper(ms);
      clock_gettime(CLOCK_MONOTONIC, &t1);
      fprintf(stderr, "napper(%d): %lld ns\n", ms,
              (t1.tv_sec - t0.tv_sec) * 1000000000LL + (t1.tv_nsec - t0.tv_nsec));
    }
    printf("sleep: %d ms and %d ms\n", n, m);
    return total == n + m ? 0 : 1;
  }
  if (strcmp(mode, "leaf") == 0) {
    long sum = 0;
    for (int i = 0; i < n; ++i) sum += leaf5(i, 1);
    printf("leaf: %d calls, sum %ld\n", n, sum);
    return 0;
  }
  if (strcmp(mode, "threads") == 0) {
    value_rounds = m;
    pthread_t th[64];
    if (n < 1 || n > 64) return 2;
    for (int t = 0; t < n; ++t) pthread_create(&th[t], nullptr, run_values, nullptr);
    long sum = 0;
    for (int t = 0; t < n; ++t) {
      void* r;
      pthread_join(th[t], &r);
      sum += reinterpret_cast<long>(r);
    }
    printf("threads: %d x %d calls, sum %ld\n", n, m, sum);
    return 0;
  }
  fprintf(stderr, "ret: unknown mode '%s'\n", mode);
  return 2;
}
