//! `GET|HEAD|PUT /containers/{id}/archive?path=` (`docker cp` both ways), running or
//! stopped. Every path is resolved by the runtime's copy helper inside the container's own
//! root (the same one `berth container cp` uses), so neither a `../` entry in the tar nor a
//! symlink in the container reaches the host. The stat Docker's clients read comes as the
//! `X-Docker-Container-Path-Stat` header (base64 JSON `{name, size, mode, mtime, linkTarget}`,
//! the mode as Go's `os.FileMode`).

use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use berth_runtime::container::copy::{CopyError, PathStat, PutOptions};
use bytes::Bytes;
use http_body_util::{BodyExt, Empty};
use hyper::body::Incoming;
use hyper::{Method, Request, Response, StatusCode};

use super::containers::{blocking, empty, find, flag};
use super::errors::ApiError;
use super::{Body, Docker, blocking_stream, query};

/// The header Docker's clients read a path's stat from.
const STAT_HEADER: &str = "X-Docker-Container-Path-Stat";

/// Serves one archive route; `method` says which.
pub(super) async fn serve(
    docker: &Arc<Docker>,
    req: Request<Incoming>,
    method: &Method,
    what: &str,
    query: &str,
) -> Result<Response<Body>, ApiError> {
    let path = query::get(query, "path").unwrap_or_default();
    if path.is_empty() {
        return Err(ApiError::bad_request("path cannot be empty"));
    }
    let rt = docker.rt.clone();
    let (w, p) = (what.to_string(), PathBuf::from(&path));
    let (rec, stat) = blocking(move || {
        let rec = find(&rt, &w)?;
        let stat = rt.path_stat(&rec, &p).map_err(copy_error)?;
        Ok((rec, stat))
    })
    .await?;
    let Some(stat) = stat else {
        return Err(ApiError {
            status: StatusCode::NOT_FOUND,
            message: format!("Could not find the file {path} in container {what}"),
        });
    };
    if *method == Method::PUT {
        if stat.mode & libc::S_IFMT != libc::S_IFDIR {
            return Err(ApiError::bad_request("extraction point is not a directory"));
        }
        let opts = PutOptions {
            keep_owners: flag(query, "copyUIDGID"),
            keep_kinds: flag(query, "noOverwriteDirNonDir"),
        };
        let mut input = blocking_stream::reader(req.into_body());
        let rt = docker.rt.clone();
        blocking(move || {
            rt.archive_in(&rec, &mut input, &PathBuf::from(path), opts)
                .map_err(|e| ApiError::bad_request(crate::api::error::error_chain(&e)))
        })
        .await?;
        return Ok(empty(StatusCode::OK));
    }
    let header = stat_header(&stat);
    let mut resp = if *method == Method::HEAD {
        Response::new(Empty::<Bytes>::new().map_err(|e| match e {}).boxed())
    } else {
        let (mut out, body) = blocking_stream::body();
        let rt = docker.rt.clone();
        tokio::task::spawn_blocking(move || {
            // A client that leaves mid-stream ends the helper; nothing to answer then.
            if let Err(e) = rt.archive_out(&rec, &PathBuf::from(path), &mut out) {
                tracing::debug!(err = %crate::api::error::error_chain(&e), "archive stream ended");
            }
        });
        let mut r = Response::new(body);
        if let Ok(v) = "application/x-tar".parse() {
            r.headers_mut().insert(hyper::header::CONTENT_TYPE, v);
        }
        r
    };
    if let Ok(v) = header.parse() {
        resp.headers_mut().insert(STAT_HEADER, v);
    }
    Ok(resp)
}

fn copy_error(e: CopyError) -> ApiError {
    ApiError::internal(crate::api::error::error_chain(&e))
}

/// The stat as Docker's header carries it.
fn stat_header(s: &PathStat) -> String {
    let mtime = SystemTime::UNIX_EPOCH
        .checked_add(Duration::new(
            u64::try_from(s.mtime).unwrap_or(0),
            u32::try_from(s.mtime_nsec).unwrap_or(0),
        ))
        .unwrap_or(SystemTime::UNIX_EPOCH);
    let json = serde_json::json!({
        "name": s.name,
        "size": s.size,
        "mode": go_file_mode(s.mode),
        "mtime": humantime::format_rfc3339_nanos(mtime).to_string(),
        "linkTarget": s.link_target,
    });
    base64(json.to_string().as_bytes())
}

/// `st_mode` as Go's `os.FileMode`: permission bits low, the type and the set-id and sticky
/// bits as Go's own flags high.
fn go_file_mode(mode: u32) -> u32 {
    let mut m = mode & 0o777;
    m |= match mode & libc::S_IFMT {
        libc::S_IFDIR => 1 << 31,
        libc::S_IFLNK => 1 << 27,
        libc::S_IFBLK => 1 << 26,
        libc::S_IFCHR => (1 << 26) | (1 << 21),
        libc::S_IFIFO => 1 << 25,
        libc::S_IFSOCK => 1 << 24,
        _ => 0,
    };
    if mode & libc::S_ISUID != 0 {
        m |= 1 << 23;
    }
    if mode & libc::S_ISGID != 0 {
        m |= 1 << 22;
    }
    if mode & libc::S_ISVTX != 0 {
        m |= 1 << 20;
    }
    m
}

/// Standard base64 with padding (what Go's `base64.StdEncoding` reads).
fn base64(data: &[u8]) -> String {
    const ABC: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let mut out = String::with_capacity(data.len().div_ceil(3) * 4);
    for chunk in data.chunks(3) {
        let b = [
            chunk[0],
            chunk.get(1).copied().unwrap_or(0),
            chunk.get(2).copied().unwrap_or(0),
        ];
        let n = (u32::from(b[0]) << 16) | (u32::from(b[1]) << 8) | u32::from(b[2]);
        for i in 0..4 {
            if i <= chunk.len() {
                out.push(ABC[(n >> (18 - 6 * i) & 63) as usize] as char);
            } else {
                out.push('=');
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn base64_is_standard_with_padding() {
        assert_eq!(base64(b""), "");
        assert_eq!(base64(b"f"), "Zg==");
        assert_eq!(base64(b"fo"), "Zm8=");
        assert_eq!(base64(b"foo"), "Zm9v");
        assert_eq!(base64(b"{\"a\":1}"), "eyJhIjoxfQ==");
    }

    #[test]
    fn modes_become_go_file_modes() {
        assert_eq!(go_file_mode(libc::S_IFDIR | 0o755), (1 << 31) | 0o755);
        assert_eq!(go_file_mode(libc::S_IFREG | 0o644), 0o644);
        assert_eq!(go_file_mode(libc::S_IFLNK | 0o777), (1 << 27) | 0o777);
        assert_eq!(
            go_file_mode(libc::S_IFREG | libc::S_ISUID | 0o755),
            (1 << 23) | 0o755
        );
    }
}
