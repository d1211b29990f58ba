//! The registered country of an IP address, offline: iptocc compiles the
//! five RIRs' delegation statistics into pacer. This is the country of the
//! address block's registrant, not a geolocation; private, loopback and
//! unallocated addresses have none. The admin API uses it for
//! `PATCH /v1/accounts/{id}` with `{"ip": …}`.

use std::net::IpAddr;

use crate::config::CountryCode;

/// The country the block holding `ip` is registered to, if any (and if it
/// is an assigned ISO 3166-1 code; the RIRs also use `EU` and `AP`, which
/// are not).
pub fn country_of(ip: IpAddr) -> Option<CountryCode> {
    iptocc::country_code(ip)?.parse().ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn country(ip: &str) -> Option<String> {
        let ip: IpAddr = ip.parse().expect("ip");
        country_of(ip).map(|c| c.to_string())
    }

    #[test]
    fn known_addresses() {
        assert_eq!(country("8.8.8.8").as_deref(), Some("US"));
        assert_eq!(country("1.0.16.1").as_deref(), Some("JP"));
        assert_eq!(country("2001:4860:4860::8888").as_deref(), Some("US"));
    }

    #[test]
    fn private_and_special_addresses_have_no_country() {
        for ip in ["127.0.0.1", "10.1.2.3", "192.168.1.1", "100.64.0.1", "::1"] {
            assert_eq!(country(ip), None, "{ip}");
        }
    }
}
