//! Helpers: processes and resources that live beside the sandbox, with one
//! lifecycle (docs/ARCHITECTURE.md, "Helpers"). Today the cgroup
//! ([`cgroup`]: a directory hutch creates, or a systemd scope), the
//! network namespace maker ([`netns`]), `[network]` user mode's
//! program ([`usernet`]: pasta or slirp4netns) and the desktop session
//! ([`desktop`]: the launch directory with its cookies and sockets).
//!
//! Every helper implements [`Helper`], whose methods are the stages:
//!
//! 1. **before clone** — single-threaded: arrange the clone
//!    ([`CloneSetup`]: its flags, a cgroup to clone into, what the child
//!    is told and the descriptors it shares with the launcher);
//! 2. **barrier** — say where the child must wait until the helper has
//!    started ([`Barrier`]);
//! 3. **start** — after clone, while the child waits at its barriers:
//!    start processes ([`process`]: tied to the launcher, held by a pidfd),
//!    place the child, wait for readiness from the helper itself;
//! 4. **ready** — after the early barrier is released, while the child
//!    builds its filesystem: a helper that asked for the late barrier
//!    ([`Helper::ready_barrier`]) waits for its process's own word that
//!    it is ready (pasta's interface up); then the late barrier goes;
//! 5. **supervise** — descriptors for the launcher's poll loop, and what to
//!    do when one wakes it;
//! 6. **finish** — after the sandbox: stop processes, remove resources,
//!    adjust the exit status or say what happened; and `Drop`, the safety
//!    net of a launch that failed half-way.
//!
//! A helper's failure is a [`HelperError`] naming it. Each describes
//! itself for `-v` ([`Helper::describe`]); what `--explain` shows of it is
//! its part of the plan (`[limits]`: `plan::limits`).
//!
//! The launcher holds its helpers in [`Helpers`], one field per kind, and
//! runs each stage over all of them in one order.

pub mod cgroup;
pub mod dbus;
pub mod dbus_probe;
pub mod desktop;
pub mod learn;
pub mod netns;
pub mod pasta;
pub mod process;
pub mod slirp4netns;
pub mod usernet;
pub mod xephyr;

use std::os::fd::{BorrowedFd, RawFd};

use nix::errno::Errno;
use nix::poll::PollFlags;

use crate::plan::Plan;
use crate::prepare::{Barrier, Barriers, Pipes, Prepared};

/// How the child is to be cloned; helpers arrange it before the clone.
#[derive(Debug)]
pub struct CloneSetup<'a> {
    /// The namespaces the clone creates (those a helper makes or the child
    /// makes later are taken out).
    pub flags: u64,
    /// A cgroup to clone the child into (`CLONE_INTO_CGROUP`).
    pub into_cgroup: Option<RawFd>,
    /// What the child is told.
    pub prepared: &'a mut Prepared,
    /// The descriptors the child shares with the launcher.
    pub pipes: &'a mut Pipes,
}

/// The child, cloned.
#[derive(Debug, Clone, Copy)]
pub struct Started {
    pub pid: libc::pid_t,
    /// It was cloned into [`CloneSetup::into_cgroup`].
    pub in_cgroup: bool,
}

/// A helper's failure.
#[derive(Debug, thiserror::Error)]
pub enum HelperError {
    /// The cgroup could not be made or the child placed in it.
    #[error(transparent)]
    Cgroup(#[from] cgroup::CgroupError),
    /// `[desktop]`'s launch directory or Wayland security context.
    #[error(transparent)]
    Desktop(#[from] desktop::DesktopError),
    #[error("cannot start {helper}: {}", .errno.desc())]
    Start { helper: &'static str, errno: Errno },
    /// `[network]` user mode's program failed.
    #[error(transparent)]
    Network(#[from] usernet::NetworkError),
    /// A helper program with a known hole that breaks what the sandbox
    /// promises (or one that could not be checked), refused.
    #[error("refusing {helper}: {why}")]
    Refused { helper: &'static str, why: String },
    /// It started, but never said it was ready.
    #[error("{helper} did not start: {why}")]
    NotReady { helper: &'static str, why: String },
}

/// The stages of a helper's life; see the module's documentation.
pub trait Helper {
    /// What it is, in messages: "the network namespace maker".
    fn name(&self) -> &'static str;

    /// Before clone, single-threaded.
    fn before_clone(&mut self, setup: &mut CloneSetup<'_>) -> Result<(), HelperError> {
        let _ = setup;
        Ok(())
    }

    /// The barrier the child waits at until this helper has started, for
    /// the clone `setup` describes.
    fn barrier(&self, setup: &CloneSetup<'_>) -> Option<Barrier> {
        let _ = setup;
        None
    }

    /// Whether the child also waits at the late barrier (before it
    /// confines itself) until [`Helper::ready`] returns.
    fn ready_barrier(&self) -> bool {
        false
    }

    /// After clone; the child waits at its barriers. On error the launcher
    /// kills the child: the payload never runs.
    fn start(&mut self, child: &Started) -> Result<(), HelperError>;

    /// After the early barrier is released: returns once the helper is
    /// ready for the payload (its own word, never a sleep). On error the
    /// launcher kills the child.
    fn ready(&mut self) -> Result<(), HelperError> {
        Ok(())
    }

    /// What it does for this sandbox, for `-v` (once started).
    fn describe(&self) -> Option<String>;

    /// Descriptors to poll while the sandbox runs, with their events.
    fn watch(&self) -> Vec<(BorrowedFd<'_>, PollFlags)> {
        Vec::new()
    }

    /// One of [`Helper::watch`]'s descriptors woke the launcher.
    fn woken(&mut self) {}

    /// After the sandbox ended with exit code `code`; returns the code
    /// hutch exits with.
    fn finish(&mut self, code: i32) -> i32;
}

/// The helpers of one launch.
#[derive(Default)]
pub struct Helpers {
    /// `[limits]`: the cgroup the sandbox runs in.
    pub cgroup: Option<cgroup::Session>,
    /// The network namespace, made in parallel with the child's mounts.
    pub netns: Option<netns::NetnsMaker>,
    /// `[network]` user mode: pasta or slirp4netns.
    pub usernet: Option<usernet::UserNet>,
    /// `[desktop]`: the launch directory, its cookies and sockets.
    pub desktop: Option<desktop::Session>,
    /// `hutch learn`: the recorder serving the learning filter.
    pub learn: Option<learn::Learner>,
}

impl Helpers {
    /// The helpers `plan` needs.
    pub fn for_plan(plan: &Plan) -> Result<Helpers, HelperError> {
        Ok(Helpers {
            cgroup: plan
                .limits
                .as_ref()
                .map(|l| cgroup::Session::new(l, plan.namespaces.cgroup)),
            // User mode's program needs the namespace right after clone:
            // the clone makes it.
            netns: netns::NetnsMaker::wanted(plan.namespaces.net && plan.network.user.is_none())?,
            usernet: plan.network.user.as_ref().map(usernet::UserNet::new),
            learn: learn::Learner::wanted(plan)?,
            desktop: plan.desktop.as_ref().map(desktop::Session::new),
        })
    }

    /// Every helper, in the order the stages run them: the network
    /// namespace maker and user mode's program first, so that they start
    /// as early as they can; the desktop session last, so that what uses
    /// its directory has stopped before it removes it.
    fn each(&mut self) -> impl Iterator<Item = &mut dyn Helper> {
        let netns = self.netns.as_mut().map(|h| h as &mut dyn Helper);
        let usernet = self.usernet.as_mut().map(|h| h as &mut dyn Helper);
        let cgroup = self.cgroup.as_mut().map(|h| h as &mut dyn Helper);
        let learn = self.learn.as_mut().map(|h| h as &mut dyn Helper);
        let desktop = self.desktop.as_mut().map(|h| h as &mut dyn Helper);
        netns
            .into_iter()
            .chain(usernet)
            .chain(cgroup)
            .chain(learn)
            .chain(desktop)
    }

    /// [`Helpers::each`], to look at.
    fn each_ref(&self) -> impl Iterator<Item = &dyn Helper> {
        let netns = self.netns.as_ref().map(|h| h as &dyn Helper);
        let usernet = self.usernet.as_ref().map(|h| h as &dyn Helper);
        let cgroup = self.cgroup.as_ref().map(|h| h as &dyn Helper);
        let learn = self.learn.as_ref().map(|h| h as &dyn Helper);
        let desktop = self.desktop.as_ref().map(|h| h as &dyn Helper);
        netns
            .into_iter()
            .chain(usernet)
            .chain(cgroup)
            .chain(learn)
            .chain(desktop)
    }

    pub fn before_clone(&mut self, setup: &mut CloneSetup<'_>) -> Result<(), HelperError> {
        self.each().try_for_each(|h| h.before_clone(setup))
    }

    /// The barriers the child waits at, for the clone `setup` describes.
    pub fn barriers(&mut self, setup: &CloneSetup<'_>) -> Barriers {
        let mut barriers = Barriers::default();
        for h in self.each() {
            if let Some(barrier) = h.barrier(setup) {
                barriers.add(barrier);
            }
            if h.ready_barrier() {
                barriers.add(Barrier::Late);
            }
        }
        barriers
    }

    pub fn start(&mut self, child: &Started) -> Result<(), HelperError> {
        self.each().try_for_each(|h| h.start(child))
    }

    /// Waits until every helper that asked for the late barrier is ready.
    pub fn ready(&mut self) -> Result<(), HelperError> {
        self.each()
            .filter(|h| h.ready_barrier())
            .try_for_each(|h| h.ready())
    }

    /// What each does, for `-v`.
    pub fn describe(&self) -> Vec<String> {
        self.each_ref().filter_map(|h| h.describe()).collect()
    }

    /// Descriptors to poll, each with its events and the helper to wake.
    pub fn watch(&self) -> Vec<(BorrowedFd<'_>, PollFlags, usize)> {
        self.each_ref()
            .enumerate()
            .flat_map(|(i, h)| h.watch().into_iter().map(move |(fd, ev)| (fd, ev, i)))
            .collect()
    }

    /// The helper `index` of [`Helpers::watch`] is woken.
    pub fn woken(&mut self, index: usize) {
        if let Some(h) = self.each().nth(index) {
            h.woken();
        }
    }

    /// Finishes every helper; the exit code hutch exits with.
    pub fn finish(&mut self, code: i32) -> i32 {
        self.each().fold(code, |code, h| h.finish(code))
    }
}
