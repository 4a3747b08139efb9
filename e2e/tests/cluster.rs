//! Legate in a real Kubernetes: the local cluster of `e2e/cluster/` (real etcd, kube-apiserver
//! with RBAC, controller-manager, scheduler; pods as processes), Legate installed from the chart
//! with its own least-privilege RBAC, two replicas, Envoy fleets as pods.
//!
//! Run with `scripts/cluster-tests` (boots the cluster, installs Legate, runs these with
//! `--ignored --test-threads=1`, tears the cluster down). Each test works in namespaces of its
//! own. What the fake API server of `controller/tests/` cannot show is checked here: CRD schema
//! and CEL validation, the status subresource as `kubectl describe` prints it, the garbage
//! collector, Deployments rolling the fleet, leader election on a real Lease.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use legate_e2e::cluster::{Kube, LEGATE_NAMESPACE, echo_backend, eventually, pod_pids};
use legate_e2e::harness::Http;

/// A Gateway `gw` of class `legate` with an HTTP listener on port 80 open to every namespace.
fn gateway(ns: &str) -> String {
    format!(
        "apiVersion: gateway.networking.k8s.io/v1
kind: Gateway
metadata: {{ name: gw, namespace: {ns} }}
spec:
  gatewayClassName: legate
  listeners:
    - {{ name: http, protocol: HTTP, port: 80, allowedRoutes: {{ namespaces: {{ from: All }} }} }}
"
    )
}

/// A ProxyConfig `fleet` with `spec` (YAML flow mapping) and the Gateway `gw` referring to it.
fn gateway_with_fleet(ns: &str, spec: &str) -> String {
    format!(
        "apiVersion: gateway.legate.dev/v1alpha1
kind: ProxyConfig
metadata: {{ name: fleet, namespace: {ns} }}
spec: {spec}
---
{}  infrastructure:
    parametersRef: {{ group: gateway.legate.dev, kind: ProxyConfig, name: fleet }}
",
        gateway(ns)
    )
}

/// An HTTPRoute `name` in `ns` on `gw` sending `path` to the Service `backend_ns/backend:8080`.
fn route(ns: &str, name: &str, path: &str, backend_ns: &str, backend: &str) -> String {
    format!(
        "apiVersion: gateway.networking.k8s.io/v1
kind: HTTPRoute
metadata: {{ name: {name}, namespace: {ns} }}
spec:
  parentRefs: [ {{ name: gw }} ]
  rules:
    - matches: [ {{ path: {{ type: PathPrefix, value: {path} }} }} ]
      backendRefs: [ {{ name: {backend}, namespace: {backend_ns}, port: 8080 }} ]
"
    )
}

async fn status_of(http: &Http, addr: &str, path: &str) -> u16 {
    match http.get(&format!("http://{addr}{path}"), "example.com").await {
        Ok(r) => r.status,
        Err(_) => 0,
    }
}

/// Waits until `path` through the Gateway answers `want`.
async fn until_status(http: &Http, addr: &str, path: &str, want: u16, timeout: Duration) {
    let start = Instant::now();
    loop {
        let got = status_of(http, addr, path).await;
        if got == want {
            return;
        }
        assert!(start.elapsed() < timeout, "GET {path} via {addr}: {got}, want {want} within {timeout:?}");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

/// `kubectl describe` output as a user reads it: every line trimmed, runs of spaces collapsed,
/// so assertions name what is printed, not its column alignment.
fn describe(kube: &Kube, resource: &str, ns: &str, name: &str) -> String {
    let mut args = vec!["describe", resource, name];
    if !ns.is_empty() {
        args.extend(["-n", ns]);
    }
    kube.run(&args).lines().map(|l| l.split_whitespace().collect::<Vec<_>>().join(" ")).collect::<Vec<_>>().join("\n")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs the local cluster: scripts/cluster-tests"]
async fn statuses_read_as_kubectl_describe_prints_them_and_traffic_follows() {
    let kube = Kube::from_env();
    let apps = kube.namespace("describe-apps");
    let other = kube.namespace("describe-other");
    kube.apply(&echo_backend(&apps.name, "v1", 1));
    kube.apply(&echo_backend(&other.name, "elsewhere", 1));
    kube.apply(&gateway(&apps.name));
    kube.apply(&route(&apps.name, "local", "/", &apps.name, "v1"));
    kube.apply(&route(&apps.name, "cross-namespace-no-grant", "/other", &other.name, "elsewhere"));
    let addr = kube.programmed_gateway(&apps.name, "gw");

    let http = Http::default();
    until_status(&http, &addr, "/", 200, Duration::from_secs(60)).await;
    let reply = http.get(&format!("http://{addr}/hello"), "example.com").await.unwrap();
    assert_eq!(reply.backend(), "v1", "served by the route's backend pod");
    assert_eq!(status_of(&http, &addr, "/other").await, 500, "a backendRef without a ReferenceGrant answers 500");

    // What `kubectl describe` prints, from the status subresource Legate wrote.
    let class = describe(&kube, "gatewayclass", "", "legate");
    for want in ["Controller Name: legate.dev/gateway-controller", "Reason: Accepted", "Name: HTTPRoute"] {
        assert!(class.contains(want), "describe gatewayclass lacks {want:?}:\n{class}");
    }
    let gw = describe(&kube, "gateway", &apps.name, "gw");
    for want in
        ["Type: IPAddress", &format!("Value: {addr}"), "Attached Routes: 2", "Reason: Programmed", "Kind: HTTPRoute"]
    {
        assert!(gw.contains(want), "describe gateway lacks {want:?}:\n{gw}");
    }
    let route = eventually(Duration::from_secs(30), "the route's ResolvedRefs=False", || {
        let d = describe(&kube, "httproute", &apps.name, "cross-namespace-no-grant");
        d.contains("Reason: RefNotPermitted").then_some(d.clone()).ok_or(d)
    });
    for want in [
        "Controller Name: legate.dev/gateway-controller",
        "Reason: Accepted",
        &format!(
            "Message: backendRef to Service {ns}/elsewhere is not permitted: add a ReferenceGrant in namespace {ns} from HTTPRoute in {apps} to Service",
            ns = other.name,
            apps = apps.name
        ),
        "Type: ResolvedRefs",
        "Observed Generation: 1",
    ] {
        assert!(route.contains(want), "describe httproute lacks {want:?}:\n{route}");
    }

    // The grant fixes the route: status and traffic.
    kube.apply(&format!(
        "apiVersion: gateway.networking.k8s.io/v1beta1
kind: ReferenceGrant
metadata: {{ name: from-apps, namespace: {} }}
spec:
  from: [ {{ group: gateway.networking.k8s.io, kind: HTTPRoute, namespace: {} }} ]
  to: [ {{ group: '', kind: Service }} ]
",
        other.name, apps.name
    ));
    until_status(&http, &addr, "/other", 200, Duration::from_secs(30)).await;
    assert_eq!(http.get(&format!("http://{addr}/other"), "example.com").await.unwrap().backend(), "elsewhere");
    eventually(Duration::from_secs(30), "ResolvedRefs=True after the grant", || {
        let d = describe(&kube, "httproute", &apps.name, "cross-namespace-no-grant");
        (!d.contains("RefNotPermitted") && d.contains("Reason: ResolvedRefs")).then_some(()).ok_or(d)
    });

    // Legate's own kinds: a Backend's status, as printed.
    kube.apply(&format!(
        "apiVersion: gateway.legate.dev/v1alpha1
kind: Backend
metadata: {{ name: static, namespace: {} }}
spec:
  endpoints: [ {{ address: 127.0.0.1, port: 9 }} ]
",
        apps.name
    ));
    eventually(Duration::from_secs(30), "the Backend's Accepted condition", || {
        let d = describe(&kube, "backend", &apps.name, "static");
        (d.contains("Type: Accepted") && d.contains("Status: True")).then_some(()).ok_or(d)
    });
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs the local cluster: scripts/cluster-tests"]
async fn a_traffic_policy_applied_with_kubectl_shapes_traffic_and_reports_its_status() {
    let kube = Kube::from_env();
    let apps = kube.namespace("traffic-apps");
    kube.apply(&echo_backend(&apps.name, "v1", 1));
    kube.apply(&gateway(&apps.name));
    kube.apply(&route(&apps.name, "shop", "/", &apps.name, "v1"));
    let addr = kube.programmed_gateway(&apps.name, "gw");
    let http = Http::default();
    until_status(&http, &addr, "/", 200, Duration::from_secs(60)).await;
    assert_eq!(status_of(&http, &addr, "/?delay_ms=1500").await, 200, "no timeout yet");

    kube.apply(&format!(
        "apiVersion: gateway.legate.dev/v1alpha1
kind: TrafficPolicy
metadata: {{ name: quick, namespace: {} }}
spec:
  targetRefs: [ {{ group: gateway.networking.k8s.io, kind: HTTPRoute, name: shop }} ]
  timeouts: {{ request: 500ms }}
",
        apps.name
    ));
    until_status(&http, &addr, "/?delay_ms=1500", 504, Duration::from_secs(30)).await;
    let policy = eventually(Duration::from_secs(30), "the policy's Accepted ancestor", || {
        let d = describe(&kube, "trafficpolicy", &apps.name, "quick");
        d.contains("Reason: Accepted").then_some(d.clone()).ok_or(d)
    });
    for want in ["Ancestor Ref:", "Kind: Gateway", "Name: gw", "Controller Name: legate.dev/gateway-controller"] {
        assert!(policy.contains(want), "describe trafficpolicy lacks {want:?}:\n{policy}");
    }
    let route = describe(&kube, "httproute", &apps.name, "shop");
    for want in ["Type: gateway.legate.dev/PolicyAffected", &format!("TrafficPolicy: {}/quick", apps.name)] {
        assert!(route.contains(want), "describe httproute lacks {want:?}:\n{route}");
    }

    // The CRD's CEL: a target of another kind is refused by the API server.
    let refused = kube
        .try_apply(&format!(
            "apiVersion: gateway.legate.dev/v1alpha1
kind: TrafficPolicy
metadata: {{ name: cel-invalid, namespace: {} }}
spec:
  targetRefs: [ {{ group: '', kind: Pod, name: p }} ]
",
            apps.name
        ))
        .expect_err("the API server refuses a TrafficPolicy targeting a Pod");
    assert!(refused.contains("a targetRef must name a Gateway"), "{refused}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs the local cluster: scripts/cluster-tests"]
async fn auth_and_rate_limit_policies_applied_with_kubectl_guard_a_route_and_report_their_status() {
    let kube = Kube::from_env();
    let apps = kube.namespace("guard-apps");
    let ns = &apps.name;
    kube.apply(&echo_backend(ns, "v1", 1));
    kube.apply(&gateway(ns));
    kube.apply(&route(ns, "shop", "/", ns, "v1"));
    let addr = kube.programmed_gateway(ns, "gw");
    let http = Http::default();
    until_status(&http, &addr, "/", 200, Duration::from_secs(60)).await;

    let target = "targetRefs: [ { group: gateway.networking.k8s.io, kind: HTTPRoute, name: shop } ]";
    kube.apply(&format!(
        "apiVersion: v1
kind: Secret
metadata: {{ name: keys, namespace: {ns} }}
stringData: {{ partner: s3cret }}
---
apiVersion: gateway.legate.dev/v1alpha1
kind: AuthPolicy
metadata: {{ name: keyed, namespace: {ns} }}
spec:
  {target}
  apiKey: {{ keys: {{ name: keys }}, sources: [ {{ header: x-api-key }} ], forwardClientIdHeader: x-client-id }}
---
apiVersion: gateway.legate.dev/v1alpha1
kind: RateLimitPolicy
metadata: {{ name: slow, namespace: {ns} }}
spec:
  {target}
  local: {{ requests: 2, unit: Hour }}
"
    ));
    // Without the key: 401; with it: served until the (per-Envoy) bucket is empty, then 429.
    until_status(&http, &addr, "/", 401, Duration::from_secs(30)).await;
    let url = format!("http://{addr}/");
    let mut with_key = vec![];
    for _ in 0..8 {
        let r = http.send("GET", &url, "example.com", &[("x-api-key", "s3cret")]).await;
        with_key.push(r.map(|r| r.status).unwrap_or(0));
    }
    assert_eq!(with_key[0], 200, "the key is accepted: {with_key:?}");
    assert!(with_key.contains(&429), "the local limit refuses once spent: {with_key:?}");
    assert!(with_key.iter().all(|s| *s == 200 || *s == 429), "{with_key:?}");

    for (resource, name) in [("authpolicy", "keyed"), ("ratelimitpolicy", "slow")] {
        let d = eventually(Duration::from_secs(30), "the policy's Accepted ancestor", || {
            let d = describe(&kube, resource, ns, name);
            d.contains("Reason: Accepted").then_some(d.clone()).ok_or(d)
        });
        assert!(d.contains("Kind: Gateway") && d.contains("Name: gw"), "describe {resource} {name}:\n{d}");
    }
    let route = eventually(Duration::from_secs(30), "the route names both policies", || {
        let d = describe(&kube, "httproute", ns, "shop");
        (d.contains(&format!("AuthPolicy: {ns}/keyed")) && d.contains(&format!("RateLimitPolicy: {ns}/slow")))
            .then_some(d.clone())
            .ok_or(d)
    });
    assert!(route.contains("Type: gateway.legate.dev/PolicyAffected"), "{route}");

    // The CRDs' validation: a limit of zero and an AuthPolicy on a Service are refused.
    let refused = kube
        .try_apply(&format!(
            "apiVersion: gateway.legate.dev/v1alpha1
kind: RateLimitPolicy
metadata: {{ name: zero, namespace: {ns} }}
spec:
  {target}
  local: {{ requests: 0, unit: Second }}
"
        ))
        .expect_err("the API server refuses a limit of zero");
    assert!(refused.contains("spec.local.requests"), "{refused}");
    let refused = kube
        .try_apply(&format!(
            "apiVersion: gateway.legate.dev/v1alpha1
kind: AuthPolicy
metadata: {{ name: on-a-service, namespace: {ns} }}
spec:
  targetRefs: [ {{ group: '', kind: Service, name: v1 }} ]
  apiKey: {{ keys: {{ name: keys }}, sources: [ {{ header: x-api-key }} ] }}
"
        ))
        .expect_err("the API server refuses an AuthPolicy targeting a Service");
    assert!(refused.contains("a targetRef must name a Gateway"), "{refused}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs the local cluster: scripts/cluster-tests"]
async fn objects_the_api_server_refuses_never_reach_legate() {
    let kube = Kube::from_env();
    let ns = kube.namespace("refused");
    kube.apply(&gateway(&ns.name));
    // The HTTPRoute CRD's CEL rule: backendRequest must not exceed request.
    let cel = kube
        .try_apply(&format!(
            "apiVersion: gateway.networking.k8s.io/v1
kind: HTTPRoute
metadata: {{ name: cel-invalid, namespace: {} }}
spec:
  parentRefs: [ {{ name: gw }} ]
  rules:
    - timeouts: {{ request: 1s, backendRequest: 2s }}
",
            ns.name
        ))
        .expect_err("the API server refuses a CEL-invalid HTTPRoute");
    assert!(cel.contains("backendRequest timeout cannot be longer than request timeout"), "{cel}");
    // Legate's own CRD: the schema refuses a port that is not a number.
    let schema = kube
        .try_apply(&format!(
            "apiVersion: gateway.legate.dev/v1alpha1
kind: Backend
metadata: {{ name: schema-invalid, namespace: {} }}
spec:
  endpoints: [ {{ address: 127.0.0.1, port: notanumber }} ]
",
            ns.name
        ))
        .expect_err("the API server refuses a Backend whose port is not a number");
    assert!(schema.contains("spec.endpoints[0].port"), "{schema}");
    assert!(kube.get("httproute", &ns.name, "cel-invalid").is_none());
    assert!(kube.get("backend", &ns.name, "schema-invalid").is_none());
    // The Gateway is accepted, with no route attached; no controller replica saw those objects.
    eventually(Duration::from_secs(60), "Gateway accepted with 0 attached routes", || {
        let gw = kube.get("gateway", &ns.name, "gw").ok_or("no Gateway")?;
        let accepted = Kube::condition(&gw, "Accepted").is_some_and(|c| c["status"] == "True");
        (accepted && gw["status"]["listeners"][0]["attachedRoutes"] == 0)
            .then_some(())
            .ok_or(format!("{:#}", gw["status"]))
    });
    for pod in kube.controller_pods() {
        let name = pod["metadata"]["name"].as_str().unwrap();
        let logs = kube.run(&["logs", "-n", LEGATE_NAMESPACE, name]);
        assert!(
            !logs.contains("cel-invalid") && !logs.contains("schema-invalid"),
            "{name} mentions a refused object:\n{logs}"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs the local cluster: scripts/cluster-tests"]
async fn another_controllers_route_status_survives_legates_writes() {
    let kube = Kube::from_env();
    let ns = kube.namespace("conflicts");
    kube.apply(&echo_backend(&ns.name, "v1", 1));
    kube.apply(&gateway(&ns.name));
    let other_parent = |round: u32| {
        format!(
            r#"[{{"op":"add","path":"/status/parents/-","value":{{"controllerName":"example.com/other","parentRef":{{"name":"theirs-{round}"}},"conditions":[{{"type":"Accepted","status":"True","reason":"Accepted","message":"round {round}","lastTransitionTime":"2026-01-01T00:00:00Z"}}]}}}}]"#
        )
    };
    kube.apply(&route(&ns.name, "shared", "/", &ns.name, "v1"));
    let legate_parent = |generation: u64| {
        move |r: &serde_json::Value| -> bool {
            r["status"]["parents"].as_array().into_iter().flatten().any(|p| {
                p["controllerName"] == "legate.dev/gateway-controller"
                    && p["conditions"].as_array().into_iter().flatten().all(|c| c["observedGeneration"] == generation)
            })
        }
    };
    eventually(Duration::from_secs(60), "Legate's parent status", || {
        let r = kube.get("httproute", &ns.name, "shared").ok_or("no route")?;
        legate_parent(1)(&r).then_some(()).ok_or(format!("{:#}", r["status"]))
    });
    // Another controller appends its parent status while Legate rewrites its own after each
    // spec change (the two writes race; Legate's merge patch carries a resourceVersion
    // precondition, so a lost race is a 409 that Legate retries on the fresh object).
    for round in 0..5u32 {
        kube.run(&[
            "patch",
            "httproute",
            "shared",
            "-n",
            &ns.name,
            "--subresource=status",
            "--type=json",
            "-p",
            &other_parent(round),
        ]);
        kube.run(&[
            "patch",
            "httproute",
            "shared",
            "-n",
            &ns.name,
            "--type=merge",
            "-p",
            &format!(r#"{{"spec":{{"rules":[{{"matches":[{{"path":{{"type":"PathPrefix","value":"/r{round}"}}}}],"backendRefs":[{{"name":"v1","port":8080}}]}}]}}}}"#),
        ]);
    }
    let r = eventually(Duration::from_secs(60), "Legate's status of generation 6 beside the 5 foreign parents", || {
        let r = kube.get("httproute", &ns.name, "shared").ok_or("no route")?;
        let generation = r["metadata"]["generation"].as_u64().unwrap();
        let foreign = r["status"]["parents"]
            .as_array()
            .into_iter()
            .flatten()
            .filter(|p| p["controllerName"] == "example.com/other")
            .count();
        (generation == 6 && legate_parent(6)(&r) && foreign == 5)
            .then_some(r.clone())
            .ok_or(format!("generation {generation}: {:#}", r["status"]))
    });
    let messages: Vec<_> = r["status"]["parents"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|p| p["controllerName"] == "example.com/other")
        .map(|p| p["conditions"][0]["message"].as_str().unwrap().to_owned())
        .collect();
    assert_eq!(messages, (0..5).map(|i| format!("round {i}")).collect::<Vec<_>>());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs the local cluster: scripts/cluster-tests"]
async fn one_replica_writes_and_another_takes_over_when_the_leaders_process_is_killed() {
    let kube = Kube::from_env();
    let ns = kube.namespace("takeover");
    kube.apply(&echo_backend(&ns.name, "v1", 1));
    kube.apply(&gateway(&ns.name));
    kube.apply(&route(&ns.name, "r", "/", &ns.name, "v1"));
    let addr = kube.programmed_gateway(&ns.name, "gw");
    let pods = kube.controller_pods();
    assert_eq!(pods.len(), 2, "the chart runs two replicas");
    let leader = kube.leader().expect("a Lease holder");
    let leader_pod = pods
        .iter()
        .find(|p| leader.starts_with(&format!("{}_", p["metadata"]["name"].as_str().unwrap())))
        .unwrap_or_else(|| panic!("the holder {leader} is none of the pods"))
        .clone();
    // Only the leader writes status: the follower's writer counters stay at zero.
    for p in &pods {
        let ip = p["status"]["podIP"].as_str().unwrap();
        let metrics = Http::default().get(&format!("http://{ip}:19900/metrics"), "legate").await.unwrap();
        let text = String::from_utf8_lossy(&metrics.body).into_owned();
        let writes = metric(&text, "legate_status_writes_total");
        if p["metadata"]["name"] == leader_pod["metadata"]["name"] {
            assert!(writes > 0.0, "the leader wrote statuses:\n{text}");
        } else {
            assert_eq!(writes, 0.0, "the follower wrote statuses:\n{text}");
        }
    }
    // Kill the leader's process (as an OOM kill or a crash would); the kubelet restarts it.
    let pids = pod_pids(&leader_pod);
    assert!(!pids.is_empty(), "the leader's processes");
    for pid in &pids {
        let _ = std::process::Command::new("kill").args(["-9", &pid.to_string()]).status();
    }
    let killed = Instant::now();
    // A change made now reaches the status once a replica holds the Lease again.
    kube.apply(&route(&ns.name, "after-kill", "/after", &ns.name, "v1"));
    let new_leader = eventually(Duration::from_secs(60), "a new Lease holder", || {
        let h = kube.leader().unwrap_or_default();
        (h != leader && !h.is_empty()).then_some(h.clone()).ok_or(h)
    });
    eventually(Duration::from_secs(60), "the new route's status written by the new leader", || {
        let r = kube.get("httproute", &ns.name, "after-kill").ok_or("no route")?;
        Kube::condition(&r["status"]["parents"][0], "Accepted")
            .is_some_and(|c| c["status"] == "True")
            .then_some(())
            .ok_or(format!("{:#}", r["status"]))
    });
    eprintln!("takeover by {new_leader} in {:?} after the leader {leader} was killed", killed.elapsed());
    let http = Http::default();
    until_status(&http, &addr, "/after", 200, Duration::from_secs(30)).await;
}

/// Static addresses: the local cluster's load balancer hands out 10.245.0.0/24 (e2e/cluster's
/// `LBPool`), binding an address to a ready pod of the Service; anything else is not usable.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs the local cluster: scripts/cluster-tests"]
async fn a_static_address_is_asked_of_the_load_balancer_and_serves() {
    let kube = Kube::from_env();
    let ns = kube.namespace("static-address");
    kube.apply(&echo_backend(&ns.name, "v1", 1));
    kube.apply(&route(&ns.name, "all", "/", &ns.name, "v1"));
    let with =
        |addresses: &str| gateway(&ns.name).replace("  listeners:", &format!("  addresses: {addresses}\n  listeners:"));
    let (usable, unusable) = ("10.245.0.77", "198.51.100.7");
    kube.apply(&with(&format!("[ {{ type: IPAddress, value: {usable} }}, {{ type: IPAddress, value: {unusable} }} ]")));
    let programmed = eventually(Duration::from_secs(180), "Programmed=False AddressNotUsable", || {
        let gw = kube.get("gateway", &ns.name, "gw").ok_or("no Gateway")?;
        match Kube::condition(&gw, "Programmed") {
            Some(c) if c["reason"] == "AddressNotUsable" => Ok(c),
            other => Err(format!("{other:?}")),
        }
    });
    assert_eq!(programmed["status"], "False");
    let message = programmed["message"].as_str().unwrap_or_default();
    assert!(message.contains(unusable), "the message names the unusable address: {message}");
    let gw = kube.get("gateway", &ns.name, "gw").unwrap();
    assert_eq!(Kube::condition(&gw, "Accepted").unwrap()["status"], "True", "an unusable address leaves it Accepted");

    kube.apply(&with(&format!("[ {{ type: IPAddress, value: {usable} }} ]")));
    let addr = kube.programmed_gateway(&ns.name, "gw");
    assert_eq!(addr, usable, "status.addresses holds the static address");
    let http = Http::default();
    until_status(&http, &format!("{usable}:80"), "/", 200, Duration::from_secs(60)).await;
    let reply = http.get(&format!("http://{usable}:80/hello"), "example.com").await.unwrap();
    assert_eq!(reply.backend(), "v1", "the static address reaches the Gateway's Envoy and the route");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs the local cluster: scripts/cluster-tests"]
async fn deleting_a_gateway_deletes_its_fleet() {
    let kube = Kube::from_env();
    let ns = kube.namespace("fleet-gc");
    kube.apply(&gateway(&ns.name));
    kube.programmed_gateway(&ns.name, "gw");
    let selector = "gateway.networking.k8s.io/gateway-name=gw";
    for kind in ["deployment", "service", "configmap", "secret", "serviceaccount", "pods"] {
        assert!(!kube.list(kind, &ns.name, selector).is_empty(), "the fleet has a {kind}");
    }
    kube.run(&["delete", "gateway", "gw", "-n", &ns.name]);
    eventually(Duration::from_secs(120), "the garbage collector removes the fleet", || {
        let left: Vec<String> = ["deployment", "service", "configmap", "secret", "serviceaccount", "pods"]
            .iter()
            .flat_map(|k| {
                kube.list(k, &ns.name, selector).into_iter().map(move |o| format!("{k}/{}", o["metadata"]["name"]))
            })
            .collect();
        left.is_empty().then_some(()).ok_or(format!("{left:?}"))
    });
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs the local cluster: scripts/cluster-tests"]
async fn a_proxyconfig_change_rolls_the_fleet_with_no_failed_request() {
    let kube = Kube::from_env();
    let ns = kube.namespace("rollout");
    kube.apply(&echo_backend(&ns.name, "v1", 2));
    let fleet =
        |level: &str| gateway_with_fleet(&ns.name, &format!("{{ replicas: 2, drainSeconds: 5, logLevel: {level} }}"));
    kube.apply(&fleet("info"));
    kube.apply(&route(&ns.name, "r", "/", &ns.name, "v1"));
    kube.programmed_gateway(&ns.name, "gw");
    let http = Http::default();
    until_status(&http, &kube.gateway_address(&ns.name, "gw"), "/", 200, Duration::from_secs(60)).await;
    let before: Vec<String> = kube
        .list("pods", &ns.name, "gateway.networking.k8s.io/gateway-name=gw")
        .iter()
        .map(|p| p["metadata"]["name"].as_str().unwrap().to_owned())
        .collect();

    // Traffic, always to the Gateway's current address (as a client behind the load balancer).
    let stop = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let (ok, failed) = (Arc::new(AtomicU64::new(0)), Arc::new(AtomicU64::new(0)));
    let address = Arc::new(std::sync::Mutex::new(kube.gateway_address(&ns.name, "gw")));
    let load = {
        let (stop, ok, failed, address, http) =
            (stop.clone(), ok.clone(), failed.clone(), address.clone(), http.clone());
        tokio::spawn(async move {
            let mut failures = vec![];
            while !stop.load(Ordering::Relaxed) {
                let addr = address.lock().unwrap().clone();
                match http.get(&format!("http://{addr}/"), "example.com").await {
                    Ok(r) if r.status == 200 => ok.fetch_add(1, Ordering::Relaxed),
                    other => {
                        failures.push(format!("{addr}: {:?}", other.map(|r| r.status)));
                        failed.fetch_add(1, Ordering::Relaxed)
                    }
                };
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
            failures
        })
    };
    kube.apply(&fleet("debug"));
    let start = Instant::now();
    eventually(Duration::from_secs(240), "the fleet rolled to new pods", || {
        if let Some(a) = kube
            .get("gateway", &ns.name, "gw")
            .and_then(|g| g["status"]["addresses"][0]["value"].as_str().map(str::to_owned))
        {
            *address.lock().unwrap() = a;
        }
        let pods = kube.list("pods", &ns.name, "gateway.networking.k8s.io/gateway-name=gw");
        let names: Vec<String> = pods.iter().map(|p| p["metadata"]["name"].as_str().unwrap().to_owned()).collect();
        let ready = pods.iter().filter(|p| Kube::condition(p, "Ready").is_some_and(|c| c["status"] == "True")).count();
        let rolled = names.iter().all(|n| !before.contains(n)) && names.len() == 2 && ready == 2;
        rolled.then_some(()).ok_or(format!("{names:?}"))
    });
    // Keep the load on a little past the old pods' drain.
    tokio::time::sleep(Duration::from_secs(3)).await;
    stop.store(true, Ordering::Relaxed);
    let failures = load.await.unwrap();
    let (ok, failed) = (ok.load(Ordering::Relaxed), failed.load(Ordering::Relaxed));
    eprintln!("rollout in {:?}: {ok} requests answered 200, {failed} failed", start.elapsed());
    assert!(ok > 100, "traffic flowed during the rollout ({ok})");
    assert_eq!(failed, 0, "requests failed during the rollout: {failures:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs the local cluster: scripts/cluster-tests"]
async fn an_envoy_rejection_reaches_the_gateway_status_whichever_replica_serves_it() {
    let kube = Kube::from_env();
    let ns = kube.namespace("nacks");
    kube.apply(&echo_backend(&ns.name, "v1", 1));
    kube.apply(&gateway_with_fleet(&ns.name, "{ replicas: 2 }"));
    kube.apply(&route(&ns.name, "r", "/", &ns.name, "v1"));
    kube.programmed_gateway(&ns.name, "gw");
    // A regular expression valid for Legate but beyond RE2's program size limit: every Envoy
    // rejects it.
    kube.apply(&format!(
        "apiVersion: gateway.networking.k8s.io/v1
kind: HTTPRoute
metadata: {{ name: bad-regex, namespace: {} }}
spec:
  parentRefs: [ {{ name: gw }} ]
  rules:
    - matches: [ {{ path: {{ type: RegularExpression, value: \"/(a{{1000}})+\" }} }} ]
      backendRefs: [ {{ name: v1, port: 8080 }} ]
",
        ns.name
    ));
    let message = eventually(Duration::from_secs(60), "Programmed=False with Envoy's message", || {
        let gw = kube.get("gateway", &ns.name, "gw").ok_or("no Gateway")?;
        match Kube::condition(&gw, "Programmed") {
            Some(c) if c["status"] == "False" && c["reason"] == "Invalid" => {
                Ok(c["message"].as_str().unwrap().to_owned())
            }
            other => Err(format!("{other:?}")),
        }
    });
    assert!(message.contains("rejected"), "{message}");
    // Each replica publishes its own Envoys' rejections (node id = Envoy pod name). Until an
    // Envoy connected to the follower has rejected the config, move an Envoy of the leader's
    // (delete its pod: the replacement connects to either replica).
    let gateway_key = format!("{}/gw", ns.name);
    let by_replica = || -> Vec<(String, Vec<String>)> {
        kube.list("configmaps", LEGATE_NAMESPACE, "gateway.legate.dev/envoy-rejections=true")
            .iter()
            .map(|c| {
                let doc: serde_json::Value =
                    serde_json::from_str(c["data"]["rejections.json"].as_str().unwrap_or("{}")).unwrap_or_default();
                let nodes = doc["rejections"]
                    .as_array()
                    .into_iter()
                    .flatten()
                    .filter(|r| r["gateway"] == gateway_key.as_str())
                    .map(|r| r["node"].as_str().unwrap_or_default().to_owned())
                    .collect();
                (doc["replica"].as_str().unwrap_or_default().to_owned(), nodes)
            })
            .collect()
    };
    let mut follower_node = None;
    for attempt in 0..8 {
        let leader = kube.leader().unwrap_or_default();
        let published = eventually(Duration::from_secs(60), "rejections published", || {
            let p = by_replica();
            let n: usize = p.iter().map(|(_, nodes)| nodes.len()).sum();
            (n >= 2).then_some(p.clone()).ok_or(format!("{p:?}"))
        });
        eprintln!("attempt {attempt}: leader {leader}, rejections by replica {published:?}");
        if let Some((_, nodes)) =
            published.iter().find(|(r, nodes)| !leader.starts_with(&format!("{r}_")) && !nodes.is_empty())
        {
            follower_node = Some(nodes[0].clone());
            break;
        }
        let (_, nodes) = published.iter().find(|(r, _)| leader.starts_with(&format!("{r}_"))).unwrap();
        kube.run(&["delete", "pod", &nodes[0], "-n", &ns.name, "--wait=true"]);
    }
    let follower_node = follower_node.expect("an Envoy connected to the follower within 8 pod restarts");
    eventually(Duration::from_secs(60), "the leader's status names the follower's Envoy", || {
        let gw = kube.get("gateway", &ns.name, "gw").ok_or("no Gateway")?;
        let c = Kube::condition(&gw, "Programmed").ok_or("no Programmed")?;
        let m = c["message"].as_str().unwrap_or_default();
        (c["status"] == "False" && c["reason"] == "Invalid" && m.contains(&format!("Envoy {follower_node} rejected")))
            .then_some(())
            .ok_or(format!("{c:#}"))
    });
    kube.run(&["delete", "httproute", "bad-regex", "-n", &ns.name]);
    eventually(Duration::from_secs(60), "Programmed=True again", || {
        let gw = kube.get("gateway", &ns.name, "gw").ok_or("no Gateway")?;
        Kube::condition(&gw, "Programmed")
            .filter(|c| c["status"] == "True")
            .map(|_| ())
            .ok_or(format!("{:#}", gw["status"]))
    });
}

/// The value of an unlabelled Prometheus sample.
fn metric(text: &str, name: &str) -> f64 {
    text.lines()
        .find_map(|l| l.strip_prefix(name).and_then(|rest| rest.trim().parse().ok()))
        .unwrap_or_else(|| panic!("no {name} in:\n{text}"))
}
