//! `build:` end to end with the real binary: `up` builds a service whose image is not in the
//! store ("Building web") and runs the built image; a second `up` does not build; `rcompose
//! build` reuses the cache; a change and `up --build` rebuild and recreate; `--build-arg`,
//! `dockerfile_inline`, `target`, errors naming the Dockerfile line.

mod support;

use support::Stack;

const COMPOSE: &str = r#"
services:
  web:
    build:
      context: ./app
      args:
        GREETING: hi
      labels:
        org.example.built-by: rcompose
    command: ["sh", "-c", "cat /msg; exec sleep 300"]
  tool:
    image: e2e/tool:dev
    build:
      context: .
      target: tool
      dockerfile_inline: |
        FROM e2e/busybox:latest AS base
        RUN echo base > /base
        FROM base AS tool
        ARG FLAVOUR=plain
        RUN echo "tool-$$FLAVOUR" > /tool
        CMD ["cat", "/base", "/tool"]
        FROM base AS other
        RUN exit 9
    profiles: [tools]
"#;

const DOCKERFILE: &str = "FROM e2e/busybox:latest\n\
ARG GREETING=hello\n\
COPY index.html /www/\n\
RUN echo \"$GREETING from build\" > /msg\n\
WORKDIR /www\n";

#[test]
fn up_builds_a_missing_image_and_runs_it() {
    let s = Stack::new("e2e_build_up", 90, COMPOSE);
    std::fs::create_dir_all(s.dir.join("app")).unwrap();
    std::fs::write(s.dir.join("app/Dockerfile"), DOCKERFILE).unwrap();
    std::fs::write(s.dir.join("app/index.html"), "<h1>v1</h1>\n").unwrap();
    let out = s.rc(&["up", "-d"]);
    let err = String::from_utf8_lossy(&out.stderr).to_string();
    assert!(out.status.success(), "up: {err}");
    assert!(err.contains("Building web"), "{err}");
    // The container runs the built image: the RUN's file, the COPY, WORKDIR, the label.
    assert_eq!(s.ok(&["exec", "web", "cat", "/msg"]), "hi from build\n");
    assert_eq!(s.ok(&["exec", "web", "pwd"]), "/www\n");
    assert_eq!(s.ok(&["exec", "web", "cat", "index.html"]), "<h1>v1</h1>\n");
    let inspect = s.ok(&["image", "inspect", "e2e-build-up-web"]);
    assert!(inspect.contains("org.example.built-by"), "{inspect}");
    // Present now: a second `up` does not build, and even `--pull always` does not try to
    // pull a locally built image.
    let out = s.rc(&["up", "-d"]);
    assert!(out.status.success());
    assert!(!String::from_utf8_lossy(&out.stderr).contains("Building"));
    let out = s.rc(&["up", "-d", "--pull", "always"]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    // `rcompose build` with nothing changed: every layer step from the cache.
    let out = s.rc(&["build", "web"]);
    let err = String::from_utf8_lossy(&out.stderr).to_string();
    assert!(out.status.success(), "{err}");
    assert!(err.contains("CACHED [3/5] COPY index.html /www/"), "{err}");
    assert!(err.contains("CACHED [4/5] RUN"), "{err}");
    // A change and `up --build`: rebuilt from the COPY on, the container recreated.
    std::fs::write(s.dir.join("app/index.html"), "<h1>v2</h1>\n").unwrap();
    let out = s.rc(&["up", "-d", "--build", "-t", "1"]);
    let err = String::from_utf8_lossy(&out.stderr).to_string();
    assert!(out.status.success(), "{err}");
    assert!(err.contains(" => [3/5] COPY index.html /www/"), "{err}");
    assert_eq!(s.ok(&["exec", "web", "cat", "index.html"]), "<h1>v2</h1>\n");
    s.down_and_check();
}

#[test]
fn build_verb_flags_inline_dockerfile_target_and_errors() {
    let s = Stack::new("e2e_build_verb", 91, COMPOSE);
    std::fs::create_dir_all(s.dir.join("app")).unwrap();
    std::fs::write(s.dir.join("app/Dockerfile"), DOCKERFILE).unwrap();
    std::fs::write(s.dir.join("app/index.html"), "x\n").unwrap();
    // `--no-build` with the image absent: an error that says it must be built, no pull.
    let out = s.rc(&["up", "-d", "--no-build", "web"]);
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("must be built"), "{err}");
    assert!(!err.contains("Building"), "{err}");
    // dockerfile_inline + target (the failing stage is not needed) + --build-arg, quietly.
    let out = s.rc(&[
        "--profile",
        "tools",
        "build",
        "-q",
        "--build-arg",
        "FLAVOUR=fancy",
        "tool",
    ]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(String::from_utf8_lossy(&out.stderr), "");
    let run = s.rc(&["--profile", "tools", "run", "--rm", "--no-deps", "tool"]);
    assert_eq!(
        String::from_utf8_lossy(&run.stdout),
        "base\ntool-fancy\n",
        "{}",
        String::from_utf8_lossy(&run.stderr)
    );
    // --dry-run says what it would build and builds nothing.
    let dry = s.ok(&["--dry-run", "build"]);
    assert!(dry.contains("build web: e2e-build-verb-web"), "{dry}");
    assert!(!s.ok(&["image", "ls"]).contains("e2e-build-verb-web"));
    // Two independent services build side by side, their lines tagged with the service.
    let out = s.rc(&["--profile", "tools", "build"]);
    let err = String::from_utf8_lossy(&out.stderr).to_string();
    assert!(out.status.success(), "{err}");
    assert!(err.contains(" => [web 4/5] RUN"), "{err}");
    assert!(
        err.contains("Service tool  Built") && err.contains("Service web  Built"),
        "{err}"
    );
    let images = s.ok(&["image", "ls"]);
    assert!(
        images.contains("e2e-build-verb-web") && images.contains("e2e/tool"),
        "{images}"
    );
    // A broken Dockerfile: the error names file, line, instruction and the fix.
    std::fs::write(
        s.dir.join("app/Dockerfile"),
        "FROM e2e/busybox:latest\nRUN true\nCOPPY index.html /\n",
    )
    .unwrap();
    let out = s.rc(&["build", "web"]);
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains(
            "service web: Dockerfile:3: COPPY: unknown instruction COPPY — did you mean COPY?"
        ),
        "{err}"
    );
    // A failing RUN: step and exit code, and no build container left.
    std::fs::write(
        s.dir.join("app/Dockerfile"),
        "FROM e2e/busybox:latest\nRUN echo nope; exit 7\n",
    )
    .unwrap();
    let out = s.rc(&["build", "web"]);
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("Dockerfile:2: RUN echo nope; exit 7: the command exited with code 7"),
        "{err}"
    );
    assert!(err.contains("nope"), "{err}");
    let leftovers: Vec<_> = std::fs::read_dir(s.root.join("build"))
        .map(|rd| rd.flatten().map(|e| e.path()).collect())
        .unwrap_or_default();
    assert!(leftovers.is_empty(), "{leftovers:?}");
    let out = s.rc(&["build", "nosuch"]);
    assert!(!out.status.success());
    s.down_and_check();
}
