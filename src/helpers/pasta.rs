//! pasta (the `passt` package), which connects a `user`-mode sandbox: its
//! command line. The lifecycle is [`super::usernet`]'s.
//!
//! Every automatic forward of pasta is turned off (`-t none -u none -T none
//! -U none`: by default it publishes the ports the sandbox listens on and
//! forwards the host's loopback ports in), and so is its mapping of the
//! gateway's address to the host's loopback (`--no-map-gw`, which pasta
//! still accepts after it gained `--map-host-loopback`); only the profile's
//! forwards are added, each with an option of its own, so that one that
//! cannot be bound fails the start (pasta gives up on an option none of
//! whose ports it could bind). The options are those of Debian 12's pasta
//! (2023-03-09) that current versions keep; it joins the namespaces by
//! their `/proc` paths and writes its PID, once the interface is up, to
//! its standard output (`-P /proc/self/fd/1`): descriptors above 2 are
//! closed by pasta since 2024-08-14.

use std::net::IpAddr;
use std::os::fd::OwnedFd;

use nix::errno::Errno;

use super::process::{Launch, base_program};
use crate::plan::network::{Proto, UserNetwork};

/// pasta's command line for the sandbox whose first process is `pid`.
pub fn argv(plan: &UserNetwork, pid: libc::pid_t) -> Vec<String> {
    let mut argv: Vec<String> = [
        plan.program.display().to_string().as_str(),
        "--config-net",
        "--foreground",
        "--quiet",
        "--pid",
        "/proc/self/fd/1",
        "--netns",
        &format!("/proc/{pid}/ns/net"),
        "--userns",
        &format!("/proc/{pid}/ns/user"),
        "--no-netns-quit",
    ]
    .map(String::from)
    .to_vec();
    // Started by root, pasta switches to nobody, who cannot join the
    // sandbox's user namespace (owned by root): it stays what it is.
    if nix::unistd::geteuid().is_root() {
        argv.extend(["--runas".into(), "0".into()]);
    }
    if !plan.host_loopback {
        argv.push("--no-map-gw".into());
    }
    if let Some(dns) = plan.dns {
        argv.extend(["--dns-forward".into(), dns.to_string()]);
    }
    for (option, proto) in [("-t", Proto::Tcp), ("-u", Proto::Udp)] {
        let specs: Vec<String> = plan
            .publish
            .iter()
            .filter(|p| p.proto == proto)
            .map(|p| format!("{}/{}:{}", address(p.address), p.host_port, p.sandbox_port))
            .collect();
        push_option(&mut argv, option, specs);
    }
    for (option, proto) in [("-T", Proto::Tcp), ("-U", Proto::Udp)] {
        let specs: Vec<String> = plan
            .host_ports
            .iter()
            .filter(|f| f.proto == proto)
            .map(|f| f.port.to_string())
            .collect();
        push_option(&mut argv, option, specs);
    }
    argv
}

/// `OPTION SPEC` for each spec, or `OPTION none`.
fn push_option(argv: &mut Vec<String>, option: &str, specs: Vec<String>) {
    if specs.is_empty() {
        argv.extend([option.to_string(), "none".to_string()]);
    }
    for s in specs {
        argv.extend([option.to_string(), s]);
    }
}

fn address(a: IpAddr) -> String {
    a.to_string()
}

/// pasta for the sandbox `pid`: its standard output is the readiness pipe.
pub fn launch(plan: &UserNetwork, pid: libc::pid_t, stderr: &OwnedFd) -> Result<Launch, Errno> {
    let (ready_r, ready_w) = nix::unistd::pipe2(nix::fcntl::OFlag::O_CLOEXEC)?;
    let program = base_program(&argv(plan, pid), stderr)?.pass_owned(ready_w, 1);
    Ok(Launch {
        program,
        ready: ready_r,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::prepare::tests::plan_of;

    #[test]
    fn every_automatic_forward_is_off_and_each_declared_one_has_its_option() {
        let plan = plan_of(
            "version = 1\n[network]\nmode = \"user\"\nbackend = \"pasta\"\n\
             publish = [\"8080:80\", \"[::1]:5353:53/udp\", \"8081:81\"]\nhost_ports = [5432]\n",
        );
        let Some(user) = &plan.network.user else {
            panic!("no user network: {:?}", plan.network)
        };
        let argv = argv(user, 42).join(" ");
        assert!(argv.contains("--netns /proc/42/ns/net --userns /proc/42/ns/user"));
        assert!(argv.contains("--no-map-gw"));
        assert!(argv.contains("--dns-forward 169.254.1.1"));
        assert!(argv.contains("-t 127.0.0.1/8080:80 -t 127.0.0.1/8081:81"));
        assert!(argv.contains("-u ::1/5353:53"));
        assert!(argv.contains("-T 5432 -U none"));
        assert!(!argv.contains("-t none") && !argv.contains("-u none"));
    }
}
