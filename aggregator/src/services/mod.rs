//! Clients of the homelab's HTTP services, built once from the config file
//! and shared by every call: Pi-hole v6 (one session per instance, a single
//! login in flight), Jellyfin and Immich.

pub mod http;
pub mod media;
pub mod pihole;

use std::sync::Arc;

use crate::config::file::Config;

/// The configured service clients.
#[derive(Debug, Default)]
pub struct Services {
    /// `[pihole.primary]`.
    pub pihole_primary: Option<Arc<pihole::Pihole>>,
    /// `[pihole.secondary]`.
    pub pihole_secondary: Option<Arc<pihole::Pihole>>,
    /// `[jellyfin]`.
    pub jellyfin: Option<Arc<media::MediaClient>>,
    /// `[immich]`.
    pub immich: Option<Arc<media::MediaClient>>,
}

impl Services {
    /// Clients for what `config` configures (no request is made yet).
    pub fn from_config(config: &Config) -> Self {
        let configured = config.pihole_primary.is_some()
            || config.pihole_secondary.is_some()
            || config.jellyfin.is_some()
            || config.immich.is_some();
        // The HTTP client loads the system's CA roots (~150 certificates,
        // milliseconds): not for a process that talks to no service.
        if !configured {
            return Self::default();
        }
        let http = Arc::new(http::Http::new(http::DEFAULT_TIMEOUT));
        let pihole = |name: &'static str, s: &Option<crate::config::file::Service>| {
            s.as_ref().map(|s| {
                Arc::new(pihole::Pihole::new(
                    name,
                    s.url.clone(),
                    s.secret.clone(),
                    http.clone(),
                ))
            })
        };
        Self {
            pihole_primary: pihole("primary", &config.pihole_primary),
            pihole_secondary: pihole("secondary", &config.pihole_secondary),
            jellyfin: config.jellyfin.as_ref().map(|s| {
                Arc::new(media::MediaClient::jellyfin(
                    s.url.clone(),
                    s.secret.clone(),
                    http.clone(),
                ))
            }),
            immich: config.immich.as_ref().map(|s| {
                Arc::new(media::MediaClient::immich(
                    s.url.clone(),
                    s.secret.clone(),
                    http.clone(),
                ))
            }),
        }
    }

    /// The Pi-holes, primary first.
    pub fn piholes(&self) -> Vec<Arc<pihole::Pihole>> {
        [&self.pihole_primary, &self.pihole_secondary]
            .into_iter()
            .flatten()
            .cloned()
            .collect()
    }

    /// Ends the sessions labscope holds (Pi-hole has a fixed number of API
    /// seats; a session left open holds one until it expires).
    pub async fn shutdown(&self) {
        futures::future::join_all(self.piholes().iter().map(|p| p.logout())).await;
    }
}
