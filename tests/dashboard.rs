//! `docs/grafana-dashboard.json` cannot drift from the code: every series a panel queries is one
//! the hub (or the SFU) registers, and every label it groups by is one that series carries.

use std::path::Path;

fn sources(dir: &Path, out: &mut String) {
    for entry in std::fs::read_dir(dir).unwrap().flatten() {
        let p = entry.path();
        if p.is_dir() {
            sources(&p, out);
        } else if p.extension().is_some_and(|e| e == "rs") {
            out.push_str(&std::fs::read_to_string(&p).unwrap());
        }
    }
}

#[test]
fn every_dashboard_series_and_label_is_registered_by_the_code() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let dash: serde_json::Value = serde_json::from_str(&std::fs::read_to_string(root.join("docs/grafana-dashboard.json")).unwrap()).unwrap();
    let mut code = String::new();
    sources(&root.join("src"), &mut code);
    sources(&root.join("sfu/src"), &mut code);
    let panels = dash["panels"].as_array().unwrap();
    assert!(panels.len() >= 10);
    let mut checked = 0;
    for panel in panels {
        for target in panel["targets"].as_array().unwrap() {
            let expr = target["expr"].as_str().unwrap();
            let mut rest = expr;
            while let Some(i) = rest.find("shangliang_") {
                let name: String = rest[i..].chars().take_while(|c| c.is_ascii_alphanumeric() || *c == '_').collect();
                rest = &rest[i + name.len()..];
                let base = ["_bucket", "_sum", "_count"].iter().fold(name.as_str(), |n, s| n.strip_suffix(s).unwrap_or(n));
                let registered: Vec<&str> = code.lines().filter(|l| l.contains(&format!("\"{base}\""))).collect();
                assert!(!registered.is_empty(), "panel {:?} queries {name}, which the code does not register", panel["title"]);
                if let Some(by) = expr.split("by (").nth(1).and_then(|s| s.split(')').next()).filter(|by| *by != "le") {
                    assert!(registered.iter().any(|l| l.contains(&format!("\"{by}\" =>"))), "panel {:?} groups {base} by {by}, a label it does not carry", panel["title"]);
                }
                checked += 1;
            }
        }
    }
    assert!(checked >= 20, "checked {checked} series");
}
