//! Talking to systemd (`Type=notify`): readiness, status, watchdog pings,
//! reload and stop notices. Without `NOTIFY_SOCKET` (not started by
//! systemd) every call is a no-op.
//!
//! A notification is `KEY=value` lines in one datagram, and systemd obeys
//! every line, so a line break in a value would let its text (a file name
//! in the status, say) send a command of its own (`WATCHDOG_USEC=1`,
//! `STOPPING=1`). Every free-text value sent here goes through
//! `names::escape_controls` first, whoever the caller is.

use std::time::Duration;

use sd_notify::NotifyState;

fn send(states: &[NotifyState<'_>]) {
    if std::env::var_os("NOTIFY_SOCKET").is_none() {
        return;
    }
    if let Err(e) = sd_notify::notify(states) {
        tracing::warn!(error = %e, "cannot notify systemd");
    }
}

/// `READY=1` with a status line: start-up (or a reload) is complete.
pub fn ready(status: &str) {
    let status = crate::names::escape_controls(status);
    send(&[NotifyState::Ready, NotifyState::Status(&status)]);
}

/// `STATUS=` with `status` made one line.
pub fn status(status: &str) {
    let status = crate::names::escape_controls(status);
    send(&[NotifyState::Status(&status)]);
}

/// `RELOADING=1` with `MONOTONIC_USEC`, as systemd ≥ 253 requires.
pub fn reloading() {
    match NotifyState::monotonic_usec_now() {
        Ok(now) => send(&[NotifyState::Reloading, now]),
        Err(_) => send(&[NotifyState::Reloading]),
    }
}

pub fn stopping() {
    send(&[NotifyState::Stopping, NotifyState::Status("stopping")]);
}

/// How often to ping the watchdog (half of `WatchdogSec=`), if it is on.
pub fn watchdog_interval() -> Option<Duration> {
    sd_notify::watchdog_enabled().map(|period| period / 2)
}

pub fn ping_watchdog() {
    send(&[NotifyState::Watchdog]);
}

#[cfg(test)]
mod tests {
    #[test]
    fn a_status_cannot_carry_a_line_of_its_own() {
        let status = crate::names::escape_controls("last: x\nWATCHDOG_USEC=1\r\nERRNO=12");
        assert!(!status.contains(['\n', '\r']), "{status}");
    }
}
