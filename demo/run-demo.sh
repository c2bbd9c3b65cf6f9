#!/usr/bin/env bash
# `make run`: probes the bundled demo program with the bundled script, and says what happened.
set -euo pipefail
build=$(cd "${1:-build}" && pwd)
here=$(cd "$(dirname "$0")" && pwd)
cd "$build/demo"

echo "== The demo program alone:"
./shop 200
echo
echo "== The same program under dprobe, with demo/demo.bt:"
echo "   $ dprobe demo/demo.bt -c './shop 200'"
echo
"$build/tools/dprobe/dprobe" "$here/demo.bt" -c './shop 200'
echo
echo "The shop printed the same line as before: probes do not change what a program does."
echo "The @maps are counts per key, printed at exit as bpftrace prints them."
echo "Try: $build/tools/dprobe/dprobe -v -e 'uprobe:./shop:apply_discount { @ = count(); }' -c './shop 1000'"
