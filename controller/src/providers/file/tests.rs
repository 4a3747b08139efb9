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
async fn the_watcher_names_what_changed_and_does_not_wait_for_a_closed_write() {
    let dir = tempfile::tempdir().unwrap();
    let (tx, mut rx) = mpsc::channel(4);
    // A debounce far longer than the test's patience: a complete write must not wait for it.
    let _w = watch(dir.path(), Duration::from_secs(60), tx).unwrap();
    std::fs::write(dir.path().join(".x.tmp"), GW).unwrap();
    std::fs::rename(dir.path().join(".x.tmp"), dir.path().join("x.yaml")).unwrap();
    let mut seen = Changes::default();
    while !seen.paths.contains(&dir.path().join("x.yaml")) {
        let c = tokio::time::timeout(Duration::from_secs(5), rx.recv())
            .await
            .expect("a change before the debounce")
            .unwrap();
        seen.merge(c);
    }
    assert!(!seen.rescan, "{seen:?}");
}

#[tokio::test]
async fn the_watcher_waits_for_a_file_still_being_written() {
    use std::io::Write as _;
    let dir = tempfile::tempdir().unwrap();
    let (tx, mut rx) = mpsc::channel(4);
    let _w = watch(dir.path(), Duration::from_millis(400), tx).unwrap();
    let mut f = std::fs::File::create(dir.path().join("x.yaml")).unwrap();
    f.write_all(GW.as_bytes()).unwrap();
    f.flush().unwrap();
    assert!(
        tokio::time::timeout(Duration::from_millis(150), rx.recv()).await.is_err(),
        "an open file is not announced before the debounce"
    );
    drop(f);
    let c = tokio::time::timeout(Duration::from_secs(5), rx.recv()).await.expect("a change").unwrap();
    assert!(c.paths.contains(&dir.path().join("x.yaml")), "{c:?}");
}

#[test]
fn a_reload_of_named_paths_reads_only_those() {
    let dir = tempfile::tempdir().unwrap();
    let (a, b) = (dir.path().join("a.yaml"), dir.path().join("b.yaml"));
    std::fs::write(&a, GW).unwrap();
    std::fs::write(&b, GW.replace("name: g,", "name: h,")).unwrap();
    let mut p = FileProvider::new(dir.path());
    assert_eq!(p.reload().touched.len(), 2);
    let port = |p: &FileProvider, name: &str| {
        p.snapshot().0.resources.gateways.get(&ObjKey::new("n", name)).map(|g| g.spec.listeners[0].port)
    };
    let named = |paths: &[&Path]| Changes { paths: paths.iter().map(|p| p.to_path_buf()).collect(), rescan: false };

    std::fs::write(&a, GW.replace("port: 80", "port: 81")).unwrap();
    std::fs::write(&b, GW.replace("name: g,", "name: h,").replace("port: 80", "port: 82")).unwrap();
    let r = p.reload_changes(&named(&[&a, &dir.path().join("notes.txt")]));
    assert_eq!(r.touched, [(Kind::Gateway, ObjKey::new("n", "g"))]);
    assert_eq!((port(&p, "g"), port(&p, "h")), (Some(81), Some(80)), "b.yaml was not named, so not read");

    // A named file that is gone takes its objects with it.
    std::fs::remove_file(&a).unwrap();
    let r = p.reload_changes(&named(&[&a]));
    assert_eq!(r.touched, [(Kind::Gateway, ObjKey::new("n", "g"))]);
    assert_eq!((port(&p, "g"), port(&p, "h")), (None, Some(80)));

    // A rescan reads everything.
    let r = p.reload_changes(&Changes { rescan: true, ..Changes::default() });
    assert_eq!(r.touched, [(Kind::Gateway, ObjKey::new("n", "h"))]);
    assert_eq!(port(&p, "h"), Some(82));
}

#[test]
fn a_named_folder_is_read_whole() {
    let dir = tempfile::tempdir().unwrap();
    let sub = dir.path().join("sub");
    std::fs::create_dir(&sub).unwrap();
    std::fs::write(sub.join("gw.yaml"), GW).unwrap();
    let mut p = FileProvider::new(dir.path());
    let named = |path: &Path| Changes { paths: [path.to_path_buf()].into(), rescan: false };
    // A folder moved in: its files are read, though only the folder was named.
    assert!(p.reload_changes(&named(&sub)).changed);
    assert_eq!(p.snapshot().0.resources.gateways.len(), 1);
    // The folder gone: its files' objects go, though only the folder was named.
    std::fs::remove_dir_all(&sub).unwrap();
    let r = p.reload_changes(&named(&sub));
    assert!(r.changed, "{r:?}");
    assert!(p.snapshot().0.resources.gateways.is_empty());
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
