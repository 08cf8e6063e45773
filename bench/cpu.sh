# CPU accounting from /proc, sourced by bench/run.sh and bench/gateway.sh.

# cpu_ticks PID: CPU time (utime + stime) used so far by the process and its children, in clock ticks
# (getconf CLK_TCK a second).
cpu_ticks() {
  local pid t total=0
  for pid in "$1" $(ps -o pid= --ppid "$1"); do
    t=$(sed 's/^.*) //' "/proc/$pid/stat" 2>/dev/null | awk '{ print $12 + $13 }' || true)
    total=$((total + ${t:-0}))
  done
  echo "$total"
}

# own_ticks PID...: the same for the named processes alone (all their threads), summed.
own_ticks() {
  local pid t total=0
  for pid in "$@"; do
    t=$(sed 's/^.*) //' "/proc/$pid/stat" 2>/dev/null | awk '{ print $12 + $13 }' || true)
    total=$((total + ${t:-0}))
  done
  echo "$total"
}

cpu_stat() { # CPU: "busy total" clock ticks since boot on that CPU, busy = user + nice + system
  awk -v cpu="cpu$1" '$1 == cpu { print $2 + $3 + $4, $2 + $3 + $4 + $5 + $6 + $7 + $8 + $9 }' /proc/stat
}
