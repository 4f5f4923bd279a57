//! berth's accepts in Docker's DOCKER-USER chain: Docker's `filter FORWARD` drops by default,
//! so berth's forwarded traffic needs three narrow accepts there while berth has networks.

use crate::names::BRIDGE_PREFIX;
use crate::nft::{FirewallError, TABLE, nft, table};

/// Comment on the rules berth adds to Docker's DOCKER-USER chain, to find them again.
pub const DOCKER_USER_COMMENT: &str = "berth";

/// Docker's `ip filter FORWARD` with policy drop blocks forwarded traffic whatever berth's
/// table accepts; Docker documents DOCKER-USER as the place for the user's accepts. This keeps
/// three narrow accepts there (from berth bridges, replies to them, and connections to their
/// published ports, which DNAT sends to a berth bridge) while berth has networks,
/// and none when it has none. Returns whether something changed.
pub fn sync_docker_user(want: bool) -> Result<bool, FirewallError> {
    sync_docker_user_in(table(), want, &[])
}

/// The comment that marks the DOCKER-USER accepts of the instance whose table is `table`:
/// `berth` for the default table, `berth:<table>` for others. Each instance keeps and removes
/// only its own pair, so one instance removing its last network never takes away the
/// accepts another instance's containers still need.
pub fn docker_user_comment(table: &str) -> String {
    if table == TABLE {
        DOCKER_USER_COMMENT.to_string()
    } else {
        format!("{DOCKER_USER_COMMENT}:{table}")
    }
}

/// [`sync_docker_user`] for the instance whose table is `table` (its accepts carry
/// [`docker_user_comment`]).
pub fn sync_docker_user_in(
    table: &str,
    want: bool,
    named: &[String],
) -> Result<bool, FirewallError> {
    sync_docker_user_family_in("ip", table, want, named)
}

/// berth's accepts in Docker's DOCKER-USER chain of one family, as the kernel has them.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct DockerUserSeen {
    /// Rule handles of this instance's accepts.
    pub ours: Vec<String>,
    /// Whether Docker's FORWARD chain drops by default (only then are accepts needed).
    pub drop_policy: bool,
}

impl DockerUserSeen {
    /// Whether [`sync_docker_user_family_in`] with `want` and `named` bridges would change the
    /// chain: the three accepts per bridge pattern (`berth-*` and each bridge named by the
    /// user) are wanted (berth has networks and Docker's policy drops) but not all there, or
    /// not wanted but some are.
    pub fn needs_change(&self, want: bool, named: &[String]) -> bool {
        let want = want && self.drop_policy;
        if want {
            self.ours.len() != 3 * (1 + named.len())
        } else {
            !self.ours.is_empty()
        }
    }
}

/// berth's accepts in Docker's `family filter` DOCKER-USER chain (blocking; on the namespace
/// worker); `None` when Docker has no such table or chain.
pub fn docker_user_seen(
    family: &str,
    table: &str,
) -> Result<Option<DockerUserSeen>, FirewallError> {
    let comment = docker_user_comment(table);
    // One cheap listing first: on a host without Docker there is nothing more to read.
    let tables = String::from_utf8_lossy(&nft(&["list", "tables"], None)?).into_owned();
    if !tables
        .lines()
        .any(|l| l.trim() == format!("table {family} filter"))
    {
        return Ok(None);
    }
    let forward = match nft(&["list", "chain", family, "filter", "FORWARD"], None) {
        Ok(o) => String::from_utf8_lossy(&o).into_owned(),
        Err(FirewallError::Nft { .. }) => String::new(),
        Err(e) => return Err(e),
    };
    let docker_user = match nft(
        &["-a", "list", "chain", family, "filter", "DOCKER-USER"],
        None,
    ) {
        Ok(o) => Some(String::from_utf8_lossy(&o).into_owned()),
        Err(FirewallError::Nft { .. }) => None,
        Err(e) => return Err(e),
    };
    let Some(du) = docker_user else {
        return Ok(None);
    };
    let ours = du
        .lines()
        .filter(|l| l.contains(&format!("comment \"{comment}\"")))
        .filter_map(|l| {
            l.rsplit_once("# handle ")
                .map(|(_, h)| h.trim().to_string())
        })
        .collect();
    Ok(Some(DockerUserSeen {
        ours,
        drop_policy: forward.contains("policy drop"),
    }))
}

/// [`sync_docker_user_in`] for Docker's `family filter` table: `ip`, or `ip6` when Docker
/// runs with ip6tables (its IPv6 FORWARD policy is drop as well) and berth has IPv6 networks.
/// `named` are the bridges named by the user (`com.docker.network.bridge.name`), which the
/// `berth-*` pattern does not cover: each gets the same three accepts.
pub fn sync_docker_user_family_in(
    family: &str,
    table: &str,
    want: bool,
    named: &[String],
) -> Result<bool, FirewallError> {
    let comment = docker_user_comment(table);
    let Some(seen) = docker_user_seen(family, table)? else {
        return Ok(false);
    };
    if !seen.needs_change(want, named) {
        return Ok(false);
    }
    let want = want && seen.drop_policy;
    let ours = seen.ours;
    for h in &ours {
        nft(
            &[
                "delete",
                "rule",
                family,
                "filter",
                "DOCKER-USER",
                "handle",
                h,
            ],
            None,
        )?;
    }
    if want {
        let c = format!("\"{comment}\"");
        let patterns = std::iter::once(format!("\"{BRIDGE_PREFIX}*\""))
            .chain(named.iter().map(|b| format!("\"{b}\"")));
        for pat in patterns {
            // Inserted in reverse: the chain ends up from berth bridges, replies to them,
            // connections to their published ports.
            let matches: [&[&str]; 3] = [
                &["oifname", &pat, "ct", "status", "dnat"],
                &["oifname", &pat, "ct", "state", "established,related"],
                &["iifname", &pat],
            ];
            for m in matches {
                let mut args = vec!["insert", "rule", family, "filter", "DOCKER-USER"];
                args.extend_from_slice(m);
                args.extend_from_slice(&["counter", "accept", "comment", &c]);
                nft(&args, None)?;
            }
        }
    }
    Ok(true)
}
