//! Work a worker must never do on its loop: reading a file (at config time, on the
//! control thread) and CPU-heavy or blocking jobs, which go to threads of their own
//! through a bounded queue ([`start_threads`]).
//!
//! A leaf: it knows nothing of ringway, so the resolver and the credential checks share
//! it without knowing each other.

/// The largest file read whole: list files (domains, hosts, credentials, keys).
const FILE_BYTES_MAX: u64 = 256 * 1024 * 1024;

/// The text of a file, refused past 256 MiB.
pub fn read_bounded(path: &str) -> Result<String, String> {
    let size = std::fs::metadata(path).map_err(|error| format!("cannot read {path}: {error}"))?;
    if size.len() > FILE_BYTES_MAX {
        return Err(format!("{path} is larger than {FILE_BYTES_MAX} bytes"));
    }
    std::fs::read_to_string(path).map_err(|error| format!("cannot read {path}: {error}"))
}

/// `threads` threads named `ringway-NAME{i}` running `run` on jobs from a queue of
/// `jobs_max`; a full queue refuses a job (`try_send`) rather than grow.
pub fn start_threads<J: Send + 'static>(
    name: &str,
    threads: usize,
    jobs_max: usize,
    run: fn(J),
) -> flume::Sender<J> {
    let (sender, receiver) = flume::bounded::<J>(jobs_max);
    for index in 0..threads {
        let receiver = receiver.clone();
        let spawned = std::thread::Builder::new()
            .name(format!("ringway-{name}{index}"))
            .spawn(move || receiver.iter().for_each(run));
        if let Err(error) = spawned {
            log::error!("cannot start {name} thread {index}: {error}");
        }
    }
    sender
}
