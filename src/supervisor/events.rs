//! Events the engine emits while it works; it never prints. The CLI picks a renderer
//! (tty lines as Docker Compose draws them, plain lines, JSON) and subscribers of the
//! supervisor socket receive them as JSON lines.

use serde::{Deserialize, Serialize};

/// The kind of resource an event is about, as Docker Compose's progress lines name it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum Resource {
    Network,
    Volume,
    Image,
    Container,
    Service,
}

impl Resource {
    pub fn as_str(self) -> &'static str {
        match self {
            Resource::Network => "Network",
            Resource::Volume => "Volume",
            Resource::Image => "Image",
            Resource::Container => "Container",
            Resource::Service => "Service",
        }
    }
}

/// Progress of one resource: `Container demo-web-1 Started`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Event {
    pub resource: Resource,
    pub name: String,
    /// `Creating`, `Created`, `Starting`, `Started`, `Waiting`, `Healthy`, `Stopping`,
    /// `Stopped`, `Removing`, `Removed`, `Pulling`, `Pulled`, `Error`, `Warning`, ...
    pub status: String,
    /// Finished (a ✔ or ✘ on a terminal) rather than in progress.
    #[serde(default)]
    pub done: bool,
    #[serde(default)]
    pub error: bool,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub detail: Option<String>,
}

impl Event {
    pub fn working(resource: Resource, name: &str, status: &str) -> Self {
        Event {
            resource,
            name: name.to_string(),
            status: status.to_string(),
            done: false,
            error: false,
            detail: None,
        }
    }
    pub fn done(resource: Resource, name: &str, status: &str) -> Self {
        Event {
            done: true,
            ..Event::working(resource, name, status)
        }
    }
    pub fn failed(resource: Resource, name: &str, detail: String) -> Self {
        Event {
            done: true,
            error: true,
            detail: Some(detail),
            ..Event::working(resource, name, "Error")
        }
    }
}

/// Where events go.
pub trait EventSink: Send + Sync {
    fn emit(&self, event: Event);
}

/// Drops everything.
pub struct NoEvents;
impl EventSink for NoEvents {
    fn emit(&self, _event: Event) {}
}

impl<F: Fn(Event) + Send + Sync> EventSink for F {
    fn emit(&self, event: Event) {
        self(event)
    }
}
