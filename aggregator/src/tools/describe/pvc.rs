//! A PersistentVolumeClaim described, as get_pvcs reports one: its volume
//! and the pods that mount it.

use k8s_openapi::api::core::v1::{PersistentVolume, PersistentVolumeClaim, Pod};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use kube::api::{Api, ListParams};

use super::{Kind, Summary, get_in};
use crate::cluster::{Cluster, Request};
use crate::tools::ToolError;
use crate::tools::kube::api_error;

/// Reads PersistentVolumeClaim `name`, its volume and its pods.
pub(super) async fn describe(
    c: &Cluster,
    kind: Kind,
    ns: Option<&str>,
    name: &str,
) -> Result<(ObjectMeta, Summary), ToolError> {
    let nsv = ns.unwrap_or_default();
    let claim: PersistentVolumeClaim = get_in(c, kind, ns, name).await?;
    let pv_api: Api<PersistentVolume> = Api::all(c.client.clone());
    let pod_api: Api<Pod> = Api::namespaced(c.client.clone(), nsv);
    let all = ListParams::default();
    let (volumes, pods) = tokio::try_join!(
        c.list(
            &pv_api,
            &all,
            Request::new("list", "persistentvolumes", None)
        ),
        c.list(&pod_api, &all, Request::new("list", "pods", ns)),
    )
    .map_err(api_error)?;
    let summary = crate::tools::storage::pvc(&claim, &volumes, &pods);
    Ok((claim.metadata, Summary::Pvc(summary)))
}
