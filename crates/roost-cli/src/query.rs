//! Query strings in the shape StarlingX's FM API reads: one `q.field`,
//! `q.op`, `q.type`, `q.value` group per filter, then plain flags.

/// An ordered list of filters and flags for a list request.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct Query {
    filters: Vec<(String, String)>,
    params: Vec<(String, String)>,
}

impl Query {
    /// An empty query.
    pub fn new() -> Self {
        Self::default()
    }

    /// Adds a `field eq value` filter when `value` is given.
    pub fn filter(mut self, field: &str, value: Option<&str>) -> Self {
        if let Some(value) = value {
            self.filters.push((field.to_string(), value.to_string()));
        }
        self
    }

    /// Adds `name=True` when `on` is set (StarlingX spells booleans `True`).
    pub fn flag(self, name: &str, on: bool) -> Self {
        self.param(name, on.then_some("True"))
    }

    /// Adds `name=value` when `value` is given.
    pub fn param(mut self, name: &str, value: Option<&str>) -> Self {
        if let Some(value) = value {
            self.params.push((name.to_string(), value.to_string()));
        }
        self
    }

    /// The URL-encoded query string, without the leading `?` (empty when
    /// there is nothing to send).
    pub fn encode(&self) -> String {
        let mut out = form_urlencoded::Serializer::new(String::new());
        for (field, value) in &self.filters {
            out.append_pair("q.field", field);
            out.append_pair("q.op", "eq");
            out.append_pair("q.type", "");
            out.append_pair("q.value", value);
        }
        for (name, value) in &self.params {
            out.append_pair(name, value);
        }
        out.finish()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_empty_query_encodes_to_nothing() {
        assert_eq!(Query::new().encode(), "");
    }

    #[test]
    fn each_filter_becomes_one_group_of_four_q_parameters() {
        let q = Query::new()
            .filter("alarm_id", Some("100.101"))
            .filter("severity", None)
            .filter("entity_instance_id", Some("host=controller-0"));
        assert_eq!(
            q.encode(),
            "q.field=alarm_id&q.op=eq&q.type=&q.value=100.101\
             &q.field=entity_instance_id&q.op=eq&q.type=&q.value=host%3Dcontroller-0"
        );
    }

    #[test]
    fn flags_are_sent_as_true_only_when_set_and_after_the_filters() {
        let q = Query::new()
            .flag("include_suppress", false)
            .filter("severity", Some("major"))
            .flag("expand", true)
            .param("limit", Some("5"));
        assert_eq!(
            q.encode(),
            "q.field=severity&q.op=eq&q.type=&q.value=major&expand=True&limit=5"
        );
    }

    #[test]
    fn values_with_spaces_and_slashes_are_url_encoded() {
        let q = Query::new().filter("entity_instance_id", Some("host=x.filesystem=/var/log a"));
        assert_eq!(
            q.encode(),
            "q.field=entity_instance_id&q.op=eq&q.type=&q.value=host%3Dx.filesystem%3D%2Fvar%2Flog+a"
        );
    }
}
