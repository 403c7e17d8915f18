//! benchrun: the measuring half of hutch's benchmark harness.
//!
//! bench/run prepares a spec file (see spec.rs) and calls one of:
//!
//! ```text
//! benchrun launch     --spec F [--json OUT] --ref LABEL --floor LABEL [--target LABEL]
//!                     [--goal-ref X] [--goal-floor X] [--deltas 1] [--ref-column NAME]
//!                     [--floor-column NAME]
//!                     [--delta-target LABEL --goal-delta-ms X]
//! benchrun seccomp    --spec F [--json OUT] --base LABEL [--target LABEL] [--goal-pct X]
//! benchrun rss        --spec F [--json OUT] --ref LABEL [--target LABEL]
//!                     [--payload-name NAME] [--settle-ms MS]
//! benchrun concurrent --spec F [--json OUT] --n N [--target LABEL]
//! benchrun terminal   --spec F [--json OUT] --throughput GROUP --latency GROUP
//!                     --ref LABEL [--target LABEL] [--min-bytes N]
//! ```
//!
//! Exit status: 0 when every row was measured, 3 when some row failed
//! (it is printed as `FAILED: <reason>`), 2 on usage or setup errors.

mod concurrent;
mod json;
mod proc;
mod rss;
mod spec;
mod stats;
mod terminal;
mod timing;

use std::collections::HashMap;
use std::process::ExitCode;
use std::time::Duration;

struct Args {
    mode: String,
    opts: HashMap<String, String>,
}

fn parse_args() -> Result<Args, String> {
    let mut it = std::env::args().skip(1);
    let mode = it
        .next()
        .ok_or("missing mode (launch|seccomp|rss|concurrent|terminal)")?;
    let mut opts = HashMap::new();
    while let Some(a) = it.next() {
        let key = a
            .strip_prefix("--")
            .ok_or_else(|| format!("unexpected argument {a:?}"))?;
        let val = it.next().ok_or_else(|| format!("--{key} needs a value"))?;
        opts.insert(key.to_string(), val);
    }
    Ok(Args { mode, opts })
}

impl Args {
    fn get(&self, k: &str) -> Option<String> {
        self.opts.get(k).cloned()
    }
    fn need(&self, k: &str) -> Result<String, String> {
        self.get(k)
            .ok_or_else(|| format!("{}: --{k} is required", self.mode))
    }
    fn num<T: std::str::FromStr>(&self, k: &str, default: T) -> Result<T, String> {
        match self.opts.get(k) {
            None => Ok(default),
            Some(v) => v.parse().map_err(|_| format!("--{k}: bad number {v:?}")),
        }
    }
}

fn main_inner() -> Result<usize, String> {
    let a = parse_args()?;
    let entries = spec::load(&a.need("spec")?)?;
    let json_out = a.get("json");
    let failures = match a.mode.as_str() {
        "launch" => {
            let out = timing::interleave(&entries, None)?;
            let opts = timing::LaunchOpts {
                reference: a.need("ref")?,
                floor: a.need("floor")?,
                target: a.get("target"),
                goal_ref: a.num("goal-ref", 0.8)?,
                goal_floor: a.num("goal-floor", 1.5)?,
                deltas: a.num("deltas", 0u8)? != 0,
                ref_column: a.get("ref-column").unwrap_or_else(|| "x bwrap".into()),
                floor_column: a.get("floor-column").unwrap_or_else(|| "x unshare".into()),
                delta_target: a.get("delta-target"),
                goal_delta_ms: a.num("goal-delta-ms", 0.1)?,
            };
            let f = timing::report_launch(&entries, &out, &opts);
            if let Some(p) = &json_out {
                json::save(p, &timing::to_json(&entries, &out, false))?;
            }
            f
        }
        "seccomp" => {
            let out = timing::interleave(&entries, Some(timing::parse_inner))?;
            let opts = timing::SeccompOpts {
                base: a.need("base")?,
                target: a.get("target"),
                goal_pct: a.num("goal-pct", 5.0)?,
            };
            let f = timing::report_seccomp(&entries, &out, &opts);
            if let Some(p) = &json_out {
                json::save(p, &timing::to_json(&entries, &out, true))?;
            }
            f
        }
        "rss" => {
            let payload = a.get("payload-name").unwrap_or_else(|| "sleep".into());
            let settle = Duration::from_millis(a.num("settle-ms", 100)?);
            let out = rss::run(&entries, &payload, settle)?;
            let opts = rss::Opts {
                reference: a.need("ref")?,
                target: a.get("target"),
            };
            let f = rss::report(&entries, &out, &opts);
            if let Some(p) = &json_out {
                json::save(p, &rss::to_json(&entries, &out))?;
            }
            f
        }
        "concurrent" => {
            let n: usize = a.num("n", 100)?;
            if n == 0 {
                return Err("--n must be at least 1".into());
            }
            let out = concurrent::run(&entries, n)?;
            let f = concurrent::report(&entries, &out, n, a.get("target").as_deref());
            if let Some(p) = &json_out {
                json::save(p, &concurrent::to_json(&entries, &out, n))?;
            }
            f
        }
        "terminal" => {
            let opts = terminal::Opts {
                throughput: a.need("throughput")?,
                latency: a.need("latency")?,
                reference: a.need("ref")?,
                target: a.get("target"),
                min_bytes: a.num("min-bytes", 1u64)?,
            };
            let out = terminal::run(&entries, &opts)?;
            let f = terminal::report(&entries, &out, &opts);
            if let Some(p) = &json_out {
                json::save(p, &terminal::to_json(&entries, &out, &opts))?;
            }
            f
        }
        m => return Err(format!("unknown mode {m:?}")),
    };
    Ok(failures)
}

fn main() -> ExitCode {
    match main_inner() {
        Ok(0) => ExitCode::SUCCESS,
        Ok(_) => ExitCode::from(3),
        Err(e) => {
            eprintln!("benchrun: {e}");
            ExitCode::from(2)
        }
    }
}
