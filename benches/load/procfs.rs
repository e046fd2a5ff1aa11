//! Memory and CPU of the processes under test, from `/proc`, so the report
//! can say how much of the 2 cores each one used during a run.

use std::{fs, time::Instant};

/// Clock ticks per second of `/proc/<pid>/stat` times; 100 on every Linux
/// this runs on (`getconf CLK_TCK`).
const TICKS_PER_SECOND: f64 = 100.0;

/// `VmRSS` and `VmHWM` of a process, in KiB.
#[derive(Debug, Clone, Copy, Default)]
pub struct Memory {
    /// Resident set now.
    pub rss_kib: u64,
    /// Peak resident set since the process started.
    pub hwm_kib: u64,
}

/// Reads `/proc/<pid>/status`; `None` once the process is gone.
pub fn memory(pid: u32) -> Option<Memory> {
    let status = fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    let field = |name: &str| {
        status
            .lines()
            .find_map(|l| l.strip_prefix(name))
            .and_then(|rest| rest.split_whitespace().next())
            .and_then(|kib| kib.parse().ok())
    };
    Some(Memory {
        rss_kib: field("VmRSS:")?,
        hwm_kib: field("VmHWM:")?,
    })
}

/// user + system CPU seconds of a process so far, all threads.
fn cpu_seconds(pid: &str) -> Option<f64> {
    let stat = fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // The command name may contain spaces; fields resume after its ')'.
    let rest = &stat[stat.rfind(')')? + 2..];
    let fields: Vec<&str> = rest.split_whitespace().collect();
    // utime and stime are fields 14 and 15 of stat, 12 and 13 after ')'.
    let utime: f64 = fields.get(11)?.parse().ok()?;
    let stime: f64 = fields.get(12)?.parse().ok()?;
    Some((utime + stime) / TICKS_PER_SECOND)
}

/// Busy CPU seconds of the whole machine so far, all cores: everything in
/// the first line of `/proc/stat` but idle and iowait.
fn machine_seconds() -> Option<f64> {
    let stat = fs::read_to_string("/proc/stat").ok()?;
    let ticks: Vec<f64> = stat
        .lines()
        .next()?
        .split_whitespace()
        .skip(1)
        .take(8)
        .map(|t| t.parse().unwrap_or(0.0))
        .collect();
    // user nice system idle iowait irq softirq steal
    let busy: f64 = ticks.iter().sum::<f64>() - ticks.get(3)? - ticks.get(4)?;
    Some(busy / TICKS_PER_SECOND)
}

/// CPU used by named processes between [`CpuMeter::start`] and
/// [`CpuMeter::cores`]; the machine is shared, so what the rest of it used
/// in the meantime is reported as `others`.
#[derive(Debug)]
pub struct CpuMeter {
    started: Instant,
    at_start: Vec<(String, String, Option<f64>)>,
    machine_at_start: Option<f64>,
}

impl CpuMeter {
    /// Starts measuring `(name, pid)` pairs; `self` is this process.
    pub fn start(processes: &[(String, String)]) -> CpuMeter {
        CpuMeter {
            started: Instant::now(),
            at_start: processes
                .iter()
                .map(|(name, pid)| (name.clone(), pid.clone(), cpu_seconds(pid)))
                .collect(),
            machine_at_start: machine_seconds(),
        }
    }

    /// Average cores each process used since `start` (1.0 = one core busy).
    pub fn cores(&self) -> Vec<(String, Option<f64>)> {
        let wall = self.started.elapsed().as_secs_f64().max(1e-9);
        let mut cores: Vec<(String, Option<f64>)> = self
            .at_start
            .iter()
            .map(|(name, pid, before)| {
                let used = before.zip(cpu_seconds(pid)).map(|(a, b)| (b - a) / wall);
                (name.clone(), used)
            })
            .collect();
        let machine = self
            .machine_at_start
            .zip(machine_seconds())
            .map(|(a, b)| (b - a) / wall);
        let ours: f64 = cores.iter().filter_map(|(_, c)| *c).sum();
        cores.push(("others".to_owned(), machine.map(|m| (m - ours).max(0.0))));
        cores
    }
}
