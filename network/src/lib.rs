//! Container networking: netns, bridge/veth/addr/route over netlink, IPAM, firewall
//! (nftables: port DNAT, masquerade, isolation), embedded DNS server, /etc/hosts, resolv.conf.
//!
//! The supervisor drives it: [`Netns::create`] pins a namespace for a container,
//! [`Networks::ensure_network`] builds a bridge, [`Networks::connect`] wires the namespace,
//! [`Networks::publish`] adds port DNAT, [`dns::DnsServer`] answers names, and
//! [`Networks::remove_all`] undoes everything that state records, even after a crash.

pub mod dns;
pub mod files;
pub mod firewall;
pub mod ipam;
pub mod manager;
pub mod netlink;
pub mod netns;
pub mod ports;
pub mod state;

pub use dns::{DnsConfig, DnsServer, NameTable};
pub use firewall::{Firewall, FirewallError, Nft, NoFirewall};
pub use ipam::Pool;
pub use manager::{Endpoint, EndpointSpec, NetworkError, NetworkInfo, NetworkSpec, Networks};
pub use netns::{Netns, NetnsError};
pub use ports::{PortSpec, Proto, PublishedPort};
pub use state::{EndpointRecord, NetworkRecord};
