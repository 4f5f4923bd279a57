//! Container logs in Docker's json-file format: one JSON object per line with `log`, `stream`
//! and `time`, rotated at `max_size` keeping `max_files` files (`log.json`, `log.json.1` ...).
//! The shim writes; any later process reads, tails and follows.

use std::fs::{self, File, OpenOptions};
use std::io::{self, BufRead, BufReader, Read, Seek, SeekFrom, Write};
use std::os::unix::fs::{MetadataExt, OpenOptionsExt};
use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime};

use serde::{Deserialize, Serialize};

/// Errors writing or reading a container log.
#[derive(Debug, thiserror::Error)]
pub enum LogError {
    #[error("opening log file {path}")]
    Open {
        path: PathBuf,
        #[source]
        source: io::Error,
    },
    #[error("writing log file {path}")]
    Write {
        path: PathBuf,
        #[source]
        source: io::Error,
    },
    #[error("writing log output")]
    Output(#[source] io::Error),
}

/// One log line as stored.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct LogEntry {
    pub log: String,
    pub stream: String,
    pub time: String,
}

/// Appends entries and rotates.
pub struct LogWriter {
    path: PathBuf,
    file: File,
    size: u64,
    max_size: u64,
    max_files: u32,
}

impl LogWriter {
    /// Opens (appending) `path`; `max_size` 0 disables rotation.
    pub fn open(path: &Path, max_size: u64, max_files: u32) -> Result<LogWriter, LogError> {
        let file = OpenOptions::new()
            .create(true)
            .append(true)
            .mode(crate::modes::PRIVATE_FILE)
            .open(path)
            .map_err(|source| LogError::Open {
                path: path.to_path_buf(),
                source,
            })?;
        let size = file.metadata().map(|m| m.len()).unwrap_or(0);
        Ok(LogWriter {
            path: path.to_path_buf(),
            file,
            size,
            max_size,
            max_files: max_files.max(1),
        })
    }

    /// Writes one chunk of output (a line with its newline, or a partial line).
    pub fn write(&mut self, stream: &str, data: &[u8]) -> Result<(), LogError> {
        let entry = LogEntry {
            log: String::from_utf8_lossy(data).into_owned(),
            stream: stream.to_string(),
            time: humantime::format_rfc3339_nanos(SystemTime::now()).to_string(),
        };
        let mut line = serde_json::to_vec(&entry).map_err(|e| LogError::Write {
            path: self.path.clone(),
            source: io::Error::other(e),
        })?;
        line.push(b'\n');
        if self.max_size > 0 && self.size > 0 && self.size + line.len() as u64 > self.max_size {
            self.rotate()?;
        }
        if let Err(source) = self.file.write_all(&line) {
            // The line is dropped whole (as Docker's json-file does on a full disk): what of
            // it reached the file goes, or the next line written would be glued to half of
            // it and both lost to every reader.
            let _ = self.file.set_len(self.size);
            return Err(LogError::Write {
                path: self.path.clone(),
                source,
            });
        }
        self.size += line.len() as u64;
        Ok(())
    }

    fn rotate(&mut self) -> Result<(), LogError> {
        let keep = self.max_files;
        if keep <= 1 {
            let _ = self.file.set_len(0);
            self.size = 0;
            return Ok(());
        }
        let _ = fs::remove_file(rotated(&self.path, keep - 1));
        for i in (1..keep - 1).rev() {
            let _ = fs::rename(rotated(&self.path, i), rotated(&self.path, i + 1));
        }
        let _ = fs::rename(&self.path, rotated(&self.path, 1));
        *self = LogWriter::open(&self.path, self.max_size, self.max_files)?;
        Ok(())
    }
}

fn rotated(path: &Path, n: u32) -> PathBuf {
    let mut s = path.as_os_str().to_owned();
    s.push(format!(".{n}"));
    PathBuf::from(s)
}

/// How to print logs (`berth container logs` options).
#[derive(Debug, Clone, Default)]
pub struct LogOptions {
    /// Only the last N lines.
    pub tail: Option<usize>,
    /// Prefix each line with its RFC 3339 time.
    pub timestamps: bool,
    /// Only entries at or after this time.
    pub since: Option<SystemTime>,
    /// Only entries before this time.
    pub until: Option<SystemTime>,
}

impl LogOptions {
    fn wants(&self, e: &LogEntry) -> bool {
        if self.since.is_none() && self.until.is_none() {
            return true;
        }
        let Ok(t) = humantime::parse_rfc3339(&e.time) else {
            return true;
        };
        self.since.is_none_or(|s| t >= s) && self.until.is_none_or(|u| t < u)
    }
}

/// Where each stream goes.
pub trait LogSink {
    /// Receives one entry.
    fn entry(&mut self, e: &LogEntry, opts: &LogOptions) -> io::Result<()>;
}

/// Prints stdout entries to stdout and stderr entries to stderr.
pub struct StdSink;

impl LogSink for StdSink {
    fn entry(&mut self, e: &LogEntry, opts: &LogOptions) -> io::Result<()> {
        let text = if opts.timestamps {
            format!("{} {}", e.time, e.log)
        } else {
            e.log.clone()
        };
        if e.stream == "stderr" {
            let mut err = io::stderr().lock();
            err.write_all(text.as_bytes())?;
            err.flush()
        } else {
            let mut out = io::stdout().lock();
            out.write_all(text.as_bytes())?;
            out.flush()
        }
    }
}

/// Reads all entries, oldest first, across rotated files.
pub fn read_all(path: &Path) -> Vec<LogEntry> {
    let mut files: Vec<PathBuf> = (1..100)
        .map(|i| rotated(path, i))
        .take_while(|p| p.exists())
        .collect();
    files.reverse();
    files.push(path.to_path_buf());
    let mut out = Vec::new();
    for f in files {
        if let Ok(file) = File::open(&f) {
            for line in BufReader::new(file).lines().map_while(Result::ok) {
                if let Ok(e) = serde_json::from_str(&line) {
                    out.push(e);
                }
            }
        }
    }
    out
}

/// Follows a log file from a byte offset; reopens it when rotation replaces the file.
pub struct Follower {
    path: PathBuf,
    file: Option<File>,
    ino: u64,
    pending: Vec<u8>,
}

impl Follower {
    /// Starts at the current end of `path` (after a `read_all`), or at its start when `from_start`.
    pub fn new(path: &Path, from_start: bool) -> Follower {
        let mut f = Follower {
            path: path.to_path_buf(),
            file: None,
            ino: 0,
            pending: Vec::new(),
        };
        if let Ok(mut file) = File::open(path) {
            f.ino = file.metadata().map(|m| m.ino()).unwrap_or(0);
            if !from_start {
                let _ = file.seek(SeekFrom::End(0));
            }
            f.file = Some(file);
        }
        f
    }

    /// Returns the complete entries written since the last call.
    pub fn poll(&mut self) -> Vec<LogEntry> {
        let mut out = Vec::new();
        self.drain(&mut out);
        // Rotated away? Finish the old file, then switch to the new one.
        if let Ok(md) = fs::metadata(&self.path)
            && md.ino() != self.ino
        {
            self.drain(&mut out);
            self.file = File::open(&self.path).ok();
            self.ino = md.ino();
            self.pending.clear();
            self.drain(&mut out);
        }
        out
    }

    fn drain(&mut self, out: &mut Vec<LogEntry>) {
        let Some(file) = self.file.as_mut() else {
            return;
        };
        let mut buf = Vec::new();
        if file.read_to_end(&mut buf).is_err() {
            return;
        }
        self.pending.extend_from_slice(&buf);
        while let Some(pos) = self.pending.iter().position(|b| *b == b'\n') {
            let line: Vec<u8> = self.pending.drain(..=pos).collect();
            if let Ok(e) = serde_json::from_slice(&line) {
                out.push(e);
            }
        }
    }
}

/// Prints the stored log (honouring `tail`), then, while `follow()` says the container still
/// runs, keeps printing what arrives.
pub fn print(
    path: &Path,
    opts: &LogOptions,
    sink: &mut dyn LogSink,
    mut follow: Option<&mut dyn FnMut() -> bool>,
) -> Result<(), LogError> {
    let mut follower = Follower::new(path, false);
    let all: Vec<LogEntry> = read_all(path)
        .into_iter()
        .filter(|e| opts.wants(e))
        .collect();
    let start = opts.tail.map_or(0, |n| all.len().saturating_sub(n));
    for e in &all[start..] {
        sink.entry(e, opts).map_err(LogError::Output)?;
    }
    if let Some(running) = follow.as_mut() {
        loop {
            let alive = running();
            for e in follower.poll().into_iter().filter(|e| opts.wants(e)) {
                sink.entry(&e, opts).map_err(LogError::Output)?;
            }
            if !alive {
                break;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn since_and_until_filter_by_entry_time() {
        let e = |t: &str| LogEntry {
            log: "x\n".into(),
            stream: "stdout".into(),
            time: t.into(),
        };
        let at = |t: &str| humantime::parse_rfc3339(t).expect("time");
        let opts = LogOptions {
            since: Some(at("2026-01-01T00:00:10Z")),
            until: Some(at("2026-01-01T00:00:20Z")),
            ..LogOptions::default()
        };
        assert!(!opts.wants(&e("2026-01-01T00:00:09.999999999Z")));
        assert!(opts.wants(&e("2026-01-01T00:00:10.5Z")));
        assert!(!opts.wants(&e("2026-01-01T00:00:20Z")));
    }

    #[test]
    fn rotation_keeps_order_across_files() {
        let dir = tempfile::tempdir().expect("tmp");
        let path = dir.path().join("log.json");
        let mut w = LogWriter::open(&path, 400, 3).expect("open");
        for i in 0..20 {
            w.write("stdout", format!("line {i}\n").as_bytes())
                .expect("write");
        }
        assert!(rotated(&path, 1).exists());
        assert!(!rotated(&path, 3).exists(), "only max_files files are kept");
        let all = read_all(&path);
        let nums: Vec<usize> = all
            .iter()
            .filter_map(|e| e.log.trim().strip_prefix("line ")?.parse().ok())
            .collect();
        assert!(nums.windows(2).all(|w| w[1] == w[0] + 1), "{nums:?}");
        assert_eq!(nums.last(), Some(&19));
    }
}
