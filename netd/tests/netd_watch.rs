//! netd's watch loop on a simulated host: its own attaches do not wake a whole reconcile, and a
//! link of its own broken behind its back is repaired without anyone asking.

mod common;

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use common::sim::*;
use common::*;

#[test_with::root()]
#[test]
fn attaches_wake_no_reconcile_and_a_veth_set_off_its_bridge_is_put_back() {
    let fx = Fx::<4>::new();
    let host = fx.sim.host.name.clone();
    fx.with_netd_multi(async |n| {
        let runs = Arc::new(AtomicUsize::new(0));
        let r = runs.clone();
        n.on_reconcile(move |_| {
            r.fetch_add(1, Ordering::SeqCst);
        });
        n.create_network(net("app")).await.expect("create");
        // The backstop far away: every reconcile below is one the events asked for.
        let watch = tokio::spawn(n.clone().run(Duration::from_secs(3600)));
        let t0 = Instant::now();
        while runs.load(Ordering::SeqCst) == 0 {
            assert!(
                t0.elapsed() < Duration::from_secs(10),
                "the first reconcile"
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        let before = runs.load(Ordering::SeqCst);
        let mut eps = Vec::new();
        for c in &fx.c {
            eps.push(attach(&n, c, vec![ep("app")]).await);
        }
        n.detach(&fx.c[3].name, None).await.expect("detach");
        // Past the debounce and the interval a burst of own-link events waits for.
        tokio::time::sleep(Duration::from_millis(1500)).await;
        assert_eq!(
            runs.load(Ordering::SeqCst),
            before,
            "attaches and a detach of netd's own woke a whole reconcile"
        );
        // A veth taken off its bridge behind netd's back: the event alone brings it back.
        let veth = eps[0][0].host_ifname.clone();
        ip(&host, &["link", "set", &veth, "nomaster"]);
        let t0 = Instant::now();
        loop {
            let shown = ip(&host, &["-o", "link", "show", &veth]);
            if shown.contains(" master ") {
                break;
            }
            assert!(
                t0.elapsed() < Duration::from_secs(10),
                "the veth is back on its bridge: {shown}"
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        assert!(
            runs.load(Ordering::SeqCst) > before,
            "a reconcile repaired it"
        );
        watch.abort();
        for c in &fx.c[..3] {
            n.detach(&c.name, None).await.expect("detach");
        }
        n.remove_network("app").await.expect("remove");
    });
}
