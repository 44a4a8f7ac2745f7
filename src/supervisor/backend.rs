//! The seams between the executor and the other crates: small traits for images, networks,
//! volumes and containers. The real implementations (`engine.rs`) wrap `runtime` and
//! `network`; the recording fake (`Recorder`, tests only) lets the executor be tested
//! without a kernel.

use std::time::Duration;

use super::model::Condition;

/// A backend call failed; every message names the object.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum BackendError {
    #[error("image {image}: {reason}")]
    Image { image: String, reason: String },
    #[error("network {network}: {reason}")]
    Network { network: String, reason: String },
    #[error("volume {volume}: {reason}")]
    Volume { volume: String, reason: String },
    #[error("container {container}: {reason}")]
    Container { container: String, reason: String },
    #[error("service {service} did not become {condition}: {reason}")]
    Condition {
        service: String,
        condition: &'static str,
        reason: String,
    },
}

pub trait ImageBackend: Send + Sync {
    /// Is the image in the local store?
    fn present(&self, image: &str) -> bool;
    /// Make the image present according to `policy` (pull when needed).
    fn pull(&self, image: &str, policy: &str) -> Result<(), BackendError>;
}

pub trait NetworkBackend: Send + Sync {
    fn create_network(&self, network: &str) -> Result<(), BackendError>;
    fn remove_network(&self, network: &str) -> Result<(), BackendError>;
}

pub trait VolumeBackend: Send + Sync {
    fn create_volume(&self, volume: &str) -> Result<(), BackendError>;
    fn remove_volume(&self, volume: &str) -> Result<(), BackendError>;
}

pub trait ContainerBackend: Send + Sync {
    fn create(&self, service: &str, container: &str, number: u32) -> Result<(), BackendError>;
    fn start(&self, container: &str) -> Result<(), BackendError>;
    fn stop(&self, container: &str, timeout: Duration) -> Result<(), BackendError>;
    fn remove(&self, container: &str) -> Result<(), BackendError>;
    /// Block until `service` meets `condition` (or fails it for good).
    fn await_condition(&self, service: &str, condition: Condition) -> Result<(), BackendError>;
}

/// The set of backends the executor drives.
pub struct Backends<'a> {
    pub images: &'a dyn ImageBackend,
    pub networks: &'a dyn NetworkBackend,
    pub volumes: &'a dyn VolumeBackend,
    pub containers: &'a dyn ContainerBackend,
}

#[cfg(test)]
pub mod fake {
    //! A recording fake of every backend, for executor tests.
    use std::collections::BTreeSet;
    use std::sync::Mutex;

    use super::*;

    #[derive(Default)]
    pub struct Recorder {
        pub calls: Mutex<Vec<String>>,
        /// Calls (as recorded) that fail.
        pub failing: BTreeSet<String>,
    }

    impl Recorder {
        fn call(
            &self,
            what: String,
            err: impl FnOnce() -> BackendError,
        ) -> Result<(), BackendError> {
            self.calls.lock().unwrap().push(what.clone());
            if self.failing.contains(&what) {
                Err(err())
            } else {
                Ok(())
            }
        }
        pub fn calls(&self) -> Vec<String> {
            self.calls.lock().unwrap().clone()
        }
        pub fn backends(&self) -> Backends<'_> {
            Backends {
                images: self,
                networks: self,
                volumes: self,
                containers: self,
            }
        }
    }

    fn c(container: &str) -> BackendError {
        BackendError::Container {
            container: container.into(),
            reason: "boom".into(),
        }
    }

    impl ImageBackend for Recorder {
        fn present(&self, _image: &str) -> bool {
            true
        }
        fn pull(&self, image: &str, _policy: &str) -> Result<(), BackendError> {
            self.call(format!("pull {image}"), || BackendError::Image {
                image: image.into(),
                reason: "boom".into(),
            })
        }
    }
    impl NetworkBackend for Recorder {
        fn create_network(&self, n: &str) -> Result<(), BackendError> {
            self.call(format!("create network {n}"), || BackendError::Network {
                network: n.into(),
                reason: "boom".into(),
            })
        }
        fn remove_network(&self, n: &str) -> Result<(), BackendError> {
            self.call(format!("remove network {n}"), || BackendError::Network {
                network: n.into(),
                reason: "boom".into(),
            })
        }
    }
    impl VolumeBackend for Recorder {
        fn create_volume(&self, v: &str) -> Result<(), BackendError> {
            self.call(format!("create volume {v}"), || BackendError::Volume {
                volume: v.into(),
                reason: "boom".into(),
            })
        }
        fn remove_volume(&self, v: &str) -> Result<(), BackendError> {
            self.call(format!("remove volume {v}"), || BackendError::Volume {
                volume: v.into(),
                reason: "boom".into(),
            })
        }
    }
    impl ContainerBackend for Recorder {
        fn create(&self, _s: &str, n: &str, _num: u32) -> Result<(), BackendError> {
            self.call(format!("create {n}"), || c(n))
        }
        fn start(&self, n: &str) -> Result<(), BackendError> {
            self.call(format!("start {n}"), || c(n))
        }
        fn stop(&self, n: &str, _t: Duration) -> Result<(), BackendError> {
            self.call(format!("stop {n}"), || c(n))
        }
        fn remove(&self, n: &str) -> Result<(), BackendError> {
            self.call(format!("remove {n}"), || c(n))
        }
        fn await_condition(&self, s: &str, cond: Condition) -> Result<(), BackendError> {
            self.call(format!("await {s} {}", cond.as_str()), || {
                BackendError::Condition {
                    service: s.into(),
                    condition: cond.waiting_for(),
                    reason: "boom".into(),
                }
            })
        }
    }
}
