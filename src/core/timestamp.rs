//! Timestamps as TAXII carries them: `xs:dateTime` with up to nanosecond
//! precision and the producer's own time zone (or none, which the draft
//! dialect allows). Nothing is rounded and the zone is never rewritten, so a
//! client that continues a poll from a returned label sees no gap.

use std::cmp::Ordering;
use std::fmt;
use std::str::FromStr;

/// A date-time with its zone offset as written by its producer.
///
/// Two timestamps compare by the instant they denote when both carry a zone;
/// a timestamp without a zone compares by its wall-clock fields.
#[derive(Clone, Copy, Debug, Eq, serde::Serialize, serde::Deserialize)]
#[serde(into = "String", try_from = "String")]
pub struct Timestamp {
    year: i32,
    month: u8,
    day: u8,
    hour: u8,
    minute: u8,
    second: u8,
    nanosecond: u32,
    /// Offset east of UTC in minutes; `None` when the producer gave no zone.
    offset_minutes: Option<i16>,
}

#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("invalid timestamp {text:?}: {reason}")]
pub struct TimestampError {
    pub text: String,
    pub reason: &'static str,
}

const NANOS_PER_SECOND: i128 = 1_000_000_000;
const SECONDS_PER_DAY: i64 = 86_400;

impl Timestamp {
    /// Builds a UTC timestamp from seconds and nanoseconds since the Unix epoch.
    pub fn from_unix(seconds: i64, nanosecond: u32) -> Self {
        Self::from_local_nanos(
            i128::from(seconds) * NANOS_PER_SECOND + i128::from(nanosecond),
            Some(0),
        )
    }

    /// The current time in UTC, at microsecond resolution (what labels carry).
    pub fn now() -> Self {
        let since = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap_or_default();
        let seconds = i64::try_from(since.as_secs()).unwrap_or(i64::MAX);
        Self::from_unix(seconds, since.subsec_micros() * 1000)
    }

    pub fn offset_minutes(&self) -> Option<i16> {
        self.offset_minutes
    }

    pub fn nanosecond(&self) -> u32 {
        self.nanosecond
    }

    /// Nanoseconds since the Unix epoch of the wall-clock fields, ignoring the zone.
    fn local_nanos(&self) -> i128 {
        let days = days_from_civil(self.year, self.month, self.day);
        let seconds = days * SECONDS_PER_DAY
            + i64::from(self.hour) * 3600
            + i64::from(self.minute) * 60
            + i64::from(self.second);
        i128::from(seconds) * NANOS_PER_SECOND + i128::from(self.nanosecond)
    }

    /// Nanoseconds since the Unix epoch of the instant (wall clock when zoneless).
    pub fn unix_nanos(&self) -> i128 {
        let offset = i128::from(self.offset_minutes.unwrap_or(0)) * 60 * NANOS_PER_SECOND;
        self.local_nanos() - offset
    }

    fn from_local_nanos(local: i128, offset_minutes: Option<i16>) -> Self {
        let seconds = local.div_euclid(NANOS_PER_SECOND) as i64;
        let nanosecond = local.rem_euclid(NANOS_PER_SECOND) as u32;
        let days = seconds.div_euclid(SECONDS_PER_DAY);
        let in_day = seconds.rem_euclid(SECONDS_PER_DAY);
        let (year, month, day) = civil_from_days(days);
        Timestamp {
            year,
            month,
            day,
            hour: (in_day / 3600) as u8,
            minute: (in_day % 3600 / 60) as u8,
            second: (in_day % 60) as u8,
            nanosecond,
            offset_minutes,
        }
    }

    /// The same zone, shifted by a number of nanoseconds. Used to turn an
    /// inclusive bound into an exclusive one and back at label resolution.
    pub fn shifted_nanos(&self, delta: i64) -> Self {
        Self::from_local_nanos(self.local_nanos() + i128::from(delta), self.offset_minutes)
    }
}

impl PartialEq for Timestamp {
    fn eq(&self, other: &Self) -> bool {
        self.cmp(other) == Ordering::Equal
    }
}

impl std::hash::Hash for Timestamp {
    fn hash<H: std::hash::Hasher>(&self, state: &mut H) {
        self.unix_nanos().hash(state);
        self.offset_minutes.hash(state);
    }
}

impl PartialOrd for Timestamp {
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}

impl Ord for Timestamp {
    fn cmp(&self, other: &Self) -> Ordering {
        // Equal instants written in different zones are still different labels
        // for a round trip, so the zone breaks ties.
        self.unix_nanos()
            .cmp(&other.unix_nanos())
            .then(self.offset_minutes.cmp(&other.offset_minutes))
    }
}

impl fmt::Display for Timestamp {
    /// Written into a buffer of its own and handed over at once: a poll
    /// response writes one per block, and formatting machinery per field
    /// showed in its profile.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut text = Ascii::default();
        if self.year < 0 {
            text.push(b'-');
        }
        text.number(u64::from(self.year.unsigned_abs()), 4);
        for (separator, field) in [
            (b'-', self.month),
            (b'-', self.day),
            (b'T', self.hour),
            (b':', self.minute),
            (b':', self.second),
        ] {
            text.push(separator);
            text.number(u64::from(field), 2);
        }
        if self.nanosecond != 0 {
            let mut fraction = self.nanosecond;
            let mut digits = 9;
            while fraction.is_multiple_of(10) {
                fraction /= 10;
                digits -= 1;
            }
            text.push(b'.');
            text.number(u64::from(fraction), digits);
        }
        match self.offset_minutes {
            None => {}
            Some(0) => text.push(b'Z'),
            Some(offset) => {
                text.push(if offset < 0 { b'-' } else { b'+' });
                let offset = offset.unsigned_abs();
                text.number(u64::from(offset / 60), 2);
                text.push(b':');
                text.number(u64::from(offset % 60), 2);
            }
        }
        f.write_str(text.as_str())
    }
}

/// ASCII written into a fixed buffer, long enough for any timestamp: a
/// sign, ten digits of year, five two- or three-digit fields, nine of
/// fraction and an offset come to at most 56 bytes.
struct Ascii {
    bytes: [u8; 64],
    len: usize,
}

impl Default for Ascii {
    fn default() -> Self {
        Ascii {
            bytes: [0; 64],
            len: 0,
        }
    }
}

impl Ascii {
    fn push(&mut self, byte: u8) {
        self.bytes[self.len] = byte;
        self.len += 1;
    }

    /// `value` in decimal, zero-padded to `width` digits.
    fn number(&mut self, mut value: u64, width: usize) {
        let mut digits = [b'0'; 20];
        let mut start = digits.len();
        loop {
            start -= 1;
            digits[start] = b'0' + (value % 10) as u8;
            value /= 10;
            if value == 0 {
                break;
            }
        }
        for _ in digits.len() - start..width {
            self.push(b'0');
        }
        for &digit in &digits[start..] {
            self.push(digit);
        }
    }

    fn as_str(&self) -> &str {
        // Only ASCII digits and punctuation are ever pushed.
        std::str::from_utf8(&self.bytes[..self.len]).unwrap_or_default()
    }
}

impl From<Timestamp> for String {
    fn from(t: Timestamp) -> String {
        t.to_string()
    }
}

impl TryFrom<String> for Timestamp {
    type Error = TimestampError;
    fn try_from(s: String) -> Result<Self, Self::Error> {
        s.parse()
    }
}

impl FromStr for Timestamp {
    type Err = TimestampError;

    /// Parses the lexical form of `xs:dateTime`: `[-]YYYY-MM-DDThh:mm:ss[.f+][zone]`.
    fn from_str(text: &str) -> Result<Self, Self::Err> {
        let fail = |reason| TimestampError {
            text: text.chars().take(64).collect(),
            reason,
        };
        let mut cursor = Cursor {
            bytes: text.trim().as_bytes(),
            at: 0,
        };
        let negative = cursor.eat(b'-');
        let year_digits = cursor.digits();
        if year_digits.len() < 4 || (year_digits.len() > 4 && year_digits[0] == b'0') {
            return Err(fail("the year needs four or more digits"));
        }
        if year_digits.len() > 6 {
            return Err(fail("the year is out of range"));
        }
        let mut year = number(year_digits) as i32;
        if negative {
            year = -year;
        }
        let month = cursor.field(b'-', 2).ok_or_else(|| fail("expected -MM"))? as u8;
        let day = cursor.field(b'-', 2).ok_or_else(|| fail("expected -DD"))? as u8;
        let hour = cursor.field(b'T', 2).ok_or_else(|| fail("expected Thh"))? as u8;
        let minute = cursor.field(b':', 2).ok_or_else(|| fail("expected :mm"))? as u8;
        let second = cursor.field(b':', 2).ok_or_else(|| fail("expected :ss"))? as u8;
        let mut nanosecond = 0;
        if cursor.eat(b'.') {
            let fraction = cursor.digits();
            if fraction.is_empty() {
                return Err(fail("a fraction needs digits after the point"));
            }
            if fraction.len() > 9 {
                return Err(fail(
                    "more than 9 fractional digits (nanoseconds) are not kept",
                ));
            }
            nanosecond = number(fraction) as u32 * 10u32.pow(9 - fraction.len() as u32);
        }
        let offset_minutes = match cursor.next() {
            None => None,
            Some(b'Z') => Some(0),
            Some(sign @ (b'+' | b'-')) => {
                let hours = cursor.fixed(2).ok_or_else(|| fail("expected zone hh"))?;
                let minutes = cursor
                    .field(b':', 2)
                    .ok_or_else(|| fail("expected zone :mm"))?;
                if hours > 14 || minutes > 59 || (hours == 14 && minutes != 0) {
                    return Err(fail("zone offset out of range"));
                }
                let offset = (hours * 60 + minutes) as i16;
                Some(if sign == b'-' { -offset } else { offset })
            }
            Some(_) => return Err(fail("unexpected character after the time")),
        };
        if cursor.at != cursor.bytes.len() {
            return Err(fail("unexpected text after the time zone"));
        }
        if !(1..=12).contains(&month) || day == 0 || day > days_in_month(year, month) {
            return Err(fail("no such date"));
        }
        if hour > 23 || minute > 59 || second > 59 {
            return Err(fail("no such time of day"));
        }
        Ok(Timestamp {
            year,
            month,
            day,
            hour,
            minute,
            second,
            nanosecond,
            offset_minutes,
        })
    }
}

struct Cursor<'a> {
    bytes: &'a [u8],
    at: usize,
}

impl<'a> Cursor<'a> {
    fn eat(&mut self, byte: u8) -> bool {
        if self.bytes.get(self.at) == Some(&byte) {
            self.at += 1;
            true
        } else {
            false
        }
    }

    fn next(&mut self) -> Option<u8> {
        let byte = self.bytes.get(self.at).copied();
        if byte.is_some() {
            self.at += 1;
        }
        byte
    }

    fn digits(&mut self) -> &'a [u8] {
        let start = self.at;
        while self.bytes.get(self.at).is_some_and(u8::is_ascii_digit) {
            self.at += 1;
        }
        &self.bytes[start..self.at]
    }

    fn take(&mut self, count: usize) -> &'a [u8] {
        let end = (self.at + count).min(self.bytes.len());
        let taken = &self.bytes[self.at..end];
        self.at = end;
        taken
    }

    /// A separator followed by exactly `width` digits.
    fn field(&mut self, separator: u8, width: usize) -> Option<u32> {
        if !self.eat(separator) {
            return None;
        }
        self.fixed(width)
    }

    /// Exactly `width` digits.
    fn fixed(&mut self, width: usize) -> Option<u32> {
        let taken = self.take(width);
        number_exact(taken).filter(|_| width > 0 && taken.len() == width)
    }
}

fn number(digits: &[u8]) -> u64 {
    digits
        .iter()
        .fold(0u64, |n, d| n * 10 + u64::from(d - b'0'))
}

fn number_exact(digits: &[u8]) -> Option<u32> {
    (!digits.is_empty() && digits.iter().all(u8::is_ascii_digit)).then(|| number(digits) as u32)
}

fn is_leap(year: i32) -> bool {
    (year % 4 == 0 && year % 100 != 0) || year % 400 == 0
}

fn days_in_month(year: i32, month: u8) -> u8 {
    match month {
        2 if is_leap(year) => 29,
        2 => 28,
        4 | 6 | 9 | 11 => 30,
        _ => 31,
    }
}

/// Days since 1970-01-01 of a proleptic Gregorian date (Howard Hinnant's algorithm).
fn days_from_civil(year: i32, month: u8, day: u8) -> i64 {
    let year = i64::from(year) - i64::from(month <= 2);
    let era = year.div_euclid(400);
    let year_of_era = year.rem_euclid(400);
    let month = i64::from(month);
    let day_of_year =
        (153 * (if month > 2 { month - 3 } else { month + 9 }) + 2) / 5 + i64::from(day) - 1;
    let day_of_era = year_of_era * 365 + year_of_era / 4 - year_of_era / 100 + day_of_year;
    era * 146_097 + day_of_era - 719_468
}

fn civil_from_days(days: i64) -> (i32, u8, u8) {
    let days = days + 719_468;
    let era = days.div_euclid(146_097);
    let day_of_era = days.rem_euclid(146_097);
    let year_of_era =
        (day_of_era - day_of_era / 1460 + day_of_era / 36_524 - day_of_era / 146_096) / 365;
    let day_of_year = day_of_era - (365 * year_of_era + year_of_era / 4 - year_of_era / 100);
    let month_index = (5 * day_of_year + 2) / 153;
    let day = (day_of_year - (153 * month_index + 2) / 5 + 1) as u8;
    let month = if month_index < 10 {
        month_index + 3
    } else {
        month_index - 9
    } as u8;
    let year = year_of_era + era * 400 + i64::from(month <= 2);
    (year as i32, month, day)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ts(text: &str) -> Timestamp {
        text.parse().unwrap()
    }

    #[test]
    fn keeps_precision_and_zone() {
        for text in [
            "2012-11-12T14:43:34Z",
            "2012-11-12T20:00:00.123456Z",
            "2012-11-12T20:00:00.000000001+05:30",
            "2012-11-12T20:00:00-08:00",
            "2012-11-12T20:00:00",
            "-0044-03-15T12:00:00Z",
        ] {
            assert_eq!(ts(text).to_string(), text);
        }
    }

    #[test]
    fn trailing_fraction_zeros_are_the_same_label() {
        assert_eq!(ts("2012-11-12T14:43:34.000Z"), ts("2012-11-12T14:43:34Z"));
        assert_eq!(
            ts("2012-11-12T14:43:34.500Z").to_string(),
            "2012-11-12T14:43:34.5Z"
        );
    }

    #[test]
    fn orders_by_instant_across_zones() {
        assert!(ts("2012-11-12T14:00:00+01:00") < ts("2012-11-12T13:30:00Z"));
        assert!(ts("2012-11-12T13:00:00Z") > ts("2012-11-12T12:59:59.999999999Z"));
    }

    #[test]
    fn shifts_across_day_and_year_boundaries() {
        assert_eq!(
            ts("2013-01-01T00:00:00Z").shifted_nanos(-1_000).to_string(),
            "2012-12-31T23:59:59.999999Z"
        );
        assert_eq!(
            ts("2012-02-28T23:59:59.999999+02:00")
                .shifted_nanos(1_000)
                .to_string(),
            "2012-02-29T00:00:00+02:00"
        );
    }

    #[test]
    fn epoch_round_trip() {
        assert_eq!(
            Timestamp::from_unix(0, 0).to_string(),
            "1970-01-01T00:00:00Z"
        );
        assert_eq!(
            ts("2012-11-12T14:43:34Z").unix_nanos(),
            1_352_731_414 * NANOS_PER_SECOND
        );
    }

    #[test]
    fn rejects_what_is_not_a_date_time() {
        for text in [
            "",
            "0000-00-00T00:00:01",
            "2012-02-30T00:00:00Z",
            "2013-02-29T00:00:00Z",
            "2012-11-12 14:43:34Z",
            "2012-11-12T24:00:00Z",
            "2012-11-12T14:43:34.Z",
            "2012-11-12T14:43:34.1234567890Z",
            "2012-11-12T14:43:34+15:00",
            "2012-11-12T14:43:34Zjunk",
            "12-11-12T14:43:34Z",
            "2012-1-12T14:43:34Z",
            "2012-11-12T14:43:3",
            "2012-11-12T14:43:34+05:3",
            "2012-11-12T14:43:34+5:30",
        ] {
            assert!(
                text.parse::<Timestamp>().is_err(),
                "{text} should be rejected"
            );
        }
    }
}
