//! The server clock. `--now` starts it at a chosen instant and it runs forward from there,
//! so deadlines can be drilled and tested without waiting for real days.

use chrono::{DateTime, Duration, Utc};

#[derive(Debug, Clone, Copy, Default)]
pub struct Clock {
    offset: Duration,
}

impl Clock {
    /// The real clock.
    pub fn system() -> Self {
        Clock::default()
    }

    /// A clock that reads `start` now and runs forward in real time.
    pub fn starting_at(start: DateTime<Utc>) -> Self {
        Clock {
            offset: start - Utc::now(),
        }
    }

    pub fn now(&self) -> DateTime<Utc> {
        gridloop_domain::to_millis(Utc::now() + self.offset)
    }
}
