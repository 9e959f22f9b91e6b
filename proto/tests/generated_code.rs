//! Regenerates the tonic/prost code from `proto/` and fails when the committed
//! copy in `src/gen/` differs, so no consumer needs `protoc` at build time
//! (the tokio-console `console-api` pattern). Run with `LABSCOPE_BLESS=1` to
//! rewrite the committed files after changing a `.proto`.

use std::path::{Path, PathBuf};

use prost::Message;

fn crate_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

#[test]
fn generated_code_is_up_to_date() {
    let root = crate_dir();
    let protos = ["labscope/node/v1/node.proto"];
    let fds = protox::compile(protos, [root.join("proto")]).expect("compile .proto with protox");
    let out = tempfile::tempdir().expect("temp dir");
    tonic_prost_build::configure()
        .build_client(true)
        .build_server(true)
        .build_transport(true)
        // prost's codec, with big answers dropped off the sending task.
        .codec_path("crate::codec::AgentCodec")
        .emit_rerun_if_changed(false)
        .out_dir(out.path())
        .compile_fds(fds.clone())
        .expect("generate code");
    std::fs::write(out.path().join("descriptor.bin"), fds.encode_to_vec()).unwrap();

    let gen_dir = root.join("src/gen");
    let bless = std::env::var_os("LABSCOPE_BLESS").is_some();
    let mut stale = Vec::new();
    for name in ["labscope.node.v1.rs", "descriptor.bin"] {
        let fresh = std::fs::read(out.path().join(name)).expect("generated file");
        let committed_path = gen_dir.join(name);
        let committed = std::fs::read(&committed_path).unwrap_or_default();
        if fresh != committed {
            if bless {
                std::fs::create_dir_all(&gen_dir).unwrap();
                std::fs::write(&committed_path, &fresh).unwrap();
            } else {
                stale.push(display(&committed_path));
            }
        }
    }
    assert!(
        stale.is_empty(),
        "generated code is stale: {stale:?}; run `LABSCOPE_BLESS=1 cargo test -p labscope-proto` and commit"
    );
}

fn display(p: &Path) -> String {
    p.display().to_string()
}
