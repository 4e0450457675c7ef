//! The per-run certificate authority that signs the broker's leaf
//! certificates.
//!
//! Its key is made in memory by [`Authority::new`] and is never written,
//! exported or printed: the sandbox gets only the certificate
//! ([`Authority::cert_pem`]), so a program inside can trust the broker but
//! cannot impersonate anything itself. The certificate is also name
//! constrained to the brokered hosts (permitted DNS subtrees for the names,
//! IP subtrees for the addresses, and an excluded subtree or an
//! `invalid` DNS subtree for a kind of name with none), so even if the
//! certificate were misused as a trust anchor elsewhere it could vouch for
//! nothing but those hosts (and, for DNS names, their subdomains).

use std::collections::HashMap;
use std::fmt;
use std::net::IpAddr;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration as StdDuration, Instant};

use rcgen::{
    BasicConstraints, CertificateParams, CidrSubnet, DistinguishedName, DnType,
    ExtendedKeyUsagePurpose, GeneralSubtree, IsCa, Issuer, KeyPair, KeyUsagePurpose,
    NameConstraints, SerialNumber,
};
use ring::rand::{SecureRandom, SystemRandom};
use rustls::sign::CertifiedKey;
use rustls_pki_types::{CertificateDer, PrivateKeyDer, PrivatePkcs8KeyDer};
use time::{Duration, OffsetDateTime};

use crate::error::Error;
use crate::host;

/// How long the authority's certificate is valid; longer than any run.
const CA_VALIDITY: Duration = Duration::days(30);
/// Leaves are valid from this long ago, for clocks slightly behind.
const BACKDATE: Duration = Duration::hours(1);
/// Leaves are valid this far ahead.
const LEAF_VALIDITY: Duration = Duration::days(1);
/// A cached leaf is replaced after this long, well before it expires.
const LEAF_REISSUE: StdDuration = StdDuration::from_secs(12 * 60 * 60);

/// A certificate authority that lives only in this process.
pub struct Authority {
    issuer: Issuer<'static, KeyPair>,
    cert_der: CertificateDer<'static>,
    cert_pem: String,
    hosts: Vec<String>,
    leaves: Mutex<HashMap<String, (Arc<CertifiedKey>, Instant)>>,
}

impl Authority {
    /// A new authority (ECDSA P-256) constrained to `hosts` (names or IP
    /// addresses; at least one).
    pub fn new(hosts: &[String]) -> Result<Authority, Error> {
        let mut names = Vec::new();
        for h in hosts {
            let h = host::normalise(h)?;
            if !names.contains(&h) {
                names.push(h);
            }
        }
        if names.is_empty() {
            return Err(Error::NoHosts);
        }
        let mut params = CertificateParams::default();
        let mut dn = DistinguishedName::new();
        dn.push(DnType::OrganizationName, "moat");
        dn.push(DnType::CommonName, "moat per-run broker CA");
        params.distinguished_name = dn;
        let now = OffsetDateTime::now_utc();
        params.not_before = now - BACKDATE;
        params.not_after = now + CA_VALIDITY;
        params.serial_number = Some(random_serial()?);
        // Path length 0: it signs leaves, never another CA.
        params.is_ca = IsCa::Ca(BasicConstraints::Constrained(0));
        params.key_usages = vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign];
        params.name_constraints = Some(constraints(&names));
        let key = KeyPair::generate().map_err(Error::AuthorityGeneration)?;
        let cert = params
            .self_signed(&key)
            .map_err(Error::AuthorityGeneration)?;
        Ok(Authority {
            cert_der: cert.der().clone(),
            cert_pem: cert.pem(),
            issuer: Issuer::new(params, key),
            hosts: names,
            leaves: Mutex::new(HashMap::new()),
        })
    }

    /// The authority's certificate in PEM, for the sandbox's trust bundle.
    pub fn cert_pem(&self) -> String {
        self.cert_pem.clone()
    }

    /// The authority's certificate in DER.
    pub fn cert_der(&self) -> &CertificateDer<'static> {
        &self.cert_der
    }

    /// The hosts it may issue leaves for, normalised.
    pub fn hosts(&self) -> &[String] {
        &self.hosts
    }

    /// The leaf certificate and key for `host`, issued on first use and
    /// cached (replaced after 12 hours; each is valid from an hour ago to a
    /// day ahead). Its subject alternative name is `host`, as an IP address
    /// when it is one.
    pub fn leaf(&self, host: &str) -> Result<Arc<CertifiedKey>, Error> {
        let host = host::normalise(host)?;
        if !self.hosts.contains(&host) {
            return Err(Error::HostNotCovered { host });
        }
        let mut leaves = self.leaves.lock().unwrap_or_else(PoisonError::into_inner);
        if let Some((leaf, issued)) = leaves.get(&host) {
            if issued.elapsed() < LEAF_REISSUE {
                return Ok(Arc::clone(leaf));
            }
        }
        let leaf = Arc::new(self.issue(&host)?);
        leaves.insert(host, (Arc::clone(&leaf), Instant::now()));
        Ok(leaf)
    }

    /// Signs a new leaf for `host` with a new key. Does not check `host`
    /// against the authority's hosts (the tests use that to check the name
    /// constraints).
    fn issue(&self, host: &str) -> Result<CertifiedKey, Error> {
        let failed = |source| Error::LeafGeneration {
            host: host.to_string(),
            source,
        };
        let mut params = CertificateParams::new(vec![host.to_string()]).map_err(failed)?;
        let mut dn = DistinguishedName::new();
        // Not a host name, so clients that still look at the common name
        // (and OpenSSL's name-constraint check of it) ignore it.
        dn.push(DnType::CommonName, "moat broker leaf");
        params.distinguished_name = dn;
        let now = OffsetDateTime::now_utc();
        params.not_before = now - BACKDATE;
        params.not_after = now + LEAF_VALIDITY;
        params.serial_number = Some(random_serial()?);
        params.is_ca = IsCa::ExplicitNoCa;
        params.key_usages = vec![KeyUsagePurpose::DigitalSignature];
        params.extended_key_usages = vec![ExtendedKeyUsagePurpose::ServerAuth];
        params.use_authority_key_identifier_extension = true;
        let key = KeyPair::generate().map_err(failed)?;
        let cert = params.signed_by(&key, &self.issuer).map_err(failed)?;
        let key_der = PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(key.serialize_der()));
        let signer = rustls::crypto::ring::sign::any_ecdsa_type(&key_der)?;
        Ok(CertifiedKey::new(vec![cert.der().clone()], signer))
    }
}

impl fmt::Debug for Authority {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Authority")
            .field("hosts", &self.hosts)
            .field("key", &"<in memory only>")
            .finish_non_exhaustive()
    }
}

/// Name constraints that permit exactly the subtrees of `hosts` (already
/// normalised). A kind of name with no host is shut off explicitly, since
/// an absent kind would otherwise be unconstrained: addresses by excluding
/// all of them, DNS names by permitting only the reserved `invalid` TLD.
fn constraints(hosts: &[String]) -> NameConstraints {
    let mut permitted = Vec::new();
    let mut excluded = Vec::new();
    let mut any_ip = false;
    let mut any_dns = false;
    for h in hosts {
        match h.parse::<IpAddr>() {
            Ok(ip) => {
                any_ip = true;
                let prefix = if ip.is_ipv4() { 32 } else { 128 };
                permitted.push(GeneralSubtree::IpAddress(CidrSubnet::from_addr_prefix(
                    ip, prefix,
                )));
            }
            Err(_) => {
                any_dns = true;
                permitted.push(GeneralSubtree::DnsName(h.clone()));
            }
        }
    }
    if !any_ip {
        excluded.push(GeneralSubtree::IpAddress(CidrSubnet::from_v4_prefix(
            [0; 4], 0,
        )));
        excluded.push(GeneralSubtree::IpAddress(CidrSubnet::from_v6_prefix(
            [0; 16], 0,
        )));
    }
    if !any_dns {
        permitted.push(GeneralSubtree::DnsName("invalid".to_string()));
    }
    NameConstraints {
        permitted_subtrees: permitted,
        excluded_subtrees: excluded,
    }
}

/// A random positive 16-byte serial number.
fn random_serial() -> Result<SerialNumber, Error> {
    let mut bytes = [0u8; 16];
    SystemRandom::new()
        .fill(&mut bytes)
        .map_err(|_| Error::Random)?;
    // Positive and minimally encoded: top bit clear, next bit set.
    bytes[0] = (bytes[0] & 0x7f) | 0x40;
    Ok(SerialNumber::from_slice(&bytes))
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

    use super::*;
    use rustls::client::danger::ServerCertVerifier;
    use rustls::client::WebPkiServerVerifier;
    use rustls::RootCertStore;
    use rustls_pki_types::{ServerName, UnixTime};

    fn verify(authority: &Authority, leaf: &CertifiedKey, name: &str) -> Result<(), rustls::Error> {
        let mut roots = RootCertStore::empty();
        roots.add(authority.cert_der().clone()).unwrap();
        let provider = crate::broker::crypto_provider();
        let verifier = WebPkiServerVerifier::builder_with_provider(Arc::new(roots), provider)
            .build()
            .unwrap();
        verifier
            .verify_server_cert(
                &leaf.cert[0],
                &[],
                &ServerName::try_from(name.to_string()).unwrap(),
                &[],
                UnixTime::now(),
            )
            .map(|_| ())
    }

    #[test]
    fn leaf_chains_to_the_authority_for_its_host() {
        let a = Authority::new(&["Api.Example".into(), "127.0.0.1".into()]).unwrap();
        let leaf = a.leaf("api.example").unwrap();
        verify(&a, &leaf, "api.example").unwrap();
        // Not for another name.
        assert!(verify(&a, &leaf, "other.example").is_err());
        // Cached.
        assert!(Arc::ptr_eq(&leaf, &a.leaf("API.example.").unwrap()));
        let ip = a.leaf("127.0.0.1").unwrap();
        verify(&a, &ip, "127.0.0.1").unwrap();
        assert!(a.cert_pem().starts_with("-----BEGIN CERTIFICATE-----"));
    }

    #[test]
    fn other_hosts_are_not_issued() {
        let a = Authority::new(&["api.example".into()]).unwrap();
        assert!(matches!(
            a.leaf("evil.example"),
            Err(Error::HostNotCovered { .. })
        ));
        assert!(matches!(Authority::new(&[]), Err(Error::NoHosts)));
    }

    /// Even a certificate the key signs for another name does not verify:
    /// the name constraints hold for whoever holds the authority.
    #[test]
    fn name_constraints_stop_other_names() {
        let a = Authority::new(&["api.example".into()]).unwrap();
        let evil = a.issue("evil.example").unwrap();
        let err = verify(&a, &evil, "evil.example").unwrap_err();
        assert!(format!("{err:?}").contains("NameConstraint"), "{err:?}");
        let ip = a.issue("192.0.2.1").unwrap();
        assert!(verify(&a, &ip, "192.0.2.1").is_err());
        // Subdomains of a bound name are within the constraint.
        verify(&a, &a.issue("sub.api.example").unwrap(), "sub.api.example").unwrap();

        let only_ip = Authority::new(&["127.0.0.1".into()]).unwrap();
        assert!(verify(
            &only_ip,
            &only_ip.issue("api.example").unwrap(),
            "api.example"
        )
        .is_err());
        assert!(verify(&only_ip, &only_ip.issue("127.0.0.2").unwrap(), "127.0.0.2").is_err());
    }

    #[test]
    fn debug_shows_no_key() {
        let a = Authority::new(&["api.example".into()]).unwrap();
        let shown = format!("{a:?}");
        assert!(
            shown.contains("api.example") && !shown.contains("PRIVATE"),
            "{shown}"
        );
    }
}
