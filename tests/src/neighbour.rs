//! A LAN neighbour of a simulated host, for tests of what reaches a host's containers from
//! outside (and what comes back to them): a namespace of its own on a veth to the host's.

use crate::host::Host;

/// A LAN neighbour of the simulated host: a namespace linked to it by a veth
/// (192.168.177.2 here, 192.168.177.1 on the host), removed on drop.
pub struct Neighbour {
    /// The neighbour's namespace (`bt-nb-<pid>`).
    pub ns: String,
    /// The simulated host's netns, which holds the `lan0` end of the neighbour's veth.
    host_ns: String,
}

impl Neighbour {
    /// Links a new neighbour namespace to `host`'s.
    pub fn new(host: &Host) -> Self {
        let ns = format!("bt-nb-{}", std::process::id());
        let ip = |args: &[&str]| {
            let o = std::process::Command::new("ip")
                .args(args)
                .output()
                .expect("ip");
            assert!(
                o.status.success(),
                "ip {args:?}: {}",
                String::from_utf8_lossy(&o.stderr)
            );
        };
        ip(&["netns", "add", &ns]);
        let me = Self {
            ns,
            host_ns: host.ns.clone(),
        };
        let ns = me.ns.as_str();
        ip(&[
            "link", "add", "lan0", "netns", &host.ns, "type", "veth", "peer", "name", "eth0",
            "netns", ns,
        ]);
        ip(&[
            "-n",
            &host.ns,
            "addr",
            "add",
            "192.168.177.1/24",
            "dev",
            "lan0",
        ]);
        ip(&["-n", &host.ns, "link", "set", "lan0", "up"]);
        ip(&["-n", ns, "addr", "add", "192.168.177.2/24", "dev", "eth0"]);
        ip(&["-n", ns, "link", "set", "eth0", "up"]);
        ip(&["-n", ns, "link", "set", "lo", "up"]);
        me
    }

    /// The body of an HTTP GET from the neighbour (empty when nothing answers in 2 s).
    pub fn curl(&self, url: &str) -> String {
        let o = std::process::Command::new("ip")
            .args([
                "netns",
                "exec",
                &self.ns,
                "curl",
                "-sS",
                "--max-time",
                "2",
                url,
            ])
            .output()
            .expect("curl");
        String::from_utf8_lossy(&o.stdout).to_string()
    }

    /// Runs a shell command in the neighbour's namespace.
    pub fn sh(&self, cmd: &str) -> std::process::Output {
        std::process::Command::new("ip")
            .args(["netns", "exec", &self.ns, "sh", "-c", cmd])
            .output()
            .expect("ip netns exec")
    }
}

impl Drop for Neighbour {
    fn drop(&mut self) {
        // Deleting the veth first removes both ends at once; the kernel tears down a deleted
        // namespace's links later, after the leak check may already have looked.
        let _ = std::process::Command::new("ip")
            .args(["-n", &self.host_ns, "link", "del", "lan0"])
            .status();
        let _ = std::process::Command::new("ip")
            .args(["netns", "del", &self.ns])
            .status();
    }
}
