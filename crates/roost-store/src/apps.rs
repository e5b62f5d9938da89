//! Applications and host plans: JSON records the server owns, written
//! together in one transaction.

use crate::sql::params;

use crate::{Error, Store};

/// One change to the application tables.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum AppWrite {
    /// Insert or replace an application's record.
    PutApp {
        name: String,
        record: String,
    },
    DeleteApp {
        name: String,
    },
    /// Insert or replace the last plan a host was sent.
    PutPlan {
        host: String,
        plan: String,
    },
    DeletePlan {
        host: String,
    },
}

impl Store {
    /// Every application record, by name.
    pub fn apps(&self) -> Result<Vec<(String, String)>, Error> {
        self.read(|c| {
            c.query_map("SELECT name, record FROM apps ORDER BY name", (), |r| {
                Ok((r.get(0)?, r.get(1)?))
            })
        })
    }

    /// Every host's last plan, by host name.
    pub fn app_plans(&self) -> Result<Vec<(String, String)>, Error> {
        self.read(|c| {
            c.query_map("SELECT host, plan FROM app_plans ORDER BY host", (), |r| {
                Ok((r.get(0)?, r.get(1)?))
            })
        })
    }

    /// Applies `writes` in order, all or nothing.
    pub fn write_apps(&self, writes: &[AppWrite]) -> Result<(), Error> {
        self.write_once(|tx| {
            for w in writes {
                match w {
                    AppWrite::PutApp { name, record } => tx.execute(
                        "INSERT INTO apps (name, record) VALUES (?1, ?2)
                         ON CONFLICT (name) DO UPDATE SET record = excluded.record",
                        params![name, record],
                    )?,
                    AppWrite::DeleteApp { name } => {
                        tx.execute("DELETE FROM apps WHERE name = ?1", [name])?
                    }
                    AppWrite::PutPlan { host, plan } => tx.execute(
                        "INSERT INTO app_plans (host, plan) VALUES (?1, ?2)
                         ON CONFLICT (host) DO UPDATE SET plan = excluded.plan",
                        params![host, plan],
                    )?,
                    AppWrite::DeletePlan { host } => {
                        tx.execute("DELETE FROM app_plans WHERE host = ?1", [host])?
                    }
                };
            }
            Ok(())
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testdb::each_backend;

    #[test]
    fn records_and_plans_round_trip_all_or_nothing() {
        for db in each_backend() {
            let s = db.open(10);
            s.write_apps(&[
                AppWrite::PutApp {
                    name: "a".into(),
                    record: "{\"v\":1}".into(),
                },
                AppWrite::PutPlan {
                    host: "controller-0".into(),
                    plan: "{}".into(),
                },
            ])
            .unwrap();
            s.write_apps(&[AppWrite::PutApp {
                name: "a".into(),
                record: "{\"v\":2}".into(),
            }])
            .unwrap();
            drop(s);
            let s = db.open(10);
            assert_eq!(s.apps().unwrap(), vec![("a".into(), "{\"v\":2}".into())]);
            assert_eq!(s.app_plans().unwrap().len(), 1);
            s.write_apps(&[
                AppWrite::DeleteApp { name: "a".into() },
                AppWrite::DeletePlan {
                    host: "controller-0".into(),
                },
            ])
            .unwrap();
            assert!(s.apps().unwrap().is_empty());
            assert!(s.app_plans().unwrap().is_empty());
        }
    }
}
