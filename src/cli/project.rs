//! What every project verb needs: the project name and its folders, the compose project when
//! there is one, the request to a supervisor (running, started on demand, or none: then the
//! work happens here from the on-disk state), and rendering of the response.

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::{Context as _, Result};

use crate::supervisor::api::Line;
use crate::supervisor::daemon;
use crate::supervisor::events::{Event, EventSink};
use crate::supervisor::naming;
use crate::supervisor::ops::{LoadRequest, Reporter, Request};
use crate::supervisor::state::{ProjectPaths, ProjectState, StateStore};

use super::global::GlobalArgs;
use super::render::ProgressSink;

/// A project verb's context.
pub struct Ctx {
    pub global: GlobalArgs,
    pub name: String,
    pub paths: ProjectPaths,
    /// The loaded compose project, if a compose file was found.
    pub project: Option<compose::Project>,
}

impl Ctx {
    /// The load request of this command line (also sent to supervisors).
    pub fn load_request(global: &GlobalArgs, services: &[String]) -> LoadRequest {
        LoadRequest {
            files: global.file.clone(),
            project_directory: global.project_directory.clone(),
            project_name: global.project_name.clone(),
            env_files: global.env_file.clone(),
            profiles: global.profile.clone(),
            services: services.to_vec(),
            environment: std::env::vars().collect(),
            cwd: std::env::current_dir().unwrap_or_else(|_| PathBuf::from(".")),
        }
    }

    /// Load the compose project; a verb that needs it fails with the loader's error.
    pub fn with_project(global: &GlobalArgs, services: &[String]) -> Result<Ctx> {
        let project = Self::load_request(global, services).load()?;
        for w in &project.warnings {
            eprintln!("WARN[0000] {w}");
        }
        for w in crate::supervisor::spec::runtime_warnings(&project) {
            eprintln!("WARN[0000] {w}");
        }
        let name = project.name.clone();
        Ok(Ctx {
            paths: ProjectPaths::new(&global.root, &global.run_dir, &name),
            global: global.clone(),
            name,
            project: Some(project),
        })
    }

    /// The project name without needing a compose file: `-p` / `COMPOSE_PROJECT_NAME`, else
    /// the compose file's (when one loads), else the current folder's name.
    pub fn without_project(global: &GlobalArgs) -> Result<Ctx> {
        if let Some(p) = &global.project_name {
            let name = naming::normalize_project_name(p);
            let project = Self::load_request(global, &[]).load().ok();
            return Ok(Ctx {
                paths: ProjectPaths::new(&global.root, &global.run_dir, &name),
                global: global.clone(),
                name,
                project,
            });
        }
        match Self::load_request(global, &[]).load() {
            Ok(project) => {
                let name = project.name.clone();
                Ok(Ctx {
                    paths: ProjectPaths::new(&global.root, &global.run_dir, &name),
                    global: global.clone(),
                    name,
                    project: Some(project),
                })
            }
            Err(e) if !global.file.is_empty() => Err(e.into()),
            Err(_) => {
                let dir = global
                    .project_directory
                    .clone()
                    .unwrap_or(std::env::current_dir()?);
                let name = naming::normalize_project_name(
                    &dir.file_name().unwrap_or_default().to_string_lossy(),
                );
                Ok(Ctx {
                    paths: ProjectPaths::new(&global.root, &global.run_dir, &name),
                    global: global.clone(),
                    name,
                    project: None,
                })
            }
        }
    }

    /// The recorded state (empty when the project was never brought up here).
    pub fn state(&self) -> Result<ProjectState> {
        Ok(StateStore::new(self.paths.clone()).load_or_new()?)
    }

    /// Arguments that start a detached supervisor for this project (absolute paths: the
    /// supervisor runs in `/`).
    pub fn supervisor_args(&self) -> Vec<String> {
        let abs = |p: &std::path::Path| {
            std::path::absolute(p)
                .unwrap_or_else(|_| p.to_path_buf())
                .display()
                .to_string()
        };
        vec![
            super::SUPERVISE_ARG.into(),
            abs(&self.global.root),
            abs(&self.global.run_dir),
            self.name.clone(),
        ]
    }

    /// Send `req` to the project's supervisor (starting one when the request leaves containers
    /// running), or run it here from the on-disk state. Progress goes to `sink`.
    pub fn send(&self, req: &Request, sink: &ProgressSink) -> Result<i32> {
        if !daemon::running(&self.paths) {
            daemon::clear_stale_socket(&self.paths);
            if req.needs_supervisor() {
                daemon::spawn(&self.paths, &self.supervisor_args())?;
            } else {
                if !self.paths.state_file().exists() && !self.paths.oneoff_root().exists() {
                    return Ok(0);
                }
                return Ok(daemon::run_locally(&self.paths, req, sink)?);
            }
        }
        let code = daemon::call(&self.paths, req, &mut |line| match line {
            Line::Event(e) => sink.emit(e),
            Line::Message(m) => sink.message(&m),
            Line::Result(_) => {}
        })
        .with_context(|| format!("project {}", self.name))?;
        Ok(code)
    }
}

impl Reporter for ProgressSink {
    fn message(&self, text: &str) {
        ProgressSink::message(self, text)
    }
}

/// A no-op event sink for verbs that print nothing while they work.
pub struct Silent;
impl EventSink for Silent {
    fn emit(&self, _e: Event) {}
}

/// Exit code from an i32.
pub fn exit(code: i32) -> ExitCode {
    ExitCode::from(code.clamp(0, 255) as u8)
}

/// Parse `--scale svc=n`.
pub fn parse_scale(items: &[String]) -> Result<std::collections::BTreeMap<String, u32>> {
    items
        .iter()
        .map(|s| {
            let (k, v) = s
                .split_once('=')
                .with_context(|| format!("invalid --scale {s:?}: expected SERVICE=NUM"))?;
            let n: u32 = v
                .parse()
                .with_context(|| format!("invalid --scale {s:?}: {v:?} is not a number"))?;
            Ok((k.to_string(), n))
        })
        .collect()
}
