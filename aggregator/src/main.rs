//! Placeholder until the aggregator issue: the `labscope` binary.
fn main() {
    eprintln!("labscope: the aggregator is not built yet; see the agent `labscope-agent`");
    std::process::exit(2);
}
