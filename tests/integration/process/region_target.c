// Target for the shared-region and code-mapping tests. Reads commands from stdin:
//   "peek ADDR"        prints the 64-bit value at hex ADDR (decimal)
//   "poke ADDR VALUE"  stores decimal VALUE at hex ADDR, prints "ok"
//   "run ADDR"         calls int f(void) at hex ADDR, prints "ran=RESULT"
//   "exit"             exits with status 5
#include <inttypes.h>
#include <stdio.h>
#include <string.h>

int main(void) {
  setvbuf(stdout, NULL, _IOLBF, 0);
  printf("ready\n");
  char line[128];
  while (fgets(line, sizeof line, stdin) != NULL) {
    uint64_t address = 0;
    uint64_t value = 0;
    if (sscanf(line, "peek %" SCNx64, &address) == 1) {
      printf("%" PRIu64 "\n", *(volatile uint64_t*)(uintptr_t)address);
    } else if (sscanf(line, "poke %" SCNx64 " %" SCNu64, &address, &value) == 2) {
      *(volatile uint64_t*)(uintptr_t)address = value;
      printf("ok\n");
    } else if (sscanf(line, "run %" SCNx64, &address) == 1) {
      int (*f)(void) = (int (*)(void))(uintptr_t)address;
      printf("ran=%d\n", f());
    } else if (strncmp(line, "exit", 4) == 0) {
      return 5;
    }
  }
  return 3;
}
