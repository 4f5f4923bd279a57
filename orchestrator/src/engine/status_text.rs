//! A container's state in Docker's words: `State` (`running`, `paused`, `exited`, `created`)
//! and the `Status` line `docker ps` prints (`Up 3 minutes`, `Exited (0) 2 hours ago`); one
//! wording for the Docker API's lists and `berth ps`.

use std::collections::BTreeMap;
use std::path::Path;
use std::time::{Duration, SystemTime};

use berth_runtime::container::{Record, Runtime, State, Status};

/// Docker's `State` of a container.
pub fn state(rt: &Runtime, rec: &Record, st: &State) -> &'static str {
    if rt.is_paused(rec) {
        "paused"
    } else if rt.is_running(rec) {
        "running"
    } else if st.status == Status::Created {
        "created"
    } else {
        "exited"
    }
}

/// Docker's `Status` line for a container in `state`.
pub fn status_line(state: &str, st: &State, now: SystemTime) -> String {
    let since = |t: Option<SystemTime>| {
        human_duration(
            t.and_then(|t| now.duration_since(t).ok())
                .unwrap_or_default(),
        )
    };
    match state {
        "running" => format!("Up {}", since(st.started_at)),
        "paused" => format!("Up {} (Paused)", since(st.started_at)),
        "created" => "Created".to_string(),
        _ => match st.finished_at {
            Some(_) => format!(
                "Exited ({}) {} ago",
                st.exit_code.unwrap_or(0),
                since(st.finished_at)
            ),
            None => format!("Exited ({})", st.exit_code.unwrap_or(0)),
        },
    }
}

/// The image a container was made from as its creator named it (`nginx:1.25`), and its id:
/// the `image-ref` file the create wrote, else Compose's image label, else the id.
pub fn image_of(dir: &Path, labels: &BTreeMap<String, String>) -> (String, String) {
    let read = |f: &str| {
        std::fs::read_to_string(dir.join(f))
            .ok()
            .map(|s| s.trim().to_string())
            .filter(|s| !s.is_empty())
    };
    let id = read(berth_runtime::image::store::CONTAINER_IMAGE_ID_FILE).unwrap_or_default();
    let name = read("image-ref")
        .or_else(|| labels.get(super::labels::IMAGE).cloned())
        .unwrap_or_else(|| id.clone());
    (name, id)
}

/// A duration as Docker writes it for people (`About a minute`, `3 hours`, `2 weeks`).
pub fn human_duration(d: Duration) -> String {
    let secs = d.as_secs();
    let hours = ((d.as_secs_f64() / 3600.0) + 0.5) as u64;
    match secs {
        0 => "Less than a second".into(),
        1 => "1 second".into(),
        s if s < 60 => format!("{s} seconds"),
        s if s / 60 == 1 => "About a minute".into(),
        s if s / 60 < 60 => format!("{} minutes", s / 60),
        _ if hours == 1 => "About an hour".into(),
        _ if hours < 48 => format!("{hours} hours"),
        _ if hours < 24 * 7 * 2 => format!("{} days", hours / 24),
        _ if hours < 24 * 30 * 2 => format!("{} weeks", hours / 24 / 7),
        _ if hours < 24 * 365 * 2 => format!("{} months", hours / 24 / 30),
        _ => format!("{} years", secs / 3600 / 24 / 365),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations_read_as_dockers() {
        let s = Duration::from_secs;
        assert_eq!(human_duration(s(0)), "Less than a second");
        assert_eq!(human_duration(s(1)), "1 second");
        assert_eq!(human_duration(s(59)), "59 seconds");
        assert_eq!(human_duration(s(60)), "About a minute");
        assert_eq!(human_duration(s(119)), "About a minute");
        assert_eq!(human_duration(s(120)), "2 minutes");
        assert_eq!(human_duration(s(3600)), "About an hour");
        assert_eq!(human_duration(s(5 * 3600)), "5 hours");
        assert_eq!(human_duration(s(3 * 86400)), "3 days");
        assert_eq!(human_duration(s(21 * 86400)), "3 weeks");
        assert_eq!(human_duration(s(90 * 86400)), "3 months");
        assert_eq!(human_duration(s(3 * 365 * 86400)), "3 years");
    }

    #[test]
    fn status_lines_read_as_dockers() {
        let now = SystemTime::now();
        let mut st = State::new("id", "web");
        assert_eq!(status_line("created", &st, now), "Created");
        st.started_at = Some(now - Duration::from_secs(180));
        assert_eq!(status_line("running", &st, now), "Up 3 minutes");
        assert_eq!(status_line("paused", &st, now), "Up 3 minutes (Paused)");
        st.exit_code = Some(137);
        st.finished_at = Some(now - Duration::from_secs(7200));
        assert_eq!(status_line("exited", &st, now), "Exited (137) 2 hours ago");
    }
}
