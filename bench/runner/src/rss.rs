//! `rss` mode: memory of the launcher processes that stay alive while the
//! sandboxed payload runs.
//!
//! Each command's payload is a sleeping process (e.g. `sleep 1`). Once the
//! payload has exec'd, every other process in the spawned tree is a launcher
//! process (the outer launcher, a monitor, a pid-1 init inside the sandbox,
//! ...). Their VmRSS and VmHWM (peak RSS) are read from /proc/PID/status, and
//! Pss from /proc/PID/smaps_rollup where readable.

use std::collections::HashMap;
use std::time::Duration;

use crate::json::{J, obj};
use crate::proc::{self, Capture};
use crate::spec::Entry;
use crate::stats;
use crate::timing::met;

#[derive(Clone, Debug)]
pub struct ProcRow {
    pub pid: i32,
    pub depth: usize,
    pub name: String,
    pub role: String,
    pub rss_kib: u64,
    pub hwm_kib: u64,
    pub pss_kib: Option<u64>,
}

struct Status {
    name: String,
    rss: u64,
    hwm: u64,
    nspid: Vec<i32>,
}

fn kib(v: &str) -> u64 {
    v.split_whitespace()
        .next()
        .and_then(|n| n.parse().ok())
        .unwrap_or(0)
}

fn read_status(pid: i32) -> Option<Status> {
    let text = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    let mut s = Status {
        name: String::new(),
        rss: 0,
        hwm: 0,
        nspid: Vec::new(),
    };
    for line in text.lines() {
        let Some((k, v)) = line.split_once(':') else {
            continue;
        };
        match k {
            "Name" => s.name = v.trim().to_string(),
            "VmRSS" => s.rss = kib(v),
            "VmHWM" => s.hwm = kib(v),
            "NSpid" => {
                s.nspid = v
                    .split_whitespace()
                    .filter_map(|x| x.parse().ok())
                    .collect()
            }
            _ => {}
        }
    }
    Some(s)
}

fn read_pss(pid: i32) -> Option<u64> {
    let text = std::fs::read_to_string(format!("/proc/{pid}/smaps_rollup")).ok()?;
    text.lines().find_map(|l| l.strip_prefix("Pss:").map(kib))
}

/// pid -> ppid for every process currently in /proc.
fn parent_map() -> HashMap<i32, i32> {
    let mut m = HashMap::new();
    let Ok(dir) = std::fs::read_dir("/proc") else {
        return m;
    };
    for ent in dir.flatten() {
        let Some(pid) = ent.file_name().to_str().and_then(|s| s.parse::<i32>().ok()) else {
            continue;
        };
        if let Ok(stat) = std::fs::read_to_string(format!("/proc/{pid}/stat")) {
            // Fields after the last ')' are: state ppid ...
            if let Some(rest) = stat.rsplit_once(')').map(|x| x.1)
                && let Some(ppid) = rest.split_whitespace().nth(1).and_then(|p| p.parse().ok())
            {
                m.insert(pid, ppid);
            }
        }
    }
    m
}

/// The process tree under `root`, breadth-first, as (pid, ppid, depth).
fn tree(root: i32) -> Vec<(i32, i32, usize)> {
    let parents = parent_map();
    let mut children: HashMap<i32, Vec<i32>> = HashMap::new();
    for (&pid, &ppid) in &parents {
        children.entry(ppid).or_default().push(pid);
    }
    let mut out = vec![(root, parents.get(&root).copied().unwrap_or(0), 0)];
    let mut i = 0;
    while i < out.len() {
        let (pid, _, d) = out[i];
        if let Some(c) = children.get(&pid) {
            let mut c = c.clone();
            c.sort();
            out.extend(c.into_iter().map(|p| (p, pid, d + 1)));
        }
        i += 1;
    }
    out
}

/// Find the payload (a process named `payload` without children, below the
/// launcher) in the tree under root.
fn find_payload(root: i32, payload: &str) -> Option<i32> {
    let t = tree(root);
    t.iter().skip(1).find_map(|&(pid, _, _)| {
        let leaf = !t.iter().any(|&(_, ppid, _)| ppid == pid);
        (leaf && read_status(pid)?.name == payload).then_some(pid)
    })
}

pub struct Sample {
    pub procs: Vec<ProcRow>,
    pub payload_pid: i32,
}

impl Sample {
    pub fn total_rss(&self) -> u64 {
        self.procs.iter().map(|p| p.rss_kib).sum()
    }
    pub fn total_hwm(&self) -> u64 {
        self.procs.iter().map(|p| p.hwm_kib).sum()
    }
    pub fn total_pss(&self) -> Option<u64> {
        self.procs.iter().map(|p| p.pss_kib).sum()
    }
}

fn measure_once(
    e: &Entry,
    devnull: i32,
    cap: &Capture,
    payload: &str,
    settle: Duration,
    own_ns_depth: usize,
) -> Result<Sample, String> {
    let cmd = e.cmd.as_ref().map_err(|r| r.clone())?;
    cap.reset().map_err(|e| e.to_string())?;
    let root = proc::spawn(cmd, devnull, devnull, cap.fd()).map_err(|e| format!("spawn: {e}"))?;
    let deadline = proc::now_ns() + 5_000_000_000;
    let mut found = None;
    while proc::now_ns() < deadline {
        if let Some(p) = find_payload(root, payload) {
            found = Some(p);
            break;
        }
        // The launcher exited before the payload showed up?
        let mut st = 0;
        // SAFETY: WNOHANG poll of our own child.
        if unsafe { libc::waitpid(root, &mut st, libc::WNOHANG) } == root {
            let (code, signal) = if libc::WIFSIGNALED(st) {
                (128 + libc::WTERMSIG(st), Some(libc::WTERMSIG(st)))
            } else {
                (libc::WEXITSTATUS(st), None)
            };
            let exit = proc::Exit {
                code,
                signal,
                user_s: 0.0,
                sys_s: 0.0,
            };
            return Err(format!(
                "launcher exited before the payload ran: {}",
                proc::failure_message(&cap.contents(), &exit)
            ));
        }
        std::thread::sleep(Duration::from_millis(2));
    }
    let result = match found {
        None => Err(format!(
            "no `{payload}` process appeared under the launcher within 5 s"
        )),
        Some(payload_pid) => {
            std::thread::sleep(settle);
            let mut procs = Vec::new();
            for (pid, _, depth) in tree(root) {
                if pid == payload_pid {
                    continue;
                }
                let Some(st) = read_status(pid) else { continue };
                let inner = st.nspid.len() > own_ns_depth;
                let role = match (depth, inner) {
                    (0, _) => "outer launcher".to_string(),
                    (_, true) => format!("inside sandbox (pid {})", st.nspid.last().unwrap_or(&0)),
                    (_, false) => "outside sandbox".to_string(),
                };
                procs.push(ProcRow {
                    pid,
                    depth,
                    name: st.name,
                    role,
                    rss_kib: st.rss,
                    hwm_kib: st.hwm,
                    pss_kib: read_pss(pid),
                });
            }
            Ok(Sample { procs, payload_pid })
        }
    };
    let waited = proc::wait(root).map_err(|e| format!("wait: {e}"))?.1;
    let sample = result?;
    if !waited.ok() {
        return Err(proc::failure_message(&cap.contents(), &waited));
    }
    Ok(sample)
}

pub struct Outcome {
    pub samples: Vec<Sample>,
    pub failed: Option<String>,
}

pub fn run(entries: &[Entry], payload: &str, settle: Duration) -> Result<Vec<Outcome>, String> {
    let devnull = proc::open_devnull().map_err(|e| format!("/dev/null: {e}"))?;
    let cap = Capture::new().map_err(|e| format!("memfd_create: {e}"))?;
    let own = read_status(std::process::id() as i32)
        .map(|s| s.nspid.len())
        .unwrap_or(1);
    let mut out: Vec<Outcome> = entries
        .iter()
        .map(|e| Outcome {
            samples: Vec::new(),
            failed: e.cmd.as_ref().err().cloned(),
        })
        .collect();
    let reps = entries.iter().map(|e| e.runs).max().unwrap_or(0);
    let warm = entries.iter().map(|e| e.warmup).max().unwrap_or(0);
    for k in 0..warm + reps {
        for (i, e) in entries.iter().enumerate() {
            let measuring = k >= warm;
            let active = if measuring {
                k - warm < e.runs
            } else {
                k < e.warmup
            };
            if out[i].failed.is_some() || !active {
                continue;
            }
            match measure_once(e, devnull.0, &cap, payload, settle, own) {
                Ok(s) if measuring => out[i].samples.push(s),
                Ok(_) => {}
                Err(msg) => out[i].failed = Some(msg),
            }
        }
    }
    Ok(out)
}

fn median_u(xs: impl Iterator<Item = u64>) -> Option<f64> {
    stats::median(&xs.map(|x| x as f64).collect::<Vec<_>>())
}

pub struct Opts {
    pub reference: String,
    pub target: Option<String>,
}

pub fn report(entries: &[Entry], out: &[Outcome], o: &Opts) -> usize {
    let lw = entries
        .iter()
        .map(|e| e.label.chars().count())
        .max()
        .unwrap_or(10)
        .max(10);
    let med = |i: usize| -> Option<(f64, f64)> {
        let s = &out[i].samples;
        Some((
            median_u(s.iter().map(Sample::total_rss))?,
            median_u(s.iter().map(Sample::total_hwm))?,
        ))
    };
    let ref_idx = entries.iter().position(|e| e.label == o.reference);
    let reference = ref_idx.and_then(med);
    println!();
    println!(
        "  {:<lw$}  {:<34}  {:>9}  {:>9}  {:>9}  {:>13}",
        "command", "launcher process", "VmRSS KiB", "VmHWM KiB", "Pss KiB", "x bwrap (RSS)"
    );
    let mut failures = 0;
    for (i, e) in entries.iter().enumerate() {
        if let Some(f) = &out[i].failed {
            failures += 1;
            println!("  {:<lw$}  FAILED: {f}", e.label);
            continue;
        }
        let s = &out[i].samples;
        let Some((rss, hwm)) = med(i) else {
            failures += 1;
            println!("  {:<lw$}  FAILED: no samples", e.label);
            continue;
        };
        // Per-process breakdown: medians by position when every repetition
        // had the same tree shape, otherwise the last repetition.
        let shape = |x: &Sample| {
            x.procs
                .iter()
                .map(|p| (p.depth, p.name.clone()))
                .collect::<Vec<_>>()
        };
        let same = s.windows(2).all(|w| shape(&w[0]) == shape(&w[1]));
        let last = s.last().expect("samples");
        for (j, p) in last.procs.iter().enumerate() {
            let (r, h, ps) = if same {
                (
                    median_u(s.iter().map(|x| x.procs[j].rss_kib)).unwrap_or(0.0),
                    median_u(s.iter().map(|x| x.procs[j].hwm_kib)).unwrap_or(0.0),
                    if s.iter().all(|x| x.procs[j].pss_kib.is_some()) {
                        median_u(s.iter().filter_map(|x| x.procs[j].pss_kib))
                    } else {
                        None
                    },
                )
            } else {
                (
                    p.rss_kib as f64,
                    p.hwm_kib as f64,
                    p.pss_kib.map(|v| v as f64),
                )
            };
            let who = format!("{} [{}]", p.name, p.role);
            println!(
                "  {:<lw$}  {:<34}  {:>9.0}  {:>9.0}  {:>9}",
                if j == 0 { e.label.as_str() } else { "" },
                who,
                r,
                h,
                ps.map(|v| format!("{v:.0}")).unwrap_or_else(|| "-".into())
            );
        }
        let pss = if s.iter().all(|x| x.total_pss().is_some()) {
            median_u(s.iter().filter_map(Sample::total_pss)).map(|v| format!("{v:.0}"))
        } else {
            None
        };
        let ratio = reference
            .map(|(rr, _)| format!("{:.2}", rss / rr))
            .unwrap_or_else(|| "-".into());
        println!(
            "  {:<lw$}  {:<34}  {:>9.0}  {:>9.0}  {:>9}  {:>13}",
            "",
            format!(
                "total ({} processes, median of {})",
                last.procs.len(),
                s.len()
            ),
            rss,
            hwm,
            pss.unwrap_or_else(|| "-".into()),
            ratio
        );
    }
    if let Some(t) = &o.target {
        let ti = entries.iter().position(|e| &e.label == t).and_then(med);
        match (ti, reference) {
            (Some((tr, th)), Some((rr, rh))) => println!(
                "  target: {t} waiting VmRSS {tr:.0} KiB vs {} {rr:.0} KiB ({:.2}x, goal <= 1.00: {}); peak VmHWM {th:.0} vs {rh:.0} KiB ({:.2}x)",
                o.reference,
                tr / rr,
                met(tr <= rr),
                th / rh
            ),
            _ => println!("  target: {t}: not evaluated (a row it needs failed)"),
        }
    }
    failures
}

pub fn to_json(entries: &[Entry], out: &[Outcome]) -> J {
    let results = entries
        .iter()
        .zip(out)
        .map(|(e, r)| {
            let reps = r
                .samples
                .iter()
                .map(|s| {
                    let procs = s
                        .procs
                        .iter()
                        .map(|p| {
                            obj(vec![
                                ("name", J::Str(p.name.clone())),
                                ("role", J::Str(p.role.clone())),
                                ("depth", J::Int(p.depth as i64)),
                                ("pid", J::Int(p.pid as i64)),
                                ("vmrss_kib", J::Int(p.rss_kib as i64)),
                                ("vmhwm_kib", J::Int(p.hwm_kib as i64)),
                                (
                                    "pss_kib",
                                    p.pss_kib.map(|v| J::Int(v as i64)).unwrap_or(J::Null),
                                ),
                            ])
                        })
                        .collect();
                    obj(vec![
                        ("payload_pid", J::Int(s.payload_pid as i64)),
                        ("total_vmrss_kib", J::Int(s.total_rss() as i64)),
                        ("total_vmhwm_kib", J::Int(s.total_hwm() as i64)),
                        ("processes", J::Arr(procs)),
                    ])
                })
                .collect();
            let mut f = vec![
                (
                    "command",
                    J::Str(
                        e.cmd
                            .as_ref()
                            .map(|c| c.display())
                            .unwrap_or_else(|_| e.label.clone()),
                    ),
                ),
                ("launcher", J::Str(e.label.clone())),
                ("repetitions", J::Arr(reps)),
            ];
            if let Some(x) = &r.failed {
                f.push(("failed", J::Str(x.clone())));
            }
            obj(f)
        })
        .collect();
    obj(vec![("results", J::Arr(results))])
}
