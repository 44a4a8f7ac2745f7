//! `docker import --change`: the Dockerfile instructions that set image config
//! (CMD, ENTRYPOINT, ENV, WORKDIR, USER, EXPOSE, VOLUME, LABEL, STOPSIGNAL, HEALTHCHECK NONE)
//! applied to an `ImageConfig` before `Store::import_rootfs_with_config`.

use super::ImageConfig;

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum ChangeError {
    #[error("invalid --change \"{0}\": expected INSTRUCTION arguments")]
    Empty(String),
    #[error("invalid --change \"{change}\": {instruction} is not supported (CMD, ENTRYPOINT, ENV, WORKDIR, USER, EXPOSE, VOLUME, LABEL, STOPSIGNAL)")]
    Unsupported { change: String, instruction: String },
    #[error("invalid --change \"{0}\": {1}")]
    Invalid(String, &'static str),
}

/// Apply one Dockerfile-style instruction, as `docker import --change` does.
pub fn apply_change(config: &mut ImageConfig, change: &str) -> Result<(), ChangeError> {
    let change_t = change.trim();
    let (instr, rest) = change_t
        .split_once(char::is_whitespace)
        .map(|(i, r)| (i, r.trim()))
        .unwrap_or((change_t, ""));
    if instr.is_empty() {
        return Err(ChangeError::Empty(change.to_string()));
    }
    let bad = |why| ChangeError::Invalid(change.to_string(), why);
    match instr.to_ascii_uppercase().as_str() {
        "CMD" => config.cmd = Some(command_form(rest)),
        "ENTRYPOINT" => config.entrypoint = Some(command_form(rest)),
        "ENV" => {
            for (k, v) in pairs(rest).ok_or_else(|| bad("expected KEY=value or KEY value"))? {
                config
                    .env
                    .retain(|e| e.split('=').next() != Some(k.as_str()));
                config.env.push(format!("{k}={v}"));
            }
        }
        "LABEL" => {
            for (k, v) in pairs(rest).ok_or_else(|| bad("expected KEY=value"))? {
                config.labels.insert(k, v);
            }
        }
        "WORKDIR" if !rest.is_empty() => config.working_dir = Some(rest.to_string()),
        "USER" if !rest.is_empty() => config.user = Some(rest.to_string()),
        "STOPSIGNAL" if !rest.is_empty() => config.stop_signal = Some(rest.to_string()),
        "EXPOSE" => {
            for p in rest.split_whitespace() {
                let p = if p.contains('/') {
                    p.to_string()
                } else {
                    format!("{p}/tcp")
                };
                if !config.exposed_ports.contains(&p) {
                    config.exposed_ports.push(p);
                }
            }
            config.exposed_ports.sort();
        }
        "VOLUME" => {
            let vols = serde_json::from_str::<Vec<String>>(rest)
                .unwrap_or_else(|_| rest.split_whitespace().map(String::from).collect());
            for v in vols {
                if !config.volumes.contains(&v) {
                    config.volumes.push(v);
                }
            }
            config.volumes.sort();
        }
        "WORKDIR" | "USER" | "STOPSIGNAL" => return Err(bad("missing argument")),
        other => {
            return Err(ChangeError::Unsupported {
                change: change.to_string(),
                instruction: other.to_string(),
            })
        }
    }
    Ok(())
}

/// Exec form (`["a", "b"]`) as is; shell form wrapped in `/bin/sh -c`.
fn command_form(rest: &str) -> Vec<String> {
    match serde_json::from_str::<Vec<String>>(rest) {
        Ok(v) => v,
        Err(_) => vec!["/bin/sh".into(), "-c".into(), rest.to_string()],
    }
}

/// `K=v K2="v 2"` or the legacy single `K v`.
fn pairs(rest: &str) -> Option<Vec<(String, String)>> {
    let words = shlex::split(rest)?;
    if words.is_empty() {
        return None;
    }
    if !words[0].contains('=') {
        let (k, v) = rest.split_once(char::is_whitespace)?;
        return Some(vec![(k.to_string(), v.trim().to_string())]);
    }
    words
        .into_iter()
        .map(|w| {
            w.split_once('=')
                .map(|(k, v)| (k.to_string(), v.to_string()))
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn applies_dockerfile_instructions() {
        let mut c = ImageConfig::default();
        for ch in [
            r#"CMD ["/bin/sh"]"#,
            "ENTRYPOINT echo hi",
            "ENV A=1 B=\"two words\"",
            "ENV A 3",
            "WORKDIR /srv",
            "USER 1000",
            "EXPOSE 80 53/udp",
            r#"VOLUME ["/data"]"#,
            "LABEL org.x=y",
            "STOPSIGNAL SIGTERM",
        ] {
            apply_change(&mut c, ch).unwrap();
        }
        assert_eq!(c.cmd, Some(vec!["/bin/sh".to_string()]));
        assert_eq!(
            c.entrypoint,
            Some(vec!["/bin/sh".into(), "-c".into(), "echo hi".into()])
        );
        assert_eq!(c.env, vec!["B=two words", "A=3"]);
        assert_eq!(c.working_dir.as_deref(), Some("/srv"));
        assert_eq!(c.exposed_ports, vec!["53/udp", "80/tcp"]);
        assert_eq!(c.volumes, vec!["/data"]);
        assert_eq!(c.labels["org.x"], "y");
        assert!(matches!(
            apply_change(&mut c, "RUN rm -rf /"),
            Err(ChangeError::Unsupported { .. })
        ));
        assert!(apply_change(&mut c, "WORKDIR").is_err());
    }
}
