//! The build cache: a second build with nothing changed runs no step and gives the same image
//! ID; changing one copied file rebuilds from that COPY on; `no_cache` runs everything again.

mod build_support;

use build_support::Harness;

const DF: &str = "FROM busybox:test\n\
                  RUN echo one > /one\n\
                  COPY app.txt /app.txt\n\
                  RUN cat /app.txt > /derived\n\
                  ENV MODE=prod\n\
                  CMD [\"cat\", \"/derived\"]\n";

#[test]
fn unchanged_build_is_cached_and_a_change_rebuilds_from_its_step() {
    let h = Harness::new();
    h.file("app.txt", "v1\n").file("other.txt", "x\n");
    let first = h.build(DF, "cached:v1").unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(first.cached, 0);
    assert_eq!(first.steps, 6);
    // Nothing changed (an unrelated context file does not count either): every layer step
    // comes from the cache and the image is the same.
    h.file("other.txt", "changed\n");
    let t = std::time::Instant::now();
    let second = h.build(DF, "cached:v1").unwrap_or_else(|e| panic!("{e}"));
    let elapsed = t.elapsed();
    assert_eq!(
        h.ran(),
        vec!["ENV MODE=prod", "CMD [\"cat\", \"/derived\"]"],
        "only metadata steps"
    );
    assert_eq!(second.cached, 3);
    assert_eq!(second.image.id, first.image.id);
    assert!(elapsed.as_millis() < 2000, "cached build took {elapsed:?}");
    // Changing the copied file rebuilds the COPY and everything after it, not the first RUN.
    h.file("app.txt", "v2\n");
    let third = h.build(DF, "cached:v1").unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(
        h.ran(),
        vec![
            "COPY app.txt /app.txt",
            "RUN cat /app.txt > /derived",
            "ENV MODE=prod",
            "CMD [\"cat\", \"/derived\"]"
        ]
    );
    assert_eq!(third.cached, 1);
    assert_ne!(third.image.id, first.image.id);
    assert_eq!(
        third.image.diff_ids[1], first.image.diff_ids[1],
        "first RUN layer reused"
    );
    let out = h.run(&third.image, &["cat", "/derived"]);
    assert_eq!(out.stdout, "v2\n");
    // A build argument's new value misses from the ARG on.
    let df_arg = "FROM busybox:test\nRUN echo base > /b\nARG V=1\nRUN echo $V > /v\n";
    h.build(df_arg, "arg:v1").unwrap();
    let mut opts = h.options(df_arg, "arg:v1");
    opts.args.insert("V".into(), "2".into());
    let b = h.build_with(&opts).unwrap();
    assert_eq!(h.ran(), vec!["ARG V=1", "RUN echo $V > /v"]);
    assert_eq!(h.run(&b.image, &["cat", "/v"]).stdout, "2\n");
    // no_cache runs every step again.
    let mut opts = h.options(DF, "cached:v1");
    opts.no_cache = true;
    let fresh = h.build_with(&opts).unwrap();
    assert_eq!(fresh.cached, 0);
    assert_eq!(h.ran().len(), 5);
}
