// calltree A B C [T [PAUSE_MS]]: a known call tree for `ustack` tests. Every path ends in leaf(long):
//   A times  main -> app::Runner::run(int) -> app::detail::walk<int>(int) -> leaf(long)
//   B times  main -> other_path() -> leaf(long)
//   C times  main -> app::recurse(int) -> app::recurse(int) -> app::recurse(int) -> leaf(long)
//            (recursion depth exactly RECURSE_DEPTH = 3)
// With T > 0 the paths run from T threads instead of main (each thread runs all of them, A, B
// and C times, so leaf is hit T*(A+B+C) times), and `main` is replaced in the stacks by
// app::worker(void*) under the thread start frames.
// With PAUSE_MS the program sleeps that long before running the paths and again after them (after
// calling app::paths_done(); with threads, the workers are the ones that stay alive), so a tracer can attach by pid first and print its maps while the
// process is still alive: bpftrace symbolizes user stacks from the live process and prints bare
// addresses once it has exited (and with -c it kills the child on exit() before printing).
// Prints one deterministic line ("calltree: leaf calls N, sum S") and exits 0; usage errors exit 2.
//
// Built twice: calltree_fp (frame pointers) and calltree_nofp (no frame pointers, .eh_frame
// only), so a stack walker is tested on both. Names live in namespaces and a template so the
// demangled forms differ from the mangled ones.
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <time.h>

// noipa: no inlining, cloning or interprocedural shortcuts, so every function of the tree keeps
// its own symbol and its own frame.
#define NODE __attribute__((noipa, noinline))

// Keeps a call a real call (not a tail jmp that would drop the caller's frame): the value the
// callee returned is "used" after it returns.
#define KEEP(v) asm volatile("" : "+r"(v))

static constexpr int RECURSE_DEPTH = 3;

// The leaf's side effect: the compiler cannot drop or merge calls to it.
static volatile long g_sink;

// The stack slot matters: GCC gives a function that touches no stack no frame-pointer prologue
// even under -fno-omit-frame-pointer, and calltree_fp wants every function of the tree to have
// one (so a probe after leaf's prologue sees a complete frame-pointer chain).
NODE long leaf(long x) {
  volatile long slot = x;
  g_sink = g_sink + slot;
  return x + 1;
}

NODE long other_path() {
  long r = leaf(2);
  KEEP(r);
  return r;
}

static void sleep_ms(long ms) {
  struct timespec nap = {ms / 1000, (ms % 1000) * 1000000};
  while (ms > 0 && nanosleep(&nap, &nap) != 0) {
  }
}

namespace app {

namespace detail {

template <typename T>
NODE T walk(T x) {
  T r = static_cast<T>(leaf(static_cast<long>(x)));
  KEEP(r);
  return r;
}

// The only instantiation: walk<int>.
template int walk<int>(int);

}  // namespace detail

class Runner {
 public:
  NODE int run(int x);

 private:
  int runs_ = 0;
};

int Runner::run(int x) {
  int r = detail::walk<int>(x);
  KEEP(r);
  runs_ += 1;
  return r;
}

NODE long recurse(int depth) {
  long r = depth <= 1 ? leaf(3) : recurse(depth - 1);
  KEEP(r);
  return r;
}

struct Counts {
  long a, b, c;
  long sum;  // what the calls returned, so the output proves they ran
  // Threads only: all workers and main meet here once the paths ran, then the workers stay
  // alive pause_ms longer (so their stacks can still be symbolized by a live-process tracer).
  pthread_barrier_t* done;
  long pause_ms;
};

// Inlined into its callers on purpose: the stacks show main (or app::worker) right under the
// paths, with no driver frame in between.
__attribute__((always_inline)) inline void drive(Counts& counts) {
  Runner runner;
  for (long i = 0; i < counts.a; ++i) counts.sum += runner.run(1);
  for (long i = 0; i < counts.b; ++i) counts.sum += other_path();
  for (long i = 0; i < counts.c; ++i) counts.sum += recurse(RECURSE_DEPTH);
}

NODE void paths_done() { asm volatile(""); }

NODE void* worker(void* arg) {
  Counts& counts = *static_cast<Counts*>(arg);
  drive(counts);
  pthread_barrier_wait(counts.done);
  sleep_ms(counts.pause_ms);
  return nullptr;
}

}  // namespace app

static long parse(const char* text) {
  char* end = nullptr;
  long value = strtol(text, &end, 10);
  if (*text == '\0' || *end != '\0' || value < 0 || value > 100000000) {
    fprintf(stderr, "calltree: bad count '%s'\n", text);
    exit(2);
  }
  return value;
}

int main(int argc, char** argv) {
  if (argc < 4 || argc > 6) {
    fprintf(stderr, "usage: calltree A B C [THREADS [PAUSE_MS]]\n");
    return 2;
  }
  app::Counts counts{parse(argv[1]), parse(argv[2]), parse(argv[3]), 0, nullptr, 0};
  long threads = argc >= 5 ? parse(argv[4]) : 0;
  long pause_ms = argc == 6 ? parse(argv[5]) : 0;
  if (threads > 64) {
    fprintf(stderr, "calltree: at most 64 threads\n");
    return 2;
  }
  sleep_ms(pause_ms);
  long total_calls = 0;
  long total_sum = 0;
  if (threads == 0) {
    app::drive(counts);
    total_calls = counts.a + counts.b + counts.c;
    total_sum = counts.sum;
    app::paths_done();
    sleep_ms(pause_ms);
  } else {
    pthread_t ids[64];
    app::Counts per_thread[64];
    pthread_barrier_t done;
    pthread_barrier_init(&done, nullptr, static_cast<unsigned>(threads + 1));
    for (long t = 0; t < threads; ++t) {
      per_thread[t] = app::Counts{counts.a, counts.b, counts.c, 0, &done, pause_ms};
      if (pthread_create(&ids[t], nullptr, app::worker, &per_thread[t]) != 0) {
        fprintf(stderr, "calltree: pthread_create failed\n");
        return 1;
      }
    }
    pthread_barrier_wait(&done);
    app::paths_done();
    for (long t = 0; t < threads; ++t) {
      pthread_join(ids[t], nullptr);
      total_calls += per_thread[t].a + per_thread[t].b + per_thread[t].c;
      total_sum += per_thread[t].sum;
    }
    pthread_barrier_destroy(&done);
  }
  printf("calltree: leaf calls %ld, sum %ld\n", total_calls, total_sum);
  return 0;
}
