/* libplugin.so: the library plugin_host dlopen()s. Its constructor calls plugin_entry() once,
 * so a probe armed only after the constructor ran (too late: some of the library's code ran
 * unprobed) misses one call per load. */
#include <stdio.h>

__attribute__((noipa)) int plugin_entry(int i) { return 2 * i + 1; }

__attribute__((constructor)) static void plugin_init(void) {
  if (plugin_entry(0) != 1) fputs("libplugin: bad constructor call\n", stderr);
}
