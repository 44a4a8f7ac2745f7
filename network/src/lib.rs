//! Container networking: netns, bridge/veth/addr/route over netlink, IPAM, firewall
//! (nftables: port DNAT, masquerade, isolation), embedded DNS server, /etc/hosts, resolv.conf.
