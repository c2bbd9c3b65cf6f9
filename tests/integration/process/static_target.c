// A statically linked program: no interpreter, execution starts at AT_ENTRY.
#include <stdio.h>

int main(void) {
  printf("static ok\n");
  return 4;
}
