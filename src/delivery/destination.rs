//! Where deliveries may go (server-side request forgery rules).
//!
//! A destination is `https://` (or `http://` with `allow_http`), without user info, and every
//! address it names or resolves to must be public: loopback, private, link-local, shared
//! (CGNAT), multicast, unspecified, documentation, benchmarking and reserved ranges are refused,
//! also when carried inside an IPv4-mapped, IPv4-compatible or NAT64 IPv6 address. An operator
//! can open private ranges with `allow_cidrs`; cloud metadata addresses (169.254.169.254,
//! fd00:ec2::254) stay refused even then.
//!
//! IP literals are checked when an endpoint is saved and again at each attempt; names are
//! resolved at each attempt by [`CheckedResolver`], which hands the HTTP client only the
//! addresses it checked, so the connection goes to a checked address (no second lookup that a
//! hostile DNS server could answer differently).

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::sync::Arc;

use ipnet::IpNet;
use reqwest::Url;

/// The error code of a refused destination (admin API and attempt log).
pub const NOT_ALLOWED: &str = "destination_not_allowed";

/// What the operator allows beyond public addresses.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Policy {
    pub allow_http: bool,
    pub allow_cidrs: Vec<IpNet>,
}

/// Why a destination is refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DestinationError {
    #[error("is not a URL: {0}")]
    NotUrl(String),
    #[error("must use https:// (http:// only with [delivery] allow_http = true), not {0}://")]
    Scheme(String),
    #[error("must not carry a user name or password")]
    UserInfo,
    #[error("has no host")]
    NoHost,
    #[error("destination_not_allowed: {0} is a {1} address (open it with [delivery] allow_cidrs)")]
    Refused(IpAddr, &'static str),
    #[error("destination_not_allowed: {0} is a cloud metadata address, which is always refused")]
    Metadata(IpAddr),
    #[error("destination_not_allowed: {0} does not resolve to any address")]
    Unresolved(String),
}

impl DestinationError {
    /// Whether the refusal is about the address (the `destination_not_allowed` code).
    pub fn is_address(&self) -> bool {
        matches!(
            self,
            DestinationError::Refused(..)
                | DestinationError::Metadata(_)
                | DestinationError::Unresolved(_)
        )
    }
}

/// Checks a URL's form and, when its host is an IP literal, the address.
///
/// # Errors
/// What is wrong with it.
pub fn check_url(text: &str, policy: &Policy) -> Result<Url, DestinationError> {
    let url = Url::parse(text).map_err(|e| DestinationError::NotUrl(e.to_string()))?;
    match url.scheme() {
        "https" => {}
        "http" if policy.allow_http => {}
        other => return Err(DestinationError::Scheme(other.to_owned())),
    }
    if !url.username().is_empty() || url.password().is_some() {
        return Err(DestinationError::UserInfo);
    }
    match url.host() {
        None => return Err(DestinationError::NoHost),
        Some(url::Host::Ipv4(ip)) => check_ip(IpAddr::V4(ip), policy)?,
        Some(url::Host::Ipv6(ip)) => check_ip(IpAddr::V6(ip), policy)?,
        Some(url::Host::Domain(_)) => {}
    }
    Ok(url)
}

/// Checks one address against the policy.
///
/// # Errors
/// The address is in a refused range, or is a metadata address.
pub fn check_ip(ip: IpAddr, policy: &Policy) -> Result<(), DestinationError> {
    let inner = embedded_v4(ip).map_or(ip, IpAddr::V4);
    if is_metadata(ip) || is_metadata(inner) {
        return Err(DestinationError::Metadata(ip));
    }
    if policy
        .allow_cidrs
        .iter()
        .any(|net| net.contains(&ip) || net.contains(&inner))
    {
        return Ok(());
    }
    match refused_kind(inner).or_else(|| refused_kind(ip)) {
        Some(kind) => Err(DestinationError::Refused(ip, kind)),
        None => Ok(()),
    }
}

fn is_metadata(ip: IpAddr) -> bool {
    const V4: Ipv4Addr = Ipv4Addr::new(169, 254, 169, 254);
    const V6: Ipv6Addr = Ipv6Addr::new(0xfd00, 0xec2, 0, 0, 0, 0, 0, 0x254);
    ip == IpAddr::V4(V4) || ip == IpAddr::V6(V6)
}

/// The IPv4 address inside an IPv4-mapped (`::ffff:a.b.c.d`), IPv4-compatible (`::a.b.c.d`)
/// or NAT64 (`64:ff9b::a.b.c.d`) IPv6 address.
fn embedded_v4(ip: IpAddr) -> Option<Ipv4Addr> {
    let IpAddr::V6(v6) = ip else { return None };
    let s = v6.segments();
    let tail = Ipv4Addr::new(
        (s[6] >> 8) as u8,
        (s[6] & 0xff) as u8,
        (s[7] >> 8) as u8,
        (s[7] & 0xff) as u8,
    );
    let mapped = s[..5] == [0; 5] && s[5] == 0xffff;
    let compatible = s[..6] == [0; 6] && (s[6] != 0 || s[7] > 1);
    let nat64 = s[..6] == [0x64, 0xff9b, 0, 0, 0, 0];
    (mapped || compatible || nat64).then_some(tail)
}

/// The kind of non-public range `ip` is in, if any.
fn refused_kind(ip: IpAddr) -> Option<&'static str> {
    match ip {
        IpAddr::V4(v4) => {
            let [a, b, c, _] = v4.octets();
            if v4.is_unspecified() || a == 0 {
                Some("unspecified")
            } else if v4.is_loopback() {
                Some("loopback")
            } else if v4.is_private() {
                Some("private")
            } else if v4.is_link_local() {
                Some("link-local")
            } else if a == 100 && (64..128).contains(&b) {
                Some("shared (CGNAT)")
            } else if v4.is_multicast() {
                Some("multicast")
            } else if v4.is_documentation() {
                Some("documentation")
            } else if a == 198 && (b == 18 || b == 19) {
                Some("benchmarking")
            } else if a == 192 && b == 0 && c == 0 {
                Some("protocol-assignment")
            } else if a >= 240 {
                Some("reserved")
            } else {
                None
            }
        }
        IpAddr::V6(v6) => {
            let s = v6.segments();
            if v6.is_unspecified() {
                Some("unspecified")
            } else if v6.is_loopback() {
                Some("loopback")
            } else if s[0] & 0xfe00 == 0xfc00 {
                Some("private (unique local)")
            } else if s[0] & 0xffc0 == 0xfe80 || s[0] & 0xffc0 == 0xfec0 {
                Some("link-local")
            } else if s[0] & 0xff00 == 0xff00 {
                Some("multicast")
            } else if s[0] == 0x2001 && s[1] == 0x0db8 {
                Some("documentation")
            } else {
                None
            }
        }
    }
}

/// A DNS resolver for the delivery client that resolves with the system resolver and refuses
/// the name unless every address passes [`check_ip`]; the client connects only to the
/// addresses returned here.
#[derive(Debug, Clone)]
pub struct CheckedResolver {
    pub policy: Arc<Policy>,
}

impl reqwest::dns::Resolve for CheckedResolver {
    fn resolve(&self, name: reqwest::dns::Name) -> reqwest::dns::Resolving {
        let policy = Arc::clone(&self.policy);
        let host = name.as_str().to_owned();
        Box::pin(async move {
            let addrs: Vec<SocketAddr> =
                tokio::net::lookup_host((host.as_str(), 0)).await?.collect();
            if addrs.is_empty() {
                return Err(boxed(DestinationError::Unresolved(host)));
            }
            for addr in &addrs {
                check_ip(addr.ip(), &policy).map_err(boxed)?;
            }
            Ok(Box::new(addrs.into_iter()) as reqwest::dns::Addrs)
        })
    }
}

fn boxed(e: DestinationError) -> Box<dyn std::error::Error + Send + Sync> {
    Box::new(e)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn default_policy() -> Policy {
        Policy::default()
    }

    #[test]
    fn address_table() {
        let refused = [
            "127.0.0.1",
            "127.255.0.9",
            "10.1.2.3",
            "172.16.0.1",
            "172.31.255.255",
            "192.168.1.1",
            "169.254.1.1",
            "100.64.0.1",
            "100.127.255.254",
            "224.0.0.1",
            "239.255.255.250",
            "0.0.0.0",
            "0.1.2.3",
            "192.0.2.10",
            "198.51.100.7",
            "203.0.113.200",
            "198.18.0.1",
            "192.0.0.8",
            "240.0.0.1",
            "255.255.255.255",
            "::",
            "::1",
            "fe80::1",
            "fc00::1",
            "fd12:3456::1",
            "ff02::1",
            "2001:db8::1",
            "::ffff:127.0.0.1",
            "::ffff:10.0.0.1",
            "::ffff:192.168.0.1",
            "::127.0.0.1",
            "64:ff9b::10.0.0.1",
        ];
        for text in refused {
            let ip: IpAddr = text.parse().expect(text);
            let got = check_ip(ip, &default_policy());
            assert!(
                matches!(got, Err(DestinationError::Refused(..))),
                "{text}: {got:?}"
            );
        }
        let public = [
            "1.1.1.1",
            "8.8.8.8",
            "93.184.216.34",
            "100.63.255.255",
            "100.128.0.1",
            "172.32.0.1",
            "2606:4700:4700::1111",
            "::ffff:8.8.8.8",
        ];
        for text in public {
            let ip: IpAddr = text.parse().expect(text);
            assert_eq!(check_ip(ip, &default_policy()), Ok(()), "{text}");
        }
    }

    #[test]
    fn metadata_is_refused_even_when_allowed() {
        let policy = Policy {
            allow_http: true,
            allow_cidrs: vec![
                "169.254.0.0/16".parse().expect("net"),
                "fd00::/8".parse().expect("net"),
                "::/0".parse().expect("net"),
                "0.0.0.0/0".parse().expect("net"),
            ],
        };
        for text in ["169.254.169.254", "fd00:ec2::254", "::ffff:169.254.169.254"] {
            let ip: IpAddr = text.parse().expect(text);
            assert!(
                matches!(check_ip(ip, &policy), Err(DestinationError::Metadata(_))),
                "{text}"
            );
        }
        // Other link-local addresses are allowed by that policy.
        assert_eq!(
            check_ip("169.254.1.1".parse().expect("ip"), &policy),
            Ok(())
        );
    }

    #[test]
    fn allow_cidrs_opens_only_their_ranges() {
        let policy = Policy {
            allow_http: false,
            allow_cidrs: vec!["10.0.0.0/8".parse().expect("net")],
        };
        assert_eq!(check_ip("10.9.8.7".parse().expect("ip"), &policy), Ok(()));
        assert_eq!(
            check_ip("::ffff:10.9.8.7".parse().expect("ip"), &policy),
            Ok(())
        );
        assert!(check_ip("192.168.0.1".parse().expect("ip"), &policy).is_err());
        assert!(check_ip("127.0.0.1".parse().expect("ip"), &policy).is_err());
    }

    #[test]
    fn url_form() {
        let p = default_policy();
        assert!(check_url("https://hooks.example.com/in", &p).is_ok());
        assert!(matches!(
            check_url("http://hooks.example.com/in", &p),
            Err(DestinationError::Scheme(s)) if s == "http"
        ));
        assert!(matches!(
            check_url("ftp://hooks.example.com/in", &p),
            Err(DestinationError::Scheme(_))
        ));
        assert_eq!(
            check_url("https://user:pw@hooks.example.com/", &p).err(),
            Some(DestinationError::UserInfo)
        );
        assert_eq!(
            check_url("https://user@hooks.example.com/", &p).err(),
            Some(DestinationError::UserInfo)
        );
        assert!(matches!(
            check_url("not a url", &p),
            Err(DestinationError::NotUrl(_))
        ));
        for literal in [
            "https://127.0.0.1/",
            "https://[::1]:8443/",
            "https://169.254.169.254/latest/meta-data",
            "https://[::ffff:7f00:1]/",
            "https://10.0.0.5/",
            "https://0x7f000001/",
            "https://2130706433/",
        ] {
            let err = check_url(literal, &p).expect_err(literal);
            assert!(err.is_address(), "{literal}: {err}");
            assert!(err.to_string().starts_with(NOT_ALLOWED), "{err}");
        }
        let open = Policy {
            allow_http: true,
            allow_cidrs: vec!["127.0.0.0/8".parse().expect("net")],
        };
        assert!(check_url("http://127.0.0.1:9000/hook", &open).is_ok());
    }

    #[tokio::test]
    async fn names_are_checked_when_resolved() {
        use reqwest::dns::Resolve as _;
        let resolver = CheckedResolver {
            policy: Arc::new(default_policy()),
        };
        let name: reqwest::dns::Name = "localhost".parse().expect("name");
        let err = match resolver.resolve(name).await {
            Ok(_) => panic!("localhost resolved to an allowed address"),
            Err(e) => e.to_string(),
        };
        assert!(err.starts_with(NOT_ALLOWED), "{err}");
        let open = CheckedResolver {
            policy: Arc::new(Policy {
                allow_http: true,
                allow_cidrs: vec![
                    "127.0.0.0/8".parse().expect("net"),
                    "::1/128".parse().expect("net"),
                ],
            }),
        };
        let name: reqwest::dns::Name = "localhost".parse().expect("name");
        let addrs: Vec<SocketAddr> = match open.resolve(name).await {
            Ok(addrs) => addrs.collect(),
            Err(e) => panic!("{e}"),
        };
        assert!(!addrs.is_empty());
        assert!(addrs.iter().all(|a| a.ip().is_loopback()));
    }
}
