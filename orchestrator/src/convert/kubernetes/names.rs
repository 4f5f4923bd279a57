//! The names Kubernetes accepts. A Compose service name becomes a Service name, which is what
//! other pods resolve: one that Kubernetes would refuse or change is refused here, so that no
//! name silently stops resolving.

use super::ConvertError;
use crate::compose::Project;

const DNS_1035: &str = "DNS-1035 label: lowercase letters, digits and '-', starting with a letter, at most 63 characters";
const DNS_1123: &str =
    "DNS-1123 subdomain: lowercase letters, digits, '-' and '.', at most 253 characters";

/// A Service name (`[a-z]([-a-z0-9]*[a-z0-9])?`, at most 63 bytes).
pub(super) fn is_dns1035(s: &str) -> bool {
    let b = s.as_bytes();
    !b.is_empty()
        && b.len() <= 63
        && b[0].is_ascii_lowercase()
        && b[b.len() - 1] != b'-'
        && b.iter()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || *c == b'-')
}

/// An object name such as a PersistentVolumeClaim's or ConfigMap's.
pub(super) fn is_dns1123_subdomain(s: &str) -> bool {
    !s.is_empty()
        && s.len() <= 253
        && s.split('.').all(|part| {
            let b = part.as_bytes();
            !b.is_empty()
                && b[0].is_ascii_alphanumeric()
                && b[b.len() - 1].is_ascii_alphanumeric()
                && b.iter()
                    .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || *c == b'-')
        })
}

/// A Service name, refused by name when invalid.
pub(super) fn service_name(what: &'static str, name: &str) -> Result<(), ConvertError> {
    if is_dns1035(name) {
        Ok(())
    } else {
        Err(ConvertError::Name {
            what,
            name: name.to_string(),
            rule: DNS_1035,
        })
    }
}

/// An object name, refused by name when invalid.
pub(super) fn object_name(what: &'static str, name: &str) -> Result<(), ConvertError> {
    if is_dns1123_subdomain(name) {
        Ok(())
    } else {
        Err(ConvertError::Name {
            what,
            name: name.to_string(),
            rule: DNS_1123,
        })
    }
}

/// Every service name of the project (they become Service and workload names).
pub(super) fn check_project(project: &Project) -> Result<(), ConvertError> {
    for name in project.services.keys() {
        service_name("service name", name)?;
    }
    Ok(())
}

/// A name made from parts that may hold `_` (volume keys, file names): lowercase, `_` and
/// other characters as `-`, trimmed to an object name.
pub(super) fn sanitize(s: &str) -> String {
    let mut out: String = s
        .chars()
        .map(|c| {
            let c = c.to_ascii_lowercase();
            if c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-' {
                c
            } else {
                '-'
            }
        })
        .collect();
    out.truncate(63);
    out.trim_matches('-').to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn service_names_follow_dns_1035() {
        for ok in ["web", "php-fpm", "db2", "a"] {
            assert!(is_dns1035(ok), "{ok}");
        }
        for bad in ["php_fpm", "Web", "2db", "db-", "", "a.b", &"x".repeat(64)] {
            assert!(!is_dns1035(bad), "{bad}");
        }
    }

    #[test]
    fn object_names_follow_dns_1123() {
        assert!(is_dns1123_subdomain("lnmp-dbdata"));
        assert!(is_dns1123_subdomain("a.b-c"));
        assert!(!is_dns1123_subdomain("db_data"));
        assert!(!is_dns1123_subdomain("-x"));
        assert_eq!(sanitize("My_Volume.1"), "my-volume-1");
    }
}
