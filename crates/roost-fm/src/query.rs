//! Filters in StarlingX's `q.field / q.op / q.value` style.

use std::borrow::Cow;
use std::cmp::Ordering;

use roost_types::Severity;

/// Something whose named fields a [`Filter`] can read.
pub trait Filterable {
    /// The value of field `name` as text, or `None` when there is no such field.
    fn field(&self, name: &str) -> Option<Cow<'_, str>>;
}

/// A comparison operator.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FilterOp {
    /// StarlingX's `eq`: true when the value occurs in the field (substring),
    /// so `alarm_id=100.1` finds 100.101 and 100.104.
    Eq,
    /// Not a substring.
    Ne,
    Lt,
    Le,
    Gt,
    Ge,
}

impl FilterOp {
    /// Parses `eq`, `ne`, `lt`, `le`, `gt`, `ge`; an empty operator means `eq`.
    pub fn parse(s: &str) -> Option<FilterOp> {
        match s {
            "" | "eq" => Some(FilterOp::Eq),
            "ne" => Some(FilterOp::Ne),
            "lt" => Some(FilterOp::Lt),
            "le" => Some(FilterOp::Le),
            "gt" => Some(FilterOp::Gt),
            "ge" => Some(FilterOp::Ge),
            _ => None,
        }
    }
}

/// One condition on one field.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Filter {
    pub field: String,
    pub op: FilterOp,
    pub value: String,
}

fn compare(field: &str, have: &str, want: &str) -> Ordering {
    if field == "severity"
        && let (Ok(a), Ok(b)) = (have.parse::<Severity>(), want.parse::<Severity>())
    {
        // More severe compares greater.
        return b.rank().cmp(&a.rank());
    }
    have.cmp(want)
}

impl Filter {
    /// Whether `item` satisfies this filter. A field the item lacks never matches.
    pub fn matches<T: Filterable + ?Sized>(&self, item: &T) -> bool {
        let Some(have) = item.field(&self.field) else {
            return false;
        };
        match self.op {
            FilterOp::Eq => have.contains(self.value.as_str()),
            FilterOp::Ne => !have.contains(self.value.as_str()),
            FilterOp::Lt => compare(&self.field, &have, &self.value) == Ordering::Less,
            FilterOp::Le => compare(&self.field, &have, &self.value) != Ordering::Greater,
            FilterOp::Gt => compare(&self.field, &have, &self.value) == Ordering::Greater,
            FilterOp::Ge => compare(&self.field, &have, &self.value) != Ordering::Less,
        }
    }
}

/// True when `item` satisfies every filter (filters combine with AND).
pub fn matches_all<T: Filterable + ?Sized>(filters: &[Filter], item: &T) -> bool {
    filters.iter().all(|f| f.matches(item))
}

/// Sort direction.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum SortDir {
    #[default]
    Asc,
    Desc,
}

impl SortDir {
    pub fn parse(s: &str) -> Option<SortDir> {
        match s {
            "asc" => Some(SortDir::Asc),
            "desc" => Some(SortDir::Desc),
            _ => None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    struct Row(&'static str, &'static str);
    impl Filterable for Row {
        fn field(&self, name: &str) -> Option<Cow<'_, str>> {
            match name {
                "alarm_id" => Some(Cow::Borrowed(self.0)),
                "severity" => Some(Cow::Borrowed(self.1)),
                _ => None,
            }
        }
    }

    fn f(field: &str, op: FilterOp, value: &str) -> Filter {
        Filter {
            field: field.into(),
            op,
            value: value.into(),
        }
    }

    #[test]
    fn eq_matches_substrings_as_starlingx_does() {
        let r = Row("100.104", "major");
        assert!(f("alarm_id", FilterOp::Eq, "100.1").matches(&r));
        assert!(!f("alarm_id", FilterOp::Eq, "200").matches(&r));
        assert!(f("alarm_id", FilterOp::Ne, "200").matches(&r));
    }

    #[test]
    fn unknown_fields_never_match() {
        assert!(!f("colour", FilterOp::Eq, "").matches(&Row("1", "minor")));
    }

    #[test]
    fn severity_comparisons_follow_rank() {
        let r = Row("1", "major");
        assert!(f("severity", FilterOp::Ge, "minor").matches(&r));
        assert!(f("severity", FilterOp::Lt, "critical").matches(&r));
        assert!(!f("severity", FilterOp::Gt, "major").matches(&r));
    }

    #[test]
    fn filters_combine_with_and() {
        let r = Row("100.104", "major");
        let both = [
            f("alarm_id", FilterOp::Eq, "100"),
            f("severity", FilterOp::Eq, "major"),
        ];
        assert!(matches_all(&both, &r));
        let one_fails = [
            f("alarm_id", FilterOp::Eq, "100"),
            f("severity", FilterOp::Eq, "minor"),
        ];
        assert!(!matches_all(&one_fails, &r));
    }
}
