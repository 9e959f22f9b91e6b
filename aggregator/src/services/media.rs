//! Jellyfin and Immich API clients. Jellyfin takes its API key in the
//! modern `Authorization: MediaBrowser Token="…"` header (Jellyfin 12 turns
//! the legacy `X-Emby-Token` off by default); Immich in `x-api-key`, on its
//! current API (`/api/server/*`; the `/api/server-info/*` paths the
//! predecessor called were removed in Immich 1.118 and answer 404).

use std::sync::Arc;

use serde_json::Value;

use super::http::Http;
use crate::config::file::Secret;

/// Why a media request failed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Error {
    /// 401: the API key was refused.
    #[error("{service} rejected the API key (401 on {path})")]
    Unauthorized {
        /// Jellyfin or Immich.
        service: &'static str,
        /// Path.
        path: String,
    },
    /// 403: the key lacks a permission.
    #[error("{service} refused {path} (403): the API key lacks the permission")]
    Forbidden {
        /// Jellyfin or Immich.
        service: &'static str,
        /// Path.
        path: String,
    },
    /// 404: no such endpoint (a wrong port or base path, or an old API).
    #[error("{service} has no {path} (404){}", .detail)]
    NotFound {
        /// Jellyfin or Immich.
        service: &'static str,
        /// Path.
        path: String,
        /// What the server said.
        detail: String,
    },
    /// Another error answer.
    #[error("{service} answered {status} on {path}{}", .detail)]
    Http {
        /// Jellyfin or Immich.
        service: &'static str,
        /// Path.
        path: String,
        /// Status.
        status: u16,
        /// What the server said.
        detail: String,
    },
    /// No answer.
    #[error("{service} at {url} did not answer {path}: {message}")]
    Unreachable {
        /// Jellyfin or Immich.
        service: &'static str,
        /// Base URL.
        url: String,
        /// Path.
        path: String,
        /// Why.
        message: String,
    },
    /// Not the documented JSON.
    #[error("{service}'s answer to {path} could not be read: {message}")]
    BadResponse {
        /// Jellyfin or Immich.
        service: &'static str,
        /// Path.
        path: String,
        /// What was wrong.
        message: String,
    },
}

impl Error {
    /// unauthorized, forbidden, not_found, http_error, unreachable,
    /// bad_response.
    pub fn code(&self) -> &'static str {
        match self {
            Error::Unauthorized { .. } => "unauthorized",
            Error::Forbidden { .. } => "forbidden",
            Error::NotFound { .. } => "not_found",
            Error::Http { .. } => "http_error",
            Error::Unreachable { .. } => "unreachable",
            Error::BadResponse { .. } => "bad_response",
        }
    }

    /// What to do about it.
    pub fn hint(&self) -> String {
        match self {
            Error::Unauthorized { service, .. } => format!(
                "create an API key in {service}'s administration settings and put it where the config names it (api_key_env / api_key_file)"
            ),
            Error::Forbidden { service, .. } => format!(
                "give the {service} API key the permission (Immich's server statistics need an admin key)"
            ),
            Error::NotFound { service, .. } => format!(
                "check the URL's port and path in the config file ({service}: Jellyfin serves on 8096, Immich on 2283 since 1.118)"
            ),
            Error::Http { .. } => "check the server's log".into(),
            Error::BadResponse { .. } => {
                "labscope reads the documented API: if the server was upgraded, its API may have \
                 changed (compare with its API docs); otherwise check the server's log"
                    .into()
            }
            Error::Unreachable { .. } => {
                "check that the pod is running and the URL in the config file is right".into()
            }
        }
    }
}

/// One service (Jellyfin or Immich) and its key.
#[derive(Debug)]
pub struct MediaClient {
    /// "Jellyfin" or "Immich".
    pub service: &'static str,
    base: url::Url,
    key: Secret,
    http: Arc<Http>,
}

impl MediaClient {
    /// Jellyfin at `base`.
    pub fn jellyfin(base: url::Url, key: Secret, http: Arc<Http>) -> Self {
        Self {
            service: "Jellyfin",
            base,
            key,
            http,
        }
    }

    /// Immich at `base`.
    pub fn immich(base: url::Url, key: Secret, http: Arc<Http>) -> Self {
        Self {
            service: "Immich",
            base,
            key,
            http,
        }
    }

    /// The base URL.
    pub fn url(&self) -> &url::Url {
        &self.base
    }

    fn endpoint(&self, path: &str) -> url::Url {
        let mut u = self.base.clone();
        let base_path = u.path().trim_end_matches('/').to_string();
        let (p, q) = path.split_once('?').unwrap_or((path, ""));
        u.set_path(&format!("{base_path}{p}"));
        u.set_query((!q.is_empty()).then_some(q));
        u
    }

    /// Sends `method path` with the key (unless `anonymous`); the status on
    /// success (2xx) and the JSON body (`Null` when none).
    pub async fn send(
        &self,
        method: http::Method,
        path: &str,
        anonymous: bool,
    ) -> Result<(u16, Value), Error> {
        let auth;
        let mut headers = vec![("accept", "application/json")];
        if !anonymous {
            match self.service {
                "Jellyfin" => {
                    auth = format!("MediaBrowser Token=\"{}\"", self.key.expose());
                    headers.push(("authorization", auth.as_str()));
                }
                _ => headers.push(("x-api-key", self.key.expose())),
            }
        }
        let bare = path.split('?').next().unwrap_or(path).to_string();
        let reply = self
            .http
            .send(method, &self.endpoint(path), &headers, None)
            .await
            .map_err(|e| Error::Unreachable {
                service: self.service,
                url: self.base.to_string(),
                path: bare.clone(),
                message: e.to_string(),
            })?;
        let json = reply.json();
        // Untyped on purpose: an error answer may carry any JSON (Immich's
        // `{"message": …}`, a proxy's page, nothing); only its text is shown.
        let detail = json["message"]
            .as_str()
            .map(|m| format!(": {m}"))
            .unwrap_or_default();
        match reply.status {
            s if (200..300).contains(&s) => Ok((s, json)),
            401 => Err(Error::Unauthorized {
                service: self.service,
                path: bare,
            }),
            403 => Err(Error::Forbidden {
                service: self.service,
                path: bare,
            }),
            404 => Err(Error::NotFound {
                service: self.service,
                path: bare,
                detail,
            }),
            status => Err(Error::Http {
                service: self.service,
                path: bare,
                status,
                detail,
            }),
        }
    }

    /// GET `path` (with the key unless `anonymous`), decoded into `T`: a
    /// field that is gone or changed type is an error naming it.
    pub async fn get_typed<T: serde::de::DeserializeOwned>(
        &self,
        path: &str,
        anonymous: bool,
    ) -> Result<T, Error> {
        let (_, v) = self.send(http::Method::GET, path, anonymous).await?;
        super::http::decode_value(v).map_err(|message| Error::BadResponse {
            service: self.service,
            path: path.split('?').next().unwrap_or(path).into(),
            message,
        })
    }

    /// GET `path` (with the key unless `anonymous`), a JSON object or array.
    pub async fn get(&self, path: &str, anonymous: bool) -> Result<Value, Error> {
        let (_, v) = self.send(http::Method::GET, path, anonymous).await?;
        if v.is_object() || v.is_array() {
            Ok(v)
        } else {
            Err(Error::BadResponse {
                service: self.service,
                path: path.split('?').next().unwrap_or(path).into(),
                message: "not JSON".into(),
            })
        }
    }
}
