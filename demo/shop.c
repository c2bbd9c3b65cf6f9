// The demo target: a tiny "shop" that processes orders. It knows nothing about dprobe.
#include <stdio.h>
#include <stdlib.h>

__attribute__((noinline)) int apply_discount(int amount) {
  __asm__ volatile("");
  return amount - amount / 10;
}

__attribute__((noinline)) int process_order(int customer, int amount) {
  __asm__ volatile("");
  if (amount > 400) amount = apply_discount(amount);
  return amount;
}

int main(int argc, char** argv) {
  int orders = argc > 1 ? atoi(argv[1]) : 200;
  unsigned seed = 42;
  long revenue = 0;
  for (int i = 0; i < orders; ++i) {
    seed = seed * 1103515245u + 12345u;
    int customer = (int)((seed >> 16) % 4) + 1;
    int amount = (int)((seed >> 8) % 600) + 1;
    revenue += process_order(customer, amount);
  }
  printf("shop: %d orders, revenue %ld\n", orders, revenue);
  return 0;
}
