//! Services: the names pods resolve. Every Compose service gets a headless Service of its
//! own name: the name resolves to the ready pods' addresses, as berth's and Docker's DNS
//! answer with the containers' addresses, so every port a container listens on is reached
//! by name (a ClusterIP would forward only the ports the file happens to declare). Every
//! network alias and link alias is another such Service, and published ports a LoadBalancer
//! Service `<name>-published` on the published port.

use std::collections::BTreeSet;

use serde_json::{Value, json};

use super::{Conversion, ConvertError, labels, names, selector};
use crate::compose::Project;
use crate::compose::model::Service;

fn service(project: &Project, svc_name: &str, name: &str, ports: &[Value]) -> Value {
    let mut spec = json!({"selector": selector(project, svc_name), "clusterIP": "None"});
    if !ports.is_empty() {
        spec["ports"] = json!(ports);
    }
    json!({
        "apiVersion": "v1",
        "kind": "Service",
        "metadata": {"name": name, "labels": labels(project, svc_name)},
        "spec": spec,
    })
}

/// The Services of one Compose service.
pub(super) fn services(
    project: &Project,
    name: &str,
    svc: &Service,
    ports: &[(u16, String)],
    conv: &mut Conversion,
) -> Result<Vec<Value>, ConvertError> {
    let ports: Vec<Value> = ports
        .iter()
        .map(|(port, proto)| {
            json!({
                "name": format!("{}-{port}", proto.to_ascii_lowercase()),
                "port": port,
                "targetPort": port,
                "protocol": proto,
            })
        })
        .collect();
    let mut out = vec![service(project, name, name, &ports)];
    let mut aliases = BTreeSet::new();
    for net in svc.networks.values().flatten() {
        aliases.extend(net.aliases.iter().cloned());
    }
    // A link `db:database` names `db` as `database` for this service: in a cluster the alias
    // is a Service every pod sees (Compose scopes it to the linking container).
    for other in project.services.values() {
        for link in &other.links {
            if let Some((target, alias)) = link.split_once(':')
                && target == name
            {
                aliases.insert(alias.to_string());
            }
        }
    }
    aliases.remove(name);
    for alias in aliases {
        names::service_name("network alias", &alias)?;
        if project.services.contains_key(&alias) {
            conv.warn(
                name,
                "networks",
                format!("alias {alias:?} is also a service's name; the service keeps it"),
            );
            continue;
        }
        out.push(service(project, name, &alias, &ports));
    }
    let published: Vec<Value> = svc
        .ports
        .iter()
        .filter_map(|p| {
            let host = p.published.as_deref()?;
            let port: u16 = host.split('-').next()?.parse().ok()?;
            let proto = p.protocol.to_ascii_lowercase();
            Some(json!({
                "name": format!("{proto}-{port}"),
                "port": port,
                "targetPort": p.target,
                "protocol": p.protocol.to_ascii_uppercase(),
            }))
        })
        .collect();
    if !published.is_empty() {
        let mut lb = service(project, name, &format!("{name}-published"), &published);
        if let Some(spec) = lb["spec"].as_object_mut() {
            spec.remove("clusterIP");
            spec.insert("type".into(), json!("LoadBalancer"));
        }
        out.push(lb);
    }
    Ok(out)
}
