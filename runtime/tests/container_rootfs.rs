//! Privileged tests of the root filesystem: overlay with a per-container upper folder,
//! /proc, /sys, /dev, masked and read-only paths, read_only roots, bind mounts, volumes,
//! tmpfs and file mounts; checked from inside with busybox and from outside in mountinfo.

mod container_support;

use std::time::Duration;

use container_support::{eventually, Harness};
use runtime::container::{ExitStatus, MountSpec};

#[test]
fn overlay_root_writes_go_to_the_upper_folder() {
    let h = Harness::new();
    let spec = h.spec(
        "overlay",
        &[
            "sh",
            "-c",
            "echo new > /etc/created; cat /data/from-image; rm /data/from-image",
        ],
    );
    let (c, out, _err) = h.create(&spec);
    // From outside: the container's mountinfo has the overlay root with our upper folder.
    let mountinfo = std::fs::read_to_string(format!("/proc/{}/mountinfo", c.pid)).unwrap();
    let root_line = mountinfo
        .lines()
        .find(|l| l.split_whitespace().nth(4) == Some("/"))
        .unwrap();
    assert!(
        root_line.contains(" - overlay overlay ")
            && root_line.contains(&format!(
                "upperdir={}",
                spec.state_dir.join("upper").display()
            )),
        "{root_line}"
    );
    c.start().unwrap();
    assert_eq!(
        runtime::container::wait(c.pid).unwrap(),
        ExitStatus::Code(0)
    );
    assert_eq!(
        std::fs::read_to_string(spec.state_dir.join("upper/etc/created")).unwrap(),
        "new\n"
    );
    // The image layer itself is untouched.
    assert!(h.layer.join("data/from-image").exists());
    c.remove().unwrap();
    assert_eq!(out.join().unwrap(), "image content\n");
    assert!(!spec.state_dir.exists());
}

#[test]
fn proc_sys_dev_look_like_docker() {
    let h = Harness::new();
    let mut spec = h.spec("devs", &["sh", "-c", concat!(
        "ls /dev | sort | tr '\\n' ' '; echo; ",
        "stat -c '%a %t:%T' /dev/null /dev/zero /dev/urandom; ",
        "df -k /dev/shm | tail -1 | awk '{print $2}'; ",
        "grep -E ' /(proc/sys|sys|proc/timer_list|proc/keys|dev/pts|dev/mqueue) ' /proc/self/mountinfo | awk '{print $5, $6}' | sort; ",
        "echo 1 > /proc/sys/kernel/domainname 2>/dev/null && echo writable || echo ro; ",
        "wc -c < /proc/keys; ls /proc/acpi | wc -l"
    )]);
    spec.shm_size = Some(8 << 20);
    let out = h.run(&spec);
    assert_eq!(out.status, ExitStatus::Code(0), "{}", out.stderr);
    let lines: Vec<&str> = out.stdout.lines().collect();
    assert_eq!(
        lines[0].trim(),
        "core fd full mqueue null ptmx pts random shm stderr stdin stdout tty urandom zero"
    );
    assert_eq!(&lines[1..4], &["666 1:3", "666 1:5", "666 1:9"]);
    assert_eq!(lines[4], "8192");
    let mounts = &lines[5..11];
    assert!(
        mounts.iter().any(|l| l.starts_with("/proc/sys ro")),
        "{mounts:?}"
    );
    assert!(
        mounts.iter().any(|l| l.starts_with("/sys ro")),
        "{mounts:?}"
    );
    assert!(
        mounts.iter().any(|l| l.starts_with("/proc/timer_list ")),
        "{mounts:?}"
    );
    assert!(
        mounts.iter().any(|l| l.starts_with("/proc/keys ")),
        "{mounts:?}"
    );
    assert!(
        mounts.iter().any(|l| l.starts_with("/dev/pts rw")),
        "{mounts:?}"
    );
    assert!(
        mounts.iter().any(|l| l.starts_with("/dev/mqueue rw")),
        "{mounts:?}"
    );
    assert_eq!(lines[11], "ro");
    assert_eq!(lines[12], "0", "masked /proc/keys reads as /dev/null");
    assert_eq!(lines[13], "0", "masked /proc/acpi is an empty tmpfs");
}

#[test]
fn read_only_root_refuses_writes_but_tmpfs_accepts_them() {
    let h = Harness::new();
    let mut spec = h.spec("ro", &["sh", "-c", "touch /etc/x 2>/dev/null && echo rw || echo ro; touch /scratch/x && echo tmp-ok; stat -c %a /scratch; df -k /scratch | tail -1 | awk '{print $2}'"]);
    spec.read_only = true;
    spec.mounts = vec![MountSpec::Tmpfs {
        target: "/scratch".into(),
        size: Some(4 << 20),
        mode: Some(0o750),
    }];
    let out = h.run(&spec);
    assert_eq!(out.stdout, "ro\ntmp-ok\n750\n4096\n", "{}", out.stderr);
}

#[test]
fn bind_volume_and_file_mounts() {
    let h = Harness::new();
    let host = h.tmp.path().join("host-data");
    std::fs::create_dir_all(&host).unwrap();
    std::fs::write(host.join("hello"), "from host\n").unwrap();
    let created = h.tmp.path().join("made-by-bind");
    let vol = h.tmp.path().join("state/volumes/v1/_data");
    let hosts = h.tmp.path().join("hosts");
    std::fs::write(&hosts, "127.0.0.1 localhost\n10.213.0.5 db\n").unwrap();
    let secret = h.tmp.path().join("secret");
    std::fs::write(&secret, "s3cret").unwrap();
    let mut spec = h.spec(
        "mounts",
        &[
            "sh",
            "-c",
            concat!(
                "cat /in/hello; echo x > /in/new 2>/dev/null && echo in-rw || echo in-ro; ",
                "echo w > /made/file && echo made-rw; ",
                "cat /data/from-image; echo vol > /data/written; ",
                "grep db /etc/hosts; cat /run/secrets/token; echo; ",
                "echo hack > /run/secrets/token 2>/dev/null && echo secret-rw || echo secret-ro"
            ),
        ],
    );
    spec.mounts = vec![
        MountSpec::Bind {
            source: host.clone(),
            target: "/in".into(),
            read_only: true,
            propagation: None,
            create_host_path: false,
        },
        MountSpec::Bind {
            source: created.clone(),
            target: "/made".into(),
            read_only: false,
            propagation: Some(runtime::container::Propagation::Rprivate),
            create_host_path: true,
        },
        MountSpec::Volume {
            source: vol.clone(),
            target: "/data".into(),
            read_only: false,
            nocopy: false,
        },
        MountSpec::File {
            source: hosts,
            target: "/etc/hosts".into(),
            read_only: false,
        },
        MountSpec::File {
            source: secret,
            target: "/run/secrets/token".into(),
            read_only: true,
        },
    ];
    let out = h.run(&spec);
    assert_eq!(
        out.stdout, "from host\nin-ro\nmade-rw\nimage content\n10.213.0.5 db\ns3cret\nsecret-ro\n",
        "{}",
        out.stderr
    );
    assert!(!host.join("new").exists());
    assert_eq!(
        std::fs::read_to_string(created.join("file")).unwrap(),
        "w\n"
    );
    // The volume was filled from the image on first use and keeps what the container wrote.
    assert_eq!(
        std::fs::read_to_string(vol.join("from-image")).unwrap(),
        "image content\n"
    );
    assert_eq!(
        std::fs::read_to_string(vol.join("written")).unwrap(),
        "vol\n"
    );
    // Second use: not refilled (the container's deletion stays deleted).
    std::fs::remove_file(vol.join("from-image")).unwrap();
    let mut spec2 = h.spec("mounts2", &["ls", "/data"]);
    spec2.mounts = vec![MountSpec::Volume {
        source: vol.clone(),
        target: "/data".into(),
        read_only: true,
        nocopy: false,
    }];
    let out = h.run(&spec2);
    assert_eq!(out.stdout, "written\n", "{}", out.stderr);
}

#[test]
fn a_symlink_in_the_image_cannot_send_a_mount_outside_the_root() {
    let h = Harness::new();
    std::os::unix::fs::symlink("/../../../../tmp/escape-target", h.layer.join("escape")).unwrap();
    let mut spec = h.spec("symlink", &["sh", "-c", "ls /tmp/escape-target"]);
    spec.mounts = vec![MountSpec::Tmpfs {
        target: "/escape/x".into(),
        size: None,
        mode: None,
    }];
    let out = h.run(&spec);
    assert_eq!(out.status, ExitStatus::Code(0), "{}", out.stderr);
    assert!(!std::path::Path::new("/tmp/escape-target").exists());
}

#[test]
fn mounts_vanish_with_the_container() {
    let h = Harness::new();
    let (c, _out, _err) = h.create(&h.spec("vanish", &["sleep", "30"]));
    c.start().unwrap();
    let host_mounts = std::fs::read_to_string("/proc/self/mountinfo").unwrap();
    assert!(
        !host_mounts.contains(&h.tmp.path().display().to_string()),
        "container mounts leaked to the host namespace"
    );
    c.stop(Duration::from_secs(1)).unwrap();
    runtime::container::wait(c.pid).unwrap();
    c.remove().unwrap();
    assert!(eventually(Duration::from_secs(2), || h.leaks().is_empty()));
}
