//! Destinations pacer never dials (SPEC section 5): its own listeners and
//! admin address (by port, on their own address, any loopback address or
//! the unspecified address, which reaches the local host), and `[server]
//! deny_destinations` (CIDRs and host globs). A name or address literal is
//! checked before anything else; direct egress also checks every resolved
//! address, so a name that resolves into a denied range is refused too.

use std::net::{IpAddr, SocketAddr};

use ipnet::IpNet;

use super::target::{Host, Target};
use crate::config::{DenyRule, HostGlobs};

/// The destinations pacer refuses.
#[derive(Debug, Clone)]
pub struct Deny {
    nets: Vec<IpNet>,
    hosts: HostGlobs,
    own: Vec<SocketAddr>,
}

/// A refused destination.
#[derive(Debug, Clone, thiserror::Error)]
#[error("{destination} is not a destination pacer dials ({why})")]
pub struct Denied {
    /// `host:port` asked for.
    pub destination: String,
    /// Which rule refused it.
    pub why: &'static str,
}

impl Deny {
    /// The rules of `[server] deny_destinations`, and pacer's own bound
    /// addresses `own`.
    pub fn new(rules: &[DenyRule], own: Vec<SocketAddr>) -> Result<Self, String> {
        let mut nets = Vec::new();
        let mut globs = Vec::new();
        for rule in rules {
            match rule {
                DenyRule::Net(net) => nets.push(*net),
                DenyRule::Host(glob) => globs.push(glob.clone()),
            }
        }
        Ok(Deny {
            nets,
            hosts: HostGlobs::new(&globs)?,
            own,
        })
    }

    /// Checks `target` as asked: an address literal against every rule, a
    /// name against the host globs.
    pub fn check_target(&self, target: &Target) -> Result<(), Denied> {
        match &target.host {
            Host::Ip(ip) => self.check_address(target, SocketAddr::new(*ip, target.port)),
            Host::Name(name) if self.hosts.matches(name) => Err(denied(target, "a denied name")),
            Host::Name(_) => Ok(()),
        }
    }

    /// Checks one address `target` resolved to.
    pub fn check_address(&self, target: &Target, addr: SocketAddr) -> Result<(), Denied> {
        let ip = canonical(addr.ip());
        if self.nets.iter().any(|net| net.contains(&ip)) {
            return Err(denied(target, "a denied network"));
        }
        if self.own.iter().any(|own| is_pacer(*own, ip, addr.port())) {
            return Err(denied(target, "pacer itself"));
        }
        Ok(())
    }
}

fn denied(target: &Target, why: &'static str) -> Denied {
    Denied {
        destination: target.to_string(),
        why,
    }
}

/// An IPv4-mapped IPv6 address as the IPv4 address it is.
fn canonical(ip: IpAddr) -> IpAddr {
    match ip {
        IpAddr::V6(v6) => v6.to_ipv4_mapped().map_or(ip, IpAddr::V4),
        IpAddr::V4(_) => ip,
    }
}

/// Whether `ip:port` reaches the listener bound at `own`.
fn is_pacer(own: SocketAddr, ip: IpAddr, port: u16) -> bool {
    if own.port() != port {
        return false;
    }
    canonical(own.ip()) == ip || ip.is_loopback() || ip.is_unspecified()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn deny(own: &[&str]) -> Deny {
        let mut rules = DenyRule::link_local();
        rules.push(DenyRule::Host("*.blocked.example".into()));
        let own = own.iter().map(|a| a.parse().expect("addr")).collect();
        Deny::new(&rules, own).expect("deny")
    }

    #[test]
    fn metadata_ranges_names_and_pacer_itself_are_refused() {
        let d = deny(&["127.0.0.1:9090"]);
        let target = |h: &str, p| Target::destination(h, p).expect("target");
        assert!(d.check_target(&target("169.254.169.254", 80)).is_err());
        assert!(d.check_target(&target("fe80::1", 80)).is_err());
        assert!(
            d.check_target(&target("::ffff:169.254.169.254", 80))
                .is_err(),
            "mapped"
        );
        assert!(d.check_target(&target("api.blocked.example", 443)).is_err());
        assert!(d.check_target(&target("127.0.0.1", 9090)).is_err());
        assert!(
            d.check_target(&target("127.0.0.2", 9090)).is_err(),
            "another loopback"
        );
        assert!(d.check_target(&target("127.0.0.1", 9091)).is_ok());
        assert!(d.check_target(&target("example.com", 443)).is_ok());
        let resolved = target("metadata.internal", 80);
        let addr = "169.254.169.254:80".parse().expect("addr");
        assert!(
            d.check_address(&resolved, addr).is_err(),
            "a name resolving into a range"
        );
    }

    #[test]
    fn the_unspecified_address_reaches_pacer_and_other_hosts_do_not() {
        let d = deny(&["0.0.0.0:8080"]);
        let local = Target::destination("0.0.0.0", 8080).expect("target");
        assert!(d.check_target(&local).is_err());
        let other = Target::destination("10.1.2.3", 8080).expect("target");
        assert!(d.check_target(&other).is_ok(), "another host's port 8080");
        let open = Deny::new(&[], Vec::new()).expect("empty");
        let metadata = Target::destination("169.254.169.254", 80).expect("target");
        assert!(
            open.check_target(&metadata).is_ok(),
            "`[]` turns the ranges off"
        );
    }
}
