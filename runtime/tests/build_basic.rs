//! The builder end to end on a busybox base image: RUN writes files in a real container,
//! COPY honours .dockerignore, the config records ENV/WORKDIR/USER/CMD, multi-stage COPY
//! --from, deletions become whiteouts, ADD extracts local tars, and a failing RUN names its
//! step and exit code and leaves nothing behind.

mod build_support;

use build_support::{labels, Harness, BASE};
use runtime::build::BuildError;

#[test]
fn run_output_and_config_end_up_in_the_image() {
    let h = Harness::new();
    let built = h
        .build(
            "FROM busybox:test\n\
             ENV GREETING=hello NAME=\"the world\"\n\
             WORKDIR /app\n\
             RUN echo \"$GREETING $NAME\" > msg && echo building\n\
             USER nobody\n\
             EXPOSE 8080\n\
             LABEL org.example.tier=web\n\
             CMD [\"cat\", \"msg\"]\n",
            "built:v1",
        )
        .unwrap_or_else(|e| panic!("{e}"));
    assert!(
        h.output().contains(&"building".to_string()),
        "{:?}",
        h.output()
    );
    let img = built.image;
    assert_eq!(img.reference.familiar(), "built:v1");
    assert!(img.config.env.contains(&"GREETING=hello".to_string()));
    assert!(img.config.env.contains(&"NAME=the world".to_string()));
    assert_eq!(img.config.working_dir.as_deref(), Some("/app"));
    assert_eq!(img.config.user.as_deref(), Some("nobody"));
    assert_eq!(img.config.cmd, Some(vec!["cat".into(), "msg".into()]));
    assert_eq!(img.config.exposed_ports, vec!["8080/tcp"]);
    assert_eq!(img.config.labels, labels(&[("org.example.tier", "web")]));
    let base = h.store.get(BASE).unwrap().unwrap();
    assert_eq!(
        img.diff_ids.len(),
        base.diff_ids.len() + 1,
        "one layer for the RUN"
    );
    assert_eq!(img.diff_ids[0], base.diff_ids[0]);
    let cfg = h.config_json(&img);
    let history = cfg["history"].as_array().unwrap();
    assert!(history
        .iter()
        .any(|e| e["created_by"].as_str().unwrap().starts_with("RUN echo")));
    assert_eq!(cfg["rootfs"]["diff_ids"].as_array().unwrap().len(), 2);
    // The image runs: its CMD reads the file the RUN wrote, as user nobody in /app.
    let out = h.run(&img, &["sh", "-c", "cat msg; id -u; pwd"]);
    assert_eq!(
        out.stdout, "hello the world\n65534\n/app\n",
        "{}",
        out.stderr
    );
    // A valid OCI image to another tool: skopeo reads the saved archive, one history entry
    // with a layer per layer.
    let tar = h.tmp.path().join("built.tar");
    h.store
        .save(&["built:v1"], std::fs::File::create(&tar).unwrap())
        .unwrap();
    let o = std::process::Command::new("skopeo")
        .args(["inspect", "--config"])
        .arg(format!("oci-archive:{}", tar.display()))
        .output()
        .expect("prerequisite missing: skopeo");
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let seen: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    let layered = seen["history"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|e| e["empty_layer"] != true)
        .count();
    assert_eq!(
        layered,
        seen["rootfs"]["diff_ids"].as_array().unwrap().len()
    );
    assert_eq!(seen["config"]["WorkingDir"], "/app");
}

#[test]
fn copy_takes_the_context_minus_dockerignore() {
    let h = Harness::new();
    h.file(".dockerignore", "*.log\nsecret\n!keep.log\nsub/**/*.tmp\n")
        .file("app.txt", "app\n")
        .file("debug.log", "noise\n")
        .file("keep.log", "kept\n")
        .file("secret/key", "hunter2\n")
        .file("sub/a/b.txt", "deep\n")
        .file("sub/a/c.tmp", "tmp\n");
    let built = h
        .build(
            "FROM busybox:test\nCOPY . /app/\nCOPY --chown=nobody --chmod=0600 app.txt /etc/app.conf\n",
            "copy:v1",
        )
        .unwrap_or_else(|e| panic!("{e}"));
    let out = h.run(
        &built.image,
        &[
            "sh",
            "-c",
            "cd /app && find . -type f | sort && stat -c '%u %a' /etc/app.conf",
        ],
    );
    assert_eq!(
        out.stdout,
        "./.dockerignore\n./Dockerfile\n./app.txt\n./keep.log\n./sub/a/b.txt\n65534 600\n",
        "{}",
        out.stderr
    );
    // An excluded file is not there to copy: the error names file, line and instruction.
    let e = h
        .build(
            "FROM busybox:test\nRUN true\nCOPY secret/key /key\n",
            "copy:v2",
        )
        .unwrap_err()
        .to_string();
    assert!(
        e.starts_with("Dockerfile:3: COPY: secret/key: not found"),
        "{e}"
    );
    assert!(e.contains(".dockerignore"), "{e}");
}

#[test]
fn multi_stage_copies_from_an_earlier_stage_and_target_stops_early() {
    let h = Harness::new();
    let df = "ARG BASE=busybox:test\n\
              FROM ${BASE} AS builder\n\
              ARG FLAVOUR=plain\n\
              RUN mkdir -p /out && echo \"binary-$FLAVOUR\" > /out/app && echo junk > /junk\n\
              FROM ${BASE} AS unused\n\
              RUN exit 1\n\
              FROM ${BASE}\n\
              COPY --from=builder /out/app /usr/local/bin/app\n\
              CMD [\"cat\", \"/usr/local/bin/app\"]\n";
    let mut opts = h.options(df, "multi:v1");
    opts.args.insert("FLAVOUR".into(), "fancy".into());
    let built = h.build_with(&opts).unwrap_or_else(|e| panic!("{e}"));
    let out = h.run(
        &built.image,
        &["sh", "-c", "cat /usr/local/bin/app; ls /junk"],
    );
    assert_eq!(out.stdout, "binary-fancy\n");
    assert!(
        out.stderr.contains("/junk"),
        "only the copied file: {}",
        out.stderr
    );
    // `target:` builds the stage and what it needs only.
    let mut opts = h.options(df, "multi:builder");
    opts.target = Some("builder".into());
    let built = h.build_with(&opts).unwrap_or_else(|e| panic!("{e}"));
    let out = h.run(&built.image, &["cat", "/junk"]);
    assert_eq!(out.stdout, "junk\n");
    opts.target = Some("nope".into());
    let e = h.build_with(&opts).unwrap_err().to_string();
    assert!(
        e.contains("\"nope\" not found") && e.contains("builder, unused, 2"),
        "{e}"
    );
}

#[test]
fn a_deleted_file_is_gone_in_the_result() {
    let h = Harness::new();
    let built = h
        .build(
            "FROM busybox:test\nRUN mkdir -p /data/sub && echo x > /data/sub/f\nRUN rm /etc/group && rm -rf /data/sub && mkdir /data/sub && echo y > /data/sub/g\n",
            "deleted:v1",
        )
        .unwrap_or_else(|e| panic!("{e}"));
    let out = h.run(
        &built.image,
        &[
            "sh",
            "-c",
            "ls /etc/group; ls /data/sub; cat /etc/passwd | head -1",
        ],
    );
    assert!(out.stderr.contains("/etc/group"), "{}", out.stderr);
    assert_eq!(out.stdout, "g\nroot:x:0:0:root:/root:/bin/sh\n");
    // The last layer's blob holds an OCI whiteout for the file and an opaque marker.
    let blob = h
        .store
        .dir()
        .join("blobs/sha256")
        .join(h.store.get("deleted:v1").unwrap().unwrap().diff_ids[2].hex());
    let names: Vec<String> = tar::Archive::new(std::fs::File::open(blob).unwrap())
        .entries()
        .unwrap()
        .map(|e| e.unwrap().path().unwrap().display().to_string())
        .collect();
    assert!(names.contains(&"etc/.wh.group".to_string()), "{names:?}");
    assert!(
        names.contains(&"data/sub/.wh..wh..opq".to_string()),
        "{names:?}"
    );
}

#[test]
fn add_extracts_a_local_tar_and_from_scratch_works() {
    let h = Harness::new();
    let tar = runtime::image::rootfs::busybox_rootfs_tar(std::path::Path::new(
        runtime::image::rootfs::HOST_BUSYBOX,
    ))
    .unwrap();
    let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
    std::io::Write::write_all(&mut gz, &tar).unwrap();
    std::fs::write(h.context.join("rootfs.tar.gz"), gz.finish().unwrap()).unwrap();
    let built = h
        .build(
            "FROM scratch\nADD rootfs.tar.gz /\nRUN echo from-scratch > /proof\nCOPY <<EOF /etc/motd\nhello heredoc\nEOF\n",
            "scratch:v1",
        )
        .unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(built.image.diff_ids.len(), 3);
    let out = h.run(&built.image, &["sh", "-c", "cat /proof /etc/motd"]);
    assert_eq!(
        out.stdout, "from-scratch\nhello heredoc\n",
        "{}",
        out.stderr
    );
    let e = h
        .build(
            "FROM scratch\nADD https://example.invalid/x.tgz /\n",
            "url:v1",
        )
        .unwrap_err()
        .to_string();
    assert!(
        e.contains("Dockerfile:2: ADD:") && e.contains("offline"),
        "{e}"
    );
}

#[test]
fn a_failing_run_names_the_step_and_leaves_nothing_behind() {
    let h = Harness::new();
    let e = h
        .build(
            "FROM busybox:test\nRUN echo ok\nRUN echo about to fail && sleep 30 & exit 3\n",
            "fail:v1",
        )
        .unwrap_err();
    match &e {
        BuildError::RunFailed { line, code, .. } => {
            assert_eq!((*line, *code), (3, 3));
        }
        other => panic!("expected RunFailed, got {other}"),
    }
    let msg = e.to_string();
    assert!(
        msg.starts_with("Dockerfile:3: RUN echo about to fail && sleep 30 & exit 3: the command exited with code 3"),
        "{msg}"
    );
    assert!(h.store.get("fail:v1").unwrap().is_none());
    // No container folder, cgroup, mount or process remains (also checked again on drop).
    assert_eq!(h.leaks(), Vec::<String>::new());
}

#[test]
fn named_contexts_stand_for_an_image_or_a_folder() {
    let h = Harness::new();
    let extra = h.tmp.path().join("extra");
    std::fs::create_dir_all(&extra).unwrap();
    std::fs::write(extra.join("asset.txt"), "from a folder context\n").unwrap();
    let mut opts = h.options(
        "FROM base\nCOPY --from=assets asset.txt /asset.txt\n",
        "named:v1",
    );
    opts.contexts.insert(
        "base".into(),
        runtime::build::NamedContext::Image(BASE.into()),
    );
    opts.contexts
        .insert("assets".into(), runtime::build::NamedContext::Dir(extra));
    let built = h.build_with(&opts).unwrap_or_else(|e| panic!("{e}"));
    let out = h.run(&built.image, &["cat", "/asset.txt"]);
    assert_eq!(out.stdout, "from a folder context\n", "{}", out.stderr);
}

#[test]
fn symlinks_resolve_inside_the_image_and_the_context() {
    let h = Harness::new();
    h.file("tool.sh", "echo tool\n");
    // A context symlink to a host file must not read the host's file.
    std::os::unix::fs::symlink("/etc/hostname", h.context.join("hostfile")).unwrap();
    // COPY through a symlinked folder of the image writes into its target and keeps the link.
    let built = h
        .build(
            "FROM busybox:test\nRUN mkdir -p /usr/local/real && ln -s /usr/local/real /usr/local/linked\nCOPY tool.sh /usr/local/linked/\n",
            "links:v1",
        )
        .unwrap_or_else(|e| panic!("{e}"));
    let out = h.run(
        &built.image,
        &[
            "sh",
            "-c",
            "readlink /usr/local/linked; cat /usr/local/real/tool.sh",
        ],
    );
    assert_eq!(out.stdout, "/usr/local/real\necho tool\n", "{}", out.stderr);
    let e = h
        .build("FROM busybox:test\nCOPY hostfile /leak\n", "links:v2")
        .unwrap_err()
        .to_string();
    assert!(e.contains("Dockerfile:2: COPY: hostfile: not found"), "{e}");
}

#[test]
fn a_build_removes_run_containers_left_by_a_dead_build() {
    let h = Harness::new();
    let base = h.store.get(BASE).unwrap().unwrap();
    // A RUN container of a build whose process died (pid 4194999 > pid_max never exists).
    let id = "build-4194999-deadbeef0000";
    let state_dir = h.root.join("build").join(id);
    let spec = runtime::container::ContainerSpec {
        id: id.into(),
        name: "build-step-2".into(),
        service: "build".into(),
        state_dir: state_dir.clone(),
        lower_dirs: base.layers.clone(),
        process: runtime::container::ProcessSpec {
            args: vec!["sleep".into(), "300".into()],
            ..Default::default()
        },
        ..Default::default()
    };
    let null = || std::os::fd::OwnedFd::from(std::fs::File::create("/dev/null").unwrap());
    let c = h
        .runtime
        .create(
            &spec,
            runtime::container::Stdio {
                stdin: None,
                stdout: null(),
                stderr: null(),
            },
        )
        .unwrap();
    c.start().unwrap();
    h.build("FROM busybox:test\nRUN true\n", "stale:v1")
        .unwrap_or_else(|e| panic!("{e}"));
    assert!(
        !state_dir.exists(),
        "the dead build's container folder is gone"
    );
    let state = std::fs::read_to_string(format!("/proc/{}/stat", c.pid)).unwrap_or_default();
    assert!(
        state.is_empty()
            || state
                .rsplit_once(')')
                .unwrap()
                .1
                .trim_start()
                .starts_with('Z'),
        "its process was killed: {state}"
    );
}

#[test]
fn onbuild_triggers_are_stored_and_run_by_the_child_build() {
    let h = Harness::new();
    let parent = h
        .build(
            "FROM busybox:test\nONBUILD RUN echo triggered > /from-trigger\nONBUILD ENV CHILD=yes\n",
            "onbuild/parent:1",
        )
        .unwrap_or_else(|e| panic!("{e}"));
    let cfg = h.config_json(&parent.image);
    assert_eq!(
        cfg["config"]["OnBuild"],
        serde_json::json!(["RUN echo triggered > /from-trigger", "ENV CHILD=yes"])
    );
    let child = h
        .build(
            "FROM onbuild/parent:1\nRUN cat /from-trigger\n",
            "onbuild/child:1",
        )
        .unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(h.output(), vec!["triggered"]);
    assert!(child.image.config.env.contains(&"CHILD=yes".to_string()));
    assert!(h.config_json(&child.image)["config"]["OnBuild"].is_null());
}

#[test]
fn run_mounts_cache_bind_and_tmpfs_are_not_in_the_layer() {
    let h = Harness::new();
    h.file("data.txt", "v1\n");
    let df = "FROM busybox:test\n\
              RUN --mount=type=cache,target=/var/cache/app,id=app sh -c 'echo run >> /var/cache/app/log; wc -l < /var/cache/app/log > /count'\n\
              RUN --mount=type=bind,source=data.txt,target=/mnt/data.txt cat /mnt/data.txt > /copied\n\
              RUN --mount=type=tmpfs,target=/scratch touch /scratch/x && ls /scratch\n";
    let first = h.build(df, "mounts:v1").unwrap_or_else(|e| panic!("{e}"));
    let check = "cat /count /copied; ls /var/cache/app /mnt/data.txt /scratch 2>&1 | grep -c 'No such file'";
    let out = h.run(&first.image, &["sh", "-c", check]);
    assert_eq!(
        out.stdout.split_whitespace().collect::<Vec<_>>(),
        ["1", "v1", "3"],
        "{}",
        out.stderr
    );
    // The cache folder outlives the build: a rebuild sees what the first one left.
    let mut opts = h.options(df, "mounts:v1");
    opts.no_cache = true;
    let second = h.build_with(&opts).unwrap_or_else(|e| panic!("{e}"));
    let out = h.run(&second.image, &["cat", "/count"]);
    assert_eq!(out.stdout.trim(), "2");
    // A bound file's content is part of the key: changing it reruns that RUN on.
    h.file("data.txt", "v2\n");
    let third = h.build(df, "mounts:v1").unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(
        h.ran(),
        vec![
            "RUN --mount=type=bind,source=data.txt,target=/mnt/data.txt cat /mnt/data.txt > /copied",
            "RUN --mount=type=tmpfs,target=/scratch touch /scratch/x && ls /scratch"
        ]
    );
    assert_eq!(h.run(&third.image, &["cat", "/copied"]).stdout, "v2\n");
}

#[test]
fn metadata_instructions_follow_docker_rules() {
    let h = Harness::new();
    h.build(
        "FROM busybox:test\nCMD [\"base-cmd\"]\nENV A=1\n",
        "meta/base:1",
    )
    .unwrap_or_else(|e| panic!("{e}"));
    let built = h
        .build(
            "ARG TAG=1\n\
             FROM meta/base:${TAG}\n\
             ENTRYPOINT [\"/bin/app\"]\n\
             ENV A=2 B=$A\n\
             ENV C=${B:-none} PATH=/opt/bin:$PATH\n\
             WORKDIR /srv\n\
             WORKDIR data\n\
             EXPOSE 8000-8002/udp 80\n\
             VOLUME [\"/data\", \"/cache\"]\n\
             STOPSIGNAL SIGQUIT\n\
             SHELL [\"/bin/sh\", \"-ec\"]\n\
             HEALTHCHECK --interval=5s --timeout=2s --retries=4 CMD [\"/bin/check\"]\n\
             LABEL \"com.example.vendor\"=\"ACME Inc\" version=1.0\n",
            "meta/child:1",
        )
        .unwrap_or_else(|e| panic!("{e}"));
    let c = &built.image.config;
    assert_eq!(c.entrypoint, Some(vec!["/bin/app".to_string()]));
    assert_eq!(c.cmd, None, "ENTRYPOINT drops the inherited CMD");
    assert!(c.env.contains(&"A=2".to_string()));
    assert!(
        c.env.contains(&"B=1".to_string()),
        "B sees A from before: {:?}",
        c.env
    );
    assert!(c.env.contains(&"C=1".to_string()));
    assert!(
        c.env.contains(
            &"PATH=/opt/bin:/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"
                .to_string()
        ),
        "$PATH of an image without PATH is the default: {:?}",
        c.env
    );
    assert_eq!(c.working_dir.as_deref(), Some("/srv/data"));
    assert_eq!(
        c.exposed_ports,
        vec!["80/tcp", "8000/udp", "8001/udp", "8002/udp"]
    );
    assert_eq!(c.volumes, vec!["/cache", "/data"]);
    assert_eq!(c.stop_signal.as_deref(), Some("SIGQUIT"));
    let hc = c.healthcheck.as_ref().unwrap();
    assert_eq!(hc.test, vec!["CMD", "/bin/check"]);
    assert_eq!(hc.interval, Some(std::time::Duration::from_secs(5)));
    assert_eq!(hc.retries, Some(4));
    assert_eq!(
        c.labels,
        labels(&[("com.example.vendor", "ACME Inc"), ("version", "1.0")])
    );
    let cfg = h.config_json(&built.image);
    assert_eq!(
        cfg["config"]["Shell"],
        serde_json::json!(["/bin/sh", "-ec"])
    );
    // Metadata steps add history entries without layers.
    let hist = cfg["history"].as_array().unwrap();
    assert!(hist.iter().filter(|e| e["empty_layer"] == true).count() >= 10);
    assert_eq!(built.image.diff_ids.len(), 1);
}

#[test]
fn heredoc_scripts_run_with_the_shell_or_their_shebang() {
    let h = Harness::new();
    let built = h
        .build(
            "FROM busybox:test\nRUN <<EOF\necho one > /one\necho two >> /one\nEOF\nRUN <<EOF\n#!/bin/awk -f\nBEGIN { print \"from awk\" > \"/awk\" }\nEOF\n",
            "heredoc:v1",
        )
        .unwrap_or_else(|e| panic!("{e}"));
    let out = h.run(
        &built.image,
        &["sh", "-c", "cat /one /awk; ls /.rcompose-heredoc"],
    );
    assert_eq!(out.stdout, "one\ntwo\nfrom awk\n", "{}", out.stderr);
    assert!(
        out.stderr.contains(".rcompose-heredoc"),
        "the script is not in the image"
    );
}
