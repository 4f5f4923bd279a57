//! A service's `external_links`: containers outside the project, by name, each under its
//! own name or an alias that resolves for the service's containers alone (Docker's legacy
//! link), on the networks they share.

use super::*;

impl Engine {
    /// The `(alias, container name)` pairs of `external_links` (`NAME` or `NAME:ALIAS`); a
    /// container that does not exist fails the create, naming the entry.
    pub(super) fn external_links(
        &self,
        service: &str,
        svc: &crate::compose::Service,
    ) -> Result<Vec<(String, String)>, String> {
        let mut out = Vec::new();
        for (i, entry) in svc.external_links.iter().enumerate() {
            let (target, alias) = entry.split_once(':').unwrap_or((entry, entry));
            let rec = self
                .runtime
                .resolve(target)
                .map_err(|err| format!("service {service}: external_links[{i}] {entry}: {err}"))?;
            out.push((alias.to_string(), rec.config.name));
        }
        Ok(out)
    }
}
