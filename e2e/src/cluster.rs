//! The local Kubernetes cluster (`e2e/cluster/`) as the cluster tests see it: `kubectl` against
//! the real API server (with Legate installed by `e2e/cluster/install-legate`), Pods that are
//! processes on this host, and Gateway addresses that are Pod IPs on the cluster's bridge.
//!
//! `scripts/cluster-tests` boots the cluster, installs Legate and runs the tests with
//! `LEGATE_KUBECONFIG` and `LEGATE_CLUSTER_BIN` set.

use std::io::Write;
use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::Value;

/// The namespace Legate is installed in.
pub const LEGATE_NAMESPACE: &str = "legate-system";

/// The cluster: its admin kubeconfig and the directory of its binaries (`kubectl`).
pub struct Kube {
    kubectl: PathBuf,
    kubeconfig: PathBuf,
}

impl Kube {
    /// The cluster named by `LEGATE_KUBECONFIG` and `LEGATE_CLUSTER_BIN`; panics saying how to
    /// run the cluster tests when they are missing (the tests are `#[ignore]`d otherwise).
    pub fn from_env() -> Kube {
        let (Ok(kubeconfig), Ok(bin)) = (std::env::var("LEGATE_KUBECONFIG"), std::env::var("LEGATE_CLUSTER_BIN"))
        else {
            panic!(
                "LEGATE_KUBECONFIG and LEGATE_CLUSTER_BIN are not set: run the cluster tests with scripts/cluster-tests"
            );
        };
        Kube { kubectl: PathBuf::from(bin).join("kubectl"), kubeconfig: kubeconfig.into() }
    }

    /// Runs kubectl; its stdout, or its stderr as the error.
    pub fn try_run(&self, args: &[&str], stdin: Option<&str>) -> Result<String, String> {
        let mut cmd = Command::new(&self.kubectl);
        cmd.arg("--kubeconfig").arg(&self.kubeconfig).args(args);
        cmd.stdin(if stdin.is_some() { Stdio::piped() } else { Stdio::null() });
        cmd.stdout(Stdio::piped()).stderr(Stdio::piped());
        let mut child = cmd.spawn().map_err(|e| format!("{}: {e}", self.kubectl.display()))?;
        if let Some(input) = stdin {
            child.stdin.take().unwrap().write_all(input.as_bytes()).map_err(|e| e.to_string())?;
        }
        let out = child.wait_with_output().map_err(|e| e.to_string())?;
        if out.status.success() {
            Ok(String::from_utf8_lossy(&out.stdout).into_owned())
        } else {
            Err(format!(
                "kubectl {} failed: {}{}",
                args.join(" "),
                String::from_utf8_lossy(&out.stderr),
                String::from_utf8_lossy(&out.stdout)
            ))
        }
    }

    /// Runs kubectl; panics when it fails.
    pub fn run(&self, args: &[&str]) -> String {
        self.try_run(args, None).unwrap_or_else(|e| panic!("{e}"))
    }

    /// `kubectl apply -f -` (server-side, so big objects and field ownership behave as for a
    /// user); panics when the API server refuses.
    pub fn apply(&self, yaml: &str) {
        self.try_apply(yaml).unwrap_or_else(|e| panic!("{e}"));
    }

    /// `kubectl apply --server-side -f -`; the API server's refusal as the error.
    pub fn try_apply(&self, yaml: &str) -> Result<String, String> {
        self.try_run(
            &["apply", "--server-side", "--force-conflicts", "--field-manager=legate-tests", "-f", "-"],
            Some(yaml),
        )
    }

    /// The object as JSON, or None when it does not exist.
    pub fn get(&self, resource: &str, namespace: &str, name: &str) -> Option<Value> {
        let mut args = vec!["get", resource, name, "-o", "json"];
        if !namespace.is_empty() {
            args.extend(["-n", namespace]);
        }
        match self.try_run(&args, None) {
            Ok(out) => Some(serde_json::from_str(&out).expect("kubectl -o json")),
            Err(e) if e.contains("NotFound") || e.contains("not found") => None,
            Err(e) => panic!("{e}"),
        }
    }

    /// Objects of a resource in a namespace, optionally by label selector.
    pub fn list(&self, resource: &str, namespace: &str, selector: &str) -> Vec<Value> {
        let mut args = vec!["get", resource, "-n", namespace, "-o", "json"];
        if !selector.is_empty() {
            args.extend(["-l", selector]);
        }
        let v: Value = serde_json::from_str(&self.run(&args)).expect("kubectl -o json");
        v["items"].as_array().cloned().unwrap_or_default()
    }

    /// A fresh namespace (deleted first if a previous run left it).
    pub fn namespace(&self, name: &str) -> Namespace<'_> {
        let _ = self.try_run(&["delete", "namespace", name, "--wait=true", "--timeout=120s"], None);
        self.run(&["create", "namespace", name]);
        // Pods need the namespace's default ServiceAccount (the controller-manager makes it).
        eventually(Duration::from_secs(30), "default ServiceAccount", || {
            self.get("serviceaccount", name, "default").map(|_| ()).ok_or_else(|| "not yet".to_string())
        });
        Namespace { kube: self, name: name.to_owned() }
    }

    /// The condition of `type_` of an object (`status.conditions`) or of a route's parent
    /// status (`conditions`), if any.
    pub fn condition(obj: &Value, type_: &str) -> Option<Value> {
        let list = obj.get("conditions").unwrap_or(&obj["status"]["conditions"]);
        list.as_array()?.iter().find(|c| c["type"] == type_).cloned()
    }

    /// The Gateway's first address (`status.addresses`), once it has one.
    pub fn gateway_address(&self, namespace: &str, name: &str) -> String {
        eventually(Duration::from_secs(120), &format!("Gateway {namespace}/{name} has an address"), || {
            let gw = self.get("gateway", namespace, name).ok_or("no Gateway")?;
            gw["status"]["addresses"][0]["value"]
                .as_str()
                .map(str::to_owned)
                .ok_or_else(|| format!("{:#}", gw["status"]))
        })
    }

    /// Waits until the Gateway is `Programmed=True` (its fleet is ready) and returns its address.
    pub fn programmed_gateway(&self, namespace: &str, name: &str) -> String {
        eventually(Duration::from_secs(180), &format!("Gateway {namespace}/{name} Programmed"), || {
            let gw = self.get("gateway", namespace, name).ok_or("no Gateway")?;
            match Kube::condition(&gw, "Programmed") {
                Some(c) if c["status"] == "True" => Ok(()),
                other => Err(format!("{other:?}")),
            }
        });
        self.gateway_address(namespace, name)
    }

    /// The pods of Legate's controller Deployment.
    pub fn controller_pods(&self) -> Vec<Value> {
        self.list("pods", LEGATE_NAMESPACE, "app.kubernetes.io/name=legate")
    }

    /// The leader-election Lease's holder.
    pub fn leader(&self) -> Option<String> {
        self.get("lease", LEGATE_NAMESPACE, "legate-controller")?["spec"]["holderIdentity"].as_str().map(str::to_owned)
    }
}

/// A namespace the test made; deleted (without waiting) when dropped.
pub struct Namespace<'a> {
    kube: &'a Kube,
    pub name: String,
}

impl Drop for Namespace<'_> {
    fn drop(&mut self) {
        let _ = self.kube.try_run(&["delete", "namespace", &self.name, "--wait=false"], None);
    }
}

/// Retries `f` every 200 ms until it returns Ok, or panics with its last error after `timeout`.
pub fn eventually<T>(timeout: Duration, what: &str, mut f: impl FnMut() -> Result<T, String>) -> T {
    let start = Instant::now();
    loop {
        match f() {
            Ok(v) => return v,
            Err(e) if start.elapsed() > timeout => panic!("{what}: not within {timeout:?}: {e}"),
            Err(_) => std::thread::sleep(Duration::from_millis(200)),
        }
    }
}

/// The host processes of a Pod's containers (the cluster runs containers as processes), found
/// by the `POD_NAME`-free way that works for any Pod: processes in the Pod's network namespace.
pub fn pod_pids(pod: &Value) -> Vec<u32> {
    let uid = pod["metadata"]["uid"].as_str().unwrap_or_default();
    let out = Command::new("ip").args(["netns", "list"]).output().expect("ip netns list");
    let ns: Vec<String> = String::from_utf8_lossy(&out.stdout)
        .lines()
        .filter_map(|l| l.split_whitespace().next())
        .filter(|n| n.starts_with("lgt-") && uid.replace('-', "").starts_with(&n["lgt-".len()..].replace('-', "")))
        .map(str::to_owned)
        .collect();
    let mut pids = vec![];
    for n in ns {
        let out = Command::new("ip").args(["netns", "pids", &n]).output().expect("ip netns pids");
        pids.extend(String::from_utf8_lossy(&out.stdout).split_whitespace().filter_map(|p| p.parse::<u32>().ok()));
    }
    pids
}

/// YAML of an echo backend: a Deployment of `replicas` `legate-echo` pods answering as `name`
/// on port 8080, and a Service `name` for it.
pub fn echo_backend(namespace: &str, name: &str, replicas: u32) -> String {
    format!(
        "apiVersion: apps/v1
kind: Deployment
metadata: {{ name: {name}, namespace: {namespace} }}
spec:
  replicas: {replicas}
  selector: {{ matchLabels: {{ app: {name} }} }}
  template:
    metadata: {{ labels: {{ app: {name} }} }}
    spec:
      containers:
        - name: echo
          image: legate-echo:dev
          args: [\"0.0.0.0:8080={name}\"]
          ports: [ {{ containerPort: 8080 }} ]
          readinessProbe: {{ tcpSocket: {{ port: 8080 }}, periodSeconds: 1 }}
---
apiVersion: v1
kind: Service
metadata: {{ name: {name}, namespace: {namespace} }}
spec:
  selector: {{ app: {name} }}
  ports: [ {{ name: http, port: 8080, targetPort: 8080 }} ]
"
    )
}
