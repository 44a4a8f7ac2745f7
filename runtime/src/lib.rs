//! The container runtime: images (reference, registry client, content store, layer unpack,
//! image config) and containers (namespaces, rootfs/overlay, mounts, cgroups v1+v2,
//! capabilities, seccomp, users, tty, exec, signals). Sync API.

pub mod build;
pub mod container;
pub mod image;
