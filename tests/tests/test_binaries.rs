//! Every file of tests/tests is compiled into one of the three test
//! binaries (Cargo.toml sets `autotests = false`, so a file no root names
//! would never run).

use std::collections::BTreeSet;
use std::path::Path;

#[test]
fn every_test_file_is_in_a_test_binary() {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests");
    let roots = ["node.rs", "cluster.rs", "aggregator.rs"];
    let mut named = BTreeSet::new();
    for root in roots {
        let text = std::fs::read_to_string(dir.join(root)).expect("read a root");
        named.extend(
            text.lines()
                .filter_map(|l| l.trim().strip_prefix("#[path = \""))
                .filter_map(|l| l.strip_suffix("\"]"))
                .map(str::to_string),
        );
    }
    let files: BTreeSet<String> = std::fs::read_dir(&dir)
        .expect("read tests/tests")
        .flatten()
        .filter(|e| e.path().extension().is_some_and(|x| x == "rs"))
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .filter(|f| !roots.contains(&f.as_str()))
        .collect();
    let missing: Vec<&String> = files.difference(&named).collect();
    assert!(
        missing.is_empty(),
        "in no test binary (add `#[path = \"FILE\"] mod NAME;` to node.rs, cluster.rs or aggregator.rs): {missing:?}"
    );
    let cargo = std::fs::read_to_string(Path::new(env!("CARGO_MANIFEST_DIR")).join("Cargo.toml"))
        .expect("read Cargo.toml");
    for root in roots {
        assert!(
            cargo.contains(&format!("path = \"tests/{root}\"")),
            "{root} is not a [[test]] target in Cargo.toml"
        );
    }
}
