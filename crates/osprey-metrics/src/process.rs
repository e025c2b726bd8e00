//! A process's CPU time, memory, threads and open files, read from /proc (Linux);
//! elsewhere nothing is reported. Shared by the server (its own figures) and the
//! load generator (the server under test).

use std::path::PathBuf;

/// One reading of a process.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct ProcessSample {
    /// User plus system CPU time since start.
    pub cpu_seconds: f64,
    pub rss_bytes: u64,
    pub threads: u64,
    pub open_fds: u64,
    pub max_fds: Option<u64>,
}

/// Clock ticks per second in /proc/<pid>/stat: USER_HZ, fixed at 100 by Linux's ABI.
const USER_HZ: f64 = 100.0;

/// Which process to read.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Proc {
    /// The calling process.
    This,
    Pid(u32),
}

impl Proc {
    fn path(self, file: &str) -> PathBuf {
        match self {
            Proc::This => PathBuf::from(format!("/proc/self/{file}")),
            Proc::Pid(pid) => PathBuf::from(format!("/proc/{pid}/{file}")),
        }
    }

    fn read(self, file: &str) -> Option<String> {
        std::fs::read_to_string(self.path(file)).ok()
    }

    /// User plus system CPU time, in seconds.
    pub fn cpu_seconds(self) -> Option<f64> {
        parse_stat(&self.read("stat")?).map(|(cpu, _)| cpu)
    }

    /// Resident memory, in bytes.
    pub fn rss_bytes(self) -> Option<u64> {
        status_kib(&self.read("status")?, "VmRSS:").map(|kib| kib * 1024)
    }

    /// Open file descriptors. Linux 6.2 and later give the count as the size of
    /// the `fd` directory, one `stat` however many files are open; older kernels
    /// report 0 there, and the directory is listed.
    pub fn open_fds(self) -> u64 {
        let dir = self.path("fd");
        match std::fs::metadata(&dir).map(|m| m.len()) {
            Ok(n) if n > 0 => n,
            _ => std::fs::read_dir(dir).map_or(0, |d| d.count() as u64),
        }
    }

    /// Every figure at once.
    pub fn sample(self) -> Option<ProcessSample> {
        let (cpu_seconds, threads) = parse_stat(&self.read("stat")?)?;
        let status = self.read("status")?;
        let rss_bytes = status_kib(&status, "VmRSS:").unwrap_or(0) * 1024;
        let open_fds = self.open_fds();
        let max_fds = self.read("limits").and_then(|l| parse_max_fds(&l));
        Some(ProcessSample {
            cpu_seconds,
            rss_bytes,
            threads,
            open_fds,
            max_fds,
        })
    }
}

/// CPU seconds (utime + stime) and thread count from /proc/<pid>/stat. The command
/// name may hold spaces and parentheses, so fields are counted after the last `)`.
fn parse_stat(stat: &str) -> Option<(f64, u64)> {
    let rest = &stat[stat.rfind(')')? + 1..];
    let f: Vec<&str> = rest.split_whitespace().collect();
    // After the name: state is field 3 of the man page, so field N is f[N - 3].
    let utime: f64 = f.get(11)?.parse().ok()?;
    let stime: f64 = f.get(12)?.parse().ok()?;
    let threads: u64 = f.get(17)?.parse().ok()?;
    Some(((utime + stime) / USER_HZ, threads))
}

fn status_kib(status: &str, key: &str) -> Option<u64> {
    status
        .lines()
        .find_map(|l| l.strip_prefix(key))?
        .split_whitespace()
        .next()?
        .parse()
        .ok()
}

fn parse_max_fds(limits: &str) -> Option<u64> {
    let line = limits.lines().find(|l| l.starts_with("Max open files"))?;
    line.split_whitespace().nth(3)?.parse().ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_stat_with_a_tricky_name() {
        let stat = "42 (my (odd) name) S 1 42 42 0 -1 4194560 100 0 0 0 250 50 0 0 20 0 7 0 1000 100000 500";
        assert_eq!(parse_stat(stat), Some((3.0, 7)));
        let limits = "Limit  Soft Limit Hard Limit Units\nMax open files            1024                 524288               files\n";
        assert_eq!(parse_max_fds(limits), Some(1024));
    }

    #[test]
    fn reads_this_process_and_others_by_pid() {
        if !cfg!(target_os = "linux") {
            return;
        }
        let s = Proc::This.sample().expect("a reading on Linux");
        assert!(
            s.rss_bytes > 0 && s.threads >= 1 && s.open_fds >= 1,
            "{s:?}"
        );
        let me = Proc::Pid(std::process::id());
        assert!(me.cpu_seconds().is_some_and(|c| c >= 0.0));
        assert!(me.rss_bytes().is_some_and(|b| b > 1024 * 1024));
        // Counted whichever way the kernel gives it (other tests may open and
        // close files meanwhile, so only a floor is certain).
        let files: Vec<_> = (0..8)
            .map(|_| std::fs::File::open("/proc/self/stat").expect("open"))
            .collect();
        let n = Proc::This.open_fds();
        drop(files);
        assert!(n >= 8, "{n} open files");
        assert!(Proc::Pid(u32::MAX).cpu_seconds().is_none());
        assert!(Proc::Pid(u32::MAX).sample().is_none());
    }
}
