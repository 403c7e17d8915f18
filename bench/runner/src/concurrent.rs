//! `concurrent` mode: N launches at once versus N launches one after another.
//!
//! For each command and repetition, a concurrent batch (spawn all N, then
//! reap them all) and a sequential batch (spawn, wait, N times) are timed
//! from the first spawn to the last reap. The two batches alternate in order
//! between repetitions, and the commands are interleaved. Every child's
//! stderr goes to its own memfd so that failures can be shown.

use std::collections::HashMap;

use crate::json::{self, J, obj};
use crate::proc::{self, Capture};
use crate::spec::Entry;
use crate::stats;
use crate::timing::met;

pub struct Failure {
    pub batch: &'static str,
    pub message: String,
}

#[derive(Default)]
pub struct Outcome {
    pub concurrent_s: Vec<f64>,
    pub sequential_s: Vec<f64>,
    pub launches: usize,
    pub failures: Vec<Failure>,
    pub fatal: Option<String>,
}

fn batch(
    cmd: &proc::Cmdline,
    n: usize,
    concurrent: bool,
    devnull: i32,
    caps: &[Capture],
) -> Result<(f64, Vec<String>), String> {
    for c in caps {
        c.reset().map_err(|e| e.to_string())?;
    }
    let mut failures = Vec::new();
    let t0 = proc::now_ns();
    if concurrent {
        let mut running: HashMap<libc::pid_t, usize> = HashMap::with_capacity(n);
        for (i, cap) in caps.iter().enumerate().take(n) {
            match proc::spawn(cmd, devnull, devnull, cap.fd()) {
                Ok(pid) => {
                    running.insert(pid, i);
                }
                Err(e) => failures.push(format!("spawn failed: {e}")),
            }
        }
        while !running.is_empty() {
            let (pid, exit) = proc::wait(-1).map_err(|e| format!("wait: {e}"))?;
            if let Some(i) = running.remove(&pid)
                && !exit.ok()
            {
                failures.push(proc::failure_message(&caps[i].contents(), &exit));
            }
        }
    } else {
        for cap in caps.iter().take(n) {
            match proc::spawn(cmd, devnull, devnull, cap.fd()) {
                Ok(pid) => {
                    let (_, exit) = proc::wait(pid).map_err(|e| format!("wait: {e}"))?;
                    if !exit.ok() {
                        failures.push(proc::failure_message(&cap.contents(), &exit));
                    }
                }
                Err(e) => failures.push(format!("spawn failed: {e}")),
            }
        }
    }
    let t1 = proc::now_ns();
    Ok(((t1 - t0) as f64 / 1e9, failures))
}

pub fn run(entries: &[Entry], n: usize) -> Result<Vec<Outcome>, String> {
    let devnull = proc::open_devnull().map_err(|e| format!("/dev/null: {e}"))?;
    let caps = (0..n)
        .map(|_| Capture::new())
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| format!("memfd_create: {e}"))?;
    let mut out: Vec<Outcome> = entries
        .iter()
        .map(|e| Outcome {
            fatal: e.cmd.as_ref().err().cloned(),
            ..Default::default()
        })
        .collect();
    // Warm-up: single launches, which must succeed.
    let warm = entries.iter().map(|e| e.warmup).max().unwrap_or(0);
    for w in 0..warm {
        for (i, e) in entries.iter().enumerate() {
            let Ok(cmd) = &e.cmd else { continue };
            if out[i].fatal.is_some() || w >= e.warmup {
                continue;
            }
            match proc::run_timed(cmd, devnull.0, &caps[0]) {
                Ok(s) if s.exit.ok() => {}
                Ok(s) => {
                    out[i].fatal = Some(format!(
                        "{} [warm-up]",
                        proc::failure_message(&caps[0].contents(), &s.exit)
                    ))
                }
                Err(e) => out[i].fatal = Some(format!("spawn: {e}")),
            }
        }
    }
    let reps = entries.iter().map(|e| e.runs).max().unwrap_or(0);
    for k in 0..reps {
        for (i, e) in entries.iter().enumerate() {
            let Ok(cmd) = &e.cmd else { continue };
            if out[i].fatal.is_some() || k >= e.runs {
                continue;
            }
            let order: [bool; 2] = if k % 2 == 0 {
                [true, false]
            } else {
                [false, true]
            };
            for conc in order {
                let (t, fails) = batch(cmd, n, conc, devnull.0, &caps)?;
                let o = &mut out[i];
                o.launches += n;
                let name = if conc { "concurrent" } else { "sequential" };
                o.failures.extend(fails.into_iter().map(|m| Failure {
                    batch: name,
                    message: m,
                }));
                if conc {
                    o.concurrent_s.push(t)
                } else {
                    o.sequential_s.push(t)
                }
            }
        }
        eprintln!("  repetition {}/{}", k + 1, reps);
    }
    Ok(out)
}

pub fn report(entries: &[Entry], out: &[Outcome], n: usize, target: Option<&str>) -> usize {
    let lw = entries
        .iter()
        .map(|e| e.label.chars().count())
        .max()
        .unwrap_or(10)
        .max(10);
    println!();
    println!(
        "  {:<lw$}  {:>4}  {:>17}  {:>17}  {:>10}  {:>8}",
        "command",
        "reps",
        format!("{n} concurrent ms"),
        format!("{n} sequential ms"),
        "conc/seq",
        "failures"
    );
    let mut bad = 0;
    for (e, o) in entries.iter().zip(out) {
        if let Some(f) = &o.fatal {
            bad += 1;
            println!("  {:<lw$}  FAILED: {f}", e.label);
            continue;
        }
        let (Some(c), Some(s)) = (
            stats::median(&o.concurrent_s),
            stats::median(&o.sequential_s),
        ) else {
            bad += 1;
            println!("  {:<lw$}  FAILED: no samples", e.label);
            continue;
        };
        println!(
            "  {:<lw$}  {:>4}  {:>17.1}  {:>17.1}  {:>10.2}  {:>8}",
            e.label,
            o.concurrent_s.len(),
            c * 1e3,
            s * 1e3,
            c / s,
            format!("{}/{}", o.failures.len(), o.launches)
        );
        if !o.failures.is_empty() {
            bad += 1;
            // Show each distinct message once, with its count.
            let mut seen: Vec<(String, &str, usize)> = Vec::new();
            for f in &o.failures {
                match seen
                    .iter_mut()
                    .find(|(m, b, _)| *m == f.message && *b == f.batch)
                {
                    Some(x) => x.2 += 1,
                    None => seen.push((f.message.clone(), f.batch, 1)),
                }
            }
            for (m, b, count) in seen.iter().take(10) {
                println!("  {:<lw$}    {count}x in {b} batches: {m}", "");
            }
        }
    }
    if let Some(t) = target {
        match entries.iter().position(|e| e.label == t) {
            Some(i) if out[i].fatal.is_none() && !out[i].concurrent_s.is_empty() => {
                let o = &out[i];
                let c = stats::median(&o.concurrent_s).unwrap_or(f64::NAN);
                let s = stats::median(&o.sequential_s).unwrap_or(f64::NAN);
                println!(
                    "  target: {t} {} failures of {} launches (goal 0: {}); concurrent {:.2}x sequential (goal <= 1.00: {})",
                    o.failures.len(),
                    o.launches,
                    met(o.failures.is_empty()),
                    c / s,
                    met(c <= s)
                );
            }
            _ => println!("  target: {t}: not evaluated (the row failed)"),
        }
    }
    bad
}

pub fn to_json(entries: &[Entry], out: &[Outcome], n: usize) -> J {
    let mut results = Vec::new();
    for (e, o) in entries.iter().zip(out) {
        let cmd = e
            .cmd
            .as_ref()
            .map(|c| c.display())
            .unwrap_or_else(|_| e.label.clone());
        for (kind, times) in [
            ("concurrent", &o.concurrent_s),
            ("sequential", &o.sequential_s),
        ] {
            let mut f = vec![("command", J::Str(format!("{n}x {kind}: {cmd}")))];
            if let Some(s) = stats::summarize(times) {
                f.extend([
                    ("mean", J::Num(s.mean)),
                    ("stddev", J::Num(s.stddev)),
                    ("median", J::Num(s.median)),
                    ("min", J::Num(s.min)),
                    ("max", J::Num(s.max)),
                ]);
            }
            f.push(("times", json::nums(times)));
            f.push((
                "failures",
                J::Arr(
                    o.failures
                        .iter()
                        .filter(|x| x.batch == kind)
                        .map(|x| J::Str(x.message.clone()))
                        .collect(),
                ),
            ));
            f.push((
                "parameters",
                obj(vec![
                    ("launcher", J::Str(e.label.clone())),
                    ("mode", J::Str(kind.into())),
                    ("launches_per_batch", J::Int(n as i64)),
                ]),
            ));
            if let Some(x) = &o.fatal {
                f.push(("failed", J::Str(x.clone())));
            }
            results.push(obj(f));
        }
    }
    obj(vec![("results", J::Arr(results))])
}
