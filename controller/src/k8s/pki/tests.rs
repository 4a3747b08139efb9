use super::*;

fn gw(ns: &str, name: &str) -> ObjKey {
    ObjKey::new(ns, name)
}

fn parse(pem: &str) -> (Vec<u8>, String) {
    let (_, p) = x509_parser::pem::parse_x509_pem(pem.as_bytes()).unwrap();
    let cn = p.parse_x509().unwrap().subject().to_string();
    (p.contents, cn)
}

fn secret_of(c: &ClientCert) -> Secret {
    let b = |s: &str| ByteString(s.as_bytes().to_vec());
    Secret {
        data: Some(BTreeMap::from([
            (TLS_CRT.to_owned(), b(&c.pair.cert_pem)),
            (TLS_KEY.to_owned(), b(&c.pair.key_pem)),
            (CA_CRT.to_owned(), b(&c.ca_pem)),
        ])),
        ..Default::default()
    }
}

#[test]
fn client_certificate_names_the_gateway() {
    let ca = Ca::generate().unwrap();
    let pair = ca.issue_client(&gw("apps", "web")).unwrap();
    let (der, subject) = parse(&pair.cert_pem);
    assert_eq!(legate_xds::tls::cert_key(&der), Ok("apps/web".to_owned()));
    assert!(subject.contains("CN=apps/web"), "{subject}");
    assert!(pair.key_pem.contains("PRIVATE KEY"));
    assert!(format!("{pair:?}").contains("<redacted>") && !format!("{pair:?}").contains("PRIVATE"));
}

#[test]
fn server_certificate_names() {
    let ca = Ca::generate().unwrap();
    let pair = ca.issue_server(&["legate.legate-system.svc".into(), "10.0.0.1".into()]).unwrap();
    let (_, p) = x509_parser::pem::parse_x509_pem(pair.cert_pem.as_bytes()).unwrap();
    let cert = p.parse_x509().unwrap();
    let san = cert.subject_alternative_name().unwrap().unwrap();
    let names: Vec<String> = san.value.general_names.iter().map(|n| n.to_string()).collect();
    assert_eq!(names.len(), 2, "{names:?}");
    assert!(names[0].contains("legate.legate-system.svc") && names[1] == "IPAddress(0a:00:00:01)", "{names:?}");
}

#[test]
fn ca_round_trips_through_its_secret() {
    let ca = Ca::generate().unwrap();
    let s = ca.to_secret("legate-system");
    assert_eq!(s.metadata.name.as_deref(), Some(CA_SECRET));
    assert_eq!(s.metadata.namespace.as_deref(), Some("legate-system"));
    let back = Ca::from_secret(&s).unwrap();
    assert_eq!(back.cert_pem(), ca.cert_pem());
    // A certificate issued by the reloaded CA verifies against the original CA certificate.
    let pair = back.issue_client(&gw("a", "b")).unwrap();
    assert!(ca.still_valid_for(&pair.cert_pem, &gw("a", "b")));
    let mut broken = s.clone();
    broken.data.as_mut().unwrap().remove(TLS_KEY);
    assert!(Ca::from_secret(&broken).unwrap_err().to_string().contains("no tls.key"));
}

#[test]
fn client_cert_is_reused_while_valid() {
    let ca = Ca::generate().unwrap();
    let key = gw("apps", "web");
    let first = ca.client_cert(&key, None).unwrap();
    assert_eq!(first.ca_pem, ca.cert_pem());
    // Same CA, same Gateway: reused as is.
    assert_eq!(ca.client_cert(&key, Some(&secret_of(&first))).unwrap(), first);
    // Another Gateway's certificate is not reused.
    assert_ne!(ca.client_cert(&gw("apps", "other"), Some(&secret_of(&first))).unwrap().pair, first.pair);
    // After a CA change, a new certificate.
    let other_ca = Ca::generate().unwrap();
    let renewed = other_ca.client_cert(&key, Some(&secret_of(&first))).unwrap();
    assert_ne!(renewed.pair, first.pair);
    assert_eq!(renewed.ca_pem, other_ca.cert_pem());
    // A certificate signed by another CA but carrying this CA's PEM in ca.crt is not reused.
    let mut forged = secret_of(&renewed);
    forged.data.as_mut().unwrap().insert(CA_CRT.to_owned(), ByteString(ca.cert_pem().as_bytes().to_vec()));
    assert_ne!(ca.client_cert(&key, Some(&forged)).unwrap().pair, renewed.pair);
}

#[test]
fn client_secret_names() {
    assert_eq!(client_secret_name("web"), "web-envoy-xds-client");
    let long = "g".repeat(80);
    assert!(client_secret_name(&long).len() <= 63);
    assert!(client_secret_name(&long).ends_with("-envoy-xds-client"));
}

#[test]
fn server_tls_options() {
    let ca = Ca::generate().unwrap();
    let names = service_dns_names("legate", "legate-system");
    assert_eq!(names[1], "legate.legate-system.svc");
    let tls = ca.server_tls(&names).unwrap();
    assert_eq!(tls.client_ca_pem, ca.cert_pem());
    let (_, p) = x509_parser::pem::parse_x509_pem(tls.server_cert_pem.as_bytes()).unwrap();
    let cert = p.parse_x509().unwrap();
    assert_eq!(cert.subject_alternative_name().unwrap().unwrap().value.general_names.len(), 4);
}
