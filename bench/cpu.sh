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

# Wait (up to 60 s) for a second in which other processes use under 10% of CPU 0 and of CPU 1.
wait_quiet() {
  local start=$SECONDS b0 t0 b1 t1 c0 u0 c1 u1
  while [ $((SECONDS - start)) -lt 60 ]; do
    read -r b0 t0 < <(cpu_stat 0)
    read -r b1 t1 < <(cpu_stat 1)
    sleep 1
    read -r c0 u0 < <(cpu_stat 0)
    read -r c1 u1 < <(cpu_stat 1)
    if ((100 * (c0 - b0) < 10 * (u0 - t0) && 100 * (c1 - b1) < 10 * (u1 - t1))); then return 0; fi
  done
  log "  the CPUs stayed busy for 60 s; going on"
}
