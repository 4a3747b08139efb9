use rcgen::{CertificateParams, KeyPair, SanType};
use tonic::transport::CertificateDer;

use super::*;

fn cert(sans: Vec<SanType>) -> CertificateDer<'static> {
    let mut params = CertificateParams::new(Vec::<String>::new()).unwrap();
    params.subject_alt_names = sans;
    let key = KeyPair::generate().unwrap();
    params.self_signed(&key).unwrap().der().clone()
}

fn uri(s: &str) -> SanType {
    SanType::URI(s.try_into().unwrap())
}

#[test]
fn key_from_uri_san() {
    let chain = vec![cert(vec![SanType::DnsName("x".try_into().unwrap()), uri(&identity_uri("default/demo"))])];
    assert_eq!(peer_key(Some(&chain)), Ok("default/demo".to_owned()));
}

#[test]
fn no_identity() {
    assert_eq!(peer_key(None), Err("no client certificate".to_owned()));
    assert_eq!(peer_key(Some(&[])), Err("no client certificate".to_owned()));
    let other = vec![cert(vec![uri("spiffe://example.org/ns/a")])];
    assert!(peer_key(Some(&other)).unwrap_err().contains("no URI SAN"));
    let empty = vec![cert(vec![uri(IDENTITY_URI_PREFIX)])];
    assert!(peer_key(Some(&empty)).is_err());
    let none = vec![cert(vec![])];
    assert!(peer_key(Some(&none)).is_err());
    let garbage = vec![CertificateDer::from(vec![1u8, 2, 3])];
    assert!(peer_key(Some(&garbage)).unwrap_err().contains("unparsable"));
}
