//! The command list ("spec") that bench/run hands to the runner.
//!
//! One command per line, fields separated by TAB:
//!
//! ```text
//! group <TAB> label <TAB> runs <TAB> warmup <TAB> arg0 <TAB> arg1 ...
//! group <TAB> label <TAB> runs <TAB> warmup <TAB> !reason the row cannot run
//! ```
//!
//! `group` is the payload name the row belongs to (rows are compared within a
//! group), `label` names the launcher configuration. Lines starting with `#`
//! and empty lines are ignored. A `!reason` entry is reported as
//! `FAILED: reason` without running anything (used when hutch did not build).

use crate::proc::Cmdline;

pub struct Entry {
    pub group: String,
    pub label: String,
    pub runs: usize,
    pub warmup: usize,
    /// Ok(command) or Err(reason it cannot be measured).
    pub cmd: Result<Cmdline, String>,
}

pub fn load(path: &str) -> Result<Vec<Entry>, String> {
    let text = std::fs::read_to_string(path).map_err(|e| format!("reading spec {path}: {e}"))?;
    let mut out = Vec::new();
    for (n, line) in text.lines().enumerate() {
        if line.trim().is_empty() || line.starts_with('#') {
            continue;
        }
        let f: Vec<&str> = line.split('\t').collect();
        if f.len() < 5 {
            return Err(format!(
                "{path}:{}: need at least 5 TAB-separated fields",
                n + 1
            ));
        }
        let num = |s: &str, what: &str| {
            s.parse::<usize>()
                .map_err(|_| format!("{path}:{}: bad {what} {s:?}", n + 1))
        };
        let runs = num(f[2], "run count")?;
        let warmup = num(f[3], "warm-up count")?;
        if runs == 0 {
            return Err(format!("{path}:{}: run count must be at least 1", n + 1));
        }
        let cmd = match f[4].strip_prefix('!') {
            Some(reason) if f.len() == 5 => Err(reason.to_string()),
            _ => {
                let words: Vec<String> = f[4..].iter().map(|s| s.to_string()).collect();
                Cmdline::new(&words)
            }
        };
        out.push(Entry {
            group: f[0].into(),
            label: f[1].into(),
            runs,
            warmup,
            cmd,
        });
    }
    if out.is_empty() {
        return Err(format!("{path}: no commands"));
    }
    Ok(out)
}

/// Groups in first-appearance order.
pub fn groups(entries: &[Entry]) -> Vec<String> {
    let mut g: Vec<String> = Vec::new();
    for e in entries {
        if !g.contains(&e.group) {
            g.push(e.group.clone());
        }
    }
    g
}
