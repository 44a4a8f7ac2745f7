//! Containers: namespaces, rootfs, mounts, cgroups, capabilities, seccomp, exec, logs.
