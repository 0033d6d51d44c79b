//! Readiness beyond the probes' own checks: the sinks whose store refuses them for a reason of
//! configuration (credentials, a missing bucket or database), with the store's answer, so that
//! `/readyz` names them until a write succeeds. One per application, shared by the sinks'
//! driver and the probes.

use std::collections::BTreeMap;
use std::sync::Mutex;

#[derive(Debug, Default)]
pub struct Health {
    failing: Mutex<BTreeMap<&'static str, String>>,
}

impl Health {
    /// `sink` cannot write for a reason of configuration (`Some(reason)`), or can again.
    pub fn sink_failing(&self, sink: &'static str, reason: Option<&str>) {
        if let Ok(mut failing) = self.failing.lock() {
            match reason {
                Some(reason) => {
                    failing.insert(sink, reason.to_owned());
                }
                None => {
                    failing.remove(sink);
                }
            }
        }
    }

    /// The sinks that cannot write for a reason of configuration, with the store's answer.
    pub fn failing_sinks(&self) -> BTreeMap<&'static str, String> {
        self.failing.lock().map(|f| f.clone()).unwrap_or_default()
    }
}
