//! SNMP traps (placeholder until the encoder lands).
use crate::Error;

pub type Oid = Vec<u32>;
pub enum Value {
    Integer(i32),
}
pub struct Varbind {
    pub oid: Oid,
    pub value: Value,
}
pub struct Notification {
    pub trap_oid: Oid,
    pub varbinds: Vec<Varbind>,
}
pub fn event_notification(_event: &roost_fm::Event) -> Notification {
    Notification {
        trap_oid: Vec::new(),
        varbinds: Vec::new(),
    }
}
pub enum AuthProtocol {
    Sha1,
    Sha256,
}
pub enum PrivProtocol {
    Aes128,
}
pub enum Security {
    V2c {
        community: String,
    },
    V3 {
        user: String,
        auth: Option<(AuthProtocol, String)>,
        privacy: Option<(PrivProtocol, String)>,
    },
}
pub struct TrapEncoder;
impl TrapEncoder {
    pub fn new(_s: Security, _engine_id: Vec<u8>, _boots: u32) -> Result<TrapEncoder, Error> {
        Err(Error::Invalid("not yet".into()))
    }
    pub fn encode(
        &mut self,
        _n: &Notification,
        _u: u32,
        _t: u32,
        _salt: u64,
    ) -> Result<Vec<u8>, Error> {
        Err(Error::Invalid("not yet".into()))
    }
}
pub fn engine_id_from_octets(enterprise: u32, octets: &[u8]) -> Vec<u8> {
    let mut v = (enterprise | 0x8000_0000).to_be_bytes().to_vec();
    v.push(5);
    v.extend_from_slice(octets);
    v
}
pub fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}
