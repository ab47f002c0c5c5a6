#!/bin/sh
# How often the kernel has throttled the cpu-stressor's container: reads the CFS counters of its
# cgroup (cgroup v2: /sys/fs/cgroup/cpu.stat; v1: /sys/fs/cgroup/cpu/cpu.stat) and prints
# "periods P, throttled T (N%)": in N% of the 100 ms periods in which it wanted to run, it used
# up its quota and had to wait.
set -eu
kubectl exec deployment/cpu-stressor -c stress -- \
  sh -c 'cat /sys/fs/cgroup/cpu.stat 2>/dev/null || cat /sys/fs/cgroup/cpu/cpu.stat' |
  awk '$1 == "nr_periods" { p = $2 } $1 == "nr_throttled" { t = $2 }
       END { printf "periods %d, throttled %d (%d%%)\n", p, t, p ? 100 * t / p : 0 }'
