//! The process's one shutdown signal (kubert's pattern): the first SIGTERM
//! or SIGINT starts a graceful drain, a second one exits at once, so an
//! operator pressing Ctrl-C twice is never stuck behind a slow drain.

use tokio::signal::unix::{Signal, SignalKind, signal};
use tokio_util::sync::CancellationToken;
use tracing::{info, warn};

use super::ServerError;

/// Installs SIGTERM and SIGINT handlers and returns a token cancelled by the
/// first of them; the second makes the process exit immediately with the
/// shell's code for that signal (143 or 130). Hand clones (or child tokens)
/// to every server and loop that must stop on shutdown.
///
/// Call it once, inside a tokio runtime.
pub(crate) fn shutdown_on_signals() -> Result<CancellationToken, ServerError> {
    let mut term = signal(SignalKind::terminate()).map_err(|source| ServerError::Signal {
        signal: "SIGTERM",
        source,
    })?;
    let mut int = signal(SignalKind::interrupt()).map_err(|source| ServerError::Signal {
        signal: "SIGINT",
        source,
    })?;
    let token = CancellationToken::new();
    let cancel = token.clone();
    crate::tasks::spawn("signals", async move {
        let Some((first, _)) = next(&mut term, &mut int).await else {
            return;
        };
        info!(
            signal = first,
            "shutting down gracefully; send the signal again to exit at once"
        );
        cancel.cancel();
        let Some((second, code)) = next(&mut term, &mut int).await else {
            return;
        };
        warn!(signal = second, "second signal: exiting without draining");
        std::process::exit(code);
    });
    Ok(token)
}

/// The next signal's name and the exit code a shell reports for it (128 + n).
/// `None` once the runtime's signal driver is gone.
async fn next(term: &mut Signal, int: &mut Signal) -> Option<(&'static str, i32)> {
    tokio::select! {
        Some(()) = term.recv() => Some(("SIGTERM", 143)),
        Some(()) = int.recv() => Some(("SIGINT", 130)),
        else => None,
    }
}

#[cfg(test)]
mod tests {
    use std::{
        io::{BufRead, BufReader},
        process::{Command, Stdio},
        sync::mpsc,
        time::{Duration, Instant},
    };

    use super::*;

    /// Set in the re-executed test binary, which plays the server.
    const CHILD_ENV: &str = "SCALE_GOVERNOR_SIGNAL_TEST_CHILD";
    const TEST_NAME: &str = "server::signals::tests::first_signal_drains_second_exits";

    #[test]
    fn first_signal_drains_second_exits() {
        if std::env::var_os(CHILD_ENV).is_some() {
            return child();
        }
        // Signals hit the whole process, so the server under test runs in a
        // copy of this test binary rather than next to the other tests.
        /// Kills the child if the test fails before it exits on its own.
        struct Reap(std::process::Child);
        impl Drop for Reap {
            fn drop(&mut self) {
                let _ = self.0.kill();
                let _ = self.0.wait();
            }
        }
        let mut child = Reap(
            Command::new(std::env::current_exe().unwrap())
                .args(["--exact", TEST_NAME, "--nocapture", "--test-threads=1"])
                .env(CHILD_ENV, "1")
                .stdout(Stdio::piped())
                .stderr(Stdio::null())
                .spawn()
                .unwrap(),
        );
        let pid = child.0.id().to_string();
        let (lines_tx, lines) = mpsc::channel();
        let stdout = child.0.stdout.take().unwrap();
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines().map_while(Result::ok) {
                let _ = lines_tx.send(line);
            }
        });
        let expect = |want: &str| loop {
            match lines.recv_timeout(Duration::from_secs(30)) {
                // The harness prints the test's name on the same line first.
                Ok(line) if line.ends_with(want) => return,
                Ok(_) => {}
                Err(e) => panic!("child never printed {want:?}: {e}"),
            }
        };
        let kill = || {
            let status = Command::new("kill").args(["-TERM", &pid]).status().unwrap();
            assert!(status.success());
        };

        expect("<child ready>");
        kill();
        expect("<child cancelled>");
        kill();
        let deadline = Instant::now() + Duration::from_secs(30);
        let status = loop {
            if let Some(status) = child.0.try_wait().unwrap() {
                break status;
            }
            if Instant::now() > deadline {
                panic!("the second SIGTERM did not end the process");
            }
            std::thread::sleep(Duration::from_millis(20));
        };
        assert_eq!(status.code(), Some(143));
    }

    fn child() {
        tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap()
            .block_on(async {
                let token = shutdown_on_signals().unwrap();
                println!("<child ready>");
                token.cancelled().await;
                println!("<child cancelled>");
                // Only the second signal may end this; returning exits 0.
                tokio::time::sleep(Duration::from_secs(60)).await;
            });
    }
}
