//! Interleaved timing: the `launch` and `seccomp` modes.
//!
//! All commands of a spec are measured in rounds. Each round runs every
//! command once (A B C D ...), starting one position later than the previous
//! round, so slow drift of the machine (thermal, other load, page cache)
//! spreads over all commands equally instead of biasing whichever ran last.
//! A command with fewer runs than the others (firejail) takes part in evenly
//! spaced rounds over the whole measurement.

use crate::json::{self, J, obj};
use crate::proc::{self, Capture, Sample};
use crate::spec::{self, Entry};
use crate::stats::{self, Summary};

pub struct Outcome {
    pub samples: Vec<Sample>,
    /// Payload's own timing (seconds), parsed from its stderr (seccomp mode).
    pub inner: Vec<f64>,
    pub failed: Option<String>,
}

/// Does a command with `runs` runs take part in round `k` of `total` rounds?
fn takes_part(k: usize, runs: usize, total: usize) -> bool {
    (k + 1) * runs / total > k * runs / total
}

type InnerParser = fn(&str) -> Option<f64>;

pub fn interleave(entries: &[Entry], inner: Option<InnerParser>) -> Result<Vec<Outcome>, String> {
    let devnull = proc::open_devnull().map_err(|e| format!("/dev/null: {e}"))?;
    let caps = entries
        .iter()
        .map(|_| Capture::new())
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| format!("memfd_create: {e}"))?;
    let mut out: Vec<Outcome> = entries
        .iter()
        .map(|e| Outcome {
            samples: Vec::new(),
            inner: Vec::new(),
            failed: e.cmd.as_ref().err().cloned(),
        })
        .collect();

    // One run; on failure the command is dropped from the rest of the run.
    let run = |i: usize, out: &mut Vec<Outcome>, phase: &str, record: bool| {
        let Ok(cmd) = &entries[i].cmd else { return };
        match proc::run_timed(cmd, devnull.0, &caps[i]) {
            Err(e) => out[i].failed = Some(format!("cannot spawn {}: {e}", cmd.words[0])),
            Ok(s) if !s.exit.ok() => {
                let msg = proc::failure_message(&caps[i].contents(), &s.exit);
                out[i].failed = Some(format!("{msg} [{phase}]"));
            }
            Ok(s) => {
                let parsed = inner.map(|p| p(&caps[i].contents()));
                if let Some(None) = parsed {
                    out[i].failed = Some(format!(
                        "payload printed no timing of its own on stderr [{phase}]"
                    ));
                    return;
                }
                if record {
                    out[i].samples.push(s);
                    if let Some(Some(t)) = parsed {
                        out[i].inner.push(t);
                    }
                }
            }
        }
    };

    let n = entries.len();
    let warm = entries.iter().map(|e| e.warmup).max().unwrap_or(0);
    for w in 0..warm {
        for i in 0..n {
            if out[i].failed.is_none() && entries[i].warmup > w {
                run(i, &mut out, "warm-up", false);
            }
        }
    }
    let total = entries.iter().map(|e| e.runs).max().unwrap_or(0);
    let t_start = proc::now_ns();
    let mut next_report = 0.0;
    // Each round runs the commands in a new random order. A fixed order (or
    // a rotation of it, which keeps the same neighbours) would let one
    // command always follow the same other one and inherit its leftovers:
    // a heavy launcher's deferred kernel work (namespace and mount teardown
    // in kernel workers) lands on whichever command comes next.
    let mut order: Vec<usize> = (0..n).collect();
    let mut rng = XorShift(0x9e37_79b9_7f4a_7c15);
    for k in 0..total {
        rng.shuffle(&mut order);
        for &i in &order {
            if out[i].failed.is_none() && takes_part(k, entries[i].runs, total) {
                let phase = format!("run {}", out[i].samples.len() + 1);
                run(i, &mut out, &phase, true);
            }
        }
        let done = (k + 1) as f64 / total as f64;
        if done >= next_report {
            eprintln!(
                "  round {}/{} ({:.0} s)",
                k + 1,
                total,
                (proc::now_ns() - t_start) as f64 / 1e9
            );
            next_report += 0.25;
        }
    }
    // A failure in the middle of a run discards that command's partial numbers.
    for o in &mut out {
        if o.failed.is_some() {
            o.samples.clear();
            o.inner.clear();
        }
    }
    Ok(out)
}

/// xorshift64*: a fixed-seed generator, so that a run's order can be
/// repeated; its statistical quality is ample for shuffling a dozen rows.
struct XorShift(u64);

impl XorShift {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }

    /// Fisher-Yates.
    fn shuffle(&mut self, v: &mut [usize]) {
        for i in (1..v.len()).rev() {
            let j = (self.next() % (i as u64 + 1)) as usize;
            v.swap(i, j);
        }
    }
}

fn walls(o: &Outcome) -> Vec<f64> {
    o.samples.iter().map(|s| s.wall_s).collect()
}

fn find(entries: &[Entry], out: &[Outcome], group: &str, label: &str) -> Option<Summary> {
    entries
        .iter()
        .position(|e| e.group == group && e.label == label)
        .and_then(|i| stats::summarize(&walls(&out[i])))
}

fn find_inner(entries: &[Entry], out: &[Outcome], group: &str, label: &str) -> Option<f64> {
    entries
        .iter()
        .position(|e| e.group == group && e.label == label)
        .and_then(|i| stats::median(&out[i].inner))
}

fn ratio(x: f64, base: Option<f64>) -> String {
    match base {
        Some(b) if b > 0.0 => format!("{:.2}", x / b),
        _ => "-".into(),
    }
}

fn label_width(entries: &[Entry]) -> usize {
    entries
        .iter()
        .map(|e| e.label.chars().count())
        .max()
        .unwrap_or(10)
        .max(10)
}

pub struct LaunchOpts {
    pub reference: String,
    pub floor: String,
    pub target: Option<String>,
    pub goal_ref: f64,
    pub goal_floor: f64,
    /// Adds a column: this row's median minus the previous row's.
    pub deltas: bool,
    /// The heading of the column of ratios to `reference` ("x bwrap").
    pub ref_column: String,
    /// The heading of the floor's ratio column.
    pub floor_column: String,
    /// A row whose median may exceed `reference`'s by at most
    /// `goal_delta_ms` (a shim against the launch it stands for).
    pub delta_target: Option<String>,
    pub goal_delta_ms: f64,
}

/// Print the launch table; returns the number of failed rows.
pub fn report_launch(entries: &[Entry], out: &[Outcome], o: &LaunchOpts) -> usize {
    let w = label_width(entries);
    let rw = o.ref_column.chars().count().max(8);
    let fw = o.floor_column.chars().count().max(9);
    let mut failures = 0;
    for g in spec::groups(entries) {
        println!();
        println!("payload: {g}");
        println!(
            "  {:<w$}  {:>5}  {:>9}  {:>9}  {:>rw$}  {:>fw$}{}",
            "command",
            "runs",
            "median ms",
            "p95 ms",
            o.ref_column,
            o.floor_column,
            if o.deltas { "  vs row above" } else { "" }
        );
        let rf = find(entries, out, &g, &o.reference).map(|s| s.median);
        let fl = find(entries, out, &g, &o.floor).map(|s| s.median);
        let mut above: Option<f64> = None;
        for (e, r) in entries.iter().zip(out).filter(|(e, _)| e.group == g) {
            match (&r.failed, stats::summarize(&walls(r))) {
                (None, Some(s)) => {
                    let delta = match above {
                        Some(a) if o.deltas => format!("  {:>+10.3} ms", (s.median - a) * 1e3),
                        _ => String::new(),
                    };
                    above = Some(s.median);
                    println!(
                        "  {:<w$}  {:>5}  {:>9.2}  {:>9.2}  {:>rw$}  {:>fw$}{delta}",
                        e.label,
                        s.n,
                        s.median * 1e3,
                        s.p95 * 1e3,
                        ratio(s.median, rf),
                        ratio(s.median, fl)
                    );
                }
                (failed, _) => {
                    above = None;
                    failures += 1;
                    let why = failed.clone().unwrap_or_else(|| "no samples".into());
                    println!("  {:<w$}  FAILED: {why}", e.label);
                }
            }
        }
        if let Some(t) = &o.target {
            let m = find(entries, out, &g, t).map(|s| s.median);
            match (m, rf, fl) {
                (Some(m), Some(rf), Some(fl)) => {
                    let (a, b) = (m / rf, m / fl);
                    println!(
                        "  target: {t} median {a:.2}x {} (goal <= {:.2}: {}), {b:.2}x {} (goal <= {:.2}: {})",
                        o.reference,
                        o.goal_ref,
                        met(a <= o.goal_ref),
                        o.floor,
                        o.goal_floor,
                        met(b <= o.goal_floor)
                    );
                }
                _ => println!("  target: {t}: not evaluated (a row it needs failed)"),
            }
        }
        if let Some(t) = &o.delta_target {
            match (find(entries, out, &g, t).map(|s| s.median), rf) {
                (Some(m), Some(rf)) => {
                    let d = (m - rf) * 1e3;
                    println!(
                        "  target: {t} median {d:+.3} ms vs {} (goal <= {:.2} ms: {})",
                        o.reference,
                        o.goal_delta_ms,
                        met(d <= o.goal_delta_ms)
                    );
                }
                _ => println!("  target: {t}: not evaluated (a row it needs failed)"),
            }
        }
    }
    failures
}

pub fn met(ok: bool) -> &'static str {
    if ok { "met" } else { "MISSED" }
}

/// seccomp mode: parse the payload's own run time from its stderr.
/// Understands `inner_seconds=<float>` (bench's perl payload) and dd's
/// `... copied, <float> s, ...` status line.
pub fn parse_inner(stderr: &str) -> Option<f64> {
    for line in stderr.lines().rev() {
        if let Some(rest) = line.trim().strip_prefix("inner_seconds=") {
            return rest.trim().parse().ok();
        }
        if let Some(pos) = line.find(" copied, ") {
            let rest = &line[pos + " copied, ".len()..];
            let num = rest.split_whitespace().next()?;
            return num.parse().ok();
        }
    }
    None
}

pub struct SeccompOpts {
    pub base: String,
    pub target: Option<String>,
    pub goal_pct: f64,
}

/// Print the seccomp table; returns the number of failed rows.
pub fn report_seccomp(entries: &[Entry], out: &[Outcome], o: &SeccompOpts) -> usize {
    let w = label_width(entries);
    let mut failures = 0;
    for g in spec::groups(entries) {
        println!();
        println!("payload: {g}");
        println!(
            "  {:<w$}  {:>5}  {:>12}  {:>14}  {:>12}  {:>16}",
            "command", "runs", "wall med ms", "payload med ms", "payload p95", "payload vs bare"
        );
        let base = find_inner(entries, out, &g, &o.base);
        for (e, r) in entries.iter().zip(out).filter(|(e, _)| e.group == g) {
            match (
                &r.failed,
                stats::summarize(&walls(r)),
                stats::summarize(&r.inner),
            ) {
                (None, Some(ws), Some(is)) => {
                    let over = match base {
                        Some(b) if b > 0.0 => format!("{:+.1} %", (is.median / b - 1.0) * 100.0),
                        _ => "-".into(),
                    };
                    println!(
                        "  {:<w$}  {:>5}  {:>12.1}  {:>14.1}  {:>12.1}  {:>16}",
                        e.label,
                        ws.n,
                        ws.median * 1e3,
                        is.median * 1e3,
                        is.p95 * 1e3,
                        over
                    );
                }
                (failed, _, _) => {
                    failures += 1;
                    let why = failed.clone().unwrap_or_else(|| "no samples".into());
                    println!("  {:<w$}  FAILED: {why}", e.label);
                }
            }
        }
        if let Some(t) = &o.target {
            match (find_inner(entries, out, &g, t), base) {
                (Some(m), Some(b)) => {
                    let pct = (m / b - 1.0) * 100.0;
                    println!(
                        "  target: {t} payload time {pct:+.1} % vs {} (goal <= {:.0} %: {})",
                        o.base,
                        o.goal_pct,
                        met(pct <= o.goal_pct)
                    );
                }
                _ => println!("  target: {t}: not evaluated (a row it needs failed)"),
            }
        }
    }
    failures
}

/// hyperfine --export-json compatible document (times in seconds).
pub fn to_json(entries: &[Entry], out: &[Outcome], with_inner: bool) -> J {
    let mut results = Vec::new();
    for (e, r) in entries.iter().zip(out) {
        let command = match &e.cmd {
            Ok(c) => c.display(),
            Err(_) => e.label.clone(),
        };
        let ws = walls(r);
        let mut fields = vec![("command", J::Str(command))];
        match stats::summarize(&ws) {
            Some(s) => {
                let n = r.samples.len() as f64;
                fields.extend([
                    ("mean", J::Num(s.mean)),
                    ("stddev", J::Num(s.stddev)),
                    ("median", J::Num(s.median)),
                    (
                        "user",
                        J::Num(r.samples.iter().map(|x| x.exit.user_s).sum::<f64>() / n),
                    ),
                    (
                        "system",
                        J::Num(r.samples.iter().map(|x| x.exit.sys_s).sum::<f64>() / n),
                    ),
                    ("min", J::Num(s.min)),
                    ("max", J::Num(s.max)),
                    ("p95", J::Num(s.p95)),
                ]);
            }
            None => fields.extend([
                ("mean", J::Null),
                ("stddev", J::Null),
                ("median", J::Null),
                ("user", J::Null),
                ("system", J::Null),
                ("min", J::Null),
                ("max", J::Null),
            ]),
        }
        fields.push(("times", json::nums(&ws)));
        fields.push((
            "exit_codes",
            J::Arr(
                r.samples
                    .iter()
                    .map(|s| J::Int(s.exit.code as i64))
                    .collect(),
            ),
        ));
        if with_inner {
            fields.push(("payload_times", json::nums(&r.inner)));
        }
        fields.push((
            "parameters",
            obj(vec![
                ("payload", J::Str(e.group.clone())),
                ("launcher", J::Str(e.label.clone())),
            ]),
        ));
        if let Some(f) = &r.failed {
            fields.push(("failed", J::Str(f.clone())));
        }
        results.push(obj(fields));
    }
    obj(vec![("results", J::Arr(results))])
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sparse_commands_spread_evenly() {
        let rounds: Vec<usize> = (0..200).filter(|&k| takes_part(k, 50, 200)).collect();
        assert_eq!(rounds.len(), 50);
        assert!(rounds.windows(2).all(|w| w[1] - w[0] == 4));
        assert_eq!((0..200).filter(|&k| takes_part(k, 200, 200)).count(), 200);
        assert_eq!((0..7).filter(|&k| takes_part(k, 3, 7)).count(), 3);
    }

    #[test]
    fn parses_dd_and_own_timing() {
        let dd = "1048576+0 records in\n1048576+0 records out\n\
                  1048576 bytes (1.0 MB, 1.0 MiB) copied, 0.258562 s, 4.1 MB/s\n";
        assert_eq!(parse_inner(dd), Some(0.258562));
        assert_eq!(parse_inner("noise\ninner_seconds=0.125\n"), Some(0.125));
        assert_eq!(parse_inner("nothing here\n"), None);
    }
}
