//! Timestamps in the forms Google's APIs write them, and the cloud's clock
//! set off from this machine's ([`OffsetClock`]).

use keyway_core::Clock;
use std::sync::Arc;

/// Another clock moved by a fixed offset: `keyway cloud up --clock-offset`,
/// the cloud as a machine whose clock is off sees it (AWS refuses a SigV4
/// signature more than 15 minutes from its own time).
pub struct OffsetClock {
    base: Arc<dyn Clock>,
    offset_millis: i64,
}

impl OffsetClock {
    pub fn new(base: Arc<dyn Clock>, offset_millis: i64) -> OffsetClock {
        OffsetClock {
            base,
            offset_millis,
        }
    }
}

impl Clock for OffsetClock {
    fn now_millis(&self) -> i64 {
        self.base.now_millis().saturating_add(self.offset_millis)
    }
}

/// RFC 3339 in UTC with nanosecond-style fraction, as Secret Manager writes
/// `createTime` ("2026-11-23T19:28:37.123456Z").
pub fn rfc3339_millis(ms: i64) -> String {
    match jiff::Timestamp::from_millisecond(ms) {
        Ok(t) => format!("{t:.6}"),
        Err(_) => "1970-01-01T00:00:00Z".to_owned(),
    }
}

/// RFC 3339 in UTC to the second ("2026-11-23T19:28:37Z").
pub fn rfc3339_seconds(ms: i64) -> String {
    match jiff::Timestamp::from_millisecond(ms) {
        Ok(t) => t.strftime("%Y-%m-%dT%H:%M:%SZ").to_string(),
        Err(_) => "1970-01-01T00:00:00Z".to_owned(),
    }
}

/// Compute Engine's `creationTimestamp` style: RFC 3339 with an offset.
pub fn rfc3339_offset(ms: i64) -> String {
    match jiff::Timestamp::from_millisecond(ms) {
        Ok(t) => t.strftime("%Y-%m-%dT%H:%M:%S%.3f-00:00").to_string(),
        Err(_) => "1970-01-01T00:00:00.000-00:00".to_owned(),
    }
}

#[cfg(test)]
mod tests {
    use keyway_core::Clock;
    use keyway_core::clock::ManualClock;
    use std::sync::Arc;

    #[test]
    fn an_offset_clock_runs_that_far_from_its_base() {
        let base = ManualClock::at_secs(1_700_000_000);
        let ahead = super::OffsetClock::new(Arc::new(base.clone()), 3_600_000);
        let behind = super::OffsetClock::new(Arc::new(base.clone()), -1_200_000);
        assert_eq!(ahead.now_secs(), 1_700_003_600);
        assert_eq!(behind.now_secs(), 1_699_998_800);
        base.advance_secs(5);
        assert_eq!(ahead.now_secs(), 1_700_003_605);
        let end =
            super::OffsetClock::new(Arc::new(ManualClock::at_secs(i64::MAX / 1000)), i64::MAX);
        assert_eq!(end.now_millis(), i64::MAX);
    }
    #[test]
    fn formats() {
        assert_eq!(
            super::rfc3339_millis(1_700_000_000_123),
            "2023-11-14T22:13:20.123000Z"
        );
        assert_eq!(
            super::rfc3339_offset(1_700_000_000_123),
            "2023-11-14T22:13:20.123-00:00"
        );
    }
}
