//! Fakes of the parameter and secret ports (`tollgate_core::ports`): one
//! per port.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tollgate_core::ports::{
    ParameterError, ParameterStore, ParameterWriter, PutParameterError, SecretError, SecretStore,
};
use tollgate_core::secret::Secret;

/// How the fake answers.
#[derive(Debug, Clone, Default)]
pub enum Mode {
    /// Accepts.
    #[default]
    Ok,
    /// Denies.
    Denied,
    /// Never answers in time.
    Stall,
}

/// Shared log of writes (and of events from other fakes, for ordering).
pub type Log = Arc<Mutex<Vec<String>>>;

/// In-memory [`ParameterWriter`]: records every call, can fail or stall.
#[derive(Debug, Clone, Default)]
pub struct FakeWriter {
    pub mode: Mode,
    pub puts: Arc<Mutex<Vec<(String, String)>>>,
    pub log: Log,
}

impl ParameterWriter for FakeWriter {
    async fn put_parameter(&self, name: &str, value: &str) -> Result<(), PutParameterError> {
        self.log
            .lock()
            .expect("lock")
            .push(format!("PutParameter {name}"));
        match self.mode {
            Mode::Ok => {
                self.puts
                    .lock()
                    .expect("lock")
                    .push((name.to_owned(), value.to_owned()));
                Ok(())
            }
            Mode::Denied => Err(PutParameterError::Denied {
                name: name.to_owned(),
                detail: "AccessDeniedException: not authorized".to_owned(),
            }),
            Mode::Stall => {
                tokio::time::sleep(Duration::from_secs(3600)).await;
                Ok(())
            }
        }
    }
}

/// In-memory [`ParameterStore`] and `SecretStore`: named values, every read
/// recorded; an unknown name is `NotFound`, and [`FakeStore::denied`] denies
/// every read.
#[derive(Debug, Clone, Default)]
pub struct FakeStore {
    values: HashMap<String, String>,
    denied: bool,
    /// Names read, in order.
    pub reads: Arc<Mutex<Vec<String>>>,
}

impl FakeStore {
    /// A store holding `values`.
    pub fn with<K: Into<String>, V: Into<String>>(
        values: impl IntoIterator<Item = (K, V)>,
    ) -> Self {
        Self {
            values: values
                .into_iter()
                .map(|(k, v)| (k.into(), v.into()))
                .collect(),
            ..Self::default()
        }
    }

    /// A store that denies every read (`AccessDeniedException`).
    pub fn denied() -> Self {
        Self {
            denied: true,
            ..Self::default()
        }
    }

    /// Names read so far.
    pub fn reads(&self) -> Vec<String> {
        self.reads.lock().unwrap_or_else(|p| p.into_inner()).clone()
    }

    fn read(&self, name: &str) -> Result<Secret, bool> {
        self.reads
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .push(name.to_owned());
        if self.denied {
            return Err(true);
        }
        self.values
            .get(name)
            .map(|v| Secret::new(v.clone()))
            .ok_or(false)
    }
}

impl ParameterStore for FakeStore {
    async fn get_parameter(&self, name: &str) -> Result<Secret, ParameterError> {
        self.read(name).map_err(|denied| {
            if denied {
                ParameterError::Denied {
                    name: name.to_owned(),
                    detail: "AccessDeniedException".to_owned(),
                }
            } else {
                ParameterError::NotFound {
                    name: name.to_owned(),
                }
            }
        })
    }
}

impl SecretStore for FakeStore {
    async fn get_secret_string(&self, id: &str) -> Result<Secret, SecretError> {
        self.read(id).map_err(|denied| {
            if denied {
                SecretError::Denied {
                    id: id.to_owned(),
                    detail: "AccessDeniedException".to_owned(),
                }
            } else {
                SecretError::NotFound { id: id.to_owned() }
            }
        })
    }
}
