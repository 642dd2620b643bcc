//! A row's service in the production Compose stack (`cargo xtask compose`), as data: the image
//! and how it is started from `infra/`, which each row's module builds from the [`Contract`].
//! What every service shares (`restart`, the `amtp_net` network, the healthcheck timings) and
//! the files themselves are `cmd/compose.rs`'s.
//!
//! [`Contract`]: crate::stack::contract::Contract

use crate::config::PortVar;

/// One service of `docker-compose.yml`; [`Service::new`] has everything but its name and
/// image empty, for a row to fill in what it has.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct Service {
    /// The Compose service's name, the seed's (`docs` for nginx, `flyway` for the migrations).
    pub(crate) name: &'static str,
    pub(crate) image: Image,
    /// Compose profiles: a service with one starts only when asked (`--profile migrate`).
    pub(crate) profiles: Vec<&'static str>,
    pub(crate) command: Vec<String>,
    pub(crate) environment: Vec<(String, String)>,
    pub(crate) secrets: Vec<Secret>,
    pub(crate) volumes: Vec<Volume>,
    /// The ports docker-compose.yml publishes, `HOST:CONTAINER` (the seed's service map).
    pub(crate) ports: Vec<&'static str>,
    /// The ports docker-compose.override.yml adds for local development, on 127.0.0.1 only,
    /// each under the native stack's variable and default: `127.0.0.1:${VAR:-default}:port`.
    pub(crate) local_ports: Vec<(PortVar, u16)>,
    pub(crate) depends_on: Vec<(&'static str, Condition)>,
    /// The healthcheck's test, `CMD` or `CMD-SHELL` first; none when empty.
    pub(crate) healthcheck: Vec<String>,
    /// The Compose project it belongs to.
    pub(crate) project: Project,
}

/// The seed's two Compose projects on the one `amtp_net` network.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Project {
    /// `docker-compose.yml` (and its override): the stack itself, which creates `amtp_net`.
    Main,
    /// `docker-compose.observability.yml`: the collector, brought up after the main stack, on
    /// `amtp_net` as an external network; its host ports (127.0.0.1 only) are in the file.
    Observability,
}

impl Service {
    pub(crate) fn new(name: &'static str, image: Image) -> Service {
        Service {
            name,
            image,
            profiles: Vec::new(),
            command: Vec::new(),
            environment: Vec::new(),
            secrets: Vec::new(),
            volumes: Vec::new(),
            ports: Vec::new(),
            local_ports: Vec::new(),
            depends_on: Vec::new(),
            healthcheck: Vec::new(),
            project: Project::Main,
        }
    }
}

/// Where a service's image comes from.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) enum Image {
    /// A published image, `name:tag`.
    Pull(&'static str),
    /// Built from a directory of the repository that holds a Dockerfile.
    Build(&'static str),
}

/// Something mounted into a service.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) enum Volume {
    /// A named volume, declared once for the file under the same name.
    Named {
        name: &'static str,
        target: &'static str,
    },
    /// A path of the repository, read-only.
    Repo {
        path: &'static str,
        target: &'static str,
    },
    /// A file the export renders (from `infra/`) beside the Compose files, read-only.
    Rendered {
        file: &'static str,
        content: String,
        target: &'static str,
    },
}

/// A Compose secret from a file of the repository, mounted at `/run/secrets/<name>`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct Secret {
    pub(crate) name: &'static str,
    pub(crate) file: &'static str,
}

/// When a dependency counts as there.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Condition {
    Started,
    Healthy,
}

impl Condition {
    pub(crate) fn as_compose(self) -> &'static str {
        match self {
            Condition::Started => "service_started",
            Condition::Healthy => "service_healthy",
        }
    }
}

/// `(key, value)` pairs as a service's environment.
pub(crate) fn env<'a>(
    pairs: impl IntoIterator<Item = (&'a str, &'a str)>,
) -> Vec<(String, String)> {
    pairs
        .into_iter()
        .map(|(key, value)| (key.to_owned(), value.to_owned()))
        .collect()
}
