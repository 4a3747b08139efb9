use super::*;

const GW: &str = "apiVersion: gateway.networking.k8s.io/v1\nkind: Gateway\nmetadata: { name: g, namespace: n }\nspec:\n  gatewayClassName: c\n  listeners: [ { name: l, protocol: HTTP, port: 80 } ]\n";

#[test]
fn a_broken_file_keeps_its_last_good_objects_until_fixed() {
    let dir = tempfile::tempdir().unwrap();
    let f = dir.path().join("gw.yaml");
    std::fs::write(&f, GW).unwrap();
    let mut p = FileProvider::new(dir.path());
    let r = p.reload();
    assert!(r.changed && r.errors.is_empty());
    assert_eq!(p.snapshot().0.resources.gateways.len(), 1);

    std::fs::write(&f, GW.replace("port: 80", "port: [")).unwrap();
    let r = p.reload();
    assert!(!r.changed);
    assert_eq!(r.errors.len(), 1, "{:?}", r.errors);
    assert!(r.errors[0].contains("gw.yaml: document 1"), "{}", r.errors[0]);
    let (snap, _) = p.snapshot();
    assert_eq!(
        snap.resources.gateways.values().next().unwrap().spec.listeners[0].port,
        80,
        "the last good version stays in force"
    );

    std::fs::write(&f, GW.replace("port: 80", "port: 81")).unwrap();
    let r = p.reload();
    assert!(r.changed && r.errors.is_empty());
    assert_eq!(p.snapshot().0.resources.gateways.values().next().unwrap().spec.listeners[0].port, 81);
}

#[test]
fn unchanged_files_are_not_a_change_and_deleted_files_are() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::create_dir(dir.path().join("sub")).unwrap();
    let f = dir.path().join("sub/gw.yml");
    std::fs::write(&f, GW).unwrap();
    let mut p = FileProvider::new(dir.path());
    assert!(p.reload().changed);
    assert!(!p.reload().changed);
    std::fs::remove_file(&f).unwrap();
    assert!(p.reload().changed);
    assert!(p.snapshot().0.resources.gateways.is_empty());
}

#[test]
fn duplicates_across_files_keep_the_first_and_are_reported() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("a.yaml"), GW).unwrap();
    std::fs::write(dir.path().join("b.yaml"), GW.replace("port: 80", "port: 99")).unwrap();
    let mut p = FileProvider::new(dir.path());
    p.reload();
    let (snap, dups) = p.snapshot();
    assert_eq!(snap.resources.gateways.len(), 1);
    assert_eq!(snap.resources.gateways.values().next().unwrap().spec.listeners[0].port, 80);
    assert_eq!(dups.len(), 1);
    assert!(dups[0].contains("b.yaml") && dups[0].contains("a.yaml"), "{}", dups[0]);
}

#[tokio::test]
async fn the_watcher_signals_changes() {
    let dir = tempfile::tempdir().unwrap();
    let (tx, mut rx) = mpsc::channel(4);
    let _w = watch(dir.path(), Duration::from_millis(20), tx).unwrap();
    std::fs::write(dir.path().join("x.yaml"), GW).unwrap();
    tokio::time::timeout(Duration::from_secs(5), rx.recv()).await.expect("a change notification").unwrap();
}

#[test]
fn a_reload_touches_only_the_objects_that_changed_and_promotes_a_duplicate() {
    let dir = tempfile::tempdir().unwrap();
    let other = GW.replace("name: g,", "name: h,");
    std::fs::write(dir.path().join("a.yaml"), format!("{GW}---\n{other}")).unwrap();
    std::fs::write(dir.path().join("b.yaml"), GW.replace("port: 80", "port: 99")).unwrap();
    let mut p = FileProvider::new(dir.path());
    assert_eq!(p.reload().touched.len(), 2);
    let before = p.snapshot().0.resources.gateways[&ObjKey::new("n", "h")].clone();

    // Editing g in a.yaml touches g only; h is the same shared object as before.
    std::fs::write(dir.path().join("a.yaml"), format!("{}---\n{other}", GW.replace("port: 80", "port: 81"))).unwrap();
    let r = p.reload();
    assert_eq!(r.touched, [(Kind::Gateway, ObjKey::new("n", "g"))]);
    let snap = p.snapshot().0;
    assert!(std::sync::Arc::ptr_eq(&before, &snap.resources.gateways[&ObjKey::new("n", "h")]));
    assert_eq!(snap.resources.gateways[&ObjKey::new("n", "g")].spec.listeners[0].port, 81);

    // Dropping g from a.yaml puts b.yaml's definition in force.
    std::fs::write(dir.path().join("a.yaml"), &other).unwrap();
    let r = p.reload();
    assert_eq!(r.touched, [(Kind::Gateway, ObjKey::new("n", "g"))]);
    let (snap, dups) = p.snapshot();
    assert_eq!(snap.resources.gateways[&ObjKey::new("n", "g")].spec.listeners[0].port, 99);
    assert!(dups.is_empty(), "{dups:?}");
}

#[test]
fn an_object_the_api_server_would_refuse_keeps_the_file_s_last_good_objects() {
    let dir = tempfile::tempdir().unwrap();
    let f = dir.path().join("gw.yaml");
    std::fs::write(&f, GW).unwrap();
    let mut p = FileProvider::new(dir.path());
    assert!(p.reload().changed);

    std::fs::write(&f, GW.replace("port: 80", "port: notanumber")).unwrap();
    let r = p.reload();
    assert!(!r.changed);
    assert_eq!(
        r.errors,
        [format!(
            "{}: document 1 (Gateway n/g): field spec.listeners[0].port: must be an integer, not the string \"notanumber\"",
            f.display()
        )]
    );
    assert_eq!(p.snapshot().0.resources.gateways.values().next().unwrap().spec.listeners[0].port, 80);
}
