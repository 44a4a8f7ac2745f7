//! Container networking: netns, bridge/veth/addr/route over netlink, IPAM, firewall
//! (nftables: port DNAT, masquerade, isolation), embedded DNS server, /etc/hosts, resolv.conf.
//!
//! How the supervisor drives it (all calls are blocking: from tokio, use `spawn_blocking`):
//!
//! ```text
//! let nets = Networks::new(root);                          // state in <root>/network
//! nets.check_all_ports(&[(container, port_specs), ..])?;   // before anything starts
//! let info = nets.ensure_network(&NetworkSpec { name: "proj_default".into(), .. })?;
//! let dns = DnsServer::start(nets.dns_config("proj_default", dns::host_resolvers())?,
//!                            NameTable::default())?;       // follows the state file;
//!                                 // e.is_addr_in_use(): another process already serves it
//! let pin = Netns::pin_for(run_dir, "proj-web-1");
//! Netns::create(&pin)?;                                    // the runtime setns()es into pin
//! let ep = nets.connect("proj_default", &pin, &EndpointSpec { container, ifname: "eth0",
//!                        names: [service, container, hostname, aliases..],
//!                        default_route: true, .. })?;     // eth1.. for more networks
//! nets.publish("proj-web-1", ep.ip, &port_specs)?;         // -> Vec<PublishedPort> for ps/port
//! files::write(dir, &files::hosts(..), &files::resolv_conf(Some(info.gateway), ..))?;
//! // down:
//! nets.disconnect_all("proj-web-1")?; Netns::remove(&pin)?; nets.remove_network("proj_default")?;
//! // after a crash, everything recorded:  nets.remove_all()?; Netns::remove_all_under(run_dir);
//! ```
//!
//! `network_mode`: `host` → no netns, no connect; `none` → `Netns::create` only (loopback
//! up); `service:x` / `container:x` → the runtime joins x's pin, nothing is connected.
//! An `external: true` network is looked up, never created, and must not be passed to
//! `remove_network` by the project that only references it.

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
