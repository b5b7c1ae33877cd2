//! Timestamps in the forms Google's APIs write them.

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
