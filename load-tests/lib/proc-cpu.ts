/** CPU time of a process, all its threads (Linux /proc), to tell what one ingested event costs whatever else runs on the machine. */
import fs from 'node:fs';

/** Clock ticks per second of /proc/<pid>/stat (USER_HZ: 100 on every Linux tally runs on). */
const TICKS_PER_S = 100;

/**
 * Two adjacent clock-tick fields of a /proc/<pid>/stat file, summed, in seconds; undefined off
 * Linux or when the process is gone. Fields are counted after the command (which may hold spaces)
 * in parentheses: 11, 12 are utime and stime; 13, 14 cutime and cstime (the waited-for children).
 */
function statSeconds(file: string, first: number): number | undefined {
  try {
    const stat = fs.readFileSync(file, 'utf8');
    const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
    return (Number(fields[first]) + Number(fields[first + 1])) / TICKS_PER_S;
  } catch {
    return undefined;
  }
}

/** utime + stime of `pid` in seconds; undefined off Linux or when the process is gone. */
export function cpuSeconds(pid: number | undefined): number | undefined {
  return pid === undefined ? undefined : statSeconds(`/proc/${pid}/stat`, 11);
}

/**
 * CPU seconds of this process's children that have exited and been waited for (cutime + cstime of
 * /proc/self/stat): across a k6 run during which no other child exits, what k6 used.
 */
export function reapedChildrenCpuSeconds(): number | undefined {
  return statSeconds('/proc/self/stat', 13);
}

/** The pid in a pid file (the local stack's broker), undefined without one. */
export function pidFromFile(file: string): number | undefined {
  try {
    const pid = Number(fs.readFileSync(file, 'utf8').trim());
    return Number.isInteger(pid) && pid > 0 ? pid : undefined;
  } catch {
    return undefined;
  }
}
