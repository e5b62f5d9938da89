//! Subcloud groups and the name rules StarlingX applies to groups and
//! subclouds.

use crate::Error;
use crate::fleet::RESERVED_SUBCLOUD_NAMES;
use crate::words::ApplyType;

/// Id of the group that always exists.
pub const DEFAULT_GROUP_ID: u64 = 1;
/// Name of the group that always exists.
pub const DEFAULT_GROUP_NAME: &str = "Default";
/// Description of the default group.
pub const DEFAULT_GROUP_DESCRIPTION: &str = "Default Subcloud Group";
/// Smallest `max_parallel_subclouds`.
pub const MIN_PARALLEL_SUBCLOUDS: u32 = 1;
/// Largest `max_parallel_subclouds`.
pub const MAX_PARALLEL_SUBCLOUDS: u32 = 5000;
/// Names and descriptions must be shorter than this.
pub const MAX_NAME_LEN: usize = 255;

/// A subcloud group: how orchestration walks its subclouds.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Group {
    pub id: u64,
    pub name: String,
    pub description: String,
    pub update_apply_type: ApplyType,
    /// 1-5000.
    pub max_parallel_subclouds: u32,
}

impl Group {
    /// The `Default` group (id 1, parallel, 2 at a time), as StarlingX creates it.
    pub fn default_group() -> Group {
        Group {
            id: DEFAULT_GROUP_ID,
            name: DEFAULT_GROUP_NAME.to_string(),
            description: DEFAULT_GROUP_DESCRIPTION.to_string(),
            update_apply_type: ApplyType::Parallel,
            max_parallel_subclouds: 2,
        }
    }
}

/// A group to create.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GroupSpec {
    pub name: String,
    pub description: String,
    pub update_apply_type: ApplyType,
    pub max_parallel_subclouds: u32,
}

/// Changes to a group; `None` leaves a field as it is.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct GroupPatch {
    pub name: Option<String>,
    pub description: Option<String>,
    pub update_apply_type: Option<ApplyType>,
    pub max_parallel_subclouds: Option<u32>,
}

/// What is wrong with `name`, if anything, by StarlingX's name rule
/// (dcmanager `utils.validate_name`) plus what keeps
/// Roost's entity ids unambiguous: not empty, shorter than 255 characters,
/// not only digits (digits name an id), none of `.*+?|()[]{}^$`, no
/// whitespace, `=` or `,`, and not one of `prohibited` (ignoring case).
pub(crate) fn name_problem(name: &str, prohibited: &[&str]) -> Option<String> {
    if name.is_empty() {
        return Some("the name is empty".into());
    }
    if name.len() >= MAX_NAME_LEN {
        return Some(format!(
            "the name must be shorter than {MAX_NAME_LEN} characters"
        ));
    }
    if name.bytes().all(|b| b.is_ascii_digit()) {
        return Some(format!("{name:?} is a number; names need a non-digit"));
    }
    if let Some(c) = name
        .chars()
        .find(|c| ".*+?|()[]{}^$=,".contains(*c) || c.is_whitespace() || c.is_control())
    {
        return Some(format!("{name:?} contains {c:?}"));
    }
    if let Some(p) = prohibited.iter().find(|p| p.eq_ignore_ascii_case(name)) {
        return Some(format!("{p} is reserved"));
    }
    None
}

/// Reads `max_parallel_subclouds` as the API receives it (the client sends
/// the integer 2 by default but the string "5" when given).
pub fn parse_max_parallel(s: &str) -> Result<u32, Error> {
    let v: u32 = s
        .trim()
        .parse()
        .map_err(|_| Error::InvalidMaxParallel(s.to_string()))?;
    check_max_parallel(v)?;
    Ok(v)
}

/// Reads `update_apply_type`.
pub fn parse_apply_type(s: &str) -> Result<ApplyType, Error> {
    ApplyType::parse(s).ok_or_else(|| Error::InvalidApplyType(s.to_string()))
}

pub(crate) fn check_max_parallel(v: u32) -> Result<(), Error> {
    if (MIN_PARALLEL_SUBCLOUDS..=MAX_PARALLEL_SUBCLOUDS).contains(&v) {
        Ok(())
    } else {
        Err(Error::InvalidMaxParallel(v.to_string()))
    }
}

pub(crate) fn check_group_name(name: &str) -> Result<(), Error> {
    name_problem(name, &[DEFAULT_GROUP_NAME])
        .map_or(Ok(()), |why| Err(Error::InvalidGroupName(why)))
}

pub(crate) fn check_subcloud_name(name: &str) -> Result<(), Error> {
    name_problem(name, &RESERVED_SUBCLOUD_NAMES).map_or(Ok(()), |why| Err(Error::InvalidName(why)))
}

pub(crate) fn check_description(d: &str) -> Result<(), Error> {
    if d.is_empty() {
        return Err(Error::InvalidGroupDescription(
            "the description is empty".into(),
        ));
    }
    if d.len() >= MAX_NAME_LEN {
        return Err(Error::InvalidGroupDescription(format!(
            "the description must be shorter than {MAX_NAME_LEN} characters"
        )));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_follow_the_starlingx_rule() {
        assert!(name_problem("edge-1", &[]).is_none());
        assert!(name_problem("", &[]).is_some());
        assert!(name_problem("123", &[]).is_some());
        assert!(name_problem("a.b", &[]).is_some());
        assert!(name_problem("a b", &[]).is_some());
        assert!(name_problem(&"x".repeat(255), &[]).is_some());
        assert!(name_problem(&"x".repeat(254), &[]).is_none());
        assert!(name_problem("default", &["Default"]).is_some());
    }

    #[test]
    fn max_parallel_accepts_one_to_five_thousand_as_text() {
        assert_eq!(parse_max_parallel("5"), Ok(5));
        assert_eq!(parse_max_parallel("5000"), Ok(5000));
        for bad in ["0", "5001", "-1", "two", ""] {
            let e = parse_max_parallel(bad).unwrap_err();
            assert!(e.to_string().contains("from 1 to 5000"), "{e}");
        }
    }

    #[test]
    fn apply_type_is_serial_or_parallel() {
        assert_eq!(parse_apply_type("serial"), Ok(ApplyType::Serial));
        assert!(
            parse_apply_type("both")
                .unwrap_err()
                .to_string()
                .contains("serial or parallel")
        );
    }
}
