//! Bounded Kubernetes requests: every request has a deadline (kube-rs has no
//! read timeout by default, so one hung API server would hold a tool for
//! minutes), lists are read in pages (`limit`/`continue`) so a large cluster
//! is never one giant response, and every failure is explained through
//! [`Error::from_kube`].

use std::fmt::Debug;
use std::future::Future;

use k8s_openapi::api::core::v1::Pod;
use kube::api::{Api, ListParams, LogParams};
use serde::de::DeserializeOwned;

use super::Cluster;
use super::error::{Error, Request};

/// Objects per page of a list.
pub const PAGE: u32 = 500;

impl Cluster {
    /// Runs one request within the per-request deadline, in a `kube` span
    /// (verb, resource, namespace) that logs its duration and outcome at
    /// debug level (`RUST_LOG=labscope=debug`).
    pub async fn bounded<T>(
        &self,
        request: Request,
        fut: impl Future<Output = Result<T, kube::Error>>,
    ) -> Result<T, Error> {
        use tracing::Instrument;
        let (verb, resource) = (request.verb, request.resource.clone());
        let span = tracing::debug_span!(
            "kube",
            verb = request.verb,
            resource = %request.resource,
            namespace = request.namespace.as_deref().unwrap_or("")
        );
        let started = std::time::Instant::now();
        let out = self
            .bounded_inner(request, fut)
            .instrument(span.clone())
            .await;
        crate::metrics::global().record_kube(verb, &resource, out.is_ok(), started.elapsed());
        span.in_scope(|| match &out {
            Ok(_) => tracing::debug!(
                micros = started.elapsed().as_micros() as u64,
                "kubernetes request"
            ),
            Err(e) => tracing::debug!(
                micros = started.elapsed().as_micros() as u64,
                error = %e,
                "kubernetes request failed"
            ),
        });
        out
    }

    async fn bounded_inner<T>(
        &self,
        request: Request,
        fut: impl Future<Output = Result<T, kube::Error>>,
    ) -> Result<T, Error> {
        match tokio::time::timeout(self.request_timeout, fut).await {
            Ok(Ok(v)) => Ok(v),
            Ok(Err(e)) => Err(match Error::from_kube(e, request) {
                Error::Timeout { request, .. } => Error::Timeout {
                    request,
                    after: self.request_timeout,
                },
                other => other,
            }),
            Err(_) => Err(Error::Timeout {
                request,
                after: self.request_timeout,
            }),
        }
    }

    /// Lists every object `lp` selects, [`PAGE`] at a time; each page has
    /// its own deadline.
    pub async fn list<K>(
        &self,
        api: &Api<K>,
        lp: &ListParams,
        request: Request,
    ) -> Result<Vec<K>, Error>
    where
        K: Clone + DeserializeOwned + Debug,
    {
        let mut out = Vec::new();
        let mut token: Option<String> = None;
        loop {
            let mut page_params = lp.clone().limit(PAGE);
            if let Some(t) = &token {
                page_params = page_params.continue_token(t);
            }
            let page = self
                .bounded(request.clone(), api.list(&page_params))
                .await?;
            out.extend(page.items);
            match page.metadata.continue_ {
                Some(t) if !t.is_empty() => token = Some(t),
                _ => return Ok(out),
            }
        }
    }

    /// Gets one object; `None` when it does not exist.
    pub async fn get_opt<K>(
        &self,
        api: &Api<K>,
        name: &str,
        request: Request,
    ) -> Result<Option<K>, Error>
    where
        K: Clone + DeserializeOwned + Debug,
    {
        self.bounded(request, api.get_opt(name)).await
    }

    /// Reads a pod's log (callers set `limit_bytes`).
    pub async fn logs(
        &self,
        api: &Api<Pod>,
        pod: &str,
        lp: &LogParams,
        request: Request,
    ) -> Result<String, Error> {
        self.bounded(request, api.logs(pod, lp)).await
    }
}
