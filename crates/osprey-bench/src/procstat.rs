//! CPU and memory of the server process under test (`--pid`), read from
//! /proc on Linux, so a report shows what the load cost the server.

/// Clock ticks per second for /proc/PID/stat times; Linux fixes USER_HZ at 100
/// on every architecture Osprey runs on.
const TICKS_PER_S: f64 = 100.0;

/// User plus system CPU time of the process, in seconds.
pub fn cpu_seconds(pid: u32) -> Option<f64> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // Fields after the command name (which may hold spaces) start at state.
    let rest = stat.rsplit_once(')')?.1;
    let fields: Vec<&str> = rest.split_whitespace().collect();
    let utime: f64 = fields.get(11)?.parse().ok()?;
    let stime: f64 = fields.get(12)?.parse().ok()?;
    Some((utime + stime) / TICKS_PER_S)
}

/// Resident memory of the process, in MiB.
pub fn rss_mb(pid: u32) -> Option<f64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    let line = status.lines().find(|l| l.starts_with("VmRSS:"))?;
    let kb: f64 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kb / 1024.0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_its_own_process() {
        if !cfg!(target_os = "linux") {
            return;
        }
        let pid = std::process::id();
        assert!(cpu_seconds(pid).is_some_and(|s| s >= 0.0));
        assert!(rss_mb(pid).is_some_and(|m| m > 1.0));
        assert!(cpu_seconds(u32::MAX).is_none());
    }
}
