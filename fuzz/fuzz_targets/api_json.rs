//! Fuzzes the JSON bodies the API takes: arbitrary bytes decoded as each
//! request type of `roost-api` must be taken or refused with an error, never
//! panic; a body that decodes encodes again and decodes to the same value.
#![no_main]

use libfuzzer_sys::fuzz_target;
use serde::Serialize;
use serde::de::DeserializeOwned;

fn round_trip<T: DeserializeOwned + Serialize>(data: &[u8]) {
    if let Ok(v) = serde_json::from_slice::<T>(data) {
        let again = serde_json::to_vec(&v).expect("a decoded body encodes");
        let back: T = serde_json::from_slice(&again).expect("and decodes again");
        assert_eq!(
            serde_json::to_value(&back).unwrap(),
            serde_json::to_value(&v).unwrap()
        );
    }
}

fuzz_target!(|data: &[u8]| {
    use roost_api::{dcmanager, fm, identity, sysinv};
    round_trip::<fm::AlarmPost>(data);
    round_trip::<Vec<fm::PatchOp>>(data);
    round_trip::<identity::AuthRequest>(data);
    round_trip::<identity::UserCreateRequest>(data);
    round_trip::<identity::UserUpdateRequest>(data);
    round_trip::<identity::PasswordChange>(data);
    round_trip::<sysinv::HostAdd>(data);
    round_trip::<sysinv::CpuModify>(data);
    round_trip::<sysinv::ParameterApply>(data);
    round_trip::<sysinv::EnrollRequest>(data);
    round_trip::<sysinv::AgentReport>(data);
    round_trip::<dcmanager::SubcloudCreate>(data);
    round_trip::<dcmanager::GroupAppAssign>(data);
    round_trip::<roost_api::dcsync::SyncRequest>(data);
    round_trip::<roost_api::apps::agent::AgentAppsReport>(data);
});
