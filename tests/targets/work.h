/* The probed function shared by the C targets. noipa keeps GCC from inlining, cloning or
 * constant-propagating it, so every call in the source is a real call at run time. */
#ifndef DPROBE_TARGETS_WORK_H
#define DPROBE_TARGETS_WORK_H

int work(int i);

/* Sum of work(i) for i in [0, n): what a correct run prints. */
long long work_sum(int n);

#endif
