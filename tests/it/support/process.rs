//! The real `ringway` binary as a child process: for exit codes, signals and a resident
//! memory figure that belongs to the proxy alone.

use super::WAIT;
use std::io::{BufRead, BufReader};
use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::{Child, Command, ExitStatus, Output, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Instant;

/// The binary cargo built for these tests.
pub(crate) const BINARY: &str = env!("CARGO_BIN_EXE_ringway");

/// Runs the binary with `args` to completion.
pub(crate) fn run(args: &[&str]) -> Output {
    Command::new(BINARY).args(args).output().expect("run the ringway binary")
}

/// A file in the temp directory holding `text`, removed on drop.
#[derive(Debug)]
pub(crate) struct TempFile(PathBuf);

/// A path in the temp directory that no other call in this process gets: `ringway-it-`,
/// the pid, a counter and `suffix`.
fn unique_temp_path(suffix: &str) -> PathBuf {
    static NEXT: AtomicUsize = AtomicUsize::new(0);
    let next = NEXT.fetch_add(1, Ordering::SeqCst);
    std::env::temp_dir().join(format!("ringway-it-{}-{next}{suffix}", std::process::id()))
}

impl TempFile {
    pub(crate) fn new(contents: impl AsRef<[u8]>) -> Self {
        let path = unique_temp_path(".toml");
        std::fs::write(&path, contents).expect("write a temp file");
        Self(path)
    }

    pub(crate) fn arg(&self) -> &str {
        self.0.to_str().expect("a UTF-8 temp path")
    }
}

impl Drop for TempFile {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.0);
    }
}

/// An empty folder in the temp directory, removed with its contents on drop.
#[derive(Debug)]
pub(crate) struct TempDir(PathBuf);

impl TempDir {
    pub(crate) fn new() -> Self {
        let path = unique_temp_path("-dir");
        std::fs::create_dir(&path).expect("create a temp folder");
        Self(path)
    }

    /// The path of `name` inside the folder.
    pub(crate) fn join(&self, name: &str) -> PathBuf {
        self.0.join(name)
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// A running `ringway --config FILE`, killed on drop if still running.
#[derive(Debug)]
pub(crate) struct Running {
    child: Child,
    /// The first listener's bound address, from the startup log line.
    pub(crate) addr: SocketAddr,
    _config: TempFile,
}

impl Running {
    /// Starts the binary on `toml` and waits for its startup line.
    pub(crate) fn start(toml: &str) -> Self {
        let config = TempFile::new(toml);
        let mut child = Command::new(BINARY)
            .args(["--config", config.arg()])
            .env("RINGWAY_LOG", "info")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .expect("spawn the ringway binary");
        let stderr = child.stderr.take().expect("piped stderr");
        let (lines, received) = flume::unbounded();
        // Reads stderr to its end so the child never blocks on a full pipe.
        std::thread::spawn(move || {
            for line in BufReader::new(stderr).lines().map_while(Result::ok) {
                let _ = lines.send(line);
            }
        });
        let deadline = Instant::now() + WAIT;
        let addr = loop {
            let line = received.recv_deadline(deadline).expect("no startup line from ringway");
            if let Some(addr) = first_listener(&line) {
                break addr;
            }
        };
        Self { child, addr, _config: config }
    }

    pub(crate) fn pid(&self) -> u32 {
        self.child.id()
    }

    /// The resident set size, from /proc.
    pub(crate) fn rss_bytes(&self) -> u64 {
        rss_of(self.pid())
    }

    /// Sends SIGTERM and waits up to [`WAIT`] for the exit.
    pub(crate) fn terminate(&mut self) -> ExitStatus {
        let status = Command::new("kill")
            .args(["-TERM", &self.pid().to_string()])
            .status()
            .expect("run kill");
        assert!(status.success(), "kill -TERM failed");
        self.wait_exit()
    }

    /// Waits up to [`WAIT`] for the exit (after a signal sent by the caller).
    pub(crate) fn wait_exit(&mut self) -> ExitStatus {
        let deadline = Instant::now() + WAIT;
        loop {
            if let Some(status) = self.child.try_wait().expect("wait for ringway") {
                return status;
            }
            assert!(Instant::now() < deadline, "ringway did not exit");
            std::thread::park_timeout(std::time::Duration::from_millis(5));
        }
    }
}

impl Drop for Running {
    fn drop(&mut self) {
        if self.child.try_wait().ok().flatten().is_none() {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }
}

/// The resident set size of process `pid`, from /proc; 0 once it is gone.
pub(crate) fn rss_of(pid: u32) -> u64 {
    let Ok(status) = std::fs::read_to_string(format!("/proc/{pid}/status")) else { return 0 };
    let line = status.lines().find(|line| line.starts_with("VmRSS:")).unwrap_or_default();
    let kib: u64 = line.split_whitespace().nth(1).and_then(|value| value.parse().ok()).unwrap_or(0);
    kib * 1024
}

/// The address in `listeners ["name=127.0.0.1:PORT", ...]` of the startup line.
fn first_listener(line: &str) -> Option<SocketAddr> {
    let list = &line[line.find("listeners [")?..];
    let start = list.find('=')? + 1;
    let end = start + list[start..].find('"')?;
    list[start..end].parse().ok()
}

/// `openssl s_client -connect ADDR -ign_eof` with `args`, `input` on its stdin, run to its
/// end: what it printed.
pub(crate) fn s_client(addr: SocketAddr, args: &[&str], input: &[u8]) -> Output {
    let mut child = Command::new("openssl")
        .args(["s_client", "-connect", &addr.to_string(), "-ign_eof"])
        .args(args)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("run openssl (.ci/run installs it)");
    let mut stdin = child.stdin.take().expect("stdin");
    std::io::Write::write_all(&mut stdin, input).expect("write to s_client");
    drop(stdin);
    child.wait_with_output().expect("s_client output")
}
