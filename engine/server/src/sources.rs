//! What each source holds at once: a door's connections, open streams. A source is an IPv4
//! address, or an IPv6 /64 (which one host usually has whole), so that one host cannot take all
//! of what every client shares.

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::{Arc, Mutex};

/// The source a peer address counts against: an IPv4 address, or an IPv6 address's /64 (an
/// IPv4 address mapped into IPv6 counts as itself).
pub(crate) fn source_of(peer: IpAddr) -> IpAddr {
    match peer {
        IpAddr::V4(_) => peer,
        IpAddr::V6(v6) => match v6.to_ipv4_mapped() {
            Some(v4) => IpAddr::V4(v4),
            None => IpAddr::V6((u128::from(v6) & (u128::MAX << 64)).into()),
        },
    }
}

/// At most `most` places for each source.
pub(crate) struct PerSource {
    most: usize,
    held: Mutex<HashMap<IpAddr, Held>>,
}

#[derive(Default)]
struct Held {
    places: usize,
    /// Whether a refusal was reported since the source last went under its most.
    reported: bool,
}

/// A source holds its most.
pub(crate) struct Full {
    pub(crate) source: IpAddr,
    pub(crate) most: usize,
    /// The first refusal since the source last went under its most (to log it once).
    pub(crate) first: bool,
}

/// One of a source's places, given back when dropped.
pub(crate) struct Place {
    per_source: Arc<PerSource>,
    source: IpAddr,
}

impl PerSource {
    pub(crate) fn new(most: usize) -> Arc<Self> {
        Arc::new(Self {
            most: most.max(1),
            held: Mutex::default(),
        })
    }

    /// A place for one more of `peer`'s source, unless it holds its most.
    pub(crate) fn take(self: &Arc<Self>, peer: IpAddr) -> Result<Place, Full> {
        let source = source_of(peer);
        let mut held = self.held.lock().unwrap_or_else(|p| p.into_inner());
        let entry = held.entry(source).or_default();
        if entry.places >= self.most {
            let first = !std::mem::replace(&mut entry.reported, true);
            return Err(Full {
                source,
                most: self.most,
                first,
            });
        }
        entry.places += 1;
        Ok(Place {
            per_source: Arc::clone(self),
            source,
        })
    }
}

impl Drop for Place {
    fn drop(&mut self) {
        let mut held = self
            .per_source
            .held
            .lock()
            .unwrap_or_else(|p| p.into_inner());
        if let Some(entry) = held.get_mut(&self.source) {
            entry.places -= 1;
            entry.reported = false;
            if entry.places == 0 {
                held.remove(&self.source);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_ipv6_source_is_its_64_prefix_and_a_mapped_ipv4_address_itself() {
        let v6 = |s: &str| IpAddr::from(s.parse::<std::net::Ipv6Addr>().unwrap());
        assert_eq!(source_of(v6("2001:db8:1:2:aa::1")), v6("2001:db8:1:2::"));
        assert_ne!(
            source_of(v6("2001:db8:1:2::1")),
            source_of(v6("2001:db8:1:3::1"))
        );
        assert_eq!(
            source_of(v6("::ffff:192.0.2.7")),
            IpAddr::from([192, 0, 2, 7])
        );
        assert_eq!(
            source_of(IpAddr::from([192, 0, 2, 7])),
            IpAddr::from([192, 0, 2, 7])
        );
    }

    #[test]
    fn a_source_holds_its_most_and_a_place_given_back_is_its_again() {
        let per_source = PerSource::new(2);
        let v6 = |s: &str| s.parse::<IpAddr>().unwrap();
        let first = per_source.take(v6("2001:db8::1")).ok().unwrap();
        let _second = per_source.take(v6("2001:db8::2")).ok().unwrap();
        let full = per_source.take(v6("2001:db8::3")).err().unwrap();
        assert_eq!(
            (full.source, full.most, full.first),
            (v6("2001:db8::"), 2, true)
        );
        assert!(!per_source.take(v6("2001:db8::3")).err().unwrap().first);
        assert!(
            per_source.take(v6("2001:db8:0:1::1")).is_ok(),
            "another /64"
        );
        drop(first);
        assert!(per_source.take(v6("2001:db8::3")).is_ok());
    }
}
