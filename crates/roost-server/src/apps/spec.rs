//! Between the wire and the domain: a package's manifest objects become a
//! `roost_apps::AppSpec` (what the scheduler needs), and a host's domain
//! plan becomes the agent protocol's `HostPlan` with everything resolved.

// PLACEHOLDER until the conversion lands.
use std::collections::BTreeMap;

use roost_api::apps::agent::ImageRef;
use roost_api::apps::manifest::Object;

use crate::Error;

#[derive(Debug, Clone, Default)]
pub struct PackageSpec {
    pub objects: Vec<Object>,
    pub images: BTreeMap<String, ImageRef>,
}

pub fn app_spec(_app: &str, _pkg: &PackageSpec) -> Result<roost_apps::AppSpec, Error> {
    Ok(roost_apps::AppSpec::default())
}

pub fn render<'a>(
    plan: &roost_apps::HostPlan,
    _packages: &impl Fn(&str) -> Option<&'a PackageSpec>,
) -> (roost_api::apps::agent::HostPlan, Vec<String>) {
    (
        roost_api::apps::agent::HostPlan {
            host: plan.host.clone(),
            generation: plan.generation,
            replicas: vec![],
        },
        vec![],
    )
}
