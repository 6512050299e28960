//! The real binary, as a user runs it: `aednet demo` on a fresh directory serves the
//! synthetic city, `token create` issues a working token, and SIGTERM shuts down cleanly.

use serde_json::Value;

mod common;

use common::{start_aednet as start_env, terminate, Running};

fn bin() -> std::process::Command {
    std::process::Command::new(env!("CARGO_BIN_EXE_aednet"))
}

/// Starts `aednet <args>` on port 0 in `dir` ([`common::start_aednet`]).
fn start(dir: &std::path::Path, args: &[&str]) -> Running {
    start_env(dir, args, &[])
}

#[tokio::test(flavor = "multi_thread")]
async fn demo_serves_the_synthetic_city_and_shuts_down_cleanly() {
    let dir = tempfile::tempdir().unwrap();
    let r = start(dir.path(), &["demo"]);
    assert!(dir.path().join("aednet-data/demo.db").exists());
    // The demo's population grid is written beside the database and used by coverage.
    let grid = std::fs::read_to_string(dir.path().join("aednet-data/demo-population.csv")).unwrap();
    assert!(grid.starts_with("lat,lon,population\n") && grid.lines().count() > 10_000);
    assert!(
        r.stdout
            .iter()
            .any(|l| l.starts_with("population grid:") && l.ends_with("demo-population.csv")),
        "{:?}",
        r.stdout
    );
    let tokens = std::fs::read_to_string(dir.path().join("aednet-data/demo-tokens.txt")).unwrap();
    let admin = tokens
        .lines()
        .find_map(|l| l.strip_prefix("admin\t"))
        .unwrap()
        .to_string();
    assert!(
        r.stdout.iter().any(|l| l.contains(&admin)),
        "tokens are printed on first start"
    );

    let client = reqwest::Client::new();
    let aeds: Value = client
        .get(format!("{}/api/v1/aeds?limit=1000", r.base))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let items = aeds["items"].as_array().unwrap();
    assert!(items.len() >= 200, "hundreds of AEDs, got {}", items.len());
    assert!(
        items.iter().all(|a| a.get("cabinet_code").is_none()),
        "public reads hide cabinet codes"
    );
    let districts: Value = client
        .get(format!("{}/api/v1/districts", r.base))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let names: Vec<&str> = districts["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|d| d["name"].as_str().unwrap())
        .collect();
    for n in ["柯城区", "衢江区", "龙游县", "江山市", "常山县", "开化县"] {
        assert!(names.contains(&n), "{n} missing from {names:?}");
    }
    let stations: Value = client
        .get(format!("{}/api/v1/stations?limit=1000", r.base))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert!(!stations["items"].as_array().unwrap().is_empty());
    let rescuers = client
        .get(format!("{}/api/v1/rescuers", r.base))
        .send()
        .await
        .unwrap();
    assert_eq!(rescuers.status().as_u16(), 401);
    let rescuers: Value = client
        .get(format!("{}/api/v1/rescuers", r.base))
        .bearer_auth(&admin)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert!(!rescuers["items"].as_array().unwrap().is_empty());
    let metrics = client
        .get(&r.metrics)
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(metrics.contains("aednet_aeds "), "{metrics}");
    assert!(terminate(r).success());

    // A second start serves the same database without regenerating it.
    let r2 = start(dir.path(), &["demo"]);
    assert!(
        r2.stdout.iter().any(|l| l.contains("already has data")),
        "{:?}",
        r2.stdout
    );
    let again: Value = client
        .get(format!("{}/api/v1/aeds?limit=1000", r2.base))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(again["items"].as_array().unwrap().len(), items.len());
    assert!(terminate(r2).success());
}

#[tokio::test(flavor = "multi_thread")]
async fn token_create_prints_a_working_secret_once() {
    let dir = tempfile::tempdir().unwrap();
    let db = format!("sqlite://{}", dir.path().join("t.db").display());
    let out = bin()
        .args([
            "--database-url",
            &db,
            "token",
            "create",
            "--role",
            "planner",
            "--name",
            "ops",
        ])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let text = String::from_utf8(out.stdout).unwrap();
    let secret = text
        .split_whitespace()
        .find(|w| w.starts_with("aed_"))
        .unwrap()
        .to_string();
    let list = bin()
        .args(["--database-url", &db, "token", "list"])
        .output()
        .unwrap();
    let listed = String::from_utf8(list.stdout).unwrap();
    assert!(listed.contains("planner") && !listed.contains(&secret));
    let bad = bin()
        .args([
            "--database-url",
            &db,
            "token",
            "create",
            "--role",
            "wizard",
            "--name",
            "x",
        ])
        .output()
        .unwrap();
    assert!(!bad.status.success());
    assert!(String::from_utf8_lossy(&bad.stderr).contains("unknown role"));

    let r = start(dir.path(), &["--database-url", &db, "serve"]);
    let client = reqwest::Client::new();
    let body = serde_json::json!({"name": "test", "population": 1000});
    let resp = client
        .post(format!("{}/api/v1/districts", r.base))
        .bearer_auth(&secret)
        .json(&body)
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status().as_u16(), 201);
    assert!(terminate(r).success());
}

/// `--caller-listen`: the caller's nearest queries on a listener of their own, answered by a
/// dedicated thread (`aednet-caller`) exactly as on the main listener; nothing else is served
/// there (registry, dispatch, sockets: JSON 404), the main listener keeps every route, and
/// SIGTERM stops both cleanly.
#[tokio::test(flavor = "multi_thread")]
async fn caller_lane_serves_only_the_nearest_queries() {
    let dir = tempfile::tempdir().unwrap();
    let db = format!("sqlite://{}", dir.path().join("lane.db").display());
    let out = bin()
        .args([
            "--database-url",
            &db,
            "token",
            "create",
            "--role",
            "admin",
            "--name",
            "ops",
        ])
        .output()
        .unwrap();
    assert!(out.status.success(), "{out:?}");
    let admin = String::from_utf8(out.stdout)
        .unwrap()
        .split_whitespace()
        .find(|w| w.starts_with("aed_"))
        .unwrap()
        .to_string();
    let r = start(
        dir.path(),
        &[
            "--database-url",
            &db,
            "serve",
            "--caller-listen",
            "127.0.0.1:0",
        ],
    );
    let lane = r
        .stdout
        .iter()
        .find_map(|l| l.strip_prefix("aednet caller lane on "))
        .unwrap_or_else(|| panic!("no caller lane announced: {:?}", r.stdout))
        .trim()
        .to_string();
    assert_ne!(lane, r.base);
    // Its own thread in the process.
    let pid = r.child.id();
    let threads: Vec<String> = std::fs::read_dir(format!("/proc/{pid}/task"))
        .unwrap()
        .filter_map(|t| std::fs::read_to_string(t.ok()?.path().join("comm")).ok())
        .map(|c| c.trim().to_string())
        .collect();
    assert!(threads.iter().any(|t| t == "aednet-caller"), "{threads:?}");

    let client = reqwest::Client::new();
    let mut created = Vec::new();
    for (i, (lat, lon)) in [
        (28.9700, 118.8700),
        (28.9712, 118.8705),
        (28.9690, 118.8721),
    ]
    .into_iter()
    .enumerate()
    {
        let resp = client
            .post(format!("{}/api/v1/aeds", r.base))
            .bearer_auth(&admin)
            .json(
                &serde_json::json!({"lat": lat, "lon": lon, "name": format!("AED {i}"),
                "access": "yes", "opening_hours": "24/7"}),
            )
            .send()
            .await
            .unwrap();
        assert_eq!(resp.status().as_u16(), 201);
        let a: Value = resp.json().await.unwrap();
        created.push(a["id"].as_i64().unwrap());
    }
    let nearest = |base: &str| format!("{base}/api/v1/aeds/nearest?lat=28.9701&lon=118.8701&k=3");
    // The index follows the bus: wait until the main listener sees all three.
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    let on_main = loop {
        let v: Value = client
            .get(nearest(&r.base))
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        if v["results"].as_array().map_or(0, Vec::len) == 3 {
            break v;
        }
        assert!(std::time::Instant::now() < deadline, "{v}");
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    };
    let resp = client.get(nearest(&lane)).send().await.unwrap();
    assert_eq!(resp.status().as_u16(), 200);
    let on_lane: Value = resp.json().await.unwrap();
    let ids = |v: &Value| -> Vec<i64> {
        v["results"]
            .as_array()
            .unwrap()
            .iter()
            .map(|a| a["id"].as_i64().unwrap())
            .collect()
    };
    assert_eq!(ids(&on_lane), ids(&on_main), "{on_lane}");
    assert_eq!(ids(&on_lane)[0], created[0], "{on_lane}");
    // Bad input is refused the same way (422/400 naming the field).
    let bad: Value = client
        .get(format!("{lane}/api/v1/aeds/nearest?lat=95&lon=118.87"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(bad["field"], "lat", "{bad}");
    let stations = client
        .get(format!(
            "{lane}/api/v1/stations/nearest?lat=28.97&lon=118.87"
        ))
        .send()
        .await
        .unwrap();
    assert_eq!(stations.status().as_u16(), 200);
    let health = client.get(format!("{lane}/healthz")).send().await.unwrap();
    assert_eq!(health.status().as_u16(), 200);
    // Nothing else: not the registry (even with a token), not dispatch, not sockets, not the
    // consoles or metrics.
    for path in [
        "/api/v1/aeds?limit=5",
        "/api/v1/incidents",
        "/api/v1/coverage",
        "/ws/rescuer",
        "/readyz",
        "/metrics",
        "/",
    ] {
        let resp = client
            .get(format!("{lane}{path}"))
            .bearer_auth(&admin)
            .send()
            .await
            .unwrap();
        assert_eq!(resp.status().as_u16(), 404, "{path} on the caller lane");
        let body: Value = resp.json().await.unwrap();
        assert_eq!(body["error"], "not_found", "{path}: {body}");
    }
    let post = client
        .post(format!("{lane}/api/v1/aeds"))
        .bearer_auth(&admin)
        .json(&serde_json::json!({"lat": 28.97, "lon": 118.87, "name": "x"}))
        .send()
        .await
        .unwrap();
    assert_eq!(post.status().as_u16(), 404);
    // The main listener still has them.
    let list = client
        .get(format!("{}/api/v1/aeds?limit=5", r.base))
        .send()
        .await
        .unwrap();
    assert_eq!(list.status().as_u16(), 200);
    assert!(terminate(r).success());
    // Both listeners are closed.
    assert!(client.get(nearest(&lane)).send().await.is_err());
}

/// Every YAML document under `deploy/` (compose, Kubernetes, Prometheus) must parse.
fn deploy_yaml(rel: &str) -> Vec<yaml_rust2::Yaml> {
    let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../deploy")
        .join(rel);
    let text = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{rel}: {e}"));
    yaml_rust2::YamlLoader::load_from_str(&text).unwrap_or_else(|e| panic!("{rel}: {e}"))
}

/// Metric names (`aednet_…`, `process_…`) a PromQL expression uses, histogram suffixes stripped.
fn metric_names(expr: &str, out: &mut std::collections::BTreeSet<String>) {
    for prefix in ["aednet_", "process_"] {
        metric_names_with(expr, prefix, out);
    }
}

fn metric_names_with(expr: &str, prefix: &str, out: &mut std::collections::BTreeSet<String>) {
    let bytes = expr.as_bytes();
    let mut i = 0;
    while let Some(pos) = expr[i..].find(prefix) {
        let start = i + pos;
        let mut end = start;
        while end < bytes.len() && (bytes[end].is_ascii_alphanumeric() || bytes[end] == b'_') {
            end += 1;
        }
        let boundary =
            start == 0 || !(bytes[start - 1].is_ascii_alphanumeric() || bytes[start - 1] == b'_');
        if boundary {
            let name = &expr[start..end];
            let base = ["_bucket", "_sum", "_count"]
                .iter()
                .find_map(|s| name.strip_suffix(s))
                .unwrap_or(name);
            out.insert(base.to_string());
        }
        i = end;
    }
}

/// The operations files are checked against the real binary: the Kubernetes ConfigMap's
/// `aednet.toml` and the image's environment are the configuration it starts with, the
/// probes' paths answer, and every metric the alert rules and the Grafana dashboard use is
/// exported by `/metrics`.
#[tokio::test(flavor = "multi_thread")]
async fn deploy_files_match_the_binary() {
    use yaml_rust2::Yaml;
    let mut kinds = Vec::new();
    let mut probe_paths = Vec::new();
    let mut config_toml = None;
    let kustomization = deploy_yaml("k8s/kustomization.yaml");
    let resources = kustomization[0]["resources"].as_vec().expect("resources");
    assert!(!resources.is_empty());
    assert!(
        resources.iter().any(|r| r.as_str() == Some("hpa.yaml")),
        "the HPA is applied (several nodes can serve)"
    );
    for res in resources
        .iter()
        .chain([&Yaml::String("secret.example.yaml".into())])
    {
        let file = res.as_str().unwrap();
        for doc in deploy_yaml(&format!("k8s/{file}")) {
            let kind = doc["kind"]
                .as_str()
                .unwrap_or_else(|| panic!("{file}: no kind"));
            assert!(
                doc["apiVersion"].as_str().is_some(),
                "{file}: no apiVersion"
            );
            assert!(
                doc["metadata"]["name"].as_str().is_some(),
                "{file}: no name"
            );
            kinds.push(kind.to_string());
            if kind == "Deployment" {
                // Several nodes over NATS JetStream, replaced one at a time.
                assert!(
                    doc["spec"]["replicas"].as_i64().is_some_and(|r| r >= 2),
                    "{file}: replicas"
                );
                assert_eq!(
                    doc["spec"]["strategy"]["type"].as_str(),
                    Some("RollingUpdate")
                );
                let c = &doc["spec"]["template"]["spec"]["containers"][0];
                assert!(
                    c["env"].as_vec().unwrap().iter().any(|e| {
                        e["name"].as_str() == Some("AEDNET_CLUSTER__NATS_URL")
                            && e["value"]
                                .as_str()
                                .is_some_and(|v| v.starts_with("nats://"))
                    }),
                    "{file}: AEDNET_CLUSTER__NATS_URL"
                );
                for probe in ["startupProbe", "livenessProbe", "readinessProbe"] {
                    let path = c[probe]["httpGet"]["path"].as_str();
                    probe_paths.push(path.unwrap_or_else(|| panic!("{probe} path")).to_string());
                }
                assert_eq!(
                    c["securityContext"]["allowPrivilegeEscalation"].as_bool(),
                    Some(false)
                );
                assert_eq!(
                    doc["spec"]["template"]["spec"]["securityContext"]["runAsNonRoot"].as_bool(),
                    Some(true)
                );
            }
            if kind == "PodDisruptionBudget" {
                assert_eq!(doc["spec"]["minAvailable"].as_i64(), Some(1), "{file}");
            }
            if kind == "ConfigMap" {
                config_toml = doc["data"]["aednet.toml"].as_str().map(str::to_string);
            }
        }
    }
    for k in [
        "Namespace",
        "ConfigMap",
        "Deployment",
        "Service",
        "PodDisruptionBudget",
        "HorizontalPodAutoscaler",
        "Secret",
    ] {
        assert!(kinds.iter().any(|x| x == k), "no {k} manifest");
    }
    let compose = deploy_yaml("compose/compose.yaml");
    for svc in ["postgres", "nats", "aednet-1", "aednet-2", "prometheus"] {
        assert!(
            !compose[0]["services"][svc].is_badvalue(),
            "compose has no {svc}"
        );
    }
    let nats_cmd = compose[0]["services"]["nats"]["command"].as_vec().unwrap();
    assert!(
        nats_cmd.iter().any(|a| a.as_str() == Some("-js")),
        "NATS runs with JetStream"
    );
    for svc in ["aednet-1", "aednet-2"] {
        let url = compose[0]["services"][svc]["environment"]["AEDNET_CLUSTER__NATS_URL"].as_str();
        assert_eq!(url, Some("nats://nats:4222"), "{svc} joins the cluster");
    }
    assert!(!deploy_yaml("prometheus/prometheus.yml")[0]["scrape_configs"].is_badvalue());

    let mut used = std::collections::BTreeSet::new();
    let rules = deploy_yaml("prometheus/alerts.yml");
    let mut alerts = 0;
    for group in rules[0]["groups"].as_vec().expect("groups") {
        for rule in group["rules"].as_vec().expect("rules") {
            let expr = rule["expr"].as_str().expect("expr");
            assert!(
                rule["alert"].as_str().is_some()
                    && rule["annotations"]["summary"].as_str().is_some()
            );
            metric_names(expr, &mut used);
            alerts += 1;
        }
    }
    assert!(alerts >= 5, "alert rules: {alerts}");
    let dash: Value = serde_json::from_str(
        &std::fs::read_to_string(concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/../deploy/grafana/aednet-overview.json"
        ))
        .unwrap(),
    )
    .expect("dashboard is JSON");
    for panel in dash["panels"].as_array().expect("panels") {
        for t in panel["targets"].as_array().expect("targets") {
            metric_names(t["expr"].as_str().expect("expr"), &mut used);
        }
    }
    assert!(used.len() >= 6, "metrics used: {used:?}");

    // The image's environment (Containerfile ENV) and the ConfigMap's file, as the binary reads them.
    let dir = tempfile::tempdir().unwrap();
    let cfg = dir.path().join("aednet.toml");
    std::fs::write(&cfg, config_toml.expect("ConfigMap carries aednet.toml")).unwrap();
    let containerfile = std::fs::read_to_string(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../deploy/Containerfile"
    ))
    .unwrap();
    let env_block: String = containerfile
        .split("\nENV ")
        .nth(1)
        .expect("Containerfile sets ENV")
        .lines()
        .take_while(|l| !l.trim().is_empty() && !l.starts_with("EXPOSE"))
        .collect::<Vec<_>>()
        .join(" ");
    let mut env: Vec<(String, String)> = env_block
        .split_whitespace()
        .filter(|w| *w != "\\")
        .map(|kv| {
            let (k, v) = kv.split_once('=').expect("KEY=value");
            (k.to_string(), v.to_string())
        })
        .collect();
    assert!(env.iter().any(|(k, _)| k == "AEDNET_LOG_FORMAT"));
    // Only the database path differs: the image keeps it under /var/lib/aednet.
    for (k, v) in &mut env {
        if k == "AEDNET_DATABASE_URL" {
            *v = format!("sqlite://{}/aednet.db", dir.path().display());
        }
    }
    let env_refs: Vec<(&str, &str)> = env.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
    let r = start_env(
        dir.path(),
        &["--config", cfg.to_str().unwrap(), "serve"],
        &env_refs,
    );
    let client = reqwest::Client::new();
    for p in &probe_paths {
        let s = client
            .get(format!("{}{p}", r.base))
            .send()
            .await
            .unwrap()
            .status();
        assert_eq!(s, 200, "probe {p}");
    }
    // One request of the kind the latency rules watch, so its labelled series exists.
    let s = client
        .get(format!("{}/api/v1/aeds/nearest?lat=47.1&lon=9.5", r.base))
        .send()
        .await
        .unwrap()
        .status();
    assert_eq!(s, 200);
    let text = client
        .get(&r.metrics)
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    let missing: Vec<&String> = used
        .iter()
        .filter(|m| !text.contains(&format!("# TYPE {m} ")))
        .collect();
    assert!(terminate(r).success());
    assert!(
        missing.is_empty(),
        "metrics used by deploy/ but not exported: {missing:?}"
    );
}
