//! What the benchmark reads back: the latency module's calls, the listener's log times,
//! a process's peak memory, and percentiles.

use std::io::{Read, Seek, SeekFrom};
use std::path::{Path, PathBuf};

/// One call the latency module recorded.
#[derive(Debug, Clone)]
pub struct Call {
    /// The DN as the listener spelled it.
    pub dn: String,
    /// Wall-clock time of the call, ns since the Unix epoch.
    pub ns: u128,
    /// The classic command letter.
    pub command: String,
}

/// Reads the latency module's output file from where it last stopped, so polling a file
/// of many calls stays cheap.
pub struct CallsTail {
    path: PathBuf,
    offset: u64,
    partial: String,
}

impl CallsTail {
    /// Starts at the file's current end: only calls made from now on are seen.
    pub fn from_end(path: &Path) -> CallsTail {
        let offset = std::fs::metadata(path).map_or(0, |m| m.len());
        CallsTail {
            path: path.to_owned(),
            offset,
            partial: String::new(),
        }
    }

    /// The complete lines appended since the last call.
    pub fn read_new(&mut self) -> Vec<Call> {
        let Ok(mut file) = std::fs::File::open(&self.path) else {
            return Vec::new();
        };
        if file.seek(SeekFrom::Start(self.offset)).is_err() {
            return Vec::new();
        }
        let mut bytes = Vec::new();
        let Ok(read) = file.read_to_end(&mut bytes) else {
            return Vec::new();
        };
        self.offset += read as u64;
        self.partial.push_str(&String::from_utf8_lossy(&bytes));
        let Some(end) = self.partial.rfind('\n') else {
            return Vec::new();
        };
        let complete: String = self.partial.drain(..=end).collect();
        complete.lines().filter_map(parse_call).collect()
    }
}

fn parse_call(line: &str) -> Option<Call> {
    let mut parts = line.rsplitn(3, '\t');
    let command = parts.next()?.to_owned();
    let ns = parts.next()?.parse().ok()?;
    let dn = parts.next()?.to_owned();
    Some(Call { dn, ns, command })
}

/// Now, in ns since the Unix epoch (comparable with [`Call::ns`] across processes).
pub fn now_ns() -> u128 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap_or_default()
        .as_nanos()
}

/// The time at the start of a log line (`2026-11-28T09:46:23.123456Z …`), in seconds
/// since the Unix epoch.
pub fn log_time(line: &str) -> Option<f64> {
    let stamp = line.split_whitespace().next()?.strip_suffix('Z')?;
    let (date, time) = stamp.split_once('T')?;
    let mut d = date.split('-').map(|p| p.parse::<i64>());
    let (y, m, day) = (d.next()?.ok()?, d.next()?.ok()?, d.next()?.ok()?);
    let mut t = time.split(':');
    let (h, min) = (
        t.next()?.parse::<f64>().ok()?,
        t.next()?.parse::<f64>().ok()?,
    );
    let s = t.next()?.parse::<f64>().ok()?;
    let days = days_from_civil(y, m, day) as f64;
    Some(days * 86_400.0 + h * 3_600.0 + min * 60.0 + s)
}

/// Days since 1970-01-01 of a proleptic Gregorian date (H. Hinnant's algorithm).
fn days_from_civil(y: i64, m: i64, d: i64) -> i64 {
    let y = if m <= 2 { y - 1 } else { y };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let mp = (m + 9) % 12;
    let doy = (153 * mp + 2) / 5 + d - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

/// `VmHWM` (peak resident set) and `VmRSS` of a process, in MiB.
pub fn memory_mib(pid: u32) -> Option<(f64, f64)> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    let field = |name: &str| -> Option<f64> {
        let line = status.lines().find(|l| l.starts_with(name))?;
        let kib: f64 = line.split_whitespace().nth(1)?.parse().ok()?;
        Some(kib / 1024.0)
    };
    Some((field("VmHWM:")?, field("VmRSS:")?))
}

/// The CPU time (user and system) a process has used so far, in seconds.
pub fn cpu_seconds(pid: u32) -> Option<f64> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // The fields after the command (which may hold spaces), from field 3 (state) on:
    // utime and stime are fields 14 and 15.
    let rest = &stat[stat.rfind(')')? + 2..];
    let mut fields = rest.split_whitespace().skip(11);
    let utime: f64 = fields.next()?.parse().ok()?;
    let stime: f64 = fields.next()?.parse().ok()?;
    // SAFETY: sysconf only reads a configuration value.
    let ticks = unsafe { libc::sysconf(libc::_SC_CLK_TCK) };
    (ticks > 0).then(|| (utime + stime) / ticks as f64)
}

/// The `p`-th percentile (0–100) of sorted values, nearest rank.
pub fn percentile(sorted: &[f64], p: f64) -> f64 {
    if sorted.is_empty() {
        return f64::NAN;
    }
    let rank = ((p / 100.0) * sorted.len() as f64).ceil() as usize;
    sorted[rank.clamp(1, sorted.len()) - 1]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_log_times_and_calls() {
        let t = log_time("2026-11-28T09:46:23.500000Z  INFO x").unwrap();
        assert_eq!(t, 1_795_859_183.5);
        let call = parse_call("cn=a b,dc=x\t17\tm").unwrap();
        assert_eq!(
            (call.dn.as_str(), call.ns, call.command.as_str()),
            ("cn=a b,dc=x", 17, "m")
        );
        assert_eq!(percentile(&[1.0, 2.0, 3.0, 4.0], 50.0), 2.0);
        assert_eq!(percentile(&[1.0, 2.0, 3.0, 4.0], 99.0), 4.0);
    }
}
