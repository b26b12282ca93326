//! The machine a report was made on (Linux `/proc` where readable) and UTC dates without a
//! calendar dependency.

/// What the report says about the host.
#[derive(Debug, Clone, PartialEq)]
pub struct Machine {
    /// CPU model name (`/proc/cpuinfo`), when readable.
    pub cpu: Option<String>,
    /// Logical cores available to this process.
    pub cores: usize,
    /// Total memory in GiB (`/proc/meminfo`), when readable.
    pub memory_gib: Option<f64>,
    /// `std::env::consts::{OS, ARCH}`.
    pub os_arch: String,
}

impl Machine {
    /// The current machine.
    pub fn current() -> Self {
        let cpuinfo = std::fs::read_to_string("/proc/cpuinfo").unwrap_or_default();
        let meminfo = std::fs::read_to_string("/proc/meminfo").unwrap_or_default();
        Self {
            cpu: cpu_model(&cpuinfo),
            cores: std::thread::available_parallelism().map_or(1, |n| n.get()),
            memory_gib: mem_total_kib(&meminfo).map(|k| k as f64 / (1024.0 * 1024.0)),
            os_arch: format!("{} {}", std::env::consts::OS, std::env::consts::ARCH),
        }
    }

    /// "Intel(R) Xeon(R) …, 2 cores, 23.5 GiB, linux x86_64".
    pub fn describe(&self) -> String {
        let mut parts = vec![self
            .cpu
            .clone()
            .unwrap_or_else(|| "CPU model unknown".into())];
        parts.push(format!("{} cores", self.cores));
        if let Some(g) = self.memory_gib {
            parts.push(format!("{g:.1} GiB RAM"));
        }
        parts.push(self.os_arch.clone());
        parts.join(", ")
    }
}

/// The first `model name` of a `/proc/cpuinfo` text.
fn cpu_model(cpuinfo: &str) -> Option<String> {
    cpuinfo.lines().find_map(|l| {
        let (k, v) = l.split_once(':')?;
        (k.trim() == "model name").then(|| v.trim().to_string())
    })
}

/// `MemTotal` of a `/proc/meminfo` text, in KiB.
fn mem_total_kib(meminfo: &str) -> Option<u64> {
    let rest = meminfo.lines().find_map(|l| l.strip_prefix("MemTotal:"))?;
    rest.split_whitespace().next()?.parse().ok()
}

/// `YYYY-MM-DD HH:MM:SS UTC` of a Unix time in seconds (proleptic Gregorian calendar; the
/// days-to-civil algorithm of H. Hinnant, "chrono-Compatible Low-Level Date Algorithms").
pub fn utc(unix: i64) -> String {
    let (days, secs) = (unix.div_euclid(86_400), unix.rem_euclid(86_400));
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    format!(
        "{year:04}-{month:02}-{day:02} {:02}:{:02}:{:02} UTC",
        secs / 3600,
        secs / 60 % 60,
        secs % 60
    )
}

/// Seconds since the Unix epoch now.
pub fn now_unix() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs() as i64)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn utc_dates() {
        assert_eq!(utc(0), "1970-01-01 00:00:00 UTC");
        assert_eq!(utc(951_782_400), "2000-02-29 00:00:00 UTC");
        assert_eq!(utc(1_764_118_923), "2025-11-26 01:02:03 UTC");
        assert_eq!(utc(-1), "1969-12-31 23:59:59 UTC");
    }

    #[test]
    fn proc_files() {
        let cpu = "processor\t: 0\nvendor_id\t: GenuineIntel\nmodel name\t: Test CPU @ 2.0GHz\n";
        assert_eq!(cpu_model(cpu).as_deref(), Some("Test CPU @ 2.0GHz"));
        assert_eq!(cpu_model("processor: 0\n"), None);
        assert_eq!(
            mem_total_kib("MemTotal:       24576000 kB\nMemFree: 1 kB\n"),
            Some(24_576_000)
        );
        assert_eq!(mem_total_kib(""), None);
    }
}
